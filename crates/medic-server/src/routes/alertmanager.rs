//! `POST /api/v1/alerts/alertmanager`: Alertmanager's webhook (payload version 4). Each alert
//! of a notification becomes one `SignalPayload::Alert`, firing or resolved; the `alerts`
//! detector dedupes them by fingerprint. The handler only decodes and queues: no blocking
//! work, so Alertmanager's notification is answered at once.
//!
//! The service an alert is about comes from the first of `server.alert_service_labels`
//! present on it (default `service`, `job`, `app`, `kubernetes_deployment`, `deployment`,
//! `pod`); a `pod` value loses its ReplicaSet and pod hash suffixes. The instance is the
//! `instance` label, else `pod`.

use crate::ServerState;
use crate::routes::logs::{error, read_body, send_all};
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use medic_core::{AlertSignal, Signal, SignalPayload, Ts, stable_id};
use medic_signals::Counter;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

/// The `source` of signals from this route.
pub const SOURCE: &str = "alertmanager";
/// The route's path.
pub const PATH: &str = "/api/v1/alerts/alertmanager";
/// The only payload version understood.
pub const VERSION: &str = "4";
/// Most alerts taken from one notification (Alertmanager's `max_alerts` is usually far lower).
pub const MAX_ALERTS_PER_NOTIFICATION: usize = 10_000;

/// Process-wide: the route is registered without arguments (`router()`), so the agent sets
/// the configured label list here before it starts the server.
static SERVICE_LABELS: RwLock<Option<Arc<Vec<String>>>> = RwLock::new(None);

/// Sets the labels that name an alert's service, in order of preference.
pub fn set_service_labels(labels: &[String]) {
    if let Ok(mut g) = SERVICE_LABELS.write() {
        *g = Some(Arc::new(labels.to_vec()));
    }
}

fn service_labels() -> Arc<Vec<String>> {
    SERVICE_LABELS
        .read()
        .ok()
        .and_then(|g| g.clone())
        .unwrap_or_else(|| {
            Arc::new(
                medic_config::DEFAULT_SERVICE_LABELS
                    .iter()
                    .map(|s| s.to_string())
                    .collect(),
            )
        })
}

pub fn router() -> axum::Router<ServerState> {
    axum::Router::new().route(PATH, post(receive))
}

/// The v4 webhook body (fields medic does not use are ignored).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Notification {
    pub version: String,
    #[serde(default)]
    pub group_key: String,
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub receiver: String,
    #[serde(default)]
    pub group_labels: BTreeMap<String, String>,
    #[serde(default)]
    pub common_labels: BTreeMap<String, String>,
    #[serde(default)]
    pub common_annotations: BTreeMap<String, String>,
    #[serde(default, rename = "externalURL")]
    pub external_url: String,
    pub alerts: Vec<WebhookAlert>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookAlert {
    pub status: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    #[serde(default)]
    pub starts_at: String,
    #[serde(default)]
    pub ends_at: String,
    #[serde(default, rename = "generatorURL")]
    pub generator_url: String,
    #[serde(default)]
    pub fingerprint: String,
}

/// Why a body was refused (400).
#[derive(Debug, PartialEq, thiserror::Error)]
pub enum WebhookError {
    #[error("invalid Alertmanager webhook body: expected a JSON object ({0})")]
    NotJson(String),
    #[error("missing `version` in the Alertmanager webhook body: expected \"4\"")]
    MissingVersion,
    #[error(
        "unsupported Alertmanager webhook payload version `{0}`: expected \"4\" (Alertmanager 0.x sends version 4)"
    )]
    UnsupportedVersion(String),
    #[error("invalid Alertmanager webhook v4 body: {0}")]
    Malformed(String),
    #[error(
        "too many alerts in one notification ({0}): expected at most {MAX_ALERTS_PER_NOTIFICATION}"
    )]
    TooManyAlerts(usize),
}

/// What one notification decoded into.
#[derive(Debug, Default)]
pub struct Decoded {
    pub signals: Vec<Signal>,
    /// Alerts skipped (bad status or timestamp), with the reasons.
    pub rejected: Vec<String>,
}

