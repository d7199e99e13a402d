//! medic's syslog source and HTTP log ingest fed by the real shippers: syslog-ng (network()
//! TCP and UDP in RFC 3164 with newline framing, syslog() TCP in RFC 5424 octet-counted,
//! http() with an NDJSON body) and rsyslog (omfwd TCP octet-counted RFC 5424, UDP RFC 3164).
//! Both read a file the test writes, run unprivileged from a temp dir, and are stopped by
//! PID when the test ends.

mod common;

use common::{log_text, require, shippers_root, spawn, start_server};
use medic_config::{SyslogProtocol, SyslogSourceConfig};
use medic_core::{Level, Signal};
use medic_signals::{SourceStats, SyslogServer};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};

const LINES: [&str; 3] = [
    "payment declined for order 42",
    "db pool exhausted token=abcdef0123456789abcdef",
    "unicode ok: caf\u{e9} \u{2713}",
];

async fn syslog_server(stop: &watch::Sender<bool>) -> (SyslogServer, Arc<SourceStats>) {
    let _ = stop;
    let stats = Arc::new(SourceStats::new());
    let cfg = SyslogSourceConfig {
        listen: "127.0.0.1:0".into(),
        protocol: SyslogProtocol::Both,
        ..Default::default()
    };
    let s = SyslogServer::bind("syslog", &cfg, stats.clone())
        .await
        .expect("bind syslog");
    (s, stats)
}

async fn collect(rx: &mut mpsc::Receiver<Signal>, n: usize, within: Duration) -> Vec<Signal> {
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + within;
    while out.len() < n {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(s)) => out.push(s),
            _ => break,
        }
    }
    out
}

fn messages(signals: &[Signal]) -> Vec<String> {
    let mut m: Vec<String> = signals
        .iter()
        .filter_map(|s| log_text(s).map(|l| l.message.clone()))
        .collect();
    m.sort();
    m
}

