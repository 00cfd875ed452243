//! An emulated Kubernetes cluster on the local Docker engine, for tests of the rendered
//! manifests: a StatefulSet controller, a kubelet (see `kubelet.rs`), cluster DNS through
//! Docker's embedded DNS, and ClusterIP Services through a TCP proxy in the test process.
//!
//! Owns: one Docker network with a known subnet and everything on it, all labelled
//! `io.rcluster.kube-test=<id>` and removed on drop (also when the test panics, after
//! printing every pod's logs and events). It reads everything the pods get from the
//! manifests; it must not know what runs in them. README "The Kubernetes pod harness" says
//! what is emulated and what is not.

#![allow(dead_code)]

mod engine;
mod image;
mod kubelet;
pub mod manifest;

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bollard::models::{Ipam, IpamConfig, NetworkCreateRequest};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{PodSpec, Service};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use sha2::{Digest, Sha256};
use tokio::sync::{Notify, watch};

use engine::Engine;
use kubelet::PodPlan;
pub use manifest::Manifests;

/// Label on every container, volume and network a test cluster creates.
pub const LABEL: &str = "io.rcluster.kube-test";

/// How the emulated cluster behaves.
#[derive(Debug, Clone)]
pub struct Options {
    /// The cluster's DNS domain (`--cluster-domain` of the kubelet).
    pub cluster_domain: String,
    /// OpenShift-like: pods without runAsUser run as a high arbitrary uid, gid 0.
    pub openshift_uids: bool,
    /// Multiplies kubelet's crash-loop back-off (10 s doubling to 300 s).
    pub backoff_scale: f64,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            cluster_domain: "cluster.local".into(),
            openshift_uids: false,
            backoff_scale: 1.0,
        }
    }
}

/// A container's status as kubelet reports it.
#[derive(Debug, Clone, Default)]
pub struct ContainerStatus {
    pub running: bool,
    pub started: bool,
    pub ready: bool,
    pub restart_count: u32,
    /// The last lines of the previous instance (`kubectl logs --previous`).
    pub previous_logs: String,
}

struct Pod {
    plan: PodPlan,
    set: String,
    ordinal: i32,
    /// Hash of the pod template it was created from.
    revision: String,
    labels: BTreeMap<String, String>,
    terminating: bool,
    containers: BTreeMap<String, ContainerStatus>,
    deleting: watch::Sender<bool>,
    start: Option<tokio::task::JoinHandle<Vec<tokio::task::JoinHandle<()>>>>,
}

impl Pod {
    fn ready(&self) -> bool {
        !self.terminating
            && self.plan.spec.containers.iter().all(|c| {
                self.containers
                    .get(&c.name)
                    .is_some_and(|s| s.running && s.ready)
            })
    }
}

struct State {
    manifests: Manifests,
    pods: BTreeMap<String, Pod>,
    held: BTreeSet<String>,
    /// Next host number in the /24: addresses are never reused within a test.
    next_host: u32,
    events: Vec<String>,
}

pub struct Shared {
    id: String,
    engine: Engine,
    image: String,
    options: Options,
    network: String,
    subnet: [u8; 3],
    gateway: Ipv4Addr,
    started: Instant,
    state: Mutex<State>,
    wake: Notify,
    round_robin: AtomicUsize,
    shutdown: AtomicBool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn manifests(&self) -> Manifests {
        self.lock().manifests.clone()
    }

    pub fn event(&self, pod: &str, text: String) {
        let line = format!(
            "[{:7.1}s] {pod}: {text}",
            self.started.elapsed().as_secs_f64()
        );
        self.lock().events.push(line);
    }

    fn probe_failure(&self, pod: &str, text: String) {
        self.event(pod, text);
    }

    /// Delay before the n-th consecutive restart: none for the first, then 10 s doubling
    /// to 300 s, times `backoff_scale`.
    fn backoff(&self, n: u32) -> Duration {
        let secs = match n {
            0 | 1 => 0.0,
            n => (10.0 * 2f64.powi(n as i32 - 2)).min(300.0),
        };
        Duration::from_secs_f64(secs * self.options.backoff_scale)
    }
}

/// `containerPort` named `name` in any container of the pod.
fn named_port(spec: &PodSpec, name: &str) -> Option<u16> {
    spec.containers
        .iter()
        .flat_map(|c| c.ports.iter().flatten())
        .find(|p| p.name.as_deref() == Some(name))
        .map(|p| p.container_port as u16)
}

