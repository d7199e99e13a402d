//! The Helm chart `deploy/helm/medic`: rendered (by a renderer for the chart's template
//! subset, Helm not being installable here; and by `helm template` too when `helm` is on
//! PATH), its RBAC compared with what `medic rbac` prints for the config it renders, its
//! config validated by `medic validate`, and every manifest accepted by a real API server
//! (server-side apply, dry run) of the sandbox control plane.

#[path = "helm_chart/render.rs"]
mod render;

use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::core::GroupVersionKind;
use kube::discovery::{self, Scope};
use kube::{Client, Config};
use render::{Release, documents, render_chart};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use yaml_rust2::{Yaml, YamlLoader};

fn chart_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/helm/medic")
}

fn repo_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

const RELEASE: Release<'static> = Release {
    name: "medic",
    namespace: "medic",
};

/// Overrides that exercise every branch of the templates.
const VARIANTS: &[(&str, &str)] = &[
    ("defaults", ""),
    (
        "namespaced, persistent, webhook, dry run",
        r#"
namespaces: [shop, web]
persistence: { enabled: true, size: 2Gi, storageClass: standard }
escalation: { webhookSecret: { name: medic-webhook, key: url } }
dryRun: true
serviceAccount: { annotations: { example.com/role: medic } }
nodeSelector: { kubernetes.io/os: linux }
tolerations: [{ key: dedicated, operator: Equal, value: ops, effect: NoSchedule }]
extraEnv: [{ name: MEDIC_LOG, value: debug }]
config: { extra: { server: { enabled: false } } }
"#,
    ),
    (
        "existing claim and service account, no rbac",
        r#"
persistence: { enabled: true, existingClaim: medic-data }
serviceAccount: { create: false, name: ops }
rbac: { create: false }
"#,
    ),
];

fn render_docs(release: &Release<'_>, overrides: &[&str]) -> Vec<(String, Yaml)> {
    let files = render_chart(&chart_dir(), release, overrides)
        .unwrap_or_else(|e| panic!("rendering the chart with {overrides:?}: {e}"));
    documents(&files).unwrap_or_else(|e| panic!("{e}"))
}

fn kind(doc: &Yaml) -> &str {
    doc["kind"].as_str().unwrap_or("?")
}

fn name(doc: &Yaml) -> &str {
    doc["metadata"]["name"].as_str().unwrap_or("?")
}

fn find<'a>(docs: &'a [(String, Yaml)], k: &str) -> &'a Yaml {
    docs.iter()
        .map(|d| &d.1)
        .find(|d| kind(d) == k)
        .unwrap_or_else(|| panic!("no {k} rendered"))
}

/// The rendered ConfigMap's files written to a directory, and the plain (not from a Secret)
/// environment variables of the Deployment, which medic.yaml expects.
fn write_config(docs: &[(String, Yaml)], dir: &Path) -> Vec<(String, String)> {
    let cm = find(docs, "ConfigMap");
    for f in ["medic.yaml", "policies.yaml"] {
        let text = cm["data"][f]
            .as_str()
            .unwrap_or_else(|| panic!("ConfigMap has no {f}"));
        std::fs::write(dir.join(f), text).expect("write config");
    }
    let dep = find(docs, "Deployment");
    let env = dep["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_vec()
        .expect("container env");
    env.iter()
        .filter_map(|e| Some((e["name"].as_str()?.into(), e["value"].as_str()?.into())))
        .collect()
}

fn medic() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_medic"));
    // Only what the pod would have: nothing from the test's environment leaks in.
    c.env_remove("MEDIC_STORE")
        .env_remove("MEDIC_STATE_DIR")
        .env_remove("MEDIC_ESCALATION_WEBHOOK");
    c
}

/// One rule as a set-comparable value: (apiGroups, resources, verbs).
type Rule = (BTreeSet<String>, BTreeSet<String>, BTreeSet<String>);

/// (kind, namespace, name) → its rules (for roles) or its roleRef and subjects (bindings).
type Rbac = BTreeMap<(String, String, String), String>;

fn str_set(v: &Yaml) -> BTreeSet<String> {
    v.as_vec()
        .unwrap_or_else(|| panic!("expected a list, found {v:?}"))
        .iter()
        .map(|s| s.as_str().expect("a string").to_string())
        .collect()
}

