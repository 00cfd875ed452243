//! `up` after the topology changed: a config change is rolled out node by node without
//! losing the master or a key, and a scale-down removes what the topology no longer has.

mod common;

use std::time::Duration;

use common::{Group, connect, docker, docker_lock, fixture, labelled};

const HEALTHY: Duration = Duration::from_secs(90);

fn node_names(status: &serde_json::Value) -> Vec<String> {
    status["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .map(|n| n["name"].as_str().expect("name").to_string())
        .collect()
}

#[test]
fn a_changed_config_is_rolled_out_without_losing_the_master_or_a_key() {
    let _lock = docker_lock();
    let mut group = Group::new("rollout", "fast.toml");
    group.up();
    let before = group.wait_healthy(HEALTHY);
    let password = group.password();
    let master = before["master"]["node"]
        .as_str()
        .expect("master")
        .to_string();
    let (host, port) = (
        before["master"]["host"].as_str().expect("host").to_string(),
        before["master"]["port"].as_u64().expect("port") as u16,
    );
    let mut con = connect(&host, port, &password).expect("connect to the master");
    let _: () = redis::cmd("SET")
        .arg("rollout-key")
        .arg("kept")
        .query(&mut con)
        .expect("SET");
    let acked: i64 = redis::cmd("WAIT")
        .arg(2)
        .arg(5000)
        .query(&mut con)
        .expect("WAIT");
    assert_eq!(acked, 2);

    group.topology = fixture("fast-maxmemory.toml");
    let plan = group.rcluster_ok(&["up", "--dry-run"]);
    assert!(
        plan.stdout
            .contains(&format!("fail over away from `{master}`")),
        "{}",
        plan.describe()
    );
    group.up();
    let after = group.wait_healthy(HEALTHY);
    assert_ne!(
        after["master"]["node"],
        master.as_str(),
        "the master was recreated in place: {after}"
    );

    // Every data node runs the new config, and the key is on the (new) master.
    for node in after["nodes"].as_array().expect("nodes") {
        if node["created_as"] == "sentinel" {
            continue;
        }
        let mut con = connect(
            node["host"].as_str().expect("host"),
            node["port"].as_u64().expect("port") as u16,
            &password,
        )
        .expect("connect");
        let maxmemory: Vec<String> = redis::cmd("CONFIG")
            .arg("GET")
            .arg("maxmemory")
            .query(&mut con)
            .expect("CONFIG GET");
        assert_eq!(maxmemory[1], "268435456", "{}: {maxmemory:?}", node["name"]);
    }
    let (host, port) = (
        after["master"]["host"].as_str().expect("host").to_string(),
        after["master"]["port"].as_u64().expect("port") as u16,
    );
    let mut con = connect(&host, port, &password).expect("connect to the new master");
    let value: Option<String> = redis::cmd("GET")
        .arg("rollout-key")
        .query(&mut con)
        .expect("GET");
    assert_eq!(value.as_deref(), Some("kept"));

    // And a second `up` with the same file has nothing left to do.
    let again = group.rcluster_ok(&["up", "--dry-run"]);
    assert!(
        again.stdout.starts_with("nothing to do"),
        "{}",
        again.describe()
    );
}

#[test]
fn a_scale_down_removes_the_extra_nodes_and_keeps_their_data() {
    let _lock = docker_lock();
    let mut group = Group::new("scale", "fast-scaled-up.toml");
    group.up();
    let big = group.wait_healthy(HEALTHY);
    assert_eq!(big["counts"]["replica"], 3, "{big}");
    assert_eq!(big["counts"]["sentinel"], 4, "{big}");

    group.topology = fixture("fast.toml");
    let plan = group.rcluster_ok(&["up", "--dry-run"]);
    let replica_3 = group.container("replica-3");
    let sentinel_4 = group.container("sentinel-4");
    assert!(
        plan.stdout.contains(&format!("remove `{replica_3}`")),
        "{}",
        plan.describe()
    );
    assert!(
        plan.stdout.contains(&format!("remove `{sentinel_4}`")),
        "{}",
        plan.describe()
    );
    group.up();
    let small = group.wait_healthy(HEALTHY);
    assert_eq!(small["counts"]["master"], 1, "{small}");
    assert_eq!(small["counts"]["replica"], 2, "{small}");
    assert_eq!(small["counts"]["sentinel"], 3, "{small}");
    let names = node_names(&small);
    assert!(
        !names.contains(&replica_3) && !names.contains(&sentinel_4),
        "{names:?}"
    );
    assert_ne!(
        docker(&["inspect", &replica_3]).code,
        0,
        "{replica_3} is still there"
    );
    assert_ne!(
        docker(&["inspect", &sentinel_4]).code,
        0,
        "{sentinel_4} is still there"
    );
    // Every sentinel forgot the removed nodes: 2 replicas and 2 other sentinels each.
    for node in small["nodes"].as_array().expect("nodes") {
        if node["created_as"] == "sentinel" {
            assert_eq!(node["replicas"], 2, "{node}");
            assert_eq!(node["sentinels"], 2, "{node}");
        }
    }
    // The removed replica's data stays until `down --volumes`.
    let volume = format!("{replica_3}-data");
    assert_eq!(
        docker(&["volume", "inspect", &volume]).code,
        0,
        "{volume} was deleted"
    );
    group.rcluster_ok(&["down", "--volumes"]);
    assert!(labelled(&group.name).is_empty());
}
