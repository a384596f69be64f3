//! OpenTelemetry traces in OTLP/JSON (`{resourceSpans: [{resource, scopeSpans: [{spans}]}]}`,
//! one export per record, as the Collector's file exporter writes them) with the GenAI
//! semantic conventions. Spans without `gen_ai.usage.*` token counts are not model calls and
//! are skipped.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Number, Value};

use super::{
    Col, Converted, FieldError, Row, canonical_provider, count_value, error, identity_id,
    service_tier, uncached,
};

/// Which attributes fill which attribution columns; the first attribute present wins, span
/// attributes before resource attributes. Documented in the README; `--map` overrides it.
#[derive(Debug, Clone)]
pub struct Mapping {
    columns: Vec<(Col, Vec<String>)>,
}

impl Default for Mapping {
    fn default() -> Self {
        let of = |col: Col, keys: &[&str]| (col, keys.iter().map(|k| k.to_string()).collect());
        Mapping {
            columns: vec![
                of(Col::Team, &["spendql.team", "team"]),
                of(Col::Feature, &["spendql.feature", "feature"]),
                of(
                    Col::Customer,
                    &["spendql.customer", "customer", "tenant.id"],
                ),
                of(
                    Col::Environment,
                    &[
                        "spendql.environment",
                        "deployment.environment.name",
                        "deployment.environment",
                    ],
                ),
                of(Col::UserId, &["user.id", "enduser.id"]),
                of(Col::Project, &["spendql.project", "gen_ai.openai.project"]),
                of(Col::ApiKeyId, &["spendql.api_key_id"]),
            ],
        }
    }
}

/// Columns `--map` may set.
const MAPPABLE: [(&str, Col); 7] = [
    ("team", Col::Team),
    ("feature", Col::Feature),
    ("customer", Col::Customer),
    ("environment", Col::Environment),
    ("user_id", Col::UserId),
    ("project", Col::Project),
    ("api_key_id", Col::ApiKeyId),
];

impl Mapping {
    /// Apply `column=attribute[,attribute...]`, replacing that column's attributes.
    pub fn set(&mut self, spec: &str) -> Result<(), String> {
        let (column, attributes) = spec
            .split_once('=')
            .ok_or_else(|| format!("expected COLUMN=ATTRIBUTE[,ATTRIBUTE...], got {spec:?}"))?;
        let col = MAPPABLE
            .iter()
            .find(|(name, _)| *name == column.trim())
            .map(|(_, col)| *col)
            .ok_or_else(|| {
                let names: Vec<_> = MAPPABLE.iter().map(|(n, _)| *n).collect();
                format!("{column:?} is not one of {}", names.join(", "))
            })?;
        let keys: Vec<String> = attributes
            .split(',')
            .map(|k| k.trim().to_string())
            .filter(|k| !k.is_empty())
            .collect();
        match self.columns.iter_mut().find(|(c, _)| *c == col) {
            Some((_, existing)) => *existing = keys,
            None => self.columns.push((col, keys)),
        }
        Ok(())
    }
}

/// Attributes whose values are message content, never copied into `tags`.
const CONTENT: [&str; 6] = [
    "gen_ai.input.messages",
    "gen_ai.output.messages",
    "gen_ai.system_instructions",
    "gen_ai.tool.definitions",
    "gen_ai.prompt",
    "gen_ai.completion",
];
/// Longer string values are left out of `tags`.
const MAX_TAG_TEXT: usize = 1024;

/// One OTLP export, already parsed, → a row per GenAI span. (Re-serialises it and takes
/// [`usage_json`]'s path; readers that have the record's text call that directly.)
pub fn usage(
    record: &Value,
    mapping: &Mapping,
    out: &mut Converted<Row>,
) -> Result<(), FieldError> {
    let text = serde_json::to_vec(record).map_err(|e| error("record", e.to_string()))?;
    usage_json(&text, mapping, out)
}

