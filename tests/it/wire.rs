//! The Postgres endpoint as psql and drivers use it.

use crate::common::Server;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psql_counts_the_demo_spend_rows() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path(), &["--demo"]);
    let client = server.connect().await;
    let usage: i64 = client
        .query_one("SELECT count(*) FROM usage", &[])
        .await
        .expect("count usage")
        .get(0);
    assert!(usage > 100_000, "the demo has a realistic volume: {usage}");
    let counted = server.psql("analyst", "SELECT count(*) FROM spend;\n");
    assert_eq!(counted.trim(), usage.to_string());

    // Every view of the spec answers, and the demo gives each something to show.
    for view in [
        "spend",
        "spend_daily",
        "unattributed_spend",
        "budget_status",
        "anomalies",
        "recommendations",
        "recommendation_detail",
        "policy_violations",
        "keys_due_for_rotation",
        "unit_economics",
        "invoice_reconciliation",
        "focus",
        "optimisation_impact",
        "maturity",
    ] {
        // Fetch every column: a count alone would not evaluate them.
        let rows = client
            .simple_query(&format!("SELECT * FROM {view} LIMIT 100000"))
            .await
            .unwrap_or_else(|e| panic!("{view}: {e:?}"));
        let n = rows
            .iter()
            .filter(|m| matches!(m, tokio_postgres::SimpleQueryMessage::Row(_)))
            .count();
        assert!(n > 0, "{view} is empty on the demo data");
    }
    // FOCUS rows leave as CSV for FinOps tools.
    let focus = server.psql(
        "analyst",
        "COPY (SELECT * FROM focus) TO STDOUT WITH (FORMAT csv, HEADER);\n",
    );
    assert!(
        focus.starts_with("BilledCost,BillingAccountId,BillingAccountName,"),
        "{}",
        &focus[..focus.len().min(300)]
    );
    assert!(
        focus.lines().count() > 10_000,
        "{} FOCUS rows",
        focus.lines().count()
    );

    // The demo's stories surface as every kind of recommendation.
    let kinds: Vec<String> = client
        .query(
            "SELECT DISTINCT kind FROM recommendations WHERE estimated_monthly_savings > 0 \
             OR kind = 'max_tokens' ORDER BY kind",
            &[],
        )
        .await
        .expect("recommendation kinds")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        kinds,
        [
            "batch_api",
            "cheaper_model",
            "duplicate_requests",
            "max_tokens",
            "policy",
            "prompt_caching"
        ]
    );
    let priced: i64 = client
        .query_one("SELECT count(*) FROM spend WHERE NOT priced", &[])
        .await
        .expect("unpriced")
        .get(0);
    assert_eq!(priced, 0, "every demo row has a price");

    // A restart with --demo keeps the data and does not write it twice.
    server.stop();
    let server = Server::start(dir.path(), &["--demo"]);
    let client = server.connect().await;
    let again: i64 = client
        .query_one("SELECT count(*) FROM usage", &[])
        .await
        .expect("count usage")
        .get(0);
    assert_eq!(again, usage);
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extended_protocol_parameters_numeric_and_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path(), &[]);
    let client = server.connect().await;
    client
        .simple_query(
            "INSERT INTO budgets (budget_id, scope, scope_value, amount) VALUES ('b1', 'team', 'search', 1234.5)",
        )
        .await
        .expect("insert");
    let rows = client
        .query(
            "SELECT budget_id, CAST(amount AS VARCHAR) FROM budgets WHERE scope_value = $1",
            &[&"search"],
        )
        .await
        .expect("extended query");
    assert_eq!(rows.len(), 1);
    let amount: String = rows[0].get(1);
    assert_eq!(amount, "1234.500000000000");
    let messages = client
        .simple_query("SELECT amount FROM budgets")
        .await
        .expect("simple query");
    let text = messages.iter().find_map(|m| match m {
        tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
        _ => None,
    });
    assert_eq!(
        text.as_deref(),
        Some("1234.500000000000"),
        "NUMERIC keeps its scale"
    );
    let err = client
        .simple_query("SELECT * FROM no_such_table")
        .await
        .expect_err("unknown table");
    assert_eq!(
        err.code(),
        Some(&tokio_postgres::error::SqlState::UNDEFINED_TABLE)
    );
    // The connection is still usable after an error.
    let one: i64 = client
        .query_one("SELECT CAST(1 AS BIGINT)", &[])
        .await
        .expect("after error")
        .get(0);
    assert_eq!(one, 1);
    server.stop();
}

