//! A container's environment and command line, built as a kubelet builds them: Service
//! variables first, then `envFrom`, then `env` (later wins), `$(VAR)` expansion in `env`
//! values and in `command`/`args`. Pure: the caller fetches the ConfigMaps, Secrets and
//! Services named here.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, Secret, Service};

/// The reason kubelets report for environment errors (a missing ConfigMap and the like).
pub const CONFIG_ERROR: &str = "CreateContainerConfigError";

/// Linux refuses a single argument or variable over 128 KiB and a whole exec over ~2 MiB;
/// refuse well before that with a clear message instead of a failed exec.
pub const MAX_ENTRY: usize = 128 * 1024;
pub const MAX_TOTAL: usize = 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvError {
    pub reason: &'static str,
    pub message: String,
}

fn config_error(message: impl Into<String>) -> EnvError {
    EnvError {
        reason: CONFIG_ERROR,
        message: message.into(),
    }
}

/// What a container's environment is built from.
#[derive(Debug, Default)]
pub struct EnvInputs<'a> {
    pub pod: Option<&'a Pod>,
    pub pod_ip: String,
    pub host_ip: String,
    pub node_name: String,
    /// ConfigMaps and Secrets of the pod's namespace by name; absent ones are missing.
    pub config_maps: BTreeMap<String, ConfigMap>,
    pub secrets: BTreeMap<String, Secret>,
    /// Services whose variables the container gets (see [`select_services`]).
    pub services: Vec<Service>,
    /// Node allocatable, for `resourceFieldRef` on a container without limits.
    pub node_cpu: f64,
    pub node_memory: u64,
}

/// ConfigMap and Secret names a container's environment refers to.
pub fn referenced(container: &Container) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut cms = BTreeSet::new();
    let mut secrets = BTreeSet::new();
    for e in container.env.iter().flatten() {
        if let Some(vf) = &e.value_from {
            if let Some(r) = &vf.config_map_key_ref {
                cms.insert(r.name.clone());
            }
            if let Some(r) = &vf.secret_key_ref {
                secrets.insert(r.name.clone());
            }
        }
    }
    for ef in container.env_from.iter().flatten() {
        if let Some(r) = &ef.config_map_ref {
            cms.insert(r.name.clone());
        }
        if let Some(r) = &ef.secret_ref {
            secrets.insert(r.name.clone());
        }
    }
    (cms, secrets)
}

/// The Services whose variables a pod gets: with `enableServiceLinks` (the default) every
/// Service of its namespace, and always the `kubernetes` Service of `default`.
pub fn select_services(pod_namespace: &str, enable_links: bool, all: &[Service]) -> Vec<Service> {
    let mut map: BTreeMap<String, Service> = BTreeMap::new();
    for svc in all {
        let ns = svc.metadata.namespace.as_deref().unwrap_or("default");
        let name = svc.metadata.name.clone().unwrap_or_default();
        if ns == "default" && name == "kubernetes" {
            map.entry(name).or_insert_with(|| svc.clone());
        } else if ns == pod_namespace && enable_links {
            map.insert(name, svc.clone());
        }
    }
    map.into_values().collect()
}

fn env_name(svc_name: &str) -> String {
    svc_name.to_ascii_uppercase().replace('-', "_")
}

/// `<SVC>_SERVICE_HOST`, `<SVC>_SERVICE_PORT[_<NAME>]` and the Docker-links variables.
pub fn service_vars(services: &[Service]) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for svc in services {
        let Some(spec) = &svc.spec else { continue };
        let ip = match spec.cluster_ip.as_deref() {
            Some(ip) if !ip.is_empty() && ip != "None" => ip,
            _ => continue,
        };
        let name = env_name(svc.metadata.name.as_deref().unwrap_or_default());
        let ports = spec.ports.as_deref().unwrap_or_default();
        out.insert(format!("{name}_SERVICE_HOST"), ip.to_string());
        if let Some(first) = ports.first() {
            out.insert(format!("{name}_SERVICE_PORT"), first.port.to_string());
        }
        for (i, p) in ports.iter().enumerate() {
            if let Some(pn) = p.name.as_deref().filter(|n| !n.is_empty()) {
                out.insert(
                    format!("{name}_SERVICE_PORT_{}", env_name(pn)),
                    p.port.to_string(),
                );
            }
            let proto = p.protocol.as_deref().unwrap_or("TCP");
            let url = format!("{}://{ip}:{}", proto.to_ascii_lowercase(), p.port);
            if i == 0 {
                out.insert(format!("{name}_PORT"), url.clone());
            }
            let prefix = format!("{name}_PORT_{}_{}", p.port, proto.to_ascii_uppercase());
            out.insert(prefix.clone(), url);
            out.insert(format!("{prefix}_PROTO"), proto.to_ascii_lowercase());
            out.insert(format!("{prefix}_PORT"), p.port.to_string());
            out.insert(format!("{prefix}_ADDR"), ip.to_string());
        }
    }
    out
}

