//! The `kubernetes` source: watches of an API server (placeholder, being built).

use super::{Source, invalid};
use crate::SignalsError;
use crate::redact::Redactor;
use medic_config::SourceConfig;
use std::sync::Arc;

pub(crate) fn build(
    cfg: &SourceConfig,
    _redactor: &Arc<Redactor>,
) -> Result<Box<dyn Source>, SignalsError> {
    Err(invalid(cfg, "the kubernetes source is not built yet"))
}
