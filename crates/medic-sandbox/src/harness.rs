//! A real Kubernetes control plane on loopback for tests: `scripts/k8s-sandbox up` in a
//! temporary directory, with the process kubelet, torn down (`down`) on drop.
//!
//! ```no_run
//! # async fn t() -> Result<(), Box<dyn std::error::Error>> {
//! let sandbox = medic_sandbox::harness::Sandbox::builder()
//!     .max_backoff(std::time::Duration::from_secs(2))
//!     .start()?;
//! let client = sandbox.client().await?;
//! # Ok(()) }
//! ```

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// Errors while starting a sandbox.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    #[error("k8s-sandbox up failed ({status}): {output}")]
    Up { status: String, output: String },
    #[error("medic-kubelet binary: {0}")]
    Kubelet(String),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Client(#[from] crate::Error),
}

/// The script, from this crate's source location (tests of other crates use it too).
pub fn script_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/k8s-sandbox")
}

/// The Kubernetes version the script builds (keys its cache).
pub const K8S_VERSION: &str = "1.20.2";

/// Where `scripts/k8s-sandbox build` caches the control plane (as the script computes it).
pub fn control_plane_dir() -> PathBuf {
    match std::env::var_os("MEDIC_K8S_CACHE") {
        Some(c) => PathBuf::from(c).join("bin"),
        None => PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/root".into()))
            .join(".cache/medic/k8s")
            .join(K8S_VERSION)
            .join("bin"),
    }
}

/// Whether the control-plane binaries are built and cached (`up` would otherwise spend
/// 8–12 minutes building them first).
pub fn control_plane_built() -> bool {
    let bin = control_plane_dir();
    [
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
    ]
    .iter()
    .all(|b| bin.join(b).is_file())
}

fn workspace_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `MEDIC_KUBELET`, else `$CARGO_TARGET_DIR/debug/medic-kubelet` (or the workspace's
/// `target/debug`), else `cargo build -p medic-sandbox --bin medic-kubelet`.
pub fn find_kubelet() -> Result<PathBuf, HarnessError> {
    if let Some(p) = std::env::var_os("MEDIC_KUBELET") {
        let p = PathBuf::from(p);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(HarnessError::Kubelet(format!(
                "MEDIC_KUBELET={} is not a file",
                p.display()
            )))
        };
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_dir().join("target"));
    let candidate = target.join("debug/medic-kubelet");
    if candidate.is_file() {
        return Ok(candidate);
    }
    let missing = format!(
        "no MEDIC_KUBELET and no {}: building it with `cargo build -p medic-sandbox --bin medic-kubelet`",
        candidate.display()
    );
    // Under `cargo test` the build directory stays locked while tests run: a build there
    // would wait forever, so it falls back to a target directory of its own.
    match cargo_build_kubelet(None) {
        Ok(p) => Ok(p),
        Err(BuildError::Locked) => cargo_build_kubelet(Some(&target.join("medic-kubelet-build")))
            .map_err(|e| HarnessError::Kubelet(format!("{missing}: {e}"))),
        Err(e) => Err(HarnessError::Kubelet(format!("{missing}: {e}"))),
    }
}

#[derive(Debug, thiserror::Error)]
enum BuildError {
    #[error("the build directory is locked")]
    Locked,
    #[error("{0}")]
    Failed(String),
}

