//! The curated log pattern library: well-known failure phrases, as data.
//!
//! Each pattern is a list of hand-written, case-insensitive terms. All terms of all patterns
//! are matched in one pass over the line (Aho-Corasick), so the cost per line does not grow
//! with the library. A term whose first (last) character is a letter or digit must start
//! (end) at a word boundary, so `eperm` does not match inside `deepermost`. "Weak" terms are
//! words that also appear in healthy configuration or progress lines (`timeout=30s`,
//! `TLS handshake completed`): they count only on lines at warning level or above.

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use medic_core::Level;
use serde::Serialize;
use std::sync::OnceLock;

/// Longest part of a message scanned: failure phrases sit near the start, and a 1 MiB line
/// must not cost 1 MiB of scanning per pattern pass.
pub const MAX_SCAN_BYTES: usize = 16 * 1024;
/// Continuation lines (stack frames) looked at per record.
const MAX_SCAN_CONTINUATION: usize = 8;

/// How bad a match is on its own.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Warning,
    Error,
    Critical,
}

impl Severity {
    /// Finding score for a match of this severity.
    pub fn score(self) -> f64 {
        match self {
            Severity::Warning => 0.5,
            Severity::Error => 0.7,
            Severity::Critical => 0.85,
        }
    }
}

/// One entry of the library.
#[derive(Debug, Serialize)]
pub struct Pattern {
    /// Stable identifier, e.g. `connection_refused`.
    pub name: &'static str,
    /// The words put in finding summaries; diagnosis rules search summaries for them
    /// ("connection refused", "timed out").
    pub phrase: &'static str,
    pub severity: Severity,
    /// What a match usually means, for diagnosis and for people.
    pub hint: &'static str,
    /// Terms that match at any level.
    pub terms: &'static [&'static str],
    /// Terms that match only on warning-or-worse lines.
    pub weak_terms: &'static [&'static str],
}

