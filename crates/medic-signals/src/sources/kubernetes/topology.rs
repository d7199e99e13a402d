//! Topology: who calls whom, learned from the cluster's own objects → `Topology` snapshots.
//!
//! A workload calls a Service when its pod template names it: by ClusterIP anywhere, by
//! `name.namespace.svc[.domain]` anywhere, or by `name` (same namespace) or `name.namespace`
//! in an address position — a URL's host, `host:port`, or the value of an environment
//! variable whose name says it holds an address (`*_HOST`, `*_URL`, `*_ADDR`, …) — in its
//! containers' command, args or env values. The kubelet's own `<SVC>_SERVICE_HOST` variables
//! are not in the template, so they never count. The callee is the Service's backends: the
//! workloads owning the pods of its EndpointSlices (Endpoints where the API has no slices),
//! and the workloads whose pod template its selector matches, so a Service whose backends
//! are scaled to zero keeps its edge.
//!
//! Only address-like tokens of a template are kept (never whole env values: they may hold
//! secrets), at most [`MAX_REFS`] per workload.

use super::common::{containers, ns_name};
use k8s_openapi::api::core::v1::{Endpoints, PodTemplateSpec, Service};
use kube::core::DynamicObject;
use medic_core::LearnedEdge;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// A workload whose template names more hosts than this is not read further.
const MAX_REFS: usize = 256;
/// Pod → workload answers kept for EndpointSlice targets (cleared when full).
const MAX_POD_OWNERS: usize = 20_000;

type Key = (String, String);

/// One address-like token of a pod template.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct HostRef {
    /// Lower-case host name or IPv4 address, without port.
    pub host: String,
    /// In an address position (URL host, `host:port`, an address variable's value).
    pub strong: bool,
    /// Where: `args of container app`, `env CACHE_URL of container app`.
    pub place: String,
}

/// What topology keeps of a workload's pod template.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct TemplateObs {
    labels: BTreeMap<String, String>,
    refs: Vec<HostRef>,
}

/// What topology keeps of a Service.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ServiceObs {
    selector: BTreeMap<String, String>,
    cluster_ips: Vec<String>,
}

pub(crate) fn observe_service(svc: &Service) -> ServiceObs {
    let spec = svc.spec.as_ref();
    let mut cluster_ips: Vec<String> = spec
        .and_then(|s| s.cluster_ips.clone())
        .unwrap_or_default()
        .into_iter()
        .chain(spec.and_then(|s| s.cluster_ip.clone()))
        // Headless Services have no ClusterIP ("None").
        .filter(|ip| !ip.is_empty() && ip != "None")
        .collect();
    cluster_ips.sort();
    cluster_ips.dedup();
    ServiceObs {
        selector: spec
            .and_then(|s| s.selector.clone())
            .map(|m| m.into_iter().collect())
            .unwrap_or_default(),
        cluster_ips,
    }
}

/// Environment variable names that say their value is an address.
fn address_variable(name: &str) -> bool {
    const SUFFIXES: [&str; 12] = [
        "HOST",
        "HOSTS",
        "HOSTNAME",
        "ADDR",
        "ADDRESS",
        "SERVER",
        "SERVERS",
        "URL",
        "URI",
        "ENDPOINT",
        "ENDPOINTS",
        "DSN",
    ];
    let n = name.to_ascii_uppercase();
    SUFFIXES.iter().any(|s| {
        n == *s
            || n.strip_suffix(s)
                .is_some_and(|p| p.ends_with('_') || p.ends_with('-'))
    })
}

/// A DNS name or IPv4 address, as far as its characters go.
fn plausible_host(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= 253
        && h.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        && h.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
}

fn is_ipv4(h: &str) -> bool {
    h.parse::<std::net::Ipv4Addr>().is_ok()
}

