//! `rollback_release`: a workload back to its previous revision, as `kubectl rollout undo`
//! does — for a Deployment the template of the ReplicaSet with the highest revision below the
//! current one, minus its `pod-template-hash` label; for a StatefulSet or DaemonSet the
//! template its previous ControllerRevision recorded. Either is copied into the workload.
//! A Helm-managed Deployment is rolled back with `helm rollback` when helm is installed, so
//! Helm's record stays true.

use super::Cx;
use crate::ActError;
use crate::kubernetes::error::{map, retry_on_conflict, step};
use crate::kubernetes::resolve::{self, Target, Workload};
use crate::kubernetes::template::{describe_change, merge_diff, same_template, without_hash};
use k8s_openapi::api::apps::v1::{ControllerRevision, ReplicaSet};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, ApiResource, DynamicObject, ListParams, Patch};
use medic_core::WorkloadKind;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::time::Duration;

pub const REVISION: &str = "deployment.kubernetes.io/revision";

pub(crate) async fn run(cx: &Cx<'_>, t: &Target) -> Result<String, ActError> {
    if !matches!(
        t.r.kind,
        WorkloadKind::Deployment | WorkloadKind::StatefulSet | WorkloadKind::DaemonSet
    ) {
        return Err(ActError::Rejected(format!(
            "rollback_release acts on Deployments, StatefulSets and DaemonSets, not {}",
            resolve::describe(&t.r)
        )));
    }
    let w = resolve::must_get(cx.client(), t).await?;
    cx.refuse_gitops(&w.describe(), &w.obj.metadata, "a rollback")?;
    let mut note = String::new();
    if let Some(release) = helm_release(&w.obj.metadata) {
        match (find_on_path("helm"), cx.dry) {
            (Some(helm), false) => {
                let detail = helm_rollback(cx, &w, &release, &helm).await?;
                cx.record(&t.r, &detail).await?;
                return Ok(detail);
            }
            (Some(_), true) => {
                note = format!(
                    " (Helm release {release:?}: the real run uses `helm rollback`; this dry run checked the ReplicaSet undo)"
                );
            }
            (None, _) => {
                note = format!(
                    " (Helm release {release:?}: helm is not installed on medic's host, so the ReplicaSet undo was used; Helm's history still names the newer release)"
                );
            }
        }
    }
    let what = format!("roll back {}", w.describe());
    let note = note.as_str();
    retry_on_conflict(&what, |attempt| async move {
        let w = resolve::must_get(cx.client(), t).await?;
        let (current, prev_rev, rs_name, prev) = if w.r.kind == WorkloadKind::Deployment {
            previous_template(cx, &w).await?
        } else {
            previous_revision(cx, &w).await?
        };
        let cur_t = w.template_value()?;
        if same_template(cur_t, &prev) {
            return Err(ActError::Stale(format!(
                "{}'s template already equals revision {prev_rev}'s (ReplicaSet {rs_name}): nothing to roll back",
                w.describe()
            ))
            .into());
        }
        let source = if w.r.kind == WorkloadKind::Deployment {
            "ReplicaSet"
        } else {
            "ControllerRevision"
        };
        let detail = format!(
            "rollback of {}: revision {current} → revision {prev_rev}'s template ({source} {rs_name}): {}{note}",
            w.describe(),
            describe_change(cur_t, &prev)
        );
        let diff = merge_diff(cur_t, &prev).unwrap_or_else(|| json!({}));
        let patch = json!({
            "metadata": {"resourceVersion": w.rv()?, "annotations": cx.ledger(&w.obj.metadata, &detail)},
            "spec": {"template": diff},
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

/// The current revision, and the previous one's number, ReplicaSet name and template (without
/// the hash label).
async fn previous_template(
    cx: &Cx<'_>,
    w: &Workload,
) -> Result<(i64, i64, String, Value), ActError> {
    let revision = |m: &ObjectMeta| m.annotations.as_ref()?.get(REVISION)?.parse::<i64>().ok();
    let current = revision(&w.obj.metadata).ok_or_else(|| {
        ActError::Stale(format!(
            "{} has no {REVISION} annotation yet (the Deployment controller has not rolled it out): nothing to roll back to",
            w.describe()
        ))
    })?;
    let uid = w.obj.metadata.uid.clone().unwrap_or_default();
    let api: Api<DynamicObject> = Api::namespaced_with(
        cx.client().clone(),
        w.ns(),
        &ApiResource::erase::<ReplicaSet>(&()),
    );
    let list = api
        .list(&ListParams::default().labels(&w.selector_query()?))
        .await
        .map_err(|e| map(e, &format!("list replicasets in {}", w.ns())))?;
    let prev = list
        .items
        .into_iter()
        .filter(|rs| {
            rs.metadata
                .owner_references
                .iter()
                .flatten()
                .any(|o| o.uid == uid)
        })
        .filter_map(|rs| Some((revision(&rs.metadata)?, rs)))
        .filter(|(rev, _)| *rev < current)
        .max_by_key(|(rev, _)| *rev);
    let Some((rev, rs)) = prev else {
        return Err(ActError::Stale(format!(
            "{} has no previous revision to roll back to (revision {current} is the oldest ReplicaSet it owns)",
            w.describe()
        )));
    };
    let name = rs.metadata.name.clone().unwrap_or_default();
    let template = rs
        .data
        .pointer("/spec/template")
        .ok_or_else(|| ActError::Protocol(format!("ReplicaSet {name} has no spec.template")))?;
    Ok((current, rev, name, without_hash(template)))
}

/// For a StatefulSet or DaemonSet: the current revision (the highest its ControllerRevisions
/// number), and the previous one's number, name and recorded template.
async fn previous_revision(
    cx: &Cx<'_>,
    w: &Workload,
) -> Result<(i64, i64, String, Value), ActError> {
    let uid = w.obj.metadata.uid.clone().unwrap_or_default();
    let api: Api<DynamicObject> = Api::namespaced_with(
        cx.client().clone(),
        w.ns(),
        &ApiResource::erase::<ControllerRevision>(&()),
    );
    let list = api
        .list(&ListParams::default().labels(&w.selector_query()?))
        .await
        .map_err(|e| map(e, &format!("list controllerrevisions in {}", w.ns())))?;
    let mut revs: Vec<(i64, DynamicObject)> = list
        .items
        .into_iter()
        .filter(|cr| {
            cr.metadata
                .owner_references
                .iter()
                .flatten()
                .any(|o| o.uid == uid)
        })
        .filter_map(|cr| Some((cr.data.get("revision")?.as_i64()?, cr)))
        .collect();
    revs.sort_by_key(|(rev, _)| *rev);
    let (Some((current, _)), Some((prev, cr))) = (revs.last(), revs.iter().rev().nth(1)) else {
        return Err(ActError::Stale(format!(
            "{} has no previous revision to roll back to ({} ControllerRevision(s))",
            w.describe(),
            revs.len()
        )));
    };
    let name = cr.metadata.name.clone().unwrap_or_default();
    Ok((
        *current,
        *prev,
        name.clone(),
        revision_template(&cr.data, &name)?,
    ))
}

/// The pod template a ControllerRevision recorded: its `data` is the patch the controller
/// would apply, `{"spec": {"template": {..., "$patch": "replace"}}}`.
fn revision_template(cr: &Value, name: &str) -> Result<Value, ActError> {
    let mut t = cr.pointer("/data/spec/template").cloned().ok_or_else(|| {
        ActError::Protocol(format!(
            "ControllerRevision {name} has no data.spec.template"
        ))
    })?;
    if let Some(m) = t.as_object_mut() {
        m.remove("$patch");
    }
    Ok(t)
}

/// The Helm release that manages the object, from the labels/annotations Helm 3 writes.
pub fn helm_release(meta: &ObjectMeta) -> Option<String> {
    let by_helm = meta
        .labels
        .as_ref()
        .and_then(|l| l.get("app.kubernetes.io/managed-by"))
        .is_some_and(|v| v == "Helm");
    let name = meta
        .annotations
        .as_ref()
        .and_then(|a| a.get("meta.helm.sh/release-name"));
    match name {
        Some(n) if !n.is_empty() => Some(n.clone()),
        _ if by_helm => meta
            .labels
            .as_ref()?
            .get("app.kubernetes.io/instance")
            .cloned(),
        _ => None,
    }
}

fn find_on_path(program: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

/// `helm rollback <release> 0 -n <ns>` (0 = the previous release), argv without a shell,
/// bounded by a timeout, against the same kubeconfig and context as the actuator.
async fn helm_rollback(
    cx: &Cx<'_>,
    w: &Workload,
    release: &str,
    helm: &PathBuf,
) -> Result<String, ActError> {
    let ns = w
        .obj
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get("meta.helm.sh/release-namespace"))
        .cloned()
        .unwrap_or_else(|| w.ns().to_string());
    let mut cmd = tokio::process::Command::new(helm);
    cmd.args(["rollback", release, "0", "-n", &ns]);
    if let Some(kc) = &cx.k.cfg.connection.kubeconfig {
        cmd.arg("--kubeconfig").arg(kc);
    }
    if let Some(ctx) = &cx.k.cfg.connection.context {
        cmd.args(["--kube-context", ctx]);
    }
    cmd.kill_on_drop(true).stdin(std::process::Stdio::null());
    let limit = cx.k.cfg.timeout.max(Duration::from_secs(60));
    let out = tokio::time::timeout(limit, cmd.output())
        .await
        .map_err(|_| {
            ActError::Unreachable(format!(
                "helm rollback {release} -n {ns} did not finish within {limit:?}"
            ))
        })?
        .map_err(|e| ActError::io(helm, e))?;
    let text = |b: &[u8]| {
        String::from_utf8_lossy(b)
            .trim()
            .chars()
            .take(300)
            .collect::<String>()
    };
    if !out.status.success() {
        return Err(ActError::Rejected(format!(
            "helm rollback {release} 0 -n {ns} failed ({}): {}",
            out.status,
            text(&out.stderr)
        )));
    }
    Ok(format!(
        "rollback of {} through Helm: helm rollback {release} 0 -n {ns}: {}",
        w.describe(),
        text(&out.stdout)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_controller_revision_gives_its_template() {
        let cr = json!({"revision": 2, "data": {"spec": {"template": {
            "$patch": "replace",
            "metadata": {"labels": {"app": "db"}},
            "spec": {"containers": [{"name": "db", "image": "db:1"}]}
        }}}});
        let t = revision_template(&cr, "db-1").unwrap();
        assert_eq!(t.get("$patch"), None);
        assert_eq!(t.pointer("/spec/containers/0/image"), Some(&json!("db:1")));
        let e = revision_template(&json!({"revision": 1, "data": {}}), "db-0").unwrap_err();
        assert!(e.to_string().contains("no data.spec.template"), "{e}");
    }

    #[test]
    fn helm_release_markers() {
        let meta = |labels: &[(&str, &str)], ann: &[(&str, &str)]| ObjectMeta {
            labels: Some(
                labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            annotations: Some(
                ann.iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            ..Default::default()
        };
        assert_eq!(
            helm_release(&meta(
                &[("app.kubernetes.io/managed-by", "Helm")],
                &[("meta.helm.sh/release-name", "web")]
            )),
            Some("web".into())
        );
        assert_eq!(
            helm_release(&meta(
                &[
                    ("app.kubernetes.io/managed-by", "Helm"),
                    ("app.kubernetes.io/instance", "shop")
                ],
                &[]
            )),
            Some("shop".into())
        );
        assert_eq!(helm_release(&meta(&[("app", "web")], &[])), None);
    }
}
