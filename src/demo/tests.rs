//! Checks on the generated data set: shape, schemas, coverage and the planted stories.
//! Costs are recomputed here from the Arrow batches alone (not the generator's internals).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::LazyLock;

use arrow::array::{Array, AsArray};
use arrow::datatypes::{
    Date32Type, Decimal128Type, Int32Type, Int64Type, TimestampMicrosecondType,
};
use arrow::record_batch::RecordBatch;
use chrono::{Datelike, NaiveDate};
use rust_decimal::Decimal;

use super::*;
use crate::schema;

fn today() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 8, 21).expect("date")
}

static DEMO: LazyLock<DemoData> = LazyLock::new(|| generate(today(), 42).expect("demo generates"));

fn table(name: &str) -> &'static [RecordBatch] {
    DEMO.tables
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, b)| b.as_slice())
        .unwrap_or_else(|| panic!("no table {name}"))
}

fn strs<'a>(b: &'a RecordBatch, col: &str) -> Vec<Option<&'a str>> {
    let a = b.column_by_name(col).expect(col).as_string::<i32>();
    (0..a.len())
        .map(|i| (!a.is_null(i)).then(|| a.value(i)))
        .collect()
}

fn ints(b: &RecordBatch, col: &str) -> Vec<i64> {
    b.column_by_name(col)
        .expect(col)
        .as_primitive::<Int64Type>()
        .values()
        .to_vec()
}

fn stamps(b: &RecordBatch, col: &str) -> Vec<Option<i64>> {
    let a = b
        .column_by_name(col)
        .expect(col)
        .as_primitive::<TimestampMicrosecondType>();
    (0..a.len())
        .map(|i| (!a.is_null(i)).then(|| a.value(i)))
        .collect()
}

fn decimals(b: &RecordBatch, col: &str) -> Vec<Option<Decimal>> {
    let a = b
        .column_by_name(col)
        .expect(col)
        .as_primitive::<Decimal128Type>();
    let scale = a.scale() as u32;
    (0..a.len())
        .map(|i| (!a.is_null(i)).then(|| Decimal::from_i128_with_scale(a.value(i), scale)))
        .collect()
}

fn micros(d: NaiveDate) -> i64 {
    columns::midnight_micros(d)
}

/// Token totals of a data set: (rows, requests, input, cached, output).
fn totals(data: &DemoData) -> (usize, i64, i64, i64, i64) {
    let mut t = (0, 0, 0, 0, 0);
    for b in &data.usage {
        t.0 += b.num_rows();
        t.1 += ints(b, "requests").iter().sum::<i64>();
        t.2 += ints(b, "input_tokens").iter().sum::<i64>();
        t.3 += ints(b, "cached_input_tokens").iter().sum::<i64>();
        t.4 += ints(b, "output_tokens").iter().sum::<i64>();
    }
    t
}

#[test]
fn same_seed_same_data_and_other_seed_differs() {
    let again = generate(today(), 42).expect("generates");
    assert_eq!(totals(&again), totals(&DEMO));
    let budgets = |d: &DemoData| {
        let b = &d
            .tables
            .iter()
            .find(|(n, _)| *n == "budgets")
            .expect("budgets")
            .1[0];
        decimals(b, "amount")
    };
    assert_eq!(budgets(&again), budgets(&DEMO));
    let other = generate(today(), 43).expect("generates");
    assert_ne!(totals(&other), totals(&DEMO));
}

