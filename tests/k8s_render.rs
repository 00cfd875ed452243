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
    "configmap/demo-redis-config",
    "configmap/demo-sentinel-config",
    "service/demo-redis",
    "service/demo-sentinel-headless",
    "service/demo-sentinel",
    "networkpolicy/demo",
    "statefulset/demo-redis",
    "statefulset/demo-sentinel",
    "poddisruptionbudget/demo-redis",
    "poddisruptionbudget/demo-sentinel",
];
/// With `--show-secrets` (and no `existing_secret`), the Secret too.
const SECRET: &str = "secret/demo-auth";

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

/// Validate a manifest file with `kubernetes-validate --strict`; panics with its report,
/// else returns it.
fn assert_valid(manifest: &Path, with_secret: bool) -> String {
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
    let report = validate_at(manifest, KUBERNETES_VERSION);
    assert_eq!(
        report.contains(SECRET),
        with_secret,
        "the Secret is rendered exactly when asked for:\n{report}"
    );
    // A file the validator skipped (no kind, unknown version) would also exit 0.
    let secret = with_secret.then_some(SECRET);
    for object in OBJECTS.iter().copied().chain(secret) {
        assert!(
            report.contains(&format!(
                "passed for resource {object} against version 1.33"
            )),
            "`{object}` was not validated:\n{report}"
        );
    }
    report
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
    assert_valid(&manifest, false);
    insta::assert_snapshot!("default_k8s", yaml);
}

/// The volume `name` of a pod spec.
fn volume(pod: &serde_json::Value, name: &str) -> serde_json::Value {
    pod["volumes"]
        .as_array()
        .expect("volumes")
        .iter()
        .find(|v| v["name"] == name)
        .unwrap_or_else(|| panic!("no volume `{name}`"))
        .clone()
}

/// Every object of a manifest file, found by kind and name.
struct Manifest(Vec<serde_json::Value>);

impl Manifest {
    fn read(path: &Path) -> Manifest {
        Manifest(documents(path))
    }
    fn find(&self, kind: &str, name: &str) -> serde_json::Value {
        self.0
            .iter()
            .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("no {kind} `{name}`"))
            .clone()
    }
    fn has(&self, kind: &str) -> bool {
        self.0.iter().any(|d| d["kind"] == kind)
    }
}

#[test]
fn variant_validates_with_every_kubernetes_key() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let topology = write_topology(
        tmp.path(),
        "[cluster]\nname = \"demo\"\n\n[auth]\npassword = \"variant-pw\"\n\n\
         [sentinel]\ncount = 5\nquorum = 3\n\n\
         [redis]\nextra = { maxmemory = \"128mb\" }\n\n\
         [kubernetes]\nnamespace = \"cache\"\nanti_affinity = \"required\"\n\
         storage_class = \"fast-ssd\"\nstorage_size = \"5Gi\"\nsentinel_storage_size = \"64Mi\"\n\
         cluster_domain = \"corp.example\"\nzone_spread = \"required\"\nplatform_uid = true\n\
         resources = { requests = { cpu = \"100m\", memory = \"128Mi\" }, \
         limits = { memory = \"256Mi\" } }\n\
         sentinel_resources = { requests = { cpu = \"10m\", memory = \"16Mi\" } }\n",
    );
    let out = tmp.path().join("out");
    common::rcluster_with(
        &topology,
        &[
            "render",
            "--format",
            "k8s",
            "--show-secrets",
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
    assert_valid(&manifest, true);

    let m = Manifest::read(&manifest);
    let sentinels = m.find("StatefulSet", "demo-sentinel");
    assert_eq!(sentinels["spec"]["replicas"], 5);
    assert_eq!(sentinels["metadata"]["namespace"], "cache");
    let pod = &sentinels["spec"]["template"]["spec"];
    assert_eq!(
        pod["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][0]["topologyKey"],
        "kubernetes.io/hostname"
    );
    let spread = &pod["topologySpreadConstraints"][0];
    assert_eq!(spread["topologyKey"], "topology.kubernetes.io/zone");
    assert_eq!(spread["whenUnsatisfiable"], "DoNotSchedule");
    // The platform picks the uid (OpenShift); the pod still refuses root.
    assert!(pod["securityContext"].get("runAsUser").is_none());
    assert!(pod["securityContext"].get("fsGroup").is_none());
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(
        sentinels["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"],
        "64Mi"
    );
    assert_eq!(
        pod["containers"][0]["resources"]["requests"]["cpu"], "10m",
        "sentinel_resources wins over resources"
    );
    let redis = m.find("StatefulSet", "demo-redis");
    let claim = &redis["spec"]["volumeClaimTemplates"][0]["spec"];
    assert_eq!(claim["storageClassName"], "fast-ssd");
    assert_eq!(claim["resources"]["requests"]["storage"], "5Gi");
    // 5 sentinels, quorum 3: two may go (3 left: a majority and the quorum).
    assert_eq!(
        m.find("PodDisruptionBudget", "demo-sentinel")["spec"]["maxUnavailable"],
        2
    );
    assert_eq!(
        m.find("PodDisruptionBudget", "demo-redis")["spec"]["maxUnavailable"],
        1
    );
    let container = &redis["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["resources"]["requests"]["cpu"], "100m");
    assert_eq!(container["resources"]["limits"]["memory"], "256Mi");
    let headless = m.find("Service", "demo-sentinel-headless");
    assert_eq!(headless["spec"]["clusterIP"], "None");
    let scripts = m.find("ConfigMap", "demo-redis-config");
    assert!(
        scripts["data"]["lib.sh"]
            .as_str()
            .expect("lib.sh")
            .contains("demo-redis-$1.demo-redis.cache.svc.corp.example"),
        "pod names use the cluster domain"
    );
}

#[test]
fn pods_meet_pod_security_restricted_and_never_carry_the_password() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let topology = write_topology(
        tmp.path(),
        "[cluster]\nname = \"demo\"\n\n[auth]\npassword = \"restricted-pw\"\n",
    );
    let manifest = tmp.path().join("demo.k8s.yaml");
    std::fs::write(&manifest, render_k8s(&topology, &["--show-secrets"])).expect("write");
    let m = Manifest::read(&manifest);
    for name in ["demo-redis", "demo-sentinel"] {
        let pod = m.find("StatefulSet", name)["spec"]["template"]["spec"].clone();
        assert_eq!(pod["automountServiceAccountToken"], false, "{name}");
        assert_eq!(
            pod["securityContext"]["seccompProfile"]["type"],
            "RuntimeDefault"
        );
        assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
        assert_eq!(pod["securityContext"]["runAsUser"], 999);
        let container = &pod["containers"][0];
        let security = &container["securityContext"];
        assert_eq!(security["allowPrivilegeEscalation"], false, "{name}");
        assert_eq!(security["capabilities"]["drop"][0], "ALL", "{name}");
        assert_eq!(security["readOnlyRootFilesystem"], true, "{name}");
        // Only the pod's name: the scripts read the password from the Secret's file.
        let env: Vec<&str> = container["env"]
            .as_array()
            .expect("env")
            .iter()
            .map(|e| e["name"].as_str().expect("name"))
            .collect();
        assert_eq!(env, ["POD_NAME"], "{name}");
        // The init container copies under the same restrictions, with no environment.
        let init = &pod["initContainers"][0];
        assert_eq!(
            init["securityContext"], container["securityContext"],
            "{name}"
        );
        assert!(init.get("env").is_none(), "{name}");
        let secret = volume(&pod, "secret-source");
        assert_eq!(
            secret["projected"]["sources"][0]["secret"]["name"],
            "demo-auth"
        );
        assert_eq!(secret["projected"]["defaultMode"], 0o440);
        // The copy of the passwords is in memory, as a Secret volume is.
        assert_eq!(volume(&pod, "secret")["emptyDir"]["medium"], "Memory");
        for probe in ["startupProbe", "livenessProbe", "readinessProbe"] {
            assert_eq!(
                container[probe]["exec"]["command"][1], "/config/probe.sh",
                "{name} {probe}"
            );
        }
        assert!(
            pod["securityContext"].get("fsGroup").is_some(),
            "volumes group-owned by the pod"
        );
    }
    let redis = m.find("StatefulSet", "demo-redis")["spec"]["template"].clone();
    assert_eq!(
        redis["spec"]["containers"][0]["lifecycle"]["preStop"]["exec"]["command"][1],
        "/config/prestop.sh"
    );
    assert!(
        redis["spec"]["terminationGracePeriodSeconds"]
            .as_i64()
            .expect("grace")
            >= 30
    );
}

#[test]
fn a_changed_config_or_password_changes_the_pod_templates() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let annotations = |text: &str, name: &str| {
        let topology = write_topology(tmp.path(), text);
        let manifest = tmp.path().join("m.yaml");
        std::fs::write(&manifest, render_k8s(&topology, &[])).expect("write");
        Manifest::read(&manifest).find("StatefulSet", name)["spec"]["template"]["metadata"]
            ["annotations"]
            .clone()
    };
    let base = "[cluster]\nname = \"demo\"\n\n[auth]\npassword = \"one\"\n";
    let redis = annotations(base, "demo-redis");
    let sentinel = annotations(base, "demo-sentinel");
    assert!(redis["rcluster.io/config-checksum"].is_string());
    assert!(redis["rcluster.io/secret-checksum"].is_string());
    assert!(!redis.to_string().contains("\"one\""));

    let quorum = format!("{base}\n[sentinel]\ndown_after_ms = 2000\n");
    assert_ne!(annotations(&quorum, "demo-sentinel"), sentinel);
    let maxmemory = format!("{base}\n[redis]\nextra = {{ maxmemory = \"64mb\" }}\n");
    assert_ne!(annotations(&maxmemory, "demo-redis"), redis);
    let password = base.replace("\"one\"", "\"two\"");
    let changed = annotations(&password, "demo-redis");
    assert_eq!(
        changed["rcluster.io/config-checksum"],
        redis["rcluster.io/config-checksum"]
    );
    assert_ne!(
        changed["rcluster.io/secret-checksum"],
        redis["rcluster.io/secret-checksum"]
    );
}

#[test]
fn an_existing_secret_is_referenced_and_never_rendered() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let topology = write_topology(
        tmp.path(),
        "[cluster]\nname = \"demo\"\n\n[auth]\npassword = \"mine\"\n\n\
         [kubernetes]\nexisting_secret = \"team-redis\"\nexisting_secret_key = \"redis-password\"\n",
    );
    let output = common::rcluster_with(&topology, &["render", "--format", "k8s", "--show-secrets"]);
    let yaml = String::from_utf8(output.stdout).expect("utf-8");
    assert!(
        !yaml.contains("mine"),
        "the password is the user's Secret's business"
    );
    let manifest = tmp.path().join("m.yaml");
    std::fs::write(&manifest, &yaml).expect("write");
    let m = Manifest::read(&manifest);
    assert!(!m.has("Secret"));
    let pod = m.find("StatefulSet", "demo-redis")["spec"]["template"].clone();
    let sources = volume(&pod["spec"], "secret-source")["projected"]["sources"].clone();
    // The key the pods need, then the ones accepted during a rotation, where present.
    let expected = [
        ("redis-password", "password", None),
        ("next_redis-password", "next_password", Some(true)),
        ("previous_redis-password", "previous_password", Some(true)),
    ];
    for (i, (key, path, optional)) in expected.into_iter().enumerate() {
        let source = &sources[i]["secret"];
        assert_eq!(source["name"], "team-redis");
        assert_eq!(source["items"][0]["key"], key);
        assert_eq!(source["items"][0]["path"], path);
        assert_eq!(source["optional"].as_bool(), optional);
    }
    assert!(
        pod["metadata"]["annotations"]
            .get("rcluster.io/secret-checksum")
            .is_none()
    );
    // rcluster cannot see the Secret: the user rolls the pods with `secret_revision`.
    let topology = write_topology(
        tmp.path(),
        "[cluster]\nname = \"demo\"\n\n[kubernetes]\nexisting_secret = \"team-redis\"\n\
         secret_revision = \"2026-12-06\"\n",
    );
    std::fs::write(&manifest, render_k8s(&topology, &[])).expect("write");
    let m = Manifest::read(&manifest);
    for set in ["demo-redis", "demo-sentinel"] {
        let annotations =
            &m.find("StatefulSet", set)["spec"]["template"]["metadata"]["annotations"];
        assert_eq!(
            annotations["rcluster.io/secret-revision"], "2026-12-06",
            "{set}"
        );
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("`team-redis`"), "{stderr}");
    assert!(stderr.contains("`kubernetes.secret_revision`"), "{stderr}");
}

