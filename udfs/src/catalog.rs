//! The price catalog the costing functions read: the rows of `pricing` (and the aliases of
//! `models`), indexed for lookups by provider, model, time, tier, region, prompt size and
//! time of day.
//!
//! A catalog is immutable. Whoever owns the tables hands out a new one when they change
//! ([`CatalogSource`]), so a statement sees one consistent catalog from start to end.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use arrow::array::{Array, AsArray, Decimal128Array, PrimitiveArray, RecordBatch, StringArray};
use arrow::datatypes::{
    ArrowPrimitiveType, DataType, Int64Type, Time64MicrosecondType, TimeUnit,
    TimestampMicrosecondType,
};
use datafusion::common::{DataFusionError, Result};

/// Prices are `DECIMAL(20,9)` USD per million tokens: mantissas at scale 9.
pub const PRICE_SCALE: i8 = 9;
/// Costs are `DECIMAL(38,12)` USD.
pub const COST_SCALE: i8 = 12;
const MICROS_PER_DAY: i64 = 86_400_000_000;

/// The kinds of token price (`price_per_mtok`'s `kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PriceKind {
    Input,
    CachedInput,
    CacheWrite,
    CacheWrite1h,
    Output,
}

impl PriceKind {
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "input" => PriceKind::Input,
            "cached_input" | "cache_read" => PriceKind::CachedInput,
            "cache_write" | "cache_write_5m" => PriceKind::CacheWrite,
            "cache_write_1h" => PriceKind::CacheWrite1h,
            "output" => PriceKind::Output,
            _ => return None,
        })
    }
}

/// One `pricing` row.
#[derive(Debug, Clone, PartialEq, Hash)]
pub struct PriceRow {
    pub effective_from: i64,
    pub effective_to: Option<i64>,
    pub service_tier: String,
    pub region: Option<String>,
    pub min_prompt_tokens: i64,
    /// Time-of-day window in microseconds after midnight UTC, `[start, end)`, wrapping
    /// past midnight when start > end.
    pub window: Option<(i64, i64)>,
    pub input: Option<i128>,
    pub cached_input: Option<i128>,
    pub cache_write: Option<i128>,
    pub cache_write_1h: Option<i128>,
    pub output: Option<i128>,
    pub per_request: Option<i128>,
}

/// What a request looks like, for choosing its price row.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub ts: i64,
    pub service_tier: &'a str,
    pub region: Option<&'a str>,
    /// Prompt tokens of one request: input + cache reads + cache writes.
    pub prompt_tokens: i64,
}

impl PriceRow {
    fn applies(&self, r: &Request<'_>) -> bool {
        if r.ts < self.effective_from || self.effective_to.is_some_and(|to| r.ts >= to) {
            return false;
        }
        if self.service_tier != r.service_tier {
            return false;
        }
        if let Some(region) = &self.region
            && r.region != Some(region.as_str())
        {
            return false;
        }
        if self.min_prompt_tokens > 0 && r.prompt_tokens <= self.min_prompt_tokens {
            return false;
        }
        if let Some((start, end)) = self.window {
            let t = r.ts.rem_euclid(MICROS_PER_DAY);
            let inside = if start <= end {
                t >= start && t < end
            } else {
                t >= start || t < end
            };
            if !inside {
                return false;
            }
        }
        true
    }

    /// More specific rows win: a region over any region, a time window over all day,
    /// a higher long-context threshold over a lower one, then the later effective date.
    fn specificity(&self) -> (bool, bool, i64, i64) {
        (
            self.region.is_some(),
            self.window.is_some(),
            self.min_prompt_tokens,
            self.effective_from,
        )
    }
}

/// Prices for every model, plus the alias table used by `resolve_model`.
#[derive(Debug, Default)]
pub struct PriceCatalog {
    prices: HashMap<String, HashMap<String, Vec<PriceRow>>>,
    /// provider → exact alias → canonical model.
    aliases: HashMap<String, HashMap<String, String>>,
    /// provider → (LIKE pattern, canonical model), in catalog order.
    patterns: HashMap<String, Vec<(String, String)>>,
    /// Each (provider, raw model) pair's pricing, hashed: see [`PriceCatalog::fingerprint`].
    pair_hashes: Mutex<HashMap<(String, String), [u64; 2]>>,
}

fn column<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a Arc<dyn Array>> {
    batch
        .column_by_name(name)
        .ok_or_else(|| DataFusionError::Plan(format!("price catalog has no column {name}")))
}

