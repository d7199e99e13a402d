//! Policies: which action, for which cause, on which services, how boldly. The same item shape
//! appears inline under `policies:` in `medic.yaml` and in policy files.

use crate::error::Pos;
use crate::node::{Node, Value};
use crate::reader::{Ctx, MapReader, seq_items, to_enum, to_non_empty_string, to_string, to_u64};
use crate::types::{Autonomy, Location, Pattern, Policy, ResourceParams, ScaleParams};
use medic_core::{ActionKind, ApprovalRule, Cause, Guardrails, Mode, OnTimeout, TimeWindow};
use std::collections::BTreeMap;
use std::time::Duration;

const MODES: [&str; 4] = ["shadow", "recommend", "approve", "auto"];

/// A policy and where its parts were written, for checks made once all files are read.
pub(crate) struct ReadPolicy {
    pub policy: Policy,
    pub name_at: Location,
    pub escalation_at: Option<Location>,
}

pub(crate) fn read_policy_list(node: &Node, cx: &mut Ctx) -> Vec<ReadPolicy> {
    seq_items(node, "`policies`", cx)
        .iter()
        .filter_map(|item| read_policy(item, cx))
        .collect()
}

/// One top-level RemediationPolicy document of a policy file.
pub(crate) fn read_policy_document(root: &Node, cx: &mut Ctx) -> Option<ReadPolicy> {
    read_document(root, cx)
}

fn read_policy(item: &Node, cx: &mut Ctx) -> Option<ReadPolicy> {
    let is_document = item.as_map().is_some_and(|m| {
        m.iter()
            .any(|(k, _)| matches!(k.key_str(), Some("kind" | "apiVersion")))
    });
    if is_document {
        read_document(item, cx)
    } else {
        read_list_item(item, cx)
    }
}

/// The list form: every field at the top of the item.
fn read_list_item(item: &Node, cx: &mut Ctx) -> Option<ReadPolicy> {
    let location = cx.errs.location(item.pos);
    let mut m = MapReader::new(item, "policy", cx);
    let name_at = m
        .take("name")
        .map_or(location.clone(), |n| m.cx.errs.location(n.pos));
    let name = m.field("name", true, to_non_empty_string);
    let what = match &name {
        Some(n) => format!("policy `{n}`"),
        None => "policy".into(),
    };
    let mut m = m.renamed(what);
    let description = m.str_or("description", "");
    let matcher = read_required_match(&mut m);
    let action_names: Vec<&str> = ActionKind::ALL.iter().map(|a| a.as_str()).collect();
    let action = m
        .enum_value("action", true, &action_names)
        .and_then(|a| ActionKind::parse(&a));
    let scale_node = m.node("scale");
    let resources_node = m.node("resources");
    let params = read_params(action, scale_node, resources_node, &mut m);
    let verification_window = m.duration_or(
        "verification_window",
        Policy::default().verification_window,
        false,
    );
    let verify_promql = m.str_list("verify_promql", false).unwrap_or_default();
    let (common, escalation_at) = read_common(&mut m);
    let pos = m.pos;
    m.finish();
    finish_policy(
        Parts {
            name,
            name_at,
            description,
            matcher,
            action,
            params,
            verification_window,
            verify_promql,
            location,
            api_version: None,
            common,
            escalation_at,
            pos,
        },
        cx,
    )
}

