//! `rcluster render --format k8s`, run as the real binary; every object is checked against
//! the Kubernetes 1.33 OpenAPI schema by `kubernetes-validate` (strict: unknown fields fail).

mod common;

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The Kubernetes version the manifests must validate against.
const KUBERNETES_VERSION: &str = "1.33.0";
/// Objects every rendering holds, as `kubernetes-validate` names them.
const OBJECTS: [&str; 10] = [
    "secret/demo-auth",
    "configmap/demo-redis-config",
    "configmap/demo-sentinel-config",
    "service/demo-redis",
    "service/demo-sentinel-headless",
    "service/demo-sentinel",
    "statefulset/demo-redis",
    "statefulset/demo-sentinel",
    "poddisruptionbudget/demo-redis",
    "poddisruptionbudget/demo-sentinel",
];

fn repo_topology() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("topology.toml")
}

fn render_k8s(topology: &Path, extra: &[&str]) -> String {
    let mut args = vec!["render", "--format", "k8s"];
    args.extend_from_slice(extra);
    String::from_utf8(common::rcluster_with(topology, &args).stdout).expect("utf-8 output")
}

fn write_topology(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("topology.toml");
    std::fs::write(&path, text).expect("write topology");
    path
}

/// Validate a manifest file with `kubernetes-validate --strict`; panics with its report.
fn assert_valid(manifest: &Path) {
    let probe = Command::new("python3")
        .args(["-m", "kubernetes_validate", "--version"])
        .output();
    match probe {
        Ok(out) if out.status.success() => {}
        _ => panic!(
            "the schema validator is missing: `pip install kubernetes-validate` \
             (Debian: `pip install --user --break-system-packages kubernetes-validate`)"
        ),
    }
    let out = Command::new("python3")
        .args(["-m", "kubernetes_validate", "--strict", "--no-warn"])
        .args(["--kubernetes-version", KUBERNETES_VERSION])
        .arg(manifest)
        .output()
        .expect("run kubernetes-validate");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "manifests do not validate against Kubernetes {KUBERNETES_VERSION}:\n{report}"
    );
    // A file the validator skipped (no kind, unknown version) would also exit 0.
    for object in OBJECTS {
        assert!(
            report.contains(&format!(
                "passed for resource {object} against version 1.33"
            )),
            "`{object}` was not validated:\n{report}"
        );
    }
}

/// The YAML documents as JSON values, parsed by the validator's own YAML loader.
fn documents(manifest: &Path) -> Vec<serde_json::Value> {
    let out = Command::new("python3")
        .args([
            "-c",
            "import json, sys, yaml; print(json.dumps(list(yaml.safe_load_all(open(sys.argv[1])))))",
        ])
        .arg(manifest)
        .output()
        .expect("run python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("json")
}

#[test]
fn default_topology_validates_and_matches_snapshot() {
    let yaml = render_k8s(&repo_topology(), &[]);
    let tmp = tempfile::tempdir().expect("tempdir");
    let manifest = tmp.path().join("demo.k8s.yaml");
    std::fs::write(&manifest, &yaml).expect("write manifest");
    assert_valid(&manifest);
    insta::assert_snapshot!("default_k8s", yaml);
}

#[test]
fn variant_validates_required_anti_affinity_storage_class_five_sentinels() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let topology = write_topology(
        tmp.path(),
        "[cluster]\nname = \"demo\"\n\n[sentinel]\ncount = 5\nquorum = 3\n\n\
         [kubernetes]\nnamespace = \"cache\"\nanti_affinity = \"required\"\n\
         storage_class = \"fast-ssd\"\nstorage_size = \"5Gi\"\n\
         resources = { requests = { cpu = \"100m\", memory = \"128Mi\" }, \
         limits = { memory = \"256Mi\" } }\n",
    );
    let out = tmp.path().join("out");
    common::rcluster_with(
        &topology,
        &[
            "render",
            "--format",
            "k8s",
            "--out",
            out.to_str().expect("utf-8"),
        ],
    );
    let manifest = out.join("demo.k8s.yaml");
    let mode = std::fs::metadata(&manifest)
        .expect("manifest written")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "the manifest holds the Secret");
    assert_valid(&manifest);

    let docs = documents(&manifest);
    let find = |kind: &str, name: &str| {
        docs.iter()
            .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("no {kind} `{name}`"))
            .clone()
    };
    let sentinels = find("StatefulSet", "demo-sentinel");
    assert_eq!(sentinels["spec"]["replicas"], 5);
    assert_eq!(sentinels["metadata"]["namespace"], "cache");
    let affinity = &sentinels["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"];
    assert_eq!(
        affinity["requiredDuringSchedulingIgnoredDuringExecution"][0]["topologyKey"],
        "kubernetes.io/hostname"
    );
    let redis = find("StatefulSet", "demo-redis");
    let claim = &redis["spec"]["volumeClaimTemplates"][0]["spec"];
    assert_eq!(claim["storageClassName"], "fast-ssd");
    assert_eq!(claim["resources"]["requests"]["storage"], "5Gi");
    assert_eq!(
        find("PodDisruptionBudget", "demo-sentinel")["spec"]["minAvailable"],
        3
    );
    let container = &redis["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["resources"]["requests"]["cpu"], "100m");
    assert_eq!(container["resources"]["limits"]["memory"], "256Mi");
    let headless = find("Service", "demo-sentinel-headless");
    assert_eq!(headless["spec"]["clusterIP"], "None");
}

