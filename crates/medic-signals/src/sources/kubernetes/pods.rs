//! Pods: container terminations and starts → `Process` signals (as the local supervisor
//! reports its processes, so the `restarts` detector sees OOM kills and crash loops alike);
//! waiting problems, readiness flaps, evictions and unschedulable pods → `Log` signals with
//! fixed message templates and `k8s.*` fields.
//!
//! Each observation is compared with the previous one of the same pod (kept across relists),
//! and every termination is keyed by its container ID (or finish time), so a termination is
//! emitted once however often the pod is seen again.

use super::common::{Fields, Out, recent, ts_of};
use crate::redact::Redactor;
use k8s_openapi::api::core::v1::{ContainerState, ContainerStatus, Pod};
#[cfg(test)]
use medic_core::Ts;
use medic_core::{Level, ProcessEvent, ProcessEventKind, SignalPayload};
use std::collections::{BTreeMap, VecDeque};

/// Termination keys remembered per container: a container shows at most two at once
/// (`state` and `lastState`), the rest is margin.
const KEPT_TERMINATIONS: usize = 4;

/// `state.waiting.reason`s that mean the container cannot run (others, such as
/// `ContainerCreating`, are part of a normal start).
const PROBLEM_WAITING: [&str; 10] = [
    "CrashLoopBackOff",
    "ImagePullBackOff",
    "ErrImagePull",
    "ErrImageNeverPull",
    "InvalidImageName",
    "CreateContainerConfigError",
    "CreateContainerError",
    "RunContainerError",
    "PreCreateHookError",
    "PostStartHookError",
];

#[derive(Clone, Debug, Default)]
pub(crate) struct ContainerObs {
    terminations: VecDeque<String>,
    started: Option<String>,
    waiting: Option<String>,
    ready: Option<bool>,
    /// Has been ready and then not: a later recovery is worth a line.
    flapped: bool,
}

/// What the source remembers of a pod between observations.
#[derive(Clone, Debug, Default)]
pub(crate) struct PodObs {
    pub service: String,
    containers: BTreeMap<String, ContainerObs>,
    evicted: bool,
    unschedulable: bool,
}

struct PodCx<'a> {
    ns: &'a str,
    pod: &'a str,
    service: &'a str,
    /// Being deleted: its containers are asked to stop.
    deleting: bool,
    restart_always: bool,
    first: bool,
}

/// Compares `pod` with `prev` (None: first sight) and appends what changed to `out`.
pub(crate) fn observe_pod(
    prev: Option<&PodObs>,
    pod: &Pod,
    service: &str,
    redactor: &Redactor,
    out: &mut Out,
) -> Option<PodObs> {
    let ns = pod.metadata.namespace.as_deref()?;
    let name = pod.metadata.name.as_deref()?;
    let spec = pod.spec.as_ref();
    let cx = PodCx {
        ns,
        pod: name,
        service,
        deleting: pod.metadata.deletion_timestamp.is_some(),
        restart_always: spec
            .and_then(|s| s.restart_policy.as_deref())
            .is_none_or(|p| p == "Always"),
        first: prev.is_none(),
    };
    let mut obs = PodObs {
        service: service.to_string(),
        ..Default::default()
    };
    let status = pod.status.as_ref();
    let statuses = status
        .into_iter()
        .flat_map(|s| {
            s.init_container_statuses
                .iter()
                .flatten()
                .chain(s.container_statuses.iter().flatten())
        })
        .filter(|c| !c.name.is_empty());
    for cs in statuses {
        let before = prev.and_then(|p| p.containers.get(&cs.name));
        let now = observe_container(&cx, before, cs, redactor, out);
        obs.containers.insert(cs.name.clone(), now);
    }

    let reason = status.and_then(|s| s.reason.as_deref()).unwrap_or("");
    let message = status.and_then(|s| s.message.as_deref()).unwrap_or("");
    obs.evicted = status.and_then(|s| s.phase.as_deref()) == Some("Failed") && reason == "Evicted";
    if obs.evicted && !prev.is_some_and(|p| p.evicted) {
        let f = pod_fields(&cx, "Evicted").kv("k8s.message", redactor.redact(message));
        out.log(
            service,
            Some(name),
            Level::Warn,
            format!("pod {name} evicted"),
            f,
        );
    }
    let unschedulable = status
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .find(|c| c.type_ == "PodScheduled" && c.status == "False")
        .filter(|c| c.reason.as_deref() == Some("Unschedulable"));
    obs.unschedulable = unschedulable.is_some();
    if let Some(c) = unschedulable
        && !prev.is_some_and(|p| p.unschedulable)
    {
        let msg = c.message.as_deref().unwrap_or("");
        let f = pod_fields(&cx, "Unschedulable").kv("k8s.message", redactor.redact(msg));
        out.log(
            service,
            Some(name),
            Level::Warn,
            format!("pod {name} unschedulable"),
            f,
        );
    }
    Some(obs)
}

