//! `medic analyze logs FILE...`: offline analysis of any log file. Streams each file (plain
//! or gzip, `-` for stdin) line by line, mines templates, matches the pattern library, and
//! prints totals (with every truncated or altered record counted by reason), the top
//! templates, error/warning templates, pattern hits, and anomalies over time (new
//! templates, template spikes, pattern hits per time or line bucket).

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use flate2::read::MultiGzDecoder;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use medic_core::Level;
use medic_detect::patterns::{PATTERNS, match_record};
use medic_signals::{LogParser, Redactor, redact};
use medic_templates::loghub::{LogFormat, known_format};
use medic_templates::{MinerConfig, TemplateId, TemplateMiner};
use serde_json::json;
use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Longest line kept; the rest is skipped and the line counted as truncated.
pub const MAX_LINE_BYTES: usize = 1 << 20;
/// Buckets in the anomalies-over-time table; when more are needed, widths double.
const MAX_BUCKETS: usize = 48;
/// First bucket width: one minute of timestamps, or this many lines.
const FIRST_BUCKET_MS: i64 = 60_000;
const FIRST_BUCKET_LINES: u64 = 100;
/// A template's bucket count this many times its median bucket (and at least
/// `SPIKE_MIN_COUNT`) is a spike in that bucket.
const SPIKE_RATIO: f64 = 5.0;
const SPIKE_MIN_COUNT: u32 = 10;
/// Example text kept per template / pattern.
const EXAMPLE_CHARS: usize = 300;

#[derive(Subcommand)]
pub enum AnalyzeCommand {
    /// Offline analysis of log files: top templates, error templates, anomalies over time.
    Logs(AnalyzeLogsArgs),
}

#[derive(Args)]
pub struct AnalyzeLogsArgs {
    /// Log files, plain or gzip (detected by content); `-` reads standard input.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Loghub-style line format, e.g. `<Date> <Time> <Level> <Component>: <Content>`, or a
    /// Loghub system name (HDFS, Spark, ...). Default: auto (JSON message field, or the text
    /// after timestamp and level).
    #[arg(long)]
    pub log_format: Option<String>,
    /// Write `LineId,EventId,EventTemplate` for every input line (LineId: 1-based line number
    /// in its file; wildcard `<*>`).
    #[arg(long, value_name = "OUT")]
    pub emit_csv: Option<PathBuf>,
    /// Print one JSON object instead of tables.
    #[arg(long)]
    pub json: bool,
    /// Templates listed in the top table.
    #[arg(long, default_value_t = 20)]
    pub top: usize,
}

pub fn run(cmd: AnalyzeCommand) -> Result<i32> {
    match cmd {
        AnalyzeCommand::Logs(args) => analyze(&args),
    }
}

/// Counts every byte read, for the progress bar.
struct Counting<R> {
    inner: R,
    bar: ProgressBar,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bar.inc(n as u64);
        Ok(n)
    }
}

/// Opens a file (or stdin for `-`), transparently gunzipping by magic bytes.
fn open(path: &Path, bar: &ProgressBar) -> Result<Box<dyn BufRead>> {
    let raw: Box<dyn Read> = if path.as_os_str() == "-" {
        Box::new(io::stdin().lock())
    } else {
        Box::new(File::open(path).with_context(|| format!("opening {}", path.display()))?)
    };
    let mut r = BufReader::with_capacity(
        256 * 1024,
        Counting {
            inner: raw,
            bar: bar.clone(),
        },
    );
    let gz = r.fill_buf()?.starts_with(&[0x1f, 0x8b]);
    Ok(if gz {
        Box::new(BufReader::with_capacity(256 * 1024, MultiGzDecoder::new(r)))
    } else {
        Box::new(r)
    })
}