/// The document form (`apiVersion`, `kind: RemediationPolicy`, `metadata`, `spec`), as
/// Kubernetes resources are written.
fn read_document(item: &Node, cx: &mut Ctx) -> Option<ReadPolicy> {
    let location = cx.errs.location(item.pos);
    let mut top = MapReader::new(item, "RemediationPolicy document", cx);
    let api_version = top.field("apiVersion", true, |n, label, cx| {
        let v = to_enum(n, label, cx, &API_VERSIONS)?;
        Some(v)
    });
    top.field("kind", true, |n, label, cx| {
        to_enum(n, label, cx, &["RemediationPolicy"])
    });
    let metadata = top.node("metadata");
    let (name, name_at, description) = match metadata {
        Some(n) => read_metadata(n, top.cx),
        None => {
            let msg = "missing required key `metadata` in RemediationPolicy document";
            top.cx.error(top.pos, msg);
            (None, location.clone(), String::new())
        }
    };
    let what = match &name {
        Some(n) => format!("policy `{n}`"),
        None => "RemediationPolicy document".into(),
    };
    let mut top = top.renamed(what.clone());
    let spec = top.node("spec");
    if spec.is_none() {
        let msg = format!("missing required key `spec` in {what}");
        top.cx.error(top.pos, msg);
    }
    top.finish();
    let spec = spec?;
    let mut m = MapReader::new(spec, format!("`spec` of {what}"), cx);
    let matcher = read_required_match(&mut m);
    let (action, params) = match m.node("action") {
        Some(n) => read_action(n, m.what().to_string(), m.cx),
        None => {
            let msg = format!("missing required key `action` in {}", m.what());
            m.cx.error(m.pos, msg);
            (None, (ScaleParams::default(), ResourceParams::default()))
        }
    };
    let (verification_window, verify_promql) = match m.node("verification") {
        Some(n) => read_verification(n, m.what().to_string(), m.cx),
        None => (Policy::default().verification_window, Vec::new()),
    };
    let (common, escalation_at) = read_common(&mut m);
    m.finish();
    finish_policy(
        Parts {
            name,
            name_at,
            description,
            matcher,
            action,
            params,
            verification_window,
            verify_promql,
            location,
            api_version,
            common,
            escalation_at,
            pos: item.pos,
        },
        cx,
    )
}

/// `apiVersion`s this medic reads.
const API_VERSIONS: [&str; 1] = ["medic.dev/v1"];

/// `metadata: { name, description?, labels?, annotations? }`: labels and annotations are
/// accepted for people's tools and not read by medic.
fn read_metadata(node: &Node, cx: &mut Ctx) -> (Option<String>, Location, String) {
    let mut m = MapReader::new(node, "`metadata` of a RemediationPolicy document", cx);
    let name_at = m.take("name").map_or_else(
        || m.cx.errs.location(node.pos),
        |n| m.cx.errs.location(n.pos),
    );
    let name = m.field("name", true, to_non_empty_string);
    let description = m.str_or("description", "");
    for key in ["labels", "annotations"] {
        if let Some(n) = m.node(key) {
            read_string_map(n, &format!("`metadata.{key}`"), m.cx);
        }
    }
    m.finish();
    (name, name_at, description)
}

/// `action: { type, params }` of a document; `action: restart_workload` is short for a
/// type without parameters.
fn read_action(
    node: &Node,
    what: String,
    cx: &mut Ctx,
) -> (Option<ActionKind>, (ScaleParams, ResourceParams)) {
    let action_names: Vec<&str> = ActionKind::ALL.iter().map(|a| a.as_str()).collect();
    if node.scalar().is_some() {
        let action = to_enum(node, &format!("`action` in {what}"), cx, &action_names)
            .and_then(|a| ActionKind::parse(&a));
        return (action, (ScaleParams::default(), ResourceParams::default()));
    }
    let mut m = MapReader::new(node, format!("`action` of {what}"), cx);
    let action = m
        .enum_value("type", true, &action_names)
        .and_then(|a| ActionKind::parse(&a));
    let params = m.node("params");
    let out = match (action, params) {
        (Some(ActionKind::ScaleWorkload), Some(p)) => (
            read_scale(p, what.clone(), m.cx).unwrap_or_default(),
            ResourceParams::default(),
        ),
        (Some(ActionKind::SetResources), Some(p)) => (
            ScaleParams::default(),
            read_resources(p, what.clone(), m.cx).unwrap_or_default(),
        ),
        (Some(other), Some(p)) => {
            let msg = format!(
                "`params` of `action` in {what}: action `{other}` takes no parameters (only `scale_workload` and `set_resources` do): remove `params`"
            );
            m.cx.error(p.pos, msg);
            (ScaleParams::default(), ResourceParams::default())
        }
        _ => (ScaleParams::default(), ResourceParams::default()),
    };
    m.finish();
    (action, out)
}

