//! The process kubelet: registers the node, keeps it alive, runs the pods bound to it, and
//! (unless disabled) the service proxy.

use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::runtime::{WatchStreamExt, watcher};
use tokio::sync::{mpsc, watch};

use crate::backoff::BackoffConfig;
use crate::ipalloc::IpAllocator;
use crate::node::{self, Capacity};
use crate::pod::{NodeConfig, PodCtx, PodHandle, run_pod};
use crate::procs;

#[derive(Debug, Clone)]
pub struct Options {
    pub kubeconfig: PathBuf,
    pub node_name: String,
    pub pod_log_dir: PathBuf,
    pub state_dir: PathBuf,
    pub pod_cidr: String,
    pub backoff: BackoffConfig,
    pub proxy: bool,
    pub heartbeat: Duration,
    pub shutdown_grace: Duration,
    pub memory_poll: Duration,
}

impl Options {
    pub fn new(
        kubeconfig: PathBuf,
        node_name: &str,
        pod_log_dir: PathBuf,
        state_dir: PathBuf,
    ) -> Self {
        Self {
            kubeconfig,
            node_name: node_name.into(),
            pod_log_dir,
            state_dir,
            pod_cidr: "127.1.0.0/16".into(),
            backoff: BackoffConfig::default(),
            proxy: true,
            heartbeat: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(5),
            memory_poll: Duration::from_millis(250),
        }
    }
}

struct Pods {
    client: kube::Client,
    cfg: Arc<NodeConfig>,
    events: Arc<crate::events::Recorder>,
    ips: IpAllocator,
    workers: HashMap<String, PodHandle>,
    /// Pods whose worker ended (deletion confirmed): later events for them are ignored.
    finished: HashSet<String>,
    done_tx: mpsc::UnboundedSender<String>,
    shutdown: watch::Receiver<bool>,
    tasks: tokio::task::JoinSet<()>,
}

impl Pods {
    fn apply(&mut self, pod: Pod) {
        let Some(uid) = pod.metadata.uid.clone() else {
            return;
        };
        if let Some(h) = self.workers.get(&uid) {
            let _ = h.pod.send(pod);
            return;
        }
        if self.finished.contains(&uid) {
            return;
        }
        let host_network = pod.spec.as_ref().and_then(|s| s.host_network) == Some(true);
        let ip = if host_network {
            Some(self.cfg.host_ip)
        } else {
            let existing = pod
                .status
                .as_ref()
                .and_then(|s| s.pod_ip.as_deref())
                .and_then(|ip| ip.parse::<Ipv4Addr>().ok())
                .filter(|ip| self.ips.reserve(&uid, *ip));
            existing.or_else(|| self.ips.allocate(&uid))
        };
        let Some(ip) = ip else {
            tracing::error!(pod = ?pod.metadata.name, "no free pod IP in {}", "the pod CIDR");
            return;
        };
        let ctx = Arc::new(PodCtx::new(
            self.client.clone(),
            self.cfg.clone(),
            self.events.clone(),
            pod.clone(),
            ip,
        ));
        let (pod_tx, pod_rx) = watch::channel(pod);
        let (gone_tx, gone_rx) = watch::channel(false);
        let done = self.done_tx.clone();
        let shutdown = self.shutdown.clone();
        let id = uid.clone();
        self.tasks.spawn(async move {
            run_pod(ctx, pod_rx, gone_rx, shutdown).await;
            let _ = done.send(id);
        });
        self.workers.insert(
            uid,
            PodHandle {
                pod: pod_tx,
                gone: gone_tx,
            },
        );
    }

    fn gone(&mut self, uid: &str) {
        if let Some(h) = self.workers.get(uid) {
            let _ = h.gone.send(true);
        }
        self.finished.remove(uid);
    }

    fn done(&mut self, uid: String) {
        self.workers.remove(&uid);
        self.ips.release(&uid);
        self.finished.insert(uid);
    }
}

