//! The demo price catalog and model metadata.
//!
//! Prices come from `prices.csv`, extracted once from genai-prices (MIT) by
//! `scripts/extract_demo_prices.py` and embedded, so the demo never reads anything outside the binary.

use std::str::FromStr;

use rust_decimal::Decimal;

use crate::{Error, Result};

const PRICES_CSV: &str = include_str!("prices.csv");

/// Which part of the window a price row covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Period {
    Always,
    /// In force until the demo's price cut.
    BeforeCut,
    /// In force from the demo's price cut.
    AfterCut,
}

/// One row of `prices.csv`.
#[derive(Debug, Clone)]
pub(crate) struct PriceRow {
    pub provider: String,
    pub model: String,
    pub service_tier: String,
    pub period: Period,
    pub input: Option<Decimal>,
    pub cached: Option<Decimal>,
    pub write: Option<Decimal>,
    pub write_1h: Option<Decimal>,
    pub output: Option<Decimal>,
    pub aliases: String,
    pub source: String,
}

/// USD per million tokens, with the provider's fallbacks for missing cache prices applied.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Price {
    pub input: Decimal,
    pub cached: Decimal,
    pub write: Decimal,
    pub write_1h: Decimal,
    pub output: Decimal,
    /// Whether the catalog lists cache prices at all (only then does the demo cache).
    pub has_cache_read: bool,
    pub has_cache_write: bool,
}

/// Token counts of one usage row.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Tokens {
    pub input: i64,
    pub cached: i64,
    pub write: i64,
    pub write_1h: i64,
    pub output: i64,
}

impl Price {
    /// Exact list cost in USD.
    pub fn cost(&self, t: &Tokens) -> Decimal {
        let sum = Decimal::from(t.input) * self.input
            + Decimal::from(t.cached) * self.cached
            + Decimal::from(t.write) * self.write
            + Decimal::from(t.write_1h) * self.write_1h
            + Decimal::from(t.output) * self.output;
        sum / Decimal::from(1_000_000)
    }
}

/// Metadata the demo adds to each catalog model (families and tiers are editorial).
pub(crate) struct ModelInfo {
    pub provider: &'static str,
    pub model: &'static str,
    pub family: &'static str,
    /// 1 = small/cheap … 4 = frontier.
    pub tier: i32,
    pub context_window: i64,
    /// Days after `today` when the provider retires the model, if announced.
    pub deprecated_in_days: Option<i64>,
    /// Time to first token and per output token, for plausible latencies.
    pub ttft_ms: f64,
    pub ms_per_token: f64,
}

const fn m(
    provider: &'static str,
    model: &'static str,
    family: &'static str,
    tier: i32,
    context_window: i64,
    ttft_ms: f64,
    ms_per_token: f64,
) -> ModelInfo {
    ModelInfo {
        provider,
        model,
        family,
        tier,
        context_window,
        deprecated_in_days: None,
        ttft_ms,
        ms_per_token,
    }
}

pub(crate) const MODELS: &[ModelInfo] = &[
    m("openai", "gpt-4o", "gpt-4o", 4, 128_000, 450., 12.),
    m("openai", "gpt-4o-mini", "gpt-4o", 1, 128_000, 300., 7.),
    m("openai", "gpt-4.1", "gpt-4.1", 3, 1_047_576, 450., 11.),
    m("openai", "gpt-4.1-mini", "gpt-4.1", 2, 1_047_576, 350., 8.),
    m("openai", "gpt-4.1-nano", "gpt-4.1", 1, 1_047_576, 250., 5.),
    m("openai", "o3-mini", "o-series", 3, 200_000, 900., 6.),
    m("openai", "o3", "o-series", 4, 200_000, 1500., 9.),
    ModelInfo {
        // Story: a model in use whose retirement is announced.
        deprecated_in_days: Some(45),
        ..m(
            "anthropic",
            "claude-3-5-sonnet",
            "claude-sonnet",
            3,
            200_000,
            700.,
            14.,
        )
    },
    m(
        "anthropic",
        "claude-sonnet-4-0",
        "claude-sonnet",
        3,
        200_000,
        800.,
        14.,
    ),
    m(
        "anthropic",
        "claude-3-5-haiku-latest",
        "claude-haiku",
        2,
        200_000,
        500.,
        9.,
    ),
    m(
        "anthropic",
        "claude-3-haiku",
        "claude-haiku",
        1,
        200_000,
        350.,
        6.,
    ),
    m(
        "anthropic",
        "claude-opus-4-0",
        "claude-opus",
        4,
        200_000,
        1400.,
        30.,
    ),
    m(
        "google",
        "gemini-2.0-flash",
        "gemini-flash",
        1,
        1_048_576,
        300.,
        4.,
    ),
    ModelInfo {
        deprecated_in_days: Some(20),
        ..m(
            "google",
            "gemini-1.5-pro",
            "gemini-pro",
            3,
            2_097_152,
            900.,
            12.,
        )
    },
    m(
        "google",
        "gemini-2.5-flash",
        "gemini-flash",
        2,
        1_048_576,
        500.,
        4.,
    ),
    m(
        "google",
        "gemini-2.5-pro",
        "gemini-pro",
        4,
        1_048_576,
        1800.,
        8.,
    ),
    m(
        "mistral",
        "mistral-large",
        "mistral-large",
        3,
        128_000,
        500.,
        15.,
    ),
    m(
        "mistral",
        "mistral-small-latest",
        "mistral-small",
        1,
        128_000,
        250.,
        6.,
    ),
    m("mistral", "codestral", "codestral", 2, 256_000, 300., 6.),
    m(
        "deepseek",
        "deepseek-chat",
        "deepseek",
        2,
        64_000,
        900.,
        20.,
    ),
    m(
        "deepseek",
        "deepseek-reasoner",
        "deepseek",
        3,
        64_000,
        2500.,
        20.,
    ),
    m(
        "aws_bedrock",
        "amazon.nova-lite-v1:0",
        "nova",
        1,
        300_000,
        350.,
        5.,
    ),
    m(
        "aws_bedrock",
        "amazon.nova-pro-v1:0",
        "nova",
        2,
        300_000,
        500.,
        9.,
    ),
    m(
        "aws_bedrock",
        "meta.llama3-3-70b-instruct-v1:0",
        "llama",
        2,
        128_000,
        500.,
        12.,
    ),
    m(
        "aws_bedrock",
        "anthropic.claude-3-5-sonnet-20241022-v2:0",
        "claude-sonnet",
        3,
        200_000,
        800.,
        15.,
    ),
];

