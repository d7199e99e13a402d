//! Benchmark of the series scorer: points/s on one core (release), resident memory per active
//! series for N series, and the NAB scores; side by side with a windowed-Gaussian peer (NAB's
//! published baseline, 39.6 on the full corpus) measured in the same run.
//! `cargo run --release -p medic-eval --example series_bench -- ../shared/datasets/nab [SERIES]`

use medic_detect::series::{ScorerParams, SeriesScorer, score_series};
use medic_eval::nab;
use std::time::Instant;

fn rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// NAB's windowed Gaussian: tail probability of the value against the mean and sd of the
/// last 6400 points.
fn windowed_gaussian(values: &[f64]) -> Vec<f64> {
    let w = 6400usize;
    let (mut sum, mut sq) = (0.0, 0.0);
    let mut out = Vec::with_capacity(values.len());
    for (i, &x) in values.iter().enumerate() {
        let n = i.min(w) as f64;
        let s = if n >= 2.0 {
            let m = sum / n;
            let sd = (sq / n - m * m).max(0.0).sqrt();
            if sd > 0.0 {
                1.0 - 0.5 * medic_detect::series::scorer::erfc((x - m).abs() / sd / 2f64.sqrt())
            } else {
                0.0
            }
        } else {
            0.0
        };
        out.push(s);
        sum += x;
        sq += x * x;
        if i >= w {
            sum -= values[i - w];
            sq -= values[i - w] * values[i - w];
        }
    }
    out
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = args
        .next()
        .unwrap_or_else(|| "../shared/datasets/nab".into());
    let n_series: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(100_000);
    let corpus = match nab::load_corpus(std::path::Path::new(&dir)) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    };
    let p = ScorerParams::default();
    let rows: usize = corpus.files.iter().map(|f| f.values.len()).sum();
    let (mut ours, mut peer) = (Vec::new(), Vec::new());
    for _ in 0..7 {
        let t = Instant::now();
        for f in &corpus.files {
            std::hint::black_box(score_series(&p, &f.timestamps, &f.values));
        }
        ours.push(rows as f64 / t.elapsed().as_secs_f64());
        let t = Instant::now();
        for f in &corpus.files {
            std::hint::black_box(windowed_gaussian(&f.values));
        }
        peer.push(rows as f64 / t.elapsed().as_secs_f64());
    }
    let s_ours: Vec<Vec<f64>> = corpus
        .files
        .iter()
        .map(|f| score_series(&p, &f.timestamps, &f.values).0)
        .collect();
    let s_peer: Vec<Vec<f64>> = corpus
        .files
        .iter()
        .map(|f| windowed_gaussian(&f.values))
        .collect();
    let (Ok(r_ours), Ok(r_peer)) = (nab::score(&corpus, &s_ours), nab::score(&corpus, &s_peer))
    else {
        eprintln!("scoring failed");
        std::process::exit(1);
    };
    // Memory: N active series, each fed one day of 5-minute points (windows and seasonal
    // profile full).
    let before = rss_kb();
    let mut all: Vec<SeriesScorer> = (0..n_series)
        .map(|_| SeriesScorer::new(p.clone()))
        .collect();
    let f = &corpus.files[0];
    for (k, s) in all.iter_mut().enumerate() {
        for i in 0..300.min(f.values.len()) {
            let _ = s.push(f.timestamps[i], f.values[i] + (k % 7) as f64);
        }
    }
    let after = rss_kb();
    let per = (after.saturating_sub(before)) as f64 * 1024.0 / n_series as f64;
    let self_bytes = all.first().map_or(0, SeriesScorer::memory_bytes);
    println!("| measure | medic series scorer | windowed Gaussian (peer) |");
    println!("|---|---|---|");
    println!(
        "| points/s, one core, median of 7 runs over {rows} NAB rows | {:.0} | {:.0} |",
        median(ours.clone()),
        median(peer.clone())
    );
    for (name, a, b) in [
        ("standard", &r_ours, &r_peer),
        ("reward_low_FP_rate", &r_ours, &r_peer),
        ("reward_low_FN_rate", &r_ours, &r_peer),
    ] {
        println!(
            "| NAB {name} (these {} files) | {:.2} | {:.2} |",
            a.files,
            a.normalized(name).unwrap_or(f64::NAN),
            b.normalized(name).unwrap_or(f64::NAN)
        );
    }
    println!(
        "| resident memory per active series ({n_series} series, RSS delta) | {:.0} bytes ({:.0} MB total; {} bytes by own count) | — |",
        per,
        (after.saturating_sub(before)) as f64 / 1024.0,
        self_bytes
    );
    std::hint::black_box(&all);
}
