//! Cost arithmetic: exact fixed-point, and the providers' documented rules for cache
//! prices the catalog leaves NULL.
//!
//! | provider family | cache read | cache write (5 min) | cache write (1 h) |
//! |---|---|---|---|
//! | Anthropic (also Claude on Bedrock and Vertex) | 10% of input | 125% of input | 200% of input |
//! | OpenAI, Azure OpenAI | 50% of input | input | input |
//! | Google Gemini | 25% of input | input | input |
//! | anyone else | input | input | the 5-minute price |
//!
//! An explicit catalog price always wins over these rules. A row without an input price
//! cannot price input tokens, and one without an output price cannot price output tokens:
//! such usage is unpriced (NULL), never costed at zero.

use datafusion::common::{DataFusionError, Result};

use crate::catalog::{PriceKind, PriceRow};

/// Token counts of one usage row.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tokens {
    pub input: i64,
    pub cached_input: i64,
    pub cache_write: i64,
    pub cache_write_1h: i64,
    pub output: i64,
    pub requests: i64,
}

impl Tokens {
    /// Prompt tokens of one request (long-context tiers compare against this). A row with
    /// `requests = 0` is an aggregate whose request count the provider does not report
    /// (Anthropic's usage report): its requests' sizes are unknown, so it is priced below
    /// every long-context threshold rather than as one giant prompt.
    pub fn prompt_per_request(&self) -> i64 {
        if self.requests <= 0 {
            return 0;
        }
        let prompt = self
            .input
            .saturating_add(self.cached_input)
            .saturating_add(self.cache_write)
            .saturating_add(self.cache_write_1h);
        prompt / self.requests
    }
}

/// Cost parts in USD at scale 12 (`DECIMAL(38,12)` mantissas).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CostParts {
    pub input: i128,
    pub cached_input: i128,
    pub cache_write: i128,
    pub output: i128,
    pub request: i128,
}

impl CostParts {
    pub fn total(&self) -> i128 {
        self.input + self.cached_input + self.cache_write + self.output + self.request
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Anthropic,
    OpenAi,
    Google,
    Other,
}

/// Whose cache-price rules apply, from the catalog provider and the model.
pub fn family(provider: &str, model: &str) -> Family {
    match provider {
        "anthropic" => Family::Anthropic,
        "openai" | "azure_openai" | "azure" => Family::OpenAi,
        _ if model.contains("claude") => Family::Anthropic,
        "google" | "vertex" | "gemini" => Family::Google,
        _ => Family::Other,
    }
}

/// A price as a fraction of a catalog price: `(price mantissa at scale 9, numerator, denominator)`.
type Scaled = (i128, i64, i64);

/// The price that applies to `kind`, after the fallback rules; None if it cannot be priced.
fn price_of(fam: Family, row: &PriceRow, kind: PriceKind) -> Option<Scaled> {
    let input = row.input;
    let whole = |p: i128| (p, 1, 1);
    match kind {
        PriceKind::Input => input.map(whole),
        PriceKind::Output => row.output.map(whole),
        PriceKind::CachedInput => row.cached_input.map(whole).or_else(|| {
            let p = input?;
            Some(match fam {
                Family::Anthropic => (p, 1, 10),
                Family::OpenAi => (p, 1, 2),
                Family::Google => (p, 1, 4),
                Family::Other => (p, 1, 1),
            })
        }),
        PriceKind::CacheWrite => row.cache_write.map(whole).or_else(|| {
            let p = input?;
            Some(match fam {
                Family::Anthropic => (p, 5, 4),
                _ => (p, 1, 1),
            })
        }),
        PriceKind::CacheWrite1h => row.cache_write_1h.map(whole).or_else(|| match fam {
            Family::Anthropic => input.map(|p| (p, 2, 1)),
            _ => price_of(fam, row, PriceKind::CacheWrite),
        }),
    }
}

/// The effective price per million tokens at scale 9, rounded half away from zero.
pub fn price_per_mtok(fam: Family, row: &PriceRow, kind: PriceKind) -> Option<i128> {
    let (p, num, den) = price_of(fam, row, kind)?;
    Some(div_round(p * i128::from(num), i128::from(den)))
}

fn div_round(n: i128, d: i128) -> i128 {
    let q = n / d;
    let r = n % d;
    if 2 * r.abs() >= d.abs() {
        q + n.signum() * d.signum()
    } else {
        q
    }
}

/// `tokens × price / 1e6` USD at scale 12 from a scale-9 price: `tokens × p × num / (den × 1000)`.
/// In 64 bits when the product fits (nearly always: i128 division is several times slower),
/// else in 128.
fn cost_of(tokens: i64, price: Option<Scaled>) -> Result<Option<i128>> {
    if tokens == 0 {
        return Ok(Some(0));
    }
    let Some((p, num, den)) = price else {
        return Ok(None);
    };
    let divisor = den * 1000;
    if let Some(product) = i64::try_from(p)
        .ok()
        .and_then(|p| tokens.checked_mul(p))
        .and_then(|v| v.checked_mul(num))
    {
        // The usual divisors as constants, so the division compiles to a multiplication.
        let cost = match divisor {
            1_000 => div_round_64(product, 1_000),
            2_000 => div_round_64(product, 2_000),
            4_000 => div_round_64(product, 4_000),
            10_000 => div_round_64(product, 10_000),
            _ => div_round_64(product, divisor),
        };
        return Ok(Some(i128::from(cost)));
    }
    let product = i128::from(tokens)
        .checked_mul(p)
        .and_then(|v| v.checked_mul(i128::from(num)))
        .ok_or_else(|| DataFusionError::Execution(format!("cost of {tokens} tokens overflows")))?;
    Ok(Some(div_round(product, i128::from(divisor))))
}

#[inline(always)]
fn div_round_64(n: i64, d: i64) -> i64 {
    let q = n / d;
    let r = n % d;
    if 2 * r.abs() >= d.abs() {
        q + n.signum() * d.signum()
    } else {
        q
    }
}

/// A price row's token prices and request fee for one family, with the fallback rules
/// applied: worked out once per picked row, so the row loop only multiplies.
#[derive(Debug, Clone, Copy)]
pub struct Rates {
    input: Option<Scaled>,
    cached_input: Option<Scaled>,
    cache_write: Option<Scaled>,
    cache_write_1h: Option<Scaled>,
    output: Option<Scaled>,
    per_request: Option<i128>,
}

impl Rates {
    pub fn of(fam: Family, row: &PriceRow) -> Self {
        let price = |kind| price_of(fam, row, kind);
        Rates {
            input: price(PriceKind::Input),
            cached_input: price(PriceKind::CachedInput),
            cache_write: price(PriceKind::CacheWrite),
            cache_write_1h: price(PriceKind::CacheWrite1h),
            output: price(PriceKind::Output),
            per_request: row.per_request,
        }
    }