/// `$(VAR)` expansion as the kubelet does it: defined variables are replaced, undefined ones
/// stay as written, `$$` is a literal `$`.
pub fn expand(input: &str, lookup: impl Fn(&str) -> Option<String>) -> String {
    let bytes = input.as_bytes();
    let mut out = String::with_capacity(input.len());
    let mut i = 0;
    let mut last = 0;
    while i < bytes.len() {
        if bytes[i] == b'$' && i + 1 < bytes.len() {
            out.push_str(&input[last..i]);
            match bytes[i + 1] {
                b'$' => {
                    out.push('$');
                    i += 2;
                }
                b'(' => match input[i + 2..].find(')') {
                    Some(rel) => {
                        let name = &input[i + 2..i + 2 + rel];
                        match lookup(name) {
                            Some(v) if !name.is_empty() => out.push_str(&v),
                            _ => {
                                out.push_str("$(");
                                out.push_str(name);
                                out.push(')');
                            }
                        }
                        i += 2 + rel + 1;
                    }
                    None => {
                        // Unterminated: written as is.
                        out.push_str(&input[i..]);
                        i = bytes.len();
                    }
                },
                _ => {
                    out.push('$');
                    i += 1;
                }
            }
            last = i;
        } else {
            i += 1;
        }
    }
    if last < input.len() {
        out.push_str(&input[last..]);
    }
    out
}

fn valid_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == '-' || c == '.')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
}

fn cm_value(cm: &ConfigMap, key: &str) -> Option<String> {
    if let Some(v) = cm.data.as_ref().and_then(|d| d.get(key)) {
        return Some(v.clone());
    }
    cm.binary_data
        .as_ref()
        .and_then(|d| d.get(key))
        .map(|b| String::from_utf8_lossy(&b.0).into_owned())
}

fn secret_value(s: &Secret, key: &str) -> Option<String> {
    if let Some(v) = s.data.as_ref().and_then(|d| d.get(key)) {
        return Some(String::from_utf8_lossy(&v.0).into_owned());
    }
    s.string_data.as_ref().and_then(|d| d.get(key)).cloned()
}

fn field_value(inputs: &EnvInputs<'_>, path: &str) -> Result<String, EnvError> {
    let pod = inputs.pod;
    let meta = pod.map(|p| &p.metadata);
    let bracket = |prefix: &str| -> Option<String> {
        let rest = path.strip_prefix(prefix)?.strip_suffix("']")?;
        Some(rest.to_string())
    };
    Ok(match path {
        "metadata.name" => meta.and_then(|m| m.name.clone()).unwrap_or_default(),
        "metadata.namespace" => meta.and_then(|m| m.namespace.clone()).unwrap_or_default(),
        "metadata.uid" => meta.and_then(|m| m.uid.clone()).unwrap_or_default(),
        "spec.nodeName" => inputs.node_name.clone(),
        "spec.serviceAccountName" => pod
            .and_then(|p| p.spec.as_ref())
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_default(),
        "status.hostIP" | "status.hostIPs" => inputs.host_ip.clone(),
        "status.podIP" | "status.podIPs" => inputs.pod_ip.clone(),
        "metadata.labels" | "metadata.annotations" => {
            let map = if path == "metadata.labels" {
                meta.and_then(|m| m.labels.clone())
            } else {
                meta.and_then(|m| m.annotations.clone())
            };
            // The downward API's format: key="value" lines, sorted.
            map.unwrap_or_default()
                .iter()
                .map(|(k, v)| format!("{k}={v:?}"))
                .collect::<Vec<_>>()
                .join("\n")
        }
        _ => {
            if let Some(k) = bracket("metadata.labels['") {
                meta.and_then(|m| m.labels.as_ref())
                    .and_then(|l| l.get(&k).cloned())
                    .unwrap_or_default()
            } else if let Some(k) = bracket("metadata.annotations['") {
                meta.and_then(|m| m.annotations.as_ref())
                    .and_then(|l| l.get(&k).cloned())
                    .unwrap_or_default()
            } else {
                return Err(config_error(format!(
                    "unsupported fieldRef fieldPath {path:?}"
                )));
            }
        }
    })
}

