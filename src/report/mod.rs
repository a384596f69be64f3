//! Reports: SQL files (`sql/reports/*.sql`, or any file a user names) that are run for a
//! period and rendered as Markdown, CSV, JSON or a self-contained HTML page with charts.
//!
//! A report file is plain SQL with comment headers, so analysts can copy and change one:
//!
//! ```sql
//! -- title: AI spend chargeback by team and cost center
//! -- Free text describing the report (the comment block under the title).
//!
//! -- section: By team
//! -- chart: bar label=team value=total_usd
//! SELECT ... WHERE ts >= {{period_start}} AND ts < {{period_end}}
//! ```
//!
//! Each section is one query. Placeholders are replaced by SQL literals for the period:
//! `{{period_start}}`, `{{period_end}}` (exclusive) and `{{previous_start}}` (the period
//! before) as `TIMESTAMPTZ`, `{{period}}` as text (`'2026-10'`).

mod html;
mod render;
pub mod schedule;

use std::path::Path;
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Utc};

use crate::error::{Error, Result};
use datafusion::prelude::SessionContext;

pub use render::render;

/// The reports that ship with SpendQL, by name.
pub const BUILT_IN: &[(&str, &str)] = &[
    (
        "monthly_leadership",
        include_str!("../../sql/reports/monthly_leadership.sql"),
    ),
    (
        "chargeback",
        include_str!("../../sql/reports/chargeback.sql"),
    ),
    (
        "top_customers",
        include_str!("../../sql/reports/top_customers.sql"),
    ),
    ("anomalies", include_str!("../../sql/reports/anomalies.sql")),
    (
        "policy_violations",
        include_str!("../../sql/reports/policy_violations.sql"),
    ),
];

/// Output formats of `spendql report`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReportFormat {
    /// Markdown: a heading and a table per section.
    Md,
    /// CSV: one block per section (its title on a line of its own, then a header row),
    /// blocks separated by an empty line.
    Csv,
    /// One self-contained HTML page with charts, readable offline and printable.
    Html,
    /// A JSON object with the period and each section's columns and rows.
    Json,
}

impl ReportFormat {
    /// The file name extension for this format.
    pub fn extension(self) -> &'static str {
        match self {
            ReportFormat::Md => "md",
            ReportFormat::Csv => "csv",
            ReportFormat::Html => "html",
            ReportFormat::Json => "json",
        }
    }
}

/// A parsed report file.
#[derive(Debug, Clone)]
pub struct ReportDef {
    pub name: String,
    pub title: String,
    pub description: String,
    pub sections: Vec<SectionDef>,
}

/// One query of a report.
#[derive(Debug, Clone)]
pub struct SectionDef {
    pub title: String,
    pub chart: Option<Chart>,
    pub sql: String,
}

/// How the HTML page draws a section (the other formats show only its table).
#[derive(Debug, Clone, PartialEq)]
pub enum Chart {
    /// Lines over `x` for each of `ys`, with an optional shaded `band` (low, high).
    Line {
        x: String,
        ys: Vec<String>,
        band: Option<(String, String)>,
    },
    /// Horizontal bars of `value` per `label`.
    Bar { label: String, value: String },
    /// Bars of `value` against each row's `limit`, coloured by how much is used.
    Budget {
        label: String,
        value: String,
        limit: String,
    },
}

/// The time span a report covers: a UTC calendar month.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Period {
    /// `2026-10`
    pub label: String,
    pub start: DateTime<Utc>,
    /// Exclusive.
    pub end: DateTime<Utc>,
    /// The start of the month before, for comparisons.
    pub previous_start: DateTime<Utc>,
}

impl Period {
    /// The month `YYYY-MM`.
    pub fn month(text: &str) -> Result<Period> {
        let bad = || Error::Invalid(format!("--period {text:?}: expected a month like 2026-10"));
        let (year, month) = text.trim().split_once('-').ok_or_else(bad)?;
        let year: i32 = year.parse().map_err(|_| bad())?;
        let month: u32 = month.parse().map_err(|_| bad())?;
        let first = NaiveDate::from_ymd_opt(year, month, 1).ok_or_else(bad)?;
        Period::of(first).ok_or_else(bad)
    }

    /// The last complete month before `now`.
    pub fn previous_month(now: DateTime<Utc>) -> Result<Period> {
        let this_month = now.date_naive().with_day(1);
        this_month
            .and_then(|m| m.checked_sub_months(chrono::Months::new(1)))
            .and_then(Period::of)
            .ok_or_else(|| Error::Invalid(format!("no month before {now}")))
    }

