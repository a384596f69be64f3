//! The configuration tables of the demo, several of them set relative to the generated
//! spend so the budget, reconciliation and unit-economics stories hold on any `today`.

use arrow::record_batch::RecordBatch;
use chrono::{Datelike, NaiveDate};
use rand::Rng;
use rand::rngs::StdRng;
use rust_decimal::Decimal;

use super::catalog::{Catalog, MODELS, Period};
use super::columns::{
    batch, dates, day_number, int32, int64, midnight_micros, money, price, ratio, text, text_nn,
    times, timestamps,
};
use super::scenario::{RULE_MAPPED_KEYS, SPIKE_DAYS_AGO, TEAMS};
use super::usage::{Generated, Spend};
use super::{Customers, Window};
use crate::{Error, Result};

/// Every configuration table, in the order of the spec.
pub(crate) fn build(
    window: &Window,
    catalog: &Catalog,
    customers: &Customers,
    generated: &Generated,
    rng: &mut StdRng,
) -> Result<Vec<(&'static str, Vec<RecordBatch>)>> {
    let fx = fx_rates(window, rng);
    Ok(vec![
        ("pricing", vec![pricing(window, catalog)?]),
        ("models", vec![models(window, catalog)?]),
        ("contracts", vec![contracts(window)?]),
        ("attribution_rules", vec![attribution_rules(window)?]),
        (
            "budgets",
            vec![budgets(window, customers, &generated.spend)?],
        ),
        (
            "alerts",
            vec![RecordBatch::new_empty(table_schema("alerts")?)],
        ),
        (
            "report_runs",
            vec![RecordBatch::new_empty(table_schema("report_runs")?)],
        ),
        ("policies", vec![policies()?]),
        ("api_keys", vec![api_keys(window, generated, rng)?]),
        (
            "revenue",
            vec![revenue(window, customers, &generated.spend)?],
        ),
        (
            "invoices",
            vec![invoices(window, &generated.spend, &fx, rng)?],
        ),
        ("fx_rates", vec![fx_batch(window, &fx)?]),
        (
            "provider_costs",
            vec![provider_costs(window, &generated.spend, rng)?],
        ),
    ])
}

fn table_schema(name: &str) -> Result<arrow::datatypes::SchemaRef> {
    crate::schema::table_def(name)
        .map(|t| std::sync::Arc::clone(&t.schema))
        .ok_or_else(|| Error::Invalid(format!("demo: no built-in table {name}")))
}

fn micros_days_ago(window: &Window, days: i64) -> i64 {
    midnight_micros(window.offset(-days))
}

/// Base rows of the catalog take effect long before the window.
fn catalog_epoch() -> Result<NaiveDate> {
    NaiveDate::from_ymd_opt(2023, 1, 1).ok_or_else(|| Error::Invalid("demo: epoch".into()))
}

fn pricing(window: &Window, catalog: &Catalog) -> Result<RecordBatch> {
    let epoch = midnight_micros(catalog_epoch()?);
    let rows = &catalog.rows;
    let n = rows.len();
    let cut_note = format!("; demo: cut moved to {}", window.cut);
    let from: Vec<Option<i64>> = rows
        .iter()
        .map(|r| {
            Some(match r.period {
                Period::AfterCut => window.cut_micros,
                Period::Always | Period::BeforeCut => epoch,
            })
        })
        .collect();
    let to: Vec<Option<i64>> = rows
        .iter()
        .map(|r| (r.period == Period::BeforeCut).then_some(window.cut_micros))
        .collect();
    let sources: Vec<Option<String>> = rows
        .iter()
        .map(|r| {
            Some(match r.period {
                Period::Always => r.source.clone(),
                Period::BeforeCut | Period::AfterCut => format!("{}{cut_note}", r.source),
            })
        })
        .collect();
    let col = |g: fn(&super::catalog::PriceRow) -> Option<Decimal>| -> Result<_> {
        price(&rows.iter().map(g).collect::<Vec<_>>())
    };
    batch(
        "pricing",
        vec![
            (
                "provider",
                text_nn(&rows.iter().map(|r| &r.provider).collect::<Vec<_>>()),
            ),
            (
                "model",
                text_nn(&rows.iter().map(|r| &r.model).collect::<Vec<_>>()),
            ),
            ("effective_from", timestamps(from)),
            ("effective_to", timestamps(to)),
            (
                "service_tier",
                text_nn(&rows.iter().map(|r| &r.service_tier).collect::<Vec<_>>()),
            ),
            ("region", text::<&str>(&vec![None; n])),
            ("min_prompt_tokens", int64(vec![Some(0); n])),
            ("utc_start_time", times(vec![None; n])),
            ("utc_end_time", times(vec![None; n])),
            ("input_per_mtok", col(|r| r.input)?),
            ("cached_input_per_mtok", col(|r| r.cached)?),
            ("cache_write_per_mtok", col(|r| r.write)?),
            ("cache_write_1h_per_mtok", col(|r| r.write_1h)?),
            ("output_per_mtok", col(|r| r.output)?),
            ("per_request", price(&vec![None; n])?),
            ("currency", text_nn(&vec!["USD"; n])),
            ("source", text(&sources)),
        ],
    )
}

