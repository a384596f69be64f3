//! Users, SCRAM-SHA-256, roles (SPEC §7) and TLS, through the real binary: users are
//! added with `spendql user add`, clients are tokio-postgres and psql.

use std::io::Write;
use std::path::Path;
use std::process::Stdio;

use crate::common::{Server, spendql};

/// `spendql user add NAME --role ROLE --password-stdin`, as a script would run it.
fn add_user(dir: &Path, name: &str, role: &str, password: &str) {
    let mut child = spendql()
        .args([
            "user",
            "add",
            name,
            "--role",
            role,
            "--password-stdin",
            "--data",
        ])
        .arg(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn spendql user add");
    let mut stdin = child.stdin.take().expect("stdin");
    writeln!(stdin, "{password}").expect("write password");
    drop(stdin);
    let out = child.wait_with_output().expect("user add");
    assert!(
        out.status.success(),
        "user add failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("added user {name} with role {role}\n")
    );
}

fn sqlstate(e: &tokio_postgres::Error) -> String {
    e.code()
        .map(|c| c.code().to_owned())
        .unwrap_or_else(|| format!("no SQLSTATE: {e}"))
}

const INSERT_A: &str = "INSERT INTO usage (event_id, ts, provider, model, input_tokens, \
    output_tokens, team) VALUES \
    ('a', TIMESTAMP '2026-10-01 10:00:00', 'openai', 'gpt-4o-mini', 1000, 100, 'search'), \
    ('b', TIMESTAMP '2026-10-01 11:00:00', 'openai', 'gpt-4o-mini', 2000, 200, 'ads'), \
    ('c', TIMESTAMP '2026-10-02 09:00:00', 'anthropic', 'claude-sonnet-4-5', 300, 30, NULL)";

#[tokio::test]
async fn scram_logins_and_each_roles_privileges_over_the_wire() {
    let dir = tempfile::tempdir().expect("tempdir");
    add_user(dir.path(), "root", "admin", "root pw");
    add_user(dir.path(), "ana", "analyst", "ana pw");
    add_user(dir.path(), "bot", "ingest", "bot pw");
    add_user(dir.path(), "sam", "team:search", "sam pw");
    let server = Server::start(dir.path(), &[]);

    // Wrong password and unknown user: the same 28P01, no hint which one it was.
    let wrong = server
        .connect_as("ana", "nope")
        .await
        .expect_err("wrong password");
    assert_eq!(sqlstate(&wrong), "28P01");
    let ghost = server
        .connect_as("ghost", "nope")
        .await
        .expect_err("unknown user");
    assert_eq!(sqlstate(&ghost), "28P01");
    assert_eq!(
        ghost.to_string().replace("ghost", "ana"),
        wrong.to_string(),
        "an unknown user must look like a wrong password"
    );

    let root = server
        .connect_as("root", "root pw")
        .await
        .expect("admin logs in");
    assert_eq!(root.execute(INSERT_A, &[]).await.expect("admin inserts"), 3);
    root.batch_execute(
        "INSERT INTO budgets (budget_id, scope, scope_value, amount) VALUES ('b1', 'team', 'search', 100)",
    )
    .await
    .expect("admin writes config");

    // analyst: reads everything, writes nothing, touches no server file.
    let ana = server
        .connect_as("ana", "ana pw")
        .await
        .expect("analyst logs in");
    let count: i64 = ana
        .query_one("SELECT count(*) FROM usage", &[])
        .await
        .expect("analyst reads")
        .get(0);
    assert_eq!(count, 3);
    for sql in [
        "INSERT INTO usage (event_id, ts, provider, model, input_tokens, output_tokens) \
         VALUES ('x', TIMESTAMP '2026-10-01 00:00:00', 'openai', 'gpt-4o', 1, 1)",
        "UPDATE budgets SET amount = 1",
        "DELETE FROM budgets",
        "COPY (SELECT 1) TO '/tmp/spendql-analyst.csv'",
        "CREATE EXTERNAL TABLE leak STORED AS CSV LOCATION '/etc/'",
        "SELECT * FROM pricing_import('csv', 'provider,model')",
        "SELECT * FROM (SELECT 1) AS t WHERE EXISTS (SELECT 1 FROM pricing_import('csv', ''))",
    ] {
        let err = ana.batch_execute(sql).await.expect_err(sql);
        assert_eq!(sqlstate(&err), "42501", "{sql}: {err}");
    }
    assert!(!Path::new("/tmp/spendql-analyst.csv").exists());

    // ingest: INSERT into usage (idempotent on event_id), nothing else.
    let bot = server
        .connect_as("bot", "bot pw")
        .await
        .expect("ingest logs in");
    let insert_d = "INSERT INTO usage (event_id, ts, provider, model, input_tokens, \
                    output_tokens, team) VALUES \
                    ('d', TIMESTAMP '2026-10-03 08:00:00', 'openai', 'gpt-4o-mini', 10, 1, 'search')";
    assert_eq!(bot.execute(insert_d, &[]).await.expect("ingest inserts"), 1);
    assert_eq!(bot.execute(insert_d, &[]).await.expect("again"), 0);
    for sql in [
        "SELECT count(*) FROM usage",
        "SELECT sum(list_cost) FROM spend",
        "INSERT INTO usage SELECT * FROM usage",
        "INSERT INTO budgets (budget_id, scope, amount) VALUES ('b2', 'global', 1)",
        "DELETE FROM usage",
    ] {
        let err = bot.batch_execute(sql).await.expect_err(sql);
        assert_eq!(sqlstate(&err), "42501", "{sql}: {err}");
    }

    // team:search: only search's rows, through usage, views and subqueries alike.
    let sam = server
        .connect_as("sam", "sam pw")
        .await
        .expect("team reader logs in");
    let rows = sam
        .query(
            "SELECT team, count(*) AS n, sum(input_tokens) FROM spend GROUP BY team",
            &[],
        )
        .await
        .expect("team reads spend");
    assert_eq!(rows.len(), 1);
    assert_eq!(
        rows[0].get::<_, Option<String>>(0).as_deref(),
        Some("search")
    );
    assert_eq!(rows[0].get::<_, i64>(1), 2);
    let (scoped, everyone): (i64, i64) = {
        let row = sam
            .query_one(
                "SELECT (SELECT count(*) FROM usage) AS u, (SELECT count(*) FROM spend) AS s",
                &[],
            )
            .await
            .expect("subqueries");
        (row.get(0), row.get(1))
    };
    assert_eq!((scoped, everyone), (2, 2));
    let budgets: i64 = sam
        .query_one("SELECT count(*) FROM budgets", &[])
        .await
        .expect("config tables are readable")
        .get(0);
    assert_eq!(budgets, 1);
    let err = sam
        .batch_execute("DELETE FROM budgets")
        .await
        .expect_err("read only");
    assert_eq!(sqlstate(&err), "42501");
    // Prepared and bound (extended protocol) is scoped the same way.
    let n: i64 = sam
        .query_one(
            "SELECT count(*) FROM usage WHERE input_tokens >= $1",
            &[&0i64],
        )
        .await
        .expect("extended")
        .get(0);
    assert_eq!(n, 2);

    // The admin still sees everything; a user added while the server runs can log in.
    let all: i64 = root
        .query_one("SELECT count(*) FROM usage", &[])
        .await
        .expect("admin reads")
        .get(0);
    assert_eq!(all, 4);
    add_user(dir.path(), "late", "team:ads", "late pw");
    let late = server
        .connect_as("late", "late pw")
        .await
        .expect("new user logs in");
    let ads: i64 = late
        .query_one("SELECT count(*) FROM spend", &[])
        .await
        .expect("ads reads")
        .get(0);
    assert_eq!(ads, 1);
}

#[test]
fn psql_over_required_tls_copies_as_ingest_and_plaintext_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    add_user(dir.path(), "bot", "ingest", "bot pw");
    add_user(dir.path(), "ana", "analyst", "ana pw");
    let tls = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/tls");
    let cert = tls.join("server.crt");
    let key = tls.join("server.key");
    let server = Server::start(
        dir.path(),
        &[
            "--tls-cert",
            cert.to_str().expect("utf8 path"),
            "--tls-key",
            key.to_str().expect("utf8 path"),
            "--require-tls",
        ],
    );
    let root_cert = cert.to_str().expect("utf8 path");
    let bot = [
        ("PGPASSWORD", "bot pw"),
        ("PGSSLMODE", "verify-full"),
        ("PGSSLROOTCERT", root_cert),
    ];
    let copy = "COPY usage (event_id, ts, provider, model, input_tokens, output_tokens, team) \
                FROM STDIN WITH (FORMAT csv);\n\
                t1,2026-10-01T10:00:00Z,openai,gpt-4o-mini,1000,10,search\n\
                t2,2026-10-01T11:00:00Z,openai,gpt-4o-mini,2000,20,ads\n\
                \\.\n";
    let out = server.psql_env("bot", &bot, copy);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "COPY 2\n");
    let out = server.psql_env("bot", &bot, copy);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "COPY 0\n",
        "idempotent"
    );
    let out = server.psql_env(
        "bot",
        &bot,
        "COPY budgets (budget_id, scope, amount) FROM STDIN;\nb\tglobal\t1\n\\.\n",
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("permission denied"), "{stderr}");

    let ana = [("PGPASSWORD", "ana pw"), ("PGSSLMODE", "require")];
    let out = server.psql_env(
        "ana",
        &ana,
        "SELECT count(*), sum(output_tokens) FROM usage;\n",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "2|30\n");

    let plaintext = [("PGPASSWORD", "ana pw"), ("PGSSLMODE", "disable")];
    let out = server.psql_env("ana", &plaintext, "SELECT 1;\n");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("requires SSL"), "{stderr}");
}

