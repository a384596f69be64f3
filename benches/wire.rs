//! The PostgreSQL endpoint under load (issue: wire compatibility), two measurements:
//!
//! 1. **Streaming a large result to psql**: BENCH_ROWS (default 1,000,000) usage rows,
//!    the same rows in SpendQL and in PostgreSQL 15 (Debian's server, started here on a
//!    loopback port, as the `postgres` user when run as root), then
//!    `psql -At -c "SELECT <7 columns> FROM usage" > /dev/null` against each, RUNS times
//!    (default 3) alternating, median wall time.
//! 2. **Concurrent dashboards**: the demo data set served by SpendQL; CLIENTS (default 64)
//!    tokio-postgres connections run the dashboard queries below in a loop for BENCH_SECONDS
//!    (default 60). Queries answered, errors, p50 / p99 / max latency.
//!
//! `cargo bench --bench wire`. Nothing here asserts a timing.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[path = "common/dashboard.rs"]
mod dashboard;
#[path = "common/server.rs"]
mod server;

use dashboard::DASHBOARD;
use server::{Running, env_or, free_port, psql, run, spendql, start_spendql, wait_ready};

const PG_BIN: &str = "/usr/lib/postgresql/15/bin";
const STREAM_QUERY: &str =
    "SELECT event_id, ts, provider, model, input_tokens, output_tokens, team FROM usage";

/// Write `rows` usage rows as CSV (the columns both servers load).
fn write_csv(path: &Path, rows: usize) {
    use std::io::Write;
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).expect("create csv"));
    writeln!(
        out,
        "event_id,ts,provider,model,input_tokens,output_tokens,team"
    )
    .expect("write");
    let models = [
        "gpt-4o-mini",
        "gpt-4o",
        "claude-sonnet-4-5",
        "gemini-2.5-flash",
    ];
    let providers = ["openai", "openai", "anthropic", "google"];
    let teams = ["search", "support", "ads", "growth", "platform"];
    for i in 0..rows {
        let m = i % models.len();
        let secs = 1_790_812_800 + (i as i64) * 2;
        let ts = chrono::DateTime::from_timestamp(secs, 0).expect("ts");
        writeln!(
            out,
            "ev-{i:010},{},{},{},{},{},{}",
            ts.format("%Y-%m-%dT%H:%M:%SZ"),
            providers[m],
            models[m],
            200 + (i * 7919) % 5000,
            20 + (i * 104_729) % 800,
            teams[i % teams.len()]
        )
        .expect("write");
    }
    out.flush().expect("flush");
}

/// `cmd` as the postgres user when running as root (PostgreSQL refuses root).
fn as_postgres(program: &str) -> Command {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0"));
    if root {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", "postgres", "--", program]);
        cmd
    } else {
        Command::new(program)
    }
}

