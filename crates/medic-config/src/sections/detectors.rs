//! `detectors:`: one sub-mapping per detector, each all-optional over its defaults.

use crate::node::Node;
use crate::reader::{Ctx, MapReader};
use crate::types::{
    BaselineConfig, DetectorsConfig, ErrorRateConfig, LatencyConfig, LogErrorsConfig,
    LogPatternsConfig, LogTemplatesConfig, MemoryGrowthConfig, MetricSeriesConfig, RestartsConfig,
    TargetDownConfig, TrafficConfig,
};

const UNIT: &str = "a number from 0 to 1";
const OPEN_UNIT: &str = "a number greater than 0 and less than 1";
const POSITIVE: &str = "a number greater than 0";
const NON_NEGATIVE: &str = "a number ≥ 0";

fn unit(v: f64) -> bool {
    (0.0..=1.0).contains(&v)
}
fn open_unit(v: f64) -> bool {
    v > 0.0 && v < 1.0
}
fn positive(v: f64) -> bool {
    v > 0.0
}
fn non_negative(v: f64) -> bool {
    v >= 0.0
}

pub(super) fn read(node: &Node, cx: &mut Ctx) -> DetectorsConfig {
    let mut c = DetectorsConfig::default();
    let mut m = MapReader::new(node, "`detectors`", cx);
    if let Some(n) = m.node("baseline") {
        c.baseline = baseline(n, m.cx);
    }
    if let Some(n) = m.node("error_rate") {
        c.error_rate = error_rate(n, m.cx);
    }
    if let Some(n) = m.node("latency") {
        c.latency = latency(n, m.cx);
    }
    if let Some(n) = m.node("memory_growth") {
        c.memory_growth = memory_growth(n, m.cx);
    }
    if let Some(n) = m.node("restarts") {
        c.restarts = restarts(n, m.cx);
    }
    if let Some(n) = m.node("log_errors") {
        c.log_errors = log_errors(n, m.cx);
    }
    if let Some(n) = m.node("traffic") {
        c.traffic = traffic(n, m.cx);
    }
    if let Some(n) = m.node("target_down") {
        c.target_down = target_down(n, m.cx);
    }
    if let Some(n) = m.node("log_templates") {
        c.log_templates = log_templates(n, m.cx);
    }
    if let Some(n) = m.node("log_patterns") {
        c.log_patterns = log_patterns(n, m.cx);
    }
    if let Some(n) = m.node("metric_series") {
        c.metric_series = metric_series(n, m.cx);
    }
    m.finish();
    c
}

fn baseline(node: &Node, cx: &mut Ctx) -> BaselineConfig {
    let d = BaselineConfig::default();
    let mut m = MapReader::new(node, "`detectors.baseline`", cx);
    let c = BaselineConfig {
        warmup_samples: m.u32_or("warmup_samples", d.warmup_samples, 1),
        alpha: m.f64_or("alpha", d.alpha, open_unit, OPEN_UNIT),
    };
    m.finish();
    c
}

fn error_rate(node: &Node, cx: &mut Ctx) -> ErrorRateConfig {
    let d = ErrorRateConfig::default();
    let mut m = MapReader::new(node, "`detectors.error_rate`", cx);
    let c = ErrorRateConfig {
        enabled: m.bool_or("enabled", d.enabled),
        requests_metric: m.str_or("requests_metric", &d.requests_metric),
        code_label: m.str_or("code_label", &d.code_label),
        error_code_prefix: m.str_or("error_code_prefix", &d.error_code_prefix),
        window: m.duration_or("window", d.window, false),
        min_ratio: m.f64_or("min_ratio", d.min_ratio, unit, UNIT),
        sigma: m.f64_or("sigma", d.sigma, positive, POSITIVE),
        min_requests: m.u64_or("min_requests", d.min_requests, 0, u64::MAX),
        sustain: m.u32_or("sustain", d.sustain, 1),
    };
    m.finish();
    c
}

