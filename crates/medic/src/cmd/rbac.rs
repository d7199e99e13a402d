//! `medic rbac --config FILE`: the least-privilege RBAC manifests for the Kubernetes sources
//! and actions a config enables — exactly what they read and write, nothing more.

use clap::Args;
use medic_act::kubernetes::rbac::{Need, PolicyRule, WATCH_RULES, merge, needs};
use medic_config::{Config, KubeWatch, SourceKind};
use medic_core::Mode;
use std::collections::BTreeSet;
use std::path::PathBuf;

#[derive(Args)]
pub struct RbacArgs {
    /// Path to medic.yaml.
    #[arg(long, short)]
    pub config: PathBuf,
    /// The ServiceAccount medic runs as.
    #[arg(long, default_value = "medic")]
    pub service_account: String,
    /// The namespace medic runs in.
    #[arg(long, default_value = "medic")]
    pub namespace: String,
    /// Name of the (Cluster)Roles and bindings.
    #[arg(long, default_value = "medic")]
    pub name: String,
}

const CORE: &str = "";
const APPS: &str = "apps";
const WORKLOADS_READ: &[Need] = &[
    Need(APPS, "deployments", &["list", "watch"]),
    Need(APPS, "statefulsets", &["list", "watch"]),
    Need(APPS, "daemonsets", &["list", "watch"]),
    Need(APPS, "replicasets", &["list", "watch"]),
];

/// What one watched kind of the `kubernetes` source reads.
fn source_needs(w: KubeWatch) -> Vec<Need> {
    match w {
        // Pods map to workloads through ReplicaSets (ownerReferences), so those are read
        // too; one not yet in the cache is fetched (`get`).
        KubeWatch::Pods => vec![
            Need(CORE, "pods", &["get", "list", "watch"]),
            Need(APPS, "replicasets", &["get", "list", "watch"]),
        ],
        // An event about a pod is attributed to the pod's workload: the same owner lookup.
        KubeWatch::Events => vec![
            Need(CORE, "events", &["list", "watch"]),
            Need(CORE, "pods", &["get"]),
            Need(APPS, "replicasets", &["get", "list", "watch"]),
        ],
        KubeWatch::Workloads => WORKLOADS_READ.to_vec(),
        // A ConfigMap change matters through the workloads whose pod templates use it.
        KubeWatch::ConfigMaps => {
            let mut v = vec![Need(CORE, "configmaps", &["list", "watch"])];
            v.extend(WORKLOADS_READ);
            v
        }
        KubeWatch::Nodes => vec![Need(CORE, "nodes", &["list", "watch"])],
        // Who calls whom: Services, their backends (EndpointSlices; Endpoints on clusters
        // without them), the pods those name mapped to workloads, and the workloads' pod
        // templates that name the Services.
        KubeWatch::Topology => {
            let mut v = vec![
                Need(CORE, "services", &["list", "watch"]),
                Need("discovery.k8s.io", "endpointslices", &["list", "watch"]),
                Need(CORE, "endpoints", &["list", "watch"]),
                Need(CORE, "pods", &["get"]),
                Need(APPS, "replicasets", &["get", "list", "watch"]),
            ];
            v.extend(WORKLOADS_READ);
            v
        }
    }
}

/// Resources that are not namespaced (granted by a ClusterRole even when medic is limited
/// to some namespaces).
fn cluster_scoped(resource: &str) -> bool {
    resource == "nodes" || resource.starts_with("nodes/")
}

/// The rules a config needs: (namespaced, cluster-scoped), and the namespaces it is limited
/// to (`None`: all namespaces, so one ClusterRole).
pub struct Plan {
    pub namespaced: Vec<PolicyRule>,
    pub cluster: Vec<PolicyRule>,
    pub namespaces: Option<Vec<String>>,
    /// Why each part is there, for the comments at the top.
    pub reasons: Vec<String>,
}

/// Actions that can change something: those of policies in `approve` or `auto` mode
/// (`recommend` and `shadow` never call the actuator).
pub fn enabled_actions(cfg: &Config) -> BTreeSet<medic_core::ActionKind> {
    cfg.policies
        .iter()
        .filter(|p| matches!(p.mode, Mode::Auto | Mode::Approve))
        .map(|p| p.action)
        .filter(|a| *a != medic_core::ActionKind::NoAction)
        .collect()
}

