//! The seeded demo data set behind `spendql demo` and `serve --demo`.
//!
//! A fictional SaaS company ("Northwind", seven teams, 36 AI features, 400 customers) with
//! 180 days of usage across six providers, priced from a real catalog (genai-prices,
//! embedded as `prices.csv`), plus every configuration table filled in so that each part of
//! the spec — attribution, budgets, anomalies, recommendations, policies, key rotation, unit
//! economics, invoice reconciliation — has something to find. Planted stories:
//!
//! 1. a retry loop that multiplies `email-copy` traffic ~10x for two days three weeks ago;
//! 2. `ticket-classification` runs one-word classification on gpt-4o (tier 4);
//! 3. o3's real price cut, moved to 90 days ago (two effective-dated pricing rows);
//! 4. ~5% of spend on shared keys with no team, half of it covered by attribution rules;
//! 5. team budgets at ~60%, ~90% and ~115% of this month's spend, a global budget
//!    forecast to overrun;
//! 6. policies that some traffic violates (tier caps, unapproved providers);
//! 7. API keys overdue for rotation, and revoked keys;
//! 8. revenue per customer (two customers cost more than they pay), invoices close to but
//!    not exactly the computed cost, and EUR/GBP exchange rates.
//!
//! Everything is a pure function of `(today, seed)`; nothing outside the binary is read.

mod catalog;
mod columns;
mod scenario;
mod tables;
mod usage;

#[cfg(test)]
mod tests;

use arrow::record_batch::RecordBatch;
use chrono::{Days, NaiveDate};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

use crate::{Error, Result};

/// The demo data set, ready to be stored.
pub struct DemoData {
    /// (table name, rows) for every configuration table: pricing, models, contracts,
    /// attribution_rules, budgets, alerts (empty), policies, api_keys, revenue, invoices,
    /// fx_rates.
    pub tables: Vec<(&'static str, Vec<RecordBatch>)>,
    /// Usage rows in batches of at most 65 536 rows, with exactly `schema::usage_schema()`.
    pub usage: Vec<RecordBatch>,
}

/// Generates the demo data set for the 180 days before `today` (exclusive).
///
/// Deterministic for a given `(today, seed)`.
pub fn generate(today: NaiveDate, seed: u64) -> Result<DemoData> {
    let window = Window::new(today)?;
    let catalog = catalog::Catalog::load()?;
    let mut rng = StdRng::seed_from_u64(seed);
    let customers = Customers::new(&mut rng, window.days);
    let generated = usage::generate(&window, &catalog, &customers, &mut rng, seed)?;
    let tables = tables::build(&window, &catalog, &customers, &generated, &mut rng)?;
    let usage = usage::to_batches(&generated, &window, &customers)?;
    Ok(DemoData { tables, usage })
}

/// Length of the demo window in days.
const WINDOW_DAYS: usize = 180;

/// The days the demo covers: `[today - 180 days, today)`.
pub(crate) struct Window {
    pub today: NaiveDate,
    pub start: NaiveDate,
    pub days: usize,
    dates: Vec<NaiveDate>,
    /// The o3 price cut (midnight UTC).
    pub cut: NaiveDate,
    pub cut_micros: i64,
    /// Midnight at the start of `today`: every usage `ts` is before it.
    pub end_micros: i64,
}

impl Window {
    fn new(today: NaiveDate) -> Result<Window> {
        let out_of_range = || Error::Invalid(format!("demo: date {today} is out of range"));
        let start = today
            .checked_sub_days(Days::new(WINDOW_DAYS as u64))
            .ok_or_else(out_of_range)?;
        let cut = today
            .checked_sub_days(Days::new(scenario::PRICE_CUT_DAYS_AGO as u64))
            .ok_or_else(out_of_range)?;
        let dates = (0..WINDOW_DAYS as u64)
            .map(|d| start.checked_add_days(Days::new(d)))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(out_of_range)?;
        Ok(Window {
            today,
            start,
            days: WINDOW_DAYS,
            dates,
            cut,
            cut_micros: columns::midnight_micros(cut),
            end_micros: columns::midnight_micros(today),
        })
    }

