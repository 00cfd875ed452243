//! Everyday commands against a real group: `cli` follows the master through a failover,
//! `logs --tail` shows a node's last lines, `status --watch` redraws and stops on Ctrl-C.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Group, docker_lock, poll};

#[test]
fn cli_follows_the_master_and_logs_tail_a_node() {
    let _lock = docker_lock();
    let group = Group::new("everyday", "fast.toml");
    group.up();

    let set = group.rcluster_ok(&["cli", "--", "SET", "everyday-key", "before"]);
    assert_eq!(set.stdout.trim(), "OK", "{}", set.describe());
    let get = group.rcluster_ok(&["cli", "--", "GET", "everyday-key"]);
    assert_eq!(get.stdout.trim(), "before");

    // A named node: the replica has the key too (after replication catches up).
    poll("replica-1 to have the key", Duration::from_secs(30), || {
        let out = group.rcluster(&["cli", "replica-1", "--", "GET", "everyday-key"]);
        (out.code == 0 && out.stdout.trim() == "before").then_some(())
    });

    let old = group.status().1["master"]["node"]
        .as_str()
        .expect("a master")
        .to_string();
    let failover = group.rcluster(&[
        "--json",
        "failover-test",
        "--fault",
        "kill",
        "--writers",
        "1",
    ]);
    assert_eq!(failover.code, 0, "{}", failover.describe());
    let new = group.wait_healthy(Duration::from_secs(60))["master"]["node"]
        .as_str()
        .expect("a master")
        .to_string();
    assert_ne!(old, new);

    // `cli` with no node asks the sentinels: the write lands on the new master.
    let set = group.rcluster_ok(&["cli", "--", "SET", "everyday-key", "after"]);
    assert_eq!(set.stdout.trim(), "OK", "{}", set.describe());
    let get = group.rcluster_ok(&["cli", "--", "GET", "everyday-key"]);
    assert_eq!(get.stdout.trim(), "after");
    let role = group.rcluster_ok(&["cli", "--", "ROLE"]);
    assert!(role.stdout.starts_with("master"), "{}", role.describe());
    let on_new = group.rcluster_ok(&["cli", &new, "--", "GET", "everyday-key"]);
    assert_eq!(on_new.stdout.trim(), "after");

    // An unknown node is a usage error naming the nodes there are.
    let bad = group.rcluster(&["cli", "nosuchnode", "--", "PING"]);
    assert_eq!(bad.code, 2, "{}", bad.describe());
    assert!(bad.stderr.contains("replica-1"), "{}", bad.describe());

    // logs --tail 5 of one node: five lines, each prefixed with the node's container name.
    let logs = group.rcluster_ok(&["logs", "sentinel-1", "--tail", "5"]);
    let lines: Vec<&str> = logs.stdout.lines().collect();
    assert_eq!(lines.len(), 5, "{}", logs.describe());
    let prefix = format!("{} | ", group.container("sentinel-1"));
    assert!(
        lines.iter().all(|l| l.starts_with(&prefix)),
        "{}",
        logs.stdout
    );

    // Nothing printed the password.
    assert!(!group.transcript().contains(&group.password()));
}

#[test]
fn status_watch_redraws_until_interrupted() {
    let _lock = docker_lock();
    let group = Group::new("watch", "fast.toml");
    group.up();
    let mut child = Command::new(env!("CARGO_BIN_EXE_rcluster"))
        .args(["-f"])
        .arg(&group.topology)
        .args(["--name", &group.name, "status", "--watch"])
        .env("RCLUSTER_STATE_DIR", group.state_dir())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start status --watch");
    let stdout = child.stdout.take().expect("piped stdout");
    let (lines, received) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in std::io::BufRead::lines(std::io::BufReader::new(stdout)).map_while(Result::ok) {
            let _ = lines.send(line);
        }
    });
    // Wait (by condition, generously) for two full redraws.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut text = String::new();
    while text.matches("group `").count() < 2 {
        let left = deadline.saturating_duration_since(Instant::now());
        match received.recv_timeout(left) {
            Ok(line) => {
                text.push_str(&line);
                text.push('\n');
            }
            Err(_) => {
                let _ = child.kill();
                panic!("status --watch did not redraw twice in 30 s:\n{text}");
            }
        }
    }
    // SAFETY: signalling our own child process.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("status --watch did not stop on SIGINT");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(0));
    reader.join().expect("reader");
    assert!(text.contains("healthy"), "{text}");
}
