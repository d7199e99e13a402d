//! `medic analyze logs`: CSV contract (header, one row per input line, 1-based LineId, RFC
//! 4180 quoting), counts of altered records (invalid UTF-8, lines over 1 MiB), gzip and stdin
//! input, Loghub formats on a Loghub sample, and the pattern/anomaly report.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn medic() -> Command {
    Command::new(env!("CARGO_BIN_EXE_medic"))
}

fn run(args: &[&std::ffi::OsStr]) -> Output {
    let out = medic()
        .arg("analyze")
        .arg("logs")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run medic");
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn json_of(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).expect("JSON report")
}

/// Splits RFC 4180 CSV into records (quoted fields may hold commas, quotes and newlines).
fn parse_csv(s: &str) -> Vec<Vec<String>> {
    let mut rows = vec![];
    let mut row = vec![];
    let mut field = String::new();
    let mut chars = s.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') => quoted = true,
            (false, ',') => row.push(std::mem::take(&mut field)),
            (false, '\r') => {}
            (false, '\n') => {
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
            }
            (false, c) => field.push(c),
        }
    }
    if !field.is_empty() || !row.is_empty() {
        row.push(field);
        rows.push(row);
    }
    rows
}

fn sample_lines() -> Vec<String> {
    let mut v = vec![];
    for i in 0..300 {
        v.push(format!(
            "2026-01-05T10:{:02}:{:02}Z INFO served GET /items/{i} in {}ms",
            i / 60,
            i % 60,
            i % 17
        ));
        if i % 50 == 7 {
            v.push(format!(
                "2026-01-05T10:{:02}:{:02}Z ERROR GET http://cache:4000 failed: connection refused, \"retry\" {i}",
                i / 60,
                i % 60
            ));
        }
    }
    v
}

#[test]
fn emit_csv_has_a_header_and_one_row_per_line_with_1_based_ids() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("app.log");
    let lines = sample_lines();
    std::fs::write(&log, lines.join("\n") + "\n").expect("write");
    let csv = dir.path().join("out.csv");
    let out = run(&[
        log.as_os_str(),
        "--emit-csv".as_ref(),
        csv.as_os_str(),
        "--json".as_ref(),
    ]);
    let rows = parse_csv(&std::fs::read_to_string(&csv).expect("csv"));
    assert_eq!(rows[0], vec!["LineId", "EventId", "EventTemplate"]);
    assert_eq!(rows.len(), lines.len() + 1);
    for (i, r) in rows[1..].iter().enumerate() {
        assert_eq!(r.len(), 3, "row {i}: {r:?}");
        assert_eq!(r[0], (i + 1).to_string());
    }
    // Quoted fields survive: the error template has a comma and quotes.
    let err_row = &rows[9];
    assert_eq!(err_row[0], "9");
    assert!(err_row[2].contains("connection refused,"), "{err_row:?}");
    let served = &rows[1];
    assert!(served[2].contains("<*>"), "{served:?}");
    assert_eq!(rows[1][1], rows[2][1], "same shape, same EventId");

    let r = json_of(&out);
    assert_eq!(r["lines"], lines.len() as u64);
    assert_eq!(r["buckets"]["by"], "time");
    assert_eq!(r["patterns"][0]["pattern"], "connection_refused");
    assert_eq!(r["patterns"][0]["count"], 6);
    assert!(
        r["error_and_warning_templates"][0]["template"]
            .as_str()
            .is_some_and(|t| t.contains("connection refused"))
    );
    assert_eq!(r["top_templates"][0]["count"], 300);
}

#[test]
fn invalid_utf8_and_a_2_mib_line_are_counted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("bad.log");
    let mut f = std::fs::File::create(&log).expect("create");
    f.write_all(b"INFO first line\n").expect("w");
    f.write_all(b"WARN bad bytes \xff\xfe here\n").expect("w");
    let mut long = b"ERROR huge ".to_vec();
    long.extend(std::iter::repeat_n(b'a', 2 << 20));
    long.push(b'\n');
    f.write_all(&long).expect("w");
    f.write_all(b"INFO last line\r\n").expect("w");
    drop(f);
    let csv = dir.path().join("o.csv");
    let out = run(&[
        log.as_os_str(),
        "--json".as_ref(),
        "--emit-csv".as_ref(),
        csv.as_os_str(),
    ]);
    let r = json_of(&out);
    assert_eq!(r["lines"], 4);
    assert_eq!(
        r["records_altered"]["invalid UTF-8 (replaced with U+FFFD)"],
        1
    );
    assert_eq!(r["records_altered"]["line over 1 MiB (truncated)"], 1);
    assert_eq!(r["bytes"], std::fs::metadata(&log).expect("meta").len());
    let rows = parse_csv(&std::fs::read_to_string(&csv).expect("csv"));
    assert_eq!(rows.len(), 5);
    // The text report names the counts too.
    let text = run(&[log.as_os_str()]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("1 invalid UTF-8"), "{text}");
    assert!(text.contains("1 line over 1 MiB"), "{text}");
}

