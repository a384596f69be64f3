//! The budget monitor: evaluates budgets after every commit that adds usage and on a
//! timer, stores the alerts that are due, then delivers them.
//!
//! Order matters for "never dropped, never duplicated": an alert is appended to `alerts`
//! (fsynced) before any delivery starts, and its id is derived from budget, period, kind
//! and threshold, so evaluating again finds it. Delivery outcomes are recorded on the row;
//! a row with neither `delivered_at` nor `delivery_error` is delivered again at the next
//! evaluation, which is what happens after a crash between storing and delivering. Delivery
//! is therefore at least once: a crash after a POST and before its outcome is recorded sends
//! that alert again.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::task::JoinSet;

use super::alerts::{self, Alert, Outcome, Pending};
use super::anomaly_alerts::{self, FlaggedDay};
use super::status::{BudgetState, evaluate_at};
use super::webhook::{Notifier, RetryPolicy};
use crate::engine::Engine;
use crate::error::{Error, Result};

/// `[alerts]` settings.
#[derive(Debug, Clone)]
pub struct MonitorOptions {
    /// Evaluate at least this often, even without new usage.
    pub interval: Duration,
    pub retry: RetryPolicy,
    /// How old an evaluation `budget_check` may answer from after new usage (zero: exact).
    pub budget_check_staleness: Duration,
}

impl Default for MonitorOptions {
    fn default() -> Self {
        MonitorOptions {
            interval: Duration::from_secs(10),
            retry: RetryPolicy::default(),
            budget_check_staleness: Duration::ZERO,
        }
    }
}

/// A pending alert this monitor is delivering; leaves the in-flight set when dropped, however
/// the delivery ends (outcome recorded, error, task aborted at shutdown).
struct Claimed {
    alert: Pending,
    in_flight: Arc<Mutex<HashSet<String>>>,
}

impl Drop for Claimed {
    fn drop(&mut self) {
        let mut in_flight = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        in_flight.remove(&self.alert.alert_id);
    }
}

/// Evaluates budgets, stores alerts, delivers them.
#[derive(Debug, Clone)]
pub struct Monitor {
    engine: Engine,
    notifier: Notifier,
    /// Alerts whose delivery is under way, so a second evaluation does not start another.
    in_flight: Arc<Mutex<HashSet<String>>>,
    anomalies_checked: Arc<Mutex<Option<AnomalyCheck>>>,
}

/// When the server last looked for anomalies, and the usage commit count then.
type AnomalyCheck = (DateTime<Utc>, u64);

/// The server looks for anomalies again when a UTC day has ended or, after new usage,
/// when this long has passed: the query reads 10 weeks of spend.
const ANOMALY_MIN_INTERVAL: chrono::Duration = chrono::Duration::minutes(1);

/// How old the budgets' evaluation may grow in the server when nothing it is computed from
/// changes (usage, the budget and pricing tables, the UTC day): projections move with the
/// clock, slowly. Re-evaluating a large history on every wake-up would keep a core busy.
const QUIET_REEVALUATION: std::time::Duration = std::time::Duration::from_secs(15 * 60);

impl Monitor {
    pub fn new(engine: Engine, retry: RetryPolicy) -> Result<Monitor> {
        Ok(Monitor {
            engine,
            notifier: Notifier::new(retry).map_err(Error::Invalid)?,
            in_flight: Arc::default(),
            anomalies_checked: Arc::default(),
        })
    }

    /// Evaluate every budget and look for anomalies at `now`, and store the alerts due.
    /// Returns them.
    pub async fn check_at(&self, now: DateTime<Utc>) -> Result<Vec<Alert>> {
        let states = evaluate_at(&self.engine, now).await?;
        let flagged = anomaly_alerts::flagged_at(&self.engine, now).await?;
        self.fire(&states, &flagged, now).await
    }

    /// Anomalies to alert on at `now`, if it is time to look: at start, when a UTC day
    /// has ended, and after new usage at most every [`ANOMALY_MIN_INTERVAL`].
    async fn flagged_if_due(&self, now: DateTime<Utc>) -> Result<Vec<FlaggedDay>> {
        let commits = self.engine.usage_commit_count();
        {
            let last = self
                .anomalies_checked
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if let Some((at, seen)) = *last {
                let new_day = at.date_naive() != now.date_naive();
                let new_usage = seen != commits && now - at >= ANOMALY_MIN_INTERVAL;
                if !new_day && !new_usage {
                    return Ok(Vec::new());
                }
            }
        }
        let flagged = anomaly_alerts::flagged_at(&self.engine, now).await?;
        *self
            .anomalies_checked
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some((now, commits));
        Ok(flagged)
    }

