//! The connection to the API server: kubeconfig (file and context) or the usual inference
//! (KUBECONFIG, ~/.kube/config, in-cluster), and the API versions that differ between servers.

use crate::ActError;
use medic_config::KubeConnection;
use std::time::Duration;

/// The client configuration for a connection, as `kubectl` would build it.
pub async fn config(conn: &KubeConnection) -> Result<kube::Config, ActError> {
    if conn.kubeconfig.is_none() && conn.context.is_none() {
        return kube::Config::infer().await.map_err(|e| {
            ActError::Invalid(format!(
                "no Kubernetes credentials found (KUBECONFIG, ~/.kube/config, in-cluster service account): {e}; set actuators.kubernetes.kubeconfig"
            ))
        });
    }
    let options = kube::config::KubeConfigOptions {
        context: conn.context.clone(),
        ..Default::default()
    };
    match &conn.kubeconfig {
        Some(path) => {
            let kc = kube::config::Kubeconfig::read_from(path)
                .map_err(|e| ActError::Invalid(format!("kubeconfig {}: {e}", path.display())))?;
            kube::Config::from_custom_kubeconfig(kc, &options)
                .await
                .map_err(|e| {
                    ActError::Invalid(format!(
                        "kubeconfig {}{}: {e}",
                        path.display(),
                        conn.context
                            .as_deref()
                            .map(|c| format!(" (context {c:?})"))
                            .unwrap_or_default()
                    ))
                })
        }
        // A context without a file: the context of the default kubeconfig.
        None => kube::Config::from_kubeconfig(&options).await.map_err(|e| {
            ActError::Invalid(format!(
                "default kubeconfig, context {:?}: {e}",
                conn.context.as_deref().unwrap_or_default()
            ))
        }),
    }
}

/// A client for actions: each request bounded by `timeout`.
pub fn action_client(mut cfg: kube::Config, timeout: Duration) -> Result<kube::Client, ActError> {
    cfg.connect_timeout = Some(timeout.min(Duration::from_secs(10)));
    cfg.read_timeout = Some(timeout);
    cfg.write_timeout = Some(timeout);
    // kube retries 429/503/504 with back-off up to minutes by default; an eviction refused by
    // a PodDisruptionBudget is a 429 that must be reported at once, not waited out, and an
    // action must stay within its timeout. The agent's own back-off retries the action.
    cfg.default_retry = false;
    kube::Client::try_from(cfg)
        .map_err(|e| ActError::Invalid(format!("cannot build the Kubernetes client: {e}")))
}

/// A client for watches: long-lived responses, so the read timeout stays above the watch's
/// own server-side timeout (kube's default, 295 s).
pub fn watch_client(cfg: kube::Config) -> Result<kube::Client, ActError> {
    kube::Client::try_from(cfg)
        .map_err(|e| ActError::Invalid(format!("cannot build the Kubernetes client: {e}")))
}

/// The version of the `policy` group the server serves Eviction in: `v1` from 1.22 on,
/// `v1beta1` before (the sandbox's 1.20). Read from discovery (`GET /apis`).
pub async fn policy_version(client: &kube::Client) -> Result<&'static str, ActError> {
    let groups = client
        .list_api_groups()
        .await
        .map_err(|e| super::error::map(e, "discover API groups (GET /apis)"))?;
    let versions: Vec<&str> = groups
        .groups
        .iter()
        .filter(|g| g.name == "policy")
        .flat_map(|g| g.versions.iter().map(|v| v.version.as_str()))
        .collect();
    if versions.contains(&"v1") {
        Ok("v1")
    } else if versions.contains(&"v1beta1") {
        Ok("v1beta1")
    } else {
        Err(ActError::Rejected(format!(
            "the API server serves no policy/v1 or policy/v1beta1 (found {versions:?}): the Eviction API is unavailable, so drain_node cannot run"
        )))
    }
}