#[test]
fn no_placeholder_password_is_ever_deployable() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let topology = write_topology(tmp.path(), "[cluster]\nname = \"nopw\"\n");
    let state = tempfile::tempdir().expect("state dir");
    // With no password anywhere, --show-secrets refuses instead of rendering `********`.
    let output = Command::new(env!("CARGO_BIN_EXE_rcluster"))
        .arg("-f")
        .arg(&topology)
        .args(["render", "--format", "k8s", "--show-secrets"])
        .env("RCLUSTER_STATE_DIR", state.path())
        .output()
        .expect("run rcluster");
    assert_eq!(output.status.code(), Some(2));
    assert!(output.stdout.is_empty(), "nothing is rendered");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("no password yet"), "{stderr}");
    // Without it, there is no Secret at all, and stderr says how to create it.
    let output = Command::new(env!("CARGO_BIN_EXE_rcluster"))
        .arg("-f")
        .arg(&topology)
        .args(["render", "--format", "k8s"])
        .env("RCLUSTER_STATE_DIR", state.path())
        .output()
        .expect("run rcluster");
    assert!(output.status.success());
    let yaml = String::from_utf8(output.stdout).expect("utf-8");
    assert!(!yaml.contains("kind: Secret"), "{yaml}");
    assert!(!yaml.contains("********"));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("kubectl -n default create secret generic nopw-auth"),
        "{stderr}"
    );
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
    assert_eq!(docs.len(), OBJECTS.len() + 1);
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

/// The scripts and configs of the ConfigMaps, run by the real `sh` with a fake `redis-cli`
/// that answers from files: `<root>/group/<host>/<COMMAND>` holds what that node replies
/// (`ROLE`, `SENTINEL` for get-master-addr-by-name); a host with no directory is not there.
/// These are the decisions the pods make; `tests/k8s_pods.rs` runs them in real pods.
struct Scripts {
    dir: tempfile::TempDir,
}

impl Scripts {
    fn new(password: &str) -> Scripts {
        Scripts::with_topology(password, "", &[])
    }

    /// The group `demo` with more topology text (`[acl]`), and more files in the Secret.
    fn with_topology(password: &str, more: &str, secret_files: &[(&str, &str)]) -> Scripts {
        let dir = tempfile::tempdir().expect("tempdir");
        // An `[acl]` user's `password_file`, for topologies that name one.
        std::fs::write(dir.path().join("ops.password"), "ops-Pa55\n").expect("write");
        let topology = write_topology(dir.path(), &format!("[cluster]\nname = \"demo\"\n{more}"));
        Scripts::from_topology(dir, &topology, password, secret_files)
    }

    /// The scripts of an existing topology file (the group must be named `demo`).
    fn with_topology_file(
        password: &str,
        topology: &Path,
        secret_files: &[(&str, &str)],
    ) -> Scripts {
        let dir = tempfile::tempdir().expect("tempdir");
        Scripts::from_topology(dir, topology, password, secret_files)
    }

    fn from_topology(
        dir: tempfile::TempDir,
        topology: &Path,
        password: &str,
        secret_files: &[(&str, &str)],
    ) -> Scripts {
        let manifest = dir.path().join("demo.k8s.yaml");
        std::fs::write(&manifest, render_k8s(topology, &[])).expect("write manifest");
        let root = dir.path().to_str().expect("utf-8").to_owned();
        std::fs::create_dir_all(dir.path().join("secret")).expect("mkdir");
        std::fs::write(dir.path().join("secret/password"), password).expect("write secret");
        for (name, text) in secret_files {
            std::fs::write(dir.path().join("secret").join(name), text).expect("write secret");
        }
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
            std::fs::create_dir_all(dir.path().join(&component).join("data")).expect("mkdir");
            for (key, value) in doc["data"].as_object().expect("data") {
                let text = value
                    .as_str()
                    .expect("string")
                    .replace("/config/", &format!("{root}/{component}/config/"))
                    .replace("/run/secrets/rcluster/", &format!("{root}/secret/"))
                    .replace("/run/secrets/rcluster-tls/", &format!("{root}/tls/"))
                    .replace("/data/", &format!("{root}/{component}/data/"));
                std::fs::write(config.join(key), text).expect("write");
            }
        }
        let bin = dir.path().join("bin");
        std::fs::create_dir_all(&bin).expect("mkdir");
        let fake_cli = format!(
            r#"while [ $# -gt 0 ]; do
  case "$1" in
    -h) host=$2; shift 2 ;;
    -p) shift 2 ;;
    --no-auth-warning) shift ;;
    --user) echo "$2" >> {root}/logins; shift 2 ;;
    --tls) tls="--tls"; shift ;;
    --cacert|--cert|--key) [ -f "$2" ] || {{ echo "no $1 file $2" >&2; exit 1; }}; tls="$tls $1"; shift 2 ;;
    *) break ;;
  esac
