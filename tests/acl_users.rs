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

/// (name, host, port) of every sentinel.
fn sentinels(status: &Value) -> Vec<(String, String, u16)> {
    status["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .filter(|n| n["created_as"] == "sentinel")
        .map(|n| {
            (
                n["name"].as_str().unwrap_or("").to_string(),
                n["host"].as_str().unwrap_or("").to_string(),
                n["port"].as_u64().unwrap_or(0) as u16,
            )
        })
        .collect()
}

/// The node's `ACL LOG` entries other than this test's own refused `default` logins: any
/// left is a command or login a peer sentinel, a replica, rcluster or a client was refused.
fn refusals_in_log(con: &mut redis::Connection) -> Vec<String> {
    let entries: Vec<std::collections::HashMap<String, redis::Value>> = redis::cmd("ACL")
        .arg("LOG")
        .arg(1000)
        .query(con)
        .expect("ACL LOG");
    let text = |v: Option<&redis::Value>| match v {
        Some(redis::Value::BulkString(b)) => String::from_utf8_lossy(b).to_string(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    };
    entries
        .iter()
        .filter(|e| !(text(e.get("reason")) == "auth" && text(e.get("username")) == "default"))
        .map(|e| {
            format!(
                "{} {} {} by {}",
                text(e.get("reason")),
                text(e.get("context")),
                text(e.get("object")),
                text(e.get("username"))
            )
        })
        .collect()
}

/// A sentinel's config file as it is now on disk (after Sentinel's rewrites).
fn sentinel_config(container: &str, con: &mut redis::Connection) -> String {
    let info: String = redis::cmd("INFO")
        .arg("server")
        .query(con)
        .expect("INFO server");
    let path = info
        .lines()
        .find_map(|l| l.strip_prefix("config_file:"))
        .expect("config_file in INFO")
        .trim()
        .to_string();
    // The image has no shell tools: copy the file out.
    let tmp = tempfile::tempdir().expect("tempdir");
    let local = tmp.path().join("sentinel.conf");
    common::docker_ok(&[
        "cp",
        &format!("{container}:{path}"),
        local.to_str().expect("utf-8 path"),
    ]);
    std::fs::read_to_string(&local).expect("the copied sentinel.conf")
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
    assert_default_refused("the master", &host, port, &admin);

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
    // A shell with only `eval "$(rcluster env)"` asks a sentinel for the master as the
    // Sentinel client user (the README's example).
    let script = format!(
        "set -eu\n{env}\ns=\"${{RCLUSTER_SENTINELS%%,*}}\"\n\
         REDISCLI_AUTH=\"$(cat \"$RCLUSTER_SENTINEL_PASSWORD_FILE\")\" redis-cli --no-auth-warning \
         --user \"$RCLUSTER_SENTINEL_USER\" -h \"${{s%:*}}\" -p \"${{s##*:}}\" --raw \
         SENTINEL get-master-addr-by-name \"$RCLUSTER_MASTER_NAME\" | paste -sd: -\n"
    );
    let mut bash = std::process::Command::new("bash");
    bash.arg("-c").arg(&script);
    let out = common::run(bash, Duration::from_secs(30));
    let (host, port) = master_of(&status);
    assert_eq!(
        out.stdout.trim(),
        format!("{host}:{port}"),
        "{}",
        out.describe()
    );

    // The sentinels: `default` is off there too (the group password alone and no password
    // are refused); rcluster logs in as `rcluster`.
    let sentinel_nodes = sentinels(&status);
    assert_eq!(sentinel_nodes.len(), 3, "{status}");
    for (name, h, p) in &sentinel_nodes {
        assert_default_refused(name, h, *p, &admin);
        let mut con = connect_as(h, *p, Some("rcluster"), &admin).expect("admin on a sentinel");
        let users = common::acl_users(&mut con);
        assert_eq!(users, common::SENTINEL_USERS_DEFAULT_OFF, "{name}");
    }

    // An application's Sentinel client (the redis crate) with only what `env` gives: it
    // logs in to the sentinels as `RCLUSTER_SENTINEL_USER`, to the data nodes as
    // `RCLUSTER_USER` (the crate checks the master's `ROLE`, which the app user lacks).
    let json = group.rcluster_ok(&["env", "--format", "json"]).json();
    let read_file = |key: &str| {
        let path = json[key]
            .as_str()
            .unwrap_or_else(|| panic!("{key}: {json}"));
        let mode = std::fs::metadata(path).expect(path).permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{path}");
        std::fs::read_to_string(path)
            .expect(path)
            .trim_end()
            .to_string()
    };
    let sentinel_user = json["sentinel_user"].as_str().expect("sentinel_user");
    assert_eq!(sentinel_user, "rcluster-sentinel-client");
    assert!(
        env.contains("export RCLUSTER_SENTINEL_USER='rcluster-sentinel-client'\n"),
        "{env}"
    );
    assert!(env.contains("RCLUSTER_SENTINEL_PASSWORD_FILE="), "{env}");
    let sentinel_password = read_file("sentinel_password_file");
    let sentinel_addrs: Vec<redis::ConnectionAddr> = json["sentinels"]
        .as_array()
        .expect("sentinels")
        .iter()
        .map(|s| {
            let (host, port) = s.as_str().unwrap().rsplit_once(':').unwrap();
            redis::ConnectionAddr::Tcp(host.to_string(), port.parse().unwrap())
        })
        .collect();
    let mut client = redis::sentinel::SentinelClientBuilder::new(
        sentinel_addrs,
        json["master_name"].as_str().unwrap(),
        redis::sentinel::SentinelServerType::Master,
    )
    .unwrap()
    .set_client_to_sentinel_username(sentinel_user)
    .set_client_to_sentinel_password(&sentinel_password)
    .set_client_to_redis_username(json["user"].as_str().expect("user"))
    .set_client_to_redis_password(read_file("password_file"))
    .build()
    .expect("a Sentinel client from `rcluster env --format json`");
    let mut via_sentinel = client
        .get_connection()
        .expect("the master through the sentinels, logged in by name");
    let _: () = redis::cmd("SET")
        .arg("app:via-sentinel")
        .arg("1")
        .query(&mut via_sentinel)
        .expect("a write through the Sentinel client");

    // From here on, nothing may be refused: clear the data nodes' logs of the app's and
    // reader's refusals above.
    for (_, h, p, _) in data_nodes(&status) {
        let mut con = connect_as(&h, p, Some("rcluster"), &admin).expect("admin logs in");
        let _: () = redis::cmd("ACL")
            .arg("LOG")
            .arg("RESET")
            .query(&mut con)
            .expect("ACL LOG RESET");
    }

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
        let users = common::acl_users(&mut con);
        assert_eq!(users, USERS, "users on {name}");
        if name == old {
            assert_eq!(
                role, "replica",
                "the old master rejoined as a replica: {status}"
            );
        }
    }
    // No data node refused anything during the failover (replicas, sentinels, rcluster).
    for (name, h, p, _) in data_nodes(&status) {
        let mut con = connect_as(&h, p, Some("rcluster"), &admin).expect("admin logs in");
        let refusals = refusals_in_log(&mut con);
        assert!(refusals.is_empty(), "{name} refused: {refusals:?}");
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

    // The Sentinel client follows a `docker kill` of the master: it finds the promoted
    // replica through the sentinels and writes there.
    let killed = status["master"]["node"]
        .as_str()
        .expect("master")
        .to_string();
    let killed_addr = master_of(&status);
    common::docker_ok(&["kill", &killed]);
    // Wait until the sentinels, asked as the client user, name another master: the
    // crate's synchronous client has no connect timeout, and a connection to the killed
    // container's address would hang for the kernel's SYN retries.
    let (s_host, s_port) = (&sentinel_nodes[0].1, sentinel_nodes[0].2);
    let promoted = common::poll(
        "the sentinels to name a new master",
        HEALTHY_DEADLINE,
        || {
            let mut con =
                connect_as(s_host, s_port, Some(sentinel_user), &sentinel_password).ok()?;
            let addr: Vec<String> = redis::cmd("SENTINEL")
                .arg("GET-MASTER-ADDR-BY-NAME")
                .arg(json["master_name"].as_str().unwrap())
                .query(&mut con)
                .ok()?;
            let addr = (addr.first()?.clone(), addr.get(1)?.parse::<u16>().ok()?);
            (addr != killed_addr).then_some(addr)
        },
    );
    common::poll(
        "the Sentinel client to write on the promoted master",
        Duration::from_secs(30),
        || {
            let mut con = client.get_connection().ok()?;
            let role: Vec<redis::Value> = redis::cmd("ROLE").query(&mut con).ok()?;
            let is_master =
                matches!(role.first(), Some(redis::Value::BulkString(b)) if b == b"master");
            let _: () = redis::cmd("SET")
                .arg("app:after-kill")
                .arg("1")
                .query(&mut con)
                .ok()?;
            is_master.then_some(())
        },
    );
    let mut con = connect_as(&promoted.0, promoted.1, Some("rcluster"), &admin).expect("admin");
    let v: Option<String> = redis::cmd("GET")
        .arg("app:after-kill")
        .query(&mut con)
        .expect("GET");
    assert_eq!(v.as_deref(), Some("1"), "the client wrote on {promoted:?}");

    // The sentinels: after two failovers their rewritten configs keep `default` off, the
    // users and `sentinel-user`; none refused a peer sentinel, rcluster or the client.
    for (name, h, p) in &sentinel_nodes {
        let mut con = connect_as(h, *p, Some("rcluster"), &admin).expect("admin on a sentinel");
        let refusals = refusals_in_log(&mut con);
        assert!(refusals.is_empty(), "{name} refused: {refusals:?}");
        // The other sentinels' links log in as the peer user (CLIENT LIST names each
        // connection's user).
        let clients: String = redis::cmd("CLIENT")
            .arg("LIST")
            .query(&mut con)
            .expect("CLIENT LIST on a sentinel");
        assert!(
            clients.contains(" user=rcluster-sentinel-peer "),
            "{name}: no peer sentinel logged in as `rcluster-sentinel-peer`: {clients}"
        );
        assert!(
            !clients.contains(" user=default "),
            "{name}: a connection as `default`: {clients}"
        );
        let conf = sentinel_config(name, &mut con);
        assert!(
            conf.contains("# Generated by CONFIG REWRITE"),
            "{name}: {conf}"
        );
        for line in [
            "\nuser default off ",
            "\nuser rcluster on ",
            "\nuser rcluster-sentinel-peer on ",
            "\nuser rcluster-sentinel-client on ",
            "\nsentinel sentinel-user rcluster-sentinel-peer\n",
            "\nsentinel sentinel-pass ",
            " rcluster-sentinel\n",
        ] {
            assert!(
                conf.contains(line),
                "{name}: `{line}` missing after the rewrite"
            );
        }
        assert!(!conf.contains("\nrequirepass"), "{name}");
    }

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

/// `default` is off on `host:port`: the group password without a user name is refused,
/// and a connection with no password gets `NOAUTH`.
fn assert_default_refused(name: &str, host: &str, port: u16, admin: &str) {
    assert!(
        connect_as(host, port, None, admin).is_err(),
        "{name}: `default` took the group password"
    );
    let mut anonymous = redis::Client::open(format!("redis://{host}:{port}/"))
        .expect("client")
        .get_connection_with_timeout(Duration::from_secs(5))
        .expect("tcp connect");
    let ping: redis::RedisResult<String> = redis::cmd("PING").query(&mut anonymous);
    assert!(
        matches!(&ping, Err(e) if e.code() == Some("NOAUTH")),
        "{name}: {ping:?}"
    );
}
