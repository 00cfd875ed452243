//! Engines reached as the docker CLI reaches them: `DOCKER_HOST=tcp://`, `ssh://`, docker
//! contexts, and an engine classified as remote. The engine is always this machine's real
//! one: a tcp forwarder in the test exposes its socket on a TCP port, a throwaway sshd
//! carries `docker system dial-stdio`. Each test runs a lean group (master and one sentinel)
//! through the real binary.

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

use common::{Group, Output, docker_lock};

const ENGINE_SOCKET: &str = "/var/run/docker.sock";

/// The engine's unix socket on `addr:port` (any free port), until dropped.
struct TcpForwarder {
    addr: std::net::SocketAddr,
    stop: Arc<AtomicBool>,
}

impl TcpForwarder {
    fn start(ip: &str) -> TcpForwarder {
        let listener = TcpListener::bind((ip, 0)).expect("bind the forwarder");
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        thread::spawn(move || {
            for client in listener.incoming() {
                if stopped.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = client else { continue };
                let Ok(engine) = UnixStream::connect(ENGINE_SOCKET) else {
                    continue;
                };
                let (mut c_read, mut e_write) =
                    (client.try_clone().unwrap(), engine.try_clone().unwrap());
                thread::spawn(move || {
                    let _ = std::io::copy(&mut c_read, &mut e_write);
                    let _ = e_write.shutdown(Shutdown::Write);
                });
                let (mut e_read, mut c_write) = (engine, client);
                thread::spawn(move || {
                    let _ = std::io::copy(&mut e_read, &mut c_write);
                    let _ = c_write.shutdown(Shutdown::Write);
                });
            }
        });
        TcpForwarder { addr, stop }
    }

    fn url(&self) -> String {
        format!("tcp://{}", self.addr)
    }
}

impl Drop for TcpForwarder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag and drops the listener.
        let _ = TcpStream::connect(self.addr);
    }
}

/// A topology for a lean group (master, no replicas, one sentinel) in `dir`.
fn lean_topology(dir: &Path, extra: &str) -> PathBuf {
    let path = dir.join("topology.toml");
    std::fs::write(
        &path,
        format!(
            "[cluster]\nname = \"it-engines\"\nbind = \"127.0.0.1\"\n\n\
             [master]\nport = 0\n\n[replicas]\ncount = 0\n\n\
             [sentinel]\ncount = 1\nport = 0\nquorum = 1\ndown_after_ms = 2000\nfailover_timeout_ms = 5000\n{extra}"
        ),
    )
    .unwrap();
    path
}