    /// The cost parts of `tokens`; None if a kind of token they use has no price.
    pub fn cost_parts(&self, tokens: &Tokens) -> Result<Option<CostParts>> {
        let (Some(input), Some(cached_input), Some(write), Some(write_1h), Some(output)) = (
            cost_of(tokens.input, self.input)?,
            cost_of(tokens.cached_input, self.cached_input)?,
            cost_of(tokens.cache_write, self.cache_write)?,
            cost_of(tokens.cache_write_1h, self.cache_write_1h)?,
            cost_of(tokens.output, self.output)?,
        ) else {
            return Ok(None);
        };
        // per_request is at scale 9; costs are at scale 12.
        let request = self
            .per_request
            .map(|p| {
                i128::from(tokens.requests)
                    .saturating_mul(p)
                    .saturating_mul(1000)
            })
            .unwrap_or(0);
        Ok(Some(CostParts {
            input,
            cached_input,
            cache_write: write + write_1h,
            output,
            request,
        }))
    }
}

/// The cost of `tokens` under `row`, or None when a needed price is missing.
pub fn cost_parts(fam: Family, row: &PriceRow, tokens: &Tokens) -> Result<Option<CostParts>> {
    Rates::of(fam, row).cost_parts(tokens)
}

/// Reject negative token counts with the value named (SQLSTATE 22023 at the wire).
pub fn check_tokens(name: &str, value: i64) -> Result<()> {
    if value < 0 {
        return Err(DataFusionError::Execution(format!(
            "invalid parameter value: {name} must not be negative, got {value}"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(input: i128, output: i128) -> PriceRow {
        PriceRow {
            effective_from: 0,
            effective_to: None,
            service_tier: "standard".into(),
            region: None,
            min_prompt_tokens: 0,
            window: None,
            input: Some(input),
            cached_input: None,
            cache_write: None,
            cache_write_1h: None,
            output: Some(output),
            per_request: None,
        }
    }

    const USD: i128 = 1_000_000_000; // scale-9 mantissa of $1

    #[test]
    fn anthropic_cache_rules_match_the_published_multipliers() {
        // Claude Sonnet 4: $3 input, $15 output; reads $0.30, 5m writes $3.75, 1h writes $6.
        let r = row(3 * USD, 15 * USD);
        assert_eq!(
            price_per_mtok(
                family("anthropic", "claude-sonnet-4"),
                &r,
                PriceKind::CachedInput
            ),
            Some(300_000_000)
        );
        assert_eq!(
            price_per_mtok(
                family("anthropic", "claude-sonnet-4"),
                &r,
                PriceKind::CacheWrite
            ),
            Some(3_750_000_000)
        );
        assert_eq!(
            price_per_mtok(
                family("anthropic", "claude-sonnet-4"),
                &r,
                PriceKind::CacheWrite1h
            ),
            Some(6 * USD)
        );
        let tokens = Tokens {
            input: 1000,
            cached_input: 10_000,
            cache_write: 2000,
            cache_write_1h: 0,
            output: 500,
            requests: 1,
        };
        let parts = cost_parts(family("anthropic", "claude-sonnet-4"), &r, &tokens)
            .expect("ok")
            .expect("priced");
        // 1000*3 + 10000*0.3 + 2000*3.75 + 500*15 = 3000 + 3000 + 7500 + 7500 = 21000 per 1e6 → $0.021
        assert_eq!(parts.total(), 21_000_000_000);
    }

    #[test]
    fn openai_cached_input_is_half_unless_the_catalog_says_otherwise() {
        let mut r = row(2_500_000_000, 10 * USD);
        assert_eq!(
            price_per_mtok(family("openai", "gpt-4o"), &r, PriceKind::CachedInput),
            Some(1_250_000_000)
        );
        r.cached_input = Some(1_000_000_000);
        assert_eq!(
            price_per_mtok(family("openai", "gpt-4o"), &r, PriceKind::CachedInput),
            Some(1_000_000_000)
        );
    }

    #[test]
    fn missing_output_price_leaves_output_unpriced_not_free() {
        let mut r = row(USD, USD);
        r.output = None;
        let t = Tokens {
            output: 1,
            ..Tokens::default()
        };
        assert_eq!(cost_parts(family("x", "m"), &r, &t).expect("ok"), None);
        let t = Tokens {
            input: 1,
            ..Tokens::default()
        };
        assert!(cost_parts(family("x", "m"), &r, &t).expect("ok").is_some());
    }

    #[test]
    fn costs_are_exact_at_scale_12() {
        // 1 token at $0.075 per million = $0.000000075
        assert_eq!(
            cost_of(1, Some((75_000_000, 1, 1))).expect("ok"),
            Some(75_000)
        );
        assert_eq!(cost_of(0, None).expect("ok"), Some(0));
        assert!(cost_of(i64::MAX, Some((i128::MAX / 2, 1, 1))).is_err());
    }

    #[test]
    fn per_request_fees_scale_to_cost() {
        let mut r = row(0, 0);
        r.per_request = Some(5_000_000); // $0.005
        let t = Tokens {
            requests: 3,
            ..Tokens::default()
        };
        let parts = cost_parts(family("x", "m"), &r, &t)
            .expect("ok")
            .expect("priced");
        assert_eq!(parts.request, 15_000_000_000);
    }

    #[test]
    fn an_unknown_request_count_is_below_every_long_context_threshold() {
        let bucket = Tokens {
            input: 5_000_000,
            cached_input: 1_000_000,
            requests: 0,
            ..Tokens::default()
        };
        assert_eq!(bucket.prompt_per_request(), 0);
        let counted = Tokens {
            requests: 20,
            ..bucket
        };
        assert_eq!(counted.prompt_per_request(), 300_000);
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        fn tokens() -> impl Strategy<Value = Tokens> {
            (
                0..10_000_000i64,
                0..10_000_000i64,
                0..1_000_000i64,
                0..1_000_000i64,
                0..1_000_000i64,
                1..1000i64,
            )
                .prop_map(
                    |(input, cached_input, cache_write, cache_write_1h, output, requests)| Tokens {
                        input,
                        cached_input,
                        cache_write,
                        cache_write_1h,
                        output,
                        requests,
                    },
                )
        }

        /// Prices with up to 6 decimals per million tokens, as providers publish them.
        fn price_row() -> impl Strategy<Value = PriceRow> {
            (
                1..100_000_000i128,
                1..100_000_000i128,
                proptest::option::of(0..10_000_000i128),
            )
                .prop_map(|(i, o, c)| PriceRow {
                    input: Some(i * 1000),
                    output: Some(o * 1000),
                    cached_input: c.map(|c| c * 1000),
                    ..row(0, 0)
                })
        }

        fn total(provider: &str, r: &PriceRow, t: &Tokens) -> i128 {
            cost_parts(family(provider, "m"), r, t)
                .expect("no overflow")
                .expect("priced")
                .total()
        }

        proptest! {
            #[test]
            fn cost_is_non_negative_and_monotone(r in price_row(), t in tokens(), extra in 0..1_000_000i64) {
                let base = total("openai", &r, &t);
                prop_assert!(base >= 0);
                let more = Tokens { output: t.output + extra, input: t.input + extra, ..t };
                prop_assert!(total("openai", &r, &more) >= base);
            }

            #[test]
            fn cost_is_additive_over_token_counts(r in price_row(), a in tokens(), b in tokens()) {
                let sum = Tokens {
                    input: a.input + b.input,
                    cached_input: a.cached_input + b.cached_input,
                    cache_write: a.cache_write + b.cache_write,
                    cache_write_1h: a.cache_write_1h + b.cache_write_1h,
                    output: a.output + b.output,
                    requests: a.requests + b.requests,
                };
                // "other" providers have no fractional cache rules, so no rounding happens.
                prop_assert_eq!(total("other", &r, &sum), total("other", &r, &a) + total("other", &r, &b));
            }
        }
    }
}
