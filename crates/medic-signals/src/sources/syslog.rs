//! `type: syslog`: RFC 3164 / RFC 5424 over UDP and TCP. TCP framing (octet-counting or
//! newline, RFC 6587) is detected per message. Memory is bounded everywhere: messages are
//! cut at `max_message_bytes` (counted), TCP connections are capped (refusals counted), and
//! parsed messages wait in a queue of `queue` entries. UDP has no way to slow a sender, so a
//! full queue drops the datagram as `syslog_overload`; TCP stops reading instead, so the
//! sender's own buffer holds the excess and nothing accepted is lost.

use super::{Source, SourceContext, SourceFuture, invalid, wait_for_shutdown};
use crate::SignalsError;
use crate::ingest::syslog::{SyslogContext, parse_syslog, syslog_to_signal};
use crate::stats::{Counter, SourceStats};
use medic_config::{SourceConfig, SourceKind, SyslogProtocol, SyslogSourceConfig};
use medic_core::{Signal, Ts};
use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{Semaphore, mpsc, watch};

pub(crate) struct SyslogSource {
    name: String,
    cfg: SyslogSourceConfig,
}

impl SyslogSource {
    pub(crate) fn build(cfg: &SourceConfig) -> Result<Box<dyn Source>, SignalsError> {
        let SourceKind::Syslog(s) = &cfg.kind else {
            return Err(invalid(cfg, "not a syslog source"));
        };
        if s.listen.parse::<SocketAddr>().is_err() {
            return Err(invalid(
                cfg,
                format!("invalid `listen` `{}`: expected `ip:port`", s.listen),
            ));
        }
        Ok(Box::new(SyslogSource {
            name: cfg.name.clone(),
            cfg: s.clone(),
        }))
    }
}

impl Source for SyslogSource {
    fn name(&self) -> &str {
        &self.name
    }

    fn run(self: Box<Self>, mut ctx: SourceContext) -> SourceFuture {
        Box::pin(async move {
            let server = match SyslogServer::bind(&self.name, &self.cfg, ctx.stats.clone()).await {
                Ok(s) => s,
                Err(e) => {
                    ctx.stats.incr(Counter::ReadError);
                    tracing::error!(source = %self.name, error = %e, "syslog source cannot listen");
                    return;
                }
            };
            let mut rx = server.start(ctx.shutdown.clone());
            while let Some(signal) = rx.recv().await {
                if !ctx.emit(signal).await {
                    return;
                }
            }
        })
    }
}

/// Bound syslog listeners, ready to run. Public so tests and benchmarks can bind port 0
/// and learn the address.
pub struct SyslogServer {
    name: String,
    cfg: SyslogSourceConfig,
    stats: Arc<SourceStats>,
    udp: Option<UdpSocket>,
    tcp: Option<TcpListener>,
}

