//! `[tls]` against the real Docker engine, one group with mutual TLS for the whole file:
//! `up`, `status`, `failover-test --fault kill` over TLS; the plaintext port refuses; every
//! node's certificate verifies (openssl) by the address a client uses, also the new
//! master's after a failover; redis-py's Sentinel client over TLS follows a `docker kill`
//! of the master; a client without a certificate is refused.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Group, docker_lock, docker_ok, run};
use serde_json::Value;

const HEALTHY_DEADLINE: Duration = Duration::from_secs(90);

/// `(ip, port)` of every node in a `status --json` report, with its node key.
fn nodes(status: &Value) -> Vec<(String, String, u16)> {
    status["nodes"]
        .as_array()
        .expect("status has nodes[]")
        .iter()
        .map(|n| {
            (
                n["node"].as_str().expect("node key").to_string(),
                n["host"].as_str().expect("host").to_string(),
                n["port"].as_u64().expect("port") as u16,
            )
        })
        .collect()
}

/// `openssl s_client` to `ip:port`, verifying the chain against `ca` and that the
/// certificate names `name` (`-verify_ip` for an address, `-verify_hostname` for a name).
/// With `identity`, presents that client certificate. Whether verification passed.
fn openssl_verifies(
    ca: &Path,
    ip: &str,
    port: u16,
    name: &str,
    identity: &(PathBuf, PathBuf),
) -> (bool, String) {
    let check = if name.parse::<std::net::IpAddr>().is_ok() {
        "-verify_ip"
    } else {
        "-verify_hostname"
    };
    let mut cmd = Command::new("openssl");
    cmd.args(["s_client", "-connect", &format!("{ip}:{port}")])
        .arg("-CAfile")
        .arg(ca)
        .args(["-verify_return_error", check, name])
        .arg("-cert")
        .arg(&identity.0)
        .arg("-key")
        .arg(&identity.1)
        .stdin(Stdio::null());
    let out = run(cmd, Duration::from_secs(20));
    let ok = out.code == 0 && out.stdout.contains("Verify return code: 0 (ok)");
    (ok, out.describe())
}

/// `redis-cli ARGS... PING` on the host, the password in the environment only.
fn redis_cli_ping(password: &str, args: &[&str]) -> common::Output {
    let mut cmd = Command::new("redis-cli");
    cmd.args(args).arg("PING").env("REDISCLI_AUTH", password);
    run(cmd, Duration::from_secs(20))
}

