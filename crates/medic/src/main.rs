//! `medic`: the agent, the CLI and the demo, in one binary.

mod cmd;
mod demo;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use medic_core::{SystemClock, Ts};
use medic_store::Store;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Parser)]
#[command(
    name = "medic",
    version,
    about = "A self-healing agent for cloud estates"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start a local demo estate, run medic on it, inject faults, and report.
    Demo(demo::DemoArgs),
    /// Run the agent with a config file until interrupted.
    Run {
        /// Path to medic.yaml.
        #[arg(long, short)]
        config: PathBuf,
        /// Decide and audit everything, change nothing: each allowed action is checked with
        /// the actuator's dry run (server-side on Kubernetes) and recorded.
        #[arg(long)]
        dry_run: bool,
    },
    /// Print the least-privilege Kubernetes RBAC (Roles/ClusterRoles and bindings) that the
    /// config's sources and actions need.
    #[cfg(feature = "kubernetes")]
    Rbac(cmd::rbac::RbacArgs),
    /// Make bearer tokens for `server.auth.tokens` (the config keeps only their SHA-256).
    Token {
        #[command(subcommand)]
        command: cmd::token::TokenCommand,
    },
    /// Print the service graph: configured edges and those the sources learn (Kubernetes
    /// Services and EndpointSlices), each with where it comes from.
    Topology(cmd::topology::TopologyArgs),
    /// Every policy: its mode and the mode it acts at now (earned autonomy, never-auto
    /// classes), its limits, and its record per cause × action × target.
    Policies(cmd::policies::PoliciesArgs),
    /// Re-run recorded incidents through a candidate policy set: what it would have done
    /// beside what happened. Touches nothing.
    Replay(cmd::replay::ReplayArgs),
    /// Check config and policy files; every error with file:line:column. Exit 2 if invalid.
    Validate {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Inspect or check the hash-chained audit log.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// List incidents in a store.
    Incidents {
        #[arg(long)]
        store: PathBuf,
        /// Print as JSON lines.
        #[arg(long)]
        json: bool,
    },
    /// Approve the plan of an incident waiting for approval (recorded with who and why).
    Approve(AnswerArgs),
    /// Reject the plan of an incident waiting for approval.
    Reject(AnswerArgs),
    /// Incidents waiting for approval, with their proposed action.
    Approvals {
        #[arg(long)]
        store: PathBuf,
    },
    /// The kill switch: no action runs until `medic resume` (approved actions queue).
    /// Survives restarts.
    Pause(PauseArgs),
    /// Lift the kill switch.
    Resume(PauseArgs),
    /// Evaluate medic on public benchmarks (one subcommand per benchmark).
    Eval {
        #[command(subcommand)]
        command: EvalCommand,
    },
    /// Offline detection (`medic detect series FILE.csv --emit-csv OUT`).
    Detect {
        #[command(subcommand)]
        command: DetectCommand,
    },
    /// Offline analysis (`medic analyze logs FILE...`).
    Analyze {
        #[command(subcommand)]
        command: cmd::analyze_logs::AnalyzeCommand,
    },
    /// Run one demo service process (started by the demo estate's supervisor).
    #[command(hide = true)]
    DemoService(medic_demo::service::DemoServiceArgs),
    /// Run the demo estate: supervisor, services, load generator, fault injector.
    #[command(hide = true)]
    DemoEstate(medic_demo::estate::EstateArgs),
}

#[derive(Subcommand)]
enum EvalCommand {
    /// Template mining on Loghub: GA, PA and lines/s per system.
    Loghub(cmd::eval_loghub::EvalLoghubArgs),
    /// Metric anomaly detection on NAB: standard, reward-low-FP and reward-low-FN scores.
    Nab(cmd::eval_nab::EvalNabArgs),
    /// Root-cause ranking on PetShop: top-1, top-3 and false blame on normal windows.
    Petshop(cmd::eval_petshop::EvalPetshopArgs),
}

#[derive(Subcommand)]
enum DetectCommand {
    /// Score a `timestamp,value` CSV with the streaming series scorer.
    Series(cmd::detect_series::DetectSeriesArgs),
}

#[derive(clap::Args)]
struct AnswerArgs {
    incident: String,
    #[command(flatten)]
    who: PauseArgs,
}