/// Reads one line (without its `\n`) into `buf`, keeping at most `cap` bytes. Returns the
/// bytes consumed and whether the line was cut, or `None` at end of input.
fn read_capped(
    r: &mut dyn BufRead,
    buf: &mut Vec<u8>,
    cap: usize,
) -> io::Result<Option<(u64, bool)>> {
    buf.clear();
    let mut consumed = 0u64;
    let mut cut = false;
    loop {
        let avail = r.fill_buf()?;
        if avail.is_empty() {
            return Ok((consumed > 0).then_some((consumed, cut)));
        }
        let (chunk, used, done) = match memchr::memchr(b'\n', avail) {
            Some(i) => (&avail[..i], i + 1, true),
            None => (avail, avail.len(), false),
        };
        let room = cap.saturating_sub(buf.len());
        if chunk.len() > room {
            cut = true;
        }
        buf.extend_from_slice(&chunk[..chunk.len().min(room)]);
        r.consume(used);
        consumed += used as u64;
        if done {
            if buf.last() == Some(&b'\r') {
                buf.pop();
            }
            return Ok(Some((consumed, cut)));
        }
    }
}

#[derive(Default)]
struct TStat {
    count: u64,
    level: Level,
    buckets: Vec<u32>,
    first_bucket: usize,
    example: String,
}

#[derive(Default, Clone, Copy)]
struct Bucket {
    lines: u64,
    errors: u64,
    warns: u64,
    new_templates: u64,
    pattern_hits: u64,
}

enum Mode {
    Unknown,
    Time { origin: i64, width: i64 },
    Lines { width: u64 },
}

struct Analysis {
    miner: TemplateMiner,
    format: Option<LogFormat>,
    /// Auto-mode parsing *without* redaction: redacting every line cost most of the run, and
    /// only what is printed or written (templates, examples) needs it, so that is redacted
    /// at output instead.
    parser: LogParser,
    templates: HashMap<TemplateId, TStat>,
    patterns: Vec<(u64, Vec<u32>, String)>,
    buckets: Vec<Bucket>,
    mode: Mode,
    last_ts: Option<i64>,
    /// Template id of every line, when a CSV is wanted (4 bytes per line).
    ids: Option<Vec<u32>>,
    file_lines: Vec<(String, u64)>,
    lines: u64,
    bytes: u64,
    empty: u64,
    dropped: BTreeMap<&'static str, u64>,
    altered: BTreeMap<&'static str, u64>,
}

fn short(s: &str, n: usize) -> String {
    let mut out: String = s.chars().take(n).collect();
    if s.chars().count() > n {
        out.push('…');
    }
    out
}

impl Analysis {
    fn bucket_of(&mut self, ts: Option<i64>) -> usize {
        if let Mode::Unknown = self.mode {
            self.mode = match ts {
                Some(t) => Mode::Time {
                    origin: t - t.rem_euclid(FIRST_BUCKET_MS),
                    width: FIRST_BUCKET_MS,
                },
                None => Mode::Lines {
                    width: FIRST_BUCKET_LINES,
                },
            };
        }
        if ts.is_some() {
            self.last_ts = ts;
        }
        loop {
            let idx = match self.mode {
                Mode::Time { origin, width } => {
                    let t = ts.or(self.last_ts).unwrap_or(origin);
                    usize::try_from(t.saturating_sub(origin) / width.max(1)).unwrap_or(0)
                }
                Mode::Lines { width } => {
                    usize::try_from(self.lines / width.max(1)).unwrap_or(usize::MAX)
                }
                Mode::Unknown => 0,
            };
            if idx < MAX_BUCKETS {
                if self.buckets.len() <= idx {
                    self.buckets.resize(idx + 1, Bucket::default());
                }
                return idx;
            }
            self.merge_buckets();
        }
    }

