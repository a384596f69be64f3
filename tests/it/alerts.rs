//! Budgets and alerts through the real server: thresholds crossed by INSERTs fire once,
//! are stored before delivery, reach a real HTTP receiver, survive restarts and crashes
//! without firing again, and failed deliveries are retried then recorded.

use std::path::Path;
use std::time::Duration;

use crate::common::{Receiver, Server};

/// `[alerts]` with a long timer, so only commits trigger evaluations, and quick retries.
fn config(dir: &Path, retries: u32, backoff: &str) -> String {
    let path = dir.join("spendql.toml");
    std::fs::write(
        &path,
        format!(
            "[alerts]\ninterval = \"1h\"\nretries = {retries}\nretry_backoff = \"{backoff}\"\n"
        ),
    )
    .unwrap();
    path.to_string_lossy().into_owned()
}

/// $1 per million input tokens for acme/m1.
async fn price(client: &tokio_postgres::Client) {
    client
        .batch_execute(
            "INSERT INTO pricing (provider, model, effective_from, input_per_mtok, output_per_mtok) \
             VALUES ('acme', 'm1', '2020-01-01T00:00:00Z', 1, 1)",
        )
        .await
        .unwrap();
}

/// Usage now for team `team` costing `usd` dollars.
async fn spend(client: &tokio_postgres::Client, id: &str, team: &str, usd: u64) {
    client
        .batch_execute(&format!(
            "INSERT INTO usage (event_id, ts, provider, model, input_tokens, output_tokens, team) \
             VALUES ('{id}', now(), 'acme', 'm1', {}, 0, '{team}')",
            usd * 1_000_000
        ))
        .await
        .unwrap();
}

