//! Syslog ingest throughput over TCP (octet-counted RFC 5424, newline-framed RFC 3164): one
//! client writes N messages as fast as the receiver takes them; the time runs from the first
//! byte to the last message received. Side by side in the same run with syslog-ng 3.38
//! (the peer, unpacked by crates/medic-server/tests/shippers/install.sh) receiving the same
//! bytes with a network() source and writing them to a file, timed until the file holds N
//! lines. Also the parse + redact cost alone, without IO.
//!
//!     cargo run --release -p medic-signals --example syslog_bench [-- MESSAGES RUNS]

use medic_config::{SyslogProtocol, SyslogSourceConfig};
use medic_core::Ts;
use medic_signals::ingest::syslog::{SyslogContext, parse_syslog, syslog_to_signal};
use medic_signals::{SourceStats, SyslogServer};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio::sync::watch;

fn message(i: usize, rfc5424: bool) -> String {
    let body = match i % 4 {
        0 => format!("GET /product/{} 200 in {} ms", i % 977, i % 300),
        1 => format!(
            "connection pool low: active={} idle={} token=abc{:012x}",
            i % 50,
            i % 7,
            i
        ),
        2 => format!(
            "payment {} declined: card 4111 1111 1111 1111 user=u{}@example.com",
            i,
            i % 13
        ),
        _ => format!(
            "worker {} finished job {} after {} retries",
            i % 8,
            i,
            i % 3
        ),
    };
    if rfc5424 {
        format!(
            "<{}>1 2024-05-01T10:00:00.{:03}Z web{} checkout {} - [m@1 k=\"{}\"] {body}",
            128 + i % 8,
            i % 1000,
            i % 4,
            i % 9000,
            i
        )
    } else {
        format!(
            "<{}>May  1 10:00:00 web{} checkout[{}]: {body}",
            128 + i % 8,
            i % 4,
            i % 9000
        )
    }
}

fn stream(n: usize, rfc5424: bool) -> Vec<u8> {
    let mut out = Vec::new();
    for i in 0..n {
        let m = message(i, rfc5424);
        if rfc5424 {
            out.extend_from_slice(format!("{} ", m.len()).as_bytes());
            out.extend_from_slice(m.as_bytes());
        } else {
            out.extend_from_slice(m.as_bytes());
            out.push(b'\n');
        }
    }
    out
}

async fn medic_run(data: &[u8], n: usize) -> (f64, usize) {
    let stats = Arc::new(SourceStats::new());
    let cfg = SyslogSourceConfig {
        listen: "127.0.0.1:0".into(),
        protocol: SyslogProtocol::Tcp,
        ..Default::default()
    };
    let server = SyslogServer::bind("bench", &cfg, stats)
        .await
        .expect("bind");
    let addr = server.tcp_addr().expect("tcp");
    let (stop, shutdown) = watch::channel(false);
    let mut rx = server.start(shutdown);
    let start = Instant::now();
    let data = data.to_vec();
    let writer = tokio::spawn(async move {
        let mut c = tokio::net::TcpStream::connect(addr).await.expect("connect");
        c.write_all(&data).await.expect("write");
        c.shutdown().await.ok();
    });
    let mut got = 0;
    while got < n {
        match tokio::time::timeout(Duration::from_secs(10), rx.recv()).await {
            Ok(Some(_)) => got += 1,
            _ => break,
        }
    }
    let secs = start.elapsed().as_secs_f64();
    writer.await.ok();
    let _ = stop.send(true);
    (got as f64 / secs, got)
}

fn count_lines(p: &std::path::Path) -> usize {
    std::fs::read(p)
        .map(|b| b.iter().filter(|&&c| c == b'\n').count())
        .unwrap_or(0)
}

