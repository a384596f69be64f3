//! The row loop shared by `token_cost` and `usage_cost`: resolve each row's model (memoised
//! per distinct provider and model), find its price row, apply the rules.

use std::collections::HashMap;

use arrow::array::{Array, Int64Array, StringViewArray, TimestampMicrosecondArray};
use datafusion::common::Result;

use crate::catalog::{PriceCatalog, PriceRow, Request, pick};
use crate::rules::{self, CostParts, Family, Rates, Tokens};

/// A model as costing needs it: its price rows and whose cache rules apply.
#[derive(Debug, Clone, Copy)]
pub struct Resolved<'a> {
    pub series: &'a [PriceRow],
    pub family: Family,
}

/// Resolves each distinct (provider, model) of a batch once. A row compares with the
/// previous row's pair first (stored usage is sorted by provider and model), else hashes
/// its two strings (foldhash: SipHash here was a fifth of `token_cost`'s time).
pub struct Resolver<'a> {
    catalog: &'a PriceCatalog,
    memo: HashMap<(&'a str, &'a str), Option<Resolved<'a>>, foldhash::fast::FixedState>,
    previous: Option<((&'a str, &'a str), Option<Resolved<'a>>)>,
}

impl<'a> Resolver<'a> {
    pub fn new(catalog: &'a PriceCatalog) -> Self {
        Resolver {
            catalog,
            memo: HashMap::default(),
            previous: None,
        }
    }

    /// The priced model for `provider`'s raw model name, or None if the catalog has none.
    pub fn get(&mut self, provider: &'a str, raw: &'a str) -> Option<Resolved<'a>> {
        if let Some((last, resolved)) = self.previous
            && last == (provider, raw)
        {
            return resolved;
        }
        let catalog = self.catalog;
        let resolved = *self.memo.entry((provider, raw)).or_insert_with(|| {
            let model = catalog.resolve(provider, raw)?;
            let (filed_under, series) = catalog.series(provider, model)?;
            Some(Resolved {
                series,
                family: rules::family(filed_under, model),
            })
        });
        self.previous = Some(((provider, raw), resolved));
        resolved
    }
}

/// The price row picked for the previous row, and the span of time over which the same pick
/// holds for the same series, tier and region: no row of the series starts or ends inside it.
/// Stored usage is sorted by provider, model and time, so nearly every row falls inside the
/// last span and skips `pick` and the fallback rules. Series with a time-of-day window or a
/// long-context threshold are picked per row (the pick then depends on more than the date).
#[derive(Default)]
struct LastPick<'a> {
    last: Option<Pick<'a>>,
}

struct Pick<'a> {
    series: *const PriceRow,
    family: Family,
    service_tier: &'a str,
    region: Option<&'a str>,
    from: i64,
    until: i64,
    rates: Option<Rates>,
}

impl<'a> LastPick<'a> {
    /// The rates for a row of `resolved` at `ts`; the request (and its prompt size, a
    /// division) is only worked out when the last pick does not hold.
    fn rates_for(
        &mut self,
        resolved: Resolved<'_>,
        ts: i64,
        service_tier: &'a str,
        region: Option<&'a str>,
        tokens: &Tokens,
    ) -> Option<&Rates> {
        let series = resolved.series;
        let hit = self.last.as_ref().is_some_and(|last| {
            std::ptr::eq(last.series, series.as_ptr())
                && last.family == resolved.family
                && last.from <= ts
                && ts < last.until
                && last.service_tier == service_tier
                && last.region == region
        });
        if !hit {
            let request = Request {
                ts,
                service_tier,
                region,
                prompt_tokens: tokens.prompt_per_request(),
            };
            let rates = pick(series, &request).map(|row| Rates::of(resolved.family, row));
            let by_date_only = series
                .iter()
                .all(|row| row.window.is_none() && row.min_prompt_tokens == 0);
            // An empty span when the pick depends on more than the date: the next row misses.
            let (from, until) = if by_date_only {
                span_without_changes(series, ts)
            } else {
                (0, 0)
            };
            self.last = Some(Pick {
                series: series.as_ptr(),
                family: resolved.family,
                service_tier,
                region,
                from,
                until,
                rates,
            });
        }
        self.last.as_ref().and_then(|last| last.rates.as_ref())
    }
}

