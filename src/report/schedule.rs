//! Scheduled reports: `[[reports]]` in spendql.toml. The server runs each report when its
//! 5-field UTC cron schedule comes due, writes the file atomically into `output_dir`,
//! optionally posts a webhook, and records the run in `report_runs`. At start, a report whose
//! latest due time has no run recorded after its previous run (the server was down) runs
//! once, for that latest time only. A run is recorded after it finishes, so a crash mid-run
//! means it runs again at the next start.

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use arrow::array::{ArrayRef, AsArray, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow::datatypes::TimestampMicrosecondType;
use chrono::{DateTime, TimeZone, Utc};
use croner::Cron;
use serde::Deserialize;

use super::{Period, ReportDef, ReportFormat};
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::governance::alerts::{Outcome, Pending};
use crate::governance::webhook::{Notifier, RetryPolicy};
use crate::schema;
use crate::storage::ConfigTable;

/// One `[[reports]]` entry as written in spendql.toml.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportConfig {
    /// A built-in report, or a path to a .sql report file.
    pub name: String,
    /// Five fields (minute hour day-of-month month day-of-week), UTC.
    pub schedule: String,
    pub format: ReportFormat,
    pub output_dir: PathBuf,
    pub webhook: Option<String>,
    /// `previous` (default): the last complete month before the run; `current`: the month
    /// the run falls in, so far.
    pub period: Option<String>,
}

/// Which month a run reports on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PeriodChoice {
    Previous,
    Current,
}

/// A validated `[[reports]]` entry.
#[derive(Debug, Clone)]
pub struct ScheduledReport {
    def: ReportDef,
    cron: Cron,
    format: ReportFormat,
    output_dir: PathBuf,
    webhook: Option<String>,
    period: PeriodChoice,
}

impl ScheduledReport {
    /// Check an entry: the report exists and parses, the schedule is 5-field cron, the
    /// webhook is http(s). The server refuses to start on an error.
    pub fn from_config(config: &ReportConfig) -> Result<ScheduledReport> {
        let bad = |what: String| Error::Invalid(format!("[[reports]] {}: {what}", config.name));
        let def = super::find(&config.name).map_err(|e| bad(e.to_string()))?;
        let fields = config.schedule.split_whitespace().count();
        if fields != 5 {
            return Err(bad(format!(
                "schedule {:?} has {fields} fields; it needs 5 (minute hour day month weekday, UTC)",
                config.schedule
            )));
        }
        let cron = Cron::from_str(&config.schedule)
            .map_err(|e| bad(format!("schedule {:?}: {e}", config.schedule)))?;
        if let Some(url) = &config.webhook
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err(bad(format!("webhook {url:?} is not an http(s) URL")));
        }
        let period = match config.period.as_deref() {
            None | Some("previous") => PeriodChoice::Previous,
            Some("current") => PeriodChoice::Current,
            Some(other) => {
                return Err(bad(format!(
                    "period {other:?}: use \"previous\" or \"current\""
                )));
            }
        };
        Ok(ScheduledReport {
            def,
            cron,
            format: config.format,
            output_dir: config.output_dir.clone(),
            webhook: config.webhook.clone(),
            period,
        })
    }

    /// The first due time after `after`.
    fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.cron.find_next_occurrence(&after, false).ok()
    }

    /// The latest due time at or before `now`.
    fn latest_until(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.cron.find_previous_occurrence(&now, true).ok()
    }

    fn period_for(&self, scheduled_for: DateTime<Utc>) -> Result<Period> {
        match self.period {
            PeriodChoice::Previous => Period::previous_month(scheduled_for),
            PeriodChoice::Current => Period::month(&scheduled_for.format("%Y-%m").to_string()),
        }
    }
}

/// A finished run, as `report_runs` stores it.
#[derive(Debug, Clone)]
pub struct Run {
    pub report: String,
    pub scheduled_for: DateTime<Utc>,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub period: String,
    pub format: ReportFormat,
    pub output_file: Option<String>,
    pub error: Option<String>,
    pub delivery: Option<Outcome>,
}

