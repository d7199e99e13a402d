//! Developer aid: per-system GA/PA on a loghub2k folder, and with `--misses S` the true groups
//! the miner got wrong for system S (to study failure kinds, not to tune to the files).

use medic_templates::loghub::{LogFormat, evaluate_system, known_format, parse_csv};
use medic_templates::{MinerConfig, TemplateMiner};
use std::collections::HashMap;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let dir = std::path::PathBuf::from(
        args.get(1)
            .map_or("/work/shared/datasets/loghub2k", String::as_str),
    );
    if let Some(sys) = args
        .iter()
        .position(|a| a == "--misses")
        .and_then(|i| args.get(i + 1))
    {
        misses(&dir, sys);
        return;
    }
    let mut cfg = MinerConfig::default();
    if let Some(v) = std::env::var("SIM").ok().and_then(|v| v.parse().ok()) {
        cfg.similarity = v;
    }
    if let Some(v) = std::env::var("KEYS").ok().and_then(|v| v.parse().ok()) {
        cfg.key_tokens = v;
    }
    let systems = [
        "Apache",
        "BGL",
        "HDFS",
        "Hadoop",
        "OpenSSH",
        "Spark",
        "Thunderbird",
        "Zookeeper",
    ];
    let res: Result<Vec<_>, _> = systems
        .iter()
        .map(|s| {
            evaluate_system(
                s,
                &dir.join(s).join(format!("{s}_2k.log")),
                &dir.join(s)
                    .join(format!("{s}_2k.log_structured_corrected.csv")),
                &cfg,
            )
        })
        .collect();
    match res {
        Ok(scores) => {
            let n = scores.len() as f64;
            for s in &scores {
                println!(
                    "{:<12} GA {:.3} PA {:.3} templates {:>4}/{:<4} fallback {} {:>10.0} lines/s",
                    s.system,
                    s.ga,
                    s.pa,
                    s.templates_found,
                    s.templates_truth,
                    s.fallback_lines,
                    s.lines_per_sec
                );
            }
            println!(
                "average      GA {:.3} PA {:.3}",
                scores.iter().map(|s| s.ga).sum::<f64>() / n,
                scores.iter().map(|s| s.pa).sum::<f64>() / n
            );
        }
        Err(e) => eprintln!("error: {e}"),
    }
}

fn misses(dir: &std::path::Path, sys: &str) {
    let log =
        std::fs::read_to_string(dir.join(sys).join(format!("{sys}_2k.log"))).unwrap_or_default();
    let csv = std::fs::read_to_string(
        dir.join(sys)
            .join(format!("{sys}_2k.log_structured_corrected.csv")),
    )
    .unwrap_or_default();
    let rows = parse_csv(&csv).unwrap_or_default();
    let h = &rows[0];
    let col = |n: &str| h.iter().position(|x| x == n).unwrap_or(0);
    let (ce, ct) = (col("EventId"), col("EventTemplate"));
    let f = LogFormat::parse(known_format(sys).unwrap_or("<Content>")).ok();
    let mut cfg = MinerConfig::default();
    if let Some(v) = std::env::var("SIM").ok().and_then(|v| v.parse().ok()) {
        cfg.similarity = v;
    }
    if let Some(v) = std::env::var("KEYS").ok().and_then(|v| v.parse().ok()) {
        cfg.key_tokens = v;
    }
    let mut m = TemplateMiner::new(cfg);
    let mut ids = Vec::new();
    let mut contents = Vec::new();
    for (i, l) in log.lines().enumerate().take(rows.len() - 1) {
        let c = f
            .as_ref()
            .and_then(|f| f.content(l))
            .unwrap_or(l)
            .to_string();
        ids.push(m.mine_id(&c));
        contents.push(c);
        let _ = i;
    }
    let mut by_truth: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, r) in rows[1..].iter().enumerate().take(ids.len()) {
        by_truth.entry(r[ce].as_str()).or_default().push(i);
    }
    let mut pred_size: HashMap<_, usize> = HashMap::new();
    for id in &ids {
        *pred_size.entry(*id).or_default() += 1;
    }
    let mut keys: Vec<_> = by_truth.keys().copied().collect();
    keys.sort();
    for k in keys {
        let lines = &by_truth[k];
        let first = ids[lines[0]];
        let ok = lines.iter().all(|&i| ids[i] == first) && pred_size[&first] == lines.len();
        let tt = &rows[lines[0] + 1][ct];
        let pt = m.template(first).unwrap_or_default();
        if !ok {
            let mut preds: Vec<_> = lines.iter().map(|&i| ids[i]).collect();
            preds.sort();
            preds.dedup();
            println!(
                "GA MISS {k} ({} lines, {} predicted groups, pred size {}): {tt}",
                lines.len(),
                preds.len(),
                pred_size[&first]
            );
            for p in preds.iter().take(4) {
                println!("    pred {}: {}", p, m.template(*p).unwrap_or_default());
            }
            println!("    eg: {}", contents[lines[0]]);
        } else if pt != *tt {
            println!(
                "PA MISS {k} ({} lines): truth {tt}\n             mine  {pt}",
                lines.len()
            );
        }
    }
}