fn rbac_of(docs: &[Yaml]) -> Rbac {
    let mut out = Rbac::new();
    for d in docs {
        let k = kind(d);
        if !matches!(
            k,
            "ClusterRole" | "ClusterRoleBinding" | "Role" | "RoleBinding"
        ) {
            continue;
        }
        let key = (
            k.to_string(),
            d["metadata"]["namespace"]
                .as_str()
                .unwrap_or("")
                .to_string(),
            name(d).to_string(),
        );
        let value = if k.ends_with("Binding") {
            let subjects: BTreeSet<String> = d["subjects"]
                .as_vec()
                .expect("subjects")
                .iter()
                .map(|s| {
                    format!(
                        "{}/{}/{}",
                        s["kind"].as_str().unwrap_or(""),
                        s["namespace"].as_str().unwrap_or(""),
                        s["name"].as_str().unwrap_or("")
                    )
                })
                .collect();
            format!(
                "roleRef {}/{} subjects {subjects:?}",
                d["roleRef"]["kind"].as_str().unwrap_or(""),
                d["roleRef"]["name"].as_str().unwrap_or("")
            )
        } else {
            let rules: BTreeSet<Rule> = d["rules"]
                .as_vec()
                .expect("rules")
                .iter()
                .map(|r| {
                    (
                        str_set(&r["apiGroups"]),
                        str_set(&r["resources"]),
                        str_set(&r["verbs"]),
                    )
                })
                .collect();
            format!("{rules:#?}")
        };
        assert!(out.insert(key.clone(), value).is_none(), "{key:?} twice");
    }
    out
}

/// What `medic rbac` prints for the chart's rendered config, as the chart would bind it.
fn medic_rbac(docs: &[(String, Yaml)], release: &Release<'_>, tmp: &Path) -> Rbac {
    let env = write_config(docs, tmp);
    let dep = find(docs, "Deployment");
    let sa = dep["spec"]["template"]["spec"]["serviceAccountName"]
        .as_str()
        .expect("serviceAccountName");
    let out = medic()
        .envs(env)
        .arg("rbac")
        .arg("--config")
        .arg(tmp.join("medic.yaml"))
        .args(["--service-account", sa, "--namespace", release.namespace])
        .args(["--name", name(dep)])
        .output()
        .expect("run medic rbac");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "medic rbac failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = YamlLoader::load_from_str(&stdout).expect("medic rbac prints YAML");
    rbac_of(&printed)
}

