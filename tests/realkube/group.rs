//! The scenario machinery shared by the real-cluster tests (tests/k8s_real*.rs): a rendered
//! group on a `Cluster`, a background monitor (pod restarts, readiness, the master the
//! sentinels agree on), a writer that records every key a `WAIT 1` acknowledged, and the
//! four assertions every scenario makes: no acknowledged key is lost; exactly one master
//! and every sentinel names it; every replica is linked within 20 s of the last master
//! switch; no pod is NotReady more than 20 s after its own restart. A test file builds a
//! `Group` from its rendered manifests and lists named scenarios for `run_scenarios`.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::manifest;
use super::{Cluster, Pod};

/// How long a group may take to agree on one master after a disturbance.
pub const CONVERGE: Duration = Duration::from_secs(120);
/// How long pods may take to be Ready after a fresh start (images, volumes, first sync).
pub const READY: Duration = Duration::from_secs(240);
/// The bound: replicas linked this long after the last master switch.
pub const LINKED_WITHIN: Duration = Duration::from_secs(20);
/// The bound: a restarted pod is Ready again within this.
pub const NOT_READY_LIMIT: Duration = Duration::from_secs(20);

/// A password for one test run, never printed.
pub fn fresh_password() -> String {
    use sha2::Digest as _;
    let seed = format!("{}-{:?}", std::process::id(), std::time::SystemTime::now());
    hex::encode(sha2::Sha256::digest(seed.as_bytes()))[..32].to_string()
}

/// `rcluster -f TOPOLOGY render --format k8s --show-secrets` with the password in the
/// variable the test fixtures name (`RCLUSTER_K8S_TEST_PASSWORD`) and `env` set (e.g.
/// `RCLUSTER_STATE_DIR` for a TLS group's generated CA).
pub fn render(topology: &std::path::Path, password: &str, env: &[(&str, &str)]) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_rcluster"))
        .arg("-f")
        .arg(topology)
        .args(["render", "--format", "k8s", "--show-secrets"])
        .env("RCLUSTER_K8S_TEST_PASSWORD", password)
        .envs(env.iter().copied())
        .output()
        .expect("run rcluster render");
    assert!(
        out.status.success(),
        "rcluster render failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 manifests")
}

/// The StatefulSet running a container named `container`, and that container's first port.
pub fn set_with_container(manifests: &manifest::Manifests, container: &str) -> (String, u16) {
    manifests
        .stateful_sets
        .iter()
        .find_map(|(name, set)| {
            let spec = set.spec.as_ref()?.template.spec.as_ref()?;
            let c = spec.containers.iter().find(|c| c.name == container)?;
            let port = c.ports.as_ref()?.first()?.container_port as u16;
            Some((name.clone(), port))
        })
        .unwrap_or_else(|| panic!("no StatefulSet runs a container named `{container}`"))
}

pub fn replicas_of(manifests: &manifest::Manifests, set: &str) -> usize {
    manifests.stateful_sets[set]
        .spec
        .as_ref()
        .and_then(|s| s.replicas)
        .unwrap_or(1) as usize
}

/// Every image the pods run.
pub fn images(manifests: &manifest::Manifests) -> Vec<String> {
    let mut out: Vec<String> = manifests
        .stateful_sets
        .values()
        .filter_map(|s| s.spec.as_ref()?.template.spec.clone())
        .flat_map(|spec| {
            spec.containers
                .into_iter()
                .chain(spec.init_containers.into_iter().flatten())
        })
        .filter_map(|c| c.image)
        .collect();
    out.sort();
    out.dedup();
    out
}

/// `sentinel monitor NAME ...` in any ConfigMap.
pub fn master_name(manifests: &manifest::Manifests) -> String {
    manifests
        .config_maps
        .values()
        .flat_map(|c| c.data.iter().flatten())
        .flat_map(|(_, text)| text.lines().map(str::to_string).collect::<Vec<_>>())
        .find_map(|line| {
            let mut words = line.split_whitespace();
            (words.next() == Some("sentinel") && words.next() == Some("monitor"))
                .then(|| words.next().map(str::to_string))?
        })
        .expect("a ConfigMap holds `sentinel monitor`")
}

/// How the test logs in to every node of the group.
#[derive(Clone)]
pub struct Login {
    /// `None`: the `default` user (AUTH with the password only); `Some`: an ACL user.
    pub user: Option<String>,
    pub password: String,
    /// TLS: the group's CA, and the client certificate and key when the servers ask for one.
    /// The pods' certificates name the pods' DNS names (which the host's resolver does not
    /// know) and `127.0.0.1`, so `connect` goes through a relay on 127.0.0.1 (see `relay`):
    /// the client verifies the chain against the CA and the name `127.0.0.1`.
    pub tls: Option<TlsLogin>,
}

/// PEM files a TLS client needs (see `Login::tls`).
#[derive(Clone)]
pub struct TlsLogin {
    pub ca_pem: Vec<u8>,
    /// Certificate and key, for `client_auth = "yes"`.
    pub identity: Option<(Vec<u8>, Vec<u8>)>,
}

