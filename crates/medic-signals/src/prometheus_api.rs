//! A client for a Prometheus server's HTTP API (`/api/v1/query`, `/api/v1/query_range`):
//! the `prometheus_query` source, PromQL evidence at diagnosis and `verify_promql` checks all
//! go through it. Every request has a timeout and a bounded body; errors name the query.

use medic_core::Ts;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// Larger responses are refused: a broad query must not exhaust medic's memory.
pub const MAX_RESPONSE_BYTES: usize = 16 << 20;
/// Longest query text sent; longer ones are refused before any request.
pub const MAX_QUERY_CHARS: usize = 16 * 1024;
/// Most points one range query may ask for (Prometheus itself refuses more than 11,000).
pub const MAX_RANGE_POINTS: f64 = 11_000.0;

#[derive(Debug, thiserror::Error)]
pub enum PromError {
    #[error("invalid Prometheus URL `{0}`: expected `http://host:port` or `https://host:port`")]
    InvalidUrl(String),
    #[error("cannot build the HTTP client for Prometheus")]
    Client(#[source] reqwest::Error),
    #[error("query `{query}`: request to {url} failed")]
    Request {
        query: String,
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("query `{query}`: no answer within {timeout:?}")]
    Timeout { query: String, timeout: Duration },
    #[error("query `{query}`: Prometheus answered {status} ({error_type}): {error}")]
    Api {
        query: String,
        status: u16,
        error_type: String,
        error: String,
    },
    #[error("query `{query}`: response larger than {MAX_RESPONSE_BYTES} bytes")]
    TooLarge { query: String },
    #[error("query `{query}`: unexpected response: {reason}")]
    Decode { query: String, reason: String },
    #[error("query `{query}`: {reason}")]
    InvalidQuery { query: String, reason: String },
}

/// One series of an instant vector.
#[derive(Clone, Debug, PartialEq)]
pub struct InstantSample {
    pub labels: BTreeMap<String, String>,
    pub ts: Ts,
    pub value: f64,
}

/// One series of a range query.
#[derive(Clone, Debug, PartialEq)]
pub struct RangeSeries {
    pub labels: BTreeMap<String, String>,
    pub points: Vec<(Ts, f64)>,
}

/// What an instant query returned.
#[derive(Clone, Debug, PartialEq)]
pub enum QueryResult {
    Vector(Vec<InstantSample>),
    Scalar {
        ts: Ts,
        value: f64,
    },
    String {
        ts: Ts,
        value: String,
    },
    /// A range selector at top level (`up[1m]`).
    Matrix(Vec<RangeSeries>),
}

impl QueryResult {
    /// A boolean PromQL expression (`x < 0.05`) is true when it returns something: a
    /// non-empty vector, or a scalar other than 0 (a `bool` comparison).
    pub fn is_true(&self) -> bool {
        match self {
            QueryResult::Vector(v) => !v.is_empty(),
            QueryResult::Matrix(m) => !m.is_empty(),
            QueryResult::Scalar { value, .. } => *value != 0.0 && !value.is_nan(),
            QueryResult::String { .. } => false,
        }
    }

    /// The series of a vector result (empty for other types).
    pub fn samples(&self) -> &[InstantSample] {
        match self {
            QueryResult::Vector(v) => v,
            _ => &[],
        }
    }
}

#[derive(Deserialize)]
struct Envelope {
    status: String,
    #[serde(default)]
    data: Option<Data>,
    #[serde(default, rename = "errorType")]
    error_type: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Deserialize)]
struct Data {
    #[serde(rename = "resultType")]
    result_type: String,
    result: serde_json::Value,
}

#[derive(Deserialize)]
struct RawVector {
    #[serde(default)]
    metric: BTreeMap<String, String>,
    value: (f64, String),
}

#[derive(Deserialize)]
struct RawMatrix {
    #[serde(default)]
    metric: BTreeMap<String, String>,
    #[serde(default)]
    values: Vec<(f64, String)>,
}

/// A Prometheus HTTP API client. Cheap to clone.
#[derive(Clone, Debug)]
pub struct PromClient {
    http: reqwest::Client,
    base: String,
    timeout: Duration,
}

impl PromClient {
    /// `base`: the server's URL (`http://127.0.0.1:9090`); `timeout` bounds every request.
    pub fn new(base: &str, timeout: Duration) -> Result<PromClient, PromError> {
        let base = base.trim().trim_end_matches('/');
        let rest = base
            .strip_prefix("http://")
            .or_else(|| base.strip_prefix("https://"));
        if !rest.is_some_and(|r| !r.is_empty() && !r.contains(char::is_whitespace)) {
            return Err(PromError::InvalidUrl(base.to_string()));
        }
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(PromError::Client)?;
        Ok(PromClient {
            http,
            base: base.to_string(),
            timeout,
        })
    }

    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// An instant query, evaluated at `at` (the server's now when `None`).
    pub async fn query(&self, expr: &str, at: Option<Ts>) -> Result<QueryResult, PromError> {
        check_query(expr)?;
        let mut params = vec![("query", expr.to_string())];
        if let Some(t) = at {
            params.push(("time", format_ts(t)));
        }
        let data = self.get("/api/v1/query", expr, &params).await?;
        decode_instant(expr, data)
    }

