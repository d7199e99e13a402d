//! The validated configuration. Everything has a default, so an empty `medic.yaml` is valid
//! and means "the defaults". The YAML reader in this crate fills these from `medic.yaml` and
//! policy files; stage crates only read them.

use medic_core::{ActionKind, Cause, Mode, Topology};
use std::path::PathBuf;
use std::time::Duration;

/// Where something was written: for messages that point a person at the line to fix.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Location {
    pub file: String,
    pub line: usize,
    pub col: usize,
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.col)
    }
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Config {
    pub agent: AgentConfig,
    pub sources: Vec<SourceConfig>,
    pub detectors: DetectorsConfig,
    pub correlation: CorrelationConfig,
    pub topology: Topology,
    pub policies: Vec<Policy>,
    pub guards: GuardsConfig,
    pub actuators: ActuatorsConfig,
    pub store: StoreConfig,
    pub server: ServerConfig,
    pub escalation: EscalationConfig,
}

#[derive(Clone, Debug, PartialEq)]
pub struct AgentConfig {
    /// How often the reconcile loop and the detectors' periodic evaluation run.
    pub tick: Duration,
    /// How long an incident gathers findings before it is diagnosed.
    pub diagnosis_settle: Duration,
    /// How far back a change (deploy, config change) counts as "recent" for diagnosis.
    pub change_lookback: Duration,
}

