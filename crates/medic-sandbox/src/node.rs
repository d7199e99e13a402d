//! The Node object: registration with capacity and addresses, then a heartbeat that keeps its
//! conditions and its Lease (coordination.k8s.io/v1 in kube-node-lease) fresh.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{Node, NodeAddress, NodeCondition, NodeStatus, NodeSystemInfo};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, OwnerReference, Time};
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};

/// What the node offers the scheduler.
#[derive(Debug, Clone)]
pub struct Capacity {
    pub cpu: u32,
    pub memory_bytes: u64,
    pub pods: u32,
}

impl Capacity {
    /// This machine's CPUs and memory (/proc/meminfo), 110 pods as a kubelet defaults to.
    pub fn detect() -> Self {
        let cpu = std::thread::available_parallelism().map_or(1, |n| n.get() as u32);
        let memory_bytes = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| {
                m.lines()
                    .find_map(|l| l.strip_prefix("MemTotal:"))
                    .and_then(|v| v.split_whitespace().next())
                    .and_then(|kb| kb.parse::<u64>().ok())
            })
            .map_or(8 << 30, |kb| kb * 1024);
        Self {
            cpu,
            memory_bytes,
            pods: 110,
        }
    }

    fn quantities(&self) -> BTreeMap<String, Quantity> {
        [
            ("cpu".to_string(), Quantity(self.cpu.to_string())),
            (
                "memory".to_string(),
                Quantity(format!("{}Ki", self.memory_bytes / 1024)),
            ),
            ("pods".to_string(), Quantity(self.pods.to_string())),
            ("ephemeral-storage".to_string(), Quantity("10Gi".into())),
        ]
        .into()
    }
}

fn condition(type_: &str, ok: bool, reason: &str, message: &str, since: &Time) -> NodeCondition {
    NodeCondition {
        type_: type_.into(),
        status: if ok { "True" } else { "False" }.into(),
        reason: Some(reason.into()),
        message: Some(message.into()),
        last_heartbeat_time: Some(Time(Timestamp::now())),
        last_transition_time: Some(since.clone()),
    }
}