done
[ "$REDISCLI_AUTH" = "$(cat {root}/secret/password)" ] || {{ echo "WRONGPASS"; exit 0; }}
[ -d "{root}/group/$host" ] || exit 1
# A node that takes no time to answer: the caller's `timeout` must end the call.
[ -f "{root}/group/$host/HANG" ] && exec sleep 60
[ -z "$tls" ] || echo "$host $tls" >> {root}/asked-tls
# `-r N -i S CMD`: one answer is enough here (the sentinel preStop's held connection).
while [ "$1" = -r ] || [ "$1" = -i ]; do shift 2; done
answer() {{
  echo "$host $*" >> {root}/asked
  if [ "$1" = PING ] && [ $# -eq 2 ]; then
    echo "$2"
  elif [ -x "{root}/group/$host/$1-$2" ]; then
    "{root}/group/$host/$1-$2" "$@"
  elif [ -f "{root}/group/$host/$1-$2" ]; then
    cat "{root}/group/$host/$1-$2"
  elif [ -x "{root}/group/$host/$1" ]; then
    "{root}/group/$host/$1" "$@"
  elif [ -f "{root}/group/$host/$1" ]; then
    cat "{root}/group/$host/$1"
  fi
}}
if [ $# -eq 0 ]; then
  # No command: one a line from stdin, over "one connection".
  while read -r line; do
    # shellcheck disable=SC2086
    answer $line
  done
else
  answer "$@"
fi
exit 0"#
        );
        // A pod's name resolves while it exists (its directory, or `dns/<host>`: a pod
        // that is there but does not answer); the scripts find the pods this way.
        let fake_getent = format!(
            r#"[ "$1" = ahosts ] || exit 2
host=${{2%.}}
[ -d "{root}/group/$host" ] || [ -e "{root}/dns/$host" ] || exit 2
echo "$host" >> {root}/resolved
echo "10.0.0.1 STREAM $host""#
        );
        for (name, body) in [
            ("redis-cli", fake_cli.as_str()),
            ("getent", fake_getent.as_str()),
            ("redis-server", "echo \"started: $*\""),
        ] {
            let path = bin.join(name);
            std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).expect("write fake");
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        }
        Scripts { dir }
    }

    /// `host` is up and answers `command` with `reply` (lines).
    fn answers(&self, host: &str, command: &str, reply: &[&str]) {
        let dir = self.dir.path().join("group").join(host);
        std::fs::create_dir_all(&dir).expect("mkdir");
        std::fs::write(dir.join(command), format!("{}\n", reply.join("\n"))).expect("write");
    }

    /// `host` answers `command` by running `body` (sh, with the command's words as
    /// arguments): a node whose answers change as the script goes.
    fn answers_with(&self, host: &str, command: &str, body: &str) {
        let dir = self.dir.path().join("group").join(host);
        std::fs::create_dir_all(&dir).expect("mkdir");
        let path = dir.join(command);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }

    /// `host` is there but never answers (the caller's timeout ends each call).
    fn hangs(&self, host: &str) {
        self.answers(host, "HANG", &[]);
    }

    /// Every command the scripts sent so far, `<host> <command...>` a line.
    fn asked(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("asked")).unwrap_or_default()
    }

    /// Run `component`'s `script` with `args` as pod `pod`: whether it passed, its output.
    fn run(&self, component: &str, script: &str, args: &[&str], pod: &str) -> (bool, String) {
        let root = self.dir.path();
        let path = format!(
            "{}:{}",
            root.join("bin").display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let out = Command::new("sh")
            .arg(root.join(component).join("config").join(script))
            .args(args)
            .env_clear()
            .env("PATH", path)
            .env("POD_NAME", pod)
            .output()
            .expect("run script");
        (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    }

    /// Run the preStop hook of redis pod `pod`; its log.
    fn prestop(&self, pod: &str) -> String {
        let root = self.dir.path();
        let path = format!(
            "{}:{}",
            root.join("bin").display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let out = Command::new("sh")
            .arg(root.join("redis/config/prestop.sh"))
            .env_clear()
            .env("PATH", path)
            .env("POD_NAME", pod)
            .output()
            .expect("run prestop.sh");
        let log = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{log}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        log
    }

    /// What a redis pod's preStop hook leaves when it stops as master.
    fn stopped_as_master(&self) -> PathBuf {
        self.dir.path().join("redis/data/stopped-as-master")
    }

    /// Redis pod `ordinal` runs as a replica of pod `master` at replication `offset`.
    fn replica(&self, ordinal: u8, master: u8, offset: &str) {
        let pod = redis_pod(ordinal);
        let master = redis_pod(master);
        self.answers(&pod, "ROLE", &["slave", &master, "6379", "connect", offset]);
        let offset = format!("master_repl_offset:{offset}");
        self.answers(&pod, "INFO", &["# Replication", "role:slave", &offset]);
    }

    fn node_down(&self, host: &str) {
        let _ = std::fs::remove_dir_all(self.dir.path().join("group").join(host));
    }

    /// The config file on `pod`'s own volume (what its last start wrote, and Sentinel
    /// rewrites). The scripts see one data directory; `start` swaps each pod's file in.
    fn volume(&self, pod: &str) -> PathBuf {
        let file = if pod.contains("sentinel") {
            "sentinel.conf"
        } else {
            "redis.conf"
        };
        let dir = self.dir.path().join("volumes").join(pod);
        std::fs::create_dir_all(&dir).expect("mkdir");
        dir.join(file)
    }

    /// Run a component's start-up script as `pod`; returns the config it wrote and its log.
    fn start(&self, component: &str, pod: &str) -> (String, String) {
        let root = self.dir.path();
        let volume = self.volume(pod);
        let mounted = root
            .join(component)
            .join("data")
            .join(volume.file_name().expect("file name"));
        match std::fs::read(&volume) {
            Ok(saved) => std::fs::write(&mounted, saved).expect("write"),
            Err(_) => {
                let _ = std::fs::remove_file(&mounted);
            }
        }
        let path = format!(
            "{}:{}",
            root.join("bin").display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let out = Command::new("sh")
            .arg(root.join(component).join("config/start.sh"))
            .env_clear()
            .env("PATH", path)
            .env("POD_NAME", pod)
            // Where the script would wait for the group to settle, decide at once.
            .env("RCLUSTER_DECIDE_TIMEOUT_S", "0")
            .output()
            .expect("run start.sh");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "start.sh of {pod} failed:\n{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains("started: "), "{stdout}");
        let conf = std::fs::read_to_string(&mounted).expect("config");
        std::fs::write(&volume, &conf).expect("write");
        (conf, stdout)
    }
}

const DNS: &str = ".demo-redis.default.svc.cluster.local";

fn redis_pod(ordinal: u8) -> String {
    format!("demo-redis-{ordinal}{DNS}")
}

fn sentinel_pod(ordinal: u8) -> String {
    format!("demo-sentinel-{ordinal}.demo-sentinel-headless.default.svc.cluster.local")
}

fn replicaof(conf: &str) -> Vec<&str> {
    conf.lines()
        .filter(|l| l.starts_with("replicaof "))
        .collect()
}

fn follows(ordinal: u8) -> Vec<String> {
    vec![format!("replicaof {} 6379", redis_pod(ordinal))]
}

/// Characters that are special to sed's replacement text and to redis.conf quoting.
const AWKWARD_PASSWORD: &str = r"p\a&s|s";

#[test]
fn a_new_group_starts_with_ordinal_0_as_master_and_the_password_from_the_secret_file() {
    let scripts = Scripts::new(AWKWARD_PASSWORD);
    let (master, _) = scripts.start("redis", "demo-redis-0");
    assert_eq!(replicaof(&master), Vec::<&str>::new());
    // `default`'s password as a hash (during a rotation it holds two), never `requirepass`.
    assert!(
        master.contains(&format!(
            "user default on ~* &* +@all #{}\n",
            sha256_hex(AWKWARD_PASSWORD)
        )),
        "{master}"
    );
    assert!(!master.contains("\nrequirepass"), "{master}");
    assert!(master.contains(r#"masterauth "p\\a&s|s""#), "{master}");
    assert!(master.contains(&format!("replica-announce-ip {}", redis_pod(0))));
    assert!(master.contains("bind * -::*"), "{master}");
    assert!(!master.contains("__RCLUSTER_"), "{master}");
    let (replica, _) = scripts.start("redis", "demo-redis-1");
    assert_eq!(replicaof(&replica), follows(0));
}

#[test]
fn a_restarted_node_follows_the_master_the_sentinels_name_once_it_answers_as_one() {
    let scripts = Scripts::new("pw");
    scripts.answers(&sentinel_pod(1), "SENTINEL", &[&redis_pod(2), "6379"]);
    scripts.answers(&sentinel_pod(2), "SENTINEL", &[&redis_pod(2), "6379"]);
    scripts.answers(&redis_pod(2), "ROLE", &["master", "100"]);
    let (old_master, _) = scripts.start("redis", "demo-redis-0");
    assert_eq!(replicaof(&old_master), follows(2));
    // An error reply or an address that is not a pod of the group is no answer.
    scripts.answers(
        &sentinel_pod(0),
        "SENTINEL",
        &["ERR No such master with that name"],
    );
    scripts.answers(&sentinel_pod(1), "SENTINEL", &["10.1.2.3", "6379"]);
    let (again, _) = scripts.start("redis", "demo-redis-0");
    assert_eq!(replicaof(&again), follows(2));
}

#[test]
fn the_whole_group_restarting_keeps_the_master_that_holds_the_data() {
    // After a failover to ordinal 2, every pod restarts at once and no sentinel answers yet:
    // each redis pod goes by what its own volume says it was, never by ordinal 0.
    let scripts = Scripts::new("pw");
    std::fs::write(
        scripts.volume("demo-redis-0"),
        format!("port 6379\nreplicaof {} 6379\n", redis_pod(2)),
    )
    .expect("write");
    let (zero, log) = scripts.start("redis", "demo-redis-0");
    assert_eq!(replicaof(&zero), follows(2), "{log}");

    std::fs::write(scripts.volume("demo-redis-2"), "port 6379\n").expect("write");
    let (two, log) = scripts.start("redis", "demo-redis-2");
    assert_eq!(replicaof(&two), Vec::<&str>::new(), "{log}");

    // A node that says it was master but finds another one running follows that one.
    scripts.answers(&redis_pod(1), "ROLE", &["master", "500"]);
    std::fs::write(scripts.volume("demo-redis-2"), "port 6379\n").expect("write");
    let (stale, log) = scripts.start("redis", "demo-redis-2");
    assert_eq!(replicaof(&stale), follows(1), "{log}");
}

#[test]
fn a_master_restarted_before_the_sentinels_noticed_waits_while_replicas_run() {
    let scripts = Scripts::new("pw");
    std::fs::write(scripts.volume("demo-redis-0"), "port 6379\n").expect("write");
    for s in 0..3 {
        scripts.answers(&sentinel_pod(s), "SENTINEL", &[&redis_pod(0), "6379"]);
    }
    // No replica runs: it is the master the sentinels know, with the data.
    let (alone, _) = scripts.start("redis", "demo-redis-0");
    assert_eq!(replicaof(&alone), Vec::<&str>::new());
    // A replica runs (it may hold acknowledged writes this node's AOF missed): the script
    // waits for the sentinels to promote it; once they name it, it follows.
    scripts.answers(
        &redis_pod(1),
        "ROLE",
        &["slave", &redis_pod(0), "6379", "connect", "-1"],
    );
    for s in 0..3 {
        scripts.answers(&sentinel_pod(s), "SENTINEL", &[&redis_pod(1), "6379"]);
    }
    scripts.answers(&redis_pod(1), "ROLE", &["master", "900"]);
    let (demoted, _) = scripts.start("redis", "demo-redis-0");
    assert_eq!(replicaof(&demoted), follows(1));
}

#[test]
fn a_restarted_master_never_becomes_a_second_master_while_a_failover_is_under_way() {
    // The sentinels still name this node (they have not all switched yet), no replica
    // runs, but they already promoted ordinal 1: this node follows it, it does not take
    // writes that the failover would then throw away.
    let scripts = Scripts::new("pw");
    std::fs::write(scripts.volume("demo-redis-0"), "port 6379\n").expect("write");
    for s in 0..3 {
        scripts.answers(&sentinel_pod(s), "SENTINEL", &[&redis_pod(0), "6379"]);
    }
    scripts.answers(&redis_pod(1), "ROLE", &["master", "900"]);
    let (conf, log) = scripts.start("redis", "demo-redis-0");
    assert_eq!(replicaof(&conf), follows(1), "{log}");
}

#[test]
fn a_master_that_stopped_cleanly_takes_mastership_back_unless_a_failover_has_begun() {
    let scripts = Scripts::new("pw");
    // Its preStop hook finds no replica to hand over to: it stops as master, and says so.
    scripts.answers("127.0.0.1", "ROLE", &["master", "100"]);
    scripts.answers(
        "127.0.0.1",
        "INFO",
        &["# Replication", "role:master", "connected_slaves:0"],
    );
    let log = scripts.prestop("demo-redis-0");
    assert!(scripts.stopped_as_master().exists(), "{log}");

    // Everything restarted: the sentinels still name it, its replicas run (their offsets
    // after a restart say nothing). It holds every acknowledged write: it is master again.
    std::fs::write(scripts.volume("demo-redis-0"), "port 6379\n").expect("write");
    for s in 0..3 {
        scripts.answers(&sentinel_pod(s), "SENTINEL", &[&redis_pod(0), "6379"]);
    }
    scripts.replica(1, 0, "100");
    scripts.replica(2, 0, "90");
    let (conf, log) = scripts.start("redis", "demo-redis-0");
    assert_eq!(replicaof(&conf), Vec::<&str>::new(), "{log}");
    assert!(!scripts.stopped_as_master().exists(), "read once");
    let asked = std::fs::read_to_string(scripts.dir.path().join("asked")).expect("asked");
    assert!(!asked.contains("REPLICAOF"), "{asked}");

    // The same, but a sentinel already has it `o_down`: the failover goes on, so it waits
    // for it (lining its replicas up meanwhile) instead of becoming a second master.
    std::fs::write(scripts.stopped_as_master(), "").expect("write");
    scripts.answers(
        &sentinel_pod(1),
        "SENTINEL-MASTER",
        &["name", "mymaster", "flags", "master,s_down,o_down"],
    );
    let (_, log) = scripts.start("redis", "demo-redis-0");
    let asked = std::fs::read_to_string(scripts.dir.path().join("asked")).expect("asked");
    assert!(
        asked.contains(&format!("{} REPLICAOF {} 6379", redis_pod(2), redis_pod(1))),
        "{asked}\n{log}"
    );

    // A replica's preStop leaves nothing.
    scripts.answers(
        "127.0.0.1",
        "ROLE",
        &["slave", &redis_pod(1), "6379", "connected", "5"],
    );
    scripts.prestop("demo-redis-0");
    assert!(!scripts.stopped_as_master().exists());
}

#[test]
fn a_restarted_master_lets_a_lagging_replica_catch_up_from_the_one_ahead() {
    let scripts = Scripts::new("pw");
    std::fs::write(scripts.volume("demo-redis-0"), "port 6379\n").expect("write");
    for s in 0..3 {
        scripts.answers(&sentinel_pod(s), "SENTINEL", &[&redis_pod(0), "6379"]);
    }
    for (ordinal, offset) in [(1, "100"), (2, "90")] {
        scripts.replica(ordinal, 0, offset);
    }
    let (_, log) = scripts.start("redis", "demo-redis-0");
    let asked = std::fs::read_to_string(scripts.dir.path().join("asked")).expect("asked");
    assert!(
        asked.contains(&format!("{} REPLICAOF {} 6379", redis_pod(2), redis_pod(1))),
        "the replica behind follows the one ahead:\n{asked}\n{log}"
    );
    assert!(
        !asked.contains(&format!("{} REPLICAOF", redis_pod(1))),
        "the one ahead is left alone:\n{asked}"
    );
}

#[test]
fn a_new_volume_that_replicas_follow_leads_only_a_new_group() {
    // A new group: the replicas started first and wait for ordinal 0, holding nothing.
    let scripts = Scripts::new("pw");
    scripts.answers(
        &redis_pod(1),
        "ROLE",
        &["slave", &redis_pod(0), "6379", "connect", "-1"],
    );
    scripts.answers(&redis_pod(1), "DBSIZE", &["0"]);
    let (new, log) = scripts.start("redis", "demo-redis-0");
    assert_eq!(replicaof(&new), Vec::<&str>::new(), "{log}");
    // Ordinal 0 lost its volume while its replicas hold the data, and no sentinel answers
    // (even when they name it): it does not take them over with an empty dataset, it
    // follows the one furthest ahead until the sentinels promote one.
    for (ordinal, offset) in [(1, "700"), (2, "900")] {
        scripts.replica(ordinal, 0, offset);
        scripts.answers(&redis_pod(ordinal), "DBSIZE", &["1500"]);
    }
    std::fs::remove_file(scripts.volume("demo-redis-0")).expect("the volume is lost");
    let (lost, log) = scripts.start("redis", "demo-redis-0");
    assert_eq!(replicaof(&lost), follows(2), "{log}");
    for s in 0..3 {
        scripts.answers(&sentinel_pod(s), "SENTINEL", &[&redis_pod(0), "6379"]);
    }
    std::fs::remove_file(scripts.volume("demo-redis-0")).expect("the volume is lost");
    let (named, log) = scripts.start("redis", "demo-redis-0");
    assert_eq!(replicaof(&named), follows(2), "{log}");
}

#[test]
fn a_new_volume_joins_the_master_that_running_replicas_follow() {
    let scripts = Scripts::new("pw");
    scripts.answers(
        &redis_pod(0),
        "ROLE",
        &["slave", &redis_pod(2), "6379", "connected", "77"],
    );
    let (conf, _) = scripts.start("redis", "demo-redis-1");
    assert_eq!(replicaof(&conf), follows(2));
}

#[test]
fn a_sentinel_with_saved_state_keeps_its_master_and_epochs() {
    let scripts = Scripts::new(AWKWARD_PASSWORD);
    std::fs::write(
        scripts.volume("demo-sentinel-1"),
        format!(
            "sentinel myid abc\nsentinel monitor mymaster {} 6379 2\nsentinel config-epoch mymaster 4\n\
             sentinel leader-epoch mymaster 4\nsentinel current-epoch 4\n",
            redis_pod(2)
        ),
    )
    .expect("write");
    // Nothing of the group answers (a Pending pod, a cold start): it starts at once.
    let (one, log) = scripts.start("sentinel", "demo-sentinel-1");
    assert!(log.contains("saved state"), "{log}");
    assert!(
        one.contains(&format!(
            "sentinel monitor mymaster {} 6379 2",
            redis_pod(2)
        )),
        "{one}"
    );
    for line in [
        "sentinel config-epoch mymaster 4",
        "sentinel leader-epoch mymaster 4",
        "sentinel current-epoch 4",
    ] {
        assert!(one.contains(line), "{line} missing:\n{one}");
    }
    assert!(
        one.contains(r#"sentinel auth-pass mymaster "p\\a&s|s""#),
        "{one}"
    );
    assert!(one.contains("sentinel resolve-hostnames yes"));
    assert!(one.contains("sentinel announce-hostnames yes"));
    assert!(!one.contains("__RCLUSTER_"), "{one}");
    // The redis pods are seeded as DNS has them now (none resolve here), not by a count.
    assert!(!one.contains("sentinel known-replica"), "{one}");
    // Saved state that names no pod of the group (an old address) is not trusted.
    std::fs::write(
        scripts.volume("demo-sentinel-1"),
        "sentinel monitor mymaster 10.0.0.7 6379 2\n",
    )
    .expect("write");
    scripts.answers(&redis_pod(1), "ROLE", &["master", "10"]);
    let (looked, log) = scripts.start("sentinel", "demo-sentinel-1");
    assert!(log.contains("no saved state"), "{log}");
    assert!(looked.contains(&format!(
        "sentinel monitor mymaster {} 6379 2",
        redis_pod(1)
    )));
}

#[test]
fn a_sentinel_without_state_asks_the_group_and_ids_stay_consistent() {
    let scripts = Scripts::new("pw");
    // Another sentinel knows the master, and that node answers as one.
    scripts.answers(&sentinel_pod(0), "SENTINEL", &[&redis_pod(2), "6379"]);
    scripts.answers(&redis_pod(2), "ROLE", &["master", "10"]);
    let (one, _) = scripts.start("sentinel", "demo-sentinel-1");
    assert!(one.contains(&format!(
        "sentinel monitor mymaster {} 6379 2",
        redis_pod(2)
    )));
    let (zero, _) = scripts.start("sentinel", "demo-sentinel-0");

    let myid = |conf: &str| {
        conf.lines()
            .find_map(|l| l.strip_prefix("sentinel myid "))
            .expect("myid")
            .to_owned()
    };
    assert!(!one.contains(&format!("known-sentinel mymaster {} ", sentinel_pod(1))));
    assert!(
        zero.contains(&format!(
            "sentinel known-sentinel mymaster {} 26379 {}",
            sentinel_pod(1),
            myid(&one)
        )),
        "{zero}"
    );
    assert_ne!(myid(&one), myid(&zero));

    // Nothing answers at all: a new group, ordinal 0.
    scripts.node_down(&sentinel_pod(0));
    scripts.node_down(&redis_pod(2));
    let (fresh, _) = scripts.start("sentinel", "demo-sentinel-2");
    assert!(fresh.contains(&format!(
        "sentinel monitor mymaster {} 6379 2",
        redis_pod(0)
    )));
}

#[test]
fn every_script_is_valid_posix_sh_and_passes_shellcheck() {
    shellcheck_all(&Scripts::new("pw"));
    // With `[acl]` the scripts carry more: the login user and `acl_sed`.
    shellcheck_all(&Scripts::with_topology(
        "pw",
        ACL_TOPOLOGY,
        &[("acl-ops", "ops-Pa55")],
    ));
}

fn shellcheck_all(scripts: &Scripts) {
    let shellcheck = Command::new("shellcheck").arg("--version").output();
    assert!(
        matches!(shellcheck, Ok(ref o) if o.status.success()),
        "shellcheck is missing: `apt-get install shellcheck`"
    );
    for component in ["redis", "sentinel"] {
        let config = scripts.dir.path().join(component).join("config");
        for entry in std::fs::read_dir(&config).expect("read dir") {
            let path = entry.expect("entry").path();
            if path.extension().is_none_or(|e| e != "sh") {
                continue;
            }
            let out = Command::new("shellcheck")
                .args(["--shell=sh", "--external-sources", "--source-path"])
                .arg(&config)
                .arg(&path)
                .output()
                .expect("run shellcheck");
            assert!(
                out.status.success(),
                "{}:\n{}",
                path.display(),
                String::from_utf8_lossy(&out.stdout)
            );
        }
    }
}

/// `[acl]` with `default` off, a generated user and one whose password is its own (in
/// the Secret as `acl-ops`).
const ACL_TOPOLOGY: &str = "[acl]\ndisable_default = true\n\n[acl.users]\napp = \"on ~app:* +@all -@dangerous\"\n\n[acl.users.ops]\nrules = \"on ~* +@read\"\npassword_file = \"ops.password\"\n";

fn sha256_hex(text: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(text.as_bytes()))
}

#[test]
fn acl_configs_get_hashes_from_the_secret_and_the_scripts_log_in_as_rcluster() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("ops.password"), "ops-Pa55\n").expect("write");
    std::fs::write(dir.path().join("group.password"), "group-Pa55\n").expect("write");
    let topology = write_topology(
        dir.path(),
        &format!(
            "[cluster]\nname = \"demo\"\n\n[auth]\npassword_file = \"group.password\"\n\n{ACL_TOPOLOGY}"
        ),
    );
    // The manifests validate, and the user's own password is in the Secret only when asked.
    let manifest = dir.path().join("with-secret.yaml");
    let yaml = render_k8s(&topology, &["--show-secrets"]);
    assert!(yaml.contains("acl-ops: ops-Pa55"), "{yaml}");
    std::fs::write(&manifest, &yaml).expect("write");
    assert_valid(&manifest, true);
    let without = render_k8s(&topology, &[]);
    assert!(!without.contains("ops-Pa55"));
    let manifest = dir.path().join("without-secret.yaml");
    std::fs::write(&manifest, &without).expect("write");
    assert_valid(&manifest, false);

    // The start scripts fill the hashes in, with the same passwords `rcluster` derives.
    let password = "group-Pa55";
    let scripts = Scripts::with_topology_file(password, &topology, &[("acl-ops", "ops-Pa55")]);
    let (master, _) = scripts.start("redis", "demo-redis-0");
    assert!(!master.contains("__RCLUSTER_"), "{master}");
    assert!(!master.contains("\nrequirepass "), "{master}");
    assert!(master.contains("\nuser default off "), "{master}");
    let derived = |user: &str| {
        rcluster::acl::derived_password(password, user)
            .expose()
            .to_string()
    };
    for (user, secret) in [
        ("rcluster", password.to_string()),
        ("rcluster-replication", derived("rcluster-replication")),
        ("rcluster-sentinel", derived("rcluster-sentinel")),
        ("app", derived("app")),
        ("ops", "ops-Pa55".to_string()),
    ] {
        let line = master
            .lines()
            .find(|l| l.starts_with(&format!("user {user} ")))
            .unwrap_or_else(|| panic!("no user {user}:\n{master}"));
        assert!(
            line.ends_with(&format!(" #{}", sha256_hex(&secret))),
            "{line}"
        );
    }
    assert!(master.contains(&format!(
        "\nmasterauth \"{}\"\n",
        derived("rcluster-replication")
    )));
    let (sentinel, _) = scripts.start("sentinel", "demo-sentinel-0");
    assert!(!sentinel.contains("__RCLUSTER_"), "{sentinel}");
    assert!(
        sentinel.contains(&format!(
            "\nsentinel auth-pass mymaster \"{}\"\n",
            derived("rcluster-sentinel")
        )),
        "{sentinel}"
    );
    assert!(
        sentinel.contains(&format!(
            "\nuser rcluster on ~* &* +@all #{}\n",
            sha256_hex(password)
        )),
        "{sentinel}"
    );
    // `default` off on the sentinels too; the peer user (with its clear password as
    // `sentinel-pass`) and the Sentinel client user, hashed like the data nodes' users.
    assert!(sentinel.contains("\nuser default off "), "{sentinel}");
    assert!(!sentinel.contains("\nrequirepass "), "{sentinel}");
    for user in ["rcluster-sentinel-peer", "rcluster-sentinel-client"] {
        let line = sentinel
            .lines()
            .find(|l| l.starts_with(&format!("user {user} on ")))
            .unwrap_or_else(|| panic!("no user {user}:\n{sentinel}"));
        assert!(
            line.ends_with(&format!(" #{}", sha256_hex(&derived(user)))),
            "{line}"
        );
    }
    assert!(
        sentinel.contains(&format!(
            "\nsentinel sentinel-user rcluster-sentinel-peer\nsentinel sentinel-pass \"{}\"\n",
            derived("rcluster-sentinel-peer")
        )),
        "{sentinel}"
    );
    // A replica asks the group who the master is, as `rcluster`.
    scripts.answers(&redis_pod(0), "ROLE", &["master"]);
    let (replica, _) = scripts.start("redis", "demo-redis-1");
    assert_eq!(replicaof(&replica), follows(0));
    let logins = std::fs::read_to_string(scripts.dir.path().join("logins")).expect("logins");
    assert!(
        !logins.is_empty() && logins.lines().all(|l| l == "rcluster"),
        "{logins}"
    );
}

/// `[tls]` on Kubernetes: the TLS Secret (with `--show-secrets`) validates, holds a
/// certificate for every pod's name signed by its CA, is mounted read-only into every pod;
/// the configs listen with TLS only, and every redis-cli the scripts run speaks TLS.
#[test]
fn tls_renders_a_secret_every_pod_mounts_and_scripts_that_speak_tls() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let topology = write_topology(
        tmp.path(),
        "[cluster]\nname = \"demo\"\n[auth]\npassword_file = \"pw\"\n[tls]\nenabled = true\nclient_auth = \"yes\"\n",
    );
    std::fs::write(tmp.path().join("pw"), "k8s-tls-pw\n").expect("write");
    let render = |extra: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_rcluster"))
            .arg("-f")
            .arg(&topology)
            .args(["render", "--format", "k8s"])
            .args(extra)
            .env("RCLUSTER_STATE_DIR", tmp.path().join("state"))
            .output()
            .expect("rcluster runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    };
    let out = render(&["--show-secrets"]);
    let manifest = tmp.path().join("m.yaml");
    std::fs::write(&manifest, &out.stdout).expect("write");
    let report = assert_valid(&manifest, true);
    assert!(
        report.contains("passed for resource secret/demo-tls against version 1.33"),
        "{report}"
    );
    let m = Manifest::read(&manifest);
    let secret = m.find("Secret", "demo-tls");
    assert_eq!(secret["type"], "kubernetes.io/tls");
    let data = &secret["stringData"];
    for (key, file) in [("ca.crt", "ca.crt"), ("tls.crt", "tls.crt")] {
        std::fs::write(tmp.path().join(file), data[key].as_str().expect(key)).expect("write");
    }
    for name in [
        "demo-redis-2.demo-redis.default.svc.cluster.local",
        // A pod `kubectl scale` adds: the certificate names no count.
        "demo-redis-7.demo-redis.default.svc.cluster.local",
        "demo-sentinel-0.demo-sentinel-headless.default.svc.cluster.local",
        "demo-sentinel.default.svc.cluster.local",
    ] {
        let verify = Command::new("openssl")
            .args(["verify", "-CAfile"])
            .arg(tmp.path().join("ca.crt"))
            .args(["-verify_hostname", name])
            .arg(tmp.path().join("tls.crt"))
            .output()
            .expect("openssl runs");
        assert!(
            verify.status.success(),
            "the pods' certificate does not verify for `{name}`: {}{}",
            String::from_utf8_lossy(&verify.stdout),
            String::from_utf8_lossy(&verify.stderr)
        );
    }
    for set in ["demo-redis", "demo-sentinel"] {
        let pod = &m.find("StatefulSet", set)["spec"]["template"]["spec"];
        let source = volume(pod, "tls-source");
        assert_eq!(source["secret"]["secretName"], "demo-tls");
        assert_eq!(source["secret"]["defaultMode"], 0o440);
        // The server container has the init container's copy, in memory.
        assert_eq!(volume(pod, "tls")["emptyDir"]["medium"], "Memory");
        let mount = pod["containers"][0]["volumeMounts"]
            .as_array()
            .expect("mounts")
            .iter()
            .find(|v| v["name"] == "tls")
            .unwrap_or_else(|| panic!("{set} does not mount tls"));
        assert_eq!(mount["readOnly"], true);
        assert_eq!(mount["mountPath"], "/run/secrets/rcluster-tls");
    }
    let redis_conf = m.find("ConfigMap", "demo-redis-config")["data"]["redis.conf"]
        .as_str()
        .expect("redis.conf")
        .to_string();
    assert!(
        redis_conf.contains("\nport 0\ntls-port 6379\n"),
        "{redis_conf}"
    );
    assert!(
        redis_conf.contains("\ntls-auth-clients yes\n"),
        "{redis_conf}"
    );

    // Without `--show-secrets`: no TLS Secret, and the note says how to make one.
    let out = render(&[]);
    let yaml = String::from_utf8(out.stdout).expect("utf-8");
    assert!(
        !yaml.contains("BEGIN"),
        "certificate or key rendered without --show-secrets"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("create secret generic demo-tls"),
        "{stderr}"
    );

    // The scripts: every redis-cli they run passes the CA and the client certificate.
    let scripts =
        Scripts::with_topology("pw", "[tls]\nenabled = true\nclient_auth = \"yes\"\n", &[]);
    let root = scripts.dir.path();
    std::fs::create_dir_all(root.join("tls")).expect("mkdir");
    for file in ["ca.crt", "tls.crt", "tls.key"] {
        std::fs::write(root.join("tls").join(file), "pem").expect("write");
    }
    scripts.answers(&sentinel_pod(1), "SENTINEL", &[&redis_pod(2), "6379"]);
    scripts.answers(&sentinel_pod(2), "SENTINEL", &[&redis_pod(2), "6379"]);
    scripts.answers(&redis_pod(2), "ROLE", &["master", "100"]);
    let (conf, _) = scripts.start("redis", "demo-redis-0");
    assert!(conf.contains("\ntls-port 6379\n"), "{conf}");
    assert_eq!(replicaof(&conf), follows(2));
    let asked = std::fs::read_to_string(root.join("asked")).unwrap_or_default();
    let asked_tls = std::fs::read_to_string(root.join("asked-tls")).unwrap_or_default();
    assert!(!asked.is_empty(), "the start-up script asked nothing");
    assert_eq!(
        asked.lines().count(),
        asked_tls.lines().count(),
        "every redis-cli call speaks TLS:\n{asked}\n{asked_tls}"
    );
    assert!(
        asked_tls
            .lines()
            .all(|l| l.ends_with(" --tls --cacert --cert --key")),
        "{asked_tls}"
    );
    // And they pass shellcheck with the TLS flags in.
    let config = root.join("redis").join("config");
    let out = Command::new("shellcheck")
        .args(["--shell=sh", "--external-sources", "--source-path"])
        .arg(&config)
        .arg(config.join("lib.sh"))
        .arg(config.join("start.sh"))
        .arg(config.join("probe.sh"))
        .arg(config.join("prestop.sh"))
        .output()
        .expect("run shellcheck");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// `kubernetes-validate` at `version` (`"1.25.0"`); panics with its report unless every
/// document passed, else returns it.
fn validate_at(manifest: &Path, version: &str) -> String {
    let out = Command::new("python3")
        .args(["-m", "kubernetes_validate", "--strict", "--no-warn"])
        .args(["--kubernetes-version", version])
        .arg(manifest)
        .output()
        .expect("run kubernetes-validate (pip install kubernetes-validate)");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "manifests do not validate against Kubernetes {version}:\n{report}"
    );
    report
}

/// Every key `[kubernetes]` has for scheduling, pulling and admission, with `version`.
fn scheduling_topology(version: &str) -> String {
    format!(
        r#"[cluster]
name = "demo"

[kubernetes]
version = "{version}"
image_pull_policy = "IfNotPresent"
image_pull_secrets = ["regcred", "mirror-creds"]
node_selector = {{ "kubernetes.io/os" = "linux", "node.example.com/pool" = "redis" }}
priority_class_name = "redis-critical"
tolerations = [
  {{ key = "dedicated", operator = "Equal", value = "redis", effect = "NoSchedule" }},
  {{ key = "node.kubernetes.io/unreachable", operator = "Exists", effect = "NoExecute", toleration_seconds = 30 }},
]
network_policy = {{ client_labels = {{ "app.example/redis-client" = "true" }}, client_namespaces = {{ "kubernetes.io/metadata.name" = "apps" }} }}
"#
    )
}

#[test]
fn scheduling_and_pull_keys_reach_both_kinds_of_pod() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let topology = write_topology(tmp.path(), &scheduling_topology("1.33"));
    let manifest = tmp.path().join("demo.k8s.yaml");
    std::fs::write(&manifest, render_k8s(&topology, &[])).expect("write manifest");
    assert_valid(&manifest, false);
    let m = Manifest::read(&manifest);
    for set in ["demo-redis", "demo-sentinel"] {
        let pod = &m.find("StatefulSet", set)["spec"]["template"]["spec"];
        assert_eq!(
            pod["containers"][0]["imagePullPolicy"], "IfNotPresent",
            "{set}"
        );
        assert_eq!(
            pod["imagePullSecrets"],
            serde_json::json!([{ "name": "regcred" }, { "name": "mirror-creds" }]),
            "{set}"
        );
        assert_eq!(
            pod["nodeSelector"],
            serde_json::json!({ "kubernetes.io/os": "linux", "node.example.com/pool": "redis" }),
            "{set}"
        );
        assert_eq!(pod["priorityClassName"], "redis-critical", "{set}");
        assert_eq!(
            pod["tolerations"],
            serde_json::json!([
                { "key": "dedicated", "operator": "Equal", "value": "redis", "effect": "NoSchedule" },
                { "key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 30 },
            ]),
            "{set}"
        );
    }
}

#[test]
fn pods_get_default_requests_unless_resources_are_given() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let manifest = tmp.path().join("demo.k8s.yaml");
    std::fs::write(&manifest, render_k8s(&repo_topology(), &[])).expect("write manifest");
    let m = Manifest::read(&manifest);
    let resources = |m: &Manifest, set: &str| {
        m.find("StatefulSet", set)["spec"]["template"]["spec"]["containers"][0]["resources"].clone()
    };
    // Burstable, not BestEffort; no limits (a memory limit needs `maxmemory`).
    assert_eq!(
        resources(&m, "demo-redis"),
        serde_json::json!({ "requests": { "cpu": "100m", "memory": "128Mi" } })
    );
    assert_eq!(
        resources(&m, "demo-sentinel"),
        serde_json::json!({ "requests": { "cpu": "50m", "memory": "64Mi" } })
    );
    // What the user gives replaces the default whole, per kind.
    let topology = write_topology(
        tmp.path(),
        "[redis]\nextra = { maxmemory = \"100mb\" }\n\n[kubernetes]\nredis_resources = { limits = { memory = \"256Mi\" } }\n",
    );
    std::fs::write(&manifest, render_k8s(&topology, &[])).expect("write manifest");
    let m = Manifest::read(&manifest);
    assert_eq!(
        resources(&m, "demo-redis"),
        serde_json::json!({ "limits": { "memory": "256Mi" } })
    );
    assert_eq!(
        resources(&m, "demo-sentinel"),
        serde_json::json!({ "requests": { "cpu": "50m", "memory": "64Mi" } })
    );
}

#[test]
fn the_network_policy_admits_the_group_and_named_clients_on_every_port() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let manifest = tmp.path().join("demo.k8s.yaml");
    // TLS with plaintext ports kept: those are reachable too.
    let topology = write_topology(
        tmp.path(),
        &format!(
            "{}\n[tls]\nenabled = true\nplaintext_port = true\n",
            scheduling_topology("1.33")
        ),
    );
    std::fs::write(&manifest, render_k8s(&topology, &[])).expect("write manifest");
    validate_at(&manifest, "1.33.0");
    let m = Manifest::read(&manifest);
    let policy = m.find("NetworkPolicy", "demo");
    assert_eq!(policy["apiVersion"], "networking.k8s.io/v1");
    let group = serde_json::json!({ "matchLabels": {
        "app.kubernetes.io/instance": "demo",
        "app.kubernetes.io/managed-by": "rcluster",
    }});
    assert_eq!(policy["spec"]["podSelector"], group);
    assert_eq!(
        policy["spec"]["policyTypes"],
        serde_json::json!(["Ingress"])
    );
    // Both kinds of pod carry the labels the policy selects.
    for set in ["demo-redis", "demo-sentinel"] {
        let labels = &m.find("StatefulSet", set)["spec"]["template"]["metadata"]["labels"];
        for (key, value) in group["matchLabels"].as_object().expect("labels") {
            assert_eq!(&labels[key], value, "{set}: {key}");
        }
    }
    let rule = &policy["spec"]["ingress"][0];
    assert_eq!(policy["spec"]["ingress"].as_array().map(Vec::len), Some(1));
    assert_eq!(
        rule["from"],
        serde_json::json!([
            { "podSelector": group },
            {
                "podSelector": { "matchLabels": { "app.example/redis-client": "true" } },
                "namespaceSelector": { "matchLabels": { "kubernetes.io/metadata.name": "apps" } },
            },
        ])
    );
    let ports: Vec<i64> = rule["ports"]
        .as_array()
        .expect("ports")
        .iter()
        .map(|p| {
            assert_eq!(p["protocol"], "TCP");
            p["port"].as_i64().expect("a port number")
        })
        .collect();
    assert_eq!(ports, [6379, 26379, 6380, 26380]);

    // Off: no policy at all.
    let topology = write_topology(tmp.path(), "[kubernetes]\nnetwork_policy = false\n");
    std::fs::write(&manifest, render_k8s(&topology, &[])).expect("write manifest");
    assert!(!Manifest::read(&manifest).has("NetworkPolicy"));
    // Default: the group's namespace, pods labelled `<name>-client: "true"`.
    std::fs::write(&manifest, render_k8s(&repo_topology(), &[])).expect("write manifest");
    let policy = Manifest::read(&manifest).find("NetworkPolicy", "demo");
    assert_eq!(
        policy["spec"]["ingress"][0]["from"][1],
        serde_json::json!({ "podSelector": { "matchLabels": { "demo-client": "true" } } })
    );
}

/// The spec fields of `policy/v1beta1` PodDisruptionBudget in Kubernetes 1.20.
const PDB_V1BETA1_FIELDS: [&str; 3] = ["minAvailable", "maxUnavailable", "selector"];

#[test]
fn version_1_20_renders_v1beta1_budgets_and_nothing_else_changes() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let old = tmp.path().join("old.yaml");
    let new = tmp.path().join("new.yaml");
    let topology = write_topology(tmp.path(), &scheduling_topology("1.20"));
    std::fs::write(&old, render_k8s(&topology, &[])).expect("write manifest");
    let topology = write_topology(tmp.path(), &scheduling_topology("1.33"));
    std::fs::write(&new, render_k8s(&topology, &[])).expect("write manifest");
    let (old_docs, new_docs) = (documents(&old), documents(&new));
    assert_eq!(old_docs.len(), new_docs.len());
    let mut budgets = 0;
    for (o, n) in old_docs.iter().zip(&new_docs) {
        if o["kind"] == "PodDisruptionBudget" {
            budgets += 1;
            assert_eq!(o["apiVersion"], "policy/v1beta1");
            assert_eq!(n["apiVersion"], "policy/v1");
            for field in o["spec"].as_object().expect("spec").keys() {
                assert!(
                    PDB_V1BETA1_FIELDS.contains(&field.as_str()),
                    "`spec.{field}` is not a v1beta1 field"
                );
            }
            let mut as_v1 = o.clone();
            as_v1["apiVersion"] = "policy/v1".into();
            assert_eq!(&as_v1, n, "only the apiVersion differs");
        } else {
            assert_eq!(o, n, "the version changes only the budgets");
        }
    }
    assert_eq!(budgets, 2);

    // The oldest schema kubernetes-validate ships is 1.25, which has no policy/v1beta1:
    // validate the 1.20 render there with the budgets as v1 (their fields are the same).
    let as_v1 = tmp.path().join("as-v1.yaml");
    std::fs::write(
        &as_v1,
        std::fs::read_to_string(&old)
            .expect("read")
            .replace("apiVersion: policy/v1beta1", "apiVersion: policy/v1"),
    )
    .expect("write");
    let report = validate_at(&as_v1, "1.25.0");
    for object in OBJECTS {
        assert!(
            report.contains(&format!(
                "passed for resource {object} against version 1.25"
            )),
            "`{object}` was not validated:\n{report}"
        );
    }
}

