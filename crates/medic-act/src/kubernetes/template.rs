//! Pod templates as JSON: comparing a Deployment's template with a ReplicaSet's, the merge
//! patch that turns one into the other, what changed (images), and the ConfigMaps a template
//! reads.

use k8s_openapi::api::core::v1::PodTemplateSpec;
use serde_json::{Map, Value};
use std::collections::BTreeSet;

/// The label the Deployment controller adds to each ReplicaSet's template; not part of what
/// the user wrote, so it is ignored when templates are compared and never copied back.
pub const POD_TEMPLATE_HASH: &str = "pod-template-hash";

/// A template with the controller's hash label removed (and an emptied label map dropped).
pub fn without_hash(template: &Value) -> Value {
    let mut t = template.clone();
    if let Some(labels) = t
        .pointer_mut("/metadata/labels")
        .and_then(Value::as_object_mut)
    {
        labels.remove(POD_TEMPLATE_HASH);
        if labels.is_empty()
            && let Some(meta) = t.pointer_mut("/metadata").and_then(Value::as_object_mut)
        {
            meta.remove("labels");
        }
    }
    t
}

/// Whether two templates are the same once the hash label is ignored (what `kubectl rollout
/// undo` checks before it calls a rollback a no-op).
pub fn same_template(a: &Value, b: &Value) -> bool {
    normalize(&without_hash(a)) == normalize(&without_hash(b))
}

/// Drops empty objects and nulls, which the server may or may not echo.
fn normalize(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(_, v)| !v.is_null() && !matches!(v, Value::Object(o) if o.is_empty()))
                .map(|(k, v)| (k.clone(), normalize(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(normalize).collect()),
        v => v.clone(),
    }
}

/// The JSON merge patch (RFC 7386) that turns `from` into `to`: keys only in `from` become
/// `null`, lists are replaced whole. `None` when they are equal.
pub fn merge_diff(from: &Value, to: &Value) -> Option<Value> {
    match (from, to) {
        (Value::Object(f), Value::Object(t)) => {
            let mut out = Map::new();
            for (k, fv) in f {
                match t.get(k) {
                    None => {
                        out.insert(k.clone(), Value::Null);
                    }
                    Some(tv) => {
                        if let Some(d) = merge_diff(fv, tv) {
                            out.insert(k.clone(), d);
                        }
                    }
                }
            }
            for (k, tv) in t {
                if !f.contains_key(k) {
                    out.insert(k.clone(), tv.clone());
                }
            }
            (!out.is_empty()).then_some(Value::Object(out))
        }
        (f, t) if f == t => None,
        (_, t) => Some(t.clone()),
    }
}

/// `container=image` for every container and init container, in order.
pub fn images(template: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for list in ["/spec/initContainers", "/spec/containers"] {
        for c in template
            .pointer(list)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let name = c.get("name").and_then(Value::as_str).unwrap_or("?");
            let image = c.get("image").and_then(Value::as_str).unwrap_or("?");
            out.push((name.to_string(), image.to_string()));
        }
    }
    out
}

/// What changes between two templates, concisely: `image web x:2 → x:1`, else the top-level
/// fields that differ.
pub fn describe_change(from: &Value, to: &Value) -> String {
    let before = images(from);
    let after = images(to);
    let mut parts: Vec<String> = Vec::new();
    for (name, img) in &before {
        match after.iter().find(|(n, _)| n == name) {
            Some((_, new)) if new != img => parts.push(format!("image {name} {img} → {new}")),
            None => parts.push(format!("container {name} removed")),
            _ => {}
        }
    }
    for (name, img) in &after {
        if !before.iter().any(|(n, _)| n == name) {
            parts.push(format!("container {name} ({img}) added"));
        }
    }
    let other: BTreeSet<String> = merge_diff(&without_hash(from), &without_hash(to))
        .map(|d| changed_paths(&d))
        .unwrap_or_default()
        .into_iter()
        .filter(|p| !p.contains("containers"))
        .collect();
    if !other.is_empty() {
        parts.push(format!(
            "also changes {}",
            other.into_iter().collect::<Vec<_>>().join(", ")
        ));
    }
    if parts.is_empty() {
        "no visible change".to_string()
    } else {
        parts.join(", ")
    }
}

