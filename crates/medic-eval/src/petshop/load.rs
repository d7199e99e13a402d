//! Readers for the PetShop files: the adjacency-matrix graph, the metrics CSV with its
//! three-row header, and `target.json`. Every malformed row is an error naming file:line.

use medic_diagnose::rank::{CallGraph, MetricKind, Point, Series};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{path}: {err}")]
    Io { path: PathBuf, err: std::io::Error },
    #[error("{path}:{line}: {msg}")]
    Malformed {
        path: PathBuf,
        line: usize,
        msg: String,
    },
}

fn bad(path: &Path, line: usize, msg: impl Into<String>) -> LoadError {
    LoadError::Malformed {
        path: path.to_path_buf(),
        line,
        msg: msg.into(),
    }
}

pub(crate) fn read(path: &Path) -> Result<String, LoadError> {
    let bytes = std::fs::read(path).map_err(|err| LoadError::Io {
        path: path.to_path_buf(),
        err,
    })?;
    // A file cut inside a UTF-8 sequence still reads; the damaged row then fails to parse.
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// Splits one CSV line, honouring double quotes (`""` inside quotes is a quote).
fn fields(line: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            ('"', true) => quoted = false,
            ('"', false) if cur.is_empty() => quoted = true,
            (',', false) => out.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    if quoted {
        return Err("unterminated quoted field".into());
    }
    out.push(cur);
    Ok(out)
}

/// Numbered non-empty lines (1-based), fields split.
fn rows(path: &Path, text: &str) -> Result<Vec<(usize, Vec<String>)>, LoadError> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            fields(l.trim_end_matches('\r'))
                .map(|f| (i + 1, f))
                .map_err(|m| bad(path, i + 1, m))
        })
        .collect()
}

/// `graph.csv`: a header of node names, then one row per caller with a nonzero cell for
/// each callee.
pub fn graph(path: &Path) -> Result<CallGraph, LoadError> {
    parse_graph(path, &read(path)?)
}

pub fn parse_graph(path: &Path, text: &str) -> Result<CallGraph, LoadError> {
    let rows = rows(path, text)?;
    let Some((_, header)) = rows.first() else {
        return Err(bad(path, 1, "empty graph file"));
    };
    if rows.len() < 2 {
        return Err(bad(path, 2, "no rows after the header (truncated?)"));
    }
    let names = &header[1..];
    let mut g = CallGraph::new();
    for n in names {
        g.add_node(n);
    }
    for (line, row) in &rows[1..] {
        if row.len() != header.len() {
            return Err(bad(
                path,
                *line,
                format!("{} fields, the header has {}", row.len(), header.len()),
            ));
        }
        let caller = &row[0];
        g.add_node(caller);
        for (callee, cell) in names.iter().zip(&row[1..]) {
            let w: f64 = cell.trim().parse().map_err(|_| {
                bad(
                    path,
                    *line,
                    format!("cell for {callee} is not a number: {cell:?}"),
                )
            })?;
            if w != 0.0 && w.is_finite() {
                g.add_edge(caller, callee);
            }
        }
    }
    Ok(g)
}

/// What a metrics file held: its series and the columns it could not use.
#[derive(Debug, Default)]
pub struct Metrics {
    pub series: Vec<Series>,
    /// Columns whose metric is not one the ranker knows (by name), skipped.
    pub skipped_columns: Vec<String>,
}

/// `metrics.csv`: rows `microservice`, `metric`, `statistic`, `unix_timestamp` label each
/// column; then one row per timestamp. Empty cells are gaps (NaN).
pub fn metrics(path: &Path) -> Result<Metrics, LoadError> {
    parse_metrics(path, &read(path)?)
}

pub fn parse_metrics(path: &Path, text: &str) -> Result<Metrics, LoadError> {
    let rows = rows(path, text)?;
    if rows.len() < 4 {
        return Err(bad(
            path,
            rows.last().map_or(1, |r| r.0 + 1),
            "truncated: expected the four header rows (microservice, metric, statistic, unix_timestamp)",
        ));
    }
    let expect = ["microservice", "metric", "statistic", "unix_timestamp"];
    for ((line, row), label) in rows.iter().zip(expect) {
        if row[0].trim() != label {
            return Err(bad(
                path,
                *line,
                format!("expected a row labelled {label}, found {:?}", row[0]),
            ));
        }
    }
    let width = rows[0].1.len();
    for (line, row) in &rows[1..3] {
        if row.len() != width {
            return Err(bad(
                path,
                *line,
                format!("{} fields, the header has {width}", row.len()),
            ));
        }
    }
    let mut out = Metrics::default();
    let mut cols: Vec<(usize, Series)> = Vec::new();
    for c in 1..width {
        let (node, metric, stat) = (&rows[0].1[c], &rows[1].1[c], &rows[2].1[c]);
        match MetricKind::parse(metric.trim()) {
            Some(kind) => cols.push((
                c,
                Series {
                    node: node.clone(),
                    kind,
                    name: stat.clone(),
                    points: Vec::new(),
                },
            )),
            None => out.skipped_columns.push(format!("{node}/{metric}/{stat}")),
        }
    }
    for (line, row) in &rows[4..] {
        if row.len() != width {
            return Err(bad(
                path,
                *line,
                format!(
                    "{} fields, the header has {width} (truncated or malformed row)",
                    row.len()
                ),
            ));
        }
        let ts: f64 = row[0]
            .trim()
            .parse()
            .ok()
            .filter(|t: &f64| t.is_finite())
            .ok_or_else(|| {
                bad(
                    path,
                    *line,
                    format!("timestamp is not a number: {:?}", row[0]),
                )
            })?;
        for (c, s) in &mut cols {
            let cell = row[*c].trim();
            let value = if cell.is_empty() {
                f64::NAN
            } else {
                cell.parse().map_err(|_| {
                    bad(
                        path,
                        *line,
                        format!("column {} ({}): not a number: {cell:?}", *c + 1, s.node),
                    )
                })?
            };
            s.points.push(Point { ts, value });
        }
    }
    out.series = cols.into_iter().map(|(_, s)| s).collect();
    Ok(out)
}

#[derive(Debug, serde::Deserialize)]
pub struct Target {
    pub target: TargetSymptom,
    #[serde(default)]
    pub root_cause: Option<RootCause>,
}

#[derive(Debug, serde::Deserialize)]
pub struct TargetSymptom {
    pub node: String,
    pub metric: String,
    pub timestamp: f64,
}

#[derive(Debug, serde::Deserialize)]
pub struct RootCause {
    pub node: String,
}

pub fn target(path: &Path) -> Result<Target, LoadError> {
    let text = read(path)?;
    serde_json::from_str(&text).map_err(|e| bad(path, e.line(), e.to_string()))
}
