//! Durability as the spec promises it: acknowledged means on disk, whatever kills the process.

use std::time::{Duration, Instant};

use rand::Rng;

use crate::common::{Server, sql, sql_ok};

fn count(dir: &std::path::Path, table: &str) -> u64 {
    let out = sql_ok(dir, &format!("SELECT count(*) AS n FROM {table}"));
    out.lines()
        .nth(1)
        .and_then(|l| l.parse().ok())
        .expect("a count")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_inserts_loses_no_acknowledged_row() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut acknowledged: Vec<String> = Vec::new();
    let mut rng = rand::rng();
    for round in 0..20 {
        let server = Server::start(dir.path(), &[]);
        let client = server.connect().await;
        // Every row acknowledged so far must have survived the previous kill.
        let stored: i64 = client
            .query_one("SELECT count(*) FROM usage", &[])
            .await
            .expect("count")
            .get(0);
        assert_eq!(
            stored as usize,
            acknowledged.len(),
            "round {round}: rows lost or invented"
        );
        let deadline = Instant::now() + Duration::from_millis(rng.random_range(50..400));
        let mut i = 0;
        while Instant::now() < deadline {
            let id = format!("r{round}-{i}");
            let statement = format!(
                "INSERT INTO usage (event_id, ts, provider, model, input_tokens, output_tokens) \
                 VALUES ('{id}', '2026-10-{:02}T12:00:00Z', 'openai', 'gpt-4o', {i}, 1)",
                1 + (i % 28)
            );
            match client.simple_query(&statement).await {
                Ok(_) => acknowledged.push(id),
                Err(e) => panic!("insert failed before the kill: {e}"),
            }
            i += 1;
        }
        // Fire one more insert and kill while it may be in flight: it may or may not land.
        let id = format!("r{round}-inflight");
        let inflight = format!(
            "INSERT INTO usage (event_id, ts, provider, model, input_tokens, output_tokens) \
             VALUES ('{id}', '2026-10-01T12:00:00Z', 'openai', 'gpt-4o', 1, 1)"
        );
        let pending = tokio::spawn(async move { client.simple_query(&inflight).await.is_ok() });
        tokio::time::sleep(Duration::from_micros(rng.random_range(0..3000))).await;
        server.kill();
        if pending.await.unwrap_or(false) {
            acknowledged.push(id);
        } else {
            // Not acknowledged: it may still be on disk. Count it only if it is.
            let out = sql_ok(
                dir.path(),
                &format!("SELECT count(*) AS n FROM usage WHERE event_id = 'r{round}-inflight'"),
            );
            if out == "n\n1\n" {
                acknowledged.push(format!("r{round}-inflight"));
            }
        }
    }
    let out = sql_ok(dir.path(), "SELECT event_id FROM usage ORDER BY event_id");
    let mut stored: Vec<&str> = out.lines().skip(1).collect();
    stored.sort_unstable();
    let mut expected: Vec<&str> = acknowledged.iter().map(String::as_str).collect();
    expected.sort_unstable();
    assert_eq!(stored, expected);
    assert!(
        expected.len() > 20,
        "the loop inserted too little to mean anything"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_keeps_usage_and_configuration() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path(), &[]);
    let client = server.connect().await;
    client
        .simple_query(
            "INSERT INTO usage (event_id, ts, provider, model, input_tokens, output_tokens) \
             VALUES ('x', '2026-10-01T00:00:00Z', 'openai', 'gpt-4o', 1, 2)",
        )
        .await
        .expect("insert usage");
    client
        .simple_query("INSERT INTO budgets (budget_id, amount) VALUES ('global', 500)")
        .await
        .expect("insert budget");
    client
        .simple_query("UPDATE budgets SET amount = 750 WHERE budget_id = 'global'")
        .await
        .expect("update budget");
    server.stop();
    assert_eq!(count(dir.path(), "usage"), 1);
    assert_eq!(
        sql_ok(dir.path(), "SELECT scope, amount FROM budgets"),
        "scope,amount\nglobal,750.000000000000\n"
    );
    // A clean stop folds the log into Parquet.
    assert!(dir.path().join("usage/day=2026-10-01").is_dir());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_torn_log_tail_is_cut_and_earlier_rows_kept() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path(), &[]);
    let client = server.connect().await;
    for id in ["a", "b", "c"] {
        client
            .simple_query(&format!(
                "INSERT INTO usage (event_id, ts, provider, model, input_tokens, output_tokens) \
                 VALUES ('{id}', '2026-10-01T00:00:00Z', 'openai', 'gpt-4o', 1, 2)"
            ))
            .await
            .expect("insert");
    }
    server.kill();
    let wal_dir = dir.path().join("wal");
    let mut segments: Vec<_> = std::fs::read_dir(&wal_dir)
        .expect("wal dir")
        .flatten()
        .map(|e| e.path())
        .collect();
    segments.sort();
    let newest = segments.last().expect("a segment");
    let len = std::fs::metadata(newest).expect("meta").len();
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(newest)
        .expect("open");
    file.set_len(len - 7).expect("tear the last record");
    drop(file);
    let out = sql(
        dir.path(),
        "SELECT event_id FROM usage ORDER BY event_id",
        "csv",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "event_id\na\nb\n");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("torn write"), "the cut is reported: {err}");
    // The directory is healthy again: new writes land after the cut.
    sql_ok(
        dir.path(),
        "INSERT INTO usage (event_id, ts, provider, model, input_tokens, output_tokens) \
         VALUES ('d', '2026-10-01T00:00:00Z', 'openai', 'gpt-4o', 1, 2)",
    );
    assert_eq!(count(dir.path(), "usage"), 3);
}

#[test]
fn a_damaged_parquet_file_is_named_in_a_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    sql_ok(
        dir.path(),
        "INSERT INTO usage (event_id, ts, provider, model, input_tokens, output_tokens) \
         VALUES ('a', '2026-10-01T00:00:00Z', 'openai', 'gpt-4o', 1, 2)",
    );
    let day = dir.path().join("usage/day=2026-10-01");
    let part = std::fs::read_dir(&day)
        .expect("day dir")
        .flatten()
        .next()
        .expect("a part")
        .path();
    let len = std::fs::metadata(&part).expect("meta").len();
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&part)
        .expect("open");
    file.set_len(len / 2).expect("truncate");
    drop(file);
    let out = sql(dir.path(), "SELECT count(*) FROM usage", "csv");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let name = part
        .file_name()
        .expect("name")
        .to_string_lossy()
        .to_string();
    assert!(err.contains(&name), "error names the file: {err}");
    assert!(!err.contains("panicked"), "{err}");

    // A damaged configuration table file, likewise.
    let dir = tempfile::tempdir().expect("tempdir");
    sql_ok(
        dir.path(),
        "INSERT INTO budgets (budget_id, amount) VALUES ('g', 1)",
    );
    let table = dir.path().join("tables/budgets.parquet");
    std::fs::write(&table, b"PAR1 garbage").expect("damage");
    let out = sql(dir.path(), "SELECT 1", "csv");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("budgets.parquet"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_process_is_refused_while_the_server_runs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path(), &[]);
    let out = sql(dir.path(), "SELECT 1", "csv");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("spendql serve (listening on 127.0.0.1:"),
        "{err}"
    );
    assert!(err.contains("psql"), "{err}");
    server.stop();
    assert_eq!(sql_ok(dir.path(), "SELECT 1 AS one"), "one\n1\n");
}
