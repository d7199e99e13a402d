//! `prometheus_query`: polls PromQL instant queries on a Prometheus server. Each result
//! series becomes one sample named after the query; samples are grouped into one `Metrics`
//! signal per (service, instance), so detectors run on them like on scraped metrics.

use super::{Source, SourceContext, SourceFuture, invalid, positive};
use crate::SignalsError;
use crate::prometheus_api::{InstantSample, PromClient};
use crate::stats::Counter;
use medic_config::{PromQuery, SourceConfig, SourceKind};
use medic_core::{MetricSample, Signal, SignalPayload, Ts};
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::time::Instant;

pub(crate) struct PrometheusQuerySource {
    name: String,
    client: PromClient,
    queries: Vec<PromQuery>,
    interval: Duration,
}

impl PrometheusQuerySource {
    pub(crate) fn build(cfg: &SourceConfig) -> Result<Box<dyn Source>, SignalsError> {
        let SourceKind::PrometheusQuery {
            url,
            queries,
            interval,
            timeout,
        } = &cfg.kind
        else {
            return Err(invalid(cfg, "expected a prometheus_query source"));
        };
        let interval = positive(cfg, "interval", *interval)?;
        let timeout = positive(cfg, "timeout", *timeout)?;
        if queries.is_empty() {
            return Err(invalid(cfg, "expected at least one query in `queries`"));
        }
        let client = PromClient::new(url, timeout).map_err(|e| invalid(cfg, e.to_string()))?;
        Ok(Box::new(PrometheusQuerySource {
            name: cfg.name.clone(),
            client,
            queries: queries.clone(),
            interval,
        }))
    }
}

/// Groups one round of query results into signals: one per (service, instance).
pub(crate) fn to_signals(
    source: &str,
    now: Ts,
    results: &[(&PromQuery, Vec<InstantSample>)],
) -> Vec<Signal> {
    let mut groups: BTreeMap<(Option<String>, Option<String>), Vec<MetricSample>> = BTreeMap::new();
    for (q, samples) in results {
        for s in samples {
            let mut labels = s.labels.clone();
            labels.remove("__name__");
            let service = labels.get(&q.service_label).cloned();
            let instance = labels.get("instance").cloned();
            groups
                .entry((service, instance))
                .or_default()
                .push(MetricSample {
                    name: q.name.clone(),
                    labels,
                    value: s.value,
                });
        }
    }
    groups
        .into_iter()
        .map(|((service, instance), samples)| Signal {
            ts: now,
            source: source.to_string(),
            service,
            instance,
            payload: SignalPayload::Metrics { samples },
        })
        .collect()
}

impl Source for PrometheusQuerySource {
    fn name(&self) -> &str {
        &self.name
    }

    fn run(self: Box<Self>, mut ctx: SourceContext) -> SourceFuture {
        Box::pin(async move {
            let mut next = Instant::now();
            loop {
                let now = Ts::now();
                let mut results = Vec::with_capacity(self.queries.len());
                for q in &self.queries {
                    match self.client.query(&q.expr, Some(now)).await {
                        Ok(r) => results.push((q, r.samples().to_vec())),
                        Err(e) => {
                            // A failed query is the server's problem, not a service's: no
                            // TargetDown, counted and logged.
                            ctx.stats.incr(Counter::ScrapeFailed);
                            tracing::warn!(source = %self.name, query = %q.name, "{e}");
                        }
                    }
                }
                for s in to_signals(&self.name, now, &results) {
                    if !ctx.emit(s).await {
                        return;
                    }
                }
                if !ctx.next_period(&mut next, self.interval).await {
                    return;
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_group_by_service_and_instance() {
        let q = PromQuery {
            name: "err_ratio".into(),
            expr: "x".into(),
            service_label: "job".into(),
        };
        let s = |job: &str, inst: &str, v: f64| InstantSample {
            labels: [
                ("__name__".to_string(), "x".to_string()),
                ("job".to_string(), job.to_string()),
                ("instance".to_string(), inst.to_string()),
            ]
            .into(),
            ts: Ts(0),
            value: v,
        };
        let res = vec![(
            &q,
            vec![s("a", "a-0", 1.0), s("a", "a-1", 2.0), s("b", "b-0", 3.0)],
        )];
        let sigs = to_signals("pq", Ts(5), &res);
        assert_eq!(sigs.len(), 3);
        assert_eq!(sigs[0].service.as_deref(), Some("a"));
        let SignalPayload::Metrics { samples } = &sigs[2].payload else {
            panic!("metrics expected");
        };
        assert_eq!(samples[0].name, "err_ratio");
        assert_eq!(samples[0].value, 3.0);
        assert!(!samples[0].labels.contains_key("__name__"));
    }
}