/// The address-like tokens of one string (`address_var`: the string is the value of an
/// address variable).
fn scan(text: &str, address_var: bool, place: &str, out: &mut Vec<HostRef>) {
    let pieces = text.split(|c: char| {
        c.is_whitespace()
            || matches!(
                c,
                ',' | ';' | '"' | '\'' | '=' | '(' | ')' | '[' | ']' | '{' | '}' | '<' | '>' | '|'
            )
    });
    for piece in pieces {
        if out.len() >= MAX_REFS {
            return;
        }
        let (rest, url) = match piece.find("://") {
            Some(i) => (&piece[i + 3..], true),
            None => (piece, false),
        };
        let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
        // `user:password@host`: only what follows the last `@` is looked at.
        let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => (h, true),
            _ => (hostport, false),
        };
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        if !plausible_host(&host) {
            continue;
        }
        let strong = url || port || address_var;
        // Keep only what could name a Service: anything in an address position, and
        // otherwise IPs and `….svc` names.
        let keep = strong || is_ipv4(&host) || host.contains(".svc");
        if keep && !out.iter().any(|r| r.host == host && r.strong == strong) {
            out.push(HostRef {
                host,
                strong,
                place: place.to_string(),
            });
        }
    }
}

pub(crate) fn observe_template(template: Option<&PodTemplateSpec>) -> TemplateObs {
    let mut obs = TemplateObs::default();
    let Some(t) = template else {
        return obs;
    };
    obs.labels = t
        .metadata
        .as_ref()
        .and_then(|m| m.labels.clone())
        .map(|m| m.into_iter().collect())
        .unwrap_or_default();
    let Some(spec) = &t.spec else {
        return obs;
    };
    for c in containers(spec) {
        let place = |what: &str| format!("{what} of container {}", c.name);
        for s in c.command.iter().flatten() {
            scan(s, false, &place("command"), &mut obs.refs);
        }
        for s in c.args.iter().flatten() {
            scan(s, false, &place("args"), &mut obs.refs);
        }
        for e in c.env.iter().flatten() {
            if let Some(v) = &e.value {
                let p = place(&format!("env {}", e.name));
                scan(v, address_variable(&e.name), &p, &mut obs.refs);
            }
        }
    }
    obs.refs.sort();
    obs.refs
        .dedup_by(|a, b| a.host == b.host && a.strong == b.strong);
    obs
}

/// One target of an EndpointSlice or Endpoints object.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct PodRef {
    pub namespace: String,
    pub name: String,
}

/// An EndpointSlice (any version, read as JSON): its Service and the pods it points at.
pub(crate) fn read_slice(o: &DynamicObject) -> Option<(String, Vec<PodRef>)> {
    let ns = o.metadata.namespace.clone()?;
    let service = o
        .metadata
        .labels
        .as_ref()?
        .get("kubernetes.io/service-name")?
        .clone();
    let mut pods = Vec::new();
    for ep in o
        .data
        .get("endpoints")
        .and_then(|v| v.as_array())
        .into_iter()
        .flatten()
    {
        let Some(r) = ep.get("targetRef") else {
            continue;
        };
        if r.get("kind").and_then(|k| k.as_str()) != Some("Pod") {
            continue;
        }
        let Some(name) = r.get("name").and_then(|n| n.as_str()) else {
            continue;
        };
        let namespace = r
            .get("namespace")
            .and_then(|n| n.as_str())
            .unwrap_or(&ns)
            .to_string();
        pods.push(PodRef {
            namespace,
            name: name.to_string(),
        });
    }
    Some((service, pods))
}

/// Legacy Endpoints (clusters without EndpointSlices): named after their Service.
pub(crate) fn read_endpoints(e: &Endpoints) -> Option<(String, Vec<PodRef>)> {
    let (ns, service) = ns_name(&e.metadata)?;
    let mut pods = Vec::new();
    for s in e.subsets.iter().flatten() {
        let addresses = s.addresses.iter().flatten();
        for a in addresses.chain(s.not_ready_addresses.iter().flatten()) {
            if let Some(r) = &a.target_ref
                && r.kind.as_deref() == Some("Pod")
                && let Some(name) = &r.name
            {
                pods.push(PodRef {
                    namespace: r.namespace.clone().unwrap_or_else(|| ns.clone()),
                    name: name.clone(),
                });
            }
        }
    }
    Some((service, pods))
}

/// Everything topology remembers, and the last snapshot sent. The maps change only through
/// the methods below, which note a real change: the edges are recomputed then, not on every
/// watch item (a Deployment's status moves on every pod readiness change).
#[derive(Default)]
pub(crate) struct Topo {
    services: HashMap<Key, ServiceObs>,
    /// EndpointSlice (or Endpoints) key → its Service's name and the workloads of its pods.
    slices: HashMap<Key, (String, BTreeSet<String>)>,
    /// Workload `(namespace, name)` → its template.
    templates: HashMap<Key, TemplateObs>,
    pub pod_owners: HashMap<Key, String>,
    dirty: bool,
    sent: Option<Vec<LearnedEdge>>,
}

