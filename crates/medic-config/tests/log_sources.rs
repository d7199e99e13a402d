//! Log source formats, `kubernetes_logs`, `stdin` and the `redaction:` section.

mod common;

use common::{load, one_error};
use medic_config::{ContainerFormat, LogFormat, SourceKind};

#[test]
fn log_file_formats() {
    let c = load(
        r#"
sources:
  - { name: a, type: log_files, paths: [a.log], format: json, fields: { message: event, level: sev } }
  - { name: b, type: log_files, paths: [b.log], format: logfmt }
  - { name: c, type: log_files, paths: [c.log], format: regex, pattern: '(?P<level>\w+) (?P<message>.*)' }
  - { name: d, type: log_files, paths: [d.log], format: loghub, pattern: '<Date> <Time> <Level> <Component>: <Content>' }
  - { name: e, type: log_files, paths: [e.log], format: cri }
  - { name: f, type: log_files, paths: [f.log], format: logfmt, container: docker }
  - { name: g, type: log_files, paths: [g.log] }
"#,
    )
    .unwrap();
    let formats: Vec<(LogFormat, ContainerFormat)> = c
        .sources
        .iter()
        .map(|s| match &s.kind {
            SourceKind::LogFiles {
                format, container, ..
            } => (format.clone(), *container),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        formats[0].0,
        LogFormat::Json {
            message: Some("event".into()),
            level: Some("sev".into()),
            timestamp: None
        }
    );
    assert_eq!(formats[1], (LogFormat::Logfmt, ContainerFormat::None));
    assert!(matches!(formats[2].0, LogFormat::Regex { .. }));
    assert!(matches!(formats[3].0, LogFormat::Loghub { .. }));
    assert_eq!(formats[4], (LogFormat::Auto, ContainerFormat::Cri));
    assert_eq!(formats[5], (LogFormat::Logfmt, ContainerFormat::Docker));
    assert_eq!(formats[6], (LogFormat::Auto, ContainerFormat::None));
}

#[test]
fn invalid_regex_is_an_error_with_its_position() {
    let e = one_error(
        "sources:\n  - { name: a, type: log_files, paths: [a.log], format: regex, pattern: '(?P<level>\\w+' }\n",
    );
    assert!(e.starts_with("2:"), "{e}");
    assert!(
        e.contains("invalid `pattern` in source `a`: expected a regex"),
        "{e}"
    );
    assert!(e.contains("at character"), "{e}");
}

#[test]
fn format_options_must_fit_the_format() {
    let e =
        one_error("sources:\n  - { name: a, type: log_files, paths: [a.log], format: regex }\n");
    assert!(e.contains("missing `pattern`"), "{e}");
    let e = one_error(
        "sources:\n  - { name: a, type: log_files, paths: [a.log], format: logfmt, pattern: x }\n",
    );
    assert!(e.contains("only used with `format: regex`"), "{e}");
    let e = one_error("sources:\n  - { name: a, type: log_files, paths: [a.log], format: xml }\n");
    assert!(e.contains("expected one of `auto`"), "{e}");
}

#[test]
fn kubernetes_logs_and_stdin() {
    let c = load(
        "sources:\n  - { name: k, type: kubernetes_logs }\n  - { name: s, type: stdin, service: app, format: logfmt }\n",
    )
    .unwrap();
    match &c.sources[0].kind {
        SourceKind::KubernetesLogs {
            paths, from_start, ..
        } => {
            assert_eq!(paths, &["/var/log/pods/*/*/*.log"]);
            assert!(!from_start);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        c.sources[1].kind,
        SourceKind::Stdin {
            service: Some("app".into()),
            format: LogFormat::Logfmt
        }
    );
    let e = one_error("sources:\n  - { name: k, type: kubernetes_logs, format: cri }\n");
    assert!(e.contains("detects CRI and Docker"), "{e}");
}

#[test]
fn redaction_section() {
    let c = load(
        "redaction:\n  extra_patterns:\n    - { name: employee_id, regex: 'EMP-\\d{6}' }\n  disable: [email, card]\n",
    )
    .unwrap();
    assert_eq!(c.redaction.extra_patterns.len(), 1);
    assert_eq!(c.redaction.extra_patterns[0].name, "employee_id");
    assert_eq!(c.redaction.disable, vec!["email", "card"]);
    assert!(load("{}").unwrap().redaction.extra_patterns.is_empty());

    let e = one_error("redaction:\n  extra_patterns:\n    - { name: x, regex: '(' }\n");
    assert!(e.starts_with("3:"), "{e}");
    assert!(
        e.contains("`regex` of redaction pattern `x`: expected a regex"),
        "{e}"
    );
    let e = one_error("redaction:\n  disable: [emails]\n");
    assert!(e.contains("did you mean `email`"), "{e}");
    let e = one_error("redaction:\n  extra_patterns:\n    - { name: 'a b', regex: x }\n");
    assert!(e.contains("invalid `name`"), "{e}");
    let e = one_error("redaction:\n  extra: []\n");
    assert!(e.contains("unknown key `extra`"), "{e}");
}
