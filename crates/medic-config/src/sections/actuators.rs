use super::check_http_url;
use crate::node::Node;
use crate::reader::{Ctx, MapReader, to_string};
use crate::types::{ActuatorsConfig, LocalActuatorConfig};
use std::time::Duration;

pub(super) fn read(node: &Node, cx: &mut Ctx) -> ActuatorsConfig {
    let mut m = MapReader::new(node, "`actuators`", cx);
    let local = m.node("local").and_then(|n| local(n, m.cx));
    m.finish();
    ActuatorsConfig { local }
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
