//! Reliability and security of rcluster against the real Docker engine: refusals before
//! anything is created (bad topology, port in use, foreign network or volume), interruptions
//! (Ctrl-C during `up`, a node that cannot start), an unreachable engine, a matrix of faults
//! injected by hand and healed by `up`, two groups side by side, where the password must
//! never appear, and data that survives restarts but not `down --volumes`.
//!
//! Every Docker-backed test holds `common::docker_lock`: a group is six containers and the
//! CI machine has two cores.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use common::{Group, connect, docker, docker_lock, docker_ok, lines, poll};
use serde_json::Value;

const HEALTHY_DEADLINE: Duration = Duration::from_secs(90);
/// Long enough for detection (down_after 1 s), the election and the switch on a busy machine.
const FAILOVER_DEADLINE: Duration = Duration::from_secs(60);

// ---- helpers ----

/// Names of containers, networks and volumes whose name starts with the group's name, as
/// the engine lists them whatever their labels: what a refused `up` must not have created.
fn named_like(group: &Group) -> common::Labelled {
    let prefix = format!("{}-", group.name);
    let keep = |text: String| -> Vec<String> {
        lines(&text)
            .into_iter()
            .filter(|n| n.starts_with(&prefix))
            .collect()
    };
    common::Labelled {
        containers: keep(docker_ok(&["ps", "-a", "--format", "{{.Names}}"])),
        networks: keep(docker_ok(&["network", "ls", "--format", "{{.Name}}"])),
        volumes: keep(docker_ok(&["volume", "ls", "--format", "{{.Name}}"])),
    }
}

/// Networks and volumes a test created by name, without rcluster's label: removed on drop.
#[derive(Default)]
struct Foreign {
    networks: Vec<String>,
    volumes: Vec<String>,
}

impl Drop for Foreign {
    fn drop(&mut self) {
        let quiet = |args: &[&str]| {
            let _ = Command::new("docker")
                .args(args)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        };
        for network in &self.networks {
            quiet(&["network", "rm", network]);
        }
        for volume in &self.volumes {
            quiet(&["volume", "rm", "-f", volume]);
        }
    }
}

/// `fast.toml` with some lines replaced, written into `dir`.
fn fast_topology_with(dir: &Path, replace: &[(&str, &str)]) -> PathBuf {
    let mut text = std::fs::read_to_string(common::fixture("fast.toml")).expect("read fast.toml");
    for (from, to) in replace {
        assert!(text.contains(from), "fast.toml has no `{from}`");
        text = text.replacen(from, to, 1);
    }
    let path = dir.join("topology.toml");
    std::fs::write(&path, text).expect("write the topology");
    path
}

fn address(node: &Value) -> (String, u16) {
    let host = node["host"].as_str().expect("node has a host").to_string();
    let port = node["port"].as_u64().expect("node has a port") as u16;
    (host, port)
}

/// The status entry of the node whose container is `container`.
fn node_entry<'a>(status: &'a Value, container: &str) -> &'a Value {
    status["nodes"]
        .as_array()
        .expect("status has nodes[]")
        .iter()
        .find(|n| n["name"] == container)
        .unwrap_or_else(|| panic!("status has no node `{container}`: {status}"))
}

fn containers_with_role(status: &Value, role: &str) -> Vec<String> {
    status["nodes"]
        .as_array()
        .expect("status has nodes[]")
        .iter()
        .filter(|n| n["role"] == role)
        .map(|n| n["name"].as_str().expect("node name").to_string())
        .collect()
}

/// SET `key` on the master `status` reports, then `WAIT 2 2000` until both replicas have it.
fn set_acknowledged_by_two(status: &Value, password: &str, key: &str, value: &str) {
    let (host, port) = address(&status["master"]);
    let mut con = connect(&host, port, password).expect("connect to the master");
    let _: () = redis::cmd("SET")
        .arg(key)
        .arg(value)
        .query(&mut con)
        .expect("SET on the master");
    poll(
        &format!("both replicas to acknowledge `{key}`"),
        Duration::from_secs(30),
        || {
            let acked: i64 = redis::cmd("WAIT")
                .arg(2)
                .arg(2000)
                .query(&mut con)
                .expect("WAIT on the master");
            (acked == 2).then_some(())
        },
    );
}