pub fn plan(cfg: &Config) -> Plan {
    let mut all: Vec<Need> = Vec::new();
    let mut reasons = Vec::new();
    let mut namespaces: Option<BTreeSet<String>> = Some(BTreeSet::new());
    let mut limit = |list: &[String]| match (&mut namespaces, list.is_empty()) {
        (_, true) => namespaces = None,
        (Some(set), false) => set.extend(list.iter().cloned()),
        (None, false) => {}
    };
    let mut any = false;
    for s in &cfg.sources {
        if let SourceKind::Kubernetes(k) = &s.kind {
            any = true;
            limit(&k.namespaces);
            let watched: Vec<&str> = k.watch.iter().map(|w| w.as_str()).collect();
            reasons.push(format!(
                "source `{}` watches {}",
                s.name,
                watched.join(", ")
            ));
            for w in &k.watch {
                all.extend(source_needs(*w));
            }
            if k.scrape_interval.is_some() && !k.watch.contains(&KubeWatch::Pods) {
                // Scraping annotated pods needs their addresses.
                all.push(Need(CORE, "pods", &["list", "watch"]));
            }
        }
    }
    if let Some(kube) = &cfg.actuators.kubernetes {
        any = true;
        limit(&kube.namespaces);
        let actions = enabled_actions(cfg);
        let names: Vec<&str> = actions.iter().map(|a| a.as_str()).collect();
        reasons.push(if names.is_empty() {
            "actuators.kubernetes: no policy in approve or auto mode, so no write access".into()
        } else {
            format!("actuators.kubernetes runs {}", names.join(", "))
        });
        for a in &actions {
            all.extend(needs(*a));
        }
        if actions.contains(&medic_core::ActionKind::RevertConfig) {
            reasons.push("revert_config keeps a history of ConfigMaps (list, watch)".into());
            all.extend(WATCH_RULES);
        }
    }
    if !any {
        reasons.push("nothing in this config talks to Kubernetes: no rules needed".into());
    }
    let (cluster, namespaced): (Vec<Need>, Vec<Need>) =
        all.into_iter().partition(|n| cluster_scoped(n.1));
    Plan {
        namespaced: merge(&namespaced),
        cluster: merge(&cluster),
        namespaces: namespaces.map(|s| s.into_iter().collect()),
        reasons,
    }
}

fn rules_yaml(rules: &[PolicyRule]) -> String {
    if rules.is_empty() {
        return "rules: []\n".into();
    }
    let mut out = String::from("rules:\n");
    for r in rules {
        out.push_str(&r.to_yaml());
    }
    out
}

fn subject(args: &RbacArgs) -> String {
    format!(
        "subjects:\n- kind: ServiceAccount\n  name: {}\n  namespace: {}\n",
        args.service_account, args.namespace
    )
}

/// The manifests, as one multi-document YAML.
pub fn render(plan: &Plan, args: &RbacArgs) -> String {
    let mut out = String::from("# RBAC for medic, generated by `medic rbac` from its config:\n");
    for r in &plan.reasons {
        out.push_str(&format!("#   {r}\n"));
    }
    let name = &args.name;
    let mut docs: Vec<String> = Vec::new();
    let mut cluster_rules = plan.cluster.clone();
    match &plan.namespaces {
        None => cluster_rules.extend(plan.namespaced.iter().cloned()),
        Some(list) => {
            for ns in list {
                if plan.namespaced.is_empty() {
                    break;
                }
                docs.push(format!(
                    "apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata:\n  name: {name}\n  namespace: {ns}\n{}",
                    rules_yaml(&plan.namespaced)
                ));
                docs.push(format!(
                    "apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata:\n  name: {name}\n  namespace: {ns}\nroleRef:\n  apiGroup: rbac.authorization.k8s.io\n  kind: Role\n  name: {name}\n{}",
                    subject(args)
                ));
            }
        }
    }
    if !cluster_rules.is_empty() {
        cluster_rules.sort();
        docs.insert(
            0,
            format!(
                "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n  name: {name}\n{}",
                rules_yaml(&cluster_rules)
            ),
        );
        docs.insert(
            1,
            format!(
                "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata:\n  name: {name}\nroleRef:\n  apiGroup: rbac.authorization.k8s.io\n  kind: ClusterRole\n  name: {name}\n{}",
                subject(args)
            ),
        );
    }
    for d in docs {
        out.push_str("---\n");
        out.push_str(&d);
    }
    out
}
