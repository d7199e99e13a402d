//! Authentication on every route: no token → 401 with `WWW-Authenticate`, a token of the
//! wrong role → 403 naming the role needed, a malformed header → 401; a refused request
//! delivers nothing, and each refusal is counted by reason.

mod common;

use common::{INGEST_TOKEN, VIEWER_TOKEN, start_server};
use std::time::Duration;

const ALERT: &str = r#"{"version":"4","status":"firing","receiver":"medic","groupKey":"k","alerts":[
 {"status":"firing","labels":{"alertname":"Down","service":"payment","api_key":"abc123"},
  "annotations":{"medic_cause":"bad_deployment","description":"login failed password=hunter2"},
  "generatorURL":"http://prom:9090/graph?token=s3cr3tvalue","startsAt":"2026-01-01T00:00:00Z","fingerprint":"f1"}]}"#;

fn plain() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

#[tokio::test]
async fn every_route_refuses_the_unauthenticated_and_the_wrong_role() {
    let mut s = start_server(100, |_| {}).await;
    let ingest_routes = [
        ("/ingest/logs", "application/x-ndjson", "{\"msg\":\"x\"}\n"),
        (
            "/ingest/logs/checkout",
            "application/x-ndjson",
            "{\"msg\":\"x\"}\n",
        ),
        ("/api/v1/alerts/alertmanager", "application/json", ALERT),
        ("/api/v1/write", "application/x-protobuf", ""),
        #[cfg(feature = "otlp")]
        ("/v1/logs", "application/json", "{}"),
        #[cfg(feature = "otlp")]
        ("/v1/metrics", "application/json", "{}"),
    ];
    for (path, ct, body) in ingest_routes {
        // No token.
        let r = plain()
            .post(s.url(path))
            .header("content-type", ct)
            .body(body)
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), 401, "{path}");
        let challenge = r.headers()["www-authenticate"].to_str().expect("ascii");
        assert!(challenge.starts_with("Bearer"), "{path}: {challenge}");
        assert!(
            r.text()
                .await
                .expect("body")
                .contains("Authorization: Bearer")
        );
        // A viewer may not push.
        let r = plain()
            .post(s.url(path))
            .bearer_auth(VIEWER_TOKEN)
            .header("content-type", ct)
            .body(body)
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), 403, "{path}");
        let text = r.text().await.expect("body");
        assert!(
            text.contains("token `grafana` has role `viewer`; this needs role `ingest`"),
            "{path}: {text}"
        );
        // Unknown and malformed tokens.
        for header in [
            "Bearer not-a-token",
            "Basic c2hpcHBlcjp4",
            "Bearer",
            "token",
        ] {
            let r = plain()
                .post(s.url(path))
                .header("authorization", header)
                .header("content-type", ct)
                .body(body)
                .send()
                .await
                .expect("send");
            assert_eq!(r.status(), 401, "{path} {header}");
        }
    }
    // Nothing refused reached the agent — the alert with its cause hint above included.
    assert!(s.collect(1, Duration::from_millis(300)).await.is_empty());

    // The ingest token pushes; it may not read /metrics, the viewer may.
    let r = common::ingest_client()
        .post(s.url("/api/v1/alerts/alertmanager"))
        .header("content-type", "application/json")
        .body(ALERT)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    let got = s.collect(1, Duration::from_secs(2)).await;
    assert_eq!(got.len(), 1);
    let medic_core::SignalPayload::Alert(a) = &got[0].payload else {
        panic!("{got:?}")
    };
    // Who sent it is recorded (a policy may trust that sender's cause hints), and what the
    // alert's author wrote is redacted like a log line.
    assert_eq!(a.sender.as_deref(), Some("shipper"));
    assert_eq!(got[0].service.as_deref(), Some("payment"));
    let all = format!("{a:?}");
    for secret in ["abc123", "hunter2", "s3cr3tvalue"] {
        assert!(!all.contains(secret), "{secret} in {all}");
    }
    assert_eq!(a.annotations["medic_cause"], "bad_deployment");
    let r = common::ingest_client()
        .get(s.url("/metrics"))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 403);
    assert_eq!(
        plain()
            .get(s.url("/metrics"))
            .send()
            .await
            .expect("send")
            .status(),
        401
    );
    let text = plain()
        .get(s.url("/metrics"))
        .bearer_auth(VIEWER_TOKEN)
        .send()
        .await
        .expect("send")
        .text()
        .await
        .expect("text");
    for reason in ["missing", "forbidden", "unknown_token", "malformed"] {
        assert!(
            text.contains(&format!("medic_auth_denied_total{{reason=\"{reason}\"}}")),
            "{reason}: {text}"
        );
    }
    assert!(!text.contains(INGEST_TOKEN) && !text.contains(VIEWER_TOKEN));
}

#[tokio::test]
async fn a_server_without_tokens_refuses_everything_and_an_open_one_stays_on_loopback() {
    let (tx, _rx) = tokio::sync::mpsc::channel(1);
    let (_stop, shutdown) = tokio::sync::watch::channel(false);
    // No tokens at all: refused at start, not silently open.
    let state = medic_server::ServerState::new(tx.clone(), Default::default());
    let e = medic_server::serve("127.0.0.1:0", state, shutdown.clone())
        .await
        .expect_err("no tokens");
    assert!(e.to_string().contains("server.auth.tokens"), "{e}");
    // Open on loopback: allowed (with a warning), and anyone is admin.
    let open = medic_config::AuthConfig {
        tokens: Vec::new(),
        unauthenticated: true,
    };
    let auth = std::sync::Arc::new(medic_server::auth::Auth::from_config(&open).expect("auth"));
    let state = medic_server::ServerState::new(tx, Default::default()).with_auth(auth);
    let addr = medic_server::serve("127.0.0.1:0", state, shutdown)
        .await
        .expect("open on loopback");
    let r = plain()
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
}