/// GET on the master `status` reports.
fn get_on_master(status: &Value, password: &str, key: &str) -> Option<String> {
    let (host, port) = address(&status["master"]);
    let mut con = connect(&host, port, password)
        .unwrap_or_else(|e| panic!("connect to the master {host}:{port}: {e}"));
    redis::cmd("GET")
        .arg(key)
        .query(&mut con)
        .unwrap_or_else(|e| panic!("GET `{key}` on {host}:{port}: {e}"))
}

/// Poll `status --json` until `check` accepts a report; the report.
fn wait_status(
    group: &Group,
    what: &str,
    deadline: Duration,
    mut check: impl FnMut(i32, &Value) -> bool,
) -> Value {
    let start = Instant::now();
    loop {
        let (code, status) = group.status();
        if check(code, &status) {
            return status;
        }
        assert!(
            start.elapsed() < deadline,
            "`{}`: timed out after {deadline:?} waiting for {what}; last status (exit {code}): {status}",
            group.name
        );
        thread::sleep(Duration::from_millis(250));
    }
}

fn problems_name(status: &Value, container: &str) -> bool {
    status["problems"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|p| p["node"] == container || p["reason"].as_str().unwrap_or("").contains(container))
}

/// `(path, mode, uid)` of `/etc/redis` and everything in it, in a container.
fn config_files(container: &str) -> Vec<(String, u32, u64)> {
    let archive = Command::new("docker")
        .args(["cp", &format!("{container}:/etc/redis"), "-"])
        .output()
        .expect("run docker cp");
    assert!(
        archive.status.success(),
        "docker cp from {container}: {}",
        String::from_utf8_lossy(&archive.stderr)
    );
    let mut files = Vec::new();
    let mut tar = tar::Archive::new(archive.stdout.as_slice());
    for entry in tar.entries().expect("docker cp prints a tar archive") {
        let entry = entry.expect("tar entry");
        let path = entry.path().expect("tar path").display().to_string();
        let header = entry.header();
        files.push((
            path,
            header.mode().expect("mode") & 0o7777,
            header.uid().expect("uid"),
        ));
    }
    files
}

// ---- 1. a bad topology ----

#[test]
fn up_refuses_a_bad_topology_and_creates_nothing() {
    let _lock = docker_lock();
    let group = Group::new("badtopo", "reliability/bad-quorum.toml");
    let out = group.rcluster(&["up", "--timeout", "30"]);
    assert_eq!(out.code, 2, "{}", out.describe());
    assert!(
        out.stderr
            .contains("bad-quorum.toml:11:1: `sentinel.quorum` is 5"),
        "no file:line:column and key in the message: {}",
        out.describe()
    );
    assert!(group.labelled().is_empty(), "{:?}", group.labelled());
    assert!(named_like(&group).is_empty(), "{:?}", named_like(&group));
    assert!(
        !group.state_dir().join(&group.name).exists(),
        "a refused `up` wrote state"
    );
}

// ---- 2. conflicts detected before anything is created ----