/// `verification: { window, promql }` of a document.
fn read_verification(node: &Node, what: String, cx: &mut Ctx) -> (Duration, Vec<String>) {
    let mut m = MapReader::new(node, format!("`verification` of {what}"), cx);
    let window = m.duration_or("window", Policy::default().verification_window, false);
    let promql = m.str_list("promql", false).unwrap_or_default();
    m.finish();
    (window, promql)
}

/// The list form's `scale:` and `resources:`, each only with its action.
fn read_params(
    action: Option<ActionKind>,
    scale_node: Option<&Node>,
    resources_node: Option<&Node>,
    m: &mut MapReader,
) -> (ScaleParams, ResourceParams) {
    let scale = scale_node.and_then(|n| read_scale(n, m.what().to_string(), m.cx));
    let resources = resources_node.and_then(|n| read_resources(n, m.what().to_string(), m.cx));
    if let (Some(action), Some(scale_node)) = (action, scale_node)
        && action != ActionKind::ScaleWorkload
    {
        let msg = format!(
            "`scale` in {} is only used by action `scale_workload`, found action `{action}`: remove `scale` or change the action",
            m.what()
        );
        m.cx.error(scale_node.pos, msg);
    }
    if let (Some(action), Some(node)) = (action, resources_node)
        && action != ActionKind::SetResources
    {
        let msg = format!(
            "`resources` in {} is only used by action `set_resources`, found action `{action}`: remove `resources` or change the action",
            m.what()
        );
        m.cx.error(node.pos, msg);
    }
    (scale.unwrap_or_default(), resources.unwrap_or_default())
}

/// The fields both forms write the same way. The returned policy carries them on defaults;
/// the caller fills in the rest.
fn read_common(m: &mut MapReader) -> (Policy, Option<Location>) {
    let d = Policy::default();
    let confidence_threshold = m.f64_or(
        "confidence_threshold",
        d.confidence_threshold,
        |v| (0.0..=1.0).contains(&v),
        "a number from 0 to 1",
    );
    let mode_at = m.take("mode").map(|n| n.pos);
    let mode = m
        .enum_value("mode", false, &MODES)
        .and_then(|s| Mode::parse(&s))
        .unwrap_or(d.mode);
    let max_attempts = m.u32_or("max_attempts", d.max_attempts, 1);
    let cooldown = m.duration_or("cooldown", d.cooldown, true);
    let rollback_if_failed = m.bool_or("rollback_if_failed", d.rollback_if_failed);
    let escalation_at = m.take("escalation").map(|n| m.cx.errs.location(n.pos));
    let escalation = m.field("escalation", false, to_non_empty_string);
    let trust_alert_hints_from = m
        .str_list("trust_alert_hints_from", false)
        .unwrap_or_default();
    let approval_node = m.node("approval");
    let (required, approval) = match approval_node {
        Some(n) => read_approval(n, m.what().to_string(), m.cx),
        None => (false, None),
    };
    let guardrails = m
        .node("guardrails")
        .map(|n| read_guardrails(n, m.what().to_string(), m.cx))
        .unwrap_or_default();
    let auto_override = m.node("auto_override").and_then(|n| {
        let label = format!("`auto_override` in {}", m.what());
        let mut r = MapReader::new(n, label, m.cx);
        let reason = r.field("reason", true, to_non_empty_string);
        r.finish();
        reason
    });
    let autonomy = m
        .node("autonomy")
        .and_then(|n| read_autonomy(n, m.what().to_string(), m.cx));
    // `approval.required` is the document form's way to say `mode: approve`; an `auto`
    // policy that requires approval is an approve policy, unless it earns `auto` through
    // `autonomy` (the rule then governs the approvals until it has).
    let mode = if required && mode == Mode::Auto && autonomy.is_none() {
        Mode::Approve
    } else {
        mode
    };
    if mode == Mode::Approve && approval_node.is_some() && !required {
        let msg = format!(
            "`approval.required: false` in {} contradicts `mode: approve`: expected `required: true` or another mode",
            m.what()
        );
        m.cx.error(mode_at.unwrap_or(m.pos), msg);
    }
    if let Some(a) = &autonomy
        && a.start >= mode
    {
        let msg = format!(
            "`autonomy.start` in {} is `{}`, which is not below the policy's mode `{}`: expected a lower start (shadow, recommend or approve below auto)",
            m.what(),
            a.start.as_str(),
            mode.as_str()
        );
        m.cx.error(mode_at.unwrap_or(m.pos), msg);
    }
    let approval = match (mode, approval) {
        (Mode::Approve, None) => Some(ApprovalRule::default()),
        (_, a) => a,
    };
    let policy = Policy {
        confidence_threshold,
        mode,
        max_attempts,
        cooldown,
        rollback_if_failed,
        escalation,
        trust_alert_hints_from,
        approval,
        guardrails,
        auto_override,
        autonomy,
        ..d
    };
    (policy, escalation_at)
}

