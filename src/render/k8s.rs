//! Kubernetes manifests: checked topology -> typed `k8s-openapi` objects -> multi-document YAML.
//!
//! Pure: no I/O, no cluster access. Builds the same redis.conf / sentinel.conf as the Docker
//! group from the same templates, with pod DNS names instead of fixed IPs. The configs in the
//! ConfigMaps hold placeholders, never the password: the pods' start-up scripts (also in the
//! ConfigMap) fill in the password from the Secret, the pod's own name, and the current
//! master that the sentinels report. Must not hand-write YAML.

use std::collections::BTreeMap;

use anyhow::Context as _;
use k8s_openapi::api::apps::v1::{StatefulSet, StatefulSetSpec};
use k8s_openapi::api::core::v1::{
    Affinity, ConfigMap, ConfigMapVolumeSource, Container, ContainerPort, EmptyDirVolumeSource,
    EnvVar, EnvVarSource, ExecAction, ObjectFieldSelector, PersistentVolumeClaim,
    PersistentVolumeClaimSpec, PodAffinityTerm, PodAntiAffinity, PodSecurityContext, PodSpec,
    PodTemplateSpec, Probe, ResourceRequirements, Secret, SecretKeySelector, Service, ServicePort,
    ServiceSpec, Volume, VolumeMount, VolumeResourceRequirements, WeightedPodAffinityTerm,
};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use sha2::{Digest, Sha256};

use super::{Endpoint, KnownSentinel, RedisConf, SentinelConf, render_template};
use crate::topology::layout::{REDIS_PORT, SENTINEL_PORT};
use crate::topology::{AntiAffinity, Topology};

/// Template of the redis pods' start-up script.
pub const REDIS_START_TEMPLATE: (&str, &str) = (
    "k8s-redis-start.sh.j2",
    include_str!("../../templates/k8s-redis-start.sh.j2"),
);
/// Template of the sentinel pods' start-up script.
pub const SENTINEL_START_TEMPLATE: (&str, &str) = (
    "k8s-sentinel-start.sh.j2",
    include_str!("../../templates/k8s-sentinel-start.sh.j2"),
);

/// Placeholders in the ConfigMaps' configs, replaced by the start-up scripts.
const PASSWORD_PLACEHOLDER: &str = "__RCLUSTER_PASSWORD__";
const SELF_PLACEHOLDER: &str = "__RCLUSTER_SELF__";
const MASTER_PLACEHOLDER: &str = "__RCLUSTER_MASTER__";
const MYID_PLACEHOLDER: &str = "__RCLUSTER_MYID__";

/// Key of the password in the Secret.
const PASSWORD_KEY: &str = "password";
/// uid and gid of the `redis` user in the official image (and rcluster's).
const REDIS_UID: i64 = 999;
/// Where the ConfigMap is mounted (read-only) and where the configs are copied (writable).
const CONFIG_MOUNT: &str = "/config";
const RUN_CONFIG_DIR: &str = "/etc/redis";

/// A rendered manifest: every object in apply order.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(untagged)]
pub enum Object {
    Secret(Box<Secret>),
    ConfigMap(Box<ConfigMap>),
    Service(Box<Service>),
    StatefulSet(Box<StatefulSet>),
    PodDisruptionBudget(Box<PodDisruptionBudget>),
}

/// The names every object and script agrees on.
struct Names<'a> {
    topology: &'a Topology,
    cluster: &'a str,
    namespace: &'a str,
}

