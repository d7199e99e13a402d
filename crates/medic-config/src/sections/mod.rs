//! One function per section of `medic.yaml`, each from a node to its typed struct. Adding a
//! section is one file here and one line in [`read_config`].

mod actuators;
mod agent;
mod correlation;
mod detectors;
mod escalation;
mod guards;
mod log_format;
mod policies;
mod prometheus;
mod server;
mod sources;
mod store;
mod syslog;
mod topology;

use crate::error::Pos;
use crate::node::{Node, excerpt};
use crate::reader::{Ctx, MapReader, seq_items, to_non_empty_string};
use crate::types::Config;

pub(crate) use policies::{ReadPolicy, read_policy_document, read_policy_list};

/// A `policy_files` entry: the glob (resolved against the config's directory) and where it
/// was written, for "matches nothing" errors.
pub(crate) struct PolicyGlob {
    pub pattern: String,
    pub pos: Pos,
}

pub(crate) struct ConfigFile {
    pub config: Config,
    pub policy_globs: Vec<PolicyGlob>,
    pub inline_policies: Vec<ReadPolicy>,
}

pub(crate) fn read_config(root: &Node, cx: &mut Ctx) -> ConfigFile {
    let mut config = Config::default();
    let mut policy_globs = Vec::new();
    let mut inline_policies = Vec::new();
    let mut m = MapReader::new(root, "the top level of the config", cx);
    if let Some(n) = m.node("agent") {
        config.agent = agent::read(n, m.cx);
    }
    if let Some(n) = m.node("sources") {
        config.sources = sources::read(n, m.cx);
    }
    if let Some(n) = m.node("detectors") {
        config.detectors = detectors::read(n, m.cx);
    }
    if let Some(n) = m.node("correlation") {
        config.correlation = correlation::read(n, m.cx);
    }
    if let Some(n) = m.node("topology") {
        config.topology = topology::read(n, m.cx);
    }
    if let Some(n) = m.node("policy_files") {
        for item in seq_items(n, "`policy_files`", m.cx) {
            if let Some(p) = to_non_empty_string(item, "`policy_files` entry", m.cx) {
                policy_globs.push(PolicyGlob {
                    pattern: m.cx.resolve_string(&p),
                    pos: item.pos,
                });
            }
        }
    }
    if let Some(n) = m.node("policies") {
        inline_policies = read_policy_list(n, m.cx);
    }
    if let Some(n) = m.node("guards") {
        config.guards = guards::read(n, m.cx);
    }
    if let Some(n) = m.node("actuators") {
        config.actuators = actuators::read(n, m.cx);
    }
    if let Some(n) = m.node("store") {
        config.store = store::read(n, m.cx);
    }
    if let Some(n) = m.node("server") {
        config.server = server::read(n, m.cx);
    }
    if let Some(n) = m.node("escalation") {
        config.escalation = escalation::read(n, m.cx);
    }
    if let Some(n) = m.node("prometheus") {
        config.prometheus = prometheus::read(n, m.cx);
    }
    if let Some(n) = m.node("redaction") {
        config.redaction = log_format::read_redaction(n, m.cx);
    }
    m.finish();
    ConfigFile {
        config,
        policy_globs,
        inline_policies,
    }
}

/// A policy file: a mapping with one key, `policies`.
pub(crate) fn read_policy_file(root: &Node, cx: &mut Ctx) -> Vec<ReadPolicy> {
    let mut m = MapReader::new(root, "the top level of the policy file", cx);
    let policies = m
        .field("policies", true, |n, _, cx| Some(read_policy_list(n, cx)))
        .unwrap_or_default();
    m.finish();
    policies
}

/// The documents of a policy file: RemediationPolicy documents, or mappings with a
/// `policies` list (whose errors are the list form's).
pub(crate) fn read_policy_documents(roots: &[Node], cx: &mut Ctx) -> Vec<ReadPolicy> {
    let mut out = Vec::new();
    for root in roots {
        if is_document(root) {
            out.extend(read_policy_document(root, cx));
        } else {
            out.extend(read_policy_file(root, cx));
        }
    }
    out
}

/// A mapping that says what it is (`apiVersion` or `kind`).
pub(crate) fn is_document(root: &Node) -> bool {
    root.as_map().is_some_and(|entries| {
        entries
            .iter()
            .any(|(k, _)| matches!(k.key_str(), Some("kind" | "apiVersion")))
    })
}

/// Whether a parsed file is a policy file: its top level holds only `policies`, or it is a
/// RemediationPolicy document.
pub(crate) fn is_policy_file(root: &Node) -> bool {
    matches!(root.as_map(), Some([(k, _)]) if k.key_str() == Some("policies")) || is_document(root)
}

/// `http://…` or `https://…` with something after it.
pub(crate) fn check_http_url(url: &str, pos: Pos, label: &str, cx: &mut Ctx) {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"));
    if !rest.is_some_and(|r| !r.is_empty() && !r.contains(char::is_whitespace)) {
        cx.error(
            pos,
            format!(
                "invalid {label}: expected an `http://` or `https://` URL, found `{}`",
                excerpt(url)
            ),
        );
    }
}
