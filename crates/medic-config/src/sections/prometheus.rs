//! `prometheus:`: a Prometheus server's HTTP API, used for evidence at diagnosis and for
//! `verify_promql` at verification.

use super::check_http_url;
use crate::node::Node;
use crate::reader::{Ctx, MapReader, seq_items, to_non_empty_string};
use crate::types::{EvidenceQuery, PrometheusConfig};

pub(super) fn read(node: &Node, cx: &mut Ctx) -> Option<PrometheusConfig> {
    let d = PrometheusConfig::default();
    let mut m = MapReader::new(node, "`prometheus`", cx);
    let url_node = m.take("url");
    let url = m.field("url", true, to_non_empty_string);
    if let (Some(u), Some(n)) = (&url, url_node) {
        check_http_url(u, n.pos, "`url` in `prometheus`", m.cx);
    }
    let timeout = m.duration_or("timeout", d.timeout, false);
    let mut evidence_queries = Vec::new();
    if let Some(list) = m.node("evidence_queries") {
        for item in seq_items(list, "`evidence_queries` in `prometheus`", m.cx) {
            let mut q = MapReader::new(item, "evidence query", m.cx);
            let name = q.field("name", true, to_non_empty_string);
            let expr = q.field("expr", true, to_non_empty_string);
            q.finish();
            if let (Some(name), Some(expr)) = (name, expr) {
                evidence_queries.push(EvidenceQuery { name, expr });
            }
        }
    }
    m.finish();
    Some(PrometheusConfig {
        url: url?.trim_end_matches('/').to_string(),
        timeout,
        evidence_queries,
    })
}
