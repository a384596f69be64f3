//! Attribution rules (SpendQL's `attribution_rules` table), indexed for `attribute`.
//!
//! A rule matches a usage row when every match column it sets equals the row's value
//! (`model_pattern` is a SQL `LIKE` on the model as reported; `tag_key` / `tag_value` look in
//! the row's JSON `tags`), and the row's `ts` is in `[valid_from, valid_to)`. The first match
//! by `priority` (lower first, then `rule_id`) decides; its NULL assignments leave the row's
//! value as it is, and a value tagged at the source always wins over a rule.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use arrow::array::{Array, AsArray, RecordBatch, StringArray};
use arrow::datatypes::{Int32Type, TimestampMicrosecondType};
use datafusion::common::{DataFusionError, Result};

use crate::catalog::{SourceHandle, like};

/// One rule; match columns are `None` for "any".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rule {
    pub rule_id: String,
    pub priority: i32,
    pub provider: Option<String>,
    pub api_key_id: Option<String>,
    pub project: Option<String>,
    pub model_pattern: Option<String>,
    pub environment: Option<String>,
    pub tag_key: Option<String>,
    pub tag_value: Option<String>,
    pub team: Option<String>,
    pub feature: Option<String>,
    pub customer: Option<String>,
    pub assign_environment: Option<String>,
    pub cost_center: Option<String>,
    pub valid_from: Option<i64>,
    pub valid_to: Option<i64>,
}

/// What a usage row is matched on (besides its time).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RowKey<'a> {
    pub provider: Option<&'a str>,
    pub api_key_id: Option<&'a str>,
    pub project: Option<&'a str>,
    pub model: Option<&'a str>,
    pub environment: Option<&'a str>,
    pub tags: Option<&'a str>,
}

/// A row's `tags`, parsed at most once however many tag rules look at it.
#[derive(Debug)]
struct RowTags<'a> {
    text: Option<&'a str>,
    parsed: Option<Option<serde_json::Value>>,
}

impl<'a> RowTags<'a> {
    fn new(text: Option<&'a str>) -> Self {
        RowTags { text, parsed: None }
    }

    /// The value under `key`, if the tags are a JSON object that has it.
    fn get(&mut self, key: &str) -> Option<&serde_json::Value> {
        let text = self.text?;
        // Without escapes, JSON text spells every key literally: a key that does not
        // occur in the text is not there, and most rows are answered without parsing.
        if !text.contains('\\') && !text.contains(key) {
            return None;
        }
        self.parsed
            .get_or_insert_with(|| serde_json::from_str(text).ok())
            .as_ref()?
            .get(key)
    }
}

impl Rule {
    /// Whether the rule's match columns accept `row` (its validity period aside).
    #[cfg(test)]
    fn matches(&self, row: &RowKey<'_>) -> bool {
        self.matches_columns(row) && self.tag_matches(&mut RowTags::new(row.tags))
    }

    /// The match on every column but `tags`.
    fn matches_columns(&self, row: &RowKey<'_>) -> bool {
        let same = |rule: &Option<String>, value: Option<&str>| {
            rule.as_deref().is_none_or(|r| Some(r) == value)
        };
        same(&self.provider, row.provider)
            && same(&self.api_key_id, row.api_key_id)
            && same(&self.project, row.project)
            && same(&self.environment, row.environment)
            && self
                .model_pattern
                .as_deref()
                .is_none_or(|p| row.model.is_some_and(|m| like(p, m)))
    }

    /// Whether the row's tags satisfy the rule's `tag_key` / `tag_value` (true without).
    fn tag_matches(&self, tags: &mut RowTags<'_>) -> bool {
        let Some(key) = self.tag_key.as_deref() else {
            return true;
        };
        let Some(value) = tags.get(key) else {
            return false;
        };
        match (self.tag_value.as_deref(), value) {
            (None, _) => true,
            (Some(want), serde_json::Value::String(s)) => s == want,
            (Some(want), other) => serde_json::to_string(other).is_ok_and(|text| text == want),
        }
    }

    /// Whether the rule is in force at `ts` (µs since the epoch).
    pub fn valid_at(&self, ts: i64) -> bool {
        self.valid_from.is_none_or(|from| from <= ts) && self.valid_to.is_none_or(|to| ts < to)
    }
}