/// What either form read, before the checks that need the whole policy.
struct Parts {
    name: Option<String>,
    name_at: Location,
    description: String,
    matcher: Matcher,
    action: Option<ActionKind>,
    params: (ScaleParams, ResourceParams),
    verification_window: Duration,
    verify_promql: Vec<String>,
    location: Location,
    api_version: Option<String>,
    /// The fields both forms write alike, on defaults.
    common: Policy,
    escalation_at: Option<Location>,
    pos: Pos,
}

/// Assembles the policy and runs the checks that need all of it.
fn finish_policy(parts: Parts, cx: &mut Ctx) -> Option<ReadPolicy> {
    let Parts {
        name,
        name_at,
        description,
        matcher,
        action,
        params: (scale, resources),
        verification_window,
        verify_promql,
        location,
        api_version,
        common,
        escalation_at,
        pos,
    } = parts;
    let policy = Policy {
        name: name?,
        description,
        causes: matcher.causes?,
        services: matcher.services,
        summary: matcher.summary,
        labels: matcher.labels,
        namespaces: matcher.namespaces,
        action: action?,
        scale,
        resources,
        verification_window,
        verify_promql,
        location,
        api_version,
        ..common
    };
    let what = format!("policy `{}`", policy.name);
    // A planned event (a sale, a batch job) is expected load: replacing processes under it
    // makes things worse, so the config refuses such a policy outright.
    if policy.action.is_disruptive() && policy.causes.contains(&Cause::PlannedEvent) {
        cx.error(
            pos,
            format!(
                "{what} matches cause `planned_event` with disruptive action `{}`: expected `scale_workload` or `no_action` for planned events",
                policy.action
            ),
        );
    }
    let class = policy.action.class();
    if policy.auto_override.is_some() && !class.never_auto() {
        cx.error(
            pos,
            format!(
                "`auto_override` in {what}: action `{}` ({} class) may already run unattended; the override is only for security, identity and data-loss actions: remove it",
                policy.action,
                class.as_str()
            ),
        );
    }
    Some(ReadPolicy {
        policy,
        name_at,
        escalation_at,
    })
}

struct Matcher {
    causes: Option<Vec<Cause>>,
    services: Vec<String>,
    summary: Option<Pattern>,
    labels: BTreeMap<String, String>,
    namespaces: Vec<String>,
}

fn read_required_match(m: &mut MapReader) -> Matcher {
    match m.node("match") {
        Some(n) => read_match(n, m.what().to_string(), m.cx),
        None => {
            let msg = format!("missing required key `match` in {}", m.what());
            m.cx.error(m.pos, msg);
            Matcher {
                causes: None,
                services: Vec::new(),
                summary: None,
                labels: BTreeMap::new(),
                namespaces: Vec::new(),
            }
        }
    }
}

