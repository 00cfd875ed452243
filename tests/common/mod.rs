//! Shared harness for the integration tests that run rcluster against the real Docker engine.
//!
//! Owns: running the binary (with a per-group state directory and a hard timeout), the
//! `docker` CLI helpers, the lock that keeps Docker-backed tests from running at the same
//! time, and [`Group`], the guard that removes everything a test created even when it fails.
//! It must not decide what a test asserts beyond "the command did not hang".

#![allow(dead_code)]

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

/// rcluster's own image for this host's redis-server: the one `up` builds.
pub fn image() -> String {
    rcluster::docker::image::choose(None)
        .expect("the host's redis-server")
        .choice()
        .reference
}

/// The project label every rcluster resource carries.
pub const PROJECT_LABEL: &str = "io.rcluster.project";
/// No single rcluster invocation in these tests may take longer than this.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(240);

static LOCK: Mutex<()> = Mutex::new(());

/// Held for the whole of a Docker-backed test: a group is six containers and the machine
/// has two cores, so groups must not start, fail over or stop at the same time. The mutex
/// serialises tests in this binary; the file lock serialises against other test binaries.
pub struct DockerLock {
    _file: File,
    _guard: MutexGuard<'static, ()>,
}

pub fn docker_lock() -> DockerLock {
    // A test that panicked while holding the lock has already cleaned up (its guard ran).
    let guard = LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let path = std::env::temp_dir().join("rcluster-integration-docker.lock");
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .unwrap_or_else(|e| panic!("cannot open the lock file `{}`: {e}", path.display()));
    file.lock()
        .unwrap_or_else(|e| panic!("cannot lock `{}`: {e}", path.display()));
    DockerLock {
        _file: file,
        _guard: guard,
    }
}

/// `it-<test>-<pid>`: unique per test and per run, within rcluster's name rules.
pub fn unique_name(test: &str) -> String {
    let name = format!("it-{test}-{}", std::process::id());
    assert!(
        name.len() <= 40
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
        "bad cluster name `{name}`"
    );
    name
}

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// What a finished process left behind.
#[derive(Debug, Clone)]
pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Output {
    pub fn json(&self) -> Value {
        serde_json::from_str(self.stdout.trim()).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}):\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            )
        })
    }

    pub fn describe(&self) -> String {
        format!(
            "exit {} after {:.1}s\nstdout:\n{}\nstderr:\n{}",
            self.code,
            self.elapsed.as_secs_f64(),
            self.stdout,
            self.stderr
        )
    }
}

/// Run a command to completion, killing it (and failing) if it outlives `timeout`.
pub fn run(mut cmd: Command, timeout: Duration) -> Output {
    let what = format!("{cmd:?}");
    let start = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
    let drain = |mut pipe: Box<dyn Read + Send>| {
        thread::spawn(move || {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            text
        })
    };
    let stdout = drain(Box::new(child.stdout.take().expect("piped stdout")));
    let stderr = drain(Box::new(child.stderr.take().expect("piped stderr")));
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if start.elapsed() > timeout => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{what} did not finish within {timeout:?}");
            }
            Ok(None) => thread::sleep(Duration::from_millis(20)),
            Err(e) => panic!("cannot wait for {what}: {e}"),
        }
    };
    Output {
        code: status.code().unwrap_or(-1),
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
        elapsed: start.elapsed(),
    }
}

/// `docker ARGS...`, with a timeout.
pub fn docker(args: &[&str]) -> Output {
    let mut cmd = Command::new("docker");
    cmd.args(args);
    run(cmd, Duration::from_secs(120))
}

/// `docker ARGS...` that must succeed; its stdout.
pub fn docker_ok(args: &[&str]) -> String {
    let out = docker(args);
    assert_eq!(out.code, 0, "docker {args:?} failed: {}", out.describe());
    out.stdout
}

/// IDs (or names) printed one per line.
pub fn lines(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

/// Poll `check` every 100 ms until it returns `Some`, or fail with `what` at the deadline.
pub fn poll<T>(what: &str, deadline: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(
            start.elapsed() < deadline,
            "timed out after {deadline:?} waiting for {what}"
        );
        thread::sleep(Duration::from_millis(100));
    }
}

/// One rcluster group under test: its name, its own state directory (where `up` stores the
/// generated password), every output rcluster printed, and cleanup on drop.
pub struct Group {
    pub name: String,
    pub topology: PathBuf,
    state_dir: tempfile::TempDir,
    transcript: Mutex<String>,
    /// Containers a test created by name without the label (conflict tests).
    foreign_containers: Mutex<Vec<String>>,
}

