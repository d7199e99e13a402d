//! TLS on every listener (`server.tls`), with rustls on ring (the one crypto provider in
//! medic's graph). The certificate, key and client CA are read at start-up, where anything
//! wrong is an error naming the file; [`Tls::reload`] re-reads them, and the reloader swaps
//! the whole rustls configuration when they change, so a rotated certificate (or CA) is
//! served to new connections without a restart. A client certificate is a transport gate
//! only: the bearer token still decides who the caller is and what it may do.

use crate::routes::metrics::ServerMetrics;
use medic_config::{ClientAuth, Location, TlsConfig};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio_rustls::server::TlsStream;

/// PEM files larger than this are not certificates.
const MAX_PEM_BYTES: u64 = 1 << 20;
/// A client that has not finished its handshake by then is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Handshakes in progress at once per listener; more connections wait to be accepted.
const MAX_HANDSHAKES: usize = 512;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("server.tls ({at}): cannot read `{key}` {path}: {source}")]
    Read {
        at: Location,
        key: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("server.tls ({at}): `{key}` {path}: {reason}")]
    Invalid {
        at: Location,
        key: &'static str,
        path: PathBuf,
        reason: String,
    },
}

/// Which application protocol a listener speaks (offered by ALPN, which gRPC clients require).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Alpn {
    /// The HTTP server (axum, HTTP/1.1).
    Http1,
    /// The OTLP gRPC receiver (HTTP/2).
    H2,
}

/// The rustls configurations in force, one per listener kind, and the file contents they
/// were built from (compared at each reload).
struct Loaded {
    http: Arc<rustls::ServerConfig>,
    grpc: Arc<rustls::ServerConfig>,
    files: Vec<Vec<u8>>,
}

/// The server's TLS settings, swappable while serving.
pub struct Tls {
    config: TlsConfig,
    current: RwLock<Loaded>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls").field("config", &self.config).finish()
    }
}

impl Tls {
    /// Reads and checks the files of `config`.
    pub fn load(config: &TlsConfig) -> Result<Tls, TlsError> {
        let files = read_files(config)?;
        let loaded = build(config, files)?;
        Ok(Tls {
            config: config.clone(),
            current: RwLock::new(loaded),
        })
    }

    /// Re-reads the files; when they changed and are valid, new connections use them. On an
    /// error the configuration in force stays (a half-written file must not stop the server).
    /// True when it changed.
    pub fn reload(&self) -> Result<bool, TlsError> {
        let files = read_files(&self.config)?;
        if self.current.read().unwrap_or_else(|p| p.into_inner()).files == files {
            return Ok(false);
        }
        let loaded = build(&self.config, files)?;
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = loaded;
        Ok(true)
    }

    /// The configuration for a new connection on a listener speaking `alpn`.
    fn server_config(&self, alpn: Alpn) -> Arc<rustls::ServerConfig> {
        let c = self.current.read().unwrap_or_else(|p| p.into_inner());
        match alpn {
            Alpn::Http1 => c.http.clone(),
            Alpn::H2 => c.grpc.clone(),
        }
    }
}

/// The certificate, key and CA files' bytes, in that order.
fn read_files(config: &TlsConfig) -> Result<Vec<Vec<u8>>, TlsError> {
    let mut out = vec![
        read_pem(config, "cert", &config.cert)?,
        read_pem(config, "key", &config.key)?,
    ];
    if let Some(ca) = &config.client_ca {
        out.push(read_pem(config, "client_ca", ca)?);
    }
    Ok(out)
}

fn read_pem(config: &TlsConfig, key: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    use std::io::Read;
    let read_err = |source| TlsError::Read {
        at: config.location.clone(),
        key,
        path: path.to_path_buf(),
        source,
    };
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .map_err(read_err)?
        .take(MAX_PEM_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(read_err)?;
    if bytes.len() as u64 > MAX_PEM_BYTES {
        return Err(invalid(
            config,
            key,
            path,
            format!("larger than {MAX_PEM_BYTES} bytes: not a PEM file"),
        ));
    }
    Ok(bytes)
}

fn invalid(config: &TlsConfig, key: &'static str, path: &Path, reason: String) -> TlsError {
    TlsError::Invalid {
        at: config.location.clone(),
        key,
        path: path.to_path_buf(),
        reason,
    }
}

/// Every `CERTIFICATE` block of `pem`; none is an error.
fn certificates(
    config: &TlsConfig,
    key: &'static str,
    path: &Path,
    pem: &[u8],
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(config, key, path, format!("not valid PEM: {e}")))?;
    if certs.is_empty() {
        return Err(invalid(
            config,
            key,
            path,
            "no certificate in it: expected PEM blocks `-----BEGIN CERTIFICATE-----`".into(),
        ));
    }
    Ok(certs)
}

