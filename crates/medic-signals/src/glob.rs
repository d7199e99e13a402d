//! Path patterns with `*` and `?` (`/var/log/app/*.log`, `/var/log/pods/*/*/*.log`):
//! enough for log and pid files without another dependency. A wildcard matches within
//! one path component (no `**`).

use std::path::{Path, PathBuf};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PathPattern {
    dir: PathBuf,
    name: String,
    has_wildcard: bool,
    /// Wildcards in the directory part too (the kubelet's `/var/log/pods/*/*/*.log`).
    dir_wildcard: bool,
}

/// A directory pattern expands to at most this many directories: a pattern over a huge
/// tree must not stall a poll.
const MAX_DIR_MATCHES: usize = 10_000;

impl PathPattern {
    /// Wildcards are allowed in any component.
    pub fn parse(pattern: &str) -> Result<PathPattern, String> {
        if pattern.trim().is_empty() {
            return Err("expected a file path, got an empty string".into());
        }
        let path = Path::new(pattern);
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| "expected a path ending in a file name".to_string())?;
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        if dir.to_string_lossy().contains("**") {
            return Err("`**` is not supported: use one `*` per directory level".into());
        }
        Ok(PathPattern {
            dir_wildcard: dir.to_string_lossy().contains(['*', '?']),
            has_wildcard: name.contains(['*', '?']),
            name: name.to_string(),
            dir,
        })
    }

    /// Regular files (or symlinks to them) matching now, sorted.
    pub fn expand(&self) -> Vec<PathBuf> {
        if self.dir_wildcard {
            let mut out: Vec<PathBuf> = expand_dirs(&self.dir)
                .into_iter()
                .flat_map(|d| self.expand_in(&d))
                .collect();
            out.sort();
            return out;
        }
        self.expand_in(&self.dir)
    }

    fn expand_in(&self, dir: &Path) -> Vec<PathBuf> {
        if !self.has_wildcard {
            let p = dir.join(&self.name);
            return if p.is_file() { vec![p] } else { Vec::new() };
        }
        let Ok(entries) = std::fs::read_dir(dir) else {
            return Vec::new();
        };
        let mut out: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .filter(|e| {
                e.file_name()
                    .to_str()
                    .is_some_and(|n| wildcard_match(&self.name, n))
            })
            .map(|e| e.path())
            .filter(|p| p.is_file())
            .collect();
        out.sort();
        out
    }
}

/// The directories matching a directory pattern, component by component.
fn expand_dirs(pattern: &Path) -> Vec<PathBuf> {
    let mut current = vec![PathBuf::new()];
    for comp in pattern.components() {
        let part = comp.as_os_str().to_string_lossy();
        if !part.contains(['*', '?']) {
            for c in &mut current {
                c.push(comp.as_os_str());
            }
            continue;
        }
        let mut next = Vec::new();
        for base in &current {
            let dir = if base.as_os_str().is_empty() {
                Path::new(".")
            } else {
                base.as_path()
            };
            let Ok(entries) = std::fs::read_dir(dir) else {
                continue;
            };
            for e in entries.filter_map(Result::ok) {
                if next.len() >= MAX_DIR_MATCHES {
                    break;
                }
                let matches = e
                    .file_name()
                    .to_str()
                    .is_some_and(|n| wildcard_match(&part, n));
                if matches && e.path().is_dir() {
                    next.push(base.join(e.file_name()));
                }
            }
        }
        current = next;
    }
    current
}