    /// The date of day `day` (0 = the first day of the window).
    pub fn date(&self, day: usize) -> NaiveDate {
        self.dates[day]
    }

    /// Days from day `day` to today (the first day is 180 days ago, the last 1).
    pub fn days_ago(&self, day: usize) -> i64 {
        (self.days - day) as i64
    }

    pub fn day_micros(&self, day: usize) -> i64 {
        columns::midnight_micros(self.dates[day])
    }

    /// The index of `date` in the window, if inside it.
    pub fn index(&self, date: NaiveDate) -> Option<usize> {
        let n = (date - self.start).num_days();
        usize::try_from(n).ok().filter(|&n| n < self.days)
    }

    /// `today` shifted by `days` (negative = past), clamped to chrono's range.
    pub fn offset(&self, days: i64) -> NaiveDate {
        let shifted = if days >= 0 {
            self.today.checked_add_days(Days::new(days as u64))
        } else {
            self.today.checked_sub_days(Days::new(days.unsigned_abs()))
        };
        shifted.unwrap_or(self.today)
    }
}

/// A customer's subscription, for the revenue table.
pub(crate) struct Plan {
    pub monthly_usd: i64,
    pub seats: i64,
}

/// The customers, by popularity rank: a Zipf-like long tail, some onboarding mid-window.
pub(crate) struct Customers {
    names: Vec<String>,
    /// First day (window index) each customer is active.
    pub start_day: Vec<usize>,
    pub plans: Vec<Plan>,
    cdf: Vec<f64>,
}

/// Ranks of big users on a cheap pilot plan: they cost more in AI than they pay.
const UNPROFITABLE_RANKS: [usize; 2] = [2, 6];

impl Customers {
    fn new(rng: &mut StdRng, days: usize) -> Customers {
        use rand::Rng;
        let mut names = scenario::customer_names();
        names.shuffle(rng);
        let n = names.len();
        let start_day = (0..n)
            .map(|rank| {
                if rank >= 80 && rng.random::<f64>() < 0.25 {
                    rng.random_range(10..days - 5)
                } else {
                    0
                }
            })
            .collect();
        let plans = (0..n)
            .map(|rank| {
                let pick =
                    |rng: &mut StdRng, options: &[i64]| options[rng.random_range(0..options.len())];
                if UNPROFITABLE_RANKS.contains(&rank) {
                    Plan {
                        monthly_usd: 400,
                        seats: 50,
                    }
                } else if rank < 10 {
                    Plan {
                        monthly_usd: 45_000 - rank as i64 * 2_500,
                        seats: 2_000 - rank as i64 * 120,
                    }
                } else if rank < 60 {
                    Plan {
                        monthly_usd: pick(rng, &[2_500, 3_500, 5_000, 8_000]),
                        seats: rng.random_range(100..400),
                    }
                } else if rank < 200 {
                    Plan {
                        monthly_usd: pick(rng, &[800, 1_200, 1_500, 2_500]),
                        seats: rng.random_range(20..100),
                    }
                } else {
                    Plan {
                        monthly_usd: pick(rng, &[99, 199, 299, 499]),
                        seats: rng.random_range(3..20),
                    }
                }
            })
            .collect();
        let weights: Vec<f64> = (0..n).map(|r| 1.0 / ((r + 1) as f64).powf(1.1)).collect();
        let cdf = weights
            .iter()
            .scan(0.0, |acc, w| {
                *acc += w;
                Some(*acc)
            })
            .collect();
        Customers {
            names,
            start_day,
            plans,
            cdf,
        }
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn name(&self, rank: u16) -> &str {
        self.names
            .get(usize::from(rank))
            .map(String::as_str)
            .unwrap_or("unknown")
    }

    /// A customer active on `day`, drawn by popularity.
    pub fn pick(&self, rng: &mut StdRng, day: usize) -> u16 {
        use rand::Rng;
        let total = self.cdf.last().copied().unwrap_or(0.0);
        for _ in 0..10 {
            let x = rng.random::<f64>() * total;
            let rank = self.cdf.partition_point(|&c| c <= x).min(self.len() - 1);
            if self.start_day[rank] <= day {
                return rank as u16;
            }
        }
        0
    }
}