/// An admin refreshes the catalog from psql with a document on the client machine; the
/// change prices the next query and survives a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psql_imports_prices_from_a_client_side_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let doc = dir.path().join("litellm.json");
    std::fs::write(
        &doc,
        r#"{"acme-chat": {"litellm_provider": "openai", "mode": "chat",
            "input_cost_per_token": 0.0000025, "output_cost_per_token": 0.00001}}"#,
    )
    .expect("write document");
    let data = dir.path().join("data");
    let server = Server::start(&data, &[]);
    let script = format!(
        "\\set doc `cat {}`\nSELECT change, detail FROM pricing_import('litellm', :'doc') ORDER BY 1, 2;\n\
         SELECT token_cost('openai', 'acme-chat', now(), 1000000, 1000000);\n",
        doc.display()
    );
    let stdout = server.psql("admin", &script);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines,
        vec![
            "new model|openai/acme-chat",
            "summary|1 price rows read; 1 new, 0 changed, 0 unchanged; 1 new models",
            "12.500000000000",
        ]
    );

    server.stop();
    let server = Server::start(&data, &[]);
    let client = server.connect().await;
    let cost: String = client
        .query_one(
            "SELECT CAST(token_cost('openai', 'acme-chat', now(), 2000000, 0) AS TEXT)",
            &[],
        )
        .await
        .expect("cost after restart")
        .get(0);
    assert_eq!(cost, "5.000000000000");
}

/// The SQLSTATEs of issue 4's list that plain SQL can cause, each from a real client (the
/// auth, role, connection-limit and COPY ones are in their own tests).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_carry_postgres_sqlstates() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path(), &[]);
    let client = server.connect().await;
    let cases = [
        ("SELECT * FROM no_such_table", "42P01"),
        ("SELECT no_such_column FROM budgets", "42703"),
        ("SELECT no_such_function(1)", "42883"),
        ("SELECT power(1)", "42883"),
        ("SELEC 1", "42601"),
        ("SELECT 1 WHERE 1", "42804"),
        ("SELECT CAST('abc' AS INTEGER)", "22P02"),
        ("SELECT CAST('2026-13-45' AS DATE)", "22P02"),
        ("SELECT 1 / 0", "22012"),
        ("SELECT date_trunc('fortnight', now())", "22023"),
        ("SELECT current_setting('no_such_setting')", "22023"),
        ("LISTEN spend_alerts", "0A000"),
    ];
    for (sql, expected) in cases {
        let err = client.simple_query(sql).await.expect_err(sql);
        let code = err.code().map(|c| c.code().to_owned());
        assert_eq!(code.as_deref(), Some(expected), "{sql}: {err}");
        // And over the extended protocol where the statement gets that far.
        if let Err(err) = client.query(sql, &[]).await {
            assert_eq!(err.code().map(|c| c.code()), Some(expected), "{sql}: {err}");
        }
    }

    // statement_timeout stops a running query (and one whose rows are streaming) with 57014;
    // the connection stays usable.
    client
        .batch_execute("SET statement_timeout = '200ms'")
        .await
        .expect("set");
    let slow = "SELECT count(*) FROM generate_series(1, 100000) a, generate_series(1, 100000) b";
    for err in [
        client.simple_query(slow).await.expect_err("simple"),
        client.query(slow, &[]).await.expect_err("extended"),
        client
            .query(
                "SELECT a.value FROM generate_series(1, 100000) a, generate_series(1, 100000) b",
                &[],
            )
            .await
            .expect_err("streaming"),
    ] {
        assert_eq!(err.code().map(|c| c.code()), Some("57014"), "{err}");
    }
    client
        .batch_execute("RESET statement_timeout")
        .await
        .expect("reset");
    let n: i64 = client
        .query_one("SELECT count(*) FROM generate_series(1, 1000)", &[])
        .await
        .expect("no timeout")
        .get(0);
    assert_eq!(n, 1000);

    // An error inside BEGIN aborts the transaction until it ends (25P02); COMMIT then
    // rolls back.
    client.batch_execute("BEGIN").await.expect("begin");
    let err = client
        .simple_query("SELECT 1 / 0")
        .await
        .expect_err("error");
    assert_eq!(err.code().map(|c| c.code()), Some("22012"));
    for attempt in [
        client.simple_query("SELECT 1").await.expect_err("aborted"),
        client
            .query("SELECT 1", &[])
            .await
            .expect_err("aborted, extended"),
    ] {
        assert_eq!(attempt.code().map(|c| c.code()), Some("25P02"), "{attempt}");
    }
    let ended = client.simple_query("COMMIT").await.expect("commit");
    assert!(
        ended
            .iter()
            .any(|m| matches!(m, tokio_postgres::SimpleQueryMessage::CommandComplete(0))),
        "{ended:?}"
    );
    let one: i64 = client
        .query_one("SELECT CAST(1 AS BIGINT)", &[])
        .await
        .expect("usable after the transaction")
        .get(0);
    assert_eq!(one, 1);
}