    /// Doubles the bucket width, merging pairs everywhere buckets are kept.
    fn merge_buckets(&mut self) {
        fn pairs<T: Copy>(v: &[T], add: impl Fn(T, T) -> T) -> Vec<T> {
            v.chunks(2)
                .map(|c| if c.len() == 2 { add(c[0], c[1]) } else { c[0] })
                .collect()
        }
        self.buckets = pairs(&self.buckets, |a, b| Bucket {
            lines: a.lines + b.lines,
            errors: a.errors + b.errors,
            warns: a.warns + b.warns,
            new_templates: a.new_templates + b.new_templates,
            pattern_hits: a.pattern_hits + b.pattern_hits,
        });
        for t in self.templates.values_mut() {
            t.buckets = pairs(&t.buckets, u32::saturating_add);
            t.first_bucket /= 2;
        }
        for p in &mut self.patterns {
            p.1 = pairs(&p.1, u32::saturating_add);
        }
        match &mut self.mode {
            Mode::Time { width, .. } => *width = width.saturating_mul(2),
            Mode::Lines { width } => *width = width.saturating_mul(2),
            Mode::Unknown => {}
        }
    }

    fn line(&mut self, line: &str) {
        let (content, level, ts): (String, Level, Option<i64>) = match &self.format {
            Some(f) => match f.split(line) {
                Some(fields) => {
                    let get = |name: &str| fields.iter().find(|(k, _)| *k == name).map(|(_, v)| *v);
                    let level = get("Level").and_then(Level::parse).unwrap_or_default();
                    (get("Content").unwrap_or(line).to_string(), level, None)
                }
                None => {
                    *self
                        .altered
                        .entry("line does not match --log-format (whole line used)")
                        .or_default() += 1;
                    (line.to_string(), Level::Info, None)
                }
            },
            None => {
                let (l, ts) = self.parser.parse(line);
                (l.message, l.level, ts.map(|t| t.0))
            }
        };
        if line.trim().is_empty() {
            self.empty += 1;
        }
        let b = self.bucket_of(ts);
        self.lines += 1;
        let mined = self.miner.mine(&content);
        if let Some(ids) = &mut self.ids {
            ids.push(mined.id.0);
        }
        let bucket = &mut self.buckets[b];
        bucket.lines += 1;
        if level.is_error() {
            bucket.errors += 1;
        } else if level == Level::Warn {
            bucket.warns += 1;
        }
        if mined.is_new {
            bucket.new_templates += 1;
        }
        let t = self.templates.entry(mined.id).or_insert_with(|| TStat {
            first_bucket: b,
            example: short(&redact(line), EXAMPLE_CHARS),
            ..TStat::default()
        });
        t.count += 1;
        t.level = t.level.max(level);
        if t.buckets.len() <= b {
            t.buckets.resize(b + 1, 0);
        }
        t.buckets[b] = t.buckets[b].saturating_add(1);
        let m = match_record(&content, &[], level);
        for i in m.indexes() {
            let Some(p) = self.patterns.get_mut(i) else {
                continue;
            };
            if p.0 == 0 {
                p.2 = short(&redact(line), EXAMPLE_CHARS);
            }
            p.0 += 1;
            if p.1.len() <= b {
                p.1.resize(b + 1, 0);
            }
            p.1[b] = p.1[b].saturating_add(1);
            self.buckets[b].pattern_hits += 1;
        }
    }
}

/// `auto` parsing with every redaction kind off (see `Analysis::parser`).
fn unredacted_auto_parser() -> Result<LogParser> {
    let cfg = medic_config::RedactionConfig {
        disable: medic_config::REDACTION_KINDS
            .iter()
            .map(|k| k.to_string())
            .collect(),
        ..Default::default()
    };
    let none = Redactor::from_config(&cfg).context("building the analysis parser")?;
    LogParser::new(&medic_config::LogFormat::Auto, Arc::new(none))
        .map_err(|e| anyhow::anyhow!("building the analysis parser: {e}"))
}

