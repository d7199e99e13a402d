//! Following files by path, like `tail -F`: new files matching the patterns are picked up,
//! rotation by rename (new inode: finish the old file, then read the new one from its start)
//! and by copy-truncate (size < offset: start over) are detected, a deleted file is dropped
//! until it reappears. Memory is bounded: reads go through a fixed buffer and a line is cut
//! at `max_line` bytes, the rest of it skipped up to the next newline.
//!
//! Compressed files (`*.gz`, gzip members concatenated) are read once, streamed through
//! `MultiGzDecoder`. A file that turns up under a new name (renamed rotation matched by the
//! same glob, or compressed later) is recognised by its inode or by a hash of its first
//! bytes and read on from where its old name stopped, so rotation does not duplicate lines.
//! Positions can be saved ([`TailerState`]) and restored so that a restart neither loses
//! nor duplicates a line.

use crate::glob::PathPattern;
use crate::stats::{Counter, SourceStats};
use flate2::read::MultiGzDecoder;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fs::File;
use std::io::{BufReader, Read};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Lines longer than this are truncated.
pub const MAX_LINE_BYTES: usize = 1 << 20;
const READ_CHUNK: usize = 64 * 1024;
/// Per file and poll, so that one file written in a burst cannot starve the others.
const MAX_BYTES_PER_POLL: u64 = 16 << 20;
/// How many leading bytes identify a file's content (a replaced file, a renamed or
/// compressed copy).
pub const HEAD_BYTES: usize = 256;
/// A head this short says too little to match a copy by content alone.
const MIN_HEAD_FOR_CONTENT_MATCH: u32 = 64;
/// Files that stopped being followed, remembered to recognise them under a new name.
const SEEN_CAPACITY: usize = 1024;

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum StartAt {
    Beginning,
    /// Files present at the first poll are read from their end; files that appear later
    /// are read from their start (they are new, so everything in them is new).
    End,
}

/// Which file (device and inode) a line came from.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FileId {
    pub dev: u64,
    pub ino: u64,
}

/// Hash of a file's first `len` bytes (`len` ≤ [`HEAD_BYTES`]); tells a replaced file from
/// the same one, and finds a copy under another name.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Head {
    pub hash: u64,
    pub len: u32,
}

impl Head {
    fn of(bytes: &[u8]) -> Head {
        let b = &bytes[..bytes.len().min(HEAD_BYTES)];
        Head {
            hash: fnv1a(b),
            len: b.len() as u32,
        }
    }
}

/// FNV-1a: a stable hash (std's is randomly seeded, and checkpoints outlive the process).
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// Where a line sits in its file: enough to resume after it.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct LinePos {
    pub file: FileId,
    pub head: Head,
    /// Offset of the line's first byte (decompressed offset for `.gz` files).
    pub start: u64,
    /// Offset just past the line's newline.
    pub end: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TailedLine {
    pub path: Arc<Path>,
    /// The line without its newline (and `\r`), lossily decoded.
    pub text: String,
    pub pos: LinePos,
}

/// Up to where a file's lines were handed on: which file, its head, the offset.
pub type Delivered = (FileId, Head, u64);

/// Saved position of one file: resume at `offset` if the file at `path` is still `file`
/// with the same head.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileCheckpoint {
    pub path: PathBuf,
    pub file: FileId,
    pub head: Head,
    pub offset: u64,
}

/// Everything a tailer needs to resume: the JSON kept by a [`crate::CheckpointStore`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TailerState {
    pub version: u32,
    pub files: Vec<FileCheckpoint>,
}

impl TailerState {
    pub const VERSION: u32 = 1;

    pub fn to_json(&self) -> String {
        // Plain data with string keys: serialising cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    pub fn from_json(s: &str) -> Result<TailerState, String> {
        let st: TailerState = serde_json::from_str(s)
            .map_err(|e| format!("expected a tailer checkpoint (JSON), {e}"))?;
        if st.version != Self::VERSION {
            return Err(format!(
                "expected checkpoint version {}, found {}",
                Self::VERSION,
                st.version
            ));
        }
        Ok(st)
    }
}

pub struct Tailer {
    patterns: Vec<PathPattern>,
    start_at: StartAt,
    max_line: usize,
    first_poll: bool,
    files: BTreeMap<PathBuf, FollowedFile>,
    stats: Arc<SourceStats>,
    /// Positions loaded from a checkpoint, used the first time each path is opened.
    restored: BTreeMap<PathBuf, FileCheckpoint>,
    /// Whether a checkpoint was loaded: files without an entry are then new, read whole.
    resumed: bool,
    seen: VecDeque<Seen>,
    /// Paths that failed to open, so a permanent failure is counted once, not every poll.
    failing: BTreeSet<PathBuf>,
    /// A file hit its per-poll budget: poll again at once.
    more: bool,
}