/// The store, and who does what and why (recorded in the audit).
#[derive(clap::Args)]
struct PauseArgs {
    #[arg(long)]
    store: PathBuf,
    /// Why: recorded in the audit.
    #[arg(long)]
    reason: String,
    /// Who (default: $USER).
    #[arg(long)]
    by: Option<String>,
}

/// Who is at the CLI: `--by`, else the login name.
fn cli_user(by: Option<String>) -> String {
    by.or_else(|| std::env::var("USER").ok())
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| "cli".into())
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Check the chain: exit 0 when intact, 1 with the first broken record named otherwise.
    /// With `--public-key` and `--checkpoints`, also check the signed checkpoints, which catch
    /// a chain rewritten from the start and a cut tail.
    Verify {
        #[arg(long)]
        store: PathBuf,
        /// The `.pub` file `medic audit keygen` wrote (64 hex digits).
        #[arg(long, requires = "checkpoints")]
        public_key: Option<PathBuf>,
        /// The checkpoint file of `store.audit_signing.checkpoints`.
        #[arg(long, requires = "public_key")]
        checkpoints: Option<PathBuf>,
    },
    /// Print the records (one JSON object per line).
    Show {
        #[arg(long)]
        store: PathBuf,
        #[arg(long)]
        incident: Option<String>,
    },
    /// Export every record, in order, for archiving elsewhere.
    Export {
        #[arg(long)]
        store: PathBuf,
        #[arg(long, default_value = "jsonl", value_parser = ["jsonl"])]
        format: String,
    },
    /// Make an Ed25519 key for `store.audit_signing`: the private key at OUT (mode 0600, kept
    /// away from the store), the public key at OUT.pub for `audit verify --public-key`.
    Keygen {
        #[arg(long)]
        out: PathBuf,
    },
}

fn init_tracing(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("MEDIC_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

fn open_existing_store(path: &std::path::Path) -> Result<Store> {
    if !path.exists() {
        anyhow::bail!("store {} does not exist", path.display());
    }
    Store::open(path).with_context(|| format!("opening store {}", path.display()))
}

/// Loads a config with the process environment; None after printing every error.
fn load_config(path: &std::path::Path) -> Option<medic_config::Config> {
    let env = |k: &str| std::env::var(k).ok();
    match medic_config::load(path, &env) {
        Ok(c) => Some(c),
        Err(errs) => {
            for e in &errs {
                eprintln!("{e}");
            }
            eprintln!("{} error(s) in {}", errs.len(), path.display());
            None
        }
    }
}

#[tokio::main]
async fn main() {
    let code = match real_main().await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("medic: error: {e:#}");
            1
        }
    };
    std::process::exit(code);
}