fn models(window: &Window, catalog: &Catalog) -> Result<RecordBatch> {
    let aliases: Vec<Option<&str>> = MODELS
        .iter()
        .map(|m| {
            catalog
                .rows
                .iter()
                .find(|r| r.provider == m.provider && r.model == m.model)
                .map(|r| r.aliases.as_str())
                .filter(|a| !a.is_empty())
        })
        .collect();
    batch(
        "models",
        vec![
            (
                "provider",
                text_nn(&MODELS.iter().map(|m| m.provider).collect::<Vec<_>>()),
            ),
            (
                "model",
                text_nn(&MODELS.iter().map(|m| m.model).collect::<Vec<_>>()),
            ),
            (
                "family",
                text(&MODELS.iter().map(|m| Some(m.family)).collect::<Vec<_>>()),
            ),
            ("tier", int32(MODELS.iter().map(|m| Some(m.tier)).collect())),
            (
                "context_window",
                int64(MODELS.iter().map(|m| Some(m.context_window)).collect()),
            ),
            (
                "deprecated_on",
                dates(
                    MODELS
                        .iter()
                        .map(|m| m.deprecated_in_days.map(|d| day_number(window.offset(d))))
                        .collect(),
                ),
            ),
            ("aliases", text(&aliases)),
        ],
    )
}

/// Negotiated discounts: (provider, percent off list, started days ago, commitment, note).
pub(crate) const CONTRACTS: &[(&str, i64, i64, i64, &str)] = &[
    (
        "anthropic",
        10,
        400,
        250_000,
        "Enterprise agreement: 10% off list prices against a USD 250k annual commitment",
    ),
    (
        "aws_bedrock",
        5,
        300,
        100_000,
        "AWS EDP: 5% off Bedrock list prices",
    ),
];

fn contracts(window: &Window) -> Result<RecordBatch> {
    let n = CONTRACTS.len();
    batch(
        "contracts",
        vec![
            (
                "provider",
                text_nn(&CONTRACTS.iter().map(|c| c.0).collect::<Vec<_>>()),
            ),
            ("model", text::<&str>(&vec![None; n])),
            (
                "discount_pct",
                ratio(
                    &CONTRACTS
                        .iter()
                        .map(|c| Some(Decimal::from(c.1)))
                        .collect::<Vec<_>>(),
                )?,
            ),
            (
                "effective_from",
                timestamps(
                    CONTRACTS
                        .iter()
                        .map(|c| Some(micros_days_ago(window, c.2)))
                        .collect(),
                ),
            ),
            ("effective_to", timestamps(vec![None; n])),
            (
                "commitment",
                money(
                    &CONTRACTS
                        .iter()
                        .map(|c| Some(Decimal::from(c.3)))
                        .collect::<Vec<_>>(),
                )?,
            ),
            (
                "note",
                text(&CONTRACTS.iter().map(|c| Some(c.4)).collect::<Vec<_>>()),
            ),
        ],
    )
}

/// Cost centre per team, assigned by project.
const COST_CENTERS: &[(&str, &str)] = &[
    ("support", "cc-support"),
    ("search", "cc-product"),
    ("growth", "cc-marketing"),
    ("platform", "cc-engineering"),
    ("data", "cc-analytics"),
    ("sales", "cc-sales"),
    ("legal", "cc-legal"),
];

#[derive(Default)]
struct Rule {
    id: String,
    priority: i32,
    api_key_id: Option<&'static str>,
    project: Option<&'static str>,
    environment: Option<&'static str>,
    tag_key: Option<&'static str>,
    tag_value: Option<&'static str>,
    team: Option<&'static str>,
    feature: Option<&'static str>,
    assign_environment: Option<&'static str>,
    cost_center: Option<&'static str>,
    valid_from: Option<i64>,
}

