//! Issues 13 and 15 together, as production runs them: one group with mutual TLS, ACL
//! users with `default` off on every node and sentinel, and `cluster.announce` at this
//! machine's LAN address, so every address the group hands out is `<LAN address>:<port>`.
//! `up`, `status`, `env`, `cli --user`, `failover-test --fault kill`, and certificates
//! that verify for the announced address a client connects to, before and after a failover.

mod common;

use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Group, docker_lock, run};
use serde_json::Value;

const HEALTHY_DEADLINE: Duration = Duration::from_secs(90);

/// A first port such that it and the next `count - 1` can be bound on every address now.
fn free_ports(count: u16) -> u16 {
    for _ in 0..200 {
        let first = TcpListener::bind(("0.0.0.0", 0))
            .expect("bind")
            .local_addr()
            .expect("addr")
            .port();
        if first > 65000 {
            continue;
        }
        let held: Vec<_> = (first..first + count)
            .map_while(|p| TcpListener::bind(("0.0.0.0", p)).ok())
            .collect();
        if held.len() == count as usize {
            return first;
        }
    }
    panic!("no run of {count} free ports");
}

/// `openssl s_client` to `host:port` with the client certificate, verifying the chain
/// against the CA and that the certificate names `host` (an IP address).
fn verifies_for_address(env: &Value, host: &str, port: u64) -> (bool, String) {
    let file = |key: &str| {
        env[key]
            .as_str()
            .unwrap_or_else(|| panic!("env lacks {key}: {env}"))
    };
    let mut cmd = Command::new("openssl");
    cmd.args(["s_client", "-connect", &format!("{host}:{port}")])
        .args(["-CAfile", file("tls_ca_file")])
        .args(["-cert", file("tls_cert_file"), "-key", file("tls_key_file")])
        .args(["-verify_return_error", "-verify_ip", host])
        .stdin(Stdio::null());
    let out = run(cmd, Duration::from_secs(20));
    (
        out.code == 0 && out.stdout.contains("Verify return code: 0 (ok)"),
        out.describe(),
    )
}

/// redis-cli over TLS on the host, as `user` with the password in `password_file`.
fn redis_cli(
    env: &Value,
    host_port: &str,
    user: &str,
    password_file: &str,
    args: &[&str],
) -> String {
    let (host, port) = host_port.rsplit_once(':').expect("host:port");
    let password = std::fs::read_to_string(password_file).expect("password file");
    let file = |key: &str| env[key].as_str().expect("tls file").to_string();
    let mut cmd = Command::new("redis-cli");
    cmd.args([
        "--no-auth-warning",
        "--tls",
        "--cacert",
        &file("tls_ca_file"),
    ])
    .args([
        "--cert",
        &file("tls_cert_file"),
        "--key",
        &file("tls_key_file"),
    ])
    .args(["--user", user, "-h", host, "-p", port])
    .args(args)
    .env("REDISCLI_AUTH", password.trim_end());
    run(cmd, Duration::from_secs(20)).stdout
}

