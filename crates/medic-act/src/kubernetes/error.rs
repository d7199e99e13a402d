//! From API errors to [`ActError`]: one mapping, so every action reports a 403 the same way
//! (naming the verb, resource and namespace an operator must grant) and a 409 is retried.

use crate::ActError;
use std::future::Future;

/// How often a read-compute-write step is tried when the object changes under it (409).
pub(crate) const CONFLICT_ATTEMPTS: u32 = 4;

/// The failure of one read-compute-write step: a conflict is retried on fresh state, anything
/// else ends the action.
#[derive(Debug)]
pub(crate) enum StepError {
    Conflict(String),
    Act(ActError),
}

impl From<ActError> for StepError {
    fn from(e: ActError) -> Self {
        StepError::Act(e)
    }
}

/// The API status inside a kube error, if the server answered one.
pub(crate) fn status(e: &kube::Error) -> Option<&kube::core::Status> {
    match e {
        kube::Error::Api(s) => Some(s),
        _ => None,
    }
}

pub(crate) fn code(e: &kube::Error) -> Option<u16> {
    status(e).map(|s| s.code)
}

pub(crate) fn is_not_found(e: &kube::Error) -> bool {
    code(e) == Some(404)
}

pub(crate) fn is_already_exists(e: &kube::Error) -> bool {
    status(e).is_some_and(|s| s.code == 409 && s.reason == "AlreadyExists")
}

/// One API call that failed; `what` says which call (`patch deployments/web in shop`).
pub(crate) fn step(e: kube::Error, what: &str) -> StepError {
    if let Some(s) = status(&e)
        && s.code == 409
        && s.reason != "AlreadyExists"
    {
        return StepError::Conflict(format!("{what}: {}", s.message));
    }
    StepError::Act(map(e, what))
}

/// The mapping for calls that are not retried: 403 → Forbidden, 404 → Rejected, transport
/// errors → Unreachable.
pub(crate) fn map(e: kube::Error, what: &str) -> ActError {
    match &e {
        kube::Error::Api(s) => match s.code {
            401 => ActError::Forbidden(format!(
                "{what}: the API server did not accept medic's credentials (401): {}",
                s.message
            )),
            403 => ActError::Forbidden(forbidden(&s.message, what)),
            404 => ActError::Rejected(format!("{what}: not found: {}", s.message)),
            409 => ActError::Stale(format!("{what}: {}", s.message)),
            400 | 422 => ActError::Invalid(format!("{what}: {}", s.message)),
            429 => ActError::Rejected(format!("{what}: too many requests (429): {}", s.message)),
            c if c >= 500 => {
                ActError::Unreachable(format!("{what}: server error {c}: {}", s.message))
            }
            c => ActError::Protocol(format!("{what}: http {c}: {}", s.message)),
        },
        kube::Error::HyperError(_) | kube::Error::Service(_) | kube::Error::HttpError(_) => {
            ActError::Unreachable(format!("{what}: {e}"))
        }
        kube::Error::Auth(_) => ActError::Forbidden(format!("{what}: credentials: {e}")),
        kube::Error::SerdeError(_) => ActError::Protocol(format!("{what}: unexpected answer: {e}")),
        _ => ActError::Protocol(format!("{what}: {e}")),
    }
}

/// A 403 worded for the operator: the RBAC rule that is missing, parsed from the server's
/// message (`User "x" cannot patch resource "deployments" in API group "apps" in the
/// namespace "shop"`), then the message itself.
pub(crate) fn forbidden(message: &str, what: &str) -> String {
    match parse_forbidden(message) {
        Some(f) => {
            let group = if f.group.is_empty() {
                "\"\" (core)".to_string()
            } else {
                format!("{:?}", f.group)
            };
            let scope = match &f.namespace {
                Some(ns) => format!("in namespace {ns:?}"),
                None => "cluster-wide".to_string(),
            };
            format!(
                "{what}: missing RBAC permission: verb {:?} on resource {:?} (apiGroup {group}) {scope}; grant it in a Role/ClusterRole bound to medic's identity ({message})",
                f.verb, f.resource
            )
        }
        None => format!("{what}: {message}"),
    }
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Forbidden {
    pub verb: String,
    pub resource: String,
    pub group: String,
    pub namespace: Option<String>,
}

/// Reads the authorizer's sentence; `None` when the message has another shape (an admission
/// webhook's refusal, for example).
pub(crate) fn parse_forbidden(message: &str) -> Option<Forbidden> {
    let rest = &message[message.find(" cannot ")? + " cannot ".len()..];
    let (verb, rest) = rest.split_once(' ')?;
    let rest = rest.strip_prefix("resource ")?;
    let (resource, rest) = quoted(rest)?;
    let rest = rest.trim_start().strip_prefix("in API group ")?;
    let (group, rest) = quoted(rest)?;
    let namespace = rest
        .trim_start()
        .strip_prefix("in the namespace ")
        .and_then(quoted)
        .map(|(ns, _)| ns.to_string());
    Some(Forbidden {
        verb: verb.to_string(),
        resource: resource.to_string(),
        group: group.to_string(),
        namespace,
    })
}

/// `"abc" rest` → (`abc`, ` rest`).
fn quoted(s: &str) -> Option<(&str, &str)> {
    let s = s.strip_prefix('"')?;
    let end = s.find('"')?;
    Some((&s[..end], &s[end + 1..]))
}

/// Runs a read-compute-write step until it does not conflict: each attempt re-reads, so a
/// concurrent writer's change is seen (and may make the action stale) instead of overwritten.
pub(crate) async fn retry_on_conflict<T, F, Fut>(what: &str, mut f: F) -> Result<T, ActError>
where
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Result<T, StepError>>,
{
    let mut last = String::new();
    for attempt in 1..=CONFLICT_ATTEMPTS {
        match f(attempt).await {
            Ok(v) => return Ok(v),
            Err(StepError::Act(e)) => return Err(e),
            Err(StepError::Conflict(m)) => {
                tracing::debug!(attempt, %m, "conflict, retrying on fresh state");
                last = m;
                tokio::time::sleep(std::time::Duration::from_millis(50 * u64::from(attempt))).await;
            }
        }
    }
    Err(ActError::Stale(format!(
        "{what}: the object kept changing while medic wrote it ({CONFLICT_ATTEMPTS} conflicts; last: {last})"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_authorizer_message() {
        let m = r#"deployments.apps "web" is forbidden: User "system:serviceaccount:t:medic" cannot patch resource "deployments" in API group "apps" in the namespace "t""#;
        assert_eq!(
            parse_forbidden(m),
            Some(Forbidden {
                verb: "patch".into(),
                resource: "deployments".into(),
                group: "apps".into(),
                namespace: Some("t".into()),
            })
        );
        let m = r#"nodes "n1" is forbidden: User "u" cannot patch resource "nodes" in API group "" at the cluster scope"#;
        let f = parse_forbidden(m).unwrap();
        assert_eq!(
            (f.verb.as_str(), f.resource.as_str(), f.group.as_str()),
            ("patch", "nodes", "")
        );
        assert_eq!(f.namespace, None);
        let text = forbidden(m, "cordon node n1");
        assert!(
            text.contains(r#"verb "patch" on resource "nodes""#),
            "{text}"
        );
        assert!(text.contains("cluster-wide"), "{text}");
        let sub = r#"pods "p" is forbidden: User "u" cannot create resource "pods/eviction" in API group "" in the namespace "a""#;
        assert_eq!(parse_forbidden(sub).unwrap().resource, "pods/eviction");
        assert_eq!(
            parse_forbidden("admission webhook denied the request"),
            None
        );
    }
}