/// Decodes a v4 notification received at `now`.
pub fn decode(body: &[u8], now: Ts, service_labels: &[String]) -> Result<Decoded, WebhookError> {
    let v: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| WebhookError::NotJson(e.to_string()))?;
    let Some(obj) = v.as_object() else {
        return Err(WebhookError::NotJson("found another JSON type".into()));
    };
    match obj.get("version") {
        None => return Err(WebhookError::MissingVersion),
        Some(serde_json::Value::String(s)) if s == VERSION => {}
        Some(serde_json::Value::String(s)) => {
            return Err(WebhookError::UnsupportedVersion(excerpt(s)));
        }
        Some(other) => {
            return Err(WebhookError::UnsupportedVersion(excerpt(
                &other.to_string(),
            )));
        }
    }
    if let Some(n) = obj.get("alerts").and_then(|a| a.as_array()).map(Vec::len)
        && n > MAX_ALERTS_PER_NOTIFICATION
    {
        return Err(WebhookError::TooManyAlerts(n));
    }
    let n: Notification =
        serde_json::from_value(v).map_err(|e| WebhookError::Malformed(e.to_string()))?;
    let mut out = Decoded::default();
    for (i, a) in n.alerts.into_iter().enumerate() {
        match alert_signal(
            a,
            &n.group_key,
            &n.common_labels,
            &n.common_annotations,
            now,
            service_labels,
        ) {
            Ok(s) => out.signals.push(s),
            Err(reason) => out.rejected.push(format!("alert {i}: {reason}")),
        }
    }
    Ok(out)
}

fn excerpt(s: &str) -> String {
    s.chars().take(40).collect()
}

fn alert_signal(
    a: WebhookAlert,
    group_key: &str,
    common_labels: &BTreeMap<String, String>,
    common_annotations: &BTreeMap<String, String>,
    now: Ts,
    service_labels: &[String],
) -> Result<Signal, String> {
    let firing = match a.status.as_str() {
        "firing" => true,
        "resolved" => false,
        other => {
            return Err(format!(
                "status `{}`: expected `firing` or `resolved`",
                excerpt(other)
            ));
        }
    };
    // Alert labels always include the group's in Alertmanager; common ones fill gaps left by
    // senders that trim per-alert labels.
    let mut labels = a.labels;
    for (k, v) in common_labels {
        labels.entry(k.clone()).or_insert_with(|| v.clone());
    }
    let mut annotations = a.annotations;
    for (k, v) in common_annotations {
        annotations.entry(k.clone()).or_insert_with(|| v.clone());
    }
    let starts_at = if a.starts_at.is_empty() {
        now
    } else {
        Ts::parse_rfc3339(&a.starts_at).ok_or_else(|| {
            format!(
                "startsAt `{}`: expected an RFC 3339 timestamp",
                excerpt(&a.starts_at)
            )
        })?
    };
    // Go's zero time (`0001-01-01T00:00:00Z`) means "no end".
    let ends_at = Ts::parse_rfc3339(&a.ends_at).filter(|t| t.0 > 0);
    let fingerprint = if a.fingerprint.is_empty() {
        // Alertmanager's fingerprint is a hash of the label set: do the same.
        let parts: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
        stable_id(&refs)
    } else {
        a.fingerprint
    };
    let service = service_of(&labels, service_labels);
    let instance = labels
        .get("instance")
        .or_else(|| labels.get("pod"))
        .cloned();
    let name = labels
        .get("alertname")
        .cloned()
        .unwrap_or_else(|| "unnamed".into());
    // Alert text is written by people and templates: it gets the same redaction as logs
    // (after the service and fingerprint are taken from the labels as sent).
    let labels = redact_map(labels);
    let annotations = redact_map(annotations);
    let generator_url = (!a.generator_url.is_empty())
        .then(|| medic_signals::redact::redact(&a.generator_url).into_owned());
    Ok(Signal {
        ts: now,
        source: SOURCE.into(),
        service,
        instance,
        payload: SignalPayload::Alert(AlertSignal {
            fingerprint,
            firing,
            name,
            labels,
            annotations,
            starts_at,
            ends_at,
            generator_url,
            group_key: (!group_key.is_empty()).then(|| group_key.to_string()),
            sender: None,
        }),
    })
}

