//! Container log files as the kubelet lays them out: the CRI format (containerd, CRI-O)
//! and Docker's json-file format, partial lines joined, and namespace/pod/container read
//! from the path.

use crate::logparse::parse_timestamp;
use crate::stats::{Counter, SourceStats};
use crate::tail::MAX_LINE_BYTES;
use medic_core::Ts;
use std::path::Path;

/// One line of a container log, unwrapped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerLine {
    pub time: Option<Ts>,
    /// `stdout` or `stderr`.
    pub stream: String,
    /// More of this line follows in the next entry of the same stream.
    pub partial: bool,
    pub message: String,
}

/// `2024-01-01T00:00:00.000000000Z stdout F message` (tag `P` = partial, `F` = full; tags
/// may carry more flags after a `:`).
pub fn decode_cri(line: &str) -> Option<ContainerLine> {
    let mut parts = line.splitn(4, ' ');
    let time = parts.next()?;
    let stream = parts.next()?;
    let tag = parts.next()?;
    let message = parts.next().unwrap_or("");
    if !matches!(stream, "stdout" | "stderr") {
        return None;
    }
    let partial = match tag.split(':').next() {
        Some("P") => true,
        Some("F") => false,
        _ => return None,
    };
    let time = Some(parse_timestamp(time)?);
    Some(ContainerLine {
        time,
        stream: stream.to_string(),
        partial,
        message: message.to_string(),
    })
}

/// `{"log":"message\n","stream":"stdout","time":"…"}`: a `log` without its trailing
/// newline is a partial line (Docker splits lines at 16 KiB).
pub fn decode_docker(line: &str) -> Option<ContainerLine> {
    #[derive(serde::Deserialize)]
    struct Entry {
        log: String,
        #[serde(default)]
        stream: Option<String>,
        #[serde(default)]
        time: Option<String>,
    }
    let e: Entry = serde_json::from_str(line.trim()).ok()?;
    let (message, partial) = match e.log.strip_suffix('\n') {
        Some(m) => (m.strip_suffix('\r').unwrap_or(m).to_string(), false),
        None => (e.log, true),
    };
    Some(ContainerLine {
        time: e.time.as_deref().and_then(parse_timestamp),
        stream: e.stream.unwrap_or_else(|| "stdout".into()),
        partial,
        message,
    })
}

/// Either envelope, decided by the line's first byte.
pub fn decode_any(line: &str) -> Option<ContainerLine> {
    if line.trim_start().starts_with('{') {
        decode_docker(line)
    } else {
        decode_cri(line)
    }
}

/// Joins partial entries of one file, per stream, into whole lines; bounded by
/// [`MAX_LINE_BYTES`] (the excess is dropped and counted as `partial_line_overflow`).
#[derive(Debug, Default)]
pub struct PartialJoiner {
    open: Vec<(String, String, bool)>,
}

impl PartialJoiner {
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether a partial line is waiting for its end.
    pub fn has_pending(&self) -> bool {
        !self.open.is_empty()
    }

    /// Adds an entry; returns the whole line when this entry ends it.
    pub fn push(&mut self, line: ContainerLine, stats: &SourceStats) -> Option<ContainerLine> {
        let idx = self.open.iter().position(|(s, _, _)| *s == line.stream);
        let Some(i) = idx else {
            if !line.partial {
                return Some(line);
            }
            let mut msg = line.message;
            let over = cut(&mut msg, MAX_LINE_BYTES);
            if over {
                stats.incr(Counter::PartialLineOverflow);
            }
            self.open.push((line.stream, msg, over));
            return None;
        };
        let (_, buf, overflowed) = &mut self.open[i];
        if !*overflowed {
            buf.push_str(&line.message);
            if cut(buf, MAX_LINE_BYTES) {
                *overflowed = true;
                stats.incr(Counter::PartialLineOverflow);
            }
        }
        if line.partial {
            return None;
        }
        let (stream, message, _) = self.open.swap_remove(i);
        Some(ContainerLine {
            time: line.time,
            stream,
            partial: false,
            message,
        })
    }

