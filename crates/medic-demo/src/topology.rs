//! The demo estate's topology: five services, their replicas, restart policies, releases,
//! configs and the argv the supervisor runs them with.

use crate::service::config::ServiceConfig;
use crate::supervisor::{ReleaseSpec, RestartPolicy, WorkloadSpec};
use medic_core::Topology;
use std::path::Path;

/// Memory limit of every demo service.
pub const MEMORY_LIMIT_BYTES: u64 = 256 * 1024 * 1024;

/// Release every service starts on.
pub const GOOD_RELEASE: &str = "v1";
/// The buggy release that `bad_deployment` rolls out.
pub const BAD_RELEASE: &str = "v2";
/// Share of requests the buggy release fails.
pub const BAD_RELEASE_FAIL_RATIO: &str = "0.3";

/// One service of the demo: name, replicas, restart policy, dependencies.
pub struct DemoService {
    pub name: &'static str,
    pub replicas: u32,
    pub restart: RestartPolicy,
    pub deps: &'static [&'static str],
}

/// frontend (2) → catalog (1) → cache (1); frontend → checkout (2) → payment (1).
pub const SERVICES: [DemoService; 5] = [
    DemoService {
        name: "frontend",
        replicas: 2,
        restart: RestartPolicy::Always,
        deps: &["catalog", "checkout"],
    },
    DemoService {
        name: "catalog",
        replicas: 1,
        restart: RestartPolicy::Always,
        deps: &["cache"],
    },
    // `never`, like a singleton whose operator must bring it back: a crash leaves it down.
    DemoService {
        name: "cache",
        replicas: 1,
        restart: RestartPolicy::Never,
        deps: &[],
    },
    DemoService {
        name: "checkout",
        replicas: 2,
        restart: RestartPolicy::Always,
        deps: &["payment"],
    },
    DemoService {
        name: "payment",
        replicas: 1,
        restart: RestartPolicy::Always,
        deps: &[],
    },
];

/// Whether `name` is one of the demo's services.
pub fn is_demo_service(name: &str) -> bool {
    SERVICES.iter().any(|s| s.name == name)
}

/// The dependency graph, for medic's config.
pub fn demo_topology() -> Topology {
    let mut t = Topology::default();
    for s in &SERVICES {
        t.add_service(s.name);
        for d in s.deps {
            t.add_edge(s.name, d);
        }
    }
    t
}

/// The config each service starts with (version `c1`): its defaults, written out in full as
/// an operator would.
pub fn initial_config(service: &str) -> serde_json::Value {
    let c = ServiceConfig::defaults_for(service);
    serde_json::json!({
        "workers": c.workers,
        "max_queue": c.max_queue,
        "service_ms": c.service_ms,
        "cpu_work_us": c.cpu_work_us,
        "dependency_timeout_ms": c.dependency_timeout_ms,
        "slow_request_ms": c.slow_request_ms,
    })
}

/// A plausible broken config change: the timeout written with its unit, so a string where
/// the service expects a number. The service refuses it at start-up (exit 78).
pub fn broken_config(service: &str) -> serde_json::Value {
    let mut c = initial_config(service);
    if let Some(m) = c.as_object_mut() {
        m.insert("dependency_timeout_ms".into(), serde_json::json!("400ms"));
    }
    c
}

/// The supervisor specs of the demo estate.
pub fn workload_specs(medic_bin: &Path, seed: u64) -> Vec<WorkloadSpec> {
    SERVICES
        .iter()
        .map(|s| {
            let mut argv: Vec<String> = vec![medic_bin.display().to_string()];
            argv.extend(
                [
                    "demo-service",
                    "--service",
                    "{service}",
                    "--instance",
                    "{instance}",
                    "--port",
                    "{port}",
                    "--log",
                    "{log}",
                    "--config",
                    "{config}",
                    "--release",
                    "{release}",
                    "--instance-dir",
                    "{instance_dir}",
                    "--estate-dir",
                    "{estate_dir}",
                    "--seed",
                ]
                .map(String::from),
            );
            argv.push(seed.to_string());
            for d in s.deps {
                argv.push("--dep".into());
                argv.push((*d).into());
            }
            WorkloadSpec {
                name: s.name.into(),
                replicas: s.replicas,
                restart: s.restart,
                memory_limit_bytes: Some(MEMORY_LIMIT_BYTES),
                argv,
                env: Vec::new(),
                // Every service has a buggy v2, so a bad deployment can hit any of them;
                // the demo's default target is payment.
                releases: vec![
                    ReleaseSpec {
                        name: GOOD_RELEASE.into(),
                        extra_args: Vec::new(),
                    },
                    ReleaseSpec {
                        name: BAD_RELEASE.into(),
                        extra_args: vec!["--fail-ratio".into(), BAD_RELEASE_FAIL_RATIO.into()],
                    },
                ],
                release: GOOD_RELEASE.into(),
                config: initial_config(s.name),
                depends_on: s.deps.iter().map(|d| d.to_string()).collect(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::config;

    #[test]
    fn topology_matches_the_contract() {
        let t = demo_topology();
        let deps = |s: &str| t.dependencies(s).map(str::to_string).collect::<Vec<_>>();
        assert_eq!(deps("frontend"), vec!["catalog", "checkout"]);
        assert_eq!(deps("catalog"), vec!["cache"]);
        assert_eq!(deps("checkout"), vec!["payment"]);
        assert!(deps("cache").is_empty() && deps("payment").is_empty());
        let total: u32 = SERVICES.iter().map(|s| s.replicas).sum();
        assert_eq!(total, 7);
        assert!(is_demo_service("cache") && !is_demo_service("db"));
    }

    #[test]
    fn specs_have_full_argv_releases_and_limits() {
        let specs = workload_specs(Path::new("/usr/bin/medic"), 42);
        assert_eq!(specs.len(), 5);
        let fe = &specs[0];
        assert_eq!(fe.argv[0], "/usr/bin/medic");
        assert_eq!(fe.argv[1], "demo-service");
        for ph in [
            "{service}",
            "{instance}",
            "{port}",
            "{log}",
            "{config}",
            "{release}",
            "{instance_dir}",
            "{estate_dir}",
        ] {
            assert!(fe.argv.iter().any(|a| a == ph), "{ph} missing");
        }
        assert!(fe.argv.windows(2).any(|w| w[0] == "--seed" && w[1] == "42"));
        assert!(
            fe.argv
                .windows(2)
                .any(|w| w[0] == "--dep" && w[1] == "catalog")
        );
        assert!(
            fe.argv
                .windows(2)
                .any(|w| w[0] == "--dep" && w[1] == "checkout")
        );
        let cache = specs.iter().find(|s| s.name == "cache").unwrap();
        assert_eq!(cache.restart, RestartPolicy::Never);
        let payment = specs.iter().find(|s| s.name == "payment").unwrap();
        let v2 = payment.releases.iter().find(|r| r.name == "v2").unwrap();
        assert_eq!(v2.extra_args, vec!["--fail-ratio", "0.3"]);
        assert!(
            specs
                .iter()
                .all(|s| s.memory_limit_bytes == Some(MEMORY_LIMIT_BYTES))
        );
    }

    #[test]
    fn initial_configs_are_valid_and_the_broken_one_is_not() {
        for s in &SERVICES {
            let good = initial_config(s.name).to_string();
            assert_eq!(
                config::parse(&good, s.name).unwrap(),
                ServiceConfig::defaults_for(s.name)
            );
            let bad = broken_config(s.name).to_string();
            let e = config::parse(&bad, s.name).unwrap_err();
            assert!(e.contains("dependency_timeout_ms"), "{e}");
        }
    }
}
