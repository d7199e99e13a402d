//! The demo service's own configuration file, validated strictly at start-up: a typo'd key
//! or a wrong type is fatal, which is how a bad config change becomes a crash loop.

use serde_json::Value;
use std::path::Path;

/// Validated service configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct ServiceConfig {
    /// Requests processed concurrently by one replica.
    pub workers: u32,
    /// Requests allowed to wait for a worker; beyond that the replica answers 503.
    pub max_queue: u32,
    /// Mean local service time of a request, in milliseconds.
    pub service_ms: u64,
    /// Busy CPU work per request, in microseconds.
    pub cpu_work_us: u64,
    /// Timeout of one call to a dependency, in milliseconds.
    pub dependency_timeout_ms: u64,
    /// Requests slower than this are logged at WARN.
    pub slow_request_ms: u64,
}

impl ServiceConfig {
    /// Defaults for a service: the frontend has few workers (its capacity is the one the
    /// load surge exhausts), the others plenty.
    pub fn defaults_for(service: &str) -> Self {
        let (workers, service_ms) = match service {
            "frontend" => (2, 25),
            "catalog" => (8, 4),
            "cache" => (8, 1),
            "checkout" => (8, 6),
            "payment" => (8, 8),
            _ => (8, 5),
        };
        ServiceConfig {
            workers,
            max_queue: 32,
            service_ms,
            cpu_work_us: 200,
            dependency_timeout_ms: 400,
            slow_request_ms: 250,
        }
    }
}

/// A key the config accepts: name, minimum, maximum.
const KEYS: [(&str, u64, u64); 6] = [
    ("workers", 1, 64),
    ("max_queue", 0, 10_000),
    ("service_ms", 0, 10_000),
    ("cpu_work_us", 0, 100_000),
    ("dependency_timeout_ms", 1, 60_000),
    ("slow_request_ms", 1, 600_000),
];

/// Config files above this size are refused unread.
const MAX_CONFIG_BYTES: u64 = 1024 * 1024;

/// Reads and validates the config file.
pub fn load(path: &Path, service: &str) -> Result<ServiceConfig, String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot read the file: {e}"))?;
    if meta.len() > MAX_CONFIG_BYTES {
        return Err(format!(
            "the file is {} bytes, expected a JSON object under {MAX_CONFIG_BYTES} bytes",
            meta.len()
        ));
    }
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read the file: {e}"))?;
    parse(&text, service)
}

/// Validates a config document; every problem is reported, separated by "; ".
pub fn parse(text: &str, service: &str) -> Result<ServiceConfig, String> {
    let doc: Value = serde_json::from_str(text)
        .map_err(|e| format!("not valid JSON ({e}), expected a JSON object"))?;
    let Value::Object(map) = doc else {
        return Err(format!(
            "the document is {}, expected a JSON object",
            kind_of(&doc)
        ));
    };
    let mut cfg = ServiceConfig::defaults_for(service);
    let mut problems = Vec::new();
    for (key, value) in &map {
        let Some((name, min, max)) = KEYS.iter().find(|(k, _, _)| k == key) else {
            let known: Vec<&str> = KEYS.iter().map(|(k, _, _)| *k).collect();
            problems.push(format!(
                "unknown key {key:?}, expected one of: {}",
                known.join(", ")
            ));
            continue;
        };
        let Some(n) = value.as_u64() else {
            problems.push(format!(
                "{name:?} is {} {value}, expected an integer from {min} to {max}",
                kind_of(value)
            ));
            continue;
        };
        if n < *min || n > *max {
            problems.push(format!(
                "{name:?} is {n}, expected an integer from {min} to {max}"
            ));
            continue;
        }
        match *name {
            "workers" => cfg.workers = n as u32,
            "max_queue" => cfg.max_queue = n as u32,
            "service_ms" => cfg.service_ms = n,
            "cpu_work_us" => cfg.cpu_work_us = n,
            "dependency_timeout_ms" => cfg.dependency_timeout_ms = n,
            _ => cfg.slow_request_ms = n,
        }
    }
    if problems.is_empty() {
        Ok(cfg)
    } else {
        Err(problems.join("; "))
    }
}

/// The config version is the file's stem (`configs/checkout/c2.json` → `c2`).
pub fn version_of(path: &Path) -> String {
    path.file_stem()
        .and_then(|s| s.to_str())
        .filter(|s| !s.is_empty())
        .unwrap_or("unknown")
        .to_string()
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_i64() && n.as_i64().is_some_and(|i| i < 0) => "a negative number",
        Value::Number(n) if n.is_f64() => "a fractional number",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_object_means_defaults() {
        assert_eq!(
            parse("{}", "frontend").unwrap(),
            ServiceConfig::defaults_for("frontend")
        );
        assert_eq!(parse("{}", "frontend").unwrap().workers, 2);
        assert_eq!(parse("{}", "catalog").unwrap().workers, 8);
    }

    #[test]
    fn values_are_applied() {
        let c = parse(
            r#"{"workers":4,"max_queue":0,"service_ms":0,"cpu_work_us":10,"dependency_timeout_ms":250,"slow_request_ms":99}"#,
            "checkout",
        )
        .unwrap();
        assert_eq!(c.workers, 4);
        assert_eq!(c.max_queue, 0);
        assert_eq!(c.service_ms, 0);
        assert_eq!(c.cpu_work_us, 10);
        assert_eq!(c.dependency_timeout_ms, 250);
        assert_eq!(c.slow_request_ms, 99);
    }

    #[test]
    fn every_problem_is_reported() {
        let e = parse(
            r#"{"workres":4,"dependency_timeout_ms":"400ms","max_queue":-1,"workers":0,"service_ms":1.5}"#,
            "checkout",
        )
        .unwrap_err();
        assert!(e.contains("unknown key \"workres\""), "{e}");
        assert!(e.contains("\"dependency_timeout_ms\" is a string"), "{e}");
        assert!(e.contains("\"max_queue\" is a negative number"), "{e}");
        assert!(
            e.contains("\"workers\" is 0, expected an integer from 1 to 64"),
            "{e}"
        );
        assert!(e.contains("\"service_ms\" is a fractional number"), "{e}");
        assert_eq!(e.matches("; ").count(), 4, "{e}");
    }

    #[test]
    fn malformed_documents_are_rejected() {
        for bad in [
            "",
            "{",
            "[]",
            "null",
            "42",
            "\"x\"",
            "{\"workers\":}",
            "{} {}",
        ] {
            assert!(parse(bad, "cache").is_err(), "accepted {bad:?}");
        }
        let huge = format!("{{\"workers\":{}}}", "9".repeat(400));
        assert!(parse(&huge, "cache").is_err());
        assert!(parse(r#"{"workers":65}"#, "cache").is_err());
        assert!(parse(r#"{"workers":null}"#, "cache").is_err());
    }

    #[test]
    fn load_reads_files_and_refuses_missing_or_huge_ones() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c3.json");
        assert!(load(&p, "cache").unwrap_err().contains("cannot read"));
        std::fs::write(&p, r#"{"workers":3}"#).unwrap();
        assert_eq!(load(&p, "cache").unwrap().workers, 3);
        assert_eq!(version_of(&p), "c3");
        std::fs::write(&p, vec![b' '; (MAX_CONFIG_BYTES + 1) as usize]).unwrap();
        assert!(load(&p, "cache").unwrap_err().contains("bytes"));
    }
}