#[test]
fn conflicts_detected_before_anything_is_created() {
    let _lock = docker_lock();
    common::ensure_image();
    let mut group = Group::new("conflicts", "fast.toml");
    let mut foreign = Foreign::default();
    let nothing_created = |group: &Group, case: &str| {
        let left = group.labelled();
        assert!(left.is_empty(), "{case}: `up` created {left:?}");
        assert!(
            !group
                .state_dir()
                .join(&group.name)
                .join("password")
                .exists(),
            "{case}: `up` generated a password although it refused"
        );
    };

    // A host port another process holds.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a port");
    let port = listener.local_addr().expect("local addr").port();
    let topology_dir = tempfile::tempdir().expect("temp dir");
    let fast = group.topology.clone();
    group.topology = fast_topology_with(
        topology_dir.path(),
        &[("[master]\nport = 0", &format!("[master]\nport = {port}"))],
    );
    let out = group.rcluster(&["up", "--timeout", "30"]);
    assert_eq!(out.code, 2, "port in use: {}", out.describe());
    assert!(
        out.stderr.contains(&port.to_string()) && out.stderr.contains("in use"),
        "the refusal does not name port {port}: {}",
        out.describe()
    );
    nothing_created(&group, "port in use");
    assert!(named_like(&group).is_empty(), "{:?}", named_like(&group));
    drop(listener);
    group.topology = fast;

    // A network with the group's network name that rcluster did not create.
    let network = format!("{}-net", group.name);
    foreign.networks.push(network.clone());
    let network_id = docker_ok(&["network", "create", &network])
        .trim()
        .to_string();
    let out = group.rcluster(&["up", "--timeout", "30"]);
    assert_eq!(out.code, 2, "foreign network: {}", out.describe());
    assert!(
        out.stderr.contains(&network) && out.stderr.contains("not created by rcluster"),
        "the refusal does not name the foreign network: {}",
        out.describe()
    );
    nothing_created(&group, "foreign network");
    let info: Value =
        serde_json::from_str(&docker_ok(&["network", "inspect", &network])).expect("JSON");
    assert_eq!(
        info[0]["Id"],
        network_id.as_str(),
        "the network was replaced"
    );
    assert!(
        info[0]["Labels"].get(common::PROJECT_LABEL).is_none(),
        "the foreign network was labelled: {}",
        info[0]
    );
    docker_ok(&["network", "rm", &network]);

    // A volume with a node's data volume name, without rcluster's labels.
    let volume = format!("{}-master-data", group.name);
    foreign.volumes.push(volume.clone());
    docker_ok(&["volume", "create", &volume]);
    let out = group.rcluster(&["up", "--timeout", "30"]);
    assert_eq!(out.code, 2, "foreign volume: {}", out.describe());
    assert!(
        out.stderr.contains(&volume) && out.stderr.contains("not created by rcluster"),
        "the refusal does not name the foreign volume: {}",
        out.describe()
    );
    nothing_created(&group, "foreign volume");
    let info: Value =
        serde_json::from_str(&docker_ok(&["volume", "inspect", &volume])).expect("JSON");
    assert!(
        info[0]["Labels"]
            .as_object()
            .is_none_or(|l| !l.contains_key(common::PROJECT_LABEL)),
        "the foreign volume was labelled: {}",
        info[0]
    );
    let named = named_like(&group);
    assert!(
        named.containers.is_empty() && named.networks.is_empty(),
        "{named:?}"
    );
    assert_eq!(named.volumes, vec![volume], "{named:?}");
}

// ---- 3. interruptions ----

#[test]
fn interruptions_sigint_during_up_exits_130_and_up_again_finishes() {
    let _lock = docker_lock();
    common::ensure_image();
    let group = Group::new("sigint", "fast.toml");

    let mut child = Command::new(env!("CARGO_BIN_EXE_rcluster"))
        .arg("-f")
        .arg(&group.topology)
        .arg("--name")
        .arg(&group.name)
        .args(["up", "--timeout", "120"])
        .env("RCLUSTER_STATE_DIR", group.state_dir())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start rcluster up");
    let stderr = child.stderr.take().expect("piped stderr");
    let (tx, rx) = mpsc::channel::<String>();
    let reader = thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });

    let mut seen = String::new();
    let start = Instant::now();
    loop {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(line) => {
                seen.push_str(&line);
                seen.push('\n');
                if line.contains("created") {
                    break;
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let _ = child.wait();
                panic!("`up` ended before creating a node:\n{seen}");
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        if start.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("`up` printed no `created` line within 120 s:\n{seen}");
        }
    }
    let pid = libc::pid_t::try_from(child.id()).expect("pid fits pid_t");
    // SAFETY: `pid` is our own child, which has not been waited for yet.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0, "kill(SIGINT)");
    let interrupted = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for rcluster up") {
            break status;
        }
        if interrupted.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("`up` did not stop within 30 s of SIGINT:\n{seen}");
        }
        thread::sleep(Duration::from_millis(20));
    };
    let _ = reader.join();
    seen.extend(rx.try_iter().map(|l| l + "\n"));
    assert_eq!(status.code(), Some(130), "exit after SIGINT:\n{seen}");
    assert!(
        seen.contains("interrupted"),
        "stderr does not say `interrupted`:\n{seen}"
    );
    assert!(
        interrupted.elapsed() < Duration::from_secs(10),
        "`up` took {:?} to stop after SIGINT",
        interrupted.elapsed()
    );

    // Whatever the interruption left, `up` finishes it.
    group.up();
    let status = group.wait_healthy(HEALTHY_DEADLINE);
    assert_eq!(status["counts"]["replica"], 2, "{status}");
    assert_eq!(status["counts"]["sentinel"], 3, "{status}");
}

