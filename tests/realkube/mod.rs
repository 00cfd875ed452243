//! A real single-node Kubernetes v1.20.2 cluster for the tests: real API server, controller
//! manager, scheduler, kubelet and kube-proxy on etcd and containerd, built from Debian's own
//! `kubernetes` source package and run in one private network + mount namespace by
//! `tests/realkube/cluster.sh` (which owns everything about building, starting and stopping
//! it). This module owns the test side: a guard that starts a cluster with its own state dir
//! and stops it on drop (also when a test panics), kubectl, pod status, and a way into the
//! cluster's network namespace for clients that talk to pod IPs.

// Each test binary uses part of this module.
#![allow(dead_code)]

// The pod emulator's image (the host's Debian packages, "like the official redis image")
// and the Docker wrapper it is built with, shared with tests/kube rather than copied.
#[path = "../kube/engine.rs"]
#[allow(dead_code)]
mod engine;
#[path = "../kube/image.rs"]
#[allow(dead_code)]
mod image;
// Typed objects of rendered manifests, shared with the pod emulator.
#[path = "../kube/manifest.rs"]
pub mod manifest;

pub mod group;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// The script that builds, starts and stops clusters.
pub fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/realkube/cluster.sh")
}

/// One pod as `kubectl get pods` sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pod {
    pub name: String,
    pub uid: String,
    pub ip: Option<std::net::Ipv4Addr>,
    pub ready: bool,
    /// Sum of the containers' restart counts.
    pub restarts: i64,
    /// Being deleted (has a deletionTimestamp).
    pub terminating: bool,
}

/// A running cluster; dropping it stops everything the script started and removes its state.
pub struct Cluster {
    state: PathBuf,
    ns_pid: i32,
    /// When `start` finished: the node was Ready.
    pub ready_after: Duration,
}

fn run_script(args: &[&std::ffi::OsStr]) -> Output {
    Command::new("bash")
        .arg(script())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script().display()))
}

