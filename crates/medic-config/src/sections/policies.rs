//! Policies: which action, for which cause, on which services, how boldly. The same item shape
//! appears inline under `policies:` in `medic.yaml` and in policy files.

use crate::node::{Node, Value};
use crate::reader::{Ctx, MapReader, seq_items, to_enum, to_non_empty_string};
use crate::types::{Location, Policy, ResourceParams, ScaleParams};
use medic_core::{ActionKind, Cause, Mode};

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

fn read_policy(item: &Node, cx: &mut Ctx) -> Option<ReadPolicy> {
    let d = Policy::default();
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
    let matcher = m.node("match");
    if matcher.is_none() {
        let msg = format!("missing required key `match` in {}", m.what());
        m.cx.error(m.pos, msg);
    }
    let (causes, services) = match matcher {
        Some(n) => read_match(n, m.what().to_string(), m.cx),
        None => (None, Vec::new()),
    };
    let action_names: Vec<&str> = ActionKind::ALL.iter().map(|a| a.as_str()).collect();
    let action = m
        .enum_value("action", true, &action_names)
        .and_then(|a| ActionKind::parse(&a));
    let scale_node = m.node("scale");
    let scale = scale_node.map(|n| read_scale(n, m.what().to_string(), m.cx));
    let resources_node = m.node("resources");
    let resources = resources_node.map(|n| read_resources(n, m.what().to_string(), m.cx));
    let confidence_threshold = m.f64_or(
        "confidence_threshold",
        d.confidence_threshold,
        |v| (0.0..=1.0).contains(&v),
        "a number from 0 to 1",
    );
    let mode = m
        .enum_value("mode", false, &MODES)
        .and_then(|s| Mode::parse(&s))
        .unwrap_or(d.mode);
    let max_attempts = m.u32_or("max_attempts", d.max_attempts, 1);
    let cooldown = m.duration_or("cooldown", d.cooldown, true);
    let verification_window = m.duration_or("verification_window", d.verification_window, false);
    let rollback_if_failed = m.bool_or("rollback_if_failed", d.rollback_if_failed);
    let escalation_at = m.take("escalation").map(|n| m.cx.errs.location(n.pos));
    let escalation = m.field("escalation", false, to_non_empty_string);
    let verify_promql = m.str_list("verify_promql", false).unwrap_or_default();
    let trust_alert_hints_from = m
        .str_list("trust_alert_hints_from", false)
        .unwrap_or_default();

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
    // A planned event (a sale, a batch job) is expected load: replacing processes under it
    // makes things worse, so the config refuses such a policy outright.
    if let (Some(action), Some(causes)) = (action, &causes)
        && action.is_disruptive()
        && causes.contains(&Cause::PlannedEvent)
    {
        let msg = format!(
            "{} matches cause `planned_event` with disruptive action `{action}`: expected `scale_workload` or `no_action` for planned events",
            m.what()
        );
        m.cx.error(m.pos, msg);
    }
    m.finish();
    let policy = Policy {
        name: name?,
        description,
        causes: causes?,
        services,
        action: action?,
        scale: scale.flatten().unwrap_or_default(),
        resources: resources.flatten().unwrap_or_default(),
        confidence_threshold,
        mode,
        max_attempts,
        cooldown,
        verification_window,
        rollback_if_failed,
        escalation,
        location,
        verify_promql,
        trust_alert_hints_from,
    };
    Some(ReadPolicy {
        policy,
        name_at,
        escalation_at,
    })
}

/// `match: { cause: one-or-list, services: [globs] }`.
fn read_match(node: &Node, policy: String, cx: &mut Ctx) -> (Option<Vec<Cause>>, Vec<String>) {
    let mut m = MapReader::new(node, format!("`match` of {policy}"), cx);
    let cause_names: Vec<&str> = Cause::ALL.iter().map(|c| c.as_str()).collect();
    let causes = m.field("cause", true, |n, label, cx| {
        let items: Vec<&Node> = match &n.value {
            Value::Seq(items) => items.iter().collect(),
            _ => vec![n],
        };
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
    m.finish();
    (causes, services)
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