/// Every rule, in the order they are tried.
#[derive(Debug)]
pub struct AttributionRules {
    rules: Vec<Rule>,
    /// What each rule assigns, as columns indexed by rule: team, feature, customer,
    /// environment, cost_center, rule_id. `attribute` gathers from them by deciding rule.
    assignments: [StringArray; 6],
    /// Which match columns any rule sets: provider, api_key_id, project, model, environment,
    /// tags. Rows are keyed on these only, so unused columns cost nothing per row.
    used: [bool; 6],
    /// Candidates per key, kept across batches and queries for as long as these rules are
    /// current (they are rebuilt when the table changes).
    cache: Mutex<CandidateCache>,
}

/// Remembered candidates and the bytes their keys hold (tags can be long).
#[derive(Debug, Default)]
struct CandidateCache {
    by_key: HashMap<OwnedKey, Arc<[u32]>>,
    bytes: usize,
}

/// A [`RowKey`] that owns its text, for the cache shared across batches.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct OwnedKey([Option<String>; 6]);

impl OwnedKey {
    /// Roughly what the key holds in memory.
    fn bytes(&self) -> usize {
        self.0
            .iter()
            .map(|v| 24 + v.as_ref().map_or(0, String::len))
            .sum()
    }

    fn new(row: &RowKey<'_>) -> Self {
        let own = |v: Option<&str>| v.map(str::to_string);
        OwnedKey([
            own(row.provider),
            own(row.api_key_id),
            own(row.project),
            own(row.model),
            own(row.environment),
            own(row.tags),
        ])
    }
}

/// Key bytes remembered before the cache starts over (bounds its memory).
const CACHE_BYTES: usize = 16 * 1024 * 1024;

impl AttributionRules {
    /// Rules in any order; they are tried by priority, then rule id.
    pub fn new(mut rules: Vec<Rule>) -> Self {
        rules.sort_by(|a, b| (a.priority, &a.rule_id).cmp(&(b.priority, &b.rule_id)));
        let column =
            |get: fn(&Rule) -> Option<&str>| -> StringArray { rules.iter().map(get).collect() };
        let assignments = [
            column(|r| r.team.as_deref()),
            column(|r| r.feature.as_deref()),
            column(|r| r.customer.as_deref()),
            column(|r| r.assign_environment.as_deref()),
            column(|r| r.cost_center.as_deref()),
            column(|r| Some(r.rule_id.as_str())),
        ];
        let any = |set: fn(&Rule) -> bool| rules.iter().any(set);
        let used = [
            any(|r| r.provider.is_some()),
            any(|r| r.api_key_id.is_some()),
            any(|r| r.project.is_some()),
            any(|r| r.model_pattern.is_some()),
            any(|r| r.environment.is_some()),
            any(|r| r.tag_key.is_some()),
        ];
        AttributionRules {
            rules,
            assignments,
            used,
            cache: Mutex::default(),
        }
    }

