//! rcluster against the real Docker engine: a whole group's life (`up`, `status`, `down`),
//! what is inside its containers, Sentinel-aware clients, every failover fault, and the
//! refusals (unhealthy group, foreign container).
//!
//! Every test here is in this one binary so that `common::docker_lock` serialises them:
//! a group is six containers and failovers are timing-sensitive.

mod common;

use std::time::{Duration, Instant};

use common::{Group, connect, docker, docker_lock, docker_ok, inspect, lines};
use serde_json::Value;

const HEALTHY_DEADLINE: Duration = Duration::from_secs(90);

/// `(host, port)` of every node in a `status --json` report that reports `role`.
fn nodes_with_role(status: &Value, role: &str) -> Vec<(String, u16)> {
    status["nodes"]
        .as_array()
        .expect("status has nodes[]")
        .iter()
        .filter(|n| n["role"] == role)
        .map(address)
        .collect()
}

fn address(node: &Value) -> (String, u16) {
    let host = node["host"].as_str().expect("node has a host").to_string();
    let port = node["port"].as_u64().expect("node has a port") as u16;
    (host, port)
}

fn master_address(status: &Value) -> (String, u16) {
    address(&status["master"])
}

/// SET on the master, then WAIT until `replicas` replicas acknowledged it.
fn set_and_wait(master: &(String, u16), password: &str, key: &str, value: &str, replicas: i64) {
    let mut con = connect(&master.0, master.1, password).expect("connect to the master");
    let _: () = redis::cmd("SET")
        .arg(key)
        .arg(value)
        .query(&mut con)
        .expect("SET on the master");
    common::poll(
        &format!("{replicas} replicas to acknowledge `{key}`"),
        Duration::from_secs(30),
        || {
            let acked: i64 = redis::cmd("WAIT")
                .arg(replicas)
                .arg(1000)
                .query(&mut con)
                .expect("WAIT on the master");
            (acked >= replicas).then_some(())
        },
    );
}

fn get(node: &(String, u16), password: &str, key: &str) -> Option<String> {
    let mut con = connect(&node.0, node.1, password)
        .unwrap_or_else(|e| panic!("connect to {}:{}: {e}", node.0, node.1));
    redis::cmd("GET")
        .arg(key)
        .query(&mut con)
        .unwrap_or_else(|e| panic!("GET `{key}` on {}:{}: {e}", node.0, node.1))
}

/// What a Sentinel-aware application does: ask a sentinel where the master is.
fn sentinel_master(sentinel: &(String, u16), password: &str, master_name: &str) -> (String, u16) {
    let mut con = connect(&sentinel.0, sentinel.1, password)
        .unwrap_or_else(|e| panic!("connect to sentinel {}:{}: {e}", sentinel.0, sentinel.1));
    let (host, port): (String, String) = redis::cmd("SENTINEL")
        .arg("get-master-addr-by-name")
        .arg(master_name)
        .query(&mut con)
        .expect("SENTINEL get-master-addr-by-name");
    (host, port.parse().expect("sentinel answers a numeric port"))
}

/// Through every sentinel: each names the master `status` reports, and a SET there works.
fn write_through_sentinels(group: &Group, status: &Value, key: &str) {
    let password = group.password();
    let expected = master_address(status);
    let sentinels = nodes_with_role(status, "sentinel");
    assert_eq!(sentinels.len(), 3, "{status}");
    // `status` already saw them agree; polling only absorbs a sentinel answering late.
    common::poll(
        &format!("every sentinel to name {expected:?}"),
        Duration::from_secs(30),
        || {
            sentinels
                .iter()
                .all(|s| sentinel_master(s, &password, "mymaster") == expected)
                .then_some(())
        },
    );
    let master = sentinel_master(&sentinels[0], &password, "mymaster");
    let mut con = connect(&master.0, master.1, &password).expect("connect to the master");
    let replication: String = redis::cmd("INFO")
        .arg("replication")
        .query(&mut con)
        .expect("INFO replication on the master");
    assert!(
        replication.contains("role:master"),
        "the node the sentinels name is not a master: {replication}"
    );
    let _: () = redis::cmd("SET")
        .arg(key)
        .arg("through-sentinel")
        .query(&mut con)
        .expect("SET on the master the sentinels name");
    assert_eq!(
        get(&master, &password, key).as_deref(),
        Some("through-sentinel")
    );
}