impl Default for AgentConfig {
    fn default() -> Self {
        AgentConfig {
            tick: Duration::from_secs(1),
            diagnosis_settle: Duration::from_secs(3),
            change_lookback: Duration::from_secs(300),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct SourceConfig {
    /// Unique name; shows up in signals and messages.
    pub name: String,
    pub kind: SourceKind,
    pub location: Location,
}

#[derive(Clone, Debug, PartialEq)]
pub enum SourceKind {
    /// Tail log files matching globs. Each file's stem is the instance name; the service is
    /// the stem less a trailing `-<digits>` (`checkout-1.log` → service `checkout`,
    /// instance `checkout-1`), unless `service` fixes it.
    LogFiles {
        paths: Vec<String>,
        service: Option<String>,
        /// Read files from the start the first time they are seen (true) or from their end.
        from_start: bool,
        /// How often to look for new, rotated or truncated files.
        poll: Duration,
    },
    /// Scrape Prometheus text exposition from `/metrics`. Targets come from a Prometheus
    /// `file_sd` JSON file (labels `service` and `instance` name them) and/or a static list.
    PrometheusScrape {
        file_sd: Option<PathBuf>,
        targets: Vec<ScrapeTarget>,
        interval: Duration,
        timeout: Duration,
    },
    /// Read memory and CPU of processes from /proc. PIDs come from pid files matching a
    /// glob; the file stem names the instance as for `LogFiles`.
    Procfs {
        pid_files: String,
        interval: Duration,
    },
    /// Tail a JSON-lines file of `ProcessEventRecord`s written by a supervisor.
    ProcessEvents { path: PathBuf },
    /// Tail a JSON-lines change calendar of `ChangeEvent`s (deploys, config changes,
    /// planned events).
    ChangeCalendar { path: PathBuf },
}

#[derive(Clone, Debug, PartialEq)]
pub struct ScrapeTarget {
    /// `host:port` or a full URL.
    pub address: String,
    pub service: String,
    pub instance: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct DetectorsConfig {
    /// Samples before a baseline is trusted, and how fast it adapts.
    pub baseline: BaselineConfig,
    pub error_rate: ErrorRateConfig,
    pub latency: LatencyConfig,
    pub memory_growth: MemoryGrowthConfig,
    pub restarts: RestartsConfig,
    pub log_errors: LogErrorsConfig,
    pub traffic: TrafficConfig,
    pub target_down: TargetDownConfig,
}

#[derive(Clone, Debug, PartialEq)]
pub struct BaselineConfig {
    /// Observations needed before a baseline is used.
    pub warmup_samples: u32,
    /// Weight of each new observation in the moving baseline (0..1).
    pub alpha: f64,
}

impl Default for BaselineConfig {
    fn default() -> Self {
        BaselineConfig {
            warmup_samples: 8,
            alpha: 0.05,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct ErrorRateConfig {
    pub enabled: bool,
    /// Counter of requests with a status-code label.
    pub requests_metric: String,
    pub code_label: String,
    /// Codes starting with this count as errors.
    pub error_code_prefix: String,
    /// Rate window.
    pub window: Duration,
    /// Error ratio that is never normal, whatever the baseline.
    pub min_ratio: f64,
    /// How many baseline deviations above the baseline counts as anomalous.
    pub sigma: f64,
    /// Fewer requests than this in a window: no judgement.
    pub min_requests: u64,
    /// Consecutive anomalous evaluations before a finding.
    pub sustain: u32,
}

impl Default for ErrorRateConfig {
    fn default() -> Self {
        ErrorRateConfig {
            enabled: true,
            requests_metric: "http_requests_total".into(),
            code_label: "code".into(),
            error_code_prefix: "5".into(),
            window: Duration::from_secs(5),
            min_ratio: 0.05,
            sigma: 4.0,
            min_requests: 5,
            sustain: 2,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct LatencyConfig {
    pub enabled: bool,
    /// Histogram base name (`_bucket` series with an `le` label).
    pub histogram: String,
    pub quantile: f64,
    pub window: Duration,
    /// Quantile this many times its baseline is anomalous...
    pub ratio: f64,
    /// ...and only if above this many seconds.
    pub min_seconds: f64,
    pub sustain: u32,
}

impl Default for LatencyConfig {
    fn default() -> Self {
        LatencyConfig {
            enabled: true,
            histogram: "http_request_duration_seconds".into(),
            quantile: 0.99,
            window: Duration::from_secs(5),
            ratio: 3.0,
            min_seconds: 0.15,
            sustain: 2,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct MemoryGrowthConfig {
    pub enabled: bool,
    /// Span over which growth is fitted.
    pub window: Duration,
    /// Growth slower than this is not a leak.
    pub min_bytes_per_second: f64,
    /// Resident memory must also exceed its baseline by this factor.
    pub min_ratio: f64,
}

impl Default for MemoryGrowthConfig {
    fn default() -> Self {
        MemoryGrowthConfig {
            enabled: true,
            window: Duration::from_secs(8),
            min_bytes_per_second: 1024.0 * 1024.0,
            min_ratio: 1.5,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct RestartsConfig {
    pub enabled: bool,
    /// This many unexpected exits of one service within `crash_loop_window` is a crash loop.
    pub crash_loop_count: u32,
    pub crash_loop_window: Duration,
    /// After its last unexpected exit, a service counts as healthy again after this long.
    pub clear_after: Duration,
}

impl Default for RestartsConfig {
    fn default() -> Self {
        RestartsConfig {
            enabled: true,
            crash_loop_count: 2,
            crash_loop_window: Duration::from_secs(60),
            clear_after: Duration::from_secs(8),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct LogErrorsConfig {
    pub enabled: bool,
    pub window: Duration,
    /// Error lines per window this many times the baseline is a burst...
    pub burst_ratio: f64,
    /// ...when there are at least this many.
    pub min_count: u32,
    /// Report error messages never seen before (after warm-up).
    pub new_messages: bool,
}

impl Default for LogErrorsConfig {
    fn default() -> Self {
        LogErrorsConfig {
            enabled: true,
            window: Duration::from_secs(5),
            burst_ratio: 5.0,
            min_count: 5,
            new_messages: true,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct TrafficConfig {
    pub enabled: bool,
    pub window: Duration,
    /// Request rate this many times its baseline is a surge.
    pub surge_ratio: f64,
    /// Below this many requests per second: no judgement.
    pub min_rps: f64,
}

impl Default for TrafficConfig {
    fn default() -> Self {
        TrafficConfig {
            enabled: true,
            window: Duration::from_secs(5),
            surge_ratio: 2.5,
            min_rps: 5.0,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct TargetDownConfig {
    pub enabled: bool,
    /// Consecutive failed scrapes before a finding.
    pub after_failures: u32,
}

impl Default for TargetDownConfig {
    fn default() -> Self {
        TargetDownConfig {
            enabled: true,
            after_failures: 2,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct CorrelationConfig {
    /// Findings this close in time (to an incident's last finding) may join it.
    pub window: Duration,
    /// ...if their services are at most this many hops apart in the dependency graph.
    pub max_hops: usize,
    /// After an incident ends, findings on its services join it (as aftermath) for this long
    /// instead of opening a new incident.
    pub quiet_after_close: Duration,
}

impl Default for CorrelationConfig {
    fn default() -> Self {
        CorrelationConfig {
            window: Duration::from_secs(60),
            max_hops: 2,
            quiet_after_close: Duration::from_secs(15),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Policy {
    pub name: String,
    pub description: String,
    /// Causes it applies to (at least one).
    pub causes: Vec<Cause>,
    /// Service name globs (`*` wildcard) it applies to; empty means every service.
    pub services: Vec<String>,
    pub action: ActionKind,
    /// For `scale_workload`.
    pub scale: ScaleParams,
    /// Below this diagnosis confidence, recommend instead of acting.
    pub confidence_threshold: f64,
    pub mode: Mode,
    /// Attempts per incident before escalating.
    pub max_attempts: u32,
    /// Minimum time between two actions of this policy on the same target.
    pub cooldown: Duration,
    pub verification_window: Duration,
    /// On failed verification, undo the action where it can be undone.
    pub rollback_if_failed: bool,
    /// Name of an escalation target.
    pub escalation: Option<String>,
    pub location: Location,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            name: String::new(),
            description: String::new(),
            causes: Vec::new(),
            services: Vec::new(),
            action: ActionKind::NoAction,
            scale: ScaleParams::default(),
            confidence_threshold: 0.7,
            mode: Mode::Recommend,
            max_attempts: 1,
            cooldown: Duration::from_secs(300),
            verification_window: Duration::from_secs(30),
            rollback_if_failed: false,
            escalation: None,
            location: Location::default(),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct ScaleParams {
    /// New replicas = ceil(current × factor), within [min_replicas, max_replicas].
    pub factor: f64,
    pub min_replicas: u32,
    pub max_replicas: u32,
}

impl Default for ScaleParams {
    fn default() -> Self {
        ScaleParams {
            factor: 2.0,
            min_replicas: 1,
            max_replicas: 8,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct GuardsConfig {
    /// When true, medic acts on nothing (everything becomes a recommendation).
    pub kill_switch: bool,
    /// A file whose existence turns the kill switch on, so people can stop medic without
    /// editing config or restarting it.
    pub kill_switch_file: Option<PathBuf>,
    /// At most this many actions in any rolling hour, across the estate.
    pub max_actions_per_hour: u32,
    /// At most this many distinct services acted on in any rolling hour.
    pub max_services_per_hour: u32,
    /// At most this many actions on one target in any rolling hour (loop breaker).
    pub max_actions_per_target_per_hour: u32,
    /// At most this many actions in flight at once.
    pub max_concurrent_actions: u32,
}

impl Default for GuardsConfig {
    fn default() -> Self {
        GuardsConfig {
            kill_switch: false,
            kill_switch_file: None,
            max_actions_per_hour: 20,
            max_services_per_hour: 10,
            max_actions_per_target_per_hour: 3,
            max_concurrent_actions: 1,
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct ActuatorsConfig {
    pub local: Option<LocalActuatorConfig>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct LocalActuatorConfig {
    /// Base URL of the local supervisor's control API (`http://127.0.0.1:PORT`).
    pub supervisor_url: String,
    pub timeout: Duration,
}

#[derive(Clone, Debug, PartialEq)]
pub struct StoreConfig {
    pub sqlite: PathBuf,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            sqlite: PathBuf::from("medic.db"),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct ServerConfig {
    pub enabled: bool,
    pub listen: String,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            enabled: false,
            listen: "127.0.0.1:9400".into(),
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct EscalationConfig {
    pub targets: Vec<EscalationTarget>,
    /// Target used when a policy names none (and for incidents no policy matched).
    pub default_target: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct EscalationTarget {
    pub name: String,
    /// POST the escalation record as JSON here.
    pub webhook: Option<String>,
    pub timeout: Duration,
    pub location: Location,
}
