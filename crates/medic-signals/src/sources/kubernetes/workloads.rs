//! Deployments, StatefulSets, DaemonSets:
//! - a changed pod template (image, env, args, anything but a bare `restartedAt`) →
//!   `Change(Deploy)`; a rollout restart alone → an info log line
//!   with `from`/`to` = the images (or the template hash when the images stayed) and the
//!   author from `managedFields`; medic's own changes → `Change(Remediation)` by `medic`, as
//!   the local supervisor records its restarts and rollbacks;
//! - a replicas-only change → a `Log` (info) `… scaled from A to B`: a scale is no new
//!   release, and a `Deploy` would make the diagnosis blame a "recent deploy" (and break the
//!   from/to chain that tells reverts apart);
//! - rollout status → `Metrics` named as kube-state-metrics names them, on every change;
//! - `medic.dev/planned-event` (+ `medic.dev/planned-until`) → `Change(Planned)`.

use super::common::{
    Fields, MEDIC_ACTION_ANNOTATION, MEDIC_MANAGER, Out, fnv64, last_manager, short,
};
use super::configmaps::referenced;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use medic_core::{ChangeEvent, ChangeKind, Level, MetricSample, SignalPayload, Ts};
use std::collections::{BTreeMap, BTreeSet};

pub(crate) const PLANNED_EVENT: &str = "medic.dev/planned-event";
pub(crate) const PLANNED_UNTIL: &str = "medic.dev/planned-until";
const RESTARTED_AT: &str = "kubectl.kubernetes.io/restartedAt";

#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum WorkloadKind {
    Deployment,
    StatefulSet,
    DaemonSet,
}

impl WorkloadKind {
    fn lower(self) -> &'static str {
        match self {
            WorkloadKind::Deployment => "deployment",
            WorkloadKind::StatefulSet => "statefulset",
            WorkloadKind::DaemonSet => "daemonset",
        }
    }
}

/// The parts of a workload this file compares, the same for the three kinds.
pub(crate) struct WorkloadView<'a> {
    pub kind: WorkloadKind,
    pub meta: &'a ObjectMeta,
    pub template: Option<&'a PodTemplateSpec>,
    pub replicas: Option<i32>,
    /// Rollout status as (kube-state-metrics suffix, value).
    pub status: Vec<(&'static str, f64)>,
}

fn opt(v: Option<i32>) -> f64 {
    f64::from(v.unwrap_or(0))
}

fn generation(meta: &ObjectMeta, observed: Option<i64>) -> [(&'static str, f64); 2] {
    // Generations stay far below 2^53: the f64 is exact.
    [
        ("metadata_generation", meta.generation.unwrap_or(0) as f64),
        ("status_observed_generation", observed.unwrap_or(0) as f64),
    ]
}

pub(crate) fn view_deployment(d: &Deployment) -> WorkloadView<'_> {
    let s = d.status.clone().unwrap_or_default();
    let spec = d.spec.as_ref();
    let replicas = spec.and_then(|s| s.replicas);
    let mut status = vec![
        ("spec_replicas", opt(replicas)),
        ("status_replicas", opt(s.replicas)),
        ("status_replicas_updated", opt(s.updated_replicas)),
        ("status_replicas_ready", opt(s.ready_replicas)),
        ("status_replicas_available", opt(s.available_replicas)),
        ("status_replicas_unavailable", opt(s.unavailable_replicas)),
    ];
    status.extend(generation(&d.metadata, s.observed_generation));
    WorkloadView {
        kind: WorkloadKind::Deployment,
        meta: &d.metadata,
        template: spec.map(|s| &s.template),
        replicas,
        status,
    }
}

pub(crate) fn view_statefulset(d: &StatefulSet) -> WorkloadView<'_> {
    let s = d.status.clone().unwrap_or_default();
    let spec = d.spec.as_ref();
    let replicas = spec.and_then(|s| s.replicas);
    let mut status = vec![
        ("replicas", opt(replicas)),
        ("status_replicas", f64::from(s.replicas)),
        ("status_replicas_updated", opt(s.updated_replicas)),
        ("status_replicas_ready", opt(s.ready_replicas)),
        ("status_replicas_current", opt(s.current_replicas)),
        ("status_replicas_available", opt(s.available_replicas)),
    ];
    status.extend(generation(&d.metadata, s.observed_generation));
    WorkloadView {
        kind: WorkloadKind::StatefulSet,
        meta: &d.metadata,
        template: spec.map(|s| &s.template),
        replicas,
        status,
    }
}