fn cargo_build_kubelet(target_dir: Option<&Path>) -> Result<PathBuf, BuildError> {
    use std::io::BufRead;
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(&cargo);
    cmd.args([
        "build",
        "-p",
        "medic-sandbox",
        "--bin",
        "medic-kubelet",
        "--message-format=json-render-diagnostics",
    ])
    .current_dir(workspace_dir())
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped());
    if let Some(d) = target_dir {
        cmd.arg("--target-dir").arg(d);
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| BuildError::Failed(format!("running {cargo:?}: {e}")))?;
    let stderr = child.stderr.take().expect("piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            eprintln!("{line}");
            if line.contains("Blocking waiting for file lock") {
                let _ = tx.send(());
            }
        }
    });
    let stdout = child.stdout.take().expect("piped");
    let reader = std::thread::spawn(move || {
        std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(&l).ok())
            .filter(|v| v["target"]["name"] == "medic-kubelet")
            .find_map(|v| v["executable"].as_str().map(PathBuf::from))
    });
    loop {
        if let Some(status) = child
            .try_wait()
            .map_err(|e| BuildError::Failed(e.to_string()))?
        {
            let built = reader.join().ok().flatten();
            return match built {
                Some(p) if status.success() && p.is_file() => Ok(p),
                _ => Err(BuildError::Failed(format!("cargo build: {status}"))),
            };
        }
        if rx.try_recv().is_ok() && target_dir.is_none() {
            let _ = child.kill();
            let _ = child.wait();
            return Err(BuildError::Locked);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Address ranges of its own for each sandbox on this machine (pods 127.<n>.0.0/16, Services
/// 127.<100+n>.0.0/16, n in 1..=99), so sandboxes running side by side (parallel tests) never
/// hand out the same pod IP or ClusterIP. Claimed by
/// a file naming the owner's pid; claims of dead owners are taken over.
fn claim_pod_cidr() -> Option<(u8, PathBuf)> {
    use std::hash::{BuildHasher, Hasher};
    let dir = std::env::temp_dir().join("medic-sandbox-cidrs");
    std::fs::create_dir_all(&dir).ok()?;
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    let start = (h.finish() % 99) as u8;
    for i in 0..99u8 {
        let n = (start + i) % 99 + 1;
        let path = dir.join(format!("127.{n}"));
        let me = std::process::id().to_string();
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(mut f) => {
                use std::io::Write;
                let _ = f.write_all(me.as_bytes());
                return Some((n, path));
            }
            Err(_) => {
                let owner: Option<i32> = std::fs::read_to_string(&path)
                    .ok()
                    .and_then(|s| s.trim().parse().ok());
                let dead = owner.is_none_or(|pid| {
                    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_err()
                });
                // Another sandbox of this same process is alive too: only take over dead claims.
                if dead && std::fs::write(&path, &me).is_ok() {
                    return Some((n, path));
                }
            }
        }
    }
    None
}

/// Options of a sandbox.
#[derive(Debug, Clone, Default)]
pub struct SandboxBuilder {
    max_backoff: Option<Duration>,
    kubelet: Option<bool>,
    kubelet_binary: Option<PathBuf>,
    kubelet_args: Vec<String>,
}

impl SandboxBuilder {
    /// Caps CrashLoopBackOff (the first delay too) so restart tests run in seconds.
    pub fn max_backoff(mut self, d: Duration) -> Self {
        self.max_backoff = Some(d);
        self
    }

    /// Control plane only: pods stay Pending (for tests that bring their own node).
    pub fn without_kubelet(mut self) -> Self {
        self.kubelet = Some(false);
        self
    }

    /// Uses this kubelet binary (e.g. `env!("CARGO_BIN_EXE_medic-kubelet")`).
    pub fn kubelet_binary(mut self, path: impl Into<PathBuf>) -> Self {
        self.kubelet_binary = Some(path.into());
        self
    }

    /// Extra `medic-kubelet` flags (e.g. `--no-proxy`).
    pub fn kubelet_arg(mut self, arg: impl Into<String>) -> Self {
        self.kubelet_args.push(arg.into());
        self
    }

    /// Starts the sandbox (blocking, ~15–30 s); it is ready for pods when this returns.
    pub fn start(self) -> Result<Sandbox, HarnessError> {
        let with_kubelet = self.kubelet.unwrap_or(true);
        let kubelet = if with_kubelet {
            Some(match self.kubelet_binary {
                Some(p) => p,
                None => find_kubelet()?,
            })
        } else {
            None
        };
        let tmp = tempfile::Builder::new().prefix("medic-k8s-").tempdir()?;
        let dir = tmp.path().to_path_buf();
        let mut args = self.kubelet_args.clone();
        // Sandboxes side by side must not share pod IPs or ClusterIPs (each proxy listens on
        // its ClusterIPs, and `kubernetes` is always the range's first address).
        let claim = claim_pod_cidr();
        let (pod_cidr, service_cidr) = match &claim {
            Some((n, _)) => (
                format!("127.{n}.0.0/16"),
                format!("127.{}.0.0/16", 100 + u16::from(*n)),
            ),
            None => ("127.1.0.0/16".to_string(), "127.100.0.0/16".to_string()),
        };
        args.push(format!("--pod-cidr={pod_cidr}"));
        if let Some(d) = self.max_backoff {
            let ms = d.as_millis().max(1);
            args.push(format!("--max-backoff={ms}ms"));
            args.push(format!("--initial-backoff={ms}ms"));
        }
        let mut cmd = Command::new("bash");
        cmd.arg(script_path()).arg("up").arg(&dir);
        match &kubelet {
            Some(k) => {
                cmd.env("MEDIC_KUBELET", k)
                    .env_remove("MEDIC_SANDBOX_NO_KUBELET");
            }
            None => {
                cmd.env("MEDIC_SANDBOX_NO_KUBELET", "1");
            }
        }
        cmd.env("MEDIC_KUBELET_ARGS", args.join(" "))
            .env("MEDIC_SANDBOX_SERVICE_CIDR", &service_cidr);
        let sandbox = Sandbox {
            _tmp: tmp,
            dir: dir.clone(),
            with_kubelet,
            cidr_claim: claim.map(|(_, p)| p),
            pod_cidr,
            service_cidr,
        };
        let out = cmd.output()?;
        if !out.status.success() {
            let mut output = String::from_utf8_lossy(&out.stderr).into_owned();
            for log in ["kube-apiserver", "medic-kubelet"] {
                if let Ok(text) =
                    std::fs::read_to_string(dir.join("logs").join(format!("{log}.log")))
                {
                    let tail: Vec<&str> = text.lines().rev().take(15).collect();
                    output.push_str(&format!("\n--- {log}.log (last lines) ---\n"));
                    output.extend(tail.into_iter().rev().map(|l| format!("{l}\n")));
                }
            }
            // `sandbox` drops here and runs `down`.
            return Err(HarnessError::Up {
                status: out.status.to_string(),
                output,
            });
        }
        Ok(sandbox)
    }
}

/// A running sandbox; dropping it stops every process it started.
#[derive(Debug)]
pub struct Sandbox {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    with_kubelet: bool,
    cidr_claim: Option<PathBuf>,
    pod_cidr: String,
    service_cidr: String,
}

impl Sandbox {
    /// A sandbox with the process kubelet and default back-off.
    pub fn start() -> Result<Sandbox, HarnessError> {
        SandboxBuilder::default().start()
    }

    pub fn builder() -> SandboxBuilder {
        SandboxBuilder::default()
    }

    /// The sandbox directory (kubeconfig, env, logs/, pids/, pods-logs/, kubelet/).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn kubeconfig_path(&self) -> PathBuf {
        self.dir.join("kubeconfig")
    }

    /// Root of the CRI container logs (`<ns>_<pod>_<uid>/<container>/<n>.log`).
    pub fn pod_log_dir(&self) -> PathBuf {
        self.dir.join("pods-logs")
    }

    /// This sandbox's pod IP range (127.<n>.0.0/16, unique among running sandboxes).
    pub fn pod_cidr(&self) -> &str {
        &self.pod_cidr
    }

    /// This sandbox's ClusterIP range (127.<100+n>.0.0/16); `kubernetes` has its first address.
    pub fn service_cidr(&self) -> &str {
        &self.service_cidr
    }

    /// The node the kubelet registers (None without a kubelet).
    pub fn node_name(&self) -> Option<&'static str> {
        self.with_kubelet.then_some("sandbox-node")
    }

    /// An admin client for the sandbox's apiserver.
    pub async fn client(&self) -> Result<kube::Client, HarnessError> {
        Ok(crate::client_from_kubeconfig(&self.kubeconfig_path()).await?)
    }

    /// The log of one control-plane process or the kubelet (`logs/<name>.log`).
    pub fn process_log(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.join("logs").join(format!("{name}.log")))
            .unwrap_or_default()
    }

    /// Stops everything now (Drop does the same).
    pub fn stop(&mut self) {
        let pids: Vec<i32> = std::fs::read_dir(self.dir.join("pids"))
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "pid"))
            .filter_map(|e| std::fs::read_to_string(e.path()).ok())
            .filter_map(|s| s.trim().parse().ok())
            .collect();
        let _ = Command::new("bash")
            .arg(script_path())
            .arg("down")
            .arg(&self.dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
        // Whatever survived `down` (it should not): each was started in its own session.
        for pid in pids {
            crate::procs::signal_group(pid, nix::sys::signal::Signal::SIGKILL);
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        if let Ok(state) = std::fs::canonicalize(self.dir.join("kubelet")) {
            crate::procs::kill_marked(&state);
        }
        if let Some(claim) = self.cidr_claim.take() {
            let _ = std::fs::remove_file(claim);
        }
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        self.stop();
    }
}
