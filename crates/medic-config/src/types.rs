//! The validated configuration. Everything has a default, so an empty `medic.yaml` is valid
//! and means "the defaults". The YAML reader in this crate fills these from `medic.yaml` and
//! policy files; stage crates only read them.

use medic_core::{ActionKind, ApprovalRule, Cause, Guardrails, Mode, Topology};
use std::collections::BTreeMap;
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
    /// Extra redaction patterns and built-in kinds to turn off (`redaction:`).
    pub redaction: RedactionConfig,
    /// A Prometheus server's HTTP API: evidence queries at diagnosis and `verify_promql`
    /// checks at verification. `None`: neither runs.
    pub prometheus: Option<PrometheusConfig>,
}

/// `prometheus:`: where a Prometheus server's HTTP API is, and what to ask it.
#[derive(Clone, Debug, PartialEq)]
pub struct PrometheusConfig {
    /// Base URL (`http://127.0.0.1:9090`).
    pub url: String,
    /// Timeout of one query; a slow server never blocks the loop for longer.
    pub timeout: Duration,
    /// PromQL run per affected service at diagnosis, `{service}` replaced by its name; each
    /// result series becomes `Evidence::Metric`.
    pub evidence_queries: Vec<EvidenceQuery>,
}

/// One named PromQL evidence query.
#[derive(Clone, Debug, PartialEq)]
pub struct EvidenceQuery {
    pub name: String,
    pub expr: String,
}

/// Default alert labels that name the service an alert is about, in order of preference.
pub const DEFAULT_SERVICE_LABELS: [&str; 6] = [
    "service",
    "job",
    "app",
    "kubernetes_deployment",
    "deployment",
    "pod",
];

