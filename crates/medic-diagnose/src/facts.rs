//! Facts: what an incident's findings, the graph and the change calendar say, per service,
//! in the shape the rules ask about.

use crate::DiagnosisContext;
use medic_core::{ChangeEvent, ChangeKind, Evidence, Finding, FindingKind, Incident, Ts};
use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, Default)]
pub struct ServiceFacts {
    pub kinds: BTreeSet<FindingKind>,
    pub findings: Vec<Finding>,
    /// Deploys within the lookback before the incident (newest last).
    pub recent_deploys: Vec<ChangeEvent>,
    /// Config changes within the lookback before the incident (newest last).
    pub recent_config_changes: Vec<ChangeEvent>,
    /// Planned events in progress (or about to start) during the incident.
    pub planned: Vec<ChangeEvent>,
    /// Lower-cased text of the log lines the service itself wrote (quoted as evidence), for
    /// rules that ask what its own errors name. Never medic's own words: summaries and event
    /// descriptions mention versions, configs and services for people, and once made every
    /// exit look like a configuration problem.
    text: String,
}

impl ServiceFacts {
    pub fn has(&self, k: FindingKind) -> bool {
        self.kinds.contains(&k)
    }
    pub fn has_any(&self, ks: &[FindingKind]) -> bool {
        ks.iter().any(|k| self.has(*k))
    }
    /// Whether any log line the service wrote mentions `needle` (case-insensitive).
    pub fn mentions(&self, needle: &str) -> bool {
        self.text.contains(&needle.to_ascii_lowercase())
    }
    /// Whether the text names `service`: in full, or for a Kubernetes `namespace/name` by
    /// its name alone, as callers in its namespace reach it (the Service's DNS name).
    pub fn names_service(&self, service: &str) -> bool {
        self.mentions(service)
            || service
                .split_once('/')
                .is_some_and(|(_, name)| !name.is_empty() && self.mentions(name))
    }
    /// Evidence of the findings of these kinds (deduplicated, bounded).
    pub fn evidence_of(&self, kinds: &[FindingKind]) -> Vec<Evidence> {
        let mut out: Vec<Evidence> = Vec::new();
        for f in self.findings.iter().filter(|f| kinds.contains(&f.kind)) {
            for e in &f.evidence {
                if !out.contains(e) && out.len() < 6 {
                    out.push(e.clone());
                }
            }
            if f.evidence.is_empty() {
                let e = Evidence::Note {
                    text: format!("{}: {}", f.service, f.summary),
                };
                if !out.contains(&e) && out.len() < 6 {
                    out.push(e);
                }
            }
        }
        out
    }
    /// A symptom of failing requests or a failing process.
    pub fn is_failing(&self) -> bool {
        self.has_any(&[
            FindingKind::ErrorRate,
            FindingKind::ErrorLogBurst,
            FindingKind::NewErrorMessage,
            FindingKind::ProcessExit,
            FindingKind::OomKilled,
            FindingKind::CrashLoop,
            FindingKind::TargetDown,
        ])
    }
    /// The service itself is not running or not answering.
    pub fn is_down(&self) -> bool {
        self.has_any(&[
            FindingKind::TargetDown,
            FindingKind::ProcessExit,
            FindingKind::CrashLoop,
        ])
    }
}

#[derive(Debug)]
pub struct Facts {
    pub services: BTreeMap<String, ServiceFacts>,
    /// When the first finding was made.
    pub started: Ts,
}

impl Facts {
    pub fn gather(incident: &Incident, cx: &DiagnosisContext) -> Facts {
        let started = incident.first_finding_at();
        let mut services: BTreeMap<String, ServiceFacts> = BTreeMap::new();
        for f in &incident.findings {
            let sf = services.entry(f.service.clone()).or_default();
            sf.kinds.insert(f.kind);
            for e in &f.evidence {
                if let Evidence::LogLine { line, .. } = e {
                    sf.text.push_str(&line.to_ascii_lowercase());
                    sf.text.push('\n');
                }
            }
            sf.findings.push(f.clone());
        }
        for c in cx.changes {
            let Some(sf) = services.get_mut(&c.service) else {
                continue;
            };
            if superseded(c, cx.changes) {
                continue;
            }
            // A change explains a service's failure if it came before that service's own
            // onset: its first strong finding. A weak one (a stale readiness-probe event, a
            // new log line) may predate the change and must not hide it.
            let onset = sf
                .findings
                .iter()
                .filter(|f| !f.kind.is_weak())
                .map(|f| f.ts)
                .min()
                .unwrap_or(started)
                .max(started);
            match c.kind {
                ChangeKind::Deploy if c.relevant_at(onset, cx.change_lookback_s) => {
                    sf.recent_deploys.push(c.clone())
                }
                ChangeKind::ConfigChange if c.relevant_at(onset, cx.change_lookback_s) => {
                    sf.recent_config_changes.push(c.clone())
                }
                // A planned event counts if it is under way at any point of the incident,
                // including one announced to start a little after the first symptom.
                ChangeKind::Planned
                    if c.relevant_at(started, 60.0) || c.relevant_at(cx.now, 60.0) =>
                {
                    sf.planned.push(c.clone())
                }
                _ => {}
            }
        }
        for sf in services.values_mut() {
            sf.recent_deploys.sort_by_key(|c| c.start);
            sf.recent_config_changes.sort_by_key(|c| c.start);
        }
        Facts { services, started }
    }

    pub fn get(&self, s: &str) -> Option<&ServiceFacts> {
        self.services.get(s)
    }

    /// The service with the most findings (ties: the first by name).
    pub fn most_affected(&self) -> Option<&str> {
        self.services
            .iter()
            .max_by(|a, b| {
                a.1.findings
                    .len()
                    .cmp(&b.1.findings.len())
                    .then(b.0.cmp(a.0))
            })
            .map(|(k, _)| k.as_str())
    }
}

/// A change `X → Y` no longer explains anything once a later change on the same service moved
/// it away from `Y` (a revert, a rollback, a newer deploy): what it introduced is gone.
fn superseded(c: &ChangeEvent, all: &[ChangeEvent]) -> bool {
    let Some(to) = c.to.as_deref() else {
        return false;
    };
    let versioned = |k: ChangeKind| {
        matches!(
            k,
            ChangeKind::Deploy | ChangeKind::ConfigChange | ChangeKind::Remediation
        )
    };
    versioned(c.kind)
        && all.iter().any(|later| {
            later.service == c.service
                && later.start > c.start
                && versioned(later.kind)
                && later.from.as_deref() == Some(to)
        })
}

/// Evidence for a change calendar entry.
pub fn change_evidence(c: &ChangeEvent) -> Evidence {
    let what = match (c.from.as_deref(), c.to.as_deref()) {
        (Some(f), Some(t)) => format!(" {f} → {t}"),
        (None, Some(t)) => format!(" → {t}"),
        _ => String::new(),
    };
    let by = c
        .author
        .as_deref()
        .map(|a| format!(" by {a}"))
        .unwrap_or_default();
    let kind = match c.kind {
        ChangeKind::Deploy => "deploy",
        ChangeKind::ConfigChange => "config change",
        ChangeKind::Planned => "planned event",
        ChangeKind::Remediation => "remediation",
    };
    let desc = if c.description.is_empty() {
        String::new()
    } else {
        format!(": {}", c.description)
    };
    Evidence::Change {
        ts: c.start,
        service: c.service.clone(),
        description: format!("{kind}{what}{by} at {}{desc}", c.start.clock_time()),
    }
}
