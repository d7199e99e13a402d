//! One test per class of error: exact position, what was found and what was expected.

mod common;
use common::*;
use medic_config::{ConfigError, load, load_policy_file, validate_files};
use std::path::{Path, PathBuf};

const POLICY: &str =
    "policies:\n  - name: p\n    match: { cause: memory_leak }\n    action: restart_workload\n";

#[test]
fn unknown_key_suggests_the_close_one() {
    assert_eq!(
        one_error("agent:\n  tik: 1s\n"),
        "2:3: unknown key `tik` in `agent`: did you mean `tick`?"
    );
}

#[test]
fn unknown_key_without_close_match_lists_the_known_ones() {
    let e = one_error("server: {}\ncolour: red\n");
    assert!(e.starts_with("2:1: unknown key `colour` in the top level of the config: expected one of `agent`, `sources`"), "{e}");
    assert!(e.contains("`escalation`"), "{e}");
}

#[test]
fn duplicate_key_points_at_the_second_and_the_first() {
    assert_eq!(
        one_error("agent:\n  tick: 1s\n  tick: 2s\n"),
        "3:3: duplicate key `tick` (first at line 2, column 3): expected each key once per mapping"
    );
}

#[test]
fn wrong_scalar_type_names_found_and_expected() {
    assert_eq!(
        one_error("server: {enabled: yes}\n"),
        "1:19: invalid `enabled` in `server`: expected `true` or `false`, found `yes`"
    );
    assert_eq!(
        one_error("guards:\n  max_actions_per_hour: \"20\"\n"),
        "2:25: invalid `max_actions_per_hour` in `guards`: expected a whole number ≥ 1, found the quoted string `20`; remove the quotes"
    );
}

#[test]
fn scalar_where_a_list_is_expected() {
    assert_eq!(
        one_error("sources:\n  - name: logs\n    type: log_files\n    paths: logs/*.log\n"),
        "4:12: invalid `paths` in source `logs`: expected a list of strings, found `logs/*.log`; write it as a list: [logs/*.log]"
    );
}

#[test]
fn mapping_where_a_scalar_is_expected() {
    assert_eq!(
        one_error("store: {sqlite: {path: x}}\n"),
        "1:17: invalid `sqlite` in `store`: expected a string, found a mapping"
    );
    assert_eq!(
        one_error("agent: [1, 2]\n"),
        "1:8: invalid `agent`: expected a mapping (`key: value` lines), found a list"
    );
}

#[test]
fn bad_enum_lists_allowed_values_and_suggests() {
    // Several source types are being added at once: the list is checked by its ends.
    let e = one_error("sources:\n  - name: logs\n    type: logfiles\n    paths: [a]\n");
    assert!(
        e.starts_with("3:11: invalid `type` in source `logs`: expected one of `log_files`, `prometheus_scrape`, ")
            && e.ends_with(", found `logfiles` (did you mean `log_files`?)"),
        "{e}"
    );
    let e = one_error(&format!("{POLICY}    mode: automatic\n"));
    assert_eq!(
        e,
        "5:11: invalid `mode` in policy `p`: expected one of `shadow`, `recommend`, `approve`, `auto`, found `automatic`"
    );
}

#[test]
fn bad_cause_and_action_list_the_catalogue() {
    let e = one_error(
        "policies:\n  - name: p\n    match: { cause: [memory_leak, memory_leek] }\n    action: restart_workload\n",
    );
    assert!(e.starts_with("3:35: invalid `cause` in `match` of policy `p`: expected one of `memory_leak`, `bad_deployment`"), "{e}");
    assert!(
        e.ends_with("found `memory_leek` (did you mean `memory_leak`?)"),
        "{e}"
    );
    let e = one_error(
        "policies:\n  - name: p\n    match: { cause: memory_leak }\n    action: reboot\n",
    );
    assert!(e.starts_with("4:13: invalid `action` in policy `p`: expected one of `restart_workload`, `scale_workload`, `rollback_release`, `revert_config`, `delete_pod`, `set_resources`, `cordon_node`, `drain_node`, `isolate_workload`, `no_action`, found `reboot`"), "{e}");
}

