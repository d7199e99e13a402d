use crate::node::{Node, excerpt};
use crate::reader::{Ctx, MapReader, to_string};
use crate::types::ServerConfig;
use std::net::SocketAddr;

pub(super) fn read(node: &Node, cx: &mut Ctx) -> ServerConfig {
    let d = ServerConfig::default();
    let mut m = MapReader::new(node, "`server`", cx);
    let enabled = m.bool_or("enabled", d.enabled);
    let listen = m
        .field("listen", false, |n, label, cx| {
            let s = to_string(n, label, cx)?;
            if s.parse::<SocketAddr>().is_err() {
                cx.error(
                    n.pos,
                    format!(
                        "invalid {label}: expected `ip:port` such as `127.0.0.1:9400`, found `{}`",
                        excerpt(&s)
                    ),
                );
                return None;
            }
            Some(s)
        })
        .unwrap_or(d.listen);
    m.finish();
    ServerConfig { enabled, listen }
}
