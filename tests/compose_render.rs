//! `rcluster render --format compose`, run as the real binary: docker-compose accepts the
//! file, and the group it describes comes up healthy on the real engine.

mod common;

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// uid/gid redis runs as in rcluster's image: the mounted node directories must be its.
const REDIS_UID: u32 = 999;

fn run(program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run `{program}`: {e}"))
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Render the compose files of `topology` into `out`.
fn render_compose(topology: &Path, out: &Path) -> PathBuf {
    common::rcluster_with(
        topology,
        &[
            "render",
            "--format",
            "compose",
            "--show-secrets",
            "--out",
            out.to_str().expect("utf-8 path"),
        ],
    );
    out.join("docker-compose.yml")
}

#[test]
fn docker_compose_accepts_the_file() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let topology = Path::new(env!("CARGO_MANIFEST_DIR")).join("topology.toml");
    let compose = render_compose(&topology, tmp.path());
    let out = run(
        "docker-compose",
        &["-f", compose.to_str().expect("utf-8"), "config", "-q"],
    );
    assert!(
        out.status.success(),
        "docker-compose rejects the file:\n{}",
        text(&out)
    );
    for config in [
        "demo-master/redis.conf",
        "demo-replica-2/redis.conf",
        "demo-sentinel-3/sentinel.conf",
    ] {
        assert!(tmp.path().join(config).is_file(), "{config} missing");
    }
}

/// Every IPv4 network the engine has, as (address, prefix).
fn used_networks() -> Vec<(Ipv4Addr, u8)> {
    let ids = run("docker", &["network", "ls", "-q"]);
    let ids: Vec<String> = String::from_utf8_lossy(&ids.stdout)
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    let mut args = vec![
        "network",
        "inspect",
        "--format",
        "{{range .IPAM.Config}}{{.Subnet}} {{end}}",
    ];
    args.extend(ids.iter().map(String::as_str));
    let out = run("docker", &args);
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter_map(|cidr| {
            let (addr, prefix) = cidr.split_once('/')?;
            Some((addr.parse().ok()?, prefix.parse().ok()?))
        })
        .collect()
}

fn overlaps(a: (Ipv4Addr, u8), b: (Ipv4Addr, u8)) -> bool {
    let shorter = a.1.min(b.1);
    let mask = if shorter == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(shorter))
    };
    (u32::from(a.0) & mask) == (u32::from(b.0) & mask)
}

/// A /24 in 172.28.0.0/14 that no network of the engine overlaps.
fn free_subnet(seed: u32) -> String {
    let used = used_networks();
    (0..1024u32)
        .map(|i| (seed + i) % 1024)
        .map(|n| Ipv4Addr::new(172, 28 + (n / 256) as u8, (n % 256) as u8, 0))
        .find(|addr| !used.iter().any(|u| overlaps((*addr, 24), *u)))
        .map(|addr| format!("{addr}/24"))
        .expect("no free /24 in 172.28.0.0/14")
}

/// A project name, password and free subnet of its own for one test: unique per process
/// and per call, so concurrent runs never share a name or a network.
fn fresh_project(prefix: &str) -> (String, String, String) {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .subsec_nanos();
    (
        format!("{prefix}-{}-{}", std::process::id(), nanos % 100_000),
        format!("{prefix}-password-{nanos}"),
        free_subnet(std::process::id() + nanos),
    )
}

/// Takes the compose project down (containers, network, volumes) even when the test fails.
/// Give the rendered node directories to uid 999 (Redis rewrites its config by rename in
/// them), then `docker-compose up -d`; the guard takes the project down again.
fn compose_up(name: &str, out: &Path, compose: &Path) -> ProjectGuard {
    for entry in std::fs::read_dir(out).expect("read out dir") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            std::os::unix::fs::chown(&path, Some(REDIS_UID), Some(REDIS_UID)).expect("chown");
            for file in std::fs::read_dir(&path).expect("read node dir") {
                let file = file.expect("dir entry").path();
                std::os::unix::fs::chown(&file, Some(REDIS_UID), Some(REDIS_UID)).expect("chown");
            }
        }
    }
    let guard = ProjectGuard {
        project: name.to_string(),
        compose: compose.to_path_buf(),
    };
    let compose_arg = compose.to_str().expect("utf-8").to_owned();
    let up = run(
        "docker-compose",
        &["-p", &guard.project, "-f", &compose_arg, "up", "-d"],
    );
    assert!(
        up.status.success(),
        "docker-compose up failed:\n{}",
        text(&up)
    );
    guard
}

struct ProjectGuard {
    project: String,
    compose: PathBuf,
}

impl Drop for ProjectGuard {
    fn drop(&mut self) {
        let compose = self.compose.to_string_lossy().into_owned();
        let out = run(
            "docker-compose",
            &["-p", &self.project, "-f", &compose, "down", "-v"],
        );
        if !out.status.success() {
            eprintln!("cleanup of `{}` failed:\n{}", self.project, text(&out));
        }
    }
}