/// `rcluster -f TOPOLOGY --name NAME ARGS` with `env` set and DOCKER_* cleared otherwise.
fn rcluster(group: &Group, env: &[(&str, &str)], args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rcluster"));
    cmd.arg("-f")
        .arg(&group.topology)
        .arg("--name")
        .arg(&group.name)
        .args(args)
        .env("RCLUSTER_STATE_DIR", group.state_dir())
        .env_remove("RUST_BACKTRACE");
    for var in [
        "DOCKER_HOST",
        "DOCKER_CONTEXT",
        "DOCKER_CONFIG",
        "DOCKER_TLS",
        "DOCKER_TLS_VERIFY",
    ] {
        cmd.env_remove(var);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    common::run(cmd, common::COMMAND_TIMEOUT)
}

fn ok(group: &Group, env: &[(&str, &str)], args: &[&str]) -> Output {
    let out = rcluster(group, env, args);
    assert_eq!(
        out.code,
        0,
        "rcluster {args:?} with {env:?}: {}",
        out.describe()
    );
    out
}

/// `up`, `status` (its engine line and JSON), `down --volumes`, all through `env`; the
/// status's `engine` object.
fn up_status_down(group: &Group, env: &[(&str, &str)], engine_line: &str) -> serde_json::Value {
    let up = ok(group, env, &["--json", "up", "--timeout", "120"]).json();
    assert_eq!(up["healthy"], true, "{up}");
    let text = ok(group, env, &["status"]).stdout;
    let line = text
        .lines()
        .find(|l| l.starts_with("engine: "))
        .unwrap_or_else(|| panic!("no engine line in:\n{text}"));
    assert!(line.contains(engine_line), "`{line}` lacks `{engine_line}`");
    let status = ok(group, env, &["--json", "status"]).json();
    assert_eq!(status["healthy"], true, "{status}");
    ok(group, env, &["down", "--volumes"]);
    assert!(
        group.labelled().is_empty(),
        "left behind: {:?}",
        group.labelled()
    );
    status["engine"].clone()
}

#[test]
fn docker_host_tcp_on_loopback_is_this_machine() {
    let _lock = docker_lock();
    let dir = tempfile::tempdir().unwrap();
    let mut group = Group::new("eng-tcp", "fast.toml");
    group.topology = lean_topology(dir.path(), "");
    let forwarder = TcpForwarder::start("127.0.0.1");
    let url = forwarder.url();
    let engine = up_status_down(
        &group,
        &[("DOCKER_HOST", &url)],
        &format!("{url} (this machine)"),
    );
    assert_eq!(engine["endpoint"], url.as_str());
    assert_eq!(engine["remote_host"], serde_json::Value::Null);
    assert_eq!(engine["flavor"], "docker");
}

#[test]
fn docker_contexts_by_env_and_by_config() {
    let _lock = docker_lock();
    let dir = tempfile::tempdir().unwrap();
    let mut group = Group::new("eng-ctx", "fast.toml");
    group.topology = lean_topology(dir.path(), "");
    let forwarder = TcpForwarder::start("127.0.0.1");
    let url = forwarder.url();
    // The real docker CLI writes the context, so its on-disk format is what rcluster reads.
    let home = tempfile::tempdir().unwrap();
    let config = home.path().join(".docker");
    let docker_cli = |args: &[&str]| {
        let out = Command::new("docker")
            .arg("--config")
            .arg(&config)
            .args(args)
            .env_remove("DOCKER_HOST")
            .output()
            .expect("run docker");
        assert!(out.status.success(), "docker {args:?}: {out:?}");
    };
    docker_cli(&[
        "context",
        "create",
        "forwarded",
        "--docker",
        &format!("host={url}"),
    ]);
    let home_str = home.path().to_str().unwrap();

    // Selected by DOCKER_CONTEXT (no config.json names it).
    let engine = up_status_down(
        &group,
        &[("HOME", home_str), ("DOCKER_CONTEXT", "forwarded")],
        &url,
    );
    assert_eq!(engine["endpoint"], url.as_str());

    // Selected by `docker context use`, which writes `currentContext` to config.json.
    docker_cli(&["context", "use", "forwarded"]);
    let current = std::fs::read_to_string(config.join("config.json")).unwrap();
    assert!(
        current.contains("\"currentContext\": \"forwarded\""),
        "{current}"
    );
    let engine = up_status_down(&group, &[("HOME", home_str)], &url);
    assert_eq!(engine["endpoint"], url.as_str());

    // The forwarder gone, the message names the context and how it was chosen.
    drop(forwarder);
    let out = rcluster(&group, &[("HOME", home_str)], &["status"]);
    assert_eq!(out.code, 3, "{}", out.describe());
    assert!(
        out.stderr.contains(&format!(
            "`{url}` (from docker context `forwarded` (currentContext in config.json))"
        )),
        "{}",
        out.describe()
    );
}

/// A port nothing listens on now (the kernel's pick, released at once).
fn free_port() -> u16 {
    TcpListener::bind(("0.0.0.0", 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn a_remote_engine_gets_no_host_binaries_and_its_own_port_check() {
    let _lock = docker_lock();
    common::ensure_image();
    let dir = tempfile::tempdir().unwrap();
    let mut group = Group::new("eng-remote", "fast.toml");
    // A remote engine's container addresses are out of reach, so rcluster announces the
    // engine's host at the published ports: they must be published where this machine
    // reaches them (every address) and known before the nodes start.
    let remote_topology = |extra: &str, master_port: u16| {
        let path = lean_topology(dir.path(), extra);
        let text = std::fs::read_to_string(&path)
            .unwrap()
            .replacen("bind = \"127.0.0.1\"", "bind = \"0.0.0.0\"", 1)
            .replacen(
                "[master]\nport = 0",
                &format!("[master]\nport = {master_port}"),
                1,
            )
            .replacen(
                "[sentinel]\ncount = 1\nport = 0",
                &format!("[sentinel]\ncount = 1\nport = {}", free_port()),
                1,
            );
        std::fs::write(&path, text).unwrap();
        path
    };
    group.topology = remote_topology("", free_port());
    let ip = common::lan_address();
    let forwarder = TcpForwarder::start(&ip);
    let url = forwarder.url();
    let env = [("DOCKER_HOST", url.as_str())];

    // No `redis.image`: the host's binaries are not for a remote engine, and `redis:7`
    // cannot be pulled here. The message says what to do; nothing is created or stored.
    let out = rcluster(&group, &env, &["up", "--timeout", "60"]);
    assert_ne!(out.code, 0, "{}", out.describe());
    for says in [
        "image `redis:7` is not on the engine at",
        &format!("the engine runs on `{ip}`, not on this machine"),
        "docker load",
        "`redis.image`",
    ] {
        assert!(
            out.stderr.contains(says),
            "lacks `{says}`: {}",
            out.describe()
        );
    }
    assert!(group.labelled().is_empty(), "{:?}", group.labelled());
    assert!(
        !group.state_dir().join(&group.name).exists(),
        "state written"
    );

    // A port taken on the engine's machine: rcluster cannot test it from "here", so the
    // engine refuses at start; the message says so and nothing is left half-created.
    let holder = TcpListener::bind(("127.0.0.1", 0)).unwrap();
    let taken = holder.local_addr().unwrap().port();
    let image = common::image();
    let image_line = format!("\n[redis]\nimage = \"{image}\"\n");
    group.topology = remote_topology(&image_line, taken);
    let out = rcluster(&group, &env, &["up", "--timeout", "60"]);
    assert_eq!(out.code, 2, "{}", out.describe());
    assert!(
        out.stderr.contains(&format!(
            "host port already in use on the engine at `{url}`"
        )) && out.stderr.contains("address already in use"),
        "{}",
        out.describe()
    );
    assert!(
        group.labelled().is_empty(),
        "half-created: {:?}",
        group.labelled()
    );
    drop(holder);

    // With a free port and `redis.image` (an image that engine has), the group runs,
    // announced at the engine's host.
    group.topology = remote_topology(&image_line, free_port());
    let engine = up_status_down(&group, &env, &format!("(remote host {ip})"));
    assert_eq!(engine["remote_host"], ip.as_str());
}

/// A throwaway sshd on a loopback port that lets root in with a key made for the test;
/// killed and removed on drop.
struct Sshd {
    dir: tempfile::TempDir,
    child: Child,
    port: u16,
}

impl Sshd {
    fn start() -> Sshd {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let keygen = |file: &str| {
            let out = Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-f"])
                .arg(d.join(file))
                .output()
                .expect("run ssh-keygen (install openssh-client)");
            assert!(out.status.success(), "ssh-keygen: {out:?}");
        };
        keygen("host_key");
        keygen("client_key");
        std::fs::copy(d.join("client_key.pub"), d.join("authorized_keys")).unwrap();
        // A free port: bind, note it, release it for sshd.
        let port = TcpListener::bind(("127.0.0.1", 0))
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let config = format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_key\nPidFile {d}/sshd.pid\n\
             AuthorizedKeysFile {d}/authorized_keys\nPermitRootLogin prohibit-password\n\
             PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n",
            d = d.display()
        );
        std::fs::write(d.join("sshd_config"), config).unwrap();
        // sshd's privilege separation directory (the package's service script makes it).
        std::fs::create_dir_all("/run/sshd").unwrap();
        let child = Command::new("/usr/sbin/sshd")
            .args(["-D", "-e", "-f"])
            .arg(d.join("sshd_config"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(d.join("sshd.log")).unwrap())
            .spawn()
            .expect("run /usr/sbin/sshd (install openssh-server)");
        common::poll("sshd to listen", Duration::from_secs(20), || {
            TcpStream::connect(("127.0.0.1", port)).ok()
        });
        // The client side, as a user would set it up: known_hosts with the host key, the
        // identity. rcluster runs plain `ssh`; a wrapper first on PATH points it at this
        // config (ssh reads ~/.ssh/config from the passwd home, not $HOME).
        let host_key = std::fs::read_to_string(d.join("host_key.pub")).unwrap();
        std::fs::write(
            d.join("known_hosts"),
            format!("[127.0.0.1]:{port} {host_key}"),
        )
        .unwrap();
        std::fs::write(
            d.join("ssh_config"),
            format!(
                "Host 127.0.0.1\n  IdentityFile {d}/client_key\n  IdentitiesOnly yes\n  \
                 UserKnownHostsFile {d}/known_hosts\n  StrictHostKeyChecking yes\n  BatchMode yes\n",
                d = d.display()
            ),
        )
        .unwrap();
        let bin = d.join("bin");
        std::fs::create_dir(&bin).unwrap();
        let wrapper = bin.join("ssh");
        std::fs::write(
            &wrapper,
            format!(
                "#!/bin/sh\nexec /usr/bin/ssh -F {}/ssh_config \"$@\"\n",
                d.display()
            ),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
        Sshd { dir, child, port }
    }

    fn path_env(&self) -> String {
        format!(
            "{}:{}",
            self.dir.path().join("bin").display(),
            std::env::var("PATH").unwrap_or_default()
        )
    }

    fn log(&self) -> String {
        let mut text = String::new();
        if let Ok(mut f) = std::fs::File::open(self.dir.path().join("sshd.log")) {
            let _ = f.read_to_string(&mut text);
        }
        text
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn docker_host_ssh_through_docker_system_dial_stdio() {
    let _lock = docker_lock();
    let dir = tempfile::tempdir().unwrap();
    let mut group = Group::new("eng-ssh", "fast.toml");
    group.topology = lean_topology(dir.path(), "");
    let sshd = Sshd::start();
    let url = format!("ssh://root@127.0.0.1:{}", sshd.port);
    let path = sshd.path_env();
    let env = [("DOCKER_HOST", url.as_str()), ("PATH", path.as_str())];
    let before = bridge_dirs();
    let out = rcluster(&group, &env, &["--json", "up", "--timeout", "120"]);
    assert_eq!(out.code, 0, "{}\nsshd log:\n{}", out.describe(), sshd.log());
    // One ssh connection per API request: worth seeing in the log how long that makes `up`.
    eprintln!("up over ssh: {:.2}s", out.elapsed.as_secs_f64());
    let text = ok(&group, &env, &["status"]).stdout;
    assert!(
        text.contains("engine: docker") && text.contains(&format!("{url} (this machine)")),
        "{text}"
    );
    ok(&group, &env, &["down", "--volumes"]);
    assert!(group.labelled().is_empty(), "{:?}", group.labelled());
    // The bridge's socket directory goes with the process.
    assert_eq!(bridge_dirs(), before, "ssh bridge directories left behind");

    // A refused key: the message carries what ssh said.
    let mut authorized = std::fs::OpenOptions::new()
        .write(true)
        .open(sshd.dir.path().join("authorized_keys"))
        .unwrap();
    authorized.set_len(0).unwrap();
    authorized.flush().unwrap();
    let out = rcluster(&group, &env, &["status"]);
    assert_eq!(out.code, 3, "{}", out.describe());
    assert!(
        out.stderr
            .contains(&format!("`{url}` (from DOCKER_HOST): ssh said:"))
            && out.stderr.contains("Permission denied"),
        "{}",
        out.describe()
    );
}

fn bridge_dirs() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("rcluster-ssh-"))
        .collect();
    names.sort();
    names
}