fn read_trimmed(path: &str) -> String {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// The node's status; `ready` false marks it NotReady (when the kubelet stops).
pub fn status(name: &str, cap: &Capacity, ready: bool, since: &Time) -> NodeStatus {
    let conditions = vec![
        condition(
            "MemoryPressure",
            false,
            "KubeletHasSufficientMemory",
            "kubelet has sufficient memory available",
            since,
        ),
        condition(
            "DiskPressure",
            false,
            "KubeletHasNoDiskPressure",
            "kubelet has no disk pressure",
            since,
        ),
        condition(
            "PIDPressure",
            false,
            "KubeletHasSufficientPID",
            "kubelet has sufficient PID available",
            since,
        ),
        if ready {
            condition(
                "Ready",
                true,
                "KubeletReady",
                "medic process kubelet is posting ready status",
                since,
            )
        } else {
            condition(
                "Ready",
                false,
                "KubeletNotReady",
                "medic process kubelet stopped",
                since,
            )
        },
    ];
    let os_image = read_trimmed("/etc/os-release")
        .lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .map(|v| v.trim_matches('"').to_string())
        .unwrap_or_else(|| "Linux".into());
    NodeStatus {
        capacity: Some(cap.quantities()),
        allocatable: Some(cap.quantities()),
        conditions: Some(conditions),
        addresses: Some(vec![
            NodeAddress {
                type_: "InternalIP".into(),
                address: "127.0.0.1".into(),
            },
            NodeAddress {
                type_: "Hostname".into(),
                address: name.into(),
            },
        ]),
        node_info: Some(NodeSystemInfo {
            architecture: std::env::consts::ARCH
                .replace("x86_64", "amd64")
                .replace("aarch64", "arm64"),
            boot_id: read_trimmed("/proc/sys/kernel/random/boot_id"),
            machine_id: read_trimmed("/etc/machine-id"),
            system_uuid: read_trimmed("/etc/machine-id"),
            kernel_version: read_trimmed("/proc/sys/kernel/osrelease"),
            os_image,
            operating_system: "linux".into(),
            container_runtime_version: format!("medic-process://{}", env!("CARGO_PKG_VERSION")),
            kubelet_version: "v1.20.2-medic".into(),
            kube_proxy_version: "v1.20.2-medic".into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Creates the Node if absent (an existing one is kept: its labels may matter to tests) and
/// writes a Ready status.
pub async fn register(client: &kube::Client, name: &str, cap: &Capacity) -> crate::Result<Node> {
    let nodes: Api<Node> = Api::all(client.clone());
    match nodes.get_opt(name).await? {
        Some(_) => {}
        None => {
            let labels: BTreeMap<String, String> = [
                ("kubernetes.io/hostname", name),
                ("kubernetes.io/os", "linux"),
                ("kubernetes.io/arch", "amd64"),
                ("medic.dev/sandbox", "true"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
            let node = Node {
                metadata: ObjectMeta {
                    name: Some(name.into()),
                    labels: Some(labels),
                    ..Default::default()
                },
                ..Default::default()
            };
            match nodes.create(&PostParams::default(), &node).await {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 409 => {}
                Err(e) => return Err(e.into()),
            };
        }
    }
    write_status(client, name, cap, true, &Time(Timestamp::now())).await?;
    clear_not_ready_taints(client, name).await
}

/// The apiserver taints a new node `node.kubernetes.io/not-ready:NoSchedule`; the node
/// lifecycle controller that would lift it once the node is Ready does not run in the sandbox
/// (no cloud, one node), so the kubelet lifts it itself.
pub async fn clear_not_ready_taints(client: &kube::Client, name: &str) -> crate::Result<Node> {
    let nodes: Api<Node> = Api::all(client.clone());
    let node = nodes.get(name).await?;
    let taints = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.clone())
        .unwrap_or_default();
    let keep: Vec<_> = taints
        .iter()
        .filter(|t| {
            t.key != "node.kubernetes.io/not-ready" && t.key != "node.kubernetes.io/unreachable"
        })
        .cloned()
        .collect();
    if keep.len() == taints.len() {
        return Ok(node);
    }
    let patch = serde_json::json!({ "spec": { "taints": keep } });
    Ok(nodes
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await?)
}

pub async fn write_status(
    client: &kube::Client,
    name: &str,
    cap: &Capacity,
    ready: bool,
    since: &Time,
) -> crate::Result<()> {
    let nodes: Api<Node> = Api::all(client.clone());
    let patch = serde_json::json!({ "status": status(name, cap, ready, since) });
    nodes
        .patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    Ok(())
}

/// Creates or renews the node's Lease.
pub async fn renew_lease(client: &kube::Client, node: &Node) -> crate::Result<()> {
    let name = node.metadata.name.clone().unwrap_or_default();
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
    let now = MicroTime(Timestamp::now());
    if leases.get_opt(&name).await?.is_some() {
        let patch = serde_json::json!({ "spec": { "holderIdentity": name, "renewTime": now, "leaseDurationSeconds": 40 } });
        leases
            .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        return Ok(());
    }
    let lease = Lease {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: Some("kube-node-lease".into()),
            owner_references: node.metadata.uid.clone().map(|uid| {
                vec![OwnerReference {
                    api_version: "v1".into(),
                    kind: "Node".into(),
                    name: name.clone(),
                    uid,
                    ..Default::default()
                }]
            }),
            ..Default::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some(name.clone()),
            lease_duration_seconds: Some(40),
            renew_time: Some(now),
            ..Default::default()
        }),
    };
    match leases.create(&PostParams::default(), &lease).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Renews conditions and Lease every `period` until the task is dropped.
pub async fn heartbeat(client: kube::Client, node: Node, cap: Capacity, period: Duration) {
    let name = node.metadata.name.clone().unwrap_or_default();
    let since = Time(Timestamp::now());
    let mut tick = tokio::time::interval(period);
    loop {
        tick.tick().await;
        if let Err(e) = renew_lease(&client, &node).await {
            tracing::warn!(error = %e, "renewing node lease");
        }
        if let Err(e) = write_status(&client, &name, &cap, true, &since).await {
            tracing::warn!(error = %e, "writing node status");
        }
    }
}
