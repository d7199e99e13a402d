//! `escalation.targets`: the kinds of receiver, their secrets and their errors.

mod common;
use common::*;
use medic_config::{NotifyKind, PagerDutySeverity, SecretValue};
use std::path::PathBuf;
use std::time::Duration;

const KEY: &str = "0123456789abcdef0123456789abcdef";

#[test]
fn a_target_without_kind_is_todays_webhook() {
    let c =
        load("escalation:\n  targets: [{ name: o, webhook: \"http://127.0.0.1:9/h\" }]\n").unwrap();
    let t = &c.escalation.targets[0];
    assert_eq!(t.kind, NotifyKind::Webhook);
    assert_eq!(t.webhook.as_deref(), Some("http://127.0.0.1:9/h"));
    assert_eq!(
        t.endpoint,
        Some(SecretValue::Plain("http://127.0.0.1:9/h".into()))
    );
    assert_eq!(
        (t.max_attempts, t.max_delivery_time),
        (5, Duration::from_secs(60))
    );
    assert_eq!(t.secret, None);
}

#[test]
fn every_kind_reads_its_keys_and_secrets_in_three_forms() {
    let c = load(&format!(
        "escalation:
  public_url: https://medic.example.com/
  targets:
    - {{ name: hook, webhook: \"http://127.0.0.1:9/h\", secret: env:HOOK_SECRET, max_attempts: 3, max_delivery_time: 10s }}
    - {{ name: chat, kind: slack, webhook: file:secrets/slack-url }}
    - {{ name: pager, kind: pagerduty, routing_key: {KEY}, severity: critical }}
    - {{ name: pager2, kind: pagerduty, routing_key: env:PD_KEY, url: \"http://127.0.0.1:9/v2/enqueue\" }}
"
    ))
    .unwrap();
    let e = &c.escalation;
    assert_eq!(e.public_url.as_deref(), Some("https://medic.example.com"));
    let [hook, chat, pager, pager2] = &e.targets[..] else {
        panic!("{:?}", e.targets)
    };
    assert_eq!(hook.secret, Some(SecretValue::Env("HOOK_SECRET".into())));
    assert_eq!(
        (hook.max_attempts, hook.max_delivery_time),
        (3, Duration::from_secs(10))
    );
    assert_eq!(chat.kind, NotifyKind::Slack);
    assert_eq!(
        chat.webhook, None,
        "a secret URL is not mirrored in the plain field"
    );
    assert_eq!(
        chat.endpoint,
        Some(SecretValue::File(PathBuf::from("/base/secrets/slack-url")))
    );
    assert_eq!(pager.kind, NotifyKind::PagerDuty);
    assert_eq!(pager.routing_key, Some(SecretValue::Plain(KEY.into())));
    assert_eq!(pager.severity, PagerDutySeverity::Critical);
    assert_eq!(
        pager.endpoint,
        Some(SecretValue::Plain(
            "https://events.pagerduty.com/v2/enqueue".into()
        ))
    );
    assert_eq!(pager2.severity, PagerDutySeverity::Error);
    assert_eq!(
        pager2.endpoint,
        Some(SecretValue::Plain("http://127.0.0.1:9/v2/enqueue".into()))
    );
}

#[test]
fn unknown_kind_suggests_the_close_one() {
    assert_eq!(
        one_error(
            "escalation:\n  targets:\n    - { name: p, kind: pagerdutty, routing_key: env:K }\n"
        ),
        "3:24: invalid `kind` in escalation target `p`: expected one of `webhook`, `slack`, `pagerduty`, found `pagerdutty` (did you mean `pagerduty`?)"
    );
}

#[test]
fn pagerduty_needs_a_routing_key_of_32_characters() {
    assert_eq!(
        one_error("escalation:\n  targets:\n    - { name: p, kind: pagerduty }\n"),
        "3:7: missing required key `routing_key` in escalation target `p`"
    );
    let e = one_error(
        "escalation:\n  targets:\n    - { name: p, kind: pagerduty, routing_key: abc123 }\n",
    );
    assert_eq!(
        e,
        "3:48: invalid `routing_key` in escalation target `p`: expected the integration's 32-character routing key, or `env:NAME` / `file:PATH`, found 6 characters"
    );
    assert!(!e.contains("abc123"), "a secret is never echoed: {e}");
}

#[test]
fn slack_without_a_url_is_an_error() {
    assert_eq!(
        one_error("escalation:\n  targets:\n    - name: chat\n      kind: slack\n"),
        "3:7: missing required key `webhook` in escalation target `chat`: a `kind: slack` target needs its incoming webhook URL (the URL itself, `env:NAME` or `file:PATH`)"
    );
}

#[test]
fn secrets_in_a_bad_form_are_errors_that_never_echo_the_value() {
    assert_eq!(
        one_error(
            "escalation:\n  targets:\n    - { name: h, webhook: \"http://127.0.0.1:9/\", secret: \"env:MY SECRET\" }\n"
        ),
        "3:58: invalid `secret` in escalation target `h`: expected an environment variable name of letters, digits and `_` after `env:`, found `MY SECRET` (the value itself, `env:NAME` or `file:PATH`)"
    );
    assert_eq!(
        one_error(
            "escalation:\n  targets:\n    - { name: h, webhook: \"http://127.0.0.1:9/\", secret: \"file:\" }\n"
        ),
        "3:58: invalid `secret` in escalation target `h`: expected a path after `file:` (the value itself, `env:NAME` or `file:PATH`)"
    );
    let e = one_error(
        "escalation:\n  targets:\n    - { name: h, webhook: \"http://127.0.0.1:9/\", secret: hunter2 }\n",
    );
    assert_eq!(
        e,
        "3:58: invalid `secret` in escalation target `h`: expected at least 16 characters, found 7 (the value itself, `env:NAME` or `file:PATH`)"
    );
    assert!(!e.contains("hunter2"), "{e}");
    assert_eq!(
        one_error("escalation:\n  targets:\n    - { name: s, kind: slack, webhook: \"env:\" }\n"),
        "3:40: invalid `webhook` in escalation target `s`: expected an environment variable name of letters, digits and `_` after `env:`, found `` (the value itself, `env:NAME` or `file:PATH`)"
    );
}

#[test]
fn a_key_of_another_kind_is_an_error() {
    assert_eq!(
        one_error(&format!(
            "escalation:\n  targets:\n    - name: p\n      kind: pagerduty\n      routing_key: {KEY}\n      webhook: \"http://127.0.0.1:9/\"\n"
        )),
        "6:7: `webhook` in escalation target `p` does not apply to `kind: pagerduty`: expected it only with `kind: webhook` or `kind: slack`"
    );
    assert_eq!(
        one_error("escalation:\n  targets:\n    - { name: h, routing_key: env:K }\n"),
        "3:18: `routing_key` in escalation target `h` does not apply to `kind: webhook`: expected it only with `kind: pagerduty`"
    );
}

#[test]
fn secret_debug_output_hides_plain_values() {
    let s = format!(
        "{:?}",
        SecretValue::Plain("https://hooks.slack.com/services/T/B/X".into())
    );
    assert!(!s.contains("hooks.slack.com"), "{s}");
}

#[test]
fn the_readmes_notification_example_loads() {
    let readme = include_str!("../../../README.md");
    let start = readme
        .find("```yaml\nescalation:")
        .expect("the README's escalation example")
        + "```yaml\n".len();
    let end = start + readme[start..].find("```").expect("end of block");
    let c = load(&readme[start..end]).unwrap_or_else(|e| panic!("{e:#?}"));
    let kinds: Vec<NotifyKind> = c.escalation.targets.iter().map(|t| t.kind).collect();
    assert_eq!(
        kinds,
        [
            NotifyKind::PagerDuty,
            NotifyKind::Slack,
            NotifyKind::Webhook
        ]
    );
}
