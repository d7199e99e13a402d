//! Files → validated config: reading with limits, policy-file discovery, and the checks that
//! span files (unique policy names, escalation targets that exist).

use crate::env::EnvLookup;
use crate::error::{ConfigError, Errors, Pos};
use crate::node::{Node, parse, parse_all};
use crate::reader::{Ctx, did_you_mean};
use crate::sections::{ConfigFile, ReadPolicy, is_policy_file, read_config, read_policy_documents};
use crate::types::{Config, EscalationConfig, Policy};
use std::io::Read;
use std::path::{Path, PathBuf};

/// Larger files are refused unread: no real config is this big, and parsing one would only
/// burn memory.
pub const MAX_FILE_BYTES: u64 = 16 * 1024 * 1024;

const FILE_START: Pos = Pos { line: 1, col: 1 };

/// Reads `medic.yaml` and the policy files it names. Relative paths resolve against the
/// directory of `path`. Every problem found is returned, not just the first.
pub fn load(path: &Path, env: EnvLookup<'_>) -> Result<Config, Vec<ConfigError>> {
    let file = path.display().to_string();
    let text = read_text(path).map_err(|e| vec![e])?;
    load_str(&text, &file, base_dir_of(path), env)
}

/// As [`load`], for text already in memory (`medic demo` embeds its config). `file_name` is
/// used in messages; relative paths resolve against `base_dir`.
pub fn load_str(
    text: &str,
    file_name: &str,
    base_dir: &Path,
    env: EnvLookup<'_>,
) -> Result<Config, Vec<ConfigError>> {
    let mut errs = Errors::new(file_name);
    let expected = "a mapping of config sections (write `{}` to mean all defaults)";
    let Some(root) = parse_root(text, env, &mut errs, expected) else {
        return Err(errs.list);
    };
    let mut cx = Ctx { errs, base_dir };
    let file = read_config(&root, &mut cx);
    let mut errors = cx.errs.list;
    let config = assemble(file, file_name, env, &mut errors);
    if errors.is_empty() {
        Ok(config)
    } else {
        Err(errors)
    }
}

/// Reads one policy file (a mapping whose only key is `policies`).
pub fn load_policy_file(path: &Path, env: EnvLookup<'_>) -> Result<Vec<Policy>, Vec<ConfigError>> {
    let mut errors = Vec::new();
    let policies = policy_file(path, env, &mut errors);
    check_unique_policy_names(&policies, &mut errors);
    if errors.is_empty() {
        Ok(policies.into_iter().map(|p| p.policy).collect())
    } else {
        Err(errors)
    }
}

/// A candidate policy set (for `medic replay`): each path a policy file or a directory
/// whose `*.yaml` and `*.yml` files are read, in name order. All or nothing: any error
/// in any file gives every error and no policies.
pub fn load_policy_set(
    paths: &[PathBuf],
    env: EnvLookup<'_>,
) -> Result<Vec<Policy>, Vec<ConfigError>> {
    let mut files = Vec::new();
    let mut errors = Vec::new();
    for path in paths {
        if path.is_dir() {
            match std::fs::read_dir(path) {
                Ok(entries) => {
                    let mut found: Vec<PathBuf> = entries
                        .filter_map(|e| e.ok().map(|e| e.path()))
                        .filter(|p| {
                            p.is_file()
                                && matches!(
                                    p.extension().and_then(|e| e.to_str()),
                                    Some("yaml" | "yml")
                                )
                        })
                        .collect();
                    found.sort();
                    if found.is_empty() {
                        errors.push(ConfigError::new(
                            &path.display().to_string(),
                            FILE_START,
                            "directory holds no `.yaml` or `.yml` policy files",
                        ));
                    }
                    files.extend(found);
                }
                Err(e) => errors.push(ConfigError::new(
                    &path.display().to_string(),
                    FILE_START,
                    format!("cannot read directory: {e}"),
                )),
            }
        } else {
            files.push(path.clone());
        }
    }
    let mut policies = Vec::new();
    for f in &files {
        policies.extend(policy_file(f, env, &mut errors));
    }
    check_unique_policy_names(&policies, &mut errors);
    if errors.is_empty() {
        Ok(policies.into_iter().map(|p| p.policy).collect())
    } else {
        Err(errors)
    }
}

/// What `medic validate` reports: every error in each file, config or policy file (a file
/// whose top level holds only `policies` is a policy file). Empty means all are valid.
pub fn validate_files(paths: &[PathBuf], env: EnvLookup<'_>) -> Vec<ConfigError> {
    let mut all = Vec::new();
    for path in paths {
        let file = path.display().to_string();
        let text = match read_text(path) {
            Ok(t) => t,
            Err(e) => {
                all.push(e);
                continue;
            }
        };
        let mut errs = Errors::new(&file);
        let parsed = parse_all(&text, env, &mut errs);
        let looks_like_policy_file = matches!(&parsed, Ok(roots) if roots.len() > 1 || roots.first().is_some_and(is_policy_file));
        let result = if looks_like_policy_file {
            load_policy_file(path, env).map(|_| ())
        } else {
            load_str(&text, &file, base_dir_of(path), env).map(|_| ())
        };
        if let Err(errors) = result {
            all.extend(errors);
        }
    }
    all
}

fn base_dir_of(path: &Path) -> &Path {
    path.parent().unwrap_or(Path::new(""))
}

