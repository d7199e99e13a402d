//! Realistic application logs: JSON lines for frontend and checkout, plain text with stack
//! traces on continuation lines for the others, so that medic's log sources meet both.

use serde_json::{Map, Value, json};
use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Plain,
}

impl LogFormat {
    pub fn for_service(service: &str) -> Self {
        match service {
            "frontend" | "checkout" => LogFormat::Json,
            _ => LogFormat::Plain,
        }
    }
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Severity {
    Info,
    Warn,
    Error,
    Fatal,
}

impl Severity {
    fn upper(self) -> &'static str {
        match self {
            Severity::Info => "INFO",
            Severity::Warn => "WARN",
            Severity::Error => "ERROR",
            Severity::Fatal => "FATAL",
        }
    }
    fn lower(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warn => "warn",
            Severity::Error => "error",
            Severity::Fatal => "fatal",
        }
    }
}

/// One request's log fields.
#[derive(Clone, Debug)]
pub struct RequestLog<'a> {
    pub method: &'a str,
    pub route: &'a str,
    pub status: u16,
    pub duration_ms: u64,
    pub trace_id: &'a str,
}

#[derive(Debug)]
pub struct Logger {
    file: Option<Mutex<File>>,
    format: LogFormat,
    service: String,
    instance: String,
}

fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

impl Logger {
    /// Opens `path` for appending (the instance's log survives its restarts).
    /// `-` is standard output (in a container, the kubelet turns it into the pod's log).
    pub fn open(path: &Path, service: &str, instance: &str) -> std::io::Result<Self> {
        let file = if path == Path::new("-") {
            use std::os::fd::AsFd;
            File::from(std::io::stdout().as_fd().try_clone_to_owned()?)
        } else {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)?
        };
        Ok(Logger {
            file: Some(Mutex::new(file)),
            format: LogFormat::for_service(service),
            service: service.to_string(),
            instance: instance.to_string(),
        })
    }

    /// A logger that formats but writes nowhere (tests, and when the log cannot open).
    pub fn discard(service: &str, instance: &str) -> Self {
        Logger {
            file: None,
            format: LogFormat::for_service(service),
            service: service.to_string(),
            instance: instance.to_string(),
        }
    }

    /// A plain event (start-up, shutdown, faults, noise).
    pub fn event(&self, sev: Severity, msg: &str, stack: &[String]) {
        let text = self.format_event(sev, msg, None, stack, &now_rfc3339());
        self.write(&text);
    }

    /// A request line; `error` and `stack` when the request failed.
    pub fn request(
        &self,
        sev: Severity,
        req: &RequestLog<'_>,
        error: Option<&str>,
        stack: &[String],
    ) {
        let text = self.format_event(
            sev,
            "request completed",
            Some((req, error)),
            stack,
            &now_rfc3339(),
        );
        self.write(&text);
    }

    /// Formats one record (possibly several lines), ending in a newline.
    pub fn format_event(
        &self,
        sev: Severity,
        msg: &str,
        req: Option<(&RequestLog<'_>, Option<&str>)>,
        stack: &[String],
        ts: &str,
    ) -> String {
        match self.format {
            LogFormat::Json => {
                let mut m = Map::new();
                m.insert("ts".into(), json!(ts));
                m.insert("level".into(), json!(sev.lower()));
                m.insert("service".into(), json!(self.service));
                m.insert("instance".into(), json!(self.instance));
                m.insert("msg".into(), json!(msg));
                if let Some((r, error)) = req {
                    m.insert("method".into(), json!(r.method));
                    m.insert("route".into(), json!(r.route));
                    m.insert("status".into(), json!(r.status));
                    m.insert("duration_ms".into(), json!(r.duration_ms));
                    m.insert("trace_id".into(), json!(r.trace_id));
                    if let Some(e) = error {
                        m.insert("error".into(), json!(e));
                    }
                }
                if !stack.is_empty() {
                    m.insert("stack".into(), json!(stack.join("\n")));
                }
                let mut line = Value::Object(m).to_string();
                line.push('\n');
                line
            }
            LogFormat::Plain => {
                let body = match req {
                    Some((r, error)) => {
                        let mut s = format!(
                            "{} {} {} {}ms trace={}",
                            r.method, r.route, r.status, r.duration_ms, r.trace_id
                        );
                        if let Some(e) = error {
                            s.push_str(" error=\"");
                            s.push_str(e);
                            s.push('"');
                        }
                        s
                    }
                    None => msg.to_string(),
                };
                let mut out = format!("{ts} {} [{}] {body}\n", sev.upper(), self.instance);
                for frame in stack {
                    out.push_str(frame);
                    out.push('\n');
                }
                out
            }
        }
    }

    fn write(&self, text: &str) {
        if let Some(f) = &self.file {
            let mut f = match f.lock() {
                Ok(g) => g,
                Err(p) => p.into_inner(),
            };
            // One write per record so a tailer never sees half a stack trace between records;
            // a failed log write must not take the service down.
            let _ = f.write_all(text.as_bytes());
        }
    }
}

