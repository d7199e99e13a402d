//! core/v1 Events as a kubelet records them (Created, Started, Killing, BackOff, Unhealthy,
//! Failed, FailedMount), so that watchers of Events see the sandbox node like a real one.
//! Repeats of the same event for the same pod bump `count` instead of piling up objects.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::{Event, Pod};
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};

/// (pod uid, reason, message).
type EventKey = (String, String, String);

pub struct Recorder {
    client: kube::Client,
    node: String,
    /// (pod uid, reason, message) → (event name, count).
    seen: Mutex<HashMap<EventKey, (String, i32)>>,
}

impl Recorder {
    pub fn new(client: kube::Client, node: &str) -> Arc<Self> {
        Arc::new(Self {
            client,
            node: node.into(),
            seen: Mutex::new(HashMap::new()),
        })
    }

    /// Records an event about a pod (and one of its containers) in the background.
    pub fn emit(
        self: &Arc<Self>,
        pod: &Pod,
        container: Option<&str>,
        warning: bool,
        reason: &str,
        message: String,
    ) {
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        let name = pod.metadata.name.clone().unwrap_or_default();
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let key = (uid.clone(), reason.to_string(), message.clone());
        let now = Timestamp::now();
        let (event_name, count) = {
            let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
            // Bounded: a long-running sandbox should not grow without limit.
            if seen.len() > 10_000 {
                seen.clear();
            }
            let entry = seen
                .entry(key)
                .or_insert_with(|| (format!("{name}.{:x}", now.as_nanosecond()), 0));
            entry.1 += 1;
            entry.clone()
        };
        let field_path = container.map(|c| format!("spec.containers{{{c}}}"));
        let me = self.clone();
        let reason = reason.to_string();
        tokio::spawn(async move {
            let api: Api<Event> = Api::namespaced(me.client.clone(), &ns);
            let ts = k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(now);
            let result = if count > 1 {
                let patch = serde_json::json!({"count": count, "lastTimestamp": ts});
                api.patch(&event_name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                    .map(drop)
            } else {
                let ev = serde_json::json!({
                    "metadata": {"name": event_name, "namespace": ns},
                    "involvedObject": {"apiVersion": "v1", "kind": "Pod", "name": name,
                        "namespace": ns, "uid": uid, "fieldPath": field_path},
                    "reason": reason,
                    "message": message,
                    "type": if warning { "Warning" } else { "Normal" },
                    "source": {"component": "kubelet", "host": me.node},
                    "reportingComponent": "kubelet",
                    "reportingInstance": me.node,
                    "firstTimestamp": ts,
                    "lastTimestamp": ts,
                    "count": 1,
                });
                match serde_json::from_value::<Event>(ev) {
                    Ok(ev) => api.create(&PostParams::default(), &ev).await.map(drop),
                    Err(e) => {
                        tracing::warn!(error = %e, "building event");
                        Ok(())
                    }
                }
            };
            if let Err(e) = result {
                tracing::debug!(error = %e, "recording event");
            }
        });
    }
}