/// Run `failover-test --json ARGS`, require it to pass, and check every run in its report.
fn failover_passes(group: &Group, args: &[&str], runs: usize) -> Value {
    let before = group.wait_healthy(HEALTHY_DEADLINE);
    let mut full = vec!["--json", "failover-test"];
    full.extend_from_slice(args);
    let out = group.rcluster(&full);
    assert_eq!(
        out.code,
        0,
        "failover-test {args:?} failed: {}",
        out.describe()
    );
    let report = out.json();
    assert_eq!(report["passed"], true, "{report}");
    let all = report["runs"].as_array().expect("runs[]");
    assert_eq!(all.len(), runs, "{report}");
    let mut expected_old = before["master"]["node"].clone();
    for run in all {
        assert_eq!(run["passed"], true, "{run}");
        assert_eq!(run["old_master"], expected_old, "{run}");
        assert!(run["new_master"].is_string(), "{run}");
        assert_ne!(run["new_master"], run["old_master"], "{run}");
        assert_eq!(run["writes"]["lost"], 0, "{run}");
        assert!(
            run["writes"]["acked"].as_u64().unwrap_or(0) > 0,
            "no write was acknowledged: {run}"
        );
        assert!(run["timings_ms"]["all_agree"].is_u64(), "{run}");
        expected_old = run["new_master"].clone();
    }
    let after = group.wait_healthy(HEALTHY_DEADLINE);
    assert_eq!(
        after["master"]["node"], expected_old,
        "status does not report the new master: {after}"
    );
    assert_eq!(after["counts"]["master"], 1, "{after}");
    assert_eq!(after["counts"]["replica"], 2, "{after}");
    assert_eq!(after["counts"]["sentinel"], 3, "{after}");
    report
}

#[test]
fn up_status_idempotent_up_persistence_and_down() {
    let _lock = docker_lock();
    let group = Group::new("lifecycle", "fast.toml");

    let first = group.up();
    assert_eq!(first["changed"], true, "{first}");
    let password = group.password();

    let status = group.wait_healthy(HEALTHY_DEADLINE);
    assert_eq!(status["healthy"], true);
    assert_eq!(status["name"], group.name.as_str());
    assert_eq!(status["counts"]["master"], 1, "{status}");
    assert_eq!(status["counts"]["replica"], 2, "{status}");
    assert_eq!(status["counts"]["sentinel"], 3, "{status}");
    assert_eq!(status["master"]["node"], group.container("master").as_str());
    group.rcluster_ok(&["status"]);

    // A write acknowledged by both replicas is readable on each of them.
    let master = master_address(&status);
    set_and_wait(&master, &password, "it:lifecycle", "survives", 2);
    let replicas = nodes_with_role(&status, "replica");
    assert_eq!(replicas.len(), 2, "{status}");
    for replica in &replicas {
        assert_eq!(
            get(replica, &password, "it:lifecycle").as_deref(),
            Some("survives"),
            "replica {replica:?}"
        );
    }

    // `up` again: nothing to do, the very same containers.
    let ids = group.container_ids();
    assert_eq!(ids.len(), 6, "{ids:?}");
    let again = group.up();
    assert_eq!(again["changed"], false, "{again}");
    assert_eq!(
        group.container_ids(),
        ids,
        "the second `up` replaced containers"
    );

    // The password is in the config files only, never in what the engine shows.
    for name in ids.keys() {
        let raw = docker_ok(&["inspect", name]);
        assert!(
            !raw.contains(&password),
            "`docker inspect {name}` shows the password"
        );
    }

    // `down` keeps the data volumes; `up` brings the data back.
    group.rcluster_ok(&["down"]);
    let left = group.labelled();
    assert!(left.containers.is_empty(), "{left:?}");
    assert!(left.networks.is_empty(), "{left:?}");
    assert_eq!(left.volumes.len(), 3, "data volumes must be kept: {left:?}");
    group.up();
    assert_eq!(group.password(), password, "`down` forgot the password");
    let status = group.wait_healthy(HEALTHY_DEADLINE);
    let master = master_address(&status);
    assert_eq!(
        get(&master, &password, "it:lifecycle").as_deref(),
        Some("survives"),
        "the key did not survive `down` then `up`"
    );

    // `down --volumes` removes everything labelled; a second `down` is fine.
    group.rcluster_ok(&["down", "--volumes"]);
    let left = group.labelled();
    assert!(left.is_empty(), "left behind: {left:?}");
    group.rcluster_ok(&["down"]);
    group.rcluster_ok(&["down", "--volumes"]);

    let transcript = group.transcript();
    assert!(
        !transcript.contains(&password),
        "rcluster printed the password:\n{transcript}"
    );
}

