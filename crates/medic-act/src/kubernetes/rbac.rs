//! The RBAC rules the `kubernetes` actuator needs, per action, reads included, so that
//! `medic rbac` can print a Role/ClusterRole granting exactly those and nothing more.
//!
//! Every workload action reads its target and patches it (the idempotency record is an
//! annotation on the object, see `ledger`); resolving a `namespace/name` service reads
//! Deployments, then StatefulSets, then DaemonSets. The tables below are the single source:
//! the integration tests run each action under a ServiceAccount bound to exactly these rules.

use medic_core::ActionKind;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// One RBAC rule as a Role or ClusterRole lists it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyRule {
    pub api_groups: Vec<&'static str>,
    pub resources: Vec<&'static str>,
    pub verbs: Vec<&'static str>,
}

impl PolicyRule {
    /// The rule as a YAML list item (two-space indent inside `rules:`).
    pub fn to_yaml(&self) -> String {
        let list = |v: &[&str]| {
            v.iter()
                .map(|s| format!("{s:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        format!(
            "- apiGroups: [{}]\n  resources: [{}]\n  verbs: [{}]\n",
            list(&self.api_groups),
            list(&self.resources),
            list(&self.verbs)
        )
    }
}

/// One needed permission: API group, resource (with subresource), verbs.
#[derive(Clone, Copy, Debug)]
pub struct Need(
    pub &'static str,
    pub &'static str,
    pub &'static [&'static str],
);

const APPS: &str = "apps";
const CORE: &str = "";

/// Resolving `namespace/name` and reading/patching the target workload (its ledger annotation).
const WORKLOAD: &[Need] = &[
    Need(APPS, "deployments", &["get", "patch"]),
    Need(APPS, "statefulsets", &["get", "patch"]),
    Need(APPS, "daemonsets", &["get", "patch"]),
];

/// The rules for one action kind.
pub fn needs(kind: ActionKind) -> Vec<Need> {
    let mut v: Vec<Need> = Vec::new();
    match kind {
        ActionKind::RestartWorkload | ActionKind::SetResources => v.extend(WORKLOAD),
        ActionKind::ScaleWorkload => {
            v.extend(WORKLOAD);
            // The replica count is read from the workload; only the write goes to `scale`.
            v.push(Need(APPS, "deployments/scale", &["patch"]));
            v.push(Need(APPS, "statefulsets/scale", &["patch"]));
            // An HPA that targets the workload is raised instead of fought.
            v.push(Need(
                "autoscaling",
                "horizontalpodautoscalers",
                &["list", "patch"],
            ));
        }
        ActionKind::RollbackRelease => {
            v.extend(WORKLOAD);
            // The Deployment's ReplicaSets, or a StatefulSet's or DaemonSet's
            // ControllerRevisions, to find the previous revision's template.
            v.push(Need(APPS, "replicasets", &["list"]));
            v.push(Need(APPS, "controllerrevisions", &["list"]));
        }
        ActionKind::RevertConfig => {
            v.extend(WORKLOAD);
            v.push(Need(CORE, "configmaps", &["get", "patch"]));
        }
        ActionKind::DeletePod => {
            v.extend(WORKLOAD);
            v.push(Need(CORE, "pods", &["get", "list", "delete"]));
            // A pod's owner chain (pod → ReplicaSet → Deployment) for the idempotency record.
            v.push(Need(APPS, "replicasets", &["get"]));
        }
        ActionKind::CordonNode => v.push(Need(CORE, "nodes", &["get", "patch"])),
        ActionKind::DrainNode => {
            v.push(Need(CORE, "nodes", &["get", "patch"]));
            v.push(Need(CORE, "pods", &["list"]));
            v.push(Need(CORE, "pods/eviction", &["create"]));
        }
        ActionKind::IsolateWorkload => {
            v.extend(WORKLOAD);
            v.push(Need(
                "networking.k8s.io",
                "networkpolicies",
                &["get", "create"],
            ));
        }
        ActionKind::NoAction => {}
    }
    v
}

/// What the ConfigMap history watcher (started with the actuator, needed by `revert_config`)
/// reads: every ConfigMap in the watched namespaces (cluster-wide when `namespaces` is empty).
pub const WATCH_RULES: &[Need] = &[Need(CORE, "configmaps", &["list", "watch"])];

/// The RBAC rules the given actions need, merged: one rule per API group and verb set,
/// sorted, without duplicates. Add [`WATCH_RULES`] when `revert_config` is among them (or
/// use [`required_rules_with_watch`]).
pub fn required_rules(kinds: &[ActionKind]) -> Vec<PolicyRule> {
    let needs: Vec<Need> = kinds.iter().flat_map(|k| needs(*k)).collect();
    merge(&needs)
}

/// [`required_rules`] plus what the actuator's history watcher needs: what a deployment of
/// medic with the `kubernetes` actuator must be granted.
pub fn required_rules_with_watch(kinds: &[ActionKind]) -> Vec<PolicyRule> {
    let mut needs: Vec<Need> = kinds.iter().flat_map(|k| needs(*k)).collect();
    needs.extend(WATCH_RULES);
    merge(&needs)
}

/// Merges needs: verbs per (group, resource), then resources with equal verbs per group.
pub fn merge(needs: &[Need]) -> Vec<PolicyRule> {
    let mut per_resource: BTreeMap<(&'static str, &'static str), BTreeSet<&'static str>> =
        BTreeMap::new();
    for Need(group, resource, verbs) in needs {
        per_resource
            .entry((group, resource))
            .or_default()
            .extend(verbs.iter().copied());
    }
    let mut grouped: BTreeMap<(&'static str, Vec<&'static str>), Vec<&'static str>> =
        BTreeMap::new();
    for ((group, resource), verbs) in per_resource {
        grouped
            .entry((group, verbs.into_iter().collect()))
            .or_default()
            .push(resource);
    }
    let mut rules: Vec<PolicyRule> = grouped
        .into_iter()
        .map(|((group, verbs), resources)| PolicyRule {
            api_groups: vec![group],
            resources,
            verbs,
        })
        .collect();
    rules.sort();
    rules
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_are_merged_per_group_and_verbs() {
        let r = required_rules(&[ActionKind::CordonNode, ActionKind::DrainNode]);
        assert_eq!(
            r,
            vec![
                PolicyRule {
                    api_groups: vec![""],
                    resources: vec!["nodes"],
                    verbs: vec!["get", "patch"]
                },
                PolicyRule {
                    api_groups: vec![""],
                    resources: vec!["pods"],
                    verbs: vec!["list"]
                },
                PolicyRule {
                    api_groups: vec![""],
                    resources: vec!["pods/eviction"],
                    verbs: vec!["create"]
                },
            ]
        );
        assert!(required_rules(&[ActionKind::NoAction]).is_empty());
        let restart = required_rules(&[ActionKind::RestartWorkload]);
        assert_eq!(restart.len(), 1);
        assert_eq!(
            restart[0].resources,
            ["daemonsets", "deployments", "statefulsets"]
        );
        assert_eq!(restart[0].verbs, ["get", "patch"]);
    }

    #[test]
    fn every_action_but_no_action_needs_something_and_yaml_reads() {
        for k in ActionKind::ALL {
            assert_eq!(
                required_rules(&[k]).is_empty(),
                k == ActionKind::NoAction,
                "{k}"
            );
        }
        let all = required_rules_with_watch(&ActionKind::ALL);
        let cm = all
            .iter()
            .find(|r| r.resources.contains(&"configmaps"))
            .unwrap();
        assert_eq!(cm.verbs, ["get", "list", "patch", "watch"]);
        let scale = required_rules(&[ActionKind::ScaleWorkload]);
        assert!(
            scale
                .iter()
                .any(|r| r.api_groups == ["autoscaling"] && r.verbs == ["list", "patch"])
        );
        assert_eq!(
            scale[1].to_yaml(),
            "- apiGroups: [\"apps\"]\n  resources: [\"deployments/scale\", \"statefulsets/scale\"]\n  verbs: [\"patch\"]\n"
        );
    }
}
