//! Provider export adapters: each turns one record of a provider's export into `usage` rows
//! (or `provider_costs` rows), normalising token semantics to SPEC §3: `input_tokens`
//! excludes cache reads and writes, `output_tokens` includes reasoning.
//!
//! An adapter reports a bad part of a record with its JSON path as the column
//! (`data[0].results[2].input_tokens`), so errors read `file:line: path: reason`.

pub mod anthropic;
pub mod gemini;
pub mod litellm;
pub mod openai;
pub mod otel;

use std::borrow::Cow;

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::{Map, Number, Value};

use super::{Field, FieldError};

/// The largest token count one row may carry: ten trillion tokens is about a year of a
/// very large company's traffic, so anything above it is a unit or parsing mistake.
pub const MAX_TOKENS: u64 = 10_000_000_000_000;

/// The usage columns, in the order of the `usage` schema (a test checks it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Col {
    EventId,
    Ts,
    Provider,
    Model,
    InputTokens,
    CachedInputTokens,
    CacheWriteTokens,
    CacheWrite1hTokens,
    OutputTokens,
    ReasoningTokens,
    Requests,
    ServiceTier,
    Region,
    ApiKeyId,
    Project,
    Team,
    Feature,
    Customer,
    Environment,
    UserId,
    Tags,
    LatencyMs,
    Status,
    PromptHash,
    MaxTokens,
    ReportedCost,
}

const COLS: usize = Col::ReportedCost as usize + 1;

/// An owned value for one usage column.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum Cell {
    #[default]
    Null,
    Text(String),
    Int(i64),
    /// Microseconds since the epoch, UTC.
    Micros(i64),
}

/// One `usage` row an adapter built. Columns it does not set take their defaults.
#[derive(Debug, Clone, Default)]
pub struct Row {
    cells: [Cell; COLS],
}

impl Row {
    pub fn text(&mut self, col: Col, value: impl Into<String>) -> &mut Self {
        self.cells[col as usize] = Cell::Text(value.into());
        self
    }

    pub fn opt_text(&mut self, col: Col, value: Option<&str>) -> &mut Self {
        if let Some(v) = value {
            self.text(col, v);
        }
        self
    }

    pub fn int(&mut self, col: Col, value: i64) -> &mut Self {
        self.cells[col as usize] = Cell::Int(value);
        self
    }

    pub fn micros(&mut self, col: Col, value: i64) -> &mut Self {
        self.cells[col as usize] = Cell::Micros(value);
        self
    }

    /// `latency_ms` from a duration in microseconds; one that does not fit (negative, or
    /// over 24 days) is left out rather than rejecting the call.
    pub fn latency(&mut self, micros: i64) -> &mut Self {
        if let Ok(ms) = i32::try_from(micros / 1000)
            && ms >= 0
        {
            self.int(Col::LatencyMs, i64::from(ms));
        }
        self
    }

    pub fn tokens(&mut self, col: Col, value: u64) -> &mut Self {
        self.int(col, i64::try_from(value).unwrap_or(i64::MAX))
    }

    pub fn get(&self, col: Col) -> &Cell {
        &self.cells[col as usize]
    }

    /// The row as the fields `UsageRows::push` takes; `width` is the usage column count
    /// (`source` and `ingested_at` are left to it).
    pub fn fields(&self, width: usize) -> Vec<Field<'_>> {
        let mut fields = vec![Field::Null; width];
        for (slot, cell) in fields.iter_mut().zip(&self.cells) {
            *slot = match cell {
                Cell::Null => Field::Null,
                Cell::Text(s) => Field::Text(s),
                Cell::Int(v) => Field::Int(*v),
                Cell::Micros(v) => Field::Micros(*v),
            };
        }
        fields
    }
}

/// One provider-reported cost: a day, a project and a line item.
#[derive(Debug, Clone, PartialEq)]
pub struct CostRow {
    pub event_id: String,
    /// Days since 1970-01-01 (UTC).
    pub day: i32,
    pub provider: &'static str,
    pub project: Option<String>,
    pub line_item: String,
    pub model: Option<String>,
    pub service_tier: Option<String>,
    /// USD at scale 12.
    pub amount: i128,
    pub currency: String,
}

/// What one record produced: rows, and the parts of it that were bad.
pub type Converted<T> = Vec<Result<T, FieldError>>;

