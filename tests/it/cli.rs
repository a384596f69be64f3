//! The command line as a user drives it.

use crate::common::{ingest_ok, spendql, sql, sql_ok};

#[test]
fn every_subcommand_has_help() {
    for sub in ["serve", "sql", "ingest", "demo"] {
        let out = spendql().args([sub, "--help"]).output().expect("run");
        assert!(out.status.success(), "{sub} --help failed");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("--data"),
            "{sub} --help does not mention --data: {text}"
        );
    }
}

#[test]
fn sql_prints_table_csv_and_json() {
    let dir = tempfile::tempdir().expect("tempdir");
    sql_ok(
        dir.path(),
        "INSERT INTO budgets (budget_id, scope, scope_value, amount) VALUES ('b1', 'team', 'search', 1234.5)",
    );
    let table = sql(dir.path(), "SELECT budget_id, amount FROM budgets", "table");
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(text.contains("| b1        | 1234.500000000000 |"), "{text}");
    assert!(text.contains("(1 row)"), "{text}");
    let csv = sql_ok(dir.path(), "SELECT budget_id, amount FROM budgets");
    assert_eq!(csv, "budget_id,amount\nb1,1234.500000000000\n");
    let json = sql(dir.path(), "SELECT budget_id FROM budgets", "json");
    let value: serde_json::Value = serde_json::from_slice(&json.stdout).expect("json");
    assert_eq!(value[0]["budget_id"], "b1");
}

#[test]
fn bad_sql_fails_with_a_message_not_a_panic() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = sql(dir.path(), "SELEC nonsense", "table");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("error:"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    let out = sql(dir.path(), "SELECT * FROM no_such_table", "table");
    assert!(String::from_utf8_lossy(&out.stderr).contains("no_such_table"));
}

fn write(dir: &std::path::Path, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write fixture");
    path
}

#[test]
fn ingest_csv_and_jsonl_with_summary_and_dedupe() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let csv = write(
        dir.path(),
        "usage.csv",
        "event_id,ts,provider,model,input_tokens,output_tokens,team\n\
         a,2026-10-01T10:00:00Z,openai,gpt-4o,100,10,search\n\
         b,2026-10-02T10:00:00Z,openai,gpt-4o,200,20,\n",
    );
    let jsonl = write(
        dir.path(),
        "usage.jsonl",
        "{\"event_id\":\"c\",\"ts\":\"2026-10-03T10:00:00Z\",\"provider\":\"anthropic\",\"model\":\"claude-sonnet-4\",\"input_tokens\":5,\"output_tokens\":7,\"reported_cost\":\"0.000123\"}\n\
         {\"event_id\":\"a\",\"ts\":\"2026-10-01T10:00:00Z\",\"provider\":\"openai\",\"model\":\"gpt-4o\",\"input_tokens\":100,\"output_tokens\":10}\n",
    );
    let out = spendql()
        .args(["ingest", "--format", "csv", "--data"])
        .arg(&data)
        .arg(&csv)
        .output()
        .expect("ingest");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("2 rows stored, 0 duplicates skipped, 0 rejected"),
        "{text}"
    );
    assert!(
        text.contains("2026-10-01 10:00:00 UTC .. 2026-10-02 10:00:00 UTC"),
        "{text}"
    );
    let out = spendql()
        .args(["ingest", "--format", "jsonl", "--data"])
        .arg(&data)
        .arg(&jsonl)
        .output()
        .expect("ingest");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("1 rows stored, 1 duplicates skipped"),
        "{text}"
    );
    let rows = sql_ok(
        &data,
        "SELECT event_id, team, reported_cost FROM usage ORDER BY event_id",
    );
    assert_eq!(
        rows,
        "event_id,team,reported_cost\na,search,\nb,,\nc,,0.000123000000\n"
    );
}

#[test]
fn a_bad_record_stores_nothing_from_its_file_unless_skip_bad() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let csv = write(
        dir.path(),
        "bad.csv",
        "event_id,ts,provider,model,input_tokens,output_tokens\n\
         a,2026-10-01T10:00:00Z,openai,gpt-4o,100,10\n\
         b,2026-10-01T11:00:00Z,openai,gpt-4o,lots,10\n\
         c,2026-10-01T12:00:00Z,openai,gpt-4o,300,30\n",
    );
    let out = spendql()
        .args(["ingest", "--format", "csv", "--data"])
        .arg(&data)
        .arg(&csv)
        .output()
        .expect("ingest");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.csv:3: input_tokens: expected an integer"),
        "{err}"
    );
    assert_eq!(sql_ok(&data, "SELECT count(*) AS n FROM usage"), "n\n0\n");

    let out = spendql()
        .args(["ingest", "--skip-bad", "--format", "csv", "--data"])
        .arg(&data)
        .arg(&csv)
        .output()
        .expect("ingest");
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("skipped") && err.contains("bad.csv:3: input_tokens"),
        "{err}"
    );
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains("2 rows stored, 0 duplicates skipped, 1 rejected")
    );
    assert_eq!(sql_ok(&data, "SELECT count(*) AS n FROM usage"), "n\n2\n");
}

