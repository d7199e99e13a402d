//! `scale_workload`: the replica count through the scale subresource; when a
//! HorizontalPodAutoscaler drives the workload, its bounds are raised instead (scaling against
//! an HPA would be undone on its next sync).

use super::Cx;
use crate::ActError;
use crate::kubernetes::error::{map, retry_on_conflict, step};
use crate::kubernetes::resolve::{self, Target};
use k8s_openapi::api::autoscaling::v1::HorizontalPodAutoscaler;
use kube::api::{Api, ListParams, Patch};
use medic_core::WorkloadKind;
use serde_json::json;

pub(crate) async fn run(cx: &Cx<'_>, t: &Target) -> Result<String, ActError> {
    let want = cx
        .action
        .replicas
        .ok_or_else(|| ActError::Invalid("scale_workload needs `replicas`".to_string()))?;
    let want = i32::try_from(want)
        .map_err(|_| ActError::Invalid(format!("replicas {want} is out of range")))?;
    if t.r.kind == WorkloadKind::DaemonSet {
        return Err(ActError::Rejected(format!(
            "{} runs one pod per node: it has no replica count to scale",
            resolve::describe(&t.r)
        )));
    }
    let what = format!("scale {}", resolve::describe(&t.r));
    let detail = retry_on_conflict(&what, |attempt| async move {
        let w = resolve::must_get(cx.client(), t).await?;
        cx.refuse_gitops(&w.describe(), &w.obj.metadata, "a replica change")?;
        let current = w.replicas().unwrap_or(1);
        let ns = w.ns().to_string();
        let hpas: Api<HorizontalPodAutoscaler> = Api::namespaced(cx.client().clone(), &ns);
        let list = hpas
            .list(&ListParams::default())
            .await
            .map_err(|e| map(e, &format!("list horizontalpodautoscalers in {ns}")))?;
        let hpa = list.items.into_iter().find(|h| {
            h.spec
                .as_ref()
                .is_some_and(|s| s.scale_target_ref.kind == w.r.kind.api_kind() && s.scale_target_ref.name == w.r.name)
        });
        if let Some(h) = hpa {
            let name = h.metadata.name.clone().unwrap_or_default();
            let spec = h.spec.as_ref().ok_or_else(|| ActError::Protocol(format!("HPA {ns}/{name} has no spec")))?;
            let min = spec.min_replicas.unwrap_or(1);
            let max = spec.max_replicas;
            if min >= want {
                return Ok(format!(
                    "{} is scaled by HorizontalPodAutoscaler {ns}/{name}, whose minReplicas {min} already ≥ {want}: nothing to change",
                    w.describe()
                ));
            }
            let new_max = max.max(want);
            let max_part = if new_max != max { format!(", maxReplicas {max} → {new_max}") } else { String::new() };
            let patch = json!({
                "metadata": {"resourceVersion": h.metadata.resource_version},
                "spec": {"minReplicas": want, "maxReplicas": new_max},
            });
            cx.before_write(attempt).await;
            hpas.patch(&name, &cx.patch_params(), &Patch::Merge(&patch))
                .await
                .map_err(|e| step(e, &format!("patch horizontalpodautoscaler {ns}/{name}")))?;
            return Ok(format!(
                "{} is scaled by HorizontalPodAutoscaler {ns}/{name}: raised its minReplicas {min} → {want}{max_part} instead of fighting it (replicas now {current}; the HPA scales to ≥ {want})",
                w.describe()
            ));
        }
        if current == i64::from(want) {
            return Ok(format!("replicas of {} already {want}: nothing to change", w.describe()));
        }
        let patch = json!({"metadata": {"resourceVersion": w.rv()?}, "spec": {"replicas": want}});
        cx.before_write(attempt).await;
        resolve::api_for(cx.client(), &w.r)?
            .patch_scale(&w.r.name, &cx.patch_params(), &Patch::Merge(&patch))
            .await
            .map_err(|e| step(e, &format!("patch {}/scale", w.describe())))?;
        Ok(format!("replicas of {} {current} → {want}", w.describe()))
    })
    .await?;
    cx.record(&t.r, &detail).await?;
    Ok(detail)
}