/// A text column as `Utf8`, whatever string encoding the batch uses.
fn strings(batch: &RecordBatch, name: &str) -> Result<StringArray> {
    let array = arrow::compute::cast(column(batch, name)?, &DataType::Utf8)?;
    array
        .as_any()
        .downcast_ref::<StringArray>()
        .cloned()
        .ok_or_else(|| DataFusionError::Plan(format!("price catalog column {name} is not text")))
}

/// A column cast to `data_type`, as the primitive array of that type.
fn primitive<T: ArrowPrimitiveType>(
    batch: &RecordBatch,
    name: &str,
    data_type: &DataType,
) -> Result<PrimitiveArray<T>> {
    let array = arrow::compute::cast(column(batch, name)?, data_type)?;
    array
        .as_any()
        .downcast_ref::<PrimitiveArray<T>>()
        .cloned()
        .ok_or_else(|| {
            DataFusionError::Plan(format!("price catalog column {name} is not {data_type}"))
        })
}

fn price_column(batch: &RecordBatch, name: &str) -> Result<Option<Decimal128Array>> {
    let Some(array) = batch.column_by_name(name) else {
        return Ok(None);
    };
    let cast = arrow::compute::cast(array, &DataType::Decimal128(20, PRICE_SCALE))?;
    Ok(Some(
        cast.as_primitive::<arrow::datatypes::Decimal128Type>()
            .clone(),
    ))
}

/// Two 64-bit hashes (128 bits) with fixed seeds, stable across processes.
fn hash128(feed: impl Fn(&mut dyn std::hash::Hasher)) -> [u64; 2] {
    use std::hash::{BuildHasher, Hasher};
    [0x5eed_0001_u64, 0x5eed_0002].map(|seed| {
        let mut hasher = foldhash::quality::FixedState::with_seed(seed).build_hasher();
        feed(&mut hasher);
        hasher.finish()
    })
}

fn opt<T>(valid: bool, value: T) -> Option<T> {
    valid.then_some(value)
}

impl PriceCatalog {
    /// Build from `pricing` rows and `models` rows (either may be empty).
    pub fn from_batches(pricing: &[RecordBatch], models: &[RecordBatch]) -> Result<Self> {
        let mut catalog = PriceCatalog::default();
        for batch in pricing {
            catalog.add_prices(batch)?;
        }
        for rows in catalog.prices.values_mut() {
            for list in rows.values_mut() {
                list.sort_by_key(|r| r.effective_from);
            }
        }
        for batch in models {
            catalog.add_models(batch)?;
        }
        Ok(catalog)
    }