    fn of(first: NaiveDate) -> Option<Period> {
        let next = first.checked_add_months(chrono::Months::new(1))?;
        let previous = first.checked_sub_months(chrono::Months::new(1))?;
        let at = |d: NaiveDate| d.and_hms_opt(0, 0, 0).map(|t| Utc.from_utc_datetime(&t));
        Some(Period {
            label: first.format("%Y-%m").to_string(),
            start: at(first)?,
            end: at(next)?,
            previous_start: at(previous)?,
        })
    }

    /// `sql` with the period placeholders replaced by literals.
    pub fn fill(&self, sql: &str) -> Result<String> {
        let stamp = |t: &DateTime<Utc>| {
            format!(
                "CAST('{}' AS TIMESTAMP WITH TIME ZONE)",
                t.format("%Y-%m-%dT%H:%M:%SZ")
            )
        };
        let mut out = String::with_capacity(sql.len());
        let mut rest = sql;
        while let Some(open) = rest.find("{{") {
            out.push_str(&rest[..open]);
            let after = &rest[open + 2..];
            let close = after
                .find("}}")
                .ok_or_else(|| Error::Invalid("an unclosed {{ placeholder".into()))?;
            let literal = match after[..close].trim() {
                "period_start" => stamp(&self.start),
                "period_end" => stamp(&self.end),
                "previous_start" => stamp(&self.previous_start),
                "period" => format!("'{}'", self.label),
                other => {
                    return Err(Error::Invalid(format!(
                        "unknown placeholder {{{{{other}}}}}: use period_start, period_end, \
                         previous_start or period"
                    )));
                }
            };
            out.push_str(&literal);
            rest = &after[close + 2..];
        }
        out.push_str(rest);
        Ok(out)
    }
}

/// The report called `name`: a built-in one, or a `.sql` file path.
pub fn find(name: &str) -> Result<ReportDef> {
    if let Some((_, text)) = BUILT_IN.iter().find(|(n, _)| *n == name) {
        return parse(name, text);
    }
    if name.ends_with(".sql") {
        let path = Path::new(name);
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("report");
        return parse(stem, &text).map_err(|e| Error::Invalid(format!("{name}: {e}")));
    }
    let names: Vec<&str> = BUILT_IN.iter().map(|(n, _)| *n).collect();
    Err(Error::Invalid(format!(
        "no report named {name:?}: built-in reports are {}, or give a path to a .sql file",
        names.join(", ")
    )))
}

/// Parse a report file; errors name the line.
pub fn parse(name: &str, text: &str) -> Result<ReportDef> {
    let mut title = None;
    let mut description = Vec::new();
    let mut sections: Vec<SectionDef> = Vec::new();
    let mut description_done = false;
    for (index, line) in text.lines().enumerate() {
        let line_no = index + 1;
        let trimmed = line.trim();
        let header = trimmed.strip_prefix("--").map(str::trim);
        if trimmed.is_empty() && title.is_some() {
            // The description is the comment block right under the title.
            description_done = true;
        }
        match header {
            Some(h) if h.starts_with("title:") && sections.is_empty() => {
                title = Some(h["title:".len()..].trim().to_string());
            }
            Some(h) if h.starts_with("section:") => {
                let section_title = h["section:".len()..].trim();
                if section_title.is_empty() {
                    return Err(Error::Invalid(format!(
                        "line {line_no}: a section needs a title"
                    )));
                }
                sections.push(SectionDef {
                    title: section_title.to_string(),
                    chart: None,
                    sql: String::new(),
                });
            }
            Some(h) if h.starts_with("chart:") => {
                let section = sections.last_mut().ok_or_else(|| {
                    Error::Invalid(format!("line {line_no}: a chart before any section"))
                })?;
                let chart = parse_chart(h["chart:".len()..].trim())
                    .map_err(|e| Error::Invalid(format!("line {line_no}: {e}")))?;
                section.chart = Some(chart);
            }
            Some(h) if sections.is_empty() => {
                if title.is_some() && !description_done && !h.is_empty() {
                    description.push(h.to_string());
                }
            }
            _ => {
                if let Some(section) = sections.last_mut() {
                    section.sql.push_str(line);
                    section.sql.push('\n');
                } else if !trimmed.is_empty() {
                    return Err(Error::Invalid(format!(
                        "line {line_no}: SQL before the first '-- section:' header"
                    )));
                }
            }
        }
    }
    let title = title.ok_or_else(|| Error::Invalid("no '-- title:' line".into()))?;
    if sections.is_empty() {
        return Err(Error::Invalid("no '-- section:' in the report".into()));
    }
    for section in &mut sections {
        let sql = section
            .sql
            .trim()
            .trim_end_matches(';')
            .trim_end()
            .to_string();
        if sql.is_empty() {
            return Err(Error::Invalid(format!(
                "section {:?} has no query",
                section.title
            )));
        }
        section.sql = sql;
    }
    Ok(ReportDef {
        name: name.to_string(),
        title,
        description: description.join(" "),
        sections,
    })
}

