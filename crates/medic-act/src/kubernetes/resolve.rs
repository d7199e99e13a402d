//! From a service name or a typed target to the object on the cluster: `namespace/name` is a
//! Deployment, else a StatefulSet, else a DaemonSet; namespaces medic may not change are
//! refused here, once, for every action.

use super::error::map;
use crate::ActError;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{Node, Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::api::{Api, ApiResource, DynamicObject};
use medic_config::KubernetesActuatorConfig;
use medic_core::{Action, ActionKind, WorkloadKind, WorkloadRef};
use serde_json::Value;

/// The kinds a `namespace/name` service may stand for, in the order they are tried.
pub const WORKLOAD_KINDS: [WorkloadKind; 3] = [
    WorkloadKind::Deployment,
    WorkloadKind::StatefulSet,
    WorkloadKind::DaemonSet,
];

/// `namespace/name` → (`namespace`, `name`); anything else (a plain name, extra slashes) → `None`.
pub fn split_service(service: &str) -> Option<(&str, &str)> {
    let (ns, name) = service.split_once('/')?;
    (!ns.is_empty() && !name.is_empty() && !name.contains('/')).then_some((ns, name))
}

pub fn api_resource(kind: WorkloadKind) -> Option<ApiResource> {
    Some(match kind {
        WorkloadKind::Deployment => ApiResource::erase::<Deployment>(&()),
        WorkloadKind::StatefulSet => ApiResource::erase::<StatefulSet>(&()),
        WorkloadKind::DaemonSet => ApiResource::erase::<DaemonSet>(&()),
        WorkloadKind::Pod => ApiResource::erase::<Pod>(&()),
        WorkloadKind::Node => ApiResource::erase::<Node>(&()),
        WorkloadKind::LocalService => return None,
    })
}

/// The dynamic API of a typed target (namespaced or, for nodes, cluster-wide).
pub fn api_for(client: &kube::Client, r: &WorkloadRef) -> Result<Api<DynamicObject>, ActError> {
    let ar = api_resource(r.kind)
        .ok_or_else(|| ActError::Invalid(format!("{r} is not a Kubernetes object")))?;
    Ok(match (&r.namespace, r.kind) {
        (_, WorkloadKind::Node) => Api::all_with(client.clone(), &ar),
        (Some(ns), _) => Api::namespaced_with(client.clone(), ns, &ar),
        (None, k) => {
            return Err(ActError::Invalid(format!(
                "{r}: a {} needs a namespace (target `namespace/name`)",
                k.api_kind()
            )));
        }
    })
}

/// `Deployment shop/web`.
pub fn describe(r: &WorkloadRef) -> String {
    match &r.namespace {
        Some(ns) => format!("{} {ns}/{}", r.kind.api_kind(), r.name),
        None => format!("{} {}", r.kind.api_kind(), r.name),
    }
}

/// Finds the workload a service name stands for; `None` for a plain name or when no
/// Deployment, StatefulSet or DaemonSet has that name.
pub async fn resolve(
    client: &kube::Client,
    service: &str,
) -> Result<Option<WorkloadRef>, ActError> {
    let Some((ns, name)) = split_service(service) else {
        return Ok(None);
    };
    for kind in WORKLOAD_KINDS {
        let r = WorkloadRef::kube(kind, Some(ns), name);
        let api = api_for(client, &r)?;
        let what = format!("get {}", describe(&r));
        if api
            .get_metadata_opt(name)
            .await
            .map_err(|e| map(e, &what))?
            .is_some()
        {
            return Ok(Some(r));
        }
    }
    Ok(None)
}

/// Refuses namespaces outside `namespaces` or inside `exclude_namespaces`.
pub fn check_namespace(cfg: &KubernetesActuatorConfig, ns: &str) -> Result<(), ActError> {
    if cfg.exclude_namespaces.iter().any(|n| n == ns) {
        return Err(ActError::Rejected(format!(
            "namespace {ns:?} is excluded (actuators.kubernetes.exclude_namespaces): medic does not change it"
        )));
    }
    if !cfg.namespaces.is_empty() && !cfg.namespaces.iter().any(|n| n == ns) {
        return Err(ActError::Rejected(format!(
            "namespace {ns:?} is not one medic may change (actuators.kubernetes.namespaces: {})",
            cfg.namespaces.join(", ")
        )));
    }
    Ok(())
}

/// What an action acts on. `given` is true when the caller passed a typed target (it saw the
/// object earlier, so its absence now is stale state, not an unknown name).
pub struct Target {
    pub r: WorkloadRef,
    pub given: bool,
}

/// The action's target, checked against what the action kind can act on.
pub async fn target(client: &kube::Client, action: &Action) -> Result<Target, ActError> {
    let node_action = matches!(action.kind, ActionKind::CordonNode | ActionKind::DrainNode);
    let (r, given) = match &action.workload {
        Some(w) => (w.clone(), true),
        None if node_action => {
            if action.target.is_empty() || action.target.contains('/') {
                return Err(ActError::Invalid(format!(
                    "{}: target {:?} is not a node name",
                    action.kind, action.target
                )));
            }
            (
                WorkloadRef::kube(WorkloadKind::Node, None, &action.target),
                false,
            )
        }
        None => match resolve(client, &action.target).await? {
            Some(r) => (r, false),
            None => {
                return Err(ActError::Rejected(format!(
                    "{}: no Deployment, StatefulSet or DaemonSet {:?} (expected namespace/name)",
                    action.kind, action.target
                )));
            }
        },
    };
    let ok = match action.kind {
        ActionKind::CordonNode | ActionKind::DrainNode => r.kind == WorkloadKind::Node,
        ActionKind::DeletePod => r.kind == WorkloadKind::Pod || WORKLOAD_KINDS.contains(&r.kind),
        _ => WORKLOAD_KINDS.contains(&r.kind),
    };
    if !ok {
        return Err(ActError::Invalid(format!(
            "{} cannot act on {r}",
            action.kind
        )));
    }
    if r.kind != WorkloadKind::Node {
        let ns = r
            .namespace
            .as_deref()
            .ok_or_else(|| ActError::Invalid(format!("{r}: namespace missing")))?;
        if split_service(&format!("{ns}/{}", r.name)).is_none() {
            return Err(ActError::Invalid(format!(
                "{r}: malformed namespace or name"
            )));
        }
    }
    Ok(Target { r, given })
}

/// A workload read from the cluster: its typed reference and the object as JSON, so that the
/// same code serves Deployments, StatefulSets and DaemonSets (their pod template, selector
/// and replicas sit at the same paths).
#[derive(Clone, Debug)]
pub struct Workload {
    pub r: WorkloadRef,
    pub obj: DynamicObject,
}

impl Workload {
    pub fn describe(&self) -> String {
        describe(&self.r)
    }
    pub fn ns(&self) -> &str {
        self.r.namespace.as_deref().unwrap_or_default()
    }
    pub fn rv(&self) -> Result<String, ActError> {
        self.obj.metadata.resource_version.clone().ok_or_else(|| {
            ActError::Protocol(format!("{} has no resourceVersion", self.describe()))
        })
    }
    pub fn template_value(&self) -> Result<&Value, ActError> {
        self.obj
            .data
            .pointer("/spec/template")
            .ok_or_else(|| ActError::Protocol(format!("{} has no spec.template", self.describe())))
    }
    pub fn template(&self) -> Result<PodTemplateSpec, ActError> {
        serde_json::from_value(self.template_value()?.clone())
            .map_err(|e| ActError::Protocol(format!("{}: spec.template: {e}", self.describe())))
    }
    pub fn selector(&self) -> Result<LabelSelector, ActError> {
        let v = self.obj.data.pointer("/spec/selector").ok_or_else(|| {
            ActError::Protocol(format!("{} has no spec.selector", self.describe()))
        })?;
        serde_json::from_value(v.clone())
            .map_err(|e| ActError::Protocol(format!("{}: spec.selector: {e}", self.describe())))
    }
    /// The label selector as a query string (`app=web,tier in (a,b)`).
    pub fn selector_query(&self) -> Result<String, ActError> {
        let sel = kube::core::Selector::try_from(self.selector()?)
            .map_err(|e| ActError::Protocol(format!("{}: spec.selector: {e}", self.describe())))?;
        let q = sel.to_string();
        if q.is_empty() {
            return Err(ActError::Rejected(format!(
                "{} has an empty selector: it would select every pod in the namespace",
                self.describe()
            )));
        }
        Ok(q)
    }
    /// `spec.replicas` (1 when unset, as the API defaults it); `None` for a DaemonSet.
    pub fn replicas(&self) -> Option<i64> {
        match self.r.kind {
            WorkloadKind::DaemonSet => None,
            _ => Some(
                self.obj
                    .data
                    .pointer("/spec/replicas")
                    .and_then(Value::as_i64)
                    .unwrap_or(1),
            ),
        }
    }
}

/// Reads a workload (or a node, or a pod, as JSON); `None` when it does not exist.
pub async fn get(client: &kube::Client, r: &WorkloadRef) -> Result<Option<Workload>, ActError> {
    let api = api_for(client, r)?;
    let obj = api
        .get_opt(&r.name)
        .await
        .map_err(|e| map(e, &format!("get {}", describe(r))))?;
    Ok(obj.map(|obj| Workload { r: r.clone(), obj }))
}

/// Reads the target, which must exist: missing is stale when the caller had seen it.
pub async fn must_get(client: &kube::Client, t: &Target) -> Result<Workload, ActError> {
    get(client, &t.r).await?.ok_or_else(|| {
        let what = describe(&t.r);
        if t.given {
            ActError::Stale(format!("{what} no longer exists"))
        } else {
            ActError::Rejected(format!("{what} not found"))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_names() {
        assert_eq!(split_service("shop/web"), Some(("shop", "web")));
        assert_eq!(split_service("web"), None);
        assert_eq!(split_service("/web"), None);
        assert_eq!(split_service("a/b/c"), None);
    }

    #[test]
    fn namespaces_are_gated() {
        let mut cfg = KubernetesActuatorConfig::default();
        assert!(check_namespace(&cfg, "shop").is_ok());
        assert!(
            matches!(check_namespace(&cfg, "kube-system"), Err(ActError::Rejected(m)) if m.contains("excluded"))
        );
        cfg.namespaces = vec!["shop".into()];
        assert!(check_namespace(&cfg, "shop").is_ok());
        assert!(check_namespace(&cfg, "other").is_err());
    }
}
