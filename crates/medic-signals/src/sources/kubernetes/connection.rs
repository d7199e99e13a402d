//! The API server connection: the configured kubeconfig (and context), else kube's inference
//! (`KUBECONFIG`, `~/.kube/config`, then in-cluster credentials).

use kube::config::{KubeConfigOptions, Kubeconfig};
use medic_config::KubeConnection;

/// What can be checked before starting: a configured kubeconfig is readable and has the
/// configured context. (An inferred one is looked for at run time, and retried.)
pub(crate) fn check(conn: &KubeConnection) -> Result<(), String> {
    let Some(path) = &conn.kubeconfig else {
        return Ok(());
    };
    let kc = Kubeconfig::read_from(path)
        .map_err(|e| format!("cannot read kubeconfig {}: {e}", path.display()))?;
    if let Some(ctx) = &conn.context
        && !kc.contexts.iter().any(|c| &c.name == ctx)
    {
        let known: Vec<&str> = kc.contexts.iter().map(|c| c.name.as_str()).collect();
        return Err(format!(
            "kubeconfig {} has no context `{ctx}`: expected one of {}",
            path.display(),
            known.join(", ")
        ));
    }
    Ok(())
}

/// A client and the API server's URL (which names it in signals).
pub(crate) async fn connect(conn: &KubeConnection) -> Result<(kube::Client, String), String> {
    let config = match &conn.kubeconfig {
        Some(path) => {
            let kc = Kubeconfig::read_from(path)
                .map_err(|e| format!("cannot read kubeconfig {}: {e}", path.display()))?;
            let options = KubeConfigOptions {
                context: conn.context.clone(),
                ..Default::default()
            };
            kube::Config::from_custom_kubeconfig(kc, &options)
                .await
                .map_err(|e| format!("kubeconfig {}: {e}", path.display()))?
        }
        None if conn.context.is_some() => {
            let options = KubeConfigOptions {
                context: conn.context.clone(),
                ..Default::default()
            };
            kube::Config::from_kubeconfig(&options)
                .await
                .map_err(|e| format!("kubeconfig: {e}"))?
        }
        None => kube::Config::infer()
            .await
            .map_err(|e| format!("no Kubernetes credentials found: {e}"))?,
    };
    let url = config.cluster_url.to_string();
    let url = url.trim_end_matches('/').to_string();
    let client = kube::Client::try_from(config).map_err(|e| format!("{url}: {e}"))?;
    Ok((client, url))
}