/// A stack trace in the style of the service's (pretend) language: Java-like frames with
/// `Caused by:` for catalog and cache, a Python traceback for payment, Rust-like for others.
pub fn stack_trace(service: &str, error: &str, detail: &str) -> Vec<String> {
    match service {
        "catalog" | "cache" => {
            let pkg = format!("com.shop.{service}");
            vec![
                format!("{pkg}.{error}: {detail}"),
                format!("    at {pkg}.ProductRepository.find(ProductRepository.java:88)"),
                format!("    at {pkg}.ProductService.get(ProductService.java:41)"),
                format!("    at {pkg}.http.ProductHandler.handle(ProductHandler.java:27)"),
                "    at io.undertow.server.Connectors.executeRootHandler(Connectors.java:387)"
                    .into(),
                format!("Caused by: java.io.IOException: {detail}"),
                format!("    at {pkg}.client.UpstreamClient.call(UpstreamClient.java:112)"),
                "    ... 4 more".into(),
            ]
        }
        "payment" => vec![
            "Traceback (most recent call last):".into(),
            "  File \"/app/payment/server.py\", line 142, in handle_charge".into(),
            "    result = processor.charge(order)".into(),
            "  File \"/app/payment/processor.py\", line 77, in charge".into(),
            "    return self._gateway.submit(order.amount, order.card_token)".into(),
            "  File \"/app/payment/gateway.py\", line 203, in submit".into(),
            "    raise GatewayError(detail)".into(),
            format!("payment.gateway.{error}: {detail}"),
        ],
        _ => vec![
            format!("{error}: {detail}"),
            format!("    at {service}::handlers::handle (src/handlers.rs:118)"),
            format!("    at {service}::router::dispatch (src/router.rs:54)"),
            "    at hyper::proto::h1::dispatch::Dispatcher::poll_catch (dispatch.rs:174)".into(),
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req() -> RequestLog<'static> {
        RequestLog {
            method: "GET",
            route: "/product",
            status: 503,
            duration_ms: 12,
            trace_id: "abc",
        }
    }

    #[test]
    fn plain_request_line_with_stack_on_following_lines() {
        let l = Logger::discard("catalog", "catalog-0");
        let stack = stack_trace("catalog", "UpstreamUnavailable", "connection refused");
        let text = l.format_event(
            Severity::Error,
            "ignored",
            Some((&req(), Some("boom"))),
            &stack,
            "2026-11-21T05:30:00.123Z",
        );
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "2026-11-21T05:30:00.123Z ERROR [catalog-0] GET /product 503 12ms trace=abc error=\"boom\""
        );
        assert!(lines[1..].iter().any(|l| l.starts_with("    at ")));
        assert!(lines.iter().any(|l| l.starts_with("Caused by:")));
        assert!(text.ends_with('\n'));
    }

    #[test]
    fn json_request_line_is_one_parseable_line() {
        let l = Logger::discard("checkout", "checkout-1");
        let stack = stack_trace(
            "checkout",
            "Timeout",
            "timed out after 400ms calling payment",
        );
        let text = l.format_event(
            Severity::Error,
            "request completed",
            Some((&req(), Some("timed out"))),
            &stack,
            "2026-11-21T05:30:00.123Z",
        );
        assert_eq!(text.matches('\n').count(), 1);
        let v: Value = serde_json::from_str(text.trim_end()).unwrap();
        assert_eq!(v["level"], "error");
        assert_eq!(v["service"], "checkout");
        assert_eq!(v["instance"], "checkout-1");
        assert_eq!(v["route"], "/product");
        assert_eq!(v["status"], 503);
        assert_eq!(v["duration_ms"], 12);
        assert_eq!(v["trace_id"], "abc");
        assert!(v["stack"].as_str().unwrap().contains("\n    at "));
    }

    #[test]
    fn hostile_messages_cannot_break_json_lines() {
        let l = Logger::discard("frontend", "frontend-0");
        let text = l.format_event(Severity::Warn, "a\"b\nc}", None, &[], "t");
        assert_eq!(text.matches('\n').count(), 1);
        let v: Value = serde_json::from_str(text.trim_end()).unwrap();
        assert_eq!(v["msg"], "a\"b\nc}");
    }

    #[test]
    fn payment_uses_a_python_traceback() {
        let s = stack_trace("payment", "GatewayError", "x");
        assert_eq!(s[0], "Traceback (most recent call last):");
    }

    #[test]
    fn file_logger_appends() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("cache-0.log");
        let l = Logger::open(&p, "cache", "cache-0").unwrap();
        l.event(Severity::Info, "started", &[]);
        drop(l);
        let l = Logger::open(&p, "cache", "cache-0").unwrap();
        l.event(Severity::Info, "started again", &[]);
        let text = std::fs::read_to_string(&p).unwrap();
        assert_eq!(text.lines().count(), 2);
        assert!(text.contains(" INFO [cache-0] started again"));
    }
}
