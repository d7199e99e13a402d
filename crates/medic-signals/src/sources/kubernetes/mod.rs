//! The `kubernetes` source: watches of an API server → signals about the cluster's workloads.
//!
//! | file            | watches                          | emits                                       |
//! |-----------------|----------------------------------|---------------------------------------------|
//! | `pods.rs`       | pods                             | `Process` exits/starts, `Log` waiting/flaps |
//! | `events.rs`     | core/v1 Events (type=Warning)    | `Log` warn                                  |
//! | `workloads.rs`  | Deployments, StatefulSets, DSs   | `Change` Deploy/Remediation/Planned, `Metrics`, scale `Log` |
//! | `configmaps.rs` | ConfigMaps                       | `Change` ConfigChange per referencing workload |
//! | `nodes.rs`      | nodes                            | `Log` conditions and cordons                |
//! | `scrape.rs`     | (annotated pods)                 | `Metrics` / `TargetDown` per scrape          |
//! | `topology.rs`   | Services, EndpointSlices (+ workload templates) | `Topology` snapshots   |
//! | `health.rs`     | (every watch)                    | `TargetDown` / `up` of the API server       |
//!
//! The service of a signal is the owning workload `namespace/name` (`owners.rs`), the
//! instance the pod.
//!
//! Container logs are the `kubernetes_logs` source's (the kubelet's files). It cannot see
//! ownerReferences, so it guesses the workload from the pod name (`crate::container::
//! workload_name` trims the ReplicaSet and pod hashes, or a StatefulSet ordinal): the file-only
//! fallback. Its guess matches the owner chain's *name* for generated pod names, but it has no
//! namespace (`checkout`, where this source says `shop/checkout`); a shared owner cache (or
//! the namespace prefix) is for the lead to decide — until then the two sources' signals of
//! one workload carry different service names.

mod common;
mod configmaps;
mod connection;
mod events;
mod health;
mod nodes;
mod owners;
mod pods;
mod scrape;
mod state;
mod topology;
mod watch;
mod workloads;

use super::{Source, SourceContext, SourceFuture, invalid, positive, wait_for_shutdown};
use crate::SignalsError;
use crate::redact::Redactor;
use common::Out;
use futures_util::StreamExt;
use health::Health;
use medic_config::{KubeWatch, KubernetesSourceConfig, SourceConfig, SourceKind};
use medic_core::{Signal, SignalPayload, Ts};
use state::{Emit, Namespaces, State};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// A topology snapshot is repeated this often, so the agent knows it still holds.
const TOPOLOGY_REPEAT: Duration = Duration::from_secs(60);

pub(crate) struct KubernetesSource {
    name: String,
    cfg: KubernetesSourceConfig,
    redactor: Arc<Redactor>,
    scrape: Option<(reqwest::Client, Duration)>,
}

pub(crate) fn build(
    cfg: &SourceConfig,
    redactor: &Arc<Redactor>,
) -> Result<Box<dyn Source>, SignalsError> {
    let SourceKind::Kubernetes(k) = &cfg.kind else {
        return Err(invalid(cfg, "expected a kubernetes source"));
    };
    if k.watch.is_empty() && k.scrape_interval.is_none() {
        return Err(invalid(
            cfg,
            "nothing to do: `watch` is empty and scraping is off",
        ));
    }
    connection::check(&k.connection).map_err(|e| invalid(cfg, e))?;
    let scrape = match k.scrape_interval {
        None => None,
        Some(interval) => {
            let client = reqwest::Client::builder()
                .timeout(positive(cfg, "scrape_timeout", k.scrape_timeout)?)
                .build()
                .map_err(|source| SignalsError::HttpClient {
                    source_name: cfg.name.clone(),
                    source,
                })?;
            Some((client, positive(cfg, "scrape_interval", interval)?))
        }
    };
    Ok(Box::new(KubernetesSource {
        name: cfg.name.clone(),
        cfg: k.clone(),
        redactor: redactor.clone(),
        scrape,
    }))
}

impl Source for KubernetesSource {
    fn name(&self) -> &str {
        &self.name
    }

    fn run(self: Box<Self>, ctx: SourceContext) -> SourceFuture {
        Box::pin(self.run_loop(ctx))
    }
}

impl KubernetesSource {
    async fn emit_all(ctx: &mut SourceContext, out: Out) -> bool {
        for s in out.signals {
            if !ctx.emit(s).await {
                return false;
            }
        }
        true
    }

    /// Connects, retrying with back-off (a missing in-cluster token, an unreadable file);
    /// None on shutdown.
    async fn connect(&self, ctx: &mut SourceContext, health: &mut Health) -> Option<kube::Client> {
        let mut retry = watch::Retry::new();
        let what: Arc<str> = "connect".into();
        loop {
            match connection::connect(&self.cfg.connection).await {
                Ok((client, url)) => {
                    health.set_api(&url);
                    return Some(client);
                }
                Err(e) => {
                    let mut out = Out::new(&self.name, Ts::now());
                    health.failed(&what, watch::Problem::Unreachable, e, &ctx.stats, &mut out);
                    if !Self::emit_all(ctx, out).await {
                        return None;
                    }
                    let pause = retry.next().unwrap_or(Duration::from_secs(15));
                    if !ctx.sleep_until(Instant::now() + pause).await {
                        return None;
                    }
                }
            }
        }
    }

