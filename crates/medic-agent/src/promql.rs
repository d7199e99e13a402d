//! PromQL at diagnosis (evidence queries per service) and at verification (`verify_promql`
//! checks). Queries run in spawned tasks with the client's timeout and report back through
//! the agent's task channel, so a slow or dead Prometheus never blocks the loop.

use medic_config::{EvidenceQuery, Policy};
use medic_core::{Evidence, Ts};
use medic_signals::prometheus_api::{PromClient, PromError, QueryResult, render_template};
use std::future::Future;

/// Most services queried for one incident.
pub(crate) const MAX_SERVICES: usize = 8;
/// Most series kept from one evidence query.
pub(crate) const MAX_SERIES_PER_QUERY: usize = 10;

/// PromQL evidence for `services`: one `Evidence::Metric` per result series (named after the
/// query), or a note saying why a query gave nothing.
pub(crate) async fn evidence(
    client: &PromClient,
    queries: &[EvidenceQuery],
    services: &[String],
    now: Ts,
) -> Vec<Evidence> {
    evidence_with(queries, services, now, |expr| {
        let c = client.clone();
        async move { c.query(&expr, None).await }
    })
    .await
}

/// [`evidence`] over any query function (a test double in unit tests).
pub(crate) async fn evidence_with<F, Fut>(
    queries: &[EvidenceQuery],
    services: &[String],
    now: Ts,
    query: F,
) -> Vec<Evidence>
where
    F: Fn(String) -> Fut,
    Fut: Future<Output = Result<QueryResult, PromError>>,
{
    let mut out = Vec::new();
    for service in services.iter().take(MAX_SERVICES) {
        for q in queries {
            let expr = render_template(&q.expr, service, service);
            match query(expr.clone()).await {
                Ok(r) => {
                    let samples = r.samples();
                    if samples.is_empty() {
                        out.push(Evidence::Note {
                            text: format!("promql {} on {service}: no data (`{expr}`)", q.name),
                        });
                    }
                    for s in samples.iter().take(MAX_SERIES_PER_QUERY) {
                        out.push(Evidence::Metric {
                            ts: if s.ts.0 > 0 { s.ts } else { now },
                            service: service.clone(),
                            name: format!("promql:{}", q.name),
                            value: s.value,
                            baseline: None,
                            unit: String::new(),
                        });
                    }
                    if samples.len() > MAX_SERIES_PER_QUERY {
                        out.push(Evidence::Note {
                            text: format!(
                                "promql {} on {service}: {} more series not shown",
                                q.name,
                                samples.len() - MAX_SERIES_PER_QUERY
                            ),
                        });
                    }
                }
                Err(e) => out.push(Evidence::Note {
                    text: format!("promql {} on {service}: query failed: {e}", q.name),
                }),
            }
        }
    }
    out
}

/// The policy's `verify_promql` expressions for `target`, templated.
pub(crate) fn checks_for(policy: Option<&Policy>, target: &str) -> Vec<String> {
    policy
        .map(|p| {
            p.verify_promql
                .iter()
                .map(|e| render_template(e, target, target))
                .collect()
        })
        .unwrap_or_default()
}

/// Runs each check: `Some(true)` when it returns something, `Some(false)` when it returns
/// nothing, `None` when it could not be run (an error is "unknown", never a pass).
pub(crate) async fn run_checks<F, Fut>(checks: &[String], query: F) -> Vec<(String, Option<bool>)>
where
    F: Fn(String) -> Fut,
    Fut: Future<Output = Result<QueryResult, PromError>>,
{
    let mut out = Vec::with_capacity(checks.len());
    for c in checks {
        let r = match query(c.clone()).await {
            Ok(r) => Some(r.is_true()),
            Err(e) => {
                tracing::warn!("verify_promql `{c}`: {e}");
                None
            }
        };
        out.push((c.clone(), r));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use medic_signals::prometheus_api::InstantSample;

    fn vector(values: &[f64]) -> QueryResult {
        QueryResult::Vector(
            values
                .iter()
                .map(|v| InstantSample {
                    labels: Default::default(),
                    ts: Ts(5),
                    value: *v,
                })
                .collect(),
        )
    }

    #[tokio::test]
    async fn checks_use_the_query_result_and_errors_are_unknown() {
        let checks = vec![
            "ok < 1".to_string(),
            "bad < 1".to_string(),
            "broken".to_string(),
        ];
        let r = run_checks(&checks, |expr| async move {
            match expr.as_str() {
                "ok < 1" => Ok(vector(&[0.5])),
                "bad < 1" => Ok(vector(&[])),
                _ => Err(PromError::InvalidQuery {
                    query: expr,
                    reason: "test double refuses".into(),
                }),
            }
        })
        .await;
        assert_eq!(
            r,
            vec![
                ("ok < 1".to_string(), Some(true)),
                ("bad < 1".to_string(), Some(false)),
                ("broken".to_string(), None),
            ]
        );
    }

    #[tokio::test]
    async fn evidence_is_templated_bounded_and_failures_are_notes() {
        let queries = vec![
            EvidenceQuery {
                name: "errors".into(),
                expr: r#"rate(x{service="{service}"}[1m])"#.into(),
            },
            EvidenceQuery {
                name: "down".into(),
                expr: "fail".into(),
            },
        ];
        let seen = std::sync::Mutex::new(Vec::new());
        let ev = evidence_with(&queries, &["payment".into()], Ts(1), |expr| {
            if let Ok(mut s) = seen.lock() {
                s.push(expr.clone());
            }
            async move {
                if expr == "fail" {
                    Err(PromError::InvalidQuery {
                        query: expr,
                        reason: "no".into(),
                    })
                } else {
                    Ok(vector(&[0.25; 12]))
                }
            }
        })
        .await;
        assert_eq!(
            seen.lock().map(|s| s[0].clone()).unwrap_or_default(),
            r#"rate(x{service="payment"}[1m])"#
        );
        let metrics = ev
            .iter()
            .filter(|e| matches!(e, Evidence::Metric { name, .. } if name == "promql:errors"))
            .count();
        assert_eq!(metrics, MAX_SERIES_PER_QUERY);
        assert!(ev.iter().any(|e| e.describe().contains("2 more series")));
        assert!(ev.iter().any(|e| e.describe().contains("query failed")));
    }

    #[test]
    fn checks_are_templated_with_the_target() {
        let p = Policy {
            verify_promql: vec![r#"up{service="{target}"} == 1"#.into()],
            ..Policy::default()
        };
        assert_eq!(
            checks_for(Some(&p), "payment"),
            vec![r#"up{service="payment"} == 1"#.to_string()]
        );
        assert!(checks_for(None, "x").is_empty());
    }
}
