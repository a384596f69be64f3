use std::collections::HashSet;
use std::io::Write;

use arrow::array::{Array, AsArray};
use arrow::datatypes::{Decimal128Type, Int64Type, TimestampMicrosecondType};

use super::*;
use crate::schema::table_def;

fn price(text: &str) -> Option<i128> {
    Some(crate::ingest::parse_decimal(text, 9).expect("decimal"))
}

fn ts(text: &str) -> i64 {
    crate::ingest::parse_timestamp(text).expect("timestamp")
}

fn rows(batch: &RecordBatch) -> Vec<PriceRecord> {
    record::records_from_batch(batch).expect("records")
}

#[test]
fn bundled_has_the_table_schemas() {
    let (pricing, models) = bundled().expect("bundled");
    assert_eq!(
        pricing.schema(),
        table_def("pricing").expect("pricing").schema
    );
    assert_eq!(models.schema(), table_def("models").expect("models").schema);
    assert!(pricing.num_rows() > 500);
    assert!(models.num_rows() > 300);
}

#[test]
fn bundled_covers_the_required_providers() {
    let (pricing, _) = bundled().expect("bundled");
    let providers: HashSet<String> = rows(&pricing).into_iter().map(|r| r.provider).collect();
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
        assert!(providers.contains(p), "missing provider {p}");
    }
}

#[test]
fn bundled_has_history_tiers_windows_and_batch() {
    let (pricing, _) = bundled().expect("bundled");
    let all = rows(&pricing);
    let o3: Vec<_> = all
        .iter()
        .filter(|r| r.provider == "openai" && r.model == "o3" && r.service_tier == "standard")
        .collect();
    assert_eq!(o3.len(), 2, "{o3:?}");
    assert_eq!(o3[0].effective_to, Some(o3[1].effective_from));
    assert_eq!(o3[1].effective_from, ts("2025-06-10T00:00:00Z"));
    assert_eq!(o3[1].prices[0], price("2"));

    assert!(all.iter().any(|r| r.min_prompt_tokens == 200_000
        && r.provider == "anthropic"
        && r.service_tier == "standard"));

    let window = all
        .iter()
        .find(|r| {
            r.provider == "deepseek" && r.model == "deepseek-chat" && r.utc_start_time.is_some()
        })
        .expect("deepseek window row");
    assert_eq!(window.utc_start_time, Some(30 * 60 * 1_000_000));
    assert_eq!(window.utc_end_time, Some((16 * 3600 + 30 * 60) * 1_000_000));
    assert!(all.iter().any(|r| r.provider == "deepseek"
        && r.model == "deepseek-chat"
        && r.utc_start_time.is_none()));

    assert!(
        all.iter()
            .any(|r| r.provider == "openai" && r.service_tier == "batch")
    );

    let keys: HashSet<_> = all.iter().map(PriceRecord::key).collect();
    assert_eq!(
        keys.len(),
        all.len(),
        "duplicate keys in catalog/pricing.csv"
    );
}

fn batch(records: &[PriceRecord]) -> RecordBatch {
    record::records_to_batch(records).expect("batch")
}

fn row(model: &str, input: &str, output: &str) -> PriceRecord {
    let mut r = PriceRecord::new("openai", model, ts("2024-01-01T00:00:00Z"), "test");
    r.prices[0] = price(input);
    r.prices[4] = price(output);
    r
}

#[test]
fn upsert_adds_replaces_and_keeps() {
    let existing = batch(&[
        row("gpt-4o", "2.5", "10"),
        row("gpt-4o-mini", "0.15", "0.6"),
    ]);
    let mut later = row("gpt-4o", "2", "8");
    later.effective_from = ts("2025-01-01T00:00:00Z");
    let incoming = batch(&[
        row("gpt-4o", "2.0", "10"),         // same key, input changed
        row("gpt-4o-mini", "0.150", "0.6"), // same key, same prices
        later,                              // new period of a known model
        row("gpt-9", "1", "2"),             // new model
    ]);
    let (merged, report) = upsert(&existing, &incoming, Dating::Dated).expect("upsert");
    assert_eq!(
        merged.schema(),
        table_def("pricing").expect("pricing").schema
    );
    assert_eq!(merged.num_rows(), 4);
    assert_eq!(report.new_models, vec!["openai/gpt-9".to_string()]);
    assert_eq!(report.new_rows, 2);
    assert_eq!(report.unchanged, 1);
    assert_eq!(
        report.changed,
        vec!["openai/gpt-4o standard: input 2.5 → 2".to_string()]
    );
    let merged = rows(&merged);
    assert_eq!(merged[0].prices[0], price("2"));
    assert_eq!(merged[1].model, "gpt-4o-mini");

    // Rows missing from the incoming set are kept.
    let (kept, report) = upsert(&existing, &batch(&[]), Dating::Dated).expect("upsert");
    assert_eq!(kept.num_rows(), 2);
    assert_eq!(report, ImportReport::default());
}

