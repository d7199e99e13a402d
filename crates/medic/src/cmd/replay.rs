//! `medic replay --policies DIR --from STORE [--since T] [--until T]`: every recorded
//! incident's diagnosis through a candidate policy set and the guards, as of the moment it
//! was decided, beside what happened. Reads the store only; nothing is acted on or written.

use anyhow::{Context, Result};
use clap::Args;
use medic_core::{AuditEvent, Incident, Ts};
use medic_policy::replay::{Verdict, recorded, replay};
use serde::Serialize;
use std::collections::HashMap;
use std::path::PathBuf;

#[derive(Args)]
pub struct ReplayArgs {
    /// The candidate policy set: policy files or directories of them (`*.yaml`, `*.yml`).
    #[arg(long, required = true, num_args = 1..)]
    pub policies: Vec<PathBuf>,
    /// The store holding the recorded incidents (opened read-only in effect: never written).
    #[arg(long)]
    pub from: PathBuf,
    /// Only incidents opened at or after this time (RFC 3339, e.g. 2026-12-01T00:00:00Z).
    #[arg(long, value_parser = parse_ts)]
    pub since: Option<Ts>,
    /// Only incidents opened before this time (RFC 3339).
    #[arg(long, value_parser = parse_ts)]
    pub until: Option<Ts>,
    /// Guards as configured in this medic.yaml (default: the built-in guard limits).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// One JSON object per incident.
    #[arg(long)]
    pub json: bool,
}

fn parse_ts(s: &str) -> Result<Ts, String> {
    Ts::parse_rfc3339(s)
        .ok_or_else(|| format!("`{s}` is not an RFC 3339 time (e.g. 2026-12-01T00:00:00Z)"))
}

#[derive(Serialize)]
struct Row<'a> {
    incident: &'a str,
    opened: String,
    diagnosis: String,
    happened: Verdict,
    /// How the recorded incident ended.
    outcome: String,
    candidate: Verdict,
    differs: bool,
}

pub fn run(args: ReplayArgs) -> Result<i32> {
    let env = |k: &str| std::env::var(k).ok();
    let policies = match medic_config::load_policy_set(&args.policies, &env) {
        Ok(p) => p,
        Err(errs) => {
            for e in &errs {
                eprintln!("{e}");
            }
            eprintln!(
                "the candidate policy set does not load ({} error(s)): nothing replayed",
                errs.len()
            );
            return Ok(2);
        }
    };
    let guards = match &args.config {
        Some(path) => match medic_config::load(path, &env) {
            Ok(c) => c.guards,
            Err(errs) => {
                for e in &errs {
                    eprintln!("{e}");
                }
                return Ok(2);
            }
        },
        None => medic_config::GuardsConfig::default(),
    };
    if !args.from.exists() {
        anyhow::bail!("store {} does not exist", args.from.display());
    }
    let store = medic_store::Store::open(&args.from)
        .with_context(|| format!("opening store {}", args.from.display()))?;
    let mut incidents = store.incidents()?;
    incidents.sort_by_key(|i| (i.opened, i.id.clone()));
    let executions = store.executions_since(Ts(i64::MIN))?;
    // Each incident's first plan and decision, and when, from the audit: the candidate is
    // replayed at that moment (a ladder's later rungs follow from the first).
    let mut first_plan: HashMap<String, medic_core::Plan> = HashMap::new();
    let mut first: HashMap<String, (Ts, Verdict)> = HashMap::new();
    for r in store.audit_records()? {
        match serde_json::from_str::<AuditEvent>(&r.payload) {
            Ok(AuditEvent::PlanProposed { incident, plan }) => {
                first_plan.entry(incident).or_insert(*plan);
            }
            Ok(AuditEvent::DecisionMade {
                incident, decision, ..
            }) => {
                if let Some(plan) = first_plan.get(&incident) {
                    let v = Verdict::of(plan, &decision);
                    first.entry(incident).or_insert((r.ts, v));
                }
            }
            _ => {}
        }
    }
    let in_range = |i: &Incident| {
        args.since.is_none_or(|t| i.opened >= t) && args.until.is_none_or(|t| i.opened < t)
    };
    let (mut total, mut differ) = (0, 0);
    for (n, inc) in incidents.iter().enumerate() {
        if !in_range(inc) {
            continue;
        }
        let Some(diagnosis) = &inc.diagnosis else {
            continue;
        };
        let (at, happened) = first
            .get(&inc.id)
            .cloned()
            .unwrap_or_else(|| (diagnosis.made_at, recorded(inc)));
        let candidate = replay(inc, at, &policies, &guards, &executions, &incidents[..n]);
        let row = Row {
            incident: &inc.id,
            opened: inc.opened.to_rfc3339(),
            diagnosis: diagnosis
                .top()
                .map(|h| format!("{} on {} ({:.2})", h.cause, h.target, h.confidence))
                .unwrap_or_else(|| "-".into()),
            outcome: outcome_of(inc),
            differs: !happened.same_as(&candidate),
            happened,
            candidate,
        };
        total += 1;
        if row.differs {
            differ += 1;
        }
        if args.json {
            println!("{}", serde_json::to_string(&row)?);
        } else {
            print_row(&row);
        }
    }
    if !args.json {
        println!(
            "{total} incident(s) replayed against {} polic{}: {differ} would be decided differently",
            policies.len(),
            if policies.len() == 1 { "y" } else { "ies" }
        );
    }
    Ok(0)
}

fn outcome_of(inc: &Incident) -> String {
    match (&inc.outcome, &inc.closing_reason) {
        (Some(o), _) => serde_json::to_value(o)
            .ok()
            .and_then(|v| v.get("outcome").and_then(|o| o.as_str()).map(String::from))
            .unwrap_or_else(|| format!("{o:?}")),
        (None, Some(r)) => r.clone(),
        (None, None) => inc.state.to_string(),
    }
}

fn describe(v: &Verdict) -> String {
    match (&v.action, &v.policy) {
        (Some(a), Some(p)) => format!("{} {a} (policy {p}): {}", v.decision, v.why),
        _ => format!("{}: {}", v.decision, v.why),
    }
}

fn print_row(r: &Row) {
    let mark = if r.differs { "DIFFERS" } else { "same" };
    println!("{}  {}  {}  [{mark}]", r.incident, r.opened, r.diagnosis);
    println!("  happened:  {} → {}", describe(&r.happened), r.outcome);
    println!("  candidate: {}", describe(&r.candidate));
}
