//! LiteLLM proxy `SpendLogs` exports, one row per request (JSON records, or CSV with the
//! same column names where `metadata` and `request_tags` are JSON text).

use serde_json::{Map, Value};

use super::{At, Col, Converted, FieldError, Row, canonical_provider, uncached};

/// Request tags `key:value` that name an attribution column.
const TAG_COLUMNS: [(&str, Col); 6] = [
    ("team", Col::Team),
    ("feature", Col::Feature),
    ("customer", Col::Customer),
    ("environment", Col::Environment),
    ("env", Col::Environment),
    ("user", Col::UserId),
];

/// One SpendLogs row → one usage row.
///
/// LiteLLM reports usage in OpenAI's shape whatever the provider: `prompt_tokens` includes
/// cache reads and writes (their counts are in `metadata.usage_object`), so the uncached part
/// is stored. `spend` is the gateway's own cost (`reported_cost`). A LiteLLM cache hit never
/// reached the provider, so it is stored with no tokens.
pub fn usage(record: &str, out: &mut Converted<Row>) -> Result<(), FieldError> {
    let log = At::parse(record)?;
    let event_id = log.required_str("request_id")?;
    let ts = log.timestamp("startTime")?;
    let model = log.required_str("model")?;
    let provider = match log.str("custom_llm_provider")? {
        Some(p) if !p.is_empty() => canonical_provider(&p),
        _ => match model.split_once('/') {
            Some((prefix, _)) => canonical_provider(prefix),
            None => return Err(log.error("custom_llm_provider", "a value is required")),
        },
    };
    let mut metadata_text = None;
    let metadata = embedded_object(&log, "metadata", &mut metadata_text)?;
    let usage_object = match &metadata {
        Some(m) => m.object("usage_object")?,
        None => None,
    };
    let (cache_read, cache_write, reasoning) = match &usage_object {
        Some(u) => {
            let details_cached = match u.object("prompt_tokens_details")? {
                Some(d) => d.count("cached_tokens")?,
                None => 0,
            };
            let read = match u.get("cache_read_input_tokens") {
                Some(_) => u.count("cache_read_input_tokens")?,
                None => details_cached,
            };
            let reasoning = match u.object("completion_tokens_details")? {
                Some(d) => d.count("reasoning_tokens")?,
                None => 0,
            };
            (read, u.count("cache_creation_input_tokens")?, reasoning)
        }
        None => (0, 0, 0),
    };
    let cache_hit = log.bool("cache_hit")?;
    let mut row = Row::default();
    row.text(Col::EventId, event_id)
        .micros(Col::Ts, ts)
        .text(Col::Provider, provider)
        .text(Col::Model, model)
        .int(Col::Requests, 1);
    if cache_hit {
        row.int(Col::InputTokens, 0).int(Col::OutputTokens, 0);
    } else {
        let input = uncached(
            log.count("prompt_tokens")?,
            &[cache_read, cache_write],
            &log.path("prompt_tokens"),
        )?;
        row.tokens(Col::InputTokens, input)
            .tokens(Col::CachedInputTokens, cache_read)
            .tokens(Col::CacheWriteTokens, cache_write)
            .tokens(Col::OutputTokens, log.count("completion_tokens")?)
            .tokens(Col::ReasoningTokens, reasoning);
    }
    if let Some(spend) = log.value("spend")? {
        let usd = super::amount_text(&spend, 0).map_err(|e| log.error("spend", e))?;
        row.text(Col::ReportedCost, usd);
    }
    if let Some(end) = log
        .get("endTime")
        .map(|_| log.timestamp("endTime"))
        .transpose()?
    {
        row.latency(end - ts);
    }
    let status = log.str("status")?;
    match status.as_deref() {
        Some("success") | Some("ok") => {
            row.text(Col::Status, "ok");
        }
        Some("failure") | Some("error") => {
            row.text(Col::Status, "error");
        }
        _ => {}
    }
    let team = match metadata
        .as_ref()
        .map(|m| m.str("user_api_key_team_alias"))
        .transpose()?
        .flatten()
    {
        Some(alias) if !alias.is_empty() => Some(alias),
        _ => log.str("team_id")?,
    };
    row.opt_text(
        Col::ApiKeyId,
        log.str("api_key")?.filter(|k| !k.is_empty()).as_deref(),
    )
    .opt_text(
        Col::UserId,
        log.str("user")?.filter(|u| !u.is_empty()).as_deref(),
    )
    .opt_text(
        Col::Customer,
        log.str("end_user")?.filter(|c| !c.is_empty()).as_deref(),
    )
    .opt_text(Col::Team, team.filter(|t| !t.is_empty()).as_deref());
    let mut tags = Map::new();
    if let Some(request_tags) = json_field(&log, "request_tags")? {
        let Value::Array(items) = &request_tags else {
            return Err(log.error("request_tags", "expected a list of tags"));
        };
        for tag in items.iter().filter_map(Value::as_str) {
            if let Some((key, value)) = tag.split_once(':')
                && let Some((_, col)) = TAG_COLUMNS.iter().find(|(k, _)| *k == key.trim())
                && *row.get(*col) == super::Cell::Null
            {
                row.text(*col, value.trim());
            }
        }
        if !items.is_empty() {
            tags.insert("request_tags".into(), request_tags.clone());
        }
    }
    for key in ["model_group", "call_type", "session_id"] {
        if let Some(v) = log.str(key)?.filter(|v| !v.is_empty()) {
            tags.insert(key.into(), Value::String(v));
        }
    }
    if cache_hit {
        tags.insert("litellm_cache_hit".into(), Value::Bool(true));
    }
    row.opt_text(Col::Tags, super::tags_text(tags).as_deref());
    out.push(Ok(row));
    Ok(())
}

/// A field holding a JSON object, or the JSON text of one (as in the CSV export); `holder`
/// keeps decoded text alive for the returned object to borrow.
fn embedded_object<'a: 'b, 'b>(
    log: &At<'a>,
    key: &str,
    holder: &'b mut Option<String>,
) -> Result<Option<At<'b>>, FieldError> {
    let Some(raw) = log.get(key) else {
        return Ok(None);
    };
    match raw.get().as_bytes().first() {
        Some(b'{') => log.object(key),
        Some(b'"') => {
            let text = log.str(key)?.unwrap_or_default();
            if text.trim().is_empty() {
                return Ok(None);
            }
            let text = holder.insert(text);
            At::parse_at(text, log.path(key)).map(Some)
        }
        _ => Err(log.error(key, "expected an object")),
    }
}

/// A field that is JSON, or JSON text (as in the CSV export).
fn json_field(log: &At<'_>, key: &str) -> Result<Option<Value>, FieldError> {
    match log.value(key)? {
        None => Ok(None),
        Some(Value::String(text)) if text.trim().is_empty() => Ok(None),
        Some(Value::String(text)) => serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| log.error(key, format!("invalid JSON: {e}"))),
        Some(other) => Ok(Some(other)),
    }
}