    /// Partial lines that will not be continued (the file went away), as they are.
    pub fn flush(&mut self) -> Vec<ContainerLine> {
        self.open
            .drain(..)
            .map(|(stream, message, _)| ContainerLine {
                time: None,
                stream,
                partial: false,
                message,
            })
            .collect()
    }
}

/// Cuts `s` to at most `max` bytes on a character boundary; true when it cut.
fn cut(s: &mut String, max: usize) -> bool {
    if s.len() <= max {
        return false;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.truncate(end);
    true
}

/// Namespace, pod and container of a kubelet log path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodRef {
    pub namespace: String,
    pub pod: String,
    pub container: String,
}

impl PodRef {
    /// `/var/log/pods/<ns>_<pod>_<uid>/<container>/<n>.log` or
    /// `/var/log/containers/<pod>_<ns>_<container>-<id>.log`.
    pub fn from_path(path: &Path) -> Option<PodRef> {
        let file = path.file_name()?.to_str()?;
        let parent = path.parent()?;
        let grand = parent.parent()?;
        let parent_name = parent.file_name()?.to_str()?;
        let grand_name = grand.file_name().and_then(|n| n.to_str());
        // The pods layout: the directory two up is `<ns>_<pod>_<uid>`.
        if let Some(g) = grand_name {
            let parts: Vec<&str> = g.split('_').collect();
            let stem = file.split('.').next().unwrap_or("");
            if parts.len() == 3
                && parts.iter().all(|p| !p.is_empty())
                && !stem.is_empty()
                && stem.bytes().all(|b| b.is_ascii_digit())
            {
                return Some(PodRef {
                    namespace: parts[0].into(),
                    pod: parts[1].into(),
                    container: parent_name.into(),
                });
            }
        }
        // The containers layout: symlinks named `<pod>_<ns>_<container>-<id>.log`.
        let stem = file.strip_suffix(".log")?;
        let parts: Vec<&str> = stem.split('_').collect();
        if parts.len() != 3 || parts.iter().any(|p| p.is_empty()) {
            return None;
        }
        let container = match parts[2].rsplit_once('-') {
            Some((c, id))
                if !c.is_empty() && id.len() >= 12 && id.bytes().all(|b| b.is_ascii_hexdigit()) =>
            {
                c
            }
            _ => parts[2],
        };
        Some(PodRef {
            namespace: parts[1].into(),
            pod: parts[0].into(),
            container: container.into(),
        })
    }

    /// The workload a pod belongs to: its name less the pod suffix and ReplicaSet hash
    /// (`checkout-7d9f8c6b5-x2k4q` → `checkout`), or a StatefulSet ordinal (`db-0` → `db`).
    pub fn workload(&self) -> String {
        workload_name(&self.pod)
    }
}

/// Characters Kubernetes uses for generated name suffixes (no vowels, no look-alikes).
fn is_k8s_suffix(s: &str, lens: std::ops::RangeInclusive<usize>) -> bool {
    lens.contains(&s.len())
        && s.bytes()
            .all(|b| b"bcdfghjklmnpqrstvwxz2456789".contains(&b))
}

