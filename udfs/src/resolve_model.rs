//! `resolve_model(provider, model)`: the catalog's canonical model id for a raw name.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Array, StringBuilder};
use arrow::datatypes::DataType;
use datafusion::common::Result;
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDFImpl, Signature, TypeSignature,
    Volatility,
};

use crate::args;
use crate::catalog::{CatalogHandle, CatalogSource, SourceHandle};

/// Names a raw model id may stand for, most specific first: the id without a
/// `models/` or `publishers/<vendor>/models/` prefix, an OpenRouter `vendor/` prefix, a
/// Bedrock region (`us.`) and vendor (`anthropic.`) prefix and `-v1:0` suffix, a Vertex
/// `@version`, and a dated snapshot suffix (`-2024-08-06`, `-20241022`).
pub fn candidates(raw: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut push = |s: &str| {
        if !s.is_empty() && !out.iter().any(|o| o == s) {
            out.push(s.to_string());
        }
    };
    let mut name = raw.trim();
    if let Some(rest) = name.strip_prefix("models/") {
        name = rest;
    }
    if let Some(rest) = name.strip_prefix("publishers/")
        && let Some((_, model)) = rest.split_once("/models/")
    {
        name = model;
    }
    if let Some((_, model)) = name.rsplit_once('/') {
        name = model;
    }
    push(name);
    // Bedrock: [region.]vendor.model[-vN[:M]]
    let mut bedrock = name;
    for region in [
        "us.", "eu.", "apac.", "global.", "us-gov.", "jp.", "au.", "ca.",
    ] {
        if let Some(rest) = bedrock.strip_prefix(region) {
            bedrock = rest;
            break;
        }
    }
    push(bedrock);
    if let Some((vendor, model)) = bedrock.split_once('.')
        && !vendor.is_empty()
        && vendor.chars().all(|c| c.is_ascii_lowercase() || c == '-')
    {
        bedrock = model;
        push(bedrock);
    }
    let mut base = bedrock;
    if let Some(pos) = base.rfind("-v")
        && base[pos + 2..]
            .chars()
            .all(|c| c.is_ascii_digit() || c == ':')
        && base.len() > pos + 2
    {
        base = &base[..pos];
        push(base);
    }
    if let Some((model, _)) = base.split_once('@') {
        base = model;
        push(base);
    }
    // Dated snapshots: -YYYY-MM-DD or -YYYYMMDD at the end.
    let bytes = base.as_bytes();
    let is_digits = |s: &str| s.chars().all(|c| c.is_ascii_digit());
    if base.len() > 11 && bytes[base.len() - 11] == b'-' {
        let tail = &base[base.len() - 10..];
        if tail.len() == 10
            && is_digits(&tail[..4])
            && &tail[4..5] == "-"
            && is_digits(&tail[5..7])
            && &tail[7..8] == "-"
            && is_digits(&tail[8..])
        {
            push(&base[..base.len() - 11]);
        }
    }
    if base.len() > 9 && bytes[base.len() - 9] == b'-' && is_digits(&base[base.len() - 8..]) {
        push(&base[..base.len() - 9]);
    }
    if let Some(stripped) = base.strip_suffix("-latest") {
        push(stripped);
    }
    out
}

/// `resolve_model(provider, model)`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct ResolveModelFunc {
    signature: Signature,
    source: CatalogHandle,
}

impl ResolveModelFunc {
    pub fn new(source: Arc<dyn CatalogSource>) -> Self {
        ResolveModelFunc {
            signature: Signature::new(TypeSignature::Any(2), Volatility::Stable),
            source: SourceHandle(source),
        }
    }
}

static DOC: std::sync::LazyLock<Documentation> = std::sync::LazyLock::new(|| {
    Documentation::builder(
        crate::DOC_SECTION,
        "Returns the pricing catalog's canonical model id for a provider's raw model name, \
         or NULL if the catalog does not know it. An exact catalog row wins, then an alias of \
         `models.aliases` (exact, then LIKE patterns), then the providers' naming conventions: \
         `models/` and `publishers/<vendor>/models/` prefixes, OpenRouter `vendor/model`, \
         Bedrock ids with region and vendor prefixes and `-vN:M` suffixes, Vertex `@version`, \
         and dated snapshots (`gpt-4o-2024-08-06`). A provider without catalog rows of its own \
         is read as the catalog provider it names: `vertex_ai` is `google` for Gemini and \
         `anthropic` for Claude, `bedrock` is `aws_bedrock`, `azure` is `azure_openai`, and so \
         on; the costing functions price it the same way.",
        "resolve_model(provider, model)",
    )
    .with_sql_example("```sql\n> SELECT resolve_model('openai', 'gpt-4o-2024-08-06');\n+--------+\n| gpt-4o |\n+--------+\n```")
    .with_argument("provider", "Provider id, e.g. `openai`, `aws_bedrock`, `vertex_ai`.")
    .with_argument("model", "The model name as the provider reported it.")
    .build()
});

impl ScalarUDFImpl for ResolveModelFunc {
    fn name(&self) -> &str {
        "resolve_model"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let provider = args::text_view(&args.args[0], rows, "provider")?;
        let model = args::text_view(&args.args[1], rows, "model")?;
        let catalog = self.source.current()?;
        // A batch has few distinct (provider, model) pairs: each is resolved once. foldhash,
        // and a look at the previous row first, keep the per-row cost to a compare or a
        // cheap hash (SipHash made this most of the `spend` view's projection time).
        let mut memo: HashMap<(&str, &str), Option<&str>, foldhash::fast::FixedState> =
            HashMap::default();
        let mut previous: Option<((&str, &str), Option<&str>)> = None;
        let mut out = StringBuilder::with_capacity(rows, rows * 12);
        for i in 0..rows {
            if provider.is_null(i) || model.is_null(i) {
                out.append_null();
                continue;
            }
            let key = (provider.value(i), model.value(i));
            let resolved = match previous {
                Some((last, resolved)) if last == key => resolved,
                _ => {
                    let resolved = *memo
                        .entry(key)
                        .or_insert_with(|| catalog.resolve(key.0, key.1));
                    previous = Some((key, resolved));
                    resolved
                }
            };
            out.append_option(resolved);
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish())))
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(&DOC)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidates_strip_provider_conventions() {
        assert!(candidates("gpt-4o-2024-08-06").contains(&"gpt-4o".to_string()));
        assert!(candidates("models/gemini-2.0-flash").contains(&"gemini-2.0-flash".to_string()));
        assert!(
            candidates("publishers/google/models/gemini-1.5-pro")
                .contains(&"gemini-1.5-pro".to_string())
        );
        let bedrock = candidates("us.anthropic.claude-3-5-sonnet-20240620-v1:0");
        assert!(
            bedrock.contains(&"claude-3-5-sonnet".to_string()),
            "{bedrock:?}"
        );
        assert!(
            bedrock.contains(&"claude-3-5-sonnet-20240620".to_string()),
            "{bedrock:?}"
        );
        assert!(candidates("openai/gpt-4o-mini").contains(&"gpt-4o-mini".to_string()));
        assert!(
            candidates("claude-3-5-sonnet@20240620").contains(&"claude-3-5-sonnet".to_string())
        );
        assert_eq!(candidates("gpt-4o"), vec!["gpt-4o".to_string()]);
    }
}
