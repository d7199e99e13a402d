//! Template-mining throughput on one core (run pinned: `taskset -c 0`), and a memory check.
//!
//! ```text
//! throughput loghub DIR OUT_MESSAGES SECONDS   # Loghub message bodies (also written to OUT for Drain3), repeated ~SECONDS
//! throughput file PATH [MAX_LINES]             # a message-per-line file, streamed in chunks; + memchr scan baseline
//! throughput lines PATH MAX_LINES [SECONDS]    # the first MAX_LINES lines loaded first, then mined (as drain3_bench.py does)
//! throughput memory LINES DISTINCT             # LINES messages with DISTINCT parameter values → peak RSS
//! ```
//! Output: one JSON object per measurement on stdout.

use medic_templates::loghub::{LogFormat, known_format};
use medic_templates::{MinerConfig, TemplateMiner};
use std::io::{Read, Write};
use std::time::Instant;

fn main() {
    let a: Vec<String> = std::env::args().collect();
    let arg = |i: usize| a.get(i).cloned().unwrap_or_default();
    match arg(1).as_str() {
        "loghub" => loghub(&arg(2), &arg(3), arg(4).parse().unwrap_or(10.0)),
        "file" => file(&arg(2), arg(3).parse().unwrap_or(u64::MAX)),
        "lines" => lines(
            &arg(2),
            arg(3).parse().unwrap_or(usize::MAX),
            arg(4).parse().unwrap_or(0.0),
        ),
        "memory" => memory(
            arg(2).parse().unwrap_or(10_000_000),
            arg(3).parse().unwrap_or(1_000_000),
        ),
        _ => eprintln!(
            "usage: throughput loghub DIR OUT SECONDS | file PATH [MAX_LINES] | lines PATH MAX_LINES [SECONDS] | memory LINES DISTINCT"
        ),
    }
}

fn cfg() -> MinerConfig {
    MinerConfig {
        extract_params: false,
        ..MinerConfig::default()
    }
}