impl Default for PrometheusConfig {
    fn default() -> Self {
        PrometheusConfig {
            url: String::new(),
            timeout: Duration::from_secs(2),
            evidence_queries: Vec::new(),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct AgentConfig {
    /// How often the reconcile loop and the detectors' periodic evaluation run.
    pub tick: Duration,
    /// How long an incident gathers findings before it is diagnosed.
    pub diagnosis_settle: Duration,
    /// How far back a change (deploy, config change) counts as "recent" for diagnosis.
    pub change_lookback: Duration,
    /// Decide and audit everything, change nothing: each action the guards allow is checked
    /// with the actuator's dry run (server-side where the platform has one) and recorded.
    pub dry_run: bool,
    /// Significance level of verification's before/after test: a symptom counts as improved
    /// when the one-sided Mann–Whitney p-value is below it.
    pub verification_alpha: f64,
}

impl Default for AgentConfig {
    fn default() -> Self {
        AgentConfig {
            tick: Duration::from_secs(1),
            diagnosis_settle: Duration::from_secs(3),
            change_lookback: Duration::from_secs(300),
            dry_run: false,
            verification_alpha: 0.05,
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
        /// How each line is parsed (`format:`).
        format: LogFormat,
        /// The container runtime's envelope around each line (`format: cri|docker`).
        container: ContainerFormat,
    },
    /// Kubernetes container log files (`/var/log/pods/…`, `/var/log/containers/…`): CRI or
    /// Docker json-file envelopes (detected per line), namespace/pod/container from the path.
    KubernetesLogs {
        paths: Vec<String>,
        from_start: bool,
        poll: Duration,
        /// How the message inside the envelope is parsed.
        format: LogFormat,
    },
    /// Lines piped to medic's standard input.
    Stdin {
        service: Option<String>,
        format: LogFormat,
    },
    /// Scrape Prometheus text exposition from `/metrics`. Targets come from a Prometheus
    /// `file_sd` JSON file (labels `service` and `instance` name them) and/or a static list.
    PrometheusScrape {
        file_sd: Option<PathBuf>,
        targets: Vec<ScrapeTarget>,
        interval: Duration,
        timeout: Duration,
    },
    /// Poll PromQL instant queries on a Prometheus server; each result series becomes a
    /// `Metrics` signal whose sample is named after the query.
    PrometheusQuery {
        url: String,
        queries: Vec<PromQuery>,
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
    /// Receive syslog (RFC 3164 and RFC 5424) over UDP and/or TCP (octet-counted or
    /// newline framing, detected per connection).
    Syslog(SyslogSourceConfig),
    /// Watches of a Kubernetes API server: pods, events, workloads, ConfigMaps, nodes, and
    /// the `/metrics` of pods annotated `prometheus.io/scrape`.
    Kubernetes(KubernetesSourceConfig),
}

#[derive(Clone, Debug, PartialEq, Eq, Copy)]
pub enum SyslogProtocol {
    Udp,
    Tcp,
    Both,
}

#[derive(Clone, Debug, PartialEq)]
pub struct SyslogSourceConfig {
    /// `ip:port` to listen on (UDP and TCP share it).
    pub listen: String,
    pub protocol: SyslogProtocol,
    /// Fixed service for every message; otherwise the APP-NAME (5424) or TAG (3164).
    pub service: Option<String>,
    /// Messages longer than this are truncated (and counted).
    pub max_message_bytes: usize,
    /// TCP connections beyond this are refused (and counted).
    pub max_connections: usize,
    /// Messages parsed but not yet handed on; beyond it they are dropped as
    /// `syslog_overload` rather than growing memory.
    pub queue: usize,
}

impl Default for SyslogSourceConfig {
    fn default() -> Self {
        SyslogSourceConfig {
            listen: "127.0.0.1:5514".into(),
            protocol: SyslogProtocol::Both,
            service: None,
            max_message_bytes: 64 * 1024,
            max_connections: 256,
            queue: 4096,
        }
    }
}

/// One query of a `prometheus_query` source.
#[derive(Clone, Debug, PartialEq)]
pub struct PromQuery {
    /// Sample name of its results.
    pub name: String,
    pub expr: String,
    /// Result label naming the service (default `service`).
    pub service_label: String,
}

/// How the lines of a log source are parsed (`format:` of a log source).
#[derive(Clone, Debug, Default, PartialEq)]
pub enum LogFormat {
    /// JSON objects with the usual keys, else `<timestamp> <LEVEL> message` text.
    #[default]
    Auto,
    /// JSON objects; `fields:` names the keys holding message, level and timestamp.
    Json {
        message: Option<String>,
        level: Option<String>,
        timestamp: Option<String>,
    },
    /// `key=value key2="quoted value"` pairs (`msg`, `level`, `ts`/`time` understood).
    Logfmt,
    /// A regex with named groups `message`, `level`, `timestamp` (others become fields).
    Regex { pattern: String },
    /// A Loghub header format: `<Date> <Time> <Level> <Component>: <Content>`.
    Loghub { format: String },
}

/// The envelope a container runtime writes around each line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ContainerFormat {
    /// Plain lines.
    #[default]
    None,
    /// CRI (containerd, CRI-O): `<RFC 3339 time> <stream> <P|F> <message>`.
    Cri,
    /// Docker json-file: `{"log":"…\n","stream":"stdout","time":"…"}`.
    Docker,
    /// Either, decided per line.
    Auto,
}

/// `redaction:`: applied after the built-in scanner, before anything leaves a source.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RedactionConfig {
    pub extra_patterns: Vec<RedactionPattern>,
    /// Built-in kinds not to redact (one of [`REDACTION_KINDS`]).
    pub disable: Vec<String>,
}

/// One extra pattern: matches become `[REDACTED:<name>]`.
#[derive(Clone, Debug, PartialEq)]
pub struct RedactionPattern {
    pub name: String,
    /// Checked to compile when the config is read.
    pub regex: String,
}

/// The built-in redaction kinds (`[REDACTED:<kind>]`), for `redaction.disable`.
pub const REDACTION_KINDS: [&str; 11] = [
    "secret",
    "bearer",
    "url_password",
    "aws_key",
    "gcp_key",
    "azure_key",
    "jwt",
    "private_key",
    "email",
    "card",
    "basic_auth",
];

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
    /// Per-template log anomalies: new templates, template rate spikes and vanishings.
    pub log_templates: LogTemplatesConfig,
    /// Matches of the curated log pattern library (connection refused, OOM, TLS, DNS ...).
    pub log_patterns: LogPatternsConfig,
    /// Streaming anomaly scoring and growth forecasting over configured metric series.
    pub metric_series: MetricSeriesConfig,
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

/// `detectors.log_templates`: log lines mined into templates per service; findings for a
/// template never seen in the service's baseline, and for a template's rate spiking or
/// vanishing against its own baseline.
#[derive(Clone, Debug, PartialEq)]
pub struct LogTemplatesConfig {
    pub enabled: bool,
    /// Length of the windows that template counts are kept in (tumbling).
    pub window: Duration,
    /// No new-template findings until a service has logged for this long...
    pub warmup: Duration,
    /// ...and at least this many lines.
    pub warmup_lines: u64,
    /// A template's count per window this many times its baseline is a spike...
    pub spike_ratio: f64,
    /// ...when there are at least this many lines of it.
    pub min_count: u32,
    /// A template with a steady baseline of at least `vanish_min_mean` lines per window that
    /// is absent for this many windows (while its service still logs) has vanished.
    pub vanish_windows: u32,
    pub vanish_min_mean: f64,
    /// A new info-level template is normal churn unless it repeats this many times in one
    /// window; warning and error templates are reported at once.
    pub new_info_min_count: u32,
    /// Templates kept per service (the miner's cap; the least used are forgotten first).
    pub max_templates: usize,
}

impl Default for LogTemplatesConfig {
    fn default() -> Self {
        LogTemplatesConfig {
            enabled: true,
            window: Duration::from_secs(30),
            warmup: Duration::from_secs(120),
            warmup_lines: 200,
            spike_ratio: 5.0,
            min_count: 10,
            vanish_windows: 3,
            vanish_min_mean: 5.0,
            new_info_min_count: 50,
            max_templates: 2000,
        }
    }
}

/// `detectors.log_patterns`: the curated pattern library (see `medic_detect::patterns`).
#[derive(Clone, Debug, PartialEq)]
pub struct LogPatternsConfig {
    pub enabled: bool,
    /// A (service, pattern) episode stays open while matches keep coming within this window.
    pub window: Duration,
    /// Matches within `window` that start an episode.
    pub min_count: u32,
    /// Pattern names to ignore (e.g. `timeout` for a service that logs expected timeouts).
    pub disabled: Vec<String>,
}

impl Default for LogPatternsConfig {
    fn default() -> Self {
        LogPatternsConfig {
            enabled: true,
            window: Duration::from_secs(60),
            min_count: 1,
            disabled: Vec::new(),
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

/// `detectors.metric_series`: the per-point streaming scorer over metric series of every
/// service (`metric_anomaly` findings) and time-to-threshold forecasts (`predicted_breach`).
#[derive(Clone, Debug, PartialEq)]
pub struct MetricSeriesConfig {
    /// Off by default: opt in once the metrics to watch are listed.
    pub enabled: bool,
    /// Metric names scored (every label set is its own series). Names ending in `_total` are
    /// counters: their per-second rate is scored, and a decrease is a counter reset.
    pub metrics: Vec<String>,
    /// Final score (0..1) at or above which a point is a `metric_anomaly` finding.
    pub alarm_score: f64,
    /// Points in the scorer's sliding windows.
    pub window: usize,
    /// Points before a series is scored.
    pub warmup: usize,
    /// Raw scores averaged by the likelihood step.
    pub short_window: usize,
    /// Weight of each point in the long-run score distribution.
    pub long_alpha: f64,
    /// Points after an alarm during which the same series does not alarm again.
    pub refractory: usize,
    /// Seasonal profile bins per day/week.
    pub season_bins: usize,
    /// Share of variance a daily/weekly profile must explain before it is used.
    pub season_min_gain: f64,
    /// Most series tracked; the least recently updated is dropped (and counted) beyond this.
    pub max_series: usize,
    /// A series not updated for this long is dropped (counted).
    pub stale_after: Duration,
    /// Points in the forecaster's fit window.
    pub forecast_points: usize,
    /// A `predicted_breach` is raised when the earliest plausible crossing is within this.
    pub horizon: Duration,
    /// What each forecast metric is compared with: `metric=NUMBER` (a fixed threshold) or
    /// `metric=LIMIT_METRIC` (the latest value of that metric on the same instance).
    pub forecast: Vec<String>,
    /// Distinct series of one target (service and instance) that must be anomalous within
    /// `correlation_window` before a `metric_anomaly` is raised; 1 raises single series too.
    pub min_correlated: usize,
    /// Anomalies of one target this close together are one correlated finding.
    pub correlation_window: Duration,
}

impl Default for MetricSeriesConfig {
    fn default() -> Self {
        MetricSeriesConfig {
            enabled: true,
            metrics: vec![
                "process_resident_memory_bytes".into(),
                "process_open_fds".into(),
                "disk_usage_ratio".into(),
            ],
            alarm_score: 0.35,
            window: 192,
            warmup: 64,
            short_window: 3,
            long_alpha: 0.0003,
            refractory: 100,
            season_bins: 288,
            season_min_gain: 0.7,
            max_series: 100_000,
            stale_after: Duration::from_secs(600),
            forecast_points: 64,
            horizon: Duration::from_secs(3600),
            forecast: vec![
                "process_resident_memory_bytes=container_spec_memory_limit_bytes".into(),
                "process_open_fds=process_max_fds".into(),
                "disk_usage_ratio=1.0".into(),
            ],
            min_correlated: 1,
            correlation_window: Duration::from_secs(60),
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
    /// For `set_resources`.
    pub resources: ResourceParams,
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
    /// Boolean PromQL (`{service}`/`{target}` templated) that must return a non-empty result
    /// at every check of the verification window, besides the symptoms. Needs `prometheus`.
    pub verify_promql: Vec<String>,
    /// Server token names whose alert cause hints may alone lead to an automatic action;
    /// otherwise a diagnosis that rests only on a hint is recommended, never executed.
    pub trust_alert_hints_from: Vec<String>,
    /// A regex that one of the incident's finding summaries must match.
    pub summary: Option<Pattern>,
    /// Labels the target workload must carry, all of them (known for Kubernetes workloads).
    pub labels: BTreeMap<String, String>,
    /// Namespaces the target workload must be in; empty means any (or none, locally).
    pub namespaces: Vec<String>,
    /// Who may approve and what a timeout does; set for mode `approve`.
    pub approval: Option<ApprovalRule>,
    pub guardrails: Guardrails,
    /// The stated reason this policy may run a never-auto action (security, identity, data
    /// loss) without a person.
    pub auto_override: Option<String>,
    /// Start below `mode` and earn it through verified successes.
    pub autonomy: Option<Autonomy>,
    /// `apiVersion` for a RemediationPolicy document; `None` for the list form.
    pub api_version: Option<String>,
}

/// Earned autonomy: the policy acts at `start` until its record for one cause × action ×
/// service shows `promote_after` verified successes in a row, then at its `mode`; a
/// failure puts it back to `start`.
#[derive(Clone, Debug, PartialEq)]
pub struct Autonomy {
    pub start: Mode,
    pub promote_after: u32,
}

/// A regex compiled when the config is read; equal when the text is.
#[derive(Clone, Debug)]
pub struct Pattern(pub regex::Regex);

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        self.0.as_str() == other.0.as_str()
    }
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
            resources: ResourceParams::default(),
            confidence_threshold: 0.7,
            mode: Mode::Recommend,
            max_attempts: 1,
            cooldown: Duration::from_secs(300),
            verification_window: Duration::from_secs(30),
            rollback_if_failed: false,
            escalation: None,
            location: Location::default(),
            verify_promql: Vec::new(),
            trust_alert_hints_from: Vec::new(),
            summary: None,
            labels: BTreeMap::new(),
            namespaces: Vec::new(),
            approval: None,
            guardrails: Guardrails::default(),
            auto_override: None,
            autonomy: None,
            api_version: None,
        }
    }
}

/// `resources:` of a `set_resources` policy: how far a memory limit may be raised.
#[derive(Clone, Debug, PartialEq)]
pub struct ResourceParams {
    /// New limit = ceil(current × factor), at most `max_memory_bytes`.
    pub memory_factor: f64,
    /// The bound: a limit is never raised above this.
    pub max_memory_bytes: u64,
    /// The container whose limit is raised; `None`: the workload's first container.
    pub container: Option<String>,
}

impl Default for ResourceParams {
    fn default() -> Self {
        ResourceParams {
            memory_factor: 1.5,
            max_memory_bytes: 1 << 30,
            container: None,
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

/// `actuators:`: one entry per platform medic may change; an action goes to the actuator of
/// its target's kind (a local service → `local`, a Kubernetes object → `kubernetes`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ActuatorsConfig {
    pub local: Option<LocalActuatorConfig>,
    pub kubernetes: Option<KubernetesActuatorConfig>,
}

/// How to reach a Kubernetes API server: a kubeconfig file (and context), or, when neither
/// is given, `KUBECONFIG`/`~/.kube/config` and then in-cluster credentials.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct KubeConnection {
    pub kubeconfig: Option<PathBuf>,
    pub context: Option<String>,
}

/// `actuators.kubernetes`: changes made through the API server, never through kubectl.
#[derive(Clone, Debug, PartialEq)]
pub struct KubernetesActuatorConfig {
    pub connection: KubeConnection,
    /// Timeout of one API request.
    pub timeout: Duration,
    /// The field manager named in every patch (server-side apply and managedFields).
    pub field_manager: String,
    /// Where the ConfigMap contents medic saw before a change are kept across restarts, so
    /// `revert_config` can restore them. Relative paths are relative to the config file.
    pub history_file: PathBuf,
    /// How many earlier versions of each ConfigMap are kept.
    pub history_depth: usize,
    /// Namespaces medic may change; empty: every namespace but `exclude_namespaces`.
    pub namespaces: Vec<String>,
    /// Namespaces medic never changes (the cluster's own by default).
    pub exclude_namespaces: Vec<String>,
}

/// The cluster's own namespaces, never watched or changed unless configured otherwise.
pub const KUBE_SYSTEM_NAMESPACES: [&str; 3] = ["kube-system", "kube-public", "kube-node-lease"];

impl Default for KubernetesActuatorConfig {
    fn default() -> Self {
        KubernetesActuatorConfig {
            connection: KubeConnection::default(),
            timeout: Duration::from_secs(30),
            field_manager: "medic".to_string(),
            history_file: PathBuf::from("medic-configmaps.json"),
            history_depth: 5,
            namespaces: Vec::new(),
            exclude_namespaces: KUBE_SYSTEM_NAMESPACES
                .iter()
                .map(|s| s.to_string())
                .collect(),
        }
    }
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
    /// `store.audit_signing`: signed checkpoints of the audit chain, outside the database.
    pub audit_signing: Option<AuditSigning>,
}

/// Where the audit chain's head is signed and written (the key never sits in the store).
#[derive(Clone, Debug, PartialEq)]
pub struct AuditSigning {
    /// An Ed25519 PKCS#8 key (`medic audit keygen`).
    pub key: PathBuf,
    /// The JSON-lines file checkpoints are appended to.
    pub checkpoints: PathBuf,
    /// How often the head is signed (when it moved), besides at shutdown.
    pub every: std::time::Duration,
    /// Each new checkpoint is also POSTed here as JSON (retried like notifications).
    pub webhook: Option<SecretValue>,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            sqlite: PathBuf::from("medic.db"),
            audit_signing: None,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct ServerConfig {
    pub enabled: bool,
    pub listen: String,
    /// Largest request body accepted on the ingest routes (as sent, before decompression);
    /// larger is answered 413.
    pub max_body_bytes: usize,
    /// Largest body after gzip/snappy decompression (a compression bomb is answered 413).
    pub max_decompressed_bytes: usize,
    /// remote_write: the label that names a series' service (falls back to `job`).
    pub remote_write_service_label: String,
    /// Where the OTLP gRPC receiver (LogsService, MetricsService) listens when the server is
    /// enabled; its own port, as OTLP/gRPC is usually on 4317.
    pub otlp_grpc_listen: String,
    /// Alertmanager webhook: alert labels that name the service an alert is about, tried in
    /// order (`pod` values lose their ReplicaSet/pod hash suffixes).
    pub alert_service_labels: Vec<String>,
    /// Who may use the server.
    pub auth: AuthConfig,
    /// TLS on every listener (HTTP and OTLP gRPC); `None`: plain TCP.
    pub tls: Option<TlsConfig>,
}

/// `server.tls`: the server's certificate and key, and optionally the CA that signs the
/// client certificates it accepts. The files are read by the server at start-up and re-read
/// when they change.
#[derive(Clone, Debug, PartialEq)]
pub struct TlsConfig {
    /// PEM: the server's certificate, then any intermediates.
    pub cert: PathBuf,
    /// PEM: the certificate's private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// PEM: the CA certificates that client certificates must chain to.
    pub client_ca: Option<PathBuf>,
    pub client_auth: ClientAuth,
    /// Where `server.tls` is written, for errors about its files.
    pub location: Location,
}

/// Whether a TLS client must present a certificate (signed by `client_ca`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ClientAuth {
    /// No client certificates are asked for.
    #[default]
    None,
    /// Asked for; a client without one is let in, a client with a bad one is refused.
    Optional,
    /// A client without a valid certificate is refused at the handshake.
    Required,
}

impl ClientAuth {
    pub const ALL: [ClientAuth; 3] = [ClientAuth::None, ClientAuth::Optional, ClientAuth::Required];
    pub fn as_str(self) -> &'static str {
        match self {
            ClientAuth::None => "none",
            ClientAuth::Optional => "optional",
            ClientAuth::Required => "required",
        }
    }
    pub fn parse(s: &str) -> Option<ClientAuth> {
        ClientAuth::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

/// What a bearer token may do. `admin` may do everything; `approver` also what `viewer` may;
/// `ingest` only pushes signals.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    Ingest,
    Viewer,
    Approver,
    Admin,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Ingest, Role::Viewer, Role::Approver, Role::Admin];
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Ingest => "ingest",
            Role::Viewer => "viewer",
            Role::Approver => "approver",
            Role::Admin => "admin",
        }
    }
    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }
    /// Whether a token of this role may do what `needed` allows.
    pub fn grants(self, needed: Role) -> bool {
        match self {
            Role::Admin => true,
            Role::Approver => matches!(needed, Role::Approver | Role::Viewer),
            r => r == needed,
        }
    }
}

/// Where a token's secret comes from. Only its SHA-256 is ever kept in memory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TokenSecret {
    /// The token's SHA-256, hex (`medic token new` prints it).
    Sha256(String),
    /// A file holding the token (re-read when it changes).
    File(std::path::PathBuf),
    /// An environment variable holding the token.
    Env(String),
}

