//! `cluster.announce` where container addresses cannot be reached, against the real engine.
//!
//! The test emulates a machine that reaches the engine's host only through its published
//! ports (a laptop talking to a remote engine, a rootless engine's host): a network
//! namespace joined to the host by a veth pair, the group's ports published on the host's
//! veth address, and iptables in `DOCKER-USER` rejecting any traffic from the namespace to
//! private ranges that the engine did not DNAT (a published port). rcluster runs inside that
//! namespace (`ip netns exec`; the engine's unix socket works from there), and so does a
//! Sentinel-aware client (the redis crate's, in a thread moved into the namespace).
//!
//! What it does not emulate: a different machine (the engine, the image and the socket
//! are still this host's), NAT between client and host, or Docker Desktop's VM.

mod common;

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::{Group, Output, docker_lock, docker_ok, ensure_image, labelled, poll, run};

/// Generous: a fresh group is healthy in about 2 s on the CI machine.
const UP_TIMEOUT_S: &str = "120";
const DEADLINE: Duration = Duration::from_secs(90);

/// The namespace, its veth pair and the iptables rules; removes all of it on drop, in
/// reverse order, whatever the test did.
struct Netns {
    ns: String,
    veth_host: String,
    host_ip: String,
    ns_ip: String,
    cidr: String,
    /// Rule specs inserted into `DOCKER-USER`, to delete with the same spec.
    rules: Vec<Vec<String>>,
    created_ns: bool,
    created_veth: bool,
}

fn sh(program: &str, args: &[&str]) -> Output {
    let mut cmd = Command::new(program);
    cmd.args(args);
    run(cmd, Duration::from_secs(30))
}

fn sh_ok(program: &str, args: &[&str]) {
    let out = sh(program, args);
    assert_eq!(out.code, 0, "{program} {args:?} failed: {}", out.describe());
}

impl Netns {
    /// A /30 in 10.253.0.0/16 from the pid (host .1, namespace .2): unique per run, and
    /// in no range Docker hands out by default (172.17/16.., 192.168/16 pools).
    fn create() -> Netns {
        let pid = std::process::id();
        let block = (pid % 16384) * 4;
        let (third, fourth) = (block / 256, block % 256);
        let mut netns = Netns {
            ns: format!("rc-ann-{pid}"),
            veth_host: format!("rcah{}", pid % 1_000_000),
            host_ip: format!("10.253.{third}.{}", fourth + 1),
            ns_ip: format!("10.253.{third}.{}", fourth + 2),
            cidr: format!("10.253.{third}.{fourth}/30"),
            rules: Vec::new(),
            created_ns: false,
            created_veth: false,
        };
        let veth_ns = format!("rcan{}", pid % 1_000_000);
        sh_ok("ip", &["netns", "add", &netns.ns]);
        netns.created_ns = true;
        sh_ok(
            "ip",
            &[
                "link",
                "add",
                &netns.veth_host,
                "type",
                "veth",
                "peer",
                "name",
                &veth_ns,
            ],
        );
        netns.created_veth = true;
        sh_ok("ip", &["link", "set", &veth_ns, "netns", &netns.ns]);
        sh_ok(
            "ip",
            &[
                "addr",
                "add",
                &format!("{}/30", netns.host_ip),
                "dev",
                &netns.veth_host,
            ],
        );
        sh_ok("ip", &["link", "set", &netns.veth_host, "up"]);
        let in_ns = |args: &[&str]| {
            let mut all = vec!["netns", "exec", &netns.ns, "ip"];
            all.extend_from_slice(args);
            sh_ok("ip", &all);
        };
        in_ns(&[
            "addr",
            "add",
            &format!("{}/30", netns.ns_ip),
            "dev",
            &veth_ns,
        ]);
        in_ns(&["link", "set", &veth_ns, "up"]);
        in_ns(&["link", "set", "lo", "up"]);
        // A default route: the namespace may send to container addresses, and is refused
        // by the rules below, as a machine whose packets the engine's host drops.
        in_ns(&["route", "add", "default", "via", &netns.host_ip]);
        for range in ["172.16.0.0/12", "10.0.0.0/8", "192.168.0.0/16"] {
            netns.insert(&[
                "-s",
                &netns.ns_ip.clone(),
                "-d",
                range,
                "-m",
                "conntrack",
                "!",
                "--ctstate",
                "DNAT",
                "-j",
                "REJECT",
            ]);
        }
        let (ns_ip, cidr) = (netns.ns_ip.clone(), netns.cidr.clone());
        netns.insert(&["-s", &ns_ip, "-d", &cidr, "-j", "RETURN"]);
        netns
    }

    fn insert(&mut self, spec: &[&str]) {
        let mut args = vec!["-I", "DOCKER-USER"];
        args.extend_from_slice(spec);
        sh_ok("iptables", &args);
        self.rules
            .push(spec.iter().map(|s| s.to_string()).collect());
    }

