//! Provider exports as a user loads them with `spendql ingest`. The fixtures in
//! `testdata/providers` follow the providers' documented shapes; the expected totals in
//! `expected*.csv` were computed from the fixtures by `expected.py`, independently of SpendQL.

use std::path::{Path, PathBuf};
use std::process::Output;

use crate::common::{spendql, sql_ok};

const TOTALS: &str = "SELECT provider, model, count(*) AS rows, sum(input_tokens) AS input_tokens, \
    sum(cached_input_tokens) AS cached_input_tokens, sum(cache_write_tokens) AS cache_write_tokens, \
    sum(cache_write_1h_tokens) AS cache_write_1h_tokens, sum(output_tokens) AS output_tokens, \
    sum(reasoning_tokens) AS reasoning_tokens, sum(requests) AS requests, \
    sum(reported_cost) AS reported_cost \
    FROM usage GROUP BY provider, model ORDER BY provider, model";

const HEADER: &str = "provider,model,rows,input_tokens,cached_input_tokens,cache_write_tokens,\
    cache_write_1h_tokens,output_tokens,reasoning_tokens,requests,reported_cost";

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/providers")
        .join(name)
}

/// `spendql ingest --format F --data DATA EXTRA... PATHS...`.
fn ingest_paths(data: &Path, format: &str, paths: &[PathBuf], extra: &[&str]) -> Output {
    spendql()
        .args(["ingest", "--format", format, "--data"])
        .arg(data)
        .args(extra)
        .args(paths)
        .output()
        .expect("run spendql ingest")
}

/// Ingest fixtures of `testdata/providers`.
fn ingest(data: &Path, format: &str, files: &[&str], extra: &[&str]) -> Output {
    let paths: Vec<PathBuf> = files.iter().map(|f| fixture(f)).collect();
    ingest_paths(data, format, &paths, extra)
}

fn ingest_ok(data: &Path, format: &str, files: &[&str]) -> String {
    let out = ingest(data, format, files, &[]);
    assert!(
        out.status.success(),
        "ingest {files:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The lines of an expected-results file for `file`, without the file column, under the
/// usage totals header.
fn expected(csv_name: &str, file: &str) -> String {
    let text = std::fs::read_to_string(fixture(csv_name)).expect("expected results");
    let prefix = format!("{file},");
    let mut out = format!("{HEADER}\n");
    for line in text.lines().filter(|l| l.starts_with(&prefix)) {
        out.push_str(&line[prefix.len()..]);
        out.push('\n');
    }
    assert!(out.lines().count() > 1, "no expectations for {file}");
    out
}

#[test]
fn each_provider_export_gives_its_hand_worked_totals() {
    let cases = [
        ("openai-usage", "openai-usage.json"),
        ("openai-usage", "openai-usage-overlap.jsonl"),
        ("anthropic-usage", "anthropic-usage.json"),
        ("gemini", "gemini.jsonl"),
        ("otel-genai", "otel-genai.jsonl"),
        ("litellm", "litellm.csv"),
        ("litellm", "litellm.json"),
    ];
    for (format, file) in cases {
        let dir = tempfile::tempdir().expect("tempdir");
        ingest_ok(dir.path(), format, &[file]);
        assert_eq!(
            sql_ok(dir.path(), TOTALS),
            expected("expected.csv", file),
            "{format} {file}"
        );
    }
}

#[test]
fn overlapping_exports_and_reingest_store_each_event_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path();
    ingest_ok(
        data,
        "openai-usage",
        &["openai-usage.json", "openai-usage-overlap.jsonl"],
    );
    assert_eq!(
        sql_ok(data, TOTALS),
        expected(
            "expected-combined.csv",
            "openai-usage.json+openai-usage-overlap.jsonl"
        )
    );
    let again = ingest_ok(data, "openai-usage", &["openai-usage.json"]);
    assert!(again.contains("0 stored, 5 duplicates skipped"), "{again}");

    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path();
    ingest_ok(data, "litellm", &["litellm.csv", "litellm.json"]);
    assert_eq!(
        sql_ok(data, TOTALS),
        expected("expected-combined.csv", "litellm.csv+litellm.json")
    );
}

#[test]
fn token_semantics_land_in_the_right_columns() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path();
    ingest_ok(data, "otel-genai", &["otel-genai.jsonl"]);
    ingest_ok(data, "gemini", &["gemini.jsonl"]);
    // The non-GenAI HTTP span is not a row; the error span is, with status error.
    assert_eq!(
        sql_ok(
            data,
            "SELECT count(*) AS n, sum(CASE WHEN status = 'error' THEN 1 ELSE 0 END) AS errors \
             FROM usage WHERE event_id LIKE 'otel:%'"
        ),
        "n,errors\n44,1\n"
    );
    // Attribution from resource (team, environment) and span attributes (feature, customer,
    // user); the remaining attributes go to tags, the usage counts do not.
    assert_eq!(
        sql_ok(
            data,
            "SELECT team, environment, feature, customer, user_id, tags FROM usage \
             WHERE event_id LIKE 'otel:%' ORDER BY ts LIMIT 1"
        ),
        "team,environment,feature,customer,user_id,tags\n\
         search,prod,search,acme,u-1000,\"{\"\"gen_ai.operation.name\"\":\"\"chat\"\",\
         \"\"service.name\"\":\"\"search-api\"\",\"\"telemetry.sdk.language\"\":\"\"python\"\"}\"\n"
    );
    assert_eq!(
        sql_ok(
            data,
            "SELECT team, count(*) AS n FROM usage WHERE event_id LIKE 'otel:%' \
             GROUP BY team ORDER BY team"
        ),
        "team,n\nplatform,4\nsearch,20\nsupport,20\n"
    );
    // The Gemini log entry's labels are attribution.
    assert_eq!(
        sql_ok(
            data,
            "SELECT team, feature, environment FROM usage \
             WHERE provider = 'google' AND team IS NOT NULL AND event_id NOT LIKE 'otel:%'"
        ),
        "team,feature,environment\nsearch,summarise,prod\n"
    );
}