#[test]
fn chart_renders_every_variant_to_the_expected_objects() {
    for (what, values) in VARIANTS {
        let docs = render_docs(&RELEASE, &[values]);
        let kinds: Vec<&str> = docs.iter().map(|d| kind(&d.1)).collect();
        for want in ["ConfigMap", "Deployment"] {
            assert!(kinds.contains(&want), "{what}: no {want} in {kinds:?}");
        }
        for (_, d) in &docs {
            assert_eq!(
                name(d),
                "medic",
                "{what}: every object is named after the release"
            );
            if !kind(d).starts_with("Cluster") && !kind(d).starts_with("Role") {
                assert_eq!(d["metadata"]["namespace"].as_str(), Some("medic"), "{what}");
            }
        }
        let dep = find(&docs, "Deployment");
        let pod = &dep["spec"]["template"]["spec"];
        let c = &pod["containers"][0];
        assert_eq!(dep["spec"]["replicas"].as_i64(), Some(1), "{what}");
        assert_eq!(dep["spec"]["strategy"]["type"].as_str(), Some("Recreate"));
        assert_eq!(c["image"].as_str(), Some("medic:0.1.0"), "{what}");
        let cmd: Vec<&str> = c["command"]
            .as_vec()
            .expect("command")
            .iter()
            .filter_map(|s| s.as_str())
            .collect();
        let dry = values.contains("dryRun: true");
        let mut want = vec!["medic", "run", "--config", "/etc/medic/medic.yaml"];
        if dry {
            want.push("--dry-run");
        }
        assert_eq!(cmd, want, "{what}");
        let sc = &c["securityContext"];
        assert_eq!(sc["runAsNonRoot"].as_bool(), Some(true));
        assert_eq!(sc["readOnlyRootFilesystem"].as_bool(), Some(true));
        assert_eq!(sc["allowPrivilegeEscalation"].as_bool(), Some(false));
        assert_eq!(
            str_set(&sc["capabilities"]["drop"]),
            BTreeSet::from(["ALL".into()])
        );
        // No HTTP server in the chart's config, hence no HTTP probes (see deployment.yaml).
        assert!(c["livenessProbe"].is_badvalue() && c["readinessProbe"].is_badvalue());
        // The webhook URL never lands in the ConfigMap, only in the pod's env from a Secret.
        let cm = find(&docs, "ConfigMap");
        let medic_yaml = cm["data"]["medic.yaml"].as_str().expect("medic.yaml");
        assert!(
            medic_yaml.contains("${MEDIC_ESCALATION_WEBHOOK:-}"),
            "{what}"
        );
        assert!(
            !medic_yaml.contains("kubeconfig"),
            "{what}: in-cluster credentials only"
        );
        let env = c["env"].as_vec().expect("env");
        let webhook = env
            .iter()
            .find(|e| e["name"].as_str() == Some("MEDIC_ESCALATION_WEBHOOK"));
        if values.contains("webhookSecret") {
            let r = &webhook.expect("webhook env")["valueFrom"]["secretKeyRef"];
            assert_eq!(r["name"].as_str(), Some("medic-webhook"));
            assert_eq!(r["key"].as_str(), Some("url"));
        } else {
            assert!(webhook.is_none(), "{what}");
        }
        let data = pod["volumes"]
            .as_vec()
            .expect("volumes")
            .iter()
            .find(|v| v["name"].as_str() == Some("data"))
            .expect("data volume");
        let has_pvc = kinds.contains(&"PersistentVolumeClaim");
        if values.contains("existingClaim") {
            assert!(!has_pvc);
            assert_eq!(
                data["persistentVolumeClaim"]["claimName"].as_str(),
                Some("medic-data")
            );
        } else if values.contains("persistence") {
            assert!(has_pvc, "{what}");
            assert_eq!(
                data["persistentVolumeClaim"]["claimName"].as_str(),
                Some("medic")
            );
        } else {
            assert!(!has_pvc && data["emptyDir"].as_hash().is_some(), "{what}");
        }
        assert_eq!(
            kinds.contains(&"ServiceAccount"),
            !values.contains("create: false"),
            "{what}"
        );
        assert_eq!(
            kinds.contains(&"ClusterRole"),
            !values.contains("rbac: { create: false }"),
            "{what}"
        );
    }
    // Another release name: objects are named `<release>-medic`.
    let other = Release {
        name: "ops",
        namespace: "tools",
    };
    let docs = render_docs(&other, &[]);
    assert!(docs.iter().all(|(_, d)| name(d) == "ops-medic"));
    let notes = render_chart(&chart_dir(), &RELEASE, &["dryRun: true"]).expect("render");
    assert!(
        notes["NOTES.txt"].contains("Dry run"),
        "{}",
        notes["NOTES.txt"]
    );
}

/// The chart's RBAC is generated text: it must stay what `medic rbac` prints for the config
/// the chart renders (all namespaces, and limited to some).
#[test]
fn rbac_rules_are_what_medic_rbac_prints_for_the_rendered_config() {
    let releases = [
        RELEASE,
        Release {
            name: "ops",
            namespace: "tools",
        },
    ];
    for release in &releases {
        for (what, values) in &VARIANTS[..2] {
            let tmp = tempfile::tempdir().expect("tempdir");
            let docs = render_docs(release, &[values]);
            let chart: Vec<Yaml> = docs.iter().map(|d| d.1.clone()).collect();
            let chart = rbac_of(&chart);
            let printed = medic_rbac(&docs, release, tmp.path());
            assert!(!chart.is_empty(), "{what}: the chart renders no RBAC");
            assert_eq!(
                chart, printed,
                "{what} (release {}): the chart's RBAC drifted from `medic rbac`; \
                 regenerate the rules in deploy/helm/medic/templates/_helpers.tpl",
                release.name
            );
        }
    }
}

#[test]
fn rendered_config_passes_medic_validate() {
    for (what, values) in VARIANTS {
        let tmp = tempfile::tempdir().expect("tempdir");
        let docs = render_docs(&RELEASE, &[values]);
        let env = write_config(&docs, tmp.path());
        let out = medic()
            .envs(env)
            .arg("validate")
            .arg(tmp.path().join("medic.yaml"))
            .arg(tmp.path().join("policies.yaml"))
            .output()
            .expect("run medic validate");
        assert!(
            out.status.success(),
            "{what}: medic validate failed:\n{}{}\n--- medic.yaml\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(tmp.path().join("medic.yaml")).unwrap_or_default()
        );
    }
}

