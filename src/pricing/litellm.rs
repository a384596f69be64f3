//! LiteLLM `model_prices_and_context_window.json` to `pricing` rows.
//!
//! Per-token prices are multiplied by 10^6 (exactly, from the JSON number's text) and
//! rounded to 9 places. Each known provider's model gets a `standard` row and, where
//! present, `batch` / `flex` / `priority` rows, plus `_above_<N>k_tokens` long-context rows.
//! LiteLLM has no price history, so every row starts at 2023-01-01; prefer genai-prices
//! for standard prices of models with history. Skipped: providers without a SpendQL id,
//! region- or deployment-specific Bedrock and Azure keys, rows lacking an input or output
//! price, and non-token prices (audio, image, per-second, search).

use rust_decimal::Decimal;
use serde_json::Value;

use super::genai::decimal;
use super::record::PriceRecord;
use super::{FIRST_FROM, to_price};
use crate::ingest::parse_timestamp;

const SOURCE: &str = "litellm import (MIT)";
/// LiteLLM price stem → index in [`PriceRecord::prices`].
const FIELDS: [(&str, usize); 4] = [
    ("input_cost_per_token", 0),
    ("cache_read_input_token_cost", 1),
    ("cache_creation_input_token_cost", 2),
    ("output_cost_per_token", 4),
];
/// Field suffix → service tier.
const TIERS: [(&str, &str); 4] = [
    ("", "standard"),
    ("_batches", "batch"),
    ("_flex", "flex"),
    ("_priority", "priority"),
];

fn provider_id(litellm_provider: &str) -> Option<&'static str> {
    Some(match litellm_provider {
        "openai" | "text-completion-openai" => "openai",
        "anthropic" => "anthropic",
        "gemini" | "vertex_ai-language-models" | "vertex_ai" => "google",
        "bedrock" | "bedrock_converse" => "aws_bedrock",
        "azure" => "azure_openai",
        "mistral" => "mistral",
        "deepseek" => "deepseek",
        "xai" => "xai",
        "groq" => "groq",
        "together_ai" => "together",
        "fireworks_ai" => "fireworks",
        "cohere" | "cohere_chat" => "cohere",
        "perplexity" => "perplexity",
        "openrouter" => "openrouter",
        "cerebras" => "cerebras",
        "moonshot" => "moonshotai",
        "novita" => "novita",
        "ovhcloud" => "ovhcloud",
        "voyage" => "voyageai",
        "zai" => "zai",
        _ => return None,
    })
}

/// Key prefixes LiteLLM puts before the provider's own model name (longest first).
const PREFIXES: [&str; 23] = [
    "fireworks_ai/accounts/fireworks/models/",
    "vertex_ai/",
    "together_ai/",
    "fireworks_ai/",
    "cohere_chat/",
    "openrouter/",
    "perplexity/",
    "deepseek/",
    "cerebras/",
    "anthropic/",
    "moonshot/",
    "ovhcloud/",
    "mistral/",
    "bedrock/",
    "gemini/",
    "cohere/",
    "novita/",
    "voyage/",
    "openai/",
    "azure/",
    "groq/",
    "xai/",
    "zai/",
];

/// The provider's model name of a LiteLLM key, or None for region/deployment keys.
fn model_name<'a>(key: &'a str, litellm_provider: &str) -> Option<&'a str> {
    let name = PREFIXES
        .iter()
        .find_map(|p| key.strip_prefix(p))
        .unwrap_or(key);
    let scoped = litellm_provider.starts_with("bedrock") || litellm_provider == "azure";
    let route_specific = scoped && name.contains('/');
    (!name.is_empty() && !route_specific).then_some(name)
}

/// A per-token price as a per-million price mantissa.
fn per_mtok(v: &Value) -> Option<i128> {
    to_price(decimal(v)? * Decimal::from(1_000_000))
}

/// `_above_<N>k_tokens` thresholds used by `entry` for `suffix`, in tokens.
fn thresholds(entry: &serde_json::Map<String, Value>, suffix: &str) -> Vec<i64> {
    let mut out: Vec<i64> = entry
        .keys()
        .filter_map(|k| {
            let rest = k.strip_suffix(suffix)?;
            let at = rest.find("_above_")?;
            let n = rest[at + 7..].strip_suffix("k_tokens")?;
            n.parse::<i64>().ok().map(|n| n * 1000)
        })
        .collect();
    out.push(0);
    out.sort_unstable();
    out.dedup();
    out
}

/// All rows of a LiteLLM price file.
pub(crate) fn records(data: &Value) -> Result<Vec<PriceRecord>, String> {
    let first = parse_timestamp(FIRST_FROM)?;
    let entries = data.as_object().ok_or("expected a JSON object of models")?;
    let mut out = Vec::new();
    for (key, entry) in entries {
        let Some(entry) = entry.as_object() else {
            continue;
        };
        let Some(lp) = entry.get("litellm_provider").and_then(Value::as_str) else {
            continue;
        };
        let (Some(provider), Some(model)) = (provider_id(lp), model_name(key, lp)) else {
            continue;
        };
        for (suffix, tier) in TIERS {
            for threshold in thresholds(entry, suffix) {
                let mid = if threshold > 0 {
                    format!("_above_{}k_tokens", threshold / 1000)
                } else {
                    String::new()
                };
                let mut row = PriceRecord::new(provider, model, first, SOURCE);
                row.service_tier = tier.to_string();
                row.min_prompt_tokens = threshold;
                for (stem, i) in FIELDS {
                    row.prices[i] = entry
                        .get(&format!("{stem}{mid}{suffix}"))
                        .and_then(per_mtok);
                }
                if row.prices[0].is_some() && row.prices[4].is_some() {
                    out.push(row);
                }
            }
        }
    }
    Ok(out)
}