#[test]
fn cost_reports_go_to_provider_costs_and_restate_on_reimport() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path();
    let out = ingest(data, "openai-costs", &["openai-costs.json"], &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    ingest_ok(data, "anthropic-costs", &["anthropic-costs.json"]);
    let query = "SELECT provider, CAST(day AS VARCHAR) AS day, project, line_item, amount \
                 FROM provider_costs ORDER BY provider DESC, day, line_item";
    let text = std::fs::read_to_string(fixture("costs-expected.csv")).expect("costs");
    let mut want: Vec<String> = text
        .lines()
        .skip(1)
        .map(|l| l.split_once(',').map_or("", |(_, rest)| rest).to_string())
        .collect();
    let got = sql_ok(data, query);
    let mut got_rows: Vec<String> = got.lines().skip(1).map(str::to_string).collect();
    want.sort();
    got_rows.sort();
    assert_eq!(got_rows, want);
    // Costs are not usage: no tokens were added.
    assert_eq!(sql_ok(data, "SELECT count(*) AS n FROM usage"), "n\n0\n");
    let again = ingest_ok(data, "openai-costs", &["openai-costs.json"]);
    assert!(again.contains("0 added, 4 restated"), "{again}");
    assert_eq!(
        sql_ok(data, "SELECT count(*) AS n FROM provider_costs"),
        "n\n8\n"
    );
}