#[test]
fn serve_refuses_unsafe_configurations_at_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let serve = |args: &[&str]| {
        let out = spendql()
            .args(["serve", "--data"])
            .arg(dir.path())
            .args(args)
            .output()
            .expect("run serve");
        assert!(!out.status.success(), "serve {args:?} started");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let err = serve(&["--listen", "0.0.0.0:0"]);
    assert!(err.contains("needs users"), "{err}");
    add_user(dir.path(), "root", "admin", "pw");
    let err = serve(&["--listen", "0.0.0.0:0"]);
    assert!(err.contains("and TLS"), "{err}");
    let err = serve(&["--listen", "127.0.0.1:0", "--require-tls"]);
    assert!(err.contains("--require-tls needs"), "{err}");
    let missing = dir.path().join("missing.pem");
    let missing = missing.to_str().expect("utf8 path");
    let err = serve(&[
        "--listen",
        "127.0.0.1:0",
        "--tls-cert",
        missing,
        "--tls-key",
        missing,
    ]);
    assert!(err.contains("TLS certificate"), "{err}");
    let err = serve(&["--listen", "127.0.0.1:0", "--otlp", "0.0.0.0:0"]);
    assert!(err.contains("loopback only"), "{err}");

    // No terminal and no --password-stdin: refuse rather than store an empty password.
    let out = spendql()
        .args(["user", "add", "x", "--role", "analyst", "--data"])
        .arg(dir.path())
        .stdin(Stdio::null())
        .output()
        .expect("user add");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--password-stdin"));
    let out = spendql()
        .args([
            "user",
            "add",
            "x",
            "--role",
            "owner",
            "--password-stdin",
            "--data",
        ])
        .arg(dir.path())
        .output()
        .expect("user add");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown role"));
    let listed = spendql()
        .args(["user", "list", "--data"])
        .arg(dir.path())
        .output()
        .expect("user list");
    assert_eq!(String::from_utf8_lossy(&listed.stdout), "root\tadmin\n");
}
