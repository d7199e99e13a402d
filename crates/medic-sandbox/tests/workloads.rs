//! A Deployment behind a Service on the sandbox node: readiness, ClusterIP traffic to both
//! replicas, the environment a kubelet builds, volumes and CRI logs.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::*;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret, Service};
use kube::Api;
use kube::api::ListParams;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployment_service_env_and_logs() {
    let sandbox = tokio::task::spawn_blocking(sandbox).await.unwrap();
    let client = sandbox.client().await.unwrap();
    let ns = "default";

    create::<ConfigMap>(
        &client,
        ns,
        json!({"metadata": {"name": "app-config"}, "data": {"MODE": "fast", "greeting.txt": "hello from a volume"}}),
    )
    .await;
    create::<Secret>(
        &client,
        ns,
        json!({"metadata": {"name": "app-secret"}, "stringData": {"password": "hunter2"}}),
    )
    .await;
    let svc: Service = create(
        &client,
        ns,
        json!({"metadata": {"name": "web"}, "spec": {"selector": {"app": "web"},
            "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}}),
    )
    .await;
    let cluster_ip = svc.spec.unwrap().cluster_ip.unwrap();
    let svc_prefix = sandbox
        .service_cidr()
        .trim_end_matches("0.0/16")
        .to_string();
    assert!(
        cluster_ip.starts_with(&svc_prefix),
        "{cluster_ip} in {}",
        sandbox.service_cidr()
    );
    // A Service without backends: connections are closed at once.
    let empty: Service = create(
        &client,
        ns,
        json!({"metadata": {"name": "nobody"}, "spec": {"selector": {"app": "nobody"},
            "ports": [{"port": 81}]}}),
    )
    .await;
    let empty_ip = empty.spec.unwrap().cluster_ip.unwrap();

    create::<Deployment>(
        &client,
        ns,
        json!({
            "metadata": {"name": "web"},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{
                        "name": "web",
                        "image": "python:3.12",
                        // The working directory is per pod: `who` names the replica.
                        "command": ["sh", "-c", "echo \"$POD_NAME\" > who && exec python3 -m http.server 8080 --bind \"$1\"", "sh"],
                        "args": ["$(POD_IP)"],
                        "env": [
                            {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}
                        ],
                        "ports": [{"name": "http", "containerPort": 8080}],
                        "readinessProbe": {"httpGet": {"path": "/who", "port": "http"}, "periodSeconds": 1}
                    }]}
                }
            }
        }),
    )
    .await;

    // Available: both replicas ready through their readiness probes.
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
    let started = Instant::now();
    loop {
        let d = deployments.get("web").await.unwrap();
        let st = d.status.unwrap_or_default();
        let available = st
            .conditions
            .iter()
            .flatten()
            .any(|c| c.type_ == "Available" && c.status == "True");
        if available && st.available_replicas == Some(2) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "deployment not available: {st:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    println!("deployment available after {:?}", started.elapsed());

    let pods: Vec<Pod> = Api::<Pod>::namespaced(client.clone(), ns)
        .list(&ListParams::default().labels("app=web"))
        .await
        .unwrap()
        .items;
    assert_eq!(pods.len(), 2);
    let mut ips = BTreeSet::new();
    for p in &pods {
        let st = p.status.as_ref().unwrap();
        let ip = st.pod_ip.clone().unwrap();
        let pod_prefix = sandbox.pod_cidr().trim_end_matches("0.0/16");
        assert!(ip.starts_with(pod_prefix), "{ip} in {}", sandbox.pod_cidr());
        assert_eq!(st.host_ip.as_deref(), Some("127.0.0.1"));
        assert_eq!(st.phase.as_deref(), Some("Running"));
        let conds: BTreeSet<_> = st
            .conditions
            .iter()
            .flatten()
            .filter(|c| c.status == "True")
            .map(|c| c.type_.as_str())
            .collect();
        assert!(
            ["PodScheduled", "Initialized", "ContainersReady", "Ready"]
                .iter()
                .all(|c| conds.contains(c)),
            "{conds:?}"
        );
        let cs = container_status(p, "web").unwrap();
        assert!(cs.ready && cs.started == Some(true));
        assert_eq!(cs.image, "python:3.12");
        ips.insert(ip);
    }
    assert_eq!(ips.len(), 2, "pod IPs are unique");

    // Through the ClusterIP (real TCP on loopback), round-robin reaches both replicas.
    let names: BTreeSet<String> = pods
        .iter()
        .map(|p| p.metadata.name.clone().unwrap())
        .collect();
    // The proxy follows the EndpointSlice as kube-proxy does, a moment after the pods are
    // ready: until then the ClusterIP may refuse, or reach only the first ready replica.
    let mut seen = BTreeSet::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while seen != names {
        match http_get(&format!("{cluster_ip}:80"), "/who").await {
            Ok(body) => {
                seen.insert(body.trim().to_string());
            }
            Err(e) => assert!(
                tokio::time::Instant::now() < deadline,
                "ClusterIP never answered: {e}"
            ),
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "round-robin reached {seen:?} of {names:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // A Service without ready backends refuses connections, as kube-proxy's REJECT rule does;
    // so does one whose backends all go away.
    refused_within(&format!("{empty_ip}:81"), Duration::from_secs(5)).await;
    Api::<Deployment>::namespaced(client.clone(), ns)
        .patch(
            "web",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(json!({"spec": {"replicas": 0}})),
        )
        .await
        .unwrap();
    refused_within(&format!("{cluster_ip}:80"), Duration::from_secs(30)).await;

    // The environment as a kubelet builds it, and a ConfigMap volume.
    create::<Pod>(
        &client,
        ns,
        json!({
            "metadata": {"name": "envcheck", "labels": {"tier": "test"}},
            "spec": {
                "restartPolicy": "Never",
                "volumes": [{"name": "cfg", "configMap": {"name": "app-config", "items": [{"key": "greeting.txt", "path": "greeting"}]}}],
                "containers": [{
                    "name": "main",
                    "image": "busybox",
                    "command": ["sh", "-c", "env | sort; echo ARG=$1; echo VOLUME=$(cat \"$MEDIC_VOLUME_CFG/greeting\")", "sh", "$(MODE_COPY)-$(CFG_MODE)"],
                    "volumeMounts": [{"name": "cfg", "mountPath": "/etc/cfg"}],
                    "envFrom": [{"configMapRef": {"name": "app-config"}, "prefix": "CFG_"}],
                    "env": [
                        {"name": "MODE_COPY", "valueFrom": {"configMapKeyRef": {"name": "app-config", "key": "MODE"}}},
                        {"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "app-secret", "key": "password"}}},
                        {"name": "MISSING", "valueFrom": {"secretKeyRef": {"name": "nope", "key": "x", "optional": true}}},
                        {"name": "MY_NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                        {"name": "MY_NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
                        {"name": "MY_HOST_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.hostIP"}}},
                        {"name": "MY_TIER", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['tier']"}}},
                        {"name": "COMPOSED", "value": "$(MY_NS)/$(MY_NODE)"}
                    ]
                }]
            }
        }),
    )
    .await;
    let pod = wait_pod(&client, ns, "envcheck", Duration::from_secs(30), |p| {
        (p.status.as_ref()?.phase.as_deref() == Some("Succeeded")).then(|| p.clone())
    })
    .await;
    let cs = container_status(&pod, "main").unwrap();
    let term = cs.state.as_ref().unwrap().terminated.as_ref().unwrap();
    assert_eq!(
        (term.exit_code, term.reason.as_deref()),
        (0, Some("Completed"))
    );
    let out = log_messages(&sandbox, ns, &pod, "main");
    for want in [
        "CFG_MODE=fast",
        "MODE_COPY=fast",
        "PASSWORD=hunter2",
        "MY_NS=default",
        "MY_NODE=sandbox-node",
        "MY_HOST_IP=127.0.0.1",
        "MY_TIER=test",
        "COMPOSED=default/sandbox-node",
        &format!("WEB_SERVICE_HOST={cluster_ip}"),
        "WEB_SERVICE_PORT=80",
        "WEB_SERVICE_PORT_HTTP=80",
        &format!("WEB_PORT=tcp://{cluster_ip}:80"),
        &format!("KUBERNETES_SERVICE_HOST={svc_prefix}0.1"),
        "ARG=fast-fast",
        "VOLUME=hello from a volume",
    ] {
        assert!(
            out.lines().any(|l| l == want),
            "missing {want:?} in:\n{out}"
        );
    }
    assert!(
        !out.contains("MISSING="),
        "optional missing secret is skipped"
    );

    // Init containers run first, in order, and share emptyDir volumes with the app.
    create::<Pod>(
        &client,
        ns,
        json!({
            "metadata": {"name": "initcheck"},
            "spec": {
                "restartPolicy": "Never",
                "volumes": [{"name": "work", "emptyDir": {}}],
                "initContainers": [
                    {"name": "one", "image": "busybox", "command": ["sh", "-c", "echo one >> \"$MEDIC_VOLUME_WORK/order\""],
                     "volumeMounts": [{"name": "work", "mountPath": "/work"}]},
                    {"name": "two", "image": "busybox", "command": ["sh", "-c", "echo two >> \"$MEDIC_VOLUME_WORK/order\""],
                     "volumeMounts": [{"name": "work", "mountPath": "/work"}]}
                ],
                "containers": [{"name": "main", "image": "busybox", "command": ["sh", "-c", "cat \"$MEDIC_VOLUME_WORK/order\""],
                    "volumeMounts": [{"name": "work", "mountPath": "/work"}]}]
            }
        }),
    )
    .await;
    let init_pod = wait_pod(&client, ns, "initcheck", Duration::from_secs(30), |p| {
        (p.status.as_ref()?.phase.as_deref() == Some("Succeeded")).then(|| p.clone())
    })
    .await;
    let st = init_pod.status.as_ref().unwrap();
    let inits = st.init_container_statuses.as_ref().unwrap();
    assert!(inits.iter().all(|s| {
        s.state
            .as_ref()
            .unwrap()
            .terminated
            .as_ref()
            .unwrap()
            .exit_code
            == 0
    }));
    assert!(
        st.conditions
            .iter()
            .flatten()
            .any(|c| c.type_ == "Initialized" && c.status == "True")
    );
    assert_eq!(log_messages(&sandbox, ns, &init_pod, "main"), "one\ntwo\n");

    // A startup probe holds `started` (and readiness) back until it passes.
    create::<Pod>(
        &client,
        ns,
        json!({"metadata": {"name": "slowstart"}, "spec": {"containers": [{
            "name": "c", "image": "busybox",
            "command": ["sh", "-c", "sleep 2; touch started; exec sleep 600"],
            "startupProbe": {"exec": {"command": ["test", "-f", "started"]}, "periodSeconds": 1, "failureThreshold": 30}
        }]}}),
    )
    .await;
    wait_pod(&client, ns, "slowstart", Duration::from_secs(20), |p| {
        let cs = container_status(p, "c")?;
        cs.state.as_ref()?.running.as_ref()?;
        (cs.started == Some(false) && !cs.ready).then_some(())
    })
    .await;
    wait_pod(&client, ns, "slowstart", Duration::from_secs(20), |p| {
        let cs = container_status(p, "c")?;
        (cs.started == Some(true) && cs.ready && cs.restart_count == 0).then_some(())
    })
    .await;

    // CRI log format: `<RFC3339Nano> <stream> <F|P> <message>` in the /var/log/pods layout.
    let uid = pod.metadata.uid.clone().unwrap();
    let file = sandbox
        .pod_log_dir()
        .join(format!("default_envcheck_{uid}/main/0.log"));
    let text = std::fs::read_to_string(&file).unwrap();
    let first = text.lines().next().unwrap();
    let fields: Vec<&str> = first.splitn(4, ' ').collect();
    assert_eq!(
        fields[0].len(),
        "2026-12-03T09:00:00.123456789Z".len(),
        "{first}"
    );
    assert!(fields[0].ends_with('Z'));
    assert_eq!((fields[1], fields[2]), ("stdout", "F"));
}

/// Waits until connecting to `addr` is refused (not accepted and closed).
async fn refused_within(addr: &str, within: Duration) {
    let t = Instant::now();
    loop {
        match tokio::net::TcpStream::connect(addr).await {
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => return,
            other => assert!(
                t.elapsed() < within,
                "{addr} still accepts connections: {other:?}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