async fn real_main() -> Result<i32> {
    let cli = Cli::parse();
    match cli.command {
        Command::Demo(args) => {
            // The sandbox's API server has a self-signed certificate: said once per client.
            init_tracing("warn,kube_client::client::tls=error");
            demo::run(args).await
        }
        Command::Run { config, dry_run } => {
            init_tracing("info");
            let Some(mut cfg) = load_config(&config) else {
                return Ok(2);
            };
            cfg.agent.dry_run |= dry_run;
            if cfg.agent.dry_run {
                eprintln!("medic: dry run: decisions are made and audited, nothing is changed");
            }
            let store = Arc::new(
                Store::open(&cfg.store.sqlite)
                    .with_context(|| format!("opening store {}", cfg.store.sqlite.display()))?,
            );
            let (scheme, over) = match cfg.server.tls {
                Some(_) => ("https", " over TLS"),
                None => ("http", ""),
            };
            let mut running = medic_agent::start_async(cfg, store, Arc::new(SystemClock)).await?;
            if let Some(addr) = running.server_addr {
                eprintln!("medic: server listening on {scheme}://{addr}");
            }
            if let Some(addr) = running.otlp_grpc_addr {
                eprintln!("medic: OTLP gRPC receiver listening on {addr}{over}");
            }
            let mut timeline = running.timeline.resubscribe();
            tokio::spawn(async move {
                while let Ok(ev) = timeline.recv().await {
                    eprintln!("{}", ev.line());
                }
            });
            tokio::select! {
                r = running.wait() => { r?; Ok(0) }
                _ = shutdown_signal() => {
                    running.stop().await?;
                    Ok(0)
                }
            }
        }
        #[cfg(feature = "kubernetes")]
        Command::Rbac(args) => {
            let Some(cfg) = load_config(&args.config) else {
                return Ok(2);
            };
            print!("{}", cmd::rbac::render(&cmd::rbac::plan(&cfg), &args));
            Ok(0)
        }
        Command::Token { command } => {
            cmd::token::run(command)?;
            Ok(0)
        }
        Command::Topology(args) => {
            init_tracing("warn,kube_client::client::tls=error");
            let Some(cfg) = load_config(&args.config) else {
                return Ok(2);
            };
            let (live, silent) = cmd::topology::learn(&cfg, args.learn).await?;
            let report = live.report();
            if args.json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                let services: Vec<&str> = live.graph().services().collect();
                print!("{}", cmd::topology::render(&report, &services, &silent));
            }
            Ok(if silent.is_empty() { 0 } else { 1 })
        }
        Command::Policies(args) => {
            let Some(cfg) = load_config(&args.config) else {
                return Ok(2);
            };
            cmd::policies::run(args, &cfg)
        }
        Command::Replay(args) => cmd::replay::run(args),
        Command::Validate { files } => {
            let env = |k: &str| std::env::var(k).ok();
            let errors = medic_config::validate_files(&files, &env);
            if errors.is_empty() {
                println!("{} file(s) valid", files.len());
                Ok(0)
            } else {
                for e in &errors {
                    println!("{e}");
                }
                println!("{} error(s)", errors.len());
                Ok(2)
            }
        }
        Command::Audit {
            command:
                AuditCommand::Verify {
                    store,
                    public_key,
                    checkpoints,
                },
        } => {
            let store = open_existing_store(&store)?;
            let report = store.verify_audit()?;
            if let Some((seq, why)) = report.broken {
                println!("audit chain BROKEN at record {seq}: {why}");
                return Ok(1);
            }
            println!("audit chain intact: {} records", report.records);
            let (Some(public_key), Some(checkpoints)) = (public_key, checkpoints) else {
                return Ok(0);
            };
            let public = medic_store::checkpoint::read_public_key(&public_key)?;
            let signed = store.verify_checkpoints(&public, &checkpoints)?;
            match signed.broken {
                None if signed.checked == 0 => {
                    println!(
                        "no signed checkpoints in {}: nothing vouches for the chain",
                        checkpoints.display()
                    );
                    Ok(1)
                }
                None => {
                    println!(
                        "signed checkpoints verified: {} (the last at record {})",
                        signed.checked, signed.last_seq
                    );
                    Ok(0)
                }
                Some(why) => {
                    println!("audit chain does not match its signed checkpoints: {why}");
                    Ok(1)
                }
            }
        }
        Command::Audit {
            command: AuditCommand::Export { store, format: _ },
        } => {
            let store = open_existing_store(&store)?;
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            for r in store.audit_records()? {
                serde_json::to_writer(&mut out, &r)?;
                std::io::Write::write_all(&mut out, b"\n")?;
            }
            std::io::Write::flush(&mut out)?;
            Ok(0)
        }
        Command::Audit {
            command: AuditCommand::Keygen { out },
        } => {
            let public = medic_store::checkpoint::SigningKey::generate(&out)?;
            println!(
                "private key: {} (keep it away from the store)",
                out.display()
            );
            println!(
                "public key:  {} ({public})",
                medic_store::checkpoint::public_path(&out).display()
            );
            Ok(0)
        }
        Command::Audit {
            command: AuditCommand::Show { store, incident },
        } => {
            let store = open_existing_store(&store)?;
            let records = match incident {
                Some(i) => store.audit_records_for(&i)?,
                None => store.audit_records()?,
            };
            for r in records {
                println!("{}", serde_json::to_string(&r)?);
            }
            Ok(0)
        }
        Command::Incidents { store, json } => {
            let store = open_existing_store(&store)?;
            for i in store.incidents()? {
                if json {
                    println!("{}", serde_json::to_string(&i)?);
                    continue;
                }
                let top = i
                    .diagnosis
                    .as_ref()
                    .and_then(|d| d.top())
                    .map(|h| format!("{}@{} ({:.2})", h.cause, h.target, h.confidence))
                    .unwrap_or_else(|| "-".into());
                println!(
                    "{}  {}  {:<10}  {}  {}",
                    i.id,
                    i.opened,
                    i.state,
                    top,
                    i.closing_reason.unwrap_or_default()
                );
            }
            Ok(0)
        }
        Command::Approve(a) => answer(a, true),
        Command::Reject(a) => answer(a, false),
        Command::Approvals { store } => {
            let store = open_existing_store(&store)?;
            let waiting: Vec<_> = store
                .incidents()?
                .into_iter()
                .filter(|i| i.state == medic_core::IncidentState::AwaitingApproval)
                .collect();
            if waiting.is_empty() {
                println!("no incident is waiting for approval");
            }
            for i in waiting {
                let plan = i
                    .plan
                    .as_ref()
                    .map(|p| {
                        format!(
                            "{} (policy {}, confidence {:.2})",
                            p.action, p.policy, p.confidence
                        )
                    })
                    .unwrap_or_else(|| "-".into());
                println!("{}  since {}  {}", i.id, i.updated, plan);
            }
            if let Some(p) = store.pause()? {
                println!(
                    "medic is PAUSED by {} since {}: {} (approved actions wait for `medic resume`)",
                    p.by, p.at, p.reason
                );
            }
            Ok(0)
        }
        Command::Pause(a) => {
            let store = open_existing_store(&a.store)?;
            let p = medic_core::Pause {
                by: cli_user(a.by),
                reason: a.reason,
                at: Ts::now(),
            };
            store.pause_actions(&p)?;
            println!(
                "medic paused by {}: no action runs until `medic resume`",
                p.by
            );
            Ok(0)
        }
        Command::Resume(a) => {
            let store = open_existing_store(&a.store)?;
            let by = cli_user(a.by);
            match store.resume_actions(&by, &a.reason, Ts::now())? {
                None => {
                    println!("medic was not paused");
                    Ok(1)
                }
                Some(was) => {
                    println!(
                        "medic resumed by {by} (paused by {} since {})",
                        was.by, was.at
                    );
                    Ok(0)
                }
            }
        }
        Command::Eval {
            command: EvalCommand::Loghub(args),
        } => cmd::eval_loghub::run(args),
        Command::Analyze { command } => cmd::analyze_logs::run(command),
        Command::Eval {
            command: EvalCommand::Nab(args),
        } => cmd::eval_nab::run(args),
        Command::Eval {
            command: EvalCommand::Petshop(args),
        } => cmd::eval_petshop::run(args),
        Command::Detect {
            command: DetectCommand::Series(args),
        } => cmd::detect_series::run(args),
        Command::DemoService(args) => {
            medic_demo::service::run(args).await?;
            Ok(0)
        }
        Command::DemoEstate(args) => {
            init_tracing("info");
            medic_demo::estate::run(args).await?;
            Ok(0)
        }
    }
}

/// Records a person's answer to an approval request, typed and audited with who and why.
fn answer(a: AnswerArgs, approved: bool) -> Result<i32> {
    let store = open_existing_store(&a.who.store)?;
    let word = if approved { "approved" } else { "rejected" };
    match store.incident(&a.incident)? {
        Some(i) if i.state == medic_core::IncidentState::AwaitingApproval => {
            let answer = medic_core::Approval {
                incident: a.incident.clone(),
                approved,
                by: cli_user(a.who.by),
                role: "cli".into(),
                reason: a.who.reason,
                at: Ts::now(),
            };
            if !store.answer_approval(&answer)? {
                println!(
                    "{} was already answered; the first answer stands",
                    a.incident
                );
                return Ok(1);
            }
            println!("{}: {word} by {} at {}", a.incident, answer.by, answer.at);
            if approved && let Some(p) = store.pause()? {
                println!(
                    "medic is paused (by {}): the action waits for `medic resume`",
                    p.by
                );
            }
            Ok(0)
        }
        Some(i) => {
            println!("{} is {}, not awaiting approval", a.incident, i.state);
            Ok(1)
        }
        None => {
            println!("no incident {} in this store", a.incident);
            Ok(1)
        }
    }
}

async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