/// A JSON object with the path that led to it, for error messages.
///
/// Values stay as their JSON text until an adapter asks for one: export records carry many
/// fields an adapter never reads (prompts, metadata blobs), and building a `Value` tree for
/// each record — a map node and a string per field — was most of the cost of ingest.
#[derive(Clone)]
pub struct At<'a> {
    fields: Vec<(Cow<'a, str>, &'a RawValue)>,
    text: &'a str,
    path: String,
}

/// The members of a JSON object, borrowed from its text.
struct Members<'a>(Vec<(Cow<'a, str>, &'a RawValue)>);

impl<'de: 'a, 'a> Deserialize<'de> for Members<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visit<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for Visit<'a> {
            type Value = Members<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Members<'a>, M::Error> {
                let mut members = Vec::with_capacity(map.size_hint().unwrap_or(16));
                while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
                    members.push((key, map.next_value::<&'de RawValue>()?));
                }
                Ok(Members(members))
            }
        }
        deserializer.deserialize_map(Visit(std::marker::PhantomData))
    }
}

/// An object key, borrowed unless it has escapes.
struct Key<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Key<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visit<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for Visit<'a> {
            type Value = Key<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a key")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Key<'a>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Key<'a>, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
        }
        deserializer.deserialize_str(Visit(std::marker::PhantomData))
    }
}

/// What a raw JSON value is, from its first byte.
fn kind(raw: &RawValue) -> u8 {
    raw.get().as_bytes().first().copied().unwrap_or(b'n')
}

impl<'a> At<'a> {
    /// A whole record.
    pub fn parse(text: &'a str) -> Result<At<'a>, FieldError> {
        At::parse_at(text, String::new()).map_err(|e| FieldError {
            column: "record".into(),
            ..e
        })
    }

    /// An object found (as text) at `path`.
    pub fn parse_at(text: &'a str, path: String) -> Result<At<'a>, FieldError> {
        match serde_json::from_str::<Members<'a>>(text) {
            Ok(Members(fields)) => Ok(At { fields, text, path }),
            Err(e) if e.is_data() => Err(error(&path, "expected a JSON object")),
            Err(e) => Err(error(&path, format!("invalid JSON: {e}"))),
        }
    }

    /// The object's JSON text.
    pub fn text(&self) -> &'a str {
        self.text
    }

