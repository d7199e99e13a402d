//! `medic policies --config FILE [--store DB] [--json]`: every policy with its mode, the
//! mode it acts at now and why (earned autonomy, never-auto classes), its limits, and its
//! record per cause × action × target from the store.

use anyhow::{Context, Result};
use clap::Args;
use medic_policy::report::{PolicyReport, policy_reports};
use std::path::PathBuf;

#[derive(Args)]
pub struct PoliciesArgs {
    /// Path to medic.yaml (its policies and policy files are read).
    #[arg(long, short)]
    pub config: PathBuf,
    /// The store to read records from (default: the config's `store.sqlite`, when it exists).
    #[arg(long)]
    pub store: Option<PathBuf>,
    /// Print as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: PoliciesArgs, cfg: &medic_config::Config) -> Result<i32> {
    let store_path = args.store.unwrap_or_else(|| cfg.store.sqlite.clone());
    let incidents = if store_path.exists() {
        medic_store::Store::open(&store_path)
            .with_context(|| format!("opening store {}", store_path.display()))?
            .incidents()?
    } else {
        Vec::new()
    };
    let reports = policy_reports(&cfg.policies, &incidents);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&reports)?);
        return Ok(0);
    }
    if reports.is_empty() {
        println!("no policies: medic will diagnose and escalate, never act");
    }
    for r in &reports {
        print_report(r);
    }
    Ok(0)
}

fn print_report(r: &PolicyReport) {
    println!(
        "{}  ({}, {})",
        r.name,
        r.source,
        r.api_version.as_deref().unwrap_or("list form")
    );
    let services = if r.services.is_empty() {
        "every service".to_string()
    } else {
        r.services.join(", ")
    };
    println!(
        "  {} → {} ({} action) on {services}",
        r.causes.join(" | "),
        r.action,
        r.action_class
    );
    println!("  mode {} (now {}: {})", r.mode, r.mode_now, r.mode_reason);
    if let Some(n) = &r.never_auto {
        println!("  never-auto: {n}");
    }
    println!(
        "  confidence ≥ {:.2}, {} attempt(s) per incident, cooldown {}s",
        r.confidence_threshold, r.max_attempts, r.cooldown_s
    );
    if let Some(a) = &r.approval {
        println!(
            "  approval by {}, timeout {}s, then {}",
            a.approvers.as_deref().unwrap_or("any approver"),
            a.timeout_s,
            a.on_timeout.as_str()
        );
    }
    let g = &r.guardrails;
    for w in &g.blocked_windows {
        println!("  blocked {w}");
    }
    if let Some(n) = g.max_executions_per_hour {
        println!("  at most {n} executions per hour");
    }
    if let Some(n) = g.max_targets_per_hour {
        println!("  at most {n} targets per hour");
    }
    println!(
        "  record: {} executed, {} healed, {} not healed",
        r.executions, r.healed, r.not_healed
    );
    for row in &r.records {
        println!(
            "    {} × {} × {}: {} healed, {} not, streak {} → {} ({})",
            row.cause,
            row.action,
            row.target,
            row.record.healed,
            row.record.not_healed,
            row.record.streak,
            row.mode,
            row.why
        );
    }
}