impl SyslogServer {
    /// Binds the configured transports. With port 0 and `both`, TCP picks the port and UDP
    /// binds the same one.
    pub async fn bind(
        name: &str,
        cfg: &SyslogSourceConfig,
        stats: Arc<SourceStats>,
    ) -> Result<SyslogServer, SignalsError> {
        let addr: SocketAddr = cfg
            .listen
            .parse()
            .map_err(|_| SignalsError::InvalidConfig {
                source_name: name.to_string(),
                reason: format!("invalid `listen` `{}`: expected `ip:port`", cfg.listen),
            })?;
        let io = |source: std::io::Error| SignalsError::Io {
            path: format!("{addr}").into(),
            source,
        };
        let tcp = match cfg.protocol {
            SyslogProtocol::Tcp | SyslogProtocol::Both => {
                Some(TcpListener::bind(addr).await.map_err(io)?)
            }
            SyslogProtocol::Udp => None,
        };
        let udp_addr = match &tcp {
            Some(l) => l.local_addr().map_err(io)?,
            None => addr,
        };
        let udp = match cfg.protocol {
            SyslogProtocol::Udp | SyslogProtocol::Both => {
                Some(UdpSocket::bind(udp_addr).await.map_err(io)?)
            }
            SyslogProtocol::Tcp => None,
        };
        Ok(SyslogServer {
            name: name.to_string(),
            cfg: cfg.clone(),
            stats,
            udp,
            tcp,
        })
    }

    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        self.tcp.as_ref().and_then(|l| l.local_addr().ok())
    }

    pub fn udp_addr(&self) -> Option<SocketAddr> {
        self.udp.as_ref().and_then(|s| s.local_addr().ok())
    }

    /// Starts the listeners; parsed signals arrive on the returned bounded channel until
    /// `shutdown`.
    pub fn start(self, shutdown: watch::Receiver<bool>) -> mpsc::Receiver<Signal> {
        let (tx, rx) = mpsc::channel(self.cfg.queue.max(1));
        let shared = Arc::new(Shared {
            name: self.name,
            service: self.cfg.service.clone(),
            max: self.cfg.max_message_bytes,
            stats: self.stats,
        });
        if let Some(sock) = self.udp {
            tokio::spawn(run_udp(sock, tx.clone(), shared.clone(), shutdown.clone()));
        }
        if let Some(listener) = self.tcp {
            let limit = Arc::new(Semaphore::new(self.cfg.max_connections.max(1)));
            tokio::spawn(run_tcp(listener, tx, shared, limit, shutdown));
        }
        rx
    }
}

struct Shared {
    name: String,
    service: Option<String>,
    max: usize,
    stats: Arc<SourceStats>,
}

impl Shared {
    /// One framed message → a signal, or `None` (counted) when it is not syslog.
    fn decode(&self, bytes: &[u8], truncated: bool) -> Option<Signal> {
        self.stats.incr(Counter::LinesRead);
        if truncated {
            self.stats.incr(Counter::LineTooLong);
        }
        let text = String::from_utf8_lossy(bytes);
        if matches!(text, Cow::Owned(_)) {
            self.stats.incr(Counter::InvalidUtf8);
        }
        match parse_syslog(&text) {
            Ok(m) => {
                let cx = SyslogContext {
                    source: &self.name,
                    service: self.service.as_deref(),
                    now: Ts::now(),
                };
                Some(syslog_to_signal(m, &text, &cx))
            }
            Err(_) => {
                self.stats.incr(Counter::SyslogMalformed);
                None
            }
        }
    }
}

async fn run_udp(
    sock: UdpSocket,
    tx: mpsc::Sender<Signal>,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) {
    // The largest UDP payload; anything past `max` is cut (and counted) below.
    let mut buf = vec![0u8; 65_536];
    loop {
        let n = tokio::select! {
            biased;
            _ = wait_for_shutdown(&mut shutdown) => return,
            r = sock.recv_from(&mut buf) => match r {
                Ok((n, _)) => n,
                Err(e) => {
                    // ICMP errors and the like: keep listening.
                    tracing::debug!(source = %shared.name, error = %e, "syslog udp receive failed");
                    continue;
                }
            },
        };
        let truncated = n > shared.max;
        let Some(signal) = shared.decode(&buf[..n.min(shared.max)], truncated) else {
            continue;
        };
        match tx.try_send(signal) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                shared.stats.incr(Counter::SyslogOverload);
            }
            Err(mpsc::error::TrySendError::Closed(_)) => return,
        }
    }
}