fn attribution_rules(window: &Window) -> Result<RecordBatch> {
    let mut rules = Vec::new();
    for (i, (key, team, feature, cc)) in RULE_MAPPED_KEYS.iter().enumerate() {
        rules.push(Rule {
            id: format!("r-{:03}", 10 * (i + 1)),
            priority: 10,
            api_key_id: Some(key),
            team: Some(team),
            feature: Some(feature),
            assign_environment: Some(if i == 0 { "prod" } else { "dev" }),
            cost_center: Some(cc),
            // The hackathon key only exists since its event.
            valid_from: (i == 1).then(|| micros_days_ago(window, 120)),
            ..Rule::default()
        });
    }
    rules.push(Rule {
        id: "r-050".into(),
        priority: 50,
        tag_key: Some("experiment"),
        tag_value: Some("prompt-v2"),
        cost_center: Some("cc-research"),
        ..Rule::default()
    });
    rules.push(Rule {
        id: "r-090".into(),
        priority: 90,
        environment: Some("dev"),
        cost_center: Some("cc-engineering"),
        ..Rule::default()
    });
    for (i, team) in TEAMS.iter().enumerate() {
        let cc = COST_CENTERS
            .iter()
            .find(|(t, _)| *t == team.name)
            .map(|(_, cc)| *cc);
        rules.push(Rule {
            id: format!("r-{}", 100 + i * 10),
            priority: 100,
            project: Some(team.project),
            cost_center: cc,
            ..Rule::default()
        });
    }
    let n = rules.len();
    let pick =
        |g: fn(&Rule) -> Option<&'static str>| text(&rules.iter().map(g).collect::<Vec<_>>());
    batch(
        "attribution_rules",
        vec![
            (
                "rule_id",
                text_nn(&rules.iter().map(|r| r.id.as_str()).collect::<Vec<_>>()),
            ),
            (
                "priority",
                int32(rules.iter().map(|r| Some(r.priority)).collect()),
            ),
            ("provider", text::<&str>(&vec![None; n])),
            ("api_key_id", pick(|r| r.api_key_id)),
            ("project", pick(|r| r.project)),
            ("model_pattern", text::<&str>(&vec![None; n])),
            ("environment", pick(|r| r.environment)),
            ("tag_key", pick(|r| r.tag_key)),
            ("tag_value", pick(|r| r.tag_value)),
            ("team", pick(|r| r.team)),
            ("feature", pick(|r| r.feature)),
            ("customer", text::<&str>(&vec![None; n])),
            ("assign_environment", pick(|r| r.assign_environment)),
            ("cost_center", pick(|r| r.cost_center)),
            (
                "valid_from",
                timestamps(rules.iter().map(|r| r.valid_from).collect()),
            ),
            ("valid_to", timestamps(vec![None; n])),
        ],
    )
}

/// Calendar arithmetic for the current period, in window indexes.
struct PeriodDays {
    /// Index of the first day of the period.
    first: usize,
    /// Full days of the period still to come, today included.
    remaining: i64,
}

fn first_of_month(d: NaiveDate) -> Result<NaiveDate> {
    d.with_day(1)
        .ok_or_else(|| Error::Invalid(format!("demo: no first day for {d}")))
}

fn next_month(d: NaiveDate) -> Result<NaiveDate> {
    let (y, m) = if d.month() == 12 {
        (d.year() + 1, 1)
    } else {
        (d.year(), d.month() + 1)
    };
    NaiveDate::from_ymd_opt(y, m, 1).ok_or_else(|| Error::Invalid(format!("demo: {y}-{m}")))
}

fn period(window: &Window, first: NaiveDate, next: NaiveDate) -> Result<PeriodDays> {
    // On the first day of a period `first` is today: nothing of it is in the window yet.
    let first_idx = usize::try_from((first - window.start).num_days())
        .ok()
        .filter(|&i| i <= window.days)
        .ok_or_else(|| Error::Invalid(format!("demo: {first} is outside the window")))?;
    Ok(PeriodDays {
        first: first_idx,
        remaining: (next - window.today).num_days(),
    })
}

fn sum(values: &[Decimal]) -> Decimal {
    values.iter().copied().sum()
}

/// Spend so far in the period and the period-end projection from the last week's rate.
fn to_date_and_projected(daily: &[Decimal], p: &PeriodDays) -> (Decimal, Decimal, Decimal) {
    let so_far = sum(&daily[p.first..]);
    let last7 = sum(&daily[daily.len().saturating_sub(7)..]) / Decimal::from(7);
    let projected = so_far + last7 * Decimal::from(p.remaining);
    (so_far, last7, projected)
}