async fn syslog_ng_run(
    root: &std::path::Path,
    data: &[u8],
    n: usize,
    rfc5424: bool,
) -> Option<(f64, usize)> {
    let bin = root.join("usr/sbin/syslog-ng");
    if !bin.exists() {
        return None;
    }
    let dir = tempfile::tempdir().ok()?;
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").ok()?;
        l.local_addr().ok()?.port()
    };
    let out = dir.path().join("out.log");
    let src = if rfc5424 {
        format!(
            "syslog(ip(127.0.0.1) port({port}) transport(\"tcp\") max-connections(10) log-iw-size(10000))"
        )
    } else {
        format!(
            "network(ip(127.0.0.1) port({port}) transport(\"tcp\") max-connections(10) log-iw-size(10000))"
        )
    };
    let conf = dir.path().join("c.conf");
    std::fs::write(&conf, format!("@version: 3.38\noptions {{ stats-freq(0); }};\nsource s {{ {src}; }};\ndestination d {{ file(\"{}\"); }};\nlog {{ source(s); destination(d); }};\n", out.display())).ok()?;
    let mut child = Command::new(bin)
        .env("LD_LIBRARY_PATH", root.join("usr/lib/syslog-ng"))
        .args(["-F", "--no-caps", "-f"])
        .arg(&conf)
        .arg(format!(
            "--module-path={}",
            root.join("usr/lib/syslog-ng/3.38").display()
        ))
        .arg("-p")
        .arg(dir.path().join("pid"))
        .arg("-R")
        .arg(dir.path().join("persist"))
        .arg("-c")
        .arg(dir.path().join("ctl"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    // Wait (bounded) for it to listen.
    let mut conn = None;
    for _ in 0..100 {
        if let Ok(c) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
            conn = Some(c);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut c = conn?;
    let start = Instant::now();
    c.write_all(data).await.ok()?;
    c.shutdown().await.ok();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut got = 0;
    while Instant::now() < deadline {
        got = count_lines(&out);
        if got >= n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let secs = start.elapsed().as_secs_f64();
    let _ = child.kill();
    let _ = child.wait();
    Some((got as f64 / secs, got))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let n = args.first().copied().unwrap_or(200_000);
    let runs = args.get(1).copied().unwrap_or(3).max(1);
    let root = std::env::var_os("MEDIC_SHIPPERS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
                .join(".cache/medic/shippers")
        })
        .join("root");
    println!(
        "syslog_bench: {n} messages, median of {runs} runs, {} cores",
        std::thread::available_parallelism()
            .map(|p| p.get())
            .unwrap_or(0)
    );
    for rfc5424 in [true, false] {
        let label = if rfc5424 {
            "RFC 5424 octet-counted"
        } else {
            "RFC 3164 newline"
        };
        let msgs: Vec<String> = (0..n).map(|i| message(i, rfc5424)).collect();
        let mut parse = Vec::new();
        for _ in 0..runs {
            let t = Instant::now();
            let cx = SyslogContext {
                source: "b",
                service: None,
                now: Ts(0),
            };
            let mut ok = 0usize;
            for m in &msgs {
                if let Ok(p) = parse_syslog(m) {
                    let s = syslog_to_signal(p, m, &cx);
                    ok += usize::from(s.service.is_some());
                }
            }
            assert_eq!(ok, n);
            parse.push(n as f64 / t.elapsed().as_secs_f64());
        }
        let data = stream(n, rfc5424);
        let mut medic = Vec::new();
        let mut medic_all = true;
        let mut peer = Vec::new();
        let mut peer_all = true;
        for _ in 0..runs {
            let (rate, got) = medic_run(&data, n).await;
            medic_all &= got == n;
            medic.push(rate);
            if let Some((rate, got)) = syslog_ng_run(&root, &data, n, rfc5424).await {
                peer_all &= got >= n;
                peer.push(rate);
            }
        }
        println!("{label}:");
        println!(
            "  medic parse+redact only      {:>12.0} msg/s",
            median(parse)
        );
        println!(
            "  medic TCP source end to end  {:>12.0} msg/s  (all arrived: {medic_all})",
            median(medic.clone())
        );
        if peer.is_empty() {
            println!(
                "  syslog-ng: not installed (run crates/medic-server/tests/shippers/install.sh)"
            );
        } else {
            let p = median(peer);
            println!(
                "  syslog-ng 3.38 TCP -> file   {:>12.0} msg/s  (all arrived: {peer_all})",
                p
            );
            println!("  ratio medic / syslog-ng      {:>12.2}", median(medic) / p);
        }
    }
}