#[derive(Clone, Copy, Debug)]
struct Seen {
    file: FileId,
    head: Head,
    offset: u64,
}

enum Reader {
    Plain(File),
    Gz(Box<MultiGzDecoder<BufReader<File>>>),
    /// A compressed file read to its end (or to its corruption): nothing more to read.
    Done,
}

struct FollowedFile {
    path: Arc<Path>,
    reader: Reader,
    id: FileId,
    /// Where reading started (what lies before was not to be read).
    started_at: u64,
    offset: u64,
    head: Head,
    head_buf: Vec<u8>,
    line: LineBuffer,
}

impl FollowedFile {
    fn pos_head(&self) -> Head {
        self.head
    }

    /// Keeps the head up to date while a young file grows.
    fn note_head(&mut self, at: u64, data: &[u8]) {
        if self.head.len as usize >= HEAD_BYTES || at != self.head_buf.len() as u64 {
            return;
        }
        let room = HEAD_BYTES - self.head_buf.len();
        self.head_buf
            .extend_from_slice(&data[..data.len().min(room)]);
        self.head = Head::of(&self.head_buf);
        if self.head_buf.len() >= HEAD_BYTES {
            self.head_buf = Vec::new();
            // Keep the length so `at != len` stops further updates.
            self.head.len = HEAD_BYTES as u32;
        }
    }
}

