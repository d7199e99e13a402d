//! Memory and CPU of processes named by pid files, read from /proc → `ProcessStats`.

use super::{Source, SourceContext, SourceFuture, pattern, positive};
use crate::SignalsError;
use crate::glob::{PathPattern, instance_and_service};
use crate::stats::Counter;
use medic_config::{SourceConfig, SourceKind};
use medic_core::{Signal, SignalPayload, Ts};
use std::path::PathBuf;
use std::time::Duration;
use tokio::time::Instant;

/// Clock ticks per second of `utime`/`stime` (`USER_HZ`): 100 on every Linux platform.
const TICKS_PER_SECOND: f64 = 100.0;

#[derive(Debug, thiserror::Error)]
pub enum ProcError {
    #[error("process {0} does not exist")]
    Vanished(u32),
    #[error("cannot read /proc/{pid}/{file}")]
    Read {
        pid: u32,
        file: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("/proc/{pid}/{file} is malformed: {reason}")]
    Malformed {
        pid: u32,
        file: &'static str,
        reason: String,
    },
}

/// `VmRSS` of a `/proc/PID/status` text, in bytes. Kernel threads have none: 0.
pub fn parse_status_rss(status: &str) -> Result<u64, String> {
    for line in status.lines() {
        if let Some(rest) = line.strip_prefix("VmRSS:") {
            let mut parts = rest.split_whitespace();
            let n: u64 = parts
                .next()
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| format!("expected `VmRSS: <n> kB`, got `{}`", line.trim()))?;
            let unit = parts.next().unwrap_or("kB");
            if unit != "kB" {
                return Err(format!("expected VmRSS in kB, got `{unit}`"));
            }
            return Ok(n.saturating_mul(1024));
        }
    }
    Ok(0)
}

/// `utime + stime` in seconds from a `/proc/PID/stat` text. The command name (field 2) is
/// in parentheses and may itself contain spaces and parentheses, so fields are counted
/// from the last `)`.
pub fn parse_stat_cpu_seconds(stat: &str) -> Result<f64, String> {
    let close = stat
        .rfind(')')
        .ok_or_else(|| "expected `pid (comm) state ...`, found no `)`".to_string())?;
    let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
    // After `)`: state is field 3 of the man page, utime 14, stime 15.
    let field = |n: usize| -> Result<u64, String> {
        fields
            .get(n - 3)
            .ok_or_else(|| format!("expected at least {n} fields"))?
            .parse::<u64>()
            .map_err(|_| format!("field {n} is not a number"))
    };
    let ticks = field(14)?.saturating_add(field(15)?);
    Ok(ticks as f64 / TICKS_PER_SECOND)
}

fn proc_read(pid: u32, file: &'static str) -> Result<String, ProcError> {
    std::fs::read_to_string(format!("/proc/{pid}/{file}")).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            ProcError::Vanished(pid)
        } else {
            ProcError::Read {
                pid,
                file,
                source: e,
            }
        }
    })
}

/// Resident memory (bytes) and cumulative CPU seconds of a process.
pub fn read_process_stats(pid: u32) -> Result<(u64, f64), ProcError> {
    let status = proc_read(pid, "status")?;
    let rss = parse_status_rss(&status).map_err(|reason| ProcError::Malformed {
        pid,
        file: "status",
        reason,
    })?;
    let stat = proc_read(pid, "stat")?;
    let cpu = parse_stat_cpu_seconds(&stat).map_err(|reason| ProcError::Malformed {
        pid,
        file: "stat",
        reason,
    })?;
    Ok((rss, cpu))
}

/// A pid file's content: a positive decimal pid (surrounding whitespace allowed).
pub fn parse_pid(text: &str) -> Option<u32> {
    text.trim().parse::<u32>().ok().filter(|p| *p > 0)
}

pub(crate) struct ProcfsSource {
    name: String,
    pid_files: PathPattern,
    interval: Duration,
}

impl ProcfsSource {
    pub(crate) fn build(cfg: &SourceConfig) -> Result<Box<dyn Source>, SignalsError> {
        let SourceKind::Procfs {
            pid_files,
            interval,
        } = &cfg.kind
        else {
            return Err(super::invalid(cfg, "expected a procfs source"));
        };
        Ok(Box::new(ProcfsSource {
            name: cfg.name.clone(),
            pid_files: pattern(cfg, pid_files)?,
            interval: positive(cfg, "interval", *interval)?,
        }))
    }
}

enum Reading {
    Stats {
        path: PathBuf,
        pid: u32,
        rss: u64,
        cpu: f64,
    },
    InvalidPidFile,
    Vanished,
    Unreadable,
}

