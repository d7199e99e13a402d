//! Owner resolution: the workload a pod (or a ReplicaSet, or an event's object) belongs to,
//! as `namespace/name`, through `metadata.ownerReferences` and a cache of ReplicaSets —
//! never by trimming hashes off names.
//!
//! Pod → ReplicaSet → Deployment needs the ReplicaSet's own owner, which only the ReplicaSet
//! says: the cache is fed by the ReplicaSet watch, and a miss (a pod event that overtook its
//! ReplicaSet's) is answered by [`Resolution::NeedReplicaSet`], which the source fetches.

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use std::collections::HashMap;

/// The owner that controls an object: the reference marked `controller: true`, else the
/// first one (hand-made references often leave the flag out).
pub(crate) fn controller_of(meta: &ObjectMeta) -> Option<&OwnerReference> {
    let refs = meta.owner_references.as_deref().unwrap_or_default();
    refs.iter()
        .find(|r| r.controller == Some(true))
        .or_else(|| refs.first())
        .filter(|r| !r.name.is_empty() && !r.kind.is_empty())
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Resolution {
    /// The workload, `namespace/name`.
    Workload(String),
    /// The ReplicaSet `namespace/name` is not cached yet: fetch it, then resolve again.
    NeedReplicaSet { namespace: String, name: String },
}

/// ReplicaSet `(namespace, name)` → the kind and name of its controller, if any.
#[derive(Default)]
pub(crate) struct Owners {
    replicasets: HashMap<(String, String), Option<(String, String)>>,
}

impl Owners {
    pub(crate) fn apply_replicaset(&mut self, rs: &ReplicaSet) {
        let (Some(ns), Some(name)) = (&rs.metadata.namespace, &rs.metadata.name) else {
            return;
        };
        let owner = controller_of(&rs.metadata).map(|r| (r.kind.clone(), r.name.clone()));
        self.replicasets.insert((ns.clone(), name.clone()), owner);
    }

    pub(crate) fn delete_replicaset(&mut self, rs: &ReplicaSet) {
        if let (Some(ns), Some(name)) = (&rs.metadata.namespace, &rs.metadata.name) {
            self.replicasets.remove(&(ns.clone(), name.clone()));
        }
    }

    /// Forgets ReplicaSets `keep` refuses (after a relist, which also reports deletions).
    pub(crate) fn retain_replicasets(&mut self, keep: impl Fn(&(String, String)) -> bool) {
        self.replicasets.retain(|k, _| keep(k));
    }

    /// Records a ReplicaSet fetched on a miss that does not exist (or could not be read):
    /// it is then its own workload, which is what its pods' ownerReference says.
    pub(crate) fn replicaset_unknown(&mut self, namespace: &str, name: &str) {
        self.replicasets
            .insert((namespace.to_string(), name.to_string()), None);
    }

    pub(crate) fn replicaset_count(&self) -> usize {
        self.replicasets.len()
    }

    /// The workload of a pod: its controller's workload, or the pod itself when it has none.
    pub(crate) fn of_pod(&self, meta: &ObjectMeta) -> Option<Resolution> {
        let ns = meta.namespace.as_deref()?;
        let name = meta.name.as_deref()?;
        Some(self.of_object(ns, "Pod", name, controller_of(meta)))
    }

    /// The workload of an object of `kind` named `name`, whose controller is `owner`.
    pub(crate) fn of_object(
        &self,
        ns: &str,
        kind: &str,
        name: &str,
        owner: Option<&OwnerReference>,
    ) -> Resolution {
        match owner {
            None if kind == "ReplicaSet" => self.of_replicaset(ns, name),
            None => Resolution::Workload(format!("{ns}/{name}")),
            Some(r) if r.kind == "ReplicaSet" => self.of_replicaset(ns, &r.name),
            // StatefulSet, DaemonSet, Job and custom controllers own their pods directly.
            Some(r) => Resolution::Workload(format!("{ns}/{}", r.name)),
        }
    }

    /// The workload of the ReplicaSet `ns/name`: its Deployment, or itself when it has no
    /// controller.
    pub(crate) fn of_replicaset(&self, ns: &str, name: &str) -> Resolution {
        match self.replicasets.get(&(ns.to_string(), name.to_string())) {
            None => Resolution::NeedReplicaSet {
                namespace: ns.to_string(),
                name: name.to_string(),
            },
            Some(Some((_kind, owner))) => Resolution::Workload(format!("{ns}/{owner}")),
            Some(None) => Resolution::Workload(format!("{ns}/{name}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner(kind: &str, name: &str, controller: Option<bool>) -> OwnerReference {
        OwnerReference {
            api_version: "apps/v1".into(),
            kind: kind.into(),
            name: name.into(),
            uid: format!("uid-{name}"),
            controller,
            block_owner_deletion: None,
        }
    }

    fn meta(ns: &str, name: &str, owners: Vec<OwnerReference>) -> ObjectMeta {
        ObjectMeta {
            namespace: Some(ns.into()),
            name: Some(name.into()),
            owner_references: Some(owners),
            ..Default::default()
        }
    }

    #[test]
    fn pod_to_deployment_through_the_cache() {
        let mut o = Owners::default();
        // The hash-like suffix is deliberately misleading: names are never parsed.
        let pod = meta(
            "shop",
            "checkout-abc-x",
            vec![owner("ReplicaSet", "web-7d9f8c6b5", Some(true))],
        );
        assert_eq!(
            o.of_pod(&pod),
            Some(Resolution::NeedReplicaSet {
                namespace: "shop".into(),
                name: "web-7d9f8c6b5".into()
            })
        );
        o.apply_replicaset(&ReplicaSet {
            metadata: meta(
                "shop",
                "web-7d9f8c6b5",
                vec![owner("Deployment", "checkout", Some(true))],
            ),
            ..Default::default()
        });
        assert_eq!(
            o.of_pod(&pod),
            Some(Resolution::Workload("shop/checkout".into()))
        );
        // A bare ReplicaSet is its own workload.
        o.replicaset_unknown("shop", "lonely");
        let pod2 = meta(
            "shop",
            "lonely-1",
            vec![owner("ReplicaSet", "lonely", None)],
        );
        assert_eq!(
            o.of_pod(&pod2),
            Some(Resolution::Workload("shop/lonely".into()))
        );
    }

    #[test]
    fn direct_owners_bare_pods_and_malformed() {
        let o = Owners::default();
        let sts = meta("db", "pg-0", vec![owner("StatefulSet", "pg", Some(true))]);
        assert_eq!(o.of_pod(&sts), Some(Resolution::Workload("db/pg".into())));
        // The controller wins over other references.
        let two = meta(
            "db",
            "p",
            vec![
                owner("Thing", "other", None),
                owner("DaemonSet", "agent", Some(true)),
            ],
        );
        assert_eq!(
            o.of_pod(&two),
            Some(Resolution::Workload("db/agent".into()))
        );
        // Kinds medic does not know (a custom controller) own their pods as named.
        let custom = meta("db", "r-1", vec![owner("Rollout", "canary", Some(true))]);
        assert_eq!(
            o.of_pod(&custom),
            Some(Resolution::Workload("db/canary".into()))
        );
        let bare = meta("db", "debug", vec![]);
        assert_eq!(
            o.of_pod(&bare),
            Some(Resolution::Workload("db/debug".into()))
        );
        // An empty owner reference is ignored; a pod without name or namespace has no answer.
        let empty = meta("db", "p", vec![owner("", "", Some(true))]);
        assert_eq!(o.of_pod(&empty), Some(Resolution::Workload("db/p".into())));
        assert_eq!(o.of_pod(&ObjectMeta::default()), None);
    }
}