#[test]
fn the_test_fixtures_render_for_the_real_cluster_s_version() {
    for fixture in [
        "k8s-group.toml",
        "k8s-group-acl.toml",
        "k8s-group-tls.toml",
        "k8s-group-slow-load.toml",
    ] {
        // The TLS fixture's CA and certificate are generated there.
        let state = tempfile::tempdir().expect("tempdir");
        let out = Command::new(env!("CARGO_BIN_EXE_rcluster"))
            .arg("-f")
            .arg(common::fixture(fixture))
            .args(["render", "--format", "k8s"])
            .env("RCLUSTER_K8S_TEST_PASSWORD", "fixture-pw")
            .env("RCLUSTER_STATE_DIR", state.path())
            .output()
            .expect("run rcluster");
        assert!(
            out.status.success(),
            "{fixture}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let yaml = String::from_utf8(out.stdout).expect("utf-8");
        assert_eq!(
            yaml.matches("apiVersion: policy/v1beta1").count(),
            2,
            "{fixture}: both budgets as the 1.20 cluster serves them"
        );
        assert!(!yaml.contains("apiVersion: policy/v1\n"), "{fixture}");
    }
}

/// Master `demo-redis-0` (this pod: 127.0.0.1) with replicas 1 and 2 linked, three
/// sentinels that name it, see both replicas and run a failover to replica 1 when asked
/// (every sentinel then names it, and it answers as master). Replica 2 reaches the
/// master's offset (100) only at the `INFO` call number `caught_up_at`.
fn handover_group(scripts: &Scripts, caught_up_at: u32) {
    let root = scripts.dir.path().display().to_string();
    let (r1, r2) = (redis_pod(1), redis_pod(2));
    scripts.answers("127.0.0.1", "ROLE", &["master", "100"]);
    scripts.answers_with(
        "127.0.0.1",
        "INFO",
        &format!(
            r#"n=$(( $(cat {root}/info-calls 2>/dev/null || echo 0) + 1 )); echo "$n" > {root}/info-calls
if [ "$n" -ge {caught_up_at} ]; then behind=100; else behind=90; fi
printf '# Replication\nrole:master\nconnected_slaves:2\n'
printf 'slave0:ip={r1},port=6379,state=online,offset=100,lag=0\n'
printf 'slave1:ip={r2},port=6379,state=online,offset=%s,lag=1\n' "$behind"
printf 'master_failover_state:no-failover\nmaster_repl_offset:100\n'"#
        ),
    );
    // REPLICAOF makes this node a replica, as it does a real one.
    scripts.answers_with(
        "127.0.0.1",
        "REPLICAOF",
        &format!(
            "printf 'slave\n%s\n6379\nconnect\n-1\n' \"$2\" > {root}/group/127.0.0.1/ROLE\necho OK"
        ),
    );
    scripts.replica(1, 0, "100");
    scripts.replica(2, 0, "100");
    for s in 0..3 {
        sentinel_sees(scripts, s, &redis_pod(0), "slave");
    }
    let switch = (0..3)
        .map(|s| {
            format!(
                "printf '%s\\n6379\\n' {r1} > {root}/group/{}/SENTINEL\n",
                sentinel_pod(s)
            )
        })
        .collect::<String>();
    for s in 0..3 {
        scripts.answers_with(
            &sentinel_pod(s),
            "SENTINEL-FAILOVER",
            &format!("{switch}printf 'master\\n200\\n' > {root}/group/{r1}/ROLE\necho OK"),
        );
    }
}

/// Sentinel `s` names `master` with flags `master` and sees replica 2 with `flags2`
/// (replica 1 as a plain `slave`); nothing marks it stopping.
fn sentinel_sees(scripts: &Scripts, s: u8, master: &str, flags2: &str) {
    let host = sentinel_pod(s);
    scripts.answers(&host, "SENTINEL", &[master, "6379"]);
    scripts.answers(
        &host,
        "SENTINEL-MASTER",
        &[
            "name", "mymaster", "ip", master, "port", "6379", "flags", "master",
        ],
    );
    let (r1, r2) = (redis_pod(1), redis_pod(2));
    scripts.answers(
        &host,
        "SENTINEL-REPLICAS",
        &[
            "name",
            &format!("{r1}:6379"),
            "ip",
            &r1,
            "port",
            "6379",
            "flags",
            "slave",
            "name",
            &format!("{r2}:6379"),
            "ip",
            &r2,
            "port",
            "6379",
            "flags",
            flags2,
        ],
    );
    scripts.answers(
        &host,
        "CLIENT-LIST",
        &["id=3 addr=10.0.0.9:4711 laddr=10.0.0.8:26379 fd=9 name= age=9 idle=0 flags=N"],
    );
}

fn line_of(asked: &str, what: &str) -> usize {
    asked
        .lines()
        .position(|l| l == what)
        .unwrap_or_else(|| panic!("`{what}` was never asked:\n{asked}"))
}

#[test]
fn a_handover_waits_for_every_replica_and_asks_a_sentinel_that_sees_them_all() {
    let scripts = Scripts::new("pw");
    // Replica 2 is behind until the third INFO; sentinel-0 is stopping (its preStop hook
    // holds a connection so named) and sentinel-1 still flags replica 2 down.
    handover_group(&scripts, 3);
    scripts.answers(
        &sentinel_pod(0),
        "CLIENT-LIST",
        &["id=7 addr=127.0.0.1:5000 laddr=127.0.0.1:26379 fd=9 name=rcluster-stopping age=1"],
    );
    sentinel_sees(&scripts, 1, &redis_pod(0), "s_down,slave,disconnected");
    let log = scripts.prestop("demo-redis-0");
    let asked = scripts.asked();

    let failover = line_of(
        &asked,
        &format!("{} SENTINEL FAILOVER mymaster", sentinel_pod(2)),
    );
    assert_eq!(
        asked.matches("SENTINEL FAILOVER").count(),
        1,
        "only sentinel-2 is asked:\n{asked}"
    );
    let infos: Vec<usize> = asked
        .lines()
        .enumerate()
        .filter(|(_, l)| *l == "127.0.0.1 INFO replication")
        .map(|(i, _)| i)
        .collect();
    assert!(
        infos.len() >= 3 && infos[2] < failover,
        "the failover is asked only once every replica has the master's offset:\n{asked}"
    );
    assert!(!asked.contains(" WAIT "), "{asked}");
    let pause = line_of(&asked, "127.0.0.1 CLIENT PAUSE 30000 WRITE");
    assert!(pause < infos[1], "{asked}");
    // The sentinels are looked at while writes still flow: a long pause would make them
    // see the master down (their PINGs queue behind their paused hello PUBLISH).
    let looked = line_of(&asked, &format!("{} CLIENT LIST", sentinel_pod(2)));
    assert!(looked < pause, "{asked}");
    // This node follows the new master; replica 2, still on this node, is moved too;
    // replica 1, the new master, is left alone. Then the pause is lifted.
    let follow = line_of(
        &asked,
        &format!("127.0.0.1 REPLICAOF {} 6379", redis_pod(1)),
    );
    let moved = line_of(
        &asked,
        &format!("{} REPLICAOF {} 6379", redis_pod(2), redis_pod(1)),
    );
    line_of(&asked, &format!("{} CONFIG REWRITE", redis_pod(2)));
    assert!(
        !asked.contains(&format!("{} REPLICAOF", redis_pod(1))),
        "{asked}"
    );
    assert!(
        moved < follow,
        "the replicas move before this node stops serving them"
    );
    assert!(follow < line_of(&asked, "127.0.0.1 CLIENT UNPAUSE"));
    assert!(
        log.contains(&format!("master is now {}", redis_pod(1))),
        "{log}"
    );
    assert!(!scripts.stopped_as_master().exists(), "{log}");
}

#[test]
fn a_handover_with_every_sentinel_flagging_a_replica_still_moves_that_replica() {
    // The measured failure of `kubectl rollout restart`: the sentinels still flag the
    // replica that restarted seconds ago. After a bounded wait the hook asks one anyway,
    // and moves that replica to the new master itself (Sentinel would skip it and repair
    // it only after failover_timeout).
    let scripts = Scripts::with_topology("pw", "[sentinel]\nfailover_timeout_ms = 40000\n", &[]);
    handover_group(&scripts, 1);
    for s in 0..3 {
        sentinel_sees(&scripts, s, &redis_pod(0), "s_down,slave");
    }
    let started = std::time::Instant::now();
    let log = scripts.prestop("demo-redis-0");
    let took = started.elapsed().as_secs();
    let asked = scripts.asked();
    // budget 20 s: a clean sentinel is awaited until 6 s.
    assert!((5..=10).contains(&took), "asked after {took} s:\n{log}");
    line_of(
        &asked,
        &format!("{} SENTINEL FAILOVER mymaster", sentinel_pod(0)),
    );
    line_of(
        &asked,
        &format!("{} REPLICAOF {} 6379", redis_pod(2), redis_pod(1)),
    );
    assert!(log.contains("(flagged) is moving mastership away"), "{log}");
}

#[test]
fn a_handover_that_gets_no_answer_ends_within_its_worst_case_as_master() {
    let dir = tempfile::tempdir().expect("tempdir");
    let topology = write_topology(
        dir.path(),
        "[cluster]\nname = \"demo\"\n[sentinel]\nfailover_timeout_ms = 40000\n",
    );
    let scripts = Scripts::with_topology_file("pw", &topology, &[]);
    handover_group(&scripts, 1);
    for s in 0..3 {
        scripts.hangs(&sentinel_pod(s));
    }
    // The worst case the script states, and the grace period the StatefulSet gives it.
    let prestop = std::fs::read_to_string(scripts.dir.path().join("redis/config/prestop.sh"))
        .expect("prestop.sh");
    let worst: u64 = prestop
        .lines()
        .find_map(|l| l.strip_prefix("#   = ")?.split(' ').next()?.parse().ok())
        .expect("the worst case in the header");
    let grace = documents(&scripts.dir.path().join("demo.k8s.yaml"))
        .into_iter()
        .find(|doc| doc["kind"] == "StatefulSet" && doc["metadata"]["name"] == "demo-redis")
        .and_then(|doc| doc["spec"]["template"]["spec"]["terminationGracePeriodSeconds"].as_u64())
        .expect("the redis grace period");
    assert_eq!(worst, 20 + 10 * 2 + 1);
    assert!(grace >= worst + 30, "grace {grace} s, worst case {worst} s");

    let started = std::time::Instant::now();
    let log = scripts.prestop("demo-redis-0");
    let took = started.elapsed().as_secs();
    // The script counts in `date +%s`'s whole seconds: its 20 s deadline can pass after
    // 19.x s of wall time, which `as_secs` reads as 19.
    assert!(
        (19..=worst).contains(&took),
        "took {took} s, worst case {worst} s:\n{log}"
    );
    assert!(log.contains("did not move within 20s"), "{log}");
    assert!(scripts.stopped_as_master().exists(), "{log}");
    line_of(&scripts.asked(), "127.0.0.1 CLIENT UNPAUSE");
}

#[test]
fn a_stopping_sentinel_marks_itself_and_waits_for_the_failover_it_runs() {
    let scripts = Scripts::new("pw");
    let root = scripts.dir.path().display().to_string();
    scripts.answers_with(
        "127.0.0.1",
        "SENTINEL-MASTER",
        &format!(
            r#"n=$(( $(cat {root}/master-calls 2>/dev/null || echo 0) + 1 )); echo "$n" > {root}/master-calls
flags=master
[ "$n" -le 3 ] && flags=master,failover_in_progress
printf 'name\nmymaster\nip\n%s\nflags\n%s\n' {} "$flags""#,
            redis_pod(0)
        ),
    );
    let started = std::time::Instant::now();
    let (ok, log) = scripts.run("sentinel", "prestop.sh", &[], "demo-sentinel-1");
    let took = started.elapsed().as_secs_f64();
    assert!(ok, "{log}");
    let asked = scripts.asked();
    line_of(&asked, "127.0.0.1 CLIENT SETNAME rcluster-stopping");
    assert_eq!(
        asked.matches("SENTINEL MASTER mymaster").count(),
        4,
        "{asked}"
    );
    assert!(log.contains("stopping once it ends"), "{log}");
    // The settle time (6 s), then three rounds of 0.5 s while the failover runs.
    assert!((7.0..12.0).contains(&took), "took {took} s:\n{log}");

    // No failover under way: it stops after the settle time.
    std::fs::write(scripts.dir.path().join("master-calls"), "10").expect("write");
    let started = std::time::Instant::now();
    let (ok, log) = scripts.run("sentinel", "prestop.sh", &[], "demo-sentinel-1");
    assert!(ok, "{log}");
    assert!(!log.contains("under way"), "{log}");
    assert!(started.elapsed().as_secs_f64() < 9.0, "{log}");
}

#[test]
fn a_sentinel_is_ready_when_it_monitors_a_pod_of_the_group_whatever_that_pods_health() {
    let scripts = Scripts::new("pw");
    let readiness = || {
        scripts
            .run("sentinel", "probe.sh", &["readiness"], "demo-sentinel-0")
            .0
    };
    // It names redis-1, which does not answer (killed, a failover coming): still ready,
    // so the client Service keeps its endpoints exactly when clients ask it.
    scripts.answers("127.0.0.1", "SENTINEL", &[&redis_pod(1), "6379"]);
    assert!(readiness());
    // It names an address that is not one of the group's pods, or does not answer.
    scripts.answers("127.0.0.1", "SENTINEL", &["10.0.0.7", "6379"]);
    assert!(!readiness());
    scripts.answers(
        "127.0.0.1",
        "SENTINEL",
        &["ERR No such master with that name"],
    );
    assert!(!readiness());
    scripts.node_down("127.0.0.1");
    assert!(!readiness());
}

/// The handover against real `redis-server` and `redis-sentinel` processes, with the pods'
/// DNS names: run in private network, mount and PID namespaces (`unshare`, as root, as CI
/// runs), where the names resolve through a private /etc/hosts to loopback addresses and
/// every process ends with the namespace. Redis-0 (the master, also on 127.0.0.1 as "this
/// pod") runs the rendered preStop hook right after replica 2 came back from a restart
/// that the sentinels flagged `+sdown`, as in a rolling update on a real cluster.
const REAL_GROUP_DRIVER: &str = r#"
set -eu
root=$1 password=$(cat "$1/secret/password")
export REDISCLI_AUTH=$password
ip link set lo up
svc=default.svc.cluster.local
r() { echo "demo-redis-$1.demo-redis.$svc"; }
s() { echo "demo-sentinel-$1.demo-sentinel-headless.$svc"; }
# hosts R2_ADDRESS: the names as the cluster's DNS gives them. Rewritten in place: the file
# is bind-mounted over /etc/hosts. Each name also with its trailing dot: the scripts look
# pods up as `NAME.` (no search domains), which DNS answers but glibc's hosts file matches
# only when written so.
hosts() {
  { cat "$root/hosts.orig"
    for entry in "127.0.0.10 $(r 0)" "127.0.0.11 $(r 1)" "$1 $(r 2)" \
      "127.0.0.20 $(s 0)" "127.0.0.21 $(s 1)" "127.0.0.22 $(s 2)"; do
      echo "$entry ${entry#* }."
    done; } > "$root/hosts"
}
cp /etc/hosts "$root/hosts.orig"
hosts 127.0.0.12
mount --bind "$root/hosts" /etc/hosts
q() { _h=$1 _p=$2; shift 2; timeout 2 redis-cli --no-auth-warning -h "$_h" -p "$_p" "$@" 2>/dev/null | tr -d '\r' || true; }
until_true() { # DEADLINE_S WHAT CMD...
  _end=$(( $(date +%s) + $1 )); _what=$2; shift 2
  until "$@"; do
    [ "$(date +%s)" -lt "$_end" ] || { echo "TIMEOUT $_what"; exit 1; }
    sleep 0.1
  done
}
start_redis() { # ORDINAL ADDRESSES
  mkdir -p "$root/real/redis-$1"
  { echo "port 6379"; echo "bind $2"; echo "dir $root/real/redis-$1"
    echo "requirepass \"$password\""; echo "masterauth \"$password\""
    echo "replica-announce-ip $(r $1)"; echo "appendonly yes"; echo "save \"\""
    [ "$1" = 0 ] || echo "replicaof $(r 0) 6379"
  } > "$root/real/redis-$1.conf"
  redis-server "$root/real/redis-$1.conf" --daemonize yes --logfile "$root/real/redis-$1.log"
}
linked() { q "$1" 6379 INFO replication | grep -q '^master_link_status:up'; }
start_redis 0 "127.0.0.10 127.0.0.1"; start_redis 1 127.0.0.11; start_redis 2 127.0.0.12
until_true 20 "replica 1 linked" linked 127.0.0.11
until_true 20 "replica 2 linked" linked 127.0.0.12
for i in 0 1 2; do
  { echo "port 26379"; echo "bind 127.0.0.2$i"; echo "sentinel resolve-hostnames yes"
    echo "sentinel announce-hostnames yes"; echo "sentinel announce-ip $(s $i)"
    echo "sentinel monitor mymaster $(r 0) 6379 2"; echo "sentinel auth-pass mymaster \"$password\""
    echo "sentinel down-after-milliseconds mymaster 2000"; echo "sentinel failover-timeout mymaster 60000"
    echo "requirepass \"$password\""; echo "sentinel sentinel-pass \"$password\""
  } > "$root/real/sentinel-$i.conf"
  redis-server "$root/real/sentinel-$i.conf" --sentinel --daemonize yes --logfile "$root/real/sentinel-$i.log"
done
knows_all() { [ "$(q "$(s $1)" 26379 SENTINEL MASTER mymaster | awk 'p == "num-slaves" || p == "num-other-sentinels" { n += $0 } { p = $0 } END { print n + 0 }')" = 4 ]; }
for i in 0 1 2; do until_true 30 "sentinel $i knows the group" knows_all "$i"; done
i=0
while [ $i -lt 300 ]; do q "$(r 0)" 6379 SET "key$i" "$i" > /dev/null; i=$((i + 1)); done
[ "$(q "$(r 0)" 6379 WAIT 2 5000)" = 2 ] || { echo "TIMEOUT writes replicated"; exit 1; }
# Replica 2 restarts, as a pod does, with a new address: down long enough for every
# sentinel to flag it, then back and linked (Ready), and the master is stopped at once,
# while the sentinels still reach for its old address (DNS catches up 3 s later).
q "$(r 2)" 6379 SHUTDOWN NOSAVE > /dev/null
flagged() { q "$(s $1)" 26379 SENTINEL REPLICAS mymaster | grep -q 's_down'; }
for i in 0 1 2; do until_true 20 "sentinel $i flags replica 2" flagged "$i"; done
start_redis 2 127.0.0.13
until_true 20 "replica 2 linked again" linked 127.0.0.13
echo "FLAGGED_AT_STOP $(for i in 0 1 2; do flagged "$i" && echo "$i"; done | tr '\n' ' ')"
start=$(date +%s)
(sleep 3; hosts 127.0.0.13) &
POD_NAME=demo-redis-0 sh "$root/redis/config/prestop.sh"
echo "PRESTOP_SECONDS $(( $(date +%s) - start ))"
# Every replica follows the new master with its link up, and every sentinel names it.
master=$(q "$(s 0)" 26379 SENTINEL get-master-addr-by-name mymaster | head -n 1)
converged() {
  for i in 0 1 2; do [ "$(q "$(s $i)" 26379 SENTINEL get-master-addr-by-name mymaster | head -n 1)" = "$master" ] || return 1; done
  for i in 0 1 2; do
    [ "$(r $i)" = "$master" ] && continue
    info=$(q "$(r $i)" 6379 INFO replication)
    echo "$info" | grep -q "^master_host:$master\$" && echo "$info" | grep -q '^master_link_status:up' || return 1
  done
}
until_true 60 "every replica follows $master" converged
echo "CONVERGED_SECONDS $(( $(date +%s) - start ))"
echo "MASTER $master"
echo "KEYS $(q "$master" 6379 DBSIZE)"
echo "ROLE_OF_OLD $(q "$(r 0)" 6379 ROLE | head -n 1)"
for i in 0 1 2; do grep -h -E 'fix-slave-config|failover-end|switch-master|odown' "$root/real/sentinel-$i.log" | sed "s/^/SENTINEL$i /"; done
"#;

#[test]
fn a_real_group_follows_the_new_master_within_seconds_of_a_handover() {
    let scripts = Scripts::with_topology("real-Pa55", "[sentinel]\ndown_after_ms = 2000\n", &[]);
    let root = scripts.dir.path();
    std::fs::create_dir_all(root.join("real")).expect("mkdir");
    let driver = root.join("driver.sh");
    std::fs::write(&driver, REAL_GROUP_DRIVER).expect("write driver");
    // The PID namespace's first process is the driver: when it ends, the kernel ends every
    // redis-server it started, whatever happens to this test.
    let out = Command::new("timeout")
        .args([
            "180",
            "unshare",
            // A user namespace too, so that the fast tier (`cargo test-fast`) runs this
            // without root where unprivileged user namespaces are allowed.
            "--map-root-user",
            "--pid",
            "--fork",
            "--net",
            "--mount",
            "--mount-proc",
        ])
        .args(["sh"])
        .arg(&driver)
        .arg(root)
        .output()
        .expect("run unshare (util-linux)");
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let logs = || {
        let mut all = String::new();
        for name in [
            "redis-0",
            "redis-1",
            "redis-2",
            "sentinel-0",
            "sentinel-1",
            "sentinel-2",
        ] {
            let text = std::fs::read_to_string(root.join("real").join(format!("{name}.log")))
                .unwrap_or_default();
            all.push_str(&format!("--- {name}\n{text}"));
        }
        all
    };
    assert!(
        out.status.success(),
        "the real group (needs root, util-linux's unshare, redis-server):\n{log}\n{}",
        logs()
    );
    let value = |key: &str| {
        log.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix(' '))
            .unwrap_or_default()
            .to_string()
    };
    let seconds = |key: &str| value(key).parse::<u64>().unwrap_or(u64::MAX);
    eprintln!("{log}");
    assert!(
        !value("FLAGGED_AT_STOP").is_empty(),
        "the sentinels flagged the restarted replica when the master was stopped:\n{log}"
    );
    assert!(
        !value("MASTER").is_empty() && !value("MASTER").starts_with("demo-redis-0."),
        "{log}"
    );
    assert_eq!(
        value("KEYS"),
        "300",
        "every acknowledged write is on the new master:\n{log}"
    );
    assert_eq!(value("ROLE_OF_OLD"), "slave", "{log}");
    assert!(
        seconds("CONVERGED_SECONDS") <= 20,
        "every replica follows the new master within 20 s of the preStop hook's start:\n{log}\n{}",
        logs()
    );
    assert!(
        !log.contains("fix-slave-config"),
        "no replica was left for Sentinel:\n{log}"
    );
    // One failover, the one asked for: the paused master never looked down to the
    // sentinels (a pause longer than down-after starts a failover of their own).
    assert!(!log.contains("+odown"), "{log}");
    for s in 0..3 {
        let prefix = format!("SENTINEL{s} ");
        let switches = log
            .lines()
            .filter(|l| l.starts_with(&prefix) && l.contains("+switch-master"))
            .count();
        // (The leader may still be reconfiguring replicas when the check above passes: it
        // names the promoted replica before its own `+switch-master`.)
        assert!(switches <= 1, "sentinel {s} saw one switch at most:\n{log}");
    }
}