/// `x` rounded to a multiple of `step`, at least one step.
fn round_to(x: Decimal, step: i64) -> Decimal {
    let step = Decimal::from(step);
    ((x / step).round() * step).max(step)
}

/// A budget amount such that the spend so far is `target` of it.
fn amount_for(daily: &[Decimal], p: &PeriodDays, target: Decimal) -> Decimal {
    let (so_far, last7, _) = to_date_and_projected(daily, p);
    // On the first of the month nothing is spent yet; size it from a typical day.
    let base = if so_far > Decimal::ZERO {
        so_far
    } else {
        last7
    };
    round_to(base / target, 10)
}

struct Budget {
    id: &'static str,
    name: String,
    scope: &'static str,
    scope_value: Option<String>,
    period: &'static str,
    amount: Decimal,
    enforcement: &'static str,
    owner: Option<&'static str>,
    notify: Option<&'static str>,
}

fn budgets(window: &Window, customers: &Customers, spend: &Spend) -> Result<RecordBatch> {
    let days = window.days;
    let month_first = first_of_month(window.today)?;
    let month = period(window, month_first, next_month(month_first)?)?;
    let quarter_first = NaiveDate::from_ymd_opt(
        window.today.year(),
        (window.today.month() - 1) / 3 * 3 + 1,
        1,
    )
    .ok_or_else(|| Error::Invalid("demo: quarter".into()))?;
    let mut quarter_next = quarter_first;
    for _ in 0..3 {
        quarter_next = next_month(quarter_next)?;
    }
    let quarter = period(window, quarter_first, quarter_next)?;
    let pct = |n: i64| Decimal::new(n, 2);

    let global = spend.daily("global", "", days);
    let (so_far, _, projected) = to_date_and_projected(&global, &month);
    // Under budget so far but on course to exceed it.
    let global_amount = round_to((projected / pct(112)).max(so_far / pct(97)), 100);

    let dev = spend.daily("environment", "dev", days);
    let (_, _, dev_projected) = to_date_and_projected(&dev, &month);

    // The spike feature's budget is sized for its normal run rate, so the spike breaks it.
    let email = spend.daily("feature", super::scenario::SPIKE_FEATURE, days);
    let mut normal: Vec<Decimal> = email[days - 30..]
        .iter()
        .enumerate()
        .filter(|(i, _)| !SPIKE_DAYS_AGO.contains(&(30 - *i as i64)))
        .map(|(_, v)| *v)
        .collect();
    normal.sort();
    let median = normal.get(normal.len() / 2).copied().unwrap_or_default();
    let days_in_month = (next_month(month_first)? - month_first).num_days();
    let email_amount = round_to(median * Decimal::from(days_in_month) * pct(125), 10);

    let top = customers.name(0).to_string();
    let (_, _, top_projected) = to_date_and_projected(&spend.customer_daily(0, days), &month);

    let anthropic = spend.daily("provider", "anthropic", days);
    let (_, _, anthropic_q) = to_date_and_projected(&anthropic, &quarter);

    let team = |name: &str| spend.daily("team", name, days);
    let list = [
        Budget {
            id: "b-global",
            name: "Company AI spend".into(),
            scope: "global",
            scope_value: None,
            period: "month",
            amount: global_amount,
            enforcement: "alert",
            owner: Some("finance"),
            notify: Some("https://example.invalid/hooks/finance"),
        },
        Budget {
            id: "b-team-search",
            name: "Search team".into(),
            scope: "team",
            scope_value: Some("search".into()),
            period: "month",
            amount: amount_for(&team("search"), &month, pct(60)),
            enforcement: "alert",
            owner: Some("search-lead"),
            notify: None,
        },
        Budget {
            id: "b-team-support",
            name: "Support team".into(),
            scope: "team",
            scope_value: Some("support".into()),
            period: "month",
            amount: amount_for(&team("support"), &month, pct(90)),
            enforcement: "alert",
            owner: Some("support-lead"),
            notify: Some("https://example.invalid/hooks/support"),
        },
        Budget {
            id: "b-team-growth",
            name: "Growth team".into(),
            scope: "team",
            scope_value: Some("growth".into()),
            period: "month",
            amount: amount_for(&team("growth"), &month, pct(115)),
            enforcement: "block",
            owner: Some("growth-lead"),
            notify: Some("https://example.invalid/hooks/growth"),
        },
        Budget {
            id: "b-env-dev",
            name: "Development environments".into(),
            scope: "environment",
            scope_value: Some("dev".into()),
            period: "month",
            amount: round_to(dev_projected * pct(250), 10),
            enforcement: "block",
            owner: Some("platform-lead"),
            notify: None,
        },
        Budget {
            id: "b-feature-email-copy",
            name: "Email copy generation".into(),
            scope: "feature",
            scope_value: Some(super::scenario::SPIKE_FEATURE.into()),
            period: "month",
            amount: email_amount,
            enforcement: "alert",
            owner: Some("growth-lead"),
            notify: Some("https://example.invalid/hooks/growth"),
        },
        Budget {
            id: "b-customer-top",
            name: format!("Largest customer ({top})"),
            scope: "customer",
            scope_value: Some(top),
            period: "month",
            amount: round_to(top_projected * pct(140), 10),
            enforcement: "alert",
            owner: Some("account-management"),
            notify: None,
        },
        Budget {
            id: "b-provider-anthropic",
            name: "Anthropic commitment burn".into(),
            scope: "provider",
            scope_value: Some("anthropic".into()),
            period: "quarter",
            amount: round_to(anthropic_q * pct(110), 100),
            enforcement: "alert",
            owner: Some("finance"),
            notify: None,
        },
    ];
    let n = list.len();
    batch(
        "budgets",
        vec![
            (
                "budget_id",
                text_nn(&list.iter().map(|b| b.id).collect::<Vec<_>>()),
            ),
            (
                "name",
                text(
                    &list
                        .iter()
                        .map(|b| Some(b.name.as_str()))
                        .collect::<Vec<_>>(),
                ),
            ),
            (
                "scope",
                text_nn(&list.iter().map(|b| b.scope).collect::<Vec<_>>()),
            ),
            (
                "scope_value",
                text(
                    &list
                        .iter()
                        .map(|b| b.scope_value.as_deref())
                        .collect::<Vec<_>>(),
                ),
            ),
            (
                "period",
                text_nn(&list.iter().map(|b| b.period).collect::<Vec<_>>()),
            ),
            (
                "amount",
                money(&list.iter().map(|b| Some(b.amount)).collect::<Vec<_>>())?,
            ),
            ("starts_on", dates(vec![None; n])),
            ("ends_on", dates(vec![None; n])),
            ("thresholds", text_nn(&vec!["0.5,0.8,1.0"; n])),
            (
                "enforcement",
                text_nn(&list.iter().map(|b| b.enforcement).collect::<Vec<_>>()),
            ),
            (
                "owner",
                text(&list.iter().map(|b| b.owner).collect::<Vec<_>>()),
            ),
            (
                "notify",
                text(&list.iter().map(|b| b.notify).collect::<Vec<_>>()),
            ),
        ],
    )
}

