//! Pods annotated `prometheus.io/scrape: "true"` → their `/metrics` scraped at the source's
//! `scrape_interval` with the `prometheus_scrape` source's code: `Metrics` per scrape
//! (service = owning workload, instance = pod), `TargetDown` per failed one.

use super::super::SourceContext;
use super::super::prometheus_scrape::{Target, scrape_targets};
use k8s_openapi::api::core::v1::Pod;
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

const SCRAPE: &str = "prometheus.io/scrape";
const PORT: &str = "prometheus.io/port";
const PATH: &str = "prometheus.io/path";
const SCHEME: &str = "prometheus.io/scheme";

/// The scrape target of a pod, when it asks to be scraped and can be: it has an IP, is not
/// finished or being deleted, and names a port (annotation, else its first container port).
pub(crate) fn target_of(pod: &Pod, service: &str) -> Option<Target> {
    let meta = &pod.metadata;
    let a = meta.annotations.as_ref()?;
    if a.get(SCRAPE).map(|s| s.trim()) != Some("true") || meta.deletion_timestamp.is_some() {
        return None;
    }
    let status = pod.status.as_ref()?;
    if matches!(status.phase.as_deref(), Some("Succeeded" | "Failed")) {
        return None;
    }
    let ip = status.pod_ip.as_deref().filter(|ip| !ip.is_empty())?;
    let port: u16 = match a.get(PORT) {
        Some(p) => p.trim().parse().ok()?,
        None => pod
            .spec
            .as_ref()?
            .containers
            .iter()
            .flat_map(|c| c.ports.iter().flatten())
            .find_map(|p| u16::try_from(p.container_port).ok())?,
    };
    let path = a.get(PATH).map(|p| p.trim()).filter(|p| !p.is_empty());
    let path = match path {
        Some(p) if p.starts_with('/') => p.to_string(),
        Some(p) => format!("/{p}"),
        None => "/metrics".to_string(),
    };
    let scheme = match a.get(SCHEME).map(|s| s.trim()) {
        Some("https") => "https",
        _ => "http",
    };
    let host = if ip.contains(':') {
        format!("[{ip}]")
    } else {
        ip.to_string()
    };
    Some(Target {
        url: format!("{scheme}://{host}:{port}{path}"),
        service: Some(service.to_string()),
        instance: meta.name.clone(),
    })
}

/// Scrapes the current targets every `interval` until shutdown. Targets come from the pod
/// watch through `targets` (pod key → target), so a pod that goes away stops being scraped.
pub(crate) async fn run(
    mut ctx: SourceContext,
    client: reqwest::Client,
    interval: Duration,
    mut targets: watch::Receiver<BTreeMap<(String, String), Target>>,
) {
    let mut next = Instant::now();
    loop {
        let current: Vec<Target> = targets.borrow_and_update().values().cloned().collect();
        let name = ctx.name.clone();
        if !current.is_empty() && !scrape_targets(&mut ctx, &name, &client, current).await {
            return;
        }
        if !ctx.next_period(&mut next, interval).await {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Container, ContainerPort, PodSpec, PodStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn pod(annotations: &[(&str, &str)], ip: Option<&str>) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some("api-1".into()),
                namespace: Some("shop".into()),
                annotations: Some(
                    annotations
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                ),
                ..Default::default()
            },
            spec: Some(PodSpec {
                containers: vec![Container {
                    name: "app".into(),
                    ports: Some(vec![ContainerPort {
                        container_port: 8080,
                        ..Default::default()
                    }]),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            status: Some(PodStatus {
                pod_ip: ip.map(str::to_string),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn targets_from_annotations() {
        let t = target_of(
            &pod(
                &[(SCRAPE, "true"), (PORT, "9102"), (PATH, "stats")],
                Some("127.0.0.1"),
            ),
            "shop/api",
        )
        .expect("a target");
        assert_eq!(t.url, "http://127.0.0.1:9102/stats");
        assert_eq!(t.service.as_deref(), Some("shop/api"));
        assert_eq!(t.instance.as_deref(), Some("api-1"));
        let t = target_of(&pod(&[(SCRAPE, "true")], Some("::1")), "s").expect("a target");
        assert_eq!(t.url, "http://[::1]:8080/metrics");
        for p in [
            pod(&[(SCRAPE, "false")], Some("127.0.0.1")),
            pod(&[(SCRAPE, "true")], None),
            pod(&[(SCRAPE, "true"), (PORT, "http")], Some("127.0.0.1")),
            pod(&[(SCRAPE, "true"), (PORT, "99999")], Some("127.0.0.1")),
            pod(&[], Some("127.0.0.1")),
            Pod::default(),
        ] {
            assert!(target_of(&p, "s").is_none(), "{p:?}");
        }
    }
}