/// Values redacted as log text; a value under a secret-looking key (`api_key`, `password`,
/// `token`…) is redacted whole.
fn redact_map(m: BTreeMap<String, String>) -> BTreeMap<String, String> {
    let r = medic_signals::redact::current();
    m.into_iter()
        .map(|(k, v)| {
            let v = if r.redacts_key(&k) {
                "[REDACTED:secret]".to_string()
            } else {
                r.redact(&v).into_owned()
            };
            (k, v)
        })
        .collect()
}

/// The first configured label present (and non-empty) names the service.
pub fn service_of(labels: &BTreeMap<String, String>, service_labels: &[String]) -> Option<String> {
    service_labels.iter().find_map(|l| {
        let v = labels.get(l).filter(|v| !v.is_empty())?;
        Some(if l == "pod" {
            workload_of_pod(v)
        } else {
            v.clone()
        })
    })
}

/// Kubernetes' generated-name alphabet (no vowels, no ambiguous characters).
fn is_generated(seg: &str, min: usize, max: usize) -> bool {
    (min..=max).contains(&seg.len())
        && seg
            .bytes()
            .all(|b| b"bcdfghjklmnpqrstvwxz2456789".contains(&b))
}

/// `payment-7d4b9c8f6-x2k9p` → `payment` (Deployment pod), `db-0` → `db` (StatefulSet),
/// `agent-x2k9p` → `agent` (DaemonSet); anything else is kept as it is.
pub fn workload_of_pod(pod: &str) -> String {
    let mut segs: Vec<&str> = pod.split('-').collect();
    if segs.len() >= 2 {
        let last = segs[segs.len() - 1];
        if is_generated(last, 5, 5) {
            segs.pop();
            if segs.len() >= 2 && is_generated(segs[segs.len() - 1], 6, 10) {
                segs.pop();
            }
        } else if !last.is_empty() && last.bytes().all(|b| b.is_ascii_digit()) {
            segs.pop();
        }
    }
    segs.join("-")
}