/// The widest `[from, until)` around `ts` in which no row of `series` takes or loses effect.
fn span_without_changes(series: &[PriceRow], ts: i64) -> (i64, i64) {
    let mut from = i64::MIN;
    let mut until = i64::MAX;
    for edge in series
        .iter()
        .flat_map(|row| [Some(row.effective_from), row.effective_to])
        .flatten()
    {
        if edge <= ts {
            from = from.max(edge);
        } else {
            until = until.min(edge);
        }
    }
    (from, until)
}

/// Columns of a costing call; optional ones default (0 tokens, 1 request, standard tier,
/// any region).
pub struct CostInputs {
    pub provider: StringViewArray,
    pub model: StringViewArray,
    pub ts: TimestampMicrosecondArray,
    pub input: Int64Array,
    pub output: Int64Array,
    pub cached_input: Option<Int64Array>,
    pub cache_write: Option<Int64Array>,
    pub cache_write_1h: Option<Int64Array>,
    pub requests: Option<Int64Array>,
    pub service_tier: Option<StringViewArray>,
    pub region: Option<StringViewArray>,
}

fn value(array: &Option<Int64Array>, i: usize, default: i64) -> Option<i64> {
    match array {
        None => Some(default),
        Some(a) if a.is_null(i) => None,
        Some(a) => Some(a.value(i)),
    }
}

