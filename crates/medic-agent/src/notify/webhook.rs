//! `kind: webhook`: the escalation record as JSON, signed when the target has a `secret`.
//!
//! The body carries `event`, `delivery_id` and `timestamp` (Unix seconds) beside the
//! record's fields, and the same values travel as `X-Medic-Event`, `X-Medic-Delivery` and
//! `X-Medic-Timestamp`. With a secret, `X-Medic-Signature: sha256=<hex>` is the
//! HMAC-SHA256 of the exact body bytes under the secret. A receiver verifies the signature
//! over the raw body before parsing it (constant-time comparison), then refuses a
//! `timestamp` older than its tolerance (five minutes is plenty: a delivery retries for at
//! most `max_delivery_time`) and a `delivery_id` it has already seen. Both values are inside
//! the signed body, so a replayer cannot change them. Retries of one delivery repeat the
//! same body, id and timestamp.

use super::{Event, Notice, Notifier, Request};
use crate::escalation::EscalationRecord;
use medic_config::{EscalationTarget, NotifyKind};
use serde::Serialize;

pub(super) struct Webhook;

#[derive(Serialize)]
struct Body<'a> {
    event: &'static str,
    delivery_id: String,
    timestamp: u64,
    /// Who answered an approval, for `approval_answered`.
    #[serde(skip_serializing_if = "Option::is_none")]
    approved: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    answered_by: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    incident_url: Option<&'a str>,
    #[serde(flatten)]
    record: &'a EscalationRecord,
}

impl Notifier for Webhook {
    fn kind(&self) -> NotifyKind {
        NotifyKind::Webhook
    }

    fn request(
        &self,
        target: &EscalationTarget,
        notice: &Notice,
    ) -> Result<Option<Request>, String> {
        let key = match &target.secret {
            Some(s) => Some(
                s.resolve()
                    .map_err(|e| format!("secret unavailable: {e}"))?,
            ),
            None => None,
        };
        let (approved, answered_by) = match &notice.event {
            Event::ApprovalAnswered { approved, by } => (Some(*approved), Some(by.as_str())),
            _ => (None, None),
        };
        let delivery_id = delivery_id();
        let timestamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let body = serde_json::to_vec(&Body {
            event: notice.event.as_str(),
            delivery_id: delivery_id.clone(),
            timestamp,
            approved,
            answered_by,
            incident_url: notice.incident_url.as_deref(),
            record: &notice.record,
        })
        .map_err(|e| format!("cannot encode the record: {e}"))?;
        let mut headers = vec![
            ("x-medic-event", notice.event.as_str().to_string()),
            ("x-medic-delivery", delivery_id),
            ("x-medic-timestamp", timestamp.to_string()),
        ];
        let mut secrets = Vec::new();
        if let Some(key) = key {
            headers.push(("x-medic-signature", signature(key.as_bytes(), &body)));
            secrets.push(key);
        }
        Ok(Some(Request {
            body,
            headers,
            secrets,
        }))
    }
}

/// `sha256=<hex HMAC-SHA256 of body under key>`.
fn signature(key: &[u8], body: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key);
    format!(
        "sha256={}",
        hex::encode(ring::hmac::sign(&key, body).as_ref())
    )
}

/// 128 random bits, hex: unique per delivery, so receivers can drop a replay.
fn delivery_id() -> String {
    use ring::rand::SecureRandom;
    let mut b = [0u8; 16];
    // The system's generator failing is not worth a lost notification: fall back to time.
    if ring::rand::SystemRandom::new().fill(&mut b).is_err() {
        let n = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        b = n.to_be_bytes();
    }
    hex::encode(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 4231 test case 2.
    #[test]
    fn signature_is_rfc_4231_hmac_sha256() {
        assert_eq!(
            signature(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn delivery_ids_differ() {
        assert_ne!(delivery_id(), delivery_id());
        assert_eq!(delivery_id().len(), 32);
    }
}