#[test]
fn password_appears_only_in_the_secret() {
    let password = "k8s-only-in-secret-7Q";
    let tmp = tempfile::tempdir().expect("tempdir");
    let topology = write_topology(
        tmp.path(),
        &format!("[cluster]\nname = \"demo\"\n\n[auth]\npassword = \"{password}\"\n"),
    );
    let yaml = render_k8s(&topology, &["--show-secrets"]);
    let manifest = tmp.path().join("demo.k8s.yaml");
    std::fs::write(&manifest, &yaml).expect("write manifest");

    let docs = documents(&manifest);
    assert_eq!(docs.len(), OBJECTS.len());
    for doc in &docs {
        let text = doc.to_string();
        if doc["kind"] == "Secret" {
            assert_eq!(doc["stringData"]["password"], password);
        } else {
            assert!(
                !text.contains(password),
                "the password leaked into {} `{}`",
                doc["kind"],
                doc["metadata"]["name"]
            );
        }
    }
    // Without --show-secrets it is nowhere.
    assert!(!render_k8s(&topology, &[]).contains(password));
}

#[test]
fn misspelled_resources_are_an_error_not_dropped() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let topology = write_topology(
        tmp.path(),
        "[cluster]\nname = \"demo\"\n\n[kubernetes]\nresources = { limts = { memory = \"1Gi\" } }\n",
    );
    let output = Command::new(env!("CARGO_BIN_EXE_rcluster"))
        .arg("-f")
        .arg(&topology)
        .args(["render", "--format", "k8s"])
        .output()
        .expect("run rcluster");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("`kubernetes.resources`"), "{stderr}");
}

/// The start-up scripts and configs of the ConfigMaps, run with fake `redis-cli` (the
/// sentinels' answer), `getent` and `redis-server` on the PATH.
struct StartUp {
    dir: tempfile::TempDir,
}

