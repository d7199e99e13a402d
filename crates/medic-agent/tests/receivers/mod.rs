//! Local receivers on 127.0.0.1 for the notification tests. Slack and PagerDuty cannot run
//! here, so their test doubles speak the real protocols and refuse what the real APIs
//! refuse (shapes and limits from Slack's Block Kit reference and PagerDuty's Events API v2
//! reference); the signed-webhook receiver verifies signatures as the README tells
//! receivers to, with its own HMAC; the scripted receiver answers a given sequence of
//! statuses, for retries.
#![allow(dead_code)]

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// One request as it arrived, and what the receiver answered.
#[derive(Clone, Debug)]
pub struct Received {
    pub at: Instant,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub status: u16,
    pub answer: String,
}

impl Received {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("JSON body")
    }
}

type Handler =
    Arc<dyn Fn(&HeaderMap, &Bytes) -> (u16, Vec<(String, String)>, String) + Send + Sync>;

/// A running receiver: `url` is where to POST, `received()` what came.
pub struct Receiver {
    pub url: String,
    log: Arc<Mutex<Vec<Received>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    pub fn received(&self) -> Vec<Received> {
        self.log.lock().expect("lock").clone()
    }

    /// The accepted (2xx) requests, as JSON.
    pub fn accepted(&self) -> Vec<Value> {
        self.received()
            .iter()
            .filter(|r| (200..300).contains(&r.status))
            .map(Received::json)
            .collect()
    }

