//! Usage rows: minute-bucket aggregates per feature, customer, environment, model and key,
//! shaped by growth, weekly and daily seasonality, and the planted stories.
//!
//! While generating, the exact list cost of every row is added up per scope and day so that
//! budgets, invoices and revenue can be set relative to the spend the demo really contains.

use std::collections::{BTreeMap, HashMap};

use arrow::array::ArrayRef;
use arrow::record_batch::RecordBatch;
use chrono::{Datelike, Weekday};
use rand::Rng;
use rand::rngs::StdRng;
use rust_decimal::Decimal;

use super::catalog::{Catalog, MODELS, Tokens, model_index};
use super::columns::{self, int32, int64, text, text_nn, timestamps};
use super::scenario::{
    Cache, FEATURES, Feature, RULE_MAPPED_KEYS, SPIKE_DAYS_AGO, SPIKE_FEATURE, TEAMS,
};
use super::{Customers, Window};
use crate::{Error, Result};

/// Scales every feature's row count; tuned so the demo holds roughly 200k usage rows.
const ROW_SCALE: f64 = 0.75;
/// Largest batch handed to storage.
const BATCH_ROWS: usize = 65_536;
const MICROS_PER_HOUR: i64 = 3_600_000_000;
const MICROS_PER_MINUTE: i64 = 60_000_000;
/// An A/B test visible in `tags` on part of one feature's traffic.
const EXPERIMENT_FEATURE: &str = "reply-drafting";
const EXPERIMENT_TAGS: &str = r#"{"surface":"agent-workspace","experiment":"prompt-v2"}"#;

/// One (feature, environment) combination: everything constant across its rows.
pub(crate) struct Stream {
    pub feature: &'static Feature,
    pub feature_idx: usize,
    pub model: usize,
    pub env: Option<&'static str>,
    /// Requests and rows relative to production.
    request_share: f64,
    row_share: f64,
    pub api_key: String,
    pub project: Option<&'static str>,
    /// Team and feature after attribution rules, for budgets.
    pub rule_team: Option<&'static str>,
    pub rule_feature: Option<&'static str>,
}