/// One OTLP/JSON export → a row per GenAI span.
///
/// `gen_ai.usage.input_tokens` includes the cache read and cache creation parts (as the
/// conventions say it should), so the uncached part is stored; `output_tokens` includes
/// reasoning. The export is read into borrowing structs, not a `Value` tree: an export holds
/// hundreds of spans of a dozen attribute objects each, and allocating them dominated.
pub fn usage_json(
    text: &[u8],
    mapping: &Mapping,
    out: &mut Converted<Row>,
) -> Result<(), FieldError> {
    let export: Export<'_> = serde_json::from_slice(text)
        .map_err(|e| error("record", format!("invalid OTLP/JSON: {e}")))?;
    let Some(resource_spans) = export.resource_spans else {
        return Err(error(
            "resourceSpans",
            "a value is required (an OTLP/JSON trace export)",
        ));
    };
    for (r, resource_span) in resource_spans.iter().enumerate() {
        let resource = resource_span
            .resource
            .as_ref()
            .map_or(&[][..], |res| res.attributes.as_slice());
        for (s, scope) in resource_span.scope_spans.iter().enumerate() {
            for (k, span) in scope.spans.iter().enumerate() {
                match span_row(span, resource, mapping) {
                    Ok(Some(row)) => out.push(Ok(row)),
                    Ok(None) => {}
                    Err(e) => out.push(Err(within(
                        &format!("resourceSpans[{r}].scopeSpans[{s}].spans[{k}]"),
                        e,
                    ))),
                }
            }
        }
    }
    Ok(())
}

/// `e` with its column placed under `path` (paths are built only for errors).
fn within(path: &str, e: FieldError) -> FieldError {
    FieldError {
        column: format!("{path}.{}", e.column),
        reason: e.reason,
    }
}

#[derive(Deserialize)]
struct Export<'a> {
    #[serde(borrow, rename = "resourceSpans")]
    resource_spans: Option<Vec<ResourceSpans<'a>>>,
}

#[derive(Deserialize)]
struct ResourceSpans<'a> {
    #[serde(borrow, default)]
    resource: Option<Resource<'a>>,
    #[serde(
        borrow,
        default,
        rename = "scopeSpans",
        alias = "instrumentationLibrarySpans"
    )]
    scope_spans: Vec<ScopeSpans<'a>>,
}

#[derive(Deserialize)]
struct Resource<'a> {
    #[serde(borrow, default)]
    attributes: Vec<KeyValue<'a>>,
}

#[derive(Deserialize)]
struct ScopeSpans<'a> {
    #[serde(borrow, default)]
    spans: Vec<Span<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Span<'a> {
    #[serde(borrow, default)]
    trace_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    span_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    start_time_unix_nano: Option<&'a RawValue>,
    #[serde(borrow, default)]
    end_time_unix_nano: Option<&'a RawValue>,
    #[serde(borrow, default)]
    attributes: Vec<KeyValue<'a>>,
    #[serde(borrow, default)]
    status: Option<Status<'a>>,
}

#[derive(Deserialize)]
struct Status<'a> {
    #[serde(borrow, default)]
    code: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct KeyValue<'a> {
    #[serde(borrow)]
    key: Cow<'a, str>,
    #[serde(borrow, default)]
    value: Option<AnyValue<'a>>,
}

/// OTLP's AnyValue: one of these is set. Numbers stay raw text until they are needed
/// (OTLP/JSON writes 64-bit integers as strings).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AnyValue<'a> {
    #[serde(borrow, default)]
    string_value: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    int_value: Option<&'a RawValue>,
    #[serde(borrow, default)]
    double_value: Option<&'a RawValue>,
    #[serde(default)]
    bool_value: Option<bool>,
    #[serde(borrow, default)]
    array_value: Option<&'a RawValue>,
    #[serde(borrow, default)]
    kvlist_value: Option<&'a RawValue>,
    #[serde(borrow, default)]
    bytes_value: Option<Cow<'a, str>>,
}

impl AnyValue<'_> {
    /// The value as plain JSON (64-bit integers exact); `Null` when none is set.
    fn to_json(&self) -> Result<Value, String> {
        if let Some(s) = &self.string_value {
            return Ok(Value::String(s.to_string()));
        }
        if let Some(b) = self.bool_value {
            return Ok(Value::Bool(b));
        }
        if let Some(raw) = self.int_value {
            let text = unquote(raw);
            return match text.trim().parse::<i64>() {
                Ok(i) => Ok(Value::Number(i.into())),
                // Kept as text so that a count reading it can say what it got.
                Err(_) => Ok(Value::String(text.to_string())),
            };
        }
        if let Some(raw) = self.double_value {
            let text = unquote(raw);
            return text
                .trim()
                .parse::<f64>()
                .ok()
                .and_then(Number::from_f64)
                .map(Value::Number)
                .ok_or_else(|| format!("doubleValue {:?} is not a number", super::clip(text)));
        }
        for (kind, raw) in [
            ("arrayValue", self.array_value),
            ("kvlistValue", self.kvlist_value),
        ] {
            if let Some(raw) = raw {
                let mut wrapper = Map::new();
                let inner: Value = serde_json::from_str(raw.get()).map_err(|e| e.to_string())?;
                wrapper.insert(kind.into(), inner);
                return any_value(&Value::Object(wrapper));
            }
        }
        Ok(self
            .bytes_value
            .as_ref()
            .map_or(Value::Null, |b| Value::String(b.to_string())))
    }
}