    /// A range query from `start` to `end` every `step`.
    pub async fn query_range(
        &self,
        expr: &str,
        start: Ts,
        end: Ts,
        step: Duration,
    ) -> Result<Vec<RangeSeries>, PromError> {
        check_query(expr)?;
        let step_s = step.as_secs_f64();
        if step_s <= 0.0 || end < start {
            return Err(PromError::InvalidQuery {
                query: expr.to_string(),
                reason: "expected a positive step and end not before start".into(),
            });
        }
        if end.secs_since(start) / step_s > MAX_RANGE_POINTS {
            return Err(PromError::InvalidQuery {
                query: expr.to_string(),
                reason: format!("more than {MAX_RANGE_POINTS} points: expected a larger step"),
            });
        }
        let params = vec![
            ("query", expr.to_string()),
            ("start", format_ts(start)),
            ("end", format_ts(end)),
            ("step", format!("{step_s:.3}")),
        ];
        let data = self.get("/api/v1/query_range", expr, &params).await?;
        if data.result_type != "matrix" {
            return Err(decode_err(
                expr,
                format!("expected resultType `matrix`, found `{}`", data.result_type),
            ));
        }
        decode_matrix(expr, data.result)
    }

    /// Runs a boolean expression: true when it returns anything (see [`QueryResult::is_true`]).
    pub async fn is_true(&self, expr: &str) -> Result<bool, PromError> {
        Ok(self.query(expr, None).await?.is_true())
    }

    async fn get(
        &self,
        path: &str,
        expr: &str,
        params: &[(&str, String)],
    ) -> Result<Data, PromError> {
        let url = format!("{}{path}", self.base);
        let fut = async {
            // POST with a form body: long queries do not hit URL length limits.
            let body = form_encode(params);
            let mut resp = self
                .http
                .post(&url)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body)
                .send()
                .await
                .map_err(|source| PromError::Request {
                    query: expr.to_string(),
                    url: url.clone(),
                    source,
                })?;
            let status = resp.status().as_u16();
            let mut buf = Vec::new();
            while let Some(chunk) = resp.chunk().await.map_err(|source| PromError::Request {
                query: expr.to_string(),
                url: url.clone(),
                source,
            })? {
                if buf.len() + chunk.len() > MAX_RESPONSE_BYTES {
                    return Err(PromError::TooLarge {
                        query: expr.to_string(),
                    });
                }
                buf.extend_from_slice(&chunk);
            }
            Ok((status, buf))
        };
        let (status, body) = tokio::time::timeout(self.timeout, fut)
            .await
            .map_err(|_| PromError::Timeout {
                query: expr.to_string(),
                timeout: self.timeout,
            })??;
        let env: Envelope = serde_json::from_slice(&body).map_err(|e| {
            let text = String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
            decode_err(
                expr,
                format!("HTTP {status}, expected the API's JSON envelope ({e}): {text}"),
            )
        })?;
        if env.status != "success" {
            return Err(PromError::Api {
                query: expr.to_string(),
                status,
                error_type: env.error_type.unwrap_or_else(|| "unknown".into()),
                error: env.error.unwrap_or_default(),
            });
        }
        env.data
            .ok_or_else(|| decode_err(expr, "status success without `data`".into()))
    }
}

fn check_query(expr: &str) -> Result<(), PromError> {
    if expr.trim().is_empty() || expr.len() > MAX_QUERY_CHARS {
        return Err(PromError::InvalidQuery {
            query: expr.chars().take(80).collect(),
            reason: format!("expected a non-empty query of at most {MAX_QUERY_CHARS} bytes"),
        });
    }
    Ok(())
}

fn decode_err(expr: &str, reason: String) -> PromError {
    PromError::Decode {
        query: expr.to_string(),
        reason,
    }
}

fn format_ts(t: Ts) -> String {
    format!("{:.3}", t.as_secs_f64())
}

/// Prometheus writes values as strings: numbers, `NaN`, `+Inf`, `-Inf`.
fn parse_value(expr: &str, s: &str) -> Result<f64, PromError> {
    match s {
        "NaN" => Ok(f64::NAN),
        "+Inf" | "Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        _ => s
            .parse::<f64>()
            .map_err(|_| decode_err(expr, format!("expected a sample value, found `{s}`"))),
    }
}