    /// `ip netns exec NS rcluster -f TOPOLOGY --name NAME ARGS...`.
    fn rcluster(&self, group: &Group, topology: &Path, args: &[&str]) -> Output {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.ns, env!("CARGO_BIN_EXE_rcluster")])
            .arg("-f")
            .arg(topology)
            .arg("--name")
            .arg(&group.name)
            .args(args)
            .env("RCLUSTER_STATE_DIR", group.state_dir());
        run(cmd, common::COMMAND_TIMEOUT)
    }

    fn rcluster_ok(&self, group: &Group, topology: &Path, args: &[&str]) -> Output {
        let out = self.rcluster(group, topology, args);
        assert_eq!(
            out.code,
            0,
            "rcluster {args:?} in the namespace: {}",
            out.describe()
        );
        out
    }

    /// Run `work` on a thread whose network namespace is this one.
    fn inside<T: Send + 'static>(&self, work: impl FnOnce() -> T + Send + 'static) -> T {
        let path = format!("/var/run/netns/{}", self.ns);
        thread::spawn(move || {
            let file = File::open(&path).unwrap_or_else(|e| panic!("open {path}: {e}"));
            // SAFETY: setns on a valid namespace fd changes only this thread's namespace.
            let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns {path}: {}", std::io::Error::last_os_error());
            work()
        })
        .join()
        .expect("the thread in the namespace panicked")
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let quiet = |program: &str, args: &[&str]| {
            let _ = Command::new(program)
                .args(args)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        };
        for spec in self.rules.iter().rev() {
            let mut args = vec!["-D", "DOCKER-USER"];
            args.extend(spec.iter().map(String::as_str));
            quiet("iptables", &args);
        }
        if self.created_veth {
            // Deleting one end removes the pair.
            quiet("ip", &["link", "del", &self.veth_host]);
        }
        if self.created_ns {
            quiet("ip", &["netns", "del", &self.ns]);
        }
    }
}

/// Six consecutive ports free on `ip` (master, 2 replicas, 3 sentinels), from the pid.
fn free_ports(ip: &str) -> u16 {
    let start = 21000 + (std::process::id() % 2000) as u16 * 10;
    (0..200)
        .map(|i| start.wrapping_add(i * 10) % 40000 + 20000)
        .find(|base| (0..6).all(|i| std::net::TcpListener::bind((ip, base + i)).is_ok()))
        .expect("six free ports")
}

fn topology(dir: &Path, bind: &str, announce: &str, base: u16) -> PathBuf {
    let path = dir.join(format!("{announce}.toml").replace(['.', ':'], "-"));
    let text = format!(
        r#"[cluster]
bind = "{bind}"
announce = "{announce}"

[master]
port = {base}

[replicas]
count = 2
port = {}

[sentinel]
count = 3
port = {}
quorum = 2
down_after_ms = 2000
failover_timeout_ms = 5000
"#,
        base + 1,
        base + 3
    );
    std::fs::write(&path, text).expect("write the topology");
    path
}

fn assert_no_container_address(what: &str, text: &str) {
    assert!(
        !text.contains("172."),
        "{what} hands out a container address: {text}"
    );
}

/// Every address the group hands out, asked from this host at the announced ports: each
/// must be `host:<a published port of the group>`. Returns everything read, for a last
/// check that no container address hides anywhere.
fn addresses_everywhere(host: &str, base: u16, password: &str) -> String {
    use std::collections::HashMap;
    let ours = |h: &str, p: u16| h == host && (base..base + 6).contains(&p);
    let mut seen = String::new();
    for port in base..base + 3 {
        let mut con = common::connect(host, port, password).expect("a data node");
        let info: String = redis::cmd("INFO")
            .arg("replication")
            .query(&mut con)
            .unwrap();
        let role: redis::Value = redis::cmd("ROLE").query(&mut con).unwrap();
        if port == base {
            // The master lists its replicas as they announce themselves.
            for p in [base + 1, base + 2] {
                assert!(info.contains(&format!("ip={host},port={p},")), "{info}");
            }
        } else {
            assert!(
                info.contains(&format!("master_host:{host}\r\nmaster_port:{base}\r\n")),
                "{info}"
            );
        }
        seen.push_str(&format!("{info}\n{role:?}\n"));
    }
    for port in base + 3..base + 6 {
        let mut con = common::connect(host, port, password).expect("a sentinel");
        let master: Vec<String> = redis::cmd("SENTINEL")
            .arg("get-master-addr-by-name")
            .arg("mymaster")
            .query(&mut con)
            .unwrap();
        assert_eq!(master, [host.to_string(), base.to_string()]);
        for sub in ["replicas", "sentinels"] {
            let peers: Vec<HashMap<String, String>> = redis::cmd("SENTINEL")
                .arg(sub)
                .arg("mymaster")
                .query(&mut con)
                .unwrap();
            assert_eq!(peers.len(), 2, "{sub}: {peers:?}");
            for peer in &peers {
                let p: u16 = peer["port"].parse().unwrap();
                assert!(ours(&peer["ip"], p), "{sub}: {peer:?}");
            }
            seen.push_str(&format!("{sub}: {peers:?}\n"));
        }
    }
    seen
}