#[test]
fn a_bad_record_stops_its_file_and_stores_nothing() {
    let cases = [
        (
            "openai-usage",
            "bad/openai-usage-negative.json",
            "data[0].results[1].input_tokens",
        ),
        (
            "anthropic-usage",
            "bad/anthropic-usage-badtier.json",
            "service_tier",
        ),
        (
            "gemini",
            "bad/gemini-badjson.jsonl",
            ":2: record: invalid JSON",
        ),
        (
            "otel-genai",
            "bad/otel-wrongtype.jsonl",
            "gen_ai.usage.output_tokens",
        ),
    ];
    for (format, file, needle) in cases {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = ingest(dir.path(), format, &[file], &[]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{file} was accepted");
        assert!(err.contains(needle), "{file}: {err}");
        assert!(
            err.contains(file.trim_start_matches("bad/")),
            "{file}: {err}"
        );
        assert!(!err.contains("panicked"), "{err}");
        assert_eq!(
            sql_ok(dir.path(), "SELECT count(*) AS n FROM usage"),
            "n\n0\n",
            "{file} stored rows"
        );
    }
    // --skip-bad keeps the good lines, names the bad one and writes it to FILE.rejects.
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("gemini-badjson.jsonl");
    std::fs::copy(fixture("bad/gemini-badjson.jsonl"), &input).expect("copy fixture");
    let data = dir.path().join("data");
    let out = ingest_paths(&data, "gemini", &[input], &["--skip-bad"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("gemini-badjson.jsonl:2:"), "{err}");
    let rejects = std::fs::read_to_string(dir.path().join("gemini-badjson.jsonl.rejects"))
        .expect("the reject file");
    assert_eq!(rejects.lines().count(), 1, "{rejects}");
    assert!(
        rejects.contains("gemini-badjson.jsonl:2: record: invalid JSON"),
        "{rejects}"
    );
    assert_eq!(sql_ok(&data, "SELECT count(*) AS n FROM usage"), "n\n2\n");
}

#[test]
fn hostile_input_is_an_error_not_a_crash() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let write = |name: &str, bytes: &[u8]| {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).expect("write");
        path
    };
    // A line longer than the 64 MiB record cap, between two good records.
    let good = std::fs::read_to_string(fixture("gemini.jsonl")).expect("fixture");
    let first = good.lines().next().expect("a line");
    let mut long = Vec::with_capacity(70 << 20);
    long.extend_from_slice(first.as_bytes());
    long.extend_from_slice(b"\n{\"pad\":\"");
    long.resize(long.len() + (65 << 20), b'x');
    long.extend_from_slice(b"\"}\n");
    let long = write("long.jsonl", &long);
    // Deep nesting, invalid UTF-8, a wrong type and an absurd count.
    let deep = write(
        "deep.jsonl",
        format!(
            "{{\"modelVersion\":\"gemini-2.5-pro\",\"createTime\":\"2026-10-01T00:00:00Z\",\
             \"usageMetadata\":{{\"promptTokenCount\":{}{}}}}}\n",
            "[".repeat(50_000),
            "]".repeat(50_000)
        )
        .as_bytes(),
    );
    let nested = write(
        "nested.jsonl",
        format!("{}{}\n", "[".repeat(50_000), "]".repeat(50_000)).as_bytes(),
    );
    let mut utf8 = br#"{"usageMetadata":{"promptTokenCount":1},"modelVersion":"gemini-"#.to_vec();
    utf8.extend_from_slice(&[0xff, 0xfe]);
    utf8.extend_from_slice(b"\",\"createTime\":\"2026-10-01T00:00:00Z\"}\n");
    let utf8 = write("utf8.jsonl", &utf8);
    let absurd = write(
        "absurd.jsonl",
        br#"{"usageMetadata":{"promptTokenCount":99999999999999999},"modelVersion":"gemini-2.5-pro","createTime":"2026-10-01T00:00:00Z"}
"#,
    );
    let typed = write(
        "typed.jsonl",
        br#"{"usageMetadata":{"promptTokenCount":{"n":1}},"modelVersion":"gemini-2.5-pro","createTime":"2026-10-01T00:00:00Z"}
"#,
    );
    let cases = [
        (&long, "longer than"),
        (&deep, "recursion limit"),
        (&nested, "recursion limit"),
        (&utf8, "invalid JSON"),
        (&absurd, "promptTokenCount"),
        (&typed, "promptTokenCount"),
    ];
    for (path, needle) in cases {
        let out = ingest_paths(&data, "gemini", std::slice::from_ref(path), &[]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{} was accepted", path.display());
        assert!(err.contains(needle), "{}: {err}", path.display());
        assert!(!err.contains("panicked"), "{err}");
    }
    assert_eq!(sql_ok(&data, "SELECT count(*) AS n FROM usage"), "n\n0\n");
}

#[test]
fn the_summary_reports_tokens_list_cost_and_unpriced_models() {
    let dir = tempfile::tempdir().expect("tempdir");
    let page = dir.path().join("page.json");
    // gpt-4o-mini standard: 0.15 input, 0.075 cached, 0.60 output per million tokens.
    std::fs::write(
        &page,
        r#"{"object":"page","has_more":false,"next_page":null,"data":[
  {"object":"bucket","start_time":1790812800,"end_time":1790899200,"results":[
    {"object":"organization.usage.completions.result","model":"gpt-4o-mini-2024-07-18",
     "input_tokens":1200000,"input_cached_tokens":200000,"output_tokens":100000,
     "num_model_requests":10,"batch":false},
    {"object":"organization.usage.completions.result","model":"gpt-9-turbo",
     "input_tokens":10,"input_cached_tokens":0,"output_tokens":5,
     "num_model_requests":1,"batch":false}]}]}"#,
    )
    .expect("write");
    let out = ingest_paths(&dir.path().join("data"), "openai-usage", &[page], &[]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // 1,000,000 x 0.15 + 200,000 x 0.075 + 100,000 x 0.60 (per million) = 0.225.
    assert!(
        text.contains("1300015 tokens; list cost 0.225000 USD"),
        "{text}"
    );
    assert!(
        text.contains("no price for 1 model(s): openai/gpt-9-turbo (1 rows)"),
        "{text}"
    );
}