fn analyze(args: &AnalyzeLogsArgs) -> Result<i32> {
    let format = match &args.log_format {
        None => None,
        Some(f) => {
            let spec = known_format(f).unwrap_or(f);
            Some(LogFormat::parse(spec).with_context(|| format!("--log-format {f:?}"))?)
        }
    };
    let total: u64 = args
        .files
        .iter()
        .filter(|p| p.as_os_str() != "-")
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum();
    let bar = if io::stderr().is_terminal() {
        let b = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
        if let Ok(style) = ProgressStyle::with_template(
            "{spinner} {bytes}/{total_bytes} {bytes_per_sec} eta {eta} {wide_msg}",
        ) {
            b.set_style(style);
        }
        b
    } else {
        ProgressBar::hidden()
    };
    let mut a = Analysis {
        miner: TemplateMiner::new(MinerConfig {
            extract_params: false,
            ..MinerConfig::default()
        }),
        format,
        parser: unredacted_auto_parser()?,
        templates: HashMap::new(),
        patterns: PATTERNS
            .iter()
            .map(|_| (0, Vec::new(), String::new()))
            .collect(),
        buckets: Vec::new(),
        mode: Mode::Unknown,
        last_ts: None,
        ids: args.emit_csv.as_ref().map(|_| Vec::new()),
        file_lines: Vec::new(),
        lines: 0,
        bytes: 0,
        empty: 0,
        dropped: BTreeMap::new(),
        altered: BTreeMap::new(),
    };
    let mut buf = Vec::with_capacity(64 * 1024);
    for path in &args.files {
        bar.set_message(path.display().to_string());
        let mut r = open(path, &bar)?;
        let before = a.lines;
        loop {
            let (n, cut) = match read_capped(&mut *r, &mut buf, MAX_LINE_BYTES) {
                Ok(Some(x)) => x,
                Ok(None) => break,
                Err(e) => {
                    // A corrupt gzip member or a read error: keep what was read, say so.
                    *a.dropped.entry("unreadable rest of file").or_default() += 1;
                    eprintln!("medic: {}: stopped reading: {e}", path.display());
                    break;
                }
            };
            a.bytes += n;
            if cut {
                *a.altered.entry("line over 1 MiB (truncated)").or_default() += 1;
            }
            match std::str::from_utf8(&buf) {
                Ok(s) => a.line(s),
                // A cut can split the last character: that is the truncation, not bad input.
                Err(e) if cut && e.error_len().is_none() => {
                    let s = std::str::from_utf8(&buf[..e.valid_up_to()]).unwrap_or("");
                    a.line(s);
                }
                Err(_) => {
                    *a.altered
                        .entry("invalid UTF-8 (replaced with U+FFFD)")
                        .or_default() += 1;
                    let s = String::from_utf8_lossy(&buf).into_owned();
                    a.line(&s);
                }
            }
        }
        a.file_lines
            .push((path.display().to_string(), a.lines - before));
    }
    bar.finish_and_clear();
    if let (Some(out), Some(ids)) = (&args.emit_csv, &a.ids) {
        write_csv(out, ids, &a.file_lines, &a.miner)?;
    }
    let report = report(&a, args.top);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_text(&report);
    }
    Ok(0)
}

/// RFC 4180: quote when the field holds a comma, quote, CR or LF; double inner quotes.
pub fn csv_field(s: &str) -> std::borrow::Cow<'_, str> {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\"")).into()
    } else {
        s.into()
    }
}

fn write_csv(
    out: &Path,
    ids: &[u32],
    files: &[(String, u64)],
    miner: &TemplateMiner,
) -> Result<()> {
    let f = File::create(out).with_context(|| format!("creating {}", out.display()))?;
    let mut w = BufWriter::with_capacity(256 * 1024, f);
    w.write_all(b"LineId,EventId,EventTemplate\r\n")?;
    let mut texts: HashMap<u32, String> = HashMap::new();
    let mut i = 0usize;
    for (_, n) in files {
        for line_id in 1..=*n {
            let Some(&id) = ids.get(i) else { break };
            i += 1;
            let text = texts.entry(id).or_insert_with(|| {
                redact(&miner.template(TemplateId(id)).unwrap_or_default()).into_owned()
            });
            writeln!(w, "{line_id},E{id},{}\r", csv_field(text))?;
        }
    }
    w.flush()?;
    Ok(())
}

fn level_name(l: Level) -> String {
    format!("{l:?}").to_lowercase()
}

fn median(v: &mut [u32]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_unstable();
    f64::from(v[v.len() / 2])
}

