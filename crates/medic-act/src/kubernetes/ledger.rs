//! Idempotency: the keys medic has applied, recorded on the object it acted on.
//!
//! Why annotations on the object rather than a ledger ConfigMap per namespace: most actions
//! write the record *in the same request* as the change (one patch, one etcd write), so a
//! crash can never leave a change without its record, or a record without its change; the
//! record also travels with the object (deleted with it, visible in `kubectl describe`), works
//! for cluster-scoped nodes, and needs no write access to ConfigMaps in every namespace. The
//! cost: actions whose change is on another object (the scale subresource, an HPA, a pod
//! deletion, a NetworkPolicy) record in a second patch right after; those changes are
//! idempotent by themselves (scale to N, delete-one-of, create-if-absent), so a crash between
//! the two cannot change the cluster twice. The last few entries are kept, not only the last
//! key, so that an older key repeated after a newer one is still recognised.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// The last key applied to this object (for people reading the object).
pub const LAST_ACTION: &str = "medic.dev/last-action";
/// The last [`KEPT`] executions: `[{"key","kind","detail"}]`.
pub const ACTIONS: &str = "medic.dev/actions";
/// Entries kept on one object.
pub const KEPT: usize = 10;
/// Details longer than this are cut in the record (annotations share a 256 KiB budget).
const DETAIL_MAX: usize = 600;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub key: String,
    pub kind: String,
    pub detail: String,
}

fn entries(meta: &ObjectMeta) -> Vec<Entry> {
    let Some(raw) = meta.annotations.as_ref().and_then(|a| a.get(ACTIONS)) else {
        return Vec::new();
    };
    // A hand-edited, malformed record is not a reason to refuse to act: it is treated as
    // empty (and overwritten by the next record).
    serde_json::from_str(raw).unwrap_or_else(|e| {
        tracing::warn!(error = %e, "ignoring a malformed {ACTIONS} annotation");
        Vec::new()
    })
}

/// The detail recorded when `key` was applied to this object, if it was.
pub fn find(meta: &ObjectMeta, key: &str) -> Option<String> {
    if let Some(e) = entries(meta).into_iter().find(|e| e.key == key) {
        return Some(e.detail);
    }
    let last = meta.annotations.as_ref().and_then(|a| a.get(LAST_ACTION))?;
    (last == key).then(|| "(detail not recorded)".to_string())
}

/// The annotations that record `key` on an object whose metadata is `meta`: to merge into
/// the change's own patch (`metadata.annotations`).
pub fn annotations(
    meta: &ObjectMeta,
    key: &str,
    kind: &str,
    detail: &str,
) -> serde_json::Map<String, Value> {
    let mut list = entries(meta);
    list.retain(|e| e.key != key);
    let detail: String = if detail.len() > DETAIL_MAX {
        let mut cut = DETAIL_MAX;
        while !detail.is_char_boundary(cut) {
            cut -= 1;
        }
        format!("{}…", &detail[..cut])
    } else {
        detail.to_string()
    };
    list.push(Entry {
        key: key.to_string(),
        kind: kind.to_string(),
        detail,
    });
    if list.len() > KEPT {
        list.drain(..list.len() - KEPT);
    }
    let mut m = serde_json::Map::new();
    m.insert(LAST_ACTION.to_string(), json!(key));
    m.insert(
        ACTIONS.to_string(),
        json!(serde_json::to_string(&list).unwrap_or_default()),
    );
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(m: serde_json::Map<String, Value>) -> ObjectMeta {
        ObjectMeta {
            annotations: Some(
                m.into_iter()
                    .map(|(k, v)| (k, v.as_str().unwrap_or_default().to_string()))
                    .collect(),
            ),
            ..Default::default()
        }
    }

    #[test]
    fn records_and_finds_keys_bounded() {
        let mut meta = ObjectMeta::default();
        assert_eq!(find(&meta, "k1"), None);
        for i in 0..15 {
            meta = with(annotations(
                &meta,
                &format!("k{i}"),
                "restart_workload",
                &format!("d{i}"),
            ));
        }
        assert_eq!(find(&meta, "k14").as_deref(), Some("d14"));
        assert_eq!(find(&meta, "k5").as_deref(), Some("d5"));
        assert_eq!(find(&meta, "k4"), None, "only the last {KEPT} are kept");
        assert_eq!(meta.annotations.as_ref().unwrap()[LAST_ACTION], "k14");
    }

    #[test]
    fn malformed_record_is_empty() {
        let meta = ObjectMeta {
            annotations: Some([(ACTIONS.to_string(), "{not json".to_string())].into()),
            ..Default::default()
        };
        assert_eq!(find(&meta, "k"), None);
        let long = "é".repeat(1000);
        let m = with(annotations(&meta, "k", "x", &long));
        assert!(find(&m, "k").unwrap().ends_with('…'));
    }
}
