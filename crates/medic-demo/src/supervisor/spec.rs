//! What the supervisor is asked to run, and what it reports back.

use medic_act::ActError;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// Most replicas a workload may have (a scale above it is rejected).
pub const MAX_REPLICAS: u32 = 16;

/// What to do when an instance exits without being asked to.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RestartPolicy {
    /// Restart after any unexpected exit, with crash backoff.
    Always,
    /// Restart after a failure (non-zero exit, signal, OOM kill), not after exit 0.
    OnFailure,
    /// Leave it down until an action starts it.
    Never,
}

impl RestartPolicy {
    /// Whether an exit with this reason (`Error`, `OOMKilled`, `Completed`) is restarted.
    pub fn restarts_after(self, reason: &str) -> bool {
        match self {
            RestartPolicy::Always => true,
            RestartPolicy::OnFailure => reason != "Completed",
            RestartPolicy::Never => false,
        }
    }
}

/// One release of a workload: its name and the arguments it appends to the argv template.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseSpec {
    pub name: String,
    pub extra_args: Vec<String>,
}

/// One workload (service) the supervisor runs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WorkloadSpec {
    pub name: String,
    pub replicas: u32,
    pub restart: RestartPolicy,
    /// Resident memory above which the instance is SIGKILLed and recorded as `OOMKilled`.
    pub memory_limit_bytes: Option<u64>,
    /// argv template; placeholders `{service} {instance} {port} {log} {config} {release}
    /// {instance_dir} {estate_dir}` are replaced in every element. Never run through a shell.
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    pub releases: Vec<ReleaseSpec>,
    /// Initial release (must be one of `releases`).
    pub release: String,
    /// Initial config, stored as version `c1`.
    pub config: serde_json::Value,
    /// Informational (estate topology); not used to order starts.
    pub depends_on: Vec<String>,
}

/// Names end up in file names and URLs: keep them to a safe alphabet.
pub(crate) fn check_name(what: &str, name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
        && !name.starts_with('.');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{what} {name:?} is not a valid name: expected 1-64 characters of [A-Za-z0-9._-], not starting with '.'"
        ))
    }
}

/// Checks every spec and reports all problems at once.
pub(crate) fn validate_specs(specs: &[WorkloadSpec]) -> Result<(), ActError> {
    let mut errors = Vec::new();
    let mut seen = BTreeSet::new();
    if specs.is_empty() {
        errors.push("no workloads given: expected at least one".to_string());
    }
    for s in specs {
        if let Err(e) = check_name("workload name", &s.name) {
            errors.push(e);
        }
        if !seen.insert(s.name.as_str()) {
            errors.push(format!("workload {:?} is defined twice", s.name));
        }
        if s.replicas == 0 || s.replicas > MAX_REPLICAS {
            errors.push(format!(
                "workload {:?}: replicas {} out of range: expected 1..={MAX_REPLICAS}",
                s.name, s.replicas
            ));
        }
        if s.argv.first().is_none_or(|a| a.is_empty()) {
            errors.push(format!(
                "workload {:?}: argv is empty: expected a program and its arguments",
                s.name
            ));
        }
        let mut release_names = BTreeSet::new();
        for r in &s.releases {
            if let Err(e) = check_name("release name", &r.name) {
                errors.push(format!("workload {:?}: {e}", s.name));
            }
            if !release_names.insert(r.name.as_str()) {
                errors.push(format!(
                    "workload {:?}: release {:?} is defined twice",
                    s.name, r.name
                ));
            }
        }
        if !release_names.contains(s.release.as_str()) {
            errors.push(format!(
                "workload {:?}: initial release {:?} is not among its releases {:?}",
                s.name,
                s.release,
                release_names.iter().collect::<Vec<_>>()
            ));
        }
        if s.memory_limit_bytes == Some(0) {
            errors.push(format!(
                "workload {:?}: memory limit 0: expected a positive number of bytes or none",
                s.name
            ));
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ActError::Invalid(errors.join("; ")))
    }
}

/// One workload as reported by `GET /v1/workloads`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkloadStatus {
    pub service: String,
    pub replicas: u32,
    pub release: String,
    pub previous_release: Option<String>,
    pub config_version: String,
    pub previous_config_version: Option<String>,
    pub restart: RestartPolicy,
    pub instances: Vec<InstanceStatus>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceStatus {
    pub instance: String,
    pub pid: Option<u32>,
    pub port: u16,
    pub running: bool,
    /// Restarts after unexpected exits (crash restarts), like Kubernetes' restartCount.
    pub restarts: u32,
    pub last_exit_reason: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn spec(name: &str) -> WorkloadSpec {
        WorkloadSpec {
            name: name.into(),
            replicas: 1,
            restart: RestartPolicy::Always,
            memory_limit_bytes: None,
            argv: vec!["true".into()],
            env: vec![],
            releases: vec![ReleaseSpec {
                name: "v1".into(),
                extra_args: vec![],
            }],
            release: "v1".into(),
            config: serde_json::json!({}),
            depends_on: vec![],
        }
    }

    #[test]
    fn names_are_restricted_to_a_safe_alphabet() {
        assert!(check_name("x", "checkout-0").is_ok());
        assert!(check_name("x", "a.b_c").is_ok());
        for bad in ["", "../etc", "a/b", ".hidden", "a b", "é", &"x".repeat(65)] {
            assert!(check_name("x", bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn spec_validation_reports_every_problem() {
        assert!(validate_specs(&[spec("a"), spec("b")]).is_ok());
        let mut bad = spec("a");
        bad.replicas = 17;
        bad.release = "v9".into();
        bad.argv.clear();
        let err = validate_specs(&[bad, spec("a")]).unwrap_err().to_string();
        for needle in ["replicas 17", "\"v9\"", "argv is empty", "defined twice"] {
            assert!(err.contains(needle), "{needle} missing from {err}");
        }
        assert!(validate_specs(&[]).is_err());
        let mut zero = spec("z");
        zero.replicas = 0;
        zero.memory_limit_bytes = Some(0);
        let err = validate_specs(&[zero]).unwrap_err().to_string();
        assert!(err.contains("replicas 0") && err.contains("memory limit 0"));
    }

    #[test]
    fn restart_policy_decisions() {
        assert!(RestartPolicy::Always.restarts_after("Completed"));
        assert!(RestartPolicy::OnFailure.restarts_after("Error"));
        assert!(RestartPolicy::OnFailure.restarts_after("OOMKilled"));
        assert!(!RestartPolicy::OnFailure.restarts_after("Completed"));
        assert!(!RestartPolicy::Never.restarts_after("Error"));
    }
}