impl Names<'_> {
    fn secret(&self) -> String {
        format!("{}-auth", self.cluster)
    }
    fn redis_config(&self) -> String {
        format!("{}-redis-config", self.cluster)
    }
    fn sentinel_config(&self) -> String {
        format!("{}-sentinel-config", self.cluster)
    }
    /// The redis StatefulSet and its headless Service: pods are `<this>-<ordinal>`.
    fn redis(&self) -> String {
        format!("{}-redis", self.cluster)
    }
    /// The sentinel StatefulSet and the Service clients reach the sentinels through.
    fn sentinel(&self) -> String {
        format!("{}-sentinel", self.cluster)
    }
    /// The sentinels' headless Service, which gives each sentinel pod its DNS name.
    fn sentinel_headless(&self) -> String {
        format!("{}-sentinel-headless", self.cluster)
    }
    fn redis_pod_dns(&self, ordinal: u8) -> String {
        pod_dns(&self.redis(), ordinal, &self.redis(), self.namespace)
    }
    fn sentinel_pod_dns(&self, ordinal: u8) -> String {
        pod_dns(
            &self.sentinel(),
            ordinal,
            &self.sentinel_headless(),
            self.namespace,
        )
    }
    fn labels(&self, component: &str) -> BTreeMap<String, String> {
        BTreeMap::from([
            ("app.kubernetes.io/name".into(), "redis".into()),
            ("app.kubernetes.io/instance".into(), self.cluster.into()),
            ("app.kubernetes.io/component".into(), component.into()),
            ("app.kubernetes.io/managed-by".into(), "rcluster".into()),
        ])
    }
    /// Selects the pods of one component; a subset of `labels`.
    fn selector(&self, component: &str) -> BTreeMap<String, String> {
        BTreeMap::from([
            ("app.kubernetes.io/instance".into(), self.cluster.into()),
            ("app.kubernetes.io/component".into(), component.into()),
        ])
    }
    fn meta(&self, name: String, component: &str) -> ObjectMeta {
        ObjectMeta {
            name: Some(name),
            namespace: Some(self.namespace.into()),
            labels: Some(self.labels(component)),
            ..ObjectMeta::default()
        }
    }
    fn redis_count(&self) -> u8 {
        1 + self.topology.replicas.count
    }
}

/// `<statefulset>-<ordinal>.<service>.<namespace>.svc.cluster.local`.
fn pod_dns(statefulset: &str, ordinal: u8, service: &str, namespace: &str) -> String {
    format!("{statefulset}-{ordinal}.{service}.{namespace}.svc.cluster.local")
}

/// The fixed `sentinel myid` of a sentinel pod; the start-up script computes the same.
fn sentinel_myid(pod: &str) -> String {
    let digest = Sha256::digest(format!("rcluster-sentinel:{pod}").as_bytes());
    hex::encode(digest)[..40].to_string()
}

/// Every object of the group, in apply order. `password` goes only into the Secret: pass
/// `secret::MASK` for anything a user will see.
pub fn objects(topology: &Topology, password: &str) -> anyhow::Result<Vec<Object>> {
    let names = Names {
        topology,
        cluster: &topology.cluster.name,
        namespace: &topology.kubernetes.namespace,
    };
    let resources = topology
        .kubernetes
        .resources
        .as_ref()
        .map(resource_requirements)
        .transpose()?;
    Ok(vec![
        Object::Secret(Box::new(secret(&names, password))),
        Object::ConfigMap(Box::new(redis_config_map(&names)?)),
        Object::ConfigMap(Box::new(sentinel_config_map(&names)?)),
        Object::Service(Box::new(headless_service(
            &names,
            names.redis(),
            "redis",
            REDIS_PORT,
        ))),
        Object::Service(Box::new(headless_service(
            &names,
            names.sentinel_headless(),
            "sentinel",
            SENTINEL_PORT,
        ))),
        Object::Service(Box::new(sentinel_client_service(&names))),
        Object::StatefulSet(Box::new(redis_statefulset(&names, resources.clone()))),
        Object::StatefulSet(Box::new(sentinel_statefulset(&names, resources))),
        Object::PodDisruptionBudget(Box::new(pdb(
            &names,
            names.redis(),
            "redis",
            PdbLimit::MaxUnavailable(1),
        ))),
        Object::PodDisruptionBudget(Box::new(pdb(
            &names,
            names.sentinel(),
            "sentinel",
            PdbLimit::MinAvailable(topology.sentinel.quorum),
        ))),
    ])
}

