//! The `kubernetes` actuator: catalogue actions carried out through the API server (never by
//! shelling out to kubectl).
//!
//! Every action follows the same steps: refuse namespaces medic may not change; look for the
//! idempotency key on the object (a repeated key changes nothing and returns the first
//! detail); read the object right before writing and refuse when it no longer matches what
//! the action assumes (`Stale`); write with the read `resourceVersion` as a precondition so a
//! concurrent change is a 409, retried on fresh state; report before → after. A GitOps-managed
//! object is refused (`ManagedElsewhere`) for actions that change what Git declares.
//!
//! One file per concern: [`client`] (connection), `resolve` (targets), `ledger` (idempotency),
//! `error` (403/404/409 mapping), `gitops`, `template`, [`history`] (ConfigMap
//! versions), [`rbac`] (the rules each action needs), and `actions/` (one file per action or
//! group).

mod actions;
pub mod client;
mod error;
pub mod gitops;
pub mod history;
mod ledger;
mod observe;
pub mod rbac;
mod resolve;
mod template;

pub use history::{ConfigMapHistory, ConfigMapVersion};
pub use rbac::{PolicyRule, WATCH_RULES, required_rules, required_rules_with_watch};

use crate::{ActError, ActionReport, Actuator, BoxFuture};
use medic_config::{ActuatorsConfig, KubernetesActuatorConfig};
use medic_core::{Action, ActionKind, WorkloadRef};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Registry entry: the actuator when `actuators.kubernetes` is configured.
pub fn from_config(
    cfg: &ActuatorsConfig,
) -> BoxFuture<'_, Option<Result<Arc<dyn Actuator>, ActError>>> {
    Box::pin(async move {
        let k = cfg.kubernetes.as_ref()?;
        Some(
            KubernetesActuator::new(k)
                .await
                .map(|a| Arc::new(a) as Arc<dyn Actuator>),
        )
    })
}

/// Called after an action read the object and before it writes (action kind, attempt from
/// 1): lets a test change the object in between to provoke a conflict.
#[doc(hidden)]
pub type BeforeWrite = Arc<dyn Fn(ActionKind, u32) -> BoxFuture<'static, ()> + Send + Sync>;

pub(crate) struct Inner {
    pub client: kube::Client,
    pub cfg: KubernetesActuatorConfig,
    pub history: Arc<ConfigMapHistory>,
    policy_version: tokio::sync::OnceCell<&'static str>,
    hook: Mutex<Option<BeforeWrite>>,
    /// Keys executed by this process: answers repeats whose record could not be kept on an
    /// object (a bare pod that is gone once deleted).
    seen: Mutex<HashMap<String, String>>,
}

impl Inner {
    pub async fn policy_version(&self) -> Result<&'static str, ActError> {
        self.policy_version
            .get_or_try_init(|| client::policy_version(&self.client))
            .await
            .copied()
    }
}

/// The `kubernetes` actuator. Dropping it stops its ConfigMap history watcher.
pub struct KubernetesActuator {
    inner: Arc<Inner>,
    watcher: tokio::task::JoinHandle<()>,
}

impl Drop for KubernetesActuator {
    fn drop(&mut self) {
        self.watcher.abort();
    }
}

impl KubernetesActuator {
    /// Connects as the config says (kubeconfig and context, else the usual inference), loads
    /// the ConfigMap history and starts its watcher. Does not contact the server: `medic
    /// check` does that.
    pub async fn new(cfg: &KubernetesActuatorConfig) -> Result<KubernetesActuator, ActError> {
        if cfg.timeout.is_zero() {
            return Err(ActError::Invalid(
                "actuators.kubernetes.timeout is 0: expected a positive duration".to_string(),
            ));
        }
        let kc = client::config(&cfg.connection).await?;
        let actions = client::action_client(kc.clone(), cfg.timeout)?;
        let watch = client::watch_client(kc)?;
        Self::from_clients(actions, watch, cfg)
    }

    /// An actuator on a given client (tests, embedding); the watcher uses the same client.
    pub fn from_client(
        client: kube::Client,
        cfg: &KubernetesActuatorConfig,
    ) -> Result<KubernetesActuator, ActError> {
        Self::from_clients(client.clone(), client, cfg)
    }

