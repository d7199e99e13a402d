//! Just enough globbing for `policy_files`: `*` and `?` in the file name, within one directory.

use std::path::{Path, PathBuf};

/// Files matching `pattern`, sorted. A pattern without wildcards names one file that must exist.
pub(crate) fn expand(pattern: &str) -> Result<Vec<PathBuf>, String> {
    let path = Path::new(pattern);
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let Some(file_pattern) = path.file_name().and_then(|f| f.to_str()) else {
        return Err(format!(
            "`{pattern}` names no file: expected a file path or a glob such as `policies/*.yaml`"
        ));
    };
    if dir.to_string_lossy().contains(['*', '?']) {
        return Err(format!(
            "`{pattern}` has a wildcard in a directory name: expected wildcards (`*`, `?`) only in the file name"
        ));
    }
    if !file_pattern.contains(['*', '?']) {
        return if path.is_file() {
            Ok(vec![path.to_path_buf()])
        } else {
            Err(format!(
                "policy file `{pattern}` does not exist: expected a readable file"
            ))
        };
    }
    let entries = std::fs::read_dir(dir).map_err(|e| {
        format!(
            "cannot list directory `{}` for `{pattern}`: {e}",
            dir.display()
        )
    })?;
    let mut found: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .filter(|e| e.path().is_file())
        .filter(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| matches(file_pattern, n))
        })
        .map(|e| e.path())
        .collect();
    if found.is_empty() {
        return Err(format!(
            "`{pattern}` matches no file: expected at least one policy file"
        ));
    }
    found.sort();
    Ok(found)
}

/// Shell-style match of one file name: `*` any run, `?` one character; a leading `.` must be
/// matched literally, as in the shell, so editors' hidden files are not picked up.
pub(crate) fn matches(pattern: &str, name: &str) -> bool {
    if name.starts_with('.') && !pattern.starts_with('.') {
        return false;
    }
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    // Iterative match with backtracking to the last `*`: linear memory, no recursion.
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ni));
            pi += 1;
        } else if let Some((sp, sn)) = star {
            pi = sp + 1;
            ni = sn + 1;
            star = Some((sp, sn + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_matching() {
        assert!(matches("*.yaml", "default.yaml"));
        assert!(matches("p?.yaml", "p1.yaml"));
        assert!(matches("*", "x"));
        assert!(matches("a*b*c", "aXbYc"));
        assert!(!matches("*.yaml", "default.yml"));
        assert!(!matches("*.yaml", ".hidden.yaml"));
        assert!(matches(".*.yaml", ".hidden.yaml"));
        assert!(!matches("p?.yaml", "p.yaml"));
        assert!(!matches(&"*a".repeat(50), &"a".repeat(40)));
    }

    #[test]
    fn expands_within_a_directory() {
        let dir = tempfile::tempdir().unwrap();
        for f in ["b.yaml", "a.yaml", "c.txt", ".x.yaml"] {
            std::fs::write(dir.path().join(f), "").unwrap();
        }
        let pattern = dir.path().join("*.yaml");
        let found = expand(pattern.to_str().unwrap()).unwrap();
        let names: Vec<_> = found
            .iter()
            .map(|p| p.file_name().unwrap().to_str().unwrap())
            .collect();
        assert_eq!(names, ["a.yaml", "b.yaml"]);
    }

    #[test]
    fn reports_no_match_missing_file_and_wild_directories() {
        let dir = tempfile::tempdir().unwrap();
        let none = dir.path().join("*.yaml");
        assert!(
            expand(none.to_str().unwrap())
                .unwrap_err()
                .contains("matches no file")
        );
        let missing = dir.path().join("gone.yaml");
        assert!(
            expand(missing.to_str().unwrap())
                .unwrap_err()
                .contains("does not exist")
        );
        let wild = dir.path().join("*/p.yaml");
        assert!(
            expand(wild.to_str().unwrap())
                .unwrap_err()
                .contains("directory name")
        );
    }
}