fn report(a: &Analysis, top: usize) -> serde_json::Value {
    // Mined from unredacted text: redacted here, where it is printed.
    let text = |id: TemplateId| {
        a.miner
            .template(id)
            .map_or_else(|| "(evicted)".into(), |t| redact(&t).into_owned())
    };
    let share = |n: u64| {
        if a.lines == 0 {
            0.0
        } else {
            n as f64 / a.lines as f64
        }
    };
    let mut by_count: Vec<(&TemplateId, &TStat)> = a.templates.iter().collect();
    by_count.sort_by(|x, y| y.1.count.cmp(&x.1.count).then(x.0.cmp(y.0)));
    let tpl = |(id, t): &(&TemplateId, &TStat)| {
        json!({"id": id.to_string(), "count": t.count, "share": share(t.count),
               "level": level_name(t.level), "template": text(**id), "example": t.example})
    };
    let top_t: Vec<_> = by_count.iter().take(top).map(tpl).collect();
    let errors: Vec<_> = by_count
        .iter()
        .filter(|(_, t)| t.level >= Level::Warn)
        .take(top.max(1) * 2)
        .map(tpl)
        .collect();
    let patterns: Vec<_> = PATTERNS
        .iter()
        .zip(&a.patterns)
        .filter(|(_, p)| p.0 > 0)
        .map(|(p, (n, _, ex))| json!({"pattern": p.name, "phrase": p.phrase, "count": n, "hint": p.hint, "example": ex}))
        .collect();
    // Spikes: a bucket where a template is far above its own median bucket count (over the
    // buckets since it first appeared).
    let mut spikes: Vec<Vec<serde_json::Value>> = vec![Vec::new(); a.buckets.len()];
    for (id, t) in &by_count {
        if t.count < u64::from(SPIKE_MIN_COUNT) {
            continue;
        }
        let mut counts: Vec<u32> = (t.first_bucket..a.buckets.len())
            .map(|b| t.buckets.get(b).copied().unwrap_or(0))
            .collect();
        if counts.len() < 3 {
            continue;
        }
        let med = median(&mut counts);
        // A template absent from most buckets has no rate to spike from: its burst shows
        // as new templates in the bucket where it appeared.
        if med <= 0.0 {
            continue;
        }
        for (b, &c) in t.buckets.iter().enumerate().skip(t.first_bucket) {
            if c >= SPIKE_MIN_COUNT
                && f64::from(c) >= SPIKE_RATIO * med.max(1.0)
                && let Some(s) = spikes.get_mut(b)
            {
                s.push(json!({"id": id.to_string(), "count": c, "median": med, "template": short(&text(**id), 120)}));
            }
        }
    }
    let (unit, origin, width) = match a.mode {
        Mode::Time { origin, width } => ("time", origin, width),
        Mode::Lines { width } => ("lines", 0, i64::try_from(width).unwrap_or(i64::MAX)),
        Mode::Unknown => ("lines", 0, 0),
    };
    let buckets: Vec<_> = a
        .buckets
        .iter()
        .enumerate()
        .map(|(i, b)| {
            let start = origin.saturating_add(width.saturating_mul(i as i64));
            let label = if unit == "time" {
                medic_core::Ts(start).to_string()
            } else {
                format!("line {}", start + 1)
            };
            let pats: BTreeMap<&str, u32> = PATTERNS
                .iter()
                .zip(&a.patterns)
                .filter_map(|(p, (_, v, _))| v.get(i).filter(|c| **c > 0).map(|c| (p.name, *c)))
                .collect();
            json!({"start": label, "lines": b.lines, "errors": b.errors, "warnings": b.warns,
                   "new_templates": b.new_templates, "pattern_hits": pats,
                   "spikes": spikes.get(i).cloned().unwrap_or_default()})
        })
        .collect();
    let stats = a.miner.stats();
    json!({
        "files": a.file_lines.iter().map(|(f, n)| json!({"file": f, "lines": n})).collect::<Vec<_>>(),
        "lines": a.lines,
        "bytes": a.bytes,
        "empty_lines": a.empty,
        "records_dropped": a.dropped,
        "records_altered": a.altered,
        "miner": {"templates": a.miner.len(), "evicted_templates": stats.evicted_templates,
                  "truncated_messages": stats.truncated_messages},
        "top_templates": top_t,
        "error_and_warning_templates": errors,
        "patterns": patterns,
        "buckets": {"by": unit, "width": if unit == "time" { format!("{}s", width / 1000) } else { format!("{width} lines") }, "rows": buckets},
    })
}

