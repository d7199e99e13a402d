use super::*;

fn corpus(windows: Vec<(usize, usize)>, n: usize) -> Corpus {
    Corpus {
        root: PathBuf::from("test"),
        files: vec![DataFile {
            name: "cat/a.csv".into(),
            category: "cat".into(),
            timestamps: (0..n as i64).map(|i| i * 60_000).collect(),
            values: vec![0.0; n],
            windows,
        }],
        profiles: Profile::nab_defaults(),
    }
}

#[test]
fn null_detector_scores_zero_and_perfect_detector_scores_100() {
    let c = corpus(vec![(300, 399), (700, 799)], 1000);
    let null = score(&c, &[vec![0.5; 1000]]).unwrap();
    for p in &null.profiles {
        assert!(p.normalized.abs() < 1e-9, "{p:?}");
    }
    let mut perfect = vec![0.0; 1000];
    perfect[300] = 1.0;
    perfect[700] = 1.0;
    let r = score(&c, &[perfect]).unwrap();
    for p in &r.profiles {
        assert!((p.normalized - 100.0).abs() < 1e-9, "{p:?}");
        assert_eq!(p.threshold, 1.0);
        assert_eq!(p.windows_detected, 2);
    }
}

#[test]
fn half_the_windows_early_and_no_false_alarm_scores_50_standard() {
    let c = corpus(vec![(300, 399), (700, 799)], 1000);
    let mut s = vec![0.0; 1000];
    s[300] = 1.0;
    let r = score(&c, &[s]).unwrap();
    // raw = 1 - 1 = 0; null = -2; perfect = 2 → 50.
    assert!((r.normalized("standard").unwrap() - 50.0).abs() < 1e-9);
    // Low-FN profile: raw = 1 - 2 = -1, null = -4, perfect = 2 → 50.
    assert!((r.normalized("reward_low_FN_rate").unwrap() - 50.0).abs() < 1e-9);
}

#[test]
fn a_false_alarm_costs_the_fp_weight_when_no_window_precedes_it() {
    let c = corpus(vec![(700, 799)], 1000);
    let mut s = vec![0.0; 1000];
    s[200] = 1.0;
    s[700] = 1.0;
    let r = score(&c, &[s]).unwrap();
    let p = &r.profiles[0];
    assert!((p.raw_score - (1.0 - 0.11)).abs() < 1e-9, "{p:?}");
    assert_eq!(p.false_alarms, 1);
    // normalised: (0.89 + 1) / 2
    assert!((p.normalized - 94.5).abs() < 1e-9);
}

#[test]
fn wrong_score_count_is_an_error() {
    let c = corpus(vec![], 10);
    assert!(matches!(
        score(&c, &[vec![0.0; 3]]),
        Err(NabError::ScoreCount { .. })
    ));
}

#[test]
fn loads_a_folder_in_nab_layout() {
    let d = tempfile::tempdir().unwrap();
    let data = d.path().join("data/cat");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::create_dir_all(d.path().join("labels")).unwrap();
    let mut csv = String::from("timestamp,value\n");
    for i in 0..100 {
        csv.push_str(&format!("2014-01-01 00:{:02}:00,{}\n", i % 60, i));
    }
    // minutes wrap: use hours too
    let mut csv2 = String::from("timestamp,value\n");
    for i in 0..100 {
        csv2.push_str(&format!(
            "2014-01-01 {:02}:{:02}:00,{}\n",
            i / 60,
            i % 60,
            i
        ));
    }
    drop(csv);
    std::fs::write(data.join("a.csv"), csv2).unwrap();
    std::fs::write(
        d.path().join("labels/combined_windows.json"),
        r#"{"cat/a.csv": [["2014-01-01 01:00:00.000000", "2014-01-01 01:09:00.000000"]]}"#,
    )
    .unwrap();
    let c = load_corpus(d.path()).unwrap();
    assert_eq!(c.files.len(), 1);
    assert_eq!(c.files[0].windows, vec![(60, 69)]);
    assert_eq!(c.profiles.len(), 3);
    std::fs::write(
        data.join("b.csv"),
        "timestamp,value\n2014-01-01 00:00:00,x\n",
    )
    .unwrap();
    let e = load_corpus(d.path()).unwrap_err().to_string();
    assert!(e.contains("bad value"), "{e}");
}