/// (policy_id, scope, scope_value, environment, max_model_tier, allowed_providers,
/// allowed_models, max_output_tokens, note)
type PolicyRow = (
    &'static str,
    &'static str,
    Option<&'static str>,
    Option<&'static str>,
    Option<i32>,
    Option<&'static str>,
    Option<&'static str>,
    Option<i64>,
    &'static str,
);

const POLICIES: &[PolicyRow] = &[
    (
        "pol-001",
        "feature",
        Some("ticket-classification"),
        Some("prod"),
        Some(2),
        None,
        None,
        None,
        "Classification is a tier 1-2 task; do not use frontier models for it",
    ),
    (
        "pol-002",
        "environment",
        Some("dev"),
        None,
        Some(3),
        None,
        None,
        None,
        "No frontier models in development",
    ),
    (
        "pol-003",
        "global",
        None,
        None,
        None,
        Some("openai,anthropic,google,aws_bedrock,mistral"),
        None,
        None,
        "Approved vendors with a signed DPA",
    ),
    (
        "pol-004",
        "team",
        Some("legal"),
        None,
        None,
        Some("anthropic,aws_bedrock,openai"),
        None,
        None,
        "Legal documents only go to providers with a zero-retention addendum",
    ),
    (
        "pol-005",
        "team",
        Some("growth"),
        Some("prod"),
        None,
        None,
        Some(
            "gpt-4.1,gpt-4.1-mini,gpt-4o-mini,mistral-large,claude-3-5-haiku-latest,gemini-2.0-flash",
        ),
        None,
        "Marketing models reviewed by brand safety",
    ),
    (
        "pol-006",
        "feature",
        Some("sentiment-analysis"),
        None,
        None,
        None,
        None,
        Some(8),
        "Sentiment labels are a single word",
    ),
    (
        "pol-007",
        "feature",
        Some("email-copy"),
        None,
        None,
        None,
        None,
        Some(800),
        "Set max_tokens on marketing copy",
    ),
];