impl Run {
    fn run_id(&self) -> String {
        format!(
            "{}:{}",
            self.report,
            self.scheduled_for.format("%Y-%m-%dT%H:%M:%SZ")
        )
    }
}

/// The latest `scheduled_for` recorded per report.
fn last_runs(table: &ConfigTable) -> std::collections::HashMap<String, DateTime<Utc>> {
    let rows = table.rows();
    let mut last = std::collections::HashMap::new();
    let (Ok(report), Ok(scheduled)) = (
        rows.schema().index_of("report"),
        rows.schema().index_of("scheduled_for"),
    ) else {
        return last;
    };
    let (Some(names), Some(times)) = (
        rows.column(report).as_string_opt::<i32>(),
        rows.column(scheduled)
            .as_primitive_opt::<TimestampMicrosecondType>(),
    ) else {
        return last;
    };
    for (name, micros) in names.iter().zip(times.iter()) {
        if let (Some(name), Some(micros)) = (name, micros)
            && let Some(at) = Utc.timestamp_micros(micros).single()
        {
            let entry = last.entry(name.to_string()).or_insert(at);
            if at > *entry {
                *entry = at;
            }
        }
    }
    last
}

/// Store `run` in one durable append.
fn record(table: &ConfigTable, run: &Run) -> Result<()> {
    let def = schema::table_def("report_runs")
        .ok_or_else(|| Error::Invalid("built-in table report_runs is missing".into()))?;
    let text = |v: Option<String>| -> ArrayRef { Arc::new(StringArray::from(vec![v])) };
    let stamp = |v: Option<DateTime<Utc>>| -> ArrayRef {
        Arc::new(
            TimestampMicrosecondArray::from(vec![v.map(|t| t.timestamp_micros())])
                .with_timezone("+00:00"),
        )
    };
    let (delivered_at, delivery_error) = match &run.delivery {
        Some(Outcome::Delivered(at)) => (Some(*at), None),
        Some(Outcome::Failed(reason)) => (None, Some(reason.clone())),
        None => (None, None),
    };
    let columns = vec![
        text(Some(run.run_id())),
        text(Some(run.report.clone())),
        stamp(Some(run.scheduled_for)),
        stamp(Some(run.started_at)),
        stamp(Some(run.finished_at)),
        text(Some(run.period.clone())),
        text(Some(run.format.extension().to_string())),
        text(run.output_file.clone()),
        text(Some(
            if run.error.is_none() { "ok" } else { "error" }.to_string(),
        )),
        text(run.error.clone()),
        stamp(delivered_at),
        text(delivery_error),
    ];
    let batch = RecordBatch::try_new(Arc::clone(&def.schema), columns)?;
    table.append(&[batch])?;
    Ok(())
}

/// Run `report` for `scheduled_for` now: render, write, notify, record.
pub async fn run_once(
    engine: &Engine,
    report: &ScheduledReport,
    scheduled_for: DateTime<Utc>,
    notifier: &Notifier,
) -> Result<Run> {
    let started_at = Utc::now();
    let period = report.period_for(scheduled_for)?;
    let file = report.output_dir.join(format!(
        "{}-{}.{}",
        report.def.name,
        period.label,
        report.format.extension()
    ));
    let produced = async {
        std::fs::create_dir_all(&report.output_dir)
            .map_err(|e| Error::io(&report.output_dir, e))?;
        let output = super::run(&engine.background_session(), &report.def, &period).await?;
        let bytes = super::render(&output, report.format)?;
        super::write_atomically(&file, &bytes)
    }
    .await;
    let error = produced.err().map(|e| e.to_string());
    let output_file = error.is_none().then(|| file.display().to_string());
    let delivery = match &report.webhook {
        Some(url) => {
            let body = serde_json::json!({
                "kind": "report",
                "report": report.def.name,
                "title": report.def.title,
                "period": period.label,
                "scheduled_for": scheduled_for.to_rfc3339(),
                "format": report.format.extension(),
                "file": output_file,
                "status": if error.is_none() { "ok" } else { "error" },
                "error": error,
            });
            let message = match &error {
                None => format!(
                    "SpendQL report {} for {} is ready: {}",
                    report.def.title,
                    period.label,
                    file.display()
                ),
                Some(e) => format!(
                    "SpendQL report {} for {} failed: {e}",
                    report.def.title, period.label
                ),
            };
            let pending = Pending {
                alert_id: format!("report:{}:{}", report.def.name, scheduled_for.to_rfc3339()),
                url: url.clone(),
                body,
                message,
            };
            Some(notifier.deliver(&pending).await)
        }
        None => None,
    };
    let run = Run {
        report: report.def.name.clone(),
        scheduled_for,
        started_at,
        finished_at: Utc::now(),
        period: period.label,
        format: report.format,
        output_file,
        error,
        delivery,
    };
    let table = engine
        .config_table("report_runs")
        .ok_or_else(|| Error::Invalid("built-in table report_runs is missing".into()))?;
    record(&table, &run)?;
    Ok(run)
}