#[test]
fn interruptions_a_node_that_fails_to_start_fails_up_with_its_log() {
    let _lock = docker_lock();
    common::ensure_image();
    let group = Group::new("nodefail", "reliability/node-fails.toml");
    let out = group.rcluster(&["up", "--timeout", "60"]);
    assert_ne!(out.code, 0, "{}", out.describe());
    assert_ne!(
        out.code,
        2,
        "a node failing is not a usage error: {}",
        out.describe()
    );
    assert_eq!(out.code, 1, "{}", out.describe());
    assert!(
        out.elapsed < Duration::from_secs(40),
        "`up` took {:?} to see a node fail",
        out.elapsed
    );
    let nodes = ["master", "replica-1", "replica-2"].map(|n| group.container(n));
    assert!(
        nodes.iter().any(|n| out.stderr.contains(n.as_str())),
        "the failure names no data node: {}",
        out.describe()
    );
    assert!(
        out.stderr.contains("maxmemory-policy") || out.stderr.contains("Bad directive"),
        "the failure does not show the node's log: {}",
        out.describe()
    );

    // Everything created with the group's names carries the label.
    let labelled_names = |kind: &[&str], format: &str| -> Vec<String> {
        let filter = format!("label={}={}", common::PROJECT_LABEL, group.name);
        let mut args = kind.to_vec();
        args.extend(["--filter", &filter, "--format", format]);
        let mut names = lines(&docker_ok(&args));
        names.sort();
        names
    };
    let named = named_like(&group);
    let mut containers = named.containers.clone();
    containers.sort();
    assert!(!containers.is_empty(), "`up` created no container");
    assert_eq!(
        labelled_names(&["ps", "-a"], "{{.Names}}"),
        containers,
        "unlabelled containers"
    );
    let mut networks = named.networks.clone();
    networks.sort();
    assert_eq!(
        labelled_names(&["network", "ls"], "{{.Name}}"),
        networks,
        "unlabelled networks"
    );
    let mut volumes = named.volumes.clone();
    volumes.sort();
    assert_eq!(
        labelled_names(&["volume", "ls"], "{{.Name}}"),
        volumes,
        "unlabelled volumes"
    );

    group.rcluster_ok(&["down", "--volumes"]);
    let left = named_like(&group);
    assert!(left.is_empty(), "`down --volumes` left {left:?}");
}

// ---- 4. engine trouble ----

#[test]
fn engine_trouble_unreachable_socket_exits_3() {
    let state = tempfile::tempdir().expect("temp dir");
    let name = common::unique_name("noengine");
    for args in [
        &["up", "--timeout", "10"][..],
        &["status"][..],
        &["--json", "status"][..],
        &["down"][..],
        &["down", "--volumes"][..],
    ] {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_rcluster"));
        cmd.arg("-f")
            .arg(common::fixture("fast.toml"))
            .arg("--name")
            .arg(&name)
            .args(args)
            .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
            .env("RCLUSTER_STATE_DIR", state.path());
        let out = common::run(cmd, Duration::from_secs(60));
        assert_eq!(out.code, 3, "{args:?}: {}", out.describe());
        assert!(
            out.stderr.contains("/nonexistent/docker.sock"),
            "{args:?} does not name the socket: {}",
            out.describe()
        );
        assert!(
            out.elapsed < Duration::from_secs(30),
            "{args:?} took {:?}",
            out.elapsed
        );
    }
    assert!(
        !state.path().join(&name).exists(),
        "`up` wrote state without an engine"
    );
}

