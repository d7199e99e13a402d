//! ConfigMaps: a change of the data of a ConfigMap that a workload's pod template references
//! → one `Change(ConfigChange)` per referencing workload, `from`/`to` = short content hashes
//! (the content itself is never kept or sent). Secrets are never read.

use super::common::{Out, containers, fnv64, last_manager, short};
use k8s_openapi::api::core::v1::{ConfigMap, PodTemplateSpec};
use medic_core::{ChangeEvent, ChangeKind, SignalPayload};
use std::collections::{BTreeMap, BTreeSet};

/// What the source keeps of a ConfigMap: a hash per key and of the whole.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ConfigMapObs {
    pub hash: u64,
    keys: BTreeMap<String, u64>,
}

pub(crate) fn fingerprint(cm: &ConfigMap) -> ConfigMapObs {
    let mut keys = BTreeMap::new();
    for (k, v) in cm.data.iter().flatten() {
        keys.insert(k.clone(), fnv64(&[b"d", v.as_bytes()]));
    }
    for (k, v) in cm.binary_data.iter().flatten() {
        keys.insert(k.clone(), fnv64(&[b"b", &v.0]));
    }
    let mut parts: Vec<&[u8]> = Vec::new();
    let hashes: Vec<[u8; 8]> = keys.values().map(|h| h.to_be_bytes()).collect();
    for (k, h) in keys.keys().zip(&hashes) {
        parts.push(k.as_bytes());
        parts.push(h);
    }
    ConfigMapObs {
        hash: fnv64(&parts),
        keys,
    }
}

/// Names of the ConfigMaps a pod template reads: volumes (plain and projected), `envFrom`
/// and `env[].valueFrom.configMapKeyRef`, of init and regular containers.
pub(crate) fn referenced(template: &PodTemplateSpec) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let Some(spec) = &template.spec else {
        return out;
    };
    for v in spec.volumes.iter().flatten() {
        if let Some(c) = &v.config_map {
            out.insert(c.name.clone());
        }
        for p in v.projected.iter().flat_map(|p| p.sources.iter().flatten()) {
            if let Some(c) = &p.config_map {
                out.insert(c.name.clone());
            }
        }
    }
    for c in containers(spec) {
        for e in c.env_from.iter().flatten() {
            if let Some(r) = &e.config_map_ref {
                out.insert(r.name.clone());
            }
        }
        for e in c.env.iter().flatten() {
            if let Some(r) = e
                .value_from
                .as_ref()
                .and_then(|v| v.config_map_key_ref.as_ref())
            {
                out.insert(r.name.clone());
            }
        }
    }
    out.remove("");
    out
}

