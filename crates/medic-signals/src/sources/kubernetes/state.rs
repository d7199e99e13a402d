//! What the source remembers between watch items, and the dispatch of each item to its kind's
//! file. One task owns it all (no locks): items of all watches arrive through one merged
//! stream.

use super::super::prometheus_scrape::Target;
use super::common::{Out, ns_name};
use super::configmaps::{ConfigMapObs, config_changes, fingerprint};
use super::events::{EventDedupe, observe_event};
use super::health::Health;
use super::nodes::{NodeObs, observe_node};
use super::owners::{Owners, Resolution};
use super::pods::{PodObs, observe_pod, pod_key};
use super::scrape::target_of;
use super::topology::{
    PodRef, Topo, observe_service, observe_template, read_endpoints, read_slice,
};
use super::watch::{Item, Tagged};
use super::workloads::{
    WorkloadKind, WorkloadObs, WorkloadView, observe_workload, view_daemonset, view_deployment,
    view_statefulset,
};
use crate::redact::Redactor;
use crate::stats::{Counter, SourceStats};
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::{ConfigMap, Endpoints, Event as CoreEvent, Node, Pod, Service};
use kube::Api;
use kube::core::DynamicObject;
use kube::runtime::watcher::Event;
use medic_core::{ProcessEvent, ProcessEventKind, SignalPayload};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

/// A ReplicaSet fetched on a cache miss must not hold up every other watch for long.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

type Key = (String, String);

/// Which namespaces are watched: the listed ones, or all but the excluded ones.
pub(crate) struct Namespaces {
    pub only: Vec<String>,
    pub exclude: Vec<String>,
}

impl Namespaces {
    pub(crate) fn allowed(&self, ns: &str) -> bool {
        if self.only.is_empty() {
            !self.exclude.iter().any(|e| e == ns)
        } else {
            self.only.iter().any(|o| o == ns)
        }
    }
}

/// Which kinds' signals are wanted (a kind may be watched only to serve another: ReplicaSets
/// for pod owners, workloads for ConfigMap references, pods for scrape targets).
pub(crate) struct Emit {
    pub pods: bool,
    pub events: bool,
    pub workloads: bool,
    pub configmaps: bool,
    pub nodes: bool,
    pub topology: bool,
}

/// A relist in progress: the keys listed so far, to drop what was not listed at the end.
struct Relist {
    namespace: Option<Arc<str>>,
    seen: HashSet<Key>,
}

pub(crate) struct State {
    pub source: String,
    pub redactor: Arc<Redactor>,
    pub stats: Arc<SourceStats>,
    pub namespaces: Namespaces,
    pub emit: Emit,
    pub health: Health,
    owners: Owners,
    pods: HashMap<Key, PodObs>,
    workloads: HashMap<(WorkloadKind, String, String), WorkloadObs>,
    configmaps: HashMap<Key, ConfigMapObs>,
    nodes: HashMap<String, NodeObs>,
    events: EventDedupe,
    relists: HashMap<Arc<str>, Relist>,
    /// Watches that completed a list: a later `Init` is a relist.
    listed_once: HashSet<Arc<str>>,
    pub targets: BTreeMap<Key, Target>,
    pub targets_changed: bool,
    pub topo: Topo,
}

impl State {
    pub(crate) fn new(
        source: &str,
        redactor: Arc<Redactor>,
        stats: Arc<SourceStats>,
        namespaces: Namespaces,
        emit: Emit,
        health: Health,
    ) -> State {
        State {
            source: source.to_string(),
            redactor,
            stats,
            namespaces,
            emit,
            health,
            owners: Owners::default(),
            pods: HashMap::new(),
            workloads: HashMap::new(),
            configmaps: HashMap::new(),
            nodes: HashMap::new(),
            events: EventDedupe::default(),
            relists: HashMap::new(),
            listed_once: HashSet::new(),
            targets: BTreeMap::new(),
            targets_changed: false,
            topo: Topo::default(),
        }
    }

