//! The real `redis-server` (7.0 here and in CI) accepts every config rcluster renders, and
//! reads back the values the topology asked for.
//!
//! Each config is started as it is rendered, overriding on the command line only what must
//! differ on a host: the port (a free loopback one), the bind address, and `replicaof`
//! (there is no master to reach). `dir /data` is rewritten in the file itself, because redis
//! changes directory while it reads the file, before command-line options apply.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rcluster::render::{self, Endpoint, RedisConf, SentinelConf};
use rcluster::topology::{AppendFsync, Layout, Node, Subnet, Topology};

const PASSWORD: &str = "it-Pa55word-42";
const SUBNET: Subnet = Subnet([172, 28, 5]);
const READY_DEADLINE: Duration = Duration::from_secs(10);

/// The default topology (an empty file checks to it), with a literal password, through
/// the real parser: what a user's file becomes is what these tests start.
fn default_topology() -> Topology {
    parse_topology(&format!("[auth]\npassword = \"{PASSWORD}\"\n"))
}

fn parse_topology(text: &str) -> Topology {
    rcluster::topology::parse(Path::new("<string>"), text, None, &|_| None, &|path| {
        Err(std::io::Error::other(format!("no file {}", path.display())))
    })
    .expect("a valid topology")
    .topology
}

/// A redis-server child that is killed when the test ends, passed or failed.
struct Server {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Server {
    /// `redis-server CONFIG --port PORT --bind 127.0.0.1 ARGS...` on a free loopback port.
    fn start(config: &Path, args: &[&str], log: PathBuf) -> Server {
        Server::start_on(config, free_port(), args, log)
    }

