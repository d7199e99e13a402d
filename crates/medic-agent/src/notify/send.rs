//! One delivery: POST, and retry what may succeed later (connection errors, 5xx, 429) with
//! exponential back-off, within a number of attempts and a time budget. Other 4xx mean the
//! request itself is wrong, and repeating it cannot help.

use super::Request;
use reqwest::StatusCode;
use std::time::Duration;
use tokio::time::Instant;

/// The first back-off; each retry doubles it.
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
/// No single wait is longer than this, whatever the receiver asks for.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// What a receiver's error answer may add to the report.
const MAX_ANSWER_CHARS: usize = 200;

/// The bounds of one delivery.
pub(crate) struct Budget {
    pub attempt_timeout: Duration,
    pub max_attempts: u32,
    /// No attempt starts later than this after the first.
    pub max_total: Duration,
}

/// Sends `req` to `url`; returns the number of attempts and the final status in words,
/// `Ok` when the receiver accepted it.
pub(crate) async fn send(
    http: &reqwest::Client,
    url: &str,
    req: &Request,
    budget: &Budget,
) -> (u32, Result<String, String>) {
    let start = Instant::now();
    let mut attempt = 0;
    loop {
        attempt += 1;
        let mut rb = http
            .post(url)
            .timeout(budget.attempt_timeout)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(req.body.clone());
        for (k, v) in &req.headers {
            rb = rb.header(*k, v);
        }
        let (status, retry_after) = match rb.send().await {
            Ok(r) if r.status().is_success() => return (attempt, Ok(r.status().to_string())),
            Ok(r) => {
                let code = r.status();
                let retry_after = retry_after(r.headers());
                let answer = answer_excerpt(r, &req.secrets).await;
                let status = format!("answered {code}{answer}");
                if !retryable(code) {
                    return (attempt, Err(status));
                }
                (status, retry_after)
            }
            // reqwest's errors carry the URL, a secret for Slack: never in a report.
            Err(e) if e.is_builder() => {
                return (
                    attempt,
                    Err(format!("invalid request: {}", e.without_url())),
                );
            }
            Err(e) => (
                format!("failed: {}", medic_core::error_chain(&e.without_url())),
                None,
            ),
        };
        if attempt >= budget.max_attempts {
            return (
                attempt,
                Err(format!("{status}; gave up after {attempt} attempts")),
            );
        }
        let backoff = FIRST_BACKOFF.saturating_mul(1 << (attempt - 1).min(16));
        let wait = retry_after
            .unwrap_or_default()
            .max(backoff)
            .min(MAX_BACKOFF);
        if retry_after.is_some_and(|r| r > MAX_BACKOFF) || start.elapsed() + wait > budget.max_total
        {
            return (
                attempt,
                Err(format!(
                    "{status}; gave up after {attempt} attempts: the next in {:.1} s would exceed the delivery's {:.0} s budget",
                    retry_after.unwrap_or_default().max(backoff).as_secs_f64(),
                    budget.max_total.as_secs_f64()
                )),
            );
        }
        tokio::time::sleep(wait).await;
    }
}

fn retryable(code: StatusCode) -> bool {
    code.is_server_error() || code == StatusCode::TOO_MANY_REQUESTS
}

/// `Retry-After` in seconds (the HTTP-date form is rare on webhook receivers and falls back
/// to the back-off).
fn retry_after(h: &reqwest::header::HeaderMap) -> Option<Duration> {
    let v = h.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    v.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// The start of an error answer (Slack says `invalid_blocks`, PagerDuty lists the invalid
/// fields), on one line, with anything secret the receiver echoed scrubbed.
async fn answer_excerpt(r: reqwest::Response, secrets: &[String]) -> String {
    let Ok(bytes) = r.bytes().await else {
        return String::new();
    };
    let head = &bytes[..bytes.len().min(4 * MAX_ANSWER_CHARS)];
    let mut text: String = String::from_utf8_lossy(head)
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    // Longest first, so a secret containing another is scrubbed whole.
    let mut secrets: Vec<&String> = secrets.iter().filter(|s| !s.is_empty()).collect();
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    for s in secrets {
        text = text.replace(s.as_str(), "<redacted>");
    }
    let text = super::truncate(text.trim(), MAX_ANSWER_CHARS);
    if text.is_empty() {
        String::new()
    } else {
        format!(": {text}")
    }
}
