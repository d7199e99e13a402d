//! `medic eval nab DIR [--json]`: the default series scorer over a folder in NAB's layout,
//! scored with NAB's rules (windows, scaled sigmoid, profiles, corpus-wide threshold sweep,
//! normalised 0–100).

use anyhow::{Context, Result};
use medic_detect::series::{ScorerParams, score_series};
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct EvalNabArgs {
    /// A folder laid out like NAB: data/<category>/*.csv, labels/combined_windows.json,
    /// profiles.json.
    pub dir: PathBuf,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: EvalNabArgs) -> Result<i32> {
    let params = ScorerParams::default();
    let started = std::time::Instant::now();
    let mut detect_secs = 0.0;
    let report = medic_eval::nab::evaluate(&args.dir, |f| {
        let t = std::time::Instant::now();
        let s = score_series(&params, &f.timestamps, &f.values).0;
        detect_secs += t.elapsed().as_secs_f64();
        s
    })
    .with_context(|| format!("evaluating NAB folder {}", args.dir.display()))?;
    let total_secs = started.elapsed().as_secs_f64();
    if args.json {
        let mut v = serde_json::to_value(&report)?;
        if let Some(o) = v.as_object_mut() {
            o.insert("detect_seconds".into(), detect_secs.into());
            o.insert("total_seconds".into(), total_secs.into());
        }
        println!("{v}");
        return Ok(0);
    }
    println!(
        "NAB: {} files, {} rows, {} windows; detector: medic series scorer (defaults, no per-file tuning)",
        report.files, report.rows, report.windows
    );
    println!(
        "{:<20} {:>7} {:>10} {:>9} {:>7}  per category",
        "profile", "score", "threshold", "detected", "false+"
    );
    for p in &report.profiles {
        let cats: Vec<String> = p
            .categories
            .iter()
            .map(|c| format!("{} {:.1}", c.category, c.normalized))
            .collect();
        println!(
            "{:<20} {:>7.2} {:>10.5} {:>5}/{:<3} {:>7}  {}",
            p.profile,
            p.normalized,
            p.threshold,
            p.windows_detected,
            p.windows,
            p.false_alarms,
            cats.join(", ")
        );
    }
    println!(
        "detector {:.3}s ({:.0} points/s), total {:.3}s",
        detect_secs,
        report.rows as f64 / detect_secs.max(1e-9),
        total_secs
    );
    Ok(0)
}