    /// `row` with the match columns no rule sets left out (see `used`).
    pub fn key<'a>(&self, row: RowKey<'a>) -> RowKey<'a> {
        let [provider, api_key_id, project, model, environment, tags] = self.used;
        RowKey {
            provider: row.provider.filter(|_| provider),
            api_key_id: row.api_key_id.filter(|_| api_key_id),
            project: row.project.filter(|_| project),
            model: row.model.filter(|_| model),
            environment: row.environment.filter(|_| environment),
            tags: row.tags.filter(|_| tags),
        }
    }

    /// Which match columns some rule sets: provider, api_key_id, project, model (by
    /// `model_pattern`), environment, tags (by `tag_key`).
    pub fn match_columns_used(&self) -> [bool; 6] {
        self.used
    }

    /// No rules.
    pub fn empty() -> Self {
        AttributionRules::new(Vec::new())
    }

    /// What the rules assign, by rule index: team, feature, customer, environment,
    /// cost_center, rule_id.
    pub fn assignments(&self) -> &[StringArray; 6] {
        &self.assignments
    }

    /// Rules from batches with the columns of SpendQL's `attribution_rules` table.
    pub fn from_batches(batches: &[RecordBatch]) -> Result<Self> {
        let mut rules = Vec::new();
        for batch in batches {
            let text = |name: &str| -> Result<Vec<Option<String>>> {
                let column = batch.column_by_name(name).ok_or_else(|| missing(name))?;
                let column = arrow::compute::cast(column, &arrow::datatypes::DataType::Utf8)?;
                Ok(column
                    .as_string_opt::<i32>()
                    .ok_or_else(|| missing(name))?
                    .iter()
                    .map(|v| v.map(str::to_string))
                    .collect())
            };
            let time = |name: &str| -> Result<Vec<Option<i64>>> {
                let column = batch.column_by_name(name).ok_or_else(|| missing(name))?;
                let column = arrow::compute::cast(
                    column,
                    &arrow::datatypes::DataType::Timestamp(
                        arrow::datatypes::TimeUnit::Microsecond,
                        Some(Arc::from("+00:00")),
                    ),
                )?;
                Ok(column
                    .as_primitive_opt::<TimestampMicrosecondType>()
                    .ok_or_else(|| missing(name))?
                    .iter()
                    .collect())
            };
            let priority = batch
                .column_by_name("priority")
                .ok_or_else(|| missing("priority"))?;
            let priority = arrow::compute::cast(priority, &arrow::datatypes::DataType::Int32)?;
            let priority = priority
                .as_primitive_opt::<Int32Type>()
                .ok_or_else(|| missing("priority"))?;
            let [
                rule_id,
                provider,
                api_key_id,
                project,
                model_pattern,
                environment,
                tag_key,
                tag_value,
                team,
                feature,
                customer,
                assign_environment,
                cost_center,
            ] = [
                "rule_id",
                "provider",
                "api_key_id",
                "project",
                "model_pattern",
                "environment",
                "tag_key",
                "tag_value",
                "team",
                "feature",
                "customer",
                "assign_environment",
                "cost_center",
            ]
            .map(text);
            let (valid_from, valid_to) = (time("valid_from")?, time("valid_to")?);
            let (rule_id, provider, api_key_id, project, model_pattern) =
                (rule_id?, provider?, api_key_id?, project?, model_pattern?);
            let (environment, tag_key, tag_value, team, feature) =
                (environment?, tag_key?, tag_value?, team?, feature?);
            let (customer, assign_environment, cost_center) =
                (customer?, assign_environment?, cost_center?);
            for i in 0..batch.num_rows() {
                rules.push(Rule {
                    rule_id: rule_id[i].clone().unwrap_or_default(),
                    priority: if priority.is_null(i) {
                        i32::MAX
                    } else {
                        priority.value(i)
                    },
                    provider: provider[i].clone(),
                    api_key_id: api_key_id[i].clone(),
                    project: project[i].clone(),
                    model_pattern: model_pattern[i].clone(),
                    environment: environment[i].clone(),
                    tag_key: tag_key[i].clone(),
                    tag_value: tag_value[i].clone(),
                    team: team[i].clone(),
                    feature: feature[i].clone(),
                    customer: customer[i].clone(),
                    assign_environment: assign_environment[i].clone(),
                    cost_center: cost_center[i].clone(),
                    valid_from: valid_from[i],
                    valid_to: valid_to[i],
                });
            }
        }
        Ok(AttributionRules::new(rules))
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    pub fn rule(&self, index: u32) -> &Rule {
        &self.rules[index as usize]
    }

    /// [`AttributionRules::candidates`], remembered for the life of these rules.
    pub fn cached_candidates(&self, row: &RowKey<'_>) -> Arc<[u32]> {
        let owned = OwnedKey::new(row);
        if let Ok(cache) = self.cache.lock()
            && let Some(found) = cache.by_key.get(&owned)
        {
            return Arc::clone(found);
        }
        let found: Arc<[u32]> = self.candidates(row).into();
        if let Ok(mut cache) = self.cache.lock() {
            let bytes = owned.bytes() + found.len() * 4;
            if cache.bytes + bytes > CACHE_BYTES {
                *cache = CandidateCache::default();
            }
            cache.bytes += bytes;
            cache.by_key.insert(owned, Arc::clone(&found));
        }
        found
    }

    /// The rules whose match columns accept `row`, in the order they are tried; the
    /// caller picks the first in force at the row's time.
    pub fn candidates(&self, row: &RowKey<'_>) -> Vec<u32> {
        let mut tags = RowTags::new(row.tags);
        (0u32..)
            .zip(&self.rules)
            .filter(|(_, rule)| rule.matches_columns(row) && rule.tag_matches(&mut tags))
            .map(|(i, _)| i)
            .collect()
    }
}