/// Hands `emit` each row's cost parts in order; None where any input is NULL or no price
/// applies. A sink rather than a vector of parts (96 bytes a row), which every batch
/// allocated, filled and then copied into its output columns.
pub fn compute(
    catalog: &PriceCatalog,
    c: &CostInputs,
    rows: usize,
    mut emit: impl FnMut(Option<CostParts>),
) -> Result<()> {
    let mut resolver = Resolver::new(catalog);
    let mut last_pick = LastPick::default();
    // The last row resolved and its model. Equal views mean equal text, and rows decoded
    // from one Parquet dictionary share their views: a compare of two u128s, not of bytes.
    let mut last_resolved: Option<(usize, Option<Resolved<'_>>)> = None;
    let (provider_views, model_views) = (c.provider.views(), c.model.views());
    for i in 0..rows {
        if c.provider.is_null(i)
            || c.model.is_null(i)
            || c.ts.is_null(i)
            || c.input.is_null(i)
            || c.output.is_null(i)
        {
            emit(None);
            continue;
        }
        let (Some(cached_input), Some(cache_write), Some(cache_write_1h), Some(requests)) = (
            value(&c.cached_input, i, 0),
            value(&c.cache_write, i, 0),
            value(&c.cache_write_1h, i, 0),
            value(&c.requests, i, 1),
        ) else {
            emit(None);
            continue;
        };
        let tokens = Tokens {
            input: c.input.value(i),
            cached_input,
            cache_write,
            cache_write_1h,
            output: c.output.value(i),
            requests,
        };
        rules::check_tokens("input_tokens", tokens.input)?;
        rules::check_tokens("output_tokens", tokens.output)?;
        rules::check_tokens("cached_input_tokens", tokens.cached_input)?;
        rules::check_tokens("cache_write_tokens", tokens.cache_write)?;
        rules::check_tokens("cache_write_1h_tokens", tokens.cache_write_1h)?;
        rules::check_tokens("requests", tokens.requests)?;
        let resolved = match last_resolved {
            Some((last, resolved))
                if provider_views[last] == provider_views[i]
                    && model_views[last] == model_views[i] =>
            {
                resolved
            }
            _ => resolver.get(c.provider.value(i), c.model.value(i)),
        };
        last_resolved = Some((i, resolved));
        let Some(resolved) = resolved else {
            emit(None);
            continue;
        };
        let tier = match &c.service_tier {
            Some(t) if t.is_valid(i) => t.value(i),
            _ => "standard",
        };
        let region = c
            .region
            .as_ref()
            .and_then(|r| r.is_valid(i).then(|| r.value(i)));
        let parts = match last_pick.rates_for(resolved, c.ts.value(i), tier, region, &tokens) {
            Some(rates) => rates.cost_parts(&tokens)?,
            None => None,
        };
        emit(parts);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{
        AsArray, Decimal128Array, DictionaryArray, RecordBatch, StringArray, Time64MicrosecondArray,
    };
    use arrow::datatypes::{DataType, Field, Int32Type, Schema, TimeUnit};
    use proptest::prelude::*;

    use super::*;

    const DAY: i64 = 86_400_000_000;
    /// Longer than a view holds inline (12 bytes): equal text may have unequal views.
    const M2: &str = "m2-with-a-long-context-tier";
    const USD: i128 = 1_000_000_000;

    /// (model, from day, to day, tier, region, min prompt tokens, window, input, output)
    type Row = (
        &'static str,
        i64,
        Option<i64>,
        &'static str,
        Option<&'static str>,
        i64,
        Option<(i64, i64)>,
        i128,
        i128,
    );

    /// m1 changes price on day 10 and again on day 20, has a flex tier and a regional row
    /// that starts later; m2 has a long-context tier and m3 a night-time discount, so those
    /// two are picked per row.
    fn catalog() -> PriceCatalog {
        let rows: [Row; 8] = [
            (
                "m1",
                0,
                Some(10),
                "standard",
                None,
                0,
                None,
                2 * USD,
                8 * USD,
            ),
            ("m1", 10, Some(20), "standard", None, 0, None, USD, 4 * USD),
            ("m1", 20, None, "standard", None, 0, None, USD / 2, 2 * USD),
            ("m1", 0, None, "flex", None, 0, None, USD / 4, USD),
            (
                "m1",
                15,
                None,
                "standard",
                Some("eu"),
                0,
                None,
                3 * USD,
                9 * USD,
            ),
            (M2, 0, None, "standard", None, 0, None, USD, 2 * USD),
            (M2, 0, None, "standard", None, 1000, None, 2 * USD, 4 * USD),
            (
                "m3",
                5,
                None,
                "standard",
                None,
                0,
                Some((0, DAY / 4)),
                USD / 10,
                USD / 5,
            ),
        ];
        let text = |f: &dyn Fn(&Row) -> Option<&'static str>| {
            Arc::new(StringArray::from(rows.iter().map(f).collect::<Vec<_>>())) as _
        };
        let day = |f: &dyn Fn(&Row) -> Option<i64>| {
            Arc::new(TimestampMicrosecondArray::from(
                rows.iter()
                    .map(|r| f(r).map(|d| d * DAY))
                    .collect::<Vec<_>>(),
            )) as _
        };
        let time = |f: &dyn Fn(&Row) -> Option<i64>| {
            Arc::new(Time64MicrosecondArray::from(
                rows.iter().map(f).collect::<Vec<_>>(),
            )) as _
        };
        let price = |f: &dyn Fn(&Row) -> Option<i128>| {
            Arc::new(
                Decimal128Array::from(rows.iter().map(f).collect::<Vec<_>>())
                    .with_precision_and_scale(20, 9)
                    .expect("valid decimal"),
            ) as _
        };
        let ts = DataType::Timestamp(TimeUnit::Microsecond, None);
        let t64 = DataType::Time64(TimeUnit::Microsecond);
        let money = DataType::Decimal128(20, 9);
        let schema = Schema::new(vec![
            Field::new("provider", DataType::Utf8, true),
            Field::new("model", DataType::Utf8, true),
            Field::new("effective_from", ts.clone(), true),
            Field::new("effective_to", ts, true),
            Field::new("service_tier", DataType::Utf8, true),
            Field::new("region", DataType::Utf8, true),
            Field::new("min_prompt_tokens", DataType::Int64, true),
            Field::new("utc_start_time", t64.clone(), true),
            Field::new("utc_end_time", t64, true),
            Field::new("input_per_mtok", money.clone(), true),
            Field::new("output_per_mtok", money, true),
        ]);
        let batch = RecordBatch::try_new(
            Arc::new(schema),
            vec![
                text(&|_| Some("acme")),
                text(&|r| Some(r.0)),
                day(&|r| Some(r.1)),
                day(&|r| r.2),
                text(&|r| Some(r.3)),
                text(&|r| r.4),
                Arc::new(Int64Array::from(
                    rows.iter().map(|r| r.5).collect::<Vec<_>>(),
                )),
                time(&|r| r.6.map(|w| w.0)),
                time(&|r| r.6.map(|w| w.1)),
                price(&|r| Some(r.7)),
                price(&|r| Some(r.8)),
            ],
        )
        .expect("valid batch");
        PriceCatalog::from_batches(&[batch], &[]).expect("valid catalog")
    }

    /// The cost of one row with no memo at all: resolve, pick and price it on its own.
    fn one_at_a_time(catalog: &PriceCatalog, c: &CostInputs, i: usize) -> Option<CostParts> {
        let model = catalog.resolve("acme", c.model.value(i))?;
        let (filed_under, series) = catalog.series("acme", model)?;
        let tokens = Tokens {
            input: c.input.value(i),
            output: c.output.value(i),
            requests: 1,
            ..Tokens::default()
        };
        let request = Request {
            ts: c.ts.value(i),
            service_tier: c.service_tier.as_ref().map_or("standard", |t| t.value(i)),
            region: c
                .region
                .as_ref()
                .and_then(|r| r.is_valid(i).then(|| r.value(i))),
            prompt_tokens: tokens.prompt_per_request(),
        };
        let row = pick(series, &request)?;
        rules::cost_parts(rules::family(filed_under, model), row, &tokens).expect("prices")
    }

    #[test]
    fn a_pick_holds_until_the_next_row_of_the_series_takes_or_loses_effect() {
        let catalog = catalog();
        let (_, series) = catalog.series("acme", "m1").expect("m1 is priced");
        assert_eq!(span_without_changes(series, 12 * DAY), (10 * DAY, 15 * DAY));
        assert_eq!(span_without_changes(series, 15 * DAY), (15 * DAY, 20 * DAY));
        assert_eq!(span_without_changes(series, 25 * DAY), (20 * DAY, i64::MAX));
        assert_eq!(span_without_changes(series, -DAY), (i64::MIN, 0));
    }

    proptest! {
        /// Rows in time order (runs that hit the last pick) or shuffled (runs that miss it)
        /// cost exactly what each row costs on its own, across every price change, tier,
        /// region, long-context threshold and time-of-day window of the catalog; with the
        /// model's text in views shared as a Parquet dictionary decodes them, or not.
        #[test]
        fn memoised_picks_cost_what_each_row_costs_on_its_own(
            rows in proptest::collection::vec(
                (0usize..4, -2 * DAY..30 * DAY, 0usize..3, 0usize..3, 0i64..3000, 0i64..3000),
                1..300,
            ),
            sorted in any::<bool>(),
            shared_views in any::<bool>(),
        ) {
            let mut rows = rows;
            if sorted {
                rows.sort_by_key(|r| (r.0, r.1));
            }
            let models = ["m1", M2, "m3", "unpriced"];
            let names = rows.iter().map(|r| models[r.0]).collect::<Vec<_>>();
            // As a Parquet dictionary decodes: every row of a model shares one view.
            let model = if shared_views {
                let dictionary: DictionaryArray<Int32Type> = names.iter().copied().collect();
                let views = arrow::compute::cast(&dictionary, &DataType::Utf8View).expect("cast");
                views.as_string_view().clone()
            } else {
                StringViewArray::from(names)
            };
            let long = (0..model.len()).filter(|i| model.value(*i) == M2).collect::<Vec<_>>();
            let views_shared = long.windows(2).all(|w| model.views()[w[0]] == model.views()[w[1]]);
            prop_assert!(views_shared || !shared_views, "the dictionary's rows share views");
            let tiers = ["standard", "flex", "priority"];
            let regions = [None, Some("eu"), Some("us")];
            let inputs = CostInputs {
                provider: StringViewArray::from(vec!["acme"; rows.len()]),
                model,
                ts: TimestampMicrosecondArray::from(rows.iter().map(|r| r.1).collect::<Vec<_>>()),
                input: Int64Array::from(rows.iter().map(|r| r.4).collect::<Vec<_>>()),
                output: Int64Array::from(rows.iter().map(|r| r.5).collect::<Vec<_>>()),
                cached_input: None,
                cache_write: None,
                cache_write_1h: None,
                requests: None,
                service_tier: Some(StringViewArray::from(
                    rows.iter().map(|r| tiers[r.2]).collect::<Vec<_>>(),
                )),
                region: Some(StringViewArray::from(
                    rows.iter().map(|r| regions[r.3]).collect::<Vec<_>>(),
                )),
            };
            let catalog = catalog();
            let mut batch = Vec::new();
            compute(&catalog, &inputs, rows.len(), |parts| batch.push(parts)).expect("costs");
            for (i, parts) in batch.iter().enumerate() {
                prop_assert_eq!(*parts, one_at_a_time(&catalog, &inputs, i), "row {}", i);
            }
        }
    }
}