    async fn fire(
        &self,
        states: &[BudgetState],
        flagged: &[FlaggedDay],
        now: DateTime<Utc>,
    ) -> Result<Vec<Alert>> {
        let table = self.alerts_table()?;
        tokio::task::spawn_blocking({
            let states = states.to_vec();
            let flagged = flagged.to_vec();
            move || {
                let fired = alerts::fired_ids(&table);
                let mut due = alerts::due(&states, now, &fired);
                due.extend(anomaly_alerts::due(&flagged, &states, now, &fired));
                alerts::store(&table, &due)?;
                for alert in &due {
                    tracing::info!("alert {}: {}", alert.alert_id, alert.message);
                }
                Ok(due)
            }
        })
        .await
        .map_err(|e| Error::Invalid(format!("alert task failed: {e}")))?
    }

    fn alerts_table(&self) -> Result<Arc<crate::storage::ConfigTable>> {
        self.engine
            .config_table("alerts")
            .ok_or_else(|| Error::Invalid("built-in table alerts is missing".into()))
    }

    /// The alerts waiting for delivery at `now`, except those already being delivered.
    /// The rows are read under the lock: a delivery records its outcome before it leaves
    /// the set, so a row read here is never one that has just been delivered.
    fn claim_pending(&self, states: &[BudgetState], now: DateTime<Utc>) -> Result<Vec<Claimed>> {
        let table = self.alerts_table()?;
        let mut in_flight = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        let pending = alerts::pending(&table, states, now)?;
        Ok(pending
            .into_iter()
            .filter(|p| in_flight.insert(p.alert_id.clone()))
            .map(|alert| Claimed {
                alert,
                in_flight: Arc::clone(&self.in_flight),
            })
            .collect())
    }

    /// Deliver one alert and record the outcome on its row.
    async fn deliver(&self, claimed: Claimed) -> Result<Outcome> {
        let alert = &claimed.alert;
        let outcome = self.notifier.deliver(alert).await;
        let table = self.alerts_table()?;
        let outcome_to_record = outcome.clone();
        let id = alert.alert_id.clone();
        tokio::task::spawn_blocking(move || alerts::record(&table, &id, &outcome_to_record))
            .await
            .map_err(|e| Error::Invalid(format!("alert task failed: {e}")))??;
        match &outcome {
            Outcome::Delivered(_) => tracing::info!("alert {} delivered", alert.alert_id),
            Outcome::Failed(reason) => {
                tracing::error!("alert {} not delivered: {reason}", alert.alert_id)
            }
        }
        Ok(outcome)
    }

    /// Deliver every pending alert of the budgets as they are at `now`, and wait for the
    /// outcomes. For one-shot commands and tests; the server delivers in the background.
    pub async fn deliver_pending_at(&self, now: DateTime<Utc>) -> Result<Vec<Outcome>> {
        let states = evaluate_at(&self.engine, now).await?;
        let mut outcomes = Vec::new();
        for alert in self.claim_pending(&states, now)? {
            outcomes.push(self.deliver(alert).await?);
        }
        Ok(outcomes)
    }

    /// Evaluate now, store and deliver: what `spendql ingest` and `spendql sql` run after
    /// a commit that added usage.
    pub async fn check_and_deliver(&self) -> Result<Vec<Alert>> {
        let now = Utc::now();
        let fired = self.check_at(now).await?;
        self.deliver_pending_at(now).await?;
        Ok(fired)
    }

    /// One evaluation in the server: refresh the shared budget view (`budget_check` reads
    /// it) if anything it is computed from changed, store due alerts, start deliveries.
    async fn tick(&self, deliveries: &mut JoinSet<()>) -> Result<()> {
        let now = Utc::now();
        let evaluation = self
            .engine
            .budgets()
            .current_exact(&self.engine, QUIET_REEVALUATION)
            .await?;
        let flagged = self.flagged_if_due(now).await?;
        self.fire(&evaluation.states, &flagged, now).await?;
        for alert in self.claim_pending(&evaluation.states, now)? {
            let monitor = self.clone();
            deliveries.spawn(async move {
                if let Err(e) = monitor.deliver(alert).await {
                    tracing::error!("recording an alert delivery failed: {e}");
                }
            });
        }
        Ok(())
    }

    /// Run until `shutdown` completes: wake at start, after every usage commit and every
    /// `interval`; re-evaluate budgets when what they are computed from changed or the last
    /// evaluation is [`QUIET_REEVALUATION`] old; deliver what is due. Deliveries still
    /// retrying at shutdown are abandoned; their alerts are delivered after the next start.
    pub async fn run(self, interval: Duration, shutdown: impl std::future::Future<Output = ()>) {
        let mut commits = self.engine.subscribe_usage_commits();
        let mut deliveries = JoinSet::new();
        tokio::pin!(shutdown);
        loop {
            if let Err(e) = self.tick(&mut deliveries).await {
                tracing::error!("budget evaluation failed (will retry): {e}");
            }
            while deliveries.try_join_next().is_some() {}
            tokio::select! {
                _ = &mut shutdown => break,
                changed = commits.changed() => {
                    if changed.is_err() {
                        break;
                    }
                }
                _ = tokio::time::sleep(interval) => {}
            }
        }
        deliveries.shutdown().await;
    }
}
