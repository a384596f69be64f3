//! Ingest and query speed of the real binary, side by side with DuckDB on the same files.
//!
//! `cargo bench --bench ingest_and_query` (BENCH_ROWS, default 10,000,000) writes a synthetic
//! usage export as Parquet and as CSV, then measures from fresh processes:
//! * `spendql ingest --format parquet` and `--format csv`: rows/s and peak RSS (GNU time);
//! * spend by month and team through the `spend` view (`spendql sql`);
//! * the same aggregation in DuckDB over the stored Parquet parts, if the `duckdb` Python
//!   package is installed (`pip install duckdb`);
//! * `sum(token_cost(...))` over all rows in a warm engine, against DuckDB computing the same
//!   sum as an as-of join of the stored parts to the same effective-dated prices.
//!
//! `BENCH_INPUTS=DIR` keeps the generated inputs in DIR and reuses them on the next run.
//!
//! Results go to stdout as Markdown rows for BENCHMARKS.md. Nothing here asserts a timing.

mod common;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use parquet::arrow::ArrowWriter;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const BATCH: usize = 100_000;
const TEAMS: &[&str] = &["search", "support", "ads", "growth", "platform", "research"];
const MODELS: &[(&str, &str)] = &[
    ("openai", "gpt-4o"),
    ("openai", "gpt-4o-mini"),
    ("anthropic", "claude-sonnet-4"),
    ("google", "gemini-2.0-flash"),
];

fn batch(rng: &mut StdRng, start: usize, rows: usize) -> RecordBatch {
    let schema = spendql::schema::usage_schema();
    let base = 1_767_225_600_000_000i64; // 2026-01-01
    let span = 270i64 * 86_400_000_000;
    let pick: Vec<usize> = (0..rows)
        .map(|_| rng.random_range(0..MODELS.len()))
        .collect();
    let columns: Vec<ArrayRef> = schema
        .fields()
        .iter()
        .map(|f| -> ArrayRef {
            match f.name().as_str() {
                "event_id" => Arc::new(StringArray::from_iter_values(
                    (start..start + rows).map(|i| format!("ev-{i:010}")),
                )),
                "ts" | "ingested_at" => Arc::new(
                    TimestampMicrosecondArray::from_iter_values(
                        (0..rows).map(|_| base + rng.random_range(0..span)),
                    )
                    .with_timezone("+00:00"),
                ),
                "provider" => Arc::new(StringArray::from_iter_values(
                    pick.iter().map(|m| MODELS[*m].0),
                )),
                "model" => Arc::new(StringArray::from_iter_values(
                    pick.iter().map(|m| MODELS[*m].1),
                )),
                "team" => Arc::new(StringArray::from_iter_values(
                    (0..rows).map(|_| TEAMS[rng.random_range(0..TEAMS.len())]),
                )),
                "service_tier" => Arc::new(StringArray::from(vec!["standard"; rows])),
                "input_tokens" => Arc::new(Int64Array::from_iter_values(
                    (0..rows).map(|_| rng.random_range(10..4000)),
                )),
                "output_tokens" => Arc::new(Int64Array::from_iter_values(
                    (0..rows).map(|_| rng.random_range(1..800)),
                )),
                "requests" => Arc::new(Int64Array::from(vec![1; rows])),
                _ if f.data_type() == &arrow::datatypes::DataType::Int64 => {
                    Arc::new(Int64Array::from(vec![0; rows]))
                }
                _ => arrow::array::new_null_array(f.data_type(), rows),
            }
        })
        .collect();
    RecordBatch::try_new(schema, columns).expect("synthetic batch")
}

fn write_inputs(parquet_path: &Path, csv_path: &Path, rows: usize) {
    let mut rng = StdRng::seed_from_u64(42);
    let schema = spendql::schema::usage_schema();
    let mut pq = ArrowWriter::try_new(File::create(parquet_path).expect("create"), schema, None)
        .expect("writer");
    let mut csv = arrow::csv::WriterBuilder::new()
        .with_header(true)
        .with_timestamp_tz_format("%Y-%m-%dT%H:%M:%S%.6fZ".to_string())
        .build(std::io::BufWriter::new(
            File::create(csv_path).expect("create"),
        ));
    let mut written = 0;
    while written < rows {
        let n = BATCH.min(rows - written);
        let b = batch(&mut rng, written, n);
        // The CSV leaves out ingested_at and source, as an export would.
        let keep: Vec<usize> = (0..b.num_columns())
            .filter(|i| {
                !matches!(
                    b.schema().field(*i).name().as_str(),
                    "ingested_at" | "source"
                )
            })
            .collect();
        pq.write(&b).expect("parquet write");
        csv.write(&b.project(&keep).expect("project"))
            .expect("csv write");
        written += n;
    }
    pq.close().expect("close");
    drop(csv);
}

