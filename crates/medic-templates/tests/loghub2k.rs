//! Accuracy targets on the public loghub2k sample (skipped with a note when it is absent).

use medic_templates::loghub::evaluate_dir;
use std::path::Path;

#[test]
fn loghub2k_targets_with_the_default_configuration() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/datasets/loghub2k");
    if !dir.is_dir() {
        println!("skipped: {} not found", dir.display());
        return;
    }
    let scores = evaluate_dir(&dir).expect("evaluate loghub2k");
    // Drain's published GA per system (tuned per system); medic uses one configuration.
    let drain = [
        ("HDFS", 0.998),
        ("Hadoop", 0.948),
        ("Spark", 0.920),
        ("Zookeeper", 0.967),
        ("BGL", 0.963),
        ("Apache", 1.0),
        ("OpenSSH", 0.788),
        ("Thunderbird", 0.955),
    ];
    for s in &scores {
        println!(
            "{:<12} GA {:.3} PA {:.3} fallback {}",
            s.system, s.ga, s.pa, s.fallback_lines
        );
        if let Some((_, floor)) = drain.iter().find(|(n, _)| *n == s.system) {
            assert!(
                s.ga >= *floor,
                "{} GA {:.3} below Drain's {:.3}",
                s.system,
                s.ga,
                floor
            );
        }
        assert_eq!(
            s.fallback_lines, 0,
            "{}: every line should match its format",
            s.system
        );
    }
    let avg = scores.iter().map(|s| s.ga).sum::<f64>() / scores.len() as f64;
    assert!(avg >= 0.95, "average GA {avg:.3}");
}
