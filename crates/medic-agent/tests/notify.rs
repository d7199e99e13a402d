//! Notifications against local receivers: the Slack and PagerDuty test doubles check the
//! shapes those APIs require, the signed-webhook receiver checks the HMAC, and a scripted
//! receiver drives the retries.

mod receivers;

use medic_agent::escalation::EscalationRecord;
use medic_agent::notify::{DeliveryReport, Event, Notice, deliver};
use medic_config::{EscalationConfig, EscalationTarget, NotifyKind, SecretValue};
use medic_core::{Cause, Diagnosis, Finding, FindingKind, Hypothesis, Incident, IncidentState, Ts};
use receivers::*;
use serde_json::{Value, json};
use std::time::Duration;

const ROUTING_KEY: &str = "R0UT1NGKEY0123456789abcdefABCDEF";

/// An escalated incident whose texts are long and hostile: a rationale far over Slack's
/// limits, with a mention and a link in it.
fn record(rationale_len: usize) -> EscalationRecord {
    let finding = Finding {
        id: "f1".into(),
        ts: Ts::now(),
        service: "checkout".into(),
        instance: None,
        kind: FindingKind::ProcessExit,
        detector: "restarts".into(),
        score: 0.9,
        summary: "checkout exited".into(),
        evidence: Vec::new(),
    };
    let mut inc = Incident::new("inc-42".into(), finding);
    inc.state = IncidentState::Escalated;
    let rationale = format!(
        "<!channel> see <http://evil.example|here> & {}",
        "x".repeat(rationale_len)
    );
    inc.diagnosis = Some(Diagnosis {
        made_at: Ts::now(),
        hypotheses: vec![
            Hypothesis {
                cause: Cause::DependencyFailure,
                target: "cache".into(),
                confidence: 0.82,
                rationale,
                evidence: Vec::new(),
                only_hinted_by: None,
            },
            Hypothesis {
                cause: Cause::MemoryLeak,
                target: "checkout".into(),
                confidence: 0.31,
                rationale: "memory grew".into(),
                evidence: Vec::new(),
                only_hinted_by: None,
            },
        ],
        engine: "rules".into(),
    });
    let mut r = EscalationRecord::build(
        &inc,
        "action restart_workload failed: timed out",
        Ts::now(),
        &[],
    );
    r.plan = Some(
        "restart_workload cache (policy p, mode auto, confidence 0.82 vs threshold 0.50)".into(),
    );
    r.decision = Some("Execute".into());
    r.executions = vec!["attempt 1 restart_workload cache → Failed: timed out".into()];
    r.outcome = Some("NotHealed".into());
    r
}

fn cfg(public_url: Option<&str>) -> EscalationConfig {
    EscalationConfig {
        public_url: public_url.map(str::to_string),
        ..EscalationConfig::default()
    }
}

fn target(kind: NotifyKind, url: &str) -> EscalationTarget {
    EscalationTarget {
        kind,
        timeout: Duration::from_secs(2),
        endpoint: Some(SecretValue::Plain(url.to_string())),
        ..EscalationTarget::webhook("t", None)
    }
}

fn pagerduty(url: &str, key: SecretValue) -> EscalationTarget {
    EscalationTarget {
        routing_key: Some(key),
        ..target(NotifyKind::PagerDuty, url)
    }
}

async fn one(t: &EscalationTarget, notice: &Notice) -> DeliveryReport {
    let reports = deliver(&reqwest::Client::new(), std::slice::from_ref(t), notice).await;
    assert_eq!(reports.len(), 1, "{reports:?}");
    reports.into_iter().next().expect("report")
}

fn all_text(v: &Value) -> String {
    v.to_string()
}

