//! `[acl]` against the real Docker engine: one group with ACL users and the `default` user
//! off. Replication runs as the replication user and Sentinel as its own user (the group
//! forms and fails over), the app user can write only its keys and run no `CONFIG`,
//! `default` is refused, and after `failover-test --fault kill` every data node, the
//! rejoined old master too, still has every user. `cli --user`, `status` and `env` are
//! checked on the same group.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use common::{Group, docker_lock};
use serde_json::Value;

const HEALTHY_DEADLINE: Duration = Duration::from_secs(90);
const READER_PASSWORD: &str = "reader-Pa55word-for-tests";
/// Every user every data node must have.
const USERS: &[&str] = &[
    "app",
    "default",
    "rcluster",
    "rcluster-replication",
    "rcluster-sentinel",
    "reader",
];

/// A connection as `user` (`None` = `default`) with `password`.
fn connect_as(
    host: &str,
    port: u16,
    user: Option<&str>,
    password: &str,
) -> redis::RedisResult<redis::Connection> {
    use redis::IntoConnectionInfo;
    let mut settings = redis::RedisConnectionInfo::default().set_password(password);
    if let Some(user) = user {
        settings = settings.set_username(user);
    }
    let info = redis::ConnectionAddr::Tcp(host.to_string(), port)
        .into_connection_info()?
        .set_redis_settings(settings);
    let client = redis::Client::open(info)?;
    let con = client.get_connection_with_timeout(Duration::from_secs(5))?;
    con.set_read_timeout(Some(Duration::from_secs(5)))?;
    con.set_write_timeout(Some(Duration::from_secs(5)))?;
    Ok(con)
}

fn master_of(status: &Value) -> (String, u16) {
    let m = &status["master"];
    (
        m["host"].as_str().expect("master host").to_string(),
        m["port"].as_u64().expect("master port") as u16,
    )
}