/// The scheduler task: catch up on missed runs, then run each report when due, until
/// `shutdown` resolves.
pub async fn run(
    engine: Engine,
    reports: Vec<ScheduledReport>,
    retry: RetryPolicy,
    shutdown: impl std::future::Future<Output = ()>,
) {
    if reports.is_empty() {
        return;
    }
    let notifier = match Notifier::new(retry) {
        Ok(n) => n,
        Err(e) => {
            tracing::error!("scheduled reports are off: {e}");
            return;
        }
    };
    let Some(table) = engine.config_table("report_runs") else {
        tracing::error!("scheduled reports are off: no report_runs table");
        return;
    };
    tokio::pin!(shutdown);
    // Per report: the due time it last ran for (or when the server started).
    let started = Utc::now();
    let recorded = last_runs(&table);
    let mut last: Vec<DateTime<Utc>> = Vec::with_capacity(reports.len());
    for report in &reports {
        let mut done = started;
        if let Some(&previous) = recorded.get(&report.def.name)
            && let Some(due) = report.latest_until(started)
            && due > previous
        {
            tracing::info!(
                "report {}: missed the run due at {due}; running it now",
                report.def.name
            );
            log_outcome(
                run_once(&engine, report, due, &notifier).await,
                &report.def.name,
            );
            done = due.max(started);
        }
        last.push(done);
    }
    loop {
        let now = Utc::now();
        let next = reports
            .iter()
            .zip(&last)
            .filter_map(|(r, &after)| r.next_after(after))
            .min();
        let Some(next) = next else { return };
        // Wake at the due time, or at least every minute (clock changes, long sleeps).
        let wait = (next - now)
            .to_std()
            .unwrap_or(Duration::ZERO)
            .min(Duration::from_secs(60));
        tokio::select! {
            _ = &mut shutdown => return,
            _ = tokio::time::sleep(wait) => {}
        }
        let now = Utc::now();
        for (report, after) in reports.iter().zip(last.iter_mut()) {
            let Some(due) = report.next_after(*after) else {
                continue;
            };
            if due <= now {
                // After a suspend several may be due: run once, for the latest.
                let latest = report.latest_until(now).unwrap_or(due).max(due);
                log_outcome(
                    run_once(&engine, report, latest, &notifier).await,
                    &report.def.name,
                );
                *after = latest;
            }
        }
    }
}

