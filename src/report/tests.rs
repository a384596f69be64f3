use std::sync::Arc;

use arrow::array::{Decimal128Array, Float64Array, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use chrono::TimeZone;

use super::*;

#[test]
fn every_built_in_report_parses_with_sections_and_valid_charts() {
    for (name, text) in BUILT_IN {
        let def = parse(name, text).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(!def.title.is_empty(), "{name}");
        assert!(!def.sections.is_empty(), "{name}");
        for section in &def.sections {
            assert!(!section.sql.ends_with(';'), "{name}: {}", section.title);
            let period = Period::month("2026-10").expect("period");
            let filled = period.fill(&section.sql).expect("placeholders");
            assert!(!filled.contains("{{"), "{name}: {}", section.title);
        }
    }
    let leadership = find("monthly_leadership").expect("built in");
    let charts: Vec<_> = leadership
        .sections
        .iter()
        .filter_map(|s| s.chart.clone())
        .collect();
    assert!(
        charts
            .iter()
            .any(|c| matches!(c, Chart::Line { band: Some(_), .. }))
    );
    assert!(charts.iter().any(|c| matches!(c, Chart::Budget { .. })));
}

#[test]
fn parse_reads_title_description_sections_and_charts() {
    let def = parse(
        "r",
        "-- title: T\n-- about the\n-- report\n\n-- not part of it\n-- section: A\n-- chart: bar label=l value=v\n\
         SELECT 1 AS l, 2 AS v;\n\n-- section: B\n-- a comment inside the query\nSELECT 2\n",
    )
    .expect("parse");
    assert_eq!(def.title, "T");
    assert_eq!(def.description, "about the report");
    assert_eq!(def.sections.len(), 2);
    assert_eq!(def.sections[0].sql, "SELECT 1 AS l, 2 AS v");
    assert_eq!(
        def.sections[0].chart,
        Some(Chart::Bar {
            label: "l".into(),
            value: "v".into()
        })
    );
    assert_eq!(
        def.sections[1].sql,
        "-- a comment inside the query\nSELECT 2"
    );
}

#[test]
fn malformed_report_files_are_refused_with_the_line() {
    let cases = [
        ("-- section: A\nSELECT 1", "no '-- title:'"),
        ("-- title: T\n", "no '-- section:'"),
        ("-- title: T\nSELECT 1\n", "line 2: SQL before"),
        ("-- title: T\n-- section: A\n", "has no query"),
        (
            "-- title: T\n-- chart: bar label=a value=b\n",
            "line 2: a chart before",
        ),
        (
            "-- title: T\n-- section: A\n-- chart: pie x=1\nSELECT 1",
            "line 3: unknown chart",
        ),
        (
            "-- title: T\n-- section: A\n-- chart: bar label=a\nSELECT 1",
            "needs value=",
        ),
        (
            "-- title: T\n-- section: A\n-- chart: bar label=a value=b colour=red\nSELECT 1",
            "unknown chart option",
        ),
        (
            "-- title: T\n-- section: A\n-- chart: line x=d y=a band=lo\nSELECT 1",
            "band= needs",
        ),
    ];
    for (text, expected) in cases {
        let err = parse("r", text).expect_err(text).to_string();
        assert!(err.contains(expected), "{text:?}: {err}");
    }
    let err = find("no_such_report").expect_err("unknown").to_string();
    assert!(err.contains("monthly_leadership"), "{err}");
}

#[test]
fn periods_are_calendar_months_and_fill_placeholders() {
    let p = Period::month("2026-03").expect("month");
    assert_eq!(p.start, Utc.with_ymd_and_hms(2026, 3, 1, 0, 0, 0).unwrap());
    assert_eq!(p.end, Utc.with_ymd_and_hms(2026, 4, 1, 0, 0, 0).unwrap());
    assert_eq!(
        p.previous_start,
        Utc.with_ymd_and_hms(2026, 2, 1, 0, 0, 0).unwrap()
    );
    let january = Period::month("2026-01").expect("month");
    assert_eq!(
        january.previous_start,
        Utc.with_ymd_and_hms(2025, 12, 1, 0, 0, 0).unwrap()
    );
    assert_eq!(
        p.fill("ts >= {{period_start}} AND p = {{ period }}")
            .expect("fill"),
        "ts >= CAST('2026-03-01T00:00:00Z' AS TIMESTAMP WITH TIME ZONE) AND p = '2026-03'"
    );
    for bad in ["2026-13", "2026", "26-1x", "", "2026-00"] {
        assert!(Period::month(bad).is_err(), "{bad}");
    }
    assert!(p.fill("{{period_start").is_err());
    assert!(
        p.fill("{{tomorrow}}")
            .unwrap_err()
            .to_string()
            .contains("unknown placeholder")
    );
    let now = Utc.with_ymd_and_hms(2026, 1, 15, 10, 0, 0).unwrap();
    assert_eq!(
        Period::previous_month(now).expect("previous").label,
        "2025-12"
    );
}

fn output() -> ReportOutput {
    let def = parse(
        "test",
        "-- title: Spend <test>\n-- A report.\n\
         -- section: By team\n-- chart: bar label=team value=cost\nSELECT 1\n\
         -- section: Trend\n-- chart: line x=team y=cost band=lo,hi\nSELECT 1\n\
         -- section: Budgets\n-- chart: budget label=team value=cost limit=hi\nSELECT 1\n\
         -- section: Nothing\nSELECT 1\n",
    )
    .expect("parse");
    let schema = Arc::new(Schema::new(vec![
        Field::new("team", DataType::Utf8, true),
        Field::new("cost", DataType::Decimal128(38, 12), true),
        Field::new("lo", DataType::Float64, true),
        Field::new("hi", DataType::Float64, true),
    ]));
    let batch = RecordBatch::try_new(
        Arc::clone(&schema),
        vec![
            Arc::new(StringArray::from(vec![
                Some("a,\"b\"|<script>"),
                None,
                Some("TOTAL"),
            ])),
            Arc::new(
                Decimal128Array::from(vec![Some(12_345_678_900_000i128), Some(1), None])
                    .with_precision_and_scale(38, 12)
                    .expect("decimal"),
            ),
            Arc::new(Float64Array::from(vec![Some(1.0), Some(2.0), None])),
            Arc::new(Float64Array::from(vec![Some(10.0), Some(20.0), None])),
        ],
    )
    .expect("batch");
    let sections = def
        .sections
        .iter()
        .enumerate()
        .map(|(i, s)| SectionOutput {
            def: s.clone(),
            schema: Arc::clone(&schema),
            batches: if i == 3 { vec![] } else { vec![batch.clone()] },
        })
        .collect();
    ReportOutput {
        def,
        period: Period::month("2026-10").expect("period"),
        generated_at: Utc.with_ymd_and_hms(2026, 11, 1, 8, 0, 0).unwrap(),
        sections,
    }
}

#[test]
fn markdown_keeps_every_digit_and_escapes_pipes() {
    let text = String::from_utf8(render(&output(), ReportFormat::Md).expect("md")).expect("utf8");
    assert!(
        text.starts_with("# Spend <test>\n\nPeriod: 2026-10 (2026-10-01 to 2026-11-01, UTC)"),
        "{text}"
    );
    assert!(
        text.contains("| team | cost | lo | hi |\n| --- | ---: | ---: | ---: |"),
        "{text}"
    );
    assert!(
        text.contains("| a,\"b\"\\|<script> | 12.345678900000 | 1.0 | 10.0 |"),
        "{text}"
    );
    assert!(
        text.contains("|  | 0.000000000001 | 2.0 | 20.0 |"),
        "{text}"
    );
    assert!(text.contains("## Nothing\n\n_No rows._"), "{text}");
}

#[test]
fn csv_quotes_fields_and_separates_sections() {
    let text = String::from_utf8(render(&output(), ReportFormat::Csv).expect("csv")).expect("utf8");
    let blocks: Vec<&str> = text.split("\n\n").collect();
    assert_eq!(blocks.len(), 4, "{text}");
    assert_eq!(
        blocks[0],
        "By team\nteam,cost,lo,hi\n\"a,\"\"b\"\"|<script>\",12.345678900000,1.0,10.0\n,0.000000000001,2.0,20.0\nTOTAL,,,"
    );
    assert_eq!(blocks[3], "Nothing\nteam,cost,lo,hi\n");
}

#[test]
fn json_has_typed_cells_and_exact_decimals() {
    let bytes = render(&output(), ReportFormat::Json).expect("json");
    let value: serde_json::Value = serde_json::from_slice(&bytes).expect("valid json");
    assert_eq!(value["report"], "test");
    assert_eq!(value["period"]["start"], "2026-10-01T00:00:00Z");
    let rows = &value["sections"][0]["rows"];
    assert_eq!(rows[0][1], "12.345678900000");
    assert_eq!(rows[0][2], 1.0);
    assert_eq!(rows[1][0], serde_json::Value::Null);
    assert_eq!(
        value["sections"][3]["rows"].as_array().map(Vec::len),
        Some(0)
    );
    assert_eq!(value["sections"][3]["columns"][1], "cost");
}

#[test]
fn html_is_self_contained_escaped_and_draws_each_chart() {
    let html =
        String::from_utf8(render(&output(), ReportFormat::Html).expect("html")).expect("utf8");
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(!html.contains("<script"), "user text must be escaped");
    assert!(html.contains("a,&quot;b&quot;|&lt;script&gt;"));
    assert!(!html.contains("http"), "no external resources");
    assert_eq!(html.matches("<svg").count(), 3);
    assert!(html.contains("<polygon"), "the forecast band");
    assert!(html.contains("<polyline"), "the line");
    assert!(
        html.contains("#dc2626") || html.contains("#16a34a"),
        "budget colours"
    );
    // The TOTAL row is in the table, not drawn as a bar.
    assert!(html.contains("<td>TOTAL</td>"));
    assert!(html.contains("<p class=\"empty\">No rows.</p>"));
}

#[test]
fn a_chart_naming_a_missing_column_is_an_error() {
    let mut out = output();
    out.sections[0].def.chart = Some(Chart::Bar {
        label: "team".into(),
        value: "nope".into(),
    });
    let err = render(&out, ReportFormat::Html)
        .expect_err("missing column")
        .to_string();
    assert!(err.contains("\"nope\""), "{err}");
}

#[test]
fn atomic_writes_replace_the_file_and_leave_no_temporary() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("r.md");
    write_atomically(&path, b"one").expect("write");
    write_atomically(&path, b"two").expect("rewrite");
    assert_eq!(std::fs::read(&path).expect("read"), b"two");
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .expect("dir")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(names.len(), 1, "{names:?}");
}
