//! `spendql report` as a user runs it: every built-in report on a hand-built month, a
//! Markdown snapshot, exact totals, and the HTML page rendered by a real headless browser.

use std::path::Path;
use std::process::Output;

use crate::common::{spendql, sql_ok};

/// February and March 2026 at $1 per million input tokens. March: team a $2 (project p1,
/// cost center cc-1 by rule, customer c1), team b $1, $1 with no team. February: a $1, b $1.
fn fixture(dir: &Path) {
    for statement in [
        "INSERT INTO pricing (provider, model, effective_from, input_per_mtok, output_per_mtok) \
         VALUES ('acme', 'm', '2020-01-01T00:00:00Z', 1, 2)",
        "INSERT INTO attribution_rules (rule_id, priority, project, cost_center, valid_from) \
         VALUES ('r1', 1, 'p1', 'cc-1', '2020-01-01T00:00:00Z')",
        "INSERT INTO usage (event_id, ts, provider, model, input_tokens, output_tokens, team, \
         feature, customer, project) VALUES \
         ('f1', '2026-02-10T10:00:00Z', 'acme', 'm', 1000000, 0, 'a', 'chat', 'c1', 'p1'), \
         ('f2', '2026-02-11T10:00:00Z', 'acme', 'm', 1000000, 0, 'b', 'search', NULL, NULL), \
         ('m1', '2026-03-10T10:00:00Z', 'acme', 'm', 2000000, 0, 'a', 'chat', 'c1', 'p1'), \
         ('m2', '2026-03-11T10:00:00Z', 'acme', 'm', 1000000, 0, 'b', 'search', NULL, NULL), \
         ('m3', '2026-03-12T10:00:00Z', 'acme', 'm', 1000000, 0, NULL, NULL, NULL, NULL)",
        "INSERT INTO revenue (day, customer, revenue, units, unit_name) \
         VALUES ('2026-03-01', 'c1', 20, 4, 'seats')",
        "INSERT INTO budgets (budget_id, name, scope, scope_value, period, amount) \
         VALUES ('b1', 'Team a', 'team', 'a', 'month', 10)",
    ] {
        sql_ok(dir, statement);
    }
}

fn report(dir: &Path, args: &[&str]) -> Output {
    spendql()
        .arg("report")
        .args(args)
        .arg("--data")
        .arg(dir)
        .output()
        .expect("run spendql report")
}

fn report_ok(dir: &Path, args: &[&str]) -> String {
    let out = report(dir, args);
    assert!(
        out.status.success(),
        "spendql report {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf8")
}

