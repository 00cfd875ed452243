//! The rendered Kubernetes manifests, run on the local engine by the pod harness
//! (tests/kube): the harness's own check on a tiny hand-written manifest, then the
//! scenarios the redis group must survive. Every scenario asserts that no key a `WAIT 1`
//! acknowledged is lost, that exactly one node reports `role:master` after convergence,
//! and that every sentinel names that node.

mod common;
mod kube;

use std::time::Duration;

use kube::{Cluster, Options};

fn selftest_manifest() -> String {
    std::fs::read_to_string(common::fixture("kube/harness-selftest.yaml"))
        .expect("read the harness manifest")
}

/// `sh -c SCRIPT` in the pod's `main` container; stdout, required to exit 0.
fn sh(cluster: &Cluster, pod: &str, script: &str) -> String {
    let (code, out, err) = cluster.exec(pod, "main", &["sh", "-c", script]);
    assert_eq!(code, 0, "`{script}` in {pod}: exit {code}: {out}{err}");
    out.trim().to_string()
}

#[test]
fn harness_runs_pods_like_a_kubelet() {
    let _lock = common::docker_lock();
    let cluster = Cluster::start("harness", &selftest_manifest(), Options::default());
    let pods = cluster.statefulset_pods("t-web");
    cluster.wait_ready(&pods, Duration::from_secs(60));
    let ip0 = cluster.pod_ip("t-web-0").expect("t-web-0 exists");
    let ip1 = cluster.pod_ip("t-web-1").expect("t-web-1 exists");

    // DNS: the pod's own names, the headless Service (one record per pod), and a ClusterIP
    // Service at the gateway, proxied to a Ready pod.
    let fqdn = sh(
        &cluster,
        "t-web-0",
        "getent hosts t-web-1.t-web.default.svc.cluster.local",
    );
    assert!(fqdn.starts_with(&ip1.to_string()), "{fqdn}");
    let short = sh(&cluster, "t-web-1", "getent hosts t-web-0.t-web");
    assert!(short.starts_with(&ip0.to_string()), "{short}");
    let all = sh(
        &cluster,
        "t-web-0",
        "getent ahostsv4 t-web | awk '{print $1}' | sort -u",
    );
    assert!(
        all.contains(&ip0.to_string()) && all.contains(&ip1.to_string()),
        "{all}"
    );
    let front = sh(
        &cluster,
        "t-web-0",
        "getent hosts t-front.default.svc.cluster.local",
    );
    assert!(front.starts_with(&cluster.gateway().to_string()), "{front}");
    assert_eq!(
        sh(&cluster, "t-web-0", "redis-cli -h t-front -p 7000 ping"),
        "PONG"
    );
    assert_eq!(
        cluster.resolve("t-web-1.t-web.default.svc.cluster.local"),
        Some(ip1)
    );

    // Env: fieldRef, secretKeyRef (compared by hash, never printed), configMapKeyRef, $(VAR).
    let env = sh(
        &cluster,
        "t-web-0",
        "echo $POD_NAME $POD_NAMESPACE $POD_IP $GREETING $COMPOSED",
    );
    assert_eq!(env, format!("t-web-0 default {ip0} hello t-web-0-hello"));
    assert_eq!(sh(&cluster, "t-web-0", "echo $CM_greeting"), "hello");
    assert_eq!(
        sh(
            &cluster,
            "t-web-0",
            "cat /proc/sys/kernel/hostname; hostname -f 2>/dev/null || getent hosts t-web-0 | awk '{print $2}'"
        ),
        "t-web-0\nt-web-0.t-web.default.svc.cluster.local"
    );
    assert_eq!(
        sh(
            &cluster,
            "t-web-0",
            "stat -c '%n %a' /both/greeting /both/token"
        ),
        "/both/greeting 644\n/both/token 400"
    );
    assert_eq!(
        sh(
            &cluster,
            "t-web-0",
            "printf %s \"$TOKEN\" | sha256sum | cut -c1-16"
        ),
        sh(
            &cluster,
            "t-web-0",
            "printf %s not-a-real-password | sha256sum | cut -c1-16"
        )
    );

    // Security context and volumes: uid/gid, fsGroup as a supplementary group and on the
    // volumes, ConfigMap files root-owned and read-only, no-new-privileges, no capabilities.
    assert_eq!(
        sh(&cluster, "t-web-0", "id -u; id -g; id -G"),
        "999\n999\n999"
    );
    assert_eq!(
        sh(
            &cluster,
            "t-web-0",
            "stat -c '%u:%g %a' /config /config/hello.txt /scratch /data"
        ),
        "0:999 755\n0:999 644\n0:999 2777\n0:999 2775"
    );
    let (code, _, _) = cluster.exec("t-web-0", "main", &["sh", "-c", "echo x > /config/x"]);
    assert_ne!(code, 0, "a ConfigMap volume must be read-only");
    assert_eq!(
        sh(
            &cluster,
            "t-web-0",
            "grep -E '^(NoNewPrivs|CapEff)' /proc/self/status | awk '{print $2}'"
        ),
        "0000000000000000\n1"
    );

    // Restart in place: same address, emptyDir kept, restartCount + 1.
    sh(&cluster, "t-web-0", "echo kept > /scratch/marker");
    cluster.kill_main_process("t-web-0", "main");
    common::poll(
        "t-web-0 restarted in place",
        Duration::from_secs(30),
        || (cluster.restart_count("t-web-0") == 1 && cluster.is_ready("t-web-0")).then_some(()),
    );
    assert_eq!(cluster.pod_ip("t-web-0"), Some(ip0));
    assert_eq!(sh(&cluster, "t-web-0", "cat /scratch/marker"), "kept");

    // A failing liveness probe restarts the container.
    sh(&cluster, "t-web-1", "touch /scratch/die");
    common::poll(
        "t-web-1 restarted by liveness",
        Duration::from_secs(30),
        || (cluster.restart_count("t-web-1") == 1 && cluster.is_ready("t-web-1")).then_some(()),
    );
    assert!(!cluster.probe_failures("t-web-1").is_empty());

    // Deletion: preStop runs, the pod comes back with a new address, its claim kept and
    // its emptyDir fresh.
    let uid1 = cluster.pod_uid("t-web-1");
    // The liveness kill ran preStop too: start from no trace of it.
    sh(
        &cluster,
        "t-web-1",
        "echo gone > /scratch/marker; rm /data/prestop",
    );
    cluster.delete_pod("t-web-1");
    common::poll("t-web-1 re-created", Duration::from_secs(30), || {
        (cluster.pod_uid("t-web-1") != uid1 && cluster.is_ready("t-web-1")).then_some(())
    });
    let new_ip1 = cluster.pod_ip("t-web-1").expect("t-web-1 exists");
    assert_ne!(new_ip1, ip1, "a re-created pod gets a new address");
    assert_eq!(sh(&cluster, "t-web-1", "cat /data/prestop"), "stopped");
    assert_eq!(sh(&cluster, "t-web-1", "wc -l < /data/starts"), "3");
    assert_eq!(sh(&cluster, "t-web-1", "ls /scratch"), "ready");
    let fqdn = sh(&cluster, "t-web-0", "getent hosts t-web-1.t-web");
    assert!(fqdn.starts_with(&new_ip1.to_string()), "{fqdn}");

    // A held pod is Pending: not created, its name does not resolve.
    cluster.hold("t-web-1");
    cluster.delete_pod("t-web-1");
    let (code, _, _) = cluster.exec("t-web-0", "main", &["getent", "hosts", "t-web-1.t-web"]);
    assert_ne!(code, 0, "a Pending pod's name must not resolve");
    cluster.release("t-web-1");
    cluster.wait_ready(&pods, Duration::from_secs(30));

    // runAsNonRoot with an image that runs as root: never started.
    assert!(!cluster.is_ready("t-root-0"));
    assert!(
        cluster
            .events()
            .iter()
            .any(|e| e.contains("t-root-0") && e.contains("CreateContainerConfigError")),
        "{:?}",
        cluster.events()
    );
}