#[test]
fn announced_addresses_carry_a_group_through_published_ports_only() {
    let _lock = docker_lock();
    ensure_image();
    let netns = Netns::create();
    let group = Group::new("announce", "fast.toml");
    let dir = tempfile::tempdir().expect("tempdir");
    let base = free_ports(&netns.host_ip);
    let host = netns.host_ip.clone();

    // Container addresses from the namespace: refused before anything is created.
    let container = topology(dir.path(), &host, "container", base);
    let refused = netns.rcluster(&group, &container, &["up", "--timeout", UP_TIMEOUT_S]);
    assert_eq!(refused.code, 2, "{}", refused.describe());
    assert!(
        refused.elapsed < Duration::from_secs(15),
        "refusing took {:?}",
        refused.elapsed
    );
    assert!(
        refused.stderr.contains("cluster.announce")
            && refused.stderr.contains(&format!("\"{host}\"")),
        "{}",
        refused.describe()
    );
    assert!(labelled(&group.name).is_empty(), "`up` created something");

    // Announced: up, status and env, all from the namespace.
    let announced = topology(dir.path(), &host, &host, base);
    let up = netns
        .rcluster_ok(
            &group,
            &announced,
            &["--json", "up", "--timeout", UP_TIMEOUT_S],
        )
        .json();
    assert_eq!(up["healthy"], true, "{up}");
    assert_eq!(up["master"]["host"], host.as_str(), "{up}");
    assert_eq!(up["master"]["port"], base, "{up}");

    let status = netns
        .rcluster_ok(&group, &announced, &["--json", "status"])
        .json();
    assert_eq!(status["healthy"], true, "{status}");
    assert_eq!(status["reach"]["path"], "published", "{status}");
    assert_eq!(status["reach"]["announce"], host.as_str(), "{status}");
    for node in status["nodes"].as_array().expect("nodes") {
        assert_eq!(node["host"], host.as_str(), "{node}");
    }
    let text = netns.rcluster_ok(&group, &announced, &["status"]).stdout;
    assert!(
        text.contains(&format!("reach: published ports at {host}")),
        "{text}"
    );

    // The emulation holds: from the namespace the master's container address is refused,
    // its published port answers.
    let master_ip =
        common::inspect(&format!("{}-master", group.name))["NetworkSettings"]["Networks"]
            [format!("{}-net", group.name)]["IPAddress"]
            .as_str()
            .expect("the master's container address")
            .to_string();
    let published = format!("{host}:{base}");
    let (direct, through) = netns.inside(move || {
        let connect = |addr: &str| {
            std::net::TcpStream::connect_timeout(
                &addr.parse().expect("an address"),
                Duration::from_secs(2),
            )
            .is_ok()
        };
        (connect(&format!("{master_ip}:6379")), connect(&published))
    });
    assert!(!direct && through, "direct {direct}, published {through}");

    let password = group.password();
    assert_no_container_address("the group", &addresses_everywhere(&host, base, &password));

    let env = netns
        .rcluster_ok(&group, &announced, &["env", "--format", "json"])
        .json();
    let sentinels: Vec<String> = (base + 3..base + 6)
        .map(|p| format!("{host}:{p}"))
        .collect();
    assert_eq!(env["sentinels"], serde_json::json!(sentinels), "{env}");

    // `cli`: the master found through the sentinels, then the host's redis-cli to its
    // published port.
    let role = netns
        .rcluster_ok(&group, &announced, &["cli", "--", "ROLE"])
        .stdout;
    assert!(role.starts_with("master"), "{role}");
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", &netns.ns, env!("CARGO_BIN_EXE_rcluster")])
        .arg("-f")
        .arg(&announced)
        .args(["--name", &group.name, "cli"])
        .env("RCLUSTER_STATE_DIR", group.state_dir())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("rcluster cli");
    {
        use std::io::Write as _;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin
            .write_all(b"SET it:announce cli\nGET it:announce\n")
            .expect("write to redis-cli");
    }
    let out = child.wait_with_output().expect("rcluster cli");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("cli"),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // failover-test from the namespace: writers and event subscriptions on announced
    // addresses, `+switch-master` parsed in announced form.
    let report = netns
        .rcluster_ok(
            &group,
            &announced,
            &["--json", "failover-test", "--fault", "kill"],
        )
        .json();
    let first = &report["runs"][0];
    assert_eq!(first["passed"], true, "{report}");
    assert_ne!(first["new_master"], first["old_master"], "{first}");
    assert!(first["timings_ms"]["switch_master"].is_u64(), "{first}");
    assert!(
        first["writes"]["acked"].as_u64().unwrap_or(0) > 0,
        "{first}"
    );
    let events = first["events"].to_string();
    assert!(events.contains("+switch-master"), "{events}");
    assert_no_container_address("a sentinel event", &events);

    // From the host itself, which reaches container addresses: the same group, unchanged
    // (the configs depend on the announce, not on the path), healthy, reached directly.
    let on_host = |args: &[&str]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_rcluster"));
        cmd.arg("-f")
            .arg(&announced)
            .args(["--name", &group.name, "--json"])
            .args(args)
            .env("RCLUSTER_STATE_DIR", group.state_dir());
        let out = run(cmd, common::COMMAND_TIMEOUT);
        assert_eq!(
            out.code,
            0,
            "rcluster {args:?} on the host: {}",
            out.describe()
        );
        out.json()
    };
    let again = on_host(&["up", "--timeout", UP_TIMEOUT_S]);
    assert_eq!(again["changed"], false, "{again}");
    let direct = on_host(&["status"]);
    assert_eq!(direct["reach"]["path"], "container", "{direct}");
    assert_eq!(direct["reach"]["announce"], host.as_str(), "{direct}");
    assert_eq!(direct["master"]["host"], host.as_str(), "{direct}");

    // The redis crate's Sentinel client, inside the namespace, follows a `docker kill` of
    // the master through announced addresses only.
    let healthy = poll(
        "the group healthy after the failover test",
        DEADLINE,
        || {
            let out = netns.rcluster(&group, &announced, &["--json", "status"]);
            (out.code == 0).then(|| out.json())
        },
    );
    let master_node = healthy["master"]["node"]
        .as_str()
        .expect("a master")
        .to_string();
    let old_port = healthy["master"]["port"].as_u64().expect("a port") as u16;
    let (h, pw) = (host.clone(), password.clone());
    let before = netns.inside(move || {
        let mut client = sentinel_client(&h, base, &pw);
        let addr = master_address(&mut client).expect("the sentinels name a master");
        let mut con = client
            .get_connection()
            .expect("the master through the sentinels");
        let _: () = redis::cmd("SET")
            .arg("it:announce")
            .arg("before")
            .query(&mut con)
            .unwrap();
        addr
    });
    assert_eq!(before, format!("{host}:{old_port}"));

    docker_ok(&["kill", &master_node]);
    let (h, pw) = (host.clone(), password.clone());
    let handed = netns.inside(move || {
        let mut client = sentinel_client(&h, base, &pw);
        let start = Instant::now();
        let mut handed = Vec::new();
        loop {
            assert!(
                start.elapsed() < DEADLINE,
                "the client never reached a new master; it was handed {handed:?}"
            );
            if let Some(addr) = master_address(&mut client) {
                handed.push(addr.clone());
                if addr != format!("{h}:{old_port}")
                    && let Ok(mut con) = client.get_connection()
                    && redis::cmd("SET")
                        .arg("it:announce")
                        .arg("after")
                        .query::<()>(&mut con)
                        .is_ok()
                {
                    return handed;
                }
            }
            thread::sleep(Duration::from_millis(200));
        }
    });
    for addr in &handed {
        assert!(
            addr.starts_with(&format!("{host}:")),
            "handed {addr}: {handed:?}"
        );
        assert_no_container_address("the Sentinel client", addr);
    }
    let name = group.name.clone();
    drop(group);
    assert!(
        labelled(&name).is_empty(),
        "the group left something behind"
    );
    drop(netns);
}

fn sentinel_client(host: &str, base: u16, password: &str) -> redis::sentinel::SentinelClient {
    let sentinels: Vec<redis::ConnectionAddr> = (base + 3..base + 6)
        .map(|p| redis::ConnectionAddr::Tcp(host.to_string(), p))
        .collect();
    redis::sentinel::SentinelClientBuilder::new(
        sentinels,
        "mymaster",
        redis::sentinel::SentinelServerType::Master,
    )
    .expect("a Sentinel client builder")
    .set_client_to_sentinel_password(password)
    .set_client_to_redis_password(password)
    .build()
    .expect("a Sentinel client")
}

/// `host:port` of the master the client is handed now, if the sentinels name one.
fn master_address(client: &mut redis::sentinel::SentinelClient) -> Option<String> {
    let master = client.get_client().ok()?;
    match master.get_connection_info().addr() {
        redis::ConnectionAddr::Tcp(host, port) => Some(format!("{host}:{port}")),
        other => panic!("not a TCP address: {other:?}"),
    }
}