/// One bearer token: who it is, what it may do.
#[derive(Clone, Debug, PartialEq)]
pub struct TokenConfig {
    /// The identity recorded in the audit for what this token does.
    pub name: String,
    pub role: Role,
    pub secret: TokenSecret,
    /// Approver groups this token belongs to (a policy's `approval.approvers`).
    pub groups: Vec<String>,
    /// After this moment the token is refused (401, "expired").
    pub expires: Option<medic_core::Ts>,
    pub location: Location,
}

/// `server.auth`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AuthConfig {
    pub tokens: Vec<TokenConfig>,
    /// Anyone who can connect may do anything: only allowed when the server listens on
    /// loopback, and said at start-up.
    pub unauthenticated: bool,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            enabled: false,
            listen: "127.0.0.1:9400".into(),
            max_body_bytes: 8 * 1024 * 1024,
            max_decompressed_bytes: 64 * 1024 * 1024,
            remote_write_service_label: "service".into(),
            otlp_grpc_listen: "127.0.0.1:4317".into(),
            alert_service_labels: DEFAULT_SERVICE_LABELS
                .iter()
                .map(|s| s.to_string())
                .collect(),
            auth: AuthConfig::default(),
            tls: None,
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct EscalationConfig {
    pub targets: Vec<EscalationTarget>,
    /// Target used when a policy names none (and for incidents no policy matched).
    pub default_target: Option<String>,
    /// The base URL people reach medic's server at (`https://medic.example.com`): Slack
    /// messages link to the incident under it. `None`: no links.
    pub public_url: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct EscalationTarget {
    pub name: String,
    /// POST the escalation record as JSON here, when given as a plain URL (`kind: webhook`
    /// or `slack`); `endpoint` holds it in every form.
    pub webhook: Option<String>,
    /// Timeout of one delivery attempt.
    pub timeout: Duration,
    pub location: Location,
    /// What the receiver speaks.
    pub kind: NotifyKind,
    /// Where deliveries go: the webhook or Slack URL (a secret for Slack), or the PagerDuty
    /// Events API URL. `None`: print only.
    pub endpoint: Option<SecretValue>,
    /// `webhook`: the HMAC-SHA256 key that signs each body (`X-Medic-Signature`).
    pub secret: Option<SecretValue>,
    /// `pagerduty`: the integration's routing key (32 characters).
    pub routing_key: Option<SecretValue>,
    /// `pagerduty`: the severity of an escalation's event (an approval request is `warning`).
    pub severity: PagerDutySeverity,
    /// Attempts per delivery, the first included (connection errors, 5xx and 429 are retried).
    pub max_attempts: u32,
    /// A delivery gives up when its next attempt would start later than this after the first.
    pub max_delivery_time: Duration,
}

impl EscalationTarget {
    /// A `kind: webhook` target with the defaults a config file gets (`None`: print only).
    pub fn webhook(name: &str, url: Option<String>) -> Self {
        EscalationTarget {
            name: name.to_string(),
            endpoint: url.clone().map(SecretValue::Plain),
            webhook: url,
            timeout: Duration::from_secs(5),
            location: Location::default(),
            kind: NotifyKind::Webhook,
            secret: None,
            routing_key: None,
            severity: PagerDutySeverity::Error,
            max_attempts: 5,
            max_delivery_time: Duration::from_secs(60),
        }
    }
}

/// The protocol of an escalation target.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NotifyKind {
    /// JSON POST of the escalation record, optionally signed.
    Webhook,
    /// A Slack incoming webhook (Block Kit).
    Slack,
    /// PagerDuty Events API v2.
    PagerDuty,
}