fn resource_value(
    inputs: &EnvInputs<'_>,
    container: &Container,
    sel: &k8s_openapi::api::core::v1::ResourceFieldSelector,
) -> Result<String, EnvError> {
    let target = match sel.container_name.as_deref().filter(|n| !n.is_empty()) {
        Some(name) => inputs
            .pod
            .and_then(|p| p.spec.as_ref())
            .and_then(|s| s.containers.iter().find(|c| c.name == name))
            .ok_or_else(|| config_error(format!("resourceFieldRef: no container {name:?}")))?,
        None => container,
    };
    let (kind, res) = sel
        .resource
        .split_once('.')
        .ok_or_else(|| config_error(format!("unsupported resource {:?}", sel.resource)))?;
    let resources = target.resources.as_ref();
    let list = match kind {
        "limits" => resources.and_then(|r| r.limits.as_ref()),
        "requests" => resources.and_then(|r| r.requests.as_ref()),
        _ => {
            return Err(config_error(format!(
                "unsupported resource {:?}",
                sel.resource
            )));
        }
    };
    let raw = list
        .and_then(|l| l.get(res))
        .and_then(|q| medic_core::quantity::parse(&q.0));
    let value = match (res, raw) {
        (_, Some(v)) => v,
        ("cpu", None) => inputs.node_cpu,
        ("memory", None) => inputs.node_memory as f64,
        ("ephemeral-storage", None) => 0.0,
        _ => {
            return Err(config_error(format!(
                "unsupported resource {:?}",
                sel.resource
            )));
        }
    };
    let divisor = sel
        .divisor
        .as_ref()
        .and_then(|d| medic_core::quantity::parse(&d.0))
        .filter(|d| *d > 0.0)
        .unwrap_or(1.0);
    Ok(((value / divisor).ceil() as u64).to_string())
}

/// The container's environment, or why it cannot be built.
pub fn build(
    inputs: &EnvInputs<'_>,
    container: &Container,
) -> Result<BTreeMap<String, String>, EnvError> {
    let services = service_vars(&inputs.services);
    let mut env: BTreeMap<String, String> = services.clone();
    for ef in container.env_from.iter().flatten() {
        let prefix = ef.prefix.clone().unwrap_or_default();
        let mut add = |pairs: Vec<(String, String)>| {
            for (k, v) in pairs {
                let name = format!("{prefix}{k}");
                // Like the kubelet: keys that are not valid variable names are skipped.
                if valid_env_name(&name) {
                    env.insert(name, v);
                }
            }
        };
        if let Some(r) = &ef.config_map_ref {
            match inputs.config_maps.get(&r.name) {
                Some(cm) => {
                    let mut pairs: Vec<(String, String)> =
                        cm.data.clone().unwrap_or_default().into_iter().collect();
                    for (k, b) in cm.binary_data.clone().unwrap_or_default() {
                        pairs.push((k, String::from_utf8_lossy(&b.0).into_owned()));
                    }
                    add(pairs);
                }
                None if r.optional == Some(true) => {}
                None => return Err(config_error(format!("configmap {:?} not found", r.name))),
            }
        }
        if let Some(r) = &ef.secret_ref {
            match inputs.secrets.get(&r.name) {
                Some(s) => add(s
                    .data
                    .clone()
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(k, v)| (k, String::from_utf8_lossy(&v.0).into_owned()))
                    .collect()),
                None if r.optional == Some(true) => {}
                None => return Err(config_error(format!("secret {:?} not found", r.name))),
            }
        }
    }
    for e in container.env.iter().flatten() {
        if e.name.is_empty() {
            return Err(config_error("an env entry has no name"));
        }
        let value = if let Some(vf) = &e.value_from {
            if let Some(r) = &vf.config_map_key_ref {
                let optional = r.optional == Some(true);
                match inputs.config_maps.get(&r.name) {
                    Some(cm) => match cm_value(cm, &r.key) {
                        Some(v) => Some(v),
                        None if optional => None,
                        None => {
                            return Err(config_error(format!(
                                "couldn't find key {} in ConfigMap {}/{}",
                                r.key,
                                inputs
                                    .pod
                                    .and_then(|p| p.metadata.namespace.as_deref())
                                    .unwrap_or(""),
                                r.name
                            )));
                        }
                    },
                    None if optional => None,
                    None => return Err(config_error(format!("configmap {:?} not found", r.name))),
                }
            } else if let Some(r) = &vf.secret_key_ref {
                let optional = r.optional == Some(true);
                match inputs.secrets.get(&r.name) {
                    Some(s) => match secret_value(s, &r.key) {
                        Some(v) => Some(v),
                        None if optional => None,
                        None => {
                            return Err(config_error(format!(
                                "couldn't find key {} in Secret {}",
                                r.key, r.name
                            )));
                        }
                    },
                    None if optional => None,
                    None => return Err(config_error(format!("secret {:?} not found", r.name))),
                }
            } else if let Some(f) = &vf.field_ref {
                Some(field_value(inputs, &f.field_path)?)
            } else if let Some(r) = &vf.resource_field_ref {
                Some(resource_value(inputs, container, r)?)
            } else {
                return Err(config_error(format!(
                    "env {:?}: valueFrom has no source this sandbox supports \
                     (configMapKeyRef, secretKeyRef, fieldRef, resourceFieldRef)",
                    e.name
                )));
            }
        } else {
            let raw = e.value.clone().unwrap_or_default();
            let snapshot = &env;
            Some(expand(&raw, |name| {
                snapshot
                    .get(name)
                    .cloned()
                    .or_else(|| services.get(name).cloned())
            }))
        };
        if let Some(v) = value {
            env.insert(e.name.clone(), v);
        }
    }
    check_size(
        env.iter().map(|(k, v)| k.len() + v.len() + 2),
        "environment",
    )?;
    if let Some((k, _)) = env
        .iter()
        .find(|(k, v)| k.contains('\0') || v.contains('\0'))
    {
        return Err(config_error(format!("env {k:?} contains a NUL byte")));
    }
    Ok(env)
}