#[tokio::test]
async fn slack_gets_block_kit_with_the_evidence_cut_to_slacks_limits() {
    let slack = SlackTestDouble::start().await;
    let t = target(NotifyKind::Slack, &slack.url);
    let notice = Notice::new(
        Event::Escalated,
        record(10_000),
        &cfg(Some("https://medic.example.com")),
    );
    let r = one(&t, &notice).await;
    assert!(r.delivered, "{r:?}");
    assert_eq!(
        (r.attempts, r.kind, r.event),
        (1, NotifyKind::Slack, "escalated")
    );
    let msg = &slack.accepted()[0];
    let blocks = msg["blocks"].as_array().expect("blocks");
    assert_eq!(blocks[0]["type"], "header");
    assert!(
        blocks[0]["text"]["text"]
            .as_str()
            .unwrap()
            .starts_with("Escalated: inc-42")
    );
    let text = all_text(msg);
    for want in [
        "Top hypotheses",
        "dependency_failure on cache (0.82)",
        "memory_leak on checkout (0.31)",
        "*Plan:* restart_workload cache",
        "*Guard decision:* Execute",
        "attempt 1 restart_workload cache",
        "*Outcome:* NotHealed",
        "<https://medic.example.com/api/v1/incidents/inc-42|Incident inc-42",
    ] {
        assert!(text.contains(want), "missing {want:?} in {text}");
    }
    // The alert's text cannot mention @channel or add a link: it is escaped.
    assert!(text.contains("&lt;!channel&gt;"), "{text}");
    assert!(!text.contains("<!channel>"), "{text}");
    assert!(!text.contains("<http://evil.example"), "{text}");
    // 10,000 characters of rationale were cut, with a mark.
    assert!(text.contains("…"), "{text}");
    assert!(
        msg["text"]
            .as_str()
            .unwrap()
            .starts_with("[medic] Escalated: inc-42")
    );
}

#[tokio::test]
async fn slack_approval_request_says_how_to_approve_honestly() {
    let slack = SlackTestDouble::start().await;
    let t = target(NotifyKind::Slack, &slack.url);
    let notice = Notice::new(
        Event::ApprovalRequested,
        record(10),
        &cfg(Some("https://medic.example.com")),
    );
    assert!(one(&t, &notice).await.delivered);
    let text = all_text(&slack.accepted()[0]);
    assert!(text.contains("medic approve inc-42 --reason"), "{text}");
    assert!(
        text.contains("POST https://medic.example.com/api/v1/incidents/inc-42/approve"),
        "{text}"
    );
    // Without a public URL there is nothing to link to.
    let notice = Notice::new(Event::ApprovalRequested, record(10), &cfg(None));
    assert!(one(&t, &notice).await.delivered);
    let text = all_text(&slack.accepted()[1]);
    assert!(!text.contains("/api/v1"), "{text}");
    assert!(text.contains("medic reject inc-42 --reason"), "{text}");
}