fn latency(node: &Node, cx: &mut Ctx) -> LatencyConfig {
    let d = LatencyConfig::default();
    let mut m = MapReader::new(node, "`detectors.latency`", cx);
    let c = LatencyConfig {
        enabled: m.bool_or("enabled", d.enabled),
        histogram: m.str_or("histogram", &d.histogram),
        quantile: m.f64_or("quantile", d.quantile, open_unit, OPEN_UNIT),
        window: m.duration_or("window", d.window, false),
        ratio: m.f64_or("ratio", d.ratio, positive, POSITIVE),
        min_seconds: m.f64_or("min_seconds", d.min_seconds, non_negative, NON_NEGATIVE),
        sustain: m.u32_or("sustain", d.sustain, 1),
    };
    m.finish();
    c
}

fn memory_growth(node: &Node, cx: &mut Ctx) -> MemoryGrowthConfig {
    let d = MemoryGrowthConfig::default();
    let mut m = MapReader::new(node, "`detectors.memory_growth`", cx);
    let c = MemoryGrowthConfig {
        enabled: m.bool_or("enabled", d.enabled),
        window: m.duration_or("window", d.window, false),
        min_bytes_per_second: m.f64_or(
            "min_bytes_per_second",
            d.min_bytes_per_second,
            non_negative,
            NON_NEGATIVE,
        ),
        min_ratio: m.f64_or("min_ratio", d.min_ratio, positive, POSITIVE),
    };
    m.finish();
    c
}

fn restarts(node: &Node, cx: &mut Ctx) -> RestartsConfig {
    let d = RestartsConfig::default();
    let mut m = MapReader::new(node, "`detectors.restarts`", cx);
    let c = RestartsConfig {
        enabled: m.bool_or("enabled", d.enabled),
        crash_loop_count: m.u32_or("crash_loop_count", d.crash_loop_count, 1),
        crash_loop_window: m.duration_or("crash_loop_window", d.crash_loop_window, false),
        clear_after: m.duration_or("clear_after", d.clear_after, false),
    };
    m.finish();
    c
}

fn log_errors(node: &Node, cx: &mut Ctx) -> LogErrorsConfig {
    let d = LogErrorsConfig::default();
    let mut m = MapReader::new(node, "`detectors.log_errors`", cx);
    let c = LogErrorsConfig {
        enabled: m.bool_or("enabled", d.enabled),
        window: m.duration_or("window", d.window, false),
        burst_ratio: m.f64_or("burst_ratio", d.burst_ratio, positive, POSITIVE),
        min_count: m.u32_or("min_count", d.min_count, 1),
        new_messages: m.bool_or("new_messages", d.new_messages),
    };
    m.finish();
    c
}

fn traffic(node: &Node, cx: &mut Ctx) -> TrafficConfig {
    let d = TrafficConfig::default();
    let mut m = MapReader::new(node, "`detectors.traffic`", cx);
    let c = TrafficConfig {
        enabled: m.bool_or("enabled", d.enabled),
        window: m.duration_or("window", d.window, false),
        surge_ratio: m.f64_or("surge_ratio", d.surge_ratio, positive, POSITIVE),
        min_rps: m.f64_or("min_rps", d.min_rps, non_negative, NON_NEGATIVE),
    };
    m.finish();
    c
}

fn target_down(node: &Node, cx: &mut Ctx) -> TargetDownConfig {
    let d = TargetDownConfig::default();
    let mut m = MapReader::new(node, "`detectors.target_down`", cx);
    let c = TargetDownConfig {
        enabled: m.bool_or("enabled", d.enabled),
        after_failures: m.u32_or("after_failures", d.after_failures, 1),
    };
    m.finish();
    c
}