// ---- 5. fault matrix ----

#[derive(Debug, Clone, Copy, PartialEq)]
enum Fault {
    KillReplica,
    KillSentinel,
    KillMaster,
    PauseMaster,
    PartitionMaster,
    KillTwoSentinels,
}

/// One group, faults injected by hand one after another; after each, `status` tells the
/// truth, `up` heals the group, and every key acknowledged by both replicas is still there.
#[test]
fn fault_matrix_status_tells_the_truth_and_up_heals() {
    let _lock = docker_lock();
    let group = Group::new("faultmatrix", "fast.toml");
    group.up();
    let password = group.password();
    let network = format!("{}-net", group.name);
    let mut keys: Vec<String> = Vec::new();

    for fault in [
        Fault::KillReplica,
        Fault::KillSentinel,
        Fault::KillMaster,
        Fault::PauseMaster,
        Fault::PartitionMaster,
        Fault::KillTwoSentinels,
    ] {
        let before = group.wait_healthy(HEALTHY_DEADLINE);
        let key = format!("it:fault:{fault:?}");
        set_acknowledged_by_two(&before, &password, &key, "acknowledged");
        keys.push(key);
        let master = before["master"]["node"]
            .as_str()
            .expect("master node")
            .to_string();
        let replica = containers_with_role(&before, "replica")
            .into_iter()
            .next()
            .expect("a replica");
        let sentinels = containers_with_role(&before, "sentinel");
        assert_eq!(sentinels.len(), 3, "{before}");

        let targets: Vec<String> = match fault {
            Fault::KillReplica => vec![replica],
            Fault::KillSentinel => vec![sentinels[0].clone()],
            Fault::KillMaster | Fault::PauseMaster | Fault::PartitionMaster => {
                vec![master.clone()]
            }
            Fault::KillTwoSentinels => sentinels[..2].to_vec(),
        };
        match fault {
            Fault::PauseMaster => {
                docker_ok(&["pause", &master]);
            }
            Fault::PartitionMaster => {
                docker_ok(&["network", "disconnect", "-f", &network, &master]);
            }
            _ => {
                let mut args = vec!["kill"];
                args.extend(targets.iter().map(String::as_str));
                docker_ok(&args);
            }
        }

        // `status` tells the truth: unhealthy, and the faulted node shows it.
        let expected_state = match fault {
            Fault::PauseMaster => "paused",
            Fault::PartitionMaster => "running",
            _ => "exited",
        };
        let faulted = wait_status(
            &group,
            &format!("status to report {fault:?} on {targets:?}"),
            FAILOVER_DEADLINE,
            |code, status| {
                code == 1
                    && status["healthy"] == false
                    && targets.iter().all(|t| {
                        let node = node_entry(status, t);
                        node["state"] == expected_state
                            && (expected_state != "running" || problems_name(status, t))
                    })
            },
        );
        match fault {
            Fault::KillMaster | Fault::PauseMaster | Fault::PartitionMaster => {
                // The sentinels fail over; status names the new master.
                let moved = wait_status(
                    &group,
                    &format!("a new master after {fault:?}"),
                    FAILOVER_DEADLINE,
                    |_, status| {
                        status["master"]["node"]
                            .as_str()
                            .is_some_and(|m| m != master)
                            && status["sentinels_agree"] == true
                    },
                );
                assert_eq!(moved["healthy"], false, "{fault:?}: {moved}");
            }
            Fault::KillTwoSentinels => {
                let impossible = |status: &Value| {
                    status["problems"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .any(|p| {
                            p["reason"]
                                .as_str()
                                .is_some_and(|r| r.contains("failover is impossible"))
                        })
                };
                let status = wait_status(
                    &group,
                    "status to say a failover is impossible",
                    FAILOVER_DEADLINE,
                    |code, status| code == 1 && impossible(status),
                );
                assert_eq!(status["master"]["node"], master.as_str(), "{status}");
            }
            _ => assert_eq!(faulted["master"]["node"], master.as_str(), "{faulted}"),
        }

        // Heal: `up` alone restarts, unpauses, and puts a partitioned node back on the
        // network at its fixed address.
        let healed = group.up();
        assert_eq!(healed["healthy"], true, "{fault:?}: {healed}");
        let after = group.wait_healthy(HEALTHY_DEADLINE);
        for target in &targets {
            assert_eq!(node_entry(&after, target)["state"], "running", "{after}");
        }
        assert_eq!(after["counts"]["master"], 1, "{after}");
        assert_eq!(after["counts"]["replica"], 2, "{after}");
        assert_eq!(after["counts"]["sentinel"], 3, "{after}");
        if fault == Fault::KillTwoSentinels {
            assert_eq!(
                after["master"]["node"],
                master.as_str(),
                "a failover happened below the quorum: {after}"
            );
        }
        for key in &keys {
            assert_eq!(
                get_on_master(&after, &password, key).as_deref(),
                Some("acknowledged"),
                "after {fault:?}: `{key}` is gone from the master"
            );
        }
    }
}

// ---- 6. side by side ----

#[test]
fn side_by_side_groups_are_independent() {
    let _lock = docker_lock();
    let first = Group::new("side-a", "fast.toml");
    let second = Group::new("side-b", "fast.toml");
    first.up();
    second.up();
    let first_status = first.wait_healthy(HEALTHY_DEADLINE);
    let second_status = second.wait_healthy(HEALTHY_DEADLINE);
    assert_ne!(
        first_status["subnet"], second_status["subnet"],
        "two groups on one subnet"
    );
    let second_ids = second.container_ids();
    assert_eq!(second_ids.len(), 6, "{second_ids:?}");
    let second_volumes = second.labelled().volumes;

    first.rcluster_ok(&["down", "--volumes"]);
    assert!(first.labelled().is_empty(), "{:?}", first.labelled());

    second.rcluster_ok(&["status"]);
    second.wait_healthy(HEALTHY_DEADLINE);
    assert_eq!(
        second.container_ids(),
        second_ids,
        "removing one group touched the other's containers"
    );
    assert_eq!(second.labelled().volumes, second_volumes);
    for id in second_ids.values() {
        let info = common::inspect(id);
        assert_eq!(info["State"]["Running"], true, "{}", info["State"]);
    }
}

// ---- 7. secrets ----

/// The password is nowhere but the config files: not in what the engine shows of
/// containers, networks and volumes, not in anything rcluster prints (including errors).
#[test]
fn secrets_never_shown_by_engine_or_rcluster() {
    let _lock = docker_lock();
    let group = Group::new("secrets", "fast.toml");
    group.up();
    let password = group.password();
    assert!(password.len() >= 32, "a short generated password");
    group.rcluster_ok(&["up"]);
    group.rcluster_ok(&["status"]);
    group.rcluster_ok(&["--json", "status"]);
    let test = group.rcluster(&["--json", "failover-test", "--fault", "kill"]);
    assert_eq!(test.code, 0, "{}", test.describe());
    group.wait_healthy(HEALTHY_DEADLINE);
    // The failover made Sentinel rewrite every config file (sentinel.conf on the sentinels,
    // `CONFIG REWRITE` after `REPLICAOF` on the data nodes), and Redis gives the rewritten
    // file mode `0644 & ~umask`: the 0700 directory owned by the redis user keeps it private.
    for node in [
        "master",
        "replica-1",
        "replica-2",
        "sentinel-1",
        "sentinel-2",
        "sentinel-3",
    ] {
        let container = group.container(node);
        let files = config_files(&container);
        assert!(files.len() >= 2, "{container}:/etc/redis: {files:?}");
        for (path, mode, uid) in files {
            let is_dir = path.trim_end_matches('/') == "redis";
            assert_eq!(
                uid, 999,
                "after a failover {container}:{path} is owned by {uid}"
            );
            if is_dir {
                assert_eq!(
                    mode, 0o700,
                    "after a failover {container}:/etc/redis has mode {mode:o}"
                );
            } else {
                assert_eq!(
                    mode & 0o022,
                    0,
                    "after a failover {container}:{path} has mode {mode:o}"
                );
            }
        }
    }
    let logs = group.rcluster_ok(&["logs", "--tail", "500"]);
    assert!(
        logs.stdout.contains(&group.container("sentinel-1")),
        "logs are not prefixed with the node: {}",
        logs.describe()
    );
    let got = group.rcluster_ok(&["cli", "--", "PING"]);
    assert!(got.stdout.contains("PONG"), "{}", got.describe());
    let missing = group.rcluster(&["cli", "nosuchnode", "--", "PING"]);
    assert_eq!(missing.code, 2, "{}", missing.describe());
    assert!(
        missing.stderr.contains("nosuchnode"),
        "{}",
        missing.describe()
    );

    let leaks = |what: &str, text: &str| {
        assert!(!text.contains(&password), "{what} shows the password");
    };
    let resources = group.labelled();
    for container in &resources.containers {
        leaks(
            &format!("docker inspect {container}"),
            &docker_ok(&["inspect", container]),
        );
    }
    for network in &resources.networks {
        leaks(
            &format!("docker network inspect {network}"),
            &docker_ok(&["network", "inspect", network]),
        );
    }
    assert_eq!(resources.volumes.len(), 3, "{resources:?}");
    for volume in &resources.volumes {
        leaks(
            &format!("docker volume inspect {volume}"),
            &docker_ok(&["volume", "inspect", volume]),
        );
    }

    group.rcluster_ok(&["down"]);
    let down_again = group.rcluster(&["status"]);
    assert_eq!(down_again.code, 1, "{}", down_again.describe());
    group.rcluster_ok(&["down", "--volumes"]);
    leaks("rcluster's output", &group.transcript());
}

// ---- 8. persistence ----

/// AOF keeps acknowledged keys across a restart of every data node at once; `down
/// --volumes` really forgets them, and the password.
#[test]
fn persistence_survives_restart_of_every_data_node_not_down_volumes() {
    let _lock = docker_lock();
    let group = Group::new("persist", "fast.toml");
    group.up();
    let password = group.password();
    let status = group.wait_healthy(HEALTHY_DEADLINE);
    set_acknowledged_by_two(&status, &password, "it:persist", "kept");

    let data: Vec<String> = ["master", "replica-1", "replica-2"]
        .iter()
        .map(|n| group.container(n))
        .collect();
    let mut args = vec!["restart", "-t", "1"];
    args.extend(data.iter().map(String::as_str));
    docker_ok(&args);
    group.up();
    let status = group.wait_healthy(HEALTHY_DEADLINE);
    assert_eq!(
        get_on_master(&status, &password, "it:persist").as_deref(),
        Some("kept"),
        "the key did not survive a restart of every data node: {status}"
    );

    group.rcluster_ok(&["down", "--volumes"]);
    assert!(group.labelled().is_empty(), "{:?}", group.labelled());
    assert!(
        docker(&["volume", "inspect", &format!("{}-master-data", group.name)]).code != 0,
        "the master's volume is still there"
    );
    group.up();
    let fresh = group.password();
    assert_ne!(fresh, password, "`down --volumes` kept the password");
    let status = group.wait_healthy(HEALTHY_DEADLINE);
    assert_eq!(
        get_on_master(&status, &fresh, "it:persist"),
        None,
        "the key survived `down --volumes`"
    );
}