/// The text without its "Generated <time>" line, which changes with every run.
fn without_generated_line(text: &str) -> String {
    text.lines()
        .filter(|l| !l.starts_with("Generated "))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn chargeback_markdown_matches_its_snapshot_and_totals_equal_the_bill() {
    let dir = tempfile::tempdir().expect("tempdir");
    fixture(dir.path());
    let text = report_ok(
        dir.path(),
        &["chargeback", "--period", "2026-03", "--format", "md"],
    );
    let snapshot = include_str!("../../testdata/reports/chargeback-2026-03.md");
    assert_eq!(
        without_generated_line(&text),
        without_generated_line(snapshot)
    );

    // The same numbers as CSV, and the bill they must add up to.
    let csv = report_ok(
        dir.path(),
        &["chargeback", "--period", "2026-03", "--format", "csv"],
    );
    let bill = sql_ok(
        dir.path(),
        "SELECT sum(effective_cost) FROM spend WHERE ts >= '2026-03-01T00:00:00Z' AND ts < '2026-04-01T00:00:00Z'",
    );
    let bill = bill.lines().nth(1).expect("bill row");
    let totals: Vec<&str> = csv.lines().filter(|l| l.starts_with("TOTAL,")).collect();
    assert_eq!(totals.len(), 2, "{csv}");
    assert!(
        totals[0].ends_with(&format!(",{bill}")),
        "{totals:?} vs {bill}"
    );
    assert!(
        totals[1].starts_with(&format!("TOTAL,{bill},")),
        "{totals:?} vs {bill}"
    );
}

#[test]
fn leadership_json_has_the_months_numbers() {
    let dir = tempfile::tempdir().expect("tempdir");
    fixture(dir.path());
    let out = dir.path().join("leadership.json");
    let printed = report_ok(
        dir.path(),
        &[
            "monthly_leadership",
            "--period",
            "2026-03",
            "--format",
            "json",
            "--out",
            out.to_str().expect("path"),
        ],
    );
    assert!(printed.is_empty(), "--out writes the file, not stdout");
    let value: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&out).expect("report file")).expect("json");
    assert_eq!(value["report"], "monthly_leadership");
    assert_eq!(value["period"]["label"], "2026-03");
    let sections = value["sections"].as_array().expect("sections");
    let titles: Vec<&str> = sections
        .iter()
        .filter_map(|s| s["title"].as_str())
        .collect();
    assert_eq!(
        titles,
        [
            "Summary",
            "Daily spend and 30-day forecast",
            "Spend by team",
            "Spend by provider and model",
            "Top movers (features, against the previous month)",
            "Budgets (current periods)",
            "Savings found (top 10 recommendations)",
            "Savings realised (model and tier moves)",
        ]
    );
    // Summary: $4 in March against $2 in February, 3 requests.
    let summary = &sections[0];
    assert_eq!(summary["columns"][0], "spend_usd");
    assert_eq!(summary["rows"][0][0], "4.00");
    assert_eq!(summary["rows"][0][1], "2.00");
    assert_eq!(summary["rows"][0][2], 100.0);
    assert_eq!(summary["rows"][0][3], 3);
    // By team: a, b, then the unattributed dollar.
    let teams: Vec<(String, String)> = sections[2]["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| {
            (
                r[0].as_str().unwrap_or("").into(),
                r[1].as_str().unwrap_or("").into(),
            )
        })
        .collect();
    assert_eq!(
        teams,
        [
            ("a".into(), "2.00".into()),
            ("(unattributed)".into(), "1.00".into()),
            ("b".into(), "1.00".into())
        ]
    );
    // Eleven daily points of March spend history is too little for a weekly model, but the
    // forecast still continues after the month.
    let daily = sections[1]["rows"].as_array().expect("daily rows");
    assert!(
        daily
            .iter()
            .any(|r| r[0] == "2026-04-01" && r[2].is_number()),
        "{daily:?}"
    );
}

#[test]
fn top_customers_csv_shows_margin_and_the_cost_share() {
    let dir = tempfile::tempdir().expect("tempdir");
    fixture(dir.path());
    let csv = report_ok(
        dir.path(),
        &["top_customers", "--period", "2026-03", "--format", "csv"],
    );
    // c1: $2 of AI cost against $20 of revenue: $18 margin, 10% (under the 20% line).
    assert!(
        csv.contains("\nc1,1,2.00,20.00,18.00,10.0,0.5000,seats,false\n"),
        "{csv}"
    );
}

#[test]
fn html_report_renders_in_a_headless_browser() {
    let dir = tempfile::tempdir().expect("tempdir");
    fixture(dir.path());
    let page = dir.path().join("leadership.html");
    report_ok(
        dir.path(),
        &[
            "monthly_leadership",
            "--period",
            "2026-03",
            "--format",
            "html",
            "--out",
            page.to_str().expect("path"),
        ],
    );
    let html = std::fs::read_to_string(&page).expect("html");
    assert!(
        !html.contains("http"),
        "the page loads nothing from anywhere"
    );
    let url = format!("file://{}", page.display());
    let chromium = |args: &[&str]| {
        std::process::Command::new("chromium")
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--enable-logging=stderr",
            ])
            .args(args)
            .arg(&url)
            .output()
            .expect("chromium (Debian package chromium) must be installed: .ci/run installs it")
    };
    // The browser's DOM has every chart and table the report wrote.
    let dom = chromium(&["--dump-dom"]);
    assert!(
        dom.status.success(),
        "{}",
        String::from_utf8_lossy(&dom.stderr)
    );
    let dom_text = String::from_utf8_lossy(&dom.stdout);
    assert_eq!(
        dom_text.matches("<svg").count(),
        html.matches("<svg").count()
    );
    assert!(
        dom_text.matches("<svg").count() >= 3,
        "line, bar and budget charts"
    );
    assert_eq!(
        dom_text.matches("<table>").count(),
        html.matches("<table>").count()
    );
    let stderr = String::from_utf8_lossy(&dom.stderr);
    assert!(!stderr.contains("CONSOLE"), "console messages: {stderr}");
    // And it paints: a PNG with more than one colour in it.
    let png = dir.path().join("leadership.png");
    let shot = chromium(&[
        &format!("--screenshot={}", png.display()),
        "--window-size=1024,2000",
    ]);
    assert!(
        shot.status.success(),
        "{}",
        String::from_utf8_lossy(&shot.stderr)
    );
    let bytes = std::fs::read(&png).expect("screenshot");
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    assert!(
        bytes.len() > 20_000,
        "a blank page compresses to almost nothing: {}",
        bytes.len()
    );
}

