//! The watch streams (kube-runtime watchers: list, then watch, relist on 410 Gone, bookmarks)
//! merged into one stream of tagged items, each paused by its own back-off after an error so
//! that a down API server is retried calmly, never in a busy loop.

use futures_util::stream::{BoxStream, SelectAll, StreamExt};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{ConfigMap, Endpoints, Event as CoreEvent, Node, Pod, Service};
use kube::Api;
use kube::core::{ApiResource, DynamicObject, GroupVersionKind};
use kube::runtime::WatchStreamExt;
use kube::runtime::utils::Backoff;
use kube::runtime::watcher::{self, Event};
use serde::de::DeserializeOwned;
use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

/// First retry after an error, and the longest pause between retries.
const RETRY_MIN: Duration = Duration::from_millis(500);
const RETRY_MAX: Duration = Duration::from_secs(15);

pub(crate) enum Item {
    Pod(Event<Pod>),
    ReplicaSet(Event<ReplicaSet>),
    Deployment(Event<Deployment>),
    StatefulSet(Event<StatefulSet>),
    DaemonSet(Event<DaemonSet>),
    Event(Event<CoreEvent>),
    ConfigMap(Event<ConfigMap>),
    Node(Event<Node>),
    Service(Event<Service>),
    EndpointSlice(Event<DynamicObject>),
    Endpoints(Event<Endpoints>),
}

/// Where a Service's backends are listed, by what the API server serves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Backends {
    /// `discovery.k8s.io` EndpointSlices of this version (`v1`, or `v1beta1` before 1.21).
    Slices(&'static str),
    /// Legacy Endpoints: clusters without EndpointSlices (before 1.17).
    Endpoints,
}

impl Backends {
    /// Asks the API server which EndpointSlice version it serves; `v1` when it cannot be
    /// asked (a watch of the wrong version then reports its error like any other).
    pub(crate) async fn discover(client: &kube::Client) -> Backends {
        let ask = |v: &'static str| {
            let client = client.clone();
            async move {
                let r = tokio::time::timeout(
                    Duration::from_secs(10),
                    client.list_api_group_resources(&format!("discovery.k8s.io/{v}")),
                )
                .await;
                match r {
                    Ok(Ok(list)) => Some(list.resources.iter().any(|r| r.name == "endpointslices")),
                    // 404: the version is not served.
                    Ok(Err(kube::Error::Api(e))) if e.code == 404 => Some(false),
                    _ => None,
                }
            }
        };
        match ask("v1").await {
            Some(true) | None => Backends::Slices("v1"),
            Some(false) => match ask("v1beta1").await {
                Some(true) | None => Backends::Slices("v1beta1"),
                Some(false) => Backends::Endpoints,
            },
        }
    }
}

/// One item of one watch: `watch` names it (`pods`, `pods in shop`) in logs and signals.
pub(crate) struct Tagged {
    pub watch: Arc<str>,
    /// The namespace a namespaced watch is limited to (None: all, or cluster-scoped).
    pub namespace: Option<Arc<str>>,
    pub item: Result<Item, watcher::Error>,
}

/// Exponential back-off with jitter, reset by the first success (kube-runtime's
/// `StreamBackoff` does the reset); capped lower than kube's default so that a recovered
/// API server is seen within seconds.
pub(crate) struct Retry {
    next: Duration,
    seed: u64,
}

impl Retry {
    pub(crate) fn new() -> Retry {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| u64::from(d.subsec_nanos()) | 1);
        Retry {
            next: RETRY_MIN,
            seed,
        }
    }
}

impl Iterator for Retry {
    type Item = Duration;
    fn next(&mut self) -> Option<Duration> {
        // xorshift: jitter only, so that the watches of one source do not retry in lockstep.
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 7;
        self.seed ^= self.seed << 17;
        let base = self.next;
        self.next = (self.next * 2).min(RETRY_MAX);
        let jitter = base.mul_f64((self.seed % 1000) as f64 / 4000.0);
        Some(base + jitter)
    }
}

impl Backoff for Retry {
    fn reset(&mut self) {
        self.next = RETRY_MIN;
    }
}

fn stream<K>(
    api: Api<K>,
    config: watcher::Config,
    watch: Arc<str>,
    namespace: Option<Arc<str>>,
    wrap: fn(Event<K>) -> Item,
) -> BoxStream<'static, Tagged>
where
    K: kube::Resource + Clone + DeserializeOwned + Debug + Send + 'static,
{
    watcher::watcher(api, config)
        .backoff(Retry::new())
        .map(move |r| Tagged {
            watch: watch.clone(),
            namespace: namespace.clone(),
            item: r.map(wrap),
        })
        .boxed()
}

/// What to watch, and where.
pub(crate) struct Plan {
    pub pods: bool,
    pub replicasets: bool,
    pub workloads: bool,
    pub events: bool,
    pub configmaps: bool,
    pub nodes: bool,
    /// Services and their backends, for topology (None: not watched).
    pub topology: Option<Backends>,
    /// Empty: all namespaces (filtered client-side).
    pub namespaces: Vec<String>,
}

fn apis<K>(client: &kube::Client, namespaces: &[String]) -> Vec<(Api<K>, Option<String>)>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    <K as kube::Resource>::DynamicType: Default,
{
    if namespaces.is_empty() {
        vec![(Api::all(client.clone()), None)]
    } else {
        namespaces
            .iter()
            .map(|ns| (Api::namespaced(client.clone(), ns), Some(ns.clone())))
            .collect()
    }
}

