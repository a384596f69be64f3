//! Costs stored with the rows at ingest, and priced again when the catalog changes: driven
//! through the CLI, so every step is a new process reading the data directory.

use std::path::Path;

use crate::common::{ingest_ok, sql_ok};

/// Each row's parts as `spend` answers them.
const SPEND_PARTS: &str = "SELECT event_id, input_cost, cached_cost, cache_write_cost, \
    output_cost, request_cost, priced FROM spend ORDER BY event_id";

/// The same, priced by `usage_cost` over `usage` in this statement.
const PRICED_NOW: &str = "SELECT event_id, p['input_cost'] AS input_cost, \
    p['cached_cost'] AS cached_cost, p['cache_write_cost'] AS cache_write_cost, \
    p['output_cost'] AS output_cost, p['request_cost'] AS request_cost, \
    p IS NOT NULL AS priced FROM (SELECT event_id, usage_cost(provider, model, ts, \
    service_tier, region, input_tokens, cached_input_tokens, cache_write_tokens, \
    cache_write_1h_tokens, output_tokens, requests) AS p FROM usage) ORDER BY event_id";

/// A price row for model `m1` of provider `acme`, in force from `from` (a date), in USD per
/// million input and output tokens.
fn price_acme_m1(data: &Path, from: &str, input: &str, output: &str) {
    sql_ok(
        data,
        &format!(
            "INSERT INTO pricing (provider, model, effective_from, input_per_mtok, \
             output_per_mtok) VALUES ('acme', 'm1', TIMESTAMP '{from} 00:00:00', {input}, {output})"
        ),
    );
}

/// The data directory's `manifest.json`.
fn manifest(data: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(data.join("manifest.json")).expect("manifest");
    serde_json::from_str(&text).expect("json")
}

/// The path of each Parquet part in the manifest.
fn part_paths(data: &Path) -> Vec<String> {
    manifest(data)["usage_files"]
        .as_array()
        .expect("usage_files")
        .iter()
        .map(|file| file["path"].as_str().expect("path").to_string())
        .collect()
}

/// The catalog fingerprint of each Parquet part in the manifest (None: no stored costs).
fn fingerprints(data: &Path) -> Vec<Option<String>> {
    manifest(data)["usage_files"]
        .as_array()
        .expect("usage_files")
        .iter()
        .map(|file| file["prices"].as_str().map(str::to_string))
        .collect()
}

/// How many times the physical plan of `sum(list_cost)` prices rows itself.
fn priced_when_read(data: &Path) -> usize {
    let plan = sql_ok(data, "EXPLAIN SELECT sum(list_cost) FROM spend");
    let physical = plan.split("physical_plan").nth(1).expect("a physical plan");
    physical.matches("usage_cost(").count()
}

/// `event_id`'s list cost in `spend`.
fn list_cost(data: &Path, event_id: &str) -> String {
    let out = sql_ok(
        data,
        &format!("SELECT list_cost FROM spend WHERE event_id = '{event_id}'"),
    );
    out.lines().nth(1).expect("one row").to_string()
}

#[test]
fn costs_stored_at_ingest_serve_spend_until_a_price_changes_then_rows_are_priced_again() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    sql_ok(
        &data,
        "INSERT INTO pricing (provider, model, effective_from, input_per_mtok, \
         cached_input_per_mtok, output_per_mtok, per_request) VALUES \
         ('acme', 'm1', TIMESTAMP '2026-01-01 00:00:00', 1.25, 0.125, 2.5, 0.001)",
    );
    let first = dir.path().join("first.csv");
    std::fs::write(
        &first,
        "event_id,ts,provider,model,service_tier,input_tokens,cached_input_tokens,output_tokens,requests\n\
         a,2026-10-01T10:00:00Z,acme,m1,standard,1000000,200000,3,1\n\
         b,2026-10-02T10:00:00Z,acme,m1,standard,7,0,1000000,2\n\
         c,2026-10-03T10:00:00Z,acme,unknown-model,standard,5,0,5,1\n\
         d,2026-10-03T11:00:00Z,openai,gpt-4o,batch,1234,100,567,1\n\
         e,2026-10-03T12:00:00Z,anthropic,claude-sonnet-4,standard,10,0,20,1\n",
    )
    .expect("write csv");
    ingest_ok(&data, "csv", &first);

    // Every part was priced at ingest; a new process finds the same catalog and reads them.
    let stamps = fingerprints(&data);
    assert_eq!(stamps.len(), 3, "one part per day");
    assert!(stamps.iter().all(Option::is_some), "{stamps:?}");
    assert_eq!(priced_when_read(&data), 0);
    let stored = sql_ok(&data, SPEND_PARTS);
    assert_eq!(stored, sql_ok(&data, PRICED_NOW));
    // To the last digit: 1M input at $1.25, 200k cache reads at $0.125, 3 output at $2.50,
    // one request at $0.001.
    assert_eq!(list_cost(&data, "a"), "1.276007500000");
    assert!(stored.contains("\nc,,,,,,false\n"), "{stored}");

    // A corrected price from 2026-10-02 on: rows from then are priced again when read.
    price_acme_m1(&data, "2026-10-02", "1", "4");
    assert_eq!(priced_when_read(&data), 1);
    assert_eq!(list_cost(&data, "b"), "4.000007000000");
    assert_eq!(list_cost(&data, "a"), "1.276007500000");
    assert_eq!(sql_ok(&data, SPEND_PARTS), sql_ok(&data, PRICED_NOW));

    // New parts store costs under the new catalog; the old ones are still priced when
    // read, and one query reads both.
    let second = dir.path().join("second.csv");
    std::fs::write(
        &second,
        "event_id,ts,provider,model,input_tokens,output_tokens\n\
         f,2026-10-04T10:00:00Z,acme,m1,2000000,0\n",
    )
    .expect("write csv");
    ingest_ok(&data, "csv", &second);
    let stamps = fingerprints(&data);
    assert_eq!(stamps.len(), 4);
    assert_ne!(stamps[0], stamps[3], "{stamps:?}");
    assert_eq!(list_cost(&data, "f"), "2.000000000000");
    assert_eq!(sql_ok(&data, SPEND_PARTS), sql_ok(&data, PRICED_NOW));
    assert_eq!(
        sql_ok(
            &data,
            "SELECT sum(list_cost) AS total FROM spend WHERE provider = 'acme'"
        ),
        "total\n7.276014500000\n"
    );
}

