//! `medic topology --config FILE`: the service graph medic reasons with — the configured edges
//! plus what its sources learn (Kubernetes Services and EndpointSlices) — and where each edge
//! comes from. Only the sources that learn topology are started, for at most `--learn`.

use anyhow::Result;
use clap::Args;
use medic_config::{Config, KubeWatch, SourceKind};
use medic_core::{EdgeReport, LiveTopology, SignalPayload};
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

#[derive(Args)]
pub struct TopologyArgs {
    /// Path to medic.yaml.
    #[arg(long, short)]
    pub config: PathBuf,
    /// How long to wait for the sources that learn topology (each answers once it has listed
    /// the cluster; this bounds an unreachable one).
    #[arg(long, default_value = "20s", value_parser = medic_config::parse_duration)]
    pub learn: Duration,
    /// Print as JSON.
    #[arg(long)]
    pub json: bool,
}

/// The sources of `cfg` that send topology.
fn learning_sources(cfg: &Config) -> Vec<medic_config::SourceConfig> {
    cfg.sources
        .iter()
        .filter(|s| matches!(&s.kind, SourceKind::Kubernetes(k) if k.watch.contains(&KubeWatch::Topology)))
        .map(|s| {
            let mut s = s.clone();
            if let SourceKind::Kubernetes(k) = &mut s.kind {
                // Topology only: no scraping, no other watches' signals.
                k.watch = vec![KubeWatch::Topology];
                k.scrape_interval = None;
            }
            s
        })
        .collect()
}

/// Learns for up to `learn`, returning the live graph and the sources that did not answer.
pub async fn learn(cfg: &Config, learn: Duration) -> Result<(LiveTopology, Vec<String>)> {
    let mut live = LiveTopology::new(cfg.topology.clone(), Duration::MAX);
    let sources = learning_sources(cfg);
    let mut waiting: BTreeSet<String> = sources.iter().map(|s| s.name.clone()).collect();
    if sources.is_empty() {
        return Ok((live, Vec::new()));
    }
    let (tx, mut rx) = tokio::sync::mpsc::channel(1024);
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let stats = Arc::new(medic_signals::SourceStats::new());
    let handles =
        medic_signals::spawn_sources_with(&sources, &cfg.redaction, tx, shutdown, stats, None)?;
    let deadline = tokio::time::Instant::now() + learn;
    // A source sends its first view as it lists the cluster, then each change: wait until
    // each has been quiet for a moment after its first view.
    let quiet = Duration::from_secs(2);
    let mut last_change = None;
    loop {
        let until = match last_change {
            Some(t) if waiting.is_empty() => deadline.min(t + quiet),
            _ => deadline,
        };
        match tokio::time::timeout_at(until, rx.recv()).await {
            Ok(Some(s)) => {
                if let SignalPayload::Topology { edges } = s.payload {
                    waiting.remove(&s.source);
                    live.observe(&s.source, s.ts, edges);
                    last_change = Some(tokio::time::Instant::now());
                }
            }
            Ok(None) | Err(_) => break,
        }
    }
    let _ = stop.send(true);
    for h in handles {
        h.abort();
    }
    Ok((live, waiting.into_iter().collect()))
}

pub fn render(edges: &[EdgeReport], services: &[&str], silent: &[String]) -> String {
    let mut out = String::new();
    if edges.is_empty() {
        out.push_str("no edges: none configured (`topology.services`) and none learned\n");
    }
    for e in edges {
        let from: Vec<&str> = e.origins.iter().map(|o| o.source.as_str()).collect();
        out.push_str(&format!(
            "{} -> {}  [{}]\n",
            e.caller,
            e.callee,
            from.join(", ")
        ));
        for o in e.origins.iter().filter(|o| !o.evidence.is_empty()) {
            out.push_str(&format!("    {}: {}\n", o.source, o.evidence));
        }
    }
    let isolated: Vec<&str> = services
        .iter()
        .copied()
        .filter(|s| !edges.iter().any(|e| e.caller == *s || e.callee == *s))
        .collect();
    if !isolated.is_empty() {
        out.push_str(&format!(
            "services without edges: {}\n",
            isolated.join(", ")
        ));
    }
    for s in silent {
        out.push_str(&format!(
            "source `{s}` sent no topology in time (is the API server reachable? see `medic rbac` for what it must read)\n"
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use medic_core::{LearnedEdge, Topology, Ts};

    #[test]
    fn renders_each_edge_with_its_origins() {
        let mut t = Topology::default();
        t.add_edge("web", "api");
        t.add_service("lonely");
        let mut live = LiveTopology::new(t, Duration::MAX);
        live.observe(
            "cluster",
            Ts(0),
            vec![LearnedEdge {
                caller: "web".into(),
                callee: "api".into(),
                evidence: "the args of web name Service api".into(),
            }],
        );
        let services: Vec<&str> = live.graph().services().collect();
        let text = render(&live.report(), &services, &["other".to_string()]);
        assert!(text.contains("web -> api  [config, cluster]"), "{text}");
        assert!(
            text.contains("    cluster: the args of web name Service api"),
            "{text}"
        );
        assert!(text.contains("services without edges: lonely"), "{text}");
        assert!(text.contains("source `other` sent no topology"), "{text}");
        assert!(render(&[], &[], &[]).starts_with("no edges"));
    }
}