/// What one sentinel says about the master: `SENTINEL master` is flat name/value lines.
fn sentinel_view(container: &str, password: &str, master_name: &str) -> Option<(String, u32)> {
    let auth = format!("REDISCLI_AUTH={password}");
    let out = run(
        "docker",
        &[
            "exec",
            "-e",
            &auth,
            container,
            "redis-cli",
            "-p",
            "26379",
            "--no-auth-warning",
            "SENTINEL",
            "master",
            master_name,
        ],
    );
    if !out.status.success() {
        return None;
    }
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let lines: Vec<&str> = stdout.lines().collect();
    let field = |name: &str| {
        lines
            .chunks(2)
            .find(|pair| pair[0] == name)
            .and_then(|pair| pair.get(1).map(|v| v.to_string()))
    };
    let healthy = field("flags")? == "master";
    let ip = field("ip")?;
    let replicas: u32 = field("num-slaves")?.parse().ok()?;
    healthy.then_some((ip, replicas))
}

#[test]
fn compose_group_comes_up_with_master_and_two_replicas() {
    // One group at a time on the engine, like every Docker-backed test; and the image
    // `up` builds (a fresh machine has none yet).
    let _lock = common::docker_lock();
    common::ensure_image();
    let image = common::image();

    let (name, password, subnet) = fresh_project("cmp");

    let tmp = tempfile::tempdir().expect("tempdir");
    let topology = tmp.path().join("topology.toml");
    std::fs::write(
        &topology,
        format!(
            "[cluster]\nname = \"{name}\"\nsubnet = \"{subnet}\"\n\n\
             [auth]\npassword = \"{password}\"\n\n\
             [master]\nport = 0\n\n[replicas]\ncount = 2\nport = 0\n\n\
             [sentinel]\ncount = 3\nport = 0\ndown_after_ms = 2000\n"
        ),
    )
    .expect("write topology");
    let out = tmp.path().join("out");
    let compose = render_compose(&topology, &out);
    let compose_text = std::fs::read_to_string(&compose).expect("read compose file");
    assert!(compose_text.contains(&image), "{compose_text}");
    assert!(
        !compose_text.contains(&password),
        "password in the compose file"
    );

    let guard = compose_up(&name, &out, &compose);

    let master_ip = subnet.replace(".0/24", ".10");
    let sentinels: Vec<String> = (1..=3).map(|i| format!("{name}-sentinel-{i}")).collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let last: Vec<_> = sentinels
            .iter()
            .map(|s| sentinel_view(s, &password, "mymaster"))
            .collect();
        let healthy = last
            .iter()
            .all(|view| view.as_ref() == Some(&(master_ip.clone(), 2)));
        if healthy {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "sentinels never agreed on master {master_ip} with 2 replicas; last views: {last:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // Sentinel can rewrite its config (by rename) in the mounted directory; a single-file
    // bind mount would make this fail with "Device or resource busy".
    let sentinel = &sentinels[0];
    let auth = format!("REDISCLI_AUTH={password}");
    let flush = run(
        "docker",
        &[
            "exec",
            "-e",
            &auth,
            sentinel,
            "redis-cli",
            "-p",
            "26379",
            "--no-auth-warning",
            "SENTINEL",
            "FLUSHCONFIG",
        ],
    );
    assert_eq!(
        text(&flush).trim(),
        "OK",
        "SENTINEL FLUSHCONFIG on `{sentinel}`"
    );
    let rewritten = std::fs::read_to_string(out.join(format!("{sentinel}/sentinel.conf")))
        .expect("read sentinel.conf");
    assert!(
        rewritten.contains("Generated by CONFIG REWRITE"),
        "sentinel did not rewrite its config:\n{rewritten}"
    );
    drop(guard);
}

/// With `[tls]` and `--show-secrets`, each node directory holds its CA, certificate and
/// key (private), the compose file mounts them read-only, and docker-compose accepts it.
#[test]
fn a_tls_compose_file_mounts_each_nodes_certificate_read_only() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let topology = tmp.path().join("topology.toml");
    std::fs::write(
        &topology,
        "[cluster]\nname = \"cmp-tls\"\n[auth]\npassword_env = \"CMP_TLS_PASSWORD\"\n[tls]\nenabled = true\n",
    )
    .expect("write topology");
    let out = tmp.path().join("out");
    let rendered = std::process::Command::new(env!("CARGO_BIN_EXE_rcluster"))
        .arg("-f")
        .arg(&topology)
        .args(["render", "--format", "compose", "--show-secrets", "--out"])
        .arg(&out)
        .env("RCLUSTER_STATE_DIR", tmp.path().join("state"))
        .env("CMP_TLS_PASSWORD", "compose-tls-password")
        .output()
        .expect("rcluster runs");
    assert!(rendered.status.success(), "{}", text(&rendered));
    let compose = out.join("docker-compose.yml");
    let yaml = std::fs::read_to_string(&compose).expect("compose file");
    assert!(
        yaml.contains("./cmp-tls-master/tls.key:/etc/redis/tls.key:ro"),
        "{yaml}"
    );
    for node in ["cmp-tls-master", "cmp-tls-sentinel-3"] {
        for file in ["ca.crt", "tls.crt", "tls.key"] {
            let path = out.join(node).join(file);
            let meta = std::fs::metadata(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(meta.permissions().mode() & 0o777, 0o600, "{path:?}");
        }
    }
    let config = std::fs::read_to_string(out.join("cmp-tls-master/redis.conf")).expect("conf");
    assert!(config.contains("\ntls-port 6379\n"), "{config}");
    let check = run(
        "docker-compose",
        &["-f", compose.to_str().expect("utf-8"), "config", "-q"],
    );
    assert!(check.status.success(), "{}", text(&check));
}

/// A TLS compose group comes up: every sentinel, asked over TLS with the rendered CA and
/// certificate, names one master with its replica (replication and monitoring over TLS).
#[test]
fn a_tls_compose_group_replicates_and_is_monitored_over_tls() {
    let _lock = common::docker_lock();
    common::ensure_image();
    let (name, password, subnet) = fresh_project("cmptls");
    let tmp = tempfile::tempdir().expect("tempdir");
    let topology = tmp.path().join("topology.toml");
    std::fs::write(
        &topology,
        format!(
            "[cluster]\nname = \"{name}\"\nsubnet = \"{subnet}\"\n\n\
             [auth]\npassword_env = \"CMP_TLS_PASSWORD\"\n\n\
             [master]\nport = 0\n\n[replicas]\ncount = 1\nport = 0\n\n\
             [sentinel]\ncount = 3\nport = 0\ndown_after_ms = 2000\nfailover_timeout_ms = 5000\n\n[tls]\nenabled = true\nclient_auth = \"yes\"\n"
        ),
    )
    .expect("write topology");
    let out = tmp.path().join("out");
    let rendered = std::process::Command::new(env!("CARGO_BIN_EXE_rcluster"))
        .arg("-f")
        .arg(&topology)
        .args([
            "-q",
            "render",
            "--format",
            "compose",
            "--show-secrets",
            "--out",
        ])
        .arg(&out)
        .env("RCLUSTER_STATE_DIR", tmp.path().join("state"))
        .env("CMP_TLS_PASSWORD", &password)
        .output()
        .expect("rcluster runs");
    assert!(rendered.status.success(), "{}", text(&rendered));
    let compose = out.join("docker-compose.yml");
    let guard = compose_up(&name, &out, &compose);

    let auth = format!("REDISCLI_AUTH={password}");
    let ask = |container: &str, args: &[&str]| {
        let mut full = vec![
            "exec",
            "-e",
            &auth,
            container,
            "redis-cli",
            "--no-auth-warning",
            "--tls",
            "--cacert",
            "/etc/redis/ca.crt",
            "--cert",
            "/etc/redis/tls.crt",
            "--key",
            "/etc/redis/tls.key",
        ];
        full.extend_from_slice(args);
        String::from_utf8_lossy(&run("docker", &full).stdout).into_owned()
    };
    let sentinels: Vec<String> = (1..=3).map(|i| format!("{name}-sentinel-{i}")).collect();
    let started = Instant::now();
    let deadline = started + Duration::from_secs(90);
    loop {
        let views: Vec<String> = sentinels
            .iter()
            .map(|s| ask(s, &["-p", "26379", "SENTINEL", "master", "mymaster"]))
            .collect();
        let summary: Vec<Option<(String, String)>> = views
            .iter()
            .map(|v| {
                let lines: Vec<&str> = v.lines().collect();
                let field = |name: &str| {
                    lines
                        .chunks(2)
                        .find(|pair| pair[0] == name)
                        .and_then(|pair| pair.get(1).map(|v| v.to_string()))
                };
                (field("flags")? == "master").then_some(())?;
                Some((field("ip")?, field("num-slaves")?))
            })
            .collect();
        let agreed = summary[0]
            .as_ref()
            .is_some_and(|(_, replicas)| replicas == "1")
            && summary.iter().all(|v| v == &summary[0]);
        if agreed {
            eprintln!("sentinels agreed over TLS after {:?}", started.elapsed());
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the sentinels never agreed over TLS on a master with its replica: {summary:?}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    // Plaintext is refused.
    let plain = run(
        "docker",
        &[
            "exec",
            "-e",
            &auth,
            &format!("{name}-master"),
            "redis-cli",
            "--no-auth-warning",
            "PING",
        ],
    );
    assert!(
        !String::from_utf8_lossy(&plain.stdout).contains("PONG"),
        "{}",
        text(&plain)
    );
    drop(guard);
}
