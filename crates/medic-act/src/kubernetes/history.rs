//! The contents of ConfigMaps as medic saw them over time, so `revert_config` can restore what
//! was there before a change. A background watcher (kube-runtime) records a version each time
//! a ConfigMap's data changes; the last `history_depth` versions of each are kept and persisted
//! as JSON (temp file + rename, so a crash leaves the old file or the new, never half of one).

use super::resolve::check_namespace;
use crate::ActError;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use kube::runtime::{WatchStreamExt, watcher};
use medic_config::KubernetesActuatorConfig;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// One recorded content of a ConfigMap.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigMapVersion {
    pub resource_version: String,
    /// When medic first saw this content.
    pub observed_at: DateTime<Utc>,
    #[serde(default)]
    pub data: BTreeMap<String, String>,
    /// `binaryData`, base64 as the API carries it.
    #[serde(default)]
    pub binary_data: BTreeMap<String, String>,
}

impl ConfigMapVersion {
    pub fn same_content(&self, other: &ConfigMapVersion) -> bool {
        self.data == other.data && self.binary_data == other.binary_data
    }

    pub fn of(cm: &ConfigMap, now: DateTime<Utc>) -> ConfigMapVersion {
        ConfigMapVersion {
            resource_version: cm.metadata.resource_version.clone().unwrap_or_default(),
            observed_at: now,
            data: cm.data.clone().unwrap_or_default(),
            binary_data: cm
                .binary_data
                .iter()
                .flatten()
                .map(|(k, v)| (k.clone(), base64_of(&v.0)))
                .collect(),
        }
    }

    /// The keys whose value differs between two contents (added, removed or changed).
    pub fn changed_keys(&self, other: &ConfigMapVersion) -> Vec<String> {
        let mut keys: Vec<String> = Vec::new();
        for (a, b) in [
            (&self.data, &other.data),
            (&self.binary_data, &other.binary_data),
        ] {
            for k in a.keys().chain(b.keys()) {
                if a.get(k) != b.get(k) && !keys.contains(k) {
                    keys.push(k.clone());
                }
            }
        }
        keys.sort();
        keys
    }
}

