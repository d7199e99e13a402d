//! `topology.services`: who calls whom. Every dependency must itself be declared, so a typo
//! cannot silently split the graph.

use crate::error::Pos;
use crate::node::Node;
use crate::reader::{Ctx, MapReader, did_you_mean, seq_items, to_non_empty_string};
use medic_core::Topology;

pub(super) fn read(node: &Node, cx: &mut Ctx) -> Topology {
    let mut topology = Topology::default();
    let mut m = MapReader::new(node, "`topology`", cx);
    let services = m.node("services");
    m.finish();
    let Some(services) = services else {
        return topology;
    };
    let Some(entries) = services.as_map() else {
        cx.error(
            services.pos,
            format!(
                "invalid `services` in `topology`: expected a mapping of service names, found {}",
                services.describe()
            ),
        );
        return topology;
    };
    let mut edges: Vec<(String, String, Pos)> = Vec::new();
    for (key, value) in entries {
        let Some(service) = key.key_str().filter(|s| !s.is_empty()) else {
            cx.error(
                key.pos,
                format!(
                    "invalid service name in `topology.services`: expected a name, found {}",
                    key.describe()
                ),
            );
            continue;
        };
        topology.add_service(service);
        let mut s = MapReader::new(value, format!("service `{service}`"), cx);
        if let Some(deps) = s.node("depends_on") {
            for dep in seq_items(deps, "`depends_on`", s.cx) {
                if let Some(name) = to_non_empty_string(dep, "`depends_on` entry", s.cx) {
                    edges.push((service.to_string(), name, dep.pos));
                }
            }
        }
        s.finish();
    }
    for (caller, callee, pos) in edges {
        if topology.contains(&callee) {
            topology.add_edge(&caller, &callee);
            continue;
        }
        let hint = did_you_mean(&callee, topology.services())
            .map(|s| format!("; did you mean `{s}`?"))
            .unwrap_or_default();
        cx.error(
            pos,
            format!(
                "service `{caller}` depends on `{callee}`, which is not declared: expected a service listed under `topology.services`{hint}"
            ),
        );
    }
    topology
}