impl Login {
    /// The `default` user with `password`, plaintext.
    pub fn password(password: &str) -> Login {
        Login {
            user: None,
            password: password.to_string(),
            tls: None,
        }
    }
}

/// A TCP relay from a fresh 127.0.0.1 port to `target`, for one connection, so that a TLS
/// client verifies the name `127.0.0.1` (which the pods' certificate carries) while the
/// bytes reach the pod. Created on a thread in the cluster's network namespace, it serves
/// there. The port; the relay's threads end when either side closes, or after `timeout`
/// when nobody connects.
fn relay(target: std::net::SocketAddr, timeout: Duration) -> std::io::Result<u16> {
    use std::net::{Shutdown, TcpListener, TcpStream};
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    let port = listener.local_addr()?.port();
    // Reach the pod first, so a dead pod fails the caller's connect at once.
    let upstream = TcpStream::connect_timeout(&target, timeout)?;
    listener.set_nonblocking(true)?;
    std::thread::spawn(move || {
        let deadline = Instant::now() + timeout;
        let client = loop {
            match listener.accept() {
                Ok((client, _)) => break client,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if Instant::now() > deadline {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(_) => return,
            }
        };
        let _ = client.set_nonblocking(false);
        let pipe = |mut from: TcpStream, mut to: TcpStream| {
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut from, &mut to);
                let _ = to.shutdown(Shutdown::Both);
                let _ = from.shutdown(Shutdown::Both);
            })
        };
        let (Ok(client2), Ok(upstream2)) = (client.try_clone(), upstream.try_clone()) else {
            return;
        };
        pipe(client, upstream2);
        pipe(upstream, client2);
    });
    Ok(port)
}

/// A connection with short timeouts: the monitor polls often and must not hang on a dead pod.
pub fn connect(
    ip: Ipv4Addr,
    port: u16,
    login: &Login,
    timeout: Duration,
) -> Result<redis::Connection, String> {
    use redis::IntoConnectionInfo;
    let attempt = || -> redis::RedisResult<redis::Connection> {
        let settings = redis::RedisConnectionInfo::default().set_password(&login.password);
        let settings = match &login.user {
            Some(user) => settings.set_username(user),
            None => settings,
        };
        let client = match &login.tls {
            None => redis::Client::open(
                redis::ConnectionAddr::Tcp(ip.to_string(), port)
                    .into_connection_info()?
                    .set_redis_settings(settings),
            )?,
            Some(tls) => {
                let local = relay((ip, port).into(), timeout)?;
                let info = redis::ConnectionAddr::TcpTls {
                    host: Ipv4Addr::LOCALHOST.to_string(),
                    port: local,
                    insecure: false,
                    tls_params: None,
                }
                .into_connection_info()?
                .set_redis_settings(settings);
                redis::Client::build_with_tls(
                    info,
                    redis::TlsCertificates {
                        client_tls: tls.identity.as_ref().map(|(cert, key)| {
                            redis::ClientTlsConfig {
                                client_cert: cert.clone(),
                                client_key: key.clone(),
                            }
                        }),
                        root_cert: Some(tls.ca_pem.clone()),
                    },
                )?
            }
        };
        let con = client.get_connection_with_timeout(timeout)?;
        con.set_read_timeout(Some(timeout))?;
        con.set_write_timeout(Some(timeout))?;
        Ok(con)
    };
    attempt().map_err(|e| format!("{ip}:{port}: {e}"))
}

/// What the monitor saw happen to one pod.
#[derive(Debug, Clone)]
pub struct PodTrack {
    uid: String,
    restarts: i64,
    ready: bool,
    /// When this pod last restarted (a new uid or a higher restart count) and is not Ready yet.
    restarted_at: Option<Instant>,
    /// When it was last seen not Ready (or absent) after being Ready.
    not_ready_since: Option<Instant>,
}

/// Something the monitor measured.
#[derive(Debug, Clone)]
pub enum Event {
    /// A pod restarted at `.1` and was Ready again `.2` later.
    ReadyAfterRestart(String, Instant, Duration),
    /// A pod was NotReady (or absent) for `.2`, ending at `.1`.
    NotReady(String, Instant, Duration),
    /// Every sentinel named the pod `.1` from `.0` on, after naming another.
    MasterSwitch(Instant, String),
}

/// The group under test and what a background monitor learns about it.
pub struct Group<'a> {
    pub cluster: &'a Cluster,
    pub redis_set: String,
    pub sentinel_set: String,
    /// Changes with `kubectl scale` (`set_redis_count`).
    redis_count: AtomicUsize,
    pub sentinel_count: usize,
    pub redis_port: u16,
    pub sentinel_port: u16,
    pub master_name: String,
    pub login: Login,
    /// Names and figures a scenario's disturbance noted (`note`), for its `Figures`.
    notes: Mutex<Vec<(String, Duration)>>,
    /// Per replica: since when it has been linked to the one master (dropped when it is not).
    linked_since: Mutex<BTreeMap<String, Instant>>,
    /// The last pod list the monitor fetched.
    pods: Mutex<Vec<Pod>>,
    tracks: Mutex<BTreeMap<String, PodTrack>>,
    events: Mutex<Vec<Event>>,
    /// The pod every sentinel names, when they agree.
    agreed: Mutex<Option<String>>,
}