#[test]
fn gzip_input_and_stdin_give_the_same_report() {
    use flate2::{Compression, write::GzEncoder};
    let dir = tempfile::tempdir().expect("tempdir");
    let lines = sample_lines().join("\n") + "\n";
    let gz = dir.path().join("app.log.gz");
    let mut e = GzEncoder::new(
        std::fs::File::create(&gz).expect("create"),
        Compression::fast(),
    );
    e.write_all(lines.as_bytes()).expect("gz");
    e.finish().expect("gz");
    let from_gz = json_of(&run(&[gz.as_os_str(), "--json".as_ref()]));
    assert_eq!(from_gz["lines"], 306);

    let mut child = medic()
        .args(["analyze", "logs", "-", "--json"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut stdin = child.stdin.take().expect("stdin");
    let writer = std::thread::spawn(move || stdin.write_all(lines.as_bytes()));
    let out = child.wait_with_output().expect("wait");
    writer.join().expect("join").expect("write stdin");
    assert_eq!(out.status.code(), Some(0));
    let from_stdin = json_of(&out);
    assert_eq!(from_stdin["lines"], from_gz["lines"]);
    assert_eq!(from_stdin["top_templates"], from_gz["top_templates"]);
}

fn loghub(system: &str) -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/datasets/loghub2k")
        .join(system)
        .join(format!("{system}_2k.log"));
    p.exists().then_some(p)
}

#[test]
fn loghub_format_on_a_loghub_sample() {
    let Some(log) = loghub("HDFS") else {
        eprintln!("skipped: ../shared/datasets/loghub2k not present");
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let csv = dir.path().join("hdfs.csv");
    let out = run(&[
        log.as_os_str(),
        "--log-format".as_ref(),
        "<Date> <Time> <Pid> <Level> <Component>: <Content>".as_ref(),
        "--emit-csv".as_ref(),
        csv.as_os_str(),
        "--json".as_ref(),
    ]);
    let r = json_of(&out);
    assert_eq!(r["lines"], 2000);
    assert!(
        r["records_altered"]
            .as_object()
            .is_some_and(|m| m.is_empty()),
        "{}",
        r["records_altered"]
    );
    let rows = parse_csv(&std::fs::read_to_string(&csv).expect("csv"));
    assert_eq!(rows.len(), 2001);
    // Content only: the header fields (date, pid, level, component) are not in templates.
    assert!(rows[1][2].starts_with("PacketResponder"), "{:?}", rows[1]);
    // A system name picks its known format: same result.
    let csv2 = dir.path().join("hdfs2.csv");
    run(&[
        log.as_os_str(),
        "--log-format".as_ref(),
        "HDFS".as_ref(),
        "--emit-csv".as_ref(),
        csv2.as_os_str(),
    ]);
    assert_eq!(
        std::fs::read(&csv).expect("a"),
        std::fs::read(&csv2).expect("b")
    );
    assert!(
        r["error_and_warning_templates"]
            .as_array()
            .is_some_and(|v| !v.is_empty())
    );
}

#[test]
fn bad_log_format_is_an_error_naming_it() {
    let out = medic()
        .args([
            "analyze",
            "logs",
            "/dev/null",
            "--log-format",
            "<Date> <Content",
        ])
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("--log-format"), "{err}");
}

/// Lines are mined unredacted (for speed), so everything printed or written is redacted at
/// output: templates, examples, pattern examples, CSV rows; in auto mode and with a format.
#[test]
fn secrets_never_reach_the_report_or_the_csv() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("app.log");
    let secrets = [
        "hunter2xyz",
        "AKIAIOSFODNN7EXAMPLE",
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
        "s3cr3tpw",
        "alice@example.com",
    ];
    let mut lines = vec![
        // A one-off line: its template is the line itself, secret included, unless redacted.
        "2026-01-05T10:00:00Z ERROR login failed password=hunter2xyz for admin".to_string(),
        "2026-01-05T10:00:01Z WARN using key AKIAIOSFODNN7EXAMPLE for upload".to_string(),
        r#"{"ts":"2026-01-05T10:00:02Z","level":"error","msg":"rejected Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"}"#.to_string(),
        "2026-01-05T10:00:03Z ERROR db postgres://app:s3cr3tpw@db:5432/x connection refused".to_string(),
        "2026-01-05T10:00:04Z INFO mail sent to alice@example.com".to_string(),
    ];
    lines.extend(sample_lines());
    std::fs::write(&log, lines.join("\n") + "\n").expect("write");
    for format in [None, Some("<Date> <Level> <Content>")] {
        let csv = dir.path().join("out.csv");
        let mut args: Vec<&std::ffi::OsStr> = vec![
            log.as_os_str(),
            "--emit-csv".as_ref(),
            csv.as_os_str(),
            "--top".as_ref(),
            "100".as_ref(),
        ];
        if let Some(f) = format {
            args.push("--log-format".as_ref());
            args.push(f.as_ref());
        }
        let text = run(&args);
        args.push("--json".as_ref());
        let json = run(&args);
        let csv_text = std::fs::read_to_string(&csv).expect("csv");
        for (what, out) in [
            (
                "text report",
                String::from_utf8_lossy(&text.stdout).into_owned(),
            ),
            (
                "json report",
                String::from_utf8_lossy(&json.stdout).into_owned(),
            ),
            ("csv", csv_text),
        ] {
            for s in secrets {
                assert!(!out.contains(s), "{format:?}: {what} leaks {s}:\n{out}");
            }
            assert!(
                out.contains("[REDACTED:"),
                "{format:?}: {what} shows redactions"
            );
        }
    }
}
