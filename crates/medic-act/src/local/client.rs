//! The `local` actuator: an HTTP client of the supervisor's control API.

use crate::{ActError, ActionReport, Actuator, BoxFuture};
use medic_config::{ActuatorsConfig, LocalActuatorConfig};
use medic_core::{Action, WorkloadRef};
use std::sync::Arc;

/// Registry entry: the actuator when `actuators.local` is configured.
pub fn from_config(
    cfg: &ActuatorsConfig,
) -> BoxFuture<'_, Option<Result<Arc<dyn Actuator>, ActError>>> {
    Box::pin(async move {
        cfg.local
            .as_ref()
            .map(|l| LocalActuator::new(l).map(|a| Arc::new(a) as Arc<dyn Actuator>))
    })
}
use reqwest::StatusCode;
use serde::Deserialize;

pub struct LocalActuator {
    base: String,
    client: reqwest::Client,
}

#[derive(Deserialize)]
struct ErrorBody {
    error: String,
}

#[derive(Deserialize)]
struct WorkloadReplicas {
    service: String,
    replicas: u32,
}

impl LocalActuator {
    pub fn new(cfg: &LocalActuatorConfig) -> Result<Self, ActError> {
        let base = cfg.supervisor_url.trim().trim_end_matches('/').to_string();
        let rest = base.strip_prefix("http://").ok_or_else(|| {
            ActError::Invalid(format!(
                "supervisor_url {:?} is not supported: expected http://HOST:PORT",
                cfg.supervisor_url
            ))
        })?;
        if rest.is_empty() || rest.contains(['/', '?', '#', ' ']) {
            return Err(ActError::Invalid(format!(
                "supervisor_url {:?} is not a base URL: expected http://HOST:PORT",
                cfg.supervisor_url
            )));
        }
        if cfg.timeout.is_zero() {
            return Err(ActError::Invalid(
                "local actuator timeout is 0: expected a positive duration".to_string(),
            ));
        }
        let client = reqwest::Client::builder()
            .timeout(cfg.timeout)
            .build()
            .map_err(|e| ActError::Invalid(format!("cannot build http client: {e}")))?;
        Ok(LocalActuator { base, client })
    }

    async fn send(&self, req: reqwest::RequestBuilder, what: &str) -> Result<String, ActError> {
        let resp = req
            .send()
            .await
            .map_err(|e| ActError::Unreachable(format!("{what} at {}: {e}", self.base)))?;
        let status = resp.status();
        let body = resp
            .text()
            .await
            .map_err(|e| ActError::Unreachable(format!("{what}: reading the answer: {e}")))?;
        if status == StatusCode::OK {
            return Ok(body);
        }
        let message = serde_json::from_str::<ErrorBody>(&body)
            .map(|b| b.error)
            .unwrap_or_else(|_| body.chars().take(300).collect());
        Err(match status {
            StatusCode::CONFLICT | StatusCode::NOT_FOUND => ActError::Rejected(message),
            StatusCode::BAD_REQUEST => ActError::Invalid(message),
            StatusCode::SERVICE_UNAVAILABLE => ActError::Unreachable(message),
            _ => ActError::Protocol(format!("{what}: http {status}: {message}")),
        })
    }
}

impl Actuator for LocalActuator {
    fn name(&self) -> &str {
        "local"
    }

    fn execute<'a>(
        &'a self,
        key: &'a str,
        action: &'a Action,
    ) -> BoxFuture<'a, Result<ActionReport, ActError>> {
        Box::pin(async move {
            let req = self
                .client
                .post(format!("{}/v1/actions", self.base))
                .json(&serde_json::json!({"idempotency_key": key, "action": action}));
            let body = self.send(req, "POST /v1/actions").await?;
            serde_json::from_str(&body).map_err(|e| {
                ActError::Protocol(format!(
                    "POST /v1/actions answered {:?}: {e}; expected {{\"applied\":bool,\"detail\":\"…\"}}",
                    body.chars().take(200).collect::<String>()
                ))
            })
        })
    }

    fn resolve<'a>(
        &'a self,
        service: &'a str,
    ) -> BoxFuture<'a, Result<Option<WorkloadRef>, ActError>> {
        Box::pin(async move {
            // The supervisor's services are plain names; `namespace/name` is Kubernetes'.
            if service.contains('/') {
                return Ok(None);
            }
            Ok(self
                .replicas(service)
                .await?
                .map(|_| WorkloadRef::local(service)))
        })
    }

    fn replicas<'a>(&'a self, service: &'a str) -> BoxFuture<'a, Result<Option<u32>, ActError>> {
        Box::pin(async move {
            let req = self.client.get(format!("{}/v1/workloads", self.base));
            let body = self.send(req, "GET /v1/workloads").await?;
            let workloads: Vec<WorkloadReplicas> = serde_json::from_str(&body).map_err(|e| {
                ActError::Protocol(format!(
                    "GET /v1/workloads answered something else than a list of workloads: {e}"
                ))
            })?;
            Ok(workloads
                .into_iter()
                .find(|w| w.service == service)
                .map(|w| w.replicas))
        })
    }
}