fn is_gz(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("gz"))
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
            restored: BTreeMap::new(),
            resumed: false,
            seen: VecDeque::new(),
            failing: BTreeSet::new(),
            more: false,
        }
    }

    /// Reads one whole file (plain or `.gz`) once, bounded and counted exactly like a
    /// tailed file (line cap, invalid UTF-8, truncated gzip): for offline tools such as
    /// `medic analyze logs`, so their output can show the same drop counters. Calls `each`
    /// per line, in chunks of at most the per-poll budget. Errors when it cannot be opened.
    pub fn read_whole_file(
        path: &Path,
        stats: Arc<SourceStats>,
        mut each: impl FnMut(TailedLine),
    ) -> Result<(), std::io::Error> {
        if let Err(e) = File::open(path) {
            stats.incr(Counter::ReadError);
            return Err(e);
        }
        let mut t = Tailer::new(Vec::new(), StartAt::Beginning, stats);
        let Some(mut f) = t.open_at(path, 0) else {
            return Err(std::io::Error::other(format!(
                "{} is not a regular file",
                path.display()
            )));
        };
        loop {
            let mut out = Vec::new();
            t.more = false;
            t.drain(&mut f, MAX_BYTES_PER_POLL, &mut out);
            let more = t.more;
            if !more {
                t.finish_partial(&mut f, &mut out);
            }
            out.into_iter().for_each(&mut each);
            if !more {
                return Ok(());
            }
        }
    }

    /// Resumes from a saved state: call before the first poll.
    pub fn restore(&mut self, state: TailerState) {
        self.resumed = true;
        for f in state.files {
            self.remember(Seen {
                file: f.file,
                head: f.head,
                offset: f.offset,
            });
            self.restored.insert(f.path.clone(), f);
        }
    }

    /// Paths currently followed.
    pub fn followed(&self) -> Vec<PathBuf> {
        self.files.keys().cloned().collect()
    }

    /// Whether the last poll left bytes unread (a file hit its per-poll budget).
    pub fn has_more(&self) -> bool {
        self.more
    }

    /// The position to save for each followed file: `delivered` gives, per path, the
    /// position up to which lines were handed on; a file with nothing delivered is saved
    /// where reading started.
    pub fn state(&self, delivered: &dyn Fn(&Path) -> Option<Delivered>) -> TailerState {
        let files = self
            .files
            .iter()
            .map(|(path, f)| {
                let (file, head, offset) = match delivered(path) {
                    // The head may have grown since that line was read: the file is the same.
                    Some((id, _, off)) if id == f.id => (id, f.head, off),
                    Some(other) => other,
                    None => (f.id, f.head, f.started_at),
                };
                FileCheckpoint {
                    path: path.clone(),
                    file,
                    head,
                    offset,
                }
            })
            .collect();
        TailerState {
            version: TailerState::VERSION,
            files,
        }
    }

    fn remember(&mut self, s: Seen) {
        self.seen.retain(|x| x.file != s.file);
        if self.seen.len() >= SEEN_CAPACITY {
            self.seen.pop_front();
        }
        self.seen.push_back(s);
    }

    fn forget(&mut self, f: &FollowedFile) {
        self.remember(Seen {
            file: f.id,
            head: f.head,
            offset: f.offset - f.line.pending_len() as u64,
        });
    }

    /// Looks for new, rotated, truncated and deleted files and returns the complete lines
    /// written since the last poll. Blocking IO: call it from `spawn_blocking`.
    pub fn poll(&mut self) -> Vec<TailedLine> {
        let mut out = Vec::new();
        self.more = false;
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
                self.drain(&mut f, u64::MAX, &mut out);
                self.finish_partial(&mut f, &mut out);
                self.forget(&f);
                if std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir()) {
                    // Replaced by a directory: nothing to read there until it is a file again.
                    self.stats.incr(Counter::NotAFile);
                }
            }
        }

        // Files already followed first: a rotated file must be finished and remembered
        // before its new name (matched by the same glob) is opened.
        let mut fresh = Vec::new();
        for path in &current {
            let Some(mut followed) = self.files.remove(path) else {
                fresh.push(path.clone());
                continue;
            };
            let meta = match std::fs::metadata(path) {
                Ok(m) => m,
                Err(_) => {
                    // Vanished between listing and stat: next poll sees it gone.
                    self.files.insert(path.clone(), followed);
                    continue;
                }
            };
            let id = FileId {
                dev: meta.dev(),
                ino: meta.ino(),
            };
            if followed.id != id {
                // Rotated by rename: finish the old file first so nothing is lost.
                self.drain(&mut followed, u64::MAX, &mut out);
                self.finish_partial(&mut followed, &mut out);
                self.forget(&followed);
                fresh.push(path.clone());
                continue;
            }
            if matches!(followed.reader, Reader::Plain(_)) && meta.len() < followed.offset {
                // Copy-truncate: the old content went elsewhere (remembered, in case
                // the copy is matched too); start over.
                self.finish_partial(&mut followed, &mut out);
                self.forget(&followed);
                followed.offset = 0;
                followed.started_at = 0;
                followed.head_buf.clear();
                followed.head = Head::default();
            }
            self.drain(&mut followed, MAX_BYTES_PER_POLL, &mut out);
            self.files.insert(path.clone(), followed);
        }

        for path in fresh {
            if let Some(mut f) = self.open_new(&path, &current, &mut out) {
                self.drain(&mut f, MAX_BYTES_PER_POLL, &mut out);
                self.files.insert(path, f);
            }
        }
        self.first_poll = false;
        out
    }

    /// Opens a path not followed yet, deciding where to start: a checkpoint of the same
    /// file; the position of a file seen under another name; the rest of a checkpointed
    /// file's rotated predecessor, then this one from its start; else by `start_at`.
    fn open_new(
        &mut self,
        path: &Path,
        current: &BTreeSet<PathBuf>,
        out: &mut Vec<TailedLine>,
    ) -> Option<FollowedFile> {
        let mut f = self.open_at(path, 0)?;
        let len = file_len(path);
        let checkpoint = self.restored.remove(path);
        if let Some(c) = &checkpoint
            && c.file == f.id
            && self.head_matches(&mut f, c.head)
            && (is_gz(path) || len >= c.offset)
        {
            self.skip_to(&mut f, c.offset);
            return Some(f);
        }
        if let Some(offset) = self.seen_offset(&mut f) {
            self.skip_to(&mut f, offset);
            return Some(f);
        }
        if let Some(c) = checkpoint {
            match self.find_predecessor(path, &c, current) {
                Some(pred) => {
                    if let Some(mut p) = self.open_at(&pred, 0) {
                        self.skip_to(&mut p, c.offset);
                        // Its lines belong to this path's stream.
                        p.path = Arc::from(path);
                        self.drain(&mut p, u64::MAX, out);
                        self.finish_partial(&mut p, out);
                        self.forget(&p);
                    }
                }
                None => {
                    self.stats.incr(Counter::FileReplaced);
                    tracing::info!(path = %path.display(), "file replaced since the checkpoint and its predecessor not found: reading it from its start");
                }
            }
            return Some(f);
        }
        if self.first_poll && !self.resumed && self.start_at == StartAt::End {
            self.skip_to_end(&mut f, len);
        }
        Some(f)
    }

    /// Whether the file's first `want.len` bytes hash to `want.hash`.
    fn head_matches(&self, f: &mut FollowedFile, want: Head) -> bool {
        if want.len == 0 {
            return true;
        }
        match read_head(&f.path, want.len as usize) {
            Some(bytes) => bytes.len() == want.len as usize && Head::of(&bytes) == want,
            None => false,
        }
    }

    /// The offset a file was read to under another name (same inode, or same head).
    fn seen_offset(&self, f: &mut FollowedFile) -> Option<u64> {
        // Inode numbers are reused once a file is deleted: the head must agree too.
        let candidates: Vec<Seen> = self
            .seen
            .iter()
            .rev()
            .filter(|s| s.file == f.id || s.head.len >= MIN_HEAD_FOR_CONTENT_MATCH)
            .copied()
            .collect();
        if candidates.is_empty() {
            return None;
        }
        let head = read_head(&f.path, HEAD_BYTES)?;
        let same_head = |s: &Seen| {
            head.len() >= s.head.len as usize && Head::of(&head[..s.head.len as usize]) == s.head
        };
        candidates
            .iter()
            .find(|s| s.file == f.id && same_head(s))
            .or_else(|| {
                candidates
                    .iter()
                    .find(|s| s.head.len >= MIN_HEAD_FOR_CONTENT_MATCH && same_head(s))
            })
            .map(|s| s.offset)
    }

    /// A file in the same directory, named like `path` plus a suffix (`app.log.1`,
    /// `app.log.1.gz`), that is the checkpointed file: same inode, or same head. Not one
    /// the patterns match (that one is read on its own, from where it stopped).
    fn find_predecessor(
        &self,
        path: &Path,
        c: &FileCheckpoint,
        current: &BTreeSet<PathBuf>,
    ) -> Option<PathBuf> {
        let dir = path.parent()?;
        let name = path.file_name()?.to_str()?;
        let mut candidates: Vec<PathBuf> = std::fs::read_dir(dir)
            .ok()?
            .filter_map(Result::ok)
            .filter(|e| {
                e.file_name()
                    .to_str()
                    .is_some_and(|n| n != name && n.starts_with(name))
            })
            .map(|e| e.path())
            .filter(|p| p.is_file() && !current.contains(p))
            .collect();
        candidates.sort();
        let same_head = |p: &PathBuf| {
            read_head(p, c.head.len as usize)
                .is_some_and(|h| h.len() == c.head.len as usize && Head::of(&h) == c.head)
        };
        if let Some(p) = candidates.iter().find(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.dev() == c.file.dev && m.ino() == c.file.ino)
                && same_head(p)
        }) {
            return Some(p.clone());
        }
        if c.head.len < MIN_HEAD_FOR_CONTENT_MATCH {
            return None;
        }
        candidates.into_iter().find(same_head)
    }

    fn open_at(&mut self, path: &Path, offset: u64) -> Option<FollowedFile> {
        let opened = File::open(path).and_then(|f| {
            let m = f.metadata()?;
            Ok((f, m))
        });
        match opened {
            Ok((file, meta)) if meta.is_file() => {
                self.failing.remove(path);
                let id = FileId {
                    dev: meta.dev(),
                    ino: meta.ino(),
                };
                let gz = is_gz(path);
                let head_buf = if gz {
                    Vec::new()
                } else {
                    let mut b = vec![0u8; HEAD_BYTES.min(meta.len() as usize)];
                    let n = file.read_at(&mut b, 0).unwrap_or(0);
                    b.truncate(n);
                    b
                };
                let head = Head::of(&head_buf);
                let reader = if gz {
                    Reader::Gz(Box::new(MultiGzDecoder::new(BufReader::new(file))))
                } else {
                    Reader::Plain(file)
                };
                let mut f = FollowedFile {
                    path: Arc::from(path),
                    reader,
                    id,
                    started_at: 0,
                    offset: 0,
                    head,
                    head_buf: if head.len as usize >= HEAD_BYTES {
                        Vec::new()
                    } else {
                        head_buf
                    },
                    line: LineBuffer::new(self.max_line),
                };
                self.skip_to(&mut f, offset);
                Some(f)
            }
            Ok(_) => None,
            Err(e) => {
                if self.failing.insert(path.to_path_buf()) {
                    self.stats.incr(Counter::ReadError);
                    tracing::warn!(path = %path.display(), error = %e, "cannot open file to tail");
                }
                None
            }
        }
    }

    /// Moves a freshly opened file to `offset` without emitting what lies before.
    fn skip_to(&self, f: &mut FollowedFile, offset: u64) {
        match &mut f.reader {
            Reader::Plain(_) => {
                f.offset = offset.min(file_len(&f.path));
            }
            Reader::Gz(_) => {
                let mut buf = vec![0u8; READ_CHUNK];
                while f.offset < offset {
                    let want = ((offset - f.offset) as usize).min(READ_CHUNK);
                    let Reader::Gz(dec) = &mut f.reader else {
                        break;
                    };
                    match dec.read(&mut buf[..want]) {
                        Ok(0) => break,
                        Ok(n) => {
                            let at = f.offset;
                            f.note_head(at, &buf[..n]);
                            f.offset += n as u64;
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                        Err(_) => {
                            // Counted when the rest is read (it fails again there).
                            break;
                        }
                    }
                }
            }
            Reader::Done => {}
        }
        f.started_at = f.offset;
    }

    fn skip_to_end(&self, f: &mut FollowedFile, len: u64) {
        match f.reader {
            Reader::Plain(_) => {
                f.offset = len;
                f.started_at = len;
            }
            // An old compressed file holds only old lines.
            _ => f.reader = Reader::Done,
        }
    }

    /// Reads from the file's offset to its end (or `budget` bytes).
    fn drain(&mut self, f: &mut FollowedFile, budget: u64, out: &mut Vec<TailedLine>) {
        let mut buf = vec![0u8; READ_CHUNK];
        let mut read_total = 0u64;
        loop {
            if read_total >= budget {
                self.more = true;
                break;
            }
            let got = match &mut f.reader {
                Reader::Plain(file) => file.read_at(&mut buf, f.offset),
                Reader::Gz(dec) => dec.read(&mut buf),
                Reader::Done => break,
            };
            match got {
                Ok(0) => {
                    if matches!(f.reader, Reader::Gz(_)) {
                        // A compressed file does not grow: its last line is complete.
                        self.finish_partial(f, out);
                        f.reader = Reader::Done;
                    }
                    break;
                }
                Ok(n) => {
                    let at = f.offset;
                    f.note_head(at, &buf[..n]);
                    f.offset += n as u64;
                    read_total += n as u64;
                    let stats = &self.stats;
                    let (path, id, head) = (f.path.clone(), f.id, f.pos_head());
                    f.line
                        .feed_at(&buf[..n], at, &mut |bytes, truncated, start, end| {
                            out.push(to_line(
                                &path,
                                bytes,
                                truncated,
                                stats,
                                LinePos {
                                    file: id,
                                    head,
                                    start,
                                    end,
                                },
                            ));
                        });
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    if matches!(f.reader, Reader::Gz(_)) {
                        // Truncated or corrupt: keep what was decoded, count the loss once.
                        self.stats.incr(Counter::TruncatedGzip);
                        tracing::warn!(path = %f.path.display(), error = %e, "compressed file ends early or is corrupt; the rest is skipped");
                        self.finish_partial(f, out);
                        f.reader = Reader::Done;
                    } else {
                        self.stats.incr(Counter::ReadError);
                        tracing::debug!(path = %f.path.display(), error = %e, "cannot read tailed file");
                    }
                    break;
                }
            }
        }
    }

    /// A file that ends without a newline and will not grow any more: its last line is
    /// complete as it is.
    fn finish_partial(&self, f: &mut FollowedFile, out: &mut Vec<TailedLine>) {
        let stats = &self.stats;
        let (path, id, head) = (f.path.clone(), f.id, f.head);
        let end = f.offset;
        let start = end - f.line.pending_len() as u64;
        f.line.finish(&mut |bytes, truncated| {
            out.push(to_line(
                &path,
                bytes,
                truncated,
                stats,
                LinePos {
                    file: id,
                    head,
                    start,
                    end,
                },
            ));
        });
    }
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

/// The first `n` bytes of a file, decompressed for `.gz` (fewer if it is shorter or the
/// data is corrupt).
fn read_head(path: &Path, n: usize) -> Option<Vec<u8>> {
    let file = File::open(path).ok()?;
    let mut out = Vec::with_capacity(n);
    let res = if is_gz(path) {
        MultiGzDecoder::new(BufReader::new(file))
            .take(n as u64)
            .read_to_end(&mut out)
    } else {
        file.take(n as u64).read_to_end(&mut out)
    };
    match res {
        Ok(_) => Some(out),
        Err(_) if !out.is_empty() => Some(out),
        Err(_) => None,
    }
}

fn to_line(
    path: &Arc<Path>,
    mut bytes: Vec<u8>,
    truncated: bool,
    stats: &SourceStats,
    pos: LinePos,
) -> TailedLine {
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
        path: path.clone(),
        text,
        pos,
    }
}