fn template_hash(set: &StatefulSet) -> String {
    let template = set.spec.as_ref().map(|s| &s.template);
    let json = serde_json::to_string(&template).unwrap_or_default();
    hex::encode(Sha256::digest(json.as_bytes()))[..12].to_string()
}

fn replicas(set: &StatefulSet) -> i32 {
    set.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
}

fn ordered_ready(set: &StatefulSet) -> bool {
    set.spec
        .as_ref()
        .and_then(|s| s.pod_management_policy.as_deref())
        .is_none_or(|p| p == "OrderedReady")
}

fn cluster_ip_services(manifests: &Manifests) -> Vec<&Service> {
    manifests
        .services
        .values()
        .filter(|s| !manifest::is_headless(s))
        .collect()
}

/// The emulated cluster. Every method blocks the test thread; pods, probes, the
/// StatefulSet controller and the Service proxies run in the background.
pub struct Cluster {
    runtime: Option<tokio::runtime::Runtime>,
    shared: Arc<Shared>,
    /// Printed with the pods' logs when the test fails.
    pub name: String,
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

impl Cluster {
    /// Create the network and the Service proxies, and start the StatefulSet controller on
    /// `manifests_yaml`.
    pub fn start(test: &str, manifests_yaml: &str, options: Options) -> Cluster {
        let manifests = manifest::parse(manifests_yaml);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a tokio runtime");
        let id = format!(
            "kt{}x{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        );
        let shared = runtime.block_on(async {
            let engine = Engine::connect().await.unwrap_or_else(|e| panic!("{e}"));
            let image = image::ensure(&engine).await;
            let (network, subnet) = create_network(&engine, &id).await;
            Arc::new(Shared {
                id: id.clone(),
                engine,
                image,
                options,
                network,
                subnet,
                gateway: Ipv4Addr::new(subnet[0], subnet[1], subnet[2], 1),
                started: Instant::now(),
                state: Mutex::new(State {
                    manifests,
                    pods: BTreeMap::new(),
                    held: BTreeSet::new(),
                    next_host: 2,
                    events: Vec::new(),
                }),
                wake: Notify::new(),
                round_robin: AtomicUsize::new(0),
                shutdown: AtomicBool::new(false),
            })
        });
        let cluster = Cluster {
            runtime: Some(runtime),
            shared,
            name: format!("{test} ({id})"),
        };
        cluster.block_on(start_service_proxies(cluster.shared.clone()));
        cluster
            .rt()
            .spawn(statefulset_controller(cluster.shared.clone()));
        cluster
    }

    fn rt(&self) -> &tokio::runtime::Runtime {
        self.runtime
            .as_ref()
            .expect("the runtime lives as long as the cluster")
    }

    fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.rt().block_on(f)
    }

    pub fn gateway(&self) -> Ipv4Addr {
        self.shared.gateway
    }

    pub fn manifests(&self) -> Manifests {
        self.shared.manifests()
    }

    /// A Secret's value from the manifests, as text.
    pub fn secret_value(&self, secret: &str, key: &str) -> String {
        let bytes = self
            .manifests()
            .secret_value(secret, key)
            .unwrap_or_else(|| panic!("the manifests hold no key `{key}` in Secret `{secret}`"));
        String::from_utf8(bytes).expect("a text secret")
    }

    /// The pod names a StatefulSet wants (`<set>-0` ...).
    pub fn statefulset_pods(&self, set: &str) -> Vec<String> {
        let manifests = self.manifests();
        let sts = manifests
            .stateful_sets
            .get(set)
            .unwrap_or_else(|| panic!("no StatefulSet `{set}` in the manifests"));
        (0..replicas(sts)).map(|i| format!("{set}-{i}")).collect()
    }

    /// Pods that exist now (created, possibly not ready or terminating).
    pub fn pods(&self) -> Vec<String> {
        self.shared.lock().pods.keys().cloned().collect()
    }

    pub fn pod_ip(&self, pod: &str) -> Option<Ipv4Addr> {
        self.shared.lock().pods.get(pod).map(|p| p.plan.ip)
    }

    pub fn is_ready(&self, pod: &str) -> bool {
        self.shared.lock().pods.get(pod).is_some_and(Pod::ready)
    }