#[test]
fn every_batch_has_its_table_schema_and_no_nulls_in_not_null_columns() {
    let expected: HashSet<&str> = schema::tables()
        .iter()
        .map(|t| t.name)
        .filter(|n| *n != "usage")
        .collect();
    let got: HashSet<&str> = DEMO.tables.iter().map(|(n, _)| *n).collect();
    assert_eq!(got, expected);
    let all = DEMO
        .tables
        .iter()
        .map(|(n, b)| (*n, b))
        .chain(std::iter::once(("usage", &DEMO.usage)));
    for (name, batches) in all {
        let def = schema::table_def(name).expect("table");
        assert!(!batches.is_empty(), "{name} has no batch");
        for b in batches {
            assert_eq!(b.schema(), def.schema, "{name} schema");
            for (field, col) in def.schema.fields().iter().zip(b.columns()) {
                if !field.is_nullable() {
                    assert_eq!(col.null_count(), 0, "{name}.{} has NULLs", field.name());
                }
            }
        }
        // Written by the engine, not the demo.
        if name != "alerts" && name != "report_runs" {
            let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
            assert!(rows > 0, "{name} is empty");
        }
    }
    assert_eq!(DEMO.usage[0].schema(), schema::usage_schema());
}

#[test]
fn usage_volume_and_batch_sizes() {
    let rows: usize = DEMO.usage.iter().map(|b| b.num_rows()).sum();
    assert!((150_000..=300_000).contains(&rows), "{rows} usage rows");
    assert!(DEMO.usage.iter().all(|b| b.num_rows() <= 65_536));
    let mut ids = HashSet::new();
    for b in &DEMO.usage {
        for id in strs(b, "event_id") {
            assert!(ids.insert(id.expect("event_id")), "duplicate event_id");
        }
        assert!(strs(b, "source").iter().all(|s| *s == Some("demo")));
    }
}

#[test]
fn usage_covers_the_catalogue_and_the_organisation() {
    let mut models = HashSet::new();
    let mut providers = HashSet::new();
    let mut teams = HashSet::new();
    let mut features = HashSet::new();
    let mut customers = HashSet::new();
    let mut envs = HashSet::new();
    let mut tiers = HashSet::new();
    let mut statuses: BTreeMap<&str, usize> = BTreeMap::new();
    for b in &DEMO.usage {
        let p = strs(b, "provider");
        let m = strs(b, "model");
        for i in 0..b.num_rows() {
            models.insert((p[i], m[i]));
            providers.insert(p[i]);
        }
        teams.extend(strs(b, "team").into_iter().flatten());
        features.extend(strs(b, "feature").into_iter().flatten());
        customers.extend(strs(b, "customer").into_iter().flatten());
        envs.extend(strs(b, "environment").into_iter().flatten());
        tiers.extend(strs(b, "service_tier").into_iter().flatten());
        for s in strs(b, "status").into_iter().flatten() {
            *statuses.entry(s).or_default() += 1;
        }
    }
    assert!(models.len() >= 15, "{} models", models.len());
    assert!(providers.len() >= 4, "{} providers", providers.len());
    assert!(teams.len() >= 6, "{} teams", teams.len());
    assert!(features.len() >= 30, "{} features", features.len());
    assert!(customers.len() >= 200, "{} customers", customers.len());
    assert_eq!(envs, HashSet::from(["prod", "staging", "dev"]));
    assert_eq!(tiers, HashSet::from(["standard", "batch"]));
    let errors = statuses.get("error").copied().unwrap_or(0) as f64;
    let share = errors / statuses.values().sum::<usize>() as f64;
    assert!((0.003..0.03).contains(&share), "error share {share}");
}

#[test]
fn usage_timestamps_are_inside_the_window() {
    let start = micros(today() - chrono::Days::new(180));
    let end = micros(today());
    for b in &DEMO.usage {
        for ts in stamps(b, "ts") {
            let ts = ts.expect("ts");
            assert!(start <= ts && ts < end, "ts {ts} outside the window");
        }
    }
}

#[test]
fn token_semantics_hold() {
    for b in &DEMO.usage {
        let out = ints(b, "output_tokens");
        let reasoning = ints(b, "reasoning_tokens");
        let requests = ints(b, "requests");
        for col in [
            "input_tokens",
            "cached_input_tokens",
            "cache_write_tokens",
            "cache_write_1h_tokens",
        ] {
            assert!(ints(b, col).iter().all(|&v| v >= 0), "{col} negative");
        }
        for i in 0..b.num_rows() {
            assert!(reasoning[i] <= out[i]);
            assert!(requests[i] >= 1);
        }
    }
}