/// Every object of a rendering by `(kind, name)`, as JSON text (to compare renderings).
fn objects_of(dir: &Path, topology_text: &str) -> std::collections::BTreeMap<String, String> {
    let topology = write_topology(dir, topology_text);
    let manifest = dir.join("objects.yaml");
    std::fs::write(&manifest, render_k8s(&topology, &[])).expect("write");
    documents(&manifest)
        .into_iter()
        .map(|d| {
            (
                format!(
                    "{}/{}",
                    d["kind"].as_str().expect("kind"),
                    d["metadata"]["name"]
                ),
                d.to_string(),
            )
        })
        .collect()
}

/// The names of the objects that differ between two renderings.
fn changed(
    a: &std::collections::BTreeMap<String, String>,
    b: &std::collections::BTreeMap<String, String>,
) -> Vec<String> {
    assert_eq!(
        a.keys().collect::<Vec<_>>(),
        b.keys().collect::<Vec<_>>(),
        "the same objects"
    );
    a.iter()
        .filter(|(k, v)| b[*k] != **v)
        .map(|(k, _)| k.clone())
        .collect()
}

/// Each kind's objects depend only on its own settings: a redis-only change (`redis.extra`,
/// an `[acl]` user with its own password) changes only the redis ConfigMap and pod template,
/// `replicas.count` only the redis StatefulSet's `replicas` (no pod template, no script: no
/// pod restarts), and a sentinel-only change (`quorum`, `parallel_syncs`, `sentinel.count`)
/// nothing of the redis pods.
#[test]
fn each_kind_has_its_own_checksums_and_no_pod_count_reaches_a_pod() {
    let tmp = tempfile::tempdir().expect("tempdir");
    std::fs::write(tmp.path().join("ops.password"), "ops-Pa55\n").expect("write");
    let base = "[cluster]\nname = \"demo\"\n\n[auth]\npassword = \"one\"\n";
    let with = |more: &str| objects_of(tmp.path(), &format!("{base}{more}"));
    let before = with("");
    let annotations = |objects: &std::collections::BTreeMap<String, String>, set: &str| {
        let set: serde_json::Value =
            serde_json::from_str(&objects[&format!("StatefulSet/\"{set}\"")]).expect("json");
        set["spec"]["template"]["metadata"]["annotations"].clone()
    };

    let extra = with("\n[redis]\nextra = { maxmemory = \"64mb\" }\n");
    assert_eq!(
        changed(&before, &extra),
        [
            "ConfigMap/\"demo-redis-config\"",
            "StatefulSet/\"demo-redis\""
        ]
    );
    assert_ne!(
        annotations(&extra, "demo-redis")["rcluster.io/config-checksum"],
        annotations(&before, "demo-redis")["rcluster.io/config-checksum"]
    );
    assert_eq!(
        annotations(&extra, "demo-redis")["rcluster.io/secret-checksum"],
        annotations(&before, "demo-redis")["rcluster.io/secret-checksum"]
    );

    let scaled = with("\n[replicas]\ncount = 4\n");
    assert_eq!(changed(&before, &scaled), ["StatefulSet/\"demo-redis\""]);
    assert_eq!(
        annotations(&scaled, "demo-redis"),
        annotations(&before, "demo-redis"),
        "a new count rolls no pod"
    );

    for sentinel_only in [
        "\n[sentinel]\nquorum = 3\n",
        "\n[sentinel]\nparallel_syncs = 2\n",
        "\n[sentinel]\ncount = 5\n",
    ] {
        let after = with(sentinel_only);
        let changed = changed(&before, &after);
        assert!(
            changed.iter().all(|name| name.contains("sentinel")),
            "{sentinel_only}: {changed:?}"
        );
        assert!(changed.contains(&"StatefulSet/\"demo-sentinel\"".to_string()));
    }

    // `[acl]` users are application users of the data nodes: the sentinels neither hold
    // them nor copy their passwords.
    let acl = "\n[acl]\n[acl.users]\napp = \"on ~app:* +@all\"\n";
    let with_acl = with(acl);
    let more_users = with(&format!(
        "{acl}\n[acl.users.ops]\nrules = \"on ~* +@read\"\npassword_file = \"ops.password\"\n"
    ));
    let changed_by_user = changed(&with_acl, &more_users);
    assert!(
        changed_by_user.iter().all(|name| name.contains("redis")),
        "{changed_by_user:?}"
    );
}