/// `spec.containers`, `metadata.annotations`: the two-level paths a merge patch touches.
fn changed_paths(patch: &Value) -> Vec<String> {
    let mut out = Vec::new();
    if let Value::Object(m) = patch {
        for (k, v) in m {
            match v {
                Value::Object(inner) if !inner.is_empty() => {
                    out.extend(inner.keys().map(|k2| format!("{k}.{k2}")));
                }
                _ => out.push(k.clone()),
            }
        }
    }
    out
}

/// The ConfigMaps a pod template reads: env `configMapKeyRef`, `envFrom.configMapRef`, and
/// `configMap` / `projected` volumes; sorted, without repeats.
pub fn configmap_refs(t: &PodTemplateSpec) -> Vec<String> {
    let mut out = BTreeSet::new();
    let Some(spec) = &t.spec else {
        return Vec::new();
    };
    for c in spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
    {
        for e in c.env.iter().flatten() {
            if let Some(r) = e
                .value_from
                .as_ref()
                .and_then(|v| v.config_map_key_ref.as_ref())
            {
                out.insert(r.name.clone());
            }
        }
        for e in c.env_from.iter().flatten() {
            if let Some(r) = &e.config_map_ref {
                out.insert(r.name.clone());
            }
        }
    }
    for v in spec.volumes.iter().flatten() {
        if let Some(cm) = &v.config_map {
            out.insert(cm.name.clone());
        }
        for s in v.projected.iter().flat_map(|p| p.sources.iter().flatten()) {
            if let Some(cm) = &s.config_map {
                out.insert(cm.name.clone());
            }
        }
    }
    out.retain(|n| !n.is_empty());
    out.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tpl(image: &str, hash: Option<&str>) -> Value {
        let mut labels = json!({"app": "web"});
        if let Some(h) = hash {
            labels[POD_TEMPLATE_HASH] = json!(h);
        }
        json!({"metadata": {"labels": labels}, "spec": {"containers": [{"name": "web", "image": image}]}})
    }

    #[test]
    fn template_comparison_ignores_the_hash_label() {
        assert!(same_template(&tpl("x:1", None), &tpl("x:1", Some("abc"))));
        assert!(!same_template(&tpl("x:1", None), &tpl("x:2", Some("abc"))));
        let only_hash = json!({"metadata": {"labels": {POD_TEMPLATE_HASH: "h"}}, "spec": {}});
        assert!(same_template(
            &only_hash,
            &json!({"metadata": {}, "spec": {}})
        ));
        assert!(same_template(&json!({"a": null, "b": {}}), &json!({})));
    }

    #[test]
    fn merge_diff_turns_one_into_the_other() {
        let from = json!({"metadata": {"annotations": {"a": "1", "b": "2"}}, "spec": {"containers": [{"name": "web", "image": "x:2"}]}});
        let to = json!({"metadata": {"annotations": {"a": "1"}}, "spec": {"containers": [{"name": "web", "image": "x:1"}]}});
        let d = merge_diff(&from, &to).unwrap();
        assert_eq!(
            d,
            json!({"metadata": {"annotations": {"b": null}}, "spec": {"containers": [{"name": "web", "image": "x:1"}]}})
        );
        assert_eq!(merge_diff(&to, &to), None);
    }

    #[test]
    fn describes_image_changes() {
        assert_eq!(
            describe_change(&tpl("x:2", None), &tpl("x:1", Some("h"))),
            "image web x:2 → x:1"
        );
        let mut with_env = tpl("x:1", None);
        with_env["metadata"]["annotations"] = json!({"k": "v"});
        assert_eq!(
            describe_change(&with_env, &tpl("x:1", None)),
            "also changes metadata.annotations"
        );
    }

    #[test]
    fn finds_configmap_references() {
        let t: PodTemplateSpec = serde_json::from_value(json!({
            "spec": {
                "containers": [{"name": "a", "env": [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "env-cm", "key": "x"}}}],
                                "envFrom": [{"configMapRef": {"name": "from-cm"}}, {"secretRef": {"name": "s"}}]}],
                "volumes": [{"name": "v", "configMap": {"name": "vol-cm"}},
                            {"name": "p", "projected": {"sources": [{"configMap": {"name": "proj-cm"}}, {"secret": {"name": "s2"}}]}}]
            }
        }))
        .unwrap();
        assert_eq!(
            configmap_refs(&t),
            ["env-cm", "from-cm", "proj-cm", "vol-cm"]
        );
        assert!(configmap_refs(&PodTemplateSpec::default()).is_empty());
    }
}
