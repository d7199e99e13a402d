//! The service proxy: for each Service with a loopback ClusterIP, listen on ClusterIP:port and
//! forward each TCP connection to a ready backend, round-robin. Backends come from
//! `discovery.k8s.io/v1beta1` EndpointSlices (the 1.20 apiserver's legacy Endpoints reject
//! loopback addresses); the EndpointSlice controller has already resolved `targetPort`.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use k8s_openapi::api::core::v1::Service;
use kube::Api;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
use kube::runtime::reflector::{self, Store, store::Writer};
use kube::runtime::{WatchStreamExt, watcher};
use serde::Deserialize;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// EndpointSlices as the 1.20 apiserver serves them.
pub fn endpoint_slice_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("discovery.k8s.io", "v1beta1", "EndpointSlice"),
        "endpointslices",
    )
}

pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

#[derive(Debug, Default, Clone, Deserialize)]
pub struct SliceBody {
    #[serde(default)]
    pub endpoints: Option<Vec<SliceEndpoint>>,
    #[serde(default)]
    pub ports: Option<Vec<SlicePort>>,
}

#[derive(Debug, Default, Clone, Deserialize)]
pub struct SliceEndpoint {
    #[serde(default)]
    pub addresses: Vec<String>,
    #[serde(default)]
    pub conditions: Option<SliceConditions>,
}

#[derive(Debug, Default, Clone, Deserialize)]
pub struct SliceConditions {
    pub ready: Option<bool>,
}

#[derive(Debug, Default, Clone, Deserialize)]
pub struct SlicePort {
    pub name: Option<String>,
    pub port: Option<i32>,
    pub protocol: Option<String>,
}