    /// Waits until `n` requests have been accepted.
    pub async fn wait_accepted(&self, n: usize, within: Duration) -> Vec<Value> {
        let deadline = Instant::now() + within;
        loop {
            let a = self.accepted();
            if a.len() >= n {
                return a;
            }
            assert!(
                Instant::now() < deadline,
                "{} of {n} requests accepted: {:#?}",
                a.len(),
                self.received()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(path: &str, handler: Handler) -> Receiver {
    let log: Arc<Mutex<Vec<Received>>> = Arc::default();
    let log2 = log.clone();
    let app = axum::Router::new().route(
        path,
        axum::routing::post(move |headers: HeaderMap, body: Bytes| {
            let handler = handler.clone();
            let log = log2.clone();
            async move {
                let at = Instant::now();
                let (status, extra, answer) = handler(&headers, &body);
                log.lock().expect("lock").push(Received {
                    at,
                    headers: headers.clone(),
                    body,
                    status,
                    answer: answer.clone(),
                });
                let mut h = HeaderMap::new();
                for (k, v) in extra {
                    h.insert(
                        axum::http::HeaderName::from_bytes(k.as_bytes()).expect("header name"),
                        v.parse().expect("header value"),
                    );
                }
                (StatusCode::from_u16(status).expect("status"), h, answer)
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Receiver {
        url: format!("http://{addr}{path}"),
        log,
        task,
    }
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"))
}

// ---------------------------------------------------------------------------------------
// Slack

/// The path of a Slack incoming webhook; its last parts are the secret.
pub const SLACK_PATH: &str = "/services/T00000000/B00000000/SECRETslackTOKEN000000000";

/// A Slack incoming webhook test double: answers `200 ok`, or `400` with Slack's error
/// code (`invalid_payload`, `no_text`, `invalid_blocks`) for what Slack refuses.
pub struct SlackTestDouble;

impl SlackTestDouble {
    pub async fn start() -> Receiver {
        serve(
            SLACK_PATH,
            Arc::new(|headers, body| {
                let v: Value = match serde_json::from_slice(body) {
                    Ok(v) if is_json(headers) => v,
                    _ => return (400, vec![], "invalid_payload".into()),
                };
                match SlackTestDouble::check(&v) {
                    Ok(()) => (200, vec![], "ok".into()),
                    Err(code) => (400, vec![], code),
                }
            }),
        )
        .await
    }

    /// What Slack would say about `v`: `Ok` or its error code with why.
    pub fn check(v: &Value) -> Result<(), String> {
        let Some(m) = v.as_object() else {
            return Err("invalid_payload".into());
        };
        let text = m.get("text");
        if text.is_some_and(|t| !t.is_string()) {
            return Err("invalid_payload: text is not a string".into());
        }
        let Some(blocks) = m.get("blocks") else {
            return match text.and_then(Value::as_str) {
                Some(t) if !t.is_empty() => Ok(()),
                _ => Err("no_text".into()),
            };
        };
        let Some(blocks) = blocks.as_array() else {
            return Err("invalid_blocks: blocks is not an array".into());
        };
        if blocks.is_empty() || blocks.len() > 50 {
            return Err(format!("invalid_blocks: {} blocks (1 to 50)", blocks.len()));
        }
        for (i, b) in blocks.iter().enumerate() {
            check_block(b).map_err(|e| format!("invalid_blocks: block {i}: {e}"))?;
        }
        Ok(())
    }
}

fn text_object(v: &Value, max: usize, types: &[&str]) -> Result<(), String> {
    let ty = v
        .get("type")
        .and_then(Value::as_str)
        .ok_or("text object without type")?;
    if !types.contains(&ty) {
        return Err(format!("text type `{ty}` not one of {types:?}"));
    }
    let t = v
        .get("text")
        .and_then(Value::as_str)
        .ok_or("text object without text")?;
    let n = t.chars().count();
    if n == 0 || n > max {
        return Err(format!("text of {n} characters (1 to {max})"));
    }
    Ok(())
}

fn check_block(b: &Value) -> Result<(), String> {
    let ty = b
        .get("type")
        .and_then(Value::as_str)
        .ok_or("block without type")?;
    if let Some(id) = b.get("block_id").and_then(Value::as_str)
        && id.chars().count() > 255
    {
        return Err("block_id longer than 255".into());
    }
    match ty {
        "header" => text_object(
            b.get("text").ok_or("header without text")?,
            150,
            &["plain_text"],
        ),
        "section" => {
            let text = b.get("text");
            let fields = b.get("fields").and_then(Value::as_array);
            if text.is_none() && fields.is_none() {
                return Err("section without text or fields".into());
            }
            if let Some(t) = text {
                text_object(t, 3000, &["plain_text", "mrkdwn"])?;
            }
            if let Some(f) = fields {
                if f.is_empty() || f.len() > 10 {
                    return Err(format!("{} fields (1 to 10)", f.len()));
                }
                for x in f {
                    text_object(x, 2000, &["plain_text", "mrkdwn"])?;
                }
            }
            Ok(())
        }
        "context" => {
            let e = b
                .get("elements")
                .and_then(Value::as_array)
                .ok_or("context without elements")?;
            if e.is_empty() || e.len() > 10 {
                return Err(format!("{} context elements (1 to 10)", e.len()));
            }
            e.iter()
                .try_for_each(|x| text_object(x, 3000, &["plain_text", "mrkdwn"]))
        }
        "actions" => {
            let e = b
                .get("elements")
                .and_then(Value::as_array)
                .ok_or("actions without elements")?;
            if e.is_empty() || e.len() > 25 {
                return Err(format!("{} action elements (1 to 25)", e.len()));
            }
            for x in e {
                if x.get("type").and_then(Value::as_str) != Some("button") {
                    return Err("only buttons are checked here".into());
                }
                text_object(
                    x.get("text").ok_or("button without text")?,
                    75,
                    &["plain_text"],
                )?;
                if let Some(u) = x.get("url").and_then(Value::as_str)
                    && u.chars().count() > 3000
                {
                    return Err("button url longer than 3000".into());
                }
            }
            Ok(())
        }
        "divider" => Ok(()),
        other => Err(format!("unknown block type `{other}`")),
    }
}

// ---------------------------------------------------------------------------------------
// PagerDuty

/// A PagerDuty Events API v2 test double (`POST /v2/enqueue`): `202` with
/// `{"status":"success","dedup_key":…}`, or `400` with `{"status":"invalid event",
/// "errors":[…]}` for what the API refuses. It keeps each alert's status by dedup key.
pub struct PagerDutyTestDouble;

impl PagerDutyTestDouble {
    pub async fn start() -> Receiver {
        serve(
            "/v2/enqueue",
            Arc::new(|headers, body| {
                let v: Value = match serde_json::from_slice(body) {
                    Ok(v) if is_json(headers) => v,
                    _ => {
                        let e = json!({"status": "invalid event", "message": "Event object is invalid", "errors": ["body is not JSON"]});
                        return (400, vec![], e.to_string());
                    }
                };
                match PagerDutyTestDouble::check(&v) {
                    Ok(dedup) => {
                        let a = json!({"status": "success", "message": "Event processed", "dedup_key": dedup});
                        (202, vec![], a.to_string())
                    }
                    Err(errors) => {
                        let e = json!({"status": "invalid event", "message": "Event object is invalid", "errors": errors});
                        (400, vec![], e.to_string())
                    }
                }
            }),
        )
        .await
    }

    /// The event's dedup key, or the API's list of errors.
    pub fn check(v: &Value) -> Result<String, Vec<String>> {
        let mut errors = Vec::new();
        match v.get("routing_key").and_then(Value::as_str) {
            Some(k) if k.chars().count() == 32 => {}
            Some(_) => errors
                .push("Length of 'routing_key' is incorrect (should be 32 characters)".to_string()),
            None => errors.push("'routing_key' is missing.".into()),
        }
        let action = v.get("event_action").and_then(Value::as_str).unwrap_or("");
        if !["trigger", "acknowledge", "resolve"].contains(&action) {
            errors.push(
                "'event_action' is invalid (must be one of: trigger, acknowledge, resolve)".into(),
            );
        }
        let dedup = v.get("dedup_key").and_then(Value::as_str);
        if dedup.is_some_and(|d| d.chars().count() > 255) {
            errors.push("'dedup_key' is longer than 255 characters".into());
        }
        if action != "trigger" && dedup.is_none() {
            errors.push(format!("'dedup_key' is required for {action}"));
        }
        if action == "trigger" {
            match v.get("payload") {
                None => errors.push("'payload' is missing.".into()),
                Some(p) => {
                    match p.get("summary").and_then(Value::as_str) {
                        Some(s) if !s.is_empty() && s.chars().count() <= 1024 => {}
                        Some(_) => {
                            errors.push("'payload.summary' must be 1 to 1024 characters".into())
                        }
                        None => errors.push("'payload.summary' is missing.".into()),
                    }
                    if p.get("source")
                        .and_then(Value::as_str)
                        .is_none_or(str::is_empty)
                    {
                        errors.push("'payload.source' is missing.".into());
                    }
                    let sev = p.get("severity").and_then(Value::as_str).unwrap_or("");
                    if !["critical", "error", "warning", "info"].contains(&sev) {
                        errors.push("'payload.severity' is invalid (must be one of: critical, error, warning, info)".into());
                    }
                    for k in ["component", "group", "class"] {
                        if p.get(k).is_some_and(|x| !x.is_string()) {
                            errors.push(format!("'payload.{k}' must be a string"));
                        }
                    }
                    if p.get("custom_details").is_some_and(|x| !x.is_object()) {
                        errors.push("'payload.custom_details' must be an object".into());
                    }
                }
            }
        }
        if let Some(links) = v.get("links") {
            let ok = links.as_array().is_some_and(|l| {
                l.iter()
                    .all(|x| x.get("href").and_then(Value::as_str).is_some())
            });
            if !ok {
                errors.push("'links' must be a list of objects with 'href'".into());
            }
        }
        if errors.is_empty() {
            Ok(dedup.map_or_else(|| "generated-dedup-key".to_string(), str::to_string))
        } else {
            Err(errors)
        }
    }
}

// ---------------------------------------------------------------------------------------
// Generic webhook

/// A receiver of medic's generic webhook that verifies as the README says: HMAC-SHA256 of
/// the raw body under the shared secret (constant-time), a fresh timestamp, an unseen
/// delivery id; `401` otherwise.
pub struct SignedWebhookReceiver;

impl SignedWebhookReceiver {
    pub async fn start(secret: &str) -> Receiver {
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
        let seen: Arc<Mutex<Vec<String>>> = Arc::default();
        serve(
            "/hook",
            Arc::new(
                move |headers, body| match verify(&key, headers, body, &seen) {
                    Ok(()) => (200, vec![], "ok".into()),
                    Err(why) => (401, vec![], why),
                },
            ),
        )
        .await
    }
}

fn verify(
    key: &ring::hmac::Key,
    headers: &HeaderMap,
    body: &[u8],
    seen: &Mutex<Vec<String>>,
) -> Result<(), String> {
    let sig = headers
        .get("x-medic-signature")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("sha256="))
        .ok_or("no X-Medic-Signature")?;
    let sig = hex::decode(sig).map_err(|_| "signature is not hex")?;
    ring::hmac::verify(key, body, &sig).map_err(|_| "bad signature")?;
    let v: Value = serde_json::from_slice(body).map_err(|_| "not JSON")?;
    let ts = v
        .get("timestamp")
        .and_then(Value::as_u64)
        .ok_or("no timestamp")?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    if now.abs_diff(ts) > 300 {
        return Err("stale timestamp".into());
    }
    let id = v
        .get("delivery_id")
        .and_then(Value::as_str)
        .ok_or("no delivery_id")?;
    if headers
        .get("x-medic-delivery")
        .and_then(|h| h.to_str().ok())
        != Some(id)
        || headers
            .get("x-medic-timestamp")
            .and_then(|h| h.to_str().ok())
            != Some(&ts.to_string())
    {
        return Err("headers disagree with the signed body".into());
    }
    let mut seen = seen.lock().expect("lock");
    if seen.iter().any(|s| s == id) {
        return Err("replayed delivery".into());
    }
    seen.push(id.to_string());
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Scripted

/// Answers the given statuses in order (the last one from then on), each with an optional
/// `Retry-After` in seconds.
pub async fn scripted(script: Vec<(u16, Option<u64>)>) -> Receiver {
    let script = Arc::new(script);
    let n = Arc::new(Mutex::new(0usize));
    serve(
        "/hook",
        Arc::new(move |_, _| {
            let mut i = n.lock().expect("lock");
            let (status, retry_after) = script[(*i).min(script.len() - 1)];
            *i += 1;
            let headers = retry_after
                .map(|s| vec![("retry-after".to_string(), s.to_string())])
                .unwrap_or_default();
            (status, headers, format!("answer {}", *i))
        }),
    )
    .await
}

/// Answers `status` naming its own path and echoing the `routing_key` it was sent, as
/// careless receivers do in their errors.
pub async fn echoing(status: u16) -> Receiver {
    serve(
        "/echo/SECRETpath",
        Arc::new(move |_, body| {
            let v: Value = serde_json::from_slice(body).unwrap_or_default();
            let text = format!(
                "bad request to /echo/SECRETpath: routing_key {} refused",
                v["routing_key"]
            );
            (status, vec![], text)
        }),
    )
    .await
}
