//! `rcluster render`, run as the real binary.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const NODES: [&str; 6] = [
    "demo-master/redis.conf",
    "demo-replica-1/redis.conf",
    "demo-replica-2/redis.conf",
    "demo-sentinel-1/sentinel.conf",
    "demo-sentinel-2/sentinel.conf",
    "demo-sentinel-3/sentinel.conf",
];

/// The repository's example topology: no password configured.
fn repo_topology() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("topology.toml")
}

fn rcluster(topology: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rcluster"))
        .arg("-f")
        .arg(topology)
        .args(args)
        .output()
        .expect("run rcluster")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn assert_success(output: &Output) {
    assert!(
        output.status.success(),
        "rcluster failed ({}):\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A topology with a literal password, in a temp dir.
fn topology_with_password(dir: &Path, password: &str) -> PathBuf {
    let path = dir.join("topology.toml");
    std::fs::write(
        &path,
        format!("[cluster]\nname = \"demo\"\n\n[auth]\npassword = \"{password}\"\n"),
    )
    .expect("write topology");
    path
}

#[test]
fn out_writes_one_private_file_per_node() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let out = tmp.path().join("build");
    let output = rcluster(
        &repo_topology(),
        &["render", "--out", out.to_str().expect("utf-8 path")],
    );
    assert_success(&output);

    let printed: Vec<String> = stdout(&output).lines().map(str::to_owned).collect();
    let expected: Vec<String> = NODES
        .iter()
        .map(|rel| out.join(rel).display().to_string())
        .collect();
    assert_eq!(printed, expected);

    for rel in NODES {
        let path = out.join(rel);
        let mode = std::fs::metadata(&path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{} is not private", path.display());
        let text = std::fs::read_to_string(&path).expect("read config");
        // No password is configured: the generated one does not exist yet, so it is masked.
        assert!(
            text.contains("requirepass \"********\""),
            "{}",
            path.display()
        );
    }
    let master = std::fs::read_to_string(out.join(NODES[0])).expect("read master");
    assert!(master.contains("masterauth \"********\""));
    assert!(!master.contains("\nreplicaof "));
    let replica = std::fs::read_to_string(out.join(NODES[1])).expect("read replica");
    assert!(replica.contains("\nreplicaof "));
    let sentinel = std::fs::read_to_string(out.join(NODES[3])).expect("read sentinel");
    assert!(sentinel.contains("sentinel monitor mymaster "));
}

#[test]
fn out_tightens_an_existing_file() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let out = tmp.path().join("build");
    let stale = out.join(NODES[0]);
    std::fs::create_dir_all(stale.parent().expect("parent")).expect("mkdir");
    std::fs::write(&stale, "old").expect("write");
    std::fs::set_permissions(&stale, std::fs::Permissions::from_mode(0o644)).expect("chmod");

    let output = rcluster(
        &repo_topology(),
        &[
            "--quiet",
            "render",
            "--out",
            out.to_str().expect("utf-8 path"),
        ],
    );
    assert_success(&output);
    assert_eq!(stdout(&output), "", "--quiet prints nothing");
    let meta = std::fs::metadata(&stale).expect("stat");
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert!(
        std::fs::read_to_string(&stale)
            .expect("read")
            .starts_with("# redis.conf for demo-master")
    );
}

#[test]
fn stdout_has_a_header_per_file() {
    let output = rcluster(&repo_topology(), &["render"]);
    assert_success(&output);
    let text = stdout(&output);
    let headers: Vec<&str> = text.lines().filter(|l| l.starts_with("# ==> ")).collect();
    let expected: Vec<String> = NODES.iter().map(|rel| format!("# ==> {rel} <==")).collect();
    assert_eq!(headers, expected);
}

#[test]
fn password_is_masked_unless_show_secrets() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let password = "Cli-Pa55word-7";
    let topology = topology_with_password(tmp.path(), password);

    let masked = rcluster(&topology, &["render"]);
    assert_success(&masked);
    let text = stdout(&masked);
    assert!(!text.contains(password), "password leaked:\n{text}");
    assert!(!String::from_utf8_lossy(&masked.stderr).contains(password));
    assert_eq!(text.matches("requirepass \"********\"").count(), 6);

    let out = tmp.path().join("build");
    let shown = rcluster(
        &topology,
        &[
            "render",
            "--show-secrets",
            "--out",
            out.to_str().expect("utf-8 path"),
        ],
    );
    assert_success(&shown);
    let master = std::fs::read_to_string(out.join(NODES[0])).expect("read master");
    assert!(master.contains(&format!("requirepass \"{password}\"")));
    assert!(master.contains(&format!("masterauth \"{password}\"")));
    let sentinel = std::fs::read_to_string(out.join(NODES[3])).expect("read sentinel");
    assert!(sentinel.contains(&format!("sentinel auth-pass mymaster \"{password}\"")));
}

#[test]
fn json_lists_the_files() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let out = tmp.path().join("build");
    let output = rcluster(
        &repo_topology(),
        &[
            "--json",
            "render",
            "--out",
            out.to_str().expect("utf-8 path"),
        ],
    );
    assert_success(&output);
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).expect("valid JSON");
    let files = json["files"].as_array().expect("files array");
    assert_eq!(files.len(), 6);
    assert_eq!(files[0]["node"], "demo-master");
    assert_eq!(
        files[0]["path"],
        out.join(NODES[0]).display().to_string().as_str()
    );
    assert!(files[0].get("content").is_none());
}

#[test]
fn name_override_renames_every_node() {
    let output = rcluster(&repo_topology(), &["--name", "shop", "render"]);
    assert_success(&output);
    let text = stdout(&output);
    assert!(text.contains("# ==> shop-master/redis.conf <=="));
    assert!(!text.contains("demo-"));
}
