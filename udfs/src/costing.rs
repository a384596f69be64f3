//! The row loop shared by `token_cost` and `usage_cost`: resolve each row's model (memoised
//! per distinct provider and model), find its price row, apply the rules.

use std::collections::HashMap;

use arrow::array::{Array, Int64Array, StringArray, TimestampMicrosecondArray};
use datafusion::common::Result;

use crate::catalog::{PriceCatalog, PriceRow, Request, pick};
use crate::rules::{self, CostParts, Family, Tokens};

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

/// Columns of a costing call; optional ones default (0 tokens, 1 request, standard tier,
/// any region).
pub struct CostInputs {
    pub provider: StringArray,
    pub model: StringArray,
    pub ts: TimestampMicrosecondArray,
    pub input: Int64Array,
    pub output: Int64Array,
    pub cached_input: Option<Int64Array>,
    pub cache_write: Option<Int64Array>,
    pub cache_write_1h: Option<Int64Array>,
    pub requests: Option<Int64Array>,
    pub service_tier: Option<StringArray>,
    pub region: Option<StringArray>,
}

fn value(array: &Option<Int64Array>, i: usize, default: i64) -> Option<i64> {
    match array {
        None => Some(default),
        Some(a) if a.is_null(i) => None,
        Some(a) => Some(a.value(i)),
    }
}

/// Cost parts per row; None where any input is NULL or no price applies.
pub fn compute(
    catalog: &PriceCatalog,
    c: &CostInputs,
    rows: usize,
) -> Result<Vec<Option<CostParts>>> {
    let mut resolver = Resolver::new(catalog);
    let mut out = Vec::with_capacity(rows);
    for i in 0..rows {
        if c.provider.is_null(i)
            || c.model.is_null(i)
            || c.ts.is_null(i)
            || c.input.is_null(i)
            || c.output.is_null(i)
        {
            out.push(None);
            continue;
        }
        let (Some(cached_input), Some(cache_write), Some(cache_write_1h), Some(requests)) = (
            value(&c.cached_input, i, 0),
            value(&c.cache_write, i, 0),
            value(&c.cache_write_1h, i, 0),
            value(&c.requests, i, 1),
        ) else {
            out.push(None);
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
        let Some(resolved) = resolver.get(c.provider.value(i), c.model.value(i)) else {
            out.push(None);
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
        let request = Request {
            ts: c.ts.value(i),
            service_tier: tier,
            region,
            prompt_tokens: tokens.prompt_per_request(),
        };
        let parts = match pick(resolved.series, &request) {
            Some(row) => rules::cost_parts(resolved.family, row, &tokens)?,
            None => None,
        };
        out.push(parts);
    }
    Ok(out)
}
