//! Injected faults of one service process: a memory leak that survives crash restarts (via
//! a marker file in the instance's scratch directory), added latency, and a crash.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Default leak rate when the request does not name one.
pub const DEFAULT_LEAK_MIB_PER_S: f64 = 16.0;
/// Default added latency.
pub const DEFAULT_LATENCY_MS: u64 = 700;
/// The leak stops growing here, so that a demo without a memory limit cannot eat the machine.
pub const LEAK_CAP_BYTES: usize = 1024 * 1024 * 1024;
/// Marker file name in the instance directory.
pub const LEAK_MARKER: &str = "memory_leak.fault";

/// A request to `POST /admin/fault`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum FaultRequest {
    MemoryLeak {
        #[serde(default)]
        mib_per_s: Option<f64>,
    },
    Latency {
        #[serde(default)]
        ms: Option<u64>,
    },
    Crash {},
    Clear {},
}

/// Parses and range-checks a fault request body.
pub fn parse_fault(body: &[u8]) -> Result<FaultRequest, String> {
    let req: FaultRequest = serde_json::from_slice(body).map_err(|e| {
        format!("expected {{\"kind\":\"memory_leak\"|\"latency\"|\"crash\"|\"clear\", ...}}: {e}")
    })?;
    match &req {
        FaultRequest::MemoryLeak { mib_per_s: Some(r) } if !(*r > 0.0 && *r <= 1024.0) => Err(
            format!("mib_per_s is {r}, expected a number above 0 and at most 1024"),
        ),
        FaultRequest::Latency { ms: Some(ms) } if *ms > 60_000 => {
            Err(format!("ms is {ms}, expected at most 60000"))
        }
        _ => Ok(req),
    }
}

/// What `GET /admin/faults` reports.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FaultStatus {
    pub memory_leak_mib_per_s: Option<f64>,
    pub leaked_bytes: u64,
    pub latency_ms: Option<u64>,
}

#[derive(Debug, Default)]
struct Inner {
    leak_rate: Option<f64>,
    leak_task: Option<tokio::task::AbortHandle>,
    latency_ms: Option<u64>,
}

/// The process's active faults.
#[derive(Debug)]
pub struct Faults {
    inner: Mutex<Inner>,
    leaked: Arc<Mutex<Vec<Vec<u8>>>>,
    marker: PathBuf,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

#[derive(Serialize, Deserialize)]
struct Marker {
    mib_per_s: f64,
}

impl Faults {
    pub fn new(instance_dir: &Path) -> Self {
        Faults {
            inner: Mutex::new(Inner::default()),
            leaked: Arc::new(Mutex::new(Vec::new())),
            marker: instance_dir.join(LEAK_MARKER),
        }
    }

    /// The leak rate recorded by a previous process of this instance, if any: a crash
    /// restart keeps the scratch directory, so the "bug" comes back with the process.
    pub fn persisted_leak(&self) -> Option<f64> {
        let text = std::fs::read_to_string(&self.marker).ok()?;
        let m: Marker = serde_json::from_str(&text).ok()?;
        (m.mib_per_s > 0.0 && m.mib_per_s <= 1024.0).then_some(m.mib_per_s)
    }

    /// Starts leaking `mib_per_s` (must be called inside a tokio runtime).
    pub fn start_leak(&self, mib_per_s: f64) -> std::io::Result<()> {
        let marker = serde_json::to_string(&Marker { mib_per_s }).unwrap_or_default();
        std::fs::write(&self.marker, marker)?;
        let mut inner = lock(&self.inner);
        if let Some(old) = inner.leak_task.take() {
            old.abort();
        }
        let leaked = Arc::clone(&self.leaked);
        let task = tokio::spawn(async move {
            let tick = Duration::from_millis(100);
            let chunk = ((mib_per_s * 1024.0 * 1024.0) * tick.as_secs_f64()) as usize;
            let mut interval = tokio::time::interval(tick);
            loop {
                interval.tick().await;
                let mut held = lock(&leaked);
                let total: usize = held.iter().map(Vec::len).sum();
                if total.saturating_add(chunk) > LEAK_CAP_BYTES {
                    continue;
                }
                // A non-zero fill writes every page, so the memory is resident, not just
                // reserved (a zeroed allocation may stay untouched copy-on-write pages).
                held.push(vec![0xA5u8; chunk]);
            }
        });
        inner.leak_rate = Some(mib_per_s);
        inner.leak_task = Some(task.abort_handle());
        Ok(())
    }