/// `kubernetes.resources` as typed requirements. The typed struct drops keys it does not
/// know, so a typo (`limts`) would vanish silently: compare the round trip with the input.
fn resource_requirements(value: &serde_json::Value) -> anyhow::Result<ResourceRequirements> {
    let typed: ResourceRequirements = serde_json::from_value(value.clone()).context(
        "`kubernetes.resources` is not a Kubernetes ResourceRequirements; write it like \
         `{ requests = { cpu = \"100m\", memory = \"128Mi\" }, limits = { memory = \"256Mi\" } }`",
    )?;
    let round_trip = serde_json::to_value(&typed).context("cannot serialize resources")?;
    if round_trip != numbers_as_strings(value) {
        anyhow::bail!(
            "`kubernetes.resources` has keys Kubernetes does not know: it reads as `{round_trip}`, \
             not `{value}`; use `requests` and `limits`"
        );
    }
    Ok(typed)
}

/// Quantities may be written as numbers (`cpu = 1`); Kubernetes reads them as strings.
fn numbers_as_strings(value: &serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::Number(n) => Value::String(n.to_string()),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), numbers_as_strings(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(numbers_as_strings).collect()),
        other => other.clone(),
    }
}

/// The objects as multi-document YAML, `---` between documents.
pub fn render(topology: &Topology, password: &str) -> anyhow::Result<String> {
    let objects = objects(topology, password)?;
    serde_saphyr::to_string_multiple(&objects).context("cannot serialize the Kubernetes manifests")
}

fn secret(names: &Names, password: &str) -> Secret {
    Secret {
        metadata: names.meta(names.secret(), "auth"),
        type_: Some("Opaque".into()),
        string_data: Some(BTreeMap::from([(PASSWORD_KEY.into(), password.into())])),
        ..Secret::default()
    }
}

fn redis_config_map(names: &Names) -> anyhow::Result<ConfigMap> {
    let topology = names.topology;
    let redis_conf = RedisConf {
        node_name: format!("{} (StatefulSet pods)", names.redis()),
        port: REDIS_PORT,
        dir: super::DATA_DIR.into(),
        password: PASSWORD_PLACEHOLDER,
        announce: Endpoint::new(SELF_PLACEHOLDER, REDIS_PORT),
        // The start-up script appends `replicaof` when this pod is not the current master.
        replicaof: None,
        persistence: &topology.persistence,
        extra: topology
            .redis
            .extra
            .iter()
            .map(|(key, value)| super::Directive {
                key: key.clone(),
                value: value.clone(),
            })
            .collect(),
    }
    .render()
    .context("cannot render redis.conf for Kubernetes")?;
    let script = render_template(REDIS_START_TEMPLATE, &script_context(names))?;
    Ok(ConfigMap {
        metadata: names.meta(names.redis_config(), "redis"),
        data: Some(BTreeMap::from([
            ("redis.conf".into(), redis_conf),
            ("start.sh".into(), script),
        ])),
        ..ConfigMap::default()
    })
}