/// values.yaml carries the example's policies and settings; they must not drift apart.
#[test]
fn values_match_the_kubernetes_example() {
    let load = |p: PathBuf| {
        let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        YamlLoader::load_from_str(&text).expect("yaml").remove(0)
    };
    let values = load(chart_dir().join("values.yaml"));
    let policies = load(repo_dir().join("examples/kubernetes/policies.yaml"));
    let example = load(repo_dir().join("examples/kubernetes/medic.yaml"));
    assert_eq!(values["policies"], policies["policies"], "policies drifted");
    let config = &values["config"];
    for section in ["agent", "detectors", "correlation", "guards", "escalation"] {
        assert_eq!(config[section], example[section], "`{section}` drifted");
    }
    let source = example["sources"]
        .as_vec()
        .expect("sources")
        .iter()
        .find(|s| s["type"].as_str() == Some("kubernetes"))
        .expect("kubernetes source");
    for (k, v) in config["kubernetesSource"]
        .as_hash()
        .expect("kubernetesSource")
    {
        assert_eq!(
            &source[k.as_str().expect("key")],
            v,
            "kubernetesSource.{k:?}"
        );
    }
    let actuator = &example["actuators"]["kubernetes"];
    for (k, v) in config["kubernetesActuator"]
        .as_hash()
        .expect("kubernetesActuator")
    {
        assert_eq!(
            &actuator[k.as_str().expect("key")],
            v,
            "kubernetesActuator.{k:?}"
        );
    }
    assert_eq!(values["excludeNamespaces"], source["exclude_namespaces"]);
}

/// A copy of the chart with one extra template, rendered: the error, if any.
fn render_with(template: &str, values: &str) -> Result<BTreeMap<String, String>, String> {
    let tmp = tempfile::tempdir().expect("tempdir");
    let copy = tmp.path().join("medic");
    std::fs::create_dir_all(copy.join("templates")).expect("mkdir");
    for f in ["Chart.yaml", "values.yaml"] {
        std::fs::copy(chart_dir().join(f), copy.join(f)).expect("copy");
    }
    for e in std::fs::read_dir(chart_dir().join("templates")).expect("templates") {
        let e = e.expect("entry");
        std::fs::copy(e.path(), copy.join("templates").join(e.file_name())).expect("copy");
    }
    std::fs::write(copy.join("templates/extra.yaml"), template).expect("write");
    render_chart(&copy, &RELEASE, &[values]).map_err(|e| e.to_string())
}

#[test]
fn renderer_refuses_what_it_does_not_support() {
    let refused = [
        ("{{ with .Values.image }}{{ .tag }}{{ end }}", "`with`"),
        ("{{ lookup \"v1\" \"Secret\" \"ns\" \"x\" }}", "`lookup`"),
        ("{{ $x := 1 }}", "variables"),
        ("{{ .Values.image.tag | upper }}", "`upper`"),
        ("{{ tpl .Values.x . }}", "`tpl`"),
        ("{{ if .Values.dryRun }}open", "without `end`"),
        ("{{ end }}", "without `if`"),
        ("{{ .Values.nosuch.deeper }}", "nil pointer"),
        ("{{ .Values.resources }}", "toYaml"),
        ("{{ printf \"%d\" 1 }}", "only %s"),
        ("{{ include \"medic.nosuch\" . }}", "no template named"),
        ("{{ template \"medic.name\" . }}", "`template`"),
        ("{{ .Values.image.tag `raw` }}", "unsupported character"),
    ];
    for (template, why) in refused {
        let e = render_with(template, "").expect_err(template);
        assert!(
            e.contains(why),
            "{template}: expected an error about {why}, got: {e}"
        );
        assert!(e.contains("extra.yaml"), "the error names the file: {e}");
    }
    // And what is in the subset works as Helm's does.
    let ok = render_with(
        concat!(
            "a: {{ .Values.image.tag | default .Chart.AppVersion | quote }}\n",
            "b: {{- include \"medic.selectorLabels\" . | nindent 2 }}\n",
            "{{- range .Values.excludeNamespaces }}\n- {{ . }} {{ $.Release.Name }}\n{{- end }}\n",
            "c: {{ .Values.nosuch }}|{{ if not .Values.nosuch }}unset{{ else }}set{{ end }}\n",
            "d: {{ printf \"%s-%s\" \"x\" \"y\" | trunc 2 | trimSuffix \"-\" }}\n",
            "e: {{ toYaml .Values.securityContext.capabilities | indent 1 }}\n",
        ),
        "",
    )
    .expect("render");
    assert_eq!(
        ok["extra.yaml"],
        "a: \"0.1.0\"\nb:\n  app.kubernetes.io/name: medic\n  app.kubernetes.io/instance: medic\n\
         - kube-system medic\n- kube-public medic\n- kube-node-lease medic\n\
         c: |unset\nd: x\ne:  drop:\n   - ALL\n"
    );
    // Values the chart refuses with a reason.
    let e = render_with("", "replicas: 2").expect_err("replicas 2");
    assert!(e.contains("replicas must be 1"), "{e}");
    // The 1.20 API server accepts an image with a newline (only the kubelet would fail on
    // it), so the chart refuses it.
    let e = render_with("", "image: { tag: \"0.1.0\\n\" }").expect_err("newline in tag");
    assert!(
        e.contains("deployment.yaml") && e.contains("must not contain a newline"),
        "{e}"
    );
}