fn add<K>(
    out: &mut SelectAll<BoxStream<'static, Tagged>>,
    client: &kube::Client,
    plan: &Plan,
    what: &str,
    config: &watcher::Config,
    wrap: fn(Event<K>) -> Item,
) where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + Debug
        + Send
        + 'static,
    <K as kube::Resource>::DynamicType: Default,
{
    for (api, ns) in apis::<K>(client, &plan.namespaces) {
        let tag: Arc<str> = match &ns {
            Some(ns) => format!("{what} in {ns}").into(),
            None => what.into(),
        };
        out.push(stream(api, config.clone(), tag, ns.map(Arc::from), wrap));
    }
}

/// Every watch of `plan`, merged.
pub(crate) fn streams(client: &kube::Client, plan: &Plan) -> SelectAll<BoxStream<'static, Tagged>> {
    let mut out = SelectAll::new();
    let plain = watcher::Config::default();
    if plan.pods {
        add(&mut out, client, plan, "pods", &plain, Item::Pod);
    }
    if plan.replicasets {
        add(
            &mut out,
            client,
            plan,
            "replicasets",
            &plain,
            Item::ReplicaSet,
        );
    }
    if plan.workloads {
        add(
            &mut out,
            client,
            plan,
            "deployments",
            &plain,
            Item::Deployment,
        );
        add(
            &mut out,
            client,
            plan,
            "statefulsets",
            &plain,
            Item::StatefulSet,
        );
        add(
            &mut out,
            client,
            plan,
            "daemonsets",
            &plain,
            Item::DaemonSet,
        );
    }
    if plan.events {
        // Only warnings become signals: let the server filter the rest.
        let warnings = watcher::Config::default().fields("type=Warning");
        add(&mut out, client, plan, "events", &warnings, Item::Event);
    }
    if plan.configmaps {
        add(
            &mut out,
            client,
            plan,
            "configmaps",
            &plain,
            Item::ConfigMap,
        );
    }
    if let Some(backends) = &plan.topology {
        add(&mut out, client, plan, "services", &plain, Item::Service);
        match backends {
            Backends::Slices(version) => {
                let gvk = GroupVersionKind::gvk("discovery.k8s.io", version, "EndpointSlice");
                let ar = ApiResource::from_gvk_with_plural(&gvk, "endpointslices");
                let apis: Vec<(Api<DynamicObject>, Option<String>)> = if plan.namespaces.is_empty()
                {
                    vec![(Api::all_with(client.clone(), &ar), None)]
                } else {
                    plan.namespaces
                        .iter()
                        .map(|ns| {
                            (
                                Api::namespaced_with(client.clone(), ns, &ar),
                                Some(ns.clone()),
                            )
                        })
                        .collect()
                };
                for (api, ns) in apis {
                    let tag: Arc<str> = match &ns {
                        Some(ns) => format!("endpointslices in {ns}").into(),
                        None => "endpointslices".into(),
                    };
                    out.push(stream(
                        api,
                        plain.clone(),
                        tag,
                        ns.map(Arc::from),
                        Item::EndpointSlice,
                    ));
                }
            }
            Backends::Endpoints => {
                add(&mut out, client, plan, "endpoints", &plain, Item::Endpoints)
            }
        }
    }
    if plan.nodes {
        out.push(stream(
            Api::<Node>::all(client.clone()),
            plain,
            "nodes".into(),
            None,
            Item::Node,
        ));
    }
    out
}

/// Why a watch failed, in the categories that `SourceStats` counts and the logs name.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum Problem {
    Unreachable,
    Forbidden,
    WatchError,
}

impl Problem {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Problem::Unreachable => "unreachable",
            Problem::Forbidden => "forbidden",
            Problem::WatchError => "watch error",
        }
    }
}

fn classify_client(e: &kube::Error) -> Problem {
    match e {
        kube::Error::Api(s) if s.code == 401 || s.code == 403 => Problem::Forbidden,
        kube::Error::Api(_) | kube::Error::SerdeError(_) => Problem::WatchError,
        kube::Error::Auth(_) => Problem::Forbidden,
        _ => Problem::Unreachable,
    }
}

pub(crate) fn classify(e: &watcher::Error) -> Problem {
    match e {
        watcher::Error::InitialListFailed(e)
        | watcher::Error::WatchStartFailed(e)
        | watcher::Error::WatchFailed(e) => classify_client(e),
        watcher::Error::WatchError(s) if s.code == 401 || s.code == 403 => Problem::Forbidden,
        watcher::Error::WatchError(_) | watcher::Error::NoResourceVersion => Problem::WatchError,
    }
}

/// The error with its causes (kube's Display stops at the outermost).
pub(crate) fn describe(e: &dyn std::error::Error) -> String {
    medic_core::error_chain(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_grows_caps_and_resets() {
        let mut r = Retry::new();
        let first = r.next().expect("a delay");
        assert!(first >= RETRY_MIN && first <= RETRY_MIN.mul_f64(1.25));
        let later: Vec<Duration> = (0..20).filter_map(|_| r.next()).collect();
        assert!(later.iter().all(|d| *d <= RETRY_MAX.mul_f64(1.25)));
        assert!(later[19] >= RETRY_MAX);
        r.reset();
        assert!(r.next().expect("a delay") <= RETRY_MIN.mul_f64(1.25));
    }

    #[test]
    fn problems_are_classified() {
        let status = |code| {
            Box::new(kube::core::Status {
                code,
                ..Default::default()
            })
        };
        assert_eq!(
            classify(&watcher::Error::WatchError(status(403))),
            Problem::Forbidden
        );
        assert_eq!(
            classify(&watcher::Error::InitialListFailed(kube::Error::Api(
                status(401)
            ))),
            Problem::Forbidden
        );
        assert_eq!(
            classify(&watcher::Error::WatchError(status(500))),
            Problem::WatchError
        );
        assert_eq!(
            classify(&watcher::Error::NoResourceVersion),
            Problem::WatchError
        );
    }
}
