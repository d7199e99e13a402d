//! Prometheus text exposition (0.0.4) and OpenMetrics 1.0: `# HELP`/`# TYPE`/`# UNIT`
//! metadata tracked per family, escaped label values, `NaN`/`±Inf`, integer (ms) or float
//! (s) timestamps, exemplars (ignored), `# EOF`, and every OpenMetrics type (counter, gauge,
//! histogram, gaugehistogram, summary, info, stateset, unknown). Counter, histogram and
//! summary `_created` samples are creation timestamps, not values: they are returned
//! separately in [`Exposition::created`], never among the samples detectors see. Garbage
//! never panics: a bad line is reported and skipped, the rest is kept.

use medic_core::MetricSample;
use std::collections::BTreeMap;

/// The `Accept` header a scrape sends: OpenMetrics preferred, the Prometheus text format as
/// the fallback every exporter speaks.
pub const SCRAPE_ACCEPT: &str =
    "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5";

/// One line that could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("metrics line {line}: {reason}")]
pub struct MetricParseError {
    /// 1-based line number in the body.
    pub line: usize,
    pub reason: String,
}

/// Which text format a body is in; they differ only in what a body must end with.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum ExpositionFormat {
    /// `text/plain; version=0.0.4`: no `# EOF` required.
    PrometheusText,
    /// `application/openmetrics-text`: must end with `# EOF`, nothing after it.
    OpenMetrics,
}

impl ExpositionFormat {
    /// The format a response's `Content-Type` names; anything else (or none) is read as the
    /// Prometheus text format, which is what exporters fall back to.
    pub fn from_content_type(content_type: Option<&str>) -> Self {
        let media = content_type
            .and_then(|c| c.split(';').next())
            .map(|m| m.trim().to_ascii_lowercase());
        match media.as_deref() {
            Some("application/openmetrics-text") => ExpositionFormat::OpenMetrics,
            _ => ExpositionFormat::PrometheusText,
        }
    }
}

/// A family's declared `# TYPE`.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum MetricType {
    Counter,
    Gauge,
    Histogram,
    GaugeHistogram,
    Summary,
    Info,
    StateSet,
    /// `unknown` (OpenMetrics) or `untyped` (Prometheus text).
    Unknown,
}

impl MetricType {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "counter" => MetricType::Counter,
            "gauge" => MetricType::Gauge,
            "histogram" => MetricType::Histogram,
            "gaugehistogram" => MetricType::GaugeHistogram,
            "summary" => MetricType::Summary,
            "info" => MetricType::Info,
            "stateset" => MetricType::StateSet,
            "unknown" | "untyped" => MetricType::Unknown,
            _ => return None,
        })
    }

    /// Types whose samples include a `_created` timestamp.
    fn has_created(self) -> bool {
        matches!(
            self,
            MetricType::Counter | MetricType::Histogram | MetricType::Summary
        )
    }
}

/// What the metadata lines said about one family.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FamilyMeta {
    pub kind: Option<MetricType>,
    pub unit: Option<String>,
    pub help: Option<String>,
}

/// A whole parsed body.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Exposition {
    /// Every value sample of a good line, `_created` samples excluded.
    pub samples: Vec<MetricSample>,
    /// One error per bad line (plus one for a missing or misplaced OpenMetrics `# EOF`).
    pub errors: Vec<MetricParseError>,
    /// `_created` samples of counter, histogram and summary families (value: seconds since
    /// the epoch when the series was created); kept apart because they are not measurements.
    pub created: Vec<MetricSample>,
    /// `# TYPE`/`# UNIT`/`# HELP` by family name.
    pub families: BTreeMap<String, FamilyMeta>,
    /// Whether the body had a `# EOF` line.
    pub eof: bool,
}

/// Parses a whole exposition body in the Prometheus text format: the samples of every good
/// line (`_created` timestamps excluded, see [`parse_exposition`]), and one error per bad
/// line.
pub fn parse_prometheus_text(text: &str) -> (Vec<MetricSample>, Vec<MetricParseError>) {
    let e = parse_exposition(text, ExpositionFormat::PrometheusText);
    (e.samples, e.errors)
}

