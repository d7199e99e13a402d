//! One instance's life: spawn, watch for exit, classify it, restart with crash backoff. One
//! tokio task per instance; it ends when asked to stop or when the restart policy says so.

use super::core::Inner;
use super::files::{Placeholders, append_json_line, exit_reason, fill_argv};
use super::spec::RestartPolicy;
use medic_core::{ProcessEvent, ProcessEventKind, ProcessEventRecord, Ts};
use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

pub(crate) const BACKOFF_START: Duration = Duration::from_secs(1);
pub(crate) const BACKOFF_MAX: Duration = Duration::from_secs(10);
/// A process that ran this long is considered healthy again: its next crash backs off from 1 s.
pub(crate) const BACKOFF_RESET_AFTER: Duration = Duration::from_secs(20);
/// Grace period between SIGTERM and SIGKILL.
pub(crate) const STOP_GRACE: Duration = Duration::from_secs(3);

/// Everything needed to start one process, read from the supervisor's state at spawn time so
/// that a crash restart picks up the workload's current release and config.
pub(crate) struct Launch {
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    pub log: PathBuf,
    pub pid_file: PathBuf,
    pub instance: String,
    pub release: String,
    pub config_version: String,
    pub policy: RestartPolicy,
}

impl Inner {
    fn launch(&self, service: &str, index: u32) -> Option<Launch> {
        let state = self.lock_state();
        let w = state.workloads.get(service)?;
        let inst = w.instances.iter().find(|i| i.index == index)?;
        let log = self.log_path(&inst.name);
        let config = self.config_path(service, &w.config_version);
        let instance_dir = self.instance_dir(&inst.name);
        let mut argv = fill_argv(
            &w.spec.argv,
            &Placeholders {
                service,
                instance: &inst.name,
                port: inst.port,
                log: &log,
                config: &config,
                release: &w.release,
                instance_dir: &instance_dir,
                estate_dir: &self.dir,
            },
        );
        if let Some(r) = w.spec.releases.iter().find(|r| r.name == w.release) {
            argv.extend(r.extra_args.iter().cloned());
        }
        Some(Launch {
            argv,
            env: w.spec.env.clone(),
            log,
            pid_file: self.pid_path(&inst.name),
            instance: inst.name.clone(),
            release: w.release.clone(),
            config_version: w.config_version.clone(),
            policy: w.spec.restart,
        })
    }

    fn record_event(&self, service: &str, l: &Launch, event: ProcessEvent) {
        let rec = ProcessEventRecord {
            ts: Ts::now(),
            service: service.to_string(),
            instance: l.instance.clone(),
            event,
        };
        let _serial = self.lock_files();
        if let Err(e) = append_json_line(&self.dir.join("events.jsonl"), &rec) {
            tracing::warn!(error = %e, "cannot record process event");
        }
    }
}

fn spawn(l: &Launch) -> std::io::Result<tokio::process::Child> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&l.log)?;
    let log_err = log.try_clone()?;
    let (program, args) = l
        .argv
        .split_first()
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "empty argv"))?;
    tokio::process::Command::new(program)
        .args(args)
        .envs(l.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::from(log))
        .stderr(Stdio::from(log_err))
        // Own process group: a Ctrl-C to the supervisor's terminal is not delivered to the
        // children directly; the supervisor stops them in order instead.
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
}

/// SIGTERM, then SIGKILL to the whole group after the grace period.
async fn terminate(
    child: &mut tokio::process::Child,
    pid: u32,
) -> std::io::Result<std::process::ExitStatus> {
    let pid_i = i32::try_from(pid).unwrap_or(0);
    if pid_i > 0 {
        let _ = kill(Pid::from_raw(pid_i), Signal::SIGTERM);
    }
    match tokio::time::timeout(STOP_GRACE, child.wait()).await {
        Ok(status) => status,
        Err(_) => {
            if pid_i > 0 {
                let _ = killpg(Pid::from_raw(pid_i), Signal::SIGKILL);
            }
            let _ = child.start_kill();
            child.wait().await
        }
    }
}

/// The instance task. Returns when asked to stop, when the instance was removed, or when the
/// restart policy leaves it down.
pub(crate) async fn run(
    inner: Arc<Inner>,
    service: String,
    index: u32,
    mut stop: watch::Receiver<bool>,
) {
    let mut backoff = BACKOFF_START;
    loop {
        if *stop.borrow() {
            return;
        }
        let Some(launch) = inner.launch(&service, index) else {
            return;
        };
        let started = Instant::now();
        let mut asked_to_stop = false;
        let reason: &'static str;
        match spawn(&launch) {
            Err(e) => {
                let msg = format!(
                    "supervisor: cannot start {:?}: {e}\n",
                    launch.argv.first().map(String::as_str).unwrap_or("")
                );
                let _ = append_text(&launch.log, &msg);
                tracing::warn!(instance = %launch.instance, error = %e, "cannot start instance");
                reason = "Error";
                inner.mark_exited(&service, index, reason);
            }
            Ok(mut child) => {
                let pid = child.id().unwrap_or(0);
                inner.mark_started(&service, index, pid);
                if let Err(e) = std::fs::write(&launch.pid_file, format!("{pid}\n")) {
                    tracing::warn!(error = %e, "cannot write pid file");
                }
                inner.record_event(
                    &service,
                    &launch,
                    ProcessEvent {
                        kind: ProcessEventKind::Started,
                        pid,
                        exit_code: None,
                        signal: None,
                        reason: String::new(),
                        version: Some(launch.release.clone()),
                        config_version: Some(launch.config_version.clone()),
                    },
                );
                let status = tokio::select! {
                    s = child.wait() => s,
                    // A dropped sender also means stop: nobody is left to manage this instance.
                    _ = stop.changed() => {
                        asked_to_stop = true;
                        terminate(&mut child, pid).await
                    }
                };
                let (exit_code, signal) = match &status {
                    Ok(s) => (s.code(), s.signal()),
                    Err(_) => (None, None),
                };
                let oom = inner.take_oom_mark(&service, index, pid);
                reason = exit_reason(asked_to_stop, oom, exit_code);
                let _ = std::fs::remove_file(&launch.pid_file);
                inner.record_event(
                    &service,
                    &launch,
                    ProcessEvent {
                        kind: ProcessEventKind::Exited,
                        pid,
                        exit_code,
                        signal,
                        reason: reason.to_string(),
                        version: Some(launch.release.clone()),
                        config_version: Some(launch.config_version.clone()),
                    },
                );
                inner.mark_exited(&service, index, reason);
            }
        }
        if asked_to_stop || !launch.policy.restarts_after(reason) {
            return;
        }
        if started.elapsed() >= BACKOFF_RESET_AFTER {
            backoff = BACKOFF_START;
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = stop.changed() => return,
        }
        backoff = (backoff * 2).min(BACKOFF_MAX);
        inner.count_restart(&service, index);
    }
}

fn append_text(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?
        .write_all(text.as_bytes())
}