/// Inserts `v` at `k`, noting whether anything changed.
fn put<V: PartialEq>(m: &mut HashMap<Key, V>, k: Key, v: V, dirty: &mut bool) {
    if m.get(&k) != Some(&v) {
        m.insert(k, v);
        *dirty = true;
    }
}

fn keep<V>(m: &mut HashMap<Key, V>, f: impl Fn(&Key) -> bool, dirty: &mut bool) {
    let before = m.len();
    m.retain(|k, _| f(k));
    *dirty |= m.len() != before;
}

impl Topo {
    pub(crate) fn set_service(&mut self, k: Key, v: ServiceObs) {
        put(&mut self.services, k, v, &mut self.dirty);
    }
    pub(crate) fn set_slice(&mut self, k: Key, service: String, workloads: BTreeSet<String>) {
        put(&mut self.slices, k, (service, workloads), &mut self.dirty);
    }
    pub(crate) fn set_template(&mut self, k: Key, v: TemplateObs) {
        put(&mut self.templates, k, v, &mut self.dirty);
    }
    pub(crate) fn retain_services(&mut self, f: impl Fn(&Key) -> bool) {
        keep(&mut self.services, f, &mut self.dirty);
    }
    pub(crate) fn retain_slices(&mut self, f: impl Fn(&Key) -> bool) {
        keep(&mut self.slices, f, &mut self.dirty);
    }
    pub(crate) fn retain_templates(&mut self, f: impl Fn(&Key) -> bool) {
        keep(&mut self.templates, f, &mut self.dirty);
    }

    pub(crate) fn remember_owner(&mut self, pod: Key, workload: String) {
        if self.pod_owners.len() >= MAX_POD_OWNERS {
            self.pod_owners.clear();
        }
        self.pod_owners.insert(pod, workload);
    }

    /// The workloads behind Service `ns/name`, each with how it is known.
    fn backends(&self, ns: &str, name: &str, svc: &ServiceObs) -> BTreeMap<String, &'static str> {
        let mut out = BTreeMap::new();
        for ((sns, _), (service, workloads)) in &self.slices {
            if sns == ns && service == name {
                for w in workloads {
                    out.entry(w.clone()).or_insert("its endpoints are");
                }
            }
        }
        if !svc.selector.is_empty() {
            for ((wns, wname), t) in &self.templates {
                let selected = wns == ns
                    && svc
                        .selector
                        .iter()
                        .all(|(k, v)| t.labels.get(k).is_some_and(|l| l == v));
                if selected {
                    out.entry(format!("{wns}/{wname}"))
                        .or_insert("its selector matches");
                }
            }
        }
        out
    }

    /// Every learned edge, sorted, one per (caller, callee).
    pub(crate) fn edges(&self) -> Vec<LearnedEdge> {
        // Host → the Services it may name (ClusterIPs, and the DNS forms).
        let mut by_ip: HashMap<&str, &Key> = HashMap::new();
        let mut by_name: HashMap<(&str, &str), &Key> = HashMap::new();
        for (key, svc) in &self.services {
            for ip in &svc.cluster_ips {
                by_ip.insert(ip, key);
            }
            by_name.insert((&key.0, &key.1), key);
        }
        let mut backends: HashMap<&Key, BTreeMap<String, &'static str>> = HashMap::new();
        let mut edges: BTreeMap<(String, String), String> = BTreeMap::new();
        for ((wns, wname), t) in &self.templates {
            let caller = format!("{wns}/{wname}");
            for r in &t.refs {
                let Some(svc_key) = resolve(r, wns, &by_ip, &by_name) else {
                    continue;
                };
                let b = backends.entry(svc_key).or_insert_with(|| {
                    self.backends(&svc_key.0, &svc_key.1, &self.services[svc_key])
                });
                for (callee, how) in b.iter() {
                    if *callee == caller {
                        continue;
                    }
                    edges
                        .entry((caller.clone(), callee.clone()))
                        .or_insert_with(|| {
                            format!(
                                "the {} of {caller} names Service {}/{} ({}); {how} {callee}",
                                r.place, svc_key.0, svc_key.1, r.host
                            )
                        });
                }
            }
        }
        edges
            .into_iter()
            .map(|((caller, callee), evidence)| LearnedEdge {
                caller,
                callee,
                evidence,
            })
            .collect()
    }

    /// The snapshot, when what it is made of changed and it differs from the last one sent.
    pub(crate) fn changed(&mut self) -> Option<Vec<LearnedEdge>> {
        if !std::mem::take(&mut self.dirty) {
            return None;
        }
        let now = self.edges();
        if self.sent.as_ref() == Some(&now) {
            return None;
        }
        self.sent = Some(now.clone());
        Some(now)
    }

    /// The last snapshot sent, to repeat.
    pub(crate) fn last_sent(&self) -> Option<&Vec<LearnedEdge>> {
        self.sent.as_ref()
    }
}