#[test]
fn ingest_refuses_unknown_columns_and_missing_required_ones() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let csv = write(
        dir.path(),
        "cols.csv",
        "ts,provider,model,input_tokens,output_tokens,colour\n",
    );
    let out = spendql()
        .args(["ingest", "--format", "csv", "--data"])
        .arg(&data)
        .arg(&csv)
        .output()
        .expect("ingest");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cols.csv:1: colour: not a usage column")
    );
    let csv = write(dir.path(), "req.csv", "ts,provider,model,input_tokens\n");
    let out = spendql()
        .args(["ingest", "--format", "csv", "--data"])
        .arg(&data)
        .arg(&csv)
        .output()
        .expect("ingest");
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("req.csv:1: output_tokens: required column is missing")
    );
}

#[test]
fn ingest_parquet_round_trips_an_export() {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = dir.path().join("src");
    let csv = write(
        dir.path(),
        "u.csv",
        "event_id,ts,provider,model,input_tokens,output_tokens\n\
         a,2026-10-01T10:00:00Z,openai,gpt-4o,100,10\n\
         b,2026-10-05T10:00:00Z,openai,gpt-4o,200,20\n",
    );
    let out = spendql()
        .args(["ingest", "--format", "csv", "--data"])
        .arg(&src)
        .arg(&csv)
        .output()
        .expect("ingest");
    assert!(out.status.success());
    // The stored Parquet files are plain Parquet another engine (here: SpendQL itself) reads.
    let parts: Vec<_> = walk(&src.join("usage"));
    assert_eq!(parts.len(), 2, "{parts:?}");
    let dst = dir.path().join("dst");
    for part in &parts {
        ingest_ok(&dst, "parquet", part);
    }
    assert_eq!(
        sql_ok(
            &dst,
            "SELECT event_id, input_tokens FROM usage ORDER BY event_id"
        ),
        "event_id,input_tokens\na,100\nb,200\n"
    );
    // The parts carry their rows' stored costs; ingest prices the rows again instead.
    let costs = "SELECT event_id, list_cost FROM spend ORDER BY event_id";
    let copied = sql_ok(&dst, costs);
    assert_eq!(copied, sql_ok(&src, costs));
    assert!(
        copied.starts_with("event_id,list_cost\na,0.0003"),
        "{copied}"
    );
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read dir").flatten() {
        let p = entry.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out.sort();
    out
}

#[test]
fn a_new_data_directory_has_the_bundled_catalog_and_imports_upsert_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let count = |sql: &str| -> i64 {
        sql_ok(&data, sql)
            .lines()
            .nth(1)
            .and_then(|l| l.parse().ok())
            .expect("a number")
    };
    let before = count("SELECT count(*) AS n FROM pricing");
    assert!(before > 1000, "bundled catalog rows: {before}");
    let providers = sql_ok(
        &data,
        "SELECT DISTINCT provider FROM pricing ORDER BY provider",
    );
    for p in [
        "openai",
        "anthropic",
        "google",
        "aws_bedrock",
        "azure_openai",
        "mistral",
        "deepseek",
        "xai",
        "groq",
        "together",
        "fireworks",
    ] {
        assert!(
            providers.lines().any(|l| l == p),
            "{p} missing from {providers}"
        );
    }
    // The key of gpt-4o's current standard row, to change its price.
    let from = sql_ok(
        &data,
        "SELECT CAST(max(effective_from) AS VARCHAR) AS f FROM pricing \
         WHERE provider = 'openai' AND model = 'gpt-4o' AND service_tier = 'standard' \
         AND min_prompt_tokens = 0 AND region IS NULL AND utc_start_time IS NULL",
    );
    let from = from
        .lines()
        .nth(1)
        .expect("gpt-4o is in the catalog")
        .to_string();
    let csv = write(
        dir.path(),
        "prices.csv",
        &format!(
            "provider,model,effective_from,service_tier,input_per_mtok,output_per_mtok,source\n\
             openai,gpt-4o,{from},standard,2.00,8.00,test\n\
             acme,rocket-1,2026-01-01T00:00:00Z,standard,0.5,1.5,test\n"
        ),
    );
    let out = spendql()
        .args(["pricing", "import", "--format", "csv", "--data"])
        .arg(&data)
        .arg(&csv)
        .output()
        .expect("import");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("new model: acme/rocket-1"), "{text}");
    assert!(text.contains("changed: openai/gpt-4o standard"), "{text}");
    assert!(text.contains("1 new, 1 changed"), "{text}");
    assert_eq!(
        count("SELECT count(*) AS n FROM pricing"),
        before + 1,
        "nothing deleted"
    );
    assert_eq!(
        sql_ok(
            &data,
            "SELECT token_cost('openai', 'gpt-4o-2024-08-06', now(), 1000000, 1000000) AS c"
        ),
        "c\n10.000000000000\n"
    );
    let bad = write(
        dir.path(),
        "bad.csv",
        "provider,model,effective_from\nopenai,x,yesterday\n",
    );
    let out = spendql()
        .args(["pricing", "import", "--format", "csv", "--data"])
        .arg(&data)
        .arg(&bad)
        .output()
        .expect("import");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("bad.csv:2: effective_from"));
}
