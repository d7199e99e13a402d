//! `medic demo`: starts the demo estate as a child process, runs the agent on it with the
//! embedded demo config, injects a schedule of faults one at a time, prints a live timeline,
//! then a summary (table or JSON). The agent learns only from the estate's files and
//! endpoints; this orchestrator knows the schedule only to score the result.
//! `--kubernetes` runs the same services and faults on the sandbox cluster instead
//! ([`kubernetes`]).

#[cfg(feature = "kubernetes")]
mod kubernetes;

use anyhow::{Context, Result, bail};
use medic_core::{ActionKind, ExecutionStatus, Incident, IncidentState, Outcome, SystemClock, Ts};
use medic_store::Store;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::process::{Child, Command};

/// The config the demo runs with, kept in `examples/` so users can read and copy it.
const DEMO_CONFIG: &str = include_str!("../../../../examples/demo/medic.yaml");

pub const ALL_FAULTS: [&str; 7] = [
    "memory_leak",
    "bad_config",
    "bad_deployment",
    "dependency_down",
    "latency",
    "load_surge",
    "planned_campaign",
];

#[derive(clap::Args, Debug)]
pub struct DemoArgs {
    /// Faults to inject, in order (default: every kind, one at a time).
    #[arg(long, value_delimiter = ',')]
    pub faults: Vec<String>,
    /// Seed for the estate's traffic and noise.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// SQLite file to use (default: a fresh file in the run directory, printed at start).
    #[arg(long)]
    pub store: Option<PathBuf>,
    /// `table` (default) or `json` (one JSON object on stdout; progress on stderr).
    #[arg(long, default_value = "table")]
    pub report: String,
    /// Seconds of normal traffic before the first fault, for baselines to be learned.
    #[arg(long, default_value_t = 20.0)]
    pub warmup: f64,
    /// Give up on a fault this many seconds after injecting it.
    #[arg(long, default_value_t = 90.0)]
    pub fault_timeout: f64,
    /// Where to put the estate (default: a new directory under the system temp dir).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Run the services as Deployments on the sandbox Kubernetes cluster
    /// (`scripts/k8s-sandbox build` first); medic watches and heals only through the API.
    #[arg(long)]
    pub kubernetes: bool,
}

#[derive(Serialize, Debug)]
pub struct Report {
    pub incidents: Vec<FaultRow>,
    pub unmatched_actions: Vec<UnmatchedAction>,
    pub audit_verified: bool,
    pub audit_records: u64,
    pub store: String,
}

#[derive(Serialize, Debug)]
pub struct FaultRow {
    pub fault: String,
    pub service: String,
    pub incident: Option<String>,
    /// Incidents opened while this fault was active (1 is right).
    pub incident_count: usize,
    pub cause: Option<String>,
    pub target: Option<String>,
    pub confidence: Option<f64>,
    pub action: Option<String>,
    pub detect_s: Option<f64>,
    pub recover_s: Option<f64>,
    pub outcome: String,
}

#[derive(Serialize, Debug)]
pub struct UnmatchedAction {
    pub incident: String,
    pub action: String,
    pub target: String,
    pub during_fault: Option<String>,
}

struct Injected {
    kind: String,
    service: String,
    at: Ts,
}