impl StartUp {
    /// The password reaches the scripts only through the Secret's env, as on Kubernetes.
    fn new() -> StartUp {
        let dir = tempfile::tempdir().expect("tempdir");
        let topology = write_topology(dir.path(), "[cluster]\nname = \"demo\"\n");
        let manifest = dir.path().join("demo.k8s.yaml");
        std::fs::write(&manifest, render_k8s(&topology, &[])).expect("write manifest");
        let root = dir.path().to_str().expect("utf-8").to_owned();
        for doc in documents(&manifest) {
            if doc["kind"] != "ConfigMap" {
                continue;
            }
            let component = doc["metadata"]["labels"]["app.kubernetes.io/component"]
                .as_str()
                .expect("component label")
                .to_owned();
            let config = dir.path().join(&component).join("config");
            std::fs::create_dir_all(&config).expect("mkdir");
            std::fs::create_dir_all(dir.path().join(&component).join("run")).expect("mkdir");
            for (key, value) in doc["data"].as_object().expect("data") {
                let text = value
                    .as_str()
                    .expect("string")
                    .replace("/config/", &format!("{root}/{component}/config/"))
                    .replace("/etc/redis/", &format!("{root}/{component}/run/"));
                std::fs::write(config.join(key), text).expect("write");
            }
        }
        let bin = dir.path().join("bin");
        std::fs::create_dir_all(&bin).expect("mkdir");
        for (name, body) in [
            // No answer = no sentinel reachable (the script runs it under `timeout`).
            (
                "redis-cli",
                "[ -n \"$FAKE_SENTINEL_ANSWER\" ] || exit 1\nprintf '%s\\n6379\\n' \"$FAKE_SENTINEL_ANSWER\"",
            ),
            ("getent", "exit 0"),
            ("redis-server", "echo \"started: $*\""),
        ] {
            let path = bin.join(name);
            std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).expect("write fake");
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        }
        StartUp { dir }
    }

    /// Run a component's start-up script as `pod`; returns the config it wrote.
    fn run(&self, component: &str, pod: &str, password: &str, sentinel_answer: &str) -> String {
        let root = self.dir.path();
        let path = format!(
            "{}:{}",
            root.join("bin").display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let out = Command::new("sh")
            .arg(root.join(component).join("config/start.sh"))
            .env("PATH", path)
            .env("POD_NAME", pod)
            .env("REDIS_PASSWORD", password)
            .env("FAKE_SENTINEL_ANSWER", sentinel_answer)
            .output()
            .expect("run start.sh");
        assert!(
            out.status.success(),
            "start.sh of {pod} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains("started: "));
        let file = if component == "redis" {
            "redis.conf"
        } else {
            "sentinel.conf"
        };
        std::fs::read_to_string(root.join(component).join("run").join(file)).expect("config")
    }
}

const DNS: &str = ".demo-redis.default.svc.cluster.local";

fn replicaof(conf: &str) -> Vec<&str> {
    conf.lines()
        .filter(|l| l.starts_with("replicaof "))
        .collect()
}

#[test]
fn redis_start_up_follows_the_sentinels_and_falls_back_to_ordinal_0() {
    // Characters that are special to sed's replacement text and to redis.conf quoting.
    let password = r"p\a&s|s";
    let startup = StartUp::new();

    // A fresh group: no sentinel answers; ordinal 0 is the master.
    let master = startup.run("redis", "demo-redis-0", password, "");
    assert_eq!(replicaof(&master), Vec::<&str>::new());
    assert!(master.contains(r#"requirepass "p\\a&s|s""#), "{master}");
    assert!(master.contains(r#"masterauth "p\\a&s|s""#), "{master}");
    assert!(master.contains(&format!("replica-announce-ip demo-redis-0{DNS}")));
    assert!(!master.contains("__RCLUSTER_"), "{master}");
    let replica = startup.run("redis", "demo-redis-1", password, "");
    assert_eq!(
        replicaof(&replica),
        [format!("replicaof demo-redis-0{DNS} 6379")]
    );

    // After a failover to ordinal 2, a restarted ordinal 0 must come back as its replica.
    let old_master = startup.run(
        "redis",
        "demo-redis-0",
        password,
        &format!("demo-redis-2{DNS}"),
    );
    assert_eq!(
        replicaof(&old_master),
        [format!("replicaof demo-redis-2{DNS} 6379")]
    );
    // The current master restarting before the sentinels notice stays master.
    let current = startup.run(
        "redis",
        "demo-redis-2",
        password,
        &format!("demo-redis-2{DNS}"),
    );
    assert_eq!(replicaof(&current), Vec::<&str>::new());
    // An answer that is not one of the group's pods (an error, another group) is ignored.
    let confused = startup.run(
        "redis",
        "demo-redis-1",
        password,
        "ERR No such master with that name",
    );
    assert_eq!(
        replicaof(&confused),
        [format!("replicaof demo-redis-0{DNS} 6379")]
    );
}

#[test]
fn sentinel_start_up_monitors_the_current_master_with_consistent_ids() {
    let password = r"p\a&s|s";
    let startup = StartUp::new();
    let answer = format!("demo-redis-2{DNS}");
    let one = startup.run("sentinel", "demo-sentinel-1", password, &answer);
    let zero = startup.run("sentinel", "demo-sentinel-0", password, &answer);

    assert!(
        one.contains(&format!(
            "sentinel monitor mymaster demo-redis-2{DNS} 6379 2"
        )),
        "{one}"
    );
    assert!(
        one.contains(r#"sentinel auth-pass mymaster "p\\a&s|s""#),
        "{one}"
    );
    assert!(one.contains("sentinel resolve-hostnames yes"));
    assert!(one.contains("sentinel announce-hostnames yes"));
    assert!(!one.contains("__RCLUSTER_"), "{one}");
    let known_replicas: Vec<&str> = one
        .lines()
        .filter(|l| l.starts_with("sentinel known-replica"))
        .collect();
    assert_eq!(
        known_replicas,
        [
            format!("sentinel known-replica mymaster demo-redis-0{DNS} 6379"),
            format!("sentinel known-replica mymaster demo-redis-1{DNS} 6379"),
        ]
    );
    // Each sentinel knows the others, not itself, by the id the other really has.
    let myid = |conf: &str| {
        conf.lines()
            .find_map(|l| l.strip_prefix("sentinel myid "))
            .expect("myid")
            .to_owned()
    };
    let self_dns = "demo-sentinel-1.demo-sentinel-headless.default.svc.cluster.local";
    assert!(!one.contains(&format!("known-sentinel mymaster {self_dns}")));
    assert!(
        zero.contains(&format!(
            "sentinel known-sentinel mymaster {self_dns} 26379 {}",
            myid(&one)
        )),
        "{zero}"
    );
    assert_ne!(myid(&one), myid(&zero));
    // No sentinel knows a master yet: ordinal 0.
    let fresh = startup.run("sentinel", "demo-sentinel-2", password, "");
    assert!(fresh.contains(&format!(
        "sentinel monitor mymaster demo-redis-0{DNS} 6379 2"
    )));
}
