//! Alert delivery: an HTTP POST of JSON to the budget's `notify` URL, retried with
//! exponential backoff. Slack incoming webhooks get Slack's `{"text": ...}` body.

use std::time::Duration;

use chrono::Utc;

use super::alerts::{Outcome, Pending};

/// How hard delivery tries.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Attempts after the first.
    pub retries: u32,
    /// Wait before the first retry; doubles each time, capped at `max_backoff`.
    pub backoff: Duration,
    pub max_backoff: Duration,
    /// Per attempt.
    pub timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            retries: 4,
            backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
            timeout: Duration::from_secs(10),
        }
    }
}

/// Posts alerts. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Notifier {
    client: reqwest::Client,
    policy: RetryPolicy,
}

impl Notifier {
    pub fn new(policy: RetryPolicy) -> Result<Notifier, String> {
        // The process uses ring for TLS (server and client); a provider installed earlier
        // (by the server) is kept.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .timeout(policy.timeout)
            .user_agent(concat!("spendql/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot create the webhook client: {e}"))?;
        Ok(Notifier { client, policy })
    }

    /// Deliver one alert, retrying failures. Never returns before it has an outcome.
    pub async fn deliver(&self, alert: &Pending) -> Outcome {
        let body = if is_slack(&alert.url) {
            serde_json::json!({ "text": alert.message })
        } else {
            alert.body.clone()
        };
        let body = body.to_string();
        let mut wait = self.policy.backoff;
        let mut last = String::new();
        for attempt in 0..=self.policy.retries {
            if attempt > 0 {
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(self.policy.max_backoff);
            }
            match self.post(&alert.url, body.clone()).await {
                Ok(()) => return Outcome::Delivered(Utc::now()),
                Err(reason) => {
                    tracing::warn!(
                        "alert {}: delivery attempt {} failed: {reason}",
                        alert.alert_id,
                        attempt + 1
                    );
                    last = reason;
                }
            }
        }
        Outcome::Failed(format!(
            "{last} (after {} attempts)",
            self.policy.retries + 1
        ))
    }

    async fn post(&self, url: &str, body: String) -> Result<(), String> {
        let target = redacted(url);
        let response = self
            .client
            .post(url)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .map_err(|e| format!("POST {target}: {}", without_url(&e)))?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(format!("POST {target}: HTTP {}", status.as_u16()))
        }
    }
}

/// Slack incoming webhooks (`https://hooks.slack.com/services/...`).
fn is_slack(url: &str) -> bool {
    url::Url::parse(url).is_ok_and(|u| u.host_str() == Some("hooks.slack.com"))
}

/// A webhook URL's path is often its secret (Slack's is): errors name only the origin.
fn redacted(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(u) => format!(
            "{}://{}{}",
            u.scheme(),
            u.host_str().unwrap_or(""),
            u.port().map(|p| format!(":{p}")).unwrap_or_default()
        ),
        Err(_) => "an invalid URL".into(),
    }
}

fn without_url(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    if let Some(url) = error.url() {
        text = text.replace(url.as_str(), &redacted(url.as_str()));
    }
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slack_urls_are_recognised_and_secrets_redacted() {
        assert!(is_slack("https://hooks.slack.com/services/T0/B0/xyz"));
        assert!(!is_slack("https://example.com/hooks.slack.com"));
        assert_eq!(
            redacted("https://hooks.slack.com/services/T0/B0/secret"),
            "https://hooks.slack.com"
        );
        assert_eq!(
            redacted("http://127.0.0.1:8080/x?token=1"),
            "http://127.0.0.1:8080"
        );
        assert_eq!(redacted("not a url"), "an invalid URL");
    }
}
