//! `revert_config`: the ConfigMap the workload reads that changed most recently, restored to
//! the content medic recorded before the change, then a rollout restart so pods read it
//! (environment variables from a ConfigMap are only read when a container starts).

use super::Cx;
use super::restart::restart;
use crate::ActError;
use crate::kubernetes::error::{map, retry_on_conflict, step};
use crate::kubernetes::history::ConfigMapVersion;
use crate::kubernetes::resolve::{self, Target};
use crate::kubernetes::template::configmap_refs;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, Patch};
use serde_json::{Map, Value, json};

/// Set on a ConfigMap medic reverted: the idempotency key, so that a repeat after a crash
/// (before the restart was recorded) does not revert the revert.
pub const REVERTED_BY: &str = "medic.dev/reverted-by";

pub(crate) async fn run(cx: &Cx<'_>, t: &Target) -> Result<String, ActError> {
    let w = resolve::must_get(cx.client(), t).await?;
    cx.refuse_gitops(
        &w.describe(),
        &w.obj.metadata,
        "a configuration revert and restart",
    )?;
    let ns = w.ns().to_string();
    let refs = configmap_refs(&w.template()?);
    if refs.is_empty() {
        return Err(ActError::Rejected(format!(
            "{}'s pod template references no ConfigMap (env, envFrom, volumes): nothing to revert",
            w.describe()
        )));
    }
    // The referenced ConfigMap whose latest recorded change is the most recent.
    let chosen = refs
        .iter()
        .filter_map(|name| {
            let versions = cx.k.history.versions(&ns, name);
            (versions.len() >= 2).then(|| {
                (
                    versions.last().map(|v| v.observed_at),
                    name.clone(),
                    versions,
                )
            })
        })
        .max_by(|a, b| a.0.cmp(&b.0));
    let Some((_, name, versions)) = chosen else {
        return Err(ActError::Rejected(format!(
            "no earlier version is recorded for the ConfigMaps {} reads ({}): medic records ConfigMap contents from the moment it watches them, so there is nothing to revert to",
            w.describe(),
            refs.join(", ")
        )));
    };
    let api: Api<ConfigMap> = Api::namespaced(cx.client().clone(), &ns);
    let what = format!("revert ConfigMap {ns}/{name}");
    let (name_ref, versions_ref) = (&name, &versions);
    let (api_ref, ns_ref) = (&api, &ns);
    let reverted = retry_on_conflict(&what, |attempt| async move {
        let (name, versions, api, ns) = (name_ref, versions_ref, api_ref, ns_ref);
        let cm = api
            .get_opt(name)
            .await
            .map_err(|e| map(e, &format!("get configmap {ns}/{name}")))?
            .ok_or_else(|| ActError::Stale(format!("ConfigMap {ns}/{name} no longer exists")))?;
        cx.refuse_gitops(
            &format!("ConfigMap {ns}/{name}"),
            &cm.metadata,
            "a configuration revert",
        )?;
        if let Some(key) = cx.key
            && cm
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(REVERTED_BY))
                .is_some_and(|k| k == key)
        {
            return Ok(format!(
                "ConfigMap {ns}/{name} already reverted by this action"
            ));
        }
        let live = ConfigMapVersion::of(&cm, chrono::Utc::now());
        // Before the change: the newest recorded content that differs from what is live.
        let Some(target) = versions.iter().rev().find(|v| !v.same_content(&live)) else {
            return Err(ActError::Stale(format!(
                "ConfigMap {ns}/{name} already has every content medic recorded: nothing to revert"
            ))
            .into());
        };
        let keys = live.changed_keys(target);
        let mut patch = json!({"metadata": {"resourceVersion": cm.metadata.resource_version}});
        if let Some(d) = section_diff(&live.data, &target.data) {
            patch["data"] = d;
        }
        if let Some(d) = section_diff(&live.binary_data, &target.binary_data) {
            patch["binaryData"] = d;
        }
        if let (Some(key), false) = (cx.key, cx.dry) {
            patch["metadata"]["annotations"] = json!({REVERTED_BY: key});
        }
        cx.before_write(attempt).await;
        api.patch(name, &cx.patch_params(), &Patch::Merge(&patch))
            .await
            .map_err(|e| step(e, &format!("patch configmap {ns}/{name}")))?;
        // Key names only: values may be credentials someone put in a ConfigMap.
        Ok(format!(
            "ConfigMap {ns}/{name} restored to the content medic saw at {} (keys changed: {})",
            target
                .observed_at
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            keys.join(", ")
        ))
    })
    .await?;
    restart(cx, t, Some(&reverted)).await
}

/// The merge patch of one string map (`data` or `binaryData`): changed and added keys with
/// their value, removed keys as null.
fn section_diff(
    from: &std::collections::BTreeMap<String, String>,
    to: &std::collections::BTreeMap<String, String>,
) -> Option<Value> {
    let mut m = Map::new();
    for k in from.keys() {
        if !to.contains_key(k) {
            m.insert(k.clone(), Value::Null);
        }
    }
    for (k, v) in to {
        if from.get(k) != Some(v) {
            m.insert(k.clone(), Value::String(v.clone()));
        }
    }
    (!m.is_empty()).then_some(Value::Object(m))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn section_diff_sets_and_removes() {
        let a = [
            ("x".to_string(), "1".to_string()),
            ("y".to_string(), "2".to_string()),
        ]
        .into();
        let b = [
            ("x".to_string(), "9".to_string()),
            ("z".to_string(), "3".to_string()),
        ]
        .into();
        assert_eq!(
            section_diff(&a, &b),
            Some(json!({"x": "9", "y": null, "z": "3"}))
        );
        assert_eq!(section_diff(&a, &a), None);
    }
}