    pub fn path(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    pub fn error(&self, key: &str, reason: impl Into<String>) -> FieldError {
        error(&self.path(key), reason)
    }

    /// The raw value of `key`, `None` when absent or null (the last one wins if repeated,
    /// as with `serde_json::Value`).
    pub fn get(&self, key: &str) -> Option<&'a RawValue> {
        self.fields
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| *v)
            .filter(|v| v.get() != "null")
    }

    /// The members, for objects whose keys are data (labels).
    pub fn members(&self) -> impl Iterator<Item = (&str, &'a RawValue)> {
        self.fields.iter().map(|(k, v)| (k.as_ref(), *v))
    }

    /// The value of `key` as a `Value`, for the few fields read whole.
    pub fn value(&self, key: &str) -> Result<Option<Value>, FieldError> {
        self.get(key)
            .map(|raw| serde_json::from_str(raw.get()).map_err(|e| self.error(key, e.to_string())))
            .transpose()
    }

    /// A nested object (`None` when absent or null).
    pub fn object(&self, key: &str) -> Result<Option<At<'a>>, FieldError> {
        match self.get(key) {
            None => Ok(None),
            Some(raw) if kind(raw) == b'{' => At::parse_at(raw.get(), self.path(key)).map(Some),
            Some(_) => Err(self.error(key, "expected an object")),
        }
    }

    /// An array's elements (empty when absent or null).
    pub fn array(&self, key: &str) -> Result<Vec<&'a RawValue>, FieldError> {
        match self.get(key) {
            None => Ok(Vec::new()),
            Some(raw) if kind(raw) == b'[' => serde_json::from_str(raw.get())
                .map_err(|e| self.error(key, format!("invalid JSON: {e}"))),
            Some(_) => Err(self.error(key, "expected an array")),
        }
    }

    /// A string (numbers and booleans are accepted as their text).
    pub fn str(&self, key: &str) -> Result<Option<String>, FieldError> {
        let Some(raw) = self.get(key) else {
            return Ok(None);
        };
        let parsed = match kind(raw) {
            b'"' => serde_json::from_str::<String>(raw.get()).ok(),
            b't' | b'f' => Some(raw.get().to_string()),
            b'-' | b'0'..=b'9' => serde_json::from_str::<Number>(raw.get())
                .ok()
                .map(|n| n.to_string()),
            _ => None,
        };
        parsed
            .map(Some)
            .ok_or_else(|| self.error(key, "expected a string"))
    }

    pub fn required_str(&self, key: &str) -> Result<String, FieldError> {
        self.str(key)?
            .filter(|s| !s.is_empty())
            .ok_or_else(|| self.error(key, "a value is required"))
    }

    /// A token or request count: a non-negative integer (or its text) up to [`MAX_TOKENS`];
    /// 0 when absent.
    pub fn count(&self, key: &str) -> Result<u64, FieldError> {
        let Some(raw) = self.get(key) else {
            return Ok(0);
        };
        let text = raw.get();
        // Plain digits (nearly every count) skip building a Value.
        if (1..=15).contains(&text.len())
            && text.bytes().all(|b| b.is_ascii_digit())
            && let Ok(n) = text.parse::<u64>()
            && n <= MAX_TOKENS
        {
            return Ok(n);
        }
        let value: Value =
            serde_json::from_str(text).map_err(|e| self.error(key, e.to_string()))?;
        count_value(&value).map_err(|reason| self.error(key, reason))
    }

    /// A count that must be present.
    pub fn required_count(&self, key: &str) -> Result<u64, FieldError> {
        if self.get(key).is_none() {
            return Err(self.error(key, "a value is required"));
        }
        self.count(key)
    }

    pub fn bool(&self, key: &str) -> Result<bool, FieldError> {
        match self.value(key)? {
            None => Ok(false),
            Some(Value::Bool(b)) => Ok(b),
            Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => Ok(true),
            Some(Value::String(s)) if s.eq_ignore_ascii_case("false") || s.is_empty() => Ok(false),
            Some(_) => Err(self.error(key, "expected true or false")),
        }
    }

    /// Unix seconds (an integer, or its text) as microseconds.
    pub fn unix_seconds(&self, key: &str) -> Result<i64, FieldError> {
        let v = self
            .value(key)?
            .ok_or_else(|| self.error(key, "a value is required"))?;
        let secs = match &v {
            Value::Number(n) => n.as_i64(),
            Value::String(s) => s.trim().parse::<i64>().ok(),
            _ => None,
        }
        .ok_or_else(|| self.error(key, "expected unix seconds"))?;
        unix_micros(secs, 1_000_000).ok_or_else(|| self.error(key, "out of range"))
    }

    /// An RFC 3339 timestamp (or one of the forms `usage.ts` accepts) as microseconds.
    pub fn timestamp(&self, key: &str) -> Result<i64, FieldError> {
        let text = self.required_str(key)?;
        super::parse_timestamp(&text).map_err(|reason| self.error(key, reason))
    }
}

pub(crate) fn error(column: &str, reason: impl Into<String>) -> FieldError {
    FieldError {
        column: column.to_string(),
        reason: reason.into(),
    }
}

/// `secs * unit` microseconds in the years 1970..=9999, where a timestamp can be stored.
fn unix_micros(value: i64, micros_per_unit: i64) -> Option<i64> {
    const MAX_MICROS: i64 = 253_402_300_799_000_000;
    let micros = value.checked_mul(micros_per_unit)?;
    (0..=MAX_MICROS).contains(&micros).then_some(micros)
}

/// A token count from JSON: a non-negative integer, or its text (OTLP sends 64-bit integers
/// as strings).
pub fn count_value(v: &Value) -> Result<u64, String> {
    let n = match v {
        Value::Number(n) => match n.as_u64() {
            Some(n) => n,
            None if n.as_i64().is_some_and(|i| i < 0) => {
                return Err(format!("{n} is negative"));
            }
            None => match n.as_f64() {
                Some(f) if f >= 0.0 && f.fract() == 0.0 && f < 1e16 => f as u64,
                _ => return Err(format!("expected a whole number, got {n}")),
            },
        },
        Value::String(s) => match s.trim().parse::<i64>() {
            Ok(i) if i < 0 => return Err(format!("{i} is negative")),
            Ok(i) => i as u64,
            Err(_) => return Err(format!("expected a whole number, got {:?}", clip(s))),
        },
        _ => return Err("expected a whole number".into()),
    };
    if n > MAX_TOKENS {
        return Err(format!("{n} is more than {MAX_TOKENS}"));
    }
    Ok(n)
}

/// `total - parts`, the uncached input when a provider counts cache reads and writes inside
/// its input figure; an error when the parts exceed the total.
pub fn uncached(total: u64, parts: &[u64], column: &str) -> Result<u64, FieldError> {
    let sum: u64 = parts.iter().sum();
    total.checked_sub(sum).ok_or_else(|| {
        error(
            column,
            format!("{total} input tokens cannot include {sum} cached or cache-write tokens"),
        )
    })
}