/// A dateless source (LiteLLM) never rewrites history: a changed price starts at the import,
/// and re-importing the same file changes nothing.
#[test]
fn undated_import_adds_a_dated_row_for_a_changed_price() {
    let existing = batch(&[row("gpt-4o", "2.5", "10")]);
    let now = ts("2026-11-28T12:00:00Z");
    let undated = |input: &str| {
        let mut r = row("gpt-4o", input, "10");
        r.effective_from = ts("2023-01-01T00:00:00Z");
        r
    };
    let (same, report) =
        upsert(&existing, &batch(&[undated("2.5")]), Dating::CurrentAt(now)).expect("upsert");
    assert_eq!(same.num_rows(), 1);
    assert_eq!(report.unchanged, 1);
    assert_eq!(rows(&same)[0].effective_from, ts("2024-01-01T00:00:00Z"));

    let (merged, report) =
        upsert(&existing, &batch(&[undated("2")]), Dating::CurrentAt(now)).expect("upsert");
    let merged_rows = rows(&merged);
    assert_eq!(
        merged_rows.len(),
        2,
        "the old price stays for earlier usage"
    );
    assert_eq!(merged_rows[0].prices[0], price("2.5"));
    assert_eq!(merged_rows[1].prices[0], price("2"));
    assert_eq!(merged_rows[1].effective_from, now);
    assert_eq!(report.new_rows, 0);
    assert_eq!(
        report.changed,
        vec![
            "openai/gpt-4o standard: input 2.5 → 2 (from 2026-11-28 12:00:00 UTC; earlier usage \
             keeps the earlier price)"
                .to_string()
        ]
    );

    // The same file again, later: the new row is the one in force and matches.
    let later = ts("2026-12-01T00:00:00Z");
    let (again, report) =
        upsert(&merged, &batch(&[undated("2")]), Dating::CurrentAt(later)).expect("upsert");
    assert_eq!(again.num_rows(), 2);
    assert_eq!(report.unchanged, 1);
    assert!(report.changed.is_empty());

    // A series whose rows have all ended: the new price starts now and the closed row of
    // the same start date is not overwritten.
    let mut closed = row("gpt-4o", "2.5", "10");
    closed.effective_from = ts("2023-01-01T00:00:00Z");
    closed.effective_to = Some(ts("2025-01-01T00:00:00Z"));
    let (reopened, _) = upsert(
        &batch(&[closed.clone()]),
        &batch(&[undated("2")]),
        Dating::CurrentAt(now),
    )
    .expect("upsert");
    let reopened = rows(&reopened);
    assert_eq!(reopened.len(), 2);
    assert_eq!(reopened[0], closed, "history is untouched");
    assert_eq!(reopened[1].effective_from, now);
    assert_eq!(reopened[1].prices[0], price("2"));
}

fn write(text: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().expect("tempfile");
    f.write_all(text.as_bytes()).expect("write");
    f
}

#[test]
fn read_import_genai_prices() {
    let f = write(
        r#"[{"id": "deepseek", "models": [
            {"id": "deepseek-chat", "match": {"equals": "deepseek-chat"},
             "prices": [
               {"prices": {"input_mtok": 0.135, "cache_read_mtok": 0.035, "output_mtok": 0.55}},
               {"constraint": {"start_time": "00:30:00Z", "end_time": "16:30:00Z"},
                "prices": {"input_mtok": 0.27, "output_mtok": 1.1}}]}]},
           {"id": "anthropic", "models": [
            {"id": "claude-x", "match": {"starts_with": "claude-x"},
             "prices": [
               {"prices": {"input_mtok": {"base": 3, "tiers": [{"start": 200000, "price": 6}]},
                           "output_mtok": 15}},
               {"constraint": {"start_date": "2026-03-13"},
                "prices": {"input_mtok": 2.5, "output_mtok": 12.5, "requests_kcount": 10}}]}]},
           {"id": "huggingface_x", "models": [{"id": "m", "match": {}, "prices": {"input_mtok": 1}}]}]"#,
    );
    let b = read_import(ImportFormat::GenaiPrices, f.path()).expect("import");
    assert_eq!(b.schema(), table_def("pricing").expect("pricing").schema);
    let r = rows(&b);
    assert_eq!(r.len(), 5, "{r:?}");
    let ds: Vec<_> = r.iter().filter(|r| r.provider == "deepseek").collect();
    assert_eq!(ds[0].prices[0], price("0.135"));
    assert_eq!(ds[0].prices[1], price("0.035"));
    assert_eq!(ds[1].utc_start_time, Some(1_800_000_000));
    assert_eq!(ds[1].prices[4], price("1.1"));
    let cl: Vec<_> = r.iter().filter(|r| r.model == "claude-x").collect();
    assert_eq!(cl[0].effective_from, ts(super::FIRST_FROM));
    assert_eq!(cl[0].effective_to, Some(ts("2026-03-13T00:00:00Z")));
    assert_eq!(
        (cl[1].min_prompt_tokens, cl[1].prices[0]),
        (200_000, price("6"))
    );
    assert_eq!(cl[1].prices[4], price("15"));
    assert_eq!(cl[2].effective_from, ts("2026-03-13T00:00:00Z"));
    assert_eq!(cl[2].prices[5], price("0.01"));
}

