//! Forecasting and anomaly scoring at scale (issue: forecasting and anomaly scoring), in
//! process on a DataFusion `SessionContext` with SpendQL's functions registered, over
//! in-memory tables (the functions' own cost, not storage or the wire):
//!
//! 1. **anomaly_score**: ROWS (default 10,000,000) daily points in PARTITIONS (default
//!    10,000) series, `anomaly_score(v) OVER (PARTITION BY g ORDER BY t)` and the seasonal
//!    `anomaly_score(v, 7)`, summed so every row is computed: rows per second.
//! 2. **level_shift** over the same rows.
//! 3. **forecast**: GROUPS (default 10,000) series of 180 daily points,
//!    `forecast(t, v, 30)` per group (method auto, season detected): seconds.
//!
//! Each measurement runs RUNS times (default 3); the median is printed, with the process's
//! peak resident memory. `cargo bench --bench forecasting`. Nothing here asserts a timing.

use std::sync::Arc;
use std::time::Instant;

use arrow::array::{ArrayRef, Float64Array, Int64Array, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use arrow::record_batch::RecordBatch;
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;

const DAY_MICROS: i64 = 86_400_000_000;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Daily spend for `groups` series of `points` days: a weekly pattern, a trend, noise from
/// a fixed sequence, and a spike every 97 days.
fn table(groups: usize, points: usize) -> MemTable {
    let schema = Arc::new(Schema::new(vec![
        Field::new("g", DataType::Int64, false),
        Field::new(
            "t",
            DataType::Timestamp(TimeUnit::Microsecond, Some("+00:00".into())),
            false,
        ),
        Field::new("v", DataType::Float64, false),
    ]));
    let rows_per_batch = 1 << 16;
    let total = groups * points;
    let mut batches = Vec::new();
    let mut start = 0;
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    while start < total {
        let end = (start + rows_per_batch).min(total);
        let (mut g, mut t, mut v) = (Vec::new(), Vec::new(), Vec::new());
        for row in start..end {
            let (group, day) = (row / points, row % points);
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let noise = 1.0 + ((state >> 33) as f64 / (1u64 << 31) as f64 - 0.5) * 0.1;
            let weekly = if day % 7 >= 5 { 0.5 } else { 1.0 };
            let spike = if day % 97 == 96 { 5.0 } else { 1.0 };
            let base = 50.0 + (group % 100) as f64 * 10.0;
            g.push(group as i64);
            t.push(day as i64 * DAY_MICROS);
            v.push(base * (1.0 + day as f64 / 365.0) * weekly * noise * spike);
        }
        batches.push(
            RecordBatch::try_new(
                Arc::clone(&schema),
                vec![
                    Arc::new(Int64Array::from(g)) as ArrayRef,
                    Arc::new(TimestampMicrosecondArray::from(t).with_timezone("+00:00")),
                    Arc::new(Float64Array::from(v)),
                ],
            )
            .expect("batch"),
        );
        start = end;
    }
    // Two partitions, one per core.
    let half = batches.len().div_ceil(2);
    let second = batches.split_off(half);
    MemTable::try_new(schema, vec![batches, second]).expect("table")
}

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

async fn median_seconds(ctx: &SessionContext, sql: &str, runs: usize) -> f64 {
    let mut times = Vec::new();
    for _ in 0..runs {
        let started = Instant::now();
        let batches = ctx
            .sql(sql)
            .await
            .expect("plan")
            .collect()
            .await
            .expect("run");
        assert!(!batches.is_empty(), "{sql} returned nothing");
        times.push(started.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

#[tokio::main]
async fn main() {
    let rows = env_or("ROWS", 10_000_000);
    let partitions = env_or("PARTITIONS", 10_000);
    let groups = env_or("GROUPS", 10_000);
    let runs = env_or("RUNS", 3);

    let ctx = SessionContext::new();
    spendql_udfs::register_all(&ctx);
    let points = (rows / partitions).max(1);
    let started = Instant::now();
    ctx.register_table("series", Arc::new(table(partitions, points)))
        .expect("register");
    println!(
        "{} rows in {partitions} partitions generated in {:.1} s",
        partitions * points,
        started.elapsed().as_secs_f64()
    );
    for (label, expr) in [
        ("anomaly_score(v)", "anomaly_score(v)"),
        ("anomaly_score(v, 7)", "anomaly_score(v, 7)"),
        ("level_shift(v)", "level_shift(v)"),
        ("level_shift(v, 7)", "level_shift(v, 7)"),
    ] {
        let sql = format!(
            "SELECT count(s), sum(s) FROM (SELECT {expr} OVER (PARTITION BY g ORDER BY t) AS s \
             FROM series)"
        );
        let seconds = median_seconds(&ctx, &sql, runs).await;
        println!(
            "{label:22} {:>8.2} s  {:>6.2} M rows/s  peak RSS {:.0} MiB",
            seconds,
            (partitions * points) as f64 / seconds / 1e6,
            peak_rss_mib()
        );
    }
    ctx.deregister_table("series").expect("deregister");

    let ctx = SessionContext::new();
    spendql_udfs::register_all(&ctx);
    ctx.register_table("daily", Arc::new(table(groups, 180)))
        .expect("register");
    let sql = "SELECT count(f) FROM (SELECT g, forecast(t, v, 30) AS f FROM daily GROUP BY g)";
    let seconds = median_seconds(&ctx, sql, runs).await;
    println!(
        "forecast(t, v, 30)     {seconds:>8.2} s  for {groups} groups of 180 points  peak RSS {:.0} MiB",
        peak_rss_mib()
    );
}
