use crate::node::{Node, excerpt};
use crate::reader::{Ctx, MapReader, seq_items, to_non_empty_string, to_string};
use crate::types::{
    AuthConfig, ClientAuth, Role, ServerConfig, TlsConfig, TokenConfig, TokenSecret,
};
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
    let auth = m.node("auth").map(|n| auth(n, m.cx)).unwrap_or_default();
    let tls = m.node("tls").and_then(|n| tls(n, m.cx));
    m.finish();
    if enabled {
        check_exposure(node, &listen, &auth, cx);
    }
    ServerConfig {
        enabled,
        listen,
        max_body_bytes,
        max_decompressed_bytes,
        remote_write_service_label,
        otlp_grpc_listen,
        alert_service_labels,
        auth,
        tls,
    }
}

/// `server.tls`: `cert` and `key` always; `client_auth` other than `none` needs `client_ca`,
/// and a `client_ca` that nothing uses is a mistake worth saying.
fn tls(node: &Node, cx: &mut Ctx) -> Option<TlsConfig> {
    let location = cx.errs.location(node.pos);
    let mut m = MapReader::new(node, "`server.tls`", cx);
    let cert = m.path("cert", true);
    let key = m.path("key", true);
    let client_ca = m.path("client_ca", false);
    let names: Vec<&str> = ClientAuth::ALL.iter().map(|c| c.as_str()).collect();
    let given = m.enum_value("client_auth", false, &names);
    m.finish();
    let client_auth = match given.as_deref().and_then(ClientAuth::parse) {
        Some(c) => c,
        // A CA alone means "clients must present a certificate it signed".
        None if client_ca.is_some() => ClientAuth::Required,
        None => ClientAuth::None,
    };
    match (client_auth, &client_ca) {
        (ClientAuth::Optional | ClientAuth::Required, None) => {
            cx.error(
                node.pos,
                format!(
                    "`server.tls.client_auth: {}` needs `client_ca`: the PEM file of the CA that signs the client certificates",
                    client_auth.as_str()
                ),
            );
            return None;
        }
        (ClientAuth::None, Some(_)) if given.is_some() => {
            cx.error(
                node.pos,
                "`server.tls.client_ca` is set but `client_auth` is `none`, so no client certificate would be checked: expected `client_auth: required` (or `optional`), or no `client_ca`",
            );
            return None;
        }
        _ => {}
    }
    Some(TlsConfig {
        cert: cert?,
        key: key?,
        client_ca,
        client_auth,
        location,
    })
}

/// An enabled server needs tokens, or an explicit `unauthenticated: true` on loopback.
fn check_exposure(node: &Node, listen: &str, auth: &AuthConfig, cx: &mut Ctx) {
    let loopback = listen
        .parse::<SocketAddr>()
        .is_ok_and(|a| a.ip().is_loopback());
    if auth.unauthenticated && !loopback {
        cx.error(
            node.pos,
            format!(
                "`server.auth.unauthenticated` with `listen: {listen}`: anyone who can reach that address could push signals and use the API; expected a loopback `listen` (127.0.0.1) or `server.auth.tokens`"
            ),
        );
    } else if !auth.unauthenticated && auth.tokens.is_empty() {
        cx.error(
            node.pos,
            "the server is enabled but `server.auth.tokens` is empty: every endpoint needs a bearer token. Add tokens (`medic token new --name NAME --role ingest` prints one with its config line), or set `server.auth.unauthenticated: true` to let anyone who can reach 127.0.0.1 use it",
        );
    }
}

fn auth(node: &Node, cx: &mut Ctx) -> AuthConfig {
    let mut m = MapReader::new(node, "`server.auth`", cx);
    let unauthenticated = m.bool_or("unauthenticated", false);
    let mut tokens: Vec<TokenConfig> = Vec::new();
    if let Some(list) = m.node("tokens") {
        for item in seq_items(list, "`tokens` in `server.auth`", m.cx) {
            let Some(t) = token(item, m.cx) else {
                continue;
            };
            if let Some(first) = tokens.iter().find(|f| f.name == t.name) {
                let msg = format!(
                    "duplicate token name `{}` (first at line {}, column {}): expected one name per token, as the audit records actions by it",
                    t.name, first.location.line, first.location.col
                );
                m.cx.error(item.pos, msg);
                continue;
            }
            tokens.push(t);
        }
    }
    m.finish();
    AuthConfig {
        tokens,
        unauthenticated,
    }
}

fn token(item: &Node, cx: &mut Ctx) -> Option<TokenConfig> {
    let location = cx.errs.location(item.pos);
    let mut m = MapReader::new(item, "token", cx);
    let name = m.field("name", true, to_non_empty_string);
    let what = match &name {
        Some(n) => format!("token `{n}`"),
        None => "token".into(),
    };
    let mut m = m.renamed(what.clone());
    let names: Vec<&str> = Role::ALL.iter().map(|r| r.as_str()).collect();
    let role = m
        .enum_value("role", true, &names)
        .and_then(|r| Role::parse(&r));
    let sha = m.field("sha256", false, |n, label, cx| {
        let s = to_string(n, label, cx)?.to_ascii_lowercase();
        if s.len() != 64 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            cx.error(
                n.pos,
                format!("invalid {label}: expected the token's SHA-256 as 64 hex digits (`medic token new` prints it)"),
            );
            return None;
        }
        Some(s)
    });
    let file = m.path("file", false);
    let env = m.field("env", false, to_non_empty_string);
    let groups = m.str_list("groups", false).unwrap_or_default();
    let expires = m.field("expires", false, |n, label, cx| {
        let text = to_string(n, label, cx)?;
        let ts = medic_core::Ts::parse_rfc3339(text.trim());
        if ts.is_none() {
            cx.error(
                n.pos,
                format!(
                    "invalid {label}: expected an RFC 3339 time such as `2027-01-31T00:00:00Z`, found `{}`",
                    text.chars().take(60).collect::<String>()
                ),
            );
        }
        ts
    });
    m.finish();
    // Counted by key, so an invalid value is reported once (by its reader), not twice.
    let given = item
        .as_map()
        .unwrap_or_default()
        .iter()
        .filter(|(k, _)| matches!(k.key_str(), Some("sha256" | "file" | "env")))
        .count();
    if given != 1 {
        cx.error(
            item.pos,
            format!(
                "{what}: expected exactly one of `sha256`, `file` or `env` (the token itself is never written in the config), found {given}"
            ),
        );
        return None;
    }
    let secret = match (sha, file, env) {
        (Some(h), _, _) => TokenSecret::Sha256(h),
        (_, Some(f), _) => TokenSecret::File(f),
        (_, _, Some(e)) => TokenSecret::Env(e),
        _ => return None,
    };
    Some(TokenConfig {
        name: name?,
        role: role?,
        secret,
        groups,
        expires,
        location,
    })
}