pub fn clip(s: &str) -> String {
    s.chars().take(40).collect()
}

/// The canonical provider id for the names OpenTelemetry, LiteLLM and gateways use.
pub fn canonical_provider(name: &str) -> String {
    let lower = name.trim().to_ascii_lowercase();
    let canonical = match lower.as_str() {
        "gcp.gemini" | "gcp.gen_ai" | "gcp.vertex_ai" | "vertex_ai" | "vertex_ai_beta"
        | "gemini" | "google" | "google_ai_studio" => "google",
        "aws.bedrock" | "bedrock" | "bedrock_converse" | "aws_bedrock" => "aws_bedrock",
        "azure.ai.openai" | "azure" | "azure_openai" => "azure_openai",
        "azure.ai.inference" | "azure_ai" => "azure_ai",
        "mistral_ai" | "mistral" => "mistral",
        "x_ai" | "xai" => "xai",
        "ibm.watsonx.ai" | "watsonx" => "ibm_watsonx",
        other => return other.replace(['.', '-', ' '], "_"),
    };
    canonical.to_string()
}

/// A provider's service tier name as one of SpendQL's (standard, batch, flex, priority,
/// scale); an unknown name is an error rather than a guess that misprices.
pub fn service_tier(name: &str) -> Result<&'static str, String> {
    match name.trim().to_ascii_lowercase().as_str() {
        "" | "standard" | "default" | "auto" | "on_demand" => Ok("standard"),
        "batch" => Ok("batch"),
        "flex" | "flex_discount" => Ok("flex"),
        "priority" | "priority_on_demand" => Ok("priority"),
        "scale" => Ok("scale"),
        other => Err(format!(
            "unknown service tier {:?} (standard, default, batch, flex, priority, scale)",
            clip(other)
        )),
    }
}

/// `prefix` plus a stable 128-bit hash of the fields that identify a record.
pub fn identity_id(prefix: &str, parts: &[&str]) -> String {
    let mut text = String::with_capacity(64);
    for p in parts {
        text.push_str(p);
        text.push('\u{1f}');
    }
    format!(
        "{prefix}:{:032x}",
        xxhash_rust::xxh3::xxh3_128(text.as_bytes())
    )
}

/// A JSON object as the `tags` text, or `None` when it is empty.
pub fn tags_text(tags: Map<String, Value>) -> Option<String> {
    (!tags.is_empty()).then(|| Value::Object(tags).to_string())
}

/// An amount from JSON (a number or a decimal string) in USD as decimal text, divided by
/// `10^shift` (2 for amounts in cents) and rounded half to even at 12 places: APIs send
/// binary floats such as `0.18400000000000002`.
pub fn amount_text(v: &Value, shift: u32) -> Result<String, String> {
    let text = match v {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.trim().to_string(),
        _ => return Err("expected a decimal amount".into()),
    };
    let mut d: rust_decimal::Decimal = text
        .parse()
        .or_else(|_| rust_decimal::Decimal::from_scientific(&text))
        .map_err(|_| format!("expected a decimal amount, got {:?}", clip(&text)))?;
    d.set_scale(d.scale() + shift)
        .map_err(|_| format!("{text} has too many decimal places"))?;
    let d = d.round_dp_with_strategy(12, rust_decimal::RoundingStrategy::MidpointNearestEven);
    Ok(d.to_string())
}

/// [`amount_text`] as a scale-12 mantissa.
pub fn amount(v: &Value, shift: u32) -> Result<i128, String> {
    super::parse_decimal(&amount_text(v, shift)?, 12)
}