/// Splits a byte stream into lines of at most `max` bytes. A longer line is emitted
/// truncated as soon as it reaches `max`, and its remainder is skipped.
#[derive(Debug)]
pub struct LineBuffer {
    buf: Vec<u8>,
    discarding: bool,
    max: usize,
    /// Stream offset where the held (or next) line starts.
    line_start: u64,
}

impl LineBuffer {
    pub fn new(max: usize) -> LineBuffer {
        LineBuffer {
            buf: Vec::new(),
            discarding: false,
            max: max.max(1),
            line_start: 0,
        }
    }

    /// Bytes held for an incomplete line.
    pub fn pending_len(&self) -> usize {
        self.buf.len()
    }

    /// Calls `emit(line, truncated)` for every line completed by `data`.
    pub fn feed(&mut self, data: &[u8], emit: &mut dyn FnMut(Vec<u8>, bool)) {
        let at = self.line_start + self.buf.len() as u64;
        self.feed_at(data, at, &mut |b, t, _, _| emit(b, t));
    }

    /// Like [`LineBuffer::feed`], with `data` starting at stream offset `at`; `emit` also
    /// gets each line's start offset and the offset just past its newline.
    pub fn feed_at(&mut self, data: &[u8], at: u64, emit: &mut dyn FnMut(Vec<u8>, bool, u64, u64)) {
        if self.buf.is_empty() && !self.discarding {
            self.line_start = at;
        }
        let mut rest = data;
        let mut pos = at;
        while !rest.is_empty() {
            let newline = memchr::memchr(b'\n', rest);
            let (piece, after) = match newline {
                Some(i) => (&rest[..i], Some(&rest[i + 1..])),
                None => (rest, None),
            };
            let piece_end = pos + piece.len() as u64 + u64::from(newline.is_some());
            if !self.discarding {
                let room = self.max - self.buf.len();
                if piece.len() > room {
                    self.buf.extend_from_slice(&piece[..room]);
                    let start = self.line_start;
                    emit(std::mem::take(&mut self.buf), true, start, piece_end);
                    self.discarding = newline.is_none();
                } else if newline.is_some() && self.buf.is_empty() {
                    // The common case: a whole line in this chunk, copied once.
                    emit(piece.to_vec(), false, pos, piece_end);
                } else {
                    self.buf.extend_from_slice(piece);
                    if newline.is_some() {
                        let start = self.line_start;
                        emit(std::mem::take(&mut self.buf), false, start, piece_end);
                    }
                }
            } else if newline.is_some() {
                self.discarding = false;
            }
            pos = piece_end;
            if self.buf.is_empty() && !self.discarding {
                self.line_start = pos;
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
            let n = self.buf.len() as u64;
            emit(std::mem::take(&mut self.buf), false);
            self.line_start += n;
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

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn poll_all(t: &mut Tailer) -> Vec<String> {
        let mut all = texts(t.poll());
        while t.has_more() {
            all.extend(texts(t.poll()));
        }
        all
    }

    fn numbered(from: usize, to: usize) -> String {
        (from..to)
            .map(|i| format!("line {i:05} of the application log\n"))
            .collect()
    }

    #[test]
    fn gzip_files_are_read_once_including_concatenated_members() {
        let d = tempfile::tempdir().unwrap();
        let mut data = gz(b"a\nb\n");
        data.extend(gz(b"c\nd"));
        std::fs::write(d.path().join("app.log.2.gz"), data).unwrap();
        let (mut t, stats) = tailer(d.path(), "app.log*", StartAt::Beginning);
        assert_eq!(poll_all(&mut t), vec!["a", "b", "c", "d"]);
        assert!(t.poll().is_empty());
        assert_eq!(stats.get(Counter::TruncatedGzip), 0);
    }

    #[test]
    fn old_gzip_files_are_skipped_when_starting_at_the_end() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("app.log.1.gz"), gz(b"old\n")).unwrap();
        let (mut t, _) = tailer(d.path(), "app.log*", StartAt::End);
        assert!(t.poll().is_empty());
        assert!(t.poll().is_empty());
    }

    #[test]
    fn truncated_gzip_keeps_what_decoded_and_counts_the_rest() {
        let d = tempfile::tempdir().unwrap();
        let body = numbered(0, 5000);
        let full = gz(body.as_bytes());
        std::fs::write(d.path().join("app.log.1.gz"), &full[..full.len() / 2]).unwrap();
        std::fs::write(
            d.path().join("junk.log.gz"),
            b"\x1f\x8bnot really gzip at all",
        )
        .unwrap();
        let (mut t, stats) = tailer(d.path(), "*.gz", StartAt::Beginning);
        let got = poll_all(&mut t);
        assert!(got.len() > 100 && got.len() < 5000, "{}", got.len());
        // Every complete line decoded is intact; at most the last one is cut.
        for l in &got[..got.len() - 1] {
            assert!(
                l.starts_with("line ") && l.ends_with("application log"),
                "{l}"
            );
        }
        assert_eq!(stats.get(Counter::TruncatedGzip), 2);
        assert!(t.poll().is_empty());
    }

    #[test]
    fn ten_megabyte_line_inside_gzip_is_truncated() {
        let d = tempfile::tempdir().unwrap();
        let mut body = b"before\n".to_vec();
        body.extend(std::iter::repeat_n(b'y', 10 << 20));
        body.extend(b"\nafter\n");
        std::fs::write(d.path().join("big.log.gz"), gz(&body)).unwrap();
        let (mut t, stats) = tailer(d.path(), "*.gz", StartAt::Beginning);
        let got = poll_all(&mut t);
        assert_eq!(got.len(), 3);
        assert_eq!(got[1].len(), MAX_LINE_BYTES);
        assert_eq!(got[2], "after");
        assert_eq!(stats.get(Counter::LineTooLong), 1);
    }

    #[test]
    fn binary_garbage_does_not_break_anything() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("bin.log");
        let garbage: Vec<u8> = (0..200_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        append(&p, &garbage);
        append(&p, b"\nclean\n");
        let (mut t, stats) = tailer(d.path(), "bin.log", StartAt::Beginning);
        let got = poll_all(&mut t);
        assert_eq!(got.last().map(String::as_str), Some("clean"));
        assert!(stats.get(Counter::InvalidUtf8) > 0);
    }

    #[test]
    fn rotated_file_matched_by_the_glob_is_not_read_twice() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("app.log");
        let (mut t, _) = tailer(d.path(), "app.log*", StartAt::Beginning);
        append(&p, numbered(0, 10).as_bytes());
        assert_eq!(poll_all(&mut t).len(), 10);
        append(&p, numbered(10, 12).as_bytes());
        std::fs::rename(&p, d.path().join("app.log.1")).unwrap();
        append(&p, b"new\n");
        let got = poll_all(&mut t);
        assert_eq!(got.len(), 3, "{got:?}");
        assert_eq!(got[2], "new");
        // Later compressed under yet another name: recognised by its head, not re-read.
        let old = std::fs::read(d.path().join("app.log.1")).unwrap();
        std::fs::write(d.path().join("app.log.2.gz"), gz(&old)).unwrap();
        std::fs::remove_file(d.path().join("app.log.1")).unwrap();
        assert!(poll_all(&mut t).is_empty());
    }