fn decode_instant(expr: &str, data: Data) -> Result<QueryResult, PromError> {
    let bad = |e: serde_json::Error| decode_err(expr, e.to_string());
    match data.result_type.as_str() {
        "vector" => {
            let raw: Vec<RawVector> = serde_json::from_value(data.result).map_err(bad)?;
            raw.into_iter()
                .map(|r| {
                    Ok(InstantSample {
                        labels: r.metric,
                        ts: Ts::from_secs_f64(r.value.0),
                        value: parse_value(expr, &r.value.1)?,
                    })
                })
                .collect::<Result<Vec<_>, _>>()
                .map(QueryResult::Vector)
        }
        "scalar" => {
            let (t, v): (f64, String) = serde_json::from_value(data.result).map_err(bad)?;
            Ok(QueryResult::Scalar {
                ts: Ts::from_secs_f64(t),
                value: parse_value(expr, &v)?,
            })
        }
        "string" => {
            let (t, v): (f64, String) = serde_json::from_value(data.result).map_err(bad)?;
            Ok(QueryResult::String {
                ts: Ts::from_secs_f64(t),
                value: v,
            })
        }
        "matrix" => decode_matrix(expr, data.result).map(QueryResult::Matrix),
        other => Err(decode_err(
            expr,
            format!("unknown resultType `{other}`: expected vector, scalar, string or matrix"),
        )),
    }
}

fn decode_matrix(expr: &str, v: serde_json::Value) -> Result<Vec<RangeSeries>, PromError> {
    let raw: Vec<RawMatrix> =
        serde_json::from_value(v).map_err(|e| decode_err(expr, e.to_string()))?;
    raw.into_iter()
        .map(|r| {
            let points = r
                .values
                .iter()
                .map(|(t, v)| Ok((Ts::from_secs_f64(*t), parse_value(expr, v)?)))
                .collect::<Result<Vec<_>, PromError>>()?;
            Ok(RangeSeries {
                labels: r.metric,
                points,
            })
        })
        .collect()
}

/// `application/x-www-form-urlencoded` (reqwest's `form` needs a feature the workspace
/// does not enable; this is all it would do).
fn form_encode(params: &[(&str, String)]) -> String {
    let mut out = String::new();
    for (i, (k, v)) in params.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        percent_encode(k, &mut out);
        out.push('=');
        percent_encode(v, &mut out);
    }
    out
}

fn percent_encode(s: &str, out: &mut String) {
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
}

/// Replaces `{service}` and `{target}` in a PromQL template. The values are escaped for a
/// double-quoted PromQL string, so a service name cannot change the query's meaning.
pub fn render_template(template: &str, service: &str, target: &str) -> String {
    let esc = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"");
    template
        .replace("{service}", &esc(service))
        .replace("{target}", &esc(target))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_every_result_type() {
        let v = serde_json::json!([{"metric":{"service":"a"},"value":[1.5,"0.25"]},{"metric":{},"value":[1.5,"NaN"]}]);
        let r = decode_instant(
            "q",
            Data {
                result_type: "vector".into(),
                result: v,
            },
        )
        .unwrap();
        assert_eq!(r.samples().len(), 2);
        assert_eq!(r.samples()[0].value, 0.25);
        assert_eq!(r.samples()[0].ts, Ts(1500));
        assert!(r.samples()[1].value.is_nan());
        assert!(r.is_true());
        let s = decode_instant(
            "q",
            Data {
                result_type: "scalar".into(),
                result: serde_json::json!([1, "0"]),
            },
        )
        .unwrap();
        assert!(!s.is_true());
        assert!(!QueryResult::Vector(vec![]).is_true());
        let bad = decode_instant(
            "q",
            Data {
                result_type: "vector".into(),
                result: serde_json::json!([{"metric":{},"value":[1,"x"]}]),
            },
        );
        assert!(matches!(bad, Err(PromError::Decode { .. })));
        let unknown = decode_instant(
            "q",
            Data {
                result_type: "histogram".into(),
                result: serde_json::json!([]),
            },
        );
        assert!(unknown.unwrap_err().to_string().contains("histogram"));
    }

    #[test]
    fn templates_escape_values() {
        assert_eq!(
            render_template(
                r#"up{service="{service}"} and on() x{t="{target}"}"#,
                "pay",
                "a\"b"
            ),
            r#"up{service="pay"} and on() x{t="a\"b"}"#
        );
    }

    #[test]
    fn form_encoding() {
        assert_eq!(
            form_encode(&[("query", "rate(x{a=\"b\"}[1m]) > 0.5".into())]),
            "query=rate%28x%7Ba%3D%22b%22%7D%5B1m%5D%29+%3E+0.5"
        );
    }

    #[test]
    fn bad_urls_and_queries_are_refused() {
        assert!(PromClient::new("localhost:9090", Duration::from_secs(1)).is_err());
        assert!(PromClient::new("http://", Duration::from_secs(1)).is_err());
        let c = PromClient::new("http://127.0.0.1:9/", Duration::from_secs(1)).unwrap();
        assert_eq!(c.base_url(), "http://127.0.0.1:9");
        assert!(check_query(" ").is_err());
        assert!(check_query(&"x".repeat(MAX_QUERY_CHARS + 1)).is_err());
    }
}
