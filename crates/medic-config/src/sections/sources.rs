//! `sources:`: a list of named inputs. Each type is one reader function and one line in
//! [`SOURCE_TYPES`].

use crate::node::Node;
use crate::reader::{Ctx, MapReader, seq_items, to_non_empty_string};
use crate::types::{PromQuery, ScrapeTarget, SourceConfig, SourceKind};
use std::collections::HashMap;
use std::time::Duration;

type KindReader = fn(&mut MapReader) -> Option<SourceKind>;

const SOURCE_TYPES: &[(&str, KindReader)] = &[
    ("log_files", log_files),
    ("prometheus_scrape", prometheus_scrape),
    ("prometheus_query", prometheus_query),
    ("procfs", procfs),
    ("process_events", process_events),
    ("change_calendar", change_calendar),
    ("kubernetes_logs", super::log_format::kubernetes_logs),
    ("stdin", super::log_format::stdin),
    ("syslog", super::syslog::read),
    ("kubernetes", kubernetes),
];

pub(super) fn read(node: &Node, cx: &mut Ctx) -> Vec<SourceConfig> {
    let mut sources: Vec<SourceConfig> = Vec::new();
    let mut first_seen: HashMap<String, (usize, usize)> = HashMap::new();
    for item in seq_items(node, "`sources`", cx) {
        let Some(source) = read_one(item, cx) else {
            continue;
        };
        let at = (source.location.line, source.location.col);
        if let Some((line, col)) = first_seen.get(&source.name) {
            cx.error(
                item.pos,
                format!(
                    "duplicate source name `{}` (first at line {line}, column {col}): expected unique source names",
                    source.name
                ),
            );
            continue;
        }
        first_seen.insert(source.name.clone(), at);
        sources.push(source);
    }
    sources
}

fn read_one(item: &Node, cx: &mut Ctx) -> Option<SourceConfig> {
    let location = cx.errs.location(item.pos);
    let mut m = MapReader::new(item, "source", cx);
    let name = m.field("name", true, to_non_empty_string);
    let what = match &name {
        Some(n) => format!("source `{n}`"),
        None => "source".into(),
    };
    let mut m = m.renamed(what);
    let type_names: Vec<&str> = SOURCE_TYPES.iter().map(|(n, _)| *n).collect();
    let Some(kind_name) = m.enum_value("type", true, &type_names) else {
        // Without a type the other keys cannot be judged.
        m.abandon();
        return None;
    };
    let reader = SOURCE_TYPES.iter().find(|(n, _)| *n == kind_name)?.1;
    let kind = reader(&mut m);
    m.finish();
    Some(SourceConfig {
        name: name?,
        kind: kind?,
        location,
    })
}

fn log_files(m: &mut MapReader) -> Option<SourceKind> {
    let paths = m.field("paths", true, |n, label, cx| {
        let list = crate::reader::to_str_list(n, label, cx)?;
        if list.is_empty() {
            cx.error(
                n.pos,
                format!("invalid {label}: expected at least one path or glob, found an empty list"),
            );
            return None;
        }
        Some(
            list.iter()
                .map(|p| cx.resolve_string(p))
                .collect::<Vec<_>>(),
        )
    });
    let service = m.field("service", false, to_non_empty_string);
    let from_start = m.bool_or("from_start", false);
    let poll = m.duration_or("poll", Duration::from_millis(500), false);
    let (format, container) = super::log_format::read_format(m);
    Some(SourceKind::LogFiles {
        paths: paths?,
        service,
        from_start,
        poll,
        format,
        container,
    })
}

fn prometheus_scrape(m: &mut MapReader) -> Option<SourceKind> {
    let file_sd = m.path("file_sd", false);
    let targets_node = m.node("targets");
    let mut targets = Vec::new();
    if let Some(n) = targets_node {
        for item in seq_items(n, "`targets`", m.cx) {
            if let Some(t) = scrape_target(item, m.cx) {
                targets.push(t);
            }
        }
    }
    let interval = m.duration_or("interval", Duration::from_secs(1), false);
    let timeout = m.duration_or("timeout", Duration::from_millis(800), false);
    if file_sd.is_none() && targets_node.is_none() {
        let msg = format!(
            "missing targets in {}: expected `file_sd` (a Prometheus file_sd JSON file) or a `targets` list",
            m.what()
        );
        m.cx.error(m.pos, msg);
        return None;
    }
    if timeout > interval {
        let msg = format!(
            "invalid `timeout` in {}: expected at most the `interval` ({interval:?}), found {timeout:?}",
            m.what()
        );
        m.cx.error(m.pos, msg);
    }
    Some(SourceKind::PrometheusScrape {
        file_sd,
        targets,
        interval,
        timeout,
    })
}