    pub fn set_latency(&self, ms: u64) {
        lock(&self.inner).latency_ms = Some(ms);
    }

    pub fn latency(&self) -> Option<Duration> {
        lock(&self.inner).latency_ms.map(Duration::from_millis)
    }

    /// Removes every fault, frees the leaked memory and the marker.
    pub fn clear(&self) {
        let mut inner = lock(&self.inner);
        if let Some(t) = inner.leak_task.take() {
            t.abort();
        }
        inner.leak_rate = None;
        inner.latency_ms = None;
        lock(&self.leaked).clear();
        let _ = std::fs::remove_file(&self.marker);
    }

    pub fn status(&self) -> FaultStatus {
        let inner = lock(&self.inner);
        FaultStatus {
            memory_leak_mib_per_s: inner.leak_rate,
            leaked_bytes: lock(&self.leaked).iter().map(|v| v.len() as u64).sum(),
            latency_ms: inner.latency_ms,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_kind() {
        assert_eq!(
            parse_fault(br#"{"kind":"memory_leak","mib_per_s":32}"#).unwrap(),
            FaultRequest::MemoryLeak {
                mib_per_s: Some(32.0)
            }
        );
        assert_eq!(
            parse_fault(br#"{"kind":"memory_leak"}"#).unwrap(),
            FaultRequest::MemoryLeak { mib_per_s: None }
        );
        assert_eq!(
            parse_fault(br#"{"kind":"latency","ms":50}"#).unwrap(),
            FaultRequest::Latency { ms: Some(50) }
        );
        assert_eq!(
            parse_fault(br#"{"kind":"crash"}"#).unwrap(),
            FaultRequest::Crash {}
        );
        assert_eq!(
            parse_fault(br#"{"kind":"clear"}"#).unwrap(),
            FaultRequest::Clear {}
        );
    }

    #[test]
    fn rejects_bad_requests() {
        for bad in [
            &b""[..],
            b"{",
            b"{}",
            b"[]",
            br#"{"kind":"explode"}"#,
            br#"{"kind":"latency","ms":-5}"#,
            br#"{"kind":"latency","ms":"slow"}"#,
            br#"{"kind":"latency","ms":600000}"#,
            br#"{"kind":"memory_leak","mib_per_s":0}"#,
            br#"{"kind":"memory_leak","mib_per_s":1e9}"#,
            br#"{"kind":"crash","extra":true}"#,
            b"\xff\xfe",
        ] {
            assert!(
                parse_fault(bad).is_err(),
                "accepted {:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[tokio::test]
    async fn leak_grows_persists_a_marker_and_clears() {
        let dir = tempfile::tempdir().unwrap();
        let f = Faults::new(dir.path());
        assert_eq!(f.persisted_leak(), None);
        f.start_leak(40.0).unwrap();
        tokio::time::sleep(Duration::from_millis(350)).await;
        let st = f.status();
        assert_eq!(st.memory_leak_mib_per_s, Some(40.0));
        assert!(
            st.leaked_bytes >= 8 * 1024 * 1024,
            "leaked {}",
            st.leaked_bytes
        );
        // A new process of the same instance finds the marker.
        assert_eq!(Faults::new(dir.path()).persisted_leak(), Some(40.0));
        f.set_latency(700);
        assert_eq!(f.latency(), Some(Duration::from_millis(700)));
        f.clear();
        assert_eq!(f.status(), FaultStatus::default());
        assert_eq!(Faults::new(dir.path()).persisted_leak(), None);
    }

    #[test]
    fn corrupt_marker_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(LEAK_MARKER), "garbage").unwrap();
        assert_eq!(Faults::new(dir.path()).persisted_leak(), None);
        std::fs::write(dir.path().join(LEAK_MARKER), r#"{"mib_per_s":-3}"#).unwrap();
        assert_eq!(Faults::new(dir.path()).persisted_leak(), None);
    }
}