/// The library. Order is the order of reports; names are stable (configs and rules use them).
pub static PATTERNS: &[Pattern] = &[
    Pattern {
        name: "connection_refused",
        phrase: "connection refused",
        severity: Severity::Error,
        hint: "a dependency is down or not listening on its port",
        terms: &[
            "connection refused",
            "connections refused",
            "connection was refused",
            "refused to connect",
            "refused connection",
            "actively refused",
            "econnrefused",
        ],
        weak_terms: &[],
    },
    Pattern {
        name: "timeout",
        phrase: "timed out",
        severity: Severity::Error,
        hint: "a dependency is slow or unreachable (network latency, overload, a hung peer)",
        terms: &[
            "timed out",
            "deadline exceeded",
            "etimedout",
            "i/o timeout",
            "timeout exceeded",
            "timeout expired",
            "gateway timeout",
            "timeoutexception",
        ],
        weak_terms: &["timeout", "timeouts"],
    },
    Pattern {
        name: "out_of_memory",
        phrase: "out of memory",
        severity: Severity::Critical,
        hint: "the process ran out of memory: a leak, a load spike, or a limit set too low",
        terms: &[
            "out of memory",
            "outofmemoryerror",
            "oomkilled",
            "oom-killer",
            "oom-kill",
            "oom_kill",
            "oom killer",
            "cannot allocate memory",
            "memory allocation failed",
            "java heap space",
            "memoryerror",
            "enomem",
        ],
        weak_terms: &["killed process", "failed to allocate"],
    },
    Pattern {
        name: "too_many_connections",
        phrase: "too many connections",
        severity: Severity::Error,
        hint: "a connection pool, server connection limit or file-descriptor limit is exhausted",
        terms: &[
            "too many connections",
            "too many clients",
            "too many open connections",
            "too many open files",
            "connection pool exhausted",
            "pool exhausted",
            "connection limit exceeded",
            "connection limit reached",
            "remaining connection slots are reserved",
        ],
        weak_terms: &["max_connections"],
    },
    Pattern {
        name: "no_space_left",
        phrase: "no space left on device",
        severity: Severity::Critical,
        hint: "a disk or volume is full (logs, temp files, a database)",
        terms: &[
            "no space left on device",
            "enospc",
            "disk quota exceeded",
            "not enough space on the disk",
            "filesystem is full",
            "file system is full",
            "disk is full",
        ],
        weak_terms: &["disk full"],
    },
    Pattern {
        name: "permission_denied",
        phrase: "permission denied",
        severity: Severity::Error,
        hint: "credentials, file modes or a security policy changed (often with a deploy or config change)",
        terms: &[
            "permission denied",
            "access denied",
            "operation not permitted",
            "eacces",
            "eperm",
        ],
        weak_terms: &["not authorized", "unauthorized"],
    },
    Pattern {
        name: "tls_handshake",
        phrase: "TLS handshake failure",
        severity: Severity::Error,
        hint: "TLS between client and server fails: certificates, CA bundle, SNI or protocol versions",
        terms: &[
            "handshake failure",
            "handshake failed",
            "handshake error",
            "sslhandshakeexception",
            "certificate verify failed",
            "signed by unknown authority",
            "unknown certificate authority",
            "bad certificate",
            "wrong version number",
            "remote error: tls",
            "tlsv1 alert",
            "ssl routines",
        ],
        weak_terms: &["tls handshake", "ssl handshake"],
    },
    Pattern {
        name: "dns_failure",
        phrase: "DNS resolution failure",
        severity: Severity::Error,
        hint: "name resolution fails: the DNS server, resolv.conf, or a removed or renamed service name",
        terms: &[
            "no such host",
            "name or service not known",
            "temporary failure in name resolution",
            "could not resolve host",
            "unknownhostexception",
            "nodename nor servname provided",
            "name resolution failed",
            "dns lookup failed",
            "getaddrinfo enotfound",
            "eai_again",
            "nxdomain",
            "servfail",
        ],
        weak_terms: &["failed to resolve", "could not resolve"],
    },
    Pattern {
        name: "crash",
        phrase: "panic/segfault/stack trace",
        severity: Severity::Critical,
        hint: "the program crashed: a bug, often in a new release or on unexpected input",
        terms: &[
            "panicked at",
            "panic:",
            "segmentation fault",
            "segfault",
            "sigsegv",
            "sigabrt",
            "core dumped",
            "traceback (most recent call last)",
            "unhandled exception",
            "exception in thread",
            "fatal error:",
            "stack overflow",
            "stack trace:",
            "stacktrace:",
        ],
        weak_terms: &["panic", "stack trace", "stacktrace"],
    },
    Pattern {
        name: "certificate_expired",
        phrase: "certificate expired",
        severity: Severity::Critical,
        hint: "a certificate expired: renew it and reload the service that serves or trusts it",
        terms: &[
            "certificate has expired",
            "certificate expired",
            "certificate is expired",
            "expired certificate",
            "cert has expired",
            "cert expired",
            "certificate_expired",
        ],
        weak_terms: &[],
    },
];

/// Which patterns matched one record, as a bit set over [`PATTERNS`].
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Matches(u64);

impl Matches {
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn contains(self, name: &str) -> bool {
        self.iter().any(|p| p.name == name)
    }

    /// The matched patterns, in library order.
    pub fn iter(self) -> impl Iterator<Item = &'static Pattern> {
        PATTERNS
            .iter()
            .enumerate()
            .filter(move |(i, _)| self.0 & (1u64 << i) != 0)
            .map(|(_, p)| p)
    }

    /// Indexes into [`PATTERNS`].
    pub fn indexes(self) -> impl Iterator<Item = usize> {
        (0..PATTERNS.len()).filter(move |i| self.0 & (1u64 << i) != 0)
    }
}

/// The pattern with this name.
pub fn by_name(name: &str) -> Option<&'static Pattern> {
    PATTERNS.iter().find(|p| p.name == name)
}

struct Matcher {
    ac: Option<AhoCorasick>,
    /// Per automaton pattern id: (library index, weak, needs boundary before, after).
    terms: Vec<(usize, bool, bool, bool)>,
}