/// A price row from the pricing batch: from, to, and the five per-mtok prices.
type PriceEntry = (i64, Option<i64>, [Option<Decimal>; 5]);

fn price_book() -> HashMap<(String, String, String), Vec<PriceEntry>> {
    let mut book: HashMap<_, Vec<_>> = HashMap::new();
    for b in table("pricing") {
        let p = strs(b, "provider");
        let m = strs(b, "model");
        let t = strs(b, "service_tier");
        let from = stamps(b, "effective_from");
        let to = stamps(b, "effective_to");
        let cols = [
            decimals(b, "input_per_mtok"),
            decimals(b, "cached_input_per_mtok"),
            decimals(b, "cache_write_per_mtok"),
            decimals(b, "cache_write_1h_per_mtok"),
            decimals(b, "output_per_mtok"),
        ];
        for i in 0..b.num_rows() {
            let key = (
                p[i].expect("p").to_string(),
                m[i].expect("m").to_string(),
                t[i].expect("t").to_string(),
            );
            let prices = [cols[0][i], cols[1][i], cols[2][i], cols[3][i], cols[4][i]];
            book.entry(key)
                .or_default()
                .push((from[i].expect("from"), to[i], prices));
        }
    }
    book
}

/// The list cost of every usage row, computed from the pricing table; panics when a row
/// has no price in force.
fn row_costs(
    b: &RecordBatch,
    book: &HashMap<(String, String, String), Vec<PriceEntry>>,
) -> Vec<Decimal> {
    let p = strs(b, "provider");
    let m = strs(b, "model");
    let t = strs(b, "service_tier");
    let ts = stamps(b, "ts");
    let tokens = [
        ints(b, "input_tokens"),
        ints(b, "cached_input_tokens"),
        ints(b, "cache_write_tokens"),
        ints(b, "cache_write_1h_tokens"),
        ints(b, "output_tokens"),
    ];
    (0..b.num_rows())
        .map(|i| {
            let key = (
                p[i].expect("p").to_string(),
                m[i].expect("m").to_string(),
                t[i].expect("t").to_string(),
            );
            let ts = ts[i].expect("ts");
            let entries = book
                .get(&key)
                .unwrap_or_else(|| panic!("no price for {key:?}"));
            let in_force: Vec<_> = entries
                .iter()
                .filter(|(from, to, _)| *from <= ts && to.is_none_or(|to| ts < to))
                .collect();
            assert_eq!(
                in_force.len(),
                1,
                "{key:?} at {ts}: {} prices",
                in_force.len()
            );
            let prices = in_force[0].2;
            let input = prices[0].expect("input price");
            let write = prices[2].unwrap_or(input);
            let per = [
                input,
                prices[1].unwrap_or(input),
                write,
                prices[3].unwrap_or(write),
                prices[4].expect("output price"),
            ];
            // Cached and cache-write tokens only where the catalog prices them.
            if tokens[1][i] > 0 {
                assert!(prices[1].is_some(), "{key:?} has cache reads but no price");
            }
            if tokens[2][i] + tokens[3][i] > 0 {
                assert!(prices[2].is_some(), "{key:?} has cache writes but no price");
            }
            (0..5)
                .map(|k| Decimal::from(tokens[k][i]) * per[k])
                .sum::<Decimal>()
                / Decimal::from(1_000_000)
        })
        .collect()
}

#[test]
fn every_usage_row_has_exactly_one_price_in_force() {
    let book = price_book();
    let mut total = Decimal::ZERO;
    for b in &DEMO.usage {
        total += row_costs(b, &book).into_iter().sum::<Decimal>();
    }
    // A company of this size spends tens of thousands of dollars a month.
    let monthly = total / Decimal::from(6);
    assert!(
        monthly > Decimal::from(20_000) && monthly < Decimal::from(150_000),
        "monthly spend {monthly}"
    );
}