fn policies() -> Result<RecordBatch> {
    let p = POLICIES;
    batch(
        "policies",
        vec![
            (
                "policy_id",
                text_nn(&p.iter().map(|r| r.0).collect::<Vec<_>>()),
            ),
            ("scope", text_nn(&p.iter().map(|r| r.1).collect::<Vec<_>>())),
            (
                "scope_value",
                text(&p.iter().map(|r| r.2).collect::<Vec<_>>()),
            ),
            (
                "environment",
                text(&p.iter().map(|r| r.3).collect::<Vec<_>>()),
            ),
            ("max_model_tier", int32(p.iter().map(|r| r.4).collect())),
            (
                "allowed_providers",
                text(&p.iter().map(|r| r.5).collect::<Vec<_>>()),
            ),
            (
                "allowed_models",
                text(&p.iter().map(|r| r.6).collect::<Vec<_>>()),
            ),
            ("max_output_tokens", int64(p.iter().map(|r| r.7).collect())),
            (
                "note",
                text(&p.iter().map(|r| Some(r.8)).collect::<Vec<_>>()),
            ),
        ],
    )
}

struct Key {
    id: String,
    provider: Option<&'static str>,
    team: Option<&'static str>,
    application: Option<&'static str>,
    environment: Option<&'static str>,
    created_days_ago: i64,
    rotated_days_ago: i64,
    rotation_days: i32,
    status: &'static str,
    monthly_budget: Option<Decimal>,
}

/// Applications behind the untagged shared keys.
const SHARED_KEY_APPS: &[(&str, &str)] = &[
    ("key-legacy-batch-openai", "nightly-export"),
    ("key-hackathon-anthropic", "hackathon"),
    ("key-shared-google", "shared-notebooks"),
    ("key-ops-scripts-mistral", "ops-scripts"),
];

fn api_keys(window: &Window, generated: &Generated, rng: &mut StdRng) -> Result<RecordBatch> {
    let mut keys: Vec<Key> = Vec::new();
    for s in &generated.streams {
        if keys.iter().any(|k| k.id == s.api_key) {
            continue;
        }
        let f = s.feature;
        let shared = f.team.is_none();
        let rotation_days = if s.env == Some("prod") || shared {
            90
        } else {
            180
        };
        let created_days_ago = rng.random_range(200..900);
        // Roughly a quarter of keys are overdue; shared keys were never rotated.
        let rotated_days_ago = if shared {
            created_days_ago
        } else if rng.random::<f64>() < 0.25 {
            rng.random_range(i64::from(rotation_days) + 10..i64::from(rotation_days) + 300)
                .min(created_days_ago)
        } else {
            rng.random_range(3..i64::from(rotation_days) - 5)
        };
        let application = match f.team {
            Some(t) => TEAMS
                .iter()
                .find(|team| team.name == t)
                .map(|t| t.application),
            None => SHARED_KEY_APPS
                .iter()
                .find(|(k, _)| *k == s.api_key)
                .map(|(_, a)| *a),
        };
        keys.push(Key {
            id: s.api_key.clone(),
            provider: Some(f.provider),
            team: f.team,
            application,
            environment: s.env,
            created_days_ago,
            rotated_days_ago,
            rotation_days,
            status: "active",
            monthly_budget: (s.env == Some("dev")).then(|| Decimal::from(300)),
        });
    }
    // Keys replaced at their last rotation.
    for (id, provider, team, app, env) in [
        (
            "key-support-prod-openai-2024",
            "openai",
            "support",
            "helpdesk",
            "prod",
        ),
        (
            "key-growth-dev-anthropic-old",
            "anthropic",
            "growth",
            "marketing-studio",
            "dev",
        ),
    ] {
        keys.push(Key {
            id: id.into(),
            provider: Some(provider),
            team: Some(team),
            application: Some(app),
            environment: Some(env),
            created_days_ago: 720,
            rotated_days_ago: 420,
            rotation_days: 90,
            status: "revoked",
            monthly_budget: None,
        });
    }
    let ago = |d: i64| Some(micros_days_ago(window, d));
    batch(
        "api_keys",
        vec![
            (
                "api_key_id",
                text_nn(&keys.iter().map(|k| k.id.as_str()).collect::<Vec<_>>()),
            ),
            (
                "provider",
                text(&keys.iter().map(|k| k.provider).collect::<Vec<_>>()),
            ),
            (
                "team",
                text(&keys.iter().map(|k| k.team).collect::<Vec<_>>()),
            ),
            (
                "application",
                text(&keys.iter().map(|k| k.application).collect::<Vec<_>>()),
            ),
            (
                "environment",
                text(&keys.iter().map(|k| k.environment).collect::<Vec<_>>()),
            ),
            (
                "created_at",
                timestamps(keys.iter().map(|k| ago(k.created_days_ago)).collect()),
            ),
            (
                "last_rotated_at",
                timestamps(keys.iter().map(|k| ago(k.rotated_days_ago)).collect()),
            ),
            (
                "rotation_days",
                int32(keys.iter().map(|k| Some(k.rotation_days)).collect()),
            ),
            (
                "status",
                text_nn(&keys.iter().map(|k| k.status).collect::<Vec<_>>()),
            ),
            (
                "monthly_budget",
                money(&keys.iter().map(|k| k.monthly_budget).collect::<Vec<_>>())?,
            ),
        ],
    )
}

