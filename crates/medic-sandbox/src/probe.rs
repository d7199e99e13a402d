//! Readiness, liveness and startup probes: httpGet, tcpSocket and exec, with the kubelet's
//! timing (initialDelaySeconds, periodSeconds, timeoutSeconds) and thresholds.
//! Probes only ever connect to loopback addresses.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Http {
        addr: SocketAddr,
        path: String,
        headers: Vec<(String, String)>,
    },
    Tcp {
        addr: SocketAddr,
    },
    Exec {
        argv: Vec<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeSpec {
    pub action: Action,
    pub initial_delay: Duration,
    pub period: Duration,
    pub timeout: Duration,
    pub failure_threshold: u32,
    pub success_threshold: u32,
}

fn secs(v: Option<i32>, default: i32, min: i32) -> Duration {
    Duration::from_secs(v.unwrap_or(default).max(min) as u64)
}

fn resolve_port(port: &IntOrString, container: &Container) -> Result<u16, String> {
    match port {
        IntOrString::Int(p) => u16::try_from(*p)
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| format!("probe port {p} is out of range")),
        IntOrString::String(name) => {
            if let Ok(n) = name.parse::<u16>() {
                return Ok(n);
            }
            container
                .ports
                .iter()
                .flatten()
                .find(|p| p.name.as_deref() == Some(name.as_str()))
                .and_then(|p| u16::try_from(p.container_port).ok())
                .ok_or_else(|| format!("probe port {name:?} is not a named port of the container"))
        }
    }
}

fn resolve_host(host: Option<&str>, pod_ip: IpAddr) -> Result<IpAddr, String> {
    let ip = match host.filter(|h| !h.is_empty()) {
        None => pod_ip,
        Some("localhost") => IpAddr::from([127, 0, 0, 1]),
        Some(h) => h
            .parse()
            .map_err(|_| format!("probe host {h:?} is not an IP address"))?,
    };
    if !crate::is_loopback(ip) {
        return Err(format!(
            "probe host {ip} is not a loopback address: the sandbox never connects elsewhere"
        ));
    }
    Ok(ip)
}

/// Translates a pod spec probe; the error says what the sandbox cannot run.
pub fn from_spec(
    probe: &Probe,
    container: &Container,
    pod_ip: IpAddr,
) -> Result<ProbeSpec, String> {
    let handlers = [
        probe.http_get.is_some(),
        probe.tcp_socket.is_some(),
        probe.exec.is_some(),
        probe.grpc.is_some(),
    ];
    if handlers.iter().filter(|h| **h).count() > 1 {
        return Err("probe has more than one handler".into());
    }
    let action = if let Some(h) = &probe.http_get {
        if h.scheme
            .as_deref()
            .is_some_and(|s| !s.eq_ignore_ascii_case("HTTP"))
        {
            return Err(format!(
                "httpGet probe scheme {:?} is not supported by the sandbox (HTTP only)",
                h.scheme.as_deref().unwrap_or("")
            ));
        }
        let port = resolve_port(&h.port, container)?;
        let ip = resolve_host(h.host.as_deref(), pod_ip)?;
        let mut path = h.path.clone().unwrap_or_default();
        if !path.starts_with('/') {
            path.insert(0, '/');
        }
        if path.contains(['\r', '\n', ' ']) {
            return Err(format!(
                "httpGet probe path {path:?} is not a valid request path"
            ));
        }
        let headers = h
            .http_headers
            .iter()
            .flatten()
            .filter(|hd| !hd.name.contains(['\r', '\n', ':']) && !hd.value.contains(['\r', '\n']))
            .map(|hd| (hd.name.clone(), hd.value.clone()))
            .collect();
        Action::Http {
            addr: SocketAddr::new(ip, port),
            path,
            headers,
        }
    } else if let Some(t) = &probe.tcp_socket {
        let port = resolve_port(&t.port, container)?;
        let ip = resolve_host(t.host.as_deref(), pod_ip)?;
        Action::Tcp {
            addr: SocketAddr::new(ip, port),
        }
    } else if let Some(e) = &probe.exec {
        let argv = e.command.clone().unwrap_or_default();
        if argv.is_empty() || argv[0].is_empty() {
            return Err("exec probe has no command".into());
        }
        Action::Exec { argv }
    } else if probe.grpc.is_some() {
        return Err(
            "grpc probes are not supported by the sandbox (use httpGet, tcpSocket or exec)".into(),
        );
    } else {
        return Err("probe has no handler (httpGet, tcpSocket or exec)".into());
    };
    Ok(ProbeSpec {
        action,
        initial_delay: secs(probe.initial_delay_seconds, 0, 0),
        period: secs(probe.period_seconds, 10, 1),
        timeout: secs(probe.timeout_seconds, 1, 1),
        failure_threshold: probe.failure_threshold.unwrap_or(3).max(1) as u32,
        success_threshold: probe.success_threshold.unwrap_or(1).max(1) as u32,
    })
}