impl NotifyKind {
    pub const ALL: [NotifyKind; 3] = [
        NotifyKind::Webhook,
        NotifyKind::Slack,
        NotifyKind::PagerDuty,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            NotifyKind::Webhook => "webhook",
            NotifyKind::Slack => "slack",
            NotifyKind::PagerDuty => "pagerduty",
        }
    }
}

/// PagerDuty's `payload.severity` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PagerDutySeverity {
    Critical,
    Error,
    Warning,
    Info,
}

impl PagerDutySeverity {
    pub const ALL: [PagerDutySeverity; 4] = [
        PagerDutySeverity::Critical,
        PagerDutySeverity::Error,
        PagerDutySeverity::Warning,
        PagerDutySeverity::Info,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            PagerDutySeverity::Critical => "critical",
            PagerDutySeverity::Error => "error",
            PagerDutySeverity::Warning => "warning",
            PagerDutySeverity::Info => "info",
        }
    }
}

/// A secret as configured: the value itself, `file:PATH` (read at each use, so a rotated
/// file is picked up) or `env:NAME`. Its `Debug` never shows a value.
#[derive(Clone, PartialEq, Eq)]
pub enum SecretValue {
    Plain(String),
    File(std::path::PathBuf),
    Env(String),
}

impl std::fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SecretValue::Plain(_) => f.write_str("Plain(<redacted>)"),
            SecretValue::File(p) => write!(f, "File({})", p.display()),
            SecretValue::Env(n) => write!(f, "Env({n})"),
        }
    }
}