fn matcher() -> &'static Matcher {
    static M: OnceLock<Matcher> = OnceLock::new();
    M.get_or_init(|| {
        let mut words = Vec::new();
        let mut terms = Vec::new();
        for (i, p) in PATTERNS.iter().enumerate() {
            let all = p.terms.iter().map(|t| (t, false));
            for (t, weak) in all.chain(p.weak_terms.iter().map(|t| (t, true))) {
                let b = t.as_bytes();
                let before = b.first().is_some_and(u8::is_ascii_alphanumeric);
                let after = b.last().is_some_and(u8::is_ascii_alphanumeric);
                words.push(*t);
                terms.push((i, weak, before, after));
            }
        }
        // Building cannot fail for this small fixed set; if it ever did, the library matches
        // nothing rather than taking the agent down.
        let ac = AhoCorasickBuilder::new()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::Standard)
            .build(&words)
            .ok();
        Matcher { ac, terms }
    })
}

fn scan(text: &str, weak_ok: bool, found: &mut u64) {
    let m = matcher();
    let Some(ac) = &m.ac else {
        return;
    };
    let bytes = text.as_bytes();
    let bytes = &bytes[..bytes.len().min(MAX_SCAN_BYTES)];
    for hit in ac.find_overlapping_iter(bytes) {
        let Some(&(idx, weak, before, after)) = m.terms.get(hit.pattern().as_usize()) else {
            continue;
        };
        if weak && !weak_ok {
            continue;
        }
        if before && hit.start() > 0 && bytes.get(hit.start() - 1).is_some_and(is_word_byte) {
            continue;
        }
        if after && bytes.get(hit.end()).is_some_and(is_word_byte) {
            continue;
        }
        *found |= 1u64 << idx;
    }
}

/// Letters, digits and `_`: a term inside an identifier (`dependency_timeout_ms`) is a
/// setting's name, not the event the term describes.
fn is_word_byte(b: &u8) -> bool {
    b.is_ascii_alphanumeric() || *b == b'_'
}

/// Whether a continuation line looks like a stack frame (Java/JS `at …`, Python `File "…"`,
/// Go `goroutine N`, gdb/Rust `#N` or `N: `).
fn is_frame(line: &str) -> bool {
    let t = line.trim_start();
    t.starts_with("at ")
        || t.starts_with("File \"")
        || t.starts_with("goroutine ")
        || (t.starts_with('#') && t[1..].starts_with(|c: char| c.is_ascii_digit()))
}

/// The patterns one record matches: its message, and its first continuation lines. A
/// warning-or-worse record whose continuation holds stack frames is a `crash` match too.
pub fn match_record(message: &str, continuation: &[String], level: Level) -> Matches {
    let weak_ok = level >= Level::Warn;
    let mut found = 0u64;
    scan(message, weak_ok, &mut found);
    let mut frames = 0;
    for c in continuation.iter().take(MAX_SCAN_CONTINUATION) {
        scan(c, weak_ok, &mut found);
        frames += usize::from(is_frame(c));
    }
    if weak_ok
        && frames >= 2
        && let Some(i) = PATTERNS.iter().position(|p| p.name == "crash")
    {
        found |= 1u64 << i;
    }
    Matches(found)
}

/// The patterns one single-line message matches.
pub fn match_line(message: &str, level: Level) -> Matches {
    match_record(message, &[], level)
}

#[cfg(test)]
mod tests {
    use super::*;
    use Level::*;