/// Ready loopback backends for the service port named `port_name` ("" when unnamed), sorted.
pub fn backends(slices: &[SliceBody], port_name: &str) -> Vec<SocketAddr> {
    let mut out = Vec::new();
    for s in slices {
        let Some(port) = s.ports.iter().flatten().find(|p| {
            p.name.as_deref().unwrap_or("") == port_name
                && p.protocol.as_deref().unwrap_or("TCP") == "TCP"
        }) else {
            continue;
        };
        let Some(port) = port.port.and_then(|p| u16::try_from(p).ok()) else {
            continue;
        };
        for ep in s.endpoints.iter().flatten() {
            // Unset means ready (the API's rule for v1beta1).
            if ep.conditions.as_ref().and_then(|c| c.ready) == Some(false) {
                continue;
            }
            for a in &ep.addresses {
                if let Ok(ip) = a.parse::<IpAddr>()
                    && crate::is_loopback(ip)
                {
                    out.push(SocketAddr::new(ip, port));
                }
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// One listening service port.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Target {
    namespace: String,
    name: String,
    port_name: String,
}

/// The ClusterIP:port → service port map the proxy should serve.
fn desired(services: &[Arc<Service>]) -> BTreeMap<SocketAddr, Target> {
    let mut out = BTreeMap::new();
    for svc in services {
        let Some(spec) = &svc.spec else { continue };
        let Some(ip) = spec
            .cluster_ip
            .as_deref()
            .and_then(|ip| ip.parse::<IpAddr>().ok())
        else {
            continue;
        };
        // Only loopback ClusterIPs: the proxy never listens anywhere else.
        if !crate::is_loopback(ip) {
            continue;
        }
        for p in spec.ports.iter().flatten() {
            if p.protocol.as_deref().unwrap_or("TCP") != "TCP" {
                continue;
            }
            let Ok(port) = u16::try_from(p.port) else {
                continue;
            };
            out.insert(
                SocketAddr::new(ip, port),
                Target {
                    namespace: svc.metadata.namespace.clone().unwrap_or_default(),
                    name: svc.metadata.name.clone().unwrap_or_default(),
                    port_name: p.name.clone().unwrap_or_default(),
                },
            );
        }
    }
    out
}

struct Shared {
    slices: Store<DynamicObject>,
    next: Mutex<HashMap<Target, usize>>,
}

impl Shared {
    /// The ready backends of `t`, in EndpointSlice order.
    fn backends(&self, t: &Target) -> Vec<SocketAddr> {
        let bodies: Vec<SliceBody> = self
            .slices
            .state_filter(|s| {
                s.metadata.namespace.as_deref() == Some(t.namespace.as_str())
                    && s.metadata
                        .labels
                        .as_ref()
                        .and_then(|l| l.get(SERVICE_NAME_LABEL))
                        .is_some_and(|n| *n == t.name)
            })
            .iter()
            .filter_map(|s| serde_json::from_value(s.data.clone()).ok())
            .collect();
        backends(&bodies, &t.port_name)
    }

    /// The backends to try for one connection: round-robin, so each starts at the next one.
    fn candidates(&self, t: &Target) -> Vec<SocketAddr> {
        let all = self.backends(t);
        if all.is_empty() {
            return all;
        }
        let mut next = self.next.lock().unwrap_or_else(|p| p.into_inner());
        let n = next.entry(t.clone()).or_insert(0);
        let start = *n % all.len();
        *n = n.wrapping_add(1);
        all[start..].iter().chain(&all[..start]).copied().collect()
    }
}

fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let l = std::net::TcpListener::bind(addr)?;
    l.set_nonblocking(true)?;
    TcpListener::from_std(l)
}

/// How often a Service's backends are looked at between connections.
const BACKEND_CHECK: Duration = Duration::from_millis(200);

/// Serves one ClusterIP:port. While the Service has no ready backend it does not listen at
/// all, so callers get "connection refused" at once, as kube-proxy's REJECT rule gives them.
async fn serve(listener: TcpListener, target: Target, shared: Arc<Shared>) {
    let Ok(addr) = listener.local_addr() else {
        return;
    };
    let mut listener = Some(listener);
    let mut check = tokio::time::interval(BACKEND_CHECK);
    loop {
        let Some(l) = &listener else {
            check.tick().await;
            if !shared.backends(&target).is_empty() {
                listener = listen(addr)
                    .inspect_err(
                        |e| tracing::debug!(%addr, error = %e, "proxy: cannot listen again yet"),
                    )
                    .ok();
            }
            continue;
        };
        let client = tokio::select! {
            accepted = l.accept() => match accepted {
                Ok((client, _)) => client,
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = check.tick() => {
                if shared.backends(&target).is_empty() {
                    listener = None;
                }
                continue;
            }
        };
        let candidates = shared.candidates(&target);
        if candidates.is_empty() {
            // The backends went between two checks: this one connection is closed.
            listener = None;
            continue;
        }
        tokio::spawn(async move {
            for addr in candidates {
                match tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(addr)).await {
                    Ok(Ok(mut backend)) => {
                        let mut client = client;
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut backend).await;
                        return;
                    }
                    _ => continue,
                }
            }
        });
    }
}

/// Runs the proxy until `shutdown` turns true.
pub async fn run(client: kube::Client, mut shutdown: watch::Receiver<bool>) {
    let ar = endpoint_slice_resource();
    let slice_writer: Writer<DynamicObject> = Writer::new(ar.clone());
    let shared = Arc::new(Shared {
        slices: slice_writer.as_reader(),
        next: Mutex::new(HashMap::new()),
    });
    let (svc_store, svc_writer) = reflector::store::<Service>();
    let svc_stream = reflector::reflector(
        svc_writer,
        watcher(
            Api::<Service>::all(client.clone()),
            watcher::Config::default(),
        )
        .default_backoff(),
    );
    let slice_stream = reflector::reflector(
        slice_writer,
        watcher(
            Api::<DynamicObject>::all_with(client.clone(), &ar),
            watcher::Config::default(),
        )
        .default_backoff(),
    );
    let mut svc_stream = std::pin::pin!(svc_stream);
    let mut slice_stream = std::pin::pin!(slice_stream);
    let mut listeners: BTreeMap<SocketAddr, (Target, tokio::task::JoinHandle<()>)> =
        BTreeMap::new();
    // Binds that failed (port taken) are retried on a timer too.
    let mut retry = tokio::time::interval(Duration::from_secs(2));
    let mut warned = std::collections::BTreeSet::new();
    loop {
        tokio::select! {
            ev = svc_stream.next() => {
                if let Some(Err(e)) = ev { tracing::warn!(error = %e, "service watch"); }
            }
            ev = slice_stream.next() => {
                if let Some(Err(e)) = ev { tracing::warn!(error = %e, "endpointslice watch"); }
                continue;
            }
            _ = retry.tick() => {}
            _ = shutdown.changed() => break,
        }
        let want = desired(&svc_store.state());
        listeners.retain(|addr, (t, h)| {
            let keep = want.get(addr) == Some(t);
            if !keep {
                tracing::info!(%addr, service = %t.name, "proxy: stop listening");
                h.abort();
            }
            keep
        });
        for (addr, t) in want {
            if listeners.contains_key(&addr) {
                continue;
            }
            match listen(addr) {
                Ok(l) => {
                    tracing::info!(%addr, namespace = %t.namespace, service = %t.name, "proxy: listening");
                    let h = tokio::spawn(serve(l, t.clone(), shared.clone()));
                    listeners.insert(addr, (t, h));
                }
                Err(e) => {
                    // Retried every tick; said once.
                    if warned.insert(addr) {
                        tracing::warn!(%addr, error = %e, "proxy: cannot listen (retrying)");
                    }
                }
            }
        }
    }
    for (_, (_, h)) in listeners {
        h.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slice(json: serde_json::Value) -> SliceBody {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn ready_loopback_backends_by_port_name() {
        let s = slice(serde_json::json!({
            "addressType": "IPv4",
            "endpoints": [
                {"addresses": ["127.1.0.3"], "conditions": {"ready": true}},
                {"addresses": ["127.1.0.2"]},
                {"addresses": ["127.1.0.4"], "conditions": {"ready": false}},
                {"addresses": ["10.0.0.9"], "conditions": {"ready": true}}
            ],
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]
        }));
        assert_eq!(
            backends(std::slice::from_ref(&s), "http"),
            vec![
                "127.1.0.2:8080".parse().unwrap(),
                "127.1.0.3:8080".parse().unwrap()
            ]
        );
        assert!(backends(&[s], "").is_empty());
        let empty =
            slice(serde_json::json!({"addressType": "IPv4", "endpoints": null, "ports": null}));
        assert!(backends(&[empty], "").is_empty());
    }
}