#[test]
fn bare_number_duration_gets_a_unit_hint() {
    assert_eq!(
        one_error("agent:\n  tick: 10\n"),
        "2:9: invalid `tick` in `agent`: duration `10` has no unit: expected e.g. `10s` or `10ms` (units: h, m, s, ms)"
    );
}

#[test]
fn malformed_and_zero_durations() {
    assert_eq!(
        one_error("correlation: { window: 10 minutes }\n"),
        "1:24: invalid `window` in `correlation`: invalid duration `10 minutes`: expected whole numbers with units h, m, s or ms, e.g. `500ms`, `10s`, `5m`, `1h30m`"
    );
    assert_eq!(
        one_error("agent: { tick: 0s }\n"),
        "1:16: invalid `tick` in `agent`: expected a duration greater than zero, found `0s`"
    );
}

#[test]
fn out_of_range_numbers() {
    let e = one_error(&format!("{POLICY}    confidence_threshold: 1.5\n"));
    assert_eq!(
        e,
        "5:27: invalid `confidence_threshold` in policy `p`: expected a number from 0 to 1, found `1.5`"
    );
    let e = one_error(&format!("{POLICY}    max_attempts: 0\n"));
    assert_eq!(
        e,
        "5:19: invalid `max_attempts` in policy `p`: expected a whole number ≥ 1, found `0`"
    );
    let e = one_error(
        "policies:\n  - name: p\n    match: { cause: load_surge }\n    action: scale_workload\n    scale: { min_replicas: 0 }\n",
    );
    assert_eq!(
        e,
        "5:28: invalid `min_replicas` in `scale` of policy `p`: expected a whole number ≥ 1, found `0`"
    );
    let e = one_error("detectors:\n  baseline: { alpha: .nan }\n");
    assert_eq!(
        e,
        "2:22: invalid `alpha` in `detectors.baseline`: expected a number greater than 0 and less than 1, found `.nan`"
    );
    let e = one_error("detectors: { error_rate: { min_requests: -1 } }\n");
    assert_eq!(
        e,
        "1:42: invalid `min_requests` in `detectors.error_rate`: expected a whole number ≥ 0, found `-1`"
    );
}

#[test]
fn scale_bounds_must_be_ordered() {
    let e = one_error(
        "policies:\n  - name: p\n    match: { cause: load_surge }\n    action: scale_workload\n    scale: { min_replicas: 4, max_replicas: 2 }\n",
    );
    assert_eq!(
        e,
        "5:12: invalid `max_replicas` in `scale` of policy `p`: expected at least `min_replicas` (4), found 2"
    );
}

#[test]
fn missing_required_fields() {
    assert_eq!(
        one_error("policies:\n  - name: p\n    match: { cause: memory_leak }\n"),
        "2:5: missing required key `action` in policy `p`"
    );
    assert_eq!(
        one_error("sources:\n  - type: procfs\n    pid_files: x\n"),
        "2:5: missing required key `name` in source"
    );
    assert_eq!(
        one_error("sources:\n  - { name: m, type: prometheus_scrape }\n"),
        "2:5: missing targets in source `m`: expected `file_sd` (a Prometheus file_sd JSON file) or a `targets` list"
    );
    assert_eq!(
        one_error("actuators:\n  local:\n    supervisor_url:\n"),
        "3:5: missing value for required key `supervisor_url` in `actuators.local`"
    );
}

#[test]
fn duplicate_source_names() {
    assert_eq!(
        one_error(
            "sources:\n  - { name: a, type: procfs, pid_files: x }\n  - { name: a, type: process_events, path: e }\n"
        ),
        "3:5: duplicate source name `a` (first at line 2, column 5): expected unique source names"
    );
}