/// The parsed catalog with per-model lookup.
pub(crate) struct Catalog {
    pub rows: Vec<PriceRow>,
    /// Per entry of `MODELS`: `[standard, batch]` × `[before cut, after cut]`.
    prices: Vec<[[Option<Price>; 2]; 2]>,
}

fn bad(reason: impl Into<String>) -> Error {
    Error::Invalid(format!("demo prices.csv: {}", reason.into()))
}

fn dec(field: &str) -> Result<Option<Decimal>> {
    if field.is_empty() {
        return Ok(None);
    }
    Decimal::from_str(field)
        .map(Some)
        .map_err(|e| bad(format!("price {field:?}: {e}")))
}

impl Catalog {
    pub fn load() -> Result<Catalog> {
        let mut reader = csv::ReaderBuilder::new()
            .comment(Some(b'#'))
            .from_reader(PRICES_CSV.as_bytes());
        let mut rows = Vec::new();
        for record in reader.records() {
            let r = record.map_err(|e| bad(e.to_string()))?;
            let get = |i: usize| r.get(i).ok_or_else(|| bad(format!("short line {r:?}")));
            let period = match get(3)? {
                "always" => Period::Always,
                "before_cut" => Period::BeforeCut,
                "after_cut" => Period::AfterCut,
                other => return Err(bad(format!("unknown period {other:?}"))),
            };
            rows.push(PriceRow {
                provider: get(0)?.to_string(),
                model: get(1)?.to_string(),
                service_tier: get(2)?.to_string(),
                period,
                input: dec(get(4)?)?,
                cached: dec(get(5)?)?,
                write: dec(get(6)?)?,
                write_1h: dec(get(7)?)?,
                output: dec(get(8)?)?,
                aliases: get(9)?.to_string(),
                source: get(10)?.to_string(),
            });
        }
        let mut prices = vec![[[None; 2]; 2]; MODELS.len()];
        for row in &rows {
            let idx = model_index(&row.provider, &row.model)
                .ok_or_else(|| bad(format!("{} {} has no metadata", row.provider, row.model)))?;
            let tier = match row.service_tier.as_str() {
                "standard" => 0,
                "batch" => 1,
                other => return Err(bad(format!("unknown tier {other:?}"))),
            };
            let input = row
                .input
                .ok_or_else(|| bad(format!("{} has no input price", row.model)))?;
            let output = row
                .output
                .ok_or_else(|| bad(format!("{} has no output price", row.model)))?;
            // Fallbacks as providers document them: reads and writes at the input price,
            // 1-hour writes at the 5-minute write price.
            let write = row.write.unwrap_or(input);
            let price = Price {
                input,
                cached: row.cached.unwrap_or(input),
                write,
                write_1h: row.write_1h.unwrap_or(write),
                output,
                has_cache_read: row.cached.is_some(),
                has_cache_write: row.write.is_some(),
            };
            let slot = &mut prices[idx][tier];
            match row.period {
                Period::Always => *slot = [Some(price), Some(price)],
                Period::BeforeCut => slot[0] = Some(price),
                Period::AfterCut => slot[1] = Some(price),
            }
        }
        for (i, p) in prices.iter().enumerate() {
            if p[0].iter().any(Option::is_none) {
                return Err(bad(format!("{} has no standard price", MODELS[i].model)));
            }
        }
        Ok(Catalog { rows, prices })
    }

    /// The price for a model (index into `MODELS`), tier and side of the price cut.
    pub fn price(&self, model: usize, batch: bool, after_cut: bool) -> Option<&Price> {
        self.prices
            .get(model)?
            .get(usize::from(batch))?
            .get(usize::from(after_cut))?
            .as_ref()
    }
}

/// Index into `MODELS`.
pub(crate) fn model_index(provider: &str, model: &str) -> Option<usize> {
    MODELS
        .iter()
        .position(|m| m.provider == provider && m.model == model)
}