/// A raw JSON scalar's text without its quotes (`"12"` → `12`).
fn unquote(raw: &RawValue) -> &str {
    let text = raw.get().trim();
    text.strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .unwrap_or(text)
}

/// OTLP's AnyValue (as plain JSON) to its value, for nested arrays and key-value lists.
fn any_value(v: &Value) -> Result<Value, String> {
    let Some((kind, inner)) = v.as_object().and_then(|m| m.iter().next()) else {
        return Ok(Value::Null);
    };
    Ok(match (kind.as_str(), inner) {
        ("stringValue", Value::String(s)) => Value::String(s.clone()),
        ("boolValue", Value::Bool(b)) => Value::Bool(*b),
        ("intValue", Value::Number(n)) if n.is_i64() || n.is_u64() => Value::Number(n.clone()),
        ("intValue", Value::String(s)) => match s.trim().parse::<i64>() {
            Ok(i) => Value::Number(i.into()),
            Err(_) => return Err(format!("intValue {:?} is not an integer", super::clip(s))),
        },
        ("doubleValue", Value::Number(n)) => Value::Number(n.clone()),
        ("doubleValue", Value::String(s)) => s
            .parse::<f64>()
            .ok()
            .and_then(Number::from_f64)
            .map(Value::Number)
            .ok_or_else(|| format!("doubleValue {:?} is not a number", super::clip(s)))?,
        ("arrayValue", Value::Object(a)) => Value::Array(
            a.get("values")
                .and_then(Value::as_array)
                .map_or(&[][..], Vec::as_slice)
                .iter()
                .map(any_value)
                .collect::<Result<_, _>>()?,
        ),
        ("kvlistValue", Value::Object(kv)) => Value::Object(
            kv.get("values")
                .and_then(Value::as_array)
                .map_or(&[][..], Vec::as_slice)
                .iter()
                .filter_map(|item| {
                    let key = item.get("key")?.as_str()?.to_string();
                    Some(
                        item.get("value")
                            .map_or(Ok(Value::Null), any_value)
                            .map(|v| (key, v)),
                    )
                })
                .collect::<Result<_, String>>()?,
        ),
        ("bytesValue", Value::String(s)) => Value::String(s.clone()),
        (other, _) => return Err(format!("unsupported AnyValue {other:?}")),
    })
}

struct Attrs<'s, 'a> {
    span: &'s [KeyValue<'a>],
    resource: &'s [KeyValue<'a>],
}

impl Attrs<'_, '_> {
    /// The attribute's value as plain JSON; span attributes first.
    fn get(&self, key: &str) -> Option<Value> {
        self.span
            .iter()
            .chain(self.resource)
            .filter(|kv| kv.key == key)
            .find_map(|kv| kv.value.as_ref()?.to_json().ok())
            .filter(|v| !v.is_null())
    }

    fn text(&self, key: &str) -> Option<String> {
        self.get(key).map(|v| match v {
            Value::String(s) => s,
            other => other.to_string(),
        })
    }

    fn count(&self, key: &str) -> Result<u64, FieldError> {
        match self.get(key) {
            None => Ok(0),
            Some(v) => count_value(&v).map_err(|reason| error(key, reason)),
        }
    }
}