/// The Service a host names, seen from a workload in `ns`.
fn resolve<'a>(
    r: &HostRef,
    ns: &str,
    by_ip: &HashMap<&str, &'a Key>,
    by_name: &HashMap<(&str, &str), &'a Key>,
) -> Option<&'a Key> {
    if let Some(k) = by_ip.get(r.host.as_str()) {
        return Some(k);
    }
    let labels: Vec<&str> = r.host.split('.').collect();
    match labels.as_slice() {
        [name] if r.strong => by_name.get(&(ns, *name)).copied(),
        [name, sns] if r.strong => by_name.get(&(*sns, *name)).copied(),
        [name, sns, "svc", ..] => by_name.get(&(*sns, *name)).copied(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Container, EnvVar, PodSpec, ServiceSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn template(app: &str, args: &[&str], env: &[(&str, &str)]) -> PodTemplateSpec {
        PodTemplateSpec {
            metadata: Some(ObjectMeta {
                labels: Some([("app".to_string(), app.to_string())].into()),
                ..Default::default()
            }),
            spec: Some(PodSpec {
                containers: vec![Container {
                    name: "main".into(),
                    args: Some(args.iter().map(|s| s.to_string()).collect()),
                    env: Some(
                        env.iter()
                            .map(|(k, v)| EnvVar {
                                name: k.to_string(),
                                value: Some(v.to_string()),
                                ..Default::default()
                            })
                            .collect(),
                    ),
                    ..Default::default()
                }],
                ..Default::default()
            }),
        }
    }

    fn service(app: &str, ip: &str) -> Service {
        Service {
            spec: Some(ServiceSpec {
                cluster_ip: Some(ip.into()),
                selector: Some([("app".to_string(), app.to_string())].into()),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn key(ns: &str, n: &str) -> Key {
        (ns.into(), n.into())
    }

    fn pairs(t: &Topo) -> Vec<(String, String)> {
        t.edges()
            .into_iter()
            .map(|e| (e.caller, e.callee))
            .collect()
    }

    #[test]
    fn address_forms_are_recognized_and_plain_words_are_not() {
        let t = observe_template(Some(&template(
            "web",
            &["--dep-addr", "cache=10.96.0.7:80", "--mode", "cache"],
            &[
                ("DB_URL", "postgres://app:s3cret@db.data:5432/app"),
                ("QUEUE_HOST", "queue"),
                ("GREETING", "hello world"),
                ("SEARCH", "http://search.shop.svc.cluster.local/q?x=1"),
                ("LOG_DIR", "/var/log/app.d"),
            ],
        )));
        let hosts: BTreeSet<(&str, bool)> =
            t.refs.iter().map(|r| (r.host.as_str(), r.strong)).collect();
        assert_eq!(
            hosts,
            BTreeSet::from([
                ("10.96.0.7", true),
                ("db.data", true),
                ("queue", true),
                ("search.shop.svc.cluster.local", true),
            ]),
            "{t:?}"
        );
        // The password was never kept, nor any plain word.
        assert!(!format!("{t:?}").contains("s3cret"));
        assert!(address_variable("REDIS_HOST") && address_variable("upstream-url"));
        assert!(!address_variable("GHOST") && !address_variable("HOSTING"));
    }

    #[test]
    fn edges_join_references_to_backends_by_slice_and_by_selector() {
        let mut t = Topo::default();
        t.set_service(
            key("shop", "cache"),
            observe_service(&service("cache", "10.96.0.7")),
        );
        // `queue` has no selector; its EndpointSlice points at pods of `broker`.
        let mut queue = observe_service(&service("queue", "10.96.0.8"));
        queue.selector.clear();
        t.set_service(key("shop", "queue"), queue);
        t.set_service(
            key("data", "db"),
            observe_service(&service("db", "10.96.0.9")),
        );
        t.set_slice(
            key("shop", "queue-abc"),
            "queue".into(),
            BTreeSet::from(["shop/broker".to_string()]),
        );
        t.set_template(
            key("shop", "web"),
            observe_template(Some(&template(
                "web",
                &["cache=10.96.0.7:80", "--mode", "cache"],
                &[
                    ("QUEUE_HOST", "queue"),
                    ("DB_URL", "postgres://db.data:5432"),
                ],
            ))),
        );
        for app in ["cache", "broker"] {
            t.set_template(
                key("shop", app),
                observe_template(Some(&template(app, &[], &[]))),
            );
        }
        t.set_template(
            key("data", "db"),
            observe_template(Some(&template("db", &[], &[]))),
        );
        assert_eq!(
            pairs(&t),
            vec![
                ("shop/web".into(), "data/db".into()),
                ("shop/web".into(), "shop/broker".into()),
                ("shop/web".into(), "shop/cache".into()),
            ]
        );
        let e = t.edges();
        assert!(
            e[2].evidence
                .contains("names Service shop/cache (10.96.0.7)"),
            "{e:?}"
        );
        assert!(
            e[1].evidence.contains("its endpoints are shop/broker"),
            "{e:?}"
        );
        // Sent once; unchanged is not sent again; a removed workload removes its edges.
        assert!(t.changed().is_some());
        assert!(t.changed().is_none());
        // The same objects again (a relist, a status update) change nothing.
        t.set_template(
            key("data", "db"),
            observe_template(Some(&template("db", &[], &[]))),
        );
        assert!(t.changed().is_none());
        t.retain_templates(|k| *k != key("shop", "web"));
        assert_eq!(t.changed(), Some(Vec::new()));
    }

    #[test]
    fn short_names_count_only_in_their_namespace_and_in_address_positions() {
        let mut t = Topo::default();
        t.set_service(
            key("shop", "cache"),
            observe_service(&service("cache", "None")),
        );
        t.set_template(
            key("shop", "cache"),
            observe_template(Some(&template("cache", &[], &[]))),
        );
        // A plain word, and an address in another namespace.
        t.set_template(
            key("shop", "a"),
            observe_template(Some(&template("a", &["--mode", "cache"], &[]))),
        );
        t.set_template(
            key("other", "b"),
            observe_template(Some(&template("b", &["cache:6379"], &[]))),
        );
        assert!(pairs(&t).is_empty(), "{:?}", pairs(&t));
        // A headless Service keeps no "None" address.
        assert!(t.services[&key("shop", "cache")].cluster_ips.is_empty());
    }

    #[test]
    fn malformed_objects_are_ignored() {
        assert!(
            read_slice(&DynamicObject {
                types: None,
                metadata: ObjectMeta::default(),
                data: serde_json::json!({"endpoints": "nonsense"}),
            })
            .is_none()
        );
        let o = DynamicObject {
            types: None,
            metadata: ObjectMeta {
                namespace: Some("shop".into()),
                labels: Some([("kubernetes.io/service-name".to_string(), "q".to_string())].into()),
                ..Default::default()
            },
            data: serde_json::json!({"endpoints": [
                {"targetRef": {"kind": "Pod", "name": "broker-1"}},
                {"targetRef": {"kind": "Node", "name": "n"}},
                {"addresses": ["127.0.0.1"]},
                {"targetRef": {"kind": "Pod"}},
                7
            ]}),
        };
        assert_eq!(
            read_slice(&o),
            Some((
                "q".to_string(),
                vec![PodRef {
                    namespace: "shop".into(),
                    name: "broker-1".into()
                }]
            ))
        );
        assert_eq!(read_endpoints(&Endpoints::default()), None);
        let huge = "a:1 ".repeat(10_000);
        let t = observe_template(Some(&template("x", &[&huge], &[])));
        assert_eq!(t.refs.len(), 1, "deduplicated");
        let many: Vec<String> = (0..1000).map(|i| format!("h{i}:80")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        assert_eq!(
            observe_template(Some(&template("x", &many, &[])))
                .refs
                .len(),
            MAX_REFS
        );
    }
}