#[test]
fn the_price_cut_has_two_effective_dated_rows() {
    let b = &table("pricing")[0];
    let m = strs(b, "model");
    let t = strs(b, "service_tier");
    let from = stamps(b, "effective_from");
    let to = stamps(b, "effective_to");
    let cut = micros(today() - chrono::Days::new(90));
    let o3: Vec<usize> = (0..b.num_rows())
        .filter(|&i| m[i] == Some("o3") && t[i] == Some("standard"))
        .collect();
    assert_eq!(o3.len(), 2);
    assert_eq!(to[o3[0]], Some(cut));
    assert_eq!(from[o3[1]], Some(cut));
    assert_eq!(to[o3[1]], None);
    let input = decimals(b, "input_per_mtok");
    assert!(input[o3[1]] < input[o3[0]]);
}

#[test]
fn the_retry_spike_stands_out() {
    let mut daily: BTreeMap<i64, i64> = BTreeMap::new();
    for b in &DEMO.usage {
        let f = strs(b, "feature");
        let env = strs(b, "environment");
        let ts = stamps(b, "ts");
        let req = ints(b, "requests");
        for i in 0..b.num_rows() {
            if f[i] == Some(scenario::SPIKE_FEATURE) && env[i] == Some("prod") {
                *daily
                    .entry(ts[i].expect("ts") / 86_400_000_000)
                    .or_default() += req[i];
            }
        }
    }
    let mut values: Vec<i64> = daily.values().copied().collect();
    values.sort_unstable();
    let median = values[values.len() / 2];
    let (max_day, max) = daily
        .iter()
        .max_by_key(|(_, v)| **v)
        .map(|(d, v)| (*d, *v))
        .expect("days");
    assert!(max >= 5 * median, "max {max} vs median {median}");
    let days_ago = i64::from(today().to_epoch_days()) - max_day;
    assert!(
        scenario::SPIKE_DAYS_AGO.contains(&days_ago),
        "spike {days_ago} days ago"
    );
}

/// Team of a usage row after attribution rules keyed by api_key_id.
fn rule_teams() -> HashMap<String, String> {
    let b = &table("attribution_rules")[0];
    let keys = strs(b, "api_key_id");
    let teams = strs(b, "team");
    keys.into_iter()
        .zip(teams)
        .filter_map(|(k, t)| Some((k?.to_string(), t?.to_string())))
        .collect()
}

#[test]
fn budgets_sit_near_and_over_their_limits_and_unattributed_spend_is_small() {
    let book = price_book();
    let rules = rule_teams();
    let month_first = micros(today().with_day(1).expect("first"));
    let mut team_mtd: HashMap<String, Decimal> = HashMap::new();
    let mut total = Decimal::ZERO;
    let mut untagged = Decimal::ZERO;
    let mut uncovered = Decimal::ZERO;
    for b in &DEMO.usage {
        let costs = row_costs(b, &book);
        let teams = strs(b, "team");
        let keys = strs(b, "api_key_id");
        let ts = stamps(b, "ts");
        for i in 0..b.num_rows() {
            total += costs[i];
            let team = match teams[i] {
                Some(t) => Some(t.to_string()),
                None => {
                    untagged += costs[i];
                    let mapped = keys[i].and_then(|k| rules.get(k)).cloned();
                    if mapped.is_none() {
                        uncovered += costs[i];
                    }
                    mapped
                }
            };
            if let Some(team) = team
                && ts[i].expect("ts") >= month_first
            {
                *team_mtd.entry(team).or_default() += costs[i];
            }
        }
    }
    let share = untagged / total;
    assert!(
        share > Decimal::new(3, 2) && share < Decimal::new(8, 2),
        "untagged share {share}"
    );
    assert!(uncovered > Decimal::ZERO && uncovered < untagged);

    let b = &table("budgets")[0];
    let ids = strs(b, "budget_id");
    let values = strs(b, "scope_value");
    let amounts = decimals(b, "amount");
    let mut pct = HashMap::new();
    for i in 0..b.num_rows() {
        assert!(amounts[i].expect("amount") > Decimal::ZERO);
        if let Some(team) = ids[i].and_then(|id| id.strip_prefix("b-team-")) {
            assert_eq!(values[i], Some(team));
            let spent = team_mtd.get(team).copied().unwrap_or_default();
            pct.insert(team, spent / amounts[i].expect("amount"));
        }
    }
    if today().day() == 1 {
        // Nothing spent this month yet: budgets are sized from a typical day instead.
        return;
    }
    let near = |team: &str, lo: i64, hi: i64| {
        let p = pct[team];
        assert!(
            p > Decimal::new(lo, 2) && p < Decimal::new(hi, 2),
            "{team} at {p}"
        );
    };
    near("search", 55, 65);
    near("support", 85, 95);
    near("growth", 105, 125);
}

