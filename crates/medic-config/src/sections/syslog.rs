//! `type: syslog` sources: where to listen, which transports, and the bounds that keep a
//! flood from growing memory.

use crate::node::excerpt;
use crate::reader::{MapReader, to_non_empty_string, to_string};
use crate::types::{SourceKind, SyslogProtocol, SyslogSourceConfig};
use std::net::SocketAddr;

pub(super) fn read(m: &mut MapReader) -> Option<SourceKind> {
    let d = SyslogSourceConfig::default();
    let listen = m
        .field("listen", false, |n, label, cx| {
            let s = to_string(n, label, cx)?;
            if s.parse::<SocketAddr>().is_err() {
                cx.error(
                    n.pos,
                    format!(
                        "invalid {label}: expected `ip:port` such as `127.0.0.1:5514`, found `{}`",
                        excerpt(&s)
                    ),
                );
                return None;
            }
            Some(s)
        })
        .unwrap_or(d.listen);
    let protocol = match m
        .enum_value("protocol", false, &["udp", "tcp", "both"])
        .as_deref()
    {
        Some("udp") => SyslogProtocol::Udp,
        Some("tcp") => SyslogProtocol::Tcp,
        _ => SyslogProtocol::Both,
    };
    let service = m.field("service", false, to_non_empty_string);
    let max_message_bytes = m.usize_or("max_message_bytes", d.max_message_bytes, 480, 16 << 20);
    let max_connections = m.usize_or("max_connections", d.max_connections, 1, 65_536);
    let queue = m.usize_or("queue", d.queue, 1, 1 << 20);
    Some(SourceKind::Syslog(SyslogSourceConfig {
        listen,
        protocol,
        service,
        max_message_bytes,
        max_connections,
        queue,
    }))
}

#[cfg(test)]
mod tests {
    use crate::types::{SourceKind, SyslogProtocol};
    use std::path::Path;

    fn env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn syslog_source_and_server_limits_read_with_defaults() {
        let yaml = "sources:\n  - name: sys\n    type: syslog\n    listen: 127.0.0.1:5514\n    protocol: tcp\n    max_message_bytes: 4096\nserver:\n  max_body_bytes: 2048\n";
        let c = crate::load_str(yaml, "m.yaml", Path::new("/"), &env).unwrap();
        let SourceKind::Syslog(s) = &c.sources[0].kind else {
            panic!("not syslog")
        };
        assert_eq!(s.protocol, SyslogProtocol::Tcp);
        assert_eq!(s.max_message_bytes, 4096);
        assert_eq!(s.queue, 4096);
        assert_eq!(c.server.max_body_bytes, 2048);
        assert_eq!(c.server.max_decompressed_bytes, 64 << 20);
    }

    #[test]
    fn bad_syslog_values_are_errors_with_positions() {
        let yaml = "sources:\n  - name: sys\n    type: syslog\n    listen: nowhere\n    protocol: sctp\n    queue: 0\n    bogus: 1\n";
        let errs = crate::load_str(yaml, "m.yaml", Path::new("/"), &env).unwrap_err();
        let text: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
        let all = text.join("\n");
        assert!(all.contains("nowhere"), "{all}");
        assert!(all.contains("sctp"), "{all}");
        assert!(all.contains("queue"), "{all}");
        assert!(all.contains("bogus"), "{all}");
    }
}
