//! Governance at scale (issue: attribution, budgets, alerts):
//!
//! 1. **budget_check latency**: BENCH_ROWS (default 1,000,000) usage rows in the current
//!    UTC month, ingested with `spendql ingest`, and 12 budgets; then over pgwire
//!    (tokio-postgres) CHECKS (default 2,000) calls of
//!    `SELECT decision, remaining FROM budget_check('team', ..., 0.05)` from one client,
//!    then from 4 clients at once: p50 / p99 / max. Also the first check after new usage,
//!    which re-evaluates every budget over the month's rows.
//! 2. **Attribution at query time**: the demo data set's dashboard queries with no
//!    attribution rules, with the demo's rules, and with 200 more rules, in RUNS rounds
//!    (default 5) that alternate the three; per-query medians, totals and the ratio to no
//!    rules.
//!
//! `cargo bench --bench governance`. Nothing here asserts a timing.

use std::path::Path;
use std::process::Stdio;
use std::time::Instant;

#[path = "common/dashboard.rs"]
mod dashboard;
#[path = "common/server.rs"]
mod server;

use dashboard::DASHBOARD;
use server::{env_or, free_port, run, spendql, start_spendql};

const TEAMS: &[&str] = &["search", "support", "ads", "growth", "platform"];

/// `rows` usage rows spread from the start of this UTC month to now.
fn write_month_csv(path: &Path, rows: usize) {
    use chrono::Datelike;
    use std::io::Write;
    let now = chrono::Utc::now();
    let month_start = chrono::NaiveDate::from_ymd_opt(now.year(), now.month(), 1)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .expect("month start")
        .and_utc()
        .timestamp();
    let span = (now.timestamp() - 60 - month_start).max(1);
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).expect("create csv"));
    writeln!(
        out,
        "event_id,ts,provider,model,input_tokens,output_tokens,team,feature,environment"
    )
    .expect("write");
    let models = [
        ("openai", "gpt-4o-mini"),
        ("openai", "gpt-4o"),
        ("anthropic", "claude-sonnet-4-5"),
        ("google", "gemini-2.5-flash"),
    ];
    let features = ["chat", "summarise", "classify", "embed-rerank"];
    let environments = ["prod", "prod", "prod", "staging", "dev"];
    for i in 0..rows {
        let (provider, model) = models[i % models.len()];
        let secs = month_start + (i as i64 * span) / rows as i64;
        let ts = chrono::DateTime::from_timestamp(secs, 0).expect("ts");
        writeln!(
            out,
            "bc-{i:010},{},{provider},{model},{},{},{},{},{}",
            ts.format("%Y-%m-%dT%H:%M:%SZ"),
            200 + (i * 7919) % 5000,
            20 + (i * 104_729) % 800,
            TEAMS[i % TEAMS.len()],
            features[(i / 7) % features.len()],
            environments[(i / 3) % environments.len()],
        )
        .expect("write");
    }
    out.flush().expect("flush");
}

