//! GitOps markers: an object that Argo CD or Flux reconciles from Git would be put back by its
//! controller moments after medic changed it (and the two would fight), so medic recommends the
//! change instead of making it.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

/// Which controller manages the object, and the marker that says so; `None` when no GitOps
/// marker is present.
pub fn controller(meta: &ObjectMeta) -> Option<(&'static str, String)> {
    let labels = meta.labels.iter().flatten();
    let annotations = meta.annotations.iter().flatten();
    for (k, v) in labels.clone() {
        if k == "argocd.argoproj.io/instance" {
            return Some(("Argo CD", format!("label {k}={v}")));
        }
        if k.starts_with("kustomize.toolkit.fluxcd.io/") || k.starts_with("helm.toolkit.fluxcd.io/")
        {
            return Some(("Flux", format!("label {k}={v}")));
        }
    }
    for (k, _) in annotations {
        // `argocd.argoproj.io/tracking-id` is Argo CD's annotation tracking; any annotation of
        // its domain (sync-wave, sync-options, compare-options) means Argo CD applies it.
        if k.starts_with("argocd.argoproj.io/") {
            return Some(("Argo CD", format!("annotation {k}")));
        }
        if k.starts_with("kustomize.toolkit.fluxcd.io/") || k.starts_with("helm.toolkit.fluxcd.io/")
        {
            return Some(("Flux", format!("annotation {k}")));
        }
    }
    // Argo CD's default label tracking writes only `app.kubernetes.io/instance`; Helm writes it
    // too, so alone it proves nothing. With `managed-by` naming Argo CD it does.
    let label = |name: &str| meta.labels.as_ref().and_then(|l| l.get(name));
    if let (Some(inst), Some(by)) = (
        label("app.kubernetes.io/instance"),
        label("app.kubernetes.io/managed-by"),
    ) && by.to_ascii_lowercase().contains("argocd")
    {
        return Some((
            "Argo CD",
            format!("labels app.kubernetes.io/instance={inst}, app.kubernetes.io/managed-by={by}"),
        ));
    }
    None
}

/// The refusal medic returns for a GitOps-managed object.
pub fn refusal(what: &str, meta: &ObjectMeta, action: &str) -> Option<String> {
    let (controller, marker) = controller(meta)?;
    Some(format!(
        "{what} is managed by {controller} ({marker}): {controller} would revert {action} on its next sync, so medic recommends it instead: make the change in Git (or suspend the sync) and let {controller} apply it"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn meta(labels: &[(&str, &str)], annotations: &[(&str, &str)]) -> ObjectMeta {
        let map = |kv: &[(&str, &str)]| {
            (!kv.is_empty()).then(|| {
                kv.iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect::<BTreeMap<_, _>>()
            })
        };
        ObjectMeta {
            labels: map(labels),
            annotations: map(annotations),
            ..Default::default()
        }
    }

    #[test]
    fn detects_argo_and_flux() {
        assert_eq!(
            controller(&meta(&[("argocd.argoproj.io/instance", "shop")], &[]))
                .unwrap()
                .0,
            "Argo CD"
        );
        assert_eq!(
            controller(&meta(
                &[],
                &[(
                    "argocd.argoproj.io/tracking-id",
                    "shop:apps/Deployment:shop/web"
                )]
            ))
            .unwrap()
            .0,
            "Argo CD"
        );
        assert_eq!(
            controller(&meta(&[("kustomize.toolkit.fluxcd.io/name", "apps")], &[]))
                .unwrap()
                .0,
            "Flux"
        );
        assert_eq!(
            controller(&meta(&[("helm.toolkit.fluxcd.io/name", "web")], &[]))
                .unwrap()
                .0,
            "Flux"
        );
        assert_eq!(
            controller(&meta(
                &[
                    ("app.kubernetes.io/instance", "web"),
                    ("app.kubernetes.io/managed-by", "argocd")
                ],
                &[]
            ))
            .unwrap()
            .0,
            "Argo CD"
        );
    }

    #[test]
    fn helm_alone_is_not_gitops() {
        let m = meta(
            &[
                ("app.kubernetes.io/instance", "web"),
                ("app.kubernetes.io/managed-by", "Helm"),
            ],
            &[("meta.helm.sh/release-name", "web")],
        );
        assert_eq!(controller(&m), None);
        assert_eq!(controller(&ObjectMeta::default()), None);
        let r = refusal(
            "Deployment shop/web",
            &meta(&[("argocd.argoproj.io/instance", "shop")], &[]),
            "a restart",
        );
        assert!(r.unwrap().contains("Argo CD would revert a restart"));
    }
}