pub(crate) fn view_daemonset(d: &DaemonSet) -> WorkloadView<'_> {
    let s = d.status.clone().unwrap_or_default();
    let mut status = vec![
        (
            "status_desired_number_scheduled",
            f64::from(s.desired_number_scheduled),
        ),
        (
            "status_current_number_scheduled",
            f64::from(s.current_number_scheduled),
        ),
        ("status_number_ready", f64::from(s.number_ready)),
        ("status_number_available", opt(s.number_available)),
        ("status_number_unavailable", opt(s.number_unavailable)),
        (
            "status_updated_number_scheduled",
            opt(s.updated_number_scheduled),
        ),
    ];
    status.extend(generation(&d.metadata, s.observed_generation));
    WorkloadView {
        kind: WorkloadKind::DaemonSet,
        meta: &d.metadata,
        template: d.spec.as_ref().map(|s| &s.template),
        // A DaemonSet's size follows its nodes: there is nothing to scale.
        replicas: None,
        status,
    }
}

/// What the source remembers of a workload.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct WorkloadObs {
    template_hash: u64,
    images: String,
    env_hash: u64,
    args_hash: u64,
    restarted_at: Option<String>,
    medic_action: Option<String>,
    replicas: Option<i32>,
    planned: Option<(String, Option<String>)>,
    status: Vec<(&'static str, f64)>,
    /// ConfigMaps its pod template reads (a change of one is a config change of this workload).
    pub configmaps: BTreeSet<String>,
}

fn hash_json<T: serde::Serialize>(v: &T) -> u64 {
    // k8s-openapi serializes maps as BTreeMaps and structs in field order: the text is
    // canonical for equal values.
    fnv64(&[serde_json::to_string(v).unwrap_or_default().as_bytes()])
}

fn fingerprint(v: &WorkloadView) -> WorkloadObs {
    let empty = PodTemplateSpec::default();
    let t = v.template.unwrap_or(&empty);
    let containers: Vec<&k8s_openapi::api::core::v1::Container> = t
        .spec
        .iter()
        .flat_map(|s| s.init_containers.iter().flatten().chain(&s.containers))
        .collect();
    let images: Vec<String> = containers
        .iter()
        .map(|c| format!("{}={}", c.name, c.image.as_deref().unwrap_or("")))
        .collect();
    let env: Vec<_> = containers.iter().map(|c| (&c.env, &c.env_from)).collect();
    let args: Vec<_> = containers.iter().map(|c| (&c.command, &c.args)).collect();
    let tmpl_annotations = t.metadata.as_ref().and_then(|m| m.annotations.as_ref());
    let annotations = v.meta.annotations.as_ref();
    let planned = annotations
        .and_then(|a| a.get(PLANNED_EVENT))
        .filter(|d| !d.trim().is_empty())
        .map(|d| {
            let until = annotations.and_then(|a| a.get(PLANNED_UNTIL)).cloned();
            (d.clone(), until)
        });
    let medic_action = tmpl_annotations
        .and_then(|a| a.get(MEDIC_ACTION_ANNOTATION))
        .or_else(|| annotations.and_then(|a| a.get(MEDIC_ACTION_ANNOTATION)))
        .cloned();
    WorkloadObs {
        template_hash: hash_json(t),
        images: images.join(","),
        env_hash: hash_json(&env),
        args_hash: hash_json(&args),
        restarted_at: tmpl_annotations.and_then(|a| a.get(RESTARTED_AT)).cloned(),
        medic_action,
        replicas: v.replicas,
        planned,
        status: v.status.clone(),
        configmaps: referenced(t),
    }
}

/// The version a change goes from/to: the images, or the template hash when they are the
/// same on both sides (an env or args change).
fn versions(prev: Option<&WorkloadObs>, now: &WorkloadObs) -> (Option<String>, String) {
    match prev {
        Some(p) if p.images == now.images => (
            Some(format!("template:{}", short(p.template_hash))),
            format!("template:{}", short(now.template_hash)),
        ),
        p => (p.map(|p| p.images.clone()), now.images.clone()),
    }
}

