//! The actuator registry: which actuators the config enables, and which one acts on a target.
//! An action is routed by the kind of its typed target ([`WorkloadRef`]); a service name is
//! resolved to that target by asking each enabled actuator in turn.

use crate::{ActError, ActionReport, Actuator, BoxFuture};
use medic_config::ActuatorsConfig;
use medic_core::{Action, WorkloadRef};
use std::sync::Arc;

/// Builds one platform's actuator from the config; `None` when the config does not enable it.
type Build =
    for<'a> fn(&'a ActuatorsConfig) -> BoxFuture<'a, Option<Result<Arc<dyn Actuator>, ActError>>>;

/// One line per platform.
const ACTUATORS: &[(&str, Build)] = &[
    ("local", crate::local::from_config),
    #[cfg(feature = "kubernetes")]
    ("kubernetes", crate::kubernetes::from_config),
];

/// Every enabled actuator, by platform name, in registry order.
#[derive(Clone, Default)]
pub struct Actuators {
    enabled: Vec<(&'static str, Arc<dyn Actuator>)>,
}

impl Actuators {
    /// Builds every actuator the config enables. A platform the config names but this build
    /// lacks (`actuators.kubernetes` without the `kubernetes` feature) is an error.
    pub async fn build(cfg: &ActuatorsConfig) -> Result<Actuators, ActError> {
        if cfg.kubernetes.is_some() && !ACTUATORS.iter().any(|(n, _)| *n == "kubernetes") {
            return Err(ActError::Invalid(
                "actuators.kubernetes is configured but this medic was built without the `kubernetes` feature".to_string(),
            ));
        }
        let mut enabled = Vec::new();
        for (name, build) in ACTUATORS {
            if let Some(actuator) = build(cfg).await {
                enabled.push((*name, actuator?));
            }
        }
        Ok(Actuators { enabled })
    }

    /// A registry of the given actuators (tests, the demo).
    pub fn from_parts(enabled: Vec<(&'static str, Arc<dyn Actuator>)>) -> Actuators {
        Actuators { enabled }
    }

    pub fn is_empty(&self) -> bool {
        self.enabled.is_empty()
    }

    pub fn names(&self) -> Vec<&'static str> {
        self.enabled.iter().map(|(n, _)| *n).collect()
    }

    fn for_platform(&self, platform: &str) -> Option<&Arc<dyn Actuator>> {
        self.enabled
            .iter()
            .find(|(n, _)| *n == platform)
            .map(|(_, a)| a)
    }

    fn none_configured(&self, what: &str) -> ActError {
        ActError::Rejected(format!(
            "no actuator is configured, so {what} cannot run: add `actuators.kubernetes` or `actuators.local` to medic.yaml"
        ))
    }

    /// The actuator for an action: by its typed target when set, else by resolving its
    /// service name.
    async fn route(&self, action: &Action) -> Result<(Arc<dyn Actuator>, Action), ActError> {
        if self.enabled.is_empty() {
            return Err(self.none_configured(&action.to_string()));
        }
        let workload = match &action.workload {
            Some(w) => w.clone(),
            None => self.resolve_service(&action.target).await?.ok_or_else(|| {
                ActError::Rejected(format!(
                    "no enabled actuator ({}) knows {:?}: {} cannot run",
                    self.names().join(", "),
                    action.target,
                    action.kind
                ))
            })?,
        };
        let platform = workload.kind.platform();
        let actuator = self.for_platform(platform).ok_or_else(|| {
            ActError::Rejected(format!(
                "{workload} needs the {platform} actuator, which is not configured (actuators.{platform})"
            ))
        })?;
        let mut action = action.clone();
        action.workload = Some(workload);
        Ok((actuator.clone(), action))
    }

    /// The typed target a service name stands for: the first enabled actuator that knows it.
    pub async fn resolve_service(&self, service: &str) -> Result<Option<WorkloadRef>, ActError> {
        let mut last_err = None;
        for (_, a) in &self.enabled {
            match a.resolve(service).await {
                Ok(Some(w)) => return Ok(Some(w)),
                Ok(None) => {}
                Err(e) => last_err = Some(e),
            }
        }
        match last_err {
            Some(e) => Err(e),
            None => Ok(None),
        }
    }
}

impl Actuator for Actuators {
    fn name(&self) -> &str {
        "registry"
    }

    fn execute<'a>(
        &'a self,
        key: &'a str,
        action: &'a Action,
    ) -> BoxFuture<'a, Result<ActionReport, ActError>> {
        Box::pin(async move {
            let (actuator, action) = self.route(action).await?;
            actuator.execute(key, &action).await
        })
    }

    fn replicas<'a>(&'a self, service: &'a str) -> BoxFuture<'a, Result<Option<u32>, ActError>> {
        Box::pin(async move {
            let Some(w) = self.resolve_service(service).await? else {
                return Ok(None);
            };
            match self.for_platform(w.kind.platform()) {
                Some(a) => a.replicas(service).await,
                None => Ok(None),
            }
        })
    }

    fn resolve<'a>(
        &'a self,
        service: &'a str,
    ) -> BoxFuture<'a, Result<Option<WorkloadRef>, ActError>> {
        Box::pin(self.resolve_service(service))
    }

    fn labels<'a>(
        &'a self,
        service: &'a str,
    ) -> BoxFuture<'a, Result<Option<std::collections::BTreeMap<String, String>>, ActError>> {
        Box::pin(async move {
            let Some(w) = self.resolve_service(service).await? else {
                return Ok(None);
            };
            match self.for_platform(w.kind.platform()) {
                Some(a) => a.labels(service).await,
                None => Ok(None),
            }
        })
    }

    fn memory_limit<'a>(
        &'a self,
        service: &'a str,
        container: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Option<u64>, ActError>> {
        Box::pin(async move {
            let Some(w) = self.resolve_service(service).await? else {
                return Ok(None);
            };
            match self.for_platform(w.kind.platform()) {
                Some(a) => a.memory_limit(service, container).await,
                None => Ok(None),
            }
        })
    }

    fn health<'a>(
        &'a self,
        workload: &'a WorkloadRef,
    ) -> BoxFuture<'a, Result<Option<crate::WorkloadHealth>, ActError>> {
        Box::pin(async move {
            match self.for_platform(workload.kind.platform()) {
                Some(a) => a.health(workload).await,
                None => Ok(None),
            }
        })
    }

    fn dry_run<'a>(&'a self, action: &'a Action) -> BoxFuture<'a, Result<ActionReport, ActError>> {
        Box::pin(async move {
            let (actuator, action) = self.route(action).await?;
            actuator.dry_run(&action).await
        })
    }
}
