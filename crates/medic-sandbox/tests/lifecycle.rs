//! Pod deletion (SIGTERM, SIGKILL after the grace period, deletion confirmed) and `down`
//! leaving no process behind.

mod common;

use std::time::{Duration, Instant};

use common::*;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::Api;
use kube::api::DeleteParams;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletion_grace_and_down_leave_nothing() {
    let sandbox = tokio::task::spawn_blocking(sandbox).await.unwrap();
    let client = sandbox.client().await.unwrap();
    let ns = "default";
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);

    // The node: Ready, addresses, capacity, and a Lease in kube-node-lease.
    let node = Api::<Node>::all(client.clone())
        .get("sandbox-node")
        .await
        .unwrap();
    let st = node.status.unwrap();
    assert!(
        st.conditions
            .unwrap()
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True")
    );
    assert!(
        st.addresses
            .unwrap()
            .iter()
            .any(|a| a.type_ == "InternalIP" && a.address == "127.0.0.1")
    );
    assert!(st.allocatable.unwrap().contains_key("pods"));
    let lease = Api::<Lease>::namespaced(client.clone(), "kube-node-lease")
        .get("sandbox-node")
        .await
        .unwrap();
    assert!(lease.spec.unwrap().renew_time.is_some());

    // One container stops on SIGTERM, one ignores it (and has a child in its group).
    create::<Pod>(
        &client,
        ns,
        json!({"metadata": {"name": "polite"}, "spec": {"terminationGracePeriodSeconds": 10,
            "containers": [{"name": "c", "image": "busybox",
                "command": ["sh", "-c", "trap 'echo got TERM; exit 0' TERM; while true; do sleep 0.1; done"]}]}}),
    )
    .await;
    create::<Pod>(
        &client,
        ns,
        json!({"metadata": {"name": "stubborn"}, "spec": {"terminationGracePeriodSeconds": 2,
            "containers": [{"name": "c", "image": "busybox",
                "command": ["sh", "-c", "trap 'echo ignoring TERM' TERM; sleep 600 & while true; do sleep 0.1; done"]}]}}),
    )
    .await;
    let mut pids = Vec::new();
    for name in ["polite", "stubborn"] {
        let pid = wait_pod(&client, ns, name, Duration::from_secs(30), |p| {
            let cs = container_status(p, "c")?;
            cs.state.as_ref()?.running.as_ref()?;
            container_pid(cs)
        })
        .await;
        assert!(alive(pid));
        pids.push(pid);
    }
    let polite = pods.get("polite").await.unwrap();
    let stubborn = pods.get("stubborn").await.unwrap();
    // Let the shells install their traps.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let t = Instant::now();
    pods.delete("polite", &DeleteParams::default())
        .await
        .unwrap();
    pods.delete("stubborn", &DeleteParams::default())
        .await
        .unwrap();
    let mut gone = [None, None];
    while gone.iter().any(Option::is_none) {
        for (i, name) in ["polite", "stubborn"].into_iter().enumerate() {
            if gone[i].is_none() && pods.get_opt(name).await.unwrap().is_none() {
                gone[i] = Some(t.elapsed());
            }
        }
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "pods not deleted: {gone:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let [polite_gone, stubborn_gone] = gone.map(Option::unwrap);
    println!("polite gone after {polite_gone:?}, stubborn after {stubborn_gone:?}");
    assert!(
        polite_gone < Duration::from_secs(2),
        "SIGTERM ended it: {polite_gone:?}"
    );
    assert!(
        stubborn_gone >= Duration::from_secs(2),
        "grace honoured: {stubborn_gone:?}"
    );
    assert!(
        stubborn_gone < Duration::from_secs(6),
        "SIGKILL after grace: {stubborn_gone:?}"
    );
    for pid in &pids {
        assert!(!alive(*pid), "pid {pid} survived its pod");
    }
    assert!(log_messages(&sandbox, ns, &polite, "c").contains("got TERM"));
    assert!(log_messages(&sandbox, ns, &stubborn, "c").contains("ignoring TERM"));

    // `down` stops the kubelet, which stops its containers; nothing is left behind.
    create::<Pod>(
        &client,
        ns,
        json!({"metadata": {"name": "sleeper"}, "spec": {
            "containers": [{"name": "c", "image": "busybox", "command": ["sh", "-c", "sleep 600 & sleep 600"]}]}}),
    )
    .await;
    let pid = wait_pod(&client, ns, "sleeper", Duration::from_secs(30), |p| {
        let cs = container_status(p, "c")?;
        cs.state.as_ref()?.running.as_ref()?;
        container_pid(cs)
    })
    .await;
    let sleeper_ip = pods
        .get("sleeper")
        .await
        .unwrap()
        .status
        .unwrap()
        .pod_ip
        .unwrap();

    // SIGTERM to the kubelet alone: it stops its containers before it exits.
    let kubelet_pid: i32 = std::fs::read_to_string(sandbox.dir().join("pids/medic-kubelet.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(kubelet_pid),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let t = Instant::now();
    while alive(kubelet_pid) {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "kubelet did not exit on SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!alive(pid), "the kubelet left its container running");

    // A new kubelet takes the pod up again (same IP, a restart), then dies by SIGKILL:
    // `down` must still find and kill the orphaned container processes.
    let d = sandbox.dir();
    let mut kubelet = std::process::Command::new(env!("CARGO_BIN_EXE_medic-kubelet"))
        .arg("--kubeconfig")
        .arg(d.join("kubeconfig"))
        .arg("--node-name")
        .arg("sandbox-node")
        .arg("--pod-log-dir")
        .arg(d.join("pods-logs"))
        .arg("--state-dir")
        .arg(d.join("kubelet"))
        .arg(format!("--pod-cidr={}", sandbox.pod_cidr()))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let (pid, restarts) = wait_pod(&client, ns, "sleeper", Duration::from_secs(30), |p| {
        let cs = container_status(p, "c")?;
        cs.state.as_ref()?.running.as_ref()?;
        container_pid(cs)
            .filter(|new| *new != pid)
            .map(|new| (new, cs.restart_count))
    })
    .await;
    assert_eq!(restarts, 1);
    let again = pods
        .get("sleeper")
        .await
        .unwrap()
        .status
        .unwrap()
        .pod_ip
        .unwrap();
    assert_eq!(
        again, sleeper_ip,
        "the pod keeps its IP across kubelet restarts"
    );
    kubelet.kill().unwrap();
    kubelet.wait().unwrap();
    assert!(alive(pid), "SIGKILL leaves the container orphaned");

    let control_plane: Vec<i32> = std::fs::read_dir(sandbox.dir().join("pids"))
        .unwrap()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "pid"))
        .map(|e| {
            std::fs::read_to_string(e.path())
                .unwrap()
                .trim()
                .parse()
                .unwrap()
        })
        .collect();
    assert_eq!(
        control_plane.len(),
        5,
        "etcd, apiserver, controller-manager, scheduler, kubelet"
    );
    let state_dir = std::fs::canonicalize(sandbox.dir().join("kubelet")).unwrap();
    let down = std::process::Command::new("bash")
        .arg(medic_sandbox::harness::script_path())
        .arg("down")
        .arg(sandbox.dir())
        .output()
        .unwrap();
    assert!(down.status.success(), "{down:?}");
    for p in control_plane.iter().chain([&pid]) {
        assert!(!alive(*p), "pid {p} survived down");
    }
    assert_eq!(
        medic_sandbox::procs::kill_marked(&state_dir),
        0,
        "no container process left"
    );
}
