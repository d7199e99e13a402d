//! The catalogue actions, one file per action or group, and what they share: the per-call
//! context (dry run, idempotency key, field manager), where an action's idempotency record
//! lives, and the GitOps refusal.

mod delete_pod;
mod isolate;
mod node;
mod resources;
mod restart;
mod revert_config;
mod rollback;
mod scale;

use super::Inner;
use super::error::map;
use super::gitops;
use super::ledger;
use super::resolve::{self, Target};
use crate::ActError;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use medic_core::{Action, ActionKind, WorkloadKind, WorkloadRef};
use serde_json::json;

/// One execution (or dry run) of one action.
pub(crate) struct Cx<'a> {
    pub k: &'a Inner,
    pub action: &'a Action,
    /// `None` for a dry run.
    pub key: Option<&'a str>,
    pub dry: bool,
}

impl Cx<'_> {
    pub fn client(&self) -> &kube::Client {
        &self.k.client
    }

    pub fn patch_params(&self) -> PatchParams {
        PatchParams {
            field_manager: Some(self.k.cfg.field_manager.clone()),
            dry_run: self.dry,
            ..Default::default()
        }
    }

    pub fn post_params(&self) -> PostParams {
        PostParams {
            dry_run: self.dry,
            field_manager: Some(self.k.cfg.field_manager.clone()),
        }
    }

    pub fn delete_params(&self) -> DeleteParams {
        DeleteParams {
            dry_run: self.dry,
            ..Default::default()
        }
    }

    /// The test hook between read and write.
    pub async fn before_write(&self, attempt: u32) {
        let hook = self
            .k
            .hook
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if let Some(h) = hook {
            h(self.action.kind, attempt).await;
        }
    }

    /// The idempotency annotations to merge into the change's own patch (empty for a dry run).
    pub fn ledger(
        &self,
        meta: &ObjectMeta,
        detail: &str,
    ) -> serde_json::Map<String, serde_json::Value> {
        match self.key {
            Some(key) if !self.dry => {
                ledger::annotations(meta, key, self.action.kind.as_str(), detail)
            }
            _ => serde_json::Map::new(),
        }
    }

    /// Refuses an object a GitOps controller manages (for changes to what Git declares).
    pub fn refuse_gitops(
        &self,
        what: &str,
        meta: &ObjectMeta,
        change: &str,
    ) -> Result<(), ActError> {
        match gitops::refusal(what, meta, change) {
            Some(m) => Err(ActError::ManagedElsewhere(m)),
            None => Ok(()),
        }
    }

    /// Records the key on `holder` in its own patch, for actions whose change was elsewhere.
    pub async fn record(&self, holder: &WorkloadRef, detail: &str) -> Result<(), ActError> {
        if self.dry || self.key.is_none() {
            return Ok(());
        }
        let api = resolve::api_for(self.client(), holder)?;
        let what = format!("record the action on {}", resolve::describe(holder));
        let Some(obj) = api.get_opt(&holder.name).await.map_err(|e| map(e, &what))? else {
            return Ok(());
        };
        let patch = json!({"metadata": {"annotations": self.ledger(&obj.metadata, detail)}});
        api.patch(&holder.name, &self.patch_params(), &Patch::Merge(&patch))
            .await
            .map_err(|e| map(e, &what))?;
        Ok(())
    }
}

/// Where the idempotency record of an action on this target lives: the workload or node
/// itself; for a pod, the workload that owns it (`None` for a bare or vanished pod).
pub(crate) async fn holder(cx: &Cx<'_>, t: &Target) -> Result<Option<WorkloadRef>, ActError> {
    if t.r.kind != WorkloadKind::Pod {
        return Ok(Some(t.r.clone()));
    }
    let Some(pod) = resolve::get(cx.client(), &t.r).await? else {
        return Ok(None);
    };
    pod_owner(
        cx,
        t.r.namespace.as_deref().unwrap_or_default(),
        &pod.obj.metadata,
    )
    .await
}

/// The workload controlling a pod: its StatefulSet or DaemonSet, or the Deployment of its
/// ReplicaSet.
pub(crate) async fn pod_owner(
    cx: &Cx<'_>,
    ns: &str,
    meta: &ObjectMeta,
) -> Result<Option<WorkloadRef>, ActError> {
    let controller = |m: &ObjectMeta| {
        m.owner_references
            .iter()
            .flatten()
            .find(|o| o.controller == Some(true))
            .map(|o| (o.kind.clone(), o.name.clone()))
    };
    let Some((kind, name)) = controller(meta) else {
        return Ok(None);
    };
    match kind.as_str() {
        "StatefulSet" | "DaemonSet" | "Deployment" => {
            Ok(WorkloadKind::from_api_kind(&kind).map(|k| WorkloadRef::kube(k, Some(ns), &name)))
        }
        "ReplicaSet" => {
            let api: kube::Api<ReplicaSet> = kube::Api::namespaced(cx.client().clone(), ns);
            let what = format!("get ReplicaSet {ns}/{name}");
            let Some(rs) = api.get_opt(&name).await.map_err(|e| map(e, &what))? else {
                return Ok(None);
            };
            Ok(controller(&rs.metadata)
                .filter(|(k, _)| k == "Deployment")
                .map(|(_, n)| WorkloadRef::kube(WorkloadKind::Deployment, Some(ns), &n)))
        }
        _ => Ok(None),
    }
}

/// The detail recorded when this execution's key was applied, if it was.
pub(crate) async fn recorded(cx: &Cx<'_>, t: &Target) -> Result<Option<String>, ActError> {
    let Some(key) = cx.key else {
        return Ok(None);
    };
    let Some(h) = holder(cx, t).await? else {
        return Ok(None);
    };
    Ok(resolve::get(cx.client(), &h)
        .await?
        .and_then(|w| ledger::find(&w.obj.metadata, key)))
}

pub(crate) async fn run(cx: &Cx<'_>, t: &Target) -> Result<String, ActError> {
    match cx.action.kind {
        ActionKind::RestartWorkload => restart::run(cx, t).await,
        ActionKind::ScaleWorkload => scale::run(cx, t).await,
        ActionKind::RollbackRelease => rollback::run(cx, t).await,
        ActionKind::RevertConfig => revert_config::run(cx, t).await,
        ActionKind::DeletePod => delete_pod::run(cx, t).await,
        ActionKind::SetResources => resources::run(cx, t).await,
        ActionKind::CordonNode => node::cordon(cx, t).await,
        ActionKind::DrainNode => node::drain(cx, t).await,
        ActionKind::IsolateWorkload => isolate::run(cx, t).await,
        ActionKind::NoAction => Ok("no action".to_string()),
    }
}
