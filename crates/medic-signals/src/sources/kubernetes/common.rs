//! Shared by the per-kind files: signal builders, timestamps, content hashes, field managers.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use medic_core::{Level, LogLine, Signal, SignalPayload, Ts};
use std::collections::BTreeMap;

/// Terminations, starts and events older than this when first seen (at startup, or a pod
/// that appeared during a relist) are history, not news: recorded, not emitted.
pub(crate) const RECENT_MS: i64 = 5 * 60 * 1000;

/// The field manager (and author) of medic's own changes, as `actuators.kubernetes` writes
/// them by default.
pub(crate) const MEDIC_MANAGER: &str = "medic";
/// An annotation medic's actuator may set on the objects (or pod templates) it changes; a
/// change that alters it is medic's, whoever the field manager was.
pub(crate) const MEDIC_ACTION_ANNOTATION: &str = "medic.dev/action";

/// What the per-kind files produce: signals in the order they are to be emitted.
pub(crate) struct Out {
    pub source: String,
    pub now: Ts,
    pub signals: Vec<Signal>,
}

impl Out {
    pub(crate) fn new(source: &str, now: Ts) -> Out {
        Out {
            source: source.to_string(),
            now,
            signals: Vec::new(),
        }
    }

    pub(crate) fn push(
        &mut self,
        ts: Ts,
        service: &str,
        instance: Option<&str>,
        payload: SignalPayload,
    ) {
        self.signals.push(Signal {
            // Cluster clocks run ahead sometimes; a signal from the future confuses windows.
            ts: Ts(ts.0.min(self.now.0)),
            source: self.source.clone(),
            service: Some(service.to_string()),
            instance: instance.map(str::to_string),
            payload,
        });
    }

    /// A log record with a fixed message template and typed `k8s.*` fields.
    pub(crate) fn log(
        &mut self,
        service: &str,
        instance: Option<&str>,
        level: Level,
        message: String,
        fields: Fields,
    ) {
        let line = LogLine {
            level,
            raw: message.clone(),
            message,
            continuation: Vec::new(),
            fields: fields.0,
        };
        let now = self.now;
        self.push(now, service, instance, SignalPayload::Log(line));
    }
}

/// `k8s.*` fields of a log signal; empty values are left out.
#[derive(Default)]
pub(crate) struct Fields(pub BTreeMap<String, String>);

impl Fields {
    pub(crate) fn new() -> Fields {
        Fields::default()
    }
    pub(crate) fn kv(mut self, k: &str, v: impl ToString) -> Fields {
        let v = v.to_string();
        if !v.is_empty() {
            self.0.insert(k.to_string(), v);
        }
        self
    }
}

pub(crate) fn ts_of(t: Option<&Time>) -> Option<Ts> {
    t.map(|t| Ts(t.0.as_millisecond()))
}

/// Whether `t` (when known) is within [`RECENT_MS`] of `now`; unknown times count as recent.
pub(crate) fn recent(t: Option<Ts>, now: Ts) -> bool {
    t.is_none_or(|t| now.0.saturating_sub(t.0) <= RECENT_MS)
}