#[tokio::test]
async fn the_test_doubles_refuse_what_the_real_apis_refuse() {
    let ok = json!({"text": "t", "blocks": [{"type": "header", "text": {"type": "plain_text", "text": "h"}}]});
    assert_eq!(SlackTestDouble::check(&ok), Ok(()));
    for (bad, code) in [
        (json!({}), "no_text"),
        (json!({"blocks": []}), "invalid_blocks"),
        (
            json!({"blocks": [{"text": {"type": "mrkdwn", "text": "x"}}]}),
            "invalid_blocks",
        ),
        (
            json!({"blocks": [{"type": "header", "text": {"type": "plain_text", "text": "h".repeat(151)}}]}),
            "invalid_blocks",
        ),
        (
            json!({"blocks": [{"type": "header", "text": {"type": "mrkdwn", "text": "h"}}]}),
            "invalid_blocks",
        ),
        (
            json!({"blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "s".repeat(3001)}}]}),
            "invalid_blocks",
        ),
        (
            json!({"blocks": [{"type": "sektion", "text": {"type": "mrkdwn", "text": "s"}}]}),
            "invalid_blocks",
        ),
    ] {
        let e = SlackTestDouble::check(&bad).expect_err("refused");
        assert!(e.starts_with(code), "{bad}: {e}");
    }
    let trigger = json!({"routing_key": ROUTING_KEY, "event_action": "trigger", "payload": {"summary": "s", "source": "h", "severity": "error"}});
    assert!(PagerDutyTestDouble::check(&trigger).is_ok());
    for (field, value) in [
        ("/routing_key", json!("short")),
        ("/event_action", json!("escalate")),
        ("/payload/severity", json!("high")),
        ("/payload/summary", json!("s".repeat(1025))),
        ("/payload/source", json!("")),
    ] {
        let mut bad = trigger.clone();
        *bad.pointer_mut(field).expect(field) = value;
        assert!(PagerDutyTestDouble::check(&bad).is_err(), "{bad}");
    }
    let resolve = json!({"routing_key": ROUTING_KEY, "event_action": "resolve"});
    assert!(
        PagerDutyTestDouble::check(&resolve).is_err(),
        "resolve needs a dedup_key"
    );

    // Over HTTP too: a refused message is a failed delivery, tried once (a 4xx).
    let slack = SlackTestDouble::start().await;
    let resp = reqwest::Client::new()
        .post(&slack.url)
        .json(&json!({"blocks": "nope"}))
        .send()
        .await
        .expect("post");
    assert_eq!(resp.status(), 400);
    assert_eq!(
        resp.text().await.unwrap(),
        "invalid_blocks: blocks is not an array"
    );
}

#[tokio::test]
async fn pagerduty_trigger_acknowledge_and_resolve_share_one_dedup_key() {
    let pd = PagerDutyTestDouble::start().await;
    let dir = tempfile::tempdir().expect("dir");
    let key_file = dir.path().join("routing-key");
    std::fs::write(&key_file, format!("{ROUTING_KEY}\n")).expect("write");
    let t = EscalationTarget {
        severity: medic_config::PagerDutySeverity::Critical,
        ..pagerduty(&pd.url, SecretValue::File(key_file))
    };
    let c = cfg(Some("https://medic.example.com"));
    let events = [
        Event::ApprovalRequested,
        Event::ApprovalAnswered {
            approved: true,
            by: "alice (approver): safe".into(),
        },
        Event::Escalated,
        Event::Resolved,
    ];
    for e in events {
        let r = one(&t, &Notice::new(e, record(2_000), &c)).await;
        assert!(r.delivered, "{r:?}");
        assert_eq!(r.status, "202 Accepted");
        assert!(!r.status.contains(ROUTING_KEY));
    }
    let got = pd.accepted();
    let actions: Vec<&str> = got
        .iter()
        .map(|v| v["event_action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["trigger", "acknowledge", "trigger", "resolve"]);
    assert!(
        got.iter().all(|v| v["dedup_key"] == "medic-inc-42"),
        "{got:#?}"
    );
    assert!(got.iter().all(|v| v["routing_key"] == ROUTING_KEY));
    assert_eq!(
        got[0]["payload"]["severity"], "warning",
        "an approval request is not an outage"
    );
    assert_eq!(got[2]["payload"]["severity"], "critical");
    assert_eq!(got[2]["payload"]["source"], "checkout");
    assert_eq!(got[2]["payload"]["class"], "dependency_failure");
    assert_eq!(
        got[2]["client_url"],
        "https://medic.example.com/api/v1/incidents/inc-42"
    );
    let summary = got[2]["payload"]["summary"].as_str().unwrap();
    assert!(
        summary.starts_with("[medic] inc-42 escalated (checkout): action restart_workload failed"),
        "{summary}"
    );
    assert_eq!(
        got[2]["payload"]["custom_details"]["hypotheses"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

#[tokio::test]
async fn pagerduty_refusal_is_one_attempt_and_a_recorded_failure_without_the_key() {
    let pd = PagerDutyTestDouble::start().await;
    let short = "0123456789abcdef0123456789abcde"; // 31 characters
    let t = pagerduty(&pd.url, SecretValue::Plain(short.into()));
    let r = one(&t, &Notice::new(Event::Escalated, record(10), &cfg(None))).await;
    assert!(!r.delivered);
    assert_eq!(r.attempts, 1, "a 4xx is not retried");
    assert!(
        r.status.starts_with("answered 400 Bad Request"),
        "{}",
        r.status
    );
    assert!(
        r.status.contains("routing_key"),
        "PagerDuty's reason is kept: {}",
        r.status
    );
    assert!(!r.status.contains(short), "{}", r.status);
    assert_eq!(pd.received().len(), 1);
    // A summary far over 1,024 characters is cut, so the real API would take it.
    let t = pagerduty(&pd.url, SecretValue::Plain(ROUTING_KEY.into()));
    let mut long = record(10);
    long.reason = "r".repeat(5_000);
    let r = one(&t, &Notice::new(Event::Escalated, long, &cfg(None))).await;
    assert!(r.delivered, "{r:?}");
    let sent = pd.accepted().pop().unwrap();
    assert_eq!(
        sent["payload"]["summary"].as_str().unwrap().chars().count(),
        1024
    );
}

#[tokio::test]
async fn a_signed_webhook_verifies_and_a_wrong_secret_is_refused() {
    let secret = "s3cret-s3cret-s3cret";
    let hook = SignedWebhookReceiver::start(secret).await;
    let mut t = target(NotifyKind::Webhook, &hook.url);
    t.secret = Some(SecretValue::Plain(secret.into()));
    let notice = Notice::new(Event::Escalated, record(10), &cfg(None));
    let r = one(&t, &notice).await;
    assert!(r.delivered, "{r:?}");
    let body = hook.accepted().pop().unwrap();
    assert_eq!(body["event"], "escalated");
    assert_eq!(body["incident"], "inc-42");
    assert_eq!(body["reason"], "action restart_workload failed: timed out");
    // Each delivery has its own id: the same notice sent twice is not a replay.
    assert!(one(&t, &notice).await.delivered);

    t.secret = Some(SecretValue::Plain("another-secret-value".into()));
    let r = one(&t, &notice).await;
    assert!(!r.delivered);
    assert_eq!(r.attempts, 1);
    assert_eq!(r.status, "answered 401 Unauthorized: bad signature");
    // Unsigned: refused too.
    t.secret = None;
    let r = one(&t, &notice).await;
    assert_eq!(r.status, "answered 401 Unauthorized: no X-Medic-Signature");
}

fn retrying(url: &str, attempts: u32, total: Duration) -> EscalationTarget {
    EscalationTarget {
        max_attempts: attempts,
        max_delivery_time: total,
        ..target(NotifyKind::Webhook, url)
    }
}

#[tokio::test]
async fn a_503_then_200_is_delivered_after_two_attempts_with_back_off() {
    let rx = scripted(vec![(503, None), (200, None)]).await;
    let r = one(
        &retrying(&rx.url, 5, Duration::from_secs(30)),
        &Notice::new(Event::Escalated, record(10), &cfg(None)),
    )
    .await;
    assert!(r.delivered, "{r:?}");
    assert_eq!((r.attempts, r.status.as_str()), (2, "200 OK"));
    let got = rx.received();
    assert_eq!(got.len(), 2);
    let gap = got[1].at - got[0].at;
    assert!(gap >= Duration::from_millis(450), "back-off of {gap:?}");
    // Retries repeat the very same body: a receiver may deduplicate by delivery id.
    assert_eq!(got[0].body, got[1].body);
}

#[tokio::test]
async fn a_400_is_tried_once_and_recorded_as_failed() {
    let rx = scripted(vec![(400, None), (200, None)]).await;
    let r = one(
        &retrying(&rx.url, 5, Duration::from_secs(30)),
        &Notice::new(Event::Escalated, record(10), &cfg(None)),
    )
    .await;
    assert!(!r.delivered);
    assert_eq!(r.attempts, 1);
    assert_eq!(r.status, "answered 400 Bad Request: answer 1");
    assert_eq!(rx.received().len(), 1);
}

#[tokio::test]
async fn a_429_retry_after_is_honoured() {
    let rx = scripted(vec![(429, Some(2)), (200, None)]).await;
    let r = one(
        &retrying(&rx.url, 5, Duration::from_secs(30)),
        &Notice::new(Event::Escalated, record(10), &cfg(None)),
    )
    .await;
    assert!(r.delivered, "{r:?}");
    assert_eq!(r.attempts, 2);
    let got = rx.received();
    let gap = got[1].at - got[0].at;
    assert!(
        gap >= Duration::from_millis(1_950),
        "Retry-After: 2 waited only {gap:?}"
    );
}

#[tokio::test]
async fn attempts_and_time_are_bounded() {
    let rx = scripted(vec![(503, None)]).await;
    let r = one(
        &retrying(&rx.url, 3, Duration::from_secs(30)),
        &Notice::new(Event::Escalated, record(10), &cfg(None)),
    )
    .await;
    assert!(!r.delivered);
    assert_eq!(r.attempts, 3);
    assert!(
        r.status.ends_with("gave up after 3 attempts"),
        "{}",
        r.status
    );
    // The third attempt would start 1.5 s after the first: past a 1 s budget.
    let rx = scripted(vec![(503, None)]).await;
    let start = std::time::Instant::now();
    let r = one(
        &retrying(&rx.url, 10, Duration::from_secs(1)),
        &Notice::new(Event::Escalated, record(10), &cfg(None)),
    )
    .await;
    assert_eq!(r.attempts, 2, "{r:?}");
    assert!(r.status.contains("budget"), "{}", r.status);
    assert!(start.elapsed() < Duration::from_secs(2));
    // A receiver asking for more than the budget is not waited for.
    let rx = scripted(vec![(429, Some(3600))]).await;
    let r = one(
        &retrying(&rx.url, 10, Duration::from_secs(30)),
        &Notice::new(Event::Escalated, record(10), &cfg(None)),
    )
    .await;
    assert_eq!(r.attempts, 1, "{r:?}");
}

#[tokio::test]
async fn connection_errors_are_retried_and_never_show_the_secret_url() {
    // A port nobody listens on: bind, learn the port, close.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let url = format!("http://{addr}{SLACK_PATH}");
    let t = EscalationTarget {
        max_attempts: 2,
        ..target(NotifyKind::Slack, &url)
    };
    let r = one(&t, &Notice::new(Event::Escalated, record(10), &cfg(None))).await;
    assert!(!r.delivered);
    assert_eq!(r.attempts, 2);
    assert!(r.status.contains("failed"), "{}", r.status);
    assert!(!r.status.contains("SECRET"), "{}", r.status);
    // An unreadable secret is a failure named by where it was looked for.
    let t = EscalationTarget {
        endpoint: Some(SecretValue::Env("MEDIC_TEST_NO_SUCH_VARIABLE".into())),
        ..t
    };
    let r = one(&t, &Notice::new(Event::Escalated, record(10), &cfg(None))).await;
    assert_eq!((r.attempts, r.delivered), (0, false));
    assert_eq!(
        r.status,
        "endpoint unavailable: environment variable `MEDIC_TEST_NO_SUCH_VARIABLE` is not set"
    );
}

#[tokio::test]
async fn what_a_receiver_echoes_is_scrubbed_of_secrets() {
    let rx = echoing(400).await;
    let t = pagerduty(&rx.url, SecretValue::Plain(ROUTING_KEY.into()));
    let r = one(&t, &Notice::new(Event::Escalated, record(10), &cfg(None))).await;
    assert!(!r.delivered);
    assert!(
        r.status
            .starts_with("answered 400 Bad Request: bad request to <redacted>"),
        "{}",
        r.status
    );
    assert!(!r.status.contains("SECRETpath"), "{}", r.status);
    assert!(
        r.status.contains("routing_key \"<redacted>\" refused"),
        "{}",
        r.status
    );
    assert!(!r.status.contains(ROUTING_KEY), "{}", r.status);
}

#[tokio::test]
async fn slack_follow_ups_are_short_and_valid() {
    let slack = SlackTestDouble::start().await;
    let t = target(NotifyKind::Slack, &slack.url);
    let c = cfg(None);
    let answered = Event::ApprovalAnswered {
        approved: true,
        by: "alice (approver): restart is safe".into(),
    };
    for e in [answered, Event::Resolved] {
        assert!(one(&t, &Notice::new(e, record(10), &c)).await.delivered);
    }
    let got = slack.accepted();
    assert_eq!(
        got[0]["blocks"][0]["text"]["text"],
        "inc-42 approved by alice (approver): restart is safe"
    );
    assert_eq!(
        got[1]["blocks"][0]["text"]["text"],
        "Resolved: inc-42 on checkout"
    );
    for m in &got {
        assert!(!m.to_string().contains("Top hypotheses"), "{m}");
    }
}