/// One sweep over the pid files. Blocking IO: run it off the async threads.
fn sweep(pid_files: &PathPattern) -> Vec<Reading> {
    pid_files
        .expand()
        .into_iter()
        .map(|path| {
            let Some(pid) = std::fs::read_to_string(&path)
                .ok()
                .and_then(|t| parse_pid(&t))
            else {
                return Reading::InvalidPidFile;
            };
            match read_process_stats(pid) {
                Ok((rss, cpu)) => Reading::Stats {
                    path,
                    pid,
                    rss,
                    cpu,
                },
                Err(ProcError::Vanished(_)) => Reading::Vanished,
                Err(e) => {
                    tracing::debug!(pid, error = %e, "cannot read process stats");
                    Reading::Unreadable
                }
            }
        })
        .collect()
}

impl ProcfsSource {
    async fn run_loop(self, mut ctx: SourceContext) {
        let pattern = std::sync::Arc::new(self.pid_files);
        let mut next = Instant::now();
        loop {
            let p = pattern.clone();
            let Ok(readings) = tokio::task::spawn_blocking(move || sweep(&p)).await else {
                return;
            };
            for r in readings {
                match r {
                    Reading::Stats {
                        path,
                        pid,
                        rss,
                        cpu,
                    } => {
                        let (instance, service) = instance_and_service(&path);
                        let signal = Signal {
                            ts: Ts::now(),
                            source: self.name.clone(),
                            service,
                            instance,
                            payload: SignalPayload::ProcessStats {
                                pid,
                                rss_bytes: rss,
                                cpu_seconds: cpu,
                            },
                        };
                        if !ctx.emit(signal).await {
                            return;
                        }
                    }
                    Reading::InvalidPidFile => ctx.stats.incr(Counter::PidFileInvalid),
                    Reading::Vanished => ctx.stats.incr(Counter::ProcessVanished),
                    Reading::Unreadable => ctx.stats.incr(Counter::ReadError),
                }
            }
            if !ctx.next_period(&mut next, self.interval).await {
                return;
            }
        }
    }
}

impl Source for ProcfsSource {
    fn name(&self) -> &str {
        &self.name
    }

    fn run(self: Box<Self>, ctx: SourceContext) -> SourceFuture {
        Box::pin(self.run_loop(ctx))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process() {
        let (rss, cpu) = read_process_stats(std::process::id()).unwrap();
        // A running test binary has at least a megabyte resident.
        assert!(rss > 1 << 20, "rss {rss}");
        assert!(cpu >= 0.0 && cpu.is_finite());
    }

    #[test]
    fn vanished_process() {
        // Above the kernel's pid_max limit (4194304), so never a live process.
        assert!(matches!(
            read_process_stats(4_194_305),
            Err(ProcError::Vanished(_))
        ));
    }

    #[test]
    fn stat_with_hostile_comm() {
        let stat = "1234 (my (weird) prog) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 1 0 100 1000 10";
        assert_eq!(parse_stat_cpu_seconds(stat).unwrap(), 3.0);
        assert!(parse_stat_cpu_seconds("1234 (x) S 1 2").is_err());
        assert!(parse_stat_cpu_seconds("no paren").is_err());
        assert!(parse_stat_cpu_seconds("1 (x) S 1 1 1 0 -1 0 0 0 0 0 abc 5").is_err());
        assert!(parse_stat_cpu_seconds("").is_err());
    }

    #[test]
    fn status_rss() {
        assert_eq!(
            parse_status_rss("Name:\tx\nVmRSS:\t  2048 kB\n").unwrap(),
            2048 * 1024
        );
        assert_eq!(parse_status_rss("Name:\tkthreadd\n").unwrap(), 0);
        assert!(parse_status_rss("VmRSS: lots\n").is_err());
        assert!(parse_status_rss("VmRSS: 5 MB\n").is_err());
    }

    #[test]
    fn pid_files() {
        assert_eq!(parse_pid("123\n"), Some(123));
        assert_eq!(parse_pid(" 7 "), Some(7));
        for bad in ["", "0", "-1", "abc", "12 34", "99999999999"] {
            assert_eq!(parse_pid(bad), None, "{bad}");
        }
    }

    #[test]
    fn sweep_classifies_pid_files() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(
            d.path().join("self-0.pid"),
            format!("{}\n", std::process::id()),
        )
        .unwrap();
        std::fs::write(d.path().join("garbage-0.pid"), "not a pid").unwrap();
        std::fs::write(d.path().join("stale-0.pid"), "4194305").unwrap();
        let p = PathPattern::parse(d.path().join("*.pid").to_str().unwrap()).unwrap();
        let mut stats = 0;
        let mut invalid = 0;
        let mut vanished = 0;
        for r in sweep(&p) {
            match r {
                Reading::Stats { path, pid, .. } => {
                    stats += 1;
                    assert_eq!(pid, std::process::id());
                    assert!(path.ends_with("self-0.pid"));
                }
                Reading::InvalidPidFile => invalid += 1,
                Reading::Vanished => vanished += 1,
                Reading::Unreadable => panic!("unexpected unreadable"),
            }
        }
        assert_eq!((stats, invalid, vanished), (1, 1, 1));
    }
}
