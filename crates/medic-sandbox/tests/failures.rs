//! Containers that fail: CrashLoopBackOff, OOMKilled, liveness restarts, and pod specs the
//! sandbox cannot run (clear waiting reasons, never a crash of the kubelet).

mod common;

use std::time::Duration;

use common::*;
use k8s_openapi::api::core::v1::Pod;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crashloop_oom_liveness_and_bad_specs() {
    let sandbox = tokio::task::spawn_blocking(sandbox).await.unwrap();
    let client = sandbox.client().await.unwrap();
    let ns = "default";
    let pod = |name: &str, policy: &str, container: serde_json::Value| {
        json!({"metadata": {"name": name}, "spec": {"restartPolicy": policy,
            "terminationGracePeriodSeconds": 2, "containers": [container]}})
    };

    create::<Pod>(
        &client,
        ns,
        pod(
            "crasher",
            "Always",
            json!({"name": "c", "image": "busybox",
            "command": ["sh", "-c", "echo run; exit 1"]}),
        ),
    )
    .await;
    create::<Pod>(
        &client,
        ns,
        pod("hog", "Never", json!({"name": "c", "image": "python:3.12",
            "command": ["python3", "-c",
                "import time\nchunks = []\nwhile True:\n    chunks.append(b'x' * 8_000_000)\n    time.sleep(0.02)\n"],
            "resources": {"limits": {"memory": "64Mi"}}})),
    )
    .await;
    create::<Pod>(
        &client,
        ns,
        pod("unhealthy", "Always", json!({"name": "c", "image": "busybox",
            "command": ["sleep", "600"],
            // Nothing listens on this port: the liveness probe fails and the container restarts.
            "livenessProbe": {"tcpSocket": {"port": 9}, "periodSeconds": 1, "failureThreshold": 2}})),
    )
    .await;
    create::<Pod>(
        &client,
        ns,
        pod(
            "imageonly",
            "Always",
            json!({"name": "nginx", "image": "nginx:1.25"}),
        ),
    )
    .await;
    create::<Pod>(
        &client,
        ns,
        pod("noconfig", "Always", json!({"name": "c", "image": "busybox", "command": ["true"],
            "env": [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "absent", "key": "k"}}}]})),
    )
    .await;
    create::<Pod>(
        &client,
        ns,
        pod(
            "https-probe",
            "Always",
            json!({"name": "c", "image": "busybox", "command": ["sleep", "600"],
            "readinessProbe": {"httpGet": {"port": 8443, "scheme": "HTTPS"}}}),
        ),
    )
    .await;
    let huge: Vec<serde_json::Value> = (0..150)
        .map(|i| json!({"name": format!("V{i}"), "value": "y".repeat(8_000)}))
        .collect();
    create::<Pod>(
        &client,
        ns,
        pod(
            "hugeenv",
            "Always",
            json!({"name": "c", "image": "busybox", "command": ["true"], "env": huge}),
        ),
    )
    .await;
    create::<Pod>(
        &client,
        ns,
        pod(
            "nobinary",
            "Never",
            json!({"name": "c", "image": "busybox", "command": ["/no/such/binary"]}),
        ),
    )
    .await;

    // CrashLoopBackOff: restarts grow, the last run's exit code is kept.
    let mut saw_backoff = false;
    let (restarts, last_code) = wait_pod(&client, ns, "crasher", Duration::from_secs(40), |p| {
        let cs = container_status(p, "c")?;
        if waiting_reason(cs) == Some("CrashLoopBackOff") {
            saw_backoff = true;
        }
        let code = cs.last_state.as_ref()?.terminated.as_ref()?.exit_code;
        (saw_backoff && cs.restart_count >= 3).then_some((cs.restart_count, code))
    })
    .await;
    assert!(restarts >= 3);
    assert_eq!(last_code, 1);
    let p = wait_pod(&client, ns, "crasher", Duration::from_secs(5), |p| {
        Some(p.clone())
    })
    .await;
    let runs = log_messages(&sandbox, ns, &p, "c");
    assert!(runs.lines().filter(|l| *l == "run").count() >= 3, "{runs}");
    assert_eq!(p.status.unwrap().phase.as_deref(), Some("Running"));

    // Over its memory limit: OOMKilled, 137, and (restartPolicy Never) the pod failed.
    let (reason, code, phase) = wait_pod(&client, ns, "hog", Duration::from_secs(40), |p| {
        let t = container_status(p, "c")?
            .state
            .as_ref()?
            .terminated
            .clone()?;
        Some((t.reason?, t.exit_code, p.status.as_ref()?.phase.clone()?))
    })
    .await;
    assert_eq!(
        (reason.as_str(), code, phase.as_str()),
        ("OOMKilled", 137, "Failed")
    );

    // Liveness failures kill and restart the container.
    let last = wait_pod(&client, ns, "unhealthy", Duration::from_secs(40), |p| {
        let cs = container_status(p, "c")?;
        (cs.restart_count >= 1).then(|| cs.last_state.clone())?
    })
    .await;
    let t = last.terminated.unwrap();
    assert_eq!(t.reason.as_deref(), Some("Error"));
    assert!(
        t.message
            .unwrap_or_default()
            .contains("Liveness probe failed")
    );
    assert_eq!(t.exit_code, 143, "SIGTERM ends sleep");

    // What the sandbox cannot run says so.
    let expect = [
        (
            "imageonly",
            "nginx",
            "CreateContainerError",
            "runs only commands",
        ),
        ("noconfig", "c", "CreateContainerConfigError", "absent"),
        ("https-probe", "c", "CreateContainerConfigError", "HTTPS"),
        ("hugeenv", "c", "CreateContainerConfigError", "at most"),
    ];
    for (pod_name, container, reason, needle) in expect {
        let msg = wait_pod(&client, ns, pod_name, Duration::from_secs(20), |p| {
            let w = container_status(p, container)?
                .state
                .as_ref()?
                .waiting
                .clone()?;
            (w.reason.as_deref() == Some(reason)).then(|| w.message.unwrap_or_default())
        })
        .await;
        assert!(msg.contains(needle), "{pod_name}: {msg}");
    }
    let t = wait_pod(&client, ns, "nobinary", Duration::from_secs(20), |p| {
        container_status(p, "c")?.state.as_ref()?.terminated.clone()
    })
    .await;
    assert_eq!(
        (t.reason.as_deref(), t.exit_code),
        (Some("StartError"), 128)
    );
    assert!(t.message.unwrap().contains("/no/such/binary"));

    // Events as a kubelet records them, repeats counted.
    let events = kube::Api::<k8s_openapi::api::core::v1::Event>::namespaced(client.clone(), ns)
        .list(&Default::default())
        .await
        .unwrap()
        .items;
    let has = |pod: &str, reason: &str| {
        events.iter().any(|e| {
            e.involved_object.name.as_deref() == Some(pod) && e.reason.as_deref() == Some(reason)
        })
    };
    for (pod, reason) in [
        ("crasher", "Started"),
        ("crasher", "BackOff"),
        ("unhealthy", "Unhealthy"),
        ("unhealthy", "Killing"),
        ("noconfig", "Failed"),
        ("hog", "OOMKilling"),
    ] {
        assert!(has(pod, reason), "no {reason} event for {pod}");
    }
    assert!(
        events
            .iter()
            .any(|e| e.reason.as_deref() == Some("Unhealthy") && e.count.unwrap_or(0) > 1),
        "repeated probe failures are counted"
    );

    // The kubelet survived all of it.
    assert!(
        !sandbox.process_log("medic-kubelet").contains("panicked"),
        "{}",
        sandbox.process_log("medic-kubelet")
    );
}
