//! `cordon_node` and `drain_node`. A drain cordons, then evicts every pod on the node through
//! the Eviction API — never a direct delete — so PodDisruptionBudgets hold: a pod whose
//! eviction is refused (429) stays, and the drain fails saying which pods and why. DaemonSet
//! pods (their controller ignores unschedulable) and mirror pods (the kubelet owns them) are
//! skipped, as `kubectl drain --ignore-daemonsets` does.

use super::Cx;
use crate::ActError;
use crate::kubernetes::error::{map, retry_on_conflict, status, step};
use crate::kubernetes::resolve::{self, Target, check_namespace};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, Patch};
use serde_json::{Value, json};

const MIRROR: &str = "kubernetes.io/config.mirror";

pub(crate) async fn cordon(cx: &Cx<'_>, t: &Target) -> Result<String, ActError> {
    let detail = cordon_node(cx, t, true).await?;
    Ok(detail)
}

/// Marks the node unschedulable; `record` puts the idempotency entry in the same patch.
async fn cordon_node(cx: &Cx<'_>, t: &Target, record: bool) -> Result<String, ActError> {
    let what = format!("cordon node {}", t.r.name);
    retry_on_conflict(&what, |attempt| async move {
        let n = resolve::must_get(cx.client(), t).await?;
        if n.obj
            .data
            .pointer("/spec/unschedulable")
            .and_then(Value::as_bool)
            == Some(true)
        {
            return Ok(format!(
                "node {} already unschedulable (cordoned): nothing to change",
                t.r.name
            ));
        }
        let detail = format!("node {} unschedulable false → true (cordoned)", t.r.name);
        let ledger = if record {
            cx.ledger(&n.obj.metadata, &detail)
        } else {
            serde_json::Map::new()
        };
        let patch = json!({
            "metadata": {"resourceVersion": n.rv()?, "annotations": ledger},
            "spec": {"unschedulable": true},
        });
        cx.before_write(attempt).await;
        resolve::api_for(cx.client(), &n.r)?
            .patch(&n.r.name, &cx.patch_params(), &Patch::Merge(&patch))
            .await
            .map_err(|e| step(e, &format!("patch node {}", t.r.name)))?;
        Ok(detail)
    })
    .await
}

pub(crate) async fn drain(cx: &Cx<'_>, t: &Target) -> Result<String, ActError> {
    let node = t.r.name.as_str();
    let cordoned = cordon_node(cx, t, false).await?;
    let version = cx.k.policy_version().await?;
    let all: Api<Pod> = Api::all(cx.client().clone());
    let pods = all
        .list(&ListParams::default().fields(&format!("spec.nodeName={node}")))
        .await
        .map_err(|e| map(e, &format!("list pods on node {node}")))?;
    let (mut evicted, mut blocked, mut skipped, mut left) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for pod in &pods.items {
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        let name = pod.metadata.name.clone().unwrap_or_default();
        let id = format!("{ns}/{name}");
        let daemon = pod
            .metadata
            .owner_references
            .iter()
            .flatten()
            .any(|o| o.controller == Some(true) && o.kind == "DaemonSet");
        let mirror = pod
            .metadata
            .annotations
            .as_ref()
            .is_some_and(|a| a.contains_key(MIRROR));
        if daemon || mirror {
            skipped.push(format!(
                "{id} ({})",
                if daemon { "DaemonSet" } else { "mirror pod" }
            ));
            continue;
        }
        if pod.metadata.deletion_timestamp.is_some() {
            continue;
        }
        if let Err(e) = check_namespace(&cx.k.cfg, &ns) {
            left.push(format!("{id} ({e})"));
            continue;
        }
        let api: Api<Pod> = Api::namespaced(cx.client().clone(), &ns);
        let body = json!({
            "apiVersion": format!("policy/{version}"),
            "kind": "Eviction",
            "metadata": {"name": name, "namespace": ns},
        });
        cx.before_write(1).await;
        match api
            .create_subresource::<Value, Value>("eviction", &name, &cx.post_params(), &body)
            .await
        {
            Ok(_) => evicted.push(id),
            Err(e) => match status(&e).map(|s| s.code) {
                Some(404) => {} // gone already
                Some(429) => blocked.push(format!("{id}: {}", refusal(&e))),
                Some(403) => return Err(map(e, &format!("evict pod {id}"))),
                _ => blocked.push(format!("{id}: {}", map(e, "eviction"))),
            },
        }
    }
    let mut detail = format!(
        "drain of node {node}: {cordoned}; evicted {} pods",
        evicted.len()
    );
    if !evicted.is_empty() {
        detail += &format!(" ({})", evicted.join(", "));
    }
    if !skipped.is_empty() {
        detail += &format!("; skipped {}", skipped.join(", "));
    }
    if !left.is_empty() {
        detail += &format!("; left {}", left.join(", "));
    }
    if !blocked.is_empty() {
        return Err(ActError::Rejected(format!(
            "{detail}; could not evict {} pods, and medic does not force evictions: {}",
            blocked.len(),
            blocked.join("; ")
        )));
    }
    cx.record(&t.r, &detail).await?;
    Ok(detail)
}

/// Why an eviction was refused: the disruption budget's own words when the server gives them.
fn refusal(e: &kube::Error) -> String {
    let Some(s) = status(e) else {
        return e.to_string();
    };
    let causes: Vec<&str> = s
        .details
        .iter()
        .flat_map(|d| d.causes.iter())
        .map(|c| c.message.as_str())
        .filter(|m| !m.is_empty())
        .collect();
    if causes.is_empty() {
        format!("{} (429)", s.message)
    } else {
        format!("{} (429: {})", s.message, causes.join("; "))
    }
}
