//! genai-prices `data.json` to `pricing` rows, as `scripts/build_catalog.py` does.
//!
//! Covered: flat prices, `{base, tiers}` long-context tiers (one row per tier start),
//! `start_date` history and `start_time`/`end_time` windows. Skipped: providers without a
//! SpendQL id (see [`provider_id`]), non-token prices other than `requests_kcount`
//! (audio, image, web search), and `match` rules (aliases are not imported).

use rust_decimal::Decimal;
use serde_json::Value;

use super::record::{PriceRecord, parse_time};
use super::{FIRST_FROM, to_price};
use crate::ingest::parse_timestamp;

const SOURCE: &str = "genai-prices import (MIT)";
/// genai-prices field → index in [`PriceRecord::prices`].
const FIELDS: [(&str, usize); 5] = [
    ("input_mtok", 0),
    ("cache_read_mtok", 1),
    ("cache_write_mtok", 2),
    ("cache_write_1h_mtok", 3),
    ("output_mtok", 4),
];

/// The SpendQL provider id of a genai-prices provider, or None to skip it.
pub(crate) fn provider_id(id: &str) -> Option<&'static str> {
    Some(match id {
        "openai" => "openai",
        "anthropic" => "anthropic",
        "google" => "google",
        "aws" => "aws_bedrock",
        "azure" => "azure_openai",
        "mistral" => "mistral",
        "deepseek" => "deepseek",
        "x-ai" => "xai",
        "groq" => "groq",
        "together" => "together",
        "fireworks" => "fireworks",
        "cohere" => "cohere",
        "perplexity" => "perplexity",
        "openrouter" => "openrouter",
        "cerebras" => "cerebras",
        "moonshotai" => "moonshotai",
        "minimax" => "minimax",
        "novita" => "novita",
        "ovhcloud" => "ovhcloud",
        "voyageai" => "voyageai",
        "zai" => "zai",
        "zhipuai" => "zhipuai",
        "avian" => "avian",
        "doubleword" => "doubleword",
        "modal" => "modal",
        _ => return None,
    })
}

/// A JSON number as an exact decimal (via its text form).
pub(crate) fn decimal(v: &Value) -> Option<Decimal> {
    let Value::Number(n) = v else { return None };
    let text = n.to_string();
    text.parse::<Decimal>()
        .or_else(|_| Decimal::from_scientific(&text))
        .ok()
}

/// The value of one price field for prompts above `start` (None = the base price).
fn field_price(v: &Value, start: Option<i64>) -> Option<Decimal> {
    match v {
        Value::Object(o) => {
            let mut price = o.get("base").and_then(decimal);
            if let (Some(start), Some(Value::Array(tiers))) = (start, o.get("tiers")) {
                let mut applicable: Vec<(i64, Decimal)> = tiers
                    .iter()
                    .filter_map(|t| Some((t.get("start")?.as_i64()?, decimal(t.get("price")?)?)))
                    .filter(|(s, _)| *s <= start)
                    .collect();
                applicable.sort_by_key(|(s, _)| *s);
                if let Some((_, p)) = applicable.last() {
                    price = Some(*p);
                }
            }
            price
        }
        other => decimal(other),
    }
}

/// Rows for one price dict: the base row and one per long-context tier start.
fn price_rows(template: &PriceRecord, prices: &serde_json::Map<String, Value>) -> Vec<PriceRecord> {
    let mut starts: Vec<i64> = prices
        .values()
        .filter_map(|v| v.get("tiers")?.as_array())
        .flatten()
        .filter_map(|t| t.get("start")?.as_i64())
        .collect();
    starts.sort_unstable();
    starts.dedup();
    let mut out = Vec::new();
    for min_prompt in std::iter::once(None).chain(starts.into_iter().map(Some)) {
        let mut row = template.clone();
        row.min_prompt_tokens = min_prompt.unwrap_or(0);
        for (field, i) in FIELDS {
            row.prices[i] = prices
                .get(field)
                .and_then(|v| field_price(v, min_prompt))
                .and_then(to_price);
        }
        row.prices[5] = prices
            .get("requests_kcount")
            .and_then(|v| field_price(v, min_prompt))
            .map(|d| d / Decimal::from(1000))
            .and_then(to_price);
        if row.prices.iter().any(Option::is_some) {
            out.push(row);
        }
    }
    out
}

fn constraint<'a>(entry: &'a Value, key: &str) -> Option<&'a str> {
    entry.get("constraint")?.get(key)?.as_str()
}

/// All rows of a genai-prices `data.json`.
pub(crate) fn records(data: &Value) -> Result<Vec<PriceRecord>, String> {
    let first = parse_timestamp(FIRST_FROM)?;
    let providers = data.as_array().ok_or("expected a JSON list of providers")?;
    let mut out = Vec::new();
    for provider in providers {
        let Some(pid) = provider
            .get("id")
            .and_then(Value::as_str)
            .and_then(provider_id)
        else {
            continue;
        };
        let Some(models) = provider.get("models").and_then(Value::as_array) else {
            continue;
        };
        for model in models {
            let Some(mid) = model.get("id").and_then(Value::as_str) else {
                continue;
            };
            out.extend(model_rows(pid, mid, model.get("prices"), first)?);
        }
    }
    Ok(out)
}

/// Rows of one model: the unconstrained period, later `start_date` periods (each closing the
/// previous one) and time-of-day windows (spanning the whole history).
fn model_rows(
    provider: &str,
    model: &str,
    prices: Option<&Value>,
    first: i64,
) -> Result<Vec<PriceRecord>, String> {
    let template = PriceRecord::new(provider, model, first, SOURCE);
    let entries: Vec<(Option<&Value>, &serde_json::Map<String, Value>)> = match prices {
        Some(Value::Object(p)) => vec![(None, p)],
        Some(Value::Array(list)) => list
            .iter()
            .filter_map(|e| Some((Some(e), e.get("prices")?.as_object()?)))
            .collect(),
        _ => return Ok(Vec::new()),
    };
    let mut periods: Vec<(i64, &serde_json::Map<String, Value>)> = Vec::new();
    let mut windows = Vec::new();
    for (entry, p) in &entries {
        let entry = *entry;
        if let Some(date) = entry.and_then(|e| constraint(e, "start_date")) {
            let from = parse_timestamp(date).map_err(|e| format!("{provider}/{model}: {e}"))?;
            periods.push((from, p));
        } else if let (Some(start), Some(end)) = (
            entry.and_then(|e| constraint(e, "start_time")),
            entry.and_then(|e| constraint(e, "end_time")),
        ) {
            let start = parse_time(start).map_err(|e| format!("{provider}/{model}: {e}"))?;
            let end = parse_time(end).map_err(|e| format!("{provider}/{model}: {e}"))?;
            windows.push((start, end, *p));
        } else if !periods.iter().any(|(f, _)| *f == first) {
            periods.push((first, p));
        }
    }
    periods.sort_by_key(|(from, _)| *from);
    if let Some(head) = periods.first_mut() {
        head.0 = head.0.min(first);
    }
    let mut out = Vec::new();
    for (i, (from, p)) in periods.iter().enumerate() {
        let mut row = template.clone();
        row.effective_from = *from;
        row.effective_to = periods.get(i + 1).map(|(next, _)| *next);
        out.extend(price_rows(&row, p));
    }
    for (start, end, p) in windows {
        let mut row = template.clone();
        row.utc_start_time = Some(start);
        row.utc_end_time = Some(end);
        out.extend(price_rows(&row, p));
    }
    Ok(out)
}