fn print_text(r: &serde_json::Value) {
    let n = |v: &serde_json::Value| v.as_u64().unwrap_or(0);
    let s = |v: &serde_json::Value| v.as_str().unwrap_or("").to_string();
    println!(
        "lines {}  bytes {}  empty {}  templates {} ({} evicted)",
        n(&r["lines"]),
        n(&r["bytes"]),
        n(&r["empty_lines"]),
        n(&r["miner"]["templates"]),
        n(&r["miner"]["evicted_templates"])
    );
    for (what, key) in [
        ("dropped", "records_dropped"),
        ("altered", "records_altered"),
    ] {
        let m = r[key].as_object().cloned().unwrap_or_default();
        if m.is_empty() {
            println!("records {what}: 0");
        } else {
            let parts: Vec<String> = m.iter().map(|(k, v)| format!("{} {k}", n(v))).collect();
            println!("records {what}: {}", parts.join(", "));
        }
    }
    let empty = Vec::new();
    println!(
        "\ntop templates:\n{:>9} {:>6}  {:<7} {:<6} template",
        "count", "share", "id", "level"
    );
    for t in r["top_templates"].as_array().unwrap_or(&empty) {
        println!(
            "{:>9} {:>5.1}%  {:<7} {:<6} {}",
            n(&t["count"]),
            t["share"].as_f64().unwrap_or(0.0) * 100.0,
            s(&t["id"]),
            s(&t["level"]),
            short(&s(&t["template"]), 160)
        );
    }
    println!("\nerror and warning templates:");
    let errs = r["error_and_warning_templates"]
        .as_array()
        .unwrap_or(&empty);
    if errs.is_empty() {
        println!("  (none)");
    }
    for t in errs {
        println!(
            "{:>9}  {:<7} {:<6} {}",
            n(&t["count"]),
            s(&t["id"]),
            s(&t["level"]),
            short(&s(&t["template"]), 160)
        );
    }
    println!("\npatterns:");
    let pats = r["patterns"].as_array().unwrap_or(&empty);
    if pats.is_empty() {
        println!("  (none)");
    }
    for p in pats {
        println!(
            "{:>9}  {:<22} {}  e.g. {}",
            n(&p["count"]),
            s(&p["pattern"]),
            s(&p["hint"]),
            short(&s(&p["example"]), 120)
        );
    }
    println!(
        "\nanomalies over time (buckets of {} by {}):\n{:<26} {:>8} {:>7} {:>6} {:>5} {:>7}  patterns",
        s(&r["buckets"]["width"]),
        s(&r["buckets"]["by"]),
        "start",
        "lines",
        "errors",
        "warns",
        "new",
        "spikes"
    );
    for b in r["buckets"]["rows"].as_array().unwrap_or(&empty) {
        let sp = b["spikes"].as_array().unwrap_or(&empty);
        let pats: Vec<String> = b["pattern_hits"]
            .as_object()
            .map(|m| m.iter().map(|(k, v)| format!("{k}={}", n(v))).collect())
            .unwrap_or_default();
        println!(
            "{:<26} {:>8} {:>7} {:>6} {:>5} {:>7}  {}",
            s(&b["start"]),
            n(&b["lines"]),
            n(&b["errors"]),
            n(&b["warnings"]),
            n(&b["new_templates"]),
            sp.len(),
            pats.join(" ")
        );
        for x in sp.iter().take(3) {
            println!(
                "{:<26}   spike {} {} vs median {}: {}",
                "",
                s(&x["id"]),
                n(&x["count"]),
                x["median"].as_f64().unwrap_or(0.0),
                s(&x["template"])
            );
        }
    }
}
