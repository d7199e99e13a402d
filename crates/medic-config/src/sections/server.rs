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
    let max_body_bytes = m.usize_or("max_body_bytes", d.max_body_bytes, 1024, 1 << 30);
    let max_decompressed_bytes = m.usize_or(
        "max_decompressed_bytes",
        d.max_decompressed_bytes,
        1024,
        1 << 32,
    );
    let remote_write_service_label = m
        .field(
            "remote_write_service_label",
            false,
            crate::reader::to_non_empty_string,
        )
        .unwrap_or(d.remote_write_service_label);
    let otlp_grpc_listen = m
        .field("otlp_grpc_listen", false, |n, label, cx| {
            let s = to_string(n, label, cx)?;
            if s.parse::<SocketAddr>().is_err() {
                cx.error(
                    n.pos,
                    format!(
                        "invalid {label}: expected `ip:port` such as `127.0.0.1:4317`, found `{}`",
                        excerpt(&s)
                    ),
                );
                return None;
            }
            Some(s)
        })
        .unwrap_or(d.otlp_grpc_listen);
    let alert_service_labels = m
        .str_list("alert_service_labels", false)
        .unwrap_or(d.alert_service_labels);
    m.finish();
    ServerConfig {
        enabled,
        listen,
        max_body_bytes,
        max_decompressed_bytes,
        remote_write_service_label,
        otlp_grpc_listen,
        alert_service_labels,
    }
}