#[test]
fn duplicate_policy_names_across_inline_and_files() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("policies")).unwrap();
    std::fs::write(dir.path().join("policies/a.yaml"), POLICY).unwrap();
    let main = dir.path().join("medic.yaml");
    std::fs::write(
        &main,
        format!("policy_files: [\"policies/*.yaml\"]\n{POLICY}"),
    )
    .unwrap();
    let errs = load(&main, &test_env).unwrap_err();
    assert_eq!(errs.len(), 1, "{errs:#?}");
    let policy_file = dir.path().join("policies/a.yaml").display().to_string();
    assert_eq!(errs[0].location.file, policy_file);
    assert_eq!((errs[0].location.line, errs[0].location.col), (2, 11));
    assert_eq!(
        errs[0].message,
        format!(
            "duplicate policy name `p` (first at {}:3:11): expected policy names unique across all files",
            main.display()
        )
    );
}

#[test]
fn policy_escalating_to_unknown_target() {
    let yaml =
        format!("escalation:\n  targets: [{{ name: oncall }}]\n{POLICY}    escalation: oncal\n");
    assert_eq!(
        one_error(&yaml),
        "7:17: policy `p` escalates to unknown target `oncal`: expected one of `oncall`; did you mean `oncall`?"
    );
    let e = one_error("escalation:\n  default: pager\n  targets: [{ name: oncall }]\n");
    assert_eq!(
        e,
        "2:12: unknown escalation target `pager` in `escalation.default`: expected one of the names under `escalation.targets`"
    );
}

#[test]
fn topology_edge_to_undeclared_service() {
    assert_eq!(
        one_error(
            "topology:\n  services:\n    frontend: { depends_on: [catalgo] }\n    catalog: {}\n"
        ),
        "3:30: service `frontend` depends on `catalgo`, which is not declared: expected a service listed under `topology.services`; did you mean `catalog`?"
    );
}

#[test]
fn yaml_syntax_error_has_its_position() {
    let e = one_error("server:\n  enabled: true\n listen: x\n");
    assert!(e.starts_with("3:") && e.contains("invalid YAML: "), "{e}");
    let e = one_error("agent: { tick: 1s\n");
    assert!(e.contains("invalid YAML: "), "{e}");
}

#[test]
fn unset_variable_points_at_the_reference() {
    assert_eq!(
        one_error("store:\n  sqlite: ${DATA_DIR}/m.db\n"),
        "2:11: environment variable `DATA_DIR` is not set: set it, or give a default with `${DATA_DIR:-default}`"
    );
}

#[test]
fn variables_expand_with_defaults() {
    let c = common::load("store: { sqlite: \"${MEDIC_STORE}\" }\nserver: { listen: \"${LISTEN:-127.0.0.1:9500}\" }\n").unwrap();
    assert_eq!(c.store.sqlite, Path::new("/srv/estate/medic.db"));
    assert_eq!(c.server.listen, "127.0.0.1:9500");
}

#[test]
fn planned_events_may_not_be_met_with_a_restart() {
    assert_eq!(
        one_error(
            "policies:\n  - name: p\n    match: { cause: [load_surge, planned_event] }\n    action: restart_workload\n"
        ),
        "2:5: policy `p` matches cause `planned_event` with disruptive action `restart_workload`: expected `scale_workload` or `no_action` for planned events"
    );
}

#[test]
fn aliases_are_refused() {
    assert_eq!(
        one_error("agent: { tick: &t 1s, diagnosis_settle: *t }\n"),
        "1:41: found an alias (`*name`): aliases are not supported in medic files; expected the value written out"
    );
}