#[test]
fn containers_have_private_configs_non_root_processes_and_loopback_ports() {
    let _lock = docker_lock();
    let group = Group::new("hardening", "fast.toml");
    group.up();

    let nodes = ["master", "replica-1", "replica-2"]
        .map(|n| (n, "redis.conf"))
        .into_iter()
        .chain(["sentinel-1", "sentinel-2", "sentinel-3"].map(|n| (n, "sentinel.conf")));
    for (node, config) in nodes {
        let container = group.container(node);

        // The config file holds the password: 0600, owned by the redis user (uid 999).
        let archive = std::process::Command::new("docker")
            .args(["cp", &format!("{container}:/etc/redis"), "-"])
            .output()
            .expect("run docker cp");
        assert!(
            archive.status.success(),
            "docker cp from {container}: {}",
            String::from_utf8_lossy(&archive.stderr)
        );
        let mut tar = tar::Archive::new(archive.stdout.as_slice());
        let mut found = false;
        for entry in tar.entries().expect("docker cp prints a tar archive") {
            let entry = entry.expect("tar entry");
            let path = entry.path().expect("tar path").display().to_string();
            if path.ends_with(&format!("/{config}")) {
                found = true;
                let header = entry.header();
                let mode = header.mode().expect("mode") & 0o7777;
                assert_eq!(mode, 0o600, "{container}:{path} has mode {mode:o}");
                assert_eq!(header.uid().expect("uid"), 999, "{container}:{path}");
            }
        }
        assert!(found, "{container} has no /etc/redis/{config}");

        // No process runs as root.
        let top = docker_ok(&["top", &container, "-o", "uid,pid,args"]);
        let processes = lines(&top);
        assert!(processes.len() >= 2, "docker top {container}: {top}");
        for process in &processes[1..] {
            let uid = process.split_whitespace().next().unwrap_or_default();
            assert!(
                uid != "0" && uid != "root",
                "{container} runs a process as root: {process}"
            );
        }

        // Published ports listen on loopback only.
        let info = inspect(&container);
        let bindings = info["HostConfig"]["PortBindings"]
            .as_object()
            .unwrap_or_else(|| panic!("{container} publishes no port"));
        assert!(!bindings.is_empty(), "{container} publishes no port");
        for (port, list) in bindings {
            for binding in list.as_array().expect("binding list") {
                assert_eq!(binding["HostIp"], "127.0.0.1", "{container} {port}");
            }
        }
        let ports = info["NetworkSettings"]["Ports"]
            .as_object()
            .unwrap_or_else(|| panic!("{container} has no NetworkSettings.Ports"));
        for (port, list) in ports {
            for binding in list.as_array().into_iter().flatten() {
                assert_eq!(binding["HostIp"], "127.0.0.1", "{container} {port}");
                assert!(
                    binding["HostPort"].as_str().is_some_and(|p| !p.is_empty()),
                    "{container} {port} has no host port"
                );
            }
        }
    }
}

/// One group, every fault kind in turn; after each, a Sentinel-aware client on the host
/// finds the new master and writes to it.
#[test]
fn failover_test_passes_for_every_fault_and_sentinel_clients_follow() {
    let _lock = docker_lock();
    let group = Group::new("faults", "fast.toml");
    group.up();
    let status = group.wait_healthy(HEALTHY_DEADLINE);
    write_through_sentinels(&group, &status, "it:sentinel-client:before");

    for fault in ["kill", "stop", "pause", "partition"] {
        let report = failover_passes(&group, &["--fault", fault], 1);
        assert_eq!(report["runs"][0]["fault"], fault, "{report}");
        let status = group.wait_healthy(HEALTHY_DEADLINE);
        write_through_sentinels(&group, &status, &format!("it:sentinel-client:{fault}"));
    }
}

#[test]
fn failover_test_kill_three_runs_in_a_row() {
    let _lock = docker_lock();
    let group = Group::new("kill-runs", "fast.toml");
    group.up();
    let report = failover_passes(&group, &["--fault", "kill", "--runs", "3"], 3);
    assert_eq!(report["summary"]["lost"], 0, "{report}");
}