/// Calls `convert(bucket, result, bucket_start)` for each result of each bucket of an API
/// page (`{data: [{..., results: [...]}]}`, OpenAI's and Anthropic's shape), with paths
/// like `data[1].results[0]` for errors. `start_of` reads a bucket's start time.
pub fn each_result<T>(
    record: &str,
    start_of: impl Fn(&At<'_>) -> Result<i64, FieldError>,
    mut convert: impl FnMut(&At<'_>, &At<'_>, i64) -> Result<T, FieldError>,
    out: &mut Converted<T>,
) -> Result<(), FieldError> {
    let page = At::parse(record)?;
    if let Some(object) = page.str("object")?
        && object != "page"
    {
        return Err(page.error("object", format!("expected \"page\", got {object:?}")));
    }
    if page.get("data").is_none() {
        return Err(page.error("data", "a value is required (an API page)"));
    }
    for (b, bucket) in page.array("data")?.iter().enumerate() {
        let bucket_path = format!("data[{b}]");
        let bucket = match kind(bucket) {
            b'{' => At::parse_at(bucket.get(), bucket_path.clone())?,
            _ => return Err(error(&bucket_path, "expected a bucket object")),
        };
        let start = start_of(&bucket)?;
        for (r, result) in bucket.array("results")?.iter().enumerate() {
            let path = format!("{bucket_path}.results[{r}]");
            let converted = match kind(result) {
                b'{' => At::parse_at(result.get(), path)
                    .and_then(|result| convert(&bucket, &result, start)),
                _ => Err(error(&path, "expected a result object")),
            };
            out.push(converted);
        }
    }
    Ok(())
}

/// Days since the epoch of a microsecond timestamp.
pub fn day_of(micros: i64) -> i32 {
    i32::try_from(micros.div_euclid(86_400_000_000)).unwrap_or(i32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_follow_the_usage_schema() {
        let schema = crate::schema::usage_schema();
        let names = [
            (Col::EventId, "event_id"),
            (Col::Ts, "ts"),
            (Col::Provider, "provider"),
            (Col::Model, "model"),
            (Col::InputTokens, "input_tokens"),
            (Col::CachedInputTokens, "cached_input_tokens"),
            (Col::CacheWriteTokens, "cache_write_tokens"),
            (Col::CacheWrite1hTokens, "cache_write_1h_tokens"),
            (Col::OutputTokens, "output_tokens"),
            (Col::ReasoningTokens, "reasoning_tokens"),
            (Col::Requests, "requests"),
            (Col::ServiceTier, "service_tier"),
            (Col::Region, "region"),
            (Col::ApiKeyId, "api_key_id"),
            (Col::Project, "project"),
            (Col::Team, "team"),
            (Col::Feature, "feature"),
            (Col::Customer, "customer"),
            (Col::Environment, "environment"),
            (Col::UserId, "user_id"),
            (Col::Tags, "tags"),
            (Col::LatencyMs, "latency_ms"),
            (Col::Status, "status"),
            (Col::PromptHash, "prompt_hash"),
            (Col::MaxTokens, "max_tokens"),
            (Col::ReportedCost, "reported_cost"),
        ];
        assert_eq!(names.len(), COLS);
        for (col, name) in names {
            assert_eq!(schema.field(col as usize).name(), name);
        }
    }

    #[test]
    fn counts_reject_negative_fractional_and_absurd_values() {
        assert_eq!(count_value(&serde_json::json!(12)), Ok(12));
        assert_eq!(count_value(&serde_json::json!("12")), Ok(12));
        assert!(count_value(&serde_json::json!(-1)).is_err());
        assert!(count_value(&serde_json::json!("-1")).is_err());
        assert!(count_value(&serde_json::json!(1.5)).is_err());
        assert!(count_value(&serde_json::json!("lots")).is_err());
        assert!(count_value(&serde_json::json!(MAX_TOKENS + 1)).is_err());
        assert!(count_value(&serde_json::json!(true)).is_err());
    }

    #[test]
    fn amounts_are_exact_and_cents_are_shifted() {
        assert_eq!(
            amount(&serde_json::json!("1234.5678"), 2),
            Ok(12_345_678_000_000)
        );
        assert_eq!(amount(&serde_json::json!(0.1), 0), Ok(100_000_000_000));
        assert_eq!(
            amount_text(&serde_json::json!(0.18400000000000002), 0).as_deref(),
            Ok("0.184000000000")
        );
        assert!(amount(&serde_json::json!("ten"), 0).is_err());
    }

    #[test]
    fn providers_and_tiers_normalise() {
        assert_eq!(canonical_provider("gcp.vertex_ai"), "google");
        assert_eq!(canonical_provider("aws.bedrock"), "aws_bedrock");
        assert_eq!(canonical_provider("Some.New-AI"), "some_new_ai");
        assert_eq!(service_tier("default"), Ok("standard"));
        assert_eq!(service_tier("priority_on_demand"), Ok("priority"));
        assert!(service_tier("turbo-max").is_err());
    }

    #[test]
    fn uncached_input_refuses_parts_above_the_total() {
        assert_eq!(uncached(100, &[30, 20], "x"), Ok(50));
        assert!(uncached(10, &[30], "x").is_err());
    }
}