pub fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl<'a> Group<'a> {
    /// The group the manifests `yaml` describe (StatefulSets, ports, the sentinels' master
    /// name read from them), on `cluster`, logged in to as `login`. Nothing is applied.
    pub fn new(cluster: &'a Cluster, yaml: &str, login: Login) -> Group<'a> {
        let manifests = manifest::parse(yaml);
        let (redis_set, redis_port) = set_with_container(&manifests, "redis");
        let (sentinel_set, sentinel_port) = set_with_container(&manifests, "sentinel");
        Group {
            cluster,
            redis_count: AtomicUsize::new(replicas_of(&manifests, &redis_set)),
            sentinel_count: replicas_of(&manifests, &sentinel_set),
            redis_set,
            sentinel_set,
            redis_port,
            sentinel_port,
            master_name: master_name(&manifests),
            login,
            notes: Mutex::default(),
            linked_since: Mutex::default(),
            pods: Mutex::default(),
            tracks: Mutex::default(),
            events: Mutex::default(),
            agreed: Mutex::default(),
        }
    }

    /// One look at the replicas' links (`linked_since`).
    pub fn look_links(&self) {
        let linked = linked_replicas(self);
        let now = Instant::now();
        let mut since = lock(&self.linked_since);
        since.retain(|pod, _| linked.contains(pod));
        for pod in linked {
            since.entry(pod).or_insert(now);
        }
    }

    /// How many redis pods the group has now.
    pub fn redis_count(&self) -> usize {
        self.redis_count.load(Ordering::SeqCst)
    }

    /// After `kubectl scale`: the monitor and the checks follow `count` redis pods; pods
    /// beyond it are forgotten.
    pub fn set_redis_count(&self, count: usize) {
        self.redis_count.store(count, Ordering::SeqCst);
        let all = self.all_pods();
        lock(&self.tracks).retain(|name, _| all.contains(name));
    }

    /// A figure the current scenario's disturbance measured (a rollout's duration...),
    /// reported with the scenario's figures.
    pub fn note(&self, what: &str, took: Duration) {
        lock(&self.notes).push((what.to_string(), took));
    }

    pub fn redis_pods(&self) -> Vec<String> {
        (0..self.redis_count())
            .map(|i| format!("{}-{i}", self.redis_set))
            .collect()
    }

    pub fn sentinel_pods(&self) -> Vec<String> {
        (0..self.sentinel_count)
            .map(|i| format!("{}-{i}", self.sentinel_set))
            .collect()
    }

    pub fn all_pods(&self) -> Vec<String> {
        let mut all = self.redis_pods();
        all.extend(self.sentinel_pods());
        all
    }

    pub fn refresh_pods(&self) -> Result<Vec<Pod>, String> {
        let pods = self.cluster.pods()?;
        *lock(&self.pods) = pods.clone();
        Ok(pods)
    }

    pub fn pod_ip(&self, pod: &str) -> Option<Ipv4Addr> {
        let cached = lock(&self.pods)
            .iter()
            .find(|p| p.name == pod && !p.terminating)
            .and_then(|p| p.ip);
        cached.or_else(|| self.cluster.pod(pod).filter(|p| !p.terminating)?.ip)
    }

    /// A name or address a node reported (`kt-redis-1.kt-redis.default.svc.cluster.local`,
    /// or an IP) as the pod it means.
    pub fn pod_of_host(&self, host: &str) -> Option<String> {
        if let Ok(ip) = host.parse::<Ipv4Addr>() {
            return lock(&self.pods)
                .iter()
                .find(|p| p.ip == Some(ip) && !p.terminating)
                .map(|p| p.name.clone());
        }
        let name = host.split('.').next()?;
        self.all_pods().into_iter().find(|p| p == name)
    }

    pub fn connect(
        &self,
        pod: &str,
        port: u16,
        timeout: Duration,
    ) -> Result<redis::Connection, String> {
        let ip = self
            .pod_ip(pod)
            .ok_or_else(|| format!("pod `{pod}` has no address"))?;
        connect(ip, port, &self.login, timeout).map_err(|e| format!("`{pod}`: {e}"))
    }

    pub fn replication(&self, pod: &str) -> Result<BTreeMap<String, String>, String> {
        let mut con = self.connect(pod, self.redis_port, Duration::from_secs(2))?;
        let info: String = redis::cmd("INFO")
            .arg("replication")
            .query(&mut con)
            .map_err(|e| format!("INFO on `{pod}`: {e}"))?;
        Ok(info
            .lines()
            .filter_map(|l| l.trim().split_once(':'))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect())
    }

    /// The pod a sentinel names as master.
    pub fn sentinel_master(&self, sentinel: &str) -> Result<String, String> {
        let mut con = self.connect(sentinel, self.sentinel_port, Duration::from_secs(1))?;
        let answer: Option<Vec<String>> = redis::cmd("SENTINEL")
            .arg("get-master-addr-by-name")
            .arg(&self.master_name)
            .query(&mut con)
            .map_err(|e| format!("SENTINEL get-master-addr-by-name on `{sentinel}`: {e}"))?;
        let host = answer
            .and_then(|a| a.into_iter().next())
            .ok_or_else(|| format!("`{sentinel}` knows no master"))?;
        self.pod_of_host(&host)
            .ok_or_else(|| format!("`{sentinel}` names `{host}`, which is no pod"))
    }

    /// One look: exactly one redis pod reports role:master, the others are its replicas
    /// with the link up, and every sentinel names it. The master's pod.
    pub fn converged_once(&self) -> Result<String, String> {
        let mut masters = Vec::new();
        let mut replicas = Vec::new();
        for pod in self.redis_pods() {
            let info = self.replication(&pod)?;
            match info.get("role").map(String::as_str) {
                Some("master") => masters.push(pod),
                _ => replicas.push((pod, info)),
            }
        }
        let [master] = masters.as_slice() else {
            return Err(format!(
                "{} nodes report role:master: {masters:?}",
                masters.len()
            ));
        };
        for (pod, info) in &replicas {
            let host = info.get("master_host").cloned().unwrap_or_default();
            if self.pod_of_host(&host).as_deref() != Some(master.as_str()) {
                return Err(format!("replica `{pod}` follows `{host}`, not `{master}`"));
            }
            if info.get("master_link_status").map(String::as_str) != Some("up") {
                return Err(format!("replica `{pod}`: link to `{master}` is not up"));
            }
        }
        for sentinel in self.sentinel_pods() {
            let named = self.sentinel_master(&sentinel)?;
            if &named != master {
                return Err(format!("`{sentinel}` names `{named}`, not `{master}`"));
            }
        }
        Ok(master.clone())
    }

    /// Keys missing on `master` among `keys`.
    pub fn missing_keys(&self, master: &str, keys: &[String]) -> Result<Vec<String>, String> {
        let mut con = self.connect(master, self.redis_port, Duration::from_secs(5))?;
        let mut missing = Vec::new();
        for chunk in keys.chunks(500) {
            let values: Vec<Option<String>> = redis::cmd("MGET")
                .arg(chunk)
                .query(&mut con)
                .map_err(|e| format!("MGET on `{master}`: {e}"))?;
            missing.extend(
                chunk
                    .iter()
                    .zip(values)
                    .filter(|(_, v)| v.is_none())
                    .map(|(k, _)| k.clone()),
            );
        }
        Ok(missing)
    }

    /// One monitor pass: the pod list (restarts, readiness) and the sentinels' master.
    pub fn observe(&self) {
        let now = Instant::now();
        if let Ok(pods) = self.refresh_pods() {
            let mut tracks = lock(&self.tracks);
            let mut events = lock(&self.events);
            for name in self.all_pods() {
                // A pod being deleted counts as not Ready; its replacement is a restart.
                let pod = pods.iter().find(|p| p.name == name && !p.terminating);
                let ready = pod.is_some_and(|p| p.ready);
                let Some(track) = tracks.get_mut(&name) else {
                    if let Some(p) = pod {
                        tracks.insert(
                            name.clone(),
                            PodTrack {
                                uid: p.uid.clone(),
                                restarts: p.restarts,
                                ready,
                                // A fresh pod counts from its first sight, like a restart.
                                restarted_at: (!ready).then_some(now),
                                not_ready_since: None,
                            },
                        );
                    }
                    continue;
                };
                if let Some(p) = pod
                    && (p.uid != track.uid || p.restarts > track.restarts)
                {
                    track.uid = p.uid.clone();
                    track.restarts = p.restarts;
                    track.restarted_at.get_or_insert(now);
                }
                if track.ready && !ready {
                    track.not_ready_since = Some(now);
                }
                if ready {
                    if let Some(since) = track.not_ready_since.take() {
                        events.push(Event::NotReady(name.clone(), now, now - since));
                    }
                    if let Some(at) = track.restarted_at.take() {
                        events.push(Event::ReadyAfterRestart(name.clone(), now, now - at));
                    }
                }
                track.ready = ready;
            }
        }
        let named: Vec<Result<String, String>> = self
            .sentinel_pods()
            .iter()
            .map(|s| self.sentinel_master(s))
            .collect();
        if let Some(Ok(first)) = named.first()
            && named.iter().all(|n| n.as_ref().ok() == Some(first))
        {
            let mut agreed = lock(&self.agreed);
            if agreed.as_deref() != Some(first.as_str()) {
                if agreed.is_some() {
                    lock(&self.events).push(Event::MasterSwitch(now, first.clone()));
                }
                *agreed = Some(first.clone());
            }
        }
    }

    /// Every pod's recent log lines (and its previous container's, after a restart).
    pub fn report(&self) -> String {
        let mut out = String::new();
        for pod in self.all_pods() {
            for previous in [true, false] {
                let mut args = vec![
                    "logs",
                    pod.as_str(),
                    "--all-containers",
                    "--timestamps",
                    "--tail=80",
                ];
                if previous {
                    args.push("--previous");
                }
                if let Ok(text) = self.cluster.kubectl(&args) {
                    let which = if previous {
                        " (previous container)"
                    } else {
                        ""
                    };
                    out.push_str(&format!("----- {pod}{which}\n{text}"));
                }
            }
        }
        out
    }

    pub fn agreed_master(&self) -> Option<String> {
        lock(&self.agreed).clone()
    }

    pub fn events_since(&self, since: Instant) -> Vec<Event> {
        lock(&self.events)
            .iter()
            .filter(|e| match e {
                Event::ReadyAfterRestart(_, at, _)
                | Event::NotReady(_, at, _)
                | Event::MasterSwitch(at, _) => *at >= since,
            })
            .cloned()
            .collect()
    }

    /// What is left of a StatefulSet rollout (either kind's): `None` when both sets run
    /// their current spec on every pod, all Ready. Right after an apply the controller has
    /// not yet seen the new spec (`observedGeneration` behind `generation`): that counts as
    /// rolling, so a scenario that applies a change waits for the whole roll.
    pub fn rolling(&self) -> Result<Option<String>, String> {
        for set in [&self.redis_set, &self.sentinel_set] {
            let json = self
                .cluster
                .kubectl(&["get", "statefulset", set, "-o", "json"])?;
            let value: serde_json::Value =
                serde_json::from_str(&json).map_err(|e| format!("StatefulSet `{set}`: {e}"))?;
            let (meta, spec, status) = (&value["metadata"], &value["spec"], &value["status"]);
            let replicas = spec["replicas"].as_i64().unwrap_or(1);
            let behind = status["observedGeneration"].as_i64() < meta["generation"].as_i64()
                || status["updateRevision"] != status["currentRevision"]
                || status["updatedReplicas"].as_i64().unwrap_or(0) < replicas
                || status["readyReplicas"].as_i64().unwrap_or(0) < replicas;
            if behind {
                return Ok(Some(format!("`{set}` is rolling: {status}")));
            }
        }
        Ok(None)
    }

    /// Every pod Ready and none restarting, within `deadline`.
    pub fn wait_settled(&self, deadline: Duration) -> Result<(), String> {
        let start = Instant::now();
        loop {
            let pending: Vec<String> = lock(&self.tracks)
                .iter()
                .filter(|(_, t)| !t.ready || t.restarted_at.is_some())
                .map(|(n, _)| n.clone())
                .collect();
            let known = lock(&self.tracks).len();
            if pending.is_empty() && known == self.all_pods().len() {
                return Ok(());
            }
            if start.elapsed() > deadline {
                return Err(format!(
                    "pods not Ready within {deadline:?}: {pending:?} ({known} pods seen)"
                ));
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

/// Writes `SET k<i> <i>` to the master the sentinels name, counting a key only after `SET`
/// answered OK and `WAIT 1 1000` reported at least one replica.
pub struct Writer {
    stop: AtomicBool,
    acked: Mutex<Vec<String>>,
    /// When each acknowledgement came (for the writes stalled during a scenario).
    acked_at: Mutex<Vec<Instant>>,
}

impl Default for Writer {
    fn default() -> Self {
        Self::new()
    }
}

impl Writer {
    pub fn new() -> Writer {
        Writer {
            stop: AtomicBool::new(false),
            acked: Mutex::default(),
            acked_at: Mutex::default(),
        }
    }

    /// Every key acknowledged so far (and not yet reported lost).
    pub fn acked(&self) -> Vec<String> {
        lock(&self.acked).clone()
    }

    /// The longest time between `from`, the acknowledgements after it, and `to`.
    pub fn longest_gap(&self, from: Instant, to: Instant) -> Duration {
        let mut points: Vec<Instant> = lock(&self.acked_at)
            .iter()
            .copied()
            .filter(|t| *t >= from && *t <= to)
            .collect();
        points.insert(0, from);
        points.push(to);
        points
            .windows(2)
            .map(|w| w[1] - w[0])
            .max()
            .unwrap_or_default()
    }

    pub fn run(&self, group: &Group) {
        let mut current: Option<(String, redis::Connection)> = None;
        let mut checked = Instant::now();
        let mut i = 0u64;
        while !self.stop.load(Ordering::SeqCst) {
            // Follow the sentinels, as a client does: re-ask every second.
            if current.is_none() || checked.elapsed() > Duration::from_secs(1) {
                checked = Instant::now();
                let master = group
                    .sentinel_pods()
                    .iter()
                    .find_map(|s| group.sentinel_master(s).ok());
                if master != current.as_ref().map(|(m, _)| m.clone()) {
                    current = master.and_then(|m| {
                        let con = group
                            .connect(&m, group.redis_port, Duration::from_secs(2))
                            .ok()?;
                        Some((m, con))
                    });
                }
            }
            let Some((_, con)) = current.as_mut() else {
                std::thread::sleep(Duration::from_millis(200));
                continue;
            };
            i += 1;
            let key = format!("k{i}");
            let set: redis::RedisResult<String> = redis::cmd("SET").arg(&key).arg(i).query(con);
            let acked = set.is_ok_and(|ok| ok == "OK")
                && redis::cmd("WAIT")
                    .arg(1)
                    .arg(1000)
                    .query::<i64>(con)
                    .is_ok_and(|n| n >= 1);
            if acked {
                lock(&self.acked).push(key);
                lock(&self.acked_at).push(Instant::now());
                std::thread::sleep(Duration::from_millis(20));
            } else {
                current = None;
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

/// What one scenario measured.
#[derive(Debug, Default)]
pub struct Figures {
    pub failover: Option<Duration>,
    /// Per replica: linked to the final master this long after the later of the last master
    /// switch and its own (re)start; the largest.
    pub linked_after_switch: Option<Duration>,
    pub longest_not_ready_after_restart: Duration,
    pub longest_not_ready: Duration,
    pub acked_keys: usize,
    /// The longest time without an acknowledged write, from the disturbance to the verdict.
    pub writes_stalled: Duration,
    /// What the disturbance measured itself (`Group::note`).
    pub notes: Vec<(String, Duration)>,
}

/// A scenario's figures, also when it failed, and its verdict.
pub type Outcome = (Figures, Result<(), String>);

/// Replicas linked (`master_link_status:up`) to the one pod reporting role:master, now.
pub fn linked_replicas(group: &Group) -> Vec<String> {
    let mut masters = Vec::new();
    let mut replicas = Vec::new();
    for pod in group.redis_pods() {
        let Ok(info) = group.replication(&pod) else {
            continue;
        };
        match info.get("role").map(String::as_str) {
            Some("master") => masters.push(pod),
            _ => replicas.push((pod, info)),
        }
    }
    let [master] = masters.as_slice() else {
        return Vec::new();
    };
    replicas
        .into_iter()
        .filter(|(_, info)| {
            let host = info.get("master_host").cloned().unwrap_or_default();
            group.pod_of_host(&host).as_deref() == Some(master.as_str())
                && info.get("master_link_status").map(String::as_str) == Some("up")
        })
        .map(|(pod, _)| pod)
        .collect()
}

/// Runs `disturb` (which returns the master it disturbed, if any) and checks the four
/// assertions. The figures, also when the scenario failed, and the verdict.
pub fn scenario(
    group: &Group,
    writer: &Writer,
    name: &str,
    disturb: impl FnOnce(&Group) -> Result<Option<String>, String>,
) -> Outcome {
    eprintln!("== {name}");
    let start = Instant::now();
    let mut figures = Figures::default();
    let mut problems = Vec::new();
    let verdict = run_scenario(
        group,
        writer,
        name,
        start,
        disturb,
        &mut figures,
        &mut problems,
    );
    if let Err(why) = verdict {
        problems.push(why);
    }
    eprintln!("  {figures:?}");
    if !problems.is_empty() {
        // The logs of this moment: later scenarios replace the pods, and with them the story.
        eprintln!(
            "  {name} failed: {}\n{}",
            problems.join("; "),
            group.report()
        );
    }
    if problems.is_empty() {
        (figures, Ok(()))
    } else {
        (figures, Err(problems.join("; ")))
    }
}

pub fn run_scenario(
    group: &Group,
    writer: &Writer,
    name: &str,
    start: Instant,
    disturb: impl FnOnce(&Group) -> Result<Option<String>, String>,
    figures: &mut Figures,
    problems: &mut Vec<String>,
) -> Result<(), String> {
    let fresh = name.ends_with("fresh start");
    lock(&group.notes).clear();
    let disturbed = disturb(group);
    figures.notes = std::mem::take(&mut *lock(&group.notes));
    let old_master = disturbed?;
    // Links are watched in the background (`Group::look_links`) also while a long
    // disturbance (a rollout) runs; this loop only looks more often.
    let look = |group: &Group| group.look_links();
    // Failover: every sentinel names another pod than the disturbed master.
    if let Some(old) = &old_master {
        let deadline = Instant::now() + CONVERGE;
        loop {
            let switched = group.events_since(start).iter().find_map(|e| match e {
                Event::MasterSwitch(at, pod) if pod != old => Some(*at),
                _ => None,
            });
            if let Some(at) = switched {
                figures.failover = Some(at - start);
                break;
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "no sentinel agreement on a master other than `{old}` within {CONVERGE:?}"
                ));
            }
            look(group);
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    // Converged: one master, every replica linked, every sentinel naming it.
    let limit = CONVERGE.max(READY);
    let deadline = Instant::now() + limit;
    let master = loop {
        look(group);
        // A scenario that applied a change is not over before both StatefulSets rolled.
        match group.converged_once().and_then(|m| match group.rolling()? {
            Some(rolling) => Err(rolling),
            None => Ok(m),
        }) {
            Ok(master) => break master,
            Err(why) if Instant::now() > deadline => {
                return Err(format!("not converged within {limit:?}: {why}"));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    };
    look(group);
    group.wait_settled(READY)?;
    // Every pod stays Ready and the group stays converged: the last check of this scenario.
    let master_now = group.converged_once()?;
    if master_now != master {
        problems.push(format!(
            "master moved from `{master}` to `{master_now}` after converging"
        ));
    }
    let events = group.events_since(start);
    let last_switch = events
        .iter()
        .filter_map(|e| match e {
            Event::MasterSwitch(at, _) => Some(*at),
            _ => None,
        })
        .max();
    // When each pod was last (re)started in this scenario: when its new incarnation was
    // first listed.
    let restarted: BTreeMap<&str, Instant> = events
        .iter()
        .filter_map(|e| match e {
            Event::ReadyAfterRestart(pod, at, took) => Some((pod.as_str(), *at - *took)),
            _ => None,
        })
        .collect();
    if let Some(switch) = last_switch {
        let linked_since = lock(&group.linked_since).clone();
        for (pod, since) in &linked_since {
            // A replica that was not running at the switch cannot be linked before it runs:
            // its clock starts at the later of the two.
            let from = restarted
                .get(pod.as_str())
                .map_or(switch, |r| (*r).max(switch));
            let linked = since.saturating_duration_since(from);
            eprintln!(
                "  {pod}: linked {linked:.1?} after the {}",
                if from == switch {
                    "last master switch"
                } else {
                    "later of the switch and its restart"
                }
            );
            figures.linked_after_switch = figures.linked_after_switch.max(Some(linked));
            if linked > LINKED_WITHIN {
                problems.push(format!(
                    "replica `{pod}` linked {linked:.1?} after the last master switch or its own restart (limit {LINKED_WITHIN:?})"
                ));
            }
        }
    }
    for event in &events {
        match event {
            Event::ReadyAfterRestart(pod, _, took) => {
                figures.longest_not_ready_after_restart =
                    figures.longest_not_ready_after_restart.max(*took);
                // A fresh pod's first start (image, volume, first sync) is not a restart.
                if fresh {
                    eprintln!("  {pod}: Ready {took:.1?} after it was first listed");
                } else {
                    eprintln!("  {pod}: Ready {took:.1?} after its restart");
                    if *took > NOT_READY_LIMIT {
                        problems.push(format!(
                            "`{pod}` NotReady {took:.1?} after its restart (limit {NOT_READY_LIMIT:?})"
                        ));
                    }
                }
            }
            Event::NotReady(pod, _, took) => {
                figures.longest_not_ready = figures.longest_not_ready.max(*took);
                eprintln!("  {pod}: NotReady (or gone) for {took:.1?}");
            }
            Event::MasterSwitch(at, pod) => {
                eprintln!("  sentinels agree on `{pod}` at +{:.1?}", *at - start);
            }
        }
    }
    figures.writes_stalled = writer.longest_gap(start, Instant::now());
    let keys = lock(&writer.acked).clone();
    figures.acked_keys = keys.len();
    let missing = group.missing_keys(&master, &keys)?;
    if !missing.is_empty() {
        problems.push(format!(
            "{} of {} WAIT-acknowledged keys lost on `{master}` (e.g. {:?})",
            missing.len(),
            keys.len(),
            &missing[..missing.len().min(5)]
        ));
        // Count each loss once: later scenarios judge only what they lose.
        lock(&writer.acked).retain(|k| !missing.contains(k));
    }
    eprintln!(
        "  master `{master}`, {} acknowledged keys all checked",
        keys.len()
    );
    Ok(())
}

/// The container ID of `container` in `pod`, as containerd knows it.
pub fn container_id(cluster: &Cluster, pod: &str, container: &str) -> Result<String, String> {
    let path =
        format!("jsonpath={{.status.containerStatuses[?(@.name==\"{container}\")].containerID}}");
    let id = cluster.kubectl(&["get", "pod", pod, "-o", &path])?;
    id.trim()
        .strip_prefix("containerd://")
        .map(str::to_string)
        .ok_or_else(|| format!("`{pod}` has no running `{container}` container: `{id}`"))
}

/// The seed's test: `kubectl delete pod` of the master every sentinel names (graceful: its
/// preStop hands over). Returns the pod disturbed.
pub fn delete_master(g: &Group) -> Result<Option<String>, String> {
    let master = g.agreed_master().ok_or("no agreed master")?;
    g.cluster
        .kubectl(&["delete", "pod", &master, "--wait=false"])?;
    Ok(Some(master))
}

/// SIGKILL of the master's `redis-server` (no preStop): the container restarts in place.
pub fn kill_master_redis(g: &Group) -> Result<Option<String>, String> {
    let master = g.agreed_master().ok_or("no agreed master")?;
    let pid = redis_server_pid(g.cluster, &master)?;
    // SAFETY: kill(2) on a PID just read from containerd's task list.
    let rc = unsafe { libc::kill(pid, libc::SIGKILL) };
    if rc != 0 {
        return Err(format!(
            "kill -9 {pid}: {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(Some(master))
}

/// Host PID of the `redis-server` process of `pod`'s `redis` container (the container's
/// init, or a process below it).
pub fn redis_server_pid(cluster: &Cluster, pod: &str) -> Result<i32, String> {
    let id = container_id(cluster, pod, "redis")?;
    let tasks = cluster.ctr(&["-n", "k8s.io", "tasks", "ls"])?;
    let init: i32 = tasks
        .lines()
        .find_map(|l| {
            let mut words = l.split_whitespace();
            (words.next() == Some(id.as_str())).then(|| words.next()?.parse().ok())?
        })
        .ok_or_else(|| format!("containerd runs no task `{id}` for `{pod}`"))?;
    let comm = |pid: i32| std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    if comm(init).trim() == "redis-server" {
        return Ok(init);
    }
    // Below the init: any process whose parent chain reaches it.
    let parent = |pid: i32| -> Option<i32> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        stat.rsplit_once(')')?
            .1
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    };
    for entry in std::fs::read_dir("/proc")
        .map_err(|e| format!("/proc: {e}"))?
        .flatten()
    {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if comm(pid).trim() != "redis-server" {
            continue;
        }
        let mut up = parent(pid);
        while let Some(p) = up {
            if p == init {
                return Ok(pid);
            }
            if p <= 1 {
                break;
            }
            up = parent(p);
        }
    }
    Err(format!(
        "no redis-server process in `{pod}` (init {init} is `{}`)",
        comm(init).trim()
    ))
}

/// A scenario's disturbance: given the group, it disturbs it and returns the master it
/// disturbed (whose replacement the sentinels must agree on), if any.
pub type Disturb<'s> = Box<dyn FnOnce(&Group) -> Result<Option<String>, String> + Send + 's>;

/// Runs `scenarios` in order on `group` (which must have been applied), under one writer and
/// one monitor, on a thread inside the cluster's network namespace (clients reach pod IPs
/// only there). Each scenario's figures and verdict, by name; a failing scenario does not
/// stop the next one.
pub fn run_scenarios(group: &Group, scenarios: Vec<(&str, Disturb)>) -> Vec<(String, Outcome)> {
    run_scenarios_with(group, scenarios, |_| {})
}

/// `run_scenarios`, with `background` running beside the monitor and the writer, inside the
/// cluster's network namespace, until the flag it is given turns true.
pub fn run_scenarios_with(
    group: &Group,
    scenarios: Vec<(&str, Disturb)>,
    background: impl Fn(&AtomicBool) + Send + Sync,
) -> Vec<(String, Outcome)> {
    let writer = Writer::new();
    let monitor_stop = Arc::new(AtomicBool::new(false));
    /// Stops the background threads also when a scenario panics: the scope joins them.
    struct StopOnDrop<'a>(&'a AtomicBool, &'a AtomicBool);
    impl Drop for StopOnDrop<'_> {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
            self.1.store(true, Ordering::SeqCst);
        }
    }
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                group.cluster.enter_netns();
                std::thread::scope(|inner| {
                    let _stop = StopOnDrop(&writer.stop, &monitor_stop);
                    inner.spawn(|| {
                        while !monitor_stop.load(Ordering::SeqCst) {
                            group.observe();
                            std::thread::sleep(Duration::from_millis(250));
                        }
                    });
                    inner.spawn(|| {
                        while !monitor_stop.load(Ordering::SeqCst) {
                            group.look_links();
                            std::thread::sleep(Duration::from_millis(200));
                        }
                    });
                    inner.spawn(|| writer.run(group));
                    inner.spawn(|| background(&monitor_stop));
                    scenarios
                        .into_iter()
                        .map(|(name, disturb)| {
                            let outcome = scenario(group, &writer, name, disturb);
                            (name.to_string(), outcome)
                        })
                        .collect()
                })
            })
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// Prints every scenario's figures (and the cluster's pods when one failed), then panics
/// with the summary if any scenario failed. `total`: when the test started.
pub fn judge(cluster: &Cluster, results: &[(String, Outcome)], total: Instant) {
    let mut summary = Vec::new();
    let mut longest_not_ready = Duration::ZERO;
    for (name, (f, verdict)) in results {
        longest_not_ready = longest_not_ready.max(f.longest_not_ready);
        if !name.ends_with("fresh start") {
            longest_not_ready = longest_not_ready.max(f.longest_not_ready_after_restart);
        }
        let shown = |d: Option<Duration>| d.map_or("-".to_string(), |d| format!("{d:.1?}"));
        let mut figures = format!(
            "failover {}, replicas linked {} after the last switch, longest NotReady after a (re)start {:.1?}, longest NotReady {:.1?}, writes stalled {:.1?}, {} acknowledged keys",
            shown(f.failover),
            shown(f.linked_after_switch),
            f.longest_not_ready_after_restart,
            f.longest_not_ready,
            f.writes_stalled,
            f.acked_keys
        );
        for (what, took) in &f.notes {
            figures.push_str(&format!(", {what} {took:.1?}"));
        }
        match verdict {
            Ok(()) => summary.push(format!("PASS {name}: {figures}")),
            Err(e) => summary.push(format!("FAIL {name}: {e} ({figures})")),
        }
    }
    summary.push(format!(
        "longest NotReady: {longest_not_ready:.1?}; cluster Ready {:.1?}; test {:.1?}",
        cluster.ready_after,
        total.elapsed()
    ));
    eprintln!("{}", summary.join("\n"));
    if results.iter().any(|(_, (_, r))| r.is_err()) {
        eprintln!(
            "{}",
            cluster
                .kubectl(&["get", "pods", "-o", "wide"])
                .unwrap_or_default()
        );
        panic!("scenarios failed:\n{}", summary.join("\n"));
    }
}
