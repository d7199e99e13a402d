//! The service's Prometheus metrics and their text exposition.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// Upper bounds (seconds) of the latency histogram's buckets.
pub const BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

#[derive(Debug, Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, u16), u64>>,
    dependency: Mutex<BTreeMap<(String, String), u64>>,
    buckets: [AtomicU64; BUCKETS.len()],
    duration_count: AtomicU64,
    duration_sum_us: AtomicU64,
    in_flight: AtomicI64,
}

/// Labels of `app_info`.
#[derive(Clone, Debug)]
pub struct AppInfo {
    pub service: String,
    pub release: String,
    pub config_version: String,
}

/// Process figures read from /proc at scrape time.
#[derive(Clone, Copy, Debug, Default)]
pub struct ProcessFigures {
    pub rss_bytes: u64,
    pub cpu_seconds: f64,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

impl Metrics {
    /// Records one finished request of an application route.
    pub fn observe(&self, route: &str, code: u16, seconds: f64) {
        *lock(&self.requests)
            .entry((route.to_string(), code))
            .or_default() += 1;
        for (i, le) in BUCKETS.iter().enumerate() {
            if seconds <= *le {
                self.buckets[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.duration_count.fetch_add(1, Ordering::Relaxed);
        let us = (seconds.max(0.0) * 1e6) as u64;
        self.duration_sum_us.fetch_add(us, Ordering::Relaxed);
    }

    pub fn dependency(&self, dependency: &str, outcome: &str) {
        *lock(&self.dependency)
            .entry((dependency.to_string(), outcome.to_string()))
            .or_default() += 1;
    }

    pub fn in_flight_add(&self, delta: i64) {
        self.in_flight.fetch_add(delta, Ordering::Relaxed);
    }

    pub fn requests_total(&self, route: &str, code: u16) -> u64 {
        lock(&self.requests)
            .get(&(route.to_string(), code))
            .copied()
            .unwrap_or(0)
    }

    /// The Prometheus text exposition (format 0.0.4).
    pub fn render(&self, info: &AppInfo, process: ProcessFigures) -> String {
        let mut out = String::with_capacity(4096);
        out.push_str("# HELP http_requests_total Requests served, by route and status code.\n");
        out.push_str("# TYPE http_requests_total counter\n");
        for ((route, code), n) in lock(&self.requests).iter() {
            let _ = writeln!(
                out,
                "http_requests_total{{route=\"{}\",code=\"{code}\"}} {n}",
                escape(route)
            );
        }
        out.push_str("# HELP http_request_duration_seconds Request latency including queueing.\n");
        out.push_str("# TYPE http_request_duration_seconds histogram\n");
        for (i, le) in BUCKETS.iter().enumerate() {
            let _ = writeln!(
                out,
                "http_request_duration_seconds_bucket{{le=\"{le}\"}} {}",
                self.buckets[i].load(Ordering::Relaxed)
            );
        }
        let count = self.duration_count.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "http_request_duration_seconds_bucket{{le=\"+Inf\"}} {count}"
        );
        let _ = writeln!(
            out,
            "http_request_duration_seconds_sum {}",
            self.duration_sum_us.load(Ordering::Relaxed) as f64 / 1e6
        );
        let _ = writeln!(out, "http_request_duration_seconds_count {count}");
        out.push_str("# HELP http_requests_in_flight Requests being served or queued.\n");
        out.push_str("# TYPE http_requests_in_flight gauge\n");
        let _ = writeln!(
            out,
            "http_requests_in_flight {}",
            self.in_flight.load(Ordering::Relaxed)
        );
        out.push_str("# HELP process_resident_memory_bytes Resident memory size in bytes.\n");
        out.push_str("# TYPE process_resident_memory_bytes gauge\n");
        let _ = writeln!(out, "process_resident_memory_bytes {}", process.rss_bytes);
        out.push_str("# HELP process_cpu_seconds_total Total user and system CPU time.\n");
        out.push_str("# TYPE process_cpu_seconds_total counter\n");
        let _ = writeln!(out, "process_cpu_seconds_total {}", process.cpu_seconds);
        out.push_str("# HELP app_info Release and configuration of this process.\n");
        out.push_str("# TYPE app_info gauge\n");
        let _ = writeln!(
            out,
            "app_info{{service=\"{}\",release=\"{}\",config_version=\"{}\"}} 1",
            escape(&info.service),
            escape(&info.release),
            escape(&info.config_version)
        );
        out.push_str("# HELP dependency_requests_total Calls to dependencies, by outcome.\n");
        out.push_str("# TYPE dependency_requests_total counter\n");
        for ((dep, outcome), n) in lock(&self.dependency).iter() {
            let _ = writeln!(
                out,
                "dependency_requests_total{{dependency=\"{}\",outcome=\"{}\"}} {n}",
                escape(dep),
                escape(outcome)
            );
        }
        out
    }
}

/// Label values escaped per the exposition format.
fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Resident memory and CPU time of this process, from /proc (zeros when unreadable).
pub fn read_process_figures() -> ProcessFigures {
    let rss_bytes = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| parse_vm_rss(&s))
        .unwrap_or(0);
    // schedstat gives on-CPU nanoseconds without assuming the clock-tick rate.
    let cpu_seconds = std::fs::read_to_string("/proc/self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .map(|ns| ns as f64 / 1e9)
        .unwrap_or(0.0);
    ProcessFigures {
        rss_bytes,
        cpu_seconds,
    }
}

/// `VmRSS:   1234 kB` → bytes.
pub fn parse_vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let mut parts = line["VmRSS:".len()..].split_whitespace();
    let n: u64 = parts.next()?.parse().ok()?;
    match parts.next() {
        Some("kB") | None => n.checked_mul(1024),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info() -> AppInfo {
        AppInfo {
            service: "payment".into(),
            release: "v2".into(),
            config_version: "c1".into(),
        }
    }

    #[test]
    fn exposition_contains_every_family_with_labels() {
        let m = Metrics::default();
        m.observe("/checkout", 200, 0.012);
        m.observe("/checkout", 500, 0.3);
        m.observe("/checkout", 200, 0.004);
        m.dependency("payment", "timeout");
        m.in_flight_add(3);
        m.in_flight_add(-1);
        let text = m.render(
            &info(),
            ProcessFigures {
                rss_bytes: 1234,
                cpu_seconds: 1.5,
            },
        );
        assert!(text.contains("http_requests_total{route=\"/checkout\",code=\"200\"} 2\n"));
        assert!(text.contains("http_requests_total{route=\"/checkout\",code=\"500\"} 1\n"));
        assert!(text.contains("http_request_duration_seconds_bucket{le=\"0.005\"} 1\n"));
        assert!(text.contains("http_request_duration_seconds_bucket{le=\"0.025\"} 2\n"));
        assert!(text.contains("http_request_duration_seconds_bucket{le=\"0.5\"} 3\n"));
        assert!(text.contains("http_request_duration_seconds_bucket{le=\"+Inf\"} 3\n"));
        assert!(text.contains("http_request_duration_seconds_count 3\n"));
        assert!(text.contains("http_request_duration_seconds_sum 0.316\n"));
        assert!(text.contains("http_requests_in_flight 2\n"));
        assert!(text.contains("process_resident_memory_bytes 1234\n"));
        assert!(text.contains("process_cpu_seconds_total 1.5\n"));
        assert!(
            text.contains("app_info{service=\"payment\",release=\"v2\",config_version=\"c1\"} 1\n")
        );
        assert!(
            text.contains(
                "dependency_requests_total{dependency=\"payment\",outcome=\"timeout\"} 1\n"
            )
        );
        assert_eq!(m.requests_total("/checkout", 200), 2);
        assert_eq!(m.requests_total("/", 200), 0);
    }

    #[test]
    fn label_values_are_escaped() {
        let m = Metrics::default();
        m.observe("/a\"b\\c\nd", 200, 0.0);
        let text = m.render(&info(), ProcessFigures::default());
        assert!(text.contains("route=\"/a\\\"b\\\\c\\nd\""), "{text}");
    }

    #[test]
    fn vm_rss_parsing() {
        assert_eq!(
            parse_vm_rss("Name:\tx\nVmRSS:\t  2048 kB\n"),
            Some(2048 * 1024)
        );
        assert_eq!(parse_vm_rss("VmRSS:"), None);
        assert_eq!(parse_vm_rss("VmRSS: lots kB"), None);
        assert_eq!(parse_vm_rss("VmRSS: 5 MB"), None);
        assert_eq!(parse_vm_rss(&format!("VmRSS: {} kB", u64::MAX)), None);
        assert_eq!(parse_vm_rss(""), None);
        assert!(read_process_figures().rss_bytes > 0);
    }
}