    /// A hash of everything that prices rows of the (provider, raw model) `pairs`: each
    /// one's resolved model, the catalog provider it is filed under and that model's price
    /// rows in order, and this costing code's version. Costing reads nothing else of the
    /// catalog, so rows of those pairs stored with costs under one fingerprint are priced
    /// alike by any catalog with the same one, and a change to another model's prices
    /// leaves it as it was. Stable across processes; the order of `pairs` does not matter.
    pub fn fingerprint<'a>(&self, pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
        let mut hashes: Vec<[u64; 2]> = {
            let mut memo = self.pair_hashes.lock().unwrap_or_else(|p| p.into_inner());
            pairs
                .into_iter()
                .map(|(provider, raw)| {
                    if let Some(hash) = memo.get(&(provider.to_string(), raw.to_string())) {
                        return *hash;
                    }
                    let hash = self.pair_hash(provider, raw);
                    memo.insert((provider.to_string(), raw.to_string()), hash);
                    hash
                })
                .collect()
        };
        hashes.sort_unstable();
        hashes.dedup();
        let [a, b] = hash128(|h| {
            h.write(env!("CARGO_PKG_VERSION").as_bytes());
            for hash in &hashes {
                h.write_u64(hash[0]);
                h.write_u64(hash[1]);
            }
        });
        format!("{a:016x}{b:016x}")
    }

    /// What prices a row of `provider`'s `raw` model, hashed.
    fn pair_hash(&self, provider: &str, raw: &str) -> [u64; 2] {
        use std::hash::Hash;
        let resolved = self
            .resolve(provider, raw)
            .and_then(|model| Some((model, self.series(provider, model)?)));
        hash128(|mut h| {
            (provider, raw).hash(&mut h);
            resolved.hash(&mut h);
        })
    }

    fn add_prices(&mut self, batch: &RecordBatch) -> Result<()> {
        let provider = strings(batch, "provider")?;
        let model = strings(batch, "model")?;
        let ts_type = DataType::Timestamp(TimeUnit::Microsecond, None);
        let time_type = DataType::Time64(TimeUnit::Microsecond);
        let from = primitive::<TimestampMicrosecondType>(batch, "effective_from", &ts_type)?;
        let to = primitive::<TimestampMicrosecondType>(batch, "effective_to", &ts_type)?;
        let tier = strings(batch, "service_tier")?;
        let region = strings(batch, "region")?;
        let min_prompt = primitive::<Int64Type>(batch, "min_prompt_tokens", &DataType::Int64)?;
        let start = primitive::<Time64MicrosecondType>(batch, "utc_start_time", &time_type)?;
        let end = primitive::<Time64MicrosecondType>(batch, "utc_end_time", &time_type)?;
        let input = price_column(batch, "input_per_mtok")?;
        let cached = price_column(batch, "cached_input_per_mtok")?;
        let write = price_column(batch, "cache_write_per_mtok")?;
        let write_1h = price_column(batch, "cache_write_1h_per_mtok")?;
        let output = price_column(batch, "output_per_mtok")?;
        let per_request = price_column(batch, "per_request")?;
        let get = |a: &Option<Decimal128Array>, i: usize| {
            a.as_ref().and_then(|a| opt(a.is_valid(i), a.value(i)))
        };
        for i in 0..batch.num_rows() {
            if provider.is_null(i) || model.is_null(i) || from.is_null(i) {
                continue;
            }
            let window = match (start.is_valid(i), end.is_valid(i)) {
                (true, true) => Some((start.value(i), end.value(i))),
                (true, false) => Some((start.value(i), MICROS_PER_DAY)),
                (false, true) => Some((0, end.value(i))),
                (false, false) => None,
            };
            let row = PriceRow {
                effective_from: from.value(i),
                effective_to: opt(to.is_valid(i), to.value(i)),
                service_tier: if tier.is_valid(i) {
                    tier.value(i)
                } else {
                    "standard"
                }
                .to_string(),
                region: opt(region.is_valid(i), region.value(i).to_string()),
                min_prompt_tokens: if min_prompt.is_valid(i) {
                    min_prompt.value(i)
                } else {
                    0
                },
                window,
                input: get(&input, i),
                cached_input: get(&cached, i),
                cache_write: get(&write, i),
                cache_write_1h: get(&write_1h, i),
                output: get(&output, i),
                per_request: get(&per_request, i),
            };
            self.prices
                .entry(provider.value(i).to_string())
                .or_default()
                .entry(model.value(i).to_string())
                .or_default()
                .push(row);
        }
        Ok(())
    }

    fn add_models(&mut self, batch: &RecordBatch) -> Result<()> {
        let provider = strings(batch, "provider")?;
        let model = strings(batch, "model")?;
        if batch.column_by_name("aliases").is_none() {
            return Ok(());
        }
        let aliases = strings(batch, "aliases")?;
        for i in 0..batch.num_rows() {
            if provider.is_null(i) || model.is_null(i) || aliases.is_null(i) {
                continue;
            }
            let provider_name = provider.value(i).to_string();
            for alias in aliases
                .value(i)
                .split(',')
                .map(str::trim)
                .filter(|a| !a.is_empty())
            {
                if alias.contains('%') {
                    self.patterns
                        .entry(provider_name.clone())
                        .or_default()
                        .push((alias.to_string(), model.value(i).to_string()));
                } else {
                    self.aliases
                        .entry(provider_name.clone())
                        .or_default()
                        .entry(alias.to_string())
                        .or_insert_with(|| model.value(i).to_string());
                }
            }
        }
        Ok(())
    }

    /// The catalog's canonical id for a raw model name, or None.
    ///
    /// An exact catalog row wins, then an exact alias, then an alias pattern, then the
    /// naming conventions of the providers (see [`crate::resolve_model`]).
    pub fn resolve<'a>(&'a self, provider: &str, raw: &'a str) -> Option<&'a str> {
        let provider = self.catalog_provider(provider, raw);
        if let Some((model, _)) = self.prices.get(provider).and_then(|m| m.get_key_value(raw)) {
            return Some(model.as_str());
        }
        if let Some(model) = self.aliases.get(provider).and_then(|a| a.get(raw)) {
            return Some(model.as_str());
        }
        if let Some(patterns) = self.patterns.get(provider)
            && let Some((_, model)) = patterns.iter().find(|(p, _)| like(p, raw))
        {
            return Some(model.as_str());
        }
        for candidate in crate::resolve_model::candidates(raw) {
            if let Some((model, _)) = self
                .prices
                .get(provider)
                .and_then(|m| m.get_key_value(candidate.as_str()))
            {
                return Some(model.as_str());
            }
            if let Some(model) = self.aliases.get(provider).and_then(|a| a.get(&candidate)) {
                return Some(model.as_str());
            }
        }
        None
    }

    /// The price row that applies to `request` for the canonical `model`.
    pub fn price(&self, provider: &str, model: &str, request: &Request<'_>) -> Option<&PriceRow> {
        let (_, series) = self.series(provider, model)?;
        pick(series, request)
    }

    /// The price rows of `provider`'s canonical `model`, with the catalog provider they are
    /// filed under (see [`provider_alias`]). Costing looks this up once per distinct model,
    /// then [`pick`]s a row per request.
    pub fn series(&self, provider: &str, model: &str) -> Option<(&str, &[PriceRow])> {
        let (name, models) = match self.prices.get_key_value(provider) {
            Some(found) => found,
            None => self
                .prices
                .get_key_value(self.catalog_provider(provider, model))?,
        };
        Some((name.as_str(), models.get(model)?.as_slice()))
    }
}

