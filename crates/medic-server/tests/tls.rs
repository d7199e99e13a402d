//! `server.tls`: HTTPS and OTLP gRPC over TLS on 127.0.0.1 with certificates made by the
//! `openssl` CLI for each test; client certificates (required, optional); a rotated
//! certificate served without a restart; bad files named at start-up.

mod common;

use common::{VIEWER_TOKEN, test_auth};
use medic_config::{ClientAuth, Location, ServerConfig, TlsConfig};
use medic_server::{Listening, ServerState, serve_configured, tls::Tls};
use medic_signals::SourceStats;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// Certificates made with the `openssl` CLI in a temporary directory.
struct Pki {
    dir: tempfile::TempDir,
}

/// A certificate and its key, as files.
#[derive(Clone)]
struct Pair {
    cert: PathBuf,
    key: PathBuf,
}

impl Pair {
    fn cert_der(&self) -> Vec<u8> {
        use rustls::pki_types::{CertificateDer, pem::PemObject};
        CertificateDer::from_pem_file(&self.cert)
            .expect("certificate")
            .to_vec()
    }
}

fn openssl(args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("the openssl CLI runs (Debian's openssl package)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Pki {
    fn new() -> Pki {
        Pki {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn ca(&self, name: &str) -> Pair {
        let p = Pair {
            cert: self.path(&format!("{name}.crt")),
            key: self.path(&format!("{name}.key")),
        };
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
            "-subj",
            &format!("/CN={name}"),
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
            "-keyout",
            p.key.to_str().expect("utf-8"),
            "-out",
            p.cert.to_str().expect("utf-8"),
        ]);
        p
    }

    /// A leaf certificate signed by `ca`: a server one (for 127.0.0.1) or a client one.
    fn leaf(&self, ca: &Pair, name: &str, server: bool) -> Pair {
        let p = Pair {
            cert: self.path(&format!("{name}.crt")),
            key: self.path(&format!("{name}.key")),
        };
        let csr = self.path(&format!("{name}.csr"));
        let ext = self.path(&format!("{name}.ext"));
        let usage = if server {
            "extendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1\n"
        } else {
            "extendedKeyUsage=clientAuth\n"
        };
        std::fs::write(
            &ext,
            format!("basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n{usage}"),
        )
        .expect("write ext");
        openssl(&[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-subj",
            &format!("/CN={name}"),
            "-keyout",
            p.key.to_str().expect("utf-8"),
            "-out",
            csr.to_str().expect("utf-8"),
        ]);
        openssl(&[
            "x509",
            "-req",
            "-in",
            csr.to_str().expect("utf-8"),
            "-CA",
            ca.cert.to_str().expect("utf-8"),
            "-CAkey",
            ca.key.to_str().expect("utf-8"),
            "-CAcreateserial",
            "-CAserial",
            self.path("serial").to_str().expect("utf-8"),
            "-days",
            "2",
            "-extfile",
            ext.to_str().expect("utf-8"),
            "-out",
            p.cert.to_str().expect("utf-8"),
        ]);
        p
    }
}

fn tls_config(server: &Pair, client_ca: Option<&Path>, client_auth: ClientAuth) -> TlsConfig {
    TlsConfig {
        cert: server.cert.clone(),
        key: server.key.clone(),
        client_ca: client_ca.map(Path::to_path_buf),
        client_auth,
        location: Location {
            file: "medic.yaml".into(),
            line: 7,
            col: 3,
        },
    }
}

struct Served {
    at: Listening,
    _stop: watch::Sender<bool>,
    _rx: mpsc::Receiver<medic_core::Signal>,
}

async fn start(tls: TlsConfig) -> Result<Served, medic_server::ServerError> {
    let (tx, rx) = mpsc::channel(64);
    let state = ServerState::new(tx, Arc::new(SourceStats::new())).with_auth(test_auth());
    let cfg = ServerConfig {
        enabled: true,
        listen: "127.0.0.1:0".into(),
        otlp_grpc_listen: "127.0.0.1:0".into(),
        tls: Some(tls),
        ..ServerConfig::default()
    };
    let (stop, shutdown) = watch::channel(false);
    let at = serve_configured(&cfg, state, shutdown).await?;
    Ok(Served {
        at,
        _stop: stop,
        _rx: rx,
    })
}

/// A reqwest (rustls) client trusting `ca` only, presenting `identity` if given.
fn client(ca: &Path, identity: Option<&Pair>) -> reqwest::Client {
    let mut b = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(
            reqwest::Certificate::from_pem(&std::fs::read(ca).expect("ca")).expect("ca pem"),
        )
        .tls_info(true)
        .timeout(Duration::from_secs(10));
    if let Some(id) = identity {
        let mut pem = std::fs::read(&id.cert).expect("cert");
        pem.extend(std::fs::read(&id.key).expect("key"));
        b = b.identity(reqwest::Identity::from_pem(&pem).expect("identity"));
    }
    b.build().expect("client")
}

async fn get_metrics(
    client: &reqwest::Client,
    url: String,
) -> reqwest::Result<(u16, Option<Vec<u8>>)> {
    let r = client.get(url).bearer_auth(VIEWER_TOKEN).send().await?;
    let peer = r
        .extensions()
        .get::<reqwest::tls::TlsInfo>()
        .and_then(|i| i.peer_certificate())
        .map(<[u8]>::to_vec);
    Ok((r.status().as_u16(), peer))
}

fn https(at: &Listening, path: &str) -> String {
    format!("https://{}{path}", at.http)
}

/// A CA, a server certificate it signed, and a server using it with no client certificates.
async fn started_without_client_certs() -> (Pki, Pair, Pair, Served) {
    let pki = Pki::new();
    let ca = pki.ca("medic-test-ca");
    let server = pki.leaf(&ca, "server", true);
    let s = start(tls_config(&server, None, ClientAuth::None))
        .await
        .expect("starts");
    (pki, ca, server, s)
}

#[tokio::test]
async fn https_serves_and_a_rotated_certificate_is_picked_up_without_a_restart() {
    let (pki, ca, server, s) = started_without_client_certs().await;
    let trusting = client(&ca.cert, None);

    let (status, peer) = get_metrics(&trusting, https(&s.at, "/metrics"))
        .await
        .expect("https works with the CA trusted");
    assert_eq!(status, 200);
    assert_eq!(peer.as_deref(), Some(server.cert_der().as_slice()));
    // Tokens still decide: no token over TLS is 401.
    let r = trusting
        .get(https(&s.at, "/metrics"))
        .send()
        .await
        .expect("answered");
    assert_eq!(r.status(), 401);

    // Plain HTTP to the TLS port gets no HTTP answer.
    let plain = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client");
    let e = plain
        .get(format!("http://{}/metrics", s.at.http))
        .bearer_auth(VIEWER_TOKEN)
        .send()
        .await;
    assert!(e.is_err(), "plain http to a TLS port answered: {e:?}");
    // A client that does not trust the CA refuses the server.
    let other = pki.ca("other-ca");
    let e = get_metrics(&client(&other.cert, None), https(&s.at, "/metrics")).await;
    assert!(e.is_err(), "an untrusted server certificate was accepted");

    // Rotation: a new key and certificate written over the files are served to new
    // connections within the reload period (5 s), with no restart.
    let rotated = pki.leaf(&ca, "server-next", true);
    std::fs::copy(&rotated.key, &server.key).expect("key");
    std::fs::copy(&rotated.cert, &server.cert).expect("cert");
    let want = rotated.cert_der();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        // A new client: a new connection.
        let (status, peer) = get_metrics(&client(&ca.cert, None), https(&s.at, "/metrics"))
            .await
            .expect("still serving while the files change");
        assert_eq!(status, 200);
        if peer.as_deref() == Some(want.as_slice()) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the rotated certificate was not served within 20 s"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test]
async fn client_certificates_required_and_optional() {
    let pki = Pki::new();
    let ca = pki.ca("medic-test-ca");
    let server = pki.leaf(&ca, "server", true);
    let clients_ca = pki.ca("clients-ca");
    let alice = pki.leaf(&clients_ca, "alice", false);
    let stranger_ca = pki.ca("stranger-ca");
    let stranger = pki.leaf(&stranger_ca, "stranger", false);

    let s = start(tls_config(
        &server,
        Some(&clients_ca.cert),
        ClientAuth::Required,
    ))
    .await
    .expect("starts");
    let url = https(&s.at, "/metrics");
    let e = get_metrics(&client(&ca.cert, None), url.clone()).await;
    assert!(e.is_err(), "no client certificate, yet answered: {e:?}");
    let e = get_metrics(&client(&ca.cert, Some(&stranger)), url.clone()).await;
    assert!(
        e.is_err(),
        "a certificate from another CA, yet answered: {e:?}"
    );
    let with_cert = client(&ca.cert, Some(&alice));
    let (status, _) = get_metrics(&with_cert, url.clone())
        .await
        .expect("the right client certificate is let in");
    assert_eq!(status, 200);
    // The certificate is a transport gate; the token still decides the role.
    let r = with_cert.get(url.clone()).send().await.expect("answered");
    assert_eq!(r.status(), 401);
    // Both refusals counted (the handshake task may finish just after the client gave up).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let body = with_cert
            .get(url.clone())
            .bearer_auth(VIEWER_TOKEN)
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("body");
        if body.contains("medic_auth_denied_total{reason=\"client_cert\"} 2") {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "client_cert refusals not counted:\n{body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Optional: no certificate is let in, a bad one is still refused.
    let s = start(tls_config(
        &server,
        Some(&clients_ca.cert),
        ClientAuth::Optional,
    ))
    .await
    .expect("starts");
    let url = https(&s.at, "/metrics");
    let (status, _) = get_metrics(&client(&ca.cert, None), url.clone())
        .await
        .expect("no certificate is fine when optional");
    assert_eq!(status, 200);
    let (status, _) = get_metrics(&client(&ca.cert, Some(&alice)), url.clone())
        .await
        .expect("the right certificate");
    assert_eq!(status, 200);
    let e = get_metrics(&client(&ca.cert, Some(&stranger)), url).await;
    assert!(e.is_err(), "a certificate from another CA, yet answered");
}

#[tokio::test]
async fn otlp_grpc_over_tls() {
    use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
    use opentelemetry_proto::tonic::collector::logs::v1::logs_service_client::LogsServiceClient;
    use rustls::pki_types::{CertificateDer, ServerName, pem::PemObject};

    let (_pki, ca, _server, s) = started_without_client_certs().await;
    let grpc = s.at.otlp_grpc.expect("gRPC listener");

    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_file(&ca.cert).expect("ca"))
        .expect("root");
    let mut cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    cfg.alpn_protocols = vec![b"h2".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(cfg));
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{grpc}"))
        .expect("endpoint")
        .connect_with_connector(tower::service_fn(move |_uri| {
            let connector = connector.clone();
            async move {
                let tcp = tokio::net::TcpStream::connect(grpc).await?;
                let name = ServerName::IpAddress(std::net::Ipv4Addr::LOCALHOST.into());
                let tls = connector.connect(name, tcp).await?;
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(tls))
            }
        }))
        .await
        .expect("TLS gRPC channel");
    let mut logs = LogsServiceClient::new(channel);
    // Over TLS, the token is still checked: without it, UNAUTHENTICATED.
    let err = logs
        .export(ExportLogsServiceRequest::default())
        .await
        .expect_err("no token");
    assert_eq!(err.code(), tonic::Code::Unauthenticated, "{err}");
    let mut req = tonic::Request::new(ExportLogsServiceRequest::default());
    req.metadata_mut().insert(
        "authorization",
        format!("Bearer {}", common::INGEST_TOKEN)
            .parse()
            .expect("metadata"),
    );
    logs.export(req).await.expect("export over TLS");

    // A plaintext gRPC client gets nowhere.
    let plain = tokio::time::timeout(
        Duration::from_secs(10),
        LogsServiceClient::connect(format!("http://{grpc}")),
    )
    .await
    .expect("not hung");
    if let Ok(mut c) = plain {
        let e = c.export(ExportLogsServiceRequest::default()).await;
        assert!(e.is_err(), "plaintext gRPC answered on the TLS port");
    }
}

/// The message of loading `cfg`, which must fail.
fn load_error(cfg: &TlsConfig) -> String {
    Tls::load(cfg).expect_err("refused").to_string()
}

#[tokio::test]
async fn bad_files_are_refused_naming_the_file() {
    let pki = Pki::new();
    let ca = pki.ca("medic-test-ca");
    let server = pki.leaf(&ca, "server", true);
    let other = pki.leaf(&ca, "other", true);
    let garbage = pki.path("garbage.pem");
    std::fs::write(
        &garbage,
        "-----BEGIN CERTIFICATE-----\n%%%% not base64 %%%%\n-----END CERTIFICATE-----\n",
    )
    .expect("write");
    let empty = pki.path("empty.pem");
    std::fs::write(&empty, "just some text\n").expect("write");
    let good = tls_config(&server, None, ClientAuth::None);

    let missing = pki.path("nope.crt");
    let e = load_error(&TlsConfig {
        cert: missing.clone(),
        ..good.clone()
    });
    assert!(
        e.starts_with("server.tls (medic.yaml:7:3): cannot read `cert` ")
            && e.contains(&missing.display().to_string()),
        "{e}"
    );
    let e = load_error(&TlsConfig {
        key: other.key.clone(),
        ..good.clone()
    });
    assert!(
        e.contains(&format!("`key` {}", other.key.display()))
            && e.contains("does not match the certificate"),
        "{e}"
    );
    let e = load_error(&TlsConfig {
        cert: garbage.clone(),
        ..good.clone()
    });
    assert!(
        e.contains(&format!("`cert` {}", garbage.display())) && e.contains("not valid PEM"),
        "{e}"
    );
    let e = load_error(&TlsConfig {
        key: server.cert.clone(),
        ..good.clone()
    });
    assert!(e.contains("no private key in it"), "{e}");
    let e = load_error(&TlsConfig {
        cert: server.key.clone(),
        ..good.clone()
    });
    assert!(
        e.contains("`cert`") && e.contains("no certificate in it"),
        "{e}"
    );
    let e = load_error(&tls_config(&server, Some(&empty), ClientAuth::Required));
    assert!(
        e.contains(&format!("`client_ca` {}", empty.display()))
            && e.contains("no certificate in it"),
        "{e}"
    );
    // The server does not start on them, and says why.
    let e = start(TlsConfig {
        key: other.key.clone(),
        ..good.clone()
    })
    .await
    .err()
    .expect("refused");
    assert!(
        e.to_string().contains("does not match the certificate"),
        "{e}"
    );

    // A reload onto a broken file keeps what is in force.
    let tls = Tls::load(&good).expect("loads");
    assert!(!tls.reload().expect("same files"), "nothing changed");
    std::fs::write(&server.cert, "half-written").expect("write");
    let e = tls.reload().expect_err("broken").to_string();
    assert!(e.contains("no certificate in it"), "{e}");
}