fn main() {
    let rows: usize = std::env::var("BENCH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000_000);
    let bin = env!("CARGO_BIN_EXE_spendql");
    let work = tempfile::tempdir().expect("tempdir");
    // BENCH_INPUTS keeps the generated inputs in a directory and reuses them next time.
    let inputs =
        std::env::var_os("BENCH_INPUTS").map_or_else(|| work.path().to_path_buf(), PathBuf::from);
    std::fs::create_dir_all(&inputs).expect("inputs directory");
    let (parquet, csv) = (
        inputs.join(format!("usage-{rows}.parquet")),
        inputs.join(format!("usage-{rows}.csv")),
    );
    if !(parquet.exists() && csv.exists()) {
        let t = Instant::now();
        write_inputs(&parquet, &csv, rows);
        eprintln!(
            "wrote {rows} rows as Parquet and CSV in {:.1}s",
            t.elapsed().as_secs_f64()
        );
    }

    let mut results = Vec::new();
    for (format, file) in [("parquet", &parquet), ("csv", &csv)] {
        let data = work.path().join(format!("data-{format}"));
        let (secs, rss, _) = common::timed(
            Command::new(bin)
                .args(["ingest", "--format", format, "--data"])
                .arg(&data)
                .arg(file),
        );
        results.push(format!(
            "| ingest --format {format} | {rows} rows | {secs:.2} s | {:.0} rows/s | peak RSS {rss:.0} MiB |",
            rows as f64 / secs
        ));
    }

    let data = work.path().join("data-parquet");
    let (_, _, _) = common::timed(Command::new(bin).args(["sql", "--data"]).arg(&data).arg(
        "INSERT INTO pricing (provider, model, effective_from, input_per_mtok, output_per_mtok) VALUES \
         ('openai', 'gpt-4o', '2024-01-01T00:00:00Z', 2.5, 10), ('openai', 'gpt-4o-mini', '2024-01-01T00:00:00Z', 0.15, 0.6), \
         ('anthropic', 'claude-sonnet-4', '2024-01-01T00:00:00Z', 3, 15), ('google', 'gemini-2.0-flash', '2024-01-01T00:00:00Z', 0.1, 0.4)",
    ));
    let query = "SELECT date_trunc('month', ts) AS month, team, sum(list_cost) AS cost FROM spend GROUP BY 1, 2 ORDER BY 1, 2";
    let (secs, rss, out) = common::timed(
        Command::new(bin)
            .args(["sql", "--format", "csv", "--data"])
            .arg(&data)
            .arg(query),
    );
    results.push(format!(
        "| spendql sql: spend by month and team (fresh process) | {rows} rows | {secs:.2} s | {} groups | peak RSS {rss:.0} MiB |",
        out.lines().count().saturating_sub(1)
    ));
    // The same with attribution rules to apply (spend attributes every row at query time).
    let (_, _, _) = common::timed(Command::new(bin).args(["sql", "--data"]).arg(&data).arg(
        "INSERT INTO attribution_rules (rule_id, priority, provider, model_pattern, feature, cost_center) VALUES \
         ('google-ml', 10, 'google', NULL, NULL, 'CC-ML'), ('claude', 20, NULL, 'claude-%', 'assistant', 'CC-AI'), \
         ('rest', 100, NULL, NULL, 'other', 'CC-SHARED')",
    ));
    let (secs, rss, out) = common::timed(
        Command::new(bin)
            .args(["sql", "--format", "csv", "--data"])
            .arg(&data)
            .arg(query),
    );
    results.push(format!(
        "| spendql sql: the same with 3 attribution rules (fresh process) | {rows} rows | {secs:.2} s | {} groups | peak RSS {rss:.0} MiB |",
        out.lines().count().saturating_sub(1)
    ));

    let duck = format!(
        r#"
import duckdb, time
t = time.time()
con = duckdb.connect()
con.execute("CREATE TABLE pricing AS SELECT * FROM (VALUES ('openai','gpt-4o',2.5,10.0),('openai','gpt-4o-mini',0.15,0.6),('anthropic','claude-sonnet-4',3.0,15.0),('google','gemini-2.0-flash',0.1,0.4)) p(provider, model, input_per_mtok, output_per_mtok)")
rows = con.execute("""SELECT date_trunc('month', u.ts) AS month, u.team,
  sum((u.input_tokens * CAST(p.input_per_mtok AS DECIMAL(20,9)) + u.output_tokens * CAST(p.output_per_mtok AS DECIMAL(20,9))) / 1000000) AS cost
  FROM read_parquet('{}/usage/*/*.parquet') u JOIN pricing p USING (provider, model) GROUP BY 1, 2 ORDER BY 1, 2""").fetchall()
print(len(rows), time.time() - t)
"#,
        data.display()
    );
    match Command::new("python3").arg("-c").arg(&duck).output() {
        Ok(out) if out.status.success() => {
            let text = String::from_utf8_lossy(&out.stdout);
            let mut parts = text.split_whitespace();
            let groups = parts.next().unwrap_or("?");
            let secs: f64 = parts
                .next()
                .and_then(|s| s.parse().ok())
                .unwrap_or(f64::NAN);
            results.push(format!(
                "| DuckDB (Python), same aggregation over the stored Parquet parts | {rows} rows | {secs:.2} s | {groups} groups | |"
            ));
        }
        _ => results.push("| DuckDB | not installed (pip install duckdb) | | | |".to_string()),
    }
    results.extend(token_cost_vs_duckdb(&data, work.path(), rows));
    for line in results {
        println!("{line}");
    }
}

/// Repetitions of each warm query; the median is reported.
const RUNS: usize = 5;

/// `sum(token_cost(...))` over every usage row, in one warm engine, against DuckDB summing the
/// same costs as an as-of join of the Parquet parts to the same effective-dated prices.
fn token_cost_vs_duckdb(data: &Path, work: &Path, rows: usize) -> Vec<String> {
    let models = "('gpt-4o', 'gpt-4o-mini', 'claude-sonnet-4', 'gemini-2.0-flash')";
    let prices = work.join("prices.csv");
    let (_, _, csv) = common::timed(
        Command::new(env!("CARGO_BIN_EXE_spendql"))
            .args(["sql", "--format", "csv", "--data"])
            .arg(data)
            .arg(format!(
                "SELECT provider, model, effective_from, input_per_mtok, output_per_mtok FROM pricing \
                 WHERE model IN {models} AND service_tier = 'standard' AND region IS NULL \
                 AND min_prompt_tokens = 0 AND utc_start_time IS NULL ORDER BY 1, 2, 3"
            )),
    );
    std::fs::write(&prices, csv).expect("write prices");

    let query =
        "SELECT sum(token_cost(provider, model, ts, input_tokens, output_tokens)) FROM usage";
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let (spendql_secs, spendql_sum) = runtime.block_on(async {
        let engine = spendql::Engine::open(data).await.expect("open engine");
        let mut times = Vec::new();
        let mut sum = String::new();
        for _ in 0..RUNS {
            let started = Instant::now();
            let batches = engine
                .sql(query)
                .await
                .expect("plan")
                .collect()
                .await
                .expect("run");
            times.push(started.elapsed().as_secs_f64());
            sum =
                arrow::util::display::array_value_to_string(batches[0].column(0), 0).expect("sum");
        }
        engine.shutdown().await.expect("shutdown");
        (median(times), sum)
    });
    let mut out = vec![format!(
        "| spendql: `{query}` (warm engine, median of {RUNS}) | {rows} rows | {spendql_secs:.3} s | sum {spendql_sum} | |"
    )];

    let duck = format!(
        r#"
import duckdb, statistics, time
con = duckdb.connect()
con.execute("SET enable_progress_bar = false")
con.execute("CREATE TABLE prices AS SELECT provider, model, CAST(effective_from AS TIMESTAMPTZ) AS effective_from, CAST(input_per_mtok AS DECIMAL(20,9)) AS input_per_mtok, CAST(output_per_mtok AS DECIMAL(20,9)) AS output_per_mtok FROM read_csv('{prices}', all_varchar = true)")
q = """SELECT sum((u.input_tokens * p.input_per_mtok + u.output_tokens * p.output_per_mtok) / 1000000)
  FROM read_parquet('{data}/usage/*/*.parquet') u
  ASOF JOIN prices p ON u.provider = p.provider AND u.model = p.model AND u.ts >= p.effective_from"""
times = []
for _ in range({RUNS}):
    t = time.time()
    total = con.execute(q).fetchone()[0]
    times.append(time.time() - t)
print(statistics.median(times), total)
"#,
        prices = prices.display(),
        data = data.display()
    );
    match Command::new("python3").arg("-c").arg(&duck).output() {
        Ok(o) if o.status.success() => {
            let text = String::from_utf8_lossy(&o.stdout);
            let mut parts = text.split_whitespace();
            let secs: f64 = parts
                .next()
                .and_then(|s| s.parse().ok())
                .unwrap_or(f64::NAN);
            let duck_sum = parts.next().unwrap_or("?").to_string();
            let agree = cents(&duck_sum) == cents(&spendql_sum);
            out.push(format!(
                "| DuckDB (Python): the same sum as an ASOF join to the prices (median of {RUNS}) | {rows} rows | {secs:.3} s | sum {duck_sum}; same to the cent: {agree} | SpendQL/DuckDB {:.2} |",
                spendql_secs / secs
            ));
        }
        Ok(o) => out.push(format!(
            "| DuckDB | failed: {} | | | |",
            String::from_utf8_lossy(&o.stderr)
                .lines()
                .last()
                .unwrap_or("")
        )),
        Err(_) => out.push("| DuckDB | not installed (pip install duckdb) | | | |".to_string()),
    }
    out
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// A decimal string cut to whole cents, for comparing engines' sums.
fn cents(decimal: &str) -> (String, String) {
    let (whole, frac) = decimal
        .trim()
        .split_once('.')
        .unwrap_or((decimal.trim(), ""));
    (whole.to_string(), format!("{frac:0<2}")[..2].to_string())
}