fn pod_fields(cx: &PodCx, reason: &str) -> Fields {
    Fields::new()
        .kv("k8s.kind", "Pod")
        .kv("k8s.reason", reason)
        .kv("k8s.namespace", cx.ns)
        .kv("k8s.pod", cx.pod)
        .kv("k8s.workload", cx.service)
}

fn termination_key(t: &k8s_openapi::api::core::v1::ContainerStateTerminated) -> String {
    match t.container_id.as_deref().filter(|s| !s.is_empty()) {
        Some(id) => id.to_string(),
        None => format!(
            "{}|{}|{}",
            ts_of(t.started_at.as_ref()).map_or(0, |t| t.0),
            ts_of(t.finished_at.as_ref()).map_or(0, |t| t.0),
            t.exit_code
        ),
    }
}

fn observe_container(
    cx: &PodCx,
    prev: Option<&ContainerObs>,
    cs: &ContainerStatus,
    redactor: &Redactor,
    out: &mut Out,
) -> ContainerObs {
    let mut obs = prev.cloned().unwrap_or_default();
    let version = Some(cs.image.clone()).filter(|s| !s.is_empty());

    // Terminations: the previous run (`lastState`) first, then the current one, oldest first.
    let states = [cs.last_state.as_ref(), cs.state.as_ref()];
    for t in states
        .into_iter()
        .flatten()
        .filter_map(|s| s.terminated.as_ref())
    {
        let key = termination_key(t);
        if obs.terminations.contains(&key) {
            continue;
        }
        obs.terminations.push_back(key);
        while obs.terminations.len() > KEPT_TERMINATIONS {
            obs.terminations.pop_front();
        }
        let finished = ts_of(t.finished_at.as_ref());
        if cx.first && !recent(finished, out.now) {
            continue;
        }
        let reason = if cx.deleting {
            // Asked to stop (the pod is being deleted): not a failure, whatever the code.
            "Stopped".to_string()
        } else {
            match t.reason.as_deref().filter(|r| !r.is_empty()) {
                Some(r) => r.to_string(),
                None if t.exit_code == 0 => "Completed".to_string(),
                None => "Error".to_string(),
            }
        };
        if reason == "Completed" && t.exit_code == 0 && !cx.restart_always {
            // A Job's or a one-shot pod's container finishing is what it was for.
            continue;
        }
        let signal = t.signal.filter(|s| *s > 0).or_else(|| {
            (129..=192)
                .contains(&t.exit_code)
                .then(|| t.exit_code - 128)
        });
        let ev = ProcessEvent {
            kind: ProcessEventKind::Exited,
            pid: 0,
            exit_code: Some(t.exit_code),
            signal,
            reason,
            version: version.clone(),
            config_version: None,
        };
        out.push(
            finished.unwrap_or(out.now),
            cx.service,
            Some(cx.pod),
            SignalPayload::Process(ev),
        );
    }

    // Starts: a new `state.running.startedAt`.
    if let Some(running) = cs.state.as_ref().and_then(|s| s.running.as_ref()) {
        let started = ts_of(running.started_at.as_ref());
        let key = format!(
            "{}|{}",
            cs.container_id.as_deref().unwrap_or(""),
            started.map_or(0, |t| t.0)
        );
        if obs.started.as_deref() != Some(key.as_str()) {
            obs.started = Some(key);
            if !cx.first || recent(started, out.now) {
                let ev = ProcessEvent {
                    kind: ProcessEventKind::Started,
                    pid: 0,
                    exit_code: None,
                    signal: None,
                    reason: String::new(),
                    version: version.clone(),
                    config_version: None,
                };
                out.push(
                    started.unwrap_or(out.now),
                    cx.service,
                    Some(cx.pod),
                    SignalPayload::Process(ev),
                );
            }
        }
    }

    // Waiting problems: once per entry into the waiting reason.
    let waiting = cs
        .state
        .as_ref()
        .and_then(|s: &ContainerState| s.waiting.as_ref())
        .filter(|w| {
            w.reason
                .as_deref()
                .is_some_and(|r| PROBLEM_WAITING.contains(&r))
        });
    let reason = waiting.and_then(|w| w.reason.clone());
    if let (Some(w), Some(r)) = (waiting, reason.as_deref())
        && obs.waiting.as_deref() != Some(r)
    {
        // ErrImagePull is the first, often transient, failure; its back-off is the problem.
        let level = if r == "ErrImagePull" {
            Level::Warn
        } else {
            Level::Error
        };
        let f = pod_fields(cx, r)
            .kv("k8s.container", &cs.name)
            .kv("k8s.restart_count", cs.restart_count)
            .kv("k8s.image", &cs.image)
            .kv(
                "k8s.message",
                redactor.redact(w.message.as_deref().unwrap_or("")),
            );
        out.log(
            cx.service,
            Some(cx.pod),
            level,
            format!("pod {} container {} waiting: {r}", cx.pod, cs.name),
            f,
        );
    }
    obs.waiting = reason;

    // Readiness flaps: ready → not ready while the pod is not going away.
    let was = obs.ready;
    obs.ready = Some(cs.ready);
    if was == Some(true) && !cs.ready && !cx.deleting {
        obs.flapped = true;
        let f = pod_fields(cx, "NotReady")
            .kv("k8s.container", &cs.name)
            .kv("k8s.restart_count", cs.restart_count);
        out.log(
            cx.service,
            Some(cx.pod),
            Level::Warn,
            format!("pod {} container {} not ready", cx.pod, cs.name),
            f,
        );
    } else if was == Some(false) && cs.ready && obs.flapped {
        obs.flapped = false;
        let f = pod_fields(cx, "Ready")
            .kv("k8s.container", &cs.name)
            .kv("k8s.restart_count", cs.restart_count);
        out.log(
            cx.service,
            Some(cx.pod),
            Level::Info,
            format!("pod {} container {} ready again", cx.pod, cs.name),
            f,
        );
    }
    obs
}