fn sentinel_config_map(names: &Names) -> anyhow::Result<ConfigMap> {
    let spec = &names.topology.sentinel;
    let sentinel_conf = SentinelConf {
        node_name: format!("{} (StatefulSet pods)", names.sentinel()),
        port: SENTINEL_PORT,
        myid: MYID_PLACEHOLDER.into(),
        announce: Endpoint::new(SELF_PLACEHOLDER, SENTINEL_PORT),
        password: PASSWORD_PLACEHOLDER,
        master_name: &spec.master_name,
        master: Endpoint::new(MASTER_PLACEHOLDER, REDIS_PORT),
        quorum: spec.quorum,
        down_after_ms: spec.down_after_ms,
        failover_timeout_ms: spec.failover_timeout_ms,
        parallel_syncs: spec.parallel_syncs,
        // Every pod; the start-up script drops the current master's line and its own.
        known_replicas: (0..names.redis_count())
            .map(|i| Endpoint::new(names.redis_pod_dns(i), REDIS_PORT))
            .collect(),
        known_sentinels: (0..spec.count)
            .map(|i| KnownSentinel {
                host: names.sentinel_pod_dns(i),
                port: SENTINEL_PORT,
                myid: sentinel_myid(&format!("{}-{i}", names.sentinel())),
            })
            .collect(),
        resolve_hostnames: true,
    }
    .render()
    .context("cannot render sentinel.conf for Kubernetes")?;
    let script = render_template(SENTINEL_START_TEMPLATE, &script_context(names))?;
    Ok(ConfigMap {
        metadata: names.meta(names.sentinel_config(), "sentinel"),
        data: Some(BTreeMap::from([
            ("sentinel.conf".into(), sentinel_conf),
            ("start.sh".into(), script),
        ])),
        ..ConfigMap::default()
    })
}

/// What the start-up script templates read.
#[derive(serde::Serialize)]
struct ScriptContext {
    cluster: String,
    namespace: String,
    redis_service: String,
    sentinel_service: String,
    sentinel_headless_service: String,
    sentinel_port: u16,
    redis_port: u16,
    master_name: String,
    /// Ordinal 0: the master of a fresh group.
    fallback_master: String,
}

fn script_context(names: &Names) -> ScriptContext {
    ScriptContext {
        cluster: names.cluster.into(),
        namespace: names.namespace.into(),
        redis_service: names.redis(),
        sentinel_service: names.sentinel(),
        sentinel_headless_service: names.sentinel_headless(),
        sentinel_port: SENTINEL_PORT,
        redis_port: REDIS_PORT,
        master_name: names.topology.sentinel.master_name.clone(),
        fallback_master: names.redis_pod_dns(0),
    }
}

/// A headless Service: gives each pod of a StatefulSet its DNS name.
fn headless_service(names: &Names, name: String, component: &str, port: u16) -> Service {
    Service {
        metadata: names.meta(name, component),
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".into()),
            // Peers must resolve a pod before it is ready: replicas resolve the master, and
            // sentinels the redis pods, while the group forms.
            publish_not_ready_addresses: Some(true),
            selector: Some(names.selector(component)),
            ports: Some(vec![service_port(component, port)]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

/// The Service clients (and starting pods) reach the ready sentinels through.
fn sentinel_client_service(names: &Names) -> Service {
    Service {
        metadata: names.meta(names.sentinel(), "sentinel"),
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".into()),
            selector: Some(names.selector("sentinel")),
            ports: Some(vec![service_port("sentinel", SENTINEL_PORT)]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

fn service_port(name: &str, port: u16) -> ServicePort {
    ServicePort {
        name: Some(name.into()),
        port: i32::from(port),
        target_port: Some(IntOrString::String(name.into())),
        protocol: Some("TCP".into()),
        ..ServicePort::default()
    }
}

fn redis_statefulset(names: &Names, resources: Option<ResourceRequirements>) -> StatefulSet {
    let spec = &names.topology.kubernetes;
    let container = Container {
        name: "redis".into(),
        command: Some(vec!["sh".into(), format!("{CONFIG_MOUNT}/start.sh")]),
        ports: Some(vec![container_port("redis", REDIS_PORT)]),
        volume_mounts: Some(vec![
            mount("config", CONFIG_MOUNT, true),
            mount("run-config", RUN_CONFIG_DIR, false),
            mount("data", super::DATA_DIR, false),
        ]),
        ..pod_container(names, resources, REDIS_PORT)
    };
    let claim = PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some("data".into()),
            labels: Some(names.labels("redis")),
            ..ObjectMeta::default()
        },
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".into()]),
            storage_class_name: spec.storage_class.clone(),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([(
                    "storage".into(),
                    Quantity(spec.storage_size.clone()),
                )])),
                ..VolumeResourceRequirements::default()
            }),
            ..PersistentVolumeClaimSpec::default()
        }),
        ..PersistentVolumeClaim::default()
    };
    statefulset(
        names,
        names.redis(),
        names.redis(),
        "redis",
        i32::from(names.redis_count()),
        container,
        names.redis_config(),
        vec![claim],
    )
}