    fn ns_ok(&self, meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> bool {
        meta.namespace
            .as_deref()
            .is_some_and(|ns| self.namespaces.allowed(ns))
    }

    /// Handles one item of one watch; the signals it yields are in `out`.
    pub(crate) async fn handle(&mut self, t: Tagged, client: &kube::Client, out: &mut Out) {
        let Tagged {
            watch,
            namespace,
            item,
        } = t;
        let t = Tag { watch, namespace };
        let item = match item {
            Ok(item) => item,
            Err(e) => {
                self.health.watch_error(&t.watch, &e, &self.stats, out);
                return;
            }
        };
        self.health.ok(&t.watch, out);
        match item {
            Item::Pod(ev) => self.on_event(&t, ev, client, out, Self::pod).await,
            Item::ReplicaSet(ev) => self.on_event(&t, ev, client, out, Self::replicaset).await,
            Item::Deployment(ev) => {
                self.on_event(&t, ev, client, out, |s, o, listed, _, out| {
                    Box::pin(async move {
                        s.workload(view_deployment(o), listed, out);
                    })
                })
                .await
            }
            Item::StatefulSet(ev) => {
                self.on_event(&t, ev, client, out, |s, o, listed, _, out| {
                    Box::pin(async move {
                        s.workload(view_statefulset(o), listed, out);
                    })
                })
                .await
            }
            Item::DaemonSet(ev) => {
                self.on_event(&t, ev, client, out, |s, o, listed, _, out| {
                    Box::pin(async move {
                        s.workload(view_daemonset(o), listed, out);
                    })
                })
                .await
            }
            Item::Event(ev) => self.on_event(&t, ev, client, out, Self::event).await,
            Item::ConfigMap(ev) => self.on_event(&t, ev, client, out, Self::configmap).await,
            Item::Node(ev) => self.on_event(&t, ev, client, out, Self::node).await,
            Item::Service(ev) => self.on_event(&t, ev, client, out, Self::service).await,
            Item::EndpointSlice(ev) => {
                self.on_event(&t, ev, client, out, |s, o, _, client, _| {
                    Box::pin(async move {
                        if s.ns_ok(&o.metadata) {
                            s.backends(o, read_slice(o), client).await;
                        }
                    })
                })
                .await
            }
            Item::Endpoints(ev) => {
                self.on_event(&t, ev, client, out, |s, o, _, client, _| {
                    Box::pin(async move {
                        if s.ns_ok(&o.metadata) {
                            s.backends(o, read_endpoints(o), client).await;
                        }
                    })
                })
                .await
            }
        }
    }

    /// The watcher's event protocol, shared by every kind: `Init` … `InitApply`* … `InitDone`
    /// is a (re)list, after which what was not listed is gone; `Apply`/`Delete` are changes.
    async fn on_event<K, F>(
        &mut self,
        t: &Tag,
        ev: Event<K>,
        client: &kube::Client,
        out: &mut Out,
        apply: F,
    ) where
        K: KeyOf,
        F: for<'a> Fn(
            &'a mut State,
            &'a K,
            bool,
            &'a kube::Client,
            &'a mut Out,
        )
            -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + 'a>>,
    {
        match ev {
            Event::Init => {
                if !self.listed_once.insert(t.watch.clone()) {
                    self.stats.incr(Counter::KubeRelisted);
                    tracing::debug!(source = %self.source, watch = %t.watch, "relisting");
                }
                self.relists.insert(
                    t.watch.clone(),
                    Relist {
                        namespace: t.namespace.clone(),
                        seen: HashSet::new(),
                    },
                );
            }
            Event::InitApply(o) => {
                if let (Some(r), Some(k)) = (self.relists.get_mut(&t.watch), o.key()) {
                    r.seen.insert(k);
                }
                apply(self, &o, true, client, out).await;
            }
            Event::Apply(o) => apply(self, &o, false, client, out).await,
            Event::Delete(o) => self.forget(K::KIND, o.key(), out),
            Event::InitDone => {
                if let Some(r) = self.relists.remove(&t.watch) {
                    self.forget_unlisted(K::KIND, &r, out);
                }
            }
        }
    }

    /// A pod is gone (deleted, or missing from a relist): its instance will not start
    /// again, which the restart detector must know, or a crash-looping pod that its
    /// controller replaced would keep the workload "down" forever.
    fn pod_gone(&mut self, key: &Key, out: &mut Out) {
        let Some(obs) = self.pods.get(key) else {
            return;
        };
        let ts = out.now;
        out.push(
            ts,
            &obs.service.clone(),
            Some(&key.1),
            SignalPayload::Process(ProcessEvent {
                kind: ProcessEventKind::Exited,
                pid: 0,
                exit_code: None,
                signal: None,
                reason: "Stopped".to_string(),
                version: None,
                config_version: None,
            }),
        );
    }

