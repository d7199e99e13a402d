//! `set_resources`: a container's memory limit raised to `memory_limit_bytes` (the policy
//! bounds the value) by a strategic-merge patch of the pod template, the request kept at or
//! below the limit. Lowering is refused: it is never a remedy medic's diagnoses lead to.

use super::Cx;
use crate::ActError;
use crate::kubernetes::error::{retry_on_conflict, step};
use crate::kubernetes::resolve::{self, Target};
use kube::api::Patch;
use medic_core::quantity::{format_bytes, parse_bytes};
use serde_json::json;

pub(crate) async fn run(cx: &Cx<'_>, t: &Target) -> Result<String, ActError> {
    let new = cx
        .action
        .memory_limit_bytes
        .filter(|b| *b > 0)
        .ok_or_else(|| {
            ActError::Invalid("set_resources needs a positive `memory_limit_bytes`".to_string())
        })?;
    let what = format!("set resources of {}", resolve::describe(&t.r));
    retry_on_conflict(&what, |attempt| async move {
        let w = resolve::must_get(cx.client(), t).await?;
        cx.refuse_gitops(&w.describe(), &w.obj.metadata, "a resource change")?;
        let tmpl = w.template()?;
        let containers = tmpl.spec.map(|s| s.containers).unwrap_or_default();
        let wanted = t.r.container.as_deref();
        let c = match wanted {
            Some(n) => containers.iter().find(|c| c.name == n).ok_or_else(|| {
                ActError::Rejected(format!("{} has no container {n:?}", w.describe()))
            })?,
            None => containers
                .first()
                .ok_or_else(|| ActError::Protocol(format!("{} has no containers", w.describe())))?,
        };
        let memory = |m: Option<&std::collections::BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>>| {
            m.and_then(|m| m.get("memory")).map(|q| q.0.clone())
        };
        let res = c.resources.as_ref();
        let limit_text = memory(res.and_then(|r| r.limits.as_ref()));
        let request_text = memory(res.and_then(|r| r.requests.as_ref()));
        let parse = |q: &Option<String>, what: &str| -> Result<Option<u64>, ActError> {
            q.as_deref()
                .map(|s| {
                    parse_bytes(s).ok_or_else(|| {
                        ActError::Protocol(format!("{}: container {}: memory {what} {s:?} is not a quantity", w.describe(), c.name))
                    })
                })
                .transpose()
        };
        let limit = parse(&limit_text, "limit")?;
        let request = parse(&request_text, "request")?;
        let subject = format!("container {} of {}", c.name, w.describe());
        let new_text = format_bytes(new);
        match limit {
            Some(l) if new < l => {
                return Err(ActError::Rejected(format!(
                    "{subject}: memory limit is {} and the action asks for {new_text}: medic raises limits, it never lowers them",
                    limit_text.unwrap_or_default()
                ))
                .into());
            }
            Some(l) if new == l => {
                return Ok(format!("{subject}: memory limit already {new_text}: nothing to change"));
            }
            _ => {}
        }
        let mut resources = json!({"limits": {"memory": new_text}});
        let mut request_part = match &request_text {
            Some(r) => format!(" (request {r} kept)"),
            None => String::new(),
        };
        if let Some(r) = request
            && r > new
        {
            resources["requests"] = json!({"memory": new_text});
            request_part = format!(", request {} → {new_text}", request_text.clone().unwrap_or_default());
        }
        let detail = format!(
            "{subject}: memory limit {} → {new_text}{request_part}",
            limit_text.as_deref().unwrap_or("none")
        );
        let patch = json!({
            "metadata": {"resourceVersion": w.rv()?, "annotations": cx.ledger(&w.obj.metadata, &detail)},
            "spec": {"template": {"spec": {"containers": [{"name": c.name, "resources": resources}]}}},
        });
        cx.before_write(attempt).await;
        resolve::api_for(cx.client(), &w.r)?
            .patch(&w.r.name, &cx.patch_params(), &Patch::Strategic(&patch))
            .await
            .map_err(|e| step(e, &format!("patch {}", w.describe())))?;
        Ok(detail)
    })
    .await
}
