//! `delete_pod`: one pod — the named one, or the workload's least healthy (not ready first,
//! then most restarts) — deleted so that its controller replaces it. Exactly the pod that was
//! read is deleted (a UID precondition), and a pod without a controller is refused: nothing
//! would bring it back.

use super::{Cx, pod_owner};
use crate::ActError;
use crate::kubernetes::error::map;
use crate::kubernetes::resolve::{self, Target};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, Preconditions};
use medic_core::WorkloadKind;
use std::cmp::Reverse;

pub(crate) async fn run(cx: &Cx<'_>, t: &Target) -> Result<String, ActError> {
    let ns = t.r.namespace.clone().unwrap_or_default();
    let pods: Api<Pod> = Api::namespaced(cx.client().clone(), &ns);
    let (pod, owner) = if t.r.kind == WorkloadKind::Pod {
        let what = format!("get pod {ns}/{}", t.r.name);
        let pod = pods
            .get_opt(&t.r.name)
            .await
            .map_err(|e| map(e, &what))?
            .ok_or_else(|| {
                if t.given {
                    ActError::Stale(format!("pod {ns}/{} no longer exists", t.r.name))
                } else {
                    ActError::Rejected(format!("pod {ns}/{} not found", t.r.name))
                }
            })?;
        if pod.metadata.deletion_timestamp.is_some() {
            return Err(ActError::Stale(format!(
                "pod {ns}/{} is already terminating",
                t.r.name
            )));
        }
        let owner = pod_owner(cx, &ns, &pod.metadata).await?;
        (pod, owner)
    } else {
        let w = resolve::must_get(cx.client(), t).await?;
        let list = pods
            .list(&ListParams::default().labels(&w.selector_query()?))
            .await
            .map_err(|e| map(e, &format!("list pods in {ns}")))?;
        let pod = list
            .items
            .into_iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .min_by_key(|p| (is_ready(p), Reverse(restarts(p)), p.metadata.name.clone()))
            .ok_or_else(|| {
                ActError::Stale(format!(
                    "{} has no pod to delete (none, or all terminating)",
                    w.describe()
                ))
            })?;
        (pod, Some(t.r.clone()))
    };
    let name = pod.metadata.name.clone().unwrap_or_default();
    let has_controller = pod
        .metadata
        .owner_references
        .iter()
        .flatten()
        .any(|o| o.controller == Some(true));
    if !has_controller {
        return Err(ActError::Rejected(format!(
            "pod {ns}/{name} has no controller: deleting it would not bring it back"
        )));
    }
    let mut dp = cx.delete_params();
    dp.preconditions = Some(Preconditions {
        uid: pod.metadata.uid.clone(),
        resource_version: None,
    });
    cx.before_write(1).await;
    pods.delete(&name, &dp).await.map_err(|e| {
        if crate::kubernetes::error::is_not_found(&e) {
            ActError::Stale(format!("pod {ns}/{name} vanished before medic deleted it"))
        } else {
            map(e, &format!("delete pod {ns}/{name}"))
        }
    })?;
    let of = owner
        .as_ref()
        .map(|o| format!(" of {}", resolve::describe(o)))
        .unwrap_or_default();
    let detail = format!(
        "deleted pod {ns}/{name}{of} ({}); its controller replaces it",
        health(&pod)
    );
    if let Some(o) = &owner {
        cx.record(o, &detail).await?;
    }
    Ok(detail)
}

fn is_ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

fn restarts(p: &Pod) -> i32 {
    p.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .map(|cs| cs.iter().map(|c| c.restart_count).sum())
        .unwrap_or(0)
}

/// `not ready, phase Pending, 3 restarts`.
fn health(p: &Pod) -> String {
    let phase = p
        .status
        .as_ref()
        .and_then(|s| s.phase.clone())
        .unwrap_or_else(|| "unknown".into());
    format!(
        "{}, phase {phase}, {} restarts",
        if is_ready(p) { "ready" } else { "not ready" },
        restarts(p)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn least_healthy_first() {
        let pod = |name: &str, ready: bool, restarts: i32| -> Pod {
            serde_json::from_value(json!({
                "metadata": {"name": name},
                "status": {"phase": "Running",
                           "conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"}}],
                           "containerStatuses": [{"name": "c", "image": "i", "imageID": "", "ready": ready, "restartCount": restarts}]}
            }))
            .unwrap()
        };
        let pods = [pod("a", true, 9), pod("b", false, 1), pod("c", false, 4)];
        let worst = pods
            .iter()
            .min_by_key(|p| (is_ready(p), Reverse(restarts(p)), p.metadata.name.clone()))
            .unwrap();
        assert_eq!(worst.metadata.name.as_deref(), Some("c"));
        assert_eq!(health(worst), "not ready, phase Running, 4 restarts");
    }
}