#[test]
fn harness_orders_pods_runs_init_containers_and_openshift_uids() {
    let _lock = common::docker_lock();
    let manifest = std::fs::read_to_string(common::fixture("kube/harness-ordered.yaml"))
        .expect("read the harness manifest");
    let options = Options {
        openshift_uids: true,
        ..Options::default()
    };
    let cluster = Cluster::start("ordered", &manifest, options);
    // OrderedReady: t-ord-1 is not created while t-ord-0 is not Ready.
    common::poll("t-ord-0 running", Duration::from_secs(60), || {
        let (code, out, _) = cluster.exec("t-ord-0", "main", &["cat", "/work/init-uid"]);
        (code == 0).then_some(out)
    });
    // Showing that something does not happen takes a wait: eight controller passes.
    std::thread::sleep(Duration::from_secs(2));
    assert!(!cluster.is_ready("t-ord-0"));
    assert_eq!(
        cluster.pod_ip("t-ord-1"),
        None,
        "t-ord-1 created before t-ord-0 was Ready"
    );
    assert_eq!(
        sh(&cluster, "t-ord-0", "cat /work/init-uid; id -u; id -g"),
        "1000650000\n1000650000\n0"
    );
    let (code, _, _) = cluster.exec("t-ord-0", "main", &["touch", "/etc/x"]);
    assert_ne!(code, 0, "the root filesystem must be read-only");
    sh(&cluster, "t-ord-0", "touch /work/ready");
    common::poll("t-ord-1 created", Duration::from_secs(30), || {
        cluster.pod_ip("t-ord-1")
    });
}

// ---------------------------------------------------------------------------------------
// The redis group's scenarios.

/// How long a group may take to agree on one master after a disturbance.
const CONVERGE: Duration = Duration::from_secs(120);
/// How long pods may take to be Ready again.
const READY: Duration = Duration::from_secs(180);

/// A connection to `host:port` as `user`.
fn connect_as(
    host: &str,
    port: u16,
    user: &str,
    password: &str,
) -> redis::RedisResult<redis::Connection> {
    use redis::IntoConnectionInfo;
    let info = redis::ConnectionAddr::Tcp(host.to_string(), port)
        .into_connection_info()?
        .set_redis_settings(
            redis::RedisConnectionInfo::default()
                .set_username(user)
                .set_password(password),
        );
    let con = redis::Client::open(info)?.get_connection_with_timeout(Duration::from_secs(5))?;
    con.set_read_timeout(Some(Duration::from_secs(5)))?;
    con.set_write_timeout(Some(Duration::from_secs(5)))?;
    Ok(con)
}

/// The rendered group running in an emulated cluster, with the names read from its
/// manifests.
struct Group {
    cluster: Cluster,
    yaml: String,
    redis_set: String,
    sentinel_set: String,
    redis_port: u16,
    sentinel_port: u16,
    master_name: String,
    password: String,
    /// The user the test logs in as: `rcluster` when the fixture turns `default` off.
    user: Option<String>,
}

/// A password for one test run, never printed.
fn fresh_password() -> String {
    use sha2::Digest as _;
    let seed = format!("{}-{:?}", std::process::id(), std::time::SystemTime::now());
    hex::encode(sha2::Sha256::digest(seed.as_bytes()))[..32].to_string()
}

/// `rcluster -f FIXTURE render --format k8s --show-secrets`, the password in the variable
/// the fixture names. `RCLUSTER_K8S_BIN` names another rcluster binary to render with (to
/// try another branch's manifests on this harness).
fn render(fixture: &str, password: &str) -> String {
    render_file(&common::fixture(fixture), password)
}

