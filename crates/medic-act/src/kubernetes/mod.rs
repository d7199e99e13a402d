//! The `kubernetes` actuator: actions through the API server (placeholder, being built).

use crate::{ActError, Actuator, BoxFuture};
use medic_config::ActuatorsConfig;
use std::sync::Arc;

/// Registry entry: the actuator when `actuators.kubernetes` is configured.
pub fn from_config(
    cfg: &ActuatorsConfig,
) -> BoxFuture<'_, Option<Result<Arc<dyn Actuator>, ActError>>> {
    Box::pin(async move {
        cfg.kubernetes.as_ref().map(|_| {
            Err(ActError::Invalid(
                "the kubernetes actuator is not built yet".to_string(),
            ))
        })
    })
}