fn log_templates(node: &Node, cx: &mut Ctx) -> LogTemplatesConfig {
    let d = LogTemplatesConfig::default();
    let mut m = MapReader::new(node, "`detectors.log_templates`", cx);
    let c = LogTemplatesConfig {
        enabled: m.bool_or("enabled", d.enabled),
        window: m.duration_or("window", d.window, false),
        warmup: m.duration_or("warmup", d.warmup, true),
        warmup_lines: m.u64_or("warmup_lines", d.warmup_lines, 0, u64::MAX),
        spike_ratio: m.f64_or("spike_ratio", d.spike_ratio, positive, POSITIVE),
        min_count: m.u32_or("min_count", d.min_count, 1),
        vanish_windows: m.u32_or("vanish_windows", d.vanish_windows, 1),
        vanish_min_mean: m.f64_or("vanish_min_mean", d.vanish_min_mean, positive, POSITIVE),
        new_info_min_count: m.u32_or("new_info_min_count", d.new_info_min_count, 1),
        max_templates: m.usize_or("max_templates", d.max_templates, 1, 1 << 20),
    };
    m.finish();
    c
}

fn log_patterns(node: &Node, cx: &mut Ctx) -> LogPatternsConfig {
    let d = LogPatternsConfig::default();
    let mut m = MapReader::new(node, "`detectors.log_patterns`", cx);
    let c = LogPatternsConfig {
        enabled: m.bool_or("enabled", d.enabled),
        window: m.duration_or("window", d.window, false),
        min_count: m.u32_or("min_count", d.min_count, 1),
        disabled: m.str_list("disabled", false).unwrap_or(d.disabled),
    };
    m.finish();
    c
}

fn metric_series(node: &Node, cx: &mut Ctx) -> MetricSeriesConfig {
    let d = MetricSeriesConfig::default();
    let mut m = MapReader::new(node, "`detectors.metric_series`", cx);
    let c = MetricSeriesConfig {
        enabled: m.bool_or("enabled", d.enabled),
        metrics: m.str_list("metrics", false).unwrap_or(d.metrics),
        alarm_score: m.f64_or("alarm_score", d.alarm_score, open_unit, OPEN_UNIT),
        window: m.usize_or("window", d.window, 8, 4096),
        warmup: m.usize_or("warmup", d.warmup, 0, 1 << 20),
        short_window: m.usize_or("short_window", d.short_window, 1, 1024),
        long_alpha: m.f64_or("long_alpha", d.long_alpha, open_unit, OPEN_UNIT),
        refractory: m.usize_or("refractory", d.refractory, 0, 1 << 20),
        season_bins: m.usize_or("season_bins", d.season_bins, 1, 10_080),
        season_min_gain: m.f64_or("season_min_gain", d.season_min_gain, unit, UNIT),
        max_series: m.usize_or("max_series", d.max_series, 1, 100_000_000),
        stale_after: m.duration_or("stale_after", d.stale_after, false),
        forecast_points: m.usize_or("forecast_points", d.forecast_points, 4, 1024),
        horizon: m.duration_or("horizon", d.horizon, false),
        forecast: m
            .field("forecast", false, forecast_targets)
            .unwrap_or(d.forecast),
        min_correlated: m.usize_or("min_correlated", d.min_correlated, 1, 16),
        correlation_window: m.duration_or("correlation_window", d.correlation_window, false),
    };
    m.finish();
    c
}

/// `metric=NUMBER` or `metric=LIMIT_METRIC`, each side non-empty.
fn forecast_targets(n: &Node, label: &str, cx: &mut Ctx) -> Option<Vec<String>> {
    let list = crate::reader::to_str_list(n, label, cx)?;
    let bad: Vec<&String> = list
        .iter()
        .filter(|s| match s.split_once('=') {
            Some((a, b)) => a.trim().is_empty() || b.trim().is_empty(),
            None => true,
        })
        .collect();
    if let Some(b) = bad.first() {
        cx.error(
            n.pos,
            format!("invalid {label}: {b:?} is not `metric=NUMBER` or `metric=LIMIT_METRIC`"),
        );
        return None;
    }
    Some(list)
}