#[test]
fn five_different_errors_are_all_reported() {
    let yaml = "\
agent:
  tick: 10
sources:
  - { name: logs, type: log_files, paths: [a], colour: red }
server: { enabled: maybe }
topology:
  services:
    a: { depends_on: [b] }
policies:
  - name: p
    match: { cause: memory_leak }
    action: restart_workload
    confidence_threshold: 2
";
    let errs = errors(yaml);
    let positions: Vec<(usize, usize)> = errs
        .iter()
        .map(|e| (e.location.line, e.location.col))
        .collect();
    assert_eq!(
        positions,
        [(2, 9), (4, 48), (8, 23), (13, 27), (5, 20)],
        "{errs:#?}"
    );
}

#[test]
fn empty_file_is_an_error() {
    assert_eq!(
        one_error(""),
        "1:1: file is empty: expected a mapping of config sections (write `{}` to mean all defaults)"
    );
    assert_eq!(one_error("# nothing\n").split(':').next(), Some("1"));
    assert_eq!(
        common::load("{}\n").unwrap(),
        medic_config::Config::default()
    );
}

#[test]
fn top_level_must_be_a_mapping() {
    assert_eq!(
        one_error("- a\n- b\n"),
        "1:1: invalid the top level of the config: expected a mapping (`key: value` lines), found a list"
    );
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

#[test]
fn non_utf8_file_points_at_the_bad_byte() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "m.yaml", b"agent:\n  tick: 1\xffs\n");
    let errs = validate_files(std::slice::from_ref(&p), &test_env);
    assert_eq!(errs.len(), 1);
    assert_eq!((errs[0].location.line, errs[0].location.col), (2, 10));
    assert_eq!(
        errs[0].message,
        "file is not valid UTF-8: found byte 0xff at offset 16; expected UTF-8 text"
    );
}

#[test]
fn huge_file_is_refused_unread() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("m.yaml");
    let f = std::fs::File::create(&p).unwrap();
    f.set_len(medic_config::MAX_FILE_BYTES + 1).unwrap();
    let errs = load(&p, &test_env).unwrap_err();
    assert_eq!(errs.len(), 1);
    assert_eq!(
        errs[0].to_string(),
        format!(
            "{}:1:1: file is too large: 16777217 bytes, expected at most 16777216 bytes (16 MiB)",
            p.display()
        )
    );
    let text = " ".repeat(16 * 1024 * 1024 + 1);
    assert!(one_error(&text).contains("file is too large"));
}

#[test]
fn missing_file_and_directory() {
    let dir = tempfile::tempdir().unwrap();
    let gone = dir.path().join("gone.yaml");
    let errs = validate_files(&[gone.clone(), dir.path().to_path_buf()], &test_env);
    assert_eq!(errs.len(), 2);
    assert_eq!(
        errs[0].to_string(),
        format!(
            "{}:1:1: file not found: expected a readable YAML file",
            gone.display()
        )
    );
    assert!(errs[1].message.contains("is a directory"));
}

#[test]
fn policy_file_missing_or_glob_matching_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let main = write(
        dir.path(),
        "medic.yaml",
        b"policy_files:\n  - policies/*.yaml\n  - extra.yaml\n",
    );
    let errs = load(&main, &test_env).unwrap_err();
    let file = main.display().to_string();
    let pdir = dir.path().join("policies");
    assert_eq!(
        errs,
        vec![
            ConfigError {
                location: medic_config::Location {
                    file: file.clone(),
                    line: 2,
                    col: 5
                },
                message: format!(
                    "invalid `policy_files` entry: cannot list directory `{}` for `{}/*.yaml`: No such file or directory (os error 2)",
                    pdir.display(),
                    pdir.display()
                ),
            },
            ConfigError {
                location: medic_config::Location {
                    file,
                    line: 3,
                    col: 5
                },
                message: format!(
                    "invalid `policy_files` entry: policy file `{}` does not exist: expected a readable file",
                    dir.path().join("extra.yaml").display()
                ),
            },
        ]
    );
    std::fs::create_dir(&pdir).unwrap();
    write(dir.path(), "extra.yaml", POLICY.as_bytes());
    let errs = load(&main, &test_env).unwrap_err();
    assert_eq!(errs.len(), 1);
    assert!(
        errs[0]
            .message
            .ends_with("matches no file: expected at least one policy file"),
        "{}",
        errs[0]
    );
}

