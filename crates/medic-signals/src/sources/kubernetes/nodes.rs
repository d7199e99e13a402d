//! Nodes: Ready=False/Unknown, MemoryPressure/DiskPressure/PIDPressure and cordons
//! (`spec.unschedulable`) → `Log` signals on every transition, service `node/<name>`.
//! On first sight only problems are reported; recoveries only after a problem was seen.

use super::common::{Fields, Out};
use crate::redact::Redactor;
use k8s_openapi::api::core::v1::Node;
use medic_core::Level;
use std::collections::BTreeSet;

const PRESSURES: [&str; 3] = ["MemoryPressure", "DiskPressure", "PIDPressure"];

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct NodeObs {
    /// The Ready condition's status (`True`, `False`, `Unknown`; empty when absent).
    ready: String,
    pressures: BTreeSet<String>,
    cordoned: bool,
}

pub(crate) fn observe_node(
    prev: Option<&NodeObs>,
    node: &Node,
    redactor: &Redactor,
    out: &mut Out,
) -> Option<NodeObs> {
    let name = node.metadata.name.as_deref()?;
    let service = format!("node/{name}");
    let conditions = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_deref())
        .unwrap_or_default();
    let ready = conditions.iter().find(|c| c.type_ == "Ready");
    let mut now = NodeObs {
        ready: ready.map(|c| c.status.clone()).unwrap_or_default(),
        pressures: conditions
            .iter()
            .filter(|c| PRESSURES.contains(&c.type_.as_str()) && c.status == "True")
            .map(|c| c.type_.clone())
            .collect(),
        cordoned: node
            .spec
            .as_ref()
            .and_then(|s| s.unschedulable)
            .unwrap_or(false),
    };
    let fields = |reason: &str| {
        Fields::new()
            .kv("k8s.kind", "Node")
            .kv("k8s.reason", reason)
            .kv("k8s.node", name)
    };
    let was_ready = prev.map_or("True", |p| p.ready.as_str());
    let not_ready = |s: &str| s == "False" || s == "Unknown";
    if not_ready(&now.ready) && now.ready != was_ready {
        let c = ready.cloned().unwrap_or_default();
        let f = fields("NotReady")
            .kv("k8s.status", &now.ready)
            .kv("k8s.condition_reason", c.reason.as_deref().unwrap_or(""))
            .kv(
                "k8s.message",
                redactor.redact(c.message.as_deref().unwrap_or("")),
            );
        out.log(
            &service,
            Some(name),
            Level::Error,
            format!("node {name} not ready"),
            f,
        );
    } else if now.ready == "True" && not_ready(was_ready) {
        out.log(
            &service,
            Some(name),
            Level::Info,
            format!("node {name} ready"),
            fields("Ready"),
        );
    }
    let before = prev.map(|p| p.pressures.clone()).unwrap_or_default();
    for p in now.pressures.difference(&before) {
        out.log(
            &service,
            Some(name),
            Level::Warn,
            format!("node {name} under {p}"),
            fields(p),
        );
    }
    for p in before.difference(&now.pressures) {
        out.log(
            &service,
            Some(name),
            Level::Info,
            format!("node {name} no longer under {p}"),
            fields(p),
        );
    }
    let was_cordoned = prev.is_some_and(|p| p.cordoned);
    if now.cordoned && !was_cordoned {
        out.log(
            &service,
            Some(name),
            Level::Warn,
            format!("node {name} cordoned"),
            fields("Cordoned"),
        );
    } else if !now.cordoned && was_cordoned {
        out.log(
            &service,
            Some(name),
            Level::Info,
            format!("node {name} uncordoned"),
            fields("Uncordoned"),
        );
    }
    // A node without a Ready condition yet (just registered) is not "recovered" later.
    if now.ready.is_empty() {
        now.ready = was_ready.to_string();
    }
    Some(now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{NodeCondition, NodeSpec, NodeStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use medic_core::{SignalPayload, Ts};

    fn node(ready: &str, pressure: Option<&str>, cordoned: bool) -> Node {
        let mut conditions = vec![NodeCondition {
            type_: "Ready".into(),
            status: ready.into(),
            reason: Some("KubeletNotReady".into()),
            message: Some("runtime down".into()),
            ..Default::default()
        }];
        if let Some(p) = pressure {
            conditions.push(NodeCondition {
                type_: p.into(),
                status: "True".into(),
                ..Default::default()
            });
        }
        Node {
            metadata: ObjectMeta {
                name: Some("n1".into()),
                ..Default::default()
            },
            spec: Some(NodeSpec {
                unschedulable: Some(cordoned),
                ..Default::default()
            }),
            status: Some(NodeStatus {
                conditions: Some(conditions),
                ..Default::default()
            }),
        }
    }

    fn messages(nodes: &[Node]) -> Vec<Vec<String>> {
        let mut prev = None;
        nodes
            .iter()
            .map(|n| {
                let mut out = Out::new("k8s", Ts(1));
                prev = observe_node(prev.as_ref(), n, Redactor::builtin(), &mut out);
                out.signals
                    .iter()
                    .map(|s| {
                        assert_eq!(s.service.as_deref(), Some("node/n1"));
                        match &s.payload {
                            SignalPayload::Log(l) => l.message.clone(),
                            p => panic!("expected a log line, got {p:?}"),
                        }
                    })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn transitions() {
        let m = messages(&[
            node("True", None, false),
            node("False", None, false),
            node("Unknown", None, false),
            node("True", Some("DiskPressure"), true),
            node("True", Some("DiskPressure"), true),
            node("True", None, false),
        ]);
        assert!(m[0].is_empty());
        assert_eq!(m[1], vec!["node n1 not ready"]);
        assert_eq!(m[2], vec!["node n1 not ready"]);
        assert_eq!(
            m[3],
            vec![
                "node n1 ready",
                "node n1 under DiskPressure",
                "node n1 cordoned"
            ]
        );
        assert!(m[4].is_empty());
        assert_eq!(
            m[5],
            vec!["node n1 no longer under DiskPressure", "node n1 uncordoned"]
        );
        // First sight of a broken node reports it.
        assert_eq!(messages(&[node("False", None, true)])[0].len(), 2);
    }

    #[test]
    fn malformed_nodes_do_not_panic() {
        let mut out = Out::new("k8s", Ts(1));
        assert!(observe_node(None, &Node::default(), Redactor::builtin(), &mut out).is_none());
        let bare = Node {
            metadata: ObjectMeta {
                name: Some("n".into()),
                ..Default::default()
            },
            ..Default::default()
        };
        let o = observe_node(None, &bare, Redactor::builtin(), &mut out);
        assert!(observe_node(o.as_ref(), &bare, Redactor::builtin(), &mut out).is_some());
        assert!(out.signals.is_empty());
    }
}
