//! Ingest throughput of the log-file path: a file of N lines (default 2,000,000) tailed
//! from its start, unwrapped, joined, parsed, redacted and sent on a channel, with and
//! without the template miner after it. Side by side, in the same run, with its parts:
//! the raw read + line split (the IO ceiling), the tailer alone, and parse + redact alone.
//!
//!     cargo run --release -p medic-signals --example ingest_bench [-- LINES RUNS]
//!
//! Prints lines/s per case (median of RUNS, default 3) and whether every line arrived.

use medic_config::{ContainerFormat, LogFormat, RedactionConfig, SourceConfig, SourceKind};
use medic_core::SignalPayload;
use medic_signals::glob::PathPattern;
use medic_signals::tail::{StartAt, Tailer};
use medic_signals::{Counter, SourceStats, spawn_sources_with};
use std::io::{BufWriter, Read, Write};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};

/// A deterministic mix of what services write: plain text with timestamp and level,
/// key=value pairs (some secret), JSON lines, e-mails, URLs with tokens, numbers.
fn line(i: usize) -> String {
    let ms = i % 1000;
    let s = (i / 1000) % 60;
    match i % 10 {
        0 => format!(
            "{{\"ts\":\"2024-05-01T10:00:{s:02}.{ms:03}Z\",\"level\":\"info\",\"msg\":\"GET /product/{} 200\",\"latency_ms\":{},\"trace\":\"{:016x}\"}}",
            i % 977,
            i % 300,
            i
        ),
        1 => format!(
            "2024-05-01T10:00:{s:02}.{ms:03}Z WARN [pool-{}] connection pool low: active={} idle={} user=svc{}@example.com",
            i % 8,
            i % 50,
            i % 7,
            i % 13
        ),
        2 => format!(
            "2024-05-01 10:00:{s:02},{ms:03} ERROR payment failed for order {} password={:x} retry={}",
            i,
            i * 7919,
            i % 3
        ),
        3 => format!(
            "2024-05-01T10:00:{s:02}.{ms:03}Z INFO GET https://api.example.com/v1/items?token={:x}&page={} 200 in {}ms",
            i * 31,
            i % 10,
            i % 90
        ),
        _ => format!(
            "2024-05-01T10:00:{s:02}.{ms:03}Z INFO request {} served in {}ms from 10.0.{}.{}",
            i,
            i % 250,
            i % 255,
            i % 200
        ),
    }
}

fn write_file(path: &Path, n: usize) -> u64 {
    let mut w = BufWriter::with_capacity(1 << 20, std::fs::File::create(path).unwrap());
    for i in 0..n {
        w.write_all(line(i).as_bytes()).unwrap();
        w.write_all(b"\n").unwrap();
    }
    w.flush().unwrap();
    std::fs::metadata(path).unwrap().len()
}

fn raw_read(path: &Path) -> usize {
    let mut f = std::fs::File::open(path).unwrap();
    let mut buf = vec![0u8; 64 * 1024];
    let mut n = 0;
    loop {
        let k = f.read(&mut buf).unwrap();
        if k == 0 {
            return n;
        }
        n += memchr::memchr_iter(b'\n', &buf[..k]).count();
    }
}

fn tail_only(path: &Path) -> usize {
    let pat = PathPattern::parse(path.to_str().unwrap()).unwrap();
    let mut t = Tailer::new(vec![pat], StartAt::Beginning, Arc::new(SourceStats::new()));
    let mut n = t.poll().len();
    while t.has_more() {
        n += t.poll().len();
    }
    n
}

fn parse_only(lines: &[String]) -> usize {
    let mut n = 0;
    for l in lines {
        let (rec, _) = medic_signals::parse_log_record(l);
        n += usize::from(!rec.message.is_empty());
    }
    n
}

