//! Signals: what the estate says about itself, as read by a source, before any judgement.

use crate::time::Ts;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One observation from one source.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Signal {
    pub ts: Ts,
    /// Name of the source that produced it (as configured).
    pub source: String,
    /// The service it is about, when the source knows.
    pub service: Option<String>,
    /// The instance (replica, pod, host:port) it is about, when the source knows.
    pub instance: Option<String>,
    pub payload: SignalPayload,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SignalPayload {
    /// One log record (already joined if it spanned several lines).
    Log(LogLine),
    /// All samples of one scrape of one target.
    Metrics { samples: Vec<MetricSample> },
    /// A scrape or poll of a target failed.
    TargetDown { error: String },
    /// Resource usage of one process, read from the OS.
    ProcessStats {
        pid: u32,
        rss_bytes: u64,
        /// Cumulative CPU seconds (user + system).
        cpu_seconds: f64,
    },
    /// A process started or exited.
    Process(ProcessEvent),
    /// An entry of the change calendar: deploys, config changes, planned events.
    Change(ChangeEvent),
    /// An alert from an external alerting system, firing or resolved.
    Alert(AlertSignal),
    /// Who calls whom, as one source sees it now: its whole current view, so an edge it no
    /// longer shows is gone (a source repeats it now and then to say it still holds).
    Topology { edges: Vec<LearnedEdge> },
}

/// One call edge a source learned from what the estate shows (not from configuration).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct LearnedEdge {
    pub caller: String,
    pub callee: String,
    /// How it was learned, for people: which object said what.
    pub evidence: String,
}

/// One alert as Alertmanager (webhook v4) or another alerting system reports it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AlertSignal {
    /// Stable identity of the alert (Alertmanager's fingerprint), used to dedupe.
    pub fingerprint: String,
    /// `firing` or `resolved`.
    pub firing: bool,
    /// `alertname` label.
    pub name: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    pub starts_at: Ts,
    #[serde(default)]
    pub ends_at: Option<Ts>,
    #[serde(default)]
    pub generator_url: Option<String>,
    /// The group key of the notification it came in, for grouping.
    #[serde(default)]
    pub group_key: Option<String>,
    /// Who pushed it: the name of the server token it came with (None: unauthenticated, or
    /// not pushed through medic's server). A policy may trust a sender's cause hints.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sender: Option<String>,
}

#[derive(
    Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Trace,
    Debug,
    #[default]
    Info,
    Warn,
    Error,
    Fatal,
}