impl PriceCatalog {
    /// The catalog provider whose rows price `provider`'s `model`: the provider itself when
    /// the catalog has rows for it (an explicit row always wins), else what the name means as
    /// exports and gateways spell it ([`provider_alias`]).
    fn catalog_provider<'a>(&self, provider: &'a str, model: &str) -> &'a str {
        if self.prices.contains_key(provider) {
            return provider;
        }
        provider_alias(provider, model).unwrap_or(provider)
    }
}

/// Other spellings of catalog providers. Vertex AI serves Google's Gemini models at Google's
/// prices and Anthropic's Claude models at Anthropic's, so it maps by the model.
pub fn provider_alias(provider: &str, model: &str) -> Option<&'static str> {
    const VERTEX: [&str; 6] = [
        "vertex",
        "vertex_ai",
        "vertexai",
        "google_vertex",
        "google-vertex",
        "gcp",
    ];
    const ALIASES: [(&str, &str); 22] = [
        ("gemini", "google"),
        ("google_ai_studio", "google"),
        ("google-ai-studio", "google"),
        ("google", "google"),
        ("bedrock", "aws_bedrock"),
        ("aws", "aws_bedrock"),
        ("amazon_bedrock", "aws_bedrock"),
        ("aws-bedrock", "aws_bedrock"),
        ("aws_bedrock", "aws_bedrock"),
        ("azure", "azure_openai"),
        ("azure-openai", "azure_openai"),
        ("azure_openai", "azure_openai"),
        ("openai", "openai"),
        ("anthropic", "anthropic"),
        ("mistralai", "mistral"),
        ("mistral", "mistral"),
        ("x-ai", "xai"),
        ("xai", "xai"),
        ("together_ai", "together"),
        ("togetherai", "together"),
        ("fireworks_ai", "fireworks"),
        ("deepseek", "deepseek"),
    ];
    if VERTEX.iter().any(|v| v.eq_ignore_ascii_case(provider)) {
        let claude = model
            .as_bytes()
            .windows(6)
            .any(|w| w.eq_ignore_ascii_case(b"claude"));
        return Some(if claude { "anthropic" } else { "google" });
    }
    ALIASES
        .iter()
        .find(|(alias, _)| alias.eq_ignore_ascii_case(provider))
        .map(|(_, canonical)| *canonical)
}

/// The row of a model's `series` that applies to `request`: the most specific one.
pub fn pick<'a>(series: &'a [PriceRow], request: &Request<'_>) -> Option<&'a PriceRow> {
    series
        .iter()
        .filter(|row| row.applies(request))
        .max_by_key(|row| row.specificity())
}

/// SQL `LIKE` with `%` (any run) and `_` (one character).
pub(crate) fn like(pattern: &str, text: &str) -> bool {
    fn go(p: &[char], t: &[char]) -> bool {
        match p.split_first() {
            None => t.is_empty(),
            Some(('%', rest)) => (0..=t.len()).any(|i| go(rest, &t[i..])),
            Some(('_', rest)) => !t.is_empty() && go(rest, &t[1..]),
            Some((c, rest)) => t.first() == Some(c) && go(rest, &t[1..]),
        }
    }
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    go(&p, &t)
}