#[test]
fn a_price_change_makes_stale_only_the_parts_with_rows_it_prices() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    price_acme_m1(&data, "2026-01-01", "2", "8");
    let usage = dir.path().join("usage.csv");
    std::fs::write(
        &usage,
        "event_id,ts,provider,model,input_tokens,output_tokens\n\
         a,2026-10-01T10:00:00Z,acme,m1,1000000,0\n\
         b,2026-10-02T10:00:00Z,acme,m1-preview,1000000,0\n",
    )
    .expect("write csv");
    ingest_ok(&data, "csv", &usage);
    let stamps = fingerprints(&data);
    assert!(stamps.iter().all(Option::is_some), "{stamps:?}");
    assert_eq!(priced_when_read(&data), 0);
    // No price for it: NULL, which a one-column CSV writes as "".
    assert_eq!(list_cost(&data, "b"), "\"\"");

    // Prices for models no part has rows of leave every stored cost current: a new
    // model, and a new provider.
    sql_ok(
        &data,
        "INSERT INTO pricing (provider, model, effective_from, input_per_mtok, \
         output_per_mtok) VALUES ('acme', 'm9', TIMESTAMP '2026-01-01 00:00:00', 5, 5), \
         ('other', 'x1', TIMESTAMP '2026-01-01 00:00:00', 5, 5)",
    );
    assert_eq!(priced_when_read(&data), 0);
    assert_eq!(fingerprints(&data), stamps);

    // An alias pattern that gives `m1-preview` m1's prices changes how the second part's
    // rows are priced, so its stored costs are no longer used.
    sql_ok(
        &data,
        "INSERT INTO models (provider, model, aliases) VALUES ('acme', 'm1', 'm1-%')",
    );
    assert_eq!(priced_when_read(&data), 1);
    assert_eq!(list_cost(&data, "b"), "2.000000000000");
    assert_eq!(list_cost(&data, "a"), "2.000000000000");
    assert_eq!(sql_ok(&data, SPEND_PARTS), sql_ok(&data, PRICED_NOW));
}

#[test]
fn rows_inserted_over_sql_are_priced_when_compacted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    price_acme_m1(&data, "2026-01-01", "2", "8");
    // The statement's process folds the write-ahead log into a part as it exits.
    sql_ok(
        &data,
        "INSERT INTO usage (event_id, ts, provider, model, input_tokens, output_tokens) VALUES \
         ('a', TIMESTAMP '2026-10-01 10:00:00', 'acme', 'm1', 500000, 250000)",
    );
    let stamps = fingerprints(&data);
    assert_eq!(stamps.len(), 1);
    assert!(stamps[0].is_some(), "{stamps:?}");
    assert_eq!(priced_when_read(&data), 0);
    assert_eq!(list_cost(&data, "a"), "3.000000000000");
    // A part renamed into place by a write that died before the manifest listed it is
    // not part of the table, and the next open removes it.
    let listed = data.join("usage/day=2026-10-01");
    let orphan = listed.join("part-99999999999999999999.parquet");
    let kept = std::fs::read_dir(&listed)
        .expect("day directory")
        .next()
        .expect("the listed part")
        .expect("entry")
        .path();
    std::fs::copy(&kept, &orphan).expect("copy part");
    assert_eq!(list_cost(&data, "a"), "3.000000000000");
    assert!(!orphan.exists(), "the unlisted part is still on disk");
    assert!(kept.exists());
}

