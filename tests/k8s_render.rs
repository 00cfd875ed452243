//! `rcluster render --format k8s`, run as the real binary; every object is checked against
//! the Kubernetes 1.33 OpenAPI schema by `kubernetes-validate` (strict: unknown fields fail).

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

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

fn rcluster(topology: &Path, args: &[&str]) -> Output {
    let output = Command::new(env!("CARGO_BIN_EXE_rcluster"))
        .arg("-f")
        .arg(topology)
        .args(args)
        .output()
        .expect("run rcluster");
    assert!(
        output.status.success(),
        "rcluster {args:?} failed ({}):\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn render_k8s(topology: &Path, extra: &[&str]) -> String {
    let mut args = vec!["render", "--format", "k8s"];
    args.extend_from_slice(extra);
    String::from_utf8(rcluster(topology, &args).stdout).expect("utf-8 output")
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
    rcluster(
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