async fn connect(port: u16) -> tokio_postgres::Client {
    let config = format!("host=127.0.0.1 port={port} user=tester dbname=spendql");
    let (client, connection) = tokio_postgres::connect(&config, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(connection);
    client
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    sorted[((sorted.len() as f64 * q) as usize).min(sorted.len() - 1)]
}

fn report(label: &str, mut latencies: Vec<f64>) {
    latencies.sort_by(f64::total_cmp);
    println!(
        "| {label} | {} | {:.2} ms | {:.2} ms | {:.2} ms |",
        latencies.len(),
        percentile(&latencies, 0.5) * 1000.0,
        percentile(&latencies, 0.99) * 1000.0,
        latencies.last().copied().unwrap_or(0.0) * 1000.0
    );
}

async fn checks(client: &tokio_postgres::Client, count: usize, offset: usize) -> Vec<f64> {
    let mut latencies = Vec::with_capacity(count);
    for i in 0..count {
        let team = TEAMS[(i + offset) % TEAMS.len()];
        let sql = format!("SELECT decision, remaining FROM budget_check('team', '{team}', 0.05)");
        let started = Instant::now();
        let rows = client.query(&sql, &[]).await.expect("budget_check");
        latencies.push(started.elapsed().as_secs_f64());
        assert_eq!(rows.len(), 1);
    }
    latencies
}

fn budget_check_latency(work: &Path, runtime: &tokio::runtime::Runtime) {
    let rows: usize = env_or("BENCH_ROWS", 1_000_000);
    let count: usize = env_or("CHECKS", 2_000);
    let data = work.join("budget-data");
    let csv = work.join("month.csv");
    write_month_csv(&csv, rows);
    run(spendql()
        .args(["ingest", "--format", "csv", "--data"])
        .arg(&data)
        .arg(&csv)
        .stdout(Stdio::null()));
    let port = free_port();
    let _server = start_spendql(&data, port, &[]);
    runtime.block_on(async {
        let client = connect(port).await;
        let mut budgets = vec![
            "('all', 'global', NULL, 'month', 250000, 'block')".to_string(),
            "('prod', 'environment', 'prod', 'month', 200000, 'alert')".to_string(),
        ];
        for team in TEAMS {
            budgets.push(format!("('{team}-m', 'team', '{team}', 'month', 40000, 'block')"));
            budgets.push(format!("('{team}-d', 'team', '{team}', 'day', 3000, 'alert')"));
        }
        client
            .batch_execute(&format!(
                "INSERT INTO budgets (budget_id, scope, scope_value, period, amount, enforcement) \
                 VALUES {}",
                budgets.join(", ")
            ))
            .await
            .expect("budgets");
        let in_period = client
            .query_one(
                "SELECT count(*) FROM usage WHERE ts >= date_trunc('month', now())",
                &[],
            )
            .await
            .expect("count");
        println!(
            "usage rows in the current month: {}\n",
            in_period.get::<_, i64>(0)
        );
        // The first check evaluates every budget; later ones reuse it.
        let started = Instant::now();
        checks(&client, 1, 0).await;
        let first = started.elapsed().as_secs_f64();
        println!("| clients | checks | p50 | p99 | max |");
        println!("|---|---|---|---|---|");
        report("1", checks(&client, count, 1).await);
        let mut tasks = Vec::new();
        for c in 0..4 {
            tasks.push(tokio::spawn(async move {
                let client = connect(port).await;
                checks(&client, count / 4, c).await
            }));
        }
        let mut all = Vec::new();
        for task in tasks {
            all.extend(task.await.expect("client"));
        }
        report("4", all);
        // New usage: the next check re-evaluates (exact by default).
        let mut after_insert = Vec::new();
        for i in 0..5 {
            client
                .batch_execute(&format!(
                    "INSERT INTO usage (event_id, ts, provider, model, input_tokens, output_tokens, team) \
                     VALUES ('new-{i}', now(), 'openai', 'gpt-4o', 1000, 100, 'search')"
                ))
                .await
                .expect("insert");
            let started = Instant::now();
            checks(&client, 1, 0).await;
            after_insert.push(started.elapsed().as_secs_f64());
        }
        after_insert.sort_by(f64::total_cmp);
        println!(
            "\nfirst check (evaluates {} budgets over the month): {:.0} ms; \
             first check after an INSERT: median {:.0} ms of 5\n",
            budgets.len(),
            first * 1000.0,
            percentile(&after_insert, 0.5) * 1000.0
        );
    });
}

/// Each dashboard query once; seconds per query.
async fn dashboard_round(client: &tokio_postgres::Client) -> Vec<f64> {
    let mut times = Vec::new();
    for query in DASHBOARD {
        let started = Instant::now();
        client.simple_query(query).await.expect("dashboard query");
        times.push(started.elapsed().as_secs_f64());
    }
    times
}

/// 200 rules of the kinds users write: per key, per model pattern, per tag.
fn extra_rules() -> String {
    let mut rules = Vec::new();
    for i in 0..100 {
        rules.push(format!(
            "('key-{i}', 50, NULL, 'key-bench-{i}', NULL, NULL, NULL, NULL, 'team-{i}')"
        ));
    }
    for i in 0..50 {
        rules.push(format!(
            "('model-{i}', 60, 'openai', NULL, NULL, 'bench-model-{i}%', NULL, NULL, 'team-m{i}')"
        ));
    }
    for i in 0..50 {
        rules.push(format!(
            "('tag-{i}', 70, NULL, NULL, NULL, NULL, 'bench-tag', 'value-{i}', 'team-t{i}')"
        ));
    }
    format!(
        "INSERT INTO attribution_rules (rule_id, priority, provider, api_key_id, project, \
         model_pattern, tag_key, tag_value, team) VALUES {}",
        rules.join(", ")
    )
}

fn attribution_cost(work: &Path, runtime: &tokio::runtime::Runtime) {
    let runs: usize = env_or("RUNS", 5);
    let data = work.join("demo");
    run(spendql()
        .args(["demo", "--data"])
        .arg(&data)
        .stdout(Stdio::null()));
    let port = free_port();
    let _server = start_spendql(&data, port, &[]);
    runtime.block_on(async {
        let client = connect(port).await;
        let count = |sql: &'static str| {
            let client = &client;
            async move {
                client
                    .query_one(sql, &[])
                    .await
                    .expect(sql)
                    .get::<_, i64>(0)
            }
        };
        println!(
            "demo data set: {} usage rows, {} attribution rules",
            count("SELECT count(*) FROM usage").await,
            count("SELECT count(*) FROM attribution_rules").await
        );
        client
            .batch_execute("CREATE TABLE demo_rules AS SELECT * FROM attribution_rules")
            .await
            .expect("keep the demo rules");
        let configurations = [
            ("no rules", "DELETE FROM attribution_rules".to_string()),
            (
                "demo rules",
                "INSERT INTO attribution_rules SELECT * FROM demo_rules".to_string(),
            ),
            ("demo + 200 rules", extra_rules()),
        ];
        // Warm the caches (files, catalog) once.
        dashboard_round(&client).await;
        // Rounds alternate the configurations, so machine noise hits all three alike.
        let mut times = vec![vec![Vec::new(); DASHBOARD.len()]; configurations.len()];
        for _ in 0..runs {
            for (c, (_, setup)) in configurations.iter().enumerate() {
                client.batch_execute(setup).await.expect("configure rules");
                for (q, t) in dashboard_round(&client).await.into_iter().enumerate() {
                    times[c][q].push(t);
                }
            }
        }
        let medians: Vec<Vec<f64>> = times
            .into_iter()
            .map(|per_query| {
                per_query
                    .into_iter()
                    .map(|mut t| {
                        t.sort_by(f64::total_cmp);
                        percentile(&t, 0.5)
                    })
                    .collect()
            })
            .collect();
        println!("\n| query | no rules | demo rules | demo + 200 rules |");
        println!("|---|---|---|---|");
        for (q, query) in DASHBOARD.iter().enumerate() {
            let short: String = query.split_whitespace().collect::<Vec<_>>().join(" ");
            let short = short.chars().take(60).collect::<String>();
            println!(
                "| {short}… | {:.0} ms | {:.0} ms | {:.0} ms |",
                medians[0][q] * 1000.0,
                medians[1][q] * 1000.0,
                medians[2][q] * 1000.0
            );
        }
        let total = |v: &[f64]| v.iter().sum::<f64>();
        println!(
            "| **total** | {:.0} ms | {:.0} ms ({:.2}x) | {:.0} ms ({:.2}x) |",
            total(&medians[0]) * 1000.0,
            total(&medians[1]) * 1000.0,
            total(&medians[1]) / total(&medians[0]),
            total(&medians[2]) * 1000.0,
            total(&medians[2]) / total(&medians[0])
        );
    });
}

fn main() {
    let dir = tempfile::tempdir().expect("tempdir");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    if env_or("BENCH_BUDGET_CHECK", 1) == 1 {
        budget_check_latency(dir.path(), &runtime);
    }
    if env_or("BENCH_ATTRIBUTION", 1) == 1 {
        attribution_cost(dir.path(), &runtime);
    }
}
