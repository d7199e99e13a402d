//! schemathesis (PyPI, pinned in `tests/schemathesis/setup_venv.sh`, venv cached in
//! `$HOME/.cache/medic/schemathesis-venv`) against the OpenAPI document of a running
//! `medic run`: every operation with generated valid and invalid input, all of its checks
//! (no 5xx, status codes, content types and bodies as documented, invalid input refused,
//! auth not ignored), with an admin token, on a throwaway store holding incidents that wait
//! for approval. Skips, saying so, only when pip cannot reach the registry.

use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const ADMIN: &str = "medic-schemathesis-admin-51c2";
const INGEST: &str = "medic-schemathesis-ingest-0b7e";

/// schemathesis, or `None` (after saying why) when pip cannot reach the registry.
fn schemathesis() -> Option<PathBuf> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/schemathesis/setup_venv.sh");
    let out = std::process::Command::new("bash")
        .arg(script)
        .output()
        .expect("run setup_venv.sh");
    if out.status.code() == Some(3) {
        eprintln!(
            "SKIPPED: schemathesis is not installed and pip cannot reach the package registry: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        return None;
    }
    assert!(
        out.status.success(),
        "setup_venv.sh failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
}

fn sha256_hex(s: &str) -> String {
    Sha256::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The tail of medic's log, for a failure message.
fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// An alert whose hint names a bad deployment of `service`.
fn alert(service: &str) -> String {
    serde_json::json!({
        "version": "4", "status": "firing", "receiver": "medic", "groupKey": service,
        "alerts": [{
            "status": "firing",
            "labels": {"alertname": "ErrorRatio", "service": service, "severity": "critical"},
            "annotations": {"medic_cause": "bad_deployment", "summary": format!("{service} answers 5xx")},
            "startsAt": "2026-01-01T00:00:00Z",
            "fingerprint": format!("fp-{service}")
        }]
    })
    .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_of_a_running_medic_passes_schemathesis() {
    let Some(st) = schemathesis() else {
        return;
    };
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port");
    let config = format!(
        r#"agent: {{ tick: 1s, diagnosis_settle: 1s }}
store: {{ sqlite: "{store}" }}
server:
  enabled: true
  listen: "127.0.0.1:{port}"
  otlp_grpc_listen: "127.0.0.1:0"
  auth:
    tokens:
      - {{ name: ci-admin, role: admin, sha256: "{admin}" }}
      - {{ name: alertmanager, role: ingest, sha256: "{ingest}" }}
policies:
  - name: rollback-with-approval
    match: {{ cause: bad_deployment }}
    action: rollback_release
    confidence_threshold: 0.5
    mode: approve
    max_attempts: 1
"#,
        store = dir.join("medic.db").display(),
        admin = sha256_hex(ADMIN),
        ingest = sha256_hex(INGEST),
    );
    std::fs::write(dir.join("medic.yaml"), config).expect("medic.yaml");
    let log = dir.join("medic.log");
    let log_file = std::fs::File::create(&log).expect("log");
    // Killed (by its pid) when the test ends, however it ends.
    let _medic = tokio::process::Command::new(env!("CARGO_BIN_EXE_medic"))
        .args(["run", "--config"])
        .arg(dir.join("medic.yaml"))
        .env("MEDIC_LOG", "info")
        .stdout(log_file.try_clone().expect("log"))
        .stderr(log_file)
        .kill_on_drop(true)
        .spawn()
        .expect("start medic run");

    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    let up = Instant::now();
    loop {
        let r = http
            .get(format!("{base}/api/v1/ready"))
            .bearer_auth(ADMIN)
            .send()
            .await;
        if r.is_ok_and(|r| r.status() == 200) {
            break;
        }
        assert!(
            up.elapsed() < Duration::from_secs(60),
            "medic's server did not become ready:\n{}",
            log_tail(&log)
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // A store with something in it: incidents waiting for approval.
    for service in ["payment", "checkout", "search"] {
        let r = http
            .post(format!("{base}/api/v1/alerts/alertmanager"))
            .bearer_auth(INGEST)
            .header("content-type", "application/json")
            .body(alert(service))
            .send()
            .await
            .expect("alert");
        assert_eq!(r.status(), 200, "alert for {service}");
    }
    let wait = Instant::now();
    let ids: Vec<String> = loop {
        let v: serde_json::Value = http
            .get(format!("{base}/api/v1/incidents?state=awaiting_approval"))
            .bearer_auth(ADMIN)
            .send()
            .await
            .expect("incidents")
            .json()
            .await
            .expect("json");
        let ids: Vec<String> = v["incidents"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|i| i["id"].as_str())
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default();
        if ids.len() == 3 {
            break ids;
        }
        assert!(
            wait.elapsed() < Duration::from_secs(60),
            "three incidents awaiting approval expected, found {ids:?}:\n{}",
            log_tail(&log)
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    // Real ids for the operations on one incident, so they reach past the 404: one to
    // read, one to approve, one to reject (each answer is accepted once, then 409).
    let ops = ["", "/approve", "/reject"];
    // Invalid input must be refused with a 4xx the document lists; for a reason too long
    // for the body limit that is 413 (schemathesis expects 400-ish codes, 413 not among them).
    let checks = "[checks.negative_data_rejection]\nexpected-statuses = [\"400\", \"401\", \"403\", \"404\", \"405\", \"406\", \"409\", \"413\", \"415\", \"422\", \"428\", \"429\"]\n\n";
    let mut config = checks.to_string();
    for (op, id) in ops.iter().zip(&ids) {
        config.push_str(&format!(
            "[[operations]]\ninclude-path = \"/api/v1/incidents/{{id}}{op}\"\nparameters = {{ \"path.id\" = \"{id}\" }}\n\n"
        ));
    }
    std::fs::write(dir.join("schemathesis.toml"), config).expect("schemathesis.toml");
    // The document as served, tested from a file: from its URL schemathesis would leave out
    // the operation that serves it.
    let doc = http
        .get(format!("{base}/api/v1/openapi.json"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .expect("openapi.json")
        .text()
        .await
        .expect("document");
    let operations = serde_json::from_str::<serde_json::Value>(&doc).expect("JSON")["paths"]
        .as_object()
        .expect("paths")
        .values()
        .map(|ops| ops.as_object().map_or(0, |o| o.len()))
        .sum::<usize>();
    std::fs::write(dir.join("openapi.json"), &doc).expect("openapi.json");

    let started = Instant::now();
    let run = tokio::process::Command::new(&st)
        .args(["--no-color", "--config-file", "schemathesis.toml"])
        .args(["run", "openapi.json", "--url"])
        .arg(&base)
        .args(["--header", &format!("Authorization: Bearer {ADMIN}")])
        .args(["--checks", "all"])
        // Bounded: 100 cases per operation and phase keep the run well under two minutes.
        .args(["--max-examples", "100", "--workers", "2"])
        .args(["--request-timeout", "10"])
        .env("SCHEMATHESIS_TELEMETRY", "false")
        .current_dir(dir)
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(300), run)
        .await
        .expect("schemathesis finished within 5 minutes")
        .expect("run schemathesis");
    let stdout = String::from_utf8_lossy(&out.stdout);
    // Its reproducing curl lines can hold a 20 KiB body: cut them for the log.
    let shown: Vec<String> = stdout
        .lines()
        .map(|l| match l.char_indices().nth(400) {
            Some((i, _)) => format!("{}…", &l[..i]),
            None => l.to_string(),
        })
        .collect();
    eprintln!(
        "schemathesis took {:.1}s:\n{}\n{}",
        started.elapsed().as_secs_f64(),
        shown.join("\n"),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "schemathesis found failures (above); medic's log:\n{}",
        log_tail(&log)
    );
    // It really ran every operation (a run that tested nothing would also exit 0).
    let all = format!("{operations} selected / {operations} total");
    assert!(
        stdout.contains(&all) && stdout.contains(&format!("Tested: {operations}")),
        "schemathesis did not test all {operations} operations:\n{stdout}"
    );
}