fn sentinel_statefulset(names: &Names, resources: Option<ResourceRequirements>) -> StatefulSet {
    let container = Container {
        name: "sentinel".into(),
        command: Some(vec!["sh".into(), format!("{CONFIG_MOUNT}/start.sh")]),
        ports: Some(vec![container_port("sentinel", SENTINEL_PORT)]),
        volume_mounts: Some(vec![
            mount("config", CONFIG_MOUNT, true),
            mount("run-config", RUN_CONFIG_DIR, false),
        ]),
        ..pod_container(names, resources, SENTINEL_PORT)
    };
    statefulset(
        names,
        names.sentinel(),
        names.sentinel_headless(),
        "sentinel",
        i32::from(names.topology.sentinel.count),
        container,
        names.sentinel_config(),
        Vec::new(),
    )
}

/// What redis and sentinel containers share: image, password env, probes, resources.
fn pod_container(names: &Names, resources: Option<ResourceRequirements>, port: u16) -> Container {
    let secret_env = |name: &str| EnvVar {
        name: name.into(),
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: names.secret(),
                key: PASSWORD_KEY.into(),
                ..SecretKeySelector::default()
            }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    };
    Container {
        image: Some(names.topology.kubernetes.image.clone()),
        env: Some(vec![
            EnvVar {
                name: "POD_NAME".into(),
                value_from: Some(EnvVarSource {
                    field_ref: Some(ObjectFieldSelector {
                        field_path: "metadata.name".into(),
                        ..ObjectFieldSelector::default()
                    }),
                    ..EnvVarSource::default()
                }),
                ..EnvVar::default()
            },
            // For the start-up script, which writes it into the copied config.
            secret_env("REDIS_PASSWORD"),
            // redis-cli reads it, so the probes authenticate without the password in argv.
            secret_env("REDISCLI_AUTH"),
        ]),
        readiness_probe: Some(ping_probe(port, 5, 3)),
        liveness_probe: Some(ping_probe(port, 20, 5)),
        resources,
        ..Container::default()
    }
}

/// An authenticated PING: succeeds only on `PONG`, so NOAUTH or LOADING count as failures.
fn ping_probe(port: u16, initial_delay_seconds: i32, failure_threshold: i32) -> Probe {
    Probe {
        exec: Some(ExecAction {
            command: Some(vec![
                "sh".into(),
                "-c".into(),
                format!("redis-cli -p {port} --no-auth-warning ping | grep -q PONG"),
            ]),
        }),
        initial_delay_seconds: Some(initial_delay_seconds),
        period_seconds: Some(5),
        timeout_seconds: Some(3),
        failure_threshold: Some(failure_threshold),
        ..Probe::default()
    }
}

fn container_port(name: &str, port: u16) -> ContainerPort {
    ContainerPort {
        name: Some(name.into()),
        container_port: i32::from(port),
        protocol: Some("TCP".into()),
        ..ContainerPort::default()
    }
}

fn mount(name: &str, path: &str, read_only: bool) -> VolumeMount {
    VolumeMount {
        name: name.into(),
        mount_path: path.into(),
        read_only: read_only.then_some(true),
        ..VolumeMount::default()
    }
}

