//! The NAB evaluation on the shared dataset, when it is present: standard profile ≥ 70.

use medic_detect::series::{ScorerParams, score_series};
use std::path::Path;

#[test]
fn nab_standard_score_is_at_least_70_on_the_shared_dataset() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/datasets/nab");
    if !dir.join("labels/combined_windows.json").exists() {
        eprintln!("skipped: no NAB dataset at {}", dir.display());
        return;
    }
    let p = ScorerParams::default();
    let r = medic_eval::nab::evaluate(&dir, |f| score_series(&p, &f.timestamps, &f.values).0)
        .expect("NAB folder scores");
    for p in &r.profiles {
        println!(
            "{}: {:.2} (threshold {:.5}, {}/{} windows, {} false alarms)",
            p.profile, p.normalized, p.threshold, p.windows_detected, p.windows, p.false_alarms
        );
    }
    let standard = r.normalized("standard").expect("standard profile");
    assert!(standard >= 70.0, "standard {standard:.2} < 70");
}
