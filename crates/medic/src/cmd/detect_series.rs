//! `medic detect series FILE.csv --emit-csv OUT`: score one `timestamp,value` series with the
//! default streaming scorer; every input row comes out, in order, with its anomaly score.

use anyhow::{Context, Result};
use medic_detect::series::time::parse_timestamp_ms;
use medic_detect::series::{ScorerParams, SeriesScorer};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct DetectSeriesArgs {
    /// CSV with a header row, then `timestamp,value` rows (timestamps as
    /// `YYYY-MM-DD HH:MM:SS` or Unix seconds, in time order).
    pub file: PathBuf,
    /// Write `timestamp,value,anomaly_score` for every row here (`-` for stdout).
    #[arg(long)]
    pub emit_csv: Option<PathBuf>,
    /// Score at or above which a row counts as an alarm in the summary.
    #[arg(long, default_value_t = 0.35)]
    pub alarm: f64,
}

#[derive(Default)]
struct Counts {
    rows: u64,
    scored: u64,
    bad_row: u64,
    bad_timestamp: u64,
    bad_value: u64,
    alarms: Vec<(String, f64)>,
}

pub fn run(args: DetectSeriesArgs) -> Result<i32> {
    let input = std::fs::File::open(&args.file)
        .with_context(|| format!("opening {}", args.file.display()))?;
    let mut out: Option<Box<dyn Write>> = match &args.emit_csv {
        None => None,
        Some(p) if p.as_os_str() == "-" => Some(Box::new(BufWriter::new(std::io::stdout()))),
        Some(p) => Some(Box::new(BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?,
        ))),
    };
    if let Some(w) = &mut out {
        writeln!(w, "timestamp,value,anomaly_score")?;
    }
    let mut scorer = SeriesScorer::new(ScorerParams::default());
    let mut c = Counts::default();
    let mut lines = BufReader::new(input).lines();
    // The header row.
    lines
        .next()
        .transpose()
        .with_context(|| format!("reading {}", args.file.display()))?;
    let started = std::time::Instant::now();
    for line in lines {
        let line = line.with_context(|| format!("reading {}", args.file.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        c.rows += 1;
        let (ts_s, v_s, has_comma) = match line.split_once(',') {
            Some((t, v)) => (t.trim(), v.trim(), true),
            None => (line.trim(), "", false),
        };
        let score = match (parse_timestamp_ms(ts_s), v_s.parse::<f64>()) {
            _ if !has_comma => {
                c.bad_row += 1;
                0.0
            }
            (Some(t), Ok(v)) => match scorer.push(t, v) {
                Ok(s) => {
                    c.scored += 1;
                    if s.score >= args.alarm && c.alarms.len() < 20 {
                        c.alarms.push((ts_s.to_string(), s.score));
                    }
                    s.score
                }
                // Counted by the scorer, by reason.
                Err(_) => 0.0,
            },
            (None, _) => {
                c.bad_timestamp += 1;
                0.0
            }
            (_, Err(_)) => {
                c.bad_value += 1;
                0.0
            }
        };
        if let Some(w) = &mut out {
            writeln!(w, "{ts_s},{v_s},{score:.6}")?;
        }
    }
    if let Some(w) = &mut out {
        w.flush()?;
    }
    let el = started.elapsed().as_secs_f64();
    let d = scorer.drops();
    eprintln!(
        "{}: {} rows, {} scored in {:.3}s; scored 0 and counted: {} non-finite, {} out of order, {} duplicate timestamp, {} bad timestamp, {} bad value, {} without a comma",
        args.file.display(),
        c.rows,
        c.scored,
        el,
        d.non_finite,
        d.out_of_order,
        d.duplicate,
        c.bad_timestamp,
        c.bad_value,
        c.bad_row
    );
    for (t, s) in &c.alarms {
        eprintln!("alarm {t} score {s:.3}");
    }
    Ok(0)
}