/// What the answer-generation add-on charges per answer (USD): below its AI cost, so the
/// add-on shows a negative unit margin.
fn answer_price() -> Decimal {
    Decimal::new(2, 2)
}

fn revenue(window: &Window, customers: &Customers, spend: &Spend) -> Result<RecordBatch> {
    let mut day = Vec::new();
    let mut customer = Vec::new();
    let mut feature = Vec::new();
    let mut amount = Vec::new();
    let mut units = Vec::new();
    let mut unit_name = Vec::new();
    for idx in 0..window.days {
        let date = window.date(idx);
        if date.day() != 1 {
            continue;
        }
        // Subscriptions, billed on the first of the month.
        for rank in 0..customers.len() {
            if customers.start_day[rank] > idx {
                continue;
            }
            let plan = &customers.plans[rank];
            day.push(Some(day_number(date)));
            customer.push(Some(customers.name(rank as u16).to_string()));
            feature.push(None);
            amount.push(Some(Decimal::from(plan.monthly_usd)));
            units.push(Some(plan.seats));
            unit_name.push(Some("seats"));
        }
        // The per-answer add-on, for the month's answers.
        for (&(rank, y, m), &n) in &spend.answers {
            if (y, m) != (date.year(), date.month()) {
                continue;
            }
            day.push(Some(day_number(date)));
            customer.push(Some(customers.name(rank).to_string()));
            feature.push(Some("answer-generation"));
            amount.push(Some(Decimal::from(n) * answer_price()));
            units.push(Some(n));
            unit_name.push(Some("answers"));
        }
    }
    batch(
        "revenue",
        vec![
            ("day", dates(day)),
            ("customer", text(&customer)),
            ("feature", text(&feature)),
            ("revenue", money(&amount)?),
            ("units", int64(units)),
            ("unit_name", text(&unit_name)),
        ],
    )
}

/// Daily USD per unit, in millionths, for EUR and GBP over the window.
struct Fx {
    eur: Vec<i64>,
    gbp: Vec<i64>,
}

fn fx_rates(window: &Window, rng: &mut StdRng) -> Fx {
    // A mean-reverting random walk: rates are not money, so f64 is fine here; the stored
    // values are whole millionths.
    let mut walk = |start: f64| {
        let mut x = start;
        (0..window.days)
            .map(|_| {
                let shock: f64 = rng.random_range(-1.0..1.0) * 0.006;
                x = x * (1.0 + shock) + (start - x) * 0.03;
                (x * 1_000_000.0).round() as i64
            })
            .collect::<Vec<_>>()
    };
    Fx {
        eur: walk(1.085),
        gbp: walk(1.27),
    }
}

fn fx_batch(window: &Window, fx: &Fx) -> Result<RecordBatch> {
    let mut day = Vec::new();
    let mut currency = Vec::new();
    let mut rate = Vec::new();
    for idx in 0..window.days {
        for (name, series) in [("EUR", &fx.eur), ("GBP", &fx.gbp)] {
            day.push(Some(day_number(window.date(idx))));
            currency.push(name);
            rate.push(Some(Decimal::new(series[idx], 6)));
        }
    }
    batch(
        "fx_rates",
        vec![
            ("day", dates(day)),
            ("currency", text_nn(&currency)),
            ("usd_per_unit", price(&rate)?),
        ],
    )
}

/// Providers that invoice, and the currency they bill in.
const INVOICING: &[(&str, &str, &str)] = &[
    ("openai", "OPENAI", "USD"),
    ("anthropic", "ANTHROPIC", "USD"),
    ("google", "GCP", "USD"),
    ("mistral", "MISTRAL", "EUR"),
    ("deepseek", "DEEPSEEK", "USD"),
    ("aws_bedrock", "AWS", "USD"),
];

