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
    Affinity, Capabilities, ConfigMap, ConfigMapVolumeSource, Container, ContainerPort,
    EmptyDirVolumeSource, EnvVar, EnvVarSource, ExecAction, KeyToPath, Lifecycle, LifecycleHandler,
    ObjectFieldSelector, PersistentVolumeClaim, PersistentVolumeClaimSpec, PodAffinityTerm,
    PodAntiAffinity, PodSecurityContext, PodSpec, PodTemplateSpec, Probe, ResourceRequirements,
    SeccompProfile, Secret, SecretVolumeSource, SecurityContext, Service, ServicePort, ServiceSpec,
    TopologySpreadConstraint, Volume, VolumeMount, VolumeResourceRequirements,
    WeightedPodAffinityTerm,
};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use sha2::{Digest, Sha256};

use crate::acl::AclConf;

use super::{BIND_DUAL_STACK, Endpoint, KnownSentinel, RedisConf, SentinelConf, render_template};
use crate::topology::layout::{REDIS_PORT, SENTINEL_PORT};
use crate::topology::{AntiAffinity, Node, Role, Topology, ZoneSpread};

/// The shell functions every script of the group sources.
pub const LIB_TEMPLATE: (&str, &str) = (
    "k8s-lib.sh.j2",
    include_str!("../../templates/k8s-lib.sh.j2"),
);
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
/// Template of the probes (startup, liveness, readiness) of both kinds of pod.
pub const PROBE_TEMPLATE: (&str, &str) = (
    "k8s-probe.sh.j2",
    include_str!("../../templates/k8s-probe.sh.j2"),
);
/// Template of the redis pods' preStop hook.
pub const REDIS_PRESTOP_TEMPLATE: (&str, &str) = (
    "k8s-redis-prestop.sh.j2",
    include_str!("../../templates/k8s-redis-prestop.sh.j2"),
);
/// Template of the sentinel pods' preStop hook.
pub const SENTINEL_PRESTOP_TEMPLATE: (&str, &str) = (
    "k8s-sentinel-prestop.sh.j2",
    include_str!("../../templates/k8s-sentinel-prestop.sh.j2"),
);

/// Placeholders in the ConfigMaps' configs, replaced by the start-up scripts.
const PASSWORD_PLACEHOLDER: &str = "__RCLUSTER_PASSWORD__";
const SELF_PLACEHOLDER: &str = "__RCLUSTER_SELF__";
const MASTER_PLACEHOLDER: &str = "__RCLUSTER_MASTER__";
const MYID_PLACEHOLDER: &str = "__RCLUSTER_MYID__";

/// Key of the password in the Secret rcluster renders.
const PASSWORD_KEY: &str = "password";
/// uid and gid of the `redis` user in the official image (and rcluster's).
const REDIS_UID: i64 = 999;
/// Where the ConfigMap is mounted (read-only): configs with placeholders and the scripts.
const CONFIG_MOUNT: &str = "/config";
/// Where the Secret is mounted (read-only); the scripts read `password` from there.
const SECRET_MOUNT: &str = "/run/secrets/rcluster";
/// Where the TLS Secret (`ca.crt`, `tls.crt`, `tls.key`) is mounted (read-only), with `[tls]`.
const TLS_MOUNT: &str = "/run/secrets/rcluster-tls";
/// Each redis-cli call of a script may take this long: a node that is not there must not
/// stall a start-up, a probe or a preStop hook.
const CLI_TIMEOUT_S: u32 = 2;
/// Annotations on the pod templates: a changed ConfigMap or Secret changes the template, so
/// the StatefulSet rolls the pods instead of leaving them on the old values.
const CONFIG_CHECKSUM: &str = "rcluster.io/config-checksum";
const SECRET_CHECKSUM: &str = "rcluster.io/secret-checksum";

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

/// What the manifests know of the password.
#[derive(Clone, Copy)]
pub struct Password<'a> {
    /// The real password, when rcluster knows it (the topology's, or the one `up` stored).
    pub value: Option<&'a str>,
    /// Render a Secret holding `value`. Without it the Secret is left out: the pods then
    /// use the one already in the cluster (never a placeholder Redis would accept).
    pub include_secret: bool,
    /// With `[tls]` and `include_secret`: the CA and the pods' certificate and key to render
    /// in the TLS Secret (never with `tls.existing_secret`).
    pub tls: Option<&'a crate::tls::CertKeyWithCa>,
}

/// The names every object and script agrees on.
struct Names<'a> {
    topology: &'a Topology,
    cluster: &'a str,
    namespace: &'a str,
    domain: &'a str,
}

