//! medic-kubelet: the sandbox node's process kubelet and service proxy.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use medic_sandbox::kubelet::{self, Options, parse_duration};

/// Runs the pods bound to one node as host processes, and proxies Services' ClusterIPs.
/// Loopback only: pod IPs from --pod-cidr (127.0.0.0/8), ClusterIPs from the apiserver's range.
#[derive(Debug, Parser)]
#[command(name = "medic-kubelet", version)]
struct Args {
    #[arg(long)]
    kubeconfig: PathBuf,
    #[arg(long, default_value = "sandbox-node")]
    node_name: String,
    /// Root of the CRI log files (/var/log/pods layout).
    #[arg(long)]
    pod_log_dir: PathBuf,
    /// Per-pod working directories and volumes.
    #[arg(long)]
    state_dir: PathBuf,
    #[arg(long, default_value = "127.1.0.0/16")]
    pod_cidr: String,
    /// Cap of the CrashLoopBackOff delay (300s in a kubelet; shorter for tests).
    #[arg(long, value_parser = parse_duration, default_value = "300s")]
    max_backoff: Duration,
    /// First CrashLoopBackOff delay.
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    initial_backoff: Duration,
    /// A container that ran this long restarts without back-off.
    #[arg(long, value_parser = parse_duration, default_value = "10m")]
    backoff_reset: Duration,
    /// Do not run the service proxy.
    #[arg(long)]
    no_proxy: bool,
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    heartbeat: Duration,
    /// Longest grace given to containers when the kubelet itself stops.
    #[arg(long, value_parser = parse_duration, default_value = "5s")]
    shutdown_grace: Duration,
    /// How often each container's memory is measured against its limit.
    #[arg(long, value_parser = parse_duration, default_value = "250ms")]
    memory_poll: Duration,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,kube=warn,hyper=warn".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let a = Args::parse();
    let mut opts = Options::new(a.kubeconfig, &a.node_name, a.pod_log_dir, a.state_dir);
    opts.pod_cidr = a.pod_cidr;
    opts.backoff.max = a.max_backoff;
    opts.backoff.initial = a.initial_backoff.min(a.max_backoff);
    opts.backoff.reset_after = a.backoff_reset;
    opts.proxy = !a.no_proxy;
    opts.heartbeat = a.heartbeat;
    opts.shutdown_grace = a.shutdown_grace;
    opts.memory_poll = a.memory_poll.max(Duration::from_millis(50));
    let stop = async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing a SIGTERM handler");
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM"),
            _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT"),
        }
    };
    kubelet::run(opts, stop).await.context("medic-kubelet")?;
    Ok(())
}
