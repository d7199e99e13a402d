//! Host processes of containers: each container runs in its own process group, so a signal to
//! the group reaches everything it started; memory is the group's summed RSS from /proc.
//!
//! Every container process carries [`MARKER_VAR`] in its environment (inherited by whatever it
//! starts), so leftovers of a kubelet that died without cleaning up can be found and killed
//! without trusting recorded PIDs that may have been reused.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Mutex, OnceLock};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

/// Environment variable that marks a container process with its kubelet's state directory.
pub const MARKER_VAR: &str = "MEDIC_SANDBOX_STATE_DIR";

/// Sends `sig` to a process group; a group that is already gone is not an error.
pub fn signal_group(pgid: i32, sig: Signal) {
    if pgid > 1 {
        let _ = killpg(Pid::from_raw(pgid), sig);
    }
}

/// True while any process of the group exists.
pub fn group_alive(pgid: i32) -> bool {
    pgid > 1 && killpg(Pid::from_raw(pgid), None).is_ok()
}

/// (pid, pgrp) of a /proc/<pid>/stat line; the command name may contain spaces and ')'.
fn parse_stat(stat: &str) -> Option<(i32, i32)> {
    let pid: i32 = stat.split_whitespace().next()?.parse().ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let _state = fields.next()?;
    let _ppid = fields.next()?;
    let pgrp: i32 = fields.next()?.parse().ok()?;
    Some((pid, pgrp))
}

fn proc_pids() -> impl Iterator<Item = i32> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse().ok()))
}

/// PIDs whose process group is `pgid`.
pub fn group_members(pgid: i32) -> Vec<i32> {
    proc_pids()
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| parse_stat(&s))
                .is_some_and(|(_, pg)| pg == pgid)
        })
        .collect()
}

/// VmRSS of one process in bytes (0 for kernel threads and vanished processes).
fn rss_bytes(pid: i32) -> u64 {
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return 0;
    };
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|kb| kb.parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// Summed RSS of a process group, in bytes.
pub fn group_rss(pgid: i32) -> u64 {
    group_members(pgid).into_iter().map(rss_bytes).sum()
}

type GroupMap = (Option<std::time::Instant>, HashMap<i32, Vec<i32>>);

/// Summed RSS of a process group, from a process-group map that all containers share and that
/// is rebuilt at most every `max_age`: one /proc scan per period for every container with a
/// memory limit instead of one each.
pub fn group_rss_shared(pgid: i32, max_age: std::time::Duration) -> u64 {
    static GROUPS: OnceLock<Mutex<GroupMap>> = OnceLock::new();
    let members = {
        let mut g = GROUPS
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if g.0.is_none_or(|t| t.elapsed() >= max_age) {
            let mut map: HashMap<i32, Vec<i32>> = HashMap::new();
            for pid in proc_pids() {
                if let Some((_, pg)) = std::fs::read_to_string(format!("/proc/{pid}/stat"))
                    .ok()
                    .and_then(|s| parse_stat(&s))
                {
                    map.entry(pg).or_default().push(pid);
                }
            }
            *g = (Some(std::time::Instant::now()), map);
        }
        g.1.get(&pgid).cloned().unwrap_or_default()
    };
    members.into_iter().map(rss_bytes).sum()
}

/// Kills (SIGKILL, by process group) every process whose environment carries
/// `MEDIC_SANDBOX_STATE_DIR=<state_dir>`. Returns how many processes were found.
pub fn kill_marked(state_dir: &Path) -> usize {
    let needle = format!("{MARKER_VAR}={}", state_dir.display());
    let mut found = 0;
    for pid in proc_pids() {
        let Ok(environ) = std::fs::read(format!("/proc/{pid}/environ")) else {
            continue;
        };
        if environ.split(|b| *b == 0).any(|e| e == needle.as_bytes()) {
            found += 1;
            let pgid = std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| parse_stat(&s))
                .map(|(_, pg)| pg);
            match pgid {
                Some(pg) if pg > 1 && pg != std::process::id() as i32 => {
                    signal_group(pg, Signal::SIGKILL)
                }
                _ => {
                    let _ = nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGKILL);
                }
            }
        }
    }
    found
}

/// Shell-style exit code: the code, or 128 + the signal that ended the process.
pub fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(255)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_with_odd_command_names() {
        let s = "4242 (we ird) proc)) S 1 4240 4240 0 -1 4194560 100";
        assert_eq!(parse_stat(s), Some((4242, 4240)));
        assert_eq!(parse_stat("garbage"), None);
    }
}