fn build(config: &TlsConfig, files: Vec<Vec<u8>>) -> Result<Loaded, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain = certificates(config, "cert", &config.cert, &files[0])?;
    let key = PrivateKeyDer::from_pem_slice(&files[1]).map_err(|e| {
        let reason = match e {
            rustls::pki_types::pem::Error::NoItemsFound => "no private key in it: expected a PEM block `-----BEGIN PRIVATE KEY-----` (or `RSA PRIVATE KEY`, `EC PRIVATE KEY`)".to_string(),
            e => format!("not valid PEM: {e}"),
        };
        invalid(config, "key", &config.key, reason)
    })?;
    let certified = rustls::sign::CertifiedKey::from_der(chain, key, &provider).map_err(|e| {
        let reason = match e {
            rustls::Error::InconsistentKeys(_) => format!(
                "does not match the certificate in {}: expected the private key of that certificate",
                config.cert.display()
            ),
            e => format!("cannot be used with the certificate in {}: {e}", config.cert.display()),
        };
        invalid(config, "key", &config.key, reason)
    })?;
    let certified = Arc::new(certified);
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| invalid(config, "cert", &config.cert, e.to_string()))?;
    let builder = match (&config.client_ca, config.client_auth) {
        (Some(ca), ClientAuth::Optional | ClientAuth::Required) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in certificates(config, "client_ca", ca, &files[2])? {
                roots.add(cert).map_err(|e| {
                    invalid(
                        config,
                        "client_ca",
                        ca,
                        format!("not a usable CA certificate: {e}"),
                    )
                })?;
            }
            let mut verifier =
                rustls::server::WebPkiClientVerifier::builder_with_provider(roots.into(), provider);
            if config.client_auth == ClientAuth::Optional {
                verifier = verifier.allow_unauthenticated();
            }
            let verifier = verifier
                .build()
                .map_err(|e| invalid(config, "client_ca", ca, e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
        _ => builder.with_no_client_auth(),
    };
    let resolver = Arc::new(rustls::sign::SingleCertAndKey::from(certified));
    let mut http = builder.with_cert_resolver(resolver);
    let mut grpc = http.clone();
    http.alpn_protocols = vec![b"http/1.1".to_vec()];
    grpc.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Loaded {
        http: Arc::new(http),
        grpc: Arc::new(grpc),
        files,
    })
}

/// Re-reads the TLS files every `every` until `shutdown`.
pub fn spawn_reloader(tls: Arc<Tls>, every: Duration, shutdown: watch::Receiver<bool>) {
    crate::every(every, shutdown, move || match tls.reload() {
        Ok(true) => tracing::info!("server TLS certificate, key or client CA reloaded"),
        Ok(false) => {}
        Err(e) => tracing::warn!("server TLS not reloaded, the previous files stay: {e}"),
    });
}

/// Whether a failed handshake was a client certificate refused (missing or not trusted).
fn client_cert_refused(e: &std::io::Error) -> bool {
    let Some(e) = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) else {
        return false;
    };
    matches!(
        e,
        rustls::Error::NoCertificatesPresented | rustls::Error::InvalidCertificate(_)
    )
}

/// Accepts TCP connections on `listener` and completes each TLS handshake in its own task
/// (a slow client holds up no one); finished connections come out of the returned channel,
/// made into `T` by `wrap`. Refused client certificates are counted in `metrics`.
pub fn accept<T: Send + 'static>(
    listener: TcpListener,
    tls: Arc<Tls>,
    alpn: Alpn,
    metrics: Arc<ServerMetrics>,
    mut shutdown: watch::Receiver<bool>,
    wrap: fn(TlsStream<TcpStream>, SocketAddr) -> T,
) -> mpsc::Receiver<T> {
    let (tx, rx) = mpsc::channel(64);
    let slots = Arc::new(Semaphore::new(MAX_HANDSHAKES));
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                a = listener.accept() => a,
                r = shutdown.changed() => {
                    if r.is_err() || *shutdown.borrow() {
                        return;
                    }
                    continue;
                }
            };
            let (tcp, peer) = match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: wait rather than spin.
                    tracing::warn!(error = %e, "TLS listener: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let Ok(slot) = slots.clone().acquire_owned().await else {
                return;
            };
            let _ = tcp.set_nodelay(true);
            let acceptor = tokio_rustls::TlsAcceptor::from(tls.server_config(alpn));
            let (tx, metrics) = (tx.clone(), metrics.clone());
            tokio::spawn(async move {
                let _slot = slot;
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                    Ok(Ok(stream)) => {
                        let _ = tx.send(wrap(stream, peer)).await;
                    }
                    Ok(Err(e)) => {
                        if client_cert_refused(&e) {
                            metrics.client_cert_refused();
                        }
                        tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    }
                    Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                }
            });
        }
    });
    rx
}

/// The HTTP server's TLS listener, for `axum::serve`.
pub struct HttpListener {
    pub(crate) rx: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    pub(crate) local: SocketAddr,
}

impl axum::serve::Listener for HttpListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.rx.recv().await {
            Some(c) => c,
            // The acceptor stopped (shutdown): nothing more will come.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}

#[cfg(feature = "otlp")]
pub use grpc_conn::GrpcConn;

#[cfg(feature = "otlp")]
mod grpc_conn {
    use std::pin::Pin;
    use std::task::{Context, Poll};
    use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
    use tokio::net::TcpStream;
    use tokio_rustls::server::TlsStream;

    /// A TLS connection for tonic, which needs its `Connected` for the peer's address.
    pub struct GrpcConn(pub(crate) TlsStream<TcpStream>);

    impl tonic::transport::server::Connected for GrpcConn {
        type ConnectInfo = tonic::transport::server::TcpConnectInfo;

        fn connect_info(&self) -> Self::ConnectInfo {
            self.0.get_ref().0.connect_info()
        }
    }

    impl AsyncRead for GrpcConn {
        fn poll_read(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<std::io::Result<()>> {
            Pin::new(&mut self.get_mut().0).poll_read(cx, buf)
        }
    }

    impl AsyncWrite for GrpcConn {
        fn poll_write(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<std::io::Result<usize>> {
            Pin::new(&mut self.get_mut().0).poll_write(cx, buf)
        }

        fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Pin::new(&mut self.get_mut().0).poll_flush(cx)
        }

        fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Pin::new(&mut self.get_mut().0).poll_shutdown(cx)
        }

        fn poll_write_vectored(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            bufs: &[std::io::IoSlice<'_>],
        ) -> Poll<std::io::Result<usize>> {
            Pin::new(&mut self.get_mut().0).poll_write_vectored(cx, bufs)
        }

        fn is_write_vectored(&self) -> bool {
            self.0.is_write_vectored()
        }
    }
}
