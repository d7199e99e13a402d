//! Findings: one anomaly, found by one detector, about one service.

use crate::time::Ts;
use serde::{Deserialize, Serialize};

/// What kind of anomaly a detector found. The diagnosis rules read these.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    /// The share of failed requests rose above its baseline.
    ErrorRate,
    /// Tail latency rose above its baseline.
    Latency,
    /// Resident memory is growing steadily.
    MemoryGrowth,
    /// A process exited without being asked to (any reason).
    ProcessExit,
    /// A process was killed for exceeding its memory limit.
    OomKilled,
    /// A workload keeps exiting shortly after start.
    CrashLoop,
    /// Error-level log lines arrive far faster than usual.
    ErrorLogBurst,
    /// An error message never seen before.
    NewErrorMessage,
    /// A target stopped answering scrapes.
    TargetDown,
    /// Request rate far above its baseline.
    TrafficSurge,
    /// CPU use near saturation.
    CpuSaturation,
    /// An alert fired by an external alerting system (Prometheus/Alertmanager).
    AlertFiring,
    /// A metric series departed from its learned behaviour (level shift, spike, change point).
    MetricAnomaly,
    /// A growing series is forecast to cross its threshold soon.
    PredictedBreach,
    /// A log template never seen in the service's baseline.
    NewLogTemplate,
    /// A log template's rate spiked or vanished against its own baseline.
    LogTemplateRate,
    /// A line matched the curated pattern library (connection refused, OOM, TLS, DNS ...).
    LogPattern,
}

impl FindingKind {
    /// Too weak to open an incident or to date one: a never-seen error message or log
    /// template, a template's rate moving, or a known-bad phrase in one log line all happen
    /// in healthy systems too (a rare code path, a retried call, a pod's first readiness
    /// probe); next to other symptoms they are evidence.
    pub fn is_weak(self) -> bool {
        matches!(
            self,
            FindingKind::NewErrorMessage
                | FindingKind::NewLogTemplate
                | FindingKind::LogTemplateRate
                | FindingKind::LogPattern
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            FindingKind::ErrorRate => "error_rate",
            FindingKind::Latency => "latency",
            FindingKind::MemoryGrowth => "memory_growth",
            FindingKind::ProcessExit => "process_exit",
            FindingKind::OomKilled => "oom_killed",
            FindingKind::CrashLoop => "crash_loop",
            FindingKind::ErrorLogBurst => "error_log_burst",
            FindingKind::NewErrorMessage => "new_error_message",
            FindingKind::TargetDown => "target_down",
            FindingKind::TrafficSurge => "traffic_surge",
            FindingKind::CpuSaturation => "cpu_saturation",
            FindingKind::AlertFiring => "alert_firing",
            FindingKind::MetricAnomaly => "metric_anomaly",
            FindingKind::PredictedBreach => "predicted_breach",
            FindingKind::NewLogTemplate => "new_log_template",
            FindingKind::LogTemplateRate => "log_template_rate",
            FindingKind::LogPattern => "log_pattern",
        }
    }
}

/// Something that supports a finding or a hypothesis, shown to people and stored in audit.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Evidence {
    /// A log line (redacted), with its service.
    LogLine {
        ts: Ts,
        service: String,
        line: String,
    },
    /// A metric's current value next to its learned baseline.
    Metric {
        ts: Ts,
        service: String,
        name: String,
        value: f64,
        #[serde(default)]
        baseline: Option<f64>,
        #[serde(default)]
        unit: String,
    },
    /// A process or platform event.
    Event {
        ts: Ts,
        service: String,
        description: String,
    },
    /// A recent change from the change calendar.
    Change {
        ts: Ts,
        service: String,
        description: String,
    },
    /// A derived fact, in words (e.g. a topology argument).
    Note { text: String },
    /// Someone else's claim about the cause (an alert's `medic_cause` annotation or `cause`
    /// label): evidence of what its author believes, never proof on its own.
    Hint {
        service: String,
        /// The cause it names, as written (known causes parse with `Cause::parse`).
        cause: String,
        /// The alert that carried it.
        alert: String,
        /// The server token it came with (None: unauthenticated or unknown).
        #[serde(default)]
        sender: Option<String>,
    },
}

impl Evidence {
    pub fn describe(&self) -> String {
        match self {
            Evidence::LogLine { service, line, .. } => format!("log {service}: {line}"),
            Evidence::Metric {
                service,
                name,
                value,
                baseline,
                unit,
                ..
            } => match baseline {
                Some(b) => {
                    format!("metric {service} {name} = {value:.4}{unit} (baseline {b:.4}{unit})")
                }
                None => format!("metric {service} {name} = {value:.4}{unit}"),
            },
            Evidence::Event {
                service,
                description,
                ..
            } => format!("event {service}: {description}"),
            Evidence::Change {
                service,
                description,
                ..
            } => {
                format!("change {service}: {description}")
            }
            Evidence::Note { text } => text.clone(),
            Evidence::Hint {
                service,
                cause,
                alert,
                sender,
            } => format!(
                "alert {alert} on {service} claims cause {cause} (sent by {})",
                sender.as_deref().unwrap_or("an unknown sender")
            ),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// Unique id (detector, service, time).
    pub id: String,
    pub ts: Ts,
    pub service: String,
    #[serde(default)]
    pub instance: Option<String>,
    pub kind: FindingKind,
    /// Name of the detector that produced it.
    pub detector: String,
    /// How far from normal, in [0, 1].
    pub score: f64,
    pub summary: String,
    #[serde(default)]
    pub evidence: Vec<Evidence>,
}

impl Finding {
    pub fn symptom(&self) -> Symptom {
        Symptom {
            service: self.service.clone(),
            kind: self.kind,
        }
    }
}

/// A (service, kind) pair whose health the verifier watches after an action.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Symptom {
    pub service: String,
    pub kind: FindingKind,
}

impl std::fmt::Display for Symptom {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.service, self.kind.as_str())
    }
}

/// A detector's current judgement of one symptom, read by the verifier.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SymptomState {
    /// Within baseline now.
    Clear,
    /// Still anomalous now.
    Anomalous,
    /// Not enough data to judge (no traffic, target not scraped yet, unknown service).
    Unknown,
}
