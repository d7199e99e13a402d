//! Following files by path, like `tail -F`: new files matching the patterns are picked up,
//! rotation by rename (new inode: finish the old file, then read the new one from its start)
//! and by copy-truncate (size < offset: start over) are detected, a deleted file is dropped
//! until it reappears. Memory is bounded: reads go through a fixed buffer and a line is cut
//! at `max_line` bytes, the rest of it skipped up to the next newline.

use crate::glob::PathPattern;
use crate::stats::{Counter, SourceStats};
use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Lines longer than this are truncated.
pub const MAX_LINE_BYTES: usize = 1 << 20;
const READ_CHUNK: usize = 64 * 1024;
/// Per file and poll, so that one file written in a burst cannot starve the others.
const MAX_BYTES_PER_POLL: u64 = 16 << 20;

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum StartAt {
    Beginning,
    /// Files present at the first poll are read from their end; files that appear later
    /// are read from their start (they are new, so everything in them is new).
    End,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TailedLine {
    pub path: PathBuf,
    /// The line without its newline (and `\r`), lossily decoded.
    pub text: String,
}

pub struct Tailer {
    patterns: Vec<PathPattern>,
    start_at: StartAt,
    max_line: usize,
    first_poll: bool,
    files: BTreeMap<PathBuf, FollowedFile>,
    stats: Arc<SourceStats>,
}

struct FollowedFile {
    file: File,
    identity: (u64, u64),
    offset: u64,
    line: LineBuffer,
}

impl Tailer {
    pub fn new(patterns: Vec<PathPattern>, start_at: StartAt, stats: Arc<SourceStats>) -> Tailer {
        Tailer::with_max_line(patterns, start_at, MAX_LINE_BYTES, stats)
    }

    pub fn with_max_line(
        patterns: Vec<PathPattern>,
        start_at: StartAt,
        max_line: usize,
        stats: Arc<SourceStats>,
    ) -> Tailer {
        Tailer {
            patterns,
            start_at,
            max_line: max_line.max(1),
            first_poll: true,
            files: BTreeMap::new(),
            stats,
        }
    }

    /// Paths currently followed.
    pub fn followed(&self) -> Vec<PathBuf> {
        self.files.keys().cloned().collect()
    }

    /// Looks for new, rotated, truncated and deleted files and returns the complete lines
    /// written since the last poll. Blocking IO: call it from `spawn_blocking`.
    pub fn poll(&mut self) -> Vec<TailedLine> {
        let mut out = Vec::new();
        let current: BTreeSet<PathBuf> = self.patterns.iter().flat_map(|p| p.expand()).collect();

        // Deleted, or renamed away with no successor yet: what is left in the old file
        // is still readable through the open handle.
        let gone: Vec<PathBuf> = self
            .files
            .keys()
            .filter(|p| !current.contains(*p))
            .cloned()
            .collect();
        for path in gone {
            if let Some(mut f) = self.files.remove(&path) {
                self.drain(&path, &mut f, u64::MAX, &mut out);
                self.finish_partial(&path, &mut f, &mut out);
            }
        }

        for path in current {
            let meta = match std::fs::metadata(&path) {
                Ok(m) => m,
                Err(_) => continue, // vanished between listing and stat: next poll sees it
            };
            let identity = (meta.dev(), meta.ino());
            let mut followed = match self.files.remove(&path) {
                None => {
                    let offset = if self.first_poll && self.start_at == StartAt::End {
                        meta.len()
                    } else {
                        0
                    };
                    match self.open(&path, offset) {
                        Some(f) => f,
                        None => continue,
                    }
                }
                Some(mut old) if old.identity != identity => {
                    // Rotated by rename: finish the old file first so nothing is lost.
                    self.drain(&path, &mut old, u64::MAX, &mut out);
                    self.finish_partial(&path, &mut old, &mut out);
                    match self.open(&path, 0) {
                        Some(f) => f,
                        None => continue,
                    }
                }
                Some(mut same) => {
                    if meta.len() < same.offset {
                        // Copy-truncate: the old content went elsewhere; start over.
                        self.finish_partial(&path, &mut same, &mut out);
                        same.offset = 0;
                    }
                    same
                }
            };
            self.drain(&path, &mut followed, MAX_BYTES_PER_POLL, &mut out);
            self.files.insert(path, followed);
        }
        self.first_poll = false;
        out
    }

    fn open(&self, path: &Path, offset: u64) -> Option<FollowedFile> {
        let opened = File::open(path).and_then(|f| {
            let m = f.metadata()?;
            Ok((f, m))
        });
        match opened {
            Ok((file, meta)) => Some(FollowedFile {
                file,
                identity: (meta.dev(), meta.ino()),
                offset: offset.min(meta.len()),
                line: LineBuffer::new(self.max_line),
            }),
            Err(e) => {
                self.stats.incr(Counter::ReadError);
                tracing::debug!(path = %path.display(), error = %e, "cannot open file to tail");
                None
            }
        }
    }

    /// Reads from the file's offset to its end (or `budget` bytes).
    fn drain(&self, path: &Path, f: &mut FollowedFile, budget: u64, out: &mut Vec<TailedLine>) {
        let mut buf = vec![0u8; READ_CHUNK];
        let mut read_total = 0u64;
        while read_total < budget {
            match f.file.read_at(&mut buf, f.offset) {
                Ok(0) => break,
                Ok(n) => {
                    f.offset += n as u64;
                    read_total += n as u64;
                    let stats = &self.stats;
                    f.line.feed(&buf[..n], &mut |bytes, truncated| {
                        out.push(to_line(path, bytes, truncated, stats));
                    });
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.stats.incr(Counter::ReadError);
                    tracing::debug!(path = %path.display(), error = %e, "cannot read tailed file");
                    break;
                }
            }
        }
    }

    /// A file that ends without a newline and will not grow any more: its last line is
    /// complete as it is.
    fn finish_partial(&self, path: &Path, f: &mut FollowedFile, out: &mut Vec<TailedLine>) {
        let stats = &self.stats;
        f.line.finish(&mut |bytes, truncated| {
            out.push(to_line(path, bytes, truncated, stats));
        });
    }
}

fn to_line(path: &Path, mut bytes: Vec<u8>, truncated: bool, stats: &SourceStats) -> TailedLine {
    stats.incr(Counter::LinesRead);
    if truncated {
        stats.incr(Counter::LineTooLong);
        // The cut may split a multi-byte character; that is ours, not invalid input.
        if let Err(e) = std::str::from_utf8(&bytes)
            && e.error_len().is_none()
        {
            bytes.truncate(e.valid_up_to());
        }
    }
    if bytes.last() == Some(&b'\r') {
        bytes.pop();
    }
    let text = match String::from_utf8(bytes) {
        Ok(s) => s,
        Err(e) => {
            stats.incr(Counter::InvalidUtf8);
            String::from_utf8_lossy(e.as_bytes()).into_owned()
        }
    };
    TailedLine {
        path: path.to_path_buf(),
        text,
    }
}

/// Splits a byte stream into lines of at most `max` bytes. A longer line is emitted
/// truncated as soon as it reaches `max`, and its remainder is skipped.
#[derive(Debug)]
pub struct LineBuffer {
    buf: Vec<u8>,
    discarding: bool,
    max: usize,
}

impl LineBuffer {
    pub fn new(max: usize) -> LineBuffer {
        LineBuffer {
            buf: Vec::new(),
            discarding: false,
            max: max.max(1),
        }
    }

    /// Bytes held for an incomplete line.
    pub fn pending_len(&self) -> usize {
        self.buf.len()
    }

    /// Calls `emit(line, truncated)` for every line completed by `data`.
    pub fn feed(&mut self, data: &[u8], emit: &mut dyn FnMut(Vec<u8>, bool)) {
        let mut rest = data;
        while !rest.is_empty() {
            let newline = rest.iter().position(|b| *b == b'\n');
            let (piece, after) = match newline {
                Some(i) => (&rest[..i], Some(&rest[i + 1..])),
                None => (rest, None),
            };
            if !self.discarding {
                let room = self.max - self.buf.len();
                if piece.len() > room {
                    self.buf.extend_from_slice(&piece[..room]);
                    emit(std::mem::take(&mut self.buf), true);
                    self.discarding = newline.is_none();
                } else {
                    self.buf.extend_from_slice(piece);
                    if newline.is_some() {
                        emit(std::mem::take(&mut self.buf), false);
                    }
                }
            } else if newline.is_some() {
                self.discarding = false;
            }
            match after {
                Some(a) => rest = a,
                None => break,
            }
        }
    }

    /// Emits what is held as a last line (the file will not grow any more).
    pub fn finish(&mut self, emit: &mut dyn FnMut(Vec<u8>, bool)) {
        if !self.buf.is_empty() {
            emit(std::mem::take(&mut self.buf), false);
        }
        self.discarding = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn append(path: &Path, data: &[u8]) {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap();
        f.write_all(data).unwrap();
    }

    fn tailer(dir: &Path, pattern: &str, start: StartAt) -> (Tailer, Arc<SourceStats>) {
        let stats = Arc::new(SourceStats::new());
        let p = PathPattern::parse(dir.join(pattern).to_str().unwrap()).unwrap();
        (Tailer::new(vec![p], start, stats.clone()), stats)
    }

    fn texts(lines: Vec<TailedLine>) -> Vec<String> {
        lines.into_iter().map(|l| l.text).collect()
    }

    #[test]
    fn line_buffer_splits_and_bounds() {
        let mut got = Vec::new();
        let mut lb = LineBuffer::new(4);
        let mut emit = |b: Vec<u8>, t: bool| got.push((String::from_utf8(b).unwrap(), t));
        lb.feed(b"ab\ncd", &mut emit);
        lb.feed(b"\n", &mut emit);
        lb.feed(b"abcdefgh", &mut emit); // cut at 4, rest skipped
        lb.feed(b"ijk\nxy\n", &mut emit);
        lb.feed(b"abcd\n", &mut emit); // exactly the limit: not truncated
        lb.feed(b"abcde\n", &mut emit);
        lb.feed(b"tail", &mut emit);
        lb.finish(&mut emit);
        assert_eq!(
            got,
            vec![
                ("ab".into(), false),
                ("cd".into(), false),
                ("abcd".into(), true),
                ("xy".into(), false),
                ("abcd".into(), false),
                ("abcd".into(), true),
                ("tail".into(), false),
            ]
        );
    }

    #[test]
    fn start_at_end_skips_old_content_but_reads_new_files_from_start() {
        let d = tempfile::tempdir().unwrap();
        append(&d.path().join("a.log"), b"old\n");
        let (mut t, _) = tailer(d.path(), "*.log", StartAt::End);
        assert!(t.poll().is_empty());
        append(&d.path().join("a.log"), b"new\n");
        append(&d.path().join("b.log"), b"first\n");
        let lines = t.poll();
        let mut got: Vec<(String, String)> = lines
            .into_iter()
            .map(|l| {
                (
                    l.path.file_name().unwrap().to_str().unwrap().to_string(),
                    l.text,
                )
            })
            .collect();
        got.sort();
        assert_eq!(
            got,
            vec![
                ("a.log".into(), "new".into()),
                ("b.log".into(), "first".into())
            ]
        );
    }

    #[test]
    fn partial_line_waits_for_newline() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("a.log");
        let (mut t, _) = tailer(d.path(), "a.log", StartAt::Beginning);
        append(&p, b"hello wo");
        assert!(t.poll().is_empty());
        append(&p, b"rld\r\nnext");
        assert_eq!(texts(t.poll()), vec!["hello world"]);
        append(&p, b"\n");
        assert_eq!(texts(t.poll()), vec!["next"]);
    }

    #[test]
    fn rotation_by_rename_loses_and_duplicates_nothing() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("app.log");
        let (mut t, _) = tailer(d.path(), "app.log", StartAt::Beginning);
        append(&p, b"1\n2\n");
        assert_eq!(texts(t.poll()), vec!["1", "2"]);
        // Written after the last poll, then rotated: must still be read from the old file.
        append(&p, b"3\n4");
        std::fs::rename(&p, d.path().join("app.log.1")).unwrap();
        append(&p, b"5\n");
        assert_eq!(texts(t.poll()), vec!["3", "4", "5"]);
        append(&p, b"6\n");
        assert_eq!(texts(t.poll()), vec!["6"]);
    }

    #[test]
    fn rotation_by_rename_before_the_new_file_exists() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("app.log");
        let (mut t, _) = tailer(d.path(), "*.log", StartAt::End);
        append(&p, b"before start\n");
        assert!(t.poll().is_empty());
        append(&p, b"a\n");
        std::fs::rename(&p, d.path().join("app.log.1")).unwrap();
        assert_eq!(texts(t.poll()), vec!["a"]);
        assert!(t.followed().is_empty());
        append(&p, b"b\n");
        assert_eq!(texts(t.poll()), vec!["b"]);
    }

    #[test]
    fn copy_truncate_starts_over() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("app.log");
        let (mut t, _) = tailer(d.path(), "app.log", StartAt::Beginning);
        append(&p, b"one\ntwo\nthree\n");
        assert_eq!(texts(t.poll()), vec!["one", "two", "three"]);
        std::fs::copy(&p, d.path().join("app.log.1")).unwrap();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&p)
            .unwrap()
            .set_len(0)
            .unwrap();
        append(&p, b"four\n");
        assert_eq!(texts(t.poll()), vec!["four"]);
        append(&p, b"five\n");
        assert_eq!(texts(t.poll()), vec!["five"]);
    }

    #[test]
    fn deleted_then_recreated() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("app.log");
        let (mut t, _) = tailer(d.path(), "app.log", StartAt::Beginning);
        append(&p, b"x\n");
        assert_eq!(texts(t.poll()), vec!["x"]);
        std::fs::remove_file(&p).unwrap();
        assert!(t.poll().is_empty());
        assert!(t.followed().is_empty());
        assert!(t.poll().is_empty());
        append(&p, b"y\n");
        assert_eq!(texts(t.poll()), vec!["y"]);
    }

    #[test]
    fn ten_megabyte_line_is_truncated_and_the_next_line_read() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("app.log");
        let (mut t, stats) = tailer(d.path(), "app.log", StartAt::Beginning);
        let mut big = vec![b'x'; 10 << 20];
        big.push(b'\n');
        append(&p, b"before\n");
        append(&p, &big);
        append(&p, b"after\n");
        let lines = texts(t.poll());
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0], "before");
        assert_eq!(lines[1].len(), MAX_LINE_BYTES);
        assert_eq!(lines[2], "after");
        assert_eq!(stats.get(Counter::LineTooLong), 1);
        // The held buffer never grew past the bound.
        let held: usize = t.files.values().map(|f| f.line.buf.capacity()).sum();
        assert!(held <= 2 * MAX_LINE_BYTES, "held {held}");
    }

    #[test]
    fn huge_line_split_across_polls() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("app.log");
        let stats = Arc::new(SourceStats::new());
        let pat = PathPattern::parse(p.to_str().unwrap()).unwrap();
        let mut t = Tailer::with_max_line(vec![pat], StartAt::Beginning, 10, stats.clone());
        append(&p, b"0123456789abc");
        assert_eq!(texts(t.poll()), vec!["0123456789"]);
        append(&p, b"def\nok\n");
        assert_eq!(texts(t.poll()), vec!["ok"]);
        assert_eq!(stats.get(Counter::LineTooLong), 1);
    }

    #[test]
    fn truncation_does_not_split_characters() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("app.log");
        let stats = Arc::new(SourceStats::new());
        let pat = PathPattern::parse(p.to_str().unwrap()).unwrap();
        let mut t = Tailer::with_max_line(vec![pat], StartAt::Beginning, 5, stats.clone());
        append(&p, "abcdé€\n".as_bytes());
        assert_eq!(texts(t.poll()), vec!["abcd"]);
        assert_eq!(stats.get(Counter::InvalidUtf8), 0);
    }

    #[test]
    fn invalid_utf8_is_replaced_and_counted() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("app.log");
        let (mut t, stats) = tailer(d.path(), "app.log", StartAt::Beginning);
        append(&p, b"ok \xff\xfe bytes\nclean\n");
        assert_eq!(texts(t.poll()), vec!["ok \u{fffd}\u{fffd} bytes", "clean"]);
        assert_eq!(stats.get(Counter::InvalidUtf8), 1);
        assert_eq!(stats.get(Counter::LinesRead), 2);
    }
}