#[test]
fn relative_paths_resolve_against_the_config_directory() {
    let yaml = "\
sources:
  - { name: logs, type: log_files, paths: [logs/*.log, /abs/*.log] }
  - { name: m, type: prometheus_scrape, file_sd: targets.json }
  - { name: p, type: procfs, pid_files: pids/*.pid }
  - { name: e, type: process_events, path: events.jsonl }
guards: { kill_switch_file: stop }
store: { sqlite: data/medic.db }
";
    let c = common::load(yaml).unwrap();
    use medic_config::SourceKind::*;
    match &c.sources[0].kind {
        LogFiles { paths, .. } => assert_eq!(paths, &["/base/logs/*.log", "/abs/*.log"]),
        other => panic!("{other:?}"),
    }
    match &c.sources[1].kind {
        PrometheusScrape { file_sd, .. } => {
            assert_eq!(file_sd.as_deref(), Some(Path::new("/base/targets.json")))
        }
        other => panic!("{other:?}"),
    }
    match &c.sources[2].kind {
        Procfs { pid_files, .. } => assert_eq!(pid_files, "/base/pids/*.pid"),
        other => panic!("{other:?}"),
    }
    match &c.sources[3].kind {
        ProcessEvents { path } => assert_eq!(path, Path::new("/base/events.jsonl")),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        c.guards.kill_switch_file.as_deref(),
        Some(Path::new("/base/stop"))
    );
    assert_eq!(c.store.sqlite, Path::new("/base/data/medic.db"));
}

#[test]
fn policy_files_resolve_relative_to_the_config_not_the_cwd() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("policies")).unwrap();
    write(
        &dir.path().join("policies"),
        "b.yaml",
        POLICY.replace("name: p", "name: q").as_bytes(),
    );
    write(&dir.path().join("policies"), "a.yaml", POLICY.as_bytes());
    let main = write(
        dir.path(),
        "medic.yaml",
        b"policy_files: [\"policies/*.yaml\", policies/a.yaml]\n",
    );
    let c = load(&main, &test_env).unwrap();
    let names: Vec<_> = c.policies.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["p", "q"], "each file once, in name order");
    assert_eq!(c.policies[0].location.line, 2);
}

#[test]
fn validate_files_tells_policy_files_from_configs() {
    let dir = tempfile::tempdir().unwrap();
    let good_policy = write(dir.path(), "p.yaml", POLICY.as_bytes());
    let bad_policy = write(dir.path(), "q.yaml", b"policies:\n  - name: q\n    match: { cause: memory_leak }\n    action: restart_workload\n    escalation: nobody\n    mode: sometimes\n");
    let config = write(
        dir.path(),
        "medic.yaml",
        b"server: { listen: \"localhost\" }\n",
    );
    assert!(validate_files(std::slice::from_ref(&good_policy), &test_env).is_empty());
    let errs = validate_files(
        &[good_policy, bad_policy.clone(), config.clone()],
        &test_env,
    );
    // A standalone policy file cannot know the escalation targets: only the mode is wrong.
    assert_eq!(errs.len(), 2, "{errs:#?}");
    assert_eq!(errs[0].location.file, bad_policy.display().to_string());
    assert_eq!((errs[0].location.line, errs[0].location.col), (6, 11));
    assert_eq!(
        errs[1].to_string(),
        format!(
            "{}:1:19: invalid `listen` in `server`: expected `ip:port` such as `127.0.0.1:9400`, found `localhost`",
            config.display()
        )
    );
}

#[test]
fn policy_file_with_other_keys_or_none() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "p.yaml",
        format!("{POLICY}polices: []\n").as_bytes(),
    );
    let errs = load_policy_file(&p, &test_env).unwrap_err();
    assert_eq!(errs.len(), 1);
    assert_eq!(
        errs[0].message,
        "unknown key `polices` in the top level of the policy file: did you mean `policies`?"
    );
    let empty = write(dir.path(), "e.yaml", b"");
    let errs = load_policy_file(&empty, &test_env).unwrap_err();
    assert_eq!(
        errs[0].message,
        "file is empty: expected a mapping with a `policies` list or RemediationPolicy documents"
    );
    let p = load_policy_file(&write(dir.path(), "ok.yaml", POLICY.as_bytes()), &test_env).unwrap();
    assert_eq!(p.len(), 1);
}

#[test]
fn wrong_keys_for_a_source_type() {
    assert_eq!(
        one_error("sources:\n  - { name: p, type: procfs, pid_files: x, paths: [y] }\n"),
        "2:44: unknown key `paths` in source `p`: expected one of `name`, `type`, `pid_files`, `interval`"
    );
}

#[test]
fn bad_urls_are_refused_but_an_empty_webhook_means_print_only() {
    assert_eq!(
        one_error("actuators: { local: { supervisor_url: \"127.0.0.1:7000\" } }\n"),
        "1:39: invalid `supervisor_url` in `actuators.local`: expected an `http://` or `https://` URL, found `127.0.0.1:7000`"
    );
    let c =
        common::load("escalation:\n  targets: [{ name: o, webhook: \"${HOOK:-}\" }]\n").unwrap();
    assert_eq!(c.escalation.targets[0].webhook, None);
}

#[test]
fn scale_on_a_non_scaling_action_is_an_error() {
    let e = one_error(&format!("{POLICY}    scale: {{ factor: 2 }}\n"));
    assert_eq!(
        e,
        "5:12: `scale` in policy `p` is only used by action `scale_workload`, found action `restart_workload`: remove `scale` or change the action"
    );
}

#[test]
fn prometheus_timeout_longer_than_interval() {
    assert_eq!(
        one_error(
            "sources:\n  - { name: m, type: prometheus_scrape, file_sd: t.json, interval: 1s, timeout: 2s }\n"
        ),
        "2:5: invalid `timeout` in source `m`: expected at most the `interval` (1s), found 2s"
    );
}

#[test]
fn full_policy_reads_every_field() {
    let yaml = "\
escalation: { targets: [{ name: oncall }] }
policies:
  - name: scale-up
    description: more
    match: { cause: [load_surge, planned_event], services: [\"front*\"] }
    action: scale_workload
    scale: { factor: 1.5, min_replicas: 2, max_replicas: 9 }
    confidence_threshold: 0.8
    mode: approve
    max_attempts: 3
    cooldown: 0s
    verification_window: 1m30s
    rollback_if_failed: true
    escalation: oncall
";
    let c = common::load(yaml).unwrap();
    let p = &c.policies[0];
    use medic_core::{ActionKind, Cause, Mode};
    assert_eq!(p.causes, [Cause::LoadSurge, Cause::PlannedEvent]);
    assert_eq!(p.services, ["front*"]);
    assert_eq!(p.action, ActionKind::ScaleWorkload);
    assert_eq!(
        (p.scale.factor, p.scale.min_replicas, p.scale.max_replicas),
        (1.5, 2, 9)
    );
    assert_eq!(p.confidence_threshold, 0.8);
    assert_eq!(p.mode, Mode::Approve);
    assert_eq!(p.max_attempts, 3);
    assert_eq!(p.cooldown, std::time::Duration::ZERO);
    assert_eq!(p.verification_window, std::time::Duration::from_secs(90));
    assert!(p.rollback_if_failed);
    assert_eq!(p.escalation.as_deref(), Some("oncall"));
    assert_eq!(p.description, "more");
    assert_eq!((p.location.line, p.location.col), (3, 5));
}

#[test]
fn server_auth_is_required_and_checked() {
    // Enabled without tokens: refused, saying how to fix it.
    let e = one_error("server: { enabled: true }\n");
    assert!(
        e.starts_with("1:9: the server is enabled but `server.auth.tokens` is empty")
            && e.contains("medic token new"),
        "{e}"
    );
    // Unauthenticated beyond loopback: refused.
    let e = one_error(
        "server: { enabled: true, listen: \"0.0.0.0:9400\", auth: { unauthenticated: true } }\n",
    );
    assert!(
        e.contains("`server.auth.unauthenticated` with `listen: 0.0.0.0:9400`"),
        "{e}"
    );
    // Unauthenticated on loopback, or tokens anywhere: fine.
    assert!(errors("server: { enabled: true, auth: { unauthenticated: true } }\n").is_empty());
    let hash = "a".repeat(64);
    let c = common::load(&format!(
        "server:\n  enabled: true\n  listen: \"0.0.0.0:9400\"\n  auth:\n    tokens:\n      - {{ name: am, role: ingest, sha256: \"{hash}\" }}\n      - {{ name: alice, role: approver, file: alice.token }}\n      - {{ name: ci, role: admin, env: MEDIC_CI_TOKEN }}\n"
    ))
    .expect("valid");
    let t = &c.server.auth.tokens;
    assert_eq!(t.len(), 3);
    assert_eq!(t[0].role, medic_config::Role::Ingest);
    assert_eq!(t[0].secret, medic_config::TokenSecret::Sha256(hash.clone()));
    assert!(
        matches!(&t[1].secret, medic_config::TokenSecret::File(p) if p.ends_with("alice.token") && p.is_absolute()),
        "{:?}",
        t[1].secret
    );
    assert_eq!(
        t[2].secret,
        medic_config::TokenSecret::Env("MEDIC_CI_TOKEN".into())
    );
    // Each mistake, with its position.
    let bad = |token: &str| one_error(&format!("server:\n  auth:\n    tokens:\n      - {token}\n"));
    assert!(bad("{ name: a, role: root, env: X }").contains("invalid `role` in token `a`"));
    assert!(
        bad("{ name: a, role: ingest }")
            .contains("token `a`: expected exactly one of `sha256`, `file` or `env`")
    );
    assert!(
        bad(&format!(
            "{{ name: a, role: ingest, env: X, sha256: \"{hash}\" }}"
        ))
        .contains("found 2")
    );
    assert!(bad("{ name: a, role: ingest, sha256: abc }").contains("64 hex digits"));
    let e = errors(
        "server:\n  auth:\n    tokens:\n      - { name: a, role: ingest, token: hunter2 }\n",
    );
    assert!(e[0].message.contains("unknown key `token`"), "{e:?}");
    assert!(
        e[1].message.contains("never written in the config"),
        "{e:?}"
    );
    assert!(!format!("{e:?}").contains("hunter2"), "{e:?}");
    assert!(bad("{ role: ingest, env: X }").contains("name"));
    let e = one_error(
        "server:\n  auth:\n    tokens:\n      - { name: a, role: ingest, env: X }\n      - { name: a, role: viewer, env: Y }\n",
    );
    assert!(
        e.starts_with("5:9: duplicate token name `a` (first at line 4, column 9)"),
        "{e}"
    );
}

#[test]
fn audit_signing_needs_a_key_and_a_file_outside_the_store() {
    let c = common::load(
        "store:\n  sqlite: medic.db\n  audit_signing: { key: /etc/medic/audit.key, checkpoints: cp.jsonl, every: 30s }\n",
    )
    .expect("valid");
    let a = c.store.audit_signing.expect("signing");
    assert_eq!(a.every, std::time::Duration::from_secs(30));
    assert!(a.checkpoints.ends_with("cp.jsonl"));
    assert!(one_error("store:\n  audit_signing: { key: k }\n").contains("`checkpoints`"));
    let e = one_error(
        "store:\n  sqlite: medic.db\n  audit_signing: { key: medic.db, checkpoints: cp }\n",
    );
    assert!(e.contains("outside the database file"), "{e}");
}

#[test]
fn server_tls_is_checked() {
    let auth = "auth: { unauthenticated: true }";
    // cert and key, paths resolved against the config's directory; no CA: no client certs.
    let c = common::load(&format!(
        "server:\n  {auth}\n  tls: {{ cert: tls/server.crt, key: /etc/medic/server.key }}\n"
    ))
    .expect("valid");
    let t = c.server.tls.expect("tls");
    assert_eq!(t.cert, std::path::Path::new("/base/tls/server.crt"));
    assert_eq!(t.key, std::path::Path::new("/etc/medic/server.key"));
    assert_eq!(t.client_ca, None);
    assert_eq!(t.client_auth, medic_config::ClientAuth::None);
    assert_eq!((t.location.line, t.location.col), (3, 8));
    // A CA alone means required; `optional` when said.
    for (extra, want) in [
        ("", medic_config::ClientAuth::Required),
        (
            ", client_auth: optional",
            medic_config::ClientAuth::Optional,
        ),
    ] {
        let c = common::load(&format!(
            "server:\n  {auth}\n  tls: {{ cert: c, key: k, client_ca: ca.pem{extra} }}\n"
        ))
        .expect("valid");
        assert_eq!(c.server.tls.expect("tls").client_auth, want);
    }
    // Missing key, client_auth without a CA, a CA nothing checks, a typo'd mode.
    let e = one_error(&format!("server:\n  {auth}\n  tls: {{ cert: c }}\n"));
    assert!(e.starts_with("3:8:") && e.contains("`key`"), "{e}");
    let e = one_error(&format!(
        "server:\n  {auth}\n  tls: {{ cert: c, key: k, client_auth: required }}\n"
    ));
    assert!(
        e.starts_with("3:8:") && e.contains("`server.tls.client_auth: required` needs `client_ca`"),
        "{e}"
    );
    let e = one_error(&format!(
        "server:\n  {auth}\n  tls: {{ cert: c, key: k, client_ca: ca.pem, client_auth: none }}\n"
    ));
    assert!(e.contains("`client_auth` is `none`"), "{e}");
    let e = one_error(&format!(
        "server:\n  {auth}\n  tls: {{ cert: c, key: k, client_auth: mandatory }}\n"
    ));
    assert!(e.contains("mandatory") && e.contains("required"), "{e}");
    let e = one_error(&format!(
        "server:\n  {auth}\n  tls: {{ cert: c, key: k, ca: x }}\n"
    ));
    assert!(e.contains("unknown key `ca`"), "{e}");
}

#[test]
fn token_expiry_must_be_a_time() {
    let yaml = "server:\n  enabled: true\n  auth:\n    tokens:\n      - { name: a, role: viewer, env: T, expires: tomorrow }\n";
    assert_eq!(
        one_error(yaml),
        "5:51: invalid `expires` in token `a`: expected an RFC 3339 time such as `2027-01-31T00:00:00Z`, found `tomorrow`"
    );
    let ok = "server:\n  enabled: true\n  auth:\n    tokens:\n      - { name: a, role: viewer, env: T, expires: \"2027-01-31T00:00:00Z\" }\n";
    let cfg = common::load(ok).expect("valid");
    assert!(cfg.server.auth.tokens[0].expires.is_some());
}

#[test]
fn verification_alpha_must_be_a_small_probability() {
    assert_eq!(
        one_error("agent:\n  verification_alpha: 0.5\n"),
        "2:23: invalid `verification_alpha` in `agent`: expected a significance level above 0 and at most 0.2, found `0.5`"
    );
    assert!(one_error("agent: { verification_alpha: -0.01 }\n").contains("found `-0.01`"));
}
