//! The harness without a kubelet: a control plane only, pods stay Pending, and the sandbox's
//! own ClusterIP range is in use.

mod common;

use std::time::Duration;

use common::create;
use k8s_openapi::api::core::v1::{Node, Pod, Service};
use kube::Api;
use medic_sandbox::harness::Sandbox;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_plane_only() {
    let sandbox = tokio::task::spawn_blocking(|| Sandbox::builder().without_kubelet().start())
        .await
        .unwrap()
        .expect("sandbox starts");
    assert!(sandbox.kubeconfig_path().is_file());
    assert_eq!(sandbox.node_name(), None);
    let client = sandbox.client().await.unwrap();
    let nodes = Api::<Node>::all(client.clone())
        .list(&Default::default())
        .await
        .unwrap();
    assert!(nodes.items.is_empty());

    let svc: Service = create(
        &client,
        "default",
        json!({"metadata": {"name": "s"}, "spec": {"ports": [{"port": 80}]}}),
    )
    .await;
    let ip = svc.spec.unwrap().cluster_ip.unwrap();
    let prefix = sandbox.service_cidr().trim_end_matches("0.0/16");
    assert!(ip.starts_with(prefix), "{ip} in {}", sandbox.service_cidr());

    create::<Pod>(
        &client,
        "default",
        json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "x", "command": ["true"]}]}}),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let p = Api::<Pod>::namespaced(client, "default")
        .get("p")
        .await
        .unwrap();
    assert_eq!(p.status.unwrap().phase.as_deref(), Some("Pending"));

    let dir = sandbox.dir().to_path_buf();
    drop(sandbox);
    assert!(!dir.exists(), "the temporary directory is removed");
}