/// Invoices for the last (up to) five calendar months wholly inside the window: the
/// computed cost after contract discounts, off by a fraction of a percent, except one
/// planted overcharge.
fn invoices(window: &Window, spend: &Spend, fx: &Fx, rng: &mut StdRng) -> Result<RecordBatch> {
    let mut months = Vec::new();
    let mut first = first_of_month(window.today)?;
    while months.len() < 5 {
        let prev_last = first
            .pred_opt()
            .ok_or_else(|| Error::Invalid("demo: month before".into()))?;
        let prev_first = first_of_month(prev_last)?;
        if prev_first < window.start {
            break;
        }
        months.push((prev_first, prev_last));
        first = prev_first;
    }
    months.reverse();
    let mut provider = Vec::new();
    let mut id = Vec::new();
    let mut start = Vec::new();
    let mut end = Vec::new();
    let mut amount = Vec::new();
    let mut currency = Vec::new();
    for (mi, &(first, last)) in months.iter().enumerate() {
        let (a, b) = match (window.index(first), window.index(last)) {
            (Some(a), Some(b)) => (a, b),
            _ => return Err(Error::Invalid("demo: invoice month outside window".into())),
        };
        for &(p, code, cur) in INVOICING {
            let list = sum(&spend.daily("provider", p, window.days)[a..=b]);
            if list.is_zero() {
                continue;
            }
            let discount = CONTRACTS
                .iter()
                .find(|c| c.0 == p && window.offset(-c.2) <= first)
                .map(|c| Decimal::from(c.1))
                .unwrap_or_default();
            let net = list * (Decimal::ONE_HUNDRED - discount) / Decimal::ONE_HUNDRED;
            // Story: the second most recent OpenAI invoice is 4.5% above the usage.
            let basis_points = if p == "openai" && mi + 2 == months.len() {
                450
            } else {
                rng.random_range(-60..=60)
            };
            let billed = net * (Decimal::from(10_000 + basis_points)) / Decimal::from(10_000);
            let billed = if cur == "EUR" {
                billed / Decimal::new(fx.eur[b], 6)
            } else {
                billed
            };
            provider.push(p);
            id.push(format!("INV-{code}-{}{:02}", first.year(), first.month()));
            start.push(Some(day_number(first)));
            end.push(Some(day_number(last)));
            amount.push(Some(billed.round_dp(2)));
            currency.push(cur);
        }
    }
    batch(
        "invoices",
        vec![
            ("provider", text_nn(&provider)),
            ("invoice_id", text_nn(&id)),
            ("period_start", dates(start)),
            ("period_end", dates(end)),
            ("amount", money(&amount)?),
            ("currency", text_nn(&currency)),
        ],
    )
}

/// What the openai-costs / anthropic-costs imports would bring for the last 60 days: each
/// provider's daily list cost as the provider reports it, within ±0.3% of SpendQL's.
fn provider_costs(window: &Window, spend: &Spend, rng: &mut StdRng) -> Result<RecordBatch> {
    const DAYS: usize = 60;
    let mut ids = Vec::new();
    let mut days = Vec::new();
    let mut providers = Vec::new();
    let mut amounts = Vec::new();
    for p in ["openai", "anthropic"] {
        let daily = spend.daily("provider", p, window.days);
        let first = window.days.saturating_sub(DAYS);
        for (d, &list) in daily.iter().enumerate().skip(first) {
            if list.is_zero() {
                continue;
            }
            let basis_points = rng.random_range(-30..=30);
            let reported = list * Decimal::from(10_000 + basis_points) / Decimal::from(10_000);
            let day = window.date(d);
            ids.push(format!("demo-costs:{p}:{day}"));
            days.push(Some(day_number(day)));
            providers.push(p);
            amounts.push(Some(reported.round_dp(6)));
        }
    }
    let n = ids.len();
    batch(
        "provider_costs",
        vec![
            ("event_id", text_nn(&ids)),
            ("day", dates(days)),
            ("provider", text_nn(&providers)),
            ("project", text::<&str>(&vec![None; n])),
            ("line_item", text_nn(&vec!["total"; n])),
            ("model", text::<&str>(&vec![None; n])),
            ("service_tier", text::<&str>(&vec![None; n])),
            ("amount", money(&amounts)?),
            ("currency", text_nn(&vec!["USD"; n])),
            ("source", text(&vec![Some("demo"); n])),
            ("ingested_at", timestamps(vec![Some(window.end_micros); n])),
        ],
    )
}
