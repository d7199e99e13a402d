//! `medic eval loghub DIR`: template-mining accuracy (GA, PA) and speed per Loghub system.

use anyhow::Result;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct EvalLoghubArgs {
    /// A folder laid out like loghub2k: one folder per system S with S_2k.log and
    /// S_2k.log_structured_corrected.csv.
    pub dir: PathBuf,
    /// Output: a table (default) or one JSON object.
    #[arg(long, default_value = "table", value_parser = ["table", "json"])]
    pub format: String,
}

pub fn run(args: EvalLoghubArgs) -> Result<i32> {
    let scores = medic_templates::loghub::evaluate_dir(&args.dir)?;
    let n = scores.len() as f64;
    let avg =
        |f: fn(&medic_templates::loghub::SystemScore) -> f64| scores.iter().map(f).sum::<f64>() / n;
    let (ga, pa, lps) = (avg(|s| s.ga), avg(|s| s.pa), avg(|s| s.lines_per_sec));
    if args.format == "json" {
        let v = serde_json::json!({
            "systems": scores,
            "average": { "ga": ga, "pa": pa, "lines_per_sec": lps },
        });
        println!("{v}");
        return Ok(0);
    }
    println!(
        "{:<12} {:>6} {:>7} {:>7} {:>10} {:>10} {:>13}",
        "system", "lines", "GA", "PA", "templates", "truth", "lines/s"
    );
    for s in &scores {
        println!(
            "{:<12} {:>6} {:>7.3} {:>7.3} {:>10} {:>10} {:>13.0}",
            s.system, s.lines, s.ga, s.pa, s.templates_found, s.templates_truth, s.lines_per_sec
        );
        if s.fallback_lines > 0 {
            println!(
                "{:<12} note: {} lines did not match the log format; their Content came from the CSV",
                "", s.fallback_lines
            );
        }
    }
    println!(
        "{:<12} {:>6} {:>7.3} {:>7.3} {:>10} {:>10} {:>13.0}",
        "average", "", ga, pa, "", "", lps
    );
    println!(
        "(one default miner configuration for every system; lines/s = mining of message bodies, one core)"
    );
    Ok(0)
}