#[test]
fn read_import_litellm_is_exact() {
    let f = write(
        r#"{"sample_spec": {"input_cost_per_token": 0},
            "gpt-4o": {"litellm_provider": "openai",
              "input_cost_per_token": 2.5e-06, "output_cost_per_token": 1e-05,
              "cache_read_input_token_cost": 1.25e-06,
              "input_cost_per_token_batches": 1.25e-06, "output_cost_per_token_batches": 5e-06,
              "input_cost_per_token_priority": 4.25e-06, "output_cost_per_token_priority": 1.7e-05},
            "gemini/gemini-x": {"litellm_provider": "gemini",
              "input_cost_per_token": 3e-08, "output_cost_per_token": 1.23456789012e-07,
              "input_cost_per_token_above_200k_tokens": 6e-08,
              "output_cost_per_token_above_200k_tokens": 2e-07},
            "bedrock/us-east-1/x": {"litellm_provider": "bedrock",
              "input_cost_per_token": 1e-06, "output_cost_per_token": 1e-06}}"#,
    );
    let b = read_import(ImportFormat::Litellm, f.path()).expect("import");
    let r = rows(&b);
    let get = |model: &str, tier: &str, min: i64| {
        r.iter()
            .find(|x| x.model == model && x.service_tier == tier && x.min_prompt_tokens == min)
            .unwrap_or_else(|| panic!("no row {model} {tier} {min} in {r:?}"))
    };
    assert_eq!(get("gpt-4o", "standard", 0).prices[0], price("2.5"));
    assert_eq!(get("gpt-4o", "standard", 0).prices[1], price("1.25"));
    assert_eq!(get("gpt-4o", "batch", 0).prices[4], price("5"));
    assert_eq!(get("gpt-4o", "priority", 0).prices[4], price("17"));
    let g = get("gemini-x", "standard", 0);
    assert_eq!(g.provider, "google");
    assert_eq!(g.prices[0], price("0.03"));
    assert_eq!(g.prices[4], price("0.123456789"));
    assert_eq!(
        get("gemini-x", "standard", 200_000).prices[0],
        price("0.06")
    );
    assert_eq!(r.len(), 5, "{r:?}");
}

#[test]
fn read_import_csv_round_trips_and_names_bad_lines() {
    let f = write(
        "provider,model,effective_from,input_per_mtok,output_per_mtok\n\
         openai,gpt-4o,2024-05-13T00:00:00Z,2.5,10\n",
    );
    let b = read_import(ImportFormat::Csv, f.path()).expect("import");
    let min = b.column_by_name("min_prompt_tokens").expect("col");
    assert_eq!(min.as_primitive::<Int64Type>().value(0), 0);
    let from = b.column_by_name("effective_from").expect("col");
    assert_eq!(
        from.as_primitive::<TimestampMicrosecondType>().value(0),
        ts("2024-05-13T00:00:00Z")
    );
    let input = b.column_by_name("input_per_mtok").expect("col");
    assert_eq!(
        input.as_primitive::<Decimal128Type>().value(0),
        2_500_000_000
    );
    assert!(b.column_by_name("region").expect("col").is_null(0));

    let bad = write("provider,model,effective_from,input_per_mtok\nopenai,x,2024-01-01,abc\n");
    let err = read_import(ImportFormat::Csv, bad.path()).expect_err("bad decimal");
    assert!(err.to_string().contains(":2: input_per_mtok:"), "{err}");
}
