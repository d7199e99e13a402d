//! core/v1 Events of type Warning → `Log` signals (level warn), message redacted, reason and
//! involved object in `k8s.*` fields; deduplicated by uid and count, so a relist or an
//! unchanged re-delivery emits nothing and a repeat (count + 1) emits one line.

use super::common::{Fields, Out, recent, ts_of};
use crate::redact::Redactor;
use k8s_openapi::api::core::v1::Event;
use medic_core::{Level, Ts};
use std::collections::{HashMap, VecDeque};

/// Events remembered for deduplication (the API server keeps them for an hour by default;
/// older ones are not re-listed, so forgetting them is safe).
const MAX_REMEMBERED: usize = 8192;

#[derive(Default)]
pub(crate) struct EventDedupe {
    counts: HashMap<String, i32>,
    order: VecDeque<String>,
}

impl EventDedupe {
    /// True when `(uid, count)` was not emitted before; records it.
    fn fresh(&mut self, uid: &str, count: i32) -> bool {
        match self.counts.get_mut(uid) {
            Some(c) if *c >= count => false,
            Some(c) => {
                *c = count;
                true
            }
            None => {
                self.counts.insert(uid.to_string(), count);
                self.order.push_back(uid.to_string());
                while self.order.len() > MAX_REMEMBERED {
                    if let Some(old) = self.order.pop_front() {
                        self.counts.remove(&old);
                    }
                }
                true
            }
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.counts.len()
    }
}

/// When the event last happened, in whichever field its reporter filled.
fn last_seen(ev: &Event) -> Option<Ts> {
    ts_of(ev.last_timestamp.as_ref())
        .or_else(|| {
            ev.series
                .as_ref()
                .and_then(|s| s.last_observed_time.as_ref())
                .map(|t| Ts(t.0.as_millisecond()))
        })
        .or_else(|| ev.event_time.as_ref().map(|t| Ts(t.0.as_millisecond())))
        .or_else(|| ts_of(ev.first_timestamp.as_ref()))
        .or_else(|| ts_of(ev.metadata.creation_timestamp.as_ref()))
}

/// One Warning event → at most one log line for `service`.
pub(crate) fn observe_event(
    d: &mut EventDedupe,
    ev: &Event,
    service: &str,
    redactor: &Redactor,
    out: &mut Out,
) {
    if ev.type_.as_deref() != Some("Warning") {
        return;
    }
    let Some(uid) = ev.metadata.uid.as_deref().or(ev.metadata.name.as_deref()) else {
        return;
    };
    let count = ev
        .count
        .or_else(|| ev.series.as_ref().and_then(|s| s.count))
        .unwrap_or(1);
    let first_time = !d.counts.contains_key(uid);
    if !d.fresh(uid, count) {
        return;
    }
    if first_time && !recent(last_seen(ev), out.now) {
        // Listed at startup but long past: remembered, not news.
        return;
    }
    let obj = &ev.involved_object;
    let kind = obj.kind.as_deref().unwrap_or("");
    let name = obj.name.as_deref().unwrap_or("");
    let reason = ev.reason.as_deref().unwrap_or("");
    let message = redactor.redact(ev.message.as_deref().unwrap_or(""));
    let component = ev
        .source
        .as_ref()
        .and_then(|s| s.component.as_deref())
        .or(ev.reporting_component.as_deref())
        .unwrap_or("");
    let f = Fields::new()
        .kv("k8s.kind", "Event")
        .kv("k8s.reason", reason)
        .kv("k8s.namespace", obj.namespace.as_deref().unwrap_or(""))
        .kv("k8s.involved_kind", kind)
        .kv("k8s.involved_name", name)
        .kv("k8s.count", count)
        .kv("k8s.component", component)
        .kv("k8s.workload", service);
    let instance = (kind == "Pod").then_some(name);
    out.log(
        service,
        instance,
        Level::Warn,
        format!("event {reason} on {kind} {name}: {message}"),
        f,
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ObjectReference;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
    use medic_core::SignalPayload;

    const NOW: i64 = 1_800_000_000_000;

    fn event(uid: &str, count: i32, at: i64, ty: &str) -> Event {
        Event {
            metadata: ObjectMeta {
                uid: Some(uid.into()),
                ..Default::default()
            },
            type_: Some(ty.into()),
            reason: Some("BackOff".into()),
            message: Some("Back-off pulling image with password=hunter2".into()),
            count: Some(count),
            last_timestamp: Some(Time(
                k8s_openapi::jiff::Timestamp::from_millisecond(at).expect("valid"),
            )),
            involved_object: ObjectReference {
                kind: Some("Pod".into()),
                name: Some("api-1".into()),
                namespace: Some("shop".into()),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn warnings_deduped_by_uid_and_count() {
        let mut d = EventDedupe::default();
        let r = Redactor::builtin();
        let mut out = Out::new("k8s", Ts(NOW));
        observe_event(
            &mut d,
            &event("u1", 1, NOW - 1000, "Warning"),
            "shop/api",
            r,
            &mut out,
        );
        observe_event(
            &mut d,
            &event("u1", 1, NOW - 1000, "Warning"),
            "shop/api",
            r,
            &mut out,
        );
        observe_event(
            &mut d,
            &event("u1", 2, NOW - 500, "Warning"),
            "shop/api",
            r,
            &mut out,
        );
        observe_event(
            &mut d,
            &event("u2", 1, NOW, "Normal"),
            "shop/api",
            r,
            &mut out,
        );
        // Old on first sight: remembered, not emitted; its repeat later is.
        observe_event(
            &mut d,
            &event("u3", 5, NOW - 7_200_000, "Warning"),
            "shop/api",
            r,
            &mut out,
        );
        observe_event(
            &mut d,
            &event("u3", 6, NOW, "Warning"),
            "shop/api",
            r,
            &mut out,
        );
        assert_eq!(out.signals.len(), 3);
        let SignalPayload::Log(l) = &out.signals[0].payload else {
            panic!("expected a log line");
        };
        assert_eq!(l.level, Level::Warn);
        assert!(
            l.message
                .starts_with("event BackOff on Pod api-1: Back-off pulling image")
        );
        assert!(!l.message.contains("hunter2"), "{}", l.message);
        assert_eq!(l.fields["k8s.involved_kind"], "Pod");
        assert_eq!(l.fields["k8s.count"], "1");
        assert_eq!(out.signals[0].instance.as_deref(), Some("api-1"));
        // Normal events are not even remembered.
        assert_eq!(d.len(), 2);
    }

    #[test]
    fn malformed_events_do_not_panic() {
        let mut d = EventDedupe::default();
        let mut out = Out::new("k8s", Ts(NOW));
        let r = Redactor::builtin();
        observe_event(&mut d, &Event::default(), "x", r, &mut out);
        let bare = Event {
            type_: Some("Warning".into()),
            metadata: ObjectMeta {
                name: Some("e".into()),
                ..Default::default()
            },
            ..Default::default()
        };
        observe_event(&mut d, &bare, "x", r, &mut out);
        assert_eq!(out.signals.len(), 1);
    }
}
