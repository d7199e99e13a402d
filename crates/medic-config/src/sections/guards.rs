use crate::node::Node;
use crate::reader::{Ctx, MapReader};
use crate::types::GuardsConfig;

pub(super) fn read(node: &Node, cx: &mut Ctx) -> GuardsConfig {
    let d = GuardsConfig::default();
    let mut m = MapReader::new(node, "`guards`", cx);
    // Limits of 0 would silently stop every action; `kill_switch` is the way to say that.
    let c = GuardsConfig {
        kill_switch: m.bool_or("kill_switch", d.kill_switch),
        kill_switch_file: m.path("kill_switch_file", false),
        max_actions_per_hour: m.u32_or("max_actions_per_hour", d.max_actions_per_hour, 1),
        max_services_per_hour: m.u32_or("max_services_per_hour", d.max_services_per_hour, 1),
        max_actions_per_target_per_hour: m.u32_or(
            "max_actions_per_target_per_hour",
            d.max_actions_per_target_per_hour,
            1,
        ),
        max_concurrent_actions: m.u32_or("max_concurrent_actions", d.max_concurrent_actions, 1),
    };
    m.finish();
    c
}