/// Compares `v` with `prev` (None: first sight; `listed`: seen in a (re)list, so it may
/// have existed before medic looked) and appends what changed to `out`.
pub(crate) fn observe_workload(
    prev: Option<&WorkloadObs>,
    v: &WorkloadView,
    listed: bool,
    out: &mut Out,
) -> Option<WorkloadObs> {
    let ns = v.meta.namespace.as_deref()?;
    let name = v.meta.name.as_deref()?;
    let service = format!("{ns}/{name}");
    let kind = v.kind.lower();
    let now = fingerprint(v);
    let author = last_manager(v.meta, Some("f:spec"));

    let template_changed = match prev {
        Some(p) => p.template_hash != now.template_hash,
        None => !listed,
    };
    if template_changed {
        let mut aspects = Vec::new();
        if let Some(p) = prev {
            if p.images != now.images {
                aspects.push("image");
            }
            if p.env_hash != now.env_hash {
                aspects.push("env");
            }
            if p.args_hash != now.args_hash {
                aspects.push("args");
            }
            if p.restarted_at != now.restarted_at {
                aspects.push("restartedAt");
            }
            if aspects.is_empty() {
                aspects.push("other");
            }
        } else {
            aspects.push("created");
        }
        let by_medic = author.as_deref() == Some(MEDIC_MANAGER)
            || (now.medic_action.is_some()
                && prev.is_some_and(|p| p.medic_action != now.medic_action));
        // `kubectl rollout restart` changes only the restartedAt annotation: the same release
        // with the same settings, so not a deploy for diagnosis to blame. What a restart can
        // bring in (a changed ConfigMap) is recorded as that ConfigMap's own change.
        if !by_medic && aspects == ["restartedAt"] {
            let f = Fields::new()
                .kv("k8s.kind", v.kind.lower())
                .kv("k8s.reason", "RolloutRestart")
                .kv("k8s.namespace", ns)
                .kv("k8s.name", name)
                .kv("k8s.author", author.as_deref().unwrap_or(""));
            out.log(
                &service,
                None,
                Level::Info,
                format!("{kind} {service} restarted"),
                f,
            );
            return Some(now);
        }
        let (from, to) = versions(prev, &now);
        let generation = v.meta.generation.unwrap_or(0);
        let change = ChangeEvent {
            kind: if by_medic {
                ChangeKind::Remediation
            } else {
                ChangeKind::Deploy
            },
            service: service.clone(),
            start: out.now,
            end: None,
            from,
            to: Some(to),
            description: format!(
                "{kind} {service} pod template changed ({}), generation {generation}",
                aspects.join(", ")
            ),
            author: if by_medic {
                Some(MEDIC_MANAGER.to_string())
            } else {
                author.clone()
            },
        };
        let ts = out.now;
        out.push(ts, &service, None, SignalPayload::Change(change));
    } else if let Some(p) = prev
        && p.replicas != now.replicas
        && let (Some(a), Some(b)) = (p.replicas, now.replicas)
    {
        let f = Fields::new()
            .kv("k8s.kind", v.kind.lower())
            .kv("k8s.reason", "Scaled")
            .kv("k8s.namespace", ns)
            .kv("k8s.name", name)
            .kv("k8s.replicas_from", a)
            .kv("k8s.replicas_to", b)
            .kv("k8s.author", author.as_deref().unwrap_or(""));
        out.log(
            &service,
            None,
            Level::Info,
            format!("{kind} {service} scaled from {a} to {b}"),
            f,
        );
    }

    if now.planned.is_some() && prev.and_then(|p| p.planned.as_ref()) != now.planned.as_ref() {
        planned(&service, &now, out);
    }

    if prev.is_none_or(|p| p.status != now.status) {
        let labels: BTreeMap<String, String> = [
            ("namespace".to_string(), ns.to_string()),
            (kind.to_string(), name.to_string()),
        ]
        .into();
        let samples = now
            .status
            .iter()
            .map(|(suffix, value)| MetricSample {
                name: format!("kube_{kind}_{suffix}"),
                labels: labels.clone(),
                value: *value,
            })
            .collect();
        let ts = out.now;
        out.push(ts, &service, None, SignalPayload::Metrics { samples });
    }
    Some(now)
}