fn start_postgres(dir: &Path, port: u16, csv: &Path) -> Running {
    assert!(
        Path::new(PG_BIN).join("postgres").exists(),
        "PostgreSQL 15 is needed: apt-get install postgresql-15"
    );
    let data = dir.join("pgdata");
    std::fs::create_dir_all(&data).expect("pgdata");
    let _ = Command::new("chown")
        .args(["-R", "postgres"])
        .arg(dir)
        .status();
    run(as_postgres(&format!("{PG_BIN}/initdb"))
        .args(["-A", "trust", "-U", "postgres", "-D"])
        .arg(&data));
    let child = as_postgres(&format!("{PG_BIN}/postgres"))
        .arg("-D")
        .arg(&data)
        .args(["-p", &port.to_string(), "-k"])
        .arg(dir)
        .args(["-c", "listen_addresses=127.0.0.1", "-c", "fsync=on"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn postgres");
    let running = Running(child);
    wait_ready(port, "postgres");
    run(psql(port, "postgres")
        .arg("postgres")
        .args([
            "-c",
            "CREATE TABLE usage (event_id text, ts timestamptz, provider text, model text, \
             input_tokens bigint, output_tokens bigint, team text)",
        ])
        .args([
            "-c",
            &format!(
                "\\copy usage FROM '{}' WITH (FORMAT csv, HEADER)",
                csv.display()
            ),
        ])
        .args(["-c", "VACUUM ANALYZE usage"]));
    running
}

/// Wall time of `psql -At -c STREAM_QUERY > /dev/null`.
fn stream_seconds(port: u16, user: &str, database: &str) -> f64 {
    let started = Instant::now();
    run(psql(port, user)
        .args(["-At", "-c"])
        .arg(STREAM_QUERY)
        .arg(database)
        .stdout(Stdio::null()));
    started.elapsed().as_secs_f64()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn streaming(work: &Path) {
    let rows: usize = env_or("BENCH_ROWS", 1_000_000);
    let runs: usize = env_or("RUNS", 3);
    let csv = work.join("usage.csv");
    write_csv(&csv, rows);
    let data = work.join("spendql");
    run(spendql()
        .args(["ingest", "--format", "csv", "--data"])
        .arg(&data)
        .arg(&csv)
        .stdout(Stdio::null()));
    let spendql_port = free_port();
    let _spendql = start_spendql(&data, spendql_port, &[]);
    let pg_dir = work.join("pg");
    let pg_port = free_port();
    let _postgres = start_postgres(&pg_dir, pg_port, &csv);

    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        ours.push(stream_seconds(spendql_port, "tester", "spendql"));
        theirs.push(stream_seconds(pg_port, "postgres", "postgres"));
    }
    let (ours, theirs) = (median(ours), median(theirs));
    println!("| server | rows | median of {runs} | rows/s |");
    println!("|---|---|---|---|");
    println!(
        "| SpendQL | {rows} | {ours:.2} s | {:.0} |",
        rows as f64 / ours
    );
    println!(
        "| PostgreSQL 15 | {rows} | {theirs:.2} s | {:.0} |",
        rows as f64 / theirs
    );
    println!("SpendQL / PostgreSQL: {:.2}x the time\n", ours / theirs);
}

fn dashboards(work: &Path) {
    let clients: usize = env_or("CLIENTS", 64);
    let seconds: u64 = env_or("BENCH_SECONDS", 60);
    let data = work.join("demo");
    run(spendql()
        .args(["demo", "--data"])
        .arg(&data)
        .stdout(Stdio::null()));
    let port = free_port();
    let _spendql = start_spendql(&data, port, &[]);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let (latencies, errors) = runtime.block_on(async {
        let deadline = Instant::now() + Duration::from_secs(seconds);
        let mut tasks = Vec::new();
        for c in 0..clients {
            tasks.push(tokio::spawn(async move {
                let config = format!("host=127.0.0.1 port={port} user=tester dbname=spendql");
                let (client, connection) = tokio_postgres::connect(&config, tokio_postgres::NoTls)
                    .await
                    .expect("connect");
                tokio::spawn(connection);
                let mut latencies = Vec::new();
                let mut errors = 0u64;
                let mut i = c;
                while Instant::now() < deadline {
                    let query = DASHBOARD[i % DASHBOARD.len()];
                    i += 1;
                    let started = Instant::now();
                    match client.simple_query(query).await {
                        Ok(_) => latencies.push(started.elapsed().as_secs_f64()),
                        Err(e) => {
                            errors += 1;
                            eprintln!("query failed: {e}");
                        }
                    }
                }
                (latencies, errors)
            }));
        }
        let mut all = Vec::new();
        let mut errors = 0;
        for task in tasks {
            let (l, e) = task.await.expect("client task");
            all.extend(l);
            errors += e;
        }
        (all, errors)
    });
    let mut sorted = latencies;
    sorted.sort_by(f64::total_cmp);
    let pick = |q: f64| sorted[((sorted.len() as f64 * q) as usize).min(sorted.len() - 1)];
    println!("| clients | seconds | queries | errors | queries/s | p50 | p99 | max |");
    println!("|---|---|---|---|---|---|---|---|");
    println!(
        "| {clients} | {seconds} | {} | {errors} | {:.1} | {:.0} ms | {:.0} ms | {:.0} ms |",
        sorted.len(),
        sorted.len() as f64 / seconds as f64,
        pick(0.5) * 1000.0,
        pick(0.99) * 1000.0,
        sorted.last().copied().unwrap_or(0.0) * 1000.0
    );
}

fn main() {
    let dir = tempfile::tempdir().expect("tempdir");
    let work: PathBuf = dir.path().to_path_buf();
    // PostgreSQL runs as its own user, which must reach its data directory in here.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&work, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    if env_or("BENCH_STREAM", 1) == 1 {
        streaming(&work);
    }
    if env_or("BENCH_DASHBOARDS", 1) == 1 {
        dashboards(&work);
    }
}