#[test]
fn governance_tables_tell_their_stories() {
    // Keys overdue for rotation, and revoked keys.
    let b = &table("api_keys")[0];
    let rotated = stamps(b, "last_rotated_at");
    let every = b
        .column_by_name("rotation_days")
        .expect("rotation_days")
        .as_primitive::<Int32Type>();
    let status = strs(b, "status");
    let now = micros(today());
    let due = (0..b.num_rows())
        .filter(|&i| {
            status[i] == Some("active")
                && rotated[i].expect("rotated") + i64::from(every.value(i)) * 86_400_000_000 < now
        })
        .count();
    assert!(due >= 3 && due < b.num_rows() / 2, "{due} keys due");
    assert!(status.contains(&Some("revoked")));
    // Every key used in usage is registered.
    let registered: HashSet<&str> = strs(b, "api_key_id").into_iter().flatten().collect();
    for u in &DEMO.usage {
        for k in strs(u, "api_key_id").into_iter().flatten() {
            assert!(registered.contains(k), "unregistered key {k}");
        }
    }
    // A tier cap that ticket-classification (on a tier-4 model) violates.
    let p = &table("policies")[0];
    assert!(strs(p, "scope_value").contains(&Some("ticket-classification")));
    let m = &table("models")[0];
    let names = strs(m, "model");
    let tier = m
        .column_by_name("tier")
        .expect("tier")
        .as_primitive::<Int32Type>();
    let gpt4o = names
        .iter()
        .position(|n| *n == Some("gpt-4o"))
        .expect("gpt-4o");
    assert_eq!(tier.value(gpt4o), 4);
    // Invoices: five months per provider, close to but not exactly the usage.
    let inv = &table("invoices")[0];
    let providers: HashSet<&str> = strs(inv, "provider").into_iter().flatten().collect();
    assert!(providers.len() >= 4);
    assert!(inv.num_rows() >= 4 * 5);
    // Revenue on the first of each month, and exchange rates every day.
    let rev = &table("revenue")[0];
    let days = rev
        .column_by_name("day")
        .expect("day")
        .as_primitive::<Date32Type>();
    assert!(
        days.values()
            .iter()
            .all(|d| { NaiveDate::from_epoch_days(*d).is_some_and(|d| d.day() == 1) })
    );
    let fx = &table("fx_rates")[0];
    assert_eq!(fx.num_rows(), 2 * 180);
}