#[allow(clippy::too_many_arguments)]
fn statefulset(
    names: &Names,
    name: String,
    service: String,
    component: &str,
    replicas: i32,
    container: Container,
    config_map: String,
    claims: Vec<PersistentVolumeClaim>,
) -> StatefulSet {
    let pod_meta = ObjectMeta {
        labels: Some(names.labels(component)),
        ..ObjectMeta::default()
    };
    StatefulSet {
        metadata: names.meta(name, component),
        spec: Some(StatefulSetSpec {
            service_name: Some(service),
            replicas: Some(replicas),
            // Pods find the master by asking the sentinels (or fall back to ordinal 0): they
            // need not start one by one.
            pod_management_policy: Some("Parallel".into()),
            selector: LabelSelector {
                match_labels: Some(names.selector(component)),
                ..LabelSelector::default()
            },
            template: PodTemplateSpec {
                metadata: Some(pod_meta),
                spec: Some(PodSpec {
                    affinity: Some(anti_affinity(names, component)),
                    // The official image starts as root and drops to `redis` in its
                    // entrypoint, which the start-up script replaces: run as `redis` directly.
                    security_context: Some(PodSecurityContext {
                        run_as_user: Some(REDIS_UID),
                        run_as_group: Some(REDIS_UID),
                        run_as_non_root: Some(true),
                        fs_group: Some(REDIS_UID),
                        ..PodSecurityContext::default()
                    }),
                    containers: vec![container],
                    volumes: Some(vec![
                        Volume {
                            name: "config".into(),
                            config_map: Some(ConfigMapVolumeSource {
                                name: config_map,
                                ..ConfigMapVolumeSource::default()
                            }),
                            ..Volume::default()
                        },
                        Volume {
                            name: "run-config".into(),
                            empty_dir: Some(EmptyDirVolumeSource::default()),
                            ..Volume::default()
                        },
                    ]),
                    ..PodSpec::default()
                }),
            },
            volume_claim_templates: (!claims.is_empty()).then_some(claims),
            ..StatefulSetSpec::default()
        }),
        ..StatefulSet::default()
    }
}

/// Keep a component's pods on different nodes: losing a node then costs one pod of each.
fn anti_affinity(names: &Names, component: &str) -> Affinity {
    let term = PodAffinityTerm {
        label_selector: Some(LabelSelector {
            match_labels: Some(names.selector(component)),
            ..LabelSelector::default()
        }),
        topology_key: "kubernetes.io/hostname".into(),
        ..PodAffinityTerm::default()
    };
    let pod_anti_affinity = match names.topology.kubernetes.anti_affinity {
        AntiAffinity::Required => PodAntiAffinity {
            required_during_scheduling_ignored_during_execution: Some(vec![term]),
            ..PodAntiAffinity::default()
        },
        AntiAffinity::Preferred => PodAntiAffinity {
            preferred_during_scheduling_ignored_during_execution: Some(vec![
                WeightedPodAffinityTerm {
                    weight: 100,
                    pod_affinity_term: term,
                },
            ]),
            ..PodAntiAffinity::default()
        },
    };
    Affinity {
        pod_anti_affinity: Some(pod_anti_affinity),
        ..Affinity::default()
    }
}

enum PdbLimit {
    MaxUnavailable(i32),
    MinAvailable(u8),
}

fn pdb(names: &Names, name: String, component: &str, limit: PdbLimit) -> PodDisruptionBudget {
    let (max_unavailable, min_available) = match limit {
        PdbLimit::MaxUnavailable(n) => (Some(IntOrString::Int(n)), None),
        // Voluntary disruptions must leave a quorum of sentinels to authorize a failover.
        PdbLimit::MinAvailable(n) => (None, Some(IntOrString::Int(i32::from(n)))),
    };
    PodDisruptionBudget {
        metadata: names.meta(name, component),
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable,
            min_available,
            selector: Some(LabelSelector {
                match_labels: Some(names.selector(component)),
                ..LabelSelector::default()
            }),
            ..PodDisruptionBudgetSpec::default()
        }),
        ..PodDisruptionBudget::default()
    }
}
