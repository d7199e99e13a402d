use crate::node::Node;
use crate::reader::{Ctx, MapReader};
use crate::types::StoreConfig;

pub(super) fn read(node: &Node, cx: &mut Ctx) -> StoreConfig {
    let mut m = MapReader::new(node, "`store`", cx);
    let sqlite = m
        .path("sqlite", false)
        .unwrap_or_else(|| StoreConfig::default().sqlite);
    m.finish();
    StoreConfig { sqlite }
}