fn check_size(sizes: impl Iterator<Item = usize>, what: &str) -> Result<(), EnvError> {
    let mut total = 0usize;
    for s in sizes {
        if s > MAX_ENTRY {
            return Err(config_error(format!(
                "{what} has an entry of {s} bytes: the limit for one entry is {MAX_ENTRY}"
            )));
        }
        total += s;
    }
    if total > MAX_TOTAL {
        return Err(config_error(format!(
            "{what} is {total} bytes: the sandbox allows at most {MAX_TOTAL}"
        )));
    }
    Ok(())
}

/// The reason and message for a container without `command`: the sandbox never pulls or runs
/// images, only commands.
pub const NO_COMMAND_REASON: &str = "CreateContainerError";

/// `command` + `args` with `$(VAR)` expanded from the container's environment.
pub fn command_line(
    container: &Container,
    env: &BTreeMap<String, String>,
) -> Result<Vec<String>, EnvError> {
    let command = container.command.clone().unwrap_or_default();
    if command.is_empty() || command[0].is_empty() {
        return Err(EnvError {
            reason: NO_COMMAND_REASON,
            message: format!(
                "container {:?} has no command: the medic sandbox runs only commands as host \
                 processes and never pulls or runs images (image {:?})",
                container.name,
                container.image.as_deref().unwrap_or("")
            ),
        });
    }
    let argv: Vec<String> = command
        .iter()
        .chain(container.args.iter().flatten())
        .map(|a| expand(a, |n| env.get(n).cloned()))
        .collect();
    check_size(argv.iter().map(|a| a.len() + 1), "command line")?;
    if argv.iter().any(|a| a.contains('\0')) {
        return Err(config_error("command line contains a NUL byte"));
    }
    Ok(argv)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;
    use k8s_openapi::api::core::v1::{
        ConfigMapEnvSource, ConfigMapKeySelector, EnvFromSource, EnvVar, EnvVarSource,
        ObjectFieldSelector, PodSpec, SecretKeySelector, ServicePort, ServiceSpec,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn lookup(name: &str) -> Option<String> {
        match name {
            "A" => Some("x".into()),
            "B" => Some("$(A)".into()),
            _ => None,
        }
    }

    #[test]
    fn expansion_matches_kubelet() {
        assert_eq!(expand("$(A)-$(A)", lookup), "x-x");
        assert_eq!(expand("$(C)", lookup), "$(C)");
        assert_eq!(expand("$$(A)", lookup), "$(A)");
        assert_eq!(expand("$$$(A)", lookup), "$x");
        assert_eq!(expand("$(B)", lookup), "$(A)"); // one level only
        assert_eq!(expand("a$b$", lookup), "a$b$");
        assert_eq!(expand("$(A", lookup), "$(A");
        assert_eq!(expand("$()", lookup), "$()");
        assert_eq!(expand("héllo $(A) ü", lookup), "héllo x ü");
    }

    fn svc(ns: &str, name: &str, ip: &str, ports: &[(Option<&str>, i32)]) -> Service {
        Service {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some(ns.into()),
                ..Default::default()
            },
            spec: Some(ServiceSpec {
                cluster_ip: Some(ip.into()),
                ports: Some(
                    ports
                        .iter()
                        .map(|(n, p)| ServicePort {
                            name: n.map(Into::into),
                            port: *p,
                            protocol: Some("TCP".into()),
                            ..Default::default()
                        })
                        .collect(),
                ),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn env_var(name: &str, value: &str) -> EnvVar {
        EnvVar {
            name: name.into(),
            value: Some(value.into()),
            ..Default::default()
        }
    }

    fn from(name: &str, src: EnvVarSource) -> EnvVar {
        EnvVar {
            name: name.into(),
            value_from: Some(src),
            ..Default::default()
        }
    }

    fn pod() -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some("web-1".into()),
                namespace: Some("shop".into()),
                uid: Some("u1".into()),
                labels: Some([("app".to_string(), "web".to_string())].into()),
                ..Default::default()
            },
            spec: Some(PodSpec::default()),
            ..Default::default()
        }
    }

    #[test]
    fn service_selection_and_vars() {
        let all = vec![
            svc(
                "default",
                "kubernetes",
                "127.100.0.1",
                &[(Some("https"), 443)],
            ),
            svc(
                "shop",
                "my-db",
                "127.100.0.7",
                &[(Some("pg"), 5432), (None, 9187)],
            ),
            svc("other", "x", "127.100.0.8", &[(None, 1)]),
            svc("shop", "headless", "None", &[(None, 1)]),
        ];
        let chosen = select_services("shop", true, &all);
        assert_eq!(chosen.len(), 3);
        let vars = service_vars(&chosen);
        assert_eq!(vars["MY_DB_SERVICE_HOST"], "127.100.0.7");
        assert_eq!(vars["MY_DB_SERVICE_PORT"], "5432");
        assert_eq!(vars["MY_DB_SERVICE_PORT_PG"], "5432");
        assert_eq!(vars["MY_DB_PORT"], "tcp://127.100.0.7:5432");
        assert_eq!(vars["MY_DB_PORT_9187_TCP_ADDR"], "127.100.0.7");
        assert_eq!(vars["KUBERNETES_SERVICE_HOST"], "127.100.0.1");
        assert!(!vars.contains_key("HEADLESS_SERVICE_HOST"));
        assert!(!vars.contains_key("X_SERVICE_HOST"));
        let no_links = select_services("shop", false, &all);
        assert_eq!(no_links.len(), 1);
    }

    #[test]
    fn env_sources_and_precedence() {
        let p = pod();
        let mut inputs = EnvInputs {
            pod: Some(&p),
            pod_ip: "127.1.0.9".into(),
            host_ip: "127.0.0.1".into(),
            node_name: "sandbox-node".into(),
            ..Default::default()
        };
        inputs.config_maps.insert(
            "cfg".into(),
            ConfigMap {
                data: Some(
                    [
                        ("MODE".to_string(), "fast".to_string()),
                        ("bad key".to_string(), "skipped".to_string()),
                    ]
                    .into(),
                ),
                ..Default::default()
            },
        );
        inputs.secrets.insert(
            "creds".into(),
            Secret {
                data: Some([("password".to_string(), ByteString(b"hunter2".to_vec()))].into()),
                ..Default::default()
            },
        );
        inputs.services = vec![svc("shop", "db", "127.100.0.7", &[(None, 5432)])];
        let c = Container {
            name: "app".into(),
            command: Some(vec!["/bin/echo".into(), "$(GREETING)".into()]),
            args: Some(vec![
                "$(POD_IP):$(DB_SERVICE_PORT)".into(),
                "$(NOPE)".into(),
            ]),
            env_from: Some(vec![EnvFromSource {
                config_map_ref: Some(ConfigMapEnvSource {
                    name: "cfg".into(),
                    optional: None,
                }),
                prefix: Some("CFG_".into()),
                ..Default::default()
            }]),
            env: Some(vec![
                env_var("GREETING", "hi-$(CFG_MODE)"),
                from(
                    "POD_IP",
                    EnvVarSource {
                        field_ref: Some(ObjectFieldSelector {
                            field_path: "status.podIP".into(),
                            api_version: None,
                        }),
                        ..Default::default()
                    },
                ),
                from(
                    "APP",
                    EnvVarSource {
                        field_ref: Some(ObjectFieldSelector {
                            field_path: "metadata.labels['app']".into(),
                            api_version: None,
                        }),
                        ..Default::default()
                    },
                ),
                from(
                    "PW",
                    EnvVarSource {
                        secret_key_ref: Some(SecretKeySelector {
                            name: "creds".into(),
                            key: "password".into(),
                            optional: None,
                        }),
                        ..Default::default()
                    },
                ),
                from(
                    "MAYBE",
                    EnvVarSource {
                        config_map_key_ref: Some(ConfigMapKeySelector {
                            name: "absent".into(),
                            key: "k".into(),
                            optional: Some(true),
                        }),
                        ..Default::default()
                    },
                ),
                env_var("DB_SERVICE_HOST", "overridden"),
            ]),
            ..Default::default()
        };
        let env = build(&inputs, &c).unwrap();
        assert_eq!(env["CFG_MODE"], "fast");
        assert!(!env.keys().any(|k| k.contains(' ')));
        assert_eq!(env["GREETING"], "hi-fast");
        assert_eq!(env["POD_IP"], "127.1.0.9");
        assert_eq!(env["APP"], "web");
        assert_eq!(env["PW"], "hunter2");
        assert!(!env.contains_key("MAYBE"));
        assert_eq!(env["DB_SERVICE_HOST"], "overridden");
        assert_eq!(env["DB_SERVICE_PORT"], "5432");
        let argv = command_line(&c, &env).unwrap();
        assert_eq!(
            argv,
            vec!["/bin/echo", "hi-fast", "127.1.0.9:5432", "$(NOPE)"]
        );
    }

    #[test]
    fn missing_sources_and_bad_specs_are_config_errors() {
        let p = pod();
        let inputs = EnvInputs {
            pod: Some(&p),
            ..Default::default()
        };
        let c = Container {
            name: "app".into(),
            env: Some(vec![from(
                "X",
                EnvVarSource {
                    secret_key_ref: Some(SecretKeySelector {
                        name: "nope".into(),
                        key: "k".into(),
                        optional: Some(false),
                    }),
                    ..Default::default()
                },
            )]),
            ..Default::default()
        };
        let err = build(&inputs, &c).unwrap_err();
        assert_eq!(err.reason, CONFIG_ERROR);
        assert!(err.message.contains("nope"));

        let c = Container {
            name: "app".into(),
            env: Some(vec![from("X", EnvVarSource::default())]),
            ..Default::default()
        };
        assert_eq!(build(&inputs, &c).unwrap_err().reason, CONFIG_ERROR);

        let c = Container {
            name: "app".into(),
            env: Some(vec![from(
                "X",
                EnvVarSource {
                    field_ref: Some(ObjectFieldSelector {
                        field_path: "spec.nope".into(),
                        api_version: None,
                    }),
                    ..Default::default()
                },
            )]),
            ..Default::default()
        };
        assert!(
            build(&inputs, &c)
                .unwrap_err()
                .message
                .contains("spec.nope")
        );

        let huge = "x".repeat(MAX_ENTRY + 1);
        let c = Container {
            name: "app".into(),
            env: Some(vec![env_var("BIG", &huge)]),
            ..Default::default()
        };
        assert!(build(&inputs, &c).unwrap_err().message.contains("limit"));
        let many: Vec<EnvVar> = (0..200)
            .map(|i| env_var(&format!("V{i}"), &"y".repeat(10_000)))
            .collect();
        let c = Container {
            name: "app".into(),
            env: Some(many),
            ..Default::default()
        };
        assert!(build(&inputs, &c).unwrap_err().message.contains("at most"));
    }

    #[test]
    fn no_command_is_a_clear_error() {
        let c = Container {
            name: "nginx".into(),
            image: Some("nginx:1.25".into()),
            ..Default::default()
        };
        let err = command_line(&c, &BTreeMap::new()).unwrap_err();
        assert_eq!(err.reason, NO_COMMAND_REASON);
        assert!(err.message.contains("runs only commands"));
        assert!(err.message.contains("nginx:1.25"));
    }
}
