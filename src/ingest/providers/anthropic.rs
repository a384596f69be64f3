//! Anthropic's Admin API reports: `GET /v1/organizations/usage_report/messages` and
//! `GET /v1/organizations/cost_report` pages, `{data: [bucket], has_more, next_page}`.

use serde_json::Map;

use super::{
    Col, Converted, CostRow, FieldError, Row, day_of, each_result, identity_id, service_tier,
};

/// One usage report page: a row per result of each bucket, at the bucket's start.
///
/// Anthropic counts input without cache reads and writes (`uncached_input_tokens`), so the
/// counts map one to one. The report does not count requests, so `requests` is 0 — which the
/// costing reads as "sizes unknown, below every long-context threshold" — except in a
/// `200k-1M` context-window bucket, where every request was over 200k prompt tokens: there it
/// is 1 (there was at least one), so the whole bucket is priced at the long-context rate.
/// Web searches and the context window go to `tags`.
pub fn usage(record: &str, out: &mut Converted<Row>) -> Result<(), FieldError> {
    each_result(
        record,
        |b| b.timestamp("starting_at"),
        |bucket, result, start| {
            let model = result.required_str("model").map_err(|e| FieldError {
                reason: format!(
                    "{}: group the report by model so each row can be priced",
                    e.reason
                ),
                ..e
            })?;
            let tier = match result.str("service_tier")? {
                Some(t) => service_tier(&t).map_err(|e| result.error("service_tier", e))?,
                None => "standard",
            };
            let (write_5m, write_1h) = match result.object("cache_creation")? {
                Some(c) => (
                    c.count("ephemeral_5m_input_tokens")?,
                    c.count("ephemeral_1h_input_tokens")?,
                ),
                None => (0, 0),
            };
            let searches = match result.object("server_tool_use")? {
                Some(s) => s.count("web_search_requests")?,
                None => 0,
            };
            let workspace = result.str("workspace_id")?;
            let key = result.str("api_key_id")?;
            let context = result.str("context_window")?;
            let long_context = match context.as_deref() {
                None | Some("0-200k") => false,
                Some("200k-1M") => true,
                Some(other) => {
                    return Err(result.error(
                        "context_window",
                        format!("unknown context window {other:?} (0-200k, 200k-1M)"),
                    ));
                }
            };
            let geo = result.str("inference_geo")?;
            let end = bucket.str("ending_at")?.unwrap_or_default();
            let id = identity_id(
                "anthropic-usage",
                &[
                    &start.to_string(),
                    &end,
                    workspace.as_deref().unwrap_or(""),
                    key.as_deref().unwrap_or(""),
                    &model,
                    tier,
                    context.as_deref().unwrap_or(""),
                    geo.as_deref().unwrap_or(""),
                    result.str("account_id")?.as_deref().unwrap_or(""),
                    result.str("service_account_id")?.as_deref().unwrap_or(""),
                    result.str("speed")?.as_deref().unwrap_or(""),
                ],
            );
            let mut tags = Map::new();
            if searches > 0 {
                tags.insert("web_search_requests".into(), searches.into());
            }
            if let Some(c) = &context {
                tags.insert("context_window".into(), c.clone().into());
            }
            let mut row = Row::default();
            row.text(Col::EventId, id)
                .micros(Col::Ts, start)
                .text(Col::Provider, "anthropic")
                .text(Col::Model, model)
                .tokens(Col::InputTokens, result.count("uncached_input_tokens")?)
                .tokens(
                    Col::CachedInputTokens,
                    result.count("cache_read_input_tokens")?,
                )
                .tokens(Col::CacheWriteTokens, write_5m)
                .tokens(Col::CacheWrite1hTokens, write_1h)
                .tokens(Col::OutputTokens, result.count("output_tokens")?)
                .int(Col::Requests, i64::from(long_context))
                .text(Col::ServiceTier, tier)
                .opt_text(Col::Region, geo.as_deref())
                .opt_text(Col::Project, workspace.as_deref())
                .opt_text(Col::ApiKeyId, key.as_deref())
                .opt_text(Col::Tags, super::tags_text(tags).as_deref());
            Ok(row)
        },
        out,
    )
}

/// One cost report page: `amount` is a decimal string in cents, stored in USD.
pub fn costs(record: &str, out: &mut Converted<CostRow>) -> Result<(), FieldError> {
    each_result(
        record,
        |b| b.timestamp("starting_at"),
        |_, result, start| {
            let currency = result.str("currency")?.unwrap_or_else(|| "USD".into());
            if !currency.eq_ignore_ascii_case("usd") {
                return Err(result.error("currency", format!("{currency:?} is not USD")));
            }
            let cents = result
                .value("amount")?
                .ok_or_else(|| result.error("amount", "a value is required"))?;
            let usd = super::amount(&cents, 2).map_err(|e| result.error("amount", e))?;
            let line_item = match (result.str("description")?, result.str("cost_type")?) {
                (Some(d), _) if !d.is_empty() => d,
                (_, cost_type) => {
                    let cost_type = cost_type.unwrap_or_else(|| "cost".into());
                    match result.str("token_type")? {
                        Some(t) => format!("{cost_type}:{t}"),
                        None => cost_type,
                    }
                }
            };
            let workspace = result.str("workspace_id")?;
            let model = result.str("model")?;
            let tier = match result.str("service_tier")? {
                Some(t) => Some(
                    service_tier(&t)
                        .map_err(|e| result.error("service_tier", e))?
                        .to_string(),
                ),
                None => None,
            };
            let day = day_of(start);
            let id = identity_id(
                "anthropic-costs",
                &[
                    &day.to_string(),
                    workspace.as_deref().unwrap_or(""),
                    &line_item,
                    model.as_deref().unwrap_or(""),
                    tier.as_deref().unwrap_or(""),
                    result.str("context_window")?.as_deref().unwrap_or(""),
                    result.str("inference_geo")?.as_deref().unwrap_or(""),
                ],
            );
            Ok(CostRow {
                event_id: id,
                day,
                provider: "anthropic",
                project: workspace,
                line_item,
                model,
                service_tier: tier,
                amount: usd,
                currency: "USD".into(),
            })
        },
        out,
    )
}