    fn forget(&mut self, kind: Kind, key: Option<Key>, out: &mut Out) {
        let Some(key) = key else {
            return;
        };
        match kind {
            Kind::Pod => {
                self.pod_gone(&key, out);
                self.pods.remove(&key);
                if self.targets.remove(&key).is_some() {
                    self.targets_changed = true;
                }
            }
            Kind::ReplicaSet => {
                let rs = ReplicaSet {
                    metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                        namespace: Some(key.0),
                        name: Some(key.1),
                        ..Default::default()
                    },
                    ..Default::default()
                };
                self.owners.delete_replicaset(&rs);
            }
            Kind::Workload(w) => {
                let k = key.clone();
                self.topo.retain_templates(|t| *t != k);
                self.workloads.remove(&(w, key.0, key.1));
            }
            Kind::Service => {
                self.topo.retain_services(|k| *k != key);
            }
            Kind::Backends => {
                self.topo.retain_slices(|k| *k != key);
            }
            Kind::ConfigMap => {
                self.configmaps.remove(&key);
            }
            Kind::Node => {
                self.nodes.remove(&key.1);
            }
            // Event dedupe entries age out on their own.
            Kind::Event => {}
        }
    }

    fn forget_unlisted(&mut self, kind: Kind, r: &Relist, out: &mut Out) {
        let in_scope = |k: &Key| r.namespace.as_deref().is_none_or(|ns| ns == k.0);
        let keep = |k: &Key| !in_scope(k) || r.seen.contains(k);
        match kind {
            Kind::Pod => {
                let gone: Vec<Key> = self.pods.keys().filter(|k| !keep(k)).cloned().collect();
                for k in &gone {
                    self.pod_gone(k, out);
                }
                self.pods.retain(|k, _| keep(k));
                let before = self.targets.len();
                self.targets.retain(|k, _| keep(k));
                self.targets_changed |= before != self.targets.len();
            }
            Kind::ReplicaSet => self.owners.retain_replicasets(keep),
            Kind::Workload(w) => {
                self.workloads
                    .retain(|(kind, ns, name), _| *kind != w || keep(&(ns.clone(), name.clone())));
                // Templates are keyed by name only: one stays while any kind lists it.
                let names: HashSet<Key> = self
                    .workloads
                    .keys()
                    .map(|(_, ns, name)| (ns.clone(), name.clone()))
                    .collect();
                self.topo.retain_templates(|k| names.contains(k));
            }
            Kind::Service => self.topo.retain_services(keep),
            Kind::Backends => self.topo.retain_slices(keep),
            Kind::ConfigMap => self.configmaps.retain(|k, _| keep(k)),
            Kind::Node => self
                .nodes
                .retain(|name, _| r.seen.contains(&(String::new(), name.clone()))),
            Kind::Event => {}
        }
    }

    /// The workload `namespace/name` of a pod, fetching its ReplicaSet on a cache miss.
    async fn owner_of_pod(&mut self, pod: &Pod, client: &kube::Client) -> Option<String> {
        match self.owners.of_pod(&pod.metadata)? {
            Resolution::Workload(w) => Some(w),
            Resolution::NeedReplicaSet { namespace, name } => {
                Some(self.owner_of_replicaset(&namespace, &name, client).await)
            }
        }
    }

    /// The workload of a pod the pod watch has not shown (not watched, or the event came
    /// first); a pod that cannot be read (deleted since) is named as itself.
    async fn owner_of_pod_named(&mut self, ns: &str, name: &str, client: &kube::Client) -> String {
        let api: Api<Pod> = Api::namespaced(client.clone(), ns);
        let pod = match tokio::time::timeout(FETCH_TIMEOUT, api.get_opt(name)).await {
            Ok(Ok(Some(pod))) => pod,
            _ => return format!("{ns}/{name}"),
        };
        self.owner_of_pod(&pod, client)
            .await
            .unwrap_or_else(|| format!("{ns}/{name}"))
    }

    async fn owner_of_replicaset(&mut self, ns: &str, name: &str, client: &kube::Client) -> String {
        if let Resolution::Workload(w) = self.owners.of_replicaset(ns, name) {
            return w;
        }
        let api: Api<ReplicaSet> = Api::namespaced(client.clone(), ns);
        match tokio::time::timeout(FETCH_TIMEOUT, api.get_opt(name)).await {
            Ok(Ok(Some(rs))) => self.owners.apply_replicaset(&rs),
            Ok(Ok(None)) => self.owners.replicaset_unknown(ns, name),
            Ok(Err(e)) => {
                tracing::debug!(source = %self.source, replicaset = %name, error = %e, "cannot read a pod's ReplicaSet; naming the pod after it");
            }
            Err(_) => {
                tracing::debug!(source = %self.source, replicaset = %name, "reading a pod's ReplicaSet timed out; naming the pod after it");
            }
        }
        match self.owners.of_replicaset(ns, name) {
            Resolution::Workload(w) => w,
            // Not known (the API failed): the ReplicaSet is the owner its pods name.
            Resolution::NeedReplicaSet { .. } => format!("{ns}/{name}"),
        }
    }

    fn pod<'a>(
        s: &'a mut State,
        pod: &'a Pod,
        _listed: bool,
        client: &'a kube::Client,
        out: &'a mut Out,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + 'a>> {
        Box::pin(async move {
            if !s.ns_ok(&pod.metadata) {
                return;
            }
            let Some(key) = pod_key(pod) else {
                return;
            };
            let Some(service) = s.owner_of_pod(pod, client).await else {
                return;
            };
            let target = target_of(pod, &service);
            if s.targets.get(&key) != target.as_ref() {
                s.targets_changed = true;
                match target {
                    Some(t) => s.targets.insert(key.clone(), t),
                    None => s.targets.remove(&key),
                };
            }
            let mut pod_out = Out::new(&out.source, out.now);
            let prev = s.pods.get(&key);
            if let Some(obs) = observe_pod(prev, pod, &service, &s.redactor, &mut pod_out) {
                s.pods.insert(key, obs);
            }
            if s.emit.pods {
                out.signals.append(&mut pod_out.signals);
            }
        })
    }

    fn replicaset<'a>(
        s: &'a mut State,
        rs: &'a ReplicaSet,
        _listed: bool,
        _client: &'a kube::Client,
        _out: &'a mut Out,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + 'a>> {
        Box::pin(async move {
            if s.ns_ok(&rs.metadata) {
                s.owners.apply_replicaset(rs);
            }
        })
    }

    fn workload(&mut self, v: WorkloadView, listed: bool, out: &mut Out) {
        if !self.ns_ok(v.meta) {
            return;
        }
        let Some((ns, name)) = ns_name(v.meta) else {
            return;
        };
        if self.emit.topology {
            self.topo
                .set_template((ns.clone(), name.clone()), observe_template(v.template));
        }
        let key = (v.kind, ns, name);
        let mut w_out = Out::new(&out.source, out.now);
        if let Some(obs) = observe_workload(self.workloads.get(&key), &v, listed, &mut w_out) {
            self.workloads.insert(key, obs);
        }
        if self.emit.workloads {
            out.signals.append(&mut w_out.signals);
        }
    }

    fn event<'a>(
        s: &'a mut State,
        ev: &'a CoreEvent,
        _listed: bool,
        client: &'a kube::Client,
        out: &'a mut Out,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + 'a>> {
        Box::pin(async move {
            if !s.emit.events || !s.ns_ok(&ev.metadata) {
                return;
            }
            let obj = &ev.involved_object;
            let ns = obj
                .namespace
                .clone()
                .or_else(|| ev.metadata.namespace.clone())
                .unwrap_or_default();
            let name = obj.name.clone().unwrap_or_default();
            let service = match obj.kind.as_deref().unwrap_or("") {
                "Node" => format!("node/{name}"),
                // The pod's workload as its observation knows it, else as the pod says.
                "Pod" => match s.pods.get(&(ns.clone(), name.clone())) {
                    Some(p) => p.service.clone(),
                    None => s.owner_of_pod_named(&ns, &name, client).await,
                },
                "ReplicaSet" => s.owner_of_replicaset(&ns, &name, client).await,
                _ if ns.is_empty() => name.clone(),
                _ => format!("{ns}/{name}"),
            };
            observe_event(&mut s.events, ev, &service, &s.redactor, out);
        })
    }

    fn configmap<'a>(
        s: &'a mut State,
        cm: &'a ConfigMap,
        listed: bool,
        _client: &'a kube::Client,
        out: &'a mut Out,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + 'a>> {
        Box::pin(async move {
            if !s.ns_ok(&cm.metadata) {
                return;
            }
            let Some(key) = ns_name(&cm.metadata) else {
                return;
            };
            let now = fingerprint(cm);
            let prev = s.configmaps.get(&key);
            // Listed without having been seen: it may be old, its creation is no news.
            let report = s.emit.configmaps && (prev.is_some() || !listed);
            if report && prev.is_none_or(|p| p.hash != now.hash) {
                let mut users: Vec<String> = s
                    .workloads
                    .iter()
                    .filter(|((_, ns, _), w)| *ns == key.0 && w.configmaps.contains(&key.1))
                    .map(|((_, ns, name), _)| format!("{ns}/{name}"))
                    .collect();
                users.sort();
                users.dedup();
                config_changes(prev, &now, cm, &users, out);
            }
            s.configmaps.insert(key, now);
        })
    }

    fn node<'a>(
        s: &'a mut State,
        node: &'a Node,
        _listed: bool,
        _client: &'a kube::Client,
        out: &'a mut Out,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + 'a>> {
        Box::pin(async move {
            let Some(name) = node.metadata.name.clone() else {
                return;
            };
            let mut n_out = Out::new(&out.source, out.now);
            if let Some(obs) = observe_node(s.nodes.get(&name), node, &s.redactor, &mut n_out) {
                s.nodes.insert(name, obs);
            }
            if s.emit.nodes {
                out.signals.append(&mut n_out.signals);
            }
        })
    }

    fn service<'a>(
        s: &'a mut State,
        svc: &'a Service,
        _listed: bool,
        _client: &'a kube::Client,
        _out: &'a mut Out,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + 'a>> {
        Box::pin(async move {
            if s.ns_ok(&svc.metadata)
                && let Some(key) = ns_name(&svc.metadata)
            {
                s.topo.set_service(key, observe_service(svc));
            }
        })
    }

    /// An EndpointSlice or Endpoints object: the workloads of the pods it points at.
    async fn backends<K: KeyOf>(
        &mut self,
        o: &K,
        read: Option<(String, Vec<PodRef>)>,
        client: &kube::Client,
    ) {
        let (Some(key), Some((service, pods))) = (o.key(), read) else {
            return;
        };
        let mut workloads = std::collections::BTreeSet::new();
        for p in pods {
            let pk = (p.namespace, p.name);
            let owner = match (self.pods.get(&pk), self.topo.pod_owners.get(&pk)) {
                (Some(obs), _) => obs.service.clone(),
                (None, Some(w)) => w.clone(),
                (None, None) => {
                    let w = self.owner_of_pod_named(&pk.0, &pk.1, client).await;
                    self.topo.remember_owner(pk, w.clone());
                    w
                }
            };
            workloads.insert(owner);
        }
        self.topo.set_slice(key, service, workloads);
    }

    pub(crate) fn sizes(&self) -> (usize, usize, usize, usize, usize, usize) {
        (
            self.pods.len(),
            self.owners.replicaset_count(),
            self.workloads.len(),
            self.configmaps.len(),
            self.nodes.len(),
            self.events.len(),
        )
    }
}