#[test]
fn failover_test_refuses_an_unhealthy_group_and_touches_nothing() {
    let _lock = docker_lock();
    let group = Group::new("refuse", "fast.toml");
    group.up();
    let before = group.wait_healthy(HEALTHY_DEADLINE);
    let master = group.container("master");
    assert_eq!(before["master"]["node"], master.as_str());

    // Two of three sentinels gone: quorum 2 can no longer be reached.
    docker_ok(&[
        "stop",
        "-t",
        "2",
        &group.container("sentinel-1"),
        &group.container("sentinel-2"),
    ]);
    let (code, status) = group.status();
    assert_eq!(code, 1, "status of a group without two sentinels: {status}");
    assert_eq!(status["healthy"], false, "{status}");

    let started = Instant::now();
    let out = group.rcluster(&["failover-test", "--fault", "kill", "--deadline", "8"]);
    assert_eq!(out.code, 1, "{}", out.describe());
    assert!(
        out.stderr.contains("not healthy"),
        "the refusal does not say the group is not healthy: {}",
        out.describe()
    );
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "the refusal took {:?}",
        started.elapsed()
    );

    // Nothing was injected: the master still runs, unpaused, on the group network, as master.
    let info = inspect(&master);
    assert_eq!(info["State"]["Running"], true, "{}", info["State"]);
    assert_eq!(info["State"]["Paused"], false, "{}", info["State"]);
    assert!(
        info["NetworkSettings"]["Networks"]
            .get(format!("{}-net", group.name))
            .is_some(),
        "the master was disconnected from the group network"
    );
    let password = group.password();
    let mut con = connect(
        before["master"]["host"].as_str().expect("master host"),
        6379,
        &password,
    )
    .expect("connect to the master");
    let info: String = redis::cmd("INFO")
        .arg("replication")
        .query(&mut con)
        .expect("INFO replication");
    assert!(info.contains("role:master"), "{info}");
}

/// With two of three sentinels stopped, quorum 2 is out of reach: the run fails at its
/// deadline, says why, and leaves the group healthy with its original master.
#[test]
fn failover_test_below_quorum_fails_at_the_deadline() {
    let _lock = docker_lock();
    let group = Group::new("quorum", "fast.toml");
    group.up();
    let before = group.wait_healthy(HEALTHY_DEADLINE);

    let out = group.rcluster(&[
        "--json",
        "failover-test",
        "--fault",
        "kill",
        "--stop-sentinels",
        "2",
        "--deadline",
        "8",
    ]);
    assert_eq!(out.code, 1, "{}", out.describe());
    // 8 s to wait for a failover, then the heal; far below the default deadline + rejoin.
    assert!(
        out.elapsed < Duration::from_secs(40),
        "failover-test took {:?} with --deadline 8",
        out.elapsed
    );
    let report = out.json();
    assert_eq!(report["passed"], false, "{report}");
    let run = &report["runs"][0];
    assert!(run["new_master"].is_null(), "{run}");
    let failure = run["failure"].as_str().unwrap_or_default();
    assert!(
        failure.contains("quorum can't be reached"),
        "the failure does not explain the quorum: {failure}"
    );
    assert_eq!(run["writes"]["lost"], 0, "{run}");

    let after = group.wait_healthy(HEALTHY_DEADLINE);
    assert_eq!(after["master"]["node"], before["master"]["node"], "{after}");
    assert_eq!(after["counts"]["sentinel"], 3, "{after}");
}

#[test]
fn up_refuses_a_foreign_container_with_a_group_name() {
    let _lock = docker_lock();
    common::ensure_image();
    let group = Group::new("foreign", "fast.toml");
    let foreign = group.container("master");
    group.adopt_foreign_container(&foreign);
    let id = docker_ok(&["create", "--name", &foreign, &common::image()])
        .trim()
        .to_string();

    let out = group.rcluster(&["up", "--timeout", "30"]);
    assert_eq!(out.code, 2, "{}", out.describe());
    assert!(
        out.stderr.contains("not created by rcluster") && out.stderr.contains(&foreign),
        "the refusal does not name the foreign container: {}",
        out.describe()
    );

    let left = group.labelled();
    assert!(left.is_empty(), "`up` created resources: {left:?}");
    assert!(
        !group
            .state_dir()
            .join(&group.name)
            .join("password")
            .exists(),
        "`up` generated a password although it refused"
    );
    let info = inspect(&foreign);
    assert_eq!(
        info["Id"],
        id.as_str(),
        "the foreign container was replaced"
    );
    assert_eq!(info["State"]["Status"], "created", "{}", info["State"]);
    assert!(
        info["Config"]["Labels"]
            .get(common::PROJECT_LABEL)
            .is_none(),
        "the foreign container was labelled"
    );
    // And it is still there for its owner to remove (the guard does, by name).
    assert_eq!(docker(&["inspect", &foreign]).code, 0);
}