fn missing(name: &str) -> DataFusionError {
    DataFusionError::Plan(format!("attribution rules need a text column {name}"))
}

/// Hands out the current rules; the engine rebuilds them when `attribution_rules` changes.
pub trait RulesSource: Send + Sync + std::fmt::Debug {
    fn current(&self) -> Result<Arc<AttributionRules>>;
}

/// A fixed set of rules (none by default).
#[derive(Debug)]
pub struct StaticRules(pub Arc<AttributionRules>);

impl Default for StaticRules {
    fn default() -> Self {
        StaticRules(Arc::new(AttributionRules::empty()))
    }
}

impl RulesSource for StaticRules {
    fn current(&self) -> Result<Arc<AttributionRules>> {
        Ok(Arc::clone(&self.0))
    }
}

/// The `attribute` function's handle on its rules.
pub type RulesHandle = SourceHandle<dyn RulesSource>;

impl RulesHandle {
    pub fn current(&self) -> Result<Arc<AttributionRules>> {
        self.0.current()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key<'a>(provider: &'a str, model: &'a str, tags: Option<&'a str>) -> RowKey<'a> {
        RowKey {
            provider: Some(provider),
            api_key_id: Some("key-1"),
            project: None,
            model: Some(model),
            environment: Some("prod"),
            tags,
        }
    }

    #[test]
    fn rules_are_tried_by_priority_and_null_matches_anything() {
        let rules = AttributionRules::new(vec![
            Rule {
                rule_id: "b-catch-all".into(),
                priority: 100,
                team: Some("platform".into()),
                ..Rule::default()
            },
            Rule {
                rule_id: "a-claude".into(),
                priority: 10,
                model_pattern: Some("claude-%".into()),
                team: Some("research".into()),
                ..Rule::default()
            },
            Rule {
                rule_id: "c-project".into(),
                priority: 5,
                project: Some("p1".into()),
                ..Rule::default()
            },
        ]);
        let claude = rules.candidates(&key("anthropic", "claude-sonnet-4", None));
        let ids: Vec<&str> = claude
            .iter()
            .map(|i| rules.rule(*i).rule_id.as_str())
            .collect();
        assert_eq!(
            ids,
            vec!["a-claude", "b-catch-all"],
            "no project: c does not match"
        );
        assert_eq!(rules.candidates(&key("openai", "gpt-4o", None)).len(), 1);
    }

    #[test]
    fn tags_match_by_key_and_value() {
        let rule = Rule {
            tag_key: Some("surface".into()),
            tag_value: Some("help-center".into()),
            ..Rule::default()
        };
        assert!(rule.matches(&key("x", "m", Some(r#"{"surface":"help-center"}"#))));
        assert!(!rule.matches(&key("x", "m", Some(r#"{"surface":"agent"}"#))));
        assert!(!rule.matches(&key("x", "m", Some("not json"))));
        assert!(!rule.matches(&key("x", "m", None)));
        // A key spelled with an escape is still the key.
        assert!(rule.matches(&key("x", "m", Some(r#"{"\u0073urface":"help-center"}"#))));
        // The key's name inside a value is not the key.
        assert!(!rule.matches(&key("x", "m", Some(r#"{"note":"surface"}"#))));
        let any_value = Rule {
            tag_key: Some("n".into()),
            ..Rule::default()
        };
        assert!(any_value.matches(&key("x", "m", Some(r#"{"n":3}"#))));
    }

    #[test]
    fn validity_is_half_open() {
        let rule = Rule {
            valid_from: Some(10),
            valid_to: Some(20),
            ..Rule::default()
        };
        assert!(!rule.valid_at(9));
        assert!(rule.valid_at(10));
        assert!(!rule.valid_at(20));
    }
}