impl<'a> Names<'a> {
    fn of(topology: &'a Topology) -> Names<'a> {
        Names {
            topology,
            cluster: &topology.cluster.name,
            namespace: &topology.kubernetes.namespace,
            domain: &topology.kubernetes.cluster_domain,
        }
    }

    /// The Secret the pods read the password from: the user's, or the one rcluster renders.
    fn secret(&self) -> String {
        match &self.topology.kubernetes.existing_secret {
            Some(name) => name.clone(),
            None => format!("{}-auth", self.cluster),
        }
    }
    fn secret_key(&self) -> String {
        match &self.topology.kubernetes.existing_secret {
            Some(_) => self.topology.kubernetes.existing_secret_key.clone(),
            None => PASSWORD_KEY.into(),
        }
    }
    /// The Secret the pods read `ca.crt`, `tls.crt` and `tls.key` from, with `[tls]`.
    fn tls_secret(&self) -> String {
        match &self.topology.tls.existing_secret {
            Some(name) => name.clone(),
            None => format!("{}-tls", self.cluster),
        }
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
        self.pod_dns(&self.redis(), ordinal, &self.redis())
    }
    fn sentinel_pod_dns(&self, ordinal: u8) -> String {
        self.pod_dns(&self.sentinel(), ordinal, &self.sentinel_headless())
    }
    /// `<statefulset>-<ordinal>.<service>.<namespace>.svc.<cluster domain>`.
    fn pod_dns(&self, statefulset: &str, ordinal: u8, service: &str) -> String {
        format!(
            "{statefulset}-{ordinal}.{service}.{}.svc.{}",
            self.namespace, self.domain
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

/// The names a client reaches the pod standing for `node` by on Kubernetes: the pod's DNS
/// name (`<cluster>-redis-0` stands for the master, `<cluster>-redis-<i>` for replica i,
/// `<cluster>-sentinel-<i-1>` for sentinel i), its short forms, and the Service it is
/// reached through. For the certificates' subject alternative names (`tls`).
pub fn dns_names(topology: &Topology, node: &Node) -> Vec<String> {
    let names = Names::of(topology);
    let (set, service, ordinal) = match node.role {
        Role::Master => (names.redis(), names.redis(), 0),
        Role::Replica => (names.redis(), names.redis(), node.index),
        Role::Sentinel => (
            names.sentinel(),
            names.sentinel_headless(),
            node.index.saturating_sub(1),
        ),
    };
    let pod = format!("{set}-{ordinal}");
    let mut out = vec![
        names.pod_dns(&set, ordinal, &service),
        format!("{pod}.{service}.{}.svc", names.namespace),
        format!("{pod}.{service}"),
        pod,
    ];
    let services: &[String] = match node.role {
        Role::Sentinel => &[names.sentinel(), names.sentinel_headless()],
        _ => &[names.redis()],
    };
    for service in services {
        out.push(format!(
            "{service}.{}.svc.{}",
            names.namespace, names.domain
        ));
        out.push(format!("{service}.{}.svc", names.namespace));
        out.push(format!("{service}.{}", names.namespace));
        out.push(service.clone());
    }
    out
}

/// The fixed `sentinel myid` of a sentinel pod; the start-up script computes the same.
fn sentinel_myid(pod: &str) -> String {
    let digest = Sha256::digest(format!("rcluster-sentinel:{pod}").as_bytes());
    hex::encode(digest)[..40].to_string()
}

/// Every object of the group, in apply order. The password goes only into the Secret (and,
/// hashed, into the checksum annotation).
pub fn objects(topology: &Topology, password: Password) -> anyhow::Result<Vec<Object>> {
    let spec = &topology.kubernetes;
    let names = Names::of(topology);
    let typed = |key: &str, value: Option<&serde_json::Value>| {
        value.map(|v| resource_requirements(key, v)).transpose()
    };
    let redis_key = if spec.redis_resources.is_some() {
        "kubernetes.redis_resources"
    } else {
        "kubernetes.resources"
    };
    let sentinel_key = if spec.sentinel_resources.is_some() {
        "kubernetes.sentinel_resources"
    } else {
        "kubernetes.resources"
    };
    let redis_resources = typed(redis_key, spec.redis_resources())?;
    let sentinel_resources = typed(sentinel_key, spec.sentinel_resources())?;
    let redis_config = redis_config_map(&names)?;
    let sentinel_config = sentinel_config_map(&names)?;
    // The user's Secret is theirs to roll out: rcluster cannot see it.
    // A renewed certificate rolls the pods too (they read the TLS Secret at start).
    let secret_checksum = password
        .value
        .filter(|_| spec.existing_secret.is_none())
        .map(|p| {
            // The `[acl]` users' own passwords live in the same Secret.
            let mut parts = vec![p];
            parts.extend(acl_secrets(topology).map(|(_, secret)| secret));
            if let Some(tls) = password.tls {
                parts.extend([tls.ca_pem.as_str(), tls.pair.cert_pem.as_str()]);
            }
            checksum(&parts)
        });
    let mut objects = Vec::new();
    if password.include_secret && spec.existing_secret.is_none() {
        let value = password.value.context(
            "no password to put in the Secret: set one in `[auth]`, run `rcluster up` once to generate one, \
             or name a Secret you manage in `kubernetes.existing_secret`",
        )?;
        objects.push(Object::Secret(Box::new(secret(&names, value))));
    }
    if topology.tls.enabled && password.include_secret && topology.tls.existing_secret.is_none() {
        let tls = password.tls.context(
            "no certificates to put in the TLS Secret; this is a bug in rcluster (render makes them with `--show-secrets`)",
        )?;
        objects.push(Object::Secret(Box::new(tls_secret(&names, tls))));
    }
    let redis_set = redis_statefulset(
        &names,
        redis_resources,
        Checksums {
            config: checksum_of(&redis_config),
            secret: secret_checksum.clone(),
        },
    );
    let sentinel_set = sentinel_statefulset(
        &names,
        sentinel_resources,
        Checksums {
            config: checksum_of(&sentinel_config),
            secret: secret_checksum,
        },
    );
    objects.extend([
        Object::ConfigMap(Box::new(redis_config)),
        Object::ConfigMap(Box::new(sentinel_config)),
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
        Object::StatefulSet(Box::new(redis_set)),
        Object::StatefulSet(Box::new(sentinel_set)),
        Object::PodDisruptionBudget(Box::new(pdb(
            &names,
            names.redis(),
            "redis",
            // One data node at a time: the preStop hook moves mastership first.
            1,
        ))),
        Object::PodDisruptionBudget(Box::new(pdb(
            &names,
            names.sentinel(),
            "sentinel",
            sentinel_max_unavailable(topology.sentinel.count, topology.sentinel.quorum),
        ))),
    ]);
    Ok(objects)
}

/// How many sentinels a drain may take at once: never so many that the rest cannot declare
/// the master down (quorum) or authorize a failover (majority), and never 0, which would
/// block every drain for good.
pub fn sentinel_max_unavailable(count: u8, quorum: u8) -> i32 {
    let majority = count / 2 + 1;
    let needed = majority.max(quorum);
    i32::from(count.saturating_sub(needed).max(1))
}

fn checksum(parts: &[&str]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part.as_bytes());
    }
    hex::encode(hasher.finalize())
}

fn checksum_of(config_map: &ConfigMap) -> String {
    let data = config_map.data.clone().unwrap_or_default();
    let parts: Vec<&str> = data
        .iter()
        .flat_map(|(k, v)| [k.as_str(), v.as_str()])
        .collect();
    checksum(&parts)
}

/// The pod template annotations that roll the pods when what they read changes.
struct Checksums {
    config: String,
    secret: Option<String>,
}

impl Checksums {
    fn annotations(self) -> BTreeMap<String, String> {
        let mut map = BTreeMap::from([(CONFIG_CHECKSUM.to_string(), self.config)]);
        if let Some(secret) = self.secret {
            map.insert(SECRET_CHECKSUM.to_string(), secret);
        }
        map
    }
}

/// Resources as typed requirements. The typed struct drops keys it does not know, so a typo
/// (`limts`) would vanish silently: compare the round trip with the input.
fn resource_requirements(
    key: &str,
    value: &serde_json::Value,
) -> anyhow::Result<ResourceRequirements> {
    let typed: ResourceRequirements = serde_json::from_value(value.clone()).with_context(|| {
        format!(
            "`{key}` is not a Kubernetes ResourceRequirements; write it like \
             `{{ requests = {{ cpu = \"100m\", memory = \"128Mi\" }}, limits = {{ memory = \"256Mi\" }} }}`"
        )
    })?;
    let round_trip = serde_json::to_value(&typed).context("cannot serialize resources")?;
    if round_trip != numbers_as_strings(value) {
        anyhow::bail!(
            "`{key}` has keys Kubernetes does not know: it reads as `{round_trip}`, \
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
pub fn render(topology: &Topology, password: Password) -> anyhow::Result<String> {
    let objects = objects(topology, password)?;
    serde_saphyr::to_string_multiple(&objects).context("cannot serialize the Kubernetes manifests")
}

fn secret(names: &Names, password: &str) -> Secret {
    let mut data = BTreeMap::from([(PASSWORD_KEY.to_string(), password.to_string())]);
    for (name, value) in acl_secrets(names.topology) {
        data.insert(crate::acl::secret_key(name), value.to_string());
    }
    Secret {
        metadata: names.meta(names.secret(), "auth"),
        type_: Some("Opaque".into()),
        string_data: Some(data),
        ..Secret::default()
    }
}

/// The Secret's keys the pods read: the password, and each `[acl]` user's own password.
fn secret_items(names: &Names) -> Vec<KeyToPath> {
    let mut items = vec![KeyToPath {
        key: names.secret_key(),
        path: PASSWORD_KEY.into(),
        ..KeyToPath::default()
    }];
    for (name, _) in acl_secrets(names.topology) {
        let key = crate::acl::secret_key(name);
        items.push(KeyToPath {
            key: key.clone(),
            path: key,
            ..KeyToPath::default()
        });
    }
    items
}

/// The `[acl]` users whose password is their own (from `password_env` / `password_file`),
/// with it: the Secret holds them under `acl-<name>`.
fn acl_secrets(topology: &Topology) -> impl Iterator<Item = (&str, &str)> {
    topology
        .acl
        .iter()
        .flat_map(|acl| acl.users.iter())
        .filter_map(|u| Some((u.name.as_str(), u.secret.as_ref()?.expose())))
}

/// `kubernetes.io/tls`: the pods' certificate and key, and the CA that signed it.
fn tls_secret(names: &Names, tls: &crate::tls::CertKeyWithCa) -> Secret {
    Secret {
        metadata: names.meta(names.tls_secret(), "tls"),
        type_: Some("kubernetes.io/tls".into()),
        string_data: Some(BTreeMap::from([
            ("ca.crt".into(), tls.ca_pem.clone()),
            ("tls.crt".into(), tls.pair.cert_pem.clone()),
            ("tls.key".into(), tls.pair.key_pem.expose().to_string()),
        ])),
        ..Secret::default()
    }
}

fn redis_config_map(names: &Names) -> anyhow::Result<ConfigMap> {
    let topology = names.topology;
    let redis_conf = RedisConf {
        node_name: format!("{} (StatefulSet pods)", names.redis()),
        bind: BIND_DUAL_STACK,
        port: REDIS_PORT,
        dir: super::DATA_DIR.into(),
        password: PASSWORD_PLACEHOLDER,
        announce: Endpoint::new(SELF_PLACEHOLDER, REDIS_PORT),
        // The start-up script appends `replicaof` when this pod is not the current master.
        replicaof: None,
        persistence: &topology.persistence,
        replication: &topology.replication,
        extra: topology
            .redis
            .extra
            .iter()
            .map(|(key, value)| super::Directive {
                key: key.clone(),
                value: value.clone(),
            })
            .collect(),
        acl: AclConf::placeholders(topology),
        tls: super::TlsConf::for_node(topology, true, TLS_MOUNT),
    }
    .render()
    .context("cannot render redis.conf for Kubernetes")?;
    let context = script_context(names, "redis");
    Ok(ConfigMap {
        metadata: names.meta(names.redis_config(), "redis"),
        data: Some(BTreeMap::from([
            ("redis.conf".into(), redis_conf),
            ("lib.sh".into(), render_template(LIB_TEMPLATE, &context)?),
            (
                "start.sh".into(),
                render_template(REDIS_START_TEMPLATE, &context)?,
            ),
            (
                "probe.sh".into(),
                render_template(PROBE_TEMPLATE, &context)?,
            ),
            (
                "prestop.sh".into(),
                render_template(REDIS_PRESTOP_TEMPLATE, &context)?,
            ),
        ])),
        ..ConfigMap::default()
    })
}

fn sentinel_config_map(names: &Names) -> anyhow::Result<ConfigMap> {
    let spec = &names.topology.sentinel;
    let sentinel_conf = SentinelConf {
        node_name: format!("{} (StatefulSet pods)", names.sentinel()),
        bind: BIND_DUAL_STACK,
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
        acl: AclConf::placeholders(names.topology),
        tls: super::TlsConf::for_node(names.topology, false, TLS_MOUNT),
    }
    .render()
    .context("cannot render sentinel.conf for Kubernetes")?;
    let context = script_context(names, "sentinel");
    Ok(ConfigMap {
        metadata: names.meta(names.sentinel_config(), "sentinel"),
        data: Some(BTreeMap::from([
            ("sentinel.conf".into(), sentinel_conf),
            ("lib.sh".into(), render_template(LIB_TEMPLATE, &context)?),
            (
                "start.sh".into(),
                render_template(SENTINEL_START_TEMPLATE, &context)?,
            ),
            (
                "probe.sh".into(),
                render_template(PROBE_TEMPLATE, &context)?,
            ),
            (
                "prestop.sh".into(),
                render_template(SENTINEL_PRESTOP_TEMPLATE, &context)?,
            ),
        ])),
        ..ConfigMap::default()
    })
}

/// What the script templates read.
#[derive(serde::Serialize)]
struct ScriptContext {
    cluster: String,
    /// `redis` or `sentinel`: which pods the probe script is for.
    kind: &'static str,
    namespace: String,
    cluster_domain: String,
    redis_statefulset: String,
    redis_service: String,
    sentinel_statefulset: String,
    sentinel_headless_service: String,
    redis_ordinals: Vec<u8>,
    sentinel_ordinals: Vec<u8>,
    sentinel_port: u16,
    redis_port: u16,
    master_name: String,
    data_dir: &'static str,
    password_file: String,
    /// Where the Secret is mounted: `[acl]` users' own passwords are files `acl-<name>` there.
    secret_dir: &'static str,
    /// The user the scripts log in as (`rcluster` when `acl.disable_default`), or none.
    login_user: Option<&'static str>,
    /// The `[acl]` users whose hashes (and passwords) the configs hold as placeholders.
    acl_users: Vec<crate::acl::ScriptUser>,
    cli_timeout_s: u32,
    /// How long a start-up script looks for the master before it falls back to what the
    /// node was (redis) or to ordinal 0 (a sentinel with no state, nothing answering).
    decide_timeout_s: u32,
    /// The redis preStop hook's deadlines and worst case.
    prestop: PrestopTiming,
    /// The sentinel preStop hook's waits and worst case.
    sentinel_prestop: SentinelPrestopTiming,
    redis_grace_period_s: u32,
    sentinel_grace_period_s: u32,
    /// With `[tls]`: the mounted CA, certificate and key redis-cli uses; `None` = plaintext.
    tls: Option<super::TlsConf>,
}

fn script_context(names: &Names, kind: &'static str) -> ScriptContext {
    let spec = &names.topology.sentinel;
    ScriptContext {
        cluster: names.cluster.into(),
        kind,
        namespace: names.namespace.into(),
        cluster_domain: names.domain.into(),
        redis_statefulset: names.redis(),
        redis_service: names.redis(),
        sentinel_statefulset: names.sentinel(),
        sentinel_headless_service: names.sentinel_headless(),
        redis_ordinals: (0..names.redis_count()).collect(),
        sentinel_ordinals: (0..spec.count).collect(),
        sentinel_port: SENTINEL_PORT,
        redis_port: REDIS_PORT,
        master_name: spec.master_name.clone(),
        data_dir: super::DATA_DIR,
        password_file: format!("{SECRET_MOUNT}/{PASSWORD_KEY}"),
        secret_dir: SECRET_MOUNT,
        login_user: names.topology.login_user(),
        acl_users: crate::acl::script_users(names.topology),
        cli_timeout_s: CLI_TIMEOUT_S,
        decide_timeout_s: decide_timeout_s(names.topology),
        prestop: PrestopTiming::for_topology(names.topology),
        sentinel_prestop: SentinelPrestopTiming::for_topology(names.topology),
        redis_grace_period_s: redis_grace_period_s(names.topology),
        sentinel_grace_period_s: sentinel_grace_period_s(names.topology),
        tls: super::TlsConf::for_node(names.topology, kind == "redis", TLS_MOUNT),
    }
}

/// Long enough for the sentinels to notice a master gone and elect a replica in its place
/// (the restarted master waits for that), with room for a slow election.
fn decide_timeout_s(topology: &Topology) -> u32 {
    let spec = &topology.sentinel;
    let ms = spec.down_after_ms.saturating_mul(3) + spec.failover_timeout_ms.min(60_000);
    u32::try_from(ms / 1000).unwrap_or(u32::MAX).clamp(10, 300) + 10
}

/// The redis preStop hook's deadlines, in seconds from its start, and its worst case
/// computed from its own timeouts (the arithmetic is repeated in the script's header).
#[derive(serde::Serialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrestopTiming {
    /// Until then (from the start, writes still flowing) the hook waits for a sentinel that
    /// flags no linked replica down.
    pub pick_s: u32,
    /// How long, once writes are paused, every linked replica has to reach the master's
    /// offset before the handover goes on without the ones behind.
    pub catchup_s: u32,
    /// Mastership has moved by then, or the node stops as master (the last deadline; also
    /// how long writes are paused at most).
    pub budget_s: u32,
    /// The longest the hook can run: `budget_s`, then the round that finds it passed (a
    /// sentinel looked at, asked, its pick checked: 3 calls), the replicas moved to the new
    /// master (3 calls, all replicas at once), this node following it and rewriting its
    /// config, the unpause and the exit check (4 calls), each call at most CLI_TIMEOUT_S,
    /// and a second for the sleeps and `date`'s whole seconds. Independent of the number
    /// of pods: every loop checks its deadline between calls.
    pub worst_case_s: u32,
}

impl PrestopTiming {
    pub fn for_topology(topology: &Topology) -> PrestopTiming {
        // A handover takes a second or two; a sentinel that has not moved mastership in
        // half the failover timeout is not going to (the sentinels fail over on their own
        // once the pod is gone). Writes are paused that long at most.
        let half = topology.sentinel.failover_timeout_ms / 2000;
        let budget_s = u32::try_from(half).unwrap_or(u32::MAX).clamp(20, 60);
        let pick_s = (budget_s / 3).min(10);
        // Half of down-after: a paused master holds the sentinels' hello PUBLISH and the
        // PINGs queued behind it, so a longer pause before the failover is asked makes them
        // see it down and start a failover of their own. Linked replicas acknowledge every
        // second, so one second is enough when nothing is wrong.
        let down_after_s = topology.sentinel.down_after_ms / 2000;
        let catchup_s = u32::try_from(down_after_s).unwrap_or(u32::MAX).clamp(1, 5);
        PrestopTiming {
            catchup_s,
            pick_s,
            budget_s,
            worst_case_s: budget_s + 10 * CLI_TIMEOUT_S + 1,
        }
    }
}

/// What Redis may need after the preStop hook: on SIGTERM it waits up to
/// `shutdown-timeout` (10 s by default) for lagging replicas, then writes its AOF (and
/// RDB with snapshots on).
const REDIS_SHUTDOWN_S: u32 = 30;

/// The pod's grace period: the preStop hook's worst case, then Redis's own shutdown.
pub fn redis_grace_period_s(topology: &Topology) -> u32 {
    PrestopTiming::for_topology(topology).worst_case_s + REDIS_SHUTDOWN_S
}

/// The sentinel preStop hook's waits and worst case.
#[derive(serde::Serialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct SentinelPrestopTiming {
    /// After marking itself stopping: longer than a redis preStop hook takes between
    /// looking at this sentinel and asking it (two calls).
    pub settle_s: u32,
    /// The longest it waits for a failover it runs to end: as long as a redis preStop
    /// hook waits for one.
    pub wait_s: u32,
    /// settle + wait + the last round (one call) + a second for sleeps and `date`.
    pub worst_case_s: u32,
}

impl SentinelPrestopTiming {
    pub fn for_topology(topology: &Topology) -> SentinelPrestopTiming {
        let settle_s = 2 * CLI_TIMEOUT_S + 2;
        let wait_s = PrestopTiming::for_topology(topology).budget_s;
        SentinelPrestopTiming {
            settle_s,
            wait_s,
            worst_case_s: settle_s + wait_s + CLI_TIMEOUT_S + 1,
        }
    }
}

/// Sentinel stops at once on SIGTERM (it saves a small config file).
const SENTINEL_SHUTDOWN_S: u32 = 10;

pub fn sentinel_grace_period_s(topology: &Topology) -> u32 {
    SentinelPrestopTiming::for_topology(topology).worst_case_s + SENTINEL_SHUTDOWN_S
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

/// The Service clients reach the ready sentinels through (the scripts ask every sentinel
/// pod by name instead: a Service picks one).
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

fn redis_statefulset(
    names: &Names,
    resources: Option<ResourceRequirements>,
    checksums: Checksums,
) -> StatefulSet {
    let spec = &names.topology.kubernetes;
    let container = Container {
        name: "redis".into(),
        command: Some(vec!["sh".into(), format!("{CONFIG_MOUNT}/start.sh")]),
        ports: Some(vec![container_port("redis", REDIS_PORT)]),
        volume_mounts: Some(volume_mounts(names)),
        lifecycle: Some(Lifecycle {
            pre_stop: Some(LifecycleHandler {
                exec: Some(script_action("prestop.sh", &[])),
                ..LifecycleHandler::default()
            }),
            ..Lifecycle::default()
        }),
        ..pod_container(names, resources)
    };
    let claim = claim(names, "redis", spec.storage_size.clone());
    statefulset(
        names,
        StatefulSetParts {
            name: names.redis(),
            service: names.redis(),
            component: "redis",
            replicas: i32::from(names.redis_count()),
            container,
            config_map: names.redis_config(),
            claim,
            grace_period_s: i64::from(redis_grace_period_s(names.topology)),
            checksums,
        },
    )
}

fn sentinel_statefulset(
    names: &Names,
    resources: Option<ResourceRequirements>,
    checksums: Checksums,
) -> StatefulSet {
    let spec = &names.topology.kubernetes;
    let container = Container {
        name: "sentinel".into(),
        command: Some(vec!["sh".into(), format!("{CONFIG_MOUNT}/start.sh")]),
        ports: Some(vec![container_port("sentinel", SENTINEL_PORT)]),
        volume_mounts: Some(volume_mounts(names)),
        lifecycle: Some(Lifecycle {
            pre_stop: Some(LifecycleHandler {
                exec: Some(script_action("prestop.sh", &[])),
                ..LifecycleHandler::default()
            }),
            ..Lifecycle::default()
        }),
        ..pod_container(names, resources)
    };
    let claim = claim(names, "sentinel", spec.sentinel_storage_size.clone());
    statefulset(
        names,
        StatefulSetParts {
            name: names.sentinel(),
            service: names.sentinel_headless(),
            component: "sentinel",
            replicas: i32::from(names.topology.sentinel.count),
            container,
            config_map: names.sentinel_config(),
            claim,
            grace_period_s: i64::from(sentinel_grace_period_s(names.topology)),
            checksums,
        },
    )
}

/// The volume each pod keeps across restarts and re-creations: data for redis, Sentinel's
/// own state for sentinels.
fn claim(names: &Names, component: &str, size: String) -> PersistentVolumeClaim {
    PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some("data".into()),
            labels: Some(names.labels(component)),
            ..ObjectMeta::default()
        },
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".into()]),
            storage_class_name: names.topology.kubernetes.storage_class.clone(),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([("storage".into(), Quantity(size))])),
                ..VolumeResourceRequirements::default()
            }),
            ..PersistentVolumeClaimSpec::default()
        }),
        ..PersistentVolumeClaim::default()
    }
}