fn log_outcome(outcome: Result<Run>, name: &str) {
    match outcome {
        Ok(run) => match &run.error {
            None => tracing::info!(
                "report {name} for {} written to {}",
                run.period,
                run.output_file.as_deref().unwrap_or("-")
            ),
            Some(e) => tracing::error!("report {name} for {} failed: {e}", run.period),
        },
        Err(e) => tracing::error!("report {name}: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(name: &str, schedule: &str) -> ReportConfig {
        ReportConfig {
            name: name.into(),
            schedule: schedule.into(),
            format: ReportFormat::Md,
            output_dir: PathBuf::from("/tmp/reports"),
            webhook: None,
            period: None,
        }
    }

    fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, 0)
            .single()
            .expect("valid time")
    }

    #[test]
    fn monthly_schedule_runs_on_the_first_and_reports_the_month_before() {
        let report =
            ScheduledReport::from_config(&config("chargeback", "0 8 1 * *")).expect("valid");
        let now = at(2026, 11, 15, 12, 0);
        assert_eq!(report.next_after(now), Some(at(2026, 12, 1, 8, 0)));
        assert_eq!(report.latest_until(now), Some(at(2026, 11, 1, 8, 0)));
        assert_eq!(
            report
                .period_for(at(2026, 11, 1, 8, 0))
                .expect("period")
                .label,
            "2026-10"
        );
        let mut current = config("chargeback", "30 6 * * 1-5");
        current.period = Some("current".into());
        let report = ScheduledReport::from_config(&current).expect("valid");
        // Saturday noon: the next weekday run is Monday 06:30.
        assert_eq!(
            report.next_after(at(2026, 11, 28, 12, 0)),
            Some(at(2026, 11, 30, 6, 30))
        );
        assert_eq!(
            report
                .period_for(at(2026, 11, 30, 6, 30))
                .expect("period")
                .label,
            "2026-11"
        );
    }

    #[test]
    fn bad_entries_are_refused_naming_the_report() {
        let mut with_webhook = config("chargeback", "0 8 1 * *");
        with_webhook.webhook = Some("ftp://x".into());
        let mut with_period = config("chargeback", "0 8 1 * *");
        with_period.period = Some("yesterday".into());
        for (entry, expected) in [
            (config("nope", "0 8 1 * *"), "no report named"),
            (config("chargeback", "0 0 8 1 * *"), "has 6 fields"),
            (config("chargeback", "61 8 1 * *"), "schedule"),
            (config("chargeback", "0 8 32 * *"), "schedule"),
            (config("chargeback", "@daily"), "has 1 fields"),
            (with_webhook, "not an http(s) URL"),
            (with_period, "use \"previous\" or \"current\""),
        ] {
            let err = ScheduledReport::from_config(&entry)
                .expect_err(&entry.schedule)
                .to_string();
            assert!(
                err.starts_with(&format!("[[reports]] {}:", entry.name)),
                "{err}"
            );
            assert!(err.contains(expected), "{err}");
        }
    }

    #[test]
    fn runs_are_recorded_and_the_latest_per_report_is_found() {
        let def = schema::table_def("report_runs").expect("table");
        let table = ConfigTable::open(
            "report_runs",
            Arc::clone(&def.schema),
            None,
            Default::default(),
        )
        .expect("open");
        let run = |report: &str, scheduled_for| Run {
            report: report.into(),
            scheduled_for,
            started_at: scheduled_for,
            finished_at: scheduled_for,
            period: "2026-10".into(),
            format: ReportFormat::Html,
            output_file: Some("/tmp/x.html".into()),
            error: None,
            delivery: Some(Outcome::Failed("HTTP 500".into())),
        };
        record(&table, &run("a", at(2026, 10, 1, 8, 0))).expect("record");
        record(&table, &run("a", at(2026, 11, 1, 8, 0))).expect("record");
        record(&table, &run("b", at(2026, 9, 1, 8, 0))).expect("record");
        let last = last_runs(&table);
        assert_eq!(last.get("a"), Some(&at(2026, 11, 1, 8, 0)));
        assert_eq!(last.get("b"), Some(&at(2026, 9, 1, 8, 0)));
        let rows = table.rows();
        assert_eq!(rows.num_rows(), 3);
        let ids = rows.column(0).as_string::<i32>();
        assert_eq!(ids.value(0), "a:2026-10-01T08:00:00Z");
        let errors = rows
            .column(rows.schema().index_of("delivery_error").expect("column"))
            .as_string::<i32>();
        assert_eq!(errors.value(2), "HTTP 500");
    }
}