impl Cluster {
    /// Builds (a cache hit when `.ci/run` built it already), starts a cluster in a fresh
    /// state dir under the system temp dir, and waits for the node to be Ready. Panics with
    /// the script's output when anything fails: a test never silently runs without it.
    pub fn start() -> Cluster {
        let build = run_script(&["build".as_ref()]);
        assert!(
            build.status.success(),
            "cannot build the real cluster (`bash {} build`):\n{}",
            script().display(),
            String::from_utf8_lossy(&build.stderr)
        );
        let state = std::env::temp_dir().join(format!(
            "rk{}x{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        ));
        let started = Instant::now();
        let out = run_script(&["start".as_ref(), state.as_os_str()]);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        if !out.status.success() {
            let logs = tail_logs(&state);
            let stop = run_script(&["stop".as_ref(), state.as_os_str()]);
            panic!(
                "cannot start the real cluster:\n{stderr}\n{logs}\nstop: {}",
                String::from_utf8_lossy(&stop.stderr)
            );
        }
        eprint!("{stderr}");
        let ns_pid = std::fs::read_to_string(state.join("ns.pid"))
            .ok()
            .and_then(|s| s.trim().parse().ok());
        let cluster = Cluster {
            ns_pid: ns_pid.unwrap_or(0),
            state,
            ready_after: started.elapsed(),
        };
        assert!(
            cluster.ns_pid > 0,
            "the cluster's state dir has no namespace PID"
        );
        cluster
    }

    pub fn state_dir(&self) -> &Path {
        &self.state
    }

    /// A kubeconfig usable from the host (through the relay on a 127.0.0.1 port).
    pub fn host_kubeconfig(&self) -> PathBuf {
        self.state.join("host-kubeconfig")
    }

    /// `kubectl ARGS` against the cluster (run in its network namespace); stdout, or the
    /// error with stderr.
    pub fn kubectl(&self, args: &[&str]) -> Result<String, String> {
        self.kubectl_with_input(args, None)
    }

    fn kubectl_with_input(&self, args: &[&str], input: Option<&str>) -> Result<String, String> {
        let mut cmd = Command::new("bash");
        cmd.arg(script())
            .arg("kubectl")
            .arg(&self.state)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .stdin(if input.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            });
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot run kubectl: {e}"))?;
        if let Some(text) = input {
            use std::io::Write as _;
            let mut stdin = child.stdin.take().ok_or("kubectl has no stdin")?;
            stdin
                .write_all(text.as_bytes())
                .map_err(|e| format!("writing to kubectl: {e}"))?;
        }
        let out = child
            .wait_with_output()
            .map_err(|e| format!("waiting for kubectl: {e}"))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(format!(
                "`kubectl {}` failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    }

    /// `kubectl ARGS`, required to succeed.
    pub fn kubectl_ok(&self, args: &[&str]) -> String {
        self.kubectl(args).unwrap_or_else(|e| panic!("{e}"))
    }

    /// `kubectl apply -f -` of `yaml`, required to succeed; kubectl's output.
    pub fn apply(&self, yaml: &str) -> String {
        self.kubectl_with_input(&["apply", "-f", "-"], Some(yaml))
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// The pod emulator's image (built from the host's Debian packages if Docker lacks it),
    /// loaded into the cluster's containerd under every name in `tags`.
    pub fn load_test_image(&self, tags: &[&str]) -> String {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime");
        let reference = runtime.block_on(async {
            let engine = engine::Engine::connect()
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            image::ensure(&engine).await
        });
        let mut args: Vec<&std::ffi::OsStr> = vec![
            "load-image".as_ref(),
            self.state.as_os_str(),
            reference.as_ref(),
        ];
        args.extend(tags.iter().map(|t| std::ffi::OsStr::new(*t)));
        let out = run_script(&args);
        assert!(
            out.status.success(),
            "cannot load {reference} into the cluster: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        reference
    }

    /// Every pod of the default namespace.
    pub fn pods(&self) -> Result<Vec<Pod>, String> {
        let json = self.kubectl(&["get", "pods", "-o", "json"])?;
        let value: serde_json::Value =
            serde_json::from_str(&json).map_err(|e| format!("kubectl's pod list: {e}"))?;
        let items = value["items"].as_array().cloned().unwrap_or_default();
        Ok(items.iter().map(pod_of).collect())
    }

    /// The pod named `name`, if it exists.
    pub fn pod(&self, name: &str) -> Option<Pod> {
        self.pods().ok()?.into_iter().find(|p| p.name == name)
    }

    /// Poll until every pod in `names` exists, is Ready and is not being deleted.
    pub fn wait_ready(&self, names: &[String], deadline: Duration) -> Result<(), String> {
        let start = Instant::now();
        loop {
            let pods = self.pods().unwrap_or_default();
            let waiting: Vec<&String> = names
                .iter()
                .filter(|n| {
                    !pods
                        .iter()
                        .any(|p| &p.name == *n && p.ready && !p.terminating)
                })
                .collect();
            if waiting.is_empty() {
                return Ok(());
            }
            if start.elapsed() > deadline {
                return Err(format!(
                    "not Ready within {deadline:?}: {waiting:?}; pods: {pods:?}"
                ));
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// `CMD` run in the cluster's network namespace (a client reaching pod IPs).
    pub fn exec_in_netns(&self, cmd: &[&str]) -> Output {
        run_script(
            &std::iter::once("exec".as_ref())
                .chain(std::iter::once(self.state.as_os_str()))
                .chain(cmd.iter().map(|c| std::ffi::OsStr::new(*c)))
                .collect::<Vec<_>>(),
        )
    }

    /// Moves the calling thread into the cluster's network namespace (only this thread: the
    /// kernel keeps a namespace per thread), so its sockets reach pod IPs. Threads it spawns
    /// afterwards start there too. Call it on a thread of its own, never on one that also
    /// serves the host.
    pub fn enter_netns(&self) {
        let path = format!("/proc/{}/ns/net", self.ns_pid);
        let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("open {path}: {e}"));
        use std::os::fd::AsRawFd as _;
        // SAFETY: setns with a valid namespace fd changes only the calling thread's namespace.
        let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(
            rc,
            0,
            "setns into {path}: {}",
            std::io::Error::last_os_error()
        );
    }

    /// `ctr ARGS` against the cluster's containerd; stdout, or the error with stderr.
    pub fn ctr(&self, args: &[&str]) -> Result<String, String> {
        let out = Command::new("ctr")
            .arg("--address")
            .arg(self.state.join("containerd.sock"))
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run ctr: {e}"))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(format!(
                "`ctr {}` failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    }

    /// The last lines of every component's log, for a failure message.
    pub fn logs(&self) -> String {
        tail_logs(&self.state)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let out = run_script(&["stop".as_ref(), self.state.as_os_str()]);
        if !out.status.success() {
            eprintln!(
                "stopping the cluster in {} failed: {}",
                self.state.display(),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

fn pod_of(item: &serde_json::Value) -> Pod {
    let status = &item["status"];
    let ready = status["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Ready" && c["status"] == "True");
    let restarts = status["containerStatuses"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["restartCount"].as_i64())
        .sum();
    Pod {
        name: item["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        uid: item["metadata"]["uid"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        ip: status["podIP"].as_str().and_then(|s| s.parse().ok()),
        ready,
        restarts,
        terminating: !item["metadata"]["deletionTimestamp"].is_null(),
    }
}

fn tail_logs(state: &Path) -> String {
    let mut out = String::new();
    let Ok(entries) = std::fs::read_dir(state.join("logs")) else {
        return out;
    };
    let mut paths: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
    paths.sort();
    for path in paths {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        out.push_str(&format!("--- {}\n", path.display()));
        for line in &lines[lines.len().saturating_sub(15)..] {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}