/// `approval: { required, approvers, timeout, on_timeout }`: the rule, and whether the
/// policy requires approval. `required: false` gives no rule.
fn read_approval(node: &Node, what: String, cx: &mut Ctx) -> (bool, Option<ApprovalRule>) {
    let d = ApprovalRule::default();
    let mut m = MapReader::new(node, format!("`approval` of {what}"), cx);
    let required = m.bool_or("required", true);
    let approvers = m.field("approvers", false, to_non_empty_string);
    let timeout = m.duration_or("timeout", Duration::from_secs_f64(d.timeout_s), false);
    let on_timeout = m
        .enum_value("on_timeout", false, &["escalate", "reject"])
        .map_or(d.on_timeout, |s| match s.as_str() {
            "reject" => OnTimeout::Reject,
            _ => OnTimeout::Escalate,
        });
    m.finish();
    let rule = ApprovalRule {
        approvers,
        timeout_s: timeout.as_secs_f64(),
        on_timeout,
    };
    (required, required.then_some(rule))
}

/// `guardrails: { blocked_windows, max_executions_per_hour, max_targets_per_hour }`.
fn read_guardrails(node: &Node, what: String, cx: &mut Ctx) -> Guardrails {
    let mut m = MapReader::new(node, format!("`guardrails` of {what}"), cx);
    let mut blocked_windows = Vec::new();
    if let Some(list) = m.node("blocked_windows") {
        let label = format!("`blocked_windows` in {}", m.what());
        for item in seq_items(list, &label, m.cx) {
            let Some(text) = to_non_empty_string(item, &label, m.cx) else {
                continue;
            };
            match TimeWindow::parse(&text) {
                Ok(w) => blocked_windows.push(w),
                Err(why) => m.cx.error(item.pos, format!("invalid {label}: {why}")),
            }
        }
    }
    let max_executions_per_hour = m.field("max_executions_per_hour", false, |n, l, cx| {
        to_u64(n, l, cx, 1, u64::from(u32::MAX)).map(|v| v as u32)
    });
    let max_targets_per_hour = m.field("max_targets_per_hour", false, |n, l, cx| {
        to_u64(n, l, cx, 1, u64::from(u32::MAX)).map(|v| v as u32)
    });
    m.finish();
    Guardrails {
        blocked_windows,
        max_executions_per_hour,
        max_targets_per_hour,
    }
}

/// `autonomy: { start, promote_after }`.
fn read_autonomy(node: &Node, what: String, cx: &mut Ctx) -> Option<Autonomy> {
    let mut m = MapReader::new(node, format!("`autonomy` of {what}"), cx);
    let start = m
        .enum_value("start", true, &["shadow", "recommend", "approve"])
        .and_then(|s| Mode::parse(&s));
    let promote_after = m.field("promote_after", true, |n, l, cx| {
        to_u64(n, l, cx, 1, 1000).map(|v| v as u32)
    });
    m.finish();
    Some(Autonomy {
        start: start?,
        promote_after: promote_after?,
    })
}

/// A mapping of strings to strings (`labels`).
fn read_string_map(node: &Node, label: &str, cx: &mut Ctx) -> Option<BTreeMap<String, String>> {
    let Some(entries) = node.as_map() else {
        cx.error(
            node.pos,
            format!(
                "invalid {label}: expected a mapping of names to values, found {}",
                node.describe()
            ),
        );
        return None;
    };
    let mut out = BTreeMap::new();
    let mut ok = true;
    for (k, v) in entries {
        let key = to_non_empty_string(k, label, cx);
        let value = to_string(v, label, cx);
        match (key, value) {
            (Some(k), Some(v)) => {
                out.insert(k, v);
            }
            _ => ok = false,
        }
    }
    ok.then_some(out)
}