#[test]
fn tls_acl_and_announce_together_form_fail_over_and_hand_out_only_announced_addresses() {
    let _lock = docker_lock();
    let lan = common::lan_address();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut group = Group::new("parity", "fast.toml");
    let (master, replicas, sentinels) = (free_ports(1), free_ports(2), free_ports(3));
    let topology = dir.path().join("topology.toml");
    std::fs::write(
        &topology,
        format!(
            "[cluster]\nname = \"{name}\"\nbind = \"{lan}\"\nannounce = \"{lan}\"\n\n\
             [master]\nport = {master}\n\n[replicas]\ncount = 2\nport = {replicas}\n\n\
             [sentinel]\ncount = 3\nport = {sentinels}\nquorum = 2\ndown_after_ms = 2000\nfailover_timeout_ms = 5000\n\n\
             [tls]\nenabled = true\nclient_auth = \"yes\"\n\n\
             [acl]\ndisable_default = true\n\n[acl.users]\napp = \"on ~app:* +@all -@dangerous\"\n",
            name = group.name
        ),
    )
    .expect("write topology");
    group.topology = topology;

    let up = group.up();
    assert_eq!(up["healthy"], true, "{up}");
    let password = group.password();
    let status = group.wait_healthy(HEALTHY_DEADLINE);
    assert_eq!(status["reach"]["announce"], lan.as_str(), "{status}");
    assert_eq!(status["master"]["host"], lan.as_str(), "{status}");
    assert_eq!(status["tls"]["client_auth"], "yes", "{status}");
    let users: Vec<&str> = status["acl_users"]
        .as_array()
        .expect("acl_users")
        .iter()
        .filter_map(|u| u["name"].as_str())
        .collect();
    assert!(
        users.contains(&"app") && users.contains(&"default"),
        "{users:?}"
    );

    // What an application gets: announced addresses, the TLS files, the logins.
    let env = group.rcluster_ok(&["--json", "env"]).json();
    let announced: Vec<String> = env["sentinels"]
        .as_array()
        .expect("sentinels")
        .iter()
        .map(|s| s.as_str().expect("host:port").to_string())
        .collect();
    assert_eq!(
        announced,
        (sentinels..sentinels + 3)
            .map(|p| format!("{lan}:{p}"))
            .collect::<Vec<_>>()
    );
    assert_eq!(env["master"], format!("{lan}:{master}"), "{env}");
    let (ok, out) = verifies_for_address(&env, &lan, u64::from(master));
    assert!(
        ok,
        "the master's certificate does not verify for `{lan}`: {out}"
    );

    // A sentinel, asked over TLS at its announced address as the Sentinel client user,
    // names the master by its announced address; `default` is refused there.
    let sentinel_user = env["sentinel_user"].as_str().expect("sentinel_user");
    let sentinel_pw = env["sentinel_password_file"].as_str().expect("file");
    let named = redis_cli(
        &env,
        &announced[0],
        sentinel_user,
        sentinel_pw,
        &["SENTINEL", "get-master-addr-by-name", "mymaster"],
    );
    assert_eq!(common::lines(&named), [lan.clone(), master.to_string()]);
    let as_default = redis_cli(
        &env,
        &announced[0],
        "default",
        env["password_file"].as_str().expect("password_file"),
        &["PING"],
    );
    assert!(!as_default.contains("PONG"), "{as_default}");

    // The app user writes its keys and nothing else, over TLS.
    let set = group.rcluster_ok(&["cli", "--user", "app", "--", "SET", "app:k", "v"]);
    assert!(set.stdout.contains("OK"), "{}", set.describe());
    let config = group.rcluster(&["cli", "--user", "app", "--", "CONFIG", "GET", "maxmemory"]);
    assert!(config.stdout.contains("NOPERM"), "{}", config.describe());

    // A failover over TLS with ACL, every event in announced form.
    let report = group
        .rcluster_ok(&["--json", "failover-test", "--fault", "kill"])
        .json();
    assert_eq!(report["passed"], true, "{report}");
    let run = &report["runs"][0];
    assert_eq!(run["writes"]["lost"], 0, "{report}");
    let after = group.wait_healthy(HEALTHY_DEADLINE);
    let new_port = after["master"]["port"].as_u64().expect("master port");
    assert_eq!(after["master"]["host"], lan.as_str(), "{after}");
    assert_ne!(new_port, u64::from(master), "{after}");
    let (ok, out) = verifies_for_address(&env, &lan, new_port);
    assert!(
        ok,
        "the new master's certificate does not verify for `{lan}`: {out}"
    );
    let text = serde_json::to_string(&after).expect("json");
    assert!(
        !after["nodes"]
            .as_array()
            .expect("nodes")
            .iter()
            .any(|n| n["host"].as_str().is_some_and(|h| h.starts_with("172."))),
        "a container address is handed out: {text}"
    );

    group.rcluster_ok(&["down", "--volumes"]);
    assert!(group.labelled().is_empty(), "{:?}", group.labelled());
    assert!(
        !group.transcript().contains(&password),
        "the group password is in rcluster's output"
    );
}