/// (name, host, port, reported role) of every data node.
fn data_nodes(status: &Value) -> Vec<(String, String, u16, String)> {
    status["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .filter(|n| n["created_as"] != "sentinel")
        .map(|n| {
            (
                n["name"].as_str().unwrap_or("").to_string(),
                n["host"].as_str().unwrap_or("").to_string(),
                n["port"].as_u64().unwrap_or(0) as u16,
                n["role"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

fn is_noperm(result: redis::RedisResult<impl std::fmt::Debug>) -> bool {
    matches!(&result, Err(e) if e.code() == Some("NOPERM"))
}

#[test]
fn acl_users_with_default_off_form_fail_over_and_keep_their_rights() {
    let _lock = docker_lock();
    let group = Group::new("acl", "fast-acl.toml");
    group.up();
    let status = group.wait_healthy(HEALTHY_DEADLINE);
    let admin = group.password();
    let app_password = {
        let path = group.state_dir().join(&group.name).join("users/app");
        let mode = std::fs::metadata(&path)
            .expect("app's password file")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{}", path.display());
        std::fs::read_to_string(&path)
            .expect("read")
            .trim_end()
            .to_string()
    };
    assert_eq!(app_password.len(), 64);

    // `status` lists the users, names and on/off only.
    let users: Vec<(String, bool)> = status["acl_users"]
        .as_array()
        .expect("acl_users in status --json")
        .iter()
        .map(|u| (u["name"].as_str().unwrap().to_string(), u["on"] == true))
        .collect();
    let names: Vec<&str> = users.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, USERS, "{status}");
    assert!(
        users.iter().all(|(n, on)| *on == (n != "default")),
        "{users:?}"
    );
    let human = group.rcluster_ok(&["status"]).stdout;
    assert!(
        human.contains("acl users: app (on), default (off), "),
        "{human}"
    );

    // Replication works as the replication user: a key the app writes on the master is
    // acknowledged by both replicas and read back on each.
    let (host, port) = master_of(&status);
    let mut app = connect_as(&host, port, Some("app"), &app_password).expect("app logs in");
    let _: () = redis::cmd("SET")
        .arg("app:greeting")
        .arg("hello")
        .query(&mut app)
        .expect("app writes its keys");
    let acked: i64 = redis::cmd("WAIT")
        .arg(2)
        .arg(5000)
        .query(&mut app)
        .expect("WAIT");
    assert_eq!(acked, 2, "both replicas acknowledged the app's write");
    for (name, h, p, role) in data_nodes(&status) {
        if role == "replica" {
            let mut con = connect_as(&h, p, Some("rcluster"), &admin).expect("admin logs in");
            let v: Option<String> = redis::cmd("GET")
                .arg("app:greeting")
                .query(&mut con)
                .expect("GET");
            assert_eq!(v.as_deref(), Some("hello"), "{name}");
        }
    }

    // On the master, the replicas' links log in as the replication user and the
    // sentinels as theirs (CLIENT LIST names each connection's user).
    let mut admin_con = connect_as(&host, port, Some("rcluster"), &admin).expect("admin logs in");
    let clients: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query(&mut admin_con)
        .expect("CLIENT LIST");
    let replica_links: Vec<&str> = clients
        .lines()
        .filter(|l| l.contains(" flags=S "))
        .collect();
    assert_eq!(replica_links.len(), 2, "{clients}");
    assert!(
        replica_links
            .iter()
            .all(|l| l.contains(" user=rcluster-replication ")),
        "{clients}"
    );
    let sentinel_links: Vec<&str> = clients
        .lines()
        .filter(|l| l.contains(" name=sentinel-"))
        .collect();
    assert!(!sentinel_links.is_empty(), "{clients}");
    assert!(
        sentinel_links
            .iter()
            .all(|l| l.contains(" user=rcluster-sentinel ")),
        "{clients}"
    );

    // The app user: no other keys, no CONFIG.
    assert!(is_noperm(
        redis::cmd("SET")
            .arg("other:key")
            .arg("x")
            .query::<()>(&mut app)
    ));
    assert!(is_noperm(
        redis::cmd("CONFIG")
            .arg("GET")
            .arg("maxmemory")
            .query::<Vec<String>>(&mut app)
    ));
    // The reader (password from a file): reads anything, writes nothing.
    let mut reader =
        connect_as(&host, port, Some("reader"), READER_PASSWORD).expect("reader logs in");
    let v: Option<String> = redis::cmd("GET")
        .arg("app:greeting")
        .query(&mut reader)
        .expect("reader reads");
    assert_eq!(v.as_deref(), Some("hello"));
    assert!(is_noperm(
        redis::cmd("SET")
            .arg("app:x")
            .arg("1")
            .query::<()>(&mut reader)
    ));
    // `default` is off: the group password without a user name is refused, and so is
    // a connection with no password at all.
    let refused = connect_as(&host, port, None, &admin).map(|_| ());
    assert!(refused.is_err(), "default user accepted the group password");
    let mut anonymous = redis::Client::open(format!("redis://{host}:{port}/"))
        .expect("client")
        .get_connection_with_timeout(Duration::from_secs(5))
        .expect("tcp connect");
    let ping: redis::RedisResult<String> = redis::cmd("PING").query(&mut anonymous);
    assert!(
        matches!(&ping, Err(e) if e.code() == Some("NOAUTH")),
        "{ping:?}"
    );

    // `cli --user app`: its keys yes, CONFIG no.
    let out = group.rcluster_ok(&["cli", "--user", "app", "--", "SET", "app:cli", "v"]);
    assert_eq!(out.stdout.trim(), "OK", "{}", out.describe());
    let out = group.rcluster(&["cli", "--user", "app", "--", "CONFIG", "GET", "maxmemory"]);
    assert!(out.stdout.contains("NOPERM"), "{}", out.describe());
    let out = group.rcluster_ok(&["cli", "--", "ACL", "WHOAMI"]);
    assert_eq!(out.stdout.trim(), "rcluster", "rcluster's own login");
    let out = group.rcluster(&["cli", "--user", "nobody", "--", "PING"]);
    assert_eq!(out.code, 2, "{}", out.describe());
    assert!(
        out.stderr.contains("`--user nobody` is not a user"),
        "{}",
        out.describe()
    );

    // `env`: the admin user's name and the users' password files, never a password.
    let env = group.rcluster_ok(&["env"]).stdout;
    assert!(env.contains("export RCLUSTER_USER='rcluster'\n"), "{env}");
    assert!(env.contains("RCLUSTER_USER_APP_PASSWORD_FILE="), "{env}");
    assert!(env.contains("fast-acl-reader.password'"), "{env}");

    // A failover with the default user off: Sentinel (as its user) promotes a replica,
    // no acknowledged write is lost, and the old master rejoins as a replica.
    let out = group.rcluster(&["--json", "failover-test", "--fault", "kill"]);
    let report = out.json();
    assert_eq!(out.code, 0, "{}", out.describe());
    let run = &report["runs"][0];
    assert_eq!(run["passed"], true, "{run}");
    assert_eq!(run["writes"]["lost"], 0, "{run}");
    let status = group.wait_healthy(HEALTHY_DEADLINE);
    let old = run["old_master"].as_str().expect("old master");
    assert_ne!(status["master"]["node"], run["old_master"], "{status}");

    // Every data node, the new master and the rejoined old master among them, has every user.
    for (name, h, p, role) in data_nodes(&status) {
        let mut con = connect_as(&h, p, Some("rcluster"), &admin).expect("admin logs in");
        let mut users: Vec<String> = redis::cmd("ACL")
            .arg("USERS")
            .query(&mut con)
            .expect("ACL USERS");
        users.sort();
        assert_eq!(users, USERS, "users on {name}");
        if name == old {
            assert_eq!(
                role, "replica",
                "the old master rejoined as a replica: {status}"
            );
        }
    }
    // The app writes on the new master.
    let (host, port) = master_of(&status);
    let mut app =
        connect_as(&host, port, Some("app"), &app_password).expect("app logs in to the new master");
    let _: () = redis::cmd("SET")
        .arg("app:after")
        .arg("1")
        .query(&mut app)
        .expect("app writes after the failover");
    let v: Option<String> = redis::cmd("GET")
        .arg("app:greeting")
        .query(&mut app)
        .expect("GET");
    assert_eq!(v.as_deref(), Some("hello"));

    // No password, the users' included, in anything rcluster printed.
    let transcript = group.transcript();
    for secret in [admin.as_str(), app_password.as_str(), READER_PASSWORD] {
        assert!(!transcript.contains(secret), "a password was printed");
    }

    // `down --volumes` forgets the users' passwords with the group's.
    group.rcluster_ok(&["down", "--volumes"]);
    let users_dir = group.state_dir().join(&group.name).join("users");
    assert!(!users_dir.exists(), "{} is left", users_dir.display());
}