/// Hands out the current catalog. The engine implements it over its tables, rebuilding the
/// catalog when `pricing` or `models` change; [`StaticCatalog`] serves a fixed one.
pub trait CatalogSource: Send + Sync + std::fmt::Debug {
    fn current(&self) -> Result<Arc<PriceCatalog>>;
}

/// A function's handle on a shared source (the price catalog, the attribution rules).
/// Functions compare equal when they read the same source, which is what DataFusion's
/// `ScalarUDFImpl` equality needs.
#[derive(Debug)]
pub struct SourceHandle<S: ?Sized>(pub Arc<S>);

/// The costing functions' handle on their catalog.
pub type CatalogHandle = SourceHandle<dyn CatalogSource>;

impl CatalogHandle {
    pub fn current(&self) -> Result<Arc<PriceCatalog>> {
        self.0.current()
    }
}

impl<S: ?Sized> Clone for SourceHandle<S> {
    fn clone(&self) -> Self {
        SourceHandle(Arc::clone(&self.0))
    }
}

impl<S: ?Sized> PartialEq for SourceHandle<S> {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl<S: ?Sized> Eq for SourceHandle<S> {}

impl<S: ?Sized> std::hash::Hash for SourceHandle<S> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        (Arc::as_ptr(&self.0) as *const () as usize).hash(state);
    }
}

/// A fixed catalog, e.g. built from record batches with [`PriceCatalog::from_batches`].
#[derive(Debug, Default, Clone)]
pub struct StaticCatalog(pub Arc<PriceCatalog>);

