//! `kubernetes_logs`: the kubelet's container log files, CRI or Docker json-file envelopes
//! (detected per line), service = `namespace/workload` (as the `kubernetes` source names it),
//! instance = the pod.

use super::Source;
use super::log_files::LogFilesSource;
use crate::SignalsError;
use crate::redact::Redactor;
use medic_config::{ContainerFormat, SourceConfig, SourceKind};
use std::sync::Arc;

pub(crate) fn build(
    cfg: &SourceConfig,
    redactor: &Arc<Redactor>,
) -> Result<Box<dyn Source>, SignalsError> {
    let SourceKind::KubernetesLogs {
        paths,
        from_start,
        poll,
        format,
    } = &cfg.kind
    else {
        return Err(super::invalid(cfg, "expected a kubernetes_logs source"));
    };
    let mut source = LogFilesSource::from_parts(cfg, paths, *from_start, *poll, format, redactor)?;
    source.container = ContainerFormat::Auto;
    source.pod_names = true;
    Ok(Box::new(source))
}
