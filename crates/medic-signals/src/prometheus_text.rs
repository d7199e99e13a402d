//! Prometheus text exposition (0.0.4) and the OpenMetrics basics: `# HELP`/`# TYPE`
//! comments, escaped label values, `NaN`/`±Inf`, optional timestamps, exemplars (ignored),
//! `# EOF`. Garbage never panics: a bad line is reported and skipped, the rest is kept.

use medic_core::MetricSample;
use std::collections::BTreeMap;

/// One line that could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("metrics line {line}: {reason}")]
pub struct MetricParseError {
    /// 1-based line number in the body.
    pub line: usize,
    pub reason: String,
}

/// Parses a whole exposition body: the samples of every good line, and one error per bad
/// line.
pub fn parse_prometheus_text(text: &str) -> (Vec<MetricSample>, Vec<MetricParseError>) {
    let mut samples = Vec::new();
    let mut errors = Vec::new();
    for (idx, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix('#') {
            if comment.trim() == "EOF" {
                break;
            }
            continue;
        }
        match parse_sample_line(line) {
            Ok(s) => samples.push(s),
            Err(reason) => errors.push(MetricParseError {
                line: idx + 1,
                reason,
            }),
        }
    }
    (samples, errors)
}

fn is_name_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_' || b == b':'
}

fn is_name_char(b: u8) -> bool {
    is_name_start(b) || b.is_ascii_digit()
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && (b[i] == b' ' || b[i] == b'\t') {
        i += 1;
    }
    i
}

fn parse_value(tok: &str) -> Result<f64, String> {
    match tok {
        "NaN" | "nan" => Ok(f64::NAN),
        "+Inf" | "Inf" | "+inf" | "inf" => Ok(f64::INFINITY),
        "-Inf" | "-inf" => Ok(f64::NEG_INFINITY),
        _ => {
            // Rust also reads `infinity` and `nan` in any case; keep to what exporters write.
            if !tok
                .bytes()
                .all(|c| c.is_ascii_digit() || matches!(c, b'.' | b'e' | b'E' | b'+' | b'-'))
            {
                return Err(format!(
                    "expected a number, NaN or ±Inf, got `{}`",
                    excerpt(tok)
                ));
            }
            tok.parse::<f64>()
                .map_err(|_| format!("expected a number, NaN or ±Inf, got `{}`", excerpt(tok)))
        }
    }
}

