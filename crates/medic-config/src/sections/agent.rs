use crate::node::Node;
use crate::reader::{Ctx, MapReader};
use crate::types::AgentConfig;

pub(super) fn read(node: &Node, cx: &mut Ctx) -> AgentConfig {
    let d = AgentConfig::default();
    let mut m = MapReader::new(node, "`agent`", cx);
    let c = AgentConfig {
        tick: m.duration_or("tick", d.tick, false),
        diagnosis_settle: m.duration_or("diagnosis_settle", d.diagnosis_settle, true),
        change_lookback: m.duration_or("change_lookback", d.change_lookback, true),
        dry_run: m.bool_or("dry_run", d.dry_run),
        verification_alpha: m.f64_or(
            "verification_alpha",
            d.verification_alpha,
            |a| a > 0.0 && a <= 0.2,
            "a significance level above 0 and at most 0.2",
        ),
    };
    m.finish();
    c
}