async fn source_path(dir: &Path, n: usize, miner: bool) -> (usize, u64) {
    let src = [SourceConfig {
        name: "bench".into(),
        kind: SourceKind::LogFiles {
            paths: vec![dir.join("*.log").to_string_lossy().into_owned()],
            service: None,
            from_start: true,
            poll: Duration::from_millis(50),
            format: LogFormat::Auto,
            container: ContainerFormat::None,
        },
        location: Default::default(),
    }];
    let (tx, mut rx) = mpsc::channel(8192);
    let (stop, shutdown) = watch::channel(false);
    let stats = Arc::new(SourceStats::new());
    let handles = spawn_sources_with(
        &src,
        &RedactionConfig::default(),
        tx,
        shutdown,
        stats.clone(),
        None,
    )
    .unwrap();
    let mut m = medic_templates::TemplateMiner::default();
    let mut got = 0;
    while got < n {
        let Ok(Some(s)) = tokio::time::timeout(Duration::from_secs(30), rx.recv()).await else {
            break;
        };
        if miner && let SignalPayload::Log(l) = &s.payload {
            std::hint::black_box(m.mine_id(&l.message));
        }
        got += 1;
    }
    stop.send(true).unwrap();
    for h in handles {
        let _ = h.await;
    }
    let dropped = stats.get(Counter::LineTooLong) + stats.get(Counter::ContinuationDropped);
    (got, dropped)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = args
        .get(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(2_000_000);
    let runs: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(3);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app-0.log");
    let bytes = write_file(&path, n);
    let lines: Vec<String> = (0..n).map(line).collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    println!(
        "ingest bench: {n} lines, {:.1} MB, {runs} runs, {} cores",
        bytes as f64 / 1e6,
        std::thread::available_parallelism().map_or(0, |p| p.get())
    );
    let mut results: Vec<(&str, Vec<f64>, bool)> = Vec::new();
    let time = |results: &mut Vec<(&'static str, Vec<f64>, bool)>,
                name: &'static str,
                f: &mut dyn FnMut() -> bool| {
        let mut rates = Vec::new();
        let mut all_ok = true;
        for _ in 0..runs {
            let t = Instant::now();
            all_ok &= f();
            rates.push(n as f64 / t.elapsed().as_secs_f64());
        }
        results.push((name, rates, all_ok));
    };
    time(&mut results, "read + split lines (IO ceiling)", &mut || {
        raw_read(&path) == n
    });
    time(&mut results, "tailer only", &mut || tail_only(&path) == n);
    time(&mut results, "redact only (in memory)", &mut || {
        lines
            .iter()
            .filter(|l| !medic_signals::redact(l).is_empty())
            .count()
            == n
    });
    time(&mut results, "timestamp only (in memory)", &mut || {
        lines
            .iter()
            .filter(|l| {
                medic_signals::logparse::parse_timestamp(l.split(' ').next().unwrap_or(""))
                    .is_some()
            })
            .count()
            > 0
    });
    time(&mut results, "parse + redact only (in memory)", &mut || {
        parse_only(&lines) == n
    });
    let messages: Vec<String> = lines
        .iter()
        .map(|l| medic_signals::parse_log_record(l).0.message)
        .collect();
    time(
        &mut results,
        "TemplateMiner only (in memory, peer)",
        &mut || {
            let mut m = medic_templates::TemplateMiner::default();
            for msg in &messages {
                std::hint::black_box(m.mine_id(msg));
            }
            true
        },
    );
    if std::env::var_os("INGEST_BENCH_PARTS_ONLY").is_some() {
        runs_report(&results);
        return;
    }
    time(&mut results, "file source -> channel", &mut || {
        let (got, dropped) = rt.block_on(source_path(dir.path(), n, false));
        got == n && dropped == 0
    });
    time(
        &mut results,
        "file source -> channel -> TemplateMiner",
        &mut || {
            let (got, dropped) = rt.block_on(source_path(dir.path(), n, true));
            got == n && dropped == 0
        },
    );
    runs_report(&results);
}

fn runs_report(results: &[(&str, Vec<f64>, bool)]) {
    println!(
        "{:<42} {:>14} {:>14} {:>8}",
        "case", "median lines/s", "min lines/s", "complete"
    );
    for (name, rates, ok) in results {
        let min = rates.iter().cloned().fold(f64::INFINITY, f64::min);
        println!(
            "{name:<42} {:>14.0} {:>14.0} {:>8}",
            median(rates.clone()),
            min,
            ok
        );
    }
}