pub async fn run(args: DemoArgs) -> Result<i32> {
    let faults: Vec<String> = if args.faults.is_empty() {
        ALL_FAULTS.iter().map(|s| s.to_string()).collect()
    } else {
        args.faults.clone()
    };
    for f in &faults {
        if !ALL_FAULTS.contains(&f.as_str()) {
            bail!(
                "unknown fault `{f}`: expected one of {}",
                ALL_FAULTS.join(", ")
            );
        }
    }
    let json = match args.report.as_str() {
        "json" => true,
        "table" => false,
        other => bail!("unknown report format `{other}`: expected `table` or `json`"),
    };
    let run_dir = match &args.dir {
        Some(d) => d.clone(),
        None => {
            std::env::temp_dir().join(format!("medic-demo-{}-{}", std::process::id(), Ts::now().0))
        }
    };
    std::fs::create_dir_all(&run_dir).with_context(|| format!("creating {}", run_dir.display()))?;
    let run_dir = std::fs::canonicalize(&run_dir)?;
    let store_path = args
        .store
        .clone()
        .unwrap_or_else(|| run_dir.join("medic.db"));
    let outcome = if args.kubernetes {
        eprintln!("medic demo: run directory {}", run_dir.display());
        eprintln!("medic demo: store (SQLite) at {}", store_path.display());
        let driven = kubernetes_demo(&args, &faults, &run_dir, &store_path);
        tokio::select! {
            r = driven => r,
            _ = tokio::signal::ctrl_c() => {
                // Dropping the future drops the sandbox, which stops every process it started.
                eprintln!("\nmedic demo: interrupted, stopping the sandbox");
                return Ok(130);
            }
        }
    } else {
        let estate_dir = run_dir.join("estate");
        eprintln!("medic demo: estate in {}", estate_dir.display());
        eprintln!("medic demo: store (SQLite) at {}", store_path.display());
        let mut estate = spawn_estate(&run_dir, &estate_dir, args.seed)?;
        let outcome = tokio::select! {
            r = drive(&args, &faults, &estate_dir, &store_path) => r,
            _ = tokio::signal::ctrl_c() => {
                eprintln!("\nmedic demo: interrupted, stopping the estate");
                stop_estate(&mut estate).await;
                return Ok(130);
            }
        };
        stop_estate(&mut estate).await;
        outcome
    };
    let report = outcome?;
    if json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print_table(&report);
    }
    let all_healed = report.incidents.iter().all(|r| r.outcome == "healed");
    Ok(if report.audit_verified && all_healed {
        0
    } else {
        1
    })
}

#[cfg(feature = "kubernetes")]
async fn kubernetes_demo(
    args: &DemoArgs,
    faults: &[String],
    run_dir: &Path,
    store_path: &Path,
) -> Result<Report> {
    kubernetes::run(args, faults, run_dir, store_path).await
}

#[cfg(not(feature = "kubernetes"))]
async fn kubernetes_demo(_: &DemoArgs, _: &[String], _: &Path, _: &Path) -> Result<Report> {
    bail!("this medic was built without the `kubernetes` feature")
}

/// An embedded config, with `vars` (then the environment) for its `${...}`.
fn load_config(
    text: &str,
    name: &str,
    base: &Path,
    vars: &BTreeMap<&str, String>,
) -> Result<medic_config::Config> {
    let lookup = |k: &str| vars.get(k).cloned().or_else(|| std::env::var(k).ok());
    medic_config::load_str(text, name, base, &lookup).map_err(|errs| {
        anyhow::anyhow!(
            "the embedded config {name} is invalid:\n{}",
            errs.iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("\n")
        )
    })
}

/// The agent, its store, and the task printing its timeline to stderr.
struct Agent {
    running: medic_agent::Running,
    store: Arc<Store>,
    printer: tokio::task::JoinHandle<()>,
}

impl Agent {
    async fn start(cfg: medic_config::Config, store_path: &Path) -> Result<Agent> {
        let store = Arc::new(Store::open(store_path)?);
        let running = medic_agent::start(cfg, store.clone(), Arc::new(SystemClock)).await?;
        let mut timeline = running.timeline.resubscribe();
        let printer = tokio::spawn(async move {
            while let Ok(ev) = timeline.recv().await {
                eprintln!("{}", ev.line());
            }
        });
        Ok(Agent {
            running,
            store,
            printer,
        })
    }

    async fn stop(self) -> Result<Arc<Store>> {
        self.running.stop().await?;
        self.printer.abort();
        Ok(self.store)
    }
}

fn spawn_estate(run_dir: &Path, estate_dir: &Path, seed: u64) -> Result<Child> {
    let exe = std::env::current_exe().context("locating the medic binary")?;
    let log = std::fs::File::create(run_dir.join("estate.log"))?;
    let child = Command::new(exe)
        .arg("demo-estate")
        .arg("--dir")
        .arg(estate_dir)
        .arg("--seed")
        .arg(seed.to_string())
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .context("starting the demo estate")?;
    Ok(child)
}

async fn stop_estate(child: &mut Child) {
    if let Some(pid) = child.id() {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
    }
    if tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .is_err()
    {
        let _ = child.kill().await;
    }
}