    /// Restarts of every container of the pod (0 when it does not exist).
    pub fn restart_count(&self, pod: &str) -> u32 {
        self.shared
            .lock()
            .pods
            .get(pod)
            .map_or(0, |p| p.containers.values().map(|c| c.restart_count).sum())
    }

    /// The pod's uid: changes when the pod is re-created.
    pub fn pod_uid(&self, pod: &str) -> Option<String> {
        self.shared.lock().pods.get(pod).map(|p| p.plan.uid.clone())
    }

    /// Everything the harness recorded (probe failures, restarts, kills), oldest first.
    pub fn events(&self) -> Vec<String> {
        self.shared.lock().events.clone()
    }

    /// Probe failures of one pod.
    pub fn probe_failures(&self, pod: &str) -> Vec<String> {
        let prefix = format!("] {pod}: ");
        self.events()
            .into_iter()
            .filter(|e| e.contains(&prefix) && e.contains("probe failed"))
            .collect()
    }

    /// What the test process should connect to for a cluster DNS name: a pod's address for
    /// its names and its headless Services' names, the gateway for a ClusterIP Service.
    pub fn resolve(&self, name: &str) -> Option<Ipv4Addr> {
        let name = name.trim_end_matches('.');
        let state = self.shared.lock();
        if let Some(pod) = state
            .pods
            .values()
            .find(|p| p.plan.aliases.iter().any(|a| a == name))
        {
            return Some(pod.plan.ip);
        }
        state
            .pods
            .values()
            .flat_map(|p| p.plan.extra_hosts.iter())
            .find_map(|line| {
                let (host, ip) = line.split_once(':')?;
                (host == name).then(|| ip.parse().ok())?
            })
    }