/// `helm template` agrees with the renderer, when Helm is installed (it is not packaged for
/// Debian and cannot be downloaded on this machine, so usually this is skipped).
#[test]
fn helm_template_agrees_when_helm_is_on_path() {
    let Ok(out) = Command::new("helm").arg("version").output() else {
        eprintln!("skipped: no `helm` on PATH; the chart was rendered by the test's renderer only");
        return;
    };
    assert!(out.status.success(), "helm version failed");
    for (what, values) in VARIANTS {
        let tmp = tempfile::tempdir().expect("tempdir");
        let file = tmp.path().join("values.yaml");
        std::fs::write(&file, values).expect("write values");
        let out = Command::new("helm")
            .args(["template", "medic"])
            .arg(chart_dir())
            .args(["--namespace", "medic", "-f"])
            .arg(&file)
            .output()
            .expect("helm template");
        assert!(
            out.status.success(),
            "{what}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut helm: Vec<Yaml> = YamlLoader::load_from_str(&String::from_utf8_lossy(&out.stdout))
            .expect("helm output")
            .into_iter()
            .filter(|d| !d.is_null())
            .collect();
        let mut ours: Vec<Yaml> = render_docs(&RELEASE, &[values])
            .into_iter()
            .map(|d| d.1)
            .collect();
        let key = |d: &Yaml| {
            format!(
                "{}/{}/{}",
                kind(d),
                d["metadata"]["namespace"].as_str().unwrap_or(""),
                name(d)
            )
        };
        helm.sort_by_key(key);
        ours.sort_by_key(key);
        assert_eq!(
            helm, ours,
            "{what}: helm template and the test's renderer disagree"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Against the sandbox's API server

/// `scripts/k8s-sandbox up DIR`, and `down DIR` on drop, whatever happened in between.
struct Sandbox {
    dir: tempfile::TempDir,
}

impl Sandbox {
    fn script() -> PathBuf {
        repo_dir().join("scripts/k8s-sandbox")
    }

    fn up() -> Sandbox {
        let sandbox = Sandbox {
            dir: tempfile::tempdir().expect("tempdir"),
        };
        // Created before `up` runs, so that a half-started sandbox is stopped too.
        let out = Command::new(Self::script())
            .arg("up")
            .arg(sandbox.dir.path())
            .env("MEDIC_SANDBOX_NO_KUBELET", "1")
            .output()
            .expect("run k8s-sandbox up");
        assert!(
            out.status.success(),
            "k8s-sandbox up failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        sandbox
    }

    async fn client(&self) -> Client {
        let kc = Kubeconfig::read_from(self.dir.path().join("kubeconfig")).expect("kubeconfig");
        let config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
            .await
            .expect("client config");
        Client::try_from(config).expect("client")
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = Command::new(Self::script())
            .arg("down")
            .arg(self.dir.path())
            .output();
    }
}

fn to_json(y: &Yaml) -> serde_json::Value {
    use serde_json::Value;
    match y {
        Yaml::Null => Value::Null,
        Yaml::Boolean(b) => Value::Bool(*b),
        Yaml::Integer(n) => Value::from(*n),
        Yaml::Real(r) => Value::from(r.parse::<f64>().expect("a float")),
        Yaml::String(s) => Value::String(s.clone()),
        Yaml::Array(a) => Value::Array(a.iter().map(to_json).collect()),
        Yaml::Hash(h) => Value::Object(
            h.iter()
                .map(|(k, v)| (k.as_str().expect("string keys").to_string(), to_json(v)))
                .collect(),
        ),
        other => panic!("unsupported YAML node {other:?}"),
    }
}

/// Helm's install order for the kinds the chart has.
fn install_rank(kind: &str) -> usize {
    [
        "Namespace",
        "ServiceAccount",
        "Secret",
        "ConfigMap",
        "PersistentVolumeClaim",
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
        "Deployment",
    ]
    .iter()
    .position(|k| *k == kind)
    .unwrap_or(usize::MAX)
}

async fn api_for(client: &Client, doc: &Yaml) -> Api<DynamicObject> {
    let api_version = doc["apiVersion"].as_str().expect("apiVersion");
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let gvk = GroupVersionKind::gvk(group, version, kind(doc));
    let (ar, caps) = discovery::pinned_kind(client, &gvk)
        .await
        .unwrap_or_else(|e| panic!("discovery of {gvk:?}: {e}"));
    match caps.scope {
        Scope::Namespaced => Api::namespaced_with(
            client.clone(),
            doc["metadata"]["namespace"]
                .as_str()
                .unwrap_or_else(|| panic!("{} {} has no namespace", kind(doc), name(doc))),
            &ar,
        ),
        Scope::Cluster => Api::all_with(client.clone(), &ar),
    }
}

/// Server-side apply, dry run, of every document; the first error, if any.
async fn dry_run_apply(client: &Client, docs: &[(String, Yaml)]) -> Result<usize, String> {
    let mut docs: Vec<&Yaml> = docs.iter().map(|d| &d.1).collect();
    docs.sort_by_key(|d| install_rank(kind(d)));
    let pp = PatchParams {
        dry_run: true,
        field_manager: Some("medic-test".into()),
        ..Default::default()
    };
    for doc in &docs {
        let api = api_for(client, doc).await;
        let obj: DynamicObject = serde_json::from_value(to_json(doc)).expect("object");
        api.patch(name(doc), &pp, &Patch::Apply(&obj))
            .await
            .map_err(|e| format!("{} {}: {e}", kind(doc), name(doc)))?;
    }
    Ok(docs.len())
}

async fn create_namespace(client: &Client, ns: &str) {
    let doc = YamlLoader::load_from_str(&format!(
        "apiVersion: v1\nkind: Namespace\nmetadata: {{ name: {ns} }}\n"
    ))
    .expect("yaml")
    .remove(0);
    let api = api_for(client, &doc).await;
    let obj: DynamicObject = serde_json::from_value(to_json(&doc)).expect("object");
    api.create(&PostParams::default(), &obj)
        .await
        .unwrap_or_else(|e| panic!("creating namespace {ns}: {e}"));
}

#[tokio::test(flavor = "multi_thread")]
async fn api_server_accepts_every_rendered_manifest_in_a_dry_run() {
    let sandbox = Sandbox::up();
    let client = sandbox.client().await;
    // The release's namespace and the namespaces a variant limits medic to exist for real;
    // everything else is only dry-run.
    for ns in ["medic", "shop", "web"] {
        create_namespace(&client, ns).await;
    }
    for (what, values) in VARIANTS {
        let docs = render_docs(&RELEASE, &[values]);
        let n = dry_run_apply(&client, &docs)
            .await
            .unwrap_or_else(|e| panic!("{what}: the API server refused: {e}"));
        assert_eq!(n, docs.len());
        eprintln!("{what}: {n} manifests accepted (server-side apply, dry run)");
    }
    // Dry run means nothing was created.
    let dep = find(&render_docs(&RELEASE, &[]), "Deployment").clone();
    let api = api_for(&client, &dep).await;
    assert!(api.get_opt("medic").await.expect("get").is_none());

    // Malformed values render, and the API server says what is wrong with them.
    let bad = [(
        "persistence: { enabled: true, size: lots }",
        "PersistentVolumeClaim",
        "quantities must match",
    )];
    for (values, kind_refused, says) in bad {
        let docs = render_docs(&RELEASE, &[values]);
        let e = dry_run_apply(&client, &docs)
            .await
            .expect_err(&format!("the API server accepted {values}"));
        assert!(
            e.starts_with(kind_refused) && e.contains(says),
            "{values}: expected {kind_refused} refused because {says:?}, got: {e}"
        );
    }
    drop(sandbox);
}
