// Shared by the integration tests (each test file includes it as a module).
#![allow(dead_code)]

use medic_config::{Config, ConfigError, load_str};
use std::path::Path;

pub fn test_env(name: &str) -> Option<String> {
    match name {
        "ESTATE_DIR" => Some("/srv/estate".into()),
        "SUPERVISOR_URL" => Some("http://127.0.0.1:7000".into()),
        "MEDIC_STORE" => Some("/srv/estate/medic.db".into()),
        _ => None,
    }
}

pub fn load(yaml: &str) -> Result<Config, Vec<ConfigError>> {
    load_str(yaml, "m.yaml", Path::new("/base"), &test_env)
}

pub fn errors(yaml: &str) -> Vec<ConfigError> {
    match load(yaml) {
        Ok(_) => Vec::new(),
        Err(e) => e,
    }
}

/// The single error `yaml` must produce, as `line:col: message` without the file name.
pub fn one_error(yaml: &str) -> String {
    let errs = errors(yaml);
    assert_eq!(errs.len(), 1, "expected exactly one error, got {errs:#?}");
    let e = &errs[0];
    assert_eq!(e.location.file, "m.yaml");
    format!("{}:{}: {}", e.location.line, e.location.col, e.message)
}
