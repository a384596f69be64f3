//! Real PostgreSQL clients against `spendql serve`: psycopg 3, asyncpg, SQLAlchemy with
//! pandas, node-postgres and pgJDBC run
//! the scripts in `testdata/clients/`, which assert results (values, types, SQLSTATEs) and
//! print `<client>: ok`. `.ci/run` installs the clients on a fresh machine.

use std::path::Path;
use std::process::Command;

use crate::common::Server;

fn clients_dir() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/clients"))
}

/// Run `program args... HOST PORT` against a fresh server; assert it printed `expect`.
fn run_client(program: &str, args: &[&str], expect: &str) {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path(), &[]);
    let out = Command::new(program)
        .args(args)
        .arg(server.addr.ip().to_string())
        .arg(server.addr.port().to_string())
        .current_dir(clients_dir())
        .output()
        .unwrap_or_else(|e| panic!("{program} is installed (.ci/run installs it): {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains(expect),
        "{program} {args:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn psycopg3() {
    run_client("python3", &["psycopg_client.py"], "psycopg: ok");
}

#[test]
fn asyncpg() {
    run_client("python3", &["asyncpg_client.py"], "asyncpg: ok");
}

#[test]
fn sqlalchemy_reflection_and_pandas_read_sql() {
    run_client(
        "python3",
        &["sqlalchemy_pandas_client.py"],
        "sqlalchemy+pandas: ok",
    );
}

#[test]
fn node_postgres() {
    assert!(
        clients_dir().join("node_modules/pg").is_dir(),
        "node-postgres is missing: run `npm ci --prefix testdata/clients` (.ci/run does)"
    );
    run_client("node", &["node_pg_client.js"], "node-postgres: ok");
}

#[test]
fn pgjdbc() {
    let jar = "/usr/share/java/postgresql.jar";
    assert!(
        Path::new(jar).exists(),
        "pgJDBC is missing: apt-get install libpostgresql-jdbc-java (.ci/run does)"
    );
    run_client("java", &["-cp", jar, "JdbcClient.java"], "pgjdbc: ok");
}