/// Every stream of the scenario, production first within each feature.
pub(crate) fn streams() -> Result<Vec<Stream>> {
    let mut out = Vec::new();
    for (feature_idx, f) in FEATURES.iter().enumerate() {
        let model = model_index(f.provider, f.model).ok_or_else(|| {
            Error::Invalid(format!(
                "demo: {} {} is not in the catalog",
                f.provider, f.model
            ))
        })?;
        let project = f
            .team
            .and_then(|t| TEAMS.iter().find(|team| team.name == t))
            .map(|t| t.project);
        let mapped = f
            .api_key
            .and_then(|k| RULE_MAPPED_KEYS.iter().find(|r| r.0 == k));
        let rule_team = f.team.or(mapped.map(|r| r.1));
        let rule_feature = f.feature.or(mapped.map(|r| r.2));
        let envs: &[(Option<&'static str>, f64, f64)] = if f.envs {
            &[
                (Some("prod"), 1.0, 1.0),
                (Some("staging"), 0.04, 0.08),
                (Some("dev"), 0.02, 0.06),
            ]
        } else {
            &[(None, 1.0, 1.0)]
        };
        for &(env, request_share, row_share) in envs {
            let api_key = match (f.api_key, f.team, env) {
                (Some(key), _, _) => key.to_string(),
                (None, Some(team), Some(env)) => format!("key-{team}-{env}-{}", f.provider),
                _ => {
                    return Err(Error::Invalid(
                        "demo: a stream needs a team and environment or a key".into(),
                    ));
                }
            };
            out.push(Stream {
                feature: f,
                feature_idx,
                model,
                env,
                request_share,
                row_share,
                api_key,
                project: project.or(f.api_key.map(|_| "default")),
                rule_team,
                rule_feature,
            });
        }
    }
    Ok(out)
}

/// One generated usage row; strings are resolved when the batches are built.
struct Row {
    ts: i64,
    stream: u16,
    tokens: Tokens,
    reasoning: i64,
    requests: i64,
    batch: bool,
    customer: Option<u16>,
    user: Option<u16>,
    latency_ms: Option<i32>,
    error: bool,
    prompt_hash: u64,
    tags: Option<&'static str>,
    ingested_delay_s: i64,
}

/// Exact list spend per day, by scope.
#[derive(Default)]
pub(crate) struct Spend {
    /// `("global", "")`, `("team", t)`, `("feature", f)`, `("environment", e)`,
    /// `("provider", p)` → one entry per day of the window. Team and feature are as
    /// attribution rules resolve them.
    daily: HashMap<(&'static str, &'static str), Vec<Decimal>>,
    /// Spend per customer rank and day.
    customer: HashMap<u16, Vec<Decimal>>,
    /// answer-generation requests per (customer rank, year, month), for add-on revenue.
    pub answers: BTreeMap<(u16, i32, u32), i64>,
}

impl Spend {
    fn add(&mut self, key: (&'static str, &'static str), day: usize, days: usize, v: Decimal) {
        self.daily
            .entry(key)
            .or_insert_with(|| vec![Decimal::ZERO; days])[day] += v;
    }

    /// Daily spend of a scope (zeros when it has none).
    pub fn daily(&self, scope: &str, value: &str, days: usize) -> Vec<Decimal> {
        self.daily
            .iter()
            .find(|((s, v), _)| *s == scope && *v == value)
            .map(|(_, d)| d.clone())
            .unwrap_or_else(|| vec![Decimal::ZERO; days])
    }

    pub fn customer_daily(&self, rank: u16, days: usize) -> Vec<Decimal> {
        self.customer
            .get(&rank)
            .cloned()
            .unwrap_or_else(|| vec![Decimal::ZERO; days])
    }
}

/// The generated usage and what it costs.
pub(crate) struct Generated {
    rows: Vec<Row>,
    pub streams: Vec<Stream>,
    pub spend: Spend,
}

/// A normal deviate (Box–Muller); `rand` 0.9 without `rand_distr` has none.
fn normal(rng: &mut StdRng) -> f64 {
    let u1: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// A log-normal factor with mean 1.
fn lognormal(rng: &mut StdRng, sigma: f64) -> f64 {
    (sigma * normal(rng) - sigma * sigma / 2.0).exp()
}

/// Index drawn from a cumulative weight table.
fn pick(rng: &mut StdRng, cdf: &[f64]) -> usize {
    let total = cdf.last().copied().unwrap_or(0.0);
    let x = rng.random::<f64>() * total;
    cdf.partition_point(|&c| c <= x)
        .min(cdf.len().saturating_sub(1))
}

fn cumulative(weights: &[f64]) -> Vec<f64> {
    weights
        .iter()
        .scan(0.0, |acc, w| {
            *acc += w;
            Some(*acc)
        })
        .collect()
}

fn hash(seed: u64, parts: &[u64]) -> u64 {
    let mut bytes = Vec::with_capacity(parts.len() * 8);
    for p in parts {
        bytes.extend_from_slice(&p.to_le_bytes());
    }
    xxhash_rust::xxh3::xxh3_64_with_seed(&bytes, seed)
}

fn round(x: f64) -> i64 {
    x.round().max(0.0) as i64
}

/// Generates every usage row of the window.
pub(crate) fn generate(
    window: &Window,
    catalog: &Catalog,
    customers: &Customers,
    rng: &mut StdRng,
    seed: u64,
) -> Result<Generated> {
    let streams = streams()?;
    let days = window.days;
    let mut rows: Vec<Row> = Vec::with_capacity(250_000);
    let mut spend = Spend::default();
    let hour_cdfs: Vec<Vec<f64>> = streams
        .iter()
        .map(|s| cumulative(&s.feature.pattern.hours()))
        .collect();
    let stuck_prompts: Vec<u64> = (0..8).map(|k| hash(seed, &[0x5717, k])).collect();

    for day in 0..days {
        let date = window.date(day);
        let days_ago = window.days_ago(day);
        let weekend = matches!(date.weekday(), Weekday::Sat | Weekday::Sun);
        let day_start = window.day_micros(day);
        let month = (date.year(), date.month());
        for (si, stream) in streams.iter().enumerate() {
            let f = stream.feature;
            if days_ago > f.from_days_ago || days_ago <= f.to_days_ago {
                continue;
            }
            // Growth counts from the window start so a stream that replaces another
            // (a model switch) continues at the same level.
            let weeks = (window.days as i64 - days_ago) as f64 / 7.0;
            let ramp = if f.ramp_days > 0.0 {
                ((f.from_days_ago - days_ago + 1) as f64 / f.ramp_days).min(1.0)
            } else {
                1.0
            };
            let base = f.requests * stream.request_share * (1.0 + f.growth).powf(weeks) * ramp;
            let spike = stream.env == Some("prod")
                && f.feature == Some(SPIKE_FEATURE)
                && SPIKE_DAYS_AGO.contains(&days_ago);
            let mut level = base * lognormal(rng, 0.08);
            if spike {
                level *= 10.0;
            } else if weekend {
                level *= f.pattern.weekend();
            }
            let total = if level < 1.0 {
                i64::from(rng.random::<f64>() < level)
            } else {
                round(level)
            };
            if total == 0 {
                continue;
            }
            // Rows follow volume (a busier day has more buckets), but a spike mostly fills
            // existing buckets with more requests.
            let volume = if spike { 3.0 * base } else { level };
            let row_target = f.rows * stream.row_share * ROW_SCALE * volume
                / (f.requests * stream.request_share);
            let n = (row_target.round().max(1.0) as i64).min(total) as usize;
            let weights: Vec<f64> = (0..n).map(|_| lognormal(rng, 0.6)).collect();
            let wsum: f64 = weights.iter().sum();
            for w in weights {
                let requests = round(total as f64 * w / wsum).max(1);
                let (row, cost) = make_row(
                    rng,
                    RowContext {
                        window,
                        catalog,
                        customers,
                        stream,
                        stream_idx: si,
                        day,
                        day_start,
                        hour_cdf: &hour_cdfs[si],
                        spike,
                        stuck_prompts: &stuck_prompts,
                        seed,
                        serial: rows.len() as u64,
                    },
                    requests,
                )?;
                spend.add(("global", ""), day, days, cost);
                if let Some(team) = stream.rule_team {
                    spend.add(("team", team), day, days, cost);
                }
                if let Some(feature) = stream.rule_feature {
                    spend.add(("feature", feature), day, days, cost);
                }
                if let Some(env) = stream.env {
                    spend.add(("environment", env), day, days, cost);
                }
                spend.add(("provider", f.provider), day, days, cost);
                if let Some(c) = row.customer {
                    spend
                        .customer
                        .entry(c)
                        .or_insert_with(|| vec![Decimal::ZERO; days])[day] += cost;
                    if f.feature == Some("answer-generation") && !row.error {
                        *spend.answers.entry((c, month.0, month.1)).or_default() += row.requests;
                    }
                }
                rows.push(row);
            }
        }
    }
    Ok(Generated {
        rows,
        streams,
        spend,
    })
}

struct RowContext<'a> {
    window: &'a Window,
    catalog: &'a Catalog,
    customers: &'a Customers,
    stream: &'a Stream,
    stream_idx: usize,
    day: usize,
    day_start: i64,
    hour_cdf: &'a [f64],
    spike: bool,
    stuck_prompts: &'a [u64],
    seed: u64,
    serial: u64,
}

/// One row and its exact list cost.
fn make_row(rng: &mut StdRng, cx: RowContext<'_>, requests: i64) -> Result<(Row, Decimal)> {
    let stream = cx.stream;
    let f = stream.feature;
    let info = &MODELS[stream.model];
    let hour = pick(rng, cx.hour_cdf) as i64;
    let minute = rng.random_range(0..60i64);
    let mut ts = cx.day_start + hour * MICROS_PER_HOUR + minute * MICROS_PER_MINUTE;
    let batch = f.batch > 0.0 && rng.random::<f64>() < f.batch;
    let error = !batch && rng.random::<f64>() < if cx.spike { 0.04 } else { 0.01 };
    let requests = if error {
        requests.min(rng.random_range(1..=5))
    } else {
        requests
    };
    if requests == 1 {
        // A single call: a precise timestamp rather than a bucket start.
        ts += rng.random_range(0..MICROS_PER_MINUTE);
    }
    let price = cx
        .catalog
        .price(stream.model, batch, ts >= cx.window.cut_micros)
        .ok_or_else(|| {
            Error::Invalid(format!(
                "demo: no {} price for {}",
                if batch { "batch" } else { "standard" },
                f.model
            ))
        })?;

    let mut tokens = Tokens::default();
    let mut reasoning = 0;
    let latency_ms;
    if error {
        // Rate-limited and failed calls are not billed.
        latency_ms = Some(rng.random_range(80..600));
    } else {
        let n = requests as f64;
        let sigma = (0.45 / n.sqrt()).max(0.02);
        let prompt = round(n * f.input * lognormal(rng, sigma)).max(requests);
        let mut output = round(n * f.output * lognormal(rng, sigma * 1.1)).max(requests);
        if let Some(cap) = f.max_tokens {
            output = output.min(requests * i64::from(cap));
        }
        tokens.output = output;
        tokens.input = prompt;
        match f.cache {
            Cache::None => {}
            Cache::Auto(share) if price.has_cache_read => {
                let cached = round(prompt as f64 * share * rng.random_range(0.7..1.2)).min(prompt);
                tokens.cached = cached;
                tokens.input = prompt - cached;
            }
            Cache::Explicit {
                prefix,
                hit,
                ttl_1h,
            } if price.has_cache_read && price.has_cache_write => {
                let hit = (hit * rng.random_range(0.97..1.03)).min(1.0);
                let reads = round(n * prefix * hit);
                let writes = round(n * prefix * (1.0 - hit));
                tokens.cached = reads;
                if ttl_1h {
                    tokens.write_1h = writes;
                } else {
                    tokens.write = writes;
                }
                tokens.input = (prompt - reads - writes).max(requests * 50);
            }
            Cache::Auto(_) | Cache::Explicit { .. } => {}
        }
        if f.reasoning > 0.0 {
            reasoning = round(output as f64 * f.reasoning * rng.random_range(0.8..1.1)).min(output);
        }
        latency_ms = if batch {
            None
        } else {
            let per_request =
                info.ttft_ms + (output as f64 / n) * info.ms_per_token + (prompt as f64 / n) * 0.02;
            Some(
                (per_request * lognormal(rng, 0.3))
                    .round()
                    .min(f64::from(i32::MAX)) as i32,
            )
        };
    }

    let customer = if f.customers && rng.random::<f64>() >= 0.015 {
        Some(cx.customers.pick(rng, cx.day))
    } else {
        None
    };
    let user = f.users.pool().map(|(_, size)| {
        // Heavy users dominate: square a uniform draw.
        let u: f64 = rng.random();
        ((u * u * f64::from(size)) as u16).min(size as u16 - 1)
    });
    let prompt_hash = if cx.spike && rng.random::<f64>() < 0.85 {
        // The retry loop resends the same few prompts.
        cx.stuck_prompts[rng.random_range(0..cx.stuck_prompts.len())]
    } else if f.dup_pool > 0 {
        hash(
            cx.seed,
            &[
                cx.stream.feature_idx as u64,
                rng.random_range(0..f.dup_pool) as u64,
            ],
        )
    } else {
        hash(cx.seed, &[0xfeed, cx.serial])
    };
    let tags = if f.feature == Some(EXPERIMENT_FEATURE) && rng.random::<f64>() < 0.3 {
        Some(EXPERIMENT_TAGS)
    } else {
        f.tags
    };
    let cost = price.cost(&tokens);
    let row = Row {
        ts,
        stream: u16::try_from(cx.stream_idx).map_err(|e| Error::Invalid(e.to_string()))?,
        tokens,
        reasoning,
        requests,
        batch,
        customer,
        user,
        latency_ms,
        error,
        prompt_hash,
        tags,
        ingested_delay_s: rng.random_range(120..5_400),
    };
    Ok((row, cost))
}

/// The usage rows as Arrow batches of at most 65 536 rows with the `usage` schema.
pub(crate) fn to_batches(
    generated: &Generated,
    window: &Window,
    customers: &Customers,
) -> Result<Vec<RecordBatch>> {
    let mut out = Vec::new();
    for (chunk_idx, chunk) in generated.rows.chunks(BATCH_ROWS).enumerate() {
        let first = chunk_idx * BATCH_ROWS;
        let streams: Vec<&Stream> = chunk
            .iter()
            .map(|r| &generated.streams[usize::from(r.stream)])
            .collect();
        let event_ids: Vec<String> = (0..chunk.len())
            .map(|i| format!("demo-{:07}", first + i + 1))
            .collect();
        let ts: Vec<Option<i64>> = chunk.iter().map(|r| Some(r.ts)).collect();
        let ingested: Vec<Option<i64>> = chunk
            .iter()
            .map(|r| Some((r.ts + r.ingested_delay_s * 1_000_000).min(window.end_micros)))
            .collect();
        let providers: Vec<&str> = streams.iter().map(|s| s.feature.provider).collect();
        let models: Vec<&str> = streams.iter().map(|s| s.feature.model).collect();
        let tok =
            |g: fn(&Row) -> i64| -> ArrayRef { int64(chunk.iter().map(|r| Some(g(r))).collect()) };
        let tiers: Vec<&str> = chunk
            .iter()
            .map(|r| if r.batch { "batch" } else { "standard" })
            .collect();
        let regions: Vec<Option<&str>> = streams.iter().map(|s| s.feature.region).collect();
        let keys: Vec<Option<&str>> = streams.iter().map(|s| Some(s.api_key.as_str())).collect();
        let projects: Vec<Option<&str>> = streams.iter().map(|s| s.project).collect();
        let teams: Vec<Option<&str>> = streams.iter().map(|s| s.feature.team).collect();
        let features: Vec<Option<&str>> = streams.iter().map(|s| s.feature.feature).collect();
        let customer_names: Vec<Option<&str>> = chunk
            .iter()
            .map(|r| r.customer.map(|c| customers.name(c)))
            .collect();
        let envs: Vec<Option<&str>> = streams.iter().map(|s| s.env).collect();
        let users: Vec<Option<String>> = chunk
            .iter()
            .zip(&streams)
            .map(|(r, s)| {
                let (prefix, size) = s.feature.users.pool()?;
                let n = r.user?;
                Some(if size > 999 {
                    format!("{prefix}-{n:04}")
                } else {
                    format!("{prefix}-{n:03}")
                })
            })
            .collect();
        let tags: Vec<Option<&str>> = chunk.iter().map(|r| r.tags).collect();
        let latency: Vec<Option<i32>> = chunk.iter().map(|r| r.latency_ms).collect();
        let status: Vec<Option<&str>> = chunk
            .iter()
            .map(|r| Some(if r.error { "error" } else { "ok" }))
            .collect();
        let hashes: Vec<Option<String>> = chunk
            .iter()
            .map(|r| Some(format!("{:016x}", r.prompt_hash)))
            .collect();
        let max_tokens: Vec<Option<i32>> = streams.iter().map(|s| s.feature.max_tokens).collect();
        let reported: Vec<Option<Decimal>> = vec![None; chunk.len()];
        let sources: Vec<Option<&str>> = vec![Some("demo"); chunk.len()];
        out.push(columns::batch(
            "usage",
            vec![
                ("event_id", text_nn(&event_ids)),
                ("ts", timestamps(ts)),
                ("provider", text_nn(&providers)),
                ("model", text_nn(&models)),
                ("input_tokens", tok(|r| r.tokens.input)),
                ("cached_input_tokens", tok(|r| r.tokens.cached)),
                ("cache_write_tokens", tok(|r| r.tokens.write)),
                ("cache_write_1h_tokens", tok(|r| r.tokens.write_1h)),
                ("output_tokens", tok(|r| r.tokens.output)),
                ("reasoning_tokens", tok(|r| r.reasoning)),
                ("requests", tok(|r| r.requests)),
                ("service_tier", text_nn(&tiers)),
                ("region", text(&regions)),
                ("api_key_id", text(&keys)),
                ("project", text(&projects)),
                ("team", text(&teams)),
                ("feature", text(&features)),
                ("customer", text(&customer_names)),
                ("environment", text(&envs)),
                ("user_id", text(&users)),
                ("tags", text(&tags)),
                ("latency_ms", int32(latency)),
                ("status", text(&status)),
                ("prompt_hash", text(&hashes)),
                ("max_tokens", int32(max_tokens)),
                ("reported_cost", columns::money(&reported)?),
                ("source", text(&sources)),
                ("ingested_at", timestamps(ingested)),
            ],
        )?);
    }
    Ok(out)
}