/// What redis and sentinel containers share: image, environment, probes, security.
fn pod_container(names: &Names, resources: Option<ResourceRequirements>) -> Container {
    let field = |name: &str, path: &str| EnvVar {
        name: name.into(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: path.into(),
                ..ObjectFieldSelector::default()
            }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    };
    let timing = ProbeTiming::for_topology(names.topology);
    Container {
        image: Some(names.topology.kubernetes.image.clone()),
        // No password here: the scripts read it from the Secret's file, so redis-server and
        // Sentinel never carry it in their environment.
        env: Some(vec![field("POD_NAME", "metadata.name")]),
        startup_probe: Some(probe("startup", 2, timing.startup_failures)),
        liveness_probe: Some(probe("liveness", 5, 3)),
        readiness_probe: Some(probe("readiness", 2, 2)),
        resources,
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".into()]),
                ..Capabilities::default()
            }),
            read_only_root_filesystem: Some(true),
            run_as_non_root: Some(true),
            ..SecurityContext::default()
        }),
        ..Container::default()
    }
}

/// How long the startup probe waits: the start-up script may look for the master for
/// `decide_timeout_s`, and a large dataset then loads (LOADING counts as started).
struct ProbeTiming {
    startup_failures: i32,
}

impl ProbeTiming {
    fn for_topology(topology: &Topology) -> ProbeTiming {
        let seconds = decide_timeout_s(topology) + 60;
        ProbeTiming {
            startup_failures: i32::try_from(seconds.div_ceil(2)).unwrap_or(i32::MAX),
        }
    }
}