    async fn run_loop(self, mut ctx: SourceContext) {
        let watching = |w: KubeWatch| self.cfg.watch.contains(&w);
        let emit = Emit {
            pods: watching(KubeWatch::Pods),
            events: watching(KubeWatch::Events),
            workloads: watching(KubeWatch::Workloads),
            configmaps: watching(KubeWatch::ConfigMaps),
            nodes: watching(KubeWatch::Nodes),
            topology: watching(KubeWatch::Topology),
        };
        let mut health = Health::new(&self.name, "kubernetes");
        let Some(client) = self.connect(&mut ctx, &mut health).await else {
            return;
        };
        let topology = if emit.topology {
            Some(watch::Backends::discover(&client).await)
        } else {
            None
        };
        let plan = watch::Plan {
            pods: emit.pods || self.scrape.is_some(),
            // Owners of pods, and of ReplicaSets that events and EndpointSlices name.
            replicasets: emit.pods || emit.events || emit.topology || self.scrape.is_some(),
            // ConfigMap changes are reported per workload that reads them; pod templates
            // say whom a workload calls.
            workloads: emit.workloads || emit.configmaps || emit.topology,
            events: emit.events,
            configmaps: emit.configmaps,
            nodes: emit.nodes,
            topology,
            namespaces: self.cfg.namespaces.clone(),
        };

        let (targets_tx, targets_rx) = tokio::sync::watch::channel(BTreeMap::new());
        let scraper = self.scrape.as_ref().map(|(http, interval)| {
            let sctx = SourceContext {
                name: ctx.name.clone(),
                tx: ctx.tx.clone(),
                shutdown: ctx.shutdown.clone(),
                stats: ctx.stats.clone(),
                checkpoints: None,
            };
            tokio::spawn(scrape::run(sctx, http.clone(), *interval, targets_rx))
        });

        let mut state = State::new(
            &self.name,
            self.redactor.clone(),
            ctx.stats.clone(),
            Namespaces {
                only: self.cfg.namespaces.clone(),
                exclude: self.cfg.exclude_namespaces.clone(),
            },
            emit,
            health,
        );
        let mut streams = watch::streams(&client, &plan);
        let mut shutdown = ctx.shutdown.clone();
        let mut repeat_at = Instant::now() + TOPOLOGY_REPEAT;
        loop {
            let probe_at = state.health.probe_at;
            let mut out = Out::new(&self.name, Ts::now());
            tokio::select! {
                biased;
                _ = wait_for_shutdown(&mut shutdown) => break,
                _ = tokio::time::sleep_until(repeat_at), if plan.topology.is_some() => {
                    repeat_at = Instant::now() + TOPOLOGY_REPEAT;
                    if let Some(edges) = state.topo.last_sent() {
                        out.signals.push(topology_signal(&self.name, edges.clone()));
                    }
                }
                _ = sleep_until_opt(probe_at) => {
                    match tokio::time::timeout(Duration::from_secs(5), client.apiserver_version()).await {
                        Ok(Ok(_)) => state.health.probe_ok(&mut out),
                        Ok(Err(e)) => state.health.probe_failed(watch::describe(&e), &ctx.stats, &mut out),
                        Err(_) => state.health.probe_failed("timed out".into(), &ctx.stats, &mut out),
                    }
                }
                item = streams.next() => {
                    let Some(item) = item else {
                        // Watchers never end; no watch at all (scraping only) ends here.
                        if plan_is_empty(&plan) {
                            std::future::pending::<()>().await;
                        }
                        break;
                    };
                    out.now = Ts::now();
                    state.handle(item, &client, &mut out).await;
                }
            }
            if plan.topology.is_some()
                && let Some(edges) = state.topo.changed()
            {
                repeat_at = Instant::now() + TOPOLOGY_REPEAT;
                out.signals.push(topology_signal(&self.name, edges));
            }
            if state.targets_changed {
                state.targets_changed = false;
                targets_tx.send_replace(state.targets.clone());
            }
            if !Self::emit_all(&mut ctx, out).await {
                break;
            }
        }
        let (pods, rs, workloads, cms, nodes, events) = state.sizes();
        tracing::debug!(source = %self.name, pods, replicasets = rs, workloads, configmaps = cms, nodes, events, "kubernetes source stopped");
        if let Some(s) = scraper {
            s.abort();
        }
    }
}

fn plan_is_empty(p: &watch::Plan) -> bool {
    !(p.pods
        || p.replicasets
        || p.workloads
        || p.events
        || p.configmaps
        || p.nodes
        || p.topology.is_some())
}

fn topology_signal(source: &str, edges: Vec<medic_core::LearnedEdge>) -> Signal {
    Signal {
        ts: Ts::now(),
        source: source.to_string(),
        service: None,
        instance: None,
        payload: SignalPayload::Topology { edges },
    }
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