/// The same for a topology file anywhere.
fn render_file(topology: &std::path::Path, password: &str) -> String {
    let binary = std::env::var_os("RCLUSTER_K8S_BIN")
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_rcluster").into());
    let out = std::process::Command::new(binary)
        .arg("-f")
        .arg(topology)
        .args(["render", "--format", "k8s", "--show-secrets"])
        .env("RCLUSTER_K8S_TEST_PASSWORD", password)
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
fn set_with_container(manifests: &kube::Manifests, container: &str) -> (String, u16) {
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

/// The Secret and key the redis pods read their password from: an env `secretKeyRef`, or
/// a secret volume (its `password` key, or its only key).
fn password_ref(manifests: &kube::Manifests, set: &str) -> (String, String) {
    let spec = manifests.stateful_sets[set]
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .expect("a pod template");
    let from_env = spec
        .containers
        .iter()
        .flat_map(|c| c.env.iter().flatten())
        .find_map(|e| {
            let r = e.value_from.as_ref()?.secret_key_ref.as_ref()?;
            Some((r.name.clone(), r.key.clone()))
        });
    if let Some(found) = from_env {
        return found;
    }
    let secret = spec
        .volumes
        .iter()
        .flatten()
        .find_map(|v| {
            v.secret
                .as_ref()
                .and_then(|s| s.secret_name.clone())
                .or_else(|| {
                    v.projected
                        .as_ref()?
                        .sources
                        .iter()
                        .flatten()
                        .find_map(|p| p.secret.as_ref().map(|s| s.name.clone()))
                })
        })
        .expect("the redis pods read a Secret, by env or volume");
    let keys: Vec<String> = manifests
        .secret_items(&secret)
        .unwrap_or_default()
        .into_keys()
        .collect();
    let key = if keys.iter().any(|k| k == "password") {
        "password".to_string()
    } else {
        assert_eq!(
            keys.len(),
            1,
            "which key of Secret `{secret}` is the password?"
        );
        keys[0].clone()
    };
    (secret, key)
}

/// `sentinel monitor NAME ...` in any ConfigMap.
fn master_name(manifests: &kube::Manifests) -> String {
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

impl Group {
    fn start(test: &str, fixture: &str) -> Group {
        Group::start_as(test, fixture, None)
    }

    /// The group of `fixture`, logging in as `user` (`None` = `default`).
    fn start_as(test: &str, fixture: &str, user: Option<&str>) -> Group {
        let yaml = render(fixture, &fresh_password());
        let cluster = Cluster::start(test, &yaml, Options::default());
        let manifests = cluster.manifests();
        let (redis_set, redis_port) = set_with_container(&manifests, "redis");
        let (sentinel_set, sentinel_port) = set_with_container(&manifests, "sentinel");
        let (secret, key) = password_ref(&manifests, &redis_set);
        let password = cluster.secret_value(&secret, &key);
        Group {
            master_name: master_name(&manifests),
            cluster,
            yaml,
            redis_set,
            sentinel_set,
            redis_port,
            sentinel_port,
            password,
            user: user.map(str::to_string),
        }
    }

    fn redis_pods(&self) -> Vec<String> {
        self.cluster.statefulset_pods(&self.redis_set)
    }

    fn sentinel_pods(&self) -> Vec<String> {
        self.cluster.statefulset_pods(&self.sentinel_set)
    }

    fn all_pods(&self) -> Vec<String> {
        let mut pods = self.redis_pods();
        pods.extend(self.sentinel_pods());
        pods
    }

    fn connect(&self, pod: &str, port: u16) -> Result<redis::Connection, String> {
        let ip = self
            .cluster
            .pod_ip(pod)
            .ok_or_else(|| format!("pod `{pod}` does not exist"))?;
        self.connect_ip(ip, port)
            .map_err(|e| format!("cannot connect to `{pod}` ({ip}:{port}): {e}"))
    }

    /// A connection to `ip:port`, logged in as the test's user.
    fn connect_ip(
        &self,
        ip: std::net::Ipv4Addr,
        port: u16,
    ) -> redis::RedisResult<redis::Connection> {
        match &self.user {
            None => common::connect(&ip.to_string(), port, &self.password),
            Some(user) => connect_as(&ip.to_string(), port, user, &self.password),
        }
    }

    /// A name or address a node reported, as an address the test can reach.
    fn address(&self, host: &str) -> Option<std::net::Ipv4Addr> {
        host.parse().ok().or_else(|| self.cluster.resolve(host))
    }

    /// `INFO replication` of a redis pod as key -> value.
    fn replication(&self, pod: &str) -> Result<std::collections::BTreeMap<String, String>, String> {
        let mut con = self.connect(pod, self.redis_port)?;
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

    /// The master a sentinel names, as an address.
    fn sentinel_master(&self, sentinel: &str) -> Result<std::net::Ipv4Addr, String> {
        let mut con = self.connect(sentinel, self.sentinel_port)?;
        let answer: Option<Vec<String>> = redis::cmd("SENTINEL")
            .arg("get-master-addr-by-name")
            .arg(&self.master_name)
            .query(&mut con)
            .map_err(|e| format!("SENTINEL get-master-addr-by-name on `{sentinel}`: {e}"))?;
        let host = answer
            .and_then(|a| a.into_iter().next())
            .ok_or_else(|| format!("`{sentinel}` knows no master"))?;
        self.address(&host)
            .ok_or_else(|| format!("`{sentinel}` names `{host}`, which resolves to no pod"))
    }

    /// The master the first answering sentinel names (what a client does).
    fn master_from_sentinels(&self) -> Option<std::net::Ipv4Addr> {
        self.sentinel_pods()
            .iter()
            .find_map(|s| self.sentinel_master(s).ok())
    }

    /// One look: exactly one of `redis_pods` reports role:master, the others are its
    /// replicas with the link up, and every sentinel names it. The master's pod.
    fn converged_once(&self, redis_pods: &[String]) -> Result<String, String> {
        let mut masters = Vec::new();
        let mut replicas = Vec::new();
        for pod in redis_pods {
            let info = self.replication(pod)?;
            match info.get("role").map(String::as_str) {
                Some("master") => masters.push(pod.clone()),
                _ => replicas.push((pod.clone(), info)),
            }
        }
        let [master] = masters.as_slice() else {
            return Err(format!(
                "{} nodes report role:master: {masters:?}",
                masters.len()
            ));
        };
        let master_ip = self.cluster.pod_ip(master).expect("the master exists");
        for (pod, info) in &replicas {
            let host = info.get("master_host").cloned().unwrap_or_default();
            if self.address(&host) != Some(master_ip) {
                return Err(format!("replica `{pod}` follows `{host}`, not `{master}`"));
            }
            if info.get("master_link_status").map(String::as_str) != Some("up") {
                return Err(format!("replica `{pod}`: link to `{master}` is not up"));
            }
        }
        for sentinel in self.sentinel_pods() {
            let named = self.sentinel_master(&sentinel)?;
            if named != master_ip {
                return Err(format!(
                    "`{sentinel}` names {named}, not `{master}` ({master_ip})"
                ));
            }
        }
        Ok(master.clone())
    }

    /// Poll until converged; the master's pod, or why not.
    fn converge(&self, redis_pods: &[String]) -> Result<String, String> {
        let start = std::time::Instant::now();
        loop {
            match self.converged_once(redis_pods) {
                Ok(master) => return Ok(master),
                Err(why) if start.elapsed() > CONVERGE => {
                    return Err(format!("not converged within {CONVERGE:?}: {why}"));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(250)),
            }
        }
    }

    /// Keys missing on `master` among `keys`.
    fn missing_keys(&self, master: &str, keys: &[String]) -> Result<Vec<String>, String> {
        let mut con = self.connect(master, self.redis_port)?;
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
}

/// Writes `SET k<i> <i>` to the master the sentinels name, counting a key only after
/// `SET` answered OK and `WAIT 1 1000` reported at least one replica.
struct Writer {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    acked: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Writer {
    fn new() -> Writer {
        Writer {
            stop: Default::default(),
            acked: Default::default(),
        }
    }

    fn acked(&self) -> Vec<String> {
        self.acked.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn run(&self, group: &Group) {
        use std::sync::atomic::Ordering;
        let mut current: Option<(std::net::Ipv4Addr, redis::Connection)> = None;
        let mut checked = std::time::Instant::now();
        let mut i = 0u64;
        while !self.stop.load(Ordering::SeqCst) {
            // Follow the sentinels: re-ask them every second.
            if current.is_none() || checked.elapsed() > Duration::from_secs(1) {
                checked = std::time::Instant::now();
                let master = group.master_from_sentinels();
                if master != current.as_ref().map(|(ip, _)| *ip) {
                    current = master.and_then(|ip| {
                        group.connect_ip(ip, group.redis_port).ok().map(|c| (ip, c))
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
                self.acked
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(key);
                std::thread::sleep(Duration::from_millis(20));
            } else {
                current = None;
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

/// The three assertions of every scenario, as a verdict: converged on one master that
/// every sentinel names, and no acknowledged key lost. The master's pod.
fn verdict(group: &Group, writer: &Writer, redis_pods: &[String]) -> Result<String, String> {
    let keys = writer.acked();
    let master = group.converge(redis_pods)?;
    let missing = group.missing_keys(&master, &keys)?;
    if !missing.is_empty() {
        // The logs of this moment: later steps replace the pods, and with them the story.
        eprintln!(
            "{} acknowledged keys lost on `{master}`; the group now:\n{}",
            missing.len(),
            group.cluster.report()
        );
        // Count each loss once: later steps judge only what they lose.
        writer
            .acked
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|k| !missing.contains(k));
        return Err(format!(
            "{} of {} WAIT-acknowledged keys lost on master `{master}` (e.g. {:?})",
            missing.len(),
            keys.len(),
            &missing[..missing.len().min(5)]
        ));
    }
    eprintln!(
        "  converged: master `{master}`, {} acknowledged keys all present",
        keys.len()
    );
    Ok(master)
}

/// Run `steps` with a writer in the background; each step returns Err to fail (the
/// rest still run unless the step says the group is unusable). Panics listing every
/// failed step.
fn with_writer(group: &Group, scenario: impl FnOnce(&Writer) -> Vec<(String, Result<(), String>)>) {
    let writer = Writer::new();
    /// Stops the writer also when the scenario panics: the scope joins it before unwinding.
    struct StopOnDrop<'a>(&'a std::sync::atomic::AtomicBool);
    impl Drop for StopOnDrop<'_> {
        fn drop(&mut self) {
            self.0.store(true, std::sync::atomic::Ordering::SeqCst);
        }
    }
    let results = std::thread::scope(|scope| {
        let _stop = StopOnDrop(&writer.stop);
        scope.spawn(|| writer.run(group));
        scenario(&writer)
    });
    let summary: Vec<String> = results
        .iter()
        .map(|(step, r)| match r {
            Ok(()) => format!("PASS {step}"),
            Err(e) => format!("FAIL {step}: {e}"),
        })
        .collect();
    eprintln!("{}", summary.join("\n"));
    assert!(
        results.iter().all(|(_, r)| r.is_ok()),
        "scenario steps failed:\n{}",
        summary.join("\n")
    );
}

/// The fresh start (Parallel) as a step: every pod Ready, then the verdict. The master,
/// also after a failed verdict when the group converges again (later steps still run).
fn fresh_start(
    group: &Group,
    writer: &Writer,
    results: &mut Vec<(String, Result<(), String>)>,
) -> Option<String> {
    let redis = group.redis_pods();
    let fresh = ready(group).and_then(|()| verdict(group, writer, &redis));
    results.push((
        "fresh start (Parallel)".to_string(),
        fresh.clone().map(|_| ()),
    ));
    match fresh {
        Ok(master) => Some(master),
        Err(_) if ready(group).is_ok() => group.converge(&redis).ok(),
        Err(_) => None,
    }
}

/// While `during` runs, samples every 100 ms whether each sentinel pod is Ready: a
/// sentinel's readiness must not follow the master's health, or the client Service
/// `<name>-sentinel` empties exactly when clients ask it where the master went. The
/// sentinels seen NotReady, with `during`'s result.
fn sentinels_stay_ready<T>(group: &Group, during: impl FnOnce() -> T) -> (Vec<String>, T) {
    let stop = std::sync::atomic::AtomicBool::new(false);
    let seen = std::sync::Mutex::new(std::collections::BTreeSet::new());
    let result = std::thread::scope(|scope| {
        scope.spawn(|| {
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                for s in group.sentinel_pods() {
                    if !group.cluster.is_ready(&s) {
                        seen.lock().unwrap_or_else(|p| p.into_inner()).insert(s);
                    }
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        let result = during();
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        result
    });
    let seen = seen.into_inner().unwrap_or_else(|p| p.into_inner());
    (seen.into_iter().collect(), result)
}

/// Every replica follows the master, linked, and every sentinel names it within `within`
/// (issue 19: within 20 s of the last master switch, none left for Sentinel's
/// `+fix-slave-config` a minute later).
fn converges_within(group: &Group, redis_pods: &[String], within: Duration) -> Result<(), String> {
    let start = std::time::Instant::now();
    loop {
        match group.converged_once(redis_pods) {
            Ok(_) => return Ok(()),
            Err(why) if start.elapsed() > within => {
                return Err(format!("not converged within {within:?}: {why}"));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(250)),
        }
    }
}

/// Wait until `pod` exists with another uid than `before`, and every pod is Ready.
fn wait_recreated(group: &Group, pod: &str, before: &Option<String>) -> Result<(), String> {
    let start = std::time::Instant::now();
    while group.cluster.pod_uid(pod) == *before || group.cluster.pod_uid(pod).is_none() {
        if start.elapsed() > READY {
            return Err(format!("`{pod}` not re-created within {READY:?}"));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    ready(group)
}

fn ready(group: &Group) -> Result<(), String> {
    let start = std::time::Instant::now();
    loop {
        let missing: Vec<String> = group
            .all_pods()
            .into_iter()
            .filter(|p| !group.cluster.is_ready(p))
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        if start.elapsed() > READY {
            return Err(format!("pods {missing:?} not Ready within {READY:?}"));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Fresh start (Parallel), then on the same group: SIGKILL the master's redis-server
/// (restart in place), delete the master pod (back with a new address, as a replica),
/// delete every sentinel pod at once, and, after a failover, delete every pod at once.
#[test]
fn group_survives_kills_and_deletions() {
    let _lock = common::docker_lock();
    let group = Group::start("survives", "k8s-group.toml");
    let redis = group.redis_pods();
    with_writer(&group, |writer| {
        let mut results = Vec::new();
        let Some(mut master) = fresh_start(&group, writer, &mut results) else {
            return results;
        };
        // A failed step ends the scenario only when the group does not converge again.
        let mut step = |name: &str, result: Result<(), String>, master: &mut String| {
            eprintln!(
                "step `{name}`: {}",
                if result.is_ok() { "ok" } else { "FAILED" }
            );
            let ok = result.is_ok();
            results.push((name.to_string(), result));
            if ok {
                return true;
            }
            match group.converge(&redis) {
                Ok(m) => {
                    *master = m;
                    true
                }
                Err(_) => false,
            }
        };
        let enough_keys = |n: usize| {
            common::poll("the writer's acknowledged keys", CONVERGE, || {
                (writer.acked().len() >= n).then_some(())
            })
        };
        enough_keys(50);

        // SIGKILL the master's redis-server: restarted in place, same address.
        let ip = group.cluster.pod_ip(&master);
        let restarts = group.cluster.restart_count(&master);
        group.cluster.kill_main_process(&master, "redis");
        let (not_ready, killed) = sentinels_stay_ready(&group, || {
            let start = std::time::Instant::now();
            while group.cluster.restart_count(&master) == restarts {
                if start.elapsed() > READY {
                    return Err(format!("`{master}` was not restarted"));
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            ready(&group)?;
            if group.cluster.pod_ip(&master) != ip {
                return Err(format!("`{master}` changed address on a restart in place"));
            }
            master = verdict(&group, writer, &redis)?;
            Ok(())
        });
        let killed = killed.and_then(|()| {
            if not_ready.is_empty() {
                Ok(())
            } else {
                Err(format!(
                    "sentinels {not_ready:?} went NotReady during the failover: the client \
                     Service lost them"
                ))
            }
        });
        if !step("SIGKILL the master's redis-server", killed, &mut master) {
            return results;
        }
        let n = writer.acked().len();
        enough_keys(n + 50);

        // Delete the master pod: back with a new address, as a replica.
        let old = master.clone();
        let (ip, uid) = (group.cluster.pod_ip(&old), group.cluster.pod_uid(&old));
        group.cluster.delete_pod(&old);
        let deleted = (|| {
            wait_recreated(&group, &old, &uid)?;
            master = verdict(&group, writer, &redis)?;
            if group.cluster.pod_ip(&old) == ip {
                return Err(format!("`{old}` came back with its old address"));
            }
            if master == old {
                return Err(format!("`{old}` came back as the master, not as a replica"));
            }
            Ok(())
        })();
        if !step("delete the master pod", deleted, &mut master) {
            return results;
        }
        let n = writer.acked().len();
        enough_keys(n + 50);

        // Delete every sentinel pod at once.
        let sentinels = group.sentinel_pods();
        let uids: Vec<_> = sentinels.iter().map(|s| group.cluster.pod_uid(s)).collect();
        group.cluster.delete_pods(&sentinels);
        let all_sentinels = (|| {
            for (s, uid) in sentinels.iter().zip(&uids) {
                wait_recreated(&group, s, uid)?;
            }
            master = verdict(&group, writer, &redis)?;
            Ok(())
        })();
        if !step(
            "delete every sentinel pod at once",
            all_sentinels,
            &mut master,
        ) {
            return results;
        }
        let n = writer.acked().len();
        enough_keys(n + 50);

        // After a failover (ordinal 0 is not the master), delete every pod at once.
        let mut planned_failover = None;
        let failover = (|| {
            if master == redis[0] {
                // A planned failover the way the pods make one: their preStop hook, run by
                // hand, pauses writes while a sentinel moves mastership. (A bare
                // SENTINEL FAILOVER under live writes loses WAIT-acknowledged writes by
                // design: the old master accepts writes until Sentinel demotes it, and the
                // replica that acknowledged them then resyncs from the new master.)
                let (code, out, err) =
                    group
                        .cluster
                        .exec(&master, "redis", &["sh", "/config/prestop.sh"]);
                if code != 0 {
                    return Err(format!("prestop.sh on `{master}`: exit {code}: {out}{err}"));
                }
                let start = std::time::Instant::now();
                loop {
                    if let Ok(m) = group.converged_once(&redis)
                        && m != redis[0]
                    {
                        master = m;
                        break;
                    }
                    if start.elapsed() > CONVERGE {
                        return Err("the planned failover did not finish".to_string());
                    }
                    std::thread::sleep(Duration::from_millis(250));
                }
                // Judge the failover on its own, so a loss is not blamed on the restart
                // below.
                let planned = verdict(&group, writer, &redis).map(|_| ());
                eprintln!(
                    "step `a planned failover (the preStop handover)`: {}",
                    if planned.is_ok() { "ok" } else { "FAILED" }
                );
                planned_failover = Some(planned);
            }
            let n = writer.acked().len();
            enough_keys(n + 50);
            let all = group.all_pods();
            let uids: Vec<_> = all.iter().map(|p| group.cluster.pod_uid(p)).collect();
            eprintln!("  deleting every pod; the master was `{master}`");
            group.cluster.delete_pods(&all);
            for (p, uid) in all.iter().zip(&uids) {
                wait_recreated(&group, p, uid)?;
            }
            verdict(&group, writer, &redis).map(|_| ())
        })();
        if let Some(planned) = planned_failover {
            step(
                "a planned failover (the preStop handover)",
                planned,
                &mut String::new(),
            );
        }
        step(
            "after a failover, delete every pod at once",
            failover,
            &mut String::new(),
        );
        results
    });
}

/// `kubectl rollout restart` of the redis StatefulSet under a writer: pods are replaced
/// from the highest ordinal down, each after the previous one is Ready.
#[test]
fn rolling_update_of_redis_loses_no_acknowledged_write() {
    let _lock = common::docker_lock();
    let group = Group::start("rolling", "k8s-group.toml");
    let redis = group.redis_pods();
    with_writer(&group, |writer| {
        let mut results = Vec::new();
        if fresh_start(&group, writer, &mut results).is_none() {
            return results;
        }
        common::poll("acknowledged keys", CONVERGE, || {
            (writer.acked().len() >= 50).then_some(())
        });
        let restarted = restart_annotation(&group.yaml, &group.redis_set, "1");
        let started = std::time::Instant::now();
        let (not_ready, rolled) = sentinels_stay_ready(&group, || {
            group
                .cluster
                .rolling_update(&restarted, Duration::from_secs(600))
        });
        let took = started.elapsed();
        let mut expected = redis.clone();
        expected.reverse();
        let result = if rolled != expected {
            Err(format!("rolled {rolled:?}, expected {expected:?}"))
        } else if !not_ready.is_empty() {
            Err(format!(
                "sentinels {not_ready:?} went NotReady during the rollout"
            ))
        } else {
            // The master (rolled last) handed over; its preStop hook moved every replica.
            converges_within(&group, &redis, Duration::from_secs(20)).and_then(|()| {
                let n = writer.acked().len();
                common::poll("acknowledged keys after the update", CONVERGE, || {
                    (writer.acked().len() >= n + 50).then_some(())
                });
                verdict(&group, writer, &redis).map(|_| ())
            })
        };
        eprintln!("  the redis rollout took {took:?}");
        results.push((
            "rolling update of the redis StatefulSet".to_string(),
            result,
        ));

        // Both StatefulSets at once (a change to what both kinds share): the redis
        // preStop hook must not ask a sentinel that is being stopped, and a stopping
        // sentinel must not strand a failover it leads.
        let both = restart_annotation(
            &restart_annotation(&restarted, &group.redis_set, "2"),
            &group.sentinel_set,
            "2",
        );
        let redis_only = restart_annotation(&restarted, &group.redis_set, "2");
        let first = format!("{}-{}", group.redis_set, redis.len() - 1);
        let uid = group.cluster.pod_uid(&first);
        let rolled_both = std::thread::scope(|scope| {
            let redis_roll = scope.spawn(|| {
                group
                    .cluster
                    .rolling_update(&redis_only, Duration::from_secs(600))
            });
            // Once the redis rollout has begun, the sentinels' too.
            common::poll("the redis rollout to begin", CONVERGE, || {
                (group.cluster.pod_uid(&first) != uid).then_some(())
            });
            let sentinels = group
                .cluster
                .rolling_update(&both, Duration::from_secs(600));
            let redis = redis_roll.join().unwrap_or_default();
            (redis, sentinels)
        });
        let result = if rolled_both.0.len() != redis.len()
            || rolled_both.1.len() != group.sentinel_pods().len()
        {
            Err(format!("rolled {rolled_both:?}"))
        } else {
            converges_within(&group, &redis, Duration::from_secs(20)).and_then(|()| {
                let n = writer.acked().len();
                common::poll("acknowledged keys after both updates", CONVERGE, || {
                    (writer.acked().len() >= n + 50).then_some(())
                });
                verdict(&group, writer, &redis).map(|_| ())
            })
        };
        results.push(("both StatefulSets rolling at once".to_string(), result));
        results
    });
}

/// The manifests with `kubectl rollout restart`'s annotation (the restart's `stamp`) on
/// one StatefulSet's template.
fn restart_annotation(yaml: &str, set: &str, stamp: &str) -> String {
    let mut docs: Vec<serde_json::Value> =
        serde_saphyr::from_multiple(yaml).expect("the manifests parse");
    for doc in &mut docs {
        if doc["kind"] == "StatefulSet" && doc["metadata"]["name"] == set {
            doc["spec"]["template"]["metadata"]["annotations"] = serde_json::json!({
                "kubectl.kubernetes.io/restartedAt": format!("2026-11-25T00:00:0{stamp}Z")
            });
        }
    }
    serde_saphyr::to_string_multiple(&docs).expect("the manifests serialize")
}

/// A redis pod is Pending (its name does not resolve) while a sentinel pod restarts: the
/// sentinel must start and agree on the master, not wait or crash-loop.
#[test]
fn sentinel_restarts_while_a_redis_pod_is_pending() {
    let _lock = common::docker_lock();
    let group = Group::start("pending", "k8s-group.toml");
    let redis = group.redis_pods();
    with_writer(&group, |writer| {
        let mut results = Vec::new();
        let Some(master) = fresh_start(&group, writer, &mut results) else {
            return results;
        };
        let pending = redis
            .iter()
            .rev()
            .find(|p| **p != master)
            .expect("a replica")
            .clone();
        group.cluster.hold(&pending);
        group.cluster.delete_pod(&pending);
        let present: Vec<String> = redis.iter().filter(|p| **p != pending).cloned().collect();
        let sentinel = group.sentinel_pods()[0].clone();
        let uid = group.cluster.pod_uid(&sentinel);
        group.cluster.delete_pod(&sentinel);
        let result = (|| {
            let start = std::time::Instant::now();
            while group.cluster.pod_uid(&sentinel) == uid || !group.cluster.is_ready(&sentinel) {
                if start.elapsed() > Duration::from_secs(90) {
                    return Err(format!(
                        "`{sentinel}` not Ready within 90s while `{pending}` is Pending"
                    ));
                }
                std::thread::sleep(Duration::from_millis(200));
            }
            let restarts = group.cluster.restart_count(&sentinel);
            if restarts > 0 {
                return Err(format!("`{sentinel}` restarted {restarts} times"));
            }
            verdict(&group, writer, &present).map(|_| ())
        })();
        results.push((
            "a sentinel restarts while a redis pod is Pending".to_string(),
            result,
        ));
        group.cluster.release(&pending);
        let back = ready(&group).and_then(|()| verdict(&group, writer, &redis).map(|_| ()));
        results.push(("the Pending pod is scheduled".to_string(), back));
        results
    });
}

/// A replica restarting with a large dataset stays LOADING for about a minute: its probes
/// must not kill it.
#[test]
fn node_loading_a_large_dataset_is_not_killed_by_its_probes() {
    let _lock = common::docker_lock();
    let group = Group::start("loading", "k8s-group-slow-load.toml");
    let redis = group.redis_pods();
    with_writer(&group, |writer| {
        let mut results = Vec::new();
        let Some(master) = fresh_start(&group, writer, &mut results) else {
            return results;
        };
        let replica = redis
            .iter()
            .find(|p| **p != master)
            .expect("a replica")
            .clone();
        let result = (|| {
            let mut con = group.connect(&replica, group.redis_port)?;
            // DEBUG POPULATE blocks the server until all keys exist: seconds when the
            // machine is idle, more than the connection's 5 s read timeout under load
            // (it failed with EAGAIN in a CI run). A slow answer here is not the failure
            // this scenario looks for.
            con.set_read_timeout(Some(Duration::from_secs(180)))
                .map_err(|e| format!("read timeout: {e}"))?;
            // 1.2 M keys at 50 µs each: a minute of LOADING on restart.
            redis::cmd("DEBUG")
                .arg("POPULATE")
                .arg(1_200_000)
                .arg("bulk")
                .query::<String>(&mut con)
                .map_err(|e| format!("DEBUG POPULATE: {e}"))?;
            con.set_read_timeout(Some(Duration::from_secs(5)))
                .map_err(|e| format!("read timeout: {e}"))?;
            redis::cmd("BGREWRITEAOF")
                .query::<String>(&mut con)
                .map_err(|e| format!("BGREWRITEAOF: {e}"))?;
            let start = std::time::Instant::now();
            loop {
                let info: String = redis::cmd("INFO")
                    .arg("persistence")
                    .query(&mut con)
                    .map_err(|e| format!("INFO: {e}"))?;
                if info.contains("aof_rewrite_in_progress:0")
                    && info.contains("aof_rewrite_scheduled:0")
                {
                    break;
                }
                if start.elapsed() > Duration::from_secs(120) {
                    return Err("the AOF rewrite did not finish".into());
                }
                std::thread::sleep(Duration::from_millis(200));
            }
            let restarts = group.cluster.restart_count(&replica);
            group.cluster.kill_main_process(&replica, "redis");
            let start = std::time::Instant::now();
            let mut saw_loading = false;
            loop {
                let now = group.cluster.restart_count(&replica);
                if now > restarts + 1 {
                    return Err(format!(
                        "`{replica}` was restarted {} times while loading (probe failures: {:?})",
                        now - restarts,
                        group.cluster.probe_failures(&replica)
                    ));
                }
                if let Ok(mut c) = group.connect(&replica, group.redis_port)
                    && let Ok(info) = redis::cmd("INFO")
                        .arg("persistence")
                        .query::<String>(&mut c)
                    && info.contains("loading:1")
                {
                    saw_loading = true;
                }
                if now == restarts + 1 && saw_loading && group.cluster.is_ready(&replica) {
                    break;
                }
                if start.elapsed() > Duration::from_secs(240) {
                    return Err(format!(
                        "`{replica}` not Ready within 240s of its restart (saw LOADING: {saw_loading})"
                    ));
                }
                std::thread::sleep(Duration::from_millis(500));
            }
            verdict(&group, writer, &redis).map(|_| ())
        })();
        results.push((
            "a replica loading a large dataset is not killed".to_string(),
            result,
        ));
        results
    });
}

/// `[acl]` with `default` off on Kubernetes: the start-up scripts fill in the users from
/// the Secret, replicas sync as `rcluster-replication`, Sentinel monitors as
/// `rcluster-sentinel`, the scripts and probes log in as `rcluster`; deleting the master
/// pod fails over without losing an acknowledged write, and every redis pod, the deleted
/// one back as a replica, has the users; the app user (password derived as `rcluster`
/// derives it) writes only its keys.
#[test]
fn acl_group_with_default_off_starts_and_survives_deleting_the_master() {
    let _lock = common::docker_lock();
    let group = Group::start_as("acl", "k8s-group-acl.toml", Some("rcluster"));
    let redis = group.redis_pods();
    with_writer(&group, |writer| {
        let mut results = Vec::new();
        let Some(master) = fresh_start(&group, writer, &mut results) else {
            return results;
        };
        common::poll("the writer's acknowledged keys", CONVERGE, || {
            (writer.acked().len() >= 50).then_some(())
        });
        let old = master.clone();
        let uid = group.cluster.pod_uid(&old);
        group.cluster.delete_pod(&old);
        let deleted = (|| {
            wait_recreated(&group, &old, &uid)?;
            let master = verdict(&group, writer, &redis)?;
            if master == old {
                return Err(format!("`{old}` came back as the master, not as a replica"));
            }
            // Every redis pod has every user, and `default` is off.
            for pod in &redis {
                let mut con = group.connect(pod, group.redis_port)?;
                let users = acl_users(&mut con, pod)?;
                if users
                    != [
                        "app",
                        "default",
                        "rcluster",
                        "rcluster-replication",
                        "rcluster-sentinel",
                    ]
                {
                    return Err(format!("users on `{pod}`: {users:?}"));
                }
                let ip = group.cluster.pod_ip(pod).ok_or("no ip")?;
                if common::connect(&ip.to_string(), group.redis_port, &group.password).is_ok() {
                    return Err(format!("`{pod}` accepts the `default` user"));
                }
            }
            // Every sentinel pod: `default` off, the peer and client users, nothing refused
            // (peers log in as `rcluster-sentinel-peer`), and a Sentinel client logs in as
            // `rcluster-sentinel-client` and finds the new master.
            let client_password =
                rcluster::acl::derived_password(&group.password, "rcluster-sentinel-client");
            for pod in group.sentinel_pods() {
                let mut con = group.connect(&pod, group.sentinel_port)?;
                let users = acl_users(&mut con, &pod)?;
                if users != common::SENTINEL_USERS_DEFAULT_OFF {
                    return Err(format!("users on `{pod}`: {users:?}"));
                }
                let log: Vec<redis::Value> = redis::cmd("ACL")
                    .arg("LOG")
                    .query(&mut con)
                    .map_err(|e| format!("ACL LOG on `{pod}`: {e}"))?;
                if !log.is_empty() {
                    return Err(format!("`{pod}` refused: {log:?}"));
                }
                let ip = group.cluster.pod_ip(&pod).ok_or("no sentinel ip")?;
                if common::connect(&ip.to_string(), group.sentinel_port, &group.password).is_ok() {
                    return Err(format!("`{pod}` accepts the `default` user"));
                }
                let mut client = connect_as(
                    &ip.to_string(),
                    group.sentinel_port,
                    "rcluster-sentinel-client",
                    client_password.expose(),
                )
                .map_err(|e| format!("the Sentinel client logs in to `{pod}`: {e}"))?;
                let addr: Vec<String> = redis::cmd("SENTINEL")
                    .arg("GET-MASTER-ADDR-BY-NAME")
                    .arg(&group.master_name)
                    .query(&mut client)
                    .map_err(|e| format!("the Sentinel client asks `{pod}`: {e}"))?;
                if !addr.first().is_some_and(|h| h.contains(&master)) {
                    return Err(format!("`{pod}` names {addr:?}, not `{master}`"));
                }
            }
            let ip = group.cluster.pod_ip(&master).ok_or("no master ip")?;
            let app = rcluster::acl::derived_password(&group.password, "app");
            let mut con = connect_as(&ip.to_string(), group.redis_port, "app", app.expose())
                .map_err(|e| format!("app logs in to `{master}`: {e}"))?;
            redis::cmd("SET")
                .arg("app:k")
                .arg("v")
                .query::<()>(&mut con)
                .map_err(|e| format!("app writes its key: {e}"))?;
            let other: redis::RedisResult<()> = redis::cmd("SET").arg("k").arg("v").query(&mut con);
            if !matches!(&other, Err(e) if e.code() == Some("NOPERM")) {
                return Err(format!("app wrote another key: {other:?}"));
            }
            Ok(())
        })();
        results.push(("delete the master pod".to_string(), deleted));
        results
    });
}

/// `[tls]` in pods: a fresh start, then deleting the master pod. Every pod turns Ready
/// only when its probe's redis-cli (TLS, the mounted CA and certificate) gets answers;
/// the checks run redis-cli with the same files inside a sentinel pod.
#[test]
fn a_tls_group_starts_and_survives_deleting_the_master() {
    let _lock = common::docker_lock();
    let state = tempfile::tempdir().expect("tempdir");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_rcluster"))
        .arg("-f")
        .arg(common::fixture("k8s-group-tls.toml"))
        .args(["render", "--format", "k8s", "--show-secrets"])
        .env("RCLUSTER_K8S_TEST_PASSWORD", fresh_password())
        .env("RCLUSTER_STATE_DIR", state.path())
        .output()
        .expect("run rcluster render");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let yaml = String::from_utf8(out.stdout).expect("utf-8 manifests");
    let cluster = Cluster::start("tls", &yaml, Options::default());
    cluster.wait_all_ready(&["kt-redis", "kt-sentinel"], READY);

    // redis-cli inside a sentinel pod, over TLS with the pod's own files (or without).
    let cli = |host: &str, port: u16, tls: bool, args: &str| {
        let flags = if tls {
            "--tls --cacert /run/secrets/rcluster-tls/ca.crt \
             --cert /run/secrets/rcluster-tls/tls.crt --key /run/secrets/rcluster-tls/tls.key"
        } else {
            ""
        };
        let script = format!(
            "REDISCLI_AUTH=$(cat /run/secrets/rcluster/password) timeout 5 \
             redis-cli --no-auth-warning {flags} -h {host} -p {port} {args}"
        );
        let (_, stdout, _) = cluster.exec("kt-sentinel-0", "sentinel", &["sh", "-c", &script]);
        stdout.replace('\r', "")
    };
    // Every sentinel names one master, which reports its two replicas connected.
    let converged = |not: Option<&str>| {
        common::poll(
            "the sentinels to agree on a master with 2 replicas over TLS",
            CONVERGE,
            || {
                let named: Vec<String> = (0..3)
                    .map(|i| {
                        let host = format!("kt-sentinel-{i}.kt-sentinel-headless");
                        cli(
                            &host,
                            26379,
                            true,
                            "SENTINEL get-master-addr-by-name mymaster",
                        )
                        .lines()
                        .next()
                        .unwrap_or_default()
                        .to_string()
                    })
                    .collect();
                let master = named[0].clone();
                if master.is_empty() || named.iter().any(|n| *n != master) {
                    return None;
                }
                if not.is_some_and(|old| master.starts_with(old)) {
                    return None;
                }
                let info = cli(&master, 6379, true, "INFO replication");
                (info.contains("role:master") && info.contains("connected_slaves:2"))
                    .then_some(master)
            },
        )
    };
    let master = converged(None);
    // Plaintext is refused by the data nodes and the sentinels; TLS answers.
    let sentinel = "kt-sentinel-1.kt-sentinel-headless";
    assert_eq!(cli(&master, 6379, true, "PING").trim(), "PONG");
    assert_eq!(cli(sentinel, 26379, true, "PING").trim(), "PONG");
    assert!(!cli(&master, 6379, false, "PING").contains("PONG"));
    assert!(!cli(sentinel, 26379, false, "PING").contains("PONG"));

    // Delete the master pod: the sentinels promote a replica over TLS, and the deleted pod
    // comes back (a new address) as a replica of it.
    let pod = master.split('.').next().expect("pod name").to_string();
    let uid = cluster.pod_uid(&pod);
    cluster.delete_pod(&pod);
    common::poll(&format!("`{pod}` to be re-created"), READY, || {
        (cluster.pod_uid(&pod).is_some() && cluster.pod_uid(&pod) != uid).then_some(())
    });
    cluster.wait_all_ready(&["kt-redis", "kt-sentinel"], READY);
    let new_master = converged(Some(&pod));
    assert_ne!(new_master, master);
}

/// `ACL USERS` of `pod`, sorted.
fn acl_users(con: &mut redis::Connection, pod: &str) -> Result<Vec<String>, String> {
    let mut users: Vec<String> = redis::cmd("ACL")
        .arg("USERS")
        .query(con)
        .map_err(|e| format!("ACL USERS on `{pod}`: {e}"))?;
    users.sort();
    Ok(users)
}
