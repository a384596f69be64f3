//! OpenTelemetry traces in OTLP/JSON (`{resourceSpans: [{resource, scopeSpans: [{spans}]}]}`,
//! one export per record, as the Collector's file exporter writes them) with the GenAI
//! semantic conventions. Spans without `gen_ai.usage.*` token counts are not model calls and
//! are skipped.

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

/// One OTLP export → a row per GenAI span.
///
/// `gen_ai.usage.input_tokens` includes the cache read and cache creation parts (as the
/// conventions say it should), so the uncached part is stored; `output_tokens` includes
/// reasoning.
pub fn usage(
    record: &Value,
    mapping: &Mapping,
    out: &mut Converted<Row>,
) -> Result<(), FieldError> {
    let Value::Object(export) = record else {
        return Err(error("record", "expected an OTLP export object"));
    };
    let Some(Value::Array(resource_spans)) = export.get("resourceSpans") else {
        return Err(error(
            "resourceSpans",
            "a value is required (an OTLP/JSON trace export)",
        ));
    };
    for (r, resource_span) in resource_spans.iter().enumerate() {
        let resource_attrs = resource_span
            .get("resource")
            .and_then(|res| res.get("attributes"));
        let resource = attributes(resource_attrs)
            .map_err(|e| within(&format!("resourceSpans[{r}].resource"), e))?;
        let scopes = resource_span
            .get("scopeSpans")
            .or_else(|| resource_span.get("instrumentationLibrarySpans"))
            .and_then(Value::as_array)
            .map_or(&[][..], Vec::as_slice);
        for (s, scope) in scopes.iter().enumerate() {
            let spans = scope
                .get("spans")
                .and_then(Value::as_array)
                .map_or(&[][..], Vec::as_slice);
            for (k, span) in spans.iter().enumerate() {
                match span_row(span, &resource, mapping) {
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

/// The attributes of a span or resource: OTLP's `{key, value: {xValue: ...}}` list, as
/// (key, AnyValue) pairs borrowed from the record.
fn attributes(list: Option<&Value>) -> Result<Vec<(&str, &Value)>, FieldError> {
    let Some(list) = list else {
        return Ok(Vec::new());
    };
    let Value::Array(items) = list else {
        return Err(error("attributes", "expected an array"));
    };
    let mut pairs = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let key = item
            .get("key")
            .and_then(Value::as_str)
            .ok_or_else(|| error(&format!("attributes[{i}]"), "an attribute needs a key"))?;
        match item.get("value") {
            Some(value @ Value::Object(map)) if !map.is_empty() => pairs.push((key, value)),
            _ => {}
        }
    }
    Ok(pairs)
}

/// The value inside an AnyValue (`{"intValue": "12"}` → `"12"`).
fn inner(any: &Value) -> Option<&Value> {
    any.as_object()
        .and_then(|m| m.values().next())
        .filter(|v| !v.is_null())
}

/// OTLP's AnyValue as plain JSON (64-bit integers arrive as text and stay exact).
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
        ("kvlistValue", Value::Object(kv)) => {
            let pairs = attributes(kv.get("values")).map_err(|e| e.reason)?;
            Value::Object(
                pairs
                    .into_iter()
                    .map(|(k, v)| Ok((k.to_string(), any_value(v)?)))
                    .collect::<Result<_, String>>()?,
            )
        }
        ("bytesValue", Value::String(s)) => Value::String(s.clone()),
        (other, _) => return Err(format!("unsupported AnyValue {other:?}")),
    })
}

struct Attrs<'a> {
    span: &'a [(&'a str, &'a Value)],
    resource: &'a [(&'a str, &'a Value)],
}

impl Attrs<'_> {
    /// The value inside the attribute's AnyValue; span attributes first.
    fn get(&self, key: &str) -> Option<&Value> {
        self.span
            .iter()
            .chain(self.resource)
            .filter(|(k, _)| *k == key)
            .find_map(|(_, v)| inner(v))
    }

    fn text(&self, key: &str) -> Option<String> {
        self.get(key).map(|v| match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
    }

    fn count(&self, key: &str) -> Result<u64, FieldError> {
        match self.get(key) {
            None => Ok(0),
            Some(v) => count_value(v).map_err(|reason| error(key, reason)),
        }
    }
}

fn span_row(
    span: &Value,
    resource: &[(&str, &Value)],
    mapping: &Mapping,
) -> Result<Option<Row>, FieldError> {
    let span_attrs = attributes(span.get("attributes"))?;
    let attrs = Attrs {
        span: &span_attrs,
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
    let start = nanos(span, "startTimeUnixNano")?;
    let end = nanos(span, "endTimeUnixNano").ok();
    let trace = span.get("traceId").and_then(Value::as_str).unwrap_or("");
    let span_id = span.get("spanId").and_then(Value::as_str).unwrap_or("");
    let event_id = if trace.is_empty() || span_id.is_empty() {
        identity_id("otel", &[&span.to_string()])
    } else {
        format!("otel:{trace}:{span_id}")
    };
    let status = match span.get("status").and_then(|s| s.get("code")) {
        Some(Value::Number(n)) if n.as_i64() == Some(2) => "error",
        Some(Value::String(s)) if s == "STATUS_CODE_ERROR" => "error",
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
        let max = count_value(max).map_err(|e| error("gen_ai.request.max_tokens", e))?;
        row.tokens(Col::MaxTokens, max);
    }
    // The de-facto cost attribute (OpenLIT and others); the conventions define none.
    if let Some(cost) = attrs.get("gen_ai.usage.cost") {
        let usd = super::amount_text(cost, 0).map_err(|e| error("gen_ai.usage.cost", e))?;
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
    for &(key, any) in span_attrs.iter().chain(resource) {
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
        let value = any_value(any).map_err(|reason| error(key, reason))?;
        let too_long = matches!(&value, Value::String(s) if s.len() > MAX_TAG_TEXT);
        if !value.is_null() && !too_long {
            tags.insert(key.to_string(), value);
        }
    }
    row.opt_text(Col::Tags, super::tags_text(tags).as_deref());
    Ok(Some(row))
}

/// A `*UnixNano` field (OTLP/JSON writes it as text) as nanoseconds.
fn nanos(span: &Value, key: &str) -> Result<i64, FieldError> {
    let value = span
        .get(key)
        .ok_or_else(|| error(key, "a value is required"))?;
    let n = match value {
        Value::String(s) => s.trim().parse::<i64>().ok(),
        Value::Number(n) => n.as_i64(),
        _ => None,
    }
    .ok_or_else(|| error(key, "expected nanoseconds since the epoch"))?;
    if n <= 0 {
        return Err(error(key, "expected nanoseconds since the epoch"));
    }
    Ok(n)
}