#[test]
fn bad_report_arguments_fail_with_a_message() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (args, expected) in [
        (vec!["nope", "--format", "md"], "no report named \"nope\""),
        (
            vec!["chargeback", "--period", "2026-13", "--format", "md"],
            "expected a month",
        ),
        (
            vec!["/no/such/report.sql", "--format", "md"],
            "/no/such/report.sql",
        ),
    ] {
        let out = report(dir.path(), &args);
        assert!(!out.status.success(), "{args:?} succeeded");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

#[test]
fn a_user_report_file_runs_with_the_placeholders() {
    let dir = tempfile::tempdir().expect("tempdir");
    fixture(dir.path());
    let file = dir.path().join("mine.sql");
    std::fs::write(
        &file,
        "-- title: Mine\n-- section: Requests\n\
         SELECT {{period}} AS period, sum(requests) AS requests FROM usage \
         WHERE ts >= {{period_start}} AND ts < {{period_end}};\n",
    )
    .expect("write");
    let csv = report_ok(
        dir.path(),
        &[
            file.to_str().expect("path"),
            "--period",
            "2026-02",
            "--format",
            "csv",
        ],
    );
    assert_eq!(csv, "Requests\nperiod,requests\n2026-02,2\n");
}

/// The first row of `query`, polled until there is one (60 s at most).
async fn first_row(client: &tokio_postgres::Client, query: &str) -> Vec<Option<String>> {
    for _ in 0..600 {
        let messages = client.simple_query(query).await.expect("query");
        for message in messages {
            if let tokio_postgres::SimpleQueryMessage::Row(row) = message {
                return (0..row.len())
                    .map(|i| row.get(i).map(str::to_string))
                    .collect();
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("no row from {query} within 60 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduled_reports_catch_up_once_run_on_time_and_notify() {
    let dir = tempfile::tempdir().expect("tempdir");
    fixture(dir.path());
    // The chargeback last ran for January: every first of the month since was missed.
    sql_ok(
        dir.path(),
        "INSERT INTO report_runs (run_id, report, scheduled_for, started_at, finished_at, period, \
         format, status) VALUES ('chargeback:2026-01-01T08:00:00Z', 'chargeback', \
         '2026-01-01T08:00:00Z', '2026-01-01T08:00:01Z', '2026-01-01T08:00:02Z', '2025-12', 'md', 'ok')",
    );
    let mut hook = crate::common::Receiver::start(200).await;
    let out_dir = dir.path().join("out");
    let config = dir.path().join("spendql.toml");
    std::fs::write(
        &config,
        format!(
            "[[reports]]\nname = \"chargeback\"\nschedule = \"0 8 1 * *\"\nformat = \"md\"\n\
             output_dir = \"{out}\"\nwebhook = \"{hook}\"\n\n\
             [[reports]]\nname = \"anomalies\"\nschedule = \"* * * * *\"\nformat = \"html\"\n\
             output_dir = \"{out}\"\nperiod = \"current\"\n",
            out = out_dir.display(),
            hook = hook.url("/reports"),
        ),
    )
    .expect("config");
    let server =
        crate::common::Server::start(dir.path(), &["--config", config.to_str().expect("path")]);
    let client = server.connect().await;

    // At start: one catch-up run of the chargeback, for the latest first of the month only.
    let (path, body) = hook.next().await;
    assert_eq!(path, "/reports");
    assert_eq!(body["report"], "chargeback");
    assert_eq!(body["status"], "ok", "{body}");
    let catch_up = first_row(
        &client,
        "SELECT period, output_file, status, CAST(delivered_at IS NOT NULL AS VARCHAR), \
         CAST(scheduled_for AS VARCHAR) FROM report_runs WHERE report = 'chargeback' \
         AND scheduled_for > '2026-01-01T08:00:00Z'",
    )
    .await;
    assert_eq!(catch_up[2].as_deref(), Some("ok"));
    assert_eq!(
        catch_up[3].as_deref(),
        Some("true"),
        "webhook delivery recorded"
    );
    let scheduled_for = catch_up[4].clone().expect("scheduled_for");
    assert!(scheduled_for.contains("-01T08:00:00"), "{scheduled_for}");
    let period = catch_up[0].clone().expect("period");
    let file = std::path::PathBuf::from(catch_up[1].clone().expect("file"));
    assert_eq!(file, out_dir.join(format!("chargeback-{period}.md")));
    let text = std::fs::read_to_string(&file).expect("report file");
    assert!(
        text.starts_with(&format!(
            "# AI spend chargeback by team and cost center\n\nPeriod: {period} "
        )),
        "{text}"
    );
    assert_eq!(body["file"], file.display().to_string());

    // The every-minute report runs at the next minute boundary (not at start: it has no
    // run recorded, so nothing was missed).
    let minutely = first_row(
        &client,
        "SELECT output_file, status FROM report_runs WHERE report = 'anomalies'",
    )
    .await;
    assert_eq!(minutely[1].as_deref(), Some("ok"));
    let html = std::fs::read_to_string(minutely[0].as_deref().expect("file")).expect("html");
    assert!(html.contains("<h1>Spend anomalies of the period</h1>"));
    let catch_ups = first_row(
        &client,
        "SELECT CAST(count(*) AS VARCHAR) FROM report_runs WHERE report = 'chargeback'",
    )
    .await;
    assert_eq!(
        catch_ups[0].as_deref(),
        Some("2"),
        "one catch-up, not one per missed month"
    );
    drop(client);
    server.stop();

    // A restart finds the chargeback up to date: no second catch-up.
    let server =
        crate::common::Server::start(dir.path(), &["--config", config.to_str().expect("path")]);
    let client = server.connect().await;
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let after = first_row(
        &client,
        "SELECT CAST(count(*) AS VARCHAR) FROM report_runs WHERE report = 'chargeback'",
    )
    .await;
    assert_eq!(after[0].as_deref(), Some("2"));
    drop(client);
    server.stop();
}

#[test]
fn bad_report_schedules_stop_the_server_with_the_entry_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (entry, expected) in [
        (
            "name = \"chargeback\"\nschedule = \"0 8 1 *\"\nformat = \"md\"\noutput_dir = \"x\"",
            "[[reports]] chargeback: schedule \"0 8 1 *\" has 4 fields",
        ),
        (
            "name = \"nope\"\nschedule = \"0 8 1 * *\"\nformat = \"md\"\noutput_dir = \"x\"",
            "[[reports]] nope: no report named",
        ),
        (
            "name = \"chargeback\"\nschedule = \"0 8 1 * *\"\nformat = \"pdf\"\noutput_dir = \"x\"",
            "unknown variant `pdf`",
        ),
    ] {
        let config = dir.path().join("bad.toml");
        std::fs::write(&config, format!("[[reports]]\n{entry}\n")).expect("config");
        let out = spendql()
            .args(["serve", "--listen", "127.0.0.1:0", "--data"])
            .arg(dir.path().join("data"))
            .arg("--config")
            .arg(&config)
            .output()
            .expect("run");
        assert!(!out.status.success(), "{entry}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(expected), "{entry}: {stderr}");
    }
}