    fn from_clients(
        client: kube::Client,
        watch: kube::Client,
        cfg: &KubernetesActuatorConfig,
    ) -> Result<KubernetesActuator, ActError> {
        let history = Arc::new(ConfigMapHistory::load(
            &cfg.history_file,
            cfg.history_depth,
        )?);
        let watcher = history::spawn_watcher(watch, cfg, history.clone());
        Ok(KubernetesActuator {
            inner: Arc::new(Inner {
                client,
                cfg: cfg.clone(),
                history,
                policy_version: tokio::sync::OnceCell::new(),
                hook: Mutex::new(None),
                seen: Mutex::new(HashMap::new()),
            }),
            watcher,
        })
    }

    /// The ConfigMap versions recorded so far.
    pub fn history(&self) -> &ConfigMapHistory {
        &self.inner.history
    }

    /// The client actions use.
    pub fn client(&self) -> &kube::Client {
        &self.inner.client
    }

    #[doc(hidden)]
    pub fn set_before_write(&self, hook: Option<BeforeWrite>) {
        *self.inner.hook.lock().unwrap_or_else(|p| p.into_inner()) = hook;
    }

    async fn run(&self, key: Option<&str>, action: &Action) -> Result<ActionReport, ActError> {
        let dry = key.is_none();
        if action.kind == ActionKind::NoAction {
            return Ok(ActionReport {
                applied: !dry,
                detail: "no action (recorded only)".to_string(),
            });
        }
        if let Some(k) = key
            && let Some(detail) = self
                .inner
                .seen
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(k)
        {
            return Ok(ActionReport {
                applied: false,
                detail: detail.clone(),
            });
        }
        let target = resolve::target(&self.inner.client, action).await?;
        if let Some(ns) = &target.r.namespace {
            resolve::check_namespace(&self.inner.cfg, ns)?;
        }
        let cx = actions::Cx {
            k: &self.inner,
            action,
            key,
            dry,
        };
        if key.is_some()
            && let Some(detail) = actions::recorded(&cx, &target).await?
        {
            return Ok(ActionReport {
                applied: false,
                detail,
            });
        }
        let detail = actions::run(&cx, &target).await?;
        if let Some(k) = key {
            self.inner
                .seen
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(k.to_string(), detail.clone());
        }
        Ok(ActionReport {
            applied: !dry,
            detail: if dry {
                format!("dry run (server-side, nothing changed): {detail}")
            } else {
                detail
            },
        })
    }
}

impl Actuator for KubernetesActuator {
    fn name(&self) -> &str {
        "kubernetes"
    }

    fn execute<'a>(
        &'a self,
        key: &'a str,
        action: &'a Action,
    ) -> BoxFuture<'a, Result<ActionReport, ActError>> {
        Box::pin(async move {
            if key.is_empty() {
                return Err(ActError::Invalid("empty idempotency key".to_string()));
            }
            self.run(Some(key), action).await
        })
    }

    fn replicas<'a>(&'a self, service: &'a str) -> BoxFuture<'a, Result<Option<u32>, ActError>> {
        Box::pin(async move {
            let Some(r) = resolve::resolve(&self.inner.client, service).await? else {
                return Ok(None);
            };
            let w = resolve::get(&self.inner.client, &r).await?;
            Ok(w.and_then(|w| w.replicas())
                .and_then(|n| u32::try_from(n).ok()))
        })
    }

    fn resolve<'a>(
        &'a self,
        service: &'a str,
    ) -> BoxFuture<'a, Result<Option<WorkloadRef>, ActError>> {
        Box::pin(resolve::resolve(&self.inner.client, service))
    }

    fn labels<'a>(
        &'a self,
        service: &'a str,
    ) -> BoxFuture<'a, Result<Option<std::collections::BTreeMap<String, String>>, ActError>> {
        Box::pin(observe::labels(&self.inner.client, service))
    }

    fn memory_limit<'a>(
        &'a self,
        service: &'a str,
        container: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Option<u64>, ActError>> {
        Box::pin(observe::memory_limit(
            &self.inner.client,
            service,
            container,
        ))
    }

    fn health<'a>(
        &'a self,
        workload: &'a WorkloadRef,
    ) -> BoxFuture<'a, Result<Option<crate::WorkloadHealth>, ActError>> {
        Box::pin(observe::health(&self.inner.client, workload))
    }

    /// A server-side dry run (`dryRun=All`) of every write the action would make: patches,
    /// the scale subresource, HPA, ConfigMap, NetworkPolicy creation, pod deletion and
    /// evictions all support it. What is not dry-run: a Helm-managed rollback is checked as
    /// the ReplicaSet undo (`helm rollback` would apply the release's own previous manifest),
    /// and the idempotency record is not written.
    fn dry_run<'a>(&'a self, action: &'a Action) -> BoxFuture<'a, Result<ActionReport, ActError>> {
        Box::pin(self.run(None, action))
    }
}