/// `match: { cause: one-or-list, services: [globs], summary: regex, labels: {k: v},
/// namespace: one-or-list }`.
fn read_match(node: &Node, policy: String, cx: &mut Ctx) -> Matcher {
    let mut m = MapReader::new(node, format!("`match` of {policy}"), cx);
    let cause_names: Vec<&str> = Cause::ALL.iter().map(|c| c.as_str()).collect();
    let causes = m.field("cause", true, |n, label, cx| {
        let items = one_or_list(n);
        if items.is_empty() {
            cx.error(
                n.pos,
                format!(
                    "invalid {label}: expected a cause or a list of causes, found an empty list"
                ),
            );
            return None;
        }
        let mut causes = Vec::new();
        let mut ok = true;
        for item in items {
            match to_enum(item, label, cx, &cause_names).and_then(|s| Cause::parse(&s)) {
                Some(c) if !causes.contains(&c) => causes.push(c),
                Some(_) => {}
                None => ok = false,
            }
        }
        ok.then_some(causes)
    });
    let services = m.str_list("services", false).unwrap_or_default();
    let summary = m.field("summary", false, |n, label, cx| {
        let text = to_non_empty_string(n, label, cx)?;
        match regex::RegexBuilder::new(&text).size_limit(1 << 20).build() {
            Ok(r) => Some(Pattern(r)),
            Err(e) => {
                let why = e.to_string();
                let why = why.lines().last().unwrap_or("").trim().to_string();
                cx.error(
                    n.pos,
                    format!("invalid {label}: the regex does not compile: {why}"),
                );
                None
            }
        }
    });
    let labels = m
        .node("labels")
        .and_then(|n| {
            let label = format!("`labels` in {}", m.what());
            read_string_map(n, &label, m.cx)
        })
        .unwrap_or_default();
    let namespaces = m
        .field("namespace", false, |n, label, cx| {
            let mut out = Vec::new();
            for item in one_or_list(n) {
                out.push(to_non_empty_string(item, label, cx)?);
            }
            Some(out)
        })
        .unwrap_or_default();
    m.finish();
    Matcher {
        causes,
        services,
        summary,
        labels,
        namespaces,
    }
}

/// A scalar or a list of them, as items.
fn one_or_list(n: &Node) -> Vec<&Node> {
    match &n.value {
        Value::Seq(items) => items.iter().collect(),
        _ => vec![n],
    }
}

fn read_resources(node: &Node, policy: String, cx: &mut Ctx) -> Option<ResourceParams> {
    let d = ResourceParams::default();
    let mut m = MapReader::new(node, format!("`resources` of {policy}"), cx);
    let memory_factor = m.f64_or(
        "memory_factor",
        d.memory_factor,
        |v| v > 1.0 && v <= 16.0,
        "a number above 1 and at most 16",
    );
    let max_memory_bytes = m
        .field("max_memory", false, to_quantity_bytes)
        .unwrap_or(d.max_memory_bytes);
    let container = m.field("container", false, to_non_empty_string);
    m.finish();
    Some(ResourceParams {
        memory_factor,
        max_memory_bytes,
        container,
    })
}

/// A memory quantity as Kubernetes writes it (`512Mi`, `1Gi`, `1G`, `134217728`).
fn to_quantity_bytes(n: &Node, label: &str, cx: &mut Ctx) -> Option<u64> {
    let raw = crate::reader::to_string(n, label, cx)?.trim().to_string();
    match medic_core::quantity::parse_bytes(&raw) {
        Some(b) if b > 0 => Some(b),
        _ => {
            cx.error(
                n.pos,
                format!(
                    "invalid {label}: expected a memory quantity such as `512Mi` or `1Gi`, found `{raw}`"
                ),
            );
            None
        }
    }
}

fn read_scale(node: &Node, policy: String, cx: &mut Ctx) -> Option<ScaleParams> {
    let d = ScaleParams::default();
    let mut m = MapReader::new(node, format!("`scale` of {policy}"), cx);
    let factor = m.f64_or("factor", d.factor, |v| v > 0.0, "a number greater than 0");
    let min_replicas = m.u32_or("min_replicas", d.min_replicas, 1);
    let max_replicas = m.u32_or("max_replicas", d.max_replicas, 1);
    if max_replicas < min_replicas {
        let msg = format!(
            "invalid `max_replicas` in {}: expected at least `min_replicas` ({min_replicas}), found {max_replicas}",
            m.what()
        );
        m.cx.error(m.pos, msg);
    }
    m.finish();
    Some(ScaleParams {
        factor,
        min_replicas,
        max_replicas,
    })
}