/// Standard base64 (the encoding of `binaryData` in JSON), without another dependency.
fn base64_of(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct HistoryFile {
    /// Format version of the file.
    version: u32,
    /// `namespace/name` → versions, oldest first.
    configmaps: BTreeMap<String, Vec<ConfigMapVersion>>,
}

/// The recorded versions of every watched ConfigMap.
#[derive(Debug)]
pub struct ConfigMapHistory {
    path: PathBuf,
    depth: usize,
    state: Mutex<HistoryFile>,
    /// Serialises file writes so that an older snapshot never replaces a newer one.
    write: tokio::sync::Mutex<()>,
}

impl ConfigMapHistory {
    /// Loads the file if it exists (a missing file is an empty history).
    pub fn load(path: &Path, depth: usize) -> Result<ConfigMapHistory, ActError> {
        let state = match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice::<HistoryFile>(&bytes).map_err(|e| {
                ActError::Invalid(format!(
                    "ConfigMap history {} is not medic's JSON ({e}); move it aside to start a new history",
                    path.display()
                ))
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => HistoryFile { version: 1, ..Default::default() },
            Err(e) => return Err(ActError::io(path, e)),
        };
        Ok(ConfigMapHistory {
            path: path.to_path_buf(),
            depth: depth.max(2),
            state: Mutex::new(state),
            write: tokio::sync::Mutex::new(()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HistoryFile> {
        // A panic elsewhere while holding the lock leaves plain data: still usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records a content if it differs from the last one recorded; true when it was new.
    pub fn observe(&self, namespace: &str, name: &str, version: ConfigMapVersion) -> bool {
        let mut st = self.lock();
        let list = st
            .configmaps
            .entry(format!("{namespace}/{name}"))
            .or_default();
        if list.last().is_some_and(|last| last.same_content(&version)) {
            return false;
        }
        list.push(version);
        if list.len() > self.depth {
            let extra = list.len() - self.depth;
            list.drain(..extra);
        }
        true
    }

    /// The versions recorded for a ConfigMap, oldest first.
    pub fn versions(&self, namespace: &str, name: &str) -> Vec<ConfigMapVersion> {
        self.lock()
            .configmaps
            .get(&format!("{namespace}/{name}"))
            .cloned()
            .unwrap_or_default()
    }

    /// Writes the history to its file atomically.
    pub async fn persist(&self) -> Result<(), ActError> {
        let _w = self.write.lock().await;
        let bytes = serde_json::to_vec_pretty(&*self.lock())
            .map_err(|e| ActError::Protocol(format!("serialising the ConfigMap history: {e}")))?;
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || write_atomically(&path, &bytes))
            .await
            .map_err(|e| ActError::Protocol(format!("history writer: {e}")))?
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), ActError> {
    use std::io::Write;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| ActError::io(dir, e))?;
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut f = std::fs::File::create(&tmp).map_err(|e| ActError::io(&tmp, e))?;
    f.write_all(bytes).map_err(|e| ActError::io(&tmp, e))?;
    f.sync_all().map_err(|e| ActError::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| ActError::io(path, e))
}

/// Starts the watcher: every ConfigMap in the namespaces medic may change (one watch per
/// configured namespace, or one cluster-wide watch filtered by `exclude_namespaces`).
pub fn spawn_watcher(
    client: kube::Client,
    cfg: &KubernetesActuatorConfig,
    history: std::sync::Arc<ConfigMapHistory>,
) -> tokio::task::JoinHandle<()> {
    let apis: Vec<Api<ConfigMap>> = if cfg.namespaces.is_empty() {
        vec![Api::all(client)]
    } else {
        cfg.namespaces
            .iter()
            .map(|ns| Api::namespaced(client.clone(), ns))
            .collect()
    };
    let cfg = cfg.clone();
    tokio::spawn(async move {
        let streams = apis.into_iter().map(|api| {
            watcher(api, watcher::Config::default())
                .default_backoff()
                .boxed()
        });
        let mut events = futures::stream::select_all(streams);
        while let Some(ev) = events.next().await {
            let changed = match ev {
                Ok(watcher::Event::Apply(cm) | watcher::Event::InitApply(cm)) => {
                    record(&history, &cfg, &cm)
                }
                Ok(watcher::Event::InitDone) => true,
                Ok(watcher::Event::Init | watcher::Event::Delete(_)) => false,
                Err(e) => {
                    // Backed off and retried by the stream; without RBAC for list/watch
                    // (WATCH_RULES) this repeats, and revert_config says nothing is recorded.
                    tracing::warn!(error = %e, "ConfigMap history watch failed");
                    false
                }
            };
            if changed && let Err(e) = history.persist().await {
                tracing::warn!(error = %e, "cannot persist the ConfigMap history");
            }
        }
    })
}

fn record(history: &ConfigMapHistory, cfg: &KubernetesActuatorConfig, cm: &ConfigMap) -> bool {
    let (Some(ns), Some(name)) = (&cm.metadata.namespace, &cm.metadata.name) else {
        return false;
    };
    if check_namespace(cfg, ns).is_err() {
        return false;
    }
    history.observe(ns, name, ConfigMapVersion::of(cm, Utc::now()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(rv: &str, data: &[(&str, &str)]) -> ConfigMapVersion {
        ConfigMapVersion {
            resource_version: rv.into(),
            observed_at: Utc::now(),
            data: data
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            binary_data: BTreeMap::new(),
        }
    }

    #[tokio::test]
    async fn keeps_depth_versions_and_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/history.json");
        let h = ConfigMapHistory::load(&path, 3).unwrap();
        assert!(h.observe("a", "cm", v("1", &[("k", "1")])));
        assert!(
            !h.observe("a", "cm", v("2", &[("k", "1")])),
            "same content is not a new version"
        );
        for i in 2..6 {
            assert!(h.observe("a", "cm", v(&i.to_string(), &[("k", &i.to_string())])));
        }
        assert_eq!(h.versions("a", "cm").len(), 3);
        h.persist().await.unwrap();
        let again = ConfigMapHistory::load(&path, 3).unwrap();
        let vs = again.versions("a", "cm");
        assert_eq!(
            vs.iter().map(|v| v.data["k"].as_str()).collect::<Vec<_>>(),
            ["3", "4", "5"]
        );
        assert!(!path.with_extension("json.tmp").exists());
    }

    #[test]
    fn changed_keys_and_base64() {
        let a = v("1", &[("x", "1"), ("y", "2")]);
        let b = v("2", &[("x", "1"), ("y", "3"), ("z", "4")]);
        assert_eq!(a.changed_keys(&b), ["y", "z"]);
        assert_eq!(base64_of(b"hello"), "aGVsbG8=");
        assert_eq!(base64_of(b"hi!"), "aGkh");
        assert_eq!(base64_of(b""), "");
    }

    #[test]
    fn malformed_file_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.json");
        std::fs::write(&path, "nope").unwrap();
        let e = ConfigMapHistory::load(&path, 3).unwrap_err().to_string();
        assert!(e.contains("move it aside"), "{e}");
    }
}
