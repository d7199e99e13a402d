use crate::node::Node;
use crate::reader::{Ctx, MapReader};
use crate::types::CorrelationConfig;

pub(super) fn read(node: &Node, cx: &mut Ctx) -> CorrelationConfig {
    let d = CorrelationConfig::default();
    let mut m = MapReader::new(node, "`correlation`", cx);
    let c = CorrelationConfig {
        window: m.duration_or("window", d.window, false),
        max_hops: m.usize_or("max_hops", d.max_hops, 0, 64),
        quiet_after_close: m.duration_or("quiet_after_close", d.quiet_after_close, true),
    };
    m.finish();
    c
}