fn span_row(
    span: &Span<'_>,
    resource: &[KeyValue<'_>],
    mapping: &Mapping,
) -> Result<Option<Row>, FieldError> {
    let attrs = Attrs {
        span: &span.attributes,
        resource,
    };
    let (input_key, output_key) = if attrs.get("gen_ai.usage.input_tokens").is_some()
        || attrs.get("gen_ai.usage.output_tokens").is_some()
    {
        ("gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens")
    } else if attrs.get("gen_ai.usage.prompt_tokens").is_some()
        || attrs.get("gen_ai.usage.completion_tokens").is_some()
    {
        (
            "gen_ai.usage.prompt_tokens",
            "gen_ai.usage.completion_tokens",
        )
    } else {
        return Ok(None);
    };
    let provider = attrs
        .text("gen_ai.provider.name")
        .or_else(|| attrs.text("gen_ai.system"))
        .ok_or_else(|| error("gen_ai.provider.name", "a value is required"))?;
    let model = attrs
        .text("gen_ai.response.model")
        .or_else(|| attrs.text("gen_ai.request.model"))
        .filter(|m| !m.is_empty())
        .ok_or_else(|| error("gen_ai.request.model", "a value is required"))?;
    let cache_read = attrs.count("gen_ai.usage.cache_read.input_tokens")?;
    let cache_write = attrs.count("gen_ai.usage.cache_creation.input_tokens")?;
    let input = uncached(
        attrs.count(input_key)?,
        &[cache_read, cache_write],
        input_key,
    )?;
    let start = nanos(span.start_time_unix_nano, "startTimeUnixNano")?;
    let end = nanos(span.end_time_unix_nano, "endTimeUnixNano").ok();
    let trace = span.trace_id.as_deref().unwrap_or("");
    let span_id = span.span_id.as_deref().unwrap_or("");
    let event_id = if trace.is_empty() || span_id.is_empty() {
        // No ids: the span's time and attributes identify it.
        let mut identity = start.to_string();
        for kv in &span.attributes {
            let value = kv.value.as_ref().and_then(|v| v.to_json().ok());
            identity.push_str(&format!(
                "\u{1f}{}={}",
                kv.key,
                value.unwrap_or(Value::Null)
            ));
        }
        identity_id("otel", &[&identity])
    } else {
        format!("otel:{trace}:{span_id}")
    };
    let status = match span.status.as_ref().and_then(|s| s.code).map(unquote) {
        Some("2" | "STATUS_CODE_ERROR") => "error",
        _ => "ok",
    };
    let mut row = Row::default();
    row.text(Col::EventId, event_id)
        .micros(Col::Ts, start / 1000)
        .text(Col::Provider, canonical_provider(&provider))
        .text(Col::Model, model)
        .tokens(Col::InputTokens, input)
        .tokens(Col::CachedInputTokens, cache_read)
        .tokens(Col::CacheWriteTokens, cache_write)
        .tokens(Col::OutputTokens, attrs.count(output_key)?)
        .tokens(
            Col::ReasoningTokens,
            attrs.count("gen_ai.usage.reasoning.output_tokens")?,
        )
        .int(Col::Requests, 1)
        .text(Col::Status, status);
    if let Some(end) = end {
        row.latency((end - start) / 1000);
    }
    for key in [
        "gen_ai.openai.response.service_tier",
        "gen_ai.openai.request.service_tier",
        "openai.response.service_tier",
    ] {
        if let Some(tier) = attrs.text(key) {
            let tier = service_tier(&tier).map_err(|e| error(key, e))?;
            row.text(Col::ServiceTier, tier);
            break;
        }
    }
    if let Some(max) = attrs.get("gen_ai.request.max_tokens") {
        let max = count_value(&max).map_err(|e| error("gen_ai.request.max_tokens", e))?;
        row.tokens(Col::MaxTokens, max);
    }
    // The de-facto cost attribute (OpenLIT and others); the conventions define none.
    if let Some(cost) = attrs.get("gen_ai.usage.cost") {
        let usd = super::amount_text(&cost, 0).map_err(|e| error("gen_ai.usage.cost", e))?;
        row.text(Col::ReportedCost, usd);
    }
    let mut used: Vec<&str> = Vec::new();
    for (col, keys) in &mapping.columns {
        if let Some(key) = keys.iter().find(|k| attrs.get(k).is_some()) {
            row.opt_text(*col, attrs.text(key).as_deref());
            used.push(key.as_str());
        }
    }
    let mut tags = Map::new();
    for kv in span.attributes.iter().chain(resource) {
        let key = kv.key.as_ref();
        let Some(any) = &kv.value else {
            continue;
        };
        let skip = key.starts_with("gen_ai.usage.")
            || CONTENT.contains(&key)
            || used.contains(&key)
            || tags.contains_key(key)
            || matches!(
                key,
                "gen_ai.provider.name"
                    | "gen_ai.system"
                    | "gen_ai.request.model"
                    | "gen_ai.response.model"
                    | "gen_ai.request.max_tokens"
            );
        if skip {
            continue;
        }
        let value = any.to_json().map_err(|reason| error(key, reason))?;
        let too_long = matches!(&value, Value::String(s) if s.len() > MAX_TAG_TEXT);
        if !value.is_null() && !too_long {
            tags.insert(key.to_string(), value);
        }
    }
    row.opt_text(Col::Tags, super::tags_text(tags).as_deref());
    Ok(Some(row))
}

/// A `*UnixNano` field (OTLP/JSON writes it as text) as nanoseconds.
fn nanos(raw: Option<&RawValue>, key: &str) -> Result<i64, FieldError> {
    let raw = raw.ok_or_else(|| error(key, "a value is required"))?;
    match unquote(raw).trim().parse::<i64>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(error(key, "expected nanoseconds since the epoch")),
    }
}
