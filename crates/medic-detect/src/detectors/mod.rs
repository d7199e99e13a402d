//! The detectors, one per file. Registering a detector is one line in [`registered`].

pub mod alerts;
pub mod error_rate;
pub mod latency;
pub mod log_errors;
pub mod log_patterns;
pub mod log_templates;
pub mod memory_growth;
pub mod metric_series;
pub mod restarts;
pub mod target_down;
pub mod traffic;

use crate::Detector;
use medic_config::DetectorsConfig;

/// Most services one detector keeps state for; the least recently seen is dropped first.
pub(crate) const MAX_SERVICES: usize = 256;

/// Every enabled detector, built from its config.
pub fn registered(cfg: &DetectorsConfig) -> Vec<Box<dyn Detector>> {
    let mut all: Vec<Box<dyn Detector>> = Vec::new();
    let mut register = |enabled: bool, make: &dyn Fn() -> Box<dyn Detector>| {
        if enabled {
            all.push(make());
        }
    };
    register(cfg.error_rate.enabled, &|| {
        Box::new(error_rate::ErrorRate::new(cfg))
    });
    register(cfg.latency.enabled, &|| {
        Box::new(latency::Latency::new(cfg))
    });
    register(cfg.memory_growth.enabled, &|| {
        Box::new(memory_growth::MemoryGrowth::new(cfg))
    });
    register(cfg.restarts.enabled, &|| {
        Box::new(restarts::Restarts::new(cfg))
    });
    register(cfg.log_errors.enabled, &|| {
        Box::new(log_errors::LogErrors::new(cfg))
    });
    register(cfg.traffic.enabled, &|| {
        Box::new(traffic::Traffic::new(cfg))
    });
    register(cfg.target_down.enabled, &|| {
        Box::new(target_down::TargetDown::new(cfg))
    });
    register(cfg.log_templates.enabled, &|| {
        Box::new(log_templates::LogTemplates::new(cfg))
    });
    register(cfg.metric_series.enabled, &|| {
        Box::new(metric_series::MetricSeries::new(cfg))
    });
    register(cfg.log_patterns.enabled, &|| {
        Box::new(log_patterns::LogPatterns::new(cfg))
    });
    // Alerts only arrive when an alert receiver is configured: always on.
    register(true, &|| Box::new(alerts::Alerts::new(cfg)));
    all
}