/// `prometheus_query`: `url`, `queries: [{name, expr, service_label}]`, `interval`, `timeout`.
fn prometheus_query(m: &mut MapReader) -> Option<SourceKind> {
    let url_node = m.take("url");
    let url = m.field("url", true, to_non_empty_string);
    if let (Some(u), Some(n)) = (&url, url_node) {
        super::check_http_url(u, n.pos, "`url` of a `prometheus_query` source", m.cx);
    }
    let mut queries = Vec::new();
    match m.node("queries") {
        Some(n) => {
            for item in seq_items(n, "`queries`", m.cx) {
                let mut q = MapReader::new(item, "query", m.cx);
                let name = q.field("name", true, to_non_empty_string);
                let expr = q.field("expr", true, to_non_empty_string);
                let service_label = q.str_or("service_label", "service");
                q.finish();
                if let (Some(name), Some(expr)) = (name, expr) {
                    queries.push(PromQuery {
                        name,
                        expr,
                        service_label,
                    });
                }
            }
        }
        None => {
            let msg = format!("missing required key `queries` in {}", m.what());
            m.cx.error(m.pos, msg);
            return None;
        }
    }
    let interval = m.duration_or("interval", Duration::from_secs(5), false);
    let timeout = m.duration_or("timeout", Duration::from_secs(2), false);
    Some(SourceKind::PrometheusQuery {
        url: url?.trim_end_matches('/').to_string(),
        queries,
        interval,
        timeout,
    })
}

fn scrape_target(item: &Node, cx: &mut Ctx) -> Option<ScrapeTarget> {
    let mut m = MapReader::new(item, "scrape target", cx);
    let address = m.field("address", true, to_non_empty_string);
    let service = m.field("service", true, to_non_empty_string);
    let instance = m.field("instance", false, to_non_empty_string);
    m.finish();
    Some(ScrapeTarget {
        address: address?,
        service: service?,
        instance,
    })
}

fn procfs(m: &mut MapReader) -> Option<SourceKind> {
    let pid_files = m.field("pid_files", true, to_non_empty_string);
    let interval = m.duration_or("interval", Duration::from_secs(1), false);
    Some(SourceKind::Procfs {
        pid_files: m.cx.resolve_string(&pid_files?),
        interval,
    })
}

fn process_events(m: &mut MapReader) -> Option<SourceKind> {
    Some(SourceKind::ProcessEvents {
        path: m.path("path", true)?,
    })
}

fn change_calendar(m: &mut MapReader) -> Option<SourceKind> {
    Some(SourceKind::ChangeCalendar {
        path: m.path("path", true)?,
    })
}

/// `type: kubernetes`.
fn kubernetes(m: &mut MapReader) -> Option<SourceKind> {
    use crate::types::{KubeWatch, KubernetesSourceConfig};
    let d = KubernetesSourceConfig::default();
    let connection = super::actuators::kube_connection(m);
    let namespaces = m.str_list("namespaces", false).unwrap_or_default();
    let exclude_namespaces = m
        .str_list("exclude_namespaces", false)
        .unwrap_or(d.exclude_namespaces);
    let watch = match m.str_list("watch", false) {
        None => d.watch,
        Some(list) => {
            let mut out = Vec::new();
            for w in list {
                match KubeWatch::parse(&w) {
                    Some(k) if !out.contains(&k) => out.push(k),
                    Some(_) => {}
                    None => {
                        let expected: Vec<&str> =
                            KubeWatch::ALL.iter().map(|k| k.as_str()).collect();
                        m.cx.error(
                            m.pos,
                            format!(
                                "invalid `watch` entry `{w}` in {}: expected any of {}",
                                m.what(),
                                expected.join(", ")
                            ),
                        );
                    }
                }
            }
            out
        }
    };
    let scrape = m.bool_or("scrape_annotated_pods", true);
    let interval = m.duration_or("scrape_interval", Duration::from_secs(5), false);
    let scrape_timeout = m.duration_or("scrape_timeout", d.scrape_timeout, false);
    Some(SourceKind::Kubernetes(KubernetesSourceConfig {
        connection,
        namespaces,
        exclude_namespaces,
        watch,
        scrape_interval: scrape.then_some(interval),
        scrape_timeout,
    }))
}