    #[test]
    fn file_replaced_by_a_directory() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("app.log");
        let (mut t, stats) = tailer(d.path(), "app.log", StartAt::Beginning);
        append(&p, b"x\n");
        assert_eq!(texts(t.poll()), vec!["x"]);
        std::fs::remove_file(&p).unwrap();
        std::fs::create_dir(&p).unwrap();
        assert!(t.poll().is_empty());
        assert!(t.followed().is_empty());
        assert_eq!(stats.get(Counter::NotAFile), 1);
        std::fs::remove_dir(&p).unwrap();
        append(&p, b"y\n");
        assert_eq!(texts(t.poll()), vec!["y"]);
    }

    /// Polls, "delivers" every line, and saves; like a source that stops after that.
    fn run_and_save(t: &mut Tailer) -> (Vec<String>, TailerState) {
        let lines = {
            let mut all = t.poll();
            while t.has_more() {
                all.extend(t.poll());
            }
            all
        };
        let mut delivered: BTreeMap<PathBuf, (FileId, Head, u64)> = BTreeMap::new();
        for l in &lines {
            delivered.insert(l.path.to_path_buf(), (l.pos.file, l.pos.head, l.pos.end));
        }
        let st = t.state(&|p| delivered.get(p).copied());
        (texts(lines), st)
    }

    fn resumed(dir: &Path, pattern: &str, st: &TailerState) -> Tailer {
        let (mut t, _) = tailer(dir, pattern, StartAt::End);
        t.restore(TailerState::from_json(&st.to_json()).unwrap());
        t
    }

    #[test]
    fn checkpoint_resumes_without_loss_or_duplicates() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("app.log");
        append(&p, numbered(0, 100).as_bytes());
        append(&p, b"partial li");
        let (mut t, _) = tailer(d.path(), "*.log", StartAt::Beginning);
        let (first, st) = run_and_save(&mut t);
        assert_eq!(first.len(), 100);
        drop(t);
        append(&p, b"ne\n");
        append(&p, numbered(100, 150).as_bytes());
        append(&d.path().join("other.log"), b"new file\n");
        let mut t = resumed(d.path(), "*.log", &st);
        let (second, _) = run_and_save(&mut t);
        assert_eq!(second[0], "partial line");
        assert_eq!(second.len(), 52, "{second:?}");
        assert!(second.contains(&"new file".to_string()));
    }

    #[test]
    fn checkpoint_with_rename_rotation_while_stopped() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("app.log");
        append(&p, numbered(0, 50).as_bytes());
        let (mut t, _) = tailer(d.path(), "app.log", StartAt::Beginning);
        let (_, st) = run_and_save(&mut t);
        drop(t);
        append(&p, numbered(50, 60).as_bytes());
        std::fs::rename(&p, d.path().join("app.log.1")).unwrap();
        append(&p, numbered(60, 65).as_bytes());
        let mut t = resumed(d.path(), "app.log", &st);
        let (got, _) = run_and_save(&mut t);
        let want: Vec<String> = numbered(50, 65).lines().map(str::to_string).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn checkpoint_with_rotation_and_compression_while_stopped() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("app.log");
        append(&p, numbered(0, 50).as_bytes());
        let (mut t, _) = tailer(d.path(), "app.log", StartAt::Beginning);
        let (_, st) = run_and_save(&mut t);
        drop(t);
        append(&p, numbered(50, 60).as_bytes());
        let old = std::fs::read(&p).unwrap();
        std::fs::write(d.path().join("app.log.1.gz"), gz(&old)).unwrap();
        std::fs::remove_file(&p).unwrap();
        append(&p, numbered(60, 62).as_bytes());
        let mut t = resumed(d.path(), "app.log", &st);
        let (got, _) = run_and_save(&mut t);
        let want: Vec<String> = numbered(50, 62).lines().map(str::to_string).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn checkpoint_with_glob_matching_rotated_files() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("app.log");
        append(&p, numbered(0, 20).as_bytes());
        let (mut t, _) = tailer(d.path(), "app.log*", StartAt::Beginning);
        let (_, st) = run_and_save(&mut t);
        drop(t);
        append(&p, numbered(20, 25).as_bytes());
        std::fs::rename(&p, d.path().join("app.log.1")).unwrap();
        append(&p, numbered(25, 27).as_bytes());
        let mut t = resumed(d.path(), "app.log*", &st);
        let (mut got, _) = run_and_save(&mut t);
        got.sort();
        let want: Vec<String> = numbered(20, 27).lines().map(str::to_string).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn replaced_file_is_read_from_its_start_and_counted() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("app.log");
        append(&p, numbered(0, 20).as_bytes());
        let (mut t, _) = tailer(d.path(), "app.log", StartAt::Beginning);
        let (_, st) = run_and_save(&mut t);
        drop(t);
        std::fs::remove_file(&p).unwrap();
        append(&p, b"entirely new content\n");
        let stats = Arc::new(SourceStats::new());
        let pat = PathPattern::parse(p.to_str().unwrap()).unwrap();
        let mut t = Tailer::new(vec![pat], StartAt::End, stats.clone());
        t.restore(st);
        assert_eq!(texts(t.poll()), vec!["entirely new content"]);
        assert_eq!(stats.get(Counter::FileReplaced), 1);
    }

    #[test]
    fn whole_file_reads_plain_and_gzip_once() {
        let d = tempfile::tempdir().unwrap();
        let stats = Arc::new(SourceStats::new());
        let p = d.path().join("a.log");
        append(&p, b"one\ntwo\xff\nthree");
        let mut got = Vec::new();
        Tailer::read_whole_file(&p, stats.clone(), |l| got.push(l.text)).unwrap();
        assert_eq!(got, vec!["one", "two\u{fffd}", "three"]);
        let full = gz(numbered(0, 2000).as_bytes());
        let g = d.path().join("b.log.gz");
        std::fs::write(&g, &full[..full.len() - 10]).unwrap();
        let mut n = 0;
        Tailer::read_whole_file(&g, stats.clone(), |_| n += 1).unwrap();
        assert!(n > 1900, "{n}");
        assert_eq!(stats.get(Counter::TruncatedGzip), 1);
        assert_eq!(stats.get(Counter::InvalidUtf8), 1);
        assert!(Tailer::read_whole_file(&d.path().join("missing"), stats.clone(), |_| {}).is_err());
        assert!(Tailer::read_whole_file(d.path(), stats, |_| {}).is_err());
    }

    #[test]
    fn malformed_checkpoint_is_an_error_not_a_panic() {
        assert!(TailerState::from_json("{").is_err());
        assert!(TailerState::from_json(r#"{"version":99,"files":[]}"#).is_err());
        assert!(TailerState::from_json("\u{0}\u{1}garbage").is_err());
    }

    #[test]
    fn line_positions_are_exact() {
        let mut lb = LineBuffer::new(100);
        let mut got = Vec::new();
        lb.feed_at(b"ab\ncd", 10, &mut |b, _, s, e| got.push((b, s, e)));
        lb.feed_at(b"e\nf\n", 15, &mut |b, _, s, e| got.push((b, s, e)));
        assert_eq!(
            got,
            vec![
                (b"ab".to_vec(), 10, 13),
                (b"cde".to_vec(), 13, 17),
                (b"f".to_vec(), 17, 19)
            ]
        );
    }
}