/// Parses a whole body in either format, tracking metadata per family.
pub fn parse_exposition(text: &str, format: ExpositionFormat) -> Exposition {
    let mut out = Exposition::default();
    let mut last_line = 0;
    for (idx, line) in text.lines().enumerate() {
        last_line = idx + 1;
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if out.eof {
            // OpenMetrics: nothing may follow `# EOF`; reported once, the rest is ignored.
            if format == ExpositionFormat::OpenMetrics {
                out.errors.push(MetricParseError {
                    line: idx + 1,
                    reason: format!("expected nothing after `# EOF`, got `{}`", excerpt(line)),
                });
            }
            break;
        }
        if let Some(comment) = line.strip_prefix('#') {
            if comment.trim() == "EOF" {
                out.eof = true;
                continue;
            }
            if let Err(reason) = parse_metadata(comment, &mut out.families) {
                out.errors.push(MetricParseError {
                    line: idx + 1,
                    reason,
                });
            }
            continue;
        }
        match parse_sample_line(line) {
            Ok(s) if is_created(&s.name, &out.families) => out.created.push(s),
            Ok(s) => out.samples.push(s),
            Err(reason) => out.errors.push(MetricParseError {
                line: idx + 1,
                reason,
            }),
        }
    }
    if format == ExpositionFormat::OpenMetrics && !out.eof {
        out.errors.push(MetricParseError {
            line: last_line,
            reason: "openmetrics body ended without `# EOF` (truncated?)".into(),
        });
    }
    out
}

/// Whether a sample is the creation timestamp of a counter, histogram or summary family:
/// `x_created` of `# TYPE x counter|histogram|summary`, or, as the Prometheus text format
/// writes counters, of `# TYPE x_total counter`. Without such a declaration, a metric that
/// happens to end in `_created` is an ordinary value.
fn is_created(name: &str, families: &BTreeMap<String, FamilyMeta>) -> bool {
    let Some(base) = name.strip_suffix("_created") else {
        return false;
    };
    let kind = |f: &str| families.get(f).and_then(|m| m.kind);
    if kind(base).is_some_and(MetricType::has_created) {
        return true;
    }
    let mut total = String::with_capacity(base.len() + 6);
    total.push_str(base);
    total.push_str("_total");
    kind(&total) == Some(MetricType::Counter)
}

fn valid_metric_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty() && is_name_start(b[0]) && b.iter().all(|c| is_name_char(*c))
}

/// `HELP`/`TYPE`/`UNIT` lines (without the `#`); any other comment is ignored, as the
/// Prometheus text format allows.
fn parse_metadata(
    comment: &str,
    families: &mut BTreeMap<String, FamilyMeta>,
) -> Result<(), String> {
    let comment = comment.trim_start_matches([' ', '\t']);
    let (keyword, rest) = comment.split_once([' ', '\t']).unwrap_or((comment, ""));
    if !matches!(keyword, "HELP" | "TYPE" | "UNIT") {
        return Ok(());
    }
    let rest = rest.trim_start_matches([' ', '\t']);
    let (name, arg) = rest.split_once([' ', '\t']).unwrap_or((rest, ""));
    if !valid_metric_name(name) {
        return Err(format!(
            "expected a metric family name after `# {keyword}`, got `{}`",
            excerpt(name)
        ));
    }
    let arg = arg.trim_start_matches([' ', '\t']);
    match keyword {
        "TYPE" => {
            let arg = arg.trim_end();
            let kind = MetricType::parse(arg).ok_or_else(|| {
                format!(
                    "expected a type (counter, gauge, histogram, gaugehistogram, summary, info, stateset, unknown, untyped) for `{name}`, got `{}`",
                    excerpt(arg)
                )
            })?;
            let m = families.entry(name.to_string()).or_default();
            if m.kind.is_some_and(|k| k != kind) {
                return Err(format!(
                    "`{name}` has a second, different `# TYPE`; the first is kept"
                ));
            }
            m.kind = Some(kind);
        }
        "UNIT" => {
            let arg = arg.trim_end();
            if !arg.bytes().all(is_name_char) {
                return Err(format!(
                    "expected a unit of letters, digits, `_` or `:` for `{name}`, got `{}`",
                    excerpt(arg)
                ));
            }
            families.entry(name.to_string()).or_default().unit =
                (!arg.is_empty()).then(|| arg.to_string());
        }
        _ => families.entry(name.to_string()).or_default().help = Some(unescape_help(arg)),
    }
    Ok(())
}

