//! `isolate_workload`: a deny-all NetworkPolicy (no ingress, no egress rules) selecting the
//! workload's pods, named `medic-isolate-<name>` and labelled as medic's, so that the pods
//! stay up for inspection but cannot talk to anything. Deleting the policy undoes it.

use super::Cx;
use crate::ActError;
use crate::kubernetes::error::{is_already_exists, map};
use crate::kubernetes::resolve::{self, Target};
use k8s_openapi::api::networking::v1::{NetworkPolicy, NetworkPolicySpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::Api;

pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "medic");
pub const ISOLATES: &str = "medic.dev/isolates";

pub fn policy_name(workload: &str) -> String {
    // Object names are at most 253 characters.
    let mut n = format!("medic-isolate-{workload}");
    n.truncate(253);
    n
}

pub(crate) async fn run(cx: &Cx<'_>, t: &Target) -> Result<String, ActError> {
    let w = resolve::must_get(cx.client(), t).await?;
    let ns = w.ns().to_string();
    let selector = w.selector()?;
    let selector_text = w.selector_query()?;
    let name = policy_name(&w.r.name);
    let api: Api<NetworkPolicy> = Api::namespaced(cx.client().clone(), &ns);
    let already = |np: &NetworkPolicy| -> Result<String, ActError> {
        let ours = np
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(MANAGED_BY.0))
            .is_some_and(|v| v == MANAGED_BY.1);
        if ours {
            Ok(format!(
                "{} already isolated by NetworkPolicy {ns}/{name}: nothing to change",
                w.describe()
            ))
        } else {
            Err(ActError::Rejected(format!(
                "a NetworkPolicy {ns}/{name} exists and is not medic's: medic will not replace it"
            )))
        }
    };
    let what = format!("get networkpolicy {ns}/{name}");
    if let Some(np) = api.get_opt(&name).await.map_err(|e| map(e, &what))? {
        return already(&np);
    }
    let np = NetworkPolicy {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(ns.clone()),
            labels: Some(
                [
                    (MANAGED_BY.0.to_string(), MANAGED_BY.1.to_string()),
                    (ISOLATES.to_string(), w.r.name.clone()),
                ]
                .into(),
            ),
            ..Default::default()
        },
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(selector),
            policy_types: Some(vec!["Ingress".to_string(), "Egress".to_string()]),
            ingress: None,
            egress: None,
        }),
    };
    cx.before_write(1).await;
    match api.create(&cx.post_params(), &np).await {
        Ok(_) => {}
        Err(e) if is_already_exists(&e) => {
            let np = api.get(&name).await.map_err(|e| map(e, &what))?;
            return already(&np);
        }
        Err(e) => return Err(map(e, &format!("create networkpolicy {ns}/{name}"))),
    }
    let detail = format!(
        "isolated {}: NetworkPolicy {ns}/{name} (none → deny all ingress and egress) selects pods {selector_text}; delete it to undo",
        w.describe()
    );
    cx.record(&t.r, &detail).await?;
    Ok(detail)
}