impl CatalogSource for StaticCatalog {
    fn current(&self) -> Result<Arc<PriceCatalog>> {
        Ok(Arc::clone(&self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_matches_sql_semantics() {
        assert!(like("claude-3-5-haiku%", "claude-3-5-haiku-20241022"));
        assert!(like("gpt-_o", "gpt-4o"));
        assert!(!like("gpt-_o", "gpt-4.1o"));
        assert!(like("%", ""));
    }

    fn row(from: i64, tier: &str, min_prompt: i64, window: Option<(i64, i64)>) -> PriceRow {
        PriceRow {
            effective_from: from,
            effective_to: None,
            service_tier: tier.into(),
            region: None,
            min_prompt_tokens: min_prompt,
            window,
            input: Some(1),
            cached_input: None,
            cache_write: None,
            cache_write_1h: None,
            output: None,
            per_request: None,
        }
    }

    #[test]
    fn rows_apply_by_date_tier_prompt_and_window() {
        let night = Some((16 * 3_600_000_000, 30 * 60_000_000)); // 16:00 .. 00:30, wraps
        let r = |ts: i64, tier: &'static str, prompt: i64| Request {
            ts,
            service_tier: tier,
            region: None,
            prompt_tokens: prompt,
        };
        assert!(row(0, "standard", 0, None).applies(&r(5, "standard", 10)));
        assert!(!row(10, "standard", 0, None).applies(&r(5, "standard", 10)));
        assert!(!row(0, "batch", 0, None).applies(&r(5, "standard", 10)));
        assert!(row(0, "standard", 200_000, None).applies(&r(5, "standard", 200_001)));
        assert!(!row(0, "standard", 200_000, None).applies(&r(5, "standard", 200_000)));
        assert!(row(0, "standard", 0, night).applies(&r(17 * 3_600_000_000, "standard", 1)));
        assert!(row(0, "standard", 0, night).applies(&r(10 * 60_000_000, "standard", 1)));
        assert!(!row(0, "standard", 0, night).applies(&r(12 * 3_600_000_000, "standard", 1)));
    }

    #[test]
    fn provider_spellings_map_to_catalog_providers() {
        assert_eq!(
            provider_alias("vertex_ai", "gemini-2.5-pro"),
            Some("google")
        );
        assert_eq!(
            provider_alias("Vertex_AI", "claude-sonnet-4@20250514"),
            Some("anthropic")
        );
        assert_eq!(provider_alias("bedrock", "anything"), Some("aws_bedrock"));
        assert_eq!(provider_alias("OpenAI", "gpt-4o"), Some("openai"));
        assert_eq!(provider_alias("acme", "gpt-4o"), None);
    }

    /// A catalog of (provider, model, USD per million input tokens) prices from 1970 on,
    /// and (provider, model, aliases) rows.
    fn catalog(prices: &[(&str, &str, i128)], models: &[(&str, &str, &str)]) -> PriceCatalog {
        use arrow::array::TimestampMicrosecondArray;
        use arrow::array::{ArrayRef, Int64Array, Time64MicrosecondArray};
        use arrow::datatypes::{Field, Schema};
        let n = prices.len();
        let text = |values: Vec<Option<&str>>| Arc::new(StringArray::from(values)) as ArrayRef;
        let ts = || Arc::new(TimestampMicrosecondArray::from(vec![Some(0); n])) as ArrayRef;
        let time = || Arc::new(Time64MicrosecondArray::from(vec![None; n])) as ArrayRef;
        let columns: Vec<(&str, ArrayRef)> = vec![
            ("provider", text(prices.iter().map(|p| Some(p.0)).collect())),
            ("model", text(prices.iter().map(|p| Some(p.1)).collect())),
            ("effective_from", ts()),
            (
                "effective_to",
                Arc::new(TimestampMicrosecondArray::from(vec![None; n])),
            ),
            ("service_tier", text(vec![None; n])),
            ("region", text(vec![None; n])),
            (
                "min_prompt_tokens",
                Arc::new(Int64Array::from(vec![None; n])),
            ),
            ("utc_start_time", time()),
            ("utc_end_time", time()),
            (
                "input_per_mtok",
                Arc::new(
                    Decimal128Array::from(
                        prices
                            .iter()
                            .map(|p| p.2 * 1_000_000_000)
                            .collect::<Vec<_>>(),
                    )
                    .with_precision_and_scale(20, PRICE_SCALE)
                    .expect("decimal"),
                ),
            ),
        ];
        let batch = |columns: Vec<(&str, ArrayRef)>| {
            let fields: Vec<Field> = columns
                .iter()
                .map(|(name, array)| Field::new(*name, array.data_type().clone(), true))
                .collect();
            RecordBatch::try_new(
                Arc::new(Schema::new(fields)),
                columns.into_iter().map(|(_, array)| array).collect(),
            )
            .expect("batch")
        };
        let models = batch(vec![
            ("provider", text(models.iter().map(|m| Some(m.0)).collect())),
            ("model", text(models.iter().map(|m| Some(m.1)).collect())),
            ("aliases", text(models.iter().map(|m| Some(m.2)).collect())),
        ]);
        PriceCatalog::from_batches(&[batch(columns)], &[models]).expect("catalog")
    }

    #[test]
    fn a_fingerprint_changes_with_what_prices_its_models_and_nothing_else() {
        let base = catalog(&[("acme", "m1", 2), ("google", "gemini-x", 1)], &[]);
        let m1 = base.fingerprint([("acme", "m1")]);
        // The order and repetition of the pairs do not matter; the pairs do.
        assert_eq!(
            base.fingerprint([("acme", "m1"), ("acme", "zz"), ("acme", "m1")]),
            base.fingerprint([("acme", "zz"), ("acme", "m1")])
        );
        assert_ne!(base.fingerprint([("acme", "m1"), ("acme", "zz")]), m1);
        assert_eq!(base.fingerprint([("acme", "m1")]), m1, "memoised alike");

        // Another model's price leaves it; its own price, or a second row for it, does not.
        let another = catalog(&[("acme", "m1", 2), ("acme", "m9", 5)], &[]);
        assert_eq!(another.fingerprint([("acme", "m1")]), m1);
        assert_ne!(
            another.fingerprint([("acme", "m9")]),
            base.fingerprint([("acme", "m9")])
        );
        assert_ne!(
            catalog(&[("acme", "m1", 3)], &[]).fingerprint([("acme", "m1")]),
            m1
        );
        assert_ne!(
            catalog(&[("acme", "m1", 2), ("acme", "m1", 2)], &[]).fingerprint([("acme", "m1")]),
            m1
        );

        // An alias pattern moves the raw names it captures, and only those.
        let aliased = catalog(&[("acme", "m1", 2)], &[("acme", "m1", "m1-%")]);
        assert_eq!(aliased.fingerprint([("acme", "m1")]), m1);
        assert_ne!(
            aliased.fingerprint([("acme", "m1-preview")]),
            base.fingerprint([("acme", "m1-preview")])
        );

        // Vertex rows are priced under Google's until the catalog has rows of its own.
        let vertex = base.fingerprint([("vertex", "gemini-x")]);
        assert_eq!(
            catalog(&[("google", "gemini-x", 1)], &[]).fingerprint([("vertex", "gemini-x")]),
            vertex
        );
        assert_ne!(
            catalog(&[("google", "gemini-x", 1), ("vertex", "other", 1)], &[])
                .fingerprint([("vertex", "gemini-x")]),
            vertex
        );
    }
}
