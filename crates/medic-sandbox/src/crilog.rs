//! Container output in the CRI log format that kubelets and log shippers read from
//! `/var/log/pods/<ns>_<pod>_<uid>/<container>/<restartCount>.log`:
//! `2026-12-03T09:00:00.123456789Z stdout F message` (`P` for a partial line, split at 16 KiB).

use std::path::{Path, PathBuf};

/// Lines longer than this are split into partial (`P`) records, as containerd does.
pub const MAX_LINE: usize = 16 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// The directory of one pod's logs under the pod log root.
pub fn pod_dir(root: &Path, namespace: &str, pod: &str, uid: &str) -> PathBuf {
    root.join(format!("{namespace}_{pod}_{uid}"))
}

/// The log file of one container instance.
pub fn container_log(
    root: &Path,
    namespace: &str,
    pod: &str,
    uid: &str,
    container: &str,
    restart: i32,
) -> PathBuf {
    pod_dir(root, namespace, pod, uid)
        .join(container)
        .join(format!("{restart}.log"))
}

/// A CRI timestamp: RFC 3339, UTC, always nine fractional digits.
pub fn timestamp(ts: k8s_openapi::jiff::Timestamp) -> String {
    format!("{ts:.9}")
}

/// Splits one stream's bytes into CRI records. Pure: the caller supplies the timestamp and
/// writes the returned bytes.
#[derive(Debug)]
pub struct LineWriter {
    stream: Stream,
    max_line: usize,
    pending: Vec<u8>,
}

impl LineWriter {
    pub fn new(stream: Stream) -> Self {
        Self::with_max_line(stream, MAX_LINE)
    }

    pub fn with_max_line(stream: Stream, max_line: usize) -> Self {
        Self {
            stream,
            max_line: max_line.max(1),
            pending: Vec::new(),
        }
    }

    /// Feeds a chunk; returns the complete records it finished.
    pub fn feed(&mut self, chunk: &[u8], ts: &str) -> Vec<u8> {
        let mut out = Vec::new();
        for &b in chunk {
            if b == b'\n' {
                let line = std::mem::take(&mut self.pending);
                self.record(&mut out, ts, 'F', &line);
            } else {
                self.pending.push(b);
                if self.pending.len() >= self.max_line {
                    let line = std::mem::take(&mut self.pending);
                    self.record(&mut out, ts, 'P', &line);
                }
            }
        }
        out
    }

    /// At end of stream: a last line without newline is still a full record.
    pub fn finish(&mut self, ts: &str) -> Vec<u8> {
        let mut out = Vec::new();
        if !self.pending.is_empty() {
            let line = std::mem::take(&mut self.pending);
            self.record(&mut out, ts, 'F', &line);
        }
        out
    }

    fn record(&self, out: &mut Vec<u8>, ts: &str, tag: char, line: &[u8]) {
        out.extend_from_slice(ts.as_bytes());
        out.push(b' ');
        out.extend_from_slice(self.stream.as_str().as_bytes());
        out.push(b' ');
        out.push(tag as u8);
        out.push(b' ');
        out.extend_from_slice(line);
        out.push(b'\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TS: &str = "2026-12-03T09:00:00.123456789Z";

    #[test]
    fn full_and_split_lines() {
        let mut w = LineWriter::new(Stream::Stdout);
        assert_eq!(w.feed(b"hel", TS), b"");
        let out = String::from_utf8(w.feed(b"lo\nworld\n", TS)).unwrap();
        assert_eq!(out, format!("{TS} stdout F hello\n{TS} stdout F world\n"));
        assert_eq!(
            String::from_utf8(w.feed(b"\n", TS)).unwrap(),
            format!("{TS} stdout F \n")
        );
    }

    #[test]
    fn partial_records_over_max_and_finish() {
        let mut w = LineWriter::with_max_line(Stream::Stderr, 4);
        let out = String::from_utf8(w.feed(b"abcdefghij\n", TS)).unwrap();
        assert_eq!(
            out,
            format!("{TS} stderr P abcd\n{TS} stderr P efgh\n{TS} stderr F ij\n")
        );
        w.feed(b"tail", TS);
        // "tail" reached max and went out as P; nothing pending remains.
        assert_eq!(w.finish(TS), b"");
        w.feed(b"xy", TS);
        assert_eq!(
            String::from_utf8(w.finish(TS)).unwrap(),
            format!("{TS} stderr F xy\n")
        );
    }

    #[test]
    fn default_max_is_16k() {
        let mut w = LineWriter::new(Stream::Stdout);
        let out = w.feed(&vec![b'x'; MAX_LINE + 1], TS);
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains(" stdout P "));
        assert_eq!(text.lines().count(), 1);
        assert_eq!(w.finish(TS).len(), TS.len() + " stdout F x\n".len());
    }

    #[test]
    fn timestamp_has_nine_digits() {
        let ts = k8s_openapi::jiff::Timestamp::from_second(1_796_288_400).unwrap();
        assert_eq!(timestamp(ts), "2026-12-03T09:00:00.000000000Z");
    }

    #[test]
    fn paths_follow_var_log_pods() {
        let p = container_log(Path::new("/l"), "ns", "p", "u-1", "c", 2);
        assert_eq!(p, Path::new("/l/ns_p_u-1/c/2.log"));
    }
}