/// Runs a probe once: Ok on success, Err with what went wrong.
pub async fn run_once(
    spec: &ProbeSpec,
    env: &BTreeMap<String, String>,
    cwd: &std::path::Path,
) -> Result<(), String> {
    match tokio::time::timeout(spec.timeout, attempt(&spec.action, env, cwd)).await {
        Ok(r) => r,
        Err(_) => Err(format!("probe timed out after {:?}", spec.timeout)),
    }
}

async fn attempt(
    action: &Action,
    env: &BTreeMap<String, String>,
    cwd: &std::path::Path,
) -> Result<(), String> {
    match action {
        Action::Tcp { addr } => {
            if !crate::is_loopback(addr.ip()) {
                return Err("refusing a non-loopback address".into());
            }
            tokio::net::TcpStream::connect(addr)
                .await
                .map(drop)
                .map_err(|e| format!("dial tcp {addr}: {e}"))
        }
        Action::Http {
            addr,
            path,
            headers,
        } => {
            if !crate::is_loopback(addr.ip()) {
                return Err("refusing a non-loopback address".into());
            }
            let mut s = tokio::net::TcpStream::connect(addr)
                .await
                .map_err(|e| format!("Get \"http://{addr}{path}\": {e}"))?;
            let mut req = format!(
                "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: kube-probe/1.20\r\nAccept: */*\r\nConnection: close\r\n"
            );
            for (k, v) in headers {
                req.push_str(&format!("{k}: {v}\r\n"));
            }
            req.push_str("\r\n");
            s.write_all(req.as_bytes())
                .await
                .map_err(|e| format!("write: {e}"))?;
            // Only the status line matters; read until it is complete.
            let mut buf = Vec::with_capacity(256);
            let mut chunk = [0u8; 256];
            while !buf.contains(&b'\n') && buf.len() < 4096 {
                let n = s.read(&mut chunk).await.map_err(|e| format!("read: {e}"))?;
                if n == 0 {
                    break;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            let line = String::from_utf8_lossy(&buf);
            let code: u16 = line
                .split_whitespace()
                .nth(1)
                .and_then(|c| c.parse().ok())
                .ok_or_else(|| format!("malformed HTTP response from {addr}"))?;
            if (200..400).contains(&code) {
                Ok(())
            } else {
                Err(format!("HTTP probe failed with statuscode: {code}"))
            }
        }
        Action::Exec { argv } => {
            let mut cmd = tokio::process::Command::new(&argv[0]);
            cmd.args(&argv[1..])
                .env_clear()
                .envs(env)
                .current_dir(cwd)
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .process_group(0)
                .kill_on_drop(true);
            let mut child = cmd
                .spawn()
                .map_err(|e| format!("exec {:?}: {e}", argv[0]))?;
            let pgid = child.id().map(|p| p as i32);
            struct Reap(Option<i32>);
            impl Drop for Reap {
                // A timed-out probe is dropped mid-wait: take its whole group down.
                fn drop(&mut self) {
                    if let Some(pg) = self.0 {
                        crate::procs::signal_group(pg, nix::sys::signal::Signal::SIGKILL);
                    }
                }
            }
            let _reap = Reap(pgid);
            let status = child.wait().await.map_err(|e| format!("wait: {e}"))?;
            if status.success() {
                Ok(())
            } else {
                Err(format!(
                    "command {:?} exited with {}",
                    argv,
                    crate::procs::exit_code(status)
                ))
            }
        }
    }
}

/// Threshold logic shared by all probe kinds.
#[derive(Debug, Clone)]
pub struct Tracker {
    success_threshold: u32,
    failure_threshold: u32,
    successes: u32,
    failures: u32,
    /// The current verdict (None until a threshold was reached once).
    pub verdict: Option<bool>,
}

impl Tracker {
    pub fn new(spec: &ProbeSpec) -> Self {
        Self {
            success_threshold: spec.success_threshold,
            failure_threshold: spec.failure_threshold,
            successes: 0,
            failures: 0,
            verdict: None,
        }
    }

    /// Records one result; returns the verdict when it changes.
    pub fn record(&mut self, ok: bool) -> Option<bool> {
        if ok {
            self.failures = 0;
            self.successes += 1;
            if self.successes >= self.success_threshold && self.verdict != Some(true) {
                self.verdict = Some(true);
                return Some(true);
            }
        } else {
            self.successes = 0;
            self.failures += 1;
            if self.failures >= self.failure_threshold && self.verdict != Some(false) {
                self.verdict = Some(false);
                return Some(false);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        ContainerPort, ExecAction, GRPCAction, HTTPGetAction, TCPSocketAction,
    };

    fn container() -> Container {
        Container {
            name: "c".into(),
            ports: Some(vec![ContainerPort {
                name: Some("http".into()),
                container_port: 8080,
                ..Default::default()
            }]),
            ..Default::default()
        }
    }

    const POD: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 1, 0, 5));

    #[test]
    fn named_port_defaults_and_thresholds() {
        let p = Probe {
            http_get: Some(HTTPGetAction {
                port: IntOrString::String("http".into()),
                path: Some("healthz".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let s = from_spec(&p, &container(), POD).unwrap();
        assert_eq!(
            s.action,
            Action::Http {
                addr: "127.1.0.5:8080".parse().unwrap(),
                path: "/healthz".into(),
                headers: vec![]
            }
        );
        assert_eq!(s.period, Duration::from_secs(10));
        assert_eq!(s.timeout, Duration::from_secs(1));
        assert_eq!((s.failure_threshold, s.success_threshold), (3, 1));
    }

    #[test]
    fn unsupported_and_unsafe_probes_are_errors() {
        let c = container();
        assert!(
            from_spec(&Probe::default(), &c, POD)
                .unwrap_err()
                .contains("no handler")
        );
        let grpc = Probe {
            grpc: Some(GRPCAction {
                port: 9,
                service: None,
            }),
            ..Default::default()
        };
        assert!(from_spec(&grpc, &c, POD).unwrap_err().contains("grpc"));
        let remote = Probe {
            tcp_socket: Some(TCPSocketAction {
                host: Some("10.0.0.1".into()),
                port: IntOrString::Int(80),
            }),
            ..Default::default()
        };
        assert!(
            from_spec(&remote, &c, POD)
                .unwrap_err()
                .contains("loopback")
        );
        let bad_port = Probe {
            tcp_socket: Some(TCPSocketAction {
                host: None,
                port: IntOrString::String("nope".into()),
            }),
            ..Default::default()
        };
        assert!(from_spec(&bad_port, &c, POD).is_err());
        let empty_exec = Probe {
            exec: Some(ExecAction { command: None }),
            ..Default::default()
        };
        assert!(from_spec(&empty_exec, &c, POD).is_err());
    }

    #[test]
    fn tracker_thresholds() {
        let spec = ProbeSpec {
            action: Action::Exec {
                argv: vec!["true".into()],
            },
            initial_delay: Duration::ZERO,
            period: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            failure_threshold: 2,
            success_threshold: 2,
        };
        let mut t = Tracker::new(&spec);
        assert_eq!(t.record(true), None);
        assert_eq!(t.record(true), Some(true));
        assert_eq!(t.record(false), None);
        assert_eq!(t.record(true), None);
        assert_eq!(t.record(false), None);
        assert_eq!(t.record(false), Some(false));
        assert_eq!(t.record(false), None);
    }

    #[tokio::test]
    async fn exec_and_tcp_probes_run() {
        let env = BTreeMap::new();
        let cwd = std::path::Path::new("/");
        let mut spec = ProbeSpec {
            action: Action::Exec {
                argv: vec!["true".into()],
            },
            initial_delay: Duration::ZERO,
            period: Duration::from_secs(1),
            timeout: Duration::from_secs(2),
            failure_threshold: 1,
            success_threshold: 1,
        };
        assert!(run_once(&spec, &env, cwd).await.is_ok());
        spec.action = Action::Exec {
            argv: vec!["false".into()],
        };
        assert!(run_once(&spec, &env, cwd).await.is_err());
        spec.action = Action::Exec {
            argv: vec!["sleep".into(), "5".into()],
        };
        spec.timeout = Duration::from_millis(200);
        assert!(
            run_once(&spec, &env, cwd)
                .await
                .unwrap_err()
                .contains("timed out")
        );
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        spec.action = Action::Tcp {
            addr: l.local_addr().unwrap(),
        };
        spec.timeout = Duration::from_secs(1);
        assert!(run_once(&spec, &env, cwd).await.is_ok());
    }
}