pub fn workload_name(pod: &str) -> String {
    let mut parts: Vec<&str> = pod.split('-').collect();
    if parts.len() >= 2 {
        let last = parts[parts.len() - 1];
        if !last.is_empty() && last.bytes().all(|b| b.is_ascii_digit()) {
            parts.pop();
        } else if is_k8s_suffix(last, 5..=5) {
            parts.pop();
            if parts.len() >= 2 && is_k8s_suffix(parts[parts.len() - 1], 6..=10) {
                parts.pop();
            }
        }
    }
    parts.join("-")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cri_lines() {
        let l = decode_cri("2024-01-01T00:00:00.000000000Z stdout F hello world").unwrap();
        assert_eq!(l.time, Some(Ts(1_704_067_200_000)));
        assert_eq!(
            (l.stream.as_str(), l.partial, l.message.as_str()),
            ("stdout", false, "hello world")
        );
        let l = decode_cri("2024-01-01T00:00:00.5+01:00 stderr P part").unwrap();
        assert!(l.partial);
        assert_eq!(
            decode_cri("2024-01-01T00:00:00Z stdout F ")
                .unwrap()
                .message,
            ""
        );
        for bad in [
            "",
            "garbage",
            "2024-01-01T00:00:00Z stdin F x",
            "2024-01-01T00:00:00Z stdout X x",
            "notatime stdout F x",
        ] {
            assert_eq!(decode_cri(bad), None, "{bad}");
        }
    }

    #[test]
    fn docker_lines() {
        let l =
            decode_docker(r#"{"log":"hello\n","stream":"stderr","time":"2024-01-01T00:00:00.1Z"}"#)
                .unwrap();
        assert_eq!(
            (l.stream.as_str(), l.partial, l.message.as_str()),
            ("stderr", false, "hello")
        );
        assert_eq!(l.time, Some(Ts(1_704_067_200_100)));
        assert!(
            decode_docker(r#"{"log":"part","stream":"stdout"}"#)
                .unwrap()
                .partial
        );
        assert_eq!(decode_docker(r#"{"msg":"x"}"#), None);
        assert_eq!(decode_docker("{"), None);
    }

    #[test]
    fn partials_join_per_stream_and_are_bounded() {
        let stats = SourceStats::new();
        let mut j = PartialJoiner::new();
        let e = |stream: &str, partial, m: &str| ContainerLine {
            time: None,
            stream: stream.into(),
            partial,
            message: m.into(),
        };
        assert_eq!(j.push(e("stdout", true, "ab"), &stats), None);
        assert_eq!(
            j.push(e("stderr", false, "err"), &stats).unwrap().message,
            "err"
        );
        assert_eq!(j.push(e("stdout", true, "cd"), &stats), None);
        assert_eq!(
            j.push(e("stdout", false, "ef"), &stats).unwrap().message,
            "abcdef"
        );
        assert!(!j.has_pending());
        let big = "x".repeat(MAX_LINE_BYTES / 2 + 10);
        for _ in 0..5 {
            assert_eq!(j.push(e("stdout", true, &big), &stats), None);
        }
        let whole = j.push(e("stdout", false, "end"), &stats).unwrap();
        assert_eq!(whole.message.len(), MAX_LINE_BYTES);
        assert_eq!(stats.get(Counter::PartialLineOverflow), 1);
        assert_eq!(j.push(e("stdout", true, "left"), &stats), None);
        assert_eq!(j.flush().len(), 1);
    }

    #[test]
    fn pod_paths() {
        let p = PodRef::from_path(Path::new(
            "/var/log/pods/shop_checkout-7d9f8c6b5-x2k4q_0b7a6c1e-1111-2222-3333-444455556666/checkout/0.log",
        ))
        .unwrap();
        assert_eq!(
            p,
            PodRef {
                namespace: "shop".into(),
                pod: "checkout-7d9f8c6b5-x2k4q".into(),
                container: "checkout".into()
            }
        );
        assert_eq!(p.workload(), "checkout");
        let p = PodRef::from_path(Path::new(
            "/var/log/containers/payment-api-5f6d7c8b9d-x2k4q_prod_api-0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef.log",
        ))
        .unwrap();
        assert_eq!(
            (p.namespace.as_str(), p.pod.as_str(), p.container.as_str()),
            ("prod", "payment-api-5f6d7c8b9d-x2k4q", "api")
        );
        assert_eq!(p.workload(), "payment-api");
        assert_eq!(
            PodRef::from_path(Path::new("/var/log/app/checkout-1.log")),
            None
        );
        assert_eq!(PodRef::from_path(Path::new("/x")), None);
    }

    #[test]
    fn workloads() {
        assert_eq!(workload_name("checkout-7d9f8c6b5-x2k4q"), "checkout");
        assert_eq!(workload_name("db-0"), "db");
        assert_eq!(workload_name("fluentd-x2k4q"), "fluentd");
        assert_eq!(workload_name("my-app"), "my-app");
        assert_eq!(workload_name("standalone"), "standalone");
        assert_eq!(
            workload_name("web-frontend-6c9b8d7f4b-zt5wq"),
            "web-frontend"
        );
    }
}