/// Reads a whole file as UTF-8, refusing huge files and pointing at the first bad byte.
fn read_text(path: &Path) -> Result<String, ConfigError> {
    let file = path.display().to_string();
    let fail = |msg: String| ConfigError::new(&file, FILE_START, msg);
    let handle = std::fs::File::open(path).map_err(|e| {
        fail(match e.kind() {
            std::io::ErrorKind::NotFound => "file not found: expected a readable YAML file".into(),
            _ => format!("cannot open file: {e}"),
        })
    })?;
    let meta = handle
        .metadata()
        .map_err(|e| fail(format!("cannot read file: {e}")))?;
    if meta.is_dir() {
        return Err(fail("is a directory: expected a YAML file".into()));
    }
    if meta.len() > MAX_FILE_BYTES {
        return Err(fail(too_large(meta.len())));
    }
    // The size can change between `metadata` and reading (or lie, for special files).
    let mut bytes = Vec::new();
    handle
        .take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| fail(format!("cannot read file: {e}")))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(fail(too_large(bytes.len() as u64)));
    }
    String::from_utf8(bytes).map_err(|e| {
        let valid = e.utf8_error().valid_up_to();
        let prefix = String::from_utf8_lossy(&e.as_bytes()[..valid]);
        let line = prefix.matches('\n').count() + 1;
        let col = prefix.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        let byte = e.as_bytes().get(valid).copied().unwrap_or(0);
        ConfigError::new(
            &file,
            Pos { line, col },
            format!("file is not valid UTF-8: found byte 0x{byte:02x} at offset {valid}; expected UTF-8 text"),
        )
    })
}

fn too_large(len: u64) -> String {
    format!("file is too large: {len} bytes, expected at most {MAX_FILE_BYTES} bytes (16 MiB)")
}

/// Parses text into its root node; an empty document is an error (write `{}` for defaults).
fn parse_root(text: &str, env: EnvLookup<'_>, errs: &mut Errors, expected: &str) -> Option<Node> {
    if text.len() as u64 > MAX_FILE_BYTES {
        errs.push(FILE_START, too_large(text.len() as u64));
        return None;
    }
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    match parse(text, env, errs) {
        Ok(Some(root)) => Some(root),
        Ok(None) => {
            errs.push(FILE_START, format!("file is empty: expected {expected}"));
            None
        }
        Err(()) => None,
    }
}

/// A policy file: one mapping with a `policies` list, or one or more RemediationPolicy
/// documents separated by `---`.
fn policy_file(path: &Path, env: EnvLookup<'_>, errors: &mut Vec<ConfigError>) -> Vec<ReadPolicy> {
    let file = path.display().to_string();
    let text = match read_text(path) {
        Ok(t) => t,
        Err(e) => {
            errors.push(e);
            return Vec::new();
        }
    };
    let mut errs = Errors::new(&file);
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let roots = match parse_all(text, env, &mut errs) {
        Ok(roots) if roots.is_empty() => {
            errs.push(
                FILE_START,
                "file is empty: expected a mapping with a `policies` list or RemediationPolicy documents",
            );
            errors.extend(errs.list);
            return Vec::new();
        }
        Ok(roots) => roots,
        Err(()) => {
            errors.extend(errs.list);
            return Vec::new();
        }
    };
    let mut cx = Ctx {
        errs,
        base_dir: base_dir_of(path),
    };
    let policies = read_policy_documents(&roots, &mut cx);
    errors.extend(cx.errs.list);
    policies
}

/// Loads the policy files, merges them after the inline policies, and runs the checks that
/// need the whole picture.
fn assemble(
    file: ConfigFile,
    config_file: &str,
    env: EnvLookup<'_>,
    errors: &mut Vec<ConfigError>,
) -> Config {
    let ConfigFile {
        mut config,
        policy_globs,
        inline_policies,
    } = file;
    let mut policies = inline_policies;
    let mut seen_files: Vec<PathBuf> = Vec::new();
    for glob in policy_globs {
        match crate::glob::expand(&glob.pattern) {
            Ok(paths) => {
                for path in paths {
                    if seen_files.contains(&path) {
                        continue;
                    }
                    policies.extend(policy_file(&path, env, errors));
                    seen_files.push(path);
                }
            }
            Err(why) => errors.push(ConfigError {
                location: glob.pos.at(config_file),
                message: format!("invalid `policy_files` entry: {why}"),
            }),
        }
    }
    check_unique_policy_names(&policies, errors);
    check_escalation_targets(&policies, &config.escalation, errors);
    config.policies = policies.into_iter().map(|p| p.policy).collect();
    config
}

fn check_unique_policy_names(policies: &[ReadPolicy], errors: &mut Vec<ConfigError>) {
    for (i, p) in policies.iter().enumerate() {
        if let Some(first) = policies[..i]
            .iter()
            .find(|f| f.policy.name == p.policy.name)
        {
            errors.push(ConfigError {
                location: p.name_at.clone(),
                message: format!(
                    "duplicate policy name `{}` (first at {}): expected policy names unique across all files",
                    p.policy.name, first.name_at
                ),
            });
        }
    }
}

fn check_escalation_targets(
    policies: &[ReadPolicy],
    escalation: &EscalationConfig,
    errors: &mut Vec<ConfigError>,
) {
    let names: Vec<&str> = escalation.targets.iter().map(|t| t.name.as_str()).collect();
    for ReadPolicy {
        policy: p,
        escalation_at,
        ..
    } in policies
    {
        let Some(target) = &p.escalation else {
            continue;
        };
        if names.contains(&target.as_str()) {
            continue;
        }
        let expected = if names.is_empty() {
            "a target declared under `escalation.targets` (none are declared)".to_string()
        } else {
            format!("one of {}", crate::reader::list_names(&names))
        };
        let hint = did_you_mean(target, names.iter().copied())
            .map(|s| format!("; did you mean `{s}`?"))
            .unwrap_or_default();
        errors.push(ConfigError {
            location: escalation_at.clone().unwrap_or_else(|| p.location.clone()),
            message: format!(
                "policy `{}` escalates to unknown target `{target}`: expected {expected}{hint}",
                p.name
            ),
        });
    }
}
