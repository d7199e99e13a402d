//! Reads for planning and verification: a container's memory limit (what `set_resources`
//! raises) and whether a workload's rollout has settled (what verification waits for).

use super::resolve::{self, Workload};
use crate::{ActError, WorkloadHealth};
use medic_core::{WorkloadKind, WorkloadRef};
use serde_json::Value;

/// The memory limit of `container` (else the first container) of the workload's template.
pub async fn memory_limit(
    client: &kube::Client,
    service: &str,
    container: Option<&str>,
) -> Result<Option<u64>, ActError> {
    let Some(r) = resolve::resolve(client, service).await? else {
        return Ok(None);
    };
    let Some(w) = resolve::get(client, &r).await? else {
        return Ok(None);
    };
    Ok(limit_of(&w, container))
}

/// The workload object's `metadata.labels` (not its pods'): what people select on.
pub async fn labels(
    client: &kube::Client,
    service: &str,
) -> Result<Option<std::collections::BTreeMap<String, String>>, ActError> {
    let Some(r) = resolve::resolve(client, service).await? else {
        return Ok(None);
    };
    let Some(w) = resolve::get(client, &r).await? else {
        return Ok(None);
    };
    Ok(Some(w.obj.metadata.labels.clone().unwrap_or_default()))
}

fn limit_of(w: &Workload, container: Option<&str>) -> Option<u64> {
    let containers = w
        .obj
        .data
        .pointer("/spec/template/spec/containers")?
        .as_array()?;
    let c = match container {
        Some(name) => containers
            .iter()
            .find(|c| c.get("name").and_then(Value::as_str) == Some(name))?,
        None => containers.first()?,
    };
    let q = c.pointer("/resources/limits/memory")?;
    match q {
        Value::String(s) => medic_core::quantity::parse_bytes(s),
        Value::Number(n) => n.as_u64(),
        _ => None,
    }
}

/// Whether the workload's rollout is complete and every replica ready, as `kubectl rollout
/// status` judges it: the controller saw the latest generation, and updated, ready and
/// available replicas all equal the desired count (no old pods left).
pub async fn health(
    client: &kube::Client,
    r: &WorkloadRef,
) -> Result<Option<WorkloadHealth>, ActError> {
    if !matches!(
        r.kind,
        WorkloadKind::Deployment | WorkloadKind::StatefulSet | WorkloadKind::DaemonSet
    ) {
        return Ok(None);
    }
    let Some(w) = resolve::get(client, r).await? else {
        return Ok(Some(WorkloadHealth {
            settled: false,
            detail: format!("{r} no longer exists"),
        }));
    };
    Ok(Some(settled(&w)))
}

fn settled(w: &Workload) -> WorkloadHealth {
    let d = &w.obj.data;
    let int = |p: &str| d.pointer(p).and_then(Value::as_i64);
    let generation = w.obj.metadata.generation.unwrap_or(0);
    let observed = int("/status/observedGeneration").unwrap_or(0);
    let (desired, updated, ready, available, total) = match w.r.kind {
        WorkloadKind::DaemonSet => (
            int("/status/desiredNumberScheduled").unwrap_or(0),
            int("/status/updatedNumberScheduled").unwrap_or(0),
            int("/status/numberReady").unwrap_or(0),
            int("/status/numberAvailable").unwrap_or(0),
            int("/status/currentNumberScheduled").unwrap_or(0),
        ),
        _ => (
            w.replicas().unwrap_or(1),
            int("/status/updatedReplicas").unwrap_or(0),
            int("/status/readyReplicas").unwrap_or(0),
            // StatefulSets in 1.20 have no availableReplicas: ready is what they report.
            int("/status/availableReplicas")
                .or_else(|| int("/status/readyReplicas"))
                .unwrap_or(0),
            int("/status/replicas").unwrap_or(0),
        ),
    };
    let ok = observed >= generation
        && updated == desired
        && ready == desired
        && available == desired
        && total == desired;
    WorkloadHealth {
        settled: ok,
        detail: format!(
            "{}: generation {generation} observed {observed}, desired {desired}, updated {updated}, ready {ready}, available {available}, total {total}",
            w.describe()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::api::DynamicObject;

    fn deployment(status: Value, generation: i64) -> Workload {
        let obj: DynamicObject = serde_json::from_value(serde_json::json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "shop", "generation": generation},
            "spec": {"replicas": 2, "template": {"spec": {"containers": [
                {"name": "a", "resources": {"limits": {"memory": "64Mi"}}},
                {"name": "b", "resources": {"limits": {"memory": 1048576}}},
                {"name": "c"}
            ]}}},
            "status": status
        }))
        .unwrap();
        Workload {
            r: WorkloadRef::kube(WorkloadKind::Deployment, Some("shop"), "web"),
            obj,
        }
    }

    #[test]
    fn rollout_settles_only_when_every_count_matches() {
        let done = serde_json::json!({"observedGeneration": 3, "replicas": 2, "updatedReplicas": 2, "readyReplicas": 2, "availableReplicas": 2});
        assert!(settled(&deployment(done.clone(), 3)).settled);
        // The controller has not seen the latest spec yet.
        assert!(!settled(&deployment(done, 4)).settled);
        // An old pod still around (3 total while 2 desired).
        let surge = serde_json::json!({"observedGeneration": 3, "replicas": 3, "updatedReplicas": 2, "readyReplicas": 2, "availableReplicas": 2});
        assert!(!settled(&deployment(surge, 3)).settled);
        // No status at all (malformed or brand new): not settled, no panic.
        let h = settled(&deployment(Value::Null, 1));
        assert!(!h.settled && h.detail.contains("desired 2"), "{}", h.detail);
    }

    #[test]
    fn memory_limits_by_container() {
        let w = deployment(Value::Null, 1);
        assert_eq!(limit_of(&w, None), Some(64 << 20));
        assert_eq!(limit_of(&w, Some("b")), Some(1 << 20));
        assert_eq!(limit_of(&w, Some("c")), None);
        assert_eq!(limit_of(&w, Some("missing")), None);
    }
}