async fn wait_for(client: &tokio_postgres::Client, query: &str) -> String {
    for _ in 0..600 {
        let rows = client.simple_query(query).await.unwrap();
        for message in rows {
            if let tokio_postgres::SimpleQueryMessage::Row(row) = message
                && let Some(value) = row.get(0)
            {
                return value.to_string();
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no row from {query} within 30 s");
}

async fn alert_ids(client: &tokio_postgres::Client) -> Vec<String> {
    client
        .query("SELECT alert_id FROM alerts ORDER BY alert_id", &[])
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thresholds_fire_once_are_delivered_and_a_restart_does_not_refire() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), 2, "10ms");
    let mut ok = Receiver::start(200).await;
    let mut failing = Receiver::start(500).await;
    let server = Server::start(dir.path(), &["--config", &config]);
    let client = server.connect().await;
    price(&client).await;
    client
        .batch_execute(&format!(
            "INSERT INTO budgets (budget_id, name, scope, scope_value, period, amount, thresholds, notify) \
             VALUES ('search', 'Search monthly', 'team', 'search', 'month', 10, '0.5,1.0', '{}')",
            ok.url("/hook")
        ))
        .await
        .unwrap();
    spend(&client, "a", "search", 6).await;
    let (path, body) = ok.next().await;
    assert_eq!(path, "/hook");
    assert_eq!(body["budget_id"], "search");
    assert_eq!(body["kind"], "budget_threshold");
    assert_eq!(body["threshold"], "0.5");
    assert_eq!(body["spend"], "6");
    assert_eq!(body["amount"], "10");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("reached 50% of $10.00"),
        "{body}"
    );
    let delivered = wait_for(
        &client,
        "SELECT 'yes' FROM alerts WHERE budget_id = 'search' AND delivered_at IS NOT NULL",
    )
    .await;
    assert_eq!(delivered, "yes");

    // More spend in the same period: only the next threshold fires.
    spend(&client, "b", "search", 5).await;
    let (_, body) = ok.next().await;
    assert_eq!(body["threshold"], "1");
    assert_eq!(body["spend"], "11");

    // A receiver that keeps failing: three attempts, then the error is recorded.
    client
        .batch_execute(&format!(
            "INSERT INTO budgets (budget_id, scope, period, amount, thresholds, notify) \
             VALUES ('all', 'global', 'month', 1, '1.0', '{}')",
            failing.url("/secret-token")
        ))
        .await
        .unwrap();
    spend(&client, "c", "ads", 1).await;
    for _ in 0..3 {
        let (_, body) = failing.next().await;
        assert_eq!(body["budget_id"], "all");
    }
    let error = wait_for(
        &client,
        "SELECT delivery_error FROM alerts WHERE budget_id = 'all' AND delivery_error IS NOT NULL",
    )
    .await;
    assert!(error.contains("HTTP 500"), "{error}");
    assert!(error.contains("after 3 attempts"), "{error}");
    assert!(
        !error.contains("secret-token"),
        "the URL path is a secret: {error}"
    );
    let before_restart = alert_ids(&client).await;
    assert_eq!(before_restart.len(), 3, "{before_restart:?}");
    drop(client);
    server.stop();

    // After a restart the same periods and thresholds fire nothing. A new budget fires,
    // which shows the evaluation ran.
    let server = Server::start(dir.path(), &["--config", &config]);
    let client = server.connect().await;
    client
        .batch_execute(&format!(
            "INSERT INTO budgets (budget_id, scope, scope_value, period, amount, thresholds, notify) \
             VALUES ('ads', 'team', 'ads', 'month', 2, '0.5', '{}')",
            ok.url("/ads")
        ))
        .await
        .unwrap();
    spend(&client, "d", "ads", 1).await;
    let (path, body) = ok.next().await;
    assert_eq!(
        (path.as_str(), &body["budget_id"]),
        ("/ads", &serde_json::json!("ads"))
    );
    let mut after = alert_ids(&client).await;
    after.retain(|id| !id.starts_with("ads:"));
    assert_eq!(after, before_restart, "no alert fired twice");
    assert!(
        ok.posts.try_recv().is_err(),
        "no second POST for an old alert"
    );
    assert!(
        failing.posts.try_recv().is_err(),
        "a recorded failure is not retried"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alert_stored_before_a_crash_is_delivered_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    // Retry for minutes: the delivery is still pending when the server is killed.
    let config = config(dir.path(), 100, "10s");
    // A port with nothing listening yet.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let server = Server::start(dir.path(), &["--config", &config]);
    let client = server.connect().await;
    price(&client).await;
    client
        .batch_execute(&format!(
            "INSERT INTO budgets (budget_id, scope, period, amount, thresholds, notify) \
             VALUES ('g', 'global', 'month', 1, '1.0', 'http://127.0.0.1:{port}/late')"
        ))
        .await
        .unwrap();
    spend(&client, "a", "search", 2).await;
    let stored = wait_for(&client, "SELECT alert_id FROM alerts").await;
    assert!(stored.starts_with("g:"), "{stored}");
    drop(client);
    server.kill();

    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    let mut receiver = Receiver::serve(listener, 200);
    let server = Server::start(dir.path(), &["--config", &config]);
    let (path, body) = receiver.next().await;
    assert_eq!(path, "/late");
    assert_eq!(body["alert_id"], stored.as_str());
    let client = server.connect().await;
    wait_for(
        &client,
        "SELECT alert_id FROM alerts WHERE delivered_at IS NOT NULL",
    )
    .await;
    assert_eq!(alert_ids(&client).await, [stored]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn budget_check_decides_per_scope_over_the_wire() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let client = server.connect().await;
    price(&client).await;
    client
        .batch_execute(
            "INSERT INTO budgets (budget_id, scope, scope_value, period, amount, thresholds, enforcement) \
             VALUES ('search', 'team', 'search', 'month', 10, '0.8,1.0', 'block'), \
                    ('everyone', 'global', NULL, 'month', 1000, '1.0', 'alert')",
        )
        .await
        .unwrap();
    spend(&client, "a", "search", 7).await;
    let check = |estimate: &'static str| {
        let client = &client;
        async move {
            let row = client
                .query_one(
                    &format!(
                        "SELECT decision, budget_id, CAST(remaining AS TEXT), CAST(spend AS TEXT) \
                         FROM budget_check('team', 'search', {estimate})"
                    ),
                    &[],
                )
                .await
                .unwrap();
            (
                row.get::<_, String>(0),
                row.get::<_, Option<String>>(1),
                row.get::<_, Option<String>>(2),
                row.get::<_, Option<String>>(3),
            )
        }
    };
    let (decision, budget, remaining, spent) = check("0.5").await;
    assert_eq!(decision, "allow");
    assert_eq!(budget.as_deref(), Some("search"));
    assert_eq!(remaining.as_deref(), Some("2.500000000000"));
    assert_eq!(spent.as_deref(), Some("7.000000000000"));
    assert_eq!(check("1.25").await.0, "warn");
    assert_eq!(check("3").await.0, "block");
    // Spend committed just now counts.
    spend(&client, "b", "search", 3).await;
    let (decision, _, remaining, _) = check("0").await;
    assert_eq!(decision, "block");
    assert_eq!(remaining.as_deref(), Some("0.000000000000"));
    // A gateway's prepared statement: parameters in the function's arguments, reused.
    let prepared = client
        .prepare("SELECT decision, budget_id FROM budget_check($1, $2, $3)")
        .await
        .unwrap();
    for (team, estimate, decision, budget) in [
        ("search", "0", "block", "search"),
        ("ads", "0.5", "allow", "everyone"),
        ("ads", "2000", "warn", "everyone"),
    ] {
        let row = client
            .query_one(&prepared, &[&"team", &team, &estimate])
            .await
            .unwrap();
        assert_eq!(row.get::<_, String>(0), decision, "{team} {estimate}");
        assert_eq!(row.get::<_, String>(1), budget);
    }
    // Another team is only under the global budget.
    let row = client
        .query_one(
            "SELECT decision, budget_id FROM budget_check('team', 'ads')",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "allow");
    assert_eq!(row.get::<_, String>(1), "everyone");
    let error = client
        .query("SELECT * FROM budget_check('galaxy', 'x')", &[])
        .await
        .unwrap_err();
    assert_eq!(
        error.code(),
        Some(&tokio_postgres::error::SqlState::INVALID_PARAMETER_VALUE)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cli_insert_fires_and_delivers_before_the_command_exits() {
    let dir = tempfile::tempdir().unwrap();
    let mut ok = Receiver::start(200).await;
    let setup = format!(
        "INSERT INTO budgets (budget_id, scope, period, amount, thresholds, notify) \
         VALUES ('cli', 'global', 'month', 1, '1.0', '{}')",
        ok.url("/cli")
    );
    crate::common::sql_ok(dir.path(), &setup);
    crate::common::sql_ok(
        dir.path(),
        "INSERT INTO pricing (provider, model, effective_from, input_per_mtok, output_per_mtok) \
         VALUES ('acme', 'm1', '2020-01-01T00:00:00Z', 1, 1)",
    );
    let out = tokio::task::spawn_blocking({
        let dir = dir.path().to_path_buf();
        move || {
            crate::common::sql(
                &dir,
                "INSERT INTO usage (event_id, ts, provider, model, input_tokens, output_tokens) \
                 VALUES ('x', now(), 'acme', 'm1', 3000000, 0)",
                "csv",
            )
        }
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("alert: Budget cli"), "{stderr}");
    // Delivered while the command ran, and recorded.
    let (path, body) = ok.posts.try_recv().expect("POST before exit");
    assert_eq!(path, "/cli");
    assert_eq!(body["spend"], "3");
    let delivered = crate::common::sql_ok(
        dir.path(),
        "SELECT count(*) FROM alerts WHERE delivered_at IS NOT NULL",
    );
    assert_eq!(delivered.lines().nth(1), Some("1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_anomalous_day_alerts_the_budget_of_its_team_once() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), 2, "10ms");
    let mut ok = Receiver::start(200).await;
    let server = Server::start(dir.path(), &["--config", &config]);
    let client = server.connect().await;
    price(&client).await;
    // Four weeks of about $10 a day, then $60 yesterday.
    let mut rows: Vec<String> = (2..=29)
        .map(|k| {
            let usd = 10 + (k % 3) - 1;
            format!(
                "('h{k}', now() - INTERVAL '{k} days', 'acme', 'm1', {}, 0, 'search')",
                usd * 1_000_000
            )
        })
        .collect();
    rows.push("('spike', now() - INTERVAL '1 day', 'acme', 'm1', 60000000, 0, 'search')".into());
    client
        .batch_execute(&format!(
            "INSERT INTO usage (event_id, ts, provider, model, input_tokens, output_tokens, team) \
             VALUES {}",
            rows.join(", ")
        ))
        .await
        .unwrap();
    drop(client);
    server.stop();
    // The budget comes after the usage and with no server running: a server that saw both
    // (its first look for anomalies can run after the rows are in) would alert, and if
    // stopped between the POST and recording it, rightly send it again at the next start.
    crate::common::sql_ok(
        dir.path(),
        &format!(
            "INSERT INTO budgets (budget_id, scope, scope_value, period, amount, notify) \
             VALUES ('search', 'team', 'search', 'month', 1000000, '{}')",
            ok.url("/anomaly")
        ),
    );

    // The server looks for anomalies when it starts.
    let server = Server::start(dir.path(), &["--config", &config]);
    let client = server.connect().await;
    let (path, body) = ok.next().await;
    assert_eq!(path, "/anomaly");
    assert_eq!(body["kind"], "anomaly");
    assert_eq!(body["budget_id"], "search");
    assert_eq!(body["spend"], "60");
    let message = body["message"].as_str().unwrap();
    assert!(
        message.starts_with("Spend of team=search on ")
            && message.contains("higher than its usual day"),
        "{message}"
    );
    let ids = alert_ids(&client).await;
    assert_eq!(ids.len(), 1, "{ids:?}");
    assert!(ids[0].ends_with(":anomaly:team=search"), "{ids:?}");
    // Delivery is at least once: stopped between the POST and recording it, the server
    // would rightly send it again. Wait for the record, so "once" is what is tested.
    let delivered = wait_for(
        &client,
        "SELECT 'yes' FROM alerts WHERE delivered_at IS NOT NULL",
    )
    .await;
    assert_eq!(delivered, "yes");
    drop(client);
    server.stop();

    // Once only.
    let server = Server::start(dir.path(), &["--config", &config]);
    let client = server.connect().await;
    assert_eq!(alert_ids(&client).await, ids);
    assert!(ok.posts.try_recv().is_err(), "no second POST");
}

#[test]
fn bad_alert_settings_stop_the_server_with_the_key_named() {
    let dir = tempfile::tempdir().unwrap();
    for (setting, expected) in [
        (
            "interval = \"soon\"",
            "alerts.interval: 'soon' is not a duration",
        ),
        (
            "retry_backoff = \"0s\"",
            "alerts.retry_backoff must be more than zero",
        ),
        ("interval = \"10 parsecs\"", "needs a unit: ms, s, m or h"),
        ("colour = \"red\"", "unknown field `colour`"),
    ] {
        let config = dir.path().join("bad.toml");
        std::fs::write(&config, format!("[alerts]\n{setting}\n")).unwrap();
        let out = crate::common::spendql()
            .args(["serve", "--listen", "127.0.0.1:0", "--data"])
            .arg(dir.path().join("data"))
            .arg("--config")
            .arg(&config)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{setting}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(expected), "{setting}: {stderr}");
    }
}