    fn start_on(config: &Path, port: u16, args: &[&str], log: PathBuf) -> Server {
        let log_file = File::create(&log).expect("create log file");
        let child = Command::new("redis-server")
            .arg(config)
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().expect("clone log file"))
            .stderr(log_file)
            .spawn()
            .expect("redis-server is installed (apt-get install redis-server)");
        Server { child, port, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Poll until the server answers an authenticated PING; fail at once if it exited.
    fn connect(&mut self, password: &str) -> redis::Connection {
        self.connect_as(None, password)
    }

    /// The same, logging in as `user` (`None` = `default`).
    fn connect_as(&mut self, user: Option<&str>, password: &str) -> redis::Connection {
        let port = self.port;
        let client = redis::Client::open(format!("redis://127.0.0.1:{port}/")).expect("url");
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("redis-server exited with {status}:\n{}", self.log());
            }
            if let Ok(mut con) = client.get_connection_with_timeout(Duration::from_millis(500)) {
                con.set_read_timeout(Some(Duration::from_secs(2)))
                    .expect("set timeout");
                redis::cmd("AUTH")
                    .arg(user)
                    .arg(password)
                    .query::<()>(&mut con)
                    .expect("the rendered password is accepted");
                return con;
            }
            assert!(
                started.elapsed() < READY_DEADLINE,
                "redis-server on port {port} did not answer within {READY_DEADLINE:?}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A loopback port nobody listens on right now.
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local addr").port()
}

fn config_get(con: &mut redis::Connection, key: &str) -> String {
    let reply: HashMap<String, String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg(key)
        .query(con)
        .unwrap_or_else(|e| panic!("CONFIG GET {key}: {e}"));
    reply
        .get(key)
        .cloned()
        .unwrap_or_else(|| panic!("CONFIG GET {key}: no such setting"))
}

/// Start a data node's rendered redis.conf and return what redis reads back.
fn start_data_node(dir: &Path, node: &Node, text: &str) -> (Server, redis::Connection) {
    let node_dir = dir.join(&node.name);
    std::fs::create_dir_all(&node_dir).expect("node dir");
    let data_dir = format!("\ndir {}\n", node_dir.display());
    assert_eq!(text.matches("\ndir /data\n").count(), 1, "{text}");
    let config = node_dir.join("redis.conf");
    std::fs::write(&config, text.replace("\ndir /data\n", &data_dir)).expect("write config");

    let args = ["--replicaof", "no one"];
    let mut server = Server::start(&config, &args, node_dir.join("redis.log"));
    let con = server.connect(PASSWORD);
    (server, con)
}

#[test]
fn redis_accepts_every_data_node_config() {
    let topology = default_topology();
    let layout = Layout::new(&topology, SUBNET);
    let tmp = tempfile::tempdir().expect("tempdir");
    let configs = render::render_all(&topology, &layout, PASSWORD).expect("renders");
    let mut checked = 0;
    for (node, text) in configs.iter().filter(|(n, _)| n.role.is_data()) {
        let (_server, mut con) = start_data_node(tmp.path(), node, text);
        assert_eq!(config_get(&mut con, "appendonly"), "yes", "{}", node.name);
        assert_eq!(config_get(&mut con, "appendfsync"), "everysec");
        assert_eq!(config_get(&mut con, "save"), "900 1 300 10 60 10000");
        assert_eq!(config_get(&mut con, "masterauth"), PASSWORD);
        assert_eq!(config_get(&mut con, "requirepass"), PASSWORD);
        assert_eq!(config_get(&mut con, "repl-diskless-sync-delay"), "0");
        assert_eq!(config_get(&mut con, "protected-mode"), "no");
        assert_eq!(config_get(&mut con, "dbfilename"), "dump.rdb");
        assert_eq!(
            config_get(&mut con, "auto-aof-rewrite-min-size"),
            "67108864"
        );
        assert_eq!(
            config_get(&mut con, "replica-announce-ip"),
            node.ip.to_string()
        );
        checked += 1;
    }
    assert_eq!(checked, 3);
}

/// The other persistence branches and `redis.extra` are accepted too.
#[test]
fn redis_accepts_variant_configs() {
    let mut topology = default_topology();
    topology.persistence.rdb = false;
    topology.persistence.aof = false;
    topology.persistence.appendfsync = AppendFsync::Always;
    topology.persistence.no_appendfsync_on_rewrite = true;
    topology.redis.extra = BTreeMap::from([
        ("maxmemory".to_string(), "64mb".to_string()),
        ("maxmemory-policy".to_string(), "allkeys-lru".to_string()),
    ]);
    let layout = Layout::new(&topology, SUBNET);
    let tmp = tempfile::tempdir().expect("tempdir");
    let node = layout.node("replica-1").expect("replica-1");
    let text = render::node_config(&topology, &layout, node, layout.master().ip, PASSWORD)
        .expect("renders");
    let (_server, mut con) = start_data_node(tmp.path(), node, &text);
    assert_eq!(config_get(&mut con, "save"), "");
    assert_eq!(config_get(&mut con, "appendonly"), "no");
    assert_eq!(config_get(&mut con, "appendfsync"), "always");
    assert_eq!(config_get(&mut con, "no-appendfsync-on-rewrite"), "yes");
    assert_eq!(config_get(&mut con, "maxmemory"), "67108864");
    assert_eq!(config_get(&mut con, "maxmemory-policy"), "allkeys-lru");
}

/// Start a rendered sentinel.conf; Sentinel rewrites its file, so it lives in a temp dir.
fn start_sentinel(dir: &Path, name: &str, text: &str) -> (Server, redis::Connection) {
    start_sentinel_as(dir, name, text, None)
}

/// The same, logging in as `user` (`None` = `default`).
fn start_sentinel_as(
    dir: &Path,
    name: &str,
    text: &str,
    user: Option<&str>,
) -> (Server, redis::Connection) {
    let node_dir = dir.join(name);
    std::fs::create_dir_all(&node_dir).expect("node dir");
    let config = node_dir.join("sentinel.conf");
    std::fs::write(&config, text).expect("write config");
    let mut server = Server::start(&config, &["--sentinel"], node_dir.join("sentinel.log"));
    let con = server.connect_as(user, PASSWORD);
    (server, con)
}

#[test]
fn sentinel_accepts_every_sentinel_config() {
    let topology = default_topology();
    let layout = Layout::new(&topology, SUBNET);
    let tmp = tempfile::tempdir().expect("tempdir");
    let configs = render::render_all(&topology, &layout, PASSWORD).expect("renders");
    let mut checked = 0;
    for (node, text) in configs.iter().filter(|(n, _)| !n.role.is_data()) {
        let (_server, mut con) = start_sentinel(tmp.path(), &node.name, text);

        let masters: Vec<HashMap<String, String>> = redis::cmd("SENTINEL")
            .arg("MASTERS")
            .query(&mut con)
            .expect("SENTINEL MASTERS");
        assert_eq!(masters.len(), 1, "{masters:?}");
        assert_eq!(masters[0]["name"], "mymaster");
        assert_eq!(masters[0]["ip"], layout.master().ip.to_string());
        assert_eq!(masters[0]["port"], "6379");
        assert_eq!(masters[0]["quorum"], "2");
        assert_eq!(masters[0]["down-after-milliseconds"], "5000");
        assert_eq!(masters[0]["failover-timeout"], "60000");
        assert_eq!(masters[0]["parallel-syncs"], "1");

        // The seeds took: the id is the fixed one, and the group is known at boot.
        let myid: String = redis::cmd("SENTINEL")
            .arg("MYID")
            .query(&mut con)
            .expect("SENTINEL MYID");
        assert_eq!(myid, node.sentinel_myid());
        let sentinels: Vec<HashMap<String, String>> = redis::cmd("SENTINEL")
            .arg("SENTINELS")
            .arg("mymaster")
            .query(&mut con)
            .expect("SENTINEL SENTINELS");
        let mut ids: Vec<&str> = sentinels.iter().map(|s| s["runid"].as_str()).collect();
        ids.sort();
        let mut expected: Vec<String> = layout
            .sentinels()
            .filter(|s| s.name != node.name)
            .map(|s| s.sentinel_myid())
            .collect();
        expected.sort();
        assert_eq!(ids, expected);
        let replicas: Vec<HashMap<String, String>> = redis::cmd("SENTINEL")
            .arg("REPLICAS")
            .arg("mymaster")
            .query(&mut con)
            .expect("SENTINEL REPLICAS");
        assert_eq!(replicas.len(), 2, "{replicas:?}");

        let announce: HashMap<String, String> = redis::cmd("SENTINEL")
            .arg("CONFIG")
            .arg("GET")
            .arg("announce-ip")
            .query(&mut con)
            .expect("SENTINEL CONFIG GET");
        assert_eq!(announce["announce-ip"], node.ip.to_string());
        checked += 1;
    }
    assert_eq!(checked, 3);
}

/// A sentinel without the password gets nothing.
#[test]
fn sentinel_requires_the_password() {
    let topology = default_topology();
    let layout = Layout::new(&topology, SUBNET);
    let node = layout.node("sentinel-1").expect("sentinel-1");
    let text = render::node_config(&topology, &layout, node, layout.master().ip, PASSWORD)
        .expect("renders");
    let tmp = tempfile::tempdir().expect("tempdir");
    let (server, _con) = start_sentinel(tmp.path(), &node.name, &text);
    let port = server.port;
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}/")).expect("url");
    let mut con = client
        .get_connection_with_timeout(Duration::from_secs(1))
        .expect("connect");
    let err = redis::cmd("SENTINEL")
        .arg("MASTERS")
        .query::<redis::Value>(&mut con)
        .expect_err("unauthenticated command must fail");
    assert!(err.to_string().contains("NOAUTH"), "{err}");
}

/// With host names instead of IPs (what the Kubernetes renderer will pass), the sentinel
/// still starts: `resolve-hostnames` comes before the monitor line.
#[test]
fn sentinel_accepts_hostnames() {
    let topology = default_topology();
    let layout = Layout::new(&topology, SUBNET);
    let node = layout.node("sentinel-1").expect("sentinel-1");
    let mut conf = SentinelConf::for_node(&topology, &layout, node, layout.master().ip, PASSWORD);
    conf.master = Endpoint::new("localhost", 6379);
    conf.announce = Endpoint::new("localhost", 26379);
    conf.known_replicas = vec![Endpoint::new("localhost", 6380)];
    conf.resolve_hostnames = true;
    let text = conf.render().expect("renders");
    let tmp = tempfile::tempdir().expect("tempdir");
    let (_server, mut con) = start_sentinel(tmp.path(), &node.name, &text);
    let masters: Vec<HashMap<String, String>> = redis::cmd("SENTINEL")
        .arg("MASTERS")
        .query(&mut con)
        .expect("SENTINEL MASTERS");
    assert_eq!(masters[0]["name"], "mymaster");
}

/// A whole group on loopback, from the rendered contexts with loopback addresses: replicas
/// sync from the master (masterauth), and every sentinel sees every replica and every other
/// sentinel healthy (auth-pass, sentinel-pass, and the seeds name real nodes).
#[test]
fn rendered_group_forms_on_loopback() {
    let topology = default_topology();
    let layout = Layout::new(&topology, SUBNET);
    let tmp = tempfile::tempdir().expect("tempdir");
    // Every node announces 127.0.0.1 and its own port, so each needs its port up front.
    let ports: HashMap<String, u16> = layout
        .nodes
        .iter()
        .map(|n| (n.name.clone(), free_port()))
        .collect();
    let loopback = |node: &Node| Endpoint::new("127.0.0.1", ports[&node.name]);
    let master = layout.master();

    let mut servers = Vec::new();
    let mut data = Vec::new();
    for node in layout.data_nodes() {
        let mut conf = RedisConf::for_node(&topology, &layout, node, master.ip, PASSWORD);
        let node_dir = tmp.path().join(&node.name);
        std::fs::create_dir_all(&node_dir).expect("node dir");
        conf.port = ports[&node.name];
        conf.dir = node_dir.display().to_string();
        conf.announce = loopback(node);
        conf.replicaof = conf.replicaof.as_ref().map(|_| loopback(master));
        let config = node_dir.join("redis.conf");
        std::fs::write(&config, conf.render().expect("renders")).expect("write config");
        let mut server = Server::start_on(&config, conf.port, &[], node_dir.join("redis.log"));
        data.push((node.clone(), server.connect(PASSWORD)));
        servers.push(server);
    }
    let mut sentinels = Vec::new();
    for node in layout.sentinels() {
        let mut conf = SentinelConf::for_node(&topology, &layout, node, master.ip, PASSWORD);
        let node_dir = tmp.path().join(&node.name);
        std::fs::create_dir_all(&node_dir).expect("node dir");
        conf.port = ports[&node.name];
        conf.announce = loopback(node);
        conf.master = loopback(master);
        conf.known_replicas = layout.replicas().map(loopback).collect();
        for known in &mut conf.known_sentinels {
            let other = layout
                .sentinels()
                .find(|s| s.sentinel_myid() == known.myid)
                .expect("known sentinel is in the layout");
            known.host = "127.0.0.1".into();
            known.port = ports[&other.name];
        }
        let config = node_dir.join("sentinel.conf");
        std::fs::write(&config, conf.render().expect("renders")).expect("write config");
        let mut server = Server::start_on(
            &config,
            conf.port,
            &["--sentinel"],
            node_dir.join("sentinel.log"),
        );
        sentinels.push((node.clone(), server.connect(PASSWORD)));
        servers.push(server);
    }

    let started = Instant::now();
    let deadline = Duration::from_secs(15);
    loop {
        let mut waiting_for = Vec::new();
        for (node, con) in &mut data {
            let info: String = redis::cmd("INFO")
                .arg("replication")
                .query(con)
                .expect("INFO");
            let linked = node.name == master.name || info.contains("master_link_status:up");
            if !linked {
                waiting_for.push(format!("{} to sync from the master", node.name));
            }
        }
        for (node, con) in &mut sentinels {
            for (kind, expected) in [("REPLICAS", 2), ("SENTINELS", 2)] {
                let peers: Vec<HashMap<String, String>> = redis::cmd("SENTINEL")
                    .arg(kind)
                    .arg("mymaster")
                    .query(con)
                    .expect("SENTINEL");
                let healthy = peers
                    .iter()
                    .filter(|p| {
                        let flags = &p["flags"];
                        !flags.contains("down") && !flags.contains("disconnected")
                    })
                    .count();
                if healthy != expected {
                    waiting_for.push(format!(
                        "{} to see {expected} healthy {kind}: {peers:?}",
                        node.name
                    ));
                }
            }
        }
        if waiting_for.is_empty() {
            break;
        }
        assert!(
            started.elapsed() < deadline,
            "the group did not form within {deadline:?}; still waiting for:\n{}",
            waiting_for.join("\n")
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!("group formed in {:?}", started.elapsed());
}

/// A probe with the wrong password is an `Auth` error, decided from the client's error
/// kind: `up` relies on it to say "the password changed" instead of timing out.
#[test]
fn a_wrong_password_is_an_auth_probe_error_and_a_closed_port_is_unreachable() {
    use rcluster::probe::{Probe, ProbeError};
    use rcluster::secret::Secret;
    let topology = default_topology();
    let layout = Layout::new(&topology, SUBNET);
    let node = layout.master();
    let text = render::node_config(&topology, &layout, node, layout.master().ip, PASSWORD)
        .expect("renders");
    let tmp = tempfile::tempdir().expect("tempdir");
    let (server, _con) = start_data_node(tmp.path(), node, &text);
    let addr: std::net::SocketAddr = ([127, 0, 0, 1], server.port).into();
    let closed: std::net::SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let wrong = Probe::new(Secret::new("not-the-password".to_string()));
        let err = wrong.replication(addr).await.expect_err("wrong password");
        assert!(err.is_auth(), "{}", err.describe());
        let right = Probe::new(Secret::new(PASSWORD.to_string()));
        assert!(right.replication(addr).await.is_ok());
        let err = right
            .replication(closed)
            .await
            .expect_err("nothing listens");
        assert!(
            matches!(err, ProbeError::Unreachable { .. }),
            "{}",
            err.describe()
        );
    });
}

/// The default group with `[acl]`; `disable_default` as given.
fn acl_topology(disable_default: bool) -> Topology {
    parse_topology(&format!(
        "[auth]\npassword = \"{PASSWORD}\"\n\n[acl]\ndisable_default = {disable_default}\n\n[acl.users]\napp = \"on ~app:* +@all -@dangerous\"\nsel = \"on ~sel:* +get (~other:* +set)\"\n"
    ))
}

#[test]
fn redis_and_sentinel_accept_acl_users() {
    let tmp = tempfile::tempdir().expect("tempdir");
    // `default` kept (so this harness's `AUTH PASSWORD` works): every user is there.
    let topology = acl_topology(false);
    let layout = Layout::new(&topology, SUBNET);
    let configs = render::render_all(&topology, &layout, PASSWORD).expect("renders");
    let (node, text) = configs
        .iter()
        .find(|(n, _)| n.role.is_data())
        .expect("a data node");
    let (_server, mut con) = start_data_node(tmp.path(), node, text);
    let users = common::acl_users(&mut con);
    assert_eq!(
        users,
        [
            "app",
            "default",
            "rcluster-replication",
            "rcluster-sentinel",
            "sel"
        ]
    );
    assert_eq!(config_get(&mut con, "masteruser"), "rcluster-replication");
    // The Sentinel user may run what Sentinel sends and nothing else.
    let mut dry = |user: &str, args: &[&str]| -> redis::RedisResult<String> {
        let mut cmd = redis::cmd("ACL");
        cmd.arg("DRYRUN").arg(user);
        for a in args {
            cmd.arg(*a);
        }
        cmd.query(&mut con)
    };
    assert_eq!(dry("rcluster-sentinel", &["INFO"]).expect("dryrun"), "OK");
    assert_eq!(
        dry("rcluster-sentinel", &["CONFIG", "REWRITE"]).expect("dryrun"),
        "OK"
    );
    assert_ne!(
        dry("rcluster-sentinel", &["GET", "k"]).expect("dryrun"),
        "OK"
    );
    assert_ne!(
        dry("rcluster-sentinel", &["CONFIG", "SET", "maxmemory", "1"]).expect("dryrun"),
        "OK"
    );
    assert_eq!(
        dry("rcluster-replication", &["REPLCONF", "ack", "0"]).expect("dryrun"),
        "OK"
    );
    assert_ne!(
        dry("rcluster-replication", &["GET", "k"]).expect("dryrun"),
        "OK"
    );
    assert_eq!(dry("app", &["SET", "app:1", "v"]).expect("dryrun"), "OK");
    assert_ne!(dry("app", &["SET", "other", "v"]).expect("dryrun"), "OK");
    assert_ne!(dry("app", &["FLUSHALL"]).expect("dryrun"), "OK");
    assert_eq!(dry("sel", &["SET", "other:1", "v"]).expect("dryrun"), "OK");

    // `default` kept: a sentinel keeps `requirepass` and gets the peer and client users.
    let (node, text) = configs
        .iter()
        .find(|(n, _)| !n.role.is_data())
        .expect("a sentinel");
    let (_kept, mut con) = start_sentinel(&tmp.path().join("default-on"), &node.name, text);
    let users = common::acl_users(&mut con);
    assert_eq!(
        users,
        [
            "default",
            "rcluster-sentinel-client",
            "rcluster-sentinel-peer"
        ]
    );

    // `default` off: the sentinels get the admin user and log in to the data nodes as
    // the Sentinel user; Sentinel accepts both.
    let topology = acl_topology(true);
    let layout = Layout::new(&topology, SUBNET);
    let configs = render::render_all(&topology, &layout, PASSWORD).expect("renders");
    let (node, text) = configs
        .iter()
        .find(|(n, _)| !n.role.is_data())
        .expect("a sentinel");
    let (sentinel, mut con) = start_sentinel_as(tmp.path(), &node.name, text, Some("rcluster"));
    let users = common::acl_users(&mut con);
    assert_eq!(users, common::SENTINEL_USERS_DEFAULT_OFF);
    let who: String = redis::cmd("ACL")
        .arg("WHOAMI")
        .query(&mut con)
        .expect("the admin user logs in to the sentinel");
    assert_eq!(who, "rcluster");
    // `default` is off on the sentinel too.
    let mut anonymous = redis::Client::open(format!("redis://127.0.0.1:{}/", sentinel.port))
        .expect("url")
        .get_connection_with_timeout(Duration::from_secs(2))
        .expect("tcp connect");
    let refused: redis::RedisResult<()> = redis::cmd("AUTH").arg(PASSWORD).query(&mut anonymous);
    assert!(
        refused.is_err(),
        "the sentinel's `default` took the group password"
    );
    // The peer and client users: what a sentinel or a Sentinel client sends, nothing more.
    let mut dry = |user: &str, args: &[&str]| -> String {
        let mut cmd = redis::cmd("ACL");
        cmd.arg("DRYRUN").arg(user);
        for a in args {
            cmd.arg(*a);
        }
        cmd.query(&mut con).expect("ACL DRYRUN")
    };
    let peer = "rcluster-sentinel-peer";
    let client = "rcluster-sentinel-client";
    for args in [
        &["PING"][..],
        &["PUBLISH", "__sentinel__:hello", "x"],
        &[
            "SENTINEL",
            "IS-MASTER-DOWN-BY-ADDR",
            "10.0.0.1",
            "6379",
            "1",
            "*",
        ],
    ] {
        assert_eq!(dry(peer, args), "OK", "{peer} {args:?}");
    }
    for args in [
        &["SENTINEL", "FAILOVER", "mymaster"][..],
        &["SENTINEL", "SET", "mymaster", "quorum", "1"],
        &["SENTINEL", "MASTERS"],
        &["PUBLISH", "other", "x"],
        &["ACL", "LIST"],
    ] {
        assert_ne!(dry(peer, args), "OK", "{peer} {args:?}");
    }
    for args in [
        &["SENTINEL", "MASTERS"][..],
        &["SENTINEL", "GET-MASTER-ADDR-BY-NAME", "mymaster"],
        &["SENTINEL", "SLAVES", "mymaster"],
        &["SENTINEL", "SENTINELS", "mymaster"],
        &["SUBSCRIBE", "+switch-master"],
    ] {
        assert_eq!(dry(client, args), "OK", "{client} {args:?}");
    }
    for args in [
        &["SENTINEL", "FAILOVER", "mymaster"][..],
        &["SENTINEL", "SET", "mymaster", "quorum", "1"],
        &["SENTINEL", "RESET", "*"],
        &["SENTINEL", "REMOVE", "mymaster"],
        &["SENTINEL", "CONFIG", "SET", "resolve-hostnames", "no"],
        &["ACL", "LIST"],
    ] {
        assert_ne!(dry(client, args), "OK", "{client} {args:?}");
    }
}