/// `cm` changed from `prev` (None: it was created) → a change for each of `workloads`.
pub(crate) fn config_changes(
    prev: Option<&ConfigMapObs>,
    now: &ConfigMapObs,
    cm: &ConfigMap,
    workloads: &[String],
    out: &mut Out,
) {
    if prev.is_some_and(|p| p.hash == now.hash) || workloads.is_empty() {
        return;
    }
    let ns = cm.metadata.namespace.as_deref().unwrap_or("");
    let name = cm.metadata.name.as_deref().unwrap_or("");
    let mut changed: Vec<&str> = Vec::new();
    for (k, h) in &now.keys {
        if prev.is_none_or(|p| p.keys.get(k) != Some(h)) {
            changed.push(k);
        }
    }
    for k in prev.iter().flat_map(|p| p.keys.keys()) {
        if !now.keys.contains_key(k) {
            changed.push(k);
        }
    }
    changed.sort_unstable();
    let author = last_manager(&cm.metadata, Some("f:data"))
        .or_else(|| last_manager(&cm.metadata, Some("f:binaryData")));
    let by_medic = author.as_deref() == Some(super::common::MEDIC_MANAGER);
    for w in workloads {
        let change = ChangeEvent {
            kind: if by_medic {
                ChangeKind::Remediation
            } else {
                ChangeKind::ConfigChange
            },
            service: w.clone(),
            start: out.now,
            end: None,
            from: prev.map(|p| short(p.hash)),
            to: Some(short(now.hash)),
            description: format!(
                "configmap {ns}/{name} changed (keys: {})",
                changed.join(", ")
            ),
            author: author.clone(),
        };
        let now_ts = out.now;
        out.push(now_ts, w, None, SignalPayload::Change(change));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        ConfigMapEnvSource, ConfigMapKeySelector, ConfigMapProjection, ConfigMapVolumeSource,
        Container, EnvFromSource, EnvVar, EnvVarSource, PodSpec, ProjectedVolumeSource,
        SecretKeySelector, Volume, VolumeProjection,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use medic_core::Ts;

    #[test]
    fn references_from_every_place() {
        let t = PodTemplateSpec {
            metadata: None,
            spec: Some(PodSpec {
                volumes: Some(vec![
                    Volume {
                        name: "a".into(),
                        config_map: Some(ConfigMapVolumeSource {
                            name: "vol".into(),
                            ..Default::default()
                        }),
                        ..Default::default()
                    },
                    Volume {
                        name: "b".into(),
                        projected: Some(ProjectedVolumeSource {
                            sources: Some(vec![VolumeProjection {
                                config_map: Some(ConfigMapProjection {
                                    name: "proj".into(),
                                    ..Default::default()
                                }),
                                ..Default::default()
                            }]),
                            ..Default::default()
                        }),
                        ..Default::default()
                    },
                ]),
                containers: vec![Container {
                    name: "c".into(),
                    env_from: Some(vec![EnvFromSource {
                        config_map_ref: Some(ConfigMapEnvSource {
                            name: "envfrom".into(),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }]),
                    env: Some(vec![
                        EnvVar {
                            name: "X".into(),
                            value_from: Some(EnvVarSource {
                                config_map_key_ref: Some(ConfigMapKeySelector {
                                    name: "keyref".into(),
                                    key: "k".into(),
                                    ..Default::default()
                                }),
                                ..Default::default()
                            }),
                            ..Default::default()
                        },
                        EnvVar {
                            name: "S".into(),
                            value_from: Some(EnvVarSource {
                                secret_key_ref: Some(SecretKeySelector {
                                    name: "secret".into(),
                                    key: "k".into(),
                                    ..Default::default()
                                }),
                                ..Default::default()
                            }),
                            ..Default::default()
                        },
                    ]),
                    ..Default::default()
                }],
                ..Default::default()
            }),
        };
        let r: Vec<String> = referenced(&t).into_iter().collect();
        assert_eq!(r, vec!["envfrom", "keyref", "proj", "vol"]);
        assert!(referenced(&PodTemplateSpec::default()).is_empty());
    }

    fn cm(data: &[(&str, &str)]) -> ConfigMap {
        ConfigMap {
            metadata: ObjectMeta {
                namespace: Some("shop".into()),
                name: Some("api-config".into()),
                ..Default::default()
            },
            data: Some(
                data.iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            ..Default::default()
        }
    }

    #[test]
    fn changes_carry_hashes_and_keys_never_content() {
        let a = cm(&[("pool", "10"), ("mode", "fast")]);
        let b = cm(&[("pool", "2"), ("mode", "fast")]);
        let (fa, fb) = (fingerprint(&a), fingerprint(&b));
        assert_ne!(fa.hash, fb.hash);
        assert_eq!(fa, fingerprint(&a));
        let mut out = Out::new("k8s", Ts(1));
        config_changes(Some(&fa), &fa, &a, &["shop/api".into()], &mut out);
        assert!(out.signals.is_empty());
        config_changes(
            Some(&fa),
            &fb,
            &b,
            &["shop/api".into(), "shop/worker".into()],
            &mut out,
        );
        assert_eq!(out.signals.len(), 2);
        let SignalPayload::Change(c) = &out.signals[1].payload else {
            panic!("expected a change");
        };
        assert_eq!(c.kind, ChangeKind::ConfigChange);
        assert_eq!(c.service, "shop/worker");
        assert_eq!(c.from.as_deref(), Some(short(fa.hash).as_str()));
        assert_eq!(
            c.description,
            "configmap shop/api-config changed (keys: pool)"
        );
        let text = serde_json::to_string(&out.signals).expect("json");
        assert!(!text.contains("\"10\"") && !text.contains("fast"), "{text}");
        // Nobody references it: nothing.
        let mut out = Out::new("k8s", Ts(1));
        config_changes(Some(&fa), &fb, &b, &[], &mut out);
        assert!(out.signals.is_empty());
        assert_eq!(fingerprint(&ConfigMap::default()).keys.len(), 0);
    }
}