#[test]
fn a_tls_group_speaks_only_tls_and_clients_follow_its_failovers() {
    let _lock = docker_lock();
    let group = Group::new("tls", "tls-mutual.toml");
    let up = group.up();
    assert_eq!(up["healthy"], true, "{up}");
    let status = group.wait_healthy(HEALTHY_DEADLINE);
    let password = group.password();

    // Generated like the password: private files in the group's state directory.
    let dir = group.state_dir().join(&group.name).join("tls");
    for file in [
        "ca.crt",
        "ca.key",
        "master.crt",
        "master.key",
        "client.crt",
        "client.key",
    ] {
        let mode = std::fs::metadata(dir.join(file))
            .unwrap_or_else(|e| panic!("`{file}` in {}: {e}", dir.display()))
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{file} has mode {mode:o}");
    }
    let ca = dir.join("ca.crt");
    let identity = (dir.join("client.crt"), dir.join("client.key"));
    assert_eq!(
        status["tls"]["ca_file"],
        ca.display().to_string(),
        "{status}"
    );
    assert_eq!(status["tls"]["client_auth"], "yes", "{status}");
    let human = group.rcluster_ok(&["status"]).stdout;
    assert!(human.contains("tls: on, CA `"), "{human}");

    // `rcluster env`: the files' paths, never their contents.
    let env = group.rcluster_ok(&["--json", "env"]);
    let settings = env.json();
    assert_eq!(
        settings["tls_ca_file"],
        ca.display().to_string(),
        "{settings}"
    );
    assert_eq!(settings["tls_cert_file"], identity.0.display().to_string());
    assert_eq!(settings["tls_key_file"], identity.1.display().to_string());
    let shell = group.rcluster_ok(&["env"]).stdout;
    assert!(shell.contains("RCLUSTER_TLS_CA_FILE="), "{shell}");
    assert!(!shell.contains("BEGIN"), "env printed PEM: {shell}");

    for (node, ip, port) in nodes(&status) {
        // TLS only: a plaintext client is cut off.
        let plain = redis_cli_ping(&password, &["-h", &ip, "-p", &port.to_string()]);
        assert!(
            !plain.stdout.contains("PONG"),
            "{node} answered plaintext: {}",
            plain.describe()
        );
        // Mutual TLS: the CA alone is not enough, a certificate is.
        let tls = ["--tls", "--cacert", ca.to_str().expect("utf-8 path")];
        let mut args = vec!["-h", &ip, "-p"];
        let port_text = port.to_string();
        args.push(&port_text);
        args.extend(tls);
        let without = redis_cli_ping(&password, &args);
        assert!(
            !without.stdout.contains("PONG"),
            "{node} accepted a client without a certificate: {}",
            without.describe()
        );
        let (cert, key) = (
            identity.0.to_str().expect("utf-8"),
            identity.1.to_str().expect("utf-8"),
        );
        args.extend(["--cert", cert, "--key", key]);
        let with = redis_cli_ping(&password, &args);
        assert!(with.stdout.contains("PONG"), "{node}: {}", with.describe());
        // The address Sentinel hands out, and the name of the container.
        for name in [ip.as_str(), &format!("{}-{node}", group.name)] {
            let (ok, out) = openssl_verifies(&ca, &ip, port, name, &identity);
            assert!(
                ok,
                "{node}'s certificate does not verify for `{name}`: {out}"
            );
        }
    }
    // A certificate that does not name the address is refused by the same check.
    let master_ip = status["master"]["host"]
        .as_str()
        .expect("master host")
        .to_string();
    let (ok, _) = openssl_verifies(&ca, &master_ip, 6379, "10.9.9.9", &identity);
    assert!(
        !ok,
        "openssl accepted a certificate for an address it does not name"
    );

    // `rcluster cli` runs redis-cli inside the container over TLS.
    let cli = group.rcluster_ok(&["cli", "--", "SET", "tls-key", "v"]);
    assert!(cli.stdout.contains("OK"), "{}", cli.describe());

    // A failover over TLS: writers, sentinel events and read-back all through TLS.
    let report = group
        .rcluster_ok(&["--json", "failover-test", "--fault", "kill"])
        .json();
    assert_eq!(report["passed"], true, "{report}");
    let status = group.wait_healthy(HEALTHY_DEADLINE);

    // A Sentinel-aware application (redis-py) over TLS follows a `docker kill`.
    let settings_file = group.state_dir().join("env.json");
    std::fs::write(&settings_file, env.stdout.as_bytes()).expect("write env.json");
    let mut app = App(Command::new("python3")
        .arg(common::fixture("sentinel_follow.py"))
        .arg(&settings_file)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 runs"));
    let mut stdin = app.0.stdin.take().expect("piped stdin");
    let mut lines = BufReader::new(app.0.stdout.take().expect("piped stdout")).lines();
    let first = lines.next().and_then(Result::ok).unwrap_or_default();
    let Some(old) = first.strip_prefix("MASTER ").map(str::to_string) else {
        panic!("the client did not start: {first:?}, {}", app.stderr());
    };
    let old_master = status["master"]["node"]
        .as_str()
        .expect("master node (container name)")
        .to_string();
    assert_eq!(
        old,
        format!("{}:6379", status["master"]["host"].as_str().expect("host")),
        "redis-py and status disagree on the master"
    );
    docker_ok(&["kill", &old_master]);
    writeln!(stdin, "killed").expect("tell the client");
    drop(stdin);
    let followed = lines.next().and_then(Result::ok).unwrap_or_default();
    let Some(new) = followed.strip_prefix("FOLLOWED ").map(str::to_string) else {
        panic!(
            "the client did not follow the failover: {followed:?}, {}",
            app.stderr()
        );
    };
    let done = app.0.wait().expect("the client exits");
    assert!(done.success(), "{done:?}");
    assert_ne!(new, old);

    // The new master's certificate verifies by the address the sentinels now hand out.
    let (new_ip, new_port) = new.rsplit_once(':').expect("host:port");
    let new_port: u16 = new_port.parse().expect("port");
    let (ok, out) = openssl_verifies(&ca, new_ip, new_port, new_ip, &identity);
    assert!(ok, "the new master's certificate does not verify: {out}");

    // `up` brings the killed node back with the same certificates (kept, not reissued).
    let before = std::fs::read(dir.join("master.crt")).expect("master.crt");
    group.up();
    assert_eq!(
        std::fs::read(dir.join("master.crt")).expect("master.crt"),
        before
    );
    let again = group.wait_healthy(HEALTHY_DEADLINE);
    assert_eq!(again["healthy"], true, "{again}");
    // And once everything runs, `up` again changes nothing (generated certificates are
    // not part of the config hash: they follow the layout).
    let idle = group.up();
    assert_eq!(idle["changed"], false, "{idle}");

    // `down --volumes` forgets the CA and the certificates with the password.
    group.rcluster_ok(&["down", "--volumes"]);
    assert!(!dir.exists(), "`down --volumes` left `{}`", dir.display());
}

/// A /24 in 172.28.0.0/14 that no network of the engine overlaps, like `up` picks one.
fn free_subnet(seed: u32) -> [u8; 3] {
    let ids = docker_ok(&["network", "ls", "-q"]);
    let mut args = vec![
        "network",
        "inspect",
        "--format",
        "{{range .IPAM.Config}}{{.Subnet}} {{end}}",
    ];
    args.extend(ids.split_whitespace());
    let used: Vec<(u32, u32)> = docker_ok(&args)
        .split_whitespace()
        .filter_map(|cidr| {
            let (addr, prefix) = cidr.split_once('/')?;
            let addr: std::net::Ipv4Addr = addr.parse().ok()?;
            let prefix: u32 = prefix.parse().ok()?;
            Some((u32::from(addr), prefix))
        })
        .collect();
    (0..1024u32)
        .map(|i| (seed + i) % 1024)
        .map(|n| [172, 28 + (n / 256) as u8, (n % 256) as u8])
        .find(|[a, b, c]| {
            let net = u32::from(std::net::Ipv4Addr::new(*a, *b, *c, 0));
            !used.iter().any(|(addr, prefix)| {
                let shorter = (*prefix).min(24);
                let mask = if shorter == 0 {
                    0
                } else {
                    u32::MAX << (32 - shorter)
                };
                net & mask == addr & mask
            })
        })
        .expect("no free /24 in 172.28.0.0/14")
}

/// Certificates the user brings (one for every node, naming the nodes' fixed addresses),
/// `client_auth = "no"` and a plaintext port kept next to TLS: the CA is enough to
/// connect, the plaintext port answers on the group network only, `down --volumes`
/// leaves nothing of the group's TLS state.
#[test]
fn user_certificates_and_a_kept_plaintext_port() {
    let _lock = docker_lock();
    let dir = tempfile::tempdir().expect("tempdir");
    let [a, b, c] = free_subnet(std::process::id());
    let ip = |last: u8| format!("{a}.{b}.{c}.{last}");
    let now = time::OffsetDateTime::now_utc();
    let (ca_pem, ca_key) = rcluster::tls::generate_ca("mine", now).expect("ca");
    let issuer = rcgen::Issuer::from_ca_cert_pem(&ca_pem, ca_key).expect("issuer");
    let sans: Vec<String> = [ip(10), ip(11), ip(101), "localhost".into()].to_vec();
    let mine = rcluster::tls::issue("my redis", &sans, &issuer, now).expect("certificate");
    std::fs::write(dir.path().join("ca.pem"), &ca_pem).expect("write");
    std::fs::write(dir.path().join("redis.pem"), &mine.cert_pem).expect("write");
    std::fs::write(dir.path().join("redis.key"), mine.key_pem.expose()).expect("write");
    let topology = dir.path().join("topology.toml");
    std::fs::write(
        &topology,
        format!(
            "[cluster]\nsubnet = \"{a}.{b}.{c}.0/24\"\n[master]\nport = 0\n[replicas]\ncount = 1\nport = 0\n\
             [sentinel]\ncount = 1\nport = 0\nquorum = 1\n\
             [tls]\nenabled = true\nca_file = \"ca.pem\"\ncert_file = \"redis.pem\"\nkey_file = \"redis.key\"\n\
             client_auth = \"no\"\nplaintext_port = true\n"
        ),
    )
    .expect("write topology");
    let mut group = Group::new("tls-user", "fast.toml");
    group.topology = topology;
    let up = group.up();
    assert_eq!(up["master"]["host"], ip(10), "{up}");
    group.wait_healthy(HEALTHY_DEADLINE);
    let password = group.password();
    let ca = dir.path().join("ca.pem");
    let ca = ca.to_str().expect("utf-8");

    // TLS with the CA alone (no client certificate asked for), on both kinds of node.
    for (host, port) in [(ip(10), "6379"), (ip(101), "26379")] {
        let tls = redis_cli_ping(
            &password,
            &["-h", &host, "-p", port, "--tls", "--cacert", ca],
        );
        assert!(
            tls.stdout.contains("PONG"),
            "{host}:{port}: {}",
            tls.describe()
        );
        let plain = redis_cli_ping(&password, &["-h", &host, "-p", port]);
        assert!(!plain.stdout.contains("PONG"), "{}", plain.describe());
    }
    // The kept plaintext ports, on the group network (not published).
    for (host, port) in [(ip(11), "6380"), (ip(101), "26380")] {
        let plain = redis_cli_ping(&password, &["-h", &host, "-p", port]);
        assert!(
            plain.stdout.contains("PONG"),
            "{host}:{port}: {}",
            plain.describe()
        );
    }
    let env = group.rcluster_ok(&["--json", "env"]).json();
    assert!(
        env["tls_ca_file"]
            .as_str()
            .expect("ca")
            .ends_with("/ca.pem"),
        "{env}"
    );
    assert!(
        env.get("tls_cert_file").is_none(),
        "no client certificate asked for: {env}"
    );

    // Turning TLS off cannot roll node by node: refused before anything changes.
    let ids = group.container_ids();
    let text = std::fs::read_to_string(&group.topology).expect("topology");
    std::fs::write(
        &group.topology,
        text.replace("enabled = true", "enabled = false"),
    )
    .expect("write topology");
    let refused = group.rcluster(&["up"]);
    assert_ne!(refused.code, 0, "{}", refused.describe());
    assert!(
        refused
            .stderr
            .contains("was created with TLS on and the topology turns it off"),
        "{}",
        refused.describe()
    );
    assert_eq!(
        group.container_ids(),
        ids,
        "the refused `up` changed containers"
    );

    group.rcluster_ok(&["down", "--volumes"]);
    assert!(
        !group.state_dir().join(&group.name).exists(),
        "`down --volumes` left the group's state"
    );
}

/// The Python client; killed if the test fails before it exits.
struct App(std::process::Child);

impl App {
    fn stderr(&mut self) -> String {
        let _ = self.0.kill();
        let mut text = String::new();
        if let Some(mut err) = self.0.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut err, &mut text);
        }
        format!("stderr: {text}")
    }
}