fn excerpt(s: &str) -> &str {
    let mut end = s.len().min(40);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

fn parse_sample_line(line: &str) -> Result<MetricSample, String> {
    let b = line.as_bytes();
    let mut i = 0;
    if b.is_empty() || !is_name_start(b[0]) {
        return Err(format!("expected a metric name, got `{}`", excerpt(line)));
    }
    while i < b.len() && is_name_char(b[i]) {
        i += 1;
    }
    let name = line[..i].to_string();
    let mut labels = BTreeMap::new();
    i = skip_ws(b, i);
    if i < b.len() && b[i] == b'{' {
        i = parse_labels(line, i + 1, &mut labels)?;
    }
    i = skip_ws(b, i);
    let v_start = i;
    while i < b.len() && b[i] != b' ' && b[i] != b'\t' {
        i += 1;
    }
    if v_start == i {
        return Err(format!("metric `{name}` has no value"));
    }
    let value = parse_value(&line[v_start..i])?;
    i = skip_ws(b, i);
    if i < b.len() && b[i] != b'#' {
        let t_start = i;
        while i < b.len() && b[i] != b' ' && b[i] != b'\t' {
            i += 1;
        }
        let ts = &line[t_start..i];
        // Timestamps are not used (the scrape time is), but must be numbers.
        if ts.parse::<i64>().is_err() && ts.parse::<f64>().map_or(true, |t| !t.is_finite()) {
            return Err(format!(
                "expected a timestamp after the value, got `{}`",
                excerpt(ts)
            ));
        }
        i = skip_ws(b, i);
        if i < b.len() && b[i] != b'#' {
            return Err(format!(
                "unexpected text after the timestamp: `{}`",
                excerpt(&line[i..])
            ));
        }
    }
    // Anything from `#` on is an exemplar: ignored.
    Ok(MetricSample {
        name,
        labels,
        value,
    })
}

/// Parses `name="value", ...}` from `i` (just after `{`); returns the index after `}`.
fn parse_labels(
    line: &str,
    mut i: usize,
    labels: &mut BTreeMap<String, String>,
) -> Result<usize, String> {
    let b = line.as_bytes();
    loop {
        i = skip_ws(b, i);
        if i >= b.len() {
            return Err("unterminated label set: expected `}`".into());
        }
        if b[i] == b'}' {
            return Ok(i + 1);
        }
        let n_start = i;
        if !(b[i].is_ascii_alphabetic() || b[i] == b'_') {
            return Err(format!(
                "expected a label name, got `{}`",
                excerpt(&line[i..])
            ));
        }
        while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
            i += 1;
        }
        let lname = &line[n_start..i];
        i = skip_ws(b, i);
        if i >= b.len() || b[i] != b'=' {
            return Err(format!("expected `=` after label `{lname}`"));
        }
        i = skip_ws(b, i + 1);
        if i >= b.len() || b[i] != b'"' {
            return Err(format!("expected a quoted value for label `{lname}`"));
        }
        i += 1;
        let mut value = String::new();
        let mut closed = false;
        let mut chars = line[i..].char_indices();
        while let Some((off, c)) = chars.next() {
            match c {
                '"' => {
                    i += off + 1;
                    closed = true;
                    break;
                }
                '\\' => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, '\\')) => value.push('\\'),
                    Some((_, '"')) => value.push('"'),
                    Some((_, other)) => {
                        value.push('\\');
                        value.push(other);
                    }
                    None => break,
                },
                _ => value.push(c),
            }
        }
        if !closed {
            return Err(format!("unterminated value of label `{lname}`"));
        }
        if labels.insert(lname.to_string(), value).is_some() {
            return Err(format!("label `{lname}` appears twice"));
        }
        i = skip_ws(b, i);
        if i < b.len() && b[i] == b',' {
            i += 1;
        } else if i < b.len() && b[i] == b'}' {
            return Ok(i + 1);
        } else {
            return Err(format!("expected `,` or `}}` after label `{lname}`"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &str = r#"# HELP http_requests_total Requests.
# TYPE http_requests_total counter
http_requests_total{route="/checkout",code="200"} 1027 1395066363000
http_requests_total{route="/checkout",code="500"} 3
http_request_duration_seconds_bucket{le="0.1"} 10
http_request_duration_seconds_bucket{le="+Inf"} 12
http_request_duration_seconds_sum 1.5e-1
process_resident_memory_bytes 2.68435456e+08
app_info{service="payment",release="v2",config_version="c1",} 1
"#;

    #[test]
    fn valid_body() {
        let (s, e) = parse_prometheus_text(BODY);
        assert!(e.is_empty(), "{e:?}");
        assert_eq!(s.len(), 7);
        assert_eq!(s[0].name, "http_requests_total");
        assert_eq!(s[0].label("code"), Some("200"));
        assert_eq!(s[0].value, 1027.0);
        assert_eq!(s[3].label("le"), Some("+Inf"));
        assert_eq!(s[4].value, 0.15);
        assert_eq!(s[5].value, 268_435_456.0);
        assert_eq!(s[6].label("release"), Some("v2"));
    }

    #[test]
    fn escaped_labels() {
        let (s, e) = parse_prometheus_text(
            "m{path=\"C:\\\\dir\",msg=\"say \\\"hi\\\"\\nbye\",u=\"é{}\"} 1\n",
        );
        assert!(e.is_empty(), "{e:?}");
        assert_eq!(s[0].label("path"), Some("C:\\dir"));
        assert_eq!(s[0].label("msg"), Some("say \"hi\"\nbye"));
        assert_eq!(s[0].label("u"), Some("é{}"));
    }

    #[test]
    fn special_values_timestamps_exemplars() {
        let (s, e) = parse_prometheus_text(
            "a NaN\nb +Inf\nc -Inf\nd 1 123\ne 2 1.5\nf{le=\"1\"} 3 # {trace_id=\"abc\"} 0.5 1\n# EOF\nignored 1\n",
        );
        assert!(e.is_empty(), "{e:?}");
        assert_eq!(s.len(), 6);
        assert!(s[0].value.is_nan());
        assert_eq!(s[1].value, f64::INFINITY);
        assert_eq!(s[2].value, f64::NEG_INFINITY);
        assert_eq!((s[3].value, s[4].value, s[5].value), (1.0, 2.0, 3.0));
    }

    #[test]
    fn garbage_lines_are_skipped_and_reported() {
        let body = "good 1\n{bad} 1\nno_value\nx{a=\"1\" 2\nx{a=1} 2\ny abc\nz 1 2 3\nw{a=\"1\",a=\"2\"} 1\nv infinity\nalso_good{k=\"v\"} 2\n\u{0}\u{ff}garbage\n";
        let (s, e) = parse_prometheus_text(body);
        assert_eq!(
            s.iter().map(|m| m.name.as_str()).collect::<Vec<_>>(),
            vec!["good", "also_good"]
        );
        assert_eq!(
            e.iter().map(|e| e.line).collect::<Vec<_>>(),
            vec![2, 3, 4, 5, 6, 7, 8, 9, 11]
        );
        assert!(e[1].to_string().contains("no_value"));
    }

    #[test]
    fn truncated_at_every_offset_never_panics() {
        let body = format!("{BODY}m{{a=\"é\\\"x\"}} 1 # {{t=\"1\"}} 2\n");
        let (full, _) = parse_prometheus_text(&body);
        for end in 0..=body.len() {
            if !body.is_char_boundary(end) {
                continue;
            }
            let (s, e) = parse_prometheus_text(&body[..end]);
            assert!(s.len() <= full.len());
            assert!(e.len() <= 1, "at {end}: {e:?}");
        }
        // Same through lossy bytes cut mid-character.
        for end in 0..=body.len() {
            let lossy = String::from_utf8_lossy(&body.as_bytes()[..end]);
            let _ = parse_prometheus_text(&lossy);
        }
    }

    #[test]
    fn huge_and_hostile_lines() {
        let long_label = format!("m{{a=\"{}\"}} 1\n", "x".repeat(1 << 20));
        let (s, e) = parse_prometheus_text(&long_label);
        assert_eq!((s.len(), e.len()), (1, 0));
        let (s, e) = parse_prometheus_text(&"{".repeat(100_000));
        assert_eq!((s.len(), e.len()), (0, 1));
        let (s, e) = parse_prometheus_text("m{a=\"\\");
        assert_eq!((s.len(), e.len()), (0, 1));
    }
}