async fn receive(
    State(state): State<ServerState>,
    identity: Option<axum::Extension<crate::auth::Identity>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let now = Ts::now();
    let data = match read_body(&state, &headers, body, None).await {
        Ok(d) => d,
        Err(r) => return r,
    };
    let decoded = match decode(&data, now, &service_labels()) {
        Ok(d) => d,
        Err(e) => {
            state.stats.incr(Counter::IngestBodyRejected);
            tracing::warn!("alertmanager webhook refused: {e}");
            return error(StatusCode::BAD_REQUEST, e.to_string());
        }
    };
    let accepted = decoded.signals.len();
    let rejected = decoded.rejected.len();
    state
        .stats
        .add(Counter::IngestRecordRejected, rejected as u64);
    for r in &decoded.rejected {
        tracing::warn!("alertmanager webhook: skipped {r}");
    }
    if accepted == 0 && rejected > 0 {
        return error(
            StatusCode::BAD_REQUEST,
            format!("no alert accepted: {}", decoded.rejected.join("; ")),
        );
    }
    // Who sent it, so that a policy can trust (or not) the cause hints of this sender.
    let mut signals = decoded.signals;
    if let Some(axum::Extension(id)) = identity {
        for s in &mut signals {
            if let SignalPayload::Alert(a) = &mut s.payload {
                a.sender = Some(id.name.clone());
            }
        }
    }
    if let Err(r) = send_all(&state, signals).await {
        return r;
    }
    let body = serde_json::json!({ "accepted": accepted, "rejected": rejected });
    (StatusCode::OK, axum::Json(body)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels() -> Vec<String> {
        medic_config::DEFAULT_SERVICE_LABELS
            .iter()
            .map(|s| s.to_string())
            .collect()
    }

    pub(crate) const V4: &str = r#"{
      "version": "4", "groupKey": "{}:{alertname=\"PaymentErrors\"}", "truncatedAlerts": 0,
      "status": "firing", "receiver": "medic",
      "groupLabels": {"alertname": "PaymentErrors"},
      "commonLabels": {"alertname": "PaymentErrors", "severity": "critical"},
      "commonAnnotations": {"summary": "payment 5xx above 20%"},
      "externalURL": "http://127.0.0.1:9093",
      "alerts": [
        {"status": "firing", "labels": {"alertname": "PaymentErrors", "service": "payment", "instance": "127.0.0.1:4001", "severity": "critical"},
         "annotations": {"description": "5xx ratio 0.4"}, "startsAt": "2026-01-02T03:04:05.678Z",
         "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "http://prom/graph", "fingerprint": "a1b2"},
        {"status": "resolved", "labels": {"alertname": "PaymentErrors", "pod": "checkout-7d4b9c8f6-x2k9p"},
         "annotations": {}, "startsAt": "2026-01-02T03:00:00Z", "endsAt": "2026-01-02T03:05:00Z",
         "generatorURL": "", "fingerprint": "c3d4"}
      ]
    }"#;

    #[test]
    fn v4_payload_becomes_alert_signals() {
        let d = decode(V4.as_bytes(), Ts(42), &labels()).unwrap();
        assert!(d.rejected.is_empty());
        assert_eq!(d.signals.len(), 2);
        let s = &d.signals[0];
        assert_eq!(s.ts, Ts(42));
        assert_eq!(s.service.as_deref(), Some("payment"));
        assert_eq!(s.instance.as_deref(), Some("127.0.0.1:4001"));
        let SignalPayload::Alert(a) = &s.payload else {
            panic!("alert expected");
        };
        assert!(a.firing);
        assert_eq!(a.name, "PaymentErrors");
        assert_eq!(a.fingerprint, "a1b2");
        assert_eq!(a.ends_at, None);
        assert_eq!(
            a.starts_at,
            Ts::parse_rfc3339("2026-01-02T03:04:05.678Z").unwrap()
        );
        // Common annotations fill in what the alert lacks.
        assert_eq!(a.annotations["summary"], "payment 5xx above 20%");
        assert_eq!(a.annotations["description"], "5xx ratio 0.4");
        assert_eq!(
            a.group_key.as_deref(),
            Some("{}:{alertname=\"PaymentErrors\"}")
        );
        let r = &d.signals[1];
        assert_eq!(r.service.as_deref(), Some("checkout"));
        assert_eq!(r.instance.as_deref(), Some("checkout-7d4b9c8f6-x2k9p"));
        let SignalPayload::Alert(a) = &r.payload else {
            panic!("alert expected");
        };
        assert!(!a.firing);
        assert!(a.ends_at.is_some());
        assert_eq!(a.labels["severity"], "critical");
    }

    #[test]
    fn other_versions_and_malformed_bodies_are_refused_by_name() {
        let v3 = V4.replacen("\"version\": \"4\"", "\"version\": \"3\"", 1);
        let e = decode(v3.as_bytes(), Ts(0), &labels()).unwrap_err();
        assert_eq!(e, WebhookError::UnsupportedVersion("3".into()));
        assert!(e.to_string().contains("`3`"));
        let num = V4.replacen("\"version\": \"4\"", "\"version\": 4", 1);
        assert!(matches!(
            decode(num.as_bytes(), Ts(0), &labels()),
            Err(WebhookError::UnsupportedVersion(_))
        ));
        assert_eq!(
            decode(b"{\"alerts\":[]}", Ts(0), &labels()).unwrap_err(),
            WebhookError::MissingVersion
        );
        assert!(matches!(
            decode(b"[1,2]", Ts(0), &labels()),
            Err(WebhookError::NotJson(_))
        ));
        assert!(matches!(
            decode(b"{\"version\":\"4\",\"alerts\":", Ts(0), &labels()),
            Err(WebhookError::NotJson(_))
        ));
        assert!(matches!(
            decode(b"{\"version\":\"4\",\"alerts\":{}}", Ts(0), &labels()),
            Err(WebhookError::Malformed(_))
        ));
        assert!(matches!(
            decode(b"{\"version\":\"4\"}", Ts(0), &labels()),
            Err(WebhookError::Malformed(_))
        ));
        // One bad alert is skipped and reported; the others pass.
        let bad = V4.replacen("\"status\": \"resolved\"", "\"status\": \"weird\"", 1);
        let d = decode(bad.as_bytes(), Ts(0), &labels()).unwrap();
        assert_eq!((d.signals.len(), d.rejected.len()), (1, 1));
        assert!(d.rejected[0].contains("weird"));
        let bad_time = V4.replacen("2026-01-02T03:04:05.678Z", "yesterday", 1);
        let d = decode(bad_time.as_bytes(), Ts(0), &labels()).unwrap();
        assert_eq!((d.signals.len(), d.rejected.len()), (1, 1));
    }

    #[test]
    fn huge_and_hostile_bodies_never_panic() {
        let many: Vec<String> = (0..MAX_ALERTS_PER_NOTIFICATION + 1)
            .map(|i| format!("{{\"status\":\"firing\",\"labels\":{{\"alertname\":\"a{i}\"}}}}"))
            .collect();
        let body = format!("{{\"version\":\"4\",\"alerts\":[{}]}}", many.join(","));
        assert!(matches!(
            decode(body.as_bytes(), Ts(0), &labels()),
            Err(WebhookError::TooManyAlerts(_))
        ));
        let deep = "[".repeat(100_000);
        assert!(decode(deep.as_bytes(), Ts(0), &labels()).is_err());
        for end in 0..V4.len() {
            let _ = decode(&V4.as_bytes()[..end], Ts(0), &labels());
        }
        let huge_label = format!(
            "{{\"version\":\"4\",\"alerts\":[{{\"status\":\"firing\",\"labels\":{{\"service\":\"{}\"}}}}]}}",
            "x".repeat(1 << 20)
        );
        let d = decode(huge_label.as_bytes(), Ts(0), &labels()).unwrap();
        assert_eq!(d.signals.len(), 1);
    }

    #[test]
    fn missing_fingerprint_is_derived_from_labels() {
        let body = r#"{"version":"4","alerts":[{"status":"firing","labels":{"alertname":"X","job":"cache"}},{"status":"resolved","labels":{"job":"cache","alertname":"X"}}]}"#;
        let d = decode(body.as_bytes(), Ts(0), &labels()).unwrap();
        let fp = |s: &Signal| match &s.payload {
            SignalPayload::Alert(a) => a.fingerprint.clone(),
            _ => String::new(),
        };
        assert_eq!(fp(&d.signals[0]), fp(&d.signals[1]));
        assert_eq!(d.signals[0].service.as_deref(), Some("cache"));
    }

    #[test]
    fn label_to_service_mapping() {
        let l = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let d = labels();
        assert_eq!(
            service_of(&l(&[("job", "j"), ("service", "s")]), &d).as_deref(),
            Some("s")
        );
        assert_eq!(
            service_of(&l(&[("job", "j"), ("app", "a")]), &d).as_deref(),
            Some("j")
        );
        assert_eq!(
            service_of(&l(&[("service", ""), ("app", "a")]), &d).as_deref(),
            Some("a")
        );
        assert_eq!(
            service_of(&l(&[("pod", "payment-5f6b7c8d9f-abcde")]), &d).as_deref(),
            Some("payment-5f6b7c8d9f-abcde"),
            "vowels are not in Kubernetes' generated names"
        );
        assert_eq!(
            service_of(&l(&[("pod", "payment-5f6b7c8d9f-bcdfg")]), &d).as_deref(),
            Some("payment")
        );
        assert_eq!(workload_of_pod("db-0"), "db");
        assert_eq!(workload_of_pod("node-agent-x2k9p"), "node-agent");
        assert_eq!(workload_of_pod("plain"), "plain");
        assert_eq!(workload_of_pod("-"), "-");
        assert_eq!(service_of(&l(&[("other", "x")]), &d), None);
        let custom = vec!["team_service".to_string()];
        assert_eq!(
            service_of(&l(&[("team_service", "t"), ("service", "s")]), &custom).as_deref(),
            Some("t")
        );
    }
}
