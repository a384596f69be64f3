//! OpenAI's organisation Usage and Costs APIs: `GET /v1/organization/usage/completions` and
//! `GET /v1/organization/costs` pages, `{object: "page", data: [bucket], has_more, next_page}`.

use serde_json::Map;

use super::{
    Col, Converted, CostRow, FieldError, Row, day_of, each_result, identity_id, service_tier,
    uncached,
};

/// One usage page: a row per result of each bucket, at the bucket's start.
///
/// `input_tokens` includes `input_cached_tokens`, so the uncached part is stored; a `batch`
/// result is the batch tier. The event id hashes the bucket and its grouping (not the
/// counts), so the same bucket exported twice is stored once.
pub fn usage(record: &str, out: &mut Converted<Row>) -> Result<(), FieldError> {
    each_result(
        record,
        |b| b.unix_seconds("start_time"),
        |bucket, result, start| {
            let model = result
                .str("model")?
                .filter(|m| !m.is_empty())
                .ok_or_else(|| {
                    result.error(
                        "model",
                        "a value is required: export with group_by=model so each row can be priced",
                    )
                })?;
            let cached = result.count("input_cached_tokens")?;
            let input = uncached(
                result.required_count("input_tokens")?,
                &[cached],
                &result.path("input_tokens"),
            )?;
            let batch = result.bool("batch")?;
            let tier = match result.str("service_tier")? {
                _ if batch => "batch",
                Some(t) => service_tier(&t).map_err(|e| result.error("service_tier", e))?,
                None => "standard",
            };
            let end = bucket.str("end_time")?.unwrap_or_default();
            let project = result.str("project_id")?;
            let user = result.str("user_id")?;
            let key = result.str("api_key_id")?;
            let id = identity_id(
                "openai-usage",
                &[
                    &start.to_string(),
                    &end,
                    project.as_deref().unwrap_or(""),
                    user.as_deref().unwrap_or(""),
                    key.as_deref().unwrap_or(""),
                    &model,
                    tier,
                ],
            );
            let mut tags = Map::new();
            for audio in ["input_audio_tokens", "output_audio_tokens"] {
                let n = result.count(audio)?;
                if n > 0 {
                    tags.insert(audio.into(), n.into());
                }
            }
            let mut row = Row::default();
            row.text(Col::EventId, id)
                .micros(Col::Ts, start)
                .text(Col::Provider, "openai")
                .text(Col::Model, model)
                .tokens(Col::InputTokens, input)
                .tokens(Col::CachedInputTokens, cached)
                .tokens(Col::OutputTokens, result.count("output_tokens")?)
                .tokens(Col::Requests, result.count("num_model_requests")?)
                .text(Col::ServiceTier, tier)
                .opt_text(Col::Project, project.as_deref())
                .opt_text(Col::UserId, user.as_deref())
                .opt_text(Col::ApiKeyId, key.as_deref())
                .opt_text(Col::Tags, super::tags_text(tags).as_deref());
            Ok(row)
        },
        out,
    )
}

/// One costs page: a reported cost per day, project and line item, in USD.
pub fn costs(record: &str, out: &mut Converted<CostRow>) -> Result<(), FieldError> {
    each_result(
        record,
        |b| b.unix_seconds("start_time"),
        |_, result, start| {
            let amount = result
                .object("amount")?
                .ok_or_else(|| result.error("amount", "a value is required"))?;
            let currency = amount.str("currency")?.unwrap_or_else(|| "usd".into());
            if !currency.eq_ignore_ascii_case("usd") {
                return Err(amount.error("currency", format!("{currency:?} is not USD")));
            }
            let value = amount
                .value("value")?
                .ok_or_else(|| amount.error("value", "a value is required"))?;
            let usd = super::amount(&value, 0).map_err(|e| amount.error("value", e))?;
            let project = result.str("project_id")?;
            let line_item = result.str("line_item")?.unwrap_or_else(|| "total".into());
            let day = day_of(start);
            Ok(CostRow {
                event_id: identity_id(
                    "openai-costs",
                    &[
                        &day.to_string(),
                        project.as_deref().unwrap_or(""),
                        &line_item,
                    ],
                ),
                day,
                provider: "openai",
                project,
                model: None,
                service_tier: None,
                line_item,
                amount: usd,
                currency: "USD".into(),
            })
        },
        out,
    )
}
