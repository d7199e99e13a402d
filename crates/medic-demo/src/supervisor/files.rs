//! Small file and OS helpers of the supervisor, kept pure where possible so they unit-test.

use medic_act::ActError;
use std::io::Write;
use std::path::Path;

/// Writes `contents` so that readers see the old file or the new one, never a torn one.
pub(crate) fn write_atomic(path: &Path, contents: &[u8]) -> Result<(), ActError> {
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{file_name}.tmp.{}", std::process::id()));
    std::fs::write(&tmp, contents).map_err(|e| ActError::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| ActError::io(path, e))
}

/// Appends one JSON line. One `write_all` of a whole line with O_APPEND keeps concurrent
/// appenders from interleaving inside a line.
pub(crate) fn append_json_line<T: serde::Serialize>(
    path: &Path,
    value: &T,
) -> Result<(), ActError> {
    let mut line = serde_json::to_string(value).map_err(|e| {
        ActError::io(
            path,
            std::io::Error::new(std::io::ErrorKind::InvalidData, e),
        )
    })?;
    line.push('\n');
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| ActError::io(path, e))?;
    f.write_all(line.as_bytes())
        .map_err(|e| ActError::io(path, e))
}

/// Finds a free loopback port: bind port 0, read it, release it.
pub(crate) fn allocate_port() -> Result<u16, ActError> {
    let l =
        std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| ActError::io("127.0.0.1:0", e))?;
    let port = l
        .local_addr()
        .map_err(|e| ActError::io("127.0.0.1:0", e))?
        .port();
    Ok(port)
}

/// `VmRSS` of a `/proc/PID/status` text, in bytes.
pub(crate) fn parse_vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let mut parts = line["VmRSS:".len()..].split_whitespace();
    let value: u64 = parts.next()?.parse().ok()?;
    let multiplier = match parts.next().unwrap_or("kB") {
        "kB" | "KB" | "kb" => 1024,
        "mB" | "MB" => 1024 * 1024,
        "B" => 1,
        _ => return None,
    };
    value.checked_mul(multiplier)
}

/// Resident memory of a live process, `None` if it is gone or unreadable.
pub(crate) fn read_rss(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_vm_rss(&status)
}

/// Values substituted into the argv template.
pub(crate) struct Placeholders<'a> {
    pub service: &'a str,
    pub instance: &'a str,
    pub port: u16,
    pub log: &'a Path,
    pub config: &'a Path,
    pub release: &'a str,
    pub instance_dir: &'a Path,
    pub estate_dir: &'a Path,
}

/// Fills the argv template. Substitution is per element, so a value with spaces stays one
/// argument (there is no shell to split it).
pub(crate) fn fill_argv(template: &[String], p: &Placeholders<'_>) -> Vec<String> {
    let port = p.port.to_string();
    let pairs: [(&str, std::borrow::Cow<'_, str>); 8] = [
        ("{service}", p.service.into()),
        ("{instance}", p.instance.into()),
        ("{port}", port.as_str().into()),
        ("{log}", p.log.to_string_lossy()),
        ("{config}", p.config.to_string_lossy()),
        ("{release}", p.release.into()),
        ("{instance_dir}", p.instance_dir.to_string_lossy()),
        ("{estate_dir}", p.estate_dir.to_string_lossy()),
    ];
    template
        .iter()
        .map(|arg| {
            // One pass over the argument, so a value that itself contains `{port}` is not
            // substituted again.
            let mut out = String::with_capacity(arg.len());
            let mut rest = arg.as_str();
            'outer: while !rest.is_empty() {
                for (key, value) in &pairs {
                    if let Some(after) = rest.strip_prefix(key) {
                        out.push_str(value);
                        rest = after;
                        continue 'outer;
                    }
                }
                let mut chars = rest.chars();
                if let Some(c) = chars.next() {
                    out.push(c);
                }
                rest = chars.as_str();
            }
            out
        })
        .collect()
}

/// Why an instance exited, in the words of the estate contract.
pub(crate) fn exit_reason(
    asked_to_stop: bool,
    oom_killed: bool,
    exit_code: Option<i32>,
) -> &'static str {
    if oom_killed {
        "OOMKilled"
    } else if asked_to_stop {
        "Stopped"
    } else if exit_code == Some(0) {
        "Completed"
    } else {
        "Error"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn vm_rss_parsing() {
        let status = "Name:\tpython3\nVmPeak:\t 999 kB\nVmRSS:\t   12345 kB\nThreads:\t1\n";
        assert_eq!(parse_vm_rss(status), Some(12345 * 1024));
        assert_eq!(parse_vm_rss("Name: x\n"), None);
        assert_eq!(parse_vm_rss("VmRSS:\n"), None);
        assert_eq!(parse_vm_rss("VmRSS: abc kB\n"), None);
        assert_eq!(parse_vm_rss("VmRSS: 12 parsecs\n"), None);
        assert_eq!(parse_vm_rss("VmRSS: 99999999999999999999 kB\n"), None);
        assert_eq!(parse_vm_rss(&format!("VmRSS: {} kB\n", u64::MAX)), None);
    }

    #[test]
    fn argv_template_is_filled_per_element() {
        let log = PathBuf::from("/e/logs/a-0.log");
        let cfg = PathBuf::from("/e/configs/a/c1.json");
        let idir = PathBuf::from("/e/instances/a-0");
        let edir = PathBuf::from("/e dir");
        let p = Placeholders {
            service: "a",
            instance: "a-0",
            port: 8080,
            log: &log,
            config: &cfg,
            release: "{port}",
            instance_dir: &idir,
            estate_dir: &edir,
        };
        let t: Vec<String> = [
            "bin",
            "--port={port}",
            "{service}/{instance}",
            "{log}",
            "{config}",
            "{release}",
            "{instance_dir}",
            "{estate_dir}",
            "{unknown}",
            "{",
            "",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(
            fill_argv(&t, &p),
            vec![
                "bin",
                "--port=8080",
                "a/a-0",
                "/e/logs/a-0.log",
                "/e/configs/a/c1.json",
                "{port}",
                "/e/instances/a-0",
                "/e dir",
                "{unknown}",
                "{",
                ""
            ]
        );
    }

    #[test]
    fn exit_classification() {
        assert_eq!(exit_reason(false, true, None), "OOMKilled");
        assert_eq!(exit_reason(true, true, None), "OOMKilled");
        assert_eq!(exit_reason(true, false, Some(1)), "Stopped");
        assert_eq!(exit_reason(false, false, Some(0)), "Completed");
        assert_eq!(exit_reason(false, false, Some(1)), "Error");
        assert_eq!(exit_reason(false, false, None), "Error");
    }

    #[test]
    fn atomic_write_and_append() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.json");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "two");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        let j = dir.path().join("l.jsonl");
        append_json_line(&j, &serde_json::json!({"a": 1})).unwrap();
        append_json_line(&j, &serde_json::json!({"a": 2})).unwrap();
        assert_eq!(
            std::fs::read_to_string(&j).unwrap(),
            "{\"a\":1}\n{\"a\":2}\n"
        );
        assert!(write_atomic(&dir.path().join("missing/x"), b"x").is_err());
    }

    #[test]
    fn ports_are_distinct_and_free() {
        let a = allocate_port().unwrap();
        assert_ne!(a, 0);
        std::net::TcpListener::bind(("127.0.0.1", a)).unwrap();
    }
}