fn planned(service: &str, now: &WorkloadObs, out: &mut Out) {
    let Some((description, until)) = &now.planned else {
        return;
    };
    let end = match until.as_deref().map(str::trim).filter(|u| !u.is_empty()) {
        None => None,
        Some(u) => match Ts::parse_rfc3339(u) {
            Some(t) => Some(t),
            None => {
                // An end nobody can read must not become a planned event without end, which
                // would excuse every later symptom of the service.
                tracing::warn!(%service, until = %u, "ignored a planned event: `{PLANNED_UNTIL}` is not RFC 3339");
                return;
            }
        },
    };
    let change = ChangeEvent {
        kind: ChangeKind::Planned,
        service: service.to_string(),
        start: out.now,
        end,
        from: None,
        to: None,
        description: crate::redact::redact(description).into_owned(),
        author: None,
    };
    let ts = out.now;
    out.push(ts, service, None, SignalPayload::Change(change));
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::{DeploymentSpec, DeploymentStatus};
    use k8s_openapi::api::core::v1::{Container, EnvVar, PodSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{FieldsV1, ManagedFieldsEntry, Time};

    fn deployment(image: &str, env: &str, replicas: i32, manager: &str) -> Deployment {
        Deployment {
            metadata: ObjectMeta {
                namespace: Some("shop".into()),
                name: Some("api".into()),
                generation: Some(3),
                managed_fields: Some(vec![ManagedFieldsEntry {
                    manager: Some(manager.into()),
                    operation: Some("Update".into()),
                    time: Some(Time(
                        k8s_openapi::jiff::Timestamp::from_second(1_700_000_000).expect("t"),
                    )),
                    fields_v1: Some(FieldsV1(serde_json::json!({"f:spec": {}}))),
                    ..Default::default()
                }]),
                ..Default::default()
            },
            spec: Some(DeploymentSpec {
                replicas: Some(replicas),
                template: PodTemplateSpec {
                    metadata: None,
                    spec: Some(PodSpec {
                        containers: vec![Container {
                            name: "app".into(),
                            image: Some(image.into()),
                            env: Some(vec![EnvVar {
                                name: "MODE".into(),
                                value: Some(env.into()),
                                ..Default::default()
                            }]),
                            ..Default::default()
                        }],
                        ..Default::default()
                    }),
                },
                ..Default::default()
            }),
            status: Some(DeploymentStatus::default()),
        }
    }

    fn step(
        prev: Option<&WorkloadObs>,
        d: &Deployment,
        listed: bool,
    ) -> (Option<WorkloadObs>, Vec<medic_core::Signal>) {
        let mut out = Out::new("k8s", Ts(1_000));
        let obs = observe_workload(prev, &view_deployment(d), listed, &mut out);
        (obs, out.signals)
    }

    fn changes(s: &[medic_core::Signal]) -> Vec<ChangeEvent> {
        s.iter()
            .filter_map(|s| match &s.payload {
                SignalPayload::Change(c) => Some(c.clone()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_rollout_restart_by_a_person_is_no_deploy() {
        let d = deployment("api:1", "a", 2, "kubectl-create");
        let (o1, _) = step(None, &d, true);
        let mut restarted = deployment("api:1", "a", 2, "kubectl-rollout");
        restarted.spec.as_mut().unwrap().template.metadata = Some(ObjectMeta {
            annotations: Some(
                [(RESTARTED_AT.to_string(), "2026-12-03T10:00:00Z".to_string())].into(),
            ),
            ..Default::default()
        });
        let (_, s2) = step(o1.as_ref(), &restarted, false);
        assert!(changes(&s2).is_empty(), "a restart is not a deploy");
        assert!(s2.iter().any(|s| matches!(&s.payload, SignalPayload::Log(l)
            if l.message == "deployment shop/api restarted"
                && l.fields.get("k8s.reason").map(String::as_str) == Some("RolloutRestart"))));
    }

    #[test]
    fn template_changes_are_deploys_with_author() {
        let (o1, s1) = step(None, &deployment("api:1", "a", 2, "kubectl-create"), true);
        // Listed at startup: no change, but the rollout status.
        assert!(changes(&s1).is_empty());
        assert!(
            s1.iter()
                .any(|s| matches!(&s.payload, SignalPayload::Metrics { samples }
            if samples.iter().any(|m| m.name == "kube_deployment_status_replicas_available"
                && m.label("deployment") == Some("api") && m.label("namespace") == Some("shop"))))
        );
        let (o2, s2) = step(
            o1.as_ref(),
            &deployment("api:2", "a", 2, "kubectl-set"),
            false,
        );
        let c = changes(&s2);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].kind, ChangeKind::Deploy);
        assert_eq!(c[0].service, "shop/api");
        assert_eq!(c[0].from.as_deref(), Some("app=api:1"));
        assert_eq!(c[0].to.as_deref(), Some("app=api:2"));
        assert_eq!(c[0].author.as_deref(), Some("kubectl-set"));
        assert!(c[0].description.contains("(image)"), "{}", c[0].description);
        // Env only: template versions.
        let (o3, s3) = step(
            o2.as_ref(),
            &deployment("api:2", "b", 2, "kubectl-edit"),
            false,
        );
        let c = changes(&s3);
        assert!(
            c[0].from
                .as_deref()
                .is_some_and(|f| f.starts_with("template:"))
        );
        assert!(c[0].description.contains("(env)"));
        // The same object again (a relist): nothing at all.
        let (o4, s4) = step(
            o3.as_ref(),
            &deployment("api:2", "b", 2, "kubectl-edit"),
            true,
        );
        assert!(s4.is_empty(), "{s4:?}");
        // Scale: a log line, no change.
        let (o5, s5) = step(
            o4.as_ref(),
            &deployment("api:2", "b", 5, "kubectl-scale"),
            false,
        );
        assert!(changes(&s5).is_empty());
        assert!(s5.iter().any(|s| matches!(&s.payload, SignalPayload::Log(l)
            if l.message == "deployment shop/api scaled from 2 to 5"
                && l.fields["k8s.author"] == "kubectl-scale")));
        // medic's restart: a remediation by medic.
        let (_, s6) = step(o5.as_ref(), &deployment("api:3", "b", 5, "medic"), false);
        let c = changes(&s6);
        assert_eq!(c[0].kind, ChangeKind::Remediation);
        assert_eq!(c[0].author.as_deref(), Some("medic"));
        // Created after startup: a deploy from nothing.
        let (_, s7) = step(None, &deployment("api:1", "a", 2, "kubectl-create"), false);
        let c = changes(&s7);
        assert_eq!(
            (c[0].from.as_deref(), c[0].to.as_deref()),
            (None, Some("app=api:1"))
        );
    }

    #[test]
    fn planned_events() {
        let mut d = deployment("api:1", "a", 2, "kubectl");
        d.metadata.annotations = Some(
            [
                (PLANNED_EVENT.to_string(), "load test".to_string()),
                (
                    PLANNED_UNTIL.to_string(),
                    "2030-01-01T00:00:00Z".to_string(),
                ),
            ]
            .into(),
        );
        let (o1, s1) = step(None, &d, true);
        let c = changes(&s1);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].kind, ChangeKind::Planned);
        assert_eq!(c[0].description, "load test");
        assert_eq!(c[0].end, Ts::parse_rfc3339("2030-01-01T00:00:00Z"));
        let (_, s2) = step(o1.as_ref(), &d, true);
        assert!(changes(&s2).is_empty());
        // An unreadable end: no planned event at all.
        d.metadata.annotations = Some(
            [
                (PLANNED_EVENT.to_string(), "load test".to_string()),
                (PLANNED_UNTIL.to_string(), "tomorrow".to_string()),
            ]
            .into(),
        );
        let (_, s3) = step(None, &d, true);
        assert!(changes(&s3).is_empty());
    }

    #[test]
    fn malformed_workloads_do_not_panic() {
        let mut out = Out::new("k8s", Ts(1));
        assert!(
            observe_workload(
                None,
                &view_deployment(&Deployment::default()),
                false,
                &mut out
            )
            .is_none()
        );
        let bare = Deployment {
            metadata: ObjectMeta {
                namespace: Some("a".into()),
                name: Some("b".into()),
                ..Default::default()
            },
            spec: None,
            status: None,
        };
        let o = observe_workload(None, &view_deployment(&bare), true, &mut out);
        assert!(o.is_some());
        let sts = StatefulSet {
            metadata: bare.metadata.clone(),
            ..Default::default()
        };
        let ds = DaemonSet {
            metadata: bare.metadata.clone(),
            ..Default::default()
        };
        assert!(observe_workload(None, &view_statefulset(&sts), true, &mut out).is_some());
        assert!(observe_workload(None, &view_daemonset(&ds), false, &mut out).is_some());
    }
}