/// No script and no config holds a pod count: the pods are found in DNS, so `kubectl scale`
/// needs nothing else. (sentinel.conf seeds the sentinels, the sentinels' own count.)
#[test]
fn no_pod_list_is_baked_into_scripts_or_configs() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let objects = objects_of(
        tmp.path(),
        "[cluster]\nname = \"demo\"\n\n[replicas]\ncount = 2\n\n[sentinel]\ncount = 3\n",
    );
    for config_map in ["demo-redis-config", "demo-sentinel-config"] {
        let doc: serde_json::Value =
            serde_json::from_str(&objects[&format!("ConfigMap/\"{config_map}\"")]).expect("json");
        for (file, text) in doc["data"].as_object().expect("data") {
            let text = text.as_str().expect("text");
            for pod in ["demo-redis-0", "demo-redis-1", "demo-redis-2"] {
                assert!(!text.contains(pod), "{config_map}/{file} names {pod}");
            }
            if file != "sentinel.conf" {
                for pod in ["demo-sentinel-0", "demo-sentinel-1", "demo-sentinel-2"] {
                    assert!(!text.contains(pod), "{config_map}/{file} names {pod}");
                }
            }
            assert!(
                !text.contains("for i in 0 1"),
                "{config_map}/{file} lists ordinals"
            );
        }
    }
}