    /// Wait until every named pod exists and is Ready; panics with the report otherwise.
    pub fn wait_ready(&self, pods: &[String], deadline: Duration) {
        let start = Instant::now();
        loop {
            let missing: Vec<&String> = pods.iter().filter(|p| !self.is_ready(p)).collect();
            if missing.is_empty() {
                return;
            }
            assert!(
                start.elapsed() < deadline,
                "pods {missing:?} not Ready within {deadline:?}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Every pod of the named StatefulSets, Ready.
    pub fn wait_all_ready(&self, sets: &[&str], deadline: Duration) {
        let pods: Vec<String> = sets.iter().flat_map(|s| self.statefulset_pods(s)).collect();
        self.wait_ready(&pods, deadline);
    }

    /// `kubectl exec POD -c CONTAINER -- ARGV`: (exit code, stdout, stderr); exit -1 when
    /// the container does not run, or when it took longer than a minute.
    pub fn exec(&self, pod: &str, container: &str, argv: &[&str]) -> (i64, String, String) {
        let name = format!("{}-{pod}-{container}", self.shared.id);
        let cmd = argv.iter().map(|s| s.to_string()).collect();
        match self.block_on(
            self.shared
                .engine
                .exec(&name, cmd, None, Duration::from_secs(60)),
        ) {
            Ok(out) => (out.exit.unwrap_or(-1), out.stdout, out.stderr),
            Err(e) => (-1, String::new(), e),
        }
    }

    /// The last lines of every container of the pod, and of their previous instances.
    pub fn logs(&self, pod: &str) -> String {
        let (containers, previous): (Vec<String>, Vec<(String, String)>) = {
            let state = self.shared.lock();
            let Some(p) = state.pods.get(pod) else {
                return format!("(pod `{pod}` does not exist)\n");
            };
            (
                p.plan
                    .spec
                    .containers
                    .iter()
                    .map(|c| c.name.clone())
                    .collect(),
                p.containers
                    .iter()
                    .filter(|(_, s)| !s.previous_logs.is_empty())
                    .map(|(n, s)| (n.clone(), s.previous_logs.clone()))
                    .collect(),
            )
        };
        let mut out = String::new();
        for (name, logs) in previous {
            out.push_str(&format!("--- {pod}/{name} (previous) ---\n{logs}"));
        }
        for name in containers {
            let docker = format!("{}-{pod}-{name}", self.shared.id);
            let logs = self
                .block_on(self.shared.engine.logs_tail(&docker, 40))
                .unwrap_or_else(|e| e);
            out.push_str(&format!("--- {pod}/{name} ---\n{logs}"));
        }
        out
    }

    /// Every pod's status and last log lines, and the harness's events.
    pub fn report(&self) -> String {
        let rows: Vec<String> = {
            let state = self.shared.lock();
            state
                .pods
                .values()
                .map(|p| {
                    format!(
                        "{} ip={} uid={} ready={} terminating={} containers={:?}",
                        p.plan.name,
                        p.plan.ip,
                        p.plan.uid,
                        p.ready(),
                        p.terminating,
                        p.containers
                            .iter()
                            .map(|(n, c)| format!(
                                "{n}(running={} started={} ready={} restarts={})",
                                c.running, c.started, c.ready, c.restart_count
                            ))
                            .collect::<Vec<_>>()
                    )
                })
                .collect()
        };
        let mut out = format!("==== cluster {} ====\n{}\n", self.name, rows.join("\n"));
        for pod in self.pods() {
            out.push_str(&self.logs(&pod));
        }
        out.push_str("---- events ----\n");
        out.push_str(&self.events().join("\n"));
        out
    }

    /// Keep the pod from being scheduled (Pending): it is not created, and its DNS names do
    /// not exist, until `release`. A pod that exists keeps running until deleted.
    pub fn hold(&self, pod: &str) {
        self.shared.lock().held.insert(pod.to_string());
    }

    pub fn release(&self, pod: &str) {
        self.shared.lock().held.remove(pod);
        self.shared.wake.notify_one();
    }

    /// `kubectl delete pod`: preStop and SIGTERM within the grace period, then SIGKILL;
    /// the StatefulSet controller re-creates it (with a new address) unless held.
    pub fn delete_pod(&self, pod: &str) {
        let shared = self.shared.clone();
        let pod = pod.to_string();
        self.block_on(async move { delete_pod(shared, pod).await });
    }

    /// Delete several pods at once, like `kubectl delete pod -l ...`.
    pub fn delete_pods(&self, pods: &[String]) {
        let shared = self.shared.clone();
        let pods = pods.to_vec();
        self.block_on(async move {
            let tasks: Vec<_> = pods
                .into_iter()
                .map(|p| tokio::spawn(delete_pod(shared.clone(), p)))
                .collect();
            for t in tasks {
                let _ = t.await;
            }
        });
    }

    /// SIGKILL the container's main process: kubelet restarts it in place (same pod, same
    /// address, restartCount + 1).
    pub fn kill_main_process(&self, pod: &str, container: &str) {
        let name = format!("{}-{pod}-{container}", self.shared.id);
        self.block_on(self.shared.engine.kill(&name, "KILL"))
            .unwrap_or_else(|e| panic!("{e}"));
    }

    /// Apply new manifests: ConfigMaps, Secrets and StatefulSet templates are replaced, and
    /// each StatefulSet whose pod template changed is rolled (RollingUpdate strategy):
    /// highest ordinal first, down to the partition, each next pod deleted only when every
    /// pod of the set is Ready. Returns the pods it re-created, in order.
    pub fn rolling_update(&self, manifests_yaml: &str, deadline: Duration) -> Vec<String> {
        let new = manifest::parse(manifests_yaml);
        let changed: Vec<(String, i32, i32)> = {
            let mut state = self.shared.lock();
            let changed = new
                .stateful_sets
                .iter()
                .filter(|(name, set)| {
                    state
                        .manifests
                        .stateful_sets
                        .get(*name)
                        .is_none_or(|old| template_hash(old) != template_hash(set))
                })
                .filter(|(_, set)| {
                    set.spec
                        .as_ref()
                        .and_then(|s| s.update_strategy.as_ref())
                        .and_then(|u| u.type_.as_deref())
                        .is_none_or(|t| t == "RollingUpdate")
                })
                .map(|(name, set)| {
                    let partition = set
                        .spec
                        .as_ref()
                        .and_then(|s| s.update_strategy.as_ref())
                        .and_then(|u| u.rolling_update.as_ref())
                        .and_then(|r| r.partition)
                        .unwrap_or(0);
                    (name.clone(), replicas(set), partition)
                })
                .collect();
            state.manifests.config_maps = new.config_maps.clone();
            state.manifests.secrets = new.secrets.clone();
            state.manifests.stateful_sets = new.stateful_sets.clone();
            changed
        };
        self.shared.wake.notify_one();
        let start = Instant::now();
        let mut rolled = Vec::new();
        for (set, count, partition) in changed {
            let revision = template_hash(&new.stateful_sets[&set]);
            let pods = self.statefulset_pods(&set);
            for ordinal in (partition.max(0)..count).rev() {
                let pod = format!("{set}-{ordinal}");
                let left = deadline.saturating_sub(start.elapsed());
                self.wait_ready(&pods, left);
                let current = self
                    .shared
                    .lock()
                    .pods
                    .get(&pod)
                    .map(|p| p.revision.clone());
                if current.as_deref() == Some(revision.as_str()) {
                    continue;
                }
                self.delete_pod(&pod);
                rolled.push(pod.clone());
                let left = deadline.saturating_sub(start.elapsed());
                self.wait_ready(std::slice::from_ref(&pod), left);
            }
        }
        rolled
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.report());
        }
        self.shared.shutdown.store(true, Ordering::SeqCst);
        // Stop every background task first, so nothing is created behind the cleanup.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_timeout(Duration::from_secs(2));
        }
        let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        let engine = self.shared.engine.clone();
        let label = format!("{LABEL}={}", self.shared.id);
        // A request cut off by the shutdown may still create its container a moment later:
        // repeat until a listing finds nothing.
        let cleanup = async move {
            for _ in 0..10 {
                let containers = engine.containers_labelled(&label).await.unwrap_or_default();
                let volumes = engine.volumes_labelled(&label).await.unwrap_or_default();
                let networks = engine.networks_labelled(&label).await.unwrap_or_default();
                if containers.is_empty() && volumes.is_empty() && networks.is_empty() {
                    return;
                }
                for id in containers {
                    let _ = engine.remove_container(&id).await;
                }
                for name in engine.volumes_labelled(&label).await.unwrap_or_default() {
                    let _ = engine.remove_volume(&name).await;
                }
                for id in networks {
                    let _ = engine.remove_network(&id).await;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        };
        let _ = runtime
            .block_on(async { tokio::time::timeout(Duration::from_secs(120), cleanup).await });
    }
}

/// A /24 in 10.213.0.0/16 that no network on the engine uses.
async fn create_network(engine: &Engine, id: &str) -> (String, [u8; 3]) {
    let used = engine
        .used_subnets()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let name = format!("{id}-net");
    let mut last = String::new();
    for third in 1..=254u8 {
        let subnet = format!("10.213.{third}.0/24");
        if used.contains(&subnet) {
            continue;
        }
        let request = NetworkCreateRequest {
            name: name.clone(),
            driver: Some("bridge".into()),
            ipam: Some(Ipam {
                config: Some(vec![IpamConfig {
                    subnet: Some(subnet.clone()),
                    gateway: Some(format!("10.213.{third}.1")),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            labels: Some(std::collections::HashMap::from([(
                LABEL.to_string(),
                id.to_string(),
            )])),
            ..Default::default()
        };
        match engine.create_network(request).await {
            Ok(_) => return (name, [10, 213, third]),
            // Another engine user took it between the listing and now: try the next.
            Err(e) => last = e,
        }
    }
    panic!("no free /24 in 10.213.0.0/16: {last}");
}

/// The StatefulSet controller: creates missing pods per podManagementPolicy, never a pod
/// whose previous instance is still terminating, never a held one.
async fn statefulset_controller(sh: Arc<Shared>) {
    while !sh.shutdown.load(Ordering::SeqCst) {
        reconcile(&sh);
        tokio::select! {
            _ = sh.wake.notified() => {}
            _ = tokio::time::sleep(Duration::from_millis(250)) => {}
        }
    }
}

fn reconcile(sh: &Arc<Shared>) {
    let mut state = sh.lock();
    let sets: Vec<StatefulSet> = state.manifests.stateful_sets.values().cloned().collect();
    for set in sets {
        let name = set.metadata.name.clone().unwrap_or_default();
        let ordered = ordered_ready(&set);
        for ordinal in 0..replicas(&set) {
            let pod = format!("{name}-{ordinal}");
            if let Some(existing) = state.pods.get(&pod) {
                if ordered && !existing.ready() {
                    break;
                }
                continue;
            }
            if state.held.contains(&pod) {
                if ordered {
                    break;
                }
                continue;
            }
            create_pod(sh, &mut state, &set, ordinal);
            if ordered {
                break;
            }
        }
    }
}

/// A new pod from the set's current template: a new uid, a new address, and its names.
fn create_pod(sh: &Arc<Shared>, state: &mut State, set: &StatefulSet, ordinal: i32) {
    let set_name = set.metadata.name.clone().unwrap_or_default();
    let namespace = Manifests::namespace_of(&set.metadata);
    let spec = set.spec.clone().unwrap_or_default();
    let template = spec.template.clone();
    let pod_spec = template.spec.clone().unwrap_or_default();
    let labels = template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    let name = format!("{set_name}-{ordinal}");
    let host = state.next_host;
    assert!(
        host < 255,
        "the test created more than 250 pods: no address left"
    );
    state.next_host += 1;
    let ip = Ipv4Addr::new(sh.subnet[0], sh.subnet[1], sh.subnet[2], host as u8);
    let domain = &sh.options.cluster_domain;
    let subdomain = spec.service_name.clone();
    let mut aliases = vec![name.clone()];
    for svc in state.manifests.services.values() {
        let svc_name = svc.metadata.name.clone().unwrap_or_default();
        let svc_ns = Manifests::namespace_of(&svc.metadata);
        if svc_ns != namespace || !manifest::is_headless(svc) || !manifest::selects(svc, &labels) {
            continue;
        }
        for n in [
            svc_name.clone(),
            format!("{svc_name}.{svc_ns}"),
            format!("{svc_name}.{svc_ns}.svc"),
            format!("{svc_name}.{svc_ns}.svc.{domain}"),
        ] {
            aliases.push(n);
        }
        if subdomain.as_deref() == Some(svc_name.as_str()) {
            for n in [
                format!("{name}.{svc_name}"),
                format!("{name}.{svc_name}.{svc_ns}"),
                format!("{name}.{svc_name}.{svc_ns}.svc"),
                format!("{name}.{svc_name}.{svc_ns}.svc.{domain}"),
            ] {
                aliases.push(n);
            }
        }
    }
    let mut extra_hosts = Vec::new();
    for svc in cluster_ip_services(&state.manifests) {
        let svc_name = svc.metadata.name.clone().unwrap_or_default();
        let svc_ns = Manifests::namespace_of(&svc.metadata);
        let mut names = vec![
            format!("{svc_name}.{svc_ns}"),
            format!("{svc_name}.{svc_ns}.svc"),
            format!("{svc_name}.{svc_ns}.svc.{domain}"),
        ];
        if svc_ns == namespace {
            names.push(svc_name.clone());
        }
        extra_hosts.extend(names.into_iter().map(|n| format!("{n}:{}", sh.gateway)));
    }
    let uid = format!("{:08x}", rand_u32(sh, host));
    let plan = PodPlan {
        name: name.clone(),
        uid,
        namespace,
        ip,
        spec: pod_spec,
        claims: spec
            .volume_claim_templates
            .iter()
            .flatten()
            .filter_map(|c| c.metadata.name.clone())
            .collect(),
        aliases,
        extra_hosts,
        hostname: name.clone(),
        subdomain,
    };
    let (deleting_tx, deleting_rx) = watch::channel(false);
    let task = {
        let sh = sh.clone();
        let plan = plan.clone();
        tokio::spawn(async move {
            let pod = plan.name.clone();
            match kubelet::start_pod(sh.clone(), plan, deleting_rx).await {
                Ok(supervisors) => supervisors,
                Err(e) => {
                    sh.event(&pod, format!("cannot start: {e}"));
                    Vec::new()
                }
            }
        })
    };
    state.pods.insert(
        name.clone(),
        Pod {
            plan,
            set: set_name,
            ordinal,
            revision: template_hash(set),
            labels,
            terminating: false,
            containers: BTreeMap::new(),
            deleting: deleting_tx,
            start: Some(task),
        },
    );
    let line = format!(
        "[{:7.1}s] {name}: created at {ip}",
        sh.started.elapsed().as_secs_f64()
    );
    state.events.push(line);
}

fn rand_u32(sh: &Shared, salt: u32) -> u32 {
    let digest = Sha256::digest(format!("{}-{salt}-{:?}", sh.id, Instant::now()).as_bytes());
    u32::from_le_bytes([digest[0], digest[1], digest[2], digest[3]])
}

/// Terminate a pod: no longer Ready (out of Service endpoints), supervisors stopped, each
/// container's preStop then SIGTERM within the grace period, then SIGKILL; containers,
/// sandbox and emptyDir/ConfigMap volumes removed. Claims stay.
async fn delete_pod(sh: Arc<Shared>, pod: String) {
    let (plan, start) = {
        let mut state = sh.lock();
        let Some(p) = state.pods.get_mut(&pod) else {
            return;
        };
        if p.terminating {
            return;
        }
        p.terminating = true;
        let _ = p.deleting.send(true);
        (p.plan.clone(), p.start.take())
    };
    sh.event(&pod, "deleting".into());
    let supervisors = match start {
        Some(task) => task.await.unwrap_or_default(),
        None => Vec::new(),
    };
    for s in supervisors {
        let _ = s.await;
    }
    let grace = plan.grace();
    let mut stops = Vec::new();
    for container in plan.spec.containers.clone() {
        let sh = sh.clone();
        let plan = plan.clone();
        stops.push(tokio::spawn(async move {
            let docker = plan.container_name(&sh, &container.name);
            kubelet::terminate(&sh, &plan, &container, &docker, grace).await;
            let _ = sh.engine.remove_container(&docker).await;
        }));
    }
    for s in stops {
        let _ = s.await;
    }
    let _ = sh.engine.remove_container(&plan.sandbox(&sh)).await;
    let prefix = format!("{}-{}-{}-", sh.id, plan.name, plan.uid);
    let label = format!("{LABEL}.pod={}", plan.name);
    for volume in sh.engine.volumes_labelled(&label).await.unwrap_or_default() {
        if volume.starts_with(&prefix) {
            let _ = sh.engine.remove_volume(&volume).await;
        }
    }
    sh.lock().pods.remove(&pod);
    sh.event(&pod, "deleted".into());
    sh.wake.notify_one();
}

/// One TCP listener per ClusterIP Service port, on the network's gateway address: each
/// connection goes to one Ready endpoint picked in turn (no retry on another endpoint, as
/// with kube-proxy).
async fn start_service_proxies(sh: Arc<Shared>) {
    let services: Vec<Service> = cluster_ip_services(&sh.manifests())
        .into_iter()
        .cloned()
        .collect();
    let mut taken = BTreeSet::new();
    for svc in services {
        let name = svc.metadata.name.clone().unwrap_or_default();
        for port in svc.spec.iter().flat_map(|s| s.ports.iter().flatten()) {
            let number = port.port as u16;
            assert!(
                taken.insert(number),
                "two ClusterIP Services use port {number}: the harness has one gateway address"
            );
            let listener = tokio::net::TcpListener::bind((sh.gateway, number))
                .await
                .unwrap_or_else(|e| panic!("cannot listen on {}:{number}: {e}", sh.gateway));
            tokio::spawn(proxy(
                sh.clone(),
                name.clone(),
                port.target_port
                    .clone()
                    .unwrap_or(IntOrString::Int(port.port)),
                listener,
            ));
        }
    }
}

async fn proxy(
    sh: Arc<Shared>,
    service: String,
    target: IntOrString,
    listener: tokio::net::TcpListener,
) {
    loop {
        let Ok((mut client, _)) = listener.accept().await else {
            continue;
        };
        let endpoints: Vec<(Ipv4Addr, u16)> = {
            let state = sh.lock();
            let Some(svc) = state.manifests.services.get(&service) else {
                continue;
            };
            state
                .pods
                .values()
                .filter(|p| p.ready() && manifest::selects(svc, &p.labels))
                .filter_map(|p| {
                    let port = match &target {
                        IntOrString::Int(n) => Some(*n as u16),
                        IntOrString::String(n) => named_port(&p.plan.spec, n),
                    }?;
                    Some((p.plan.ip, port))
                })
                .collect()
        };
        if endpoints.is_empty() {
            // No Ready endpoint: kube-proxy rejects the connection.
            continue;
        }
        let pick = endpoints[sh.round_robin.fetch_add(1, Ordering::Relaxed) % endpoints.len()];
        tokio::spawn(async move {
            let connect = tokio::net::TcpStream::connect(pick);
            if let Ok(Ok(mut upstream)) =
                tokio::time::timeout(Duration::from_secs(2), connect).await
            {
                let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
            }
        });
    }
}