/// FNV-1a: a stable short hash (the same across runs and versions, unlike `DefaultHasher`),
/// so that `from`/`to` of config changes can be compared across medic restarts.
pub(crate) fn fnv64(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for b in *p {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        // A separator, so that ["ab","c"] and ["a","bc"] differ.
        h ^= 0xff;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// The first 8 hex digits of a hash: enough to tell versions apart in a timeline.
pub(crate) fn short(h: u64) -> String {
    format!("{:08x}", h >> 32)
}

/// `namespace/name`, the identity of namespaced objects in signals.
/// Init and regular containers of a pod spec, in that order.
pub(crate) fn containers(
    spec: &k8s_openapi::api::core::v1::PodSpec,
) -> impl Iterator<Item = &k8s_openapi::api::core::v1::Container> {
    spec.init_containers
        .iter()
        .flatten()
        .chain(&spec.containers)
}

pub(crate) fn ns_name(meta: &ObjectMeta) -> Option<(String, String)> {
    Some((meta.namespace.clone()?, meta.name.clone()?))
}

/// Who last changed the object: the manager of the newest `Update`/`Apply` entry of
/// `metadata.managedFields` that is not a status write. With `owning`, entries that own a
/// field under that key (`f:spec`, `f:data`) win over ones that only touched metadata (the
/// Deployment controller's revision annotation lands in the same second as the user's edit).
pub(crate) fn last_manager(meta: &ObjectMeta, owning: Option<&str>) -> Option<String> {
    let entries = meta.managed_fields.as_deref().unwrap_or_default();
    let candidates = entries.iter().filter(|e| {
        matches!(e.operation.as_deref(), Some("Update" | "Apply"))
            && e.subresource.as_deref().unwrap_or("").is_empty()
            && e.manager.as_deref().is_some_and(|m| !m.is_empty())
    });
    let owns = |e: &&k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry| {
        owning.is_some_and(|k| {
            e.fields_v1
                .as_ref()
                .and_then(|f| f.0.as_object())
                .is_some_and(|o| o.contains_key(k))
        })
    };
    let newest = |it: &mut dyn Iterator<
        Item = &k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry,
    >| {
        // Ties (same second): the later entry in the list, which the server appended last.
        it.max_by_key(|e| ts_of(e.time.as_ref()).map_or(i64::MIN, |t| t.0))
            .and_then(|e| e.manager.clone())
    };
    let mut owning_entries = candidates.clone().filter(owns);
    newest(&mut owning_entries).or_else(|| newest(&mut candidates.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{FieldsV1, ManagedFieldsEntry};

    fn entry(
        manager: &str,
        op: &str,
        sub: Option<&str>,
        secs: i64,
        fields: &str,
    ) -> ManagedFieldsEntry {
        ManagedFieldsEntry {
            manager: Some(manager.into()),
            operation: Some(op.into()),
            subresource: sub.map(str::to_string),
            time: Some(Time(
                k8s_openapi::jiff::Timestamp::from_second(secs).expect("valid second"),
            )),
            fields_v1: serde_json::from_str(fields).ok().map(FieldsV1),
            ..Default::default()
        }
    }

    #[test]
    fn managers() {
        let mut meta = ObjectMeta::default();
        assert_eq!(last_manager(&meta, Some("f:spec")), None);
        meta.managed_fields = Some(vec![
            entry("kubectl-create", "Update", None, 100, r#"{"f:spec":{}}"#),
            entry("kubectl-set", "Update", None, 200, r#"{"f:spec":{}}"#),
            entry(
                "kube-controller-manager",
                "Update",
                None,
                201,
                r#"{"f:metadata":{}}"#,
            ),
            entry(
                "kube-controller-manager",
                "Update",
                Some("status"),
                300,
                "{}",
            ),
        ]);
        assert_eq!(
            last_manager(&meta, Some("f:spec")).as_deref(),
            Some("kubectl-set")
        );
        assert_eq!(
            last_manager(&meta, None).as_deref(),
            Some("kube-controller-manager")
        );
        // Malformed entries (no operation, no manager, no time) are skipped, not fatal.
        meta.managed_fields = Some(vec![
            ManagedFieldsEntry::default(),
            entry("", "Update", None, 5, "{}"),
            ManagedFieldsEntry {
                manager: Some("x".into()),
                operation: Some("Apply".into()),
                ..Default::default()
            },
        ]);
        assert_eq!(last_manager(&meta, Some("f:data")).as_deref(), Some("x"));
    }

    #[test]
    fn hashes_are_stable_and_separated() {
        assert_eq!(fnv64(&[b"ab", b"c"]), fnv64(&[b"ab", b"c"]));
        assert_ne!(fnv64(&[b"ab", b"c"]), fnv64(&[b"a", b"bc"]));
        assert_eq!(short(fnv64(&[])).len(), 8);
    }
}