/// Runs the kubelet until `stop` resolves; then stops every container and returns.
pub async fn run(opts: Options, stop: impl std::future::Future<Output = ()>) -> crate::Result<()> {
    for d in [&opts.pod_log_dir, &opts.state_dir] {
        std::fs::create_dir_all(d)?;
    }
    let state_dir = std::fs::canonicalize(&opts.state_dir)?;
    let pod_log_dir = std::fs::canonicalize(&opts.pod_log_dir)?;
    let leftovers = procs::kill_marked(&state_dir);
    if leftovers > 0 {
        tracing::warn!(
            leftovers,
            "killed container processes left by an earlier kubelet"
        );
    }
    let ips = IpAllocator::new(&opts.pod_cidr).map_err(crate::Error::Invalid)?;
    let client = crate::client_from_kubeconfig(&opts.kubeconfig).await?;
    let cap = Capacity::detect();
    let node = loop {
        match node::register(&client, &opts.node_name, &cap).await {
            Ok(n) => break n,
            Err(e) => {
                tracing::warn!(error = %e, "registering node; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    };
    tracing::info!(node = %opts.node_name, "node registered");
    let heartbeat = tokio::spawn(node::heartbeat(
        client.clone(),
        node.clone(),
        cap.clone(),
        opts.heartbeat,
    ));
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let proxy = opts
        .proxy
        .then(|| tokio::spawn(crate::proxy::run(client.clone(), shutdown_rx.clone())));

    let cfg = Arc::new(NodeConfig {
        node_name: opts.node_name.clone(),
        host_ip: Ipv4Addr::LOCALHOST,
        pod_log_dir,
        state_dir: state_dir.clone(),
        backoff: opts.backoff,
        shutdown_grace: opts.shutdown_grace,
        memory_poll: opts.memory_poll,
        node_cpu: cap.cpu as f64,
        node_memory: cap.memory_bytes,
    });
    let (done_tx, mut done_rx) = mpsc::unbounded_channel();
    let mut pods = Pods {
        client: client.clone(),
        cfg,
        events: crate::events::Recorder::new(client.clone(), &opts.node_name),
        ips,
        workers: HashMap::new(),
        finished: HashSet::new(),
        done_tx,
        shutdown: shutdown_rx,
        tasks: tokio::task::JoinSet::new(),
    };
    let api: Api<Pod> = Api::all(client.clone());
    let selector = format!("spec.nodeName={}", opts.node_name);
    let events = watcher(api, watcher::Config::default().fields(&selector)).default_backoff();
    let mut events = std::pin::pin!(events);
    let mut stop = std::pin::pin!(stop);
    // Uids seen during a relist: pods missing from it were deleted while the watch was down.
    let mut relist: Option<HashSet<String>> = None;
    loop {
        tokio::select! {
            _ = &mut stop => break,
            Some(uid) = done_rx.recv() => pods.done(uid),
            ev = events.next() => match ev {
                None => break,
                Some(Err(e)) => tracing::warn!(error = %e, "pod watch (retrying)"),
                Some(Ok(watcher::Event::Init)) => relist = Some(HashSet::new()),
                Some(Ok(watcher::Event::InitApply(p))) => {
                    if let (Some(seen), Some(uid)) = (relist.as_mut(), p.metadata.uid.clone()) {
                        seen.insert(uid);
                    }
                    pods.apply(p);
                }
                Some(Ok(watcher::Event::InitDone)) => {
                    if let Some(seen) = relist.take() {
                        let missing: Vec<String> = pods.workers.keys().filter(|u| !seen.contains(*u)).cloned().collect();
                        for uid in missing { pods.gone(&uid); }
                    }
                }
                Some(Ok(watcher::Event::Apply(p))) => pods.apply(p),
                Some(Ok(watcher::Event::Delete(p))) => {
                    if let Some(uid) = p.metadata.uid.as_deref() { pods.gone(uid); }
                }
            }
        }
    }
    tracing::info!(
        pods = pods.workers.len(),
        "kubelet stopping: stopping containers"
    );
    let _ = shutdown_tx.send(true);
    let wait = opts.shutdown_grace + Duration::from_secs(3);
    let _ = tokio::time::timeout(wait, async {
        while pods.tasks.join_next().await.is_some() {}
    })
    .await;
    pods.tasks.abort_all();
    procs::kill_marked(&state_dir);
    heartbeat.abort();
    if let Some(p) = proxy {
        let _ = tokio::time::timeout(Duration::from_secs(1), p).await;
    }
    let since =
        k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(k8s_openapi::jiff::Timestamp::now());
    let _ = tokio::time::timeout(
        Duration::from_secs(2),
        node::write_status(&client, &opts.node_name, &cap, false, &since),
    )
    .await;
    Ok(())
}

/// Parses "2s", "500ms", "10m", "1h" or a number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: f64 = num.parse().map_err(|_| format!("bad duration {s:?}"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("bad duration unit in {s:?} (ms, s, m, h)")),
    };
    Duration::try_from_secs_f64(secs).map_err(|_| format!("bad duration {s:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert!(parse_duration("3 days").is_err());
        assert!(parse_duration("").is_err());
        assert!(parse_duration("99999999999999999999999999h").is_err());
    }
}
