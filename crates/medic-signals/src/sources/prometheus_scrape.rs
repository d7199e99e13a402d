//! Prometheus scrapes → one `Metrics` signal per successful scrape, `TargetDown` per
//! failed one. Targets come from a `file_sd` file (re-read every interval) and a static list.

use super::{Source, SourceContext, SourceFuture, positive};
use crate::SignalsError;
use crate::prometheus_text::{ExpositionFormat, SCRAPE_ACCEPT, parse_exposition};
use crate::stats::{Counter, SourceStats};
use medic_config::{ScrapeTarget, SourceConfig, SourceKind};
use medic_core::{MetricSample, Signal, SignalPayload, Ts};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinSet;
use tokio::time::Instant;

/// Larger bodies are refused: a misbehaving exporter must not exhaust medic's memory.
pub const MAX_BODY_BYTES: usize = 10 << 20;

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Target {
    pub url: String,
    pub service: Option<String>,
    pub instance: Option<String>,
}

#[derive(serde::Deserialize)]
struct FileSdGroup {
    targets: Vec<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

fn metrics_url(address: &str) -> String {
    if address.contains("://") {
        address.to_string()
    } else {
        format!("http://{address}/metrics")
    }
}

/// Targets of a `file_sd` JSON text.
pub(crate) fn parse_file_sd(text: &str) -> Result<Vec<Target>, String> {
    let groups: Vec<FileSdGroup> = serde_json::from_str(text).map_err(|e| {
        format!("expected a JSON array of {{\"targets\":[...],\"labels\":{{...}}}}: {e}")
    })?;
    Ok(groups
        .into_iter()
        .flat_map(|g| {
            let service = g.labels.get("service").cloned();
            let instance = g.labels.get("instance").cloned();
            g.targets.into_iter().map(move |addr| Target {
                instance: instance.clone().or_else(|| Some(addr.clone())),
                url: metrics_url(&addr),
                service: service.clone(),
            })
        })
        .collect())
}

fn static_target(t: &ScrapeTarget) -> Target {
    Target {
        url: metrics_url(&t.address),
        service: Some(t.service.clone()),
        instance: t.instance.clone().or_else(|| Some(t.address.clone())),
    }
}

pub(crate) struct PrometheusScrapeSource {
    name: String,
    file_sd: Option<PathBuf>,
    static_targets: Vec<Target>,
    interval: Duration,
    client: reqwest::Client,
}

impl PrometheusScrapeSource {
    pub(crate) fn build(cfg: &SourceConfig) -> Result<Box<dyn Source>, SignalsError> {
        let SourceKind::PrometheusScrape {
            file_sd,
            targets,
            interval,
            timeout,
        } = &cfg.kind
        else {
            return Err(super::invalid(cfg, "expected a prometheus_scrape source"));
        };
        if file_sd.is_none() && targets.is_empty() {
            return Err(super::invalid(
                cfg,
                "expected `file_sd` or at least one target",
            ));
        }
        let client = reqwest::Client::builder()
            .timeout(positive(cfg, "timeout", *timeout)?)
            .build()
            .map_err(|source| SignalsError::HttpClient {
                source_name: cfg.name.clone(),
                source,
            })?;
        Ok(Box::new(PrometheusScrapeSource {
            name: cfg.name.clone(),
            file_sd: file_sd.clone(),
            static_targets: targets.iter().map(static_target).collect(),
            interval: positive(cfg, "interval", *interval)?,
            client,
        }))
    }
}

/// GETs one target's metrics; the error names what went wrong.
pub(crate) async fn scrape(
    client: &reqwest::Client,
    url: &str,
    stats: &SourceStats,
) -> Result<Vec<MetricSample>, String> {
    let mut resp = client
        .get(url)
        .header(reqwest::header::ACCEPT, SCRAPE_ACCEPT)
        .send()
        .await
        .map_err(|e| describe(&e))?;
    if !resp.status().is_success() {
        return Err(format!("{url} answered HTTP {}", resp.status()));
    }
    if resp
        .content_length()
        .is_some_and(|n| n > MAX_BODY_BYTES as u64)
    {
        return Err(format!("{url}: body exceeds {MAX_BODY_BYTES} bytes"));
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| describe(&e))? {
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(format!("{url}: body exceeds {MAX_BODY_BYTES} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    let format = ExpositionFormat::from_content_type(
        resp.headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok()),
    );
    let text = String::from_utf8_lossy(&body);
    let parsed = parse_exposition(&text, format);
    let errors = parsed.errors;
    if !errors.is_empty() {
        stats.add(Counter::MalformedMetricLine, errors.len() as u64);
        tracing::debug!(%url, first = %errors[0], count = errors.len(), "skipped malformed metric lines");
    }
    if !parsed.created.is_empty() {
        // Creation timestamps, not values: no detector scores them.
        tracing::debug!(%url, count = parsed.created.len(), "left out `_created` samples");
    }
    Ok(parsed.samples)
}

/// reqwest's Display hides the cause (`error sending request`); the chain names it.
fn describe(e: &reqwest::Error) -> String {
    let mut msg = if e.is_timeout() {
        "timed out".to_string()
    } else if e.is_connect() {
        "connection failed".to_string()
    } else {
        e.to_string()
    };
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        source = s.source();
    }
    if let Some(url) = e.url() {
        msg = format!("{url}: {msg}");
    }
    msg
}

/// Scrapes every target concurrently, so that one slow target does not delay the others'
/// samples, and emits one `Metrics` (or `TargetDown`) signal per target; false when the
/// source should stop. Shared with the `kubernetes` source's annotated-pod scrapes.
pub(crate) async fn scrape_targets(
    ctx: &mut SourceContext,
    source: &str,
    client: &reqwest::Client,
    targets: Vec<Target>,
) -> bool {
    let mut set = JoinSet::new();
    for target in targets {
        let client = client.clone();
        let stats = Arc::clone(&ctx.stats);
        set.spawn(async move {
            let result = scrape(&client, &target.url, &stats).await;
            (target, result, Ts::now())
        });
    }
    while let Some(joined) = set.join_next().await {
        let Ok((target, result, ts)) = joined else {
            continue;
        };
        let payload = match result {
            Ok(samples) => SignalPayload::Metrics { samples },
            Err(error) => {
                ctx.stats.incr(Counter::ScrapeFailed);
                SignalPayload::TargetDown { error }
            }
        };
        let signal = Signal {
            ts,
            source: source.to_string(),
            service: target.service,
            instance: target.instance,
            payload,
        };
        if !ctx.emit(signal).await {
            return false;
        }
    }
    true
}

impl PrometheusScrapeSource {
    async fn read_file_sd(path: &Path) -> Result<Vec<Target>, String> {
        let text = tokio::fs::read_to_string(path)
            .await
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        parse_file_sd(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    async fn run_loop(self, mut ctx: SourceContext) {
        let mut sd_targets: Vec<Target> = Vec::new();
        let mut next = Instant::now();
        loop {
            if let Some(path) = &self.file_sd {
                match Self::read_file_sd(path).await {
                    Ok(t) => sd_targets = t,
                    Err(e) => {
                        // Mid-rewrite or briefly missing: keep the previous targets.
                        ctx.stats.incr(Counter::FileSdError);
                        tracing::warn!(source = %self.name, error = %e, "file_sd unusable, keeping previous targets");
                    }
                }
            }
            let mut targets: Vec<Target> = self
                .static_targets
                .iter()
                .chain(&sd_targets)
                .cloned()
                .collect();
            targets.sort();
            targets.dedup();

            if !scrape_targets(&mut ctx, &self.name, &self.client, targets).await {
                return;
            }
            if !ctx.next_period(&mut next, self.interval).await {
                return;
            }
        }
    }
}

impl Source for PrometheusScrapeSource {
    fn name(&self) -> &str {
        &self.name
    }

    fn run(self: Box<Self>, ctx: SourceContext) -> SourceFuture {
        Box::pin(self.run_loop(ctx))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_sd_targets() {
        let t = parse_file_sd(
            r#"[{"targets":["127.0.0.1:1","127.0.0.1:2"],"labels":{"service":"checkout","instance":"checkout-0"}},
                {"targets":["http://h:9/m"]}]"#,
        )
        .unwrap();
        assert_eq!(t.len(), 3);
        assert_eq!(t[0].url, "http://127.0.0.1:1/metrics");
        assert_eq!(t[0].service.as_deref(), Some("checkout"));
        assert_eq!(t[1].instance.as_deref(), Some("checkout-0"));
        assert_eq!(t[2].url, "http://h:9/m");
        assert_eq!(t[2].service, None);
        assert_eq!(t[2].instance.as_deref(), Some("http://h:9/m"));
    }

    #[test]
    fn file_sd_malformed() {
        for bad in [
            "",
            "{}",
            "[{\"targets\":",
            "[{\"labels\":{}}]",
            "[{\"targets\":[1]}]",
        ] {
            assert!(parse_file_sd(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_file_sd("[]").unwrap(), vec![]);
    }

    /// A hand-written exporter (test double: the Debian Prometheus 2.42 on this machine serves
    /// only the 0.0.4 format on its own `/metrics`): OpenMetrics when the `Accept` header asks
    /// for it, as client_golang/client_python negotiate, the text format otherwise.
    async fn negotiating_exporter_test_double() -> (String, tokio::task::JoinHandle<()>) {
        use axum::http::{HeaderMap, header};
        use axum::routing::get;
        async fn metrics(h: HeaderMap) -> ([(header::HeaderName, &'static str); 1], &'static str) {
            let accept = h
                .get(header::ACCEPT)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            if accept.starts_with("application/openmetrics-text") {
                (
                    [(
                        header::CONTENT_TYPE,
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    )],
                    "# TYPE jobs counter\n# UNIT jobs_seconds seconds\njobs_total 3\njobs_created 1.7e9 1.7e9\n\
                     # TYPE build info\nbuild_info{v=\"1\"} 1\n# EOF\n",
                )
            } else {
                (
                    [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
                    "jobs_total 3\n",
                )
            }
        }
        // Answers OpenMetrics but cut short (no `# EOF`), whatever was asked.
        async fn truncated() -> (
            [(axum::http::header::HeaderName, &'static str); 1],
            &'static str,
        ) {
            (
                [(
                    axum::http::header::CONTENT_TYPE,
                    "application/openmetrics-text; version=1.0.0",
                )],
                "# TYPE jobs counter\njobs_total 3\n",
            )
        }
        let app = axum::Router::new()
            .route("/metrics", get(metrics))
            .route("/truncated", get(truncated));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        (addr, server)
    }

    #[tokio::test]
    async fn scrape_negotiates_openmetrics() {
        let (addr, server) = negotiating_exporter_test_double().await;
        let client = reqwest::Client::new();
        let stats = SourceStats::new();
        let samples = scrape(&client, &format!("http://{addr}/metrics"), &stats)
            .await
            .unwrap();
        // OpenMetrics was chosen (only that body has `build_info`), `_created` left out.
        let names: Vec<&str> = samples.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, vec!["jobs_total", "build_info"]);
        assert_eq!(stats.get(Counter::MalformedMetricLine), 0);
        // A text-format body that asks for nothing else has no `# EOF` and needs none.
        let plain = reqwest::Client::new()
            .get(format!("http://{addr}/metrics"))
            .send()
            .await
            .unwrap();
        assert!(
            plain.headers()[reqwest::header::CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with("text/plain")
        );
        // A truncated OpenMetrics body: samples kept, the missing `# EOF` counted.
        let samples = scrape(&client, &format!("http://{addr}/truncated"), &stats)
            .await
            .unwrap();
        assert_eq!(samples.len(), 1);
        assert_eq!(stats.get(Counter::MalformedMetricLine), 1);
        server.abort();
    }
}