async fn run_tcp(
    listener: TcpListener,
    tx: mpsc::Sender<Signal>,
    shared: Arc<Shared>,
    limit: Arc<Semaphore>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let stream = tokio::select! {
            biased;
            _ = wait_for_shutdown(&mut shutdown) => return,
            r = listener.accept() => match r {
                Ok((s, _)) => s,
                Err(e) => {
                    tracing::debug!(source = %shared.name, error = %e, "syslog tcp accept failed");
                    // Out of file descriptors and the like: do not spin.
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = limit.clone().try_acquire_owned() else {
            shared.stats.incr(Counter::SyslogConnectionRefused);
            drop(stream);
            continue;
        };
        let (tx, shared, shutdown) = (tx.clone(), shared.clone(), shutdown.clone());
        tokio::spawn(async move {
            handle_tcp(stream, tx, shared, shutdown).await;
            drop(permit);
        });
    }
}

async fn handle_tcp(
    mut stream: TcpStream,
    tx: mpsc::Sender<Signal>,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut framer = Framer::new(shared.max);
    let mut chunk = vec![0u8; 16 * 1024];
    let mut frames = Vec::new();
    loop {
        let n = tokio::select! {
            biased;
            _ = wait_for_shutdown(&mut shutdown) => return,
            // A read error ends the connection like EOF does.
            r = stream.read(&mut chunk) => r.unwrap_or(0),
        };
        if n == 0 {
            framer.finish(&mut frames);
        } else {
            framer.push(&chunk[..n], &mut frames);
        }
        for f in frames.drain(..) {
            if let Some(signal) = shared.decode(&f.bytes, f.truncated) {
                // Waiting here stops reading, which slows the sender (TCP backpressure).
                let sent = tokio::select! {
                    biased;
                    _ = wait_for_shutdown(&mut shutdown) => return,
                    r = tx.send(signal) => r.is_ok(),
                };
                if !sent {
                    return;
                }
            }
        }
        if n == 0 {
            return;
        }
    }
}

/// One message cut from a TCP stream.
#[derive(Debug, PartialEq, Eq)]
pub struct Frame {
    pub bytes: Vec<u8>,
    /// The message was longer than the limit and was cut.
    pub truncated: bool,
}

/// RFC 6587 framing, detected per message: `LEN SP MSG` (octet-counting) when the message
/// starts with a digit followed by a length and a space, else up to the next newline.
/// Holds at most about `max` bytes however the stream is shaped.
#[derive(Debug)]
pub struct Framer {
    buf: Vec<u8>,
    max: usize,
    /// Bytes of an oversized octet-counted message still to be thrown away.
    skip: usize,
    /// The rest of an oversized newline-framed message is being thrown away.
    discard_line: bool,
}

impl Framer {
    pub fn new(max: usize) -> Framer {
        Framer {
            buf: Vec::new(),
            max: max.max(1),
            skip: 0,
            discard_line: false,
        }
    }

    pub fn push(&mut self, mut data: &[u8], out: &mut Vec<Frame>) {
        if self.skip > 0 {
            let n = self.skip.min(data.len());
            self.skip -= n;
            data = &data[n..];
        }
        if self.discard_line {
            match data.iter().position(|&b| b == b'\n') {
                Some(i) => {
                    self.discard_line = false;
                    data = &data[i + 1..];
                }
                None => return,
            }
        }
        self.buf.extend_from_slice(data);
        self.cut(out);
    }

    /// End of stream: what is left is one last newline-less message.
    pub fn finish(&mut self, out: &mut Vec<Frame>) {
        let rest = std::mem::take(&mut self.buf);
        let trimmed = trim_separators(&rest);
        if !trimmed.is_empty() && !self.discard_line && self.skip == 0 {
            let truncated = trimmed.len() > self.max;
            out.push(Frame {
                bytes: trimmed[..trimmed.len().min(self.max)].to_vec(),
                truncated,
            });
        }
    }

    fn cut(&mut self, out: &mut Vec<Frame>) {
        let mut pos = 0;
        loop {
            let Some(start) = self.buf[pos..]
                .iter()
                .position(|b| !matches!(b, b'\n' | b'\r' | b'\0' | b' '))
            else {
                pos = self.buf.len();
                break;
            };
            pos += start;
            let rest = &self.buf[pos..];
            if rest[0].is_ascii_digit() {
                let digits = rest
                    .iter()
                    .take(10)
                    .take_while(|b| b.is_ascii_digit())
                    .count();
                if digits == rest.len() && digits < 10 {
                    break; // the length is not complete yet
                }
                if rest.get(digits) == Some(&b' ') {
                    let len: usize = std::str::from_utf8(&rest[..digits])
                        .ok()
                        .and_then(|d| d.parse().ok())
                        .unwrap_or(usize::MAX);
                    let body = digits + 1;
                    if len <= self.max {
                        if rest.len() < body + len {
                            break;
                        }
                        out.push(Frame {
                            bytes: rest[body..body + len].to_vec(),
                            truncated: false,
                        });
                        pos += body + len;
                        continue;
                    }
                    if rest.len() < body + self.max {
                        break;
                    }
                    out.push(Frame {
                        bytes: rest[body..body + self.max].to_vec(),
                        truncated: true,
                    });
                    let have = rest.len();
                    let total = body.saturating_add(len);
                    if have >= total {
                        pos += total;
                        continue;
                    }
                    self.skip = total - have;
                    pos = self.buf.len();
                    break;
                }
            }
            match rest.iter().position(|&b| b == b'\n') {
                Some(i) => {
                    let line = trim_separators(&rest[..i]);
                    let truncated = line.len() > self.max;
                    out.push(Frame {
                        bytes: line[..line.len().min(self.max)].to_vec(),
                        truncated,
                    });
                    pos += i + 1;
                }
                None => {
                    if rest.len() > self.max {
                        out.push(Frame {
                            bytes: rest[..self.max].to_vec(),
                            truncated: true,
                        });
                        self.discard_line = true;
                        pos = self.buf.len();
                    }
                    break;
                }
            }
        }
        self.buf.drain(..pos);
    }
}

fn trim_separators(b: &[u8]) -> &[u8] {
    let end = b
        .iter()
        .rposition(|c| !matches!(c, b'\n' | b'\r' | b'\0'))
        .map_or(0, |i| i + 1);
    &b[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(max: usize, chunks: &[&[u8]]) -> Vec<Frame> {
        let mut f = Framer::new(max);
        let mut out = Vec::new();
        for c in chunks {
            f.push(c, &mut out);
        }
        f.finish(&mut out);
        out
    }

    fn texts(fs: &[Frame]) -> Vec<(String, bool)> {
        fs.iter()
            .map(|f| (String::from_utf8_lossy(&f.bytes).into_owned(), f.truncated))
            .collect()
    }

    #[test]
    fn octet_counting_and_newlines_mixed_and_split_anywhere() {
        let stream = b"10 <1>hello 1\n<2>line two\r\n4 <3>x<4>last";
        let whole = texts(&frames(100, &[stream]));
        assert_eq!(
            whole,
            vec![
                ("<1>hello 1".to_string(), false),
                ("<2>line two".to_string(), false),
                ("<3>x".to_string(), false),
                ("<4>last".to_string(), false),
            ]
        );
        for split in 1..stream.len() {
            let (a, b) = stream.split_at(split);
            assert_eq!(texts(&frames(100, &[a, b])), whole, "split at {split}");
        }
    }

    #[test]
    fn oversized_messages_are_cut_counted_and_the_stream_stays_in_sync() {
        let mut s = b"20 <1>aaaaaaaaaaaaaaaaa".to_vec();
        s.extend_from_slice(b"<2>bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\n<3>ok\n");
        for split in 1..s.len() {
            let (a, b) = s.split_at(split);
            let got = texts(&frames(8, &[a, b]));
            assert_eq!(
                got,
                vec![
                    ("<1>aaaaa".to_string(), true),
                    ("<2>bbbbb".to_string(), true),
                    ("<3>ok".to_string(), false),
                ],
                "split at {split}"
            );
        }
    }

    #[test]
    fn junk_never_panics_and_memory_stays_bounded() {
        let mut f = Framer::new(64);
        let mut out = Vec::new();
        for i in 0..2000u32 {
            let junk: Vec<u8> = (0..97).map(|j| ((i * 31 + j * 7) % 256) as u8).collect();
            f.push(&junk, &mut out);
            assert!(f.buf.len() <= 64 + 97 + 11, "{}", f.buf.len());
        }
        f.push(b"99999999999999999999 <1>x", &mut out);
        f.finish(&mut out);
    }
}