/// Which watch an item came from.
struct Tag {
    watch: Arc<str>,
    namespace: Option<Arc<str>>,
}

/// Which map an object's deletion or relist touches.
#[derive(Copy, Clone)]
enum Kind {
    Pod,
    ReplicaSet,
    Workload(WorkloadKind),
    Event,
    ConfigMap,
    Node,
    Service,
    /// EndpointSlices and Endpoints.
    Backends,
}

/// The key of an object in the source's maps (`("", name)` for cluster-scoped ones).
trait KeyOf {
    const KIND: Kind;
    fn key(&self) -> Option<Key>;
}

macro_rules! key_of {
    ($t:ty, $kind:expr) => {
        impl KeyOf for $t {
            const KIND: Kind = $kind;
            fn key(&self) -> Option<Key> {
                let m = &self.metadata;
                Some((m.namespace.clone().unwrap_or_default(), m.name.clone()?))
            }
        }
    };
}

key_of!(Pod, Kind::Pod);
key_of!(ReplicaSet, Kind::ReplicaSet);
key_of!(
    k8s_openapi::api::apps::v1::Deployment,
    Kind::Workload(WorkloadKind::Deployment)
);
key_of!(
    k8s_openapi::api::apps::v1::StatefulSet,
    Kind::Workload(WorkloadKind::StatefulSet)
);
key_of!(
    k8s_openapi::api::apps::v1::DaemonSet,
    Kind::Workload(WorkloadKind::DaemonSet)
);
key_of!(CoreEvent, Kind::Event);
key_of!(ConfigMap, Kind::ConfigMap);
key_of!(Node, Kind::Node);
key_of!(Service, Kind::Service);
key_of!(DynamicObject, Kind::Backends);
key_of!(Endpoints, Kind::Backends);

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        ContainerState, ContainerStateTerminated, ContainerStatus, PodStatus,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};
    use medic_core::{ProcessEventKind, Signal, SignalPayload, Ts};

    fn state() -> State {
        State::new(
            "k8s",
            Arc::new(Redactor::default()),
            Arc::new(SourceStats::new()),
            Namespaces {
                only: Vec::new(),
                exclude: vec!["kube-system".into()],
            },
            Emit {
                pods: true,
                events: true,
                workloads: true,
                configmaps: true,
                nodes: true,
                topology: true,
            },
            Health::new("k8s", "https://127.0.0.1:9"),
        )
    }

    fn oom_pod(ns: &str) -> Pod {
        let finished =
            Time(k8s_openapi::jiff::Timestamp::from_millisecond(Ts::now().0 - 1000).expect("time"));
        Pod {
            metadata: ObjectMeta {
                namespace: Some(ns.into()),
                name: Some("db-0".into()),
                owner_references: Some(vec![OwnerReference {
                    kind: "StatefulSet".into(),
                    name: "db".into(),
                    controller: Some(true),
                    ..Default::default()
                }]),
                ..Default::default()
            },
            spec: None,
            status: Some(PodStatus {
                container_statuses: Some(vec![ContainerStatus {
                    name: "pg".into(),
                    last_state: Some(ContainerState {
                        terminated: Some(ContainerStateTerminated {
                            reason: Some("OOMKilled".into()),
                            exit_code: 137,
                            finished_at: Some(finished),
                            container_id: Some("cri://1".into()),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }),
                    restart_count: 1,
                    ..Default::default()
                }]),
                ..Default::default()
            }),
        }
    }

    /// Feeds pod watch events; returns the process signals they yielded.
    async fn feed(st: &mut State, events: Vec<Event<Pod>>) -> Vec<Signal> {
        // Never contacted: StatefulSet pods need no ReplicaSet lookup.
        let client = kube::Client::try_from(kube::Config::new(
            "http://127.0.0.1:9".parse().expect("uri"),
        ))
        .expect("client");
        let mut out = Out::new("k8s", Ts::now());
        for ev in events {
            let t = Tagged {
                watch: "pods".into(),
                namespace: None,
                item: Ok(Item::Pod(ev)),
            };
            st.handle(t, &client, &mut out).await;
        }
        out.signals
            .into_iter()
            .filter(|s| matches!(&s.payload, SignalPayload::Process(e) if e.kind == ProcessEventKind::Exited))
            .collect()
    }

    #[tokio::test]
    async fn relists_do_not_repeat_and_forget_vanished_pods() {
        let mut st = state();
        let first = feed(
            &mut st,
            vec![
                Event::Init,
                Event::InitApply(oom_pod("shop")),
                Event::InitDone,
            ],
        )
        .await;
        assert_eq!(first.len(), 1);
        assert_eq!(first[0].service.as_deref(), Some("shop/db"));
        assert_eq!(first[0].instance.as_deref(), Some("db-0"));
        // A relist (410 Gone, reconnect) delivers it again: nothing new.
        let again = feed(
            &mut st,
            vec![
                Event::Init,
                Event::InitApply(oom_pod("shop")),
                Event::InitDone,
            ],
        )
        .await;
        assert!(again.is_empty(), "{again:?}");
        assert_eq!(st.stats.get(Counter::KubeRelisted), 1);
        // A relist without it: the pod is forgotten, and its instance reported stopped for
        // good (so a crash it had does not keep its workload "down").
        let gone = feed(&mut st, vec![Event::Init, Event::InitDone]).await;
        assert_eq!(gone.len(), 1, "{gone:?}");
        assert!(matches!(&gone[0].payload, SignalPayload::Process(p) if p.reason == "Stopped"));
        assert_eq!(st.sizes().0, 0);
        // Excluded namespaces are not even remembered.
        assert!(
            feed(&mut st, vec![Event::Apply(oom_pod("kube-system"))])
                .await
                .is_empty()
        );
        assert_eq!(st.sizes().0, 0);
        // Malformed: a pod without a name, deletions of unknown pods.
        let nameless = Pod::default();
        assert!(
            feed(
                &mut st,
                vec![Event::Apply(nameless.clone()), Event::Delete(nameless)]
            )
            .await
            .is_empty()
        );
    }
}