#[test]
fn anthropic_buckets_are_priced_at_their_context_window_tier() {
    let dir = tempfile::tempdir().expect("tempdir");
    let page = dir.path().join("report.json");
    // claude-sonnet-4-5: 3 / 15 per million below 200k prompt tokens, 6 / 22.50 above.
    let result = |window: &str| {
        format!(
            r#"{{"uncached_input_tokens":1000000,"cache_read_input_tokens":0,
               "cache_creation":{{"ephemeral_5m_input_tokens":0,"ephemeral_1h_input_tokens":0}},
               "output_tokens":100000,"server_tool_use":{{"web_search_requests":0}},
               "api_key_id":null,"workspace_id":"wrkspc_1","model":"claude-sonnet-4-5-20250929",
               "service_tier":"standard","context_window":"{window}"}}"#
        )
    };
    std::fs::write(
        &page,
        format!(
            r#"{{"data":[{{"starting_at":"2026-10-01T00:00:00Z","ending_at":"2026-10-02T00:00:00Z",
                "results":[{},{}]}}],"has_more":false,"next_page":null}}"#,
            result("0-200k"),
            result("200k-1M")
        ),
    )
    .expect("write");
    let out = ingest_paths(&dir.path().join("data"), "anthropic-usage", &[page], &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // 1M x 3 + 100k x 15 = 4.50 below; 1M x 6 + 100k x 22.50 = 8.25 above.
    assert_eq!(
        sql_ok(
            &dir.path().join("data"),
            "SELECT tags, requests, list_cost FROM spend ORDER BY list_cost"
        ),
        "tags,requests,list_cost\n\
         \"{\"\"context_window\"\":\"\"0-200k\"\"}\",0,4.500000000000\n\
         \"{\"\"context_window\"\":\"\"200k-1M\"\"}\",1,8.250000000000\n"
    );
}

#[test]
fn large_files_keep_file_order_across_parse_workers() {
    // 20,000 LiteLLM records are several parse chunks; three bad ones land in different
    // chunks. Without --skip-bad the first one stops the file; with it the rejects come in
    // line order and every good record is stored once.
    let dir = tempfile::tempdir().expect("tempdir");
    let bad_lines = [5u64, 9_000, 17_000];
    let mut text = String::new();
    for line in 1..=20_000u64 {
        if bad_lines.contains(&line) {
            text.push_str(&format!(
                "{{\"request_id\":\"r{line}\",\"startTime\":\"2026-10-01T00:00:00Z\",\
                 \"model\":\"gpt-4o-mini\",\"custom_llm_provider\":\"openai\",\
                 \"prompt_tokens\":-{line},\"completion_tokens\":1}}\n"
            ));
        } else {
            text.push_str(&format!(
                "{{\"request_id\":\"r{line}\",\"startTime\":\"2026-10-01T00:00:00Z\",\
                 \"model\":\"gpt-4o-mini\",\"custom_llm_provider\":\"openai\",\
                 \"prompt_tokens\":{line},\"completion_tokens\":1}}\n"
            ));
        }
    }
    let input = dir.path().join("spendlogs.jsonl");
    std::fs::write(&input, text).expect("write");
    let data = dir.path().join("data");

    let out = ingest_paths(&data, "litellm", std::slice::from_ref(&input), &[]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("spendlogs.jsonl:5: prompt_tokens"), "{err}");

    let out = ingest_paths(
        &data,
        "litellm",
        std::slice::from_ref(&input),
        &["--skip-bad"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rejects =
        std::fs::read_to_string(dir.path().join("spendlogs.jsonl.rejects")).expect("rejects");
    let lines: Vec<u64> = rejects
        .lines()
        .map(|l| {
            l.split("spendlogs.jsonl:")
                .nth(1)
                .and_then(|rest| rest.split(':').next())
                .and_then(|n| n.parse().ok())
                .expect("file:line in each reject")
        })
        .collect();
    assert_eq!(lines, bad_lines);
    // Sum of 1..=20000 minus the bad lines' numbers.
    let expected: u64 = (1..=20_000u64).sum::<u64>() - bad_lines.iter().sum::<u64>();
    assert_eq!(
        sql_ok(
            &data,
            "SELECT count(*) AS n, sum(input_tokens) AS t FROM usage"
        ),
        format!("n,t\n19997,{expected}\n")
    );
}