async fn wait_for_file(path: &Path, timeout: Duration) -> Result<String> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Ok(s) = std::fs::read_to_string(path)
            && !s.trim().is_empty()
        {
            return Ok(s.trim().to_string());
        }
        if tokio::time::Instant::now() > deadline {
            bail!(
                "the demo estate did not write {} within {timeout:?} (see estate.log beside it)",
                path.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn drive(
    args: &DemoArgs,
    faults: &[String],
    estate_dir: &Path,
    store_path: &Path,
) -> Result<Report> {
    let addr = wait_for_file(&estate_dir.join("supervisor.addr"), Duration::from_secs(60)).await?;
    let base = format!("http://{addr}");
    eprintln!("medic demo: estate up, supervisor at {base}");

    let vars = BTreeMap::from([
        ("ESTATE_DIR", estate_dir.display().to_string()),
        ("SUPERVISOR_URL", base.clone()),
        ("MEDIC_STORE", store_path.display().to_string()),
    ]);
    let cfg = load_config(DEMO_CONFIG, "examples/demo/medic.yaml", estate_dir, &vars)?;
    let agent = Agent::start(cfg, store_path).await?;

    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()?;
    eprintln!("medic demo: learning baselines for {:.0}s", args.warmup);
    tokio::time::sleep(Duration::from_secs_f64(args.warmup)).await;

    let mut injected: Vec<Injected> = Vec::new();
    for kind in faults {
        let resp: serde_json::Value = http
            .post(format!("{base}/demo/faults"))
            .json(&serde_json::json!({ "kind": kind }))
            .send()
            .await?
            .error_for_status()
            .with_context(|| format!("injecting {kind}"))?
            .json()
            .await?;
        let service = resp["service"].as_str().unwrap_or_default().to_string();
        let at = Ts(resp["injected_at"].as_i64().unwrap_or_else(|| Ts::now().0));
        eprintln!(
            "\n{}  ==== injected {kind} into {service} ====",
            at.clock_time()
        );
        injected.push(Injected {
            kind: kind.clone(),
            service: service.clone(),
            at,
        });
        wait_for_settled(&agent.store, at, args.fault_timeout).await?;
        let _ = http
            .post(format!("{base}/demo/clear"))
            .json(&serde_json::json!({ "kind": kind, "service": service }))
            .send()
            .await;
        if kind == "load_surge" || kind == "planned_campaign" {
            // Let traffic fall back before the next fault so its baseline is normal again.
            tokio::time::sleep(Duration::from_secs(4)).await;
        }
    }
    // Stray incidents opened by the last fault's aftermath show up here too.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let store = agent.stop().await?;
    build_report(&store, &injected, store_path)
}

/// Waits until every incident opened since the fault is in a terminal state and a short
/// quiet period has passed with no new incident, or the timeout.
async fn wait_for_settled(store: &Store, since: Ts, timeout_s: f64) -> Result<()> {
    let deadline = since.plus_secs(timeout_s);
    let mut settled_at: Option<Ts> = None;
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = Ts::now();
        if now > deadline {
            eprintln!("medic demo: fault not settled after {timeout_s:.0}s, moving on");
            return Ok(());
        }
        let incidents: Vec<Incident> = store
            .incidents()?
            .into_iter()
            .filter(|i| i.opened.0 >= since.0 - 2000)
            .collect();
        let done = !incidents.is_empty() && incidents.iter().all(|i| i.state.is_terminal());
        match (done, settled_at) {
            (true, None) => settled_at = Some(now),
            (true, Some(t)) if now.secs_since(t) >= 3.0 => return Ok(()),
            (false, _) => settled_at = None,
            _ => {}
        }
    }
}

fn outcome_word(i: &Incident) -> String {
    match (&i.outcome, i.state) {
        (Some(Outcome::Healed { .. }), IncidentState::Resolved) => "healed".into(),
        (_, IncidentState::Escalated) => "escalated".into(),
        (Some(Outcome::NotHealed { .. }), _) => "not_healed".into(),
        (_, s) => s.to_string(),
    }
}

pub fn build_report_from(
    incidents: &[Incident],
    injected: &[(String, String, Ts)],
) -> (Vec<FaultRow>, Vec<UnmatchedAction>) {
    let mut rows = Vec::new();
    let mut unmatched = Vec::new();
    let window_of = |idx: usize| {
        let start = injected[idx].2.0 - 2000;
        let end = injected.get(idx + 1).map_or(i64::MAX, |n| n.2.0 - 2000);
        (start, end)
    };
    for (idx, (kind, service, at)) in injected.iter().enumerate() {
        let (start, end) = window_of(idx);
        let mine: Vec<&Incident> = incidents
            .iter()
            .filter(|i| i.opened.0 >= start && i.opened.0 < end)
            .collect();
        let primary = mine.first().copied();
        let top = primary
            .and_then(|i| i.diagnosis.as_ref())
            .and_then(|d| d.top());
        let action = primary.and_then(|i| {
            i.executions
                .iter()
                .rev()
                .find(|e| e.status == ExecutionStatus::Succeeded)
                .map(|e| e.action.kind.as_str().to_string())
        });
        let recover_s = primary.and_then(|i| match &i.outcome {
            Some(Outcome::Healed { healthy_since, .. }) => {
                Some(round1(healthy_since.secs_since(*at)))
            }
            _ => None,
        });
        rows.push(FaultRow {
            fault: kind.clone(),
            service: service.clone(),
            incident: primary.map(|i| i.id.clone()),
            incident_count: mine.len(),
            cause: top.map(|h| h.cause.to_string()),
            target: top.map(|h| h.target.clone()),
            confidence: top.map(|h| h.confidence),
            action,
            detect_s: primary.map(|i| round1(i.detected_at().secs_since(*at))),
            recover_s,
            outcome: primary.map_or("not_detected".into(), outcome_word),
        });
        for i in &mine {
            for e in &i.executions {
                if e.action.kind != ActionKind::NoAction && e.action.target != *service {
                    unmatched.push(UnmatchedAction {
                        incident: i.id.clone(),
                        action: e.action.to_string(),
                        target: e.action.target.clone(),
                        during_fault: Some(kind.clone()),
                    });
                }
            }
        }
    }
    // Actions of incidents that no fault explains (opened before the first injection).
    let first = injected.first().map_or(i64::MAX, |f| f.2.0 - 2000);
    for i in incidents.iter().filter(|i| i.opened.0 < first) {
        for e in i
            .executions
            .iter()
            .filter(|e| e.action.kind != ActionKind::NoAction)
        {
            unmatched.push(UnmatchedAction {
                incident: i.id.clone(),
                action: e.action.to_string(),
                target: e.action.target.clone(),
                during_fault: None,
            });
        }
    }
    (rows, unmatched)
}

fn build_report(store: &Store, injected: &[Injected], store_path: &Path) -> Result<Report> {
    let incidents = store.incidents()?;
    let inj: Vec<(String, String, Ts)> = injected
        .iter()
        .map(|i| (i.kind.clone(), i.service.clone(), i.at))
        .collect();
    let (rows, unmatched) = build_report_from(&incidents, &inj);
    let audit = store.verify_audit()?;
    Ok(Report {
        incidents: rows,
        unmatched_actions: unmatched,
        audit_verified: audit.broken.is_none(),
        audit_records: audit.records,
        store: store_path.display().to_string(),
    })
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

fn print_table(r: &Report) {
    println!();
    println!(
        "{:<17} {:<9} {:<13} {:<27} {:>5} {:<17} {:>8} {:>9}  outcome",
        "fault", "service", "incident", "top hypothesis", "conf", "action", "detect_s", "recover_s"
    );
    let dash = |o: Option<f64>| o.map_or("-".to_string(), |v| format!("{v:.1}"));
    for row in &r.incidents {
        let hyp = match (&row.cause, &row.target) {
            (Some(c), Some(t)) => format!("{c}@{t}"),
            _ => "-".into(),
        };
        let count = if row.incident_count > 1 {
            format!(" (+{} more)", row.incident_count - 1)
        } else {
            String::new()
        };
        println!(
            "{:<17} {:<9} {:<13} {:<27} {:>5} {:<17} {:>8} {:>9}  {}{}",
            row.fault,
            row.service,
            row.incident.as_deref().unwrap_or("-"),
            hyp,
            row.confidence.map_or("-".into(), |c| format!("{c:.2}")),
            row.action.as_deref().unwrap_or("-"),
            dash(row.detect_s),
            dash(row.recover_s),
            row.outcome,
            count
        );
    }
    println!();
    if r.unmatched_actions.is_empty() {
        println!("no action touched a healthy service");
    } else {
        for u in &r.unmatched_actions {
            println!(
                "UNMATCHED ACTION: {} in {} (during {:?})",
                u.action, u.incident, u.during_fault
            );
        }
    }
    println!(
        "audit log: {} records, chain {}  (check it yourself: medic audit verify --store {})",
        r.audit_records,
        if r.audit_verified { "intact" } else { "BROKEN" },
        r.store
    );
}