impl Drop for App {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Every path under `dir`, sorted.
fn listing(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).expect("read a state directory") {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                todo.push(path.clone());
            }
            found.push(path);
        }
    }
    found.sort();
    found
}

/// `up --dry-run` on a fresh TLS group lists what `up` would write on this machine (the
/// state directory, the generated password, the CA and certificates) and writes nothing.
#[test]
fn up_dry_run_on_a_fresh_tls_group_lists_the_password_and_certificates_and_writes_nothing() {
    let group = Group::new("tls-dry", "tls-mutual.toml");
    let before = listing(group.state_dir());
    let plan = group.rcluster_ok(&["up", "--dry-run"]);
    let group_dir = group.state_dir().join(&group.name);
    for expected in [
        format!("create directory `{}", group_dir.display()),
        format!(
            "write the generated group password: `{}`",
            group_dir.join("password").display()
        ),
        format!(
            "write the generated CA and certificates: `{}`",
            group_dir.join("tls").join("ca.key").display()
        ),
        format!("`{}`", group_dir.join("tls").join("client.crt").display()),
    ] {
        assert!(
            plan.stdout.contains(&expected),
            "the plan does not say `{expected}`:\n{}",
            plan.describe()
        );
    }
    assert!(
        !plan.stdout.contains("BEGIN"),
        "the plan shows a key or certificate:\n{}",
        plan.stdout
    );
    assert_eq!(
        listing(group.state_dir()),
        before,
        "`up --dry-run` wrote into the state directory"
    );
}