impl SecretValue {
    /// The value now. The error names where it was looked for, never a value.
    pub fn resolve(&self) -> Result<String, String> {
        match self {
            SecretValue::Plain(v) => Ok(v.clone()),
            SecretValue::Env(n) => std::env::var(n)
                .map(|v| v.trim().to_string())
                .map_err(|_| format!("environment variable `{n}` is not set")),
            SecretValue::File(p) => std::fs::read_to_string(p)
                .map(|v| v.trim().to_string())
                .map_err(|e| format!("cannot read `{}`: {}", p.display(), e.kind())),
        }
    }
}

/// What a `kubernetes` source watches.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum KubeWatch {
    Pods,
    Events,
    Workloads,
    ConfigMaps,
    Nodes,
    /// Services and their EndpointSlices: who calls whom, from the pod templates.
    Topology,
}

impl KubeWatch {
    pub const ALL: [KubeWatch; 6] = [
        KubeWatch::Pods,
        KubeWatch::Events,
        KubeWatch::Workloads,
        KubeWatch::ConfigMaps,
        KubeWatch::Nodes,
        KubeWatch::Topology,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            KubeWatch::Pods => "pods",
            KubeWatch::Events => "events",
            KubeWatch::Workloads => "workloads",
            KubeWatch::ConfigMaps => "configmaps",
            KubeWatch::Nodes => "nodes",
            KubeWatch::Topology => "topology",
        }
    }
    pub fn parse(s: &str) -> Option<KubeWatch> {
        KubeWatch::ALL.into_iter().find(|w| w.as_str() == s)
    }
}

/// `type: kubernetes`.
#[derive(Clone, Debug, PartialEq)]
pub struct KubernetesSourceConfig {
    pub connection: KubeConnection,
    /// Namespaces to watch; empty: every namespace but `exclude_namespaces`.
    pub namespaces: Vec<String>,
    pub exclude_namespaces: Vec<String>,
    /// What to watch (all by default).
    pub watch: Vec<KubeWatch>,
    /// Scrape pods annotated `prometheus.io/scrape: "true"` (`prometheus.io/port`,
    /// `prometheus.io/path`) at this interval; `None`: no scraping.
    pub scrape_interval: Option<Duration>,
    /// Timeout of one scrape.
    pub scrape_timeout: Duration,
}

impl Default for KubernetesSourceConfig {
    fn default() -> Self {
        KubernetesSourceConfig {
            connection: KubeConnection::default(),
            namespaces: Vec::new(),
            exclude_namespaces: KUBE_SYSTEM_NAMESPACES
                .iter()
                .map(|s| s.to_string())
                .collect(),
            watch: KubeWatch::ALL.to_vec(),
            scrape_interval: Some(Duration::from_secs(5)),
            scrape_timeout: Duration::from_secs(2),
        }
    }
}