impl Group {
    pub fn new(test: &str, fixture_file: &str) -> Group {
        Group {
            name: unique_name(test),
            topology: fixture(fixture_file),
            state_dir: tempfile::Builder::new()
                .prefix("rcluster-it-state-")
                .tempdir()
                .expect("cannot create a temporary state directory"),
            transcript: Mutex::new(String::new()),
            foreign_containers: Mutex::new(Vec::new()),
        }
    }

    pub fn state_dir(&self) -> &Path {
        self.state_dir.path()
    }

    /// `rcluster -f TOPOLOGY --name NAME ARGS...`; never hangs longer than COMMAND_TIMEOUT.
    pub fn rcluster(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_rcluster"));
        cmd.arg("-f")
            .arg(&self.topology)
            .arg("--name")
            .arg(&self.name)
            .args(args)
            .env("RCLUSTER_STATE_DIR", self.state_dir.path())
            .env_remove("RUST_BACKTRACE");
        let out = run(cmd, COMMAND_TIMEOUT);
        let mut transcript = self
            .transcript
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        transcript.push_str(&format!(
            "$ rcluster {}\n{}\n{}\n",
            args.join(" "),
            out.stdout,
            out.stderr
        ));
        out
    }

    /// Run rcluster and require exit 0.
    pub fn rcluster_ok(&self, args: &[&str]) -> Output {
        let out = self.rcluster(args);
        assert_eq!(
            out.code,
            0,
            "rcluster {args:?} on `{}` failed: {}",
            self.name,
            out.describe()
        );
        out
    }

    /// Everything rcluster printed (stdout and stderr) for this group so far.
    pub fn transcript(&self) -> String {
        self.transcript
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// The generated password `up` stored for this group.
    pub fn password(&self) -> String {
        let path = self.state_dir.path().join(&self.name).join("password");
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("cannot read `{}`: {e}", path.display()));
        let password = text.trim_end().to_string();
        assert!(!password.is_empty(), "`{}` is empty", path.display());
        password
    }

    /// `up --json`, required to succeed and report healthy.
    pub fn up(&self) -> Value {
        let json = self
            .rcluster_ok(&["--json", "up", "--timeout", "120"])
            .json();
        assert_eq!(json["healthy"], true, "up reported unhealthy: {json}");
        json
    }

    /// `status --json` once: (exit code, report).
    pub fn status(&self) -> (i32, Value) {
        let out = self.rcluster(&["--json", "status"]);
        let json = out.json();
        (out.code, json)
    }

    /// Poll `status --json` until the group is healthy (exit 0); the report.
    pub fn wait_healthy(&self, deadline: Duration) -> Value {
        let start = Instant::now();
        loop {
            let (code, json) = self.status();
            if code == 0 && json["healthy"] == true {
                return json;
            }
            assert!(
                start.elapsed() < deadline,
                "`{}` not healthy within {deadline:?}; last status: {json}",
                self.name
            );
            thread::sleep(Duration::from_millis(250));
        }
    }

    /// Container name -> full ID, for everything labelled with the group's project.
    pub fn container_ids(&self) -> std::collections::BTreeMap<String, String> {
        let filter = format!("label={PROJECT_LABEL}={}", self.name);
        let listing = docker_ok(&[
            "ps",
            "-a",
            "--no-trunc",
            "--filter",
            &filter,
            "--format",
            "{{.Names}} {{.ID}}",
        ]);
        lines(&listing)
            .into_iter()
            .filter_map(|line| {
                let (name, id) = line.split_once(' ')?;
                Some((name.to_string(), id.to_string()))
            })
            .collect()
    }

    pub fn container(&self, node: &str) -> String {
        format!("{}-{node}", self.name)
    }

    /// A container this test created outside rcluster, to remove by name on drop.
    pub fn adopt_foreign_container(&self, name: &str) {
        self.foreign_containers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push(name.to_string());
    }

    /// IDs of containers, networks and volumes labelled with this group's project.
    pub fn labelled(&self) -> Labelled {
        labelled(&self.name)
    }
}

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Labelled {
    pub containers: Vec<String>,
    pub networks: Vec<String>,
    pub volumes: Vec<String>,
}

impl Labelled {
    pub fn is_empty(&self) -> bool {
        self.containers.is_empty() && self.networks.is_empty() && self.volumes.is_empty()
    }
}