/// A pod `kubectl scale` adds (ordinal 4 of a group rendered with 2 replicas) joins: it
/// finds the master through the running replicas, and a sentinel starting now seeds every
/// redis pod DNS has, past a pod being re-created (no name for a moment).
#[test]
fn a_pod_added_by_kubectl_scale_is_found_without_any_config() {
    let scripts = Scripts::new("pw");
    scripts.answers(&redis_pod(0), "ROLE", &["master", "100"]);
    scripts.replica(1, 0, "100");
    // Pod 2 is being re-created: neither there nor in DNS. Pod 3 runs; 4 is the new one.
    scripts.replica(3, 0, "100");
    let (conf, log) = scripts.start("redis", "demo-redis-4");
    assert_eq!(replicaof(&conf), follows(0), "{log}");
    let (sentinel, _) = scripts.start("sentinel", "demo-sentinel-0");
    let seeded: Vec<&str> = sentinel
        .lines()
        .filter(|l| l.starts_with("sentinel known-replica"))
        .collect();
    assert_eq!(
        seeded,
        [1, 3].map(|i| format!("sentinel known-replica mymaster {} 6379", redis_pod(i)))
    );
}

/// The init container's copy: every file of the ConfigMap (through the links a ConfigMap
/// volume holds) read-only, the passwords and keys readable by the pod's user only, and a
/// re-run (the kubelet runs a failed init container again) replaces read-only copies.
#[test]
fn the_init_container_copies_config_and_secrets_with_private_modes() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let topology = write_topology(
        tmp.path(),
        "[cluster]\nname = \"demo\"\n[auth]\npassword = \"pw\"\n[tls]\nenabled = true\n",
    );
    let manifest = tmp.path().join("m.yaml");
    std::fs::write(&manifest, render_k8s(&topology, &[])).expect("write");
    let m = Manifest::read(&manifest);
    let data = m.find("ConfigMap", "demo-redis-config")["data"].clone();
    let root = tmp.path().to_str().expect("utf-8");
    let script = data["copy.sh"]
        .as_str()
        .expect("copy.sh")
        .replace("/run/rcluster-source", &format!("{root}/src"))
        .replace("/run/secrets/rcluster-tls", &format!("{root}/dst/tls"))
        .replace("/run/secrets/rcluster", &format!("{root}/dst/secret"))
        .replace(" /config ", &format!(" {root}/dst/config "));
    // Volumes as the kubelet fills them: files in `..data`, visible names are links.
    for (dir, files) in [
        (
            "config",
            data.as_object()
                .expect("data")
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().expect("text").to_string()))
                .collect::<Vec<_>>(),
        ),
        (
            "secret",
            vec![
                ("password".to_string(), "new-pw".to_string()),
                ("previous_password".to_string(), "old-pw".to_string()),
            ],
        ),
        (
            "tls",
            ["ca.crt", "tls.crt", "tls.key"]
                .map(|f| (f.to_string(), format!("{f} PEM")))
                .to_vec(),
        ),
    ] {
        let source = tmp.path().join("src").join(dir);
        std::fs::create_dir_all(source.join("..data")).expect("mkdir");
        for (name, text) in files {
            std::fs::write(source.join("..data").join(&name), text).expect("write");
            std::os::unix::fs::symlink(format!("..data/{name}"), source.join(&name)).expect("link");
        }
        std::fs::create_dir_all(tmp.path().join("dst").join(dir)).expect("mkdir");
    }
    for run in 0..2 {
        let out = Command::new("sh")
            .arg("-c")
            .arg(&script)
            .output()
            .expect("run copy.sh");
        assert!(
            out.status.success(),
            "run {run}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let mode = |path: &str| {
        let meta = std::fs::symlink_metadata(tmp.path().join("dst").join(path)).expect(path);
        assert!(meta.is_file(), "{path} is a copy, not a link");
        meta.permissions().mode() & 0o777
    };
    for file in ["lib.sh", "start.sh", "probe.sh", "prestop.sh", "redis.conf"] {
        assert_eq!(mode(&format!("config/{file}")), 0o444, "{file}");
    }
    for file in [
        "secret/password",
        "secret/previous_password",
        "tls/tls.key",
        "tls/ca.crt",
    ] {
        assert_eq!(mode(file), 0o400, "{file}");
    }
    let copied =
        |path: &str| std::fs::read_to_string(tmp.path().join("dst").join(path)).expect(path);
    assert_eq!(copied("secret/previous_password"), "old-pw");
    assert!(!tmp.path().join("dst/config/..data").exists());
    // The source changes (an apply): the copy a running pod has does not.
    std::fs::write(tmp.path().join("src/secret/..data/password"), "newer").expect("write");
    assert_eq!(copied("secret/password"), "new-pw");
}

