//! Waiting for a Deployment's rollout, for the Kubernetes end-to-end tests.

use k8s_openapi::api::apps::v1::Deployment;
use kube::api::Api;
use std::time::{Duration, Instant};

/// Whether the Deployment's newest generation is rolled out: every replica updated and
/// available, none left over.
async fn rollout_complete(deploys: &Api<Deployment>, name: &str) -> bool {
    let Ok(d) = deploys.get(name).await else {
        return false;
    };
    let (Some(spec), Some(status)) = (d.spec.as_ref(), d.status.as_ref()) else {
        return false;
    };
    let want = spec.replicas.unwrap_or(1);
    status.observed_generation >= d.metadata.generation
        && status.updated_replicas == Some(want)
        && status.available_replicas == Some(want)
        && status.replicas == Some(want)
}

pub async fn wait_rollout(deploys: &Api<Deployment>, name: &str, within: Duration) {
    let start = Instant::now();
    while !rollout_complete(deploys, name).await {
        assert!(
            start.elapsed() < within,
            "deployment {name} did not complete its rollout within {within:?}: {:?}",
            deploys.get(name).await.ok().and_then(|d| d.status)
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
