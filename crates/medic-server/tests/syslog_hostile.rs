//! The syslog source under hostile input: a UDP flood with nobody reading (bounded queue,
//! drops counted as `syslog_overload`), junk and oversized TCP frames (counted, the stream
//! stays in sync), and more connections than allowed (refused, counted).

use medic_config::{SyslogProtocol, SyslogSourceConfig};
use medic_signals::{Counter, SourceStats, SyslogServer};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::sync::watch;

async fn bind(cfg: SyslogSourceConfig) -> (SyslogServer, Arc<SourceStats>) {
    let stats = Arc::new(SourceStats::new());
    let s = SyslogServer::bind("syslog", &cfg, stats.clone())
        .await
        .unwrap();
    (s, stats)
}

fn cfg() -> SyslogSourceConfig {
    SyslogSourceConfig {
        listen: "127.0.0.1:0".into(),
        protocol: SyslogProtocol::Both,
        ..Default::default()
    }
}

async fn wait_for(what: impl Fn() -> bool) {
    // Bounded: at most 5 s.
    for _ in 0..100 {
        if what() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn udp_flood_drops_beyond_the_queue_and_counts_them() {
    let (server, stats) = bind(SyslogSourceConfig {
        queue: 100,
        ..cfg()
    })
    .await;
    let addr = server.udp_addr().unwrap();
    let (stop, shutdown) = watch::channel(false);
    let mut rx = server.start(shutdown);
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let sent = 5_000u64;
    for i in 0..sent {
        let msg = format!("<11>1 2024-01-01T00:00:00Z h app - - - flood {i}");
        let _ = sock.send_to(msg.as_bytes(), addr).await;
        if i % 500 == 0 {
            tokio::task::yield_now().await;
        }
    }
    wait_for(|| stats.get(Counter::LinesRead) + 50 >= sent).await;
    // Nobody read: the queue holds at most its bound, the rest was counted, never buffered.
    let read = stats.get(Counter::LinesRead);
    let overload = stats.get(Counter::SyslogOverload);
    assert!(read > 1000, "read {read}");
    assert_eq!(read - overload, 100, "queued = read - dropped");
    let mut queued = 0;
    while rx.try_recv().is_ok() {
        queued += 1;
    }
    assert_eq!(queued, 100);
    let _ = stop.send(true);
}

#[tokio::test]
async fn tcp_junk_oversized_frames_and_too_many_connections() {
    let (server, stats) = bind(SyslogSourceConfig {
        max_message_bytes: 1024,
        max_connections: 2,
        ..cfg()
    })
    .await;
    let addr = server.tcp_addr().unwrap();
    let (stop, shutdown) = watch::channel(false);
    let mut rx = server.start(shutdown);

    let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
    let huge = "x".repeat(10_000);
    let head = "<11>1 - h app - - - ";
    let stream = format!(
        "<999>bad pri\n\n   \n{len} {head}{huge}{head}after\n<13>{huge}\n<14>Oct 11 22:14:15 h su: last\n",
        len = head.len() + huge.len(),
    );
    c.write_all(stream.as_bytes()).await.unwrap();
    c.write_all(&[0xff, 0xfe, b'\n']).await.unwrap();
    c.shutdown().await.unwrap();

    let mut messages = Vec::new();
    while let Ok(Some(s)) = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await {
        if let medic_core::SignalPayload::Log(l) = s.payload {
            messages.push(l.message);
        }
        if messages.len() == 5 {
            break;
        }
    }
    assert_eq!(messages.len(), 5, "{messages:?}");
    assert_eq!(messages[0].len(), 1024 - head.len(), "cut at the limit");
    assert_eq!(messages[1], "after", "stream in sync after a cut frame");
    assert_eq!(messages[3], "last");
    assert_eq!(stats.get(Counter::SyslogMalformed), 1);
    assert_eq!(stats.get(Counter::LineTooLong), 2);
    assert_eq!(stats.get(Counter::InvalidUtf8), 1);

    // Two idle connections use the limit; the third is refused and counted.
    let _a = tokio::net::TcpStream::connect(addr).await.unwrap();
    let _b = tokio::net::TcpStream::connect(addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let _c = tokio::net::TcpStream::connect(addr).await.unwrap();
    wait_for(|| stats.get(Counter::SyslogConnectionRefused) == 1).await;
    assert_eq!(stats.get(Counter::SyslogConnectionRefused), 1);
    let _ = stop.send(true);
}