/// `\\`, `\n` (and OpenMetrics' `\"`) in HELP text.
fn unescape_help(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('\\') => out.push('\\'),
            Some('"') => out.push('"'),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    out
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

    /// OpenMetrics 1.0, written from the spec's examples: every type, units, `_created`,
    /// exemplars, float timestamps, escaped HELP, `# EOF`.
    const OM_BODY: &str = r#"# TYPE acme_http_router_request_seconds summary
# UNIT acme_http_router_request_seconds seconds
# HELP acme_http_router_request_seconds Latency though all of ACME's HTTP request router.
acme_http_router_request_seconds_sum{path="/api/v1",method="GET"} 9036.32
acme_http_router_request_seconds_count{path="/api/v1",method="GET"} 807283.0
acme_http_router_request_seconds_created{path="/api/v1",method="GET"} 1605281325.0
acme_http_router_request_seconds_sum{path="/api/v2",method="POST"} 479.3
acme_http_router_request_seconds_count{path="/api/v2",method="POST"} 34.0
acme_http_router_request_seconds_created{path="/api/v2",method="POST"} 1605281325.0
# TYPE go_goroutines gauge
# HELP go_goroutines Number of goroutines that currently exist.
go_goroutines 69
# TYPE process_cpu_seconds counter
# UNIT process_cpu_seconds seconds
# HELP process_cpu_seconds Total user and system CPU time spent in seconds.
process_cpu_seconds_total 4.20072246e+06
process_cpu_seconds_created 1.6052e+09 1605281325.5
# TYPE foo histogram
foo_bucket{le="0.0"} 0
foo_bucket{le="1e-05"} 0
foo_bucket{le="0.1"} 8 # {trace_id="KOO5S4vxi0o"} 0.067
foo_bucket{le="1.0"} 11 # {} 0.5 1520879607.789
foo_bucket{le="+Inf"} 17
foo_count 17
foo_sum 324789.3
foo_created 1520430000.123
# TYPE queue gaugehistogram
queue_bucket{le="0.5"} 4
queue_bucket{le="+Inf"} 6
queue_gcount 6
queue_gsum 2.5
# TYPE build info
# HELP build Build data, with \"quotes\" and a \\ and a\nnewline.
build_info{name="pretty name",version="8.2.7"} 1
# TYPE feature stateset
feature{feature="a"} 1
feature{feature="b"} 0
# TYPE mystery unknown
mystery 1.5 1520879607.789
# Any other comment is allowed and ignored.
# EOF
"#;

    fn names(s: &[MetricSample]) -> Vec<&str> {
        s.iter().map(|m| m.name.as_str()).collect()
    }

    #[test]
    fn openmetrics_body_every_type() {
        let e = parse_exposition(OM_BODY, ExpositionFormat::OpenMetrics);
        assert!(e.errors.is_empty(), "{:?}", e.errors);
        assert!(e.eof);
        // `_created` are timestamps: kept apart, never among the samples.
        assert!(e.samples.iter().all(|s| !s.name.ends_with("_created")));
        assert_eq!(
            names(&e.created),
            vec![
                "acme_http_router_request_seconds_created",
                "acme_http_router_request_seconds_created",
                "process_cpu_seconds_created",
                "foo_created"
            ]
        );
        assert_eq!(e.created[2].value, 1.6052e9);
        assert_eq!(e.samples.len(), 4 + 1 + 1 + 7 + 4 + 1 + 2 + 1);
        let get = |n: &str| e.samples.iter().find(|s| s.name == n).unwrap();
        assert_eq!(get("process_cpu_seconds_total").value, 4.20072246e6);
        assert_eq!(get("go_goroutines").value, 69.0);
        assert_eq!(get("queue_gsum").value, 2.5);
        let info = get("build_info");
        assert_eq!((info.value, info.label("version")), (1.0, Some("8.2.7")));
        let states: Vec<(Option<&str>, f64)> = e
            .samples
            .iter()
            .filter(|s| s.name == "feature")
            .map(|s| (s.label("feature"), s.value))
            .collect();
        assert_eq!(states, vec![(Some("a"), 1.0), (Some("b"), 0.0)]);
        assert_eq!(get("mystery").value, 1.5);
        let fam = |n: &str| e.families.get(n).unwrap();
        assert_eq!(fam("process_cpu_seconds").kind, Some(MetricType::Counter));
        assert_eq!(fam("process_cpu_seconds").unit.as_deref(), Some("seconds"));
        assert_eq!(fam("queue").kind, Some(MetricType::GaugeHistogram));
        assert_eq!(fam("build").kind, Some(MetricType::Info));
        assert_eq!(fam("feature").kind, Some(MetricType::StateSet));
        assert_eq!(fam("mystery").kind, Some(MetricType::Unknown));
        assert_eq!(
            fam("build").help.as_deref(),
            Some("Build data, with \"quotes\" and a \\ and a\nnewline.")
        );
        // The Prometheus-format entry point reads the same body the same way.
        let (s, errs) = parse_prometheus_text(OM_BODY);
        assert_eq!((s, errs), (e.samples, vec![]));
    }

    #[test]
    fn created_in_the_prometheus_text_format() {
        // As client_python writes counters in the 0.0.4 format: `_total` family name and a
        // separate `_created` gauge family.
        let body = "# TYPE jobs_total counter\njobs_total 3\n# TYPE jobs_created gauge\njobs_created 1.7e9\n\
                    # TYPE lat summary\nlat_count 2\nlat_created 1.7e9\n\
                    # TYPE rows_created gauge\nrows_created 42\nuntyped_created 7\n";
        let e = parse_exposition(body, ExpositionFormat::PrometheusText);
        assert!(e.errors.is_empty(), "{:?}", e.errors);
        assert_eq!(names(&e.created), vec!["jobs_created", "lat_created"]);
        // Not a counter/histogram/summary's: an ordinary value.
        assert_eq!(
            names(&e.samples),
            vec!["jobs_total", "lat_count", "rows_created", "untyped_created"]
        );
        assert!(!e.eof);
    }

    #[test]
    fn content_type_negotiation() {
        use ExpositionFormat::*;
        for (ct, f) in [
            (
                Some("application/openmetrics-text; version=1.0.0; charset=utf-8"),
                OpenMetrics,
            ),
            (Some("Application/OpenMetrics-Text"), OpenMetrics),
            (
                Some("text/plain; version=0.0.4; charset=utf-8"),
                PrometheusText,
            ),
            (Some("text/html"), PrometheusText),
            (Some(""), PrometheusText),
            (None, PrometheusText),
        ] {
            assert_eq!(ExpositionFormat::from_content_type(ct), f, "{ct:?}");
        }
        assert!(SCRAPE_ACCEPT.starts_with("application/openmetrics-text;version=1.0.0,"));
    }

    #[test]
    fn hostile_openmetrics() {
        // Truncated: no `# EOF` is one error; the samples read so far are kept.
        let cut = &OM_BODY[..OM_BODY.find("# TYPE build").unwrap()];
        let e = parse_exposition(cut, ExpositionFormat::OpenMetrics);
        assert_eq!(e.errors.len(), 1, "{:?}", e.errors);
        assert!(e.errors[0].reason.contains("EOF"));
        assert!(!e.samples.is_empty());
        // Text after `# EOF`: reported once, not read.
        let e = parse_exposition("a 1\n# EOF\nb 2\nc 3\n", ExpositionFormat::OpenMetrics);
        assert_eq!(names(&e.samples), vec!["a"]);
        assert_eq!(e.errors.len(), 1);
        assert_eq!(e.errors[0].line, 3);
        // Bad metadata: reported, skipped; the family's first type is kept.
        let body = "# TYPE\n# TYPE 9bad counter\n# TYPE x countr\n# TYPE y counter\n# TYPE y gauge\n\
                    # TYPE y counter\n# UNIT y se{c}\n# UNIT\n# HELP\n# HELP z\n# TYPEx y gauge\n\
                    y_total 1\ny_created 2\n# EOF\n";
        let e = parse_exposition(body, ExpositionFormat::OpenMetrics);
        assert_eq!(
            e.errors.iter().map(|e| e.line).collect::<Vec<_>>(),
            vec![1, 2, 3, 5, 7, 8, 9]
        );
        assert!(e.errors[2].reason.contains("countr"), "{}", e.errors[2]);
        assert_eq!(e.families["y"].kind, Some(MetricType::Counter));
        assert_eq!(e.families["z"].help.as_deref(), Some(""));
        assert_eq!(names(&e.samples), vec!["y_total"]);
        assert_eq!(names(&e.created), vec!["y_created"]);
        // A `_created` whose family is declared but malformed is still a bad line.
        let e = parse_exposition(
            "# TYPE c counter\nc_created{a=\"1\" 5\n# EOF\n",
            ExpositionFormat::OpenMetrics,
        );
        assert_eq!(
            (e.samples.len(), e.created.len(), e.errors.len()),
            (0, 0, 1)
        );
        // Many families, long names, metadata floods: bounded by the body, no panic.
        let flood: String = (0..20_000)
            .map(|i| {
                format!("# TYPE f{i} counter\n# UNIT f{i} bytes\nf{i}_total {i}\nf{i}_created 1\n")
            })
            .collect();
        let e = parse_exposition(&flood, ExpositionFormat::OpenMetrics);
        assert_eq!(
            (e.samples.len(), e.created.len(), e.errors.len()),
            (20_000, 20_000, 1)
        );
        let e = parse_exposition(
            &format!(
                "# HELP {} {}\n# EOF\n",
                "n".repeat(1 << 16),
                "\\".repeat(1 << 16)
            ),
            ExpositionFormat::OpenMetrics,
        );
        assert!(e.errors.is_empty());
        // Every prefix of a real body, in both formats: never a panic, never a `_created`
        // among the samples.
        for end in 0..=OM_BODY.len() {
            for f in [
                ExpositionFormat::OpenMetrics,
                ExpositionFormat::PrometheusText,
            ] {
                let e = parse_exposition(&OM_BODY[..end], f);
                assert!(e.samples.iter().all(|s| !s.name.ends_with("_created")));
                assert!(e.errors.len() <= 2, "at {end}: {:?}", e.errors);
            }
        }
    }
}