/// The key of a pod's observation (a relist drops those of pods no longer listed).
pub(crate) fn pod_key(pod: &Pod) -> Option<(String, String)> {
    Some((pod.metadata.namespace.clone()?, pod.metadata.name.clone()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting, PodCondition,
        PodSpec, PodStatus,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

    const NOW: i64 = 1_800_000_000_000;

    fn time(ms: i64) -> Time {
        Time(k8s_openapi::jiff::Timestamp::from_millisecond(ms).expect("valid time"))
    }

    fn terminated(id: &str, reason: &str, code: i32, at: i64) -> ContainerState {
        ContainerState {
            terminated: Some(ContainerStateTerminated {
                container_id: Some(id.into()).filter(|s: &String| !s.is_empty()),
                exit_code: code,
                reason: Some(reason.into()).filter(|s: &String| !s.is_empty()),
                finished_at: Some(time(at)),
                started_at: Some(time(at - 1000)),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn running(at: i64) -> ContainerState {
        ContainerState {
            running: Some(ContainerStateRunning {
                started_at: Some(time(at)),
            }),
            ..Default::default()
        }
    }

    fn waiting(reason: &str) -> ContainerState {
        ContainerState {
            waiting: Some(ContainerStateWaiting {
                reason: Some(reason.into()),
                message: Some("back-off 10s restarting, token=abc123secret".into()),
            }),
            ..Default::default()
        }
    }

    fn pod(statuses: Vec<ContainerStatus>) -> Pod {
        Pod {
            metadata: ObjectMeta {
                namespace: Some("shop".into()),
                name: Some("api-1".into()),
                ..Default::default()
            },
            spec: Some(PodSpec::default()),
            status: Some(PodStatus {
                container_statuses: Some(statuses),
                ..Default::default()
            }),
        }
    }

    fn cs(
        state: ContainerState,
        last: Option<ContainerState>,
        restarts: i32,
        ready: bool,
    ) -> ContainerStatus {
        ContainerStatus {
            name: "app".into(),
            image: "shop/api:1.2".into(),
            state: Some(state),
            last_state: last,
            restart_count: restarts,
            ready,
            container_id: Some(format!("cri://run-{restarts}")),
            ..Default::default()
        }
    }

    /// Feeds observations in order; returns the signals of each step.
    fn run(pods: &[Pod]) -> Vec<Vec<medic_core::Signal>> {
        let mut prev: Option<PodObs> = None;
        let r = Redactor::builtin();
        pods.iter()
            .map(|p| {
                let mut out = Out::new("k8s", Ts(NOW));
                prev = observe_pod(prev.as_ref(), p, "shop/api", r, &mut out);
                out.signals
            })
            .collect()
    }

    fn exits(s: &[medic_core::Signal]) -> Vec<String> {
        s.iter()
            .filter_map(|s| match &s.payload {
                SignalPayload::Process(e) if e.kind == ProcessEventKind::Exited => {
                    Some(e.reason.clone())
                }
                _ => None,
            })
            .collect()
    }

    #[test]
    fn oom_kill_once_across_repeats_and_relists() {
        let t = NOW - 10_000;
        let steps = run(&[
            pod(vec![cs(running(t - 50_000), None, 0, true)]),
            pod(vec![cs(
                terminated("cri://run-0", "OOMKilled", 137, t),
                None,
                0,
                false,
            )]),
            // The kubelet restarted it: the termination moves to lastState.
            pod(vec![cs(
                running(t + 1000),
                Some(terminated("cri://run-0", "OOMKilled", 137, t)),
                1,
                true,
            )]),
            // A relist delivers the same object again.
            pod(vec![cs(
                running(t + 1000),
                Some(terminated("cri://run-0", "OOMKilled", 137, t)),
                1,
                true,
            )]),
        ]);
        assert_eq!(exits(&steps[1]), vec!["OOMKilled"]);
        let SignalPayload::Process(e) = &steps[1][0].payload else {
            panic!("expected a process event, got {:?}", steps[1]);
        };
        assert_eq!((e.exit_code, e.signal), (Some(137), Some(9)));
        assert_eq!(steps[1][0].ts, Ts(t));
        assert_eq!(steps[1][0].instance.as_deref(), Some("api-1"));
        assert!(exits(&steps[2]).is_empty(), "{:?}", steps[2]);
        // The restart is a start.
        assert!(steps[2].iter().any(|s| matches!(&s.payload,
            SignalPayload::Process(e) if e.kind == ProcessEventKind::Started)));
        assert!(steps[3].is_empty(), "{:?}", steps[3]);
    }

    #[test]
    fn crash_loop_exits_and_waiting_reason() {
        let t = NOW - 60_000;
        let mut pods = Vec::new();
        for n in 0..3 {
            let last = terminated(&format!("cri://run-{n}"), "Error", 1, t + n as i64 * 10_000);
            pods.push(pod(vec![cs(
                waiting("CrashLoopBackOff"),
                Some(last.clone()),
                n + 1,
                false,
            )]));
            pods.push(pod(vec![cs(
                running(t + n as i64 * 10_000 + 5000),
                Some(last),
                n + 1,
                false,
            )]));
        }
        let steps = run(&pods);
        let all: Vec<String> = steps.iter().flat_map(|s| exits(s)).collect();
        assert_eq!(all, vec!["Error", "Error", "Error"]);
        let logs: Vec<&medic_core::LogLine> = steps
            .iter()
            .flatten()
            .filter_map(|s| match &s.payload {
                SignalPayload::Log(l) => Some(l),
                _ => None,
            })
            .collect();
        // Once per entry into the back-off, with a stable text and typed fields.
        assert_eq!(logs.len(), 3);
        assert_eq!(
            logs[0].message,
            "pod api-1 container app waiting: CrashLoopBackOff"
        );
        assert_eq!(logs[0].level, Level::Error);
        assert_eq!(logs[0].fields["k8s.reason"], "CrashLoopBackOff");
        assert_eq!(logs[0].fields["k8s.container"], "app");
        assert_eq!(logs[0].fields["k8s.restart_count"], "1");
        assert_eq!(logs[0].fields["k8s.workload"], "shop/api");
        assert!(!logs[0].fields["k8s.message"].contains("abc123secret"));
    }

    #[test]
    fn first_sight_skips_old_history_but_reports_current_problems() {
        let old = NOW - 3_600_000;
        let steps = run(&[pod(vec![cs(
            waiting("ImagePullBackOff"),
            Some(terminated("cri://old", "OOMKilled", 137, old)),
            4,
            false,
        )])]);
        assert!(exits(&steps[0]).is_empty());
        assert_eq!(steps[0].len(), 1);
    }

    #[test]
    fn deleted_pods_stop_and_jobs_complete_quietly() {
        let t = NOW - 1000;
        let mut p = pod(vec![cs(terminated("", "Error", 143, t), None, 0, false)]);
        p.metadata.deletion_timestamp = Some(time(t));
        assert_eq!(exits(&run(&[p])[0]), vec!["Stopped"]);
        let mut job = pod(vec![cs(terminated("", "Completed", 0, t), None, 0, false)]);
        job.spec = Some(PodSpec {
            restart_policy: Some("Never".into()),
            ..Default::default()
        });
        assert!(exits(&run(&[job])[0]).is_empty());
        // Without a reason the exit code decides.
        let p = pod(vec![cs(terminated("", "", 2, t), None, 0, false)]);
        assert_eq!(exits(&run(&[p])[0]), vec!["Error"]);
    }

    #[test]
    fn readiness_flap_eviction_unschedulable() {
        let t = NOW - 100_000;
        let ready = pod(vec![cs(running(t), None, 0, true)]);
        let unready = pod(vec![cs(running(t), None, 0, false)]);
        let steps = run(&[ready.clone(), unready.clone(), unready, ready]);
        let msgs = |s: &Vec<medic_core::Signal>| -> Vec<String> {
            s.iter()
                .filter_map(|s| match &s.payload {
                    SignalPayload::Log(l) => Some(l.message.clone()),
                    _ => None,
                })
                .collect()
        };
        assert_eq!(msgs(&steps[1]), vec!["pod api-1 container app not ready"]);
        assert!(msgs(&steps[2]).is_empty());
        assert_eq!(msgs(&steps[3]), vec!["pod api-1 container app ready again"]);

        let mut ev = pod(vec![]);
        let st = ev.status.as_mut().expect("status");
        st.phase = Some("Failed".into());
        st.reason = Some("Evicted".into());
        st.message = Some("The node was low on resource: memory.".into());
        let mut pending = pod(vec![]);
        pending.status.as_mut().expect("status").conditions = Some(vec![PodCondition {
            type_: "PodScheduled".into(),
            status: "False".into(),
            reason: Some("Unschedulable".into()),
            message: Some("0/1 nodes are available".into()),
            ..Default::default()
        }]);
        let steps = run(&[ev.clone(), ev, pending.clone(), pending]);
        assert_eq!(msgs(&steps[0]), vec!["pod api-1 evicted"]);
        assert!(msgs(&steps[1]).is_empty());
        assert_eq!(msgs(&steps[2]), vec!["pod api-1 unschedulable"]);
        assert!(msgs(&steps[3]).is_empty());
    }

    #[test]
    fn malformed_pods_do_not_panic() {
        let r = Redactor::builtin();
        let mut out = Out::new("k8s", Ts(NOW));
        assert!(observe_pod(None, &Pod::default(), "x/y", r, &mut out).is_none());
        let mut p = pod(vec![]);
        p.status = None;
        p.spec = None;
        assert!(observe_pod(None, &p, "x/y", r, &mut out).is_some());
        // Statuses without state, without a name, with empty terminations.
        let odd = pod(vec![
            ContainerStatus::default(),
            ContainerStatus {
                name: "c".into(),
                state: Some(ContainerState {
                    terminated: Some(ContainerStateTerminated::default()),
                    waiting: Some(ContainerStateWaiting::default()),
                    running: Some(ContainerStateRunning::default()),
                }),
                last_state: Some(ContainerState::default()),
                restart_count: -3,
                ..Default::default()
            },
        ]);
        let prev = observe_pod(None, &odd, "x/y", r, &mut out);
        let again = observe_pod(prev.as_ref(), &odd, "x/y", r, &mut out);
        assert!(again.is_some());
        // The termination without any time counts as recent on first sight, once; exit code 0
        // of a container that is always restarted is still an exit nobody asked for.
        assert_eq!(exits(&out.signals), vec!["Completed"]);
    }
}
