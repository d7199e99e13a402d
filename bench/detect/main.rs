//! Throughput of the whole default detector set on log signals: what `medic run` does with
//! each log record after a source has parsed and redacted it (template mining per service, the
//! pattern library, error bursts and new error messages, ...). One thread, release build.
//!
//! cargo run --release -p medic-detect --example detect_bench -- 1000000 3

use medic_config::DetectorsConfig;
use medic_core::{Level, LogLine, Signal, SignalPayload, Ts};
use medic_detect::Detectors;
use std::time::Instant;

/// A fixed, varied mix of records across 8 services (mostly info, some warn/error, a few
/// stack traces), generated up front so only the detectors are timed.
fn records(n: usize) -> Vec<Signal> {
    let services = [
        "frontend", "checkout", "payment", "catalog", "cache", "auth", "search", "mail",
    ];
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let t0 = 1_795_000_000_000i64;
    (0..n)
        .map(|i| {
            let r = next();
            let svc = services[(r % 8) as usize];
            let (level, message) = match r % 100 {
                0 => (
                    Level::Error,
                    format!(
                        "upstream {} timed out after {}ms",
                        services[(r >> 8) as usize % 8],
                        r % 900
                    ),
                ),
                1 => (
                    Level::Error,
                    format!(
                        "connection refused calling 10.0.{}.{}:6379",
                        r % 256,
                        (r >> 16) % 256
                    ),
                ),
                2..=4 => (
                    Level::Warn,
                    format!(
                        "slow request {} took {}ms (threshold 250ms)",
                        r % 10_000,
                        250 + r % 700
                    ),
                ),
                5..=9 => (
                    Level::Info,
                    format!(
                        "cache refreshed with {} entries in {}ms",
                        r % 50_000,
                        r % 90
                    ),
                ),
                10..=14 => (
                    Level::Info,
                    format!(
                        "user {} logged in from 192.168.{}.{}",
                        r % 100_000,
                        r % 256,
                        (r >> 9) % 256
                    ),
                ),
                _ => (
                    Level::Info,
                    format!(
                        "GET /api/items/{} 200 {}ms trace={:016x}",
                        r % 1_000_000,
                        r % 120,
                        r
                    ),
                ),
            };
            Signal {
                ts: Ts(t0 + (i as i64) / 20),
                source: "logs".into(),
                service: Some(svc.into()),
                instance: Some(format!("{svc}-0")),
                payload: SignalPayload::Log(LogLine {
                    level,
                    raw: message.clone(),
                    message,
                    ..LogLine::default()
                }),
            }
        })
        .collect()
}

fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let runs: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(3);
    let input = records(n);
    let mut rates = Vec::new();
    for run in 0..runs {
        let mut d = Detectors::new(&DetectorsConfig::default());
        let mut findings = 0usize;
        let start = Instant::now();
        for (i, s) in input.iter().enumerate() {
            findings += d.observe(s).len();
            // The agent evaluates once per tick (1 s); at 20 records per simulated ms that is
            // every 20 000 records.
            if i % 20_000 == 0 {
                findings += d.evaluate(s.ts).len();
            }
        }
        let secs = start.elapsed().as_secs_f64();
        let rate = n as f64 / secs;
        rates.push(rate);
        println!(
            "{{\"run\":{run},\"records\":{n},\"secs\":{secs:.3},\"records_per_sec\":{rate:.0},\"findings\":{findings}}}"
        );
    }
    rates.sort_by(f64::total_cmp);
    println!("median records/s: {:.0}", rates[rates.len() / 2]);
}