    fn names(m: Matches) -> Vec<&'static str> {
        m.iter().map(|p| p.name).collect()
    }

    fn hit(name: &str, level: Level, line: &str) {
        let m = match_line(line, level);
        assert!(
            m.contains(name),
            "{name} should match {line:?} at {level:?}: {:?}",
            names(m)
        );
    }

    fn miss(name: &str, level: Level, line: &str) {
        let m = match_line(line, level);
        assert!(
            !m.contains(name),
            "{name} should not match {line:?} at {level:?}"
        );
    }

    #[test]
    fn library_fits_the_bit_set_and_names_are_unique() {
        assert!(PATTERNS.len() <= 64);
        let mut seen = std::collections::BTreeSet::new();
        for p in PATTERNS {
            assert!(seen.insert(p.name), "duplicate {}", p.name);
            assert!(!p.terms.is_empty() && !p.hint.is_empty() && !p.phrase.is_empty());
            for t in p.terms.iter().chain(p.weak_terms) {
                assert_eq!(*t, t.to_ascii_lowercase(), "terms are written lower-case");
            }
            assert_eq!(by_name(p.name).map(|q| q.name), Some(p.name));
        }
        assert!(matcher().ac.is_some());
    }

    #[test]
    fn connection_refused() {
        let n = "connection_refused";
        hit(
            n,
            Error,
            "GET http://cache:4000 failed: Connection refused (os error 111)",
        );
        hit(n, Info, "pool stats: 0 connections refused");
        hit(n, Warn, "client refused to connect: upstream closed");
        hit(n, Error, "connect ECONNREFUSED 127.0.0.1:5432");
        miss(n, Error, "connection reset by peer");
        miss(n, Info, "connection accepted from 10.0.0.1");
        miss(n, Error, "the offer was refused by the customer");
    }

    #[test]
    fn timeout() {
        let n = "timeout";
        hit(n, Error, "call to payment timed out after 400ms");
        hit(
            n,
            Info,
            "rpc error: code = DeadlineExceeded desc = context deadline exceeded",
        );
        hit(n, Error, "dial tcp 10.0.0.7:443: i/o timeout");
        hit(n, Warn, "upstream timeout talking to ledger");
        hit(n, Error, "java.util.concurrent.TimeoutException");
        miss(n, Info, "timeout=30s configured");
        miss(n, Info, "setting read timeout to 5s");
        miss(n, Error, "timeoutz_total metric registered");
    }

    #[test]
    fn out_of_memory() {
        let n = "out_of_memory";
        hit(n, Error, "java.lang.OutOfMemoryError: Java heap space");
        hit(
            n,
            Info,
            "Memory cgroup out of memory: Killed process 4242 (api)",
        );
        hit(n, Error, "fork: Cannot allocate memory");
        hit(n, Warn, "container payment was OOMKilled");
        hit(
            n,
            Error,
            "runtime: out of memory: cannot allocate 1048576-byte block",
        );
        miss(n, Info, "memory usage 512 MiB of 1 GiB");
        miss(n, Info, "killed process 42 after shutdown request");
        miss(n, Error, "xenomem throughput");
    }

    #[test]
    fn too_many_connections() {
        let n = "too_many_connections";
        hit(n, Error, "FATAL: sorry, too many clients already");
        hit(n, Error, "ERROR 1040 (HY000): Too many connections");
        hit(n, Error, "HikariPool-1 - Connection pool exhausted");
        hit(
            n,
            Error,
            "FATAL: remaining connection slots are reserved for superuser",
        );
        hit(n, Error, "accept: too many open files");
        miss(n, Info, "max_connections = 100");
        miss(n, Info, "opened 3 connections to db");
    }

    #[test]
    fn no_space_left() {
        let n = "no_space_left";
        hit(n, Error, "write /var/lib/data/wal: no space left on device");
        hit(n, Error, "ENOSPC: no space left, write");
        hit(n, Error, "Disk quota exceeded while writing log");
        miss(n, Info, "disk usage 42%, 12 GiB free");
        miss(n, Info, "disk full check scheduled every 5m");
    }

    #[test]
    fn permission_denied() {
        let n = "permission_denied";
        hit(n, Error, "open /etc/app/key.pem: permission denied");
        hit(n, Error, "mkdir /data: operation not permitted");
        hit(n, Error, "Error: EACCES: permission denied, open '/x'");
        hit(n, Warn, "AccessDenied: Access Denied (Service: S3)");
        miss(n, Info, "permissions checked for 12 users");
        miss(n, Info, "request not authorized yet, redirecting to login");
        miss(n, Error, "deepermost layer failed");
    }

    #[test]
    fn tls_handshake() {
        let n = "tls_handshake";
        hit(
            n,
            Error,
            "http: TLS handshake error from 10.0.0.3:5123: EOF",
        );
        hit(n, Error, "x509: certificate signed by unknown authority");
        hit(
            n,
            Error,
            "javax.net.ssl.SSLHandshakeException: Received fatal alert: handshake_failure",
        );
        hit(
            n,
            Error,
            "SSL routines:ssl3_get_record:wrong version number",
        );
        hit(n, Info, "remote error: tls: bad certificate");
        miss(n, Info, "TLS handshake completed in 3ms");
        miss(n, Info, "listening on :443 with TLS");
    }

    #[test]
    fn dns_failure() {
        let n = "dns_failure";
        hit(
            n,
            Error,
            "dial tcp: lookup db.internal on 10.0.0.2:53: no such host",
        );
        hit(n, Error, "getaddrinfo ENOTFOUND api.example");
        hit(n, Error, "curl: (6) Could not resolve host: example.com");
        hit(n, Warn, "Temporary failure in name resolution");
        hit(n, Error, "java.net.UnknownHostException: ledger");
        miss(n, Info, "resolved db.internal to 10.0.0.7");
        miss(n, Info, "could not resolve conflict automatically, merging");
    }

    #[test]
    fn crash() {
        let n = "crash";
        hit(n, Error, "thread 'main' panicked at src/main.rs:12:5");
        hit(
            n,
            Error,
            "panic: runtime error: invalid memory address or nil pointer dereference",
        );
        hit(n, Error, "Segmentation fault (core dumped)");
        hit(n, Info, "worker exited on signal SIGSEGV");
        hit(n, Error, "Traceback (most recent call last):");
        hit(
            n,
            Error,
            "Exception in thread \"main\" java.lang.NullPointerException",
        );
        miss(n, Info, "don't worry, no panicking here");
        miss(n, Info, "collected stack traces for profiling");
        let frames = vec![
            "\tat com.shop.Pay.charge(Pay.java:12)".to_string(),
            "\tat com.shop.Main.main(Main.java:3)".to_string(),
        ];
        assert!(match_record("charge failed", &frames, Error).contains(n));
        assert!(!match_record("charge failed", &frames, Info).contains(n));
        assert!(!match_record("charge failed", &frames[..1], Error).contains(n));
    }

    #[test]
    fn certificate_expired() {
        let n = "certificate_expired";
        hit(
            n,
            Error,
            "x509: certificate has expired or is not yet valid",
        );
        hit(n, Error, "SSL: CERTIFICATE_EXPIRED");
        hit(n, Warn, "server certificate expired on 2026-01-01");
        miss(n, Info, "certificate expires in 30 days");
        miss(n, Info, "certificate renewed, valid until 2027-01-01");
    }

    #[test]
    fn hostile_input_is_cheap_and_safe() {
        let huge = "connection refused ".repeat(200_000);
        assert!(match_line(&huge, Error).contains("connection_refused"));
        let tail = format!("{}no space left on device", "x".repeat(2 * MAX_SCAN_BYTES));
        assert!(
            match_line(&tail, Error).is_empty(),
            "only the head is scanned"
        );
        assert!(match_line("", Fatal).is_empty());
        assert!(match_line("é\u{0}\u{202e}timed out", Info).contains("timeout"));
        let frames = vec!["#".to_string(), "".to_string()];
        assert!(match_record("x", &frames, Error).is_empty());
    }

    #[test]
    fn a_term_inside_an_identifier_is_not_a_hit() {
        // Regression: the demo's config error named `dependency_timeout_ms` and was reported
        // as a timeout.
        let line = r#"FATAL config error: "dependency_timeout_ms" is a string "400ms", expected an integer"#;
        assert!(
            !match_line(line, Level::Fatal).contains("timeout"),
            "{:?}",
            match_line(line, Level::Fatal)
        );
        assert!(match_line("upstream timeout after 400ms", Level::Error).contains("timeout"));
    }
}