fn expected() -> Vec<String> {
    let mut e: Vec<String> = LINES
        .iter()
        .map(|l| medic_signals::redact(l).into_owned())
        .collect();
    e.sort();
    e
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn syslog_ng_over_tcp_udp_5424_and_http() {
    let root = shippers_root();
    let Some(bin) = require(&root.join("usr/sbin/syslog-ng"), "syslog-ng") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (stop, shutdown) = watch::channel(false);
    let (server, stats) = syslog_server(&stop).await;
    let port = server.tcp_addr().unwrap().port();
    let mut rx = server.start(shutdown);
    let mut http = start_server(1000, |_| {}).await;

    let input = dir.path().join("in.log");
    std::fs::write(&input, LINES.join("\n") + "\n").unwrap();
    let conf = dir.path().join("syslog-ng.conf");
    // One log path per transport, so each message arrives once per destination.
    std::fs::write(
        &conf,
        format!(
            r#"@version: 3.38
options {{ stats-freq(0); }};
source s_in {{ file("{input}" flags(no-parse) follow-freq(0.2) program-override("checkout") default-priority(err) default-facility(local3)); }};
destination d_tcp {{ network("127.0.0.1" port({port}) transport("tcp")); }};
destination d_udp {{ network("127.0.0.1" port({port}) transport("udp")); }};
destination d_5424 {{ syslog("127.0.0.1" port({port}) transport("tcp") persist-name("medic-5424")); }};
destination d_http {{ http(url("http://{http}/ingest/logs") method("POST")
    headers("Content-Type: application/x-ndjson", "Authorization: Bearer {token}")
    body("$(format-json message=$MESSAGE level=$LEVEL app=$PROGRAM host=$HOST timestamp=$ISODATE)")
    body-suffix("\n") batch-lines(10) batch-timeout(200)); }};
log {{ source(s_in); destination(d_tcp); destination(d_udp); destination(d_5424); destination(d_http); }};
"#,
            input = input.display(),
            http = http.addr,
            token = common::INGEST_TOKEN,
        ),
    )
    .unwrap();
    let mut cmd = Command::new(&bin);
    cmd.env("LD_LIBRARY_PATH", root.join("usr/lib/syslog-ng"))
        .arg("-F")
        .arg("-f")
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
        .arg("--no-caps");
    let _child = spawn(cmd, &dir.path().join("syslog-ng.out"));

    let got = collect(&mut rx, 3 * LINES.len(), Duration::from_secs(20)).await;
    let via_http = http.collect(LINES.len(), Duration::from_secs(10)).await;
    let log = std::fs::read_to_string(dir.path().join("syslog-ng.out")).unwrap_or_default();
    assert_eq!(got.len(), 3 * LINES.len(), "syslog-ng output:\n{log}");
    for s in &got {
        assert_eq!(s.service.as_deref(), Some("checkout"), "{s:?}");
        let l = log_text(s).unwrap();
        assert_eq!(l.level, Level::Error, "{s:?}");
        assert_eq!(l.fields.get("facility").map(String::as_str), Some("local3"));
        assert!(s.instance.is_some());
    }
    // Each message intact (and redacted) on each of the three transports.
    let mut want: Vec<String> = expected()
        .into_iter()
        .flat_map(|e| [e.clone(), e.clone(), e])
        .collect();
    want.sort();
    assert_eq!(messages(&got), want);
    assert!(
        !messages(&got)
            .iter()
            .any(|m| m.contains("abcdef0123456789"))
    );
    // syslog() sent RFC 5424 (octet-counted); network() sent RFC 3164.
    let rfc5424 = got
        .iter()
        .filter(|s| log_text(s).is_some_and(|l| l.raw.starts_with("<155>1 ")))
        .count();
    assert_eq!(rfc5424, LINES.len());

    assert_eq!(via_http.len(), LINES.len(), "syslog-ng output:\n{log}");
    assert_eq!(messages(&via_http), expected());
    for s in &via_http {
        assert_eq!(s.service.as_deref(), Some("checkout"));
        assert_eq!(log_text(s).unwrap().level, Level::Error);
    }
    assert_eq!(stats.get(medic_signals::Counter::SyslogMalformed), 0);
    let _ = stop.send(true);
    let _ = http.stop.send(true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rsyslog_octet_counted_tcp_and_udp() {
    let root = shippers_root();
    let Some(bin) = require(&root.join("usr/sbin/rsyslogd"), "rsyslogd") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("work")).unwrap();
    let (stop, shutdown) = watch::channel(false);
    let (server, stats) = syslog_server(&stop).await;
    let port = server.tcp_addr().unwrap().port();
    let mut rx = server.start(shutdown);

    let input = dir.path().join("in.log");
    std::fs::write(&input, LINES.join("\n") + "\n").unwrap();
    let conf = dir.path().join("rsyslog.conf");
    std::fs::write(
        &conf,
        format!(
            r#"global(workDirectory="{work}")
module(load="imfile" mode="polling" PollingInterval="1")
input(type="imfile" File="{input}" Tag="billing:" Severity="warning" Facility="local0" freshStartTail="off")
action(type="omfwd" target="127.0.0.1" port="{port}" protocol="tcp" TCP_Framing="octet-counted" template="RSYSLOG_SyslogProtocol23Format")
action(type="omfwd" target="127.0.0.1" port="{port}" protocol="udp")
"#,
            work = dir.path().join("work").display(),
            input = input.display(),
        ),
    )
    .unwrap();
    let mut cmd = Command::new(&bin);
    cmd.arg("-n")
        .arg("-f")
        .arg(&conf)
        .arg("-i")
        .arg(dir.path().join("rsyslogd.pid"))
        .arg("-M")
        .arg(root.join("usr/lib/x86_64-linux-gnu/rsyslog"));
    let _child = spawn(cmd, &dir.path().join("rsyslogd.out"));

    let got = collect(&mut rx, 2 * LINES.len(), Duration::from_secs(20)).await;
    let log = std::fs::read_to_string(dir.path().join("rsyslogd.out")).unwrap_or_default();
    assert_eq!(got.len(), 2 * LINES.len(), "rsyslogd output:\n{log}");
    for s in &got {
        assert_eq!(s.service.as_deref(), Some("billing"), "{s:?}");
        let l = log_text(s).unwrap();
        assert_eq!(l.level, Level::Warn, "{s:?}");
        assert_eq!(l.fields.get("facility").map(String::as_str), Some("local0"));
    }
    let mut want: Vec<String> = expected()
        .into_iter()
        .flat_map(|e| [e.clone(), e])
        .collect();
    want.sort();
    assert_eq!(messages(&got), want);
    assert_eq!(stats.get(medic_signals::Counter::SyslogMalformed), 0);
    let _ = stop.send(true);
}
