use super::check_http_url;
use crate::node::Node;
use crate::reader::{Ctx, MapReader, to_string};
use crate::types::{
    ActuatorsConfig, KubeConnection, KubernetesActuatorConfig, LocalActuatorConfig,
};
use std::time::Duration;

pub(super) fn read(node: &Node, cx: &mut Ctx) -> ActuatorsConfig {
    let mut m = MapReader::new(node, "`actuators`", cx);
    let local = m.node("local").and_then(|n| local(n, m.cx));
    let kubernetes = m.node("kubernetes").map(|n| kubernetes(n, m.cx));
    m.finish();
    ActuatorsConfig { local, kubernetes }
}

/// `kubeconfig` and `context`, shared by the Kubernetes source and actuator.
pub(super) fn kube_connection(m: &mut MapReader) -> KubeConnection {
    KubeConnection {
        kubeconfig: m.path("kubeconfig", false),
        context: m.field("context", false, crate::reader::to_non_empty_string),
    }
}

fn kubernetes(node: &Node, cx: &mut Ctx) -> KubernetesActuatorConfig {
    let d = KubernetesActuatorConfig::default();
    let mut m = MapReader::new(node, "`actuators.kubernetes`", cx);
    let connection = kube_connection(&mut m);
    let timeout = m.duration_or("timeout", d.timeout, false);
    let field_manager = m
        .field("field_manager", false, crate::reader::to_non_empty_string)
        .unwrap_or(d.field_manager);
    let history_file = m
        .path("history_file", false)
        .unwrap_or_else(|| m.cx.resolve(&d.history_file.to_string_lossy()));
    let history_depth = m.usize_or("history_depth", d.history_depth, 1, 100);
    let namespaces = m.str_list("namespaces", false).unwrap_or_default();
    let exclude_namespaces = m
        .str_list("exclude_namespaces", false)
        .unwrap_or(d.exclude_namespaces);
    m.finish();
    KubernetesActuatorConfig {
        connection,
        timeout,
        field_manager,
        history_file,
        history_depth,
        namespaces,
        exclude_namespaces,
    }
}

fn local(node: &Node, cx: &mut Ctx) -> Option<LocalActuatorConfig> {
    let mut m = MapReader::new(node, "`actuators.local`", cx);
    let url = m.field("supervisor_url", true, |n, label, cx| {
        let url = to_string(n, label, cx)?;
        check_http_url(&url, n.pos, label, cx);
        Some(url)
    });
    let timeout = m.duration_or("timeout", Duration::from_secs(30), false);
    m.finish();
    Some(LocalActuatorConfig {
        supervisor_url: url?,
        timeout,
    })
}