pub fn labelled(project: &str) -> Labelled {
    let filter = format!("label={PROJECT_LABEL}={project}");
    Labelled {
        containers: lines(&docker_ok(&["ps", "-aq", "--filter", &filter])),
        networks: lines(&docker_ok(&["network", "ls", "-q", "--filter", &filter])),
        volumes: lines(&docker_ok(&["volume", "ls", "-q", "--filter", &filter])),
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        // rcluster's own cleanup first: it is part of what is being tested.
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_rcluster"));
        cmd.arg("--name")
            .arg(&self.name)
            .args(["down", "--volumes"])
            .env("RCLUSTER_STATE_DIR", self.state_dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // Not `run`: a panic here while unwinding would abort the whole test binary.
        if let Ok(mut child) = cmd.spawn() {
            let start = Instant::now();
            loop {
                match child.try_wait() {
                    Ok(None) if start.elapsed() < Duration::from_secs(120) => {
                        thread::sleep(Duration::from_millis(50))
                    }
                    Ok(None) => {
                        let _ = child.kill();
                        let _ = child.wait();
                        break;
                    }
                    _ => break,
                }
            }
        }
        // Backstop: whatever still carries the label, and the foreign containers by name.
        let quiet = |args: &[&str]| {
            Command::new("docker")
                .args(args)
                .stdin(Stdio::null())
                .stderr(Stdio::null())
                .output()
                .map(|o| lines(&String::from_utf8_lossy(&o.stdout)))
                .unwrap_or_default()
        };
        let filter = format!("label={PROJECT_LABEL}={}", self.name);
        let mut containers = quiet(&["ps", "-aq", "--filter", &filter]);
        containers.extend(
            self.foreign_containers
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .iter()
                .cloned(),
        );
        for id in containers {
            quiet(&["rm", "-f", "-v", &id]);
        }
        for id in quiet(&["network", "ls", "-q", "--filter", &filter]) {
            quiet(&["network", "rm", &id]);
        }
        for id in quiet(&["volume", "ls", "-q", "--filter", &filter]) {
            quiet(&["volume", "rm", "-f", &id]);
        }
    }
}

/// Make sure rcluster's image exists (the conflict test needs it before any `up` ran):
/// building it is rcluster's job, so let a throwaway group's `up` do it.
pub fn ensure_image() {
    if docker(&["image", "inspect", &image()]).code == 0 {
        return;
    }
    let provision = Group::new("image", "fast.toml");
    provision.up();
    drop(provision);
    docker_ok(&["image", "inspect", &image()]);
}

/// `docker inspect` of one container, as JSON.
pub fn inspect(container: &str) -> Value {
    let text = docker_ok(&["inspect", container]);
    let value: Value = serde_json::from_str(&text).expect("docker inspect prints JSON");
    value[0].clone()
}

/// Connect to a Redis server or Sentinel at `host:port` with the group's password.
pub fn connect(host: &str, port: u16, password: &str) -> redis::RedisResult<redis::Connection> {
    use redis::IntoConnectionInfo;
    let info = redis::ConnectionAddr::Tcp(host.to_string(), port)
        .into_connection_info()?
        .set_redis_settings(redis::RedisConnectionInfo::default().set_password(password));
    let client = redis::Client::open(info)?;
    let con = client.get_connection_with_timeout(Duration::from_secs(5))?;
    con.set_read_timeout(Some(Duration::from_secs(5)))?;
    con.set_write_timeout(Some(Duration::from_secs(5)))?;
    Ok(con)
}

/// `rcluster -f TOPOLOGY ARGS...`, required to succeed (for tests that start no group).
pub fn rcluster_with(topology: &Path, args: &[&str]) -> std::process::Output {
    let output = Command::new(env!("CARGO_BIN_EXE_rcluster"))
        .arg("-f")
        .arg(topology)
        .args(args)
        .output()
        .expect("run rcluster");
    assert!(
        output.status.success(),
        "rcluster {args:?} failed ({}):\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// This machine's first global IPv4 address: where other machines (or a "remote" engine
/// that is this same engine) would reach it.
pub fn lan_address() -> String {
    let out = Command::new("ip")
        .args(["-4", "-o", "addr", "show", "scope", "global"])
        .output()
        .expect("run ip");
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace()
        .skip_while(|w| *w != "inet")
        .nth(1)
        .and_then(|cidr| cidr.split('/').next())
        .map(str::to_string)
        .unwrap_or_else(|| panic!("no global IPv4 address in:\n{text}"))
}

/// The users a sentinel has with `acl.disable_default` (`ACL USERS`, sorted): `default`
/// is there but off.
pub const SENTINEL_USERS_DEFAULT_OFF: [&str; 4] = [
    "default",
    "rcluster",
    "rcluster-sentinel-client",
    "rcluster-sentinel-peer",
];

/// `ACL USERS` of a node, sorted.
pub fn acl_users(con: &mut redis::Connection) -> Vec<String> {
    let mut users: Vec<String> = redis::cmd("ACL")
        .arg("USERS")
        .query(con)
        .expect("ACL USERS");
    users.sort();
    users
}