#[test]
fn invoices_reconcile_except_one_planted_overcharge() {
    let book = price_book();
    // Computed list cost per (provider, day).
    let mut daily: HashMap<(String, i32), Decimal> = HashMap::new();
    for b in &DEMO.usage {
        let costs = row_costs(b, &book);
        let p = strs(b, "provider");
        let ts = stamps(b, "ts");
        for i in 0..b.num_rows() {
            let day = (ts[i].expect("ts") / 86_400_000_000) as i32;
            *daily
                .entry((p[i].expect("p").to_string(), day))
                .or_default() += costs[i];
        }
    }
    let c = &table("contracts")[0];
    let discounts: HashMap<&str, Decimal> = strs(c, "provider")
        .into_iter()
        .zip(decimals(c, "discount_pct"))
        .map(|(p, d)| (p.expect("provider"), d.expect("pct")))
        .collect();
    let fx = &table("fx_rates")[0];
    let fx_days = fx
        .column_by_name("day")
        .expect("day")
        .as_primitive::<Date32Type>();
    let fx_cur = strs(fx, "currency");
    let fx_rate = decimals(fx, "usd_per_unit");
    let eur = |day: i32| {
        (0..fx.num_rows())
            .find(|&i| fx_days.value(i) == day && fx_cur[i] == Some("EUR"))
            .and_then(|i| fx_rate[i])
            .expect("EUR rate")
    };
    let inv = &table("invoices")[0];
    let start = inv
        .column_by_name("period_start")
        .expect("start")
        .as_primitive::<Date32Type>();
    let end = inv
        .column_by_name("period_end")
        .expect("end")
        .as_primitive::<Date32Type>();
    let amounts = decimals(inv, "amount");
    let currencies = strs(inv, "currency");
    let mut off = Vec::new();
    for (i, p) in strs(inv, "provider").into_iter().enumerate() {
        let p = p.expect("provider");
        let list: Decimal = (start.value(i)..=end.value(i))
            .filter_map(|d| daily.get(&(p.to_string(), d)))
            .sum();
        let pct = discounts.get(p).copied().unwrap_or_default();
        let net = list * (Decimal::ONE_HUNDRED - pct) / Decimal::ONE_HUNDRED;
        let mut billed = amounts[i].expect("amount");
        if currencies[i] == Some("EUR") {
            billed *= eur(end.value(i));
        }
        let ratio = billed / net;
        if (ratio - Decimal::ONE).abs() > Decimal::new(1, 2) {
            off.push((p, ratio));
        }
    }
    assert_eq!(off.len(), 1, "{off:?}");
    assert_eq!(off[0].0, "openai");
    assert!(off[0].1 > Decimal::new(103, 2) && off[0].1 < Decimal::new(106, 2));
}

#[test]
fn some_big_customers_cost_more_than_they_pay() {
    let book = price_book();
    let mut cost: HashMap<String, Decimal> = HashMap::new();
    for b in &DEMO.usage {
        let costs = row_costs(b, &book);
        for (i, c) in strs(b, "customer").into_iter().enumerate() {
            if let Some(c) = c {
                *cost.entry(c.to_string()).or_default() += costs[i];
            }
        }
    }
    let mut revenue: HashMap<String, Decimal> = HashMap::new();
    for b in table("revenue") {
        let amounts = decimals(b, "revenue");
        for (i, c) in strs(b, "customer").into_iter().enumerate() {
            *revenue.entry(c.expect("customer").to_string()).or_default() +=
                amounts[i].expect("revenue");
        }
    }
    // Among the ten biggest users, exactly the two on a pilot plan lose money.
    let mut ranked: Vec<_> = cost.into_iter().collect();
    ranked.sort_by_key(|c| std::cmp::Reverse(c.1));
    let losing = ranked
        .iter()
        .take(10)
        .filter(|(c, v)| *v > revenue.get(c).copied().unwrap_or_default())
        .count();
    assert_eq!(losing, 2, "unprofitable top customers");
}

#[test]
fn other_dates_generate_too() {
    // The first of a month (nothing spent yet this month) and a year end.
    for (y, m, d) in [(2026, 3, 1), (2025, 12, 31)] {
        let today = NaiveDate::from_ymd_opt(y, m, d).expect("date");
        let data = generate(today, 7).expect("generates");
        let b = &data
            .tables
            .iter()
            .find(|(n, _)| *n == "budgets")
            .expect("budgets")
            .1[0];
        assert!(
            decimals(b, "amount")
                .iter()
                .all(|a| a.is_some_and(|a| a > Decimal::ZERO))
        );
    }
}
