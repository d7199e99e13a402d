//! Service discovery through `DIR/endpoints/<service>.json`, re-read at most every 500 ms,
//! with round-robin over the addresses (what callers of a Kubernetes Service get).

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// How long a read of the endpoints file is trusted.
pub const REFRESH: Duration = Duration::from_millis(500);

/// Files larger than this are not endpoint lists: refuse them rather than read them.
const MAX_FILE_BYTES: u64 = 64 * 1024;

/// The content of `DIR/endpoints/<service>.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointsFile {
    pub service: String,
    pub addresses: Vec<String>,
}

/// Path of a service's endpoints file in an estate directory.
pub fn endpoints_path(estate_dir: &Path, service: &str) -> PathBuf {
    estate_dir.join("endpoints").join(format!("{service}.json"))
}

/// Reads and checks an endpoints file; the error says what was wrong.
pub fn read_endpoints(path: &Path, service: &str) -> Result<Vec<String>, String> {
    let meta =
        std::fs::metadata(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if meta.len() > MAX_FILE_BYTES {
        return Err(format!(
            "{} is {} bytes, expected an endpoints list under {MAX_FILE_BYTES} bytes",
            path.display(),
            meta.len()
        ));
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    parse_endpoints(&text, service).map_err(|e| format!("{}: {e}", path.display()))
}

/// Parses an endpoints document for `service`.
pub fn parse_endpoints(text: &str, service: &str) -> Result<Vec<String>, String> {
    let file: EndpointsFile = serde_json::from_str(text).map_err(|e| {
        format!("expected {{\"service\":\"{service}\",\"addresses\":[\"127.0.0.1:PORT\"]}}: {e}")
    })?;
    if file.service != service {
        return Err(format!(
            "lists service {:?}, expected {service:?}",
            file.service
        ));
    }
    for a in &file.addresses {
        if a.parse::<std::net::SocketAddr>().is_err() {
            return Err(format!("address {a:?} is not host:port"));
        }
    }
    Ok(file.addresses)
}

/// The last read of an endpoints file: when, and what it gave.
type CachedRead = Option<(Instant, Result<Vec<String>, String>)>;

/// Where a service's addresses come from.
#[derive(Debug)]
enum Lookup {
    /// The estate's endpoints file, re-read at most every [`REFRESH`].
    File(PathBuf),
    /// One fixed address: a Kubernetes Service's ClusterIP, whose proxy does the balancing.
    Fixed(Vec<String>),
}

/// Cached, round-robin view of one service's endpoints.
#[derive(Debug)]
pub struct Endpoints {
    service: String,
    lookup: Lookup,
    cache: Mutex<CachedRead>,
    next: AtomicUsize,
}

impl Endpoints {
    pub fn new(estate_dir: &Path, service: &str) -> Self {
        Endpoints {
            service: service.to_string(),
            lookup: Lookup::File(endpoints_path(estate_dir, service)),
            cache: Mutex::new(None),
            next: AtomicUsize::new(0),
        }
    }

    /// A service reached at a fixed `host:port` (checked here, so a typo fails at start).
    pub fn fixed(service: &str, addr: &str) -> Result<Self, String> {
        if addr.parse::<std::net::SocketAddr>().is_err() {
            return Err(format!(
                "address {addr:?} of {service} is not host:port (expected e.g. 127.100.0.12:80)"
            ));
        }
        Ok(Endpoints {
            service: service.to_string(),
            lookup: Lookup::Fixed(vec![addr.to_string()]),
            cache: Mutex::new(None),
            next: AtomicUsize::new(0),
        })
    }

    pub fn service(&self) -> &str {
        &self.service
    }

    /// The current address list (re-read when older than [`REFRESH`]).
    pub fn addresses(&self) -> Result<Vec<String>, String> {
        let path = match &self.lookup {
            Lookup::Fixed(addrs) => return Ok(addrs.clone()),
            Lookup::File(p) => p,
        };
        let mut guard = match self.cache.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        let fresh = matches!(&*guard, Some((at, _)) if at.elapsed() < REFRESH);
        if !fresh {
            *guard = Some((Instant::now(), read_endpoints(path, &self.service)));
        }
        match &*guard {
            Some((_, r)) => r.clone(),
            None => Err(format!("no endpoints for {}", self.service)),
        }
    }

    /// The addresses to try for one call, in order: the round-robin pick, then (when there
    /// is another replica) the next one, for the single retry on a refused connection.
    pub fn pick(&self) -> Result<Vec<String>, String> {
        let addrs = self.addresses()?;
        Ok(round_robin(
            &addrs,
            self.next.fetch_add(1, Ordering::Relaxed),
        ))
    }
}

/// The address at `counter` and, if different, the one after it.
pub fn round_robin(addrs: &[String], counter: usize) -> Vec<String> {
    if addrs.is_empty() {
        return Vec::new();
    }
    let first = counter % addrs.len();
    let mut out = vec![addrs[first].clone()];
    if addrs.len() > 1 {
        out.push(addrs[(first + 1) % addrs.len()].clone());
    }
    out
}

/// Writes `path` atomically (temporary file + rename), so readers never see half a file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_robin_cycles_and_offers_the_next_for_retry() {
        let a: Vec<String> = vec![
            "127.0.0.1:1".into(),
            "127.0.0.1:2".into(),
            "127.0.0.1:3".into(),
        ];
        assert_eq!(round_robin(&a, 0), vec!["127.0.0.1:1", "127.0.0.1:2"]);
        assert_eq!(round_robin(&a, 2), vec!["127.0.0.1:3", "127.0.0.1:1"]);
        assert_eq!(round_robin(&a, 4), vec!["127.0.0.1:2", "127.0.0.1:3"]);
        assert_eq!(round_robin(&a[..1], 5), vec!["127.0.0.1:1"]);
        assert!(round_robin(&[], 5).is_empty());
        assert_eq!(round_robin(&a, usize::MAX).len(), 2);
    }

    #[test]
    fn parse_accepts_the_contract_shape() {
        let ok = r#"{"service":"checkout","addresses":["127.0.0.1:4000","127.0.0.1:4001"]}"#;
        assert_eq!(parse_endpoints(ok, "checkout").unwrap().len(), 2);
    }

    #[test]
    fn parse_rejects_bad_documents() {
        for (bad, svc) in [
            ("", "a"),
            ("{", "a"),
            ("[]", "a"),
            (r#"{"service":"b","addresses":[]}"#, "a"),
            (r#"{"service":"a","addresses":["nonsense"]}"#, "a"),
            (r#"{"service":"a","addresses":[1]}"#, "a"),
            (r#"{"service":"a","addresses":[],"extra":1}"#, "a"),
            (r#"{"service":"a","addresses":["127.0.0.1:99999"]}"#, "a"),
        ] {
            assert!(parse_endpoints(bad, svc).is_err(), "accepted {bad:?}");
        }
    }

    #[test]
    fn cache_rereads_after_refresh_and_round_robins() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("endpoints")).unwrap();
        let path = endpoints_path(dir.path(), "cache");
        let eps = Endpoints::new(dir.path(), "cache");
        assert!(eps.pick().is_err(), "missing file must be an error");
        // The error is cached too, for REFRESH: write and wait it out.
        write_atomic(
            &path,
            br#"{"service":"cache","addresses":["127.0.0.1:1","127.0.0.1:2"]}"#,
        )
        .unwrap();
        std::thread::sleep(REFRESH + Duration::from_millis(20));
        let first = eps.pick().unwrap();
        let second = eps.pick().unwrap();
        assert_ne!(first[0], second[0]);
        write_atomic(&path, br#"{"service":"cache","addresses":["127.0.0.1:3"]}"#).unwrap();
        // Still the cached list right after the write.
        assert_eq!(eps.addresses().unwrap().len(), 2);
        std::thread::sleep(REFRESH + Duration::from_millis(20));
        assert_eq!(eps.pick().unwrap(), vec!["127.0.0.1:3"]);
    }

    #[test]
    fn huge_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.json");
        std::fs::write(&p, vec![b' '; (MAX_FILE_BYTES + 1) as usize]).unwrap();
        assert!(read_endpoints(&p, "x").unwrap_err().contains("bytes"));
    }
}