/// A rotation's middle steps: the Secret holds `password` (the one the pods log in with,
/// and write as `masterauth` / `auth-pass`) and `next_password` or `previous_password`
/// (accepted too). Every user's line holds a hash of each; `[acl]` users rcluster derives
/// from the group password get one derived from each, and a user's own password its own
/// `previous_acl-<name>` too.
#[test]
fn pods_accept_the_next_or_previous_password_and_log_in_with_password() {
    let scripts = Scripts::with_topology(
        "new-pw",
        "",
        &[("previous_password", "old-pw"), ("next_password", "")],
    );
    let (master, _) = scripts.start("redis", "demo-redis-0");
    let both = format!("#{} #{}", sha256_hex("new-pw"), sha256_hex("old-pw"));
    assert!(
        master.contains(&format!("user default on ~* &* +@all {both}\n")),
        "{master}"
    );
    assert!(master.contains("masterauth \"new-pw\""), "{master}");
    let (sentinel, _) = scripts.start("sentinel", "demo-sentinel-0");
    assert!(
        sentinel.contains(&format!("user default on ~* &* +@all {both}\n")),
        "{sentinel}"
    );
    assert!(sentinel.contains("sentinel auth-pass mymaster \"new-pw\""));

    let scripts = Scripts::with_topology(
        "group-new",
        &format!("\n[auth]\npassword = \"group-new\"\n\n{ACL_TOPOLOGY}"),
        &[
            ("next_password", "group-next"),
            ("acl-ops", "ops-new"),
            ("previous_acl-ops", "ops-old"),
        ],
    );
    let (master, _) = scripts.start("redis", "demo-redis-0");
    let derived =
        |group: &str, user: &str| sha256_hex(rcluster::acl::derived_password(group, user).expose());
    for (user, hashes) in [
        (
            "rcluster",
            format!("#{} #{}", sha256_hex("group-new"), sha256_hex("group-next")),
        ),
        (
            "rcluster-replication",
            format!(
                "#{} #{}",
                derived("group-new", "rcluster-replication"),
                derived("group-next", "rcluster-replication")
            ),
        ),
        (
            "ops",
            format!("#{} #{}", sha256_hex("ops-new"), sha256_hex("ops-old")),
        ),
    ] {
        let line = master
            .lines()
            .find(|l| l.starts_with(&format!("user {user} ")))
            .unwrap_or_else(|| panic!("no user {user}:\n{master}"));
        assert!(line.ends_with(&hashes), "{line}");
    }
    let masterauth = rcluster::acl::derived_password("group-new", "rcluster-replication");
    assert!(
        master.contains(&format!("masterauth \"{}\"", masterauth.expose())),
        "{master}"
    );
}
