//! `kind: slack`: a Slack incoming webhook, as Block Kit with a `text` fallback.
//!
//! Everything from the incident is escaped for mrkdwn (`&`, `<`, `>`), so an alert's text
//! cannot add links or `<!channel>` mentions, and cut to Slack's limits (header 150,
//! section 3000 characters). Approving is a POST with an approver's token, which a link
//! cannot do: the message links to the incident in the API (a viewer token opens it) and
//! shows the `medic approve` command and the API call.

use super::{Event, Notice, Notifier, Request, truncate};
use medic_config::{EscalationTarget, NotifyKind};
use serde_json::{Value, json};

pub(super) struct Slack;

/// Slack's limits (Block Kit reference): a header's text, a section's text, and the
/// top-level `text` we keep to the same size as a section.
const MAX_HEADER: usize = 150;
const MAX_SECTION: usize = 3000;
/// Hypotheses shown: the evidence that matters is at the top.
const TOP_HYPOTHESES: usize = 3;
/// What one hypothesis or execution line may take of a section.
const LINE_SHARE: usize = 900;

impl Notifier for Slack {
    fn kind(&self) -> NotifyKind {
        NotifyKind::Slack
    }

    fn request(
        &self,
        _target: &EscalationTarget,
        notice: &Notice,
    ) -> Result<Option<Request>, String> {
        let body = serde_json::to_vec(&message(notice))
            .map_err(|e| format!("cannot encode the message: {e}"))?;
        // The URL is the secret here, and it is never in the body.
        Ok(Some(Request {
            body,
            headers: Vec::new(),
            secrets: Vec::new(),
        }))
    }
}

/// The Block Kit message for `notice`.
fn message(notice: &Notice) -> Value {
    let r = &notice.record;
    let services = if r.services.is_empty() {
        "no service".to_string()
    } else {
        r.services.join(", ")
    };
    let title = match &notice.event {
        Event::ApprovalRequested => format!("Approval needed: {} on {services}", r.incident),
        Event::ApprovalAnswered { approved, by } => {
            let verb = if *approved { "approved" } else { "rejected" };
            format!("{} {verb} by {by}", r.incident)
        }
        Event::Escalated => format!("Escalated: {} on {services}", r.incident),
        Event::Resolved => format!("Resolved: {} on {services}", r.incident),
    };
    let mut blocks = vec![json!({
        "type": "header",
        "text": { "type": "plain_text", "text": truncate(&title, MAX_HEADER), "emoji": false }
    })];
    let mut summary = format!("*{}*", esc(&r.reason));
    summary.push_str(&format!("\n*Services:* {}", esc(&services)));
    summary.push_str(&format!("\n*State:* {}", esc(&r.state)));
    blocks.push(section(&summary));
    if notice.event.opens() {
        if !r.hypotheses.is_empty() {
            let mut s = "*Top hypotheses* (cause on target (confidence): why)".to_string();
            // Each gets its share, so a long first rationale cannot hide the others.
            for h in r.hypotheses.iter().take(TOP_HYPOTHESES) {
                s.push_str(&format!("\n• {}", esc(&truncate(h, LINE_SHARE))));
            }
            blocks.push(section(&s));
        }
        let mut s = format!(
            "*Plan:* {}",
            esc(r
                .plan
                .as_deref()
                .unwrap_or("none (no policy covers this incident)"))
        );
        if let Some(d) = &r.decision {
            s.push_str(&format!("\n*Guard decision:* {}", esc(d)));
        }
        blocks.push(section(&s));
        if !r.executions.is_empty() {
            let mut s = "*Executions*".to_string();
            for e in &r.executions {
                s.push_str(&format!("\n• {}", esc(&truncate(e, LINE_SHARE))));
            }
            blocks.push(section(&s));
        }
        if let Some(o) = &r.outcome {
            blocks.push(section(&format!("*Outcome:* {}", esc(o))));
        }
        blocks.push(section(&format!("*Next:* {}", esc(&r.next_step))));
    }
    if notice.event == Event::ApprovalRequested {
        let id = esc(&r.incident);
        let mut s = format!(
            "*Approve or reject* with a reason: `medic approve {id} --reason …` or `medic reject {id} --reason …`"
        );
        if let Some(api) = &notice.api_base {
            s.push_str(&format!(
                ", or `POST {}/incidents/{id}/approve` (or `/reject`) with an approver's token and `{{\"reason\": \"…\"}}`",
                esc(api)
            ));
        }
        blocks.push(section(&s));
    }
    if let Some(url) = &notice.incident_url {
        blocks.push(section(&format!(
            "<{}|Incident {} in medic's API> (needs a viewer token)",
            esc(url),
            esc(&r.incident)
        )));
    }
    blocks.push(json!({
        "type": "context",
        "elements": [{
            "type": "mrkdwn",
            "text": truncate(&format!("medic · {} · {}", esc(&r.incident), r.at.clock_time()), MAX_SECTION)
        }]
    }));
    json!({
        "text": truncate(&format!("[medic] {title}: {}", r.reason), MAX_SECTION),
        "blocks": blocks,
    })
}

fn section(text: &str) -> Value {
    json!({ "type": "section", "text": { "type": "mrkdwn", "text": cut_mrkdwn(text, MAX_SECTION) } })
}

/// Slack's three control characters in mrkdwn.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Cuts escaped text without leaving half an entity (`&am…`).
fn cut_mrkdwn(s: &str, max: usize) -> String {
    let t = truncate(s, max);
    if t.len() == s.len() {
        return t;
    }
    let body = t.trim_end_matches('…');
    let tail_start = body.len().saturating_sub(5);
    let cut = match body.get(tail_start..).and_then(|tail| tail.rfind('&')) {
        Some(i) if !body[tail_start + i..].contains(';') => tail_start + i,
        _ => body.len(),
    };
    format!("{}…", &body[..cut])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_defuses_links_and_mentions() {
        assert_eq!(
            esc("<!channel> & <http://x|y>"),
            "&lt;!channel&gt; &amp; &lt;http://x|y&gt;"
        );
    }

    #[test]
    fn a_cut_never_leaves_half_an_entity() {
        let s = format!("{}&amp;tail", "a".repeat(10));
        let c = cut_mrkdwn(&s, 13);
        assert_eq!(c, "aaaaaaaaaa…");
        assert!(c.chars().count() <= 13);
    }
}
