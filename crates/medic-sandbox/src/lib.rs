//! The sandbox node: a process kubelet (pods' containers run as host processes) and a service
//! proxy for a loopback Kubernetes control plane, plus a test harness that starts one.
//!
//! Everything here talks only to 127.0.0.0/8: pod IPs come from 127.1.0.0/16, Services'
//! ClusterIPs from 127.100.0.0/16 (the apiserver's `--service-cluster-ip-range`; the test
//! harness gives each sandbox ranges of its own), and probes or proxied connections to any
//! other address are refused.

pub mod backoff;
pub mod crilog;
pub mod env;
pub mod events;
pub mod harness;
pub mod ipalloc;
pub mod kubelet;
pub mod node;
pub mod pod;
pub mod probe;
pub mod procs;
pub mod proxy;

/// Errors of the kubelet and the proxy (the harness has its own, [`harness::HarnessError`]).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("kubeconfig {path}: {message}")]
    Kubeconfig { path: String, message: String },
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Invalid(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Builds a client from a kubeconfig file (the sandbox's admin kubeconfig).
pub async fn client_from_kubeconfig(path: &std::path::Path) -> Result<kube::Client> {
    let err = |message: String| Error::Kubeconfig {
        path: path.display().to_string(),
        message,
    };
    let kc = kube::config::Kubeconfig::read_from(path).map_err(|e| err(e.to_string()))?;
    let config =
        kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
            .await
            .map_err(|e| err(e.to_string()))?;
    Ok(kube::Client::try_from(config)?)
}

/// True for 127.0.0.0/8: the only addresses the sandbox may ever connect to or listen on.
pub fn is_loopback(ip: std::net::IpAddr) -> bool {
    match ip {
        std::net::IpAddr::V4(v4) => v4.is_loopback(),
        std::net::IpAddr::V6(v6) => v6.is_loopback(),
    }
}