/// The manifest's retired parts.
fn retired(data: &Path) -> Vec<String> {
    manifest(data)["retired"]
        .as_array()
        .map_or(Vec::new(), |files| {
            files
                .iter()
                .map(|file| file["path"].as_str().expect("path").to_string())
                .collect()
        })
}

/// Wait until every part is priced under one catalog other than `before`'s.
fn wait_until_repriced(data: &Path, before: &Option<String>) -> Vec<Option<String>> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let stamps = fingerprints(data);
        let done = stamps.iter().all(|s| s.is_some() && s != before)
            && stamps.windows(2).all(|pair| pair[0] == pair[1]);
        if done {
            return stamps;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not re-priced within 60 s: {stamps:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

#[test]
fn the_server_reprices_stale_parts_and_a_restart_deletes_the_replaced_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    price_acme_m1(&data, "2026-01-01", "1", "2");
    let csv = dir.path().join("usage.csv");
    std::fs::write(
        &csv,
        "event_id,ts,provider,model,input_tokens,output_tokens\n\
         a,2026-10-01T10:00:00Z,acme,m1,1000000,1000000\n\
         b,2026-10-02T10:00:00Z,acme,m1,1000000,1000000\n\
         c,2026-10-03T10:00:00Z,acme,m1,1000000,1000000\n",
    )
    .expect("write csv");
    ingest_ok(&data, "csv", &csv);
    let before = fingerprints(&data)[0].clone();
    let old_parts = part_paths(&data);
    price_acme_m1(&data, "2026-10-02", "3", "5");
    assert_eq!(priced_when_read(&data), 1);

    let server = crate::common::Server::start(&data, &[]);
    let stamps = wait_until_repriced(&data, &before);
    assert_eq!(stamps.len(), 3);
    let answer = server.psql(
        "admin",
        "SELECT event_id, list_cost FROM spend ORDER BY event_id;",
    );
    assert_eq!(
        answer,
        "a|3.000000000000\nb|8.000000000000\nc|8.000000000000\n"
    );
    server.stop();
    // Replaced parts stay for queries planned before the swap...
    assert_eq!(retired(&data).len(), 3);
    for part in &old_parts {
        assert!(data.join(part).exists(), "{part} deleted too early");
    }
    // ...and go when the next process opens the directory.
    assert_eq!(priced_when_read(&data), 0);
    assert!(retired(&data).is_empty());
    for part in &old_parts {
        assert!(!data.join(part).exists(), "{part} still on disk");
    }
    assert_eq!(sql_ok(&data, SPEND_PARTS), sql_ok(&data, PRICED_NOW));
}

#[test]
fn killing_the_server_while_it_reprices_loses_no_row_and_no_cost() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    price_acme_m1(&data, "2026-01-01", "1", "2");
    // Sixty days of parts, so that kills land in the middle of re-pricing them.
    let mut csv = String::from("event_id,ts,provider,model,input_tokens,output_tokens\n");
    let first = chrono::NaiveDate::from_ymd_opt(2026, 8, 1).expect("date");
    for day in 0..60u64 {
        let date = (first + chrono::Days::new(day)).format("%Y-%m-%d");
        for call in 0..50 {
            csv.push_str(&format!(
                "e{day}-{call},{date}T00:00:00Z,acme,m1,{},{}\n",
                1000 + call,
                day + 1
            ));
        }
    }
    let file = dir.path().join("usage.csv");
    std::fs::write(&file, csv).expect("write csv");
    ingest_ok(&data, "csv", &file);
    let totals = "SELECT count(*) AS n, sum(list_cost) AS cost FROM spend";
    price_acme_m1(&data, "2026-09-01", "7", "11");
    let expected = sql_ok(&data, totals);
    let before = fingerprints(&data)[0].clone();
    for attempt in 0..6u64 {
        let server = crate::common::Server::start(&data, &[]);
        std::thread::sleep(std::time::Duration::from_millis(400 + 300 * attempt));
        server.kill();
        assert_eq!(sql_ok(&data, totals), expected, "after kill {attempt}");
        assert_eq!(sql_ok(&data, SPEND_PARTS), sql_ok(&data, PRICED_NOW));
    }
    let server = crate::common::Server::start(&data, &[]);
    wait_until_repriced(&data, &before);
    server.kill();
    assert_eq!(sql_ok(&data, totals), expected);
    assert_eq!(priced_when_read(&data), 0);
    // No part is left on disk that the manifest does not list.
    let listed = part_paths(&data).len();
    let on_disk = walk_parts(&data.join("usage"));
    assert_eq!(on_disk, listed, "parts on disk vs in the manifest");
}

/// How many Parquet parts are under `dir`.
fn walk_parts(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .expect("read dir")
        .map(|entry| entry.expect("entry").path())
        .map(|path| {
            if path.is_dir() {
                walk_parts(&path)
            } else {
                usize::from(path.extension().is_some_and(|e| e == "parquet"))
            }
        })
        .sum()
}
