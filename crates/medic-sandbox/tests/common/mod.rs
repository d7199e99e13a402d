//! Helpers shared by the sandbox integration tests.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{ContainerStatus, Pod};
use kube::Api;
use kube::api::PostParams;
use medic_sandbox::harness::Sandbox;

pub fn sandbox() -> Sandbox {
    Sandbox::builder()
        .kubelet_binary(env!("CARGO_BIN_EXE_medic-kubelet"))
        .max_backoff(Duration::from_secs(2))
        .start()
        .expect("sandbox starts")
}

pub async fn create<K>(client: &kube::Client, ns: &str, value: serde_json::Value) -> K
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + serde::Serialize
        + std::fmt::Debug,
    K::DynamicType: Default,
{
    let obj: K = serde_json::from_value(value).expect("valid object");
    Api::<K>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &obj)
        .await
        .expect("create")
}

/// Polls a pod until `check` returns Some, or panics with the last status after `timeout`.
pub async fn wait_pod<T>(
    client: &kube::Client,
    ns: &str,
    name: &str,
    timeout: Duration,
    mut check: impl FnMut(&Pod) -> Option<T>,
) -> T {
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let deadline = Instant::now() + timeout;
    let mut last = None;
    loop {
        if let Ok(Some(p)) = api.get_opt(name).await {
            if let Some(v) = check(&p) {
                return v;
            }
            last = Some(p);
        }
        if Instant::now() > deadline {
            panic!(
                "pod {ns}/{name}: condition not met in {timeout:?}; last status: {}",
                serde_json::to_string_pretty(&last.and_then(|p| p.status)).unwrap_or_default()
            );
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
}

pub fn container_status<'a>(p: &'a Pod, name: &str) -> Option<&'a ContainerStatus> {
    p.status
        .as_ref()?
        .container_statuses
        .as_ref()?
        .iter()
        .find(|s| s.name == name)
}

pub fn waiting_reason(s: &ContainerStatus) -> Option<&str> {
    s.state.as_ref()?.waiting.as_ref()?.reason.as_deref()
}

/// The pid in a sandbox containerID (`medic://<pid>`).
pub fn container_pid(s: &ContainerStatus) -> Option<i32> {
    s.container_id
        .as_deref()?
        .strip_prefix("medic://")?
        .parse()
        .ok()
}

pub fn alive(pid: i32) -> bool {
    // A zombie still answers kill(0); look at its state too.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

/// One HTTP/1.0 GET over a fresh TCP connection; the body.
pub async fn http_get(addr: &str, path: &str) -> std::io::Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::time::timeout(Duration::from_secs(3), tokio::net::TcpStream::connect(addr))
        .await
        .map_err(|_| std::io::Error::other("connect timeout"))??;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").as_bytes())
        .await?;
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(3), s.read_to_end(&mut buf))
        .await
        .map_err(|_| std::io::Error::other("read timeout"))??;
    let text = String::from_utf8_lossy(&buf).into_owned();
    Ok(text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default())
}

/// All CRI log text of a pod's container (every restart), messages only.
pub fn log_messages(sandbox: &Sandbox, ns: &str, pod: &Pod, container: &str) -> String {
    let dir = sandbox.pod_log_dir().join(format!(
        "{ns}_{}_{}",
        pod.metadata.name.as_deref().unwrap_or(""),
        pod.metadata.uid.as_deref().unwrap_or("")
    ));
    let mut files: Vec<_> = std::fs::read_dir(dir.join(container))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .collect();
    files.sort();
    let mut out = String::new();
    for f in files {
        for line in std::fs::read_to_string(f).unwrap_or_default().lines() {
            // <timestamp> <stream> <P|F> <message>
            let mut parts = line.splitn(4, ' ');
            let (_, _, _, msg) = (parts.next(), parts.next(), parts.next(), parts.next());
            out.push_str(msg.unwrap_or(""));
            out.push('\n');
        }
    }
    out
}