/// `line x=day y=a,b band=lo,hi`, `bar label=team value=cost`,
/// `budget label=name value=spend limit=amount`.
fn parse_chart(spec: &str) -> Result<Chart, String> {
    let mut words = spec.split_whitespace();
    let kind = words.next().ok_or("an empty chart")?;
    let mut keys = std::collections::BTreeMap::new();
    for word in words {
        let (key, value) = word
            .split_once('=')
            .ok_or_else(|| format!("chart option {word:?} is not key=value"))?;
        keys.insert(key, value);
    }
    let mut take = |key: &str| {
        keys.remove(key)
            .map(str::to_string)
            .ok_or_else(|| format!("a {kind} chart needs {key}="))
    };
    let chart = match kind {
        "line" => {
            let x = take("x")?;
            let ys = take("y")?.split(',').map(str::to_string).collect();
            let band = match take("band") {
                Ok(band) => {
                    let (lo, hi) = band
                        .split_once(',')
                        .ok_or("band= needs two columns: lo,hi")?;
                    Some((lo.to_string(), hi.to_string()))
                }
                Err(_) => None,
            };
            Chart::Line { x, ys, band }
        }
        "bar" => Chart::Bar {
            label: take("label")?,
            value: take("value")?,
        },
        "budget" => Chart::Budget {
            label: take("label")?,
            value: take("value")?,
            limit: take("limit")?,
        },
        other => return Err(format!("unknown chart {other:?}: line, bar or budget")),
    };
    if let Some(extra) = keys.keys().next() {
        return Err(format!("unknown chart option {extra:?}"));
    }
    Ok(chart)
}

/// A report's results.
#[derive(Debug)]
pub struct ReportOutput {
    pub def: ReportDef,
    pub period: Period,
    pub generated_at: DateTime<Utc>,
    pub sections: Vec<SectionOutput>,
}

/// One section's rows.
#[derive(Debug)]
pub struct SectionOutput {
    pub def: SectionDef,
    /// The query's columns, also when it returns no rows.
    pub schema: SchemaRef,
    pub batches: Vec<RecordBatch>,
}

/// Run every section of `def` for `period` in `session` (a user's for `spendql report`, a
/// background one for scheduled reports). A failing section fails the report, naming it.
pub async fn run(
    session: &SessionContext,
    def: &ReportDef,
    period: &Period,
) -> Result<ReportOutput> {
    let mut sections = Vec::with_capacity(def.sections.len());
    for section in &def.sections {
        let sql = period.fill(&section.sql)?;
        let failed = |e: &dyn std::fmt::Display| {
            Error::Invalid(format!(
                "report {}, section {:?}: {e}",
                def.name, section.title
            ))
        };
        let frame = session.sql(&sql).await.map_err(|e| failed(&e))?;
        let schema = Arc::clone(frame.schema().inner());
        let batches = frame.collect().await.map_err(|e| failed(&e))?;
        sections.push(SectionOutput {
            def: section.clone(),
            schema,
            batches,
        });
    }
    Ok(ReportOutput {
        def: def.clone(),
        period: period.clone(),
        generated_at: Utc::now(),
        sections,
    })
}

/// Write `bytes` to `path` atomically: a temporary file in the same directory, fsynced,
/// then renamed over `path`, and the directory fsynced.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    let file_name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| Error::Invalid(format!("{}: not a file name", path.display())))?;
    let tmp = dir.join(format!(".{file_name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut file = std::fs::File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
        file.write_all(bytes).map_err(|e| Error::io(&tmp, e))?;
        file.sync_all().map_err(|e| Error::io(&tmp, e))?;
        std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))?;
        std::fs::File::open(&dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| Error::io(&dir, e))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests;