/// `*` matches any run of characters (including none), `?` exactly one.
pub fn wildcard_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    // Position of the last `*` and the text position it was tried at: linear-time
    // backtracking, no recursion on hostile patterns.
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// The instance named by a file (`checkout-1.log` → `checkout-1`) and its service
/// (`checkout`): the stem less a trailing `-<digits>`.
pub fn instance_and_service(path: &Path) -> (Option<String>, Option<String>) {
    let Some(stem) = path.file_stem().and_then(|s| s.to_str()) else {
        return (None, None);
    };
    let service = match stem.rsplit_once('-') {
        Some((svc, idx))
            if !svc.is_empty() && !idx.is_empty() && idx.bytes().all(|b| b.is_ascii_digit()) =>
        {
            svc
        }
        _ => stem,
    };
    (Some(stem.to_string()), Some(service.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards() {
        assert!(wildcard_match("*.log", "a.log"));
        assert!(wildcard_match("*.log", ".log"));
        assert!(!wildcard_match("*.log", "a.log.1"));
        assert!(wildcard_match("a?c", "abc"));
        assert!(!wildcard_match("a?c", "ac"));
        assert!(wildcard_match("*-*.log", "checkout-1.log"));
        assert!(!wildcard_match("*-*.log", "checkout.log"));
        assert!(wildcard_match("*", ""));
        assert!(wildcard_match("x", "x"));
        assert!(!wildcard_match("x", "y"));
        // Hostile pattern: must finish quickly.
        let text = "a".repeat(5000);
        assert!(!wildcard_match(&format!("{}b", "*a".repeat(50)), &text));
    }

    #[test]
    fn parse_rejects_double_star_and_empty() {
        assert!(PathPattern::parse("/var/**/x.log").is_err());
        assert!(PathPattern::parse("/var/*/x.log").is_ok());
        assert!(PathPattern::parse("").is_err());
        assert!(PathPattern::parse("/").is_err());
        assert!(PathPattern::parse("/tmp/*.log").is_ok());
    }

    #[test]
    fn expands_files_only() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("a.log"), "x").unwrap();
        std::fs::write(d.path().join("b.log"), "x").unwrap();
        std::fs::write(d.path().join("c.txt"), "x").unwrap();
        std::fs::create_dir(d.path().join("dir.log")).unwrap();
        let p = PathPattern::parse(d.path().join("*.log").to_str().unwrap()).unwrap();
        let got = p.expand();
        assert_eq!(got, vec![d.path().join("a.log"), d.path().join("b.log")]);
        let lit = PathPattern::parse(d.path().join("c.txt").to_str().unwrap()).unwrap();
        assert_eq!(lit.expand().len(), 1);
        let missing = PathPattern::parse("/nonexistent-dir-xyz/*.log").unwrap();
        assert!(missing.expand().is_empty());
    }

    #[test]
    fn directory_wildcards() {
        let d = tempfile::tempdir().unwrap();
        for (dir, file) in [
            ("ns_a-1_u1/app", "0.log"),
            ("ns_a-1_u1/app", "1.log"),
            ("ns_b-2_u2/side", "0.log"),
            ("ns_b-2_u2/side", "0.log.20240101.gz"),
        ] {
            std::fs::create_dir_all(d.path().join(dir)).unwrap();
            std::fs::write(d.path().join(dir).join(file), "x").unwrap();
        }
        // A file where a directory is expected is skipped.
        std::fs::write(d.path().join("stray"), "x").unwrap();
        let p = PathPattern::parse(d.path().join("*/*/*.log").to_str().unwrap()).unwrap();
        let got: Vec<String> = p
            .expand()
            .iter()
            .map(|p| p.strip_prefix(d.path()).unwrap().display().to_string())
            .collect();
        assert_eq!(
            got,
            vec![
                "ns_a-1_u1/app/0.log",
                "ns_a-1_u1/app/1.log",
                "ns_b-2_u2/side/0.log"
            ]
        );
        let lit = PathPattern::parse(d.path().join("*/side/0.log").to_str().unwrap()).unwrap();
        assert_eq!(lit.expand().len(), 1);
    }

    #[test]
    fn names_from_file() {
        let f = |p: &str| instance_and_service(Path::new(p));
        assert_eq!(
            f("/x/checkout-1.log"),
            (Some("checkout-1".into()), Some("checkout".into()))
        );
        assert_eq!(
            f("/x/cache.log"),
            (Some("cache".into()), Some("cache".into()))
        );
        assert_eq!(
            f("/x/my-app-v2.log"),
            (Some("my-app-v2".into()), Some("my-app-v2".into()))
        );
        assert_eq!(f("/x/-3.log"), (Some("-3".into()), Some("-3".into())));
        assert_eq!(f("/x/12.pid"), (Some("12".into()), Some("12".into())));
    }
}
