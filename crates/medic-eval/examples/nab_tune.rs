//! Development aid: score the default series scorer (with parameters overridden from
//! `NAB_<FIELD>` environment variables) on a NAB folder, with per-file detail.
//! `cargo run --release -p medic-eval --example nab_tune -- ../shared/datasets/nab`

use medic_detect::series::{ScorerParams, score_series};
use medic_eval::nab;

fn env_or<T: std::str::FromStr>(k: &str, d: T) -> T {
    std::env::var(k)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(d)
}

fn main() {
    let dir = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "../shared/datasets/nab".into());
    let d = ScorerParams::default();
    let p = ScorerParams {
        window: env_or("NAB_WINDOW", d.window),
        warmup: env_or("NAB_WARMUP", d.warmup),
        z_scale: env_or("NAB_Z_SCALE", d.z_scale),
        short_window: env_or("NAB_SHORT", d.short_window),
        medium_window: env_or("NAB_MEDIUM", d.medium_window),
        raw_log: env_or("NAB_RAWLOG", d.raw_log),
        long_alpha: env_or("NAB_LONG_ALPHA", d.long_alpha),
        alarm_level: env_or("NAB_ALARM", d.alarm_level),
        refractory: env_or("NAB_REFRACTORY", d.refractory),
        refractory_damping: env_or("NAB_DAMP", d.refractory_damping),
        season_bins: env_or("NAB_BINS", d.season_bins),
        season_min_gain: env_or("NAB_GAIN", d.season_min_gain),
    };
    let corpus = match nab::load_corpus(std::path::Path::new(&dir)) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    };
    let t = std::time::Instant::now();
    let scores: Vec<Vec<f64>> = corpus
        .files
        .iter()
        .map(|f| score_series(&p, &f.timestamps, &f.values).0)
        .collect();
    let el = t.elapsed();
    let r = match nab::score(&corpus, &scores) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    };
    if std::env::var("NAB_DETAIL").is_ok() {
        let std_p = &corpus.profiles[0];
        let thr = r.profiles[0].threshold;
        let mut wid = 0u32;
        for (f, s) in corpus.files.iter().zip(&scores) {
            let rows = nab::sweep::rows(s, &f.windows, wid);
            let at = nab::sweep::score_at(&rows, r.windows, std_p, thr);
            // first alarm position per window
            let mut firsts = Vec::new();
            for (k, &(a, b)) in f.windows.iter().enumerate() {
                let fa = (a..=b).find(|&i| s[i] >= thr);
                firsts.push(format!(
                    "w{k}[{a}..{b}]:{}",
                    fa.map_or("-".into(), |i| format!("{}", i as i64 - a as i64))
                ));
            }
            println!(
                "{:55} n={:6} win={} det={} fa={:3} score={:7.3}  {}",
                f.name,
                f.values.len(),
                f.windows.len(),
                at.windows_detected,
                at.false_alarms,
                at.score,
                firsts.join(" ")
            );
            wid += f.windows.len() as u32;
        }
    }
    for p in &r.profiles {
        let cats: Vec<String> = p
            .categories
            .iter()
            .map(|c| format!("{}={:.1}", c.category, c.normalized))
            .collect();
        println!(
            "{:20} {:6.2}  thr={:.5} det={}/{} fa={}  {}",
            p.profile,
            p.normalized,
            p.threshold,
            p.windows_detected,
            p.windows,
            p.false_alarms,
            cats.join(" ")
        );
    }
    println!("{} rows in {:?}", r.rows, el);
}
