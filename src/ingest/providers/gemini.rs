//! Gemini and Vertex AI responses (`GenerateContentResponse`) or log entries that carry one,
//! one JSON record each, read through their `usageMetadata`.

use serde_json::{Map, Value};

use super::{At, Col, Converted, FieldError, Row, error, identity_id, uncached};

/// Keys of a log entry that may hold the response itself.
const RESPONSE_KEYS: [&str; 3] = ["response", "jsonPayload", "full_response"];
/// Keys that may hold the time of the call, response first.
const TIME_KEYS: [&str; 5] = [
    "createTime",
    "timestamp",
    "logging_time",
    "receiveTimestamp",
    "ts",
];
/// Label keys that are attribution columns.
const LABEL_COLUMNS: [(&str, Col); 8] = [
    ("team", Col::Team),
    ("feature", Col::Feature),
    ("customer", Col::Customer),
    ("environment", Col::Environment),
    ("env", Col::Environment),
    ("user_id", Col::UserId),
    ("user", Col::UserId),
    ("project", Col::Project),
];

/// One response or log entry → one row.
///
/// `promptTokenCount` includes `cachedContentTokenCount`, so the uncached part is stored;
/// `toolUsePromptTokenCount` is billed as input and `thoughtsTokenCount` as output.
pub fn usage(record: &str, out: &mut Converted<Row>) -> Result<(), FieldError> {
    let entry = At::parse(record)?;
    if entry.get("usageMetadata").is_some() {
        return convert(&entry, &entry, out);
    }
    for key in RESPONSE_KEYS {
        let Some(raw) = entry.get(key) else {
            continue;
        };
        match raw.get().as_bytes().first() {
            Some(b'{') => {
                if let Some(inner) = entry.object(key)? {
                    return convert(&entry, &inner, out);
                }
            }
            // Request-response logs often keep the response as JSON text.
            Some(b'"') => {
                let text = entry.required_str(key)?;
                let inner = At::parse_at(&text, entry.path(key))?;
                return convert(&entry, &inner, out);
            }
            _ => {}
        }
    }
    Err(entry.error(
        "usageMetadata",
        "a value is required (a Gemini response, or a log entry with a response)",
    ))
}

fn convert(entry: &At<'_>, response: &At<'_>, out: &mut Converted<Row>) -> Result<(), FieldError> {
    let meta = response
        .object("usageMetadata")?
        .ok_or_else(|| response.error("usageMetadata", "a value is required"))?;
    let model = model_of(entry, response)?;
    let ts = TIME_KEYS
        .iter()
        .find_map(|k| response.get(k).map(|_| response.timestamp(k)))
        .or_else(|| {
            TIME_KEYS
                .iter()
                .find_map(|k| entry.get(k).map(|_| entry.timestamp(k)))
        })
        .unwrap_or_else(|| {
            Err(error(
                "createTime",
                "a value is required (the time of the call)",
            ))
        })?;
    let cached = meta.count("cachedContentTokenCount")?;
    let prompt = meta.count("promptTokenCount")?;
    let input = uncached(prompt, &[cached], &meta.path("promptTokenCount"))?
        + meta.count("toolUsePromptTokenCount")?;
    let thoughts = meta.count("thoughtsTokenCount")?;
    let output = meta.count("candidatesTokenCount")? + thoughts;
    let event_id = match response.str("responseId")? {
        Some(id) if !id.is_empty() => id,
        // Keys are sorted (serde_json without preserve_order), so the text is canonical.
        _ => {
            let record: Value = serde_json::from_str(entry.text())
                .map_err(|e| error("record", format!("invalid JSON: {e}")))?;
            identity_id("gemini", &[&record.to_string()])
        }
    };
    let mut row = Row::default();
    row.text(Col::EventId, event_id)
        .micros(Col::Ts, ts)
        .text(Col::Provider, "google")
        .text(Col::Model, model)
        .tokens(Col::InputTokens, input)
        .tokens(Col::CachedInputTokens, cached)
        .tokens(Col::OutputTokens, output)
        .tokens(Col::ReasoningTokens, thoughts);
    let mut tags = Map::new();
    if let Some(traffic) = meta.str("trafficType")?
        && traffic != "ON_DEMAND"
    {
        tags.insert("traffic_type".into(), traffic.into());
    }
    for holder in [entry, response] {
        if let Some(labels) = holder.object("labels")? {
            // Sorted and last-wins, as a JSON object map reads them.
            let members: std::collections::BTreeMap<_, _> = labels.members().collect();
            for (key, raw) in members {
                let value: Value = serde_json::from_str(raw.get())
                    .map_err(|e| labels.error(key, e.to_string()))?;
                let text = match value {
                    Value::String(s) => s,
                    Value::Null => continue,
                    other => other.to_string(),
                };
                match LABEL_COLUMNS.iter().find(|(k, _)| *k == key) {
                    Some((_, col)) => {
                        row.text(*col, text);
                    }
                    None => {
                        tags.insert(key.to_owned(), Value::String(text));
                    }
                }
            }
        }
    }
    row.opt_text(Col::Tags, super::tags_text(tags).as_deref());
    out.push(Ok(row));
    Ok(())
}

/// `modelVersion` of the response, else the entry's `model` without its resource path.
fn model_of(entry: &At<'_>, response: &At<'_>) -> Result<String, FieldError> {
    let raw = match response.str("modelVersion")? {
        Some(m) if !m.is_empty() => m,
        _ => entry.required_str("model")?,
    };
    Ok(raw.rsplit('/').next().unwrap_or(&raw).to_string())
}
