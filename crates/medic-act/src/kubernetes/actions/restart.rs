//! `restart_workload`: the patch `kubectl rollout restart` makes — a new
//! `kubectl.kubernetes.io/restartedAt` annotation on the pod template, so the controller rolls
//! every pod over to an identical new one. A workload scaled to zero is started again with
//! one replica.

use super::Cx;
use crate::ActError;
use crate::kubernetes::error::{retry_on_conflict, step};
use crate::kubernetes::resolve::{self, Target};
use kube::api::Patch;
use medic_core::WorkloadKind;
use serde_json::{Value, json};

pub const RESTARTED_AT: &str = "kubectl.kubernetes.io/restartedAt";

pub(crate) async fn run(cx: &Cx<'_>, t: &Target) -> Result<String, ActError> {
    restart(cx, t, None).await
}

/// Restarts the workload; `before` is what the caller already changed (a reverted
/// ConfigMap), recorded with the restart in the same idempotency entry.
pub(crate) async fn restart(
    cx: &Cx<'_>,
    t: &Target,
    before: Option<&str>,
) -> Result<String, ActError> {
    let what = format!("restart {}", resolve::describe(&t.r));
    retry_on_conflict(&what, |attempt| async move {
        let w = resolve::must_get(cx.client(), t).await?;
        if before.is_none() {
            cx.refuse_gitops(&w.describe(), &w.obj.metadata, "a rollout restart")?;
        }
        if w.r.kind == WorkloadKind::Deployment
            && w.obj.data.pointer("/spec/paused").and_then(Value::as_bool) == Some(true)
        {
            return Err(ActError::Rejected(format!(
                "{} is paused: a restart would not roll out until it is resumed",
                w.describe()
            ))
            .into());
        }
        let old = w
            .template_value()?
            .pointer("/metadata/annotations")
            .and_then(|a| a.get(RESTARTED_AT))
            .and_then(Value::as_str)
            .unwrap_or("never")
            .to_string();
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let mut detail = format!(
            "rollout restart of {}: restartedAt {old} → {now}; the controller replaces every pod",
            w.describe()
        );
        if let Some(b) = before {
            detail = format!("{b}; {detail}");
        }
        // Scaled to zero, a rollout restart replaces nothing: restarting it means starting
        // one pod again (in the same patch, so the same permission; an autoscaler never
        // holds a workload at zero, so this fights none).
        let zero = w.r.kind != WorkloadKind::DaemonSet
            && w.obj.data.pointer("/spec/replicas").and_then(Value::as_i64) == Some(0);
        let mut spec = json!({"template": {"metadata": {"annotations": {RESTARTED_AT: now}}}});
        if zero {
            spec["replicas"] = json!(1);
            detail = format!("{detail}; it was scaled to 0 replicas: replicas 0 → 1");
        }
        let patch = json!({
            "metadata": {"resourceVersion": w.rv()?, "annotations": cx.ledger(&w.obj.metadata, &detail)},
            "spec": spec,
        });
        cx.before_write(attempt).await;
        resolve::api_for(cx.client(), &w.r)?
            .patch(&w.r.name, &cx.patch_params(), &Patch::Merge(&patch))
            .await
            .map_err(|e| step(e, &format!("patch {}", w.describe())))?;
        Ok(detail)
    })
    .await
}