fn script_action(script: &str, args: &[&str]) -> ExecAction {
    let mut command = vec!["sh".to_string(), format!("{CONFIG_MOUNT}/{script}")];
    command.extend(args.iter().map(|a| a.to_string()));
    ExecAction {
        command: Some(command),
    }
}

/// One of the probe script's checks (`probe.sh startup|liveness|readiness`).
fn probe(check: &str, period_seconds: i32, failure_threshold: i32) -> Probe {
    Probe {
        exec: Some(script_action("probe.sh", &[check])),
        period_seconds: Some(period_seconds),
        // Two redis-cli calls of up to CLI_TIMEOUT_S each, in the worst case.
        timeout_seconds: Some(i32::try_from(CLI_TIMEOUT_S * 2 + 1).unwrap_or(5)),
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

struct StatefulSetParts {
    name: String,
    service: String,
    component: &'static str,
    replicas: i32,
    container: Container,
    config_map: String,
    claim: PersistentVolumeClaim,
    grace_period_s: i64,
    checksums: Checksums,
}

/// What both containers mount: their config, the Secret, scratch space, their data volume,
/// and the TLS Secret when the group speaks TLS.
fn volume_mounts(names: &Names) -> Vec<VolumeMount> {
    vec![
        mount("config", CONFIG_MOUNT, true),
        mount("secret", SECRET_MOUNT, true),
        mount("tmp", "/tmp", false),
        mount("data", super::DATA_DIR, false),
    ]
    .into_iter()
    .chain(tls_mount(names))
    .collect()
}

/// The TLS Secret's mount, with `[tls]`.
fn tls_mount(names: &Names) -> Option<VolumeMount> {
    names
        .topology
        .tls
        .enabled
        .then(|| mount("tls", TLS_MOUNT, true))
}

/// The TLS Secret as a volume, with `[tls]`: readable by the pod's group (fsGroup) only.
fn tls_volume(names: &Names) -> Option<Volume> {
    names.topology.tls.enabled.then(|| Volume {
        name: "tls".into(),
        secret: Some(SecretVolumeSource {
            secret_name: Some(names.tls_secret()),
            default_mode: Some(0o440),
            ..SecretVolumeSource::default()
        }),
        ..Volume::default()
    })
}

fn statefulset(names: &Names, parts: StatefulSetParts) -> StatefulSet {
    let component = parts.component;
    let pod_meta = ObjectMeta {
        labels: Some(names.labels(component)),
        annotations: Some(parts.checksums.annotations()),
        ..ObjectMeta::default()
    };
    let uid = (!names.topology.kubernetes.platform_uid).then_some(REDIS_UID);
    StatefulSet {
        metadata: names.meta(parts.name, component),
        spec: Some(StatefulSetSpec {
            service_name: Some(parts.service),
            replicas: Some(parts.replicas),
            // The start-up scripts find the master by asking the group, never by starting
            // order: pods need not wait for each other.
            pod_management_policy: Some("Parallel".into()),
            selector: LabelSelector {
                match_labels: Some(names.selector(component)),
                ..LabelSelector::default()
            },
            template: PodTemplateSpec {
                metadata: Some(pod_meta),
                spec: Some(PodSpec {
                    affinity: Some(anti_affinity(names, component)),
                    topology_spread_constraints: zone_spread(names, component),
                    // Nothing in the pod talks to the Kubernetes API.
                    automount_service_account_token: Some(false),
                    termination_grace_period_seconds: Some(parts.grace_period_s),
                    // Pod Security "restricted". The official image starts as root and drops
                    // to `redis` in its entrypoint, which the start-up script replaces: run
                    // as `redis` directly, or as whatever uid the platform assigns.
                    security_context: Some(PodSecurityContext {
                        run_as_user: uid,
                        run_as_group: uid,
                        fs_group: uid,
                        run_as_non_root: Some(true),
                        seccomp_profile: Some(SeccompProfile {
                            type_: "RuntimeDefault".into(),
                            ..SeccompProfile::default()
                        }),
                        ..PodSecurityContext::default()
                    }),
                    containers: vec![parts.container],
                    volumes: Some(
                        vec![
                            Volume {
                                name: "config".into(),
                                config_map: Some(ConfigMapVolumeSource {
                                    name: parts.config_map,
                                    default_mode: Some(0o444),
                                    ..ConfigMapVolumeSource::default()
                                }),
                                ..Volume::default()
                            },
                            Volume {
                                name: "secret".into(),
                                secret: Some(SecretVolumeSource {
                                    secret_name: Some(names.secret()),
                                    items: Some(secret_items(names)),
                                    // Readable by the pod's group (fsGroup) only.
                                    default_mode: Some(0o440),
                                    ..SecretVolumeSource::default()
                                }),
                                ..Volume::default()
                            },
                            Volume {
                                name: "tmp".into(),
                                empty_dir: Some(EmptyDirVolumeSource::default()),
                                ..Volume::default()
                            },
                        ]
                        .into_iter()
                        .chain(tls_volume(names))
                        .collect(),
                    ),
                    ..PodSpec::default()
                }),
            },
            volume_claim_templates: Some(vec![parts.claim]),
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

/// Spread a component's pods over zones: losing a zone then costs at most one of each.
fn zone_spread(names: &Names, component: &str) -> Option<Vec<TopologySpreadConstraint>> {
    let when_unsatisfiable = match names.topology.kubernetes.zone_spread {
        ZoneSpread::None => return None,
        ZoneSpread::Preferred => "ScheduleAnyway",
        ZoneSpread::Required => "DoNotSchedule",
    };
    Some(vec![TopologySpreadConstraint {
        max_skew: 1,
        topology_key: "topology.kubernetes.io/zone".into(),
        when_unsatisfiable: when_unsatisfiable.into(),
        label_selector: Some(LabelSelector {
            match_labels: Some(names.selector(component)),
            ..LabelSelector::default()
        }),
        ..TopologySpreadConstraint::default()
    }])
}

fn pdb(names: &Names, name: String, component: &str, max_unavailable: i32) -> PodDisruptionBudget {
    PodDisruptionBudget {
        metadata: names.meta(name, component),
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(max_unavailable)),
            selector: Some(LabelSelector {
                match_labels: Some(names.selector(component)),
                ..LabelSelector::default()
            }),
            ..PodDisruptionBudgetSpec::default()
        }),
        ..PodDisruptionBudget::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentinel_drains_keep_a_majority_and_the_quorum_and_never_block() {
        // (count, quorum) -> how many may be down at once
        let cases = [
            (1, 1, 1),
            (3, 2, 1),
            (3, 3, 1),
            (5, 2, 2),
            (5, 3, 2),
            (5, 4, 1),
            (7, 4, 3),
        ];
        for (count, quorum, want) in cases {
            assert_eq!(
                sentinel_max_unavailable(count, quorum),
                want,
                "{count} sentinels, quorum {quorum}"
            );
        }
    }

    fn topology(more: &str) -> Topology {
        let text = format!("[cluster]\nname = \"demo\"\n{more}");
        crate::topology::parse(
            std::path::Path::new("topology.toml"),
            &text,
            None,
            &|_| None,
            &|_| Err(std::io::Error::other("no files here")),
        )
        .map_err(|e| format!("{more}: {:?}", e.errors))
        .expect("topology")
        .topology
    }

    #[test]
    fn grace_periods_cover_the_prestop_hooks_worst_case_and_the_shutdown() {
        for more in [
            "",
            "[sentinel]\nfailover_timeout_ms = 3000\ndown_after_ms = 1500\n",
            "[sentinel]\nfailover_timeout_ms = 30000\ndown_after_ms = 2000\n",
            "[sentinel]\nfailover_timeout_ms = 600000\ncount = 5\nquorum = 3\n",
            "[replicas]\ncount = 6\n[sentinel]\ncount = 7\nquorum = 4\n",
            "[replicas]\ncount = 0\n",
        ] {
            let topology = topology(more);
            let timing = PrestopTiming::for_topology(&topology);
            // The script's own arithmetic: the last deadline, the round that finds it
            // passed (3 calls), the replicas moved at once (3 calls), the 4 closing calls.
            let worst = timing.budget_s + (3 + 3 + 4) * CLI_TIMEOUT_S + 1;
            assert_eq!(timing.worst_case_s, worst, "{more}");
            assert!(
                // The wait for a sentinel (and its last look), then the replicas' catch-up
                // (and its last call), end before the last deadline.
                timing.pick_s + CLI_TIMEOUT_S + 1 + timing.catchup_s + CLI_TIMEOUT_S + 1
                    < timing.budget_s,
                "the deadlines come in order: {timing:?} for {more}"
            );
            assert!(
                u64::from(timing.catchup_s) * 1000 <= topology.sentinel.down_after_ms.max(2000) / 2,
                "writes are not held past half of down-after before the failover is asked"
            );
            let grace = redis_grace_period_s(&topology);
            assert!(
                grace >= worst + 10 + 20,
                "redis grace {grace} s leaves Redis's shutdown-timeout (10 s) and a save \
                 (20 s) after a worst case of {worst} s, for {more}"
            );
            // The pause never outlasts the hook: writes resume at the latest when it ends.
            assert!(timing.budget_s <= worst);

            let sentinel = SentinelPrestopTiming::for_topology(&topology);
            assert!(
                sentinel.settle_s > 2 * CLI_TIMEOUT_S,
                "a failover asked right after a redis hook found this sentinel unmarked is \
                 under way once the settle time is over"
            );
            assert!(
                sentinel.wait_s >= timing.budget_s,
                "a sentinel waits for a failover as long as a redis hook does"
            );
            assert_eq!(
                sentinel.worst_case_s,
                sentinel.settle_s + sentinel.wait_s + CLI_TIMEOUT_S + 1
            );
            assert!(sentinel_grace_period_s(&topology) >= sentinel.worst_case_s + 5);
        }
    }
}