/// A cancel request (what psql sends on Ctrl-C, pgJDBC on `Statement.cancel()`) stops a
/// running query with 57014 over both protocols; the extended protocol computes as it
/// streams, so the stream itself watches for the cancel.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_requests_stop_running_queries() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path(), &[]);
    let client = server.connect().await;
    let slow = "SELECT count(*) FROM generate_series(1, 100000) a, generate_series(1, 100000) b";
    for extended in [false, true] {
        let token = client.cancel_token();
        let canceller = tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            token
                .cancel_query(tokio_postgres::NoTls)
                .await
                .expect("cancel request sent");
        });
        let started = std::time::Instant::now();
        let err = if extended {
            client
                .query(slow, &[])
                .await
                .map(drop)
                .expect_err("extended")
        } else {
            client
                .simple_query(slow)
                .await
                .map(drop)
                .expect_err("simple")
        };
        assert_eq!(err.code().map(|c| c.code()), Some("57014"), "{err}");
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "the cancel took effect promptly"
        );
        canceller.await.expect("canceller");
    }
    let n: i64 = client
        .query_one("SELECT count(*) FROM generate_series(1, 10)", &[])
        .await
        .expect("usable after cancels")
        .get(0);
    assert_eq!(n, 10);
}

/// Each statement commits on its own; a ROLLBACK after writes says so instead of
/// pretending, and one after reads only is silent.
#[test]
fn rollback_after_writes_warns_that_it_undid_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path(), &[]);
    let out = server.psql_output(
        "tester",
        "BEGIN;\nINSERT INTO budgets (budget_id, amount) VALUES ('b1', 10);\n\
         INSERT INTO budgets (budget_id, amount) VALUES ('b2', 20);\nROLLBACK;\n\
         BEGIN;\nSELECT count(*) FROM budgets;\nROLLBACK;\n",
    );
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "BEGIN\nINSERT 0 1\nINSERT 0 1\nROLLBACK\nBEGIN\n2\nROLLBACK\n"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.matches("WARNING:  ROLLBACK undid nothing").count(),
        1,
        "{stderr}"
    );
    assert!(
        stderr.contains("the 2 write(s) since BEGIN are stored"),
        "{stderr}"
    );
}

/// A server whose stderr reader has gone (a log pipe whose collector died) still stops on
/// SIGTERM, cleanly, and releases its data directory.
#[test]
fn sigterm_stops_a_server_whose_stderr_is_gone() {
    use std::process::Command;
    use std::time::{Duration, Instant};

    let dir = tempfile::tempdir().expect("tempdir");
    let (mut child, stderr) = serve_until_ready(dir.path());
    drop(stderr);
    let pid = child.id().to_string();
    let sent = Command::new("kill").args(["-TERM", &pid]).status();
    assert!(sent.expect("kill").success());
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the server ignored SIGTERM once its stderr was gone");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "server exited with {status}");
    let after = crate::common::sql_ok(dir.path(), "SELECT count(*) AS n FROM usage");
    assert!(after.contains('0'), "{after}");
}

/// The server runs without transparent huge pages (mimalloc asks for them; faulting and
/// zeroing 2 MiB at a time cost 10% of the dashboard's CPU and 30% of its peak memory).
#[cfg(target_os = "linux")]
#[test]
fn the_server_runs_without_transparent_huge_pages() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut child, _stderr) = serve_until_ready(dir.path());
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.id()));
    let _ = child.kill();
    let _ = child.wait();
    let status = status.expect("the server's /proc status");
    let thp = status
        .lines()
        .find(|line| line.starts_with("THP_enabled:"))
        .expect("a kernel that reports THP_enabled");
    assert_eq!(thp.split_whitespace().nth(1), Some("0"), "{thp}");
}

/// `spendql serve` on `data` and a free port, once it has said it is serving; its stderr is
/// returned still open.
fn serve_until_ready(
    data: &std::path::Path,
) -> (
    std::process::Child,
    std::io::BufReader<std::process::ChildStderr>,
) {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;

    let mut child = crate::common::spendql()
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(data)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn spendql serve");
    let mut stderr = BufReader::new(child.stderr.take().expect("stderr"));
    let mut line = String::new();
    while !line.starts_with("spendql serving") {
        line.clear();
        let read = stderr.read_line(&mut line).expect("read stderr");
        assert!(read > 0, "the server exited before serving");
    }
    (child, stderr)
}