impl Level {
    /// Reads the usual spellings (`WARN`, `warning`, `E`, `CRITICAL`, ...).
    pub fn parse(s: &str) -> Option<Level> {
        let l = s.trim().to_ascii_lowercase();
        Some(match l.as_str() {
            "trace" | "t" | "finest" | "finer" => Level::Trace,
            "debug" | "d" | "fine" | "dbg" => Level::Debug,
            "info" | "i" | "information" | "notice" | "informational" => Level::Info,
            "warn" | "warning" | "w" => Level::Warn,
            "error" | "err" | "e" | "severe" => Level::Error,
            "fatal" | "critical" | "crit" | "f" | "panic" | "emerg" | "emergency" | "alert" => {
                Level::Fatal
            }
            _ => return None,
        })
    }
    pub fn is_error(self) -> bool {
        self >= Level::Error
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Default)]
pub struct LogLine {
    pub level: Level,
    /// The message (for JSON lines, the message field; otherwise the line minus timestamp
    /// and level), redacted.
    pub message: String,
    /// Continuation lines joined to this record (stack traces), redacted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub continuation: Vec<String>,
    /// Other structured fields (JSON logs), redacted.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub fields: BTreeMap<String, String>,
    /// The raw line as read (truncated to a bounded length), redacted.
    pub raw: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MetricSample {
    pub name: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

impl MetricSample {
    pub fn label(&self, k: &str) -> Option<&str> {
        self.labels.get(k).map(String::as_str)
    }
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProcessEventKind {
    Started,
    Exited,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProcessEvent {
    pub kind: ProcessEventKind,
    pub pid: u32,
    /// Exit code when the process exited normally.
    #[serde(default)]
    pub exit_code: Option<i32>,
    /// Signal number when the process was killed by a signal.
    #[serde(default)]
    pub signal: Option<i32>,
    /// Why, in Kubernetes' words where they fit: `OOMKilled`, `Error`, `Completed`,
    /// `Killed`, `Stopped` (asked to stop by its supervisor: not a failure).
    #[serde(default)]
    pub reason: String,
    /// Release version and config version the process ran.
    #[serde(default)]
    pub version: Option<String>,
    #[serde(default)]
    pub config_version: Option<String>,
}

impl ProcessEvent {
    /// An exit the workload did not ask for and its supervisor did not cause.
    pub fn is_unexpected_exit(&self) -> bool {
        self.kind == ProcessEventKind::Exited && self.reason != "Stopped"
    }
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    /// A new release of a service was rolled out.
    Deploy,
    /// A service's configuration changed.
    ConfigChange,
    /// Announced ahead of time: a campaign, a migration, a load test.
    Planned,
    /// medic's own remediation (so that later diagnoses know what medic did).
    Remediation,
}

/// One entry of the change calendar.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChangeEvent {
    pub kind: ChangeKind,
    pub service: String,
    /// When the change happened (or, for planned events, when it starts).
    pub start: Ts,
    /// For planned events: when it ends.
    #[serde(default)]
    pub end: Option<Ts>,
    #[serde(default)]
    pub from: Option<String>,
    #[serde(default)]
    pub to: Option<String>,
    #[serde(default)]
    pub description: String,
    /// Who made it (a person, a pipeline, medic).
    #[serde(default)]
    pub author: Option<String>,
}

impl ChangeEvent {
    /// Whether the change is relevant at `t`: a planned event while it runs, any other
    /// change within `lookback_s` seconds before `t`.
    pub fn relevant_at(&self, t: Ts, lookback_s: f64) -> bool {
        match self.kind {
            ChangeKind::Planned => {
                self.start.plus_secs(-lookback_s) <= t && self.end.is_none_or(|e| t <= e)
            }
            _ => self.start <= t.plus_secs(1.0) && t.secs_since(self.start) <= lookback_s,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn level_spellings() {
        assert_eq!(Level::parse("WARNING"), Some(Level::Warn));
        assert_eq!(Level::parse("E"), Some(Level::Error));
        assert_eq!(Level::parse("CRITICAL"), Some(Level::Fatal));
        assert_eq!(Level::parse("bogus"), None);
        assert!(Level::Fatal.is_error() && !Level::Warn.is_error());
    }

    #[test]
    fn change_relevance() {
        let c = ChangeEvent {
            kind: ChangeKind::Deploy,
            service: "a".into(),
            start: Ts(100_000),
            end: None,
            from: None,
            to: None,
            description: String::new(),
            author: None,
        };
        assert!(c.relevant_at(Ts(150_000), 60.0));
        assert!(!c.relevant_at(Ts(200_000), 60.0));
        assert!(!c.relevant_at(Ts(50_000), 60.0));
        let p = ChangeEvent {
            kind: ChangeKind::Planned,
            end: Some(Ts(300_000)),
            ..c
        };
        assert!(p.relevant_at(Ts(250_000), 60.0));
        assert!(!p.relevant_at(Ts(301_000), 60.0));
    }

    #[test]
    fn payload_json_shape() {
        let s = Signal {
            ts: Ts(1),
            source: "x".into(),
            service: Some("a".into()),
            instance: None,
            payload: SignalPayload::TargetDown {
                error: "refused".into(),
            },
        };
        let j = serde_json::to_value(&s).unwrap();
        assert_eq!(j["payload"]["type"], "target_down");
        let back: Signal = serde_json::from_value(j).unwrap();
        assert_eq!(back, s);
    }
}

/// One line of a supervisor's process-event log (JSON lines).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProcessEventRecord {
    pub ts: Ts,
    pub service: String,
    pub instance: String,
    #[serde(flatten)]
    pub event: ProcessEvent,
}
