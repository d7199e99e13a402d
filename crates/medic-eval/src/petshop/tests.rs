use super::load::{parse_graph, parse_metrics};
use super::*;

const METRICS: &str = "\
microservice,a,a,b
metric,latency,availability,latency
statistic,Average,Average,p99
unix_timestamp,,,
100.0,0.1,100.0,0.2
400.0,,99.0,0.3
";

fn p() -> &'static Path {
    Path::new("m.csv")
}

#[test]
fn parses_a_good_metrics_file_with_gaps() {
    let m = parse_metrics(p(), METRICS).unwrap();
    assert_eq!(m.series.len(), 3);
    let a = &m.series[0];
    assert_eq!(
        (a.node.as_str(), a.kind, a.name.as_str()),
        ("a", MetricKind::Latency, "Average")
    );
    assert_eq!(a.points.len(), 2);
    assert!(a.points[1].value.is_nan());
    assert_eq!(m.series[1].kind, MetricKind::Availability);
}

#[test]
fn malformed_metrics_name_the_line() {
    let bad_value = METRICS.replace("0.3", "fast");
    let e = parse_metrics(p(), &bad_value).unwrap_err().to_string();
    assert!(e.starts_with("m.csv:6:") && e.contains("fast"), "{e}");
    let bad_ts = METRICS.replace("400.0,", "noon,");
    let e = parse_metrics(p(), &bad_ts).unwrap_err().to_string();
    assert!(e.starts_with("m.csv:6:") && e.contains("timestamp"), "{e}");
    let bad_header = METRICS.replace("statistic,", "stat,");
    let e = parse_metrics(p(), &bad_header).unwrap_err().to_string();
    assert!(e.starts_with("m.csv:3:"), "{e}");
    let quote = METRICS.replace("microservice,a", "microservice,\"a");
    assert!(
        parse_metrics(p(), &quote)
            .unwrap_err()
            .to_string()
            .contains("m.csv:1:")
    );
}

#[test]
fn truncated_metrics_are_errors_not_panics() {
    for cut in 0..METRICS.len() {
        // Every prefix either parses or fails with a located error.
        if let Err(e) = parse_metrics(p(), &METRICS[..cut]) {
            assert!(e.to_string().starts_with("m.csv:"), "{cut}: {e}");
        }
    }
    let e = parse_metrics(p(), &METRICS[..METRICS.len() - 6])
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("m.csv:6:") && e.contains("truncated"), "{e}");
    assert!(parse_metrics(p(), "microservice,a\nmetric,latency\n").is_err());
}

#[test]
fn graph_rows_call_columns() {
    let text = ",a,b,c\na,0.0,1.0,0.0\nb,0.0,0.0,2\nc,1,0,0\n";
    let g = parse_graph(p(), text).unwrap();
    assert_eq!(g.len(), 3);
    let reach = g.reachable(g.id("b").unwrap());
    // b -> c -> a -> b: a cycle, and every node is reachable.
    assert_eq!(reach.len(), 3);
    let e = parse_graph(p(), ",a,b\na,0,x\n").unwrap_err().to_string();
    assert!(
        e.starts_with("m.csv:2:") && e.contains("not a number"),
        "{e}"
    );
    let e = parse_graph(p(), ",a,b\na,0\n").unwrap_err().to_string();
    assert!(e.starts_with("m.csv:2:"), "{e}");
    assert!(parse_graph(p(), "").is_err());
    let e = parse_graph(p(), ",a,b\n").unwrap_err().to_string();
    assert!(e.starts_with("m.csv:2:") && e.contains("truncated"), "{e}");
    for cut in 0..text.len() {
        let _ = parse_graph(p(), &text[..cut]);
    }
}

/// A whole folder in the dataset's layout, built from a chain a -> b -> c where c is slow:
/// the evaluation ranks c first, and the normal period yields few blames.
#[test]
fn evaluates_a_folder() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::write(
        root.join("graph.csv"),
        ",a,b,c\na,0,1,0\nb,0,0,1\nc,0,0,0\n",
    )
    .unwrap();
    let header = "microservice,a,b,c\nmetric,latency,latency,latency\nstatistic,Average,Average,Average\nunix_timestamp,,,\n";
    let mut normal = header.to_string();
    for k in 0..60 {
        let w = 1.0 + 0.01 * ((k * 7 % 5) as f64 - 2.0);
        normal += &format!("{},{},{},{}\n", k * 300, 0.3 * w, 0.2 * w, 0.1 * w);
    }
    std::fs::create_dir_all(root.join("noissue")).unwrap();
    std::fs::write(root.join("noissue/metrics.csv"), normal).unwrap();
    let issue = root.join("train/issue_0");
    std::fs::create_dir_all(&issue).unwrap();
    let mut m = header.to_string();
    // Normal before the onset (the symptom is at 100600), slow from then on.
    m += "100000,0.3,0.2,0.1\n";
    for k in 1..5 {
        m += &format!("{},0.8,0.7,0.6\n", 100_000 + k * 300);
    }
    std::fs::write(issue.join("metrics.csv"), m).unwrap();
    std::fs::write(
        issue.join("target.json"),
        r#"{"target": {"node": "a", "metric": "latency", "timestamp": 100600}, "root_cause": {"node": "c"}}"#,
    )
    .unwrap();
    std::fs::create_dir_all(root.join("train/issue_1")).unwrap();
    std::fs::write(root.join("train/issue_1/metrics.csv"), "microservice,a\n").unwrap();
    let graph = load::graph(&root.join("graph.csv")).unwrap();
    let normal = load::metrics(&root.join("noissue/metrics.csv"))
        .unwrap()
        .series;
    let r = evaluate(&root.join("train"), &graph, &normal, &RankParams::default()).unwrap();
    assert_eq!(r.issues.len(), 1);
    assert_eq!(r.issues[0].ranking[0], "c");
    assert_eq!(r.issues[0].ranking.len(), 3);
    assert_eq!((r.scored, r.top1, r.top3), (1, 1.0, 1.0));
    assert_eq!(r.errors.len(), 1);
    assert!(
        r.errors[0].contains("issue_1") && r.errors[0].contains("metrics.csv:"),
        "{:?}",
        r.errors
    );
    assert_eq!(r.false_blame.runs, 12);
    assert!(r.false_blame.rate < 0.5, "{:?}", r.false_blame);
}