fn loghub(dir: &str, out: &str, secs: f64) {
    let mut msgs: Vec<String> = Vec::new();
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|r| {
            r.filter_map(|e| e.ok())
                .filter_map(|e| e.file_name().to_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    for s in names {
        let Some(fmt) = known_format(&s).and_then(|f| LogFormat::parse(f).ok()) else {
            continue;
        };
        let Ok(text) = std::fs::read(format!("{dir}/{s}/{s}_2k.log")) else {
            continue;
        };
        let text = String::from_utf8_lossy(&text);
        for l in text.lines() {
            if let Some(c) = fmt.content(l) {
                msgs.push(c.replace(['\n', '\r'], " "));
            }
        }
    }
    if let Ok(mut f) = std::fs::File::create(out) {
        for m in &msgs {
            let _ = writeln!(f, "{m}");
        }
    }
    let bytes: usize = msgs.iter().map(|m| m.len() + 1).sum();
    // First pass alone (cold: every template is new to the miner), then repeated passes.
    let mut miner = TemplateMiner::new(cfg());
    let t0 = Instant::now();
    let mut acc = 0u64;
    for m in &msgs {
        acc = acc.wrapping_add(u64::from(miner.mine_id(m).0));
    }
    let cold = t0.elapsed().as_secs_f64();
    let mut passes = 0u64;
    let t1 = Instant::now();
    while t1.elapsed().as_secs_f64() < secs {
        for m in &msgs {
            acc = acc.wrapping_add(u64::from(miner.mine_id(m).0));
        }
        passes += 1;
    }
    let warm = t1.elapsed().as_secs_f64();
    let lines = msgs.len() as f64;
    println!(
        "{{\"bench\":\"loghub\",\"messages\":{},\"bytes\":{},\"templates\":{},\"cold_lines_per_sec\":{:.0},\"warm_passes\":{},\"warm_lines_per_sec\":{:.0},\"warm_bytes_per_sec\":{:.0},\"checksum\":{}}}",
        msgs.len(),
        bytes,
        miner.len(),
        lines / cold,
        passes,
        lines * passes as f64 / warm,
        bytes as f64 * passes as f64 / warm,
        acc
    );
}

fn file(path: &str, max_lines: u64) {
    // Streams the file in chunks so 1 GB needs no 1 GB buffer; the scan baseline reads the
    // same chunks and only counts newlines.
    let run = |mine: bool| -> (u64, u64, f64, usize) {
        let Ok(mut f) = std::fs::File::open(path) else {
            eprintln!("cannot open {path}");
            return (0, 0, 1.0, 0);
        };
        let mut miner = TemplateMiner::new(cfg());
        let mut buf = vec![0u8; 16 << 20];
        let mut carry: Vec<u8> = Vec::new();
        let (mut lines, mut bytes) = (0u64, 0u64);
        let t0 = Instant::now();
        'outer: loop {
            let n = match f.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            carry.extend_from_slice(&buf[..n]);
            let mut start = 0;
            for nl in memchr::memchr_iter(b'\n', &carry) {
                if lines >= max_lines {
                    break 'outer;
                }
                let line = &carry[start..nl];
                if mine {
                    let s = std::str::from_utf8(line).map_or_else(
                        |_| String::from_utf8_lossy(line),
                        std::borrow::Cow::Borrowed,
                    );
                    miner.mine_id(&s);
                }
                lines += 1;
                bytes += (nl - start + 1) as u64;
                start = nl + 1;
            }
            carry.drain(..start);
        }
        (lines, bytes, t0.elapsed().as_secs_f64(), miner.len())
    };
    let (sl, sb, st, _) = run(false);
    let (l, b, t, templates) = run(true);
    println!(
        "{{\"bench\":\"file\",\"path\":\"{path}\",\"lines\":{l},\"bytes\":{b},\"templates\":{templates},\"lines_per_sec\":{:.0},\"bytes_per_sec\":{:.0},\"scan_lines\":{sl},\"scan_bytes_per_sec\":{:.0},\"scan_over_mine\":{:.1}}}",
        l as f64 / t,
        b as f64 / t,
        sb as f64 / st,
        (sb as f64 / st) / (b as f64 / t)
    );
}

/// Mining only, lines already in memory: the same work the Drain3 script times (it reads the
/// file before starting its clock). Repeats whole passes until SECONDS (at least one pass).
fn lines(path: &str, max_lines: usize, secs: f64) {
    let Ok(text) = std::fs::read(path) else {
        eprintln!("cannot open {path}");
        return;
    };
    let msgs: Vec<String> = text
        .split(|&b| b == b'\n')
        .take(max_lines)
        .map(|l| String::from_utf8_lossy(l).into_owned())
        .collect();
    drop(text);
    let bytes: usize = msgs.iter().map(|m| m.len() + 1).sum();
    let mut miner = TemplateMiner::new(cfg());
    let mut acc = 0u64;
    let mut passes = 0u64;
    let t0 = Instant::now();
    loop {
        for m in &msgs {
            acc = acc.wrapping_add(u64::from(miner.mine_id(m).0));
        }
        passes += 1;
        if t0.elapsed().as_secs_f64() >= secs {
            break;
        }
    }
    let t = t0.elapsed().as_secs_f64();
    let n = msgs.len() as f64 * passes as f64;
    println!(
        "{{\"bench\":\"lines\",\"path\":\"{path}\",\"messages\":{},\"passes\":{passes},\"templates\":{},\"lines_per_sec\":{:.0},\"bytes_per_sec\":{:.0},\"checksum\":{acc}}}",
        msgs.len(),
        miner.len(),
        n / t,
        bytes as f64 * passes as f64 / t
    );
}

fn vm_hwm_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn memory(lines: u64, distinct: u64) {
    let mut miner = TemplateMiner::new(MinerConfig::default());
    let users = ["alice", "bob", "carol", "dave"];
    let mut msg = String::with_capacity(256);
    let t0 = Instant::now();
    let mut params = 0usize;
    for i in 0..lines {
        let v = (i.wrapping_mul(2_654_435_761)) % distinct;
        msg.clear();
        use std::fmt::Write as _;
        // Several shapes; the distinct values are numbers, hex ids, words and paths.
        let _ = match i % 5 {
            0 => write!(
                msg,
                "Accepted password for user{v} from 10.{}.{}.{} port {} ssh2",
                v % 256,
                (v >> 8) % 256,
                v >> 16,
                1024 + v % 60000
            ),
            1 => write!(
                msg,
                "Received block blk_{v} of size {} from /10.0.{}.{}",
                v * 7,
                v % 256,
                v % 199
            ),
            2 => write!(
                msg,
                "session {v:x}deadbeef opened for {} in {}ms",
                users[(v % 4) as usize],
                v % 997
            ),
            3 => write!(
                msg,
                "GET /api/v1/items/{v}?page={} returned 200 in {}.{}s",
                v % 13,
                v % 5,
                v % 1000
            ),
            _ => write!(
                msg,
                "worker-{v} lost heartbeat; last seen id={v} token=tk{v}zz"
            ),
        };
        let m = miner.mine(&msg);
        params += m.params.len();
    }
    let secs = t0.elapsed().as_secs_f64();
    let hwm = vm_hwm_kb();
    println!(
        "{{\"bench\":\"memory\",\"lines\":{lines},\"distinct_values\":{distinct},\"templates\":{},\"params_seen\":{params},\"miner_memory_bytes\":{},\"vm_hwm_kb\":{hwm},\"under_200mb\":{},\"lines_per_sec\":{:.0}}}",
        miner.len(),
        miner.memory_bytes(),
        hwm < 200 * 1024,
        lines as f64 / secs
    );
}
