//! Kubernetes manifests: checked topology -> typed `k8s-openapi` objects -> multi-document YAML.
//!
//! Pure: no I/O, no cluster access. Builds the same redis.conf / sentinel.conf as the Docker
//! group from the same templates, with pod DNS names instead of fixed IPs. The configs in the
//! ConfigMaps hold placeholders, never the password: the pods' start-up scripts (also in the
//! ConfigMap) fill in the password from the Secret, the pod's own name, and the current
//! master that the sentinels report. Must not hand-write YAML.
//!
//! What a pod runs with never changes under it: an init container copies the ConfigMap and
//! the Secrets into the pod's own volumes when it is created, and everything in the pod reads
//! only those copies. Each kind's pod template carries checksums of exactly what its pods
//! copy, so a change rolls that kind alone, one pod at a time. Nothing rendered for one kind
//! depends on the other kind's count or settings, and no pod count reaches a script or a
//! config: the scripts find the pods in DNS, so `kubectl scale` needs no other change.

use std::collections::BTreeMap;

use anyhow::Context as _;
use k8s_openapi::api::apps::v1::{StatefulSet, StatefulSetSpec};
use k8s_openapi::api::core::v1::{
    Affinity, Capabilities, ConfigMap, ConfigMapVolumeSource, Container, ContainerPort,
    EmptyDirVolumeSource, EnvVar, EnvVarSource, ExecAction, KeyToPath, Lifecycle, LifecycleHandler,
    LocalObjectReference, ObjectFieldSelector, PersistentVolumeClaim, PersistentVolumeClaimSpec,
    PodAffinityTerm, PodAntiAffinity, PodSecurityContext, PodSpec, PodTemplateSpec, Probe,
    ProjectedVolumeSource, ResourceRequirements, SeccompProfile, Secret, SecretProjection,
    SecretVolumeSource, SecurityContext, Service, ServicePort, ServiceSpec, Toleration,
    TopologySpreadConstraint, Volume, VolumeMount, VolumeProjection, VolumeResourceRequirements,
    WeightedPodAffinityTerm,
};
use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicyPort,
    NetworkPolicySpec,
};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use sha2::{Digest, Sha256};

use crate::acl::AclConf;

use super::{
    BIND_DUAL_STACK, Endpoint, KnownSentinel, REDIS_PLAINTEXT_PORT, RedisConf,
    SENTINEL_PLAINTEXT_PORT, SentinelConf, render_template,
};
use crate::topology::layout::{REDIS_PORT, SENTINEL_PORT};
use crate::topology::{AntiAffinity, Node, Role, SentinelDrain, Topology, ZoneSpread};

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
/// Template of the init container that copies what a pod runs with into its own volumes.
pub const COPY_TEMPLATE: (&str, &str) = (
    "k8s-copy.sh.j2",
    include_str!("../../templates/k8s-copy.sh.j2"),
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
/// The pod's copy (read-only in the server container) of the ConfigMap: configs with
/// placeholders and the scripts.
const CONFIG_MOUNT: &str = "/config";
/// The pod's copy of the Secret; the scripts read `password` from there.
const SECRET_MOUNT: &str = "/run/secrets/rcluster";
/// The pod's copy of the TLS Secret (`ca.crt`, `tls.crt`, `tls.key`), with `[tls]`.
const TLS_MOUNT: &str = "/run/secrets/rcluster-tls";
/// Where the init container alone mounts the ConfigMap (`config`), the Secret (`secret`)
/// and the TLS Secret (`tls`) it copies from.
const SOURCE_MOUNT: &str = "/run/rcluster-source";
/// The init container's name.
const COPY_CONTAINER: &str = "copy";
/// The Secret's keys of a password that is accepted but not used: `<prefix><key>` next to
/// each key the pods read (see `templates/k8s-lib.sh.j2`, `accepted`).
const ACCEPTED_PREFIXES: [&str; 2] = ["next_", "previous_"];
/// The scripts look for pods by ordinal until this many in a row have no DNS name.
const DNS_GAP: u32 = 3;
/// ... and never past this ordinal.
const MAX_ORDINALS: u32 = 256;
/// Each redis-cli call of a script may take this long: a node that is not there must not
/// stall a start-up, a probe or a preStop hook.
const CLI_TIMEOUT_S: u32 = 2;
/// Annotations on the pod templates: a changed ConfigMap or Secret changes the template, so
/// the StatefulSet rolls the pods instead of leaving them on the old values. Each kind's
/// checksums cover only what its own pods copy.
const CONFIG_CHECKSUM: &str = "rcluster.io/config-checksum";
const SECRET_CHECKSUM: &str = "rcluster.io/secret-checksum";
/// Requests (cpu, memory) of a redis container when the topology sets no resources: enough
/// to schedule an idle node with a small dataset and its probes' redis-cli forks, and to
/// make the pod Burstable, not BestEffort (evicted first under node pressure). No limits:
/// a memory limit without `maxmemory` gets redis OOM-killed while it forks to save.
const REDIS_DEFAULT_REQUESTS: (&str, &str) = ("100m", "128Mi");
/// The same for a sentinel container: Sentinel itself uses a few MiB and little CPU.
const SENTINEL_DEFAULT_REQUESTS: (&str, &str) = ("50m", "64Mi");
/// `kubernetes.secret_revision`: a Secret rcluster does not render (`existing_secret`,
/// `tls.existing_secret`) cannot be checksummed; bumping this rolls both kinds.
const SECRET_REVISION: &str = "rcluster.io/secret-revision";

/// A rendered manifest: every object in apply order.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(untagged)]
pub enum Object {
    Secret(Box<Secret>),
    ConfigMap(Box<ConfigMap>),
    Service(Box<Service>),
    StatefulSet(Box<StatefulSet>),
    NetworkPolicy(Box<NetworkPolicy>),
    PodDisruptionBudget(Box<PodDisruptionBudget>),
    /// For Kubernetes before 1.21, which serves PodDisruptionBudgets only as `v1beta1`.
    PodDisruptionBudgetV1Beta1(Box<PodDisruptionBudgetV1Beta1>),
}

/// A PodDisruptionBudget emitted as `policy/v1beta1`. k8s-openapi is built for 1.33 and has
/// no v1beta1 type, so the v1 object is built and only its `apiVersion` changes: the two
/// versions have the same `minAvailable`, `maxUnavailable` and `selector`, the only fields
/// rcluster sets. (They differ on an empty selector, which matches no pod in v1beta1 and
/// every pod in v1; rcluster always sets one. `unhealthyPodEvictionPolicy` is newer than
/// 1.21 and never set.) [`PodDisruptionBudgetV1Beta1::of`] refuses any other field.
#[derive(Debug, Clone)]
pub struct PodDisruptionBudgetV1Beta1(serde_json::Value);

impl PodDisruptionBudgetV1Beta1 {
    /// The spec fields v1beta1 reads as v1 does.
    const SAME_IN_BOTH: [&str; 3] = ["minAvailable", "maxUnavailable", "selector"];

    fn of(pdb: &PodDisruptionBudget) -> anyhow::Result<PodDisruptionBudgetV1Beta1> {
        let mut value =
            serde_json::to_value(pdb).context("cannot serialize a PodDisruptionBudget")?;
        let fields = value
            .get("spec")
            .and_then(|spec| spec.as_object())
            .map(|spec| spec.keys().cloned().collect::<Vec<_>>())
            .unwrap_or_default();
        if let Some(field) = fields
            .iter()
            .find(|f| !Self::SAME_IN_BOTH.contains(&f.as_str()))
        {
            anyhow::bail!(
                "the PodDisruptionBudget sets `spec.{field}`, which `policy/v1beta1` does not read as `policy/v1` does; this is a bug in rcluster"
            );
        }
        value["apiVersion"] = "policy/v1beta1".into();
        Ok(PodDisruptionBudgetV1Beta1(value))
    }
}

impl serde::Serialize for PodDisruptionBudgetV1Beta1 {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
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
    /// Selects every pod of the group, redis and sentinel: labels only rcluster sets together.
    fn group_selector(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            ("app.kubernetes.io/instance".into(), self.cluster.into()),
            ("app.kubernetes.io/managed-by".into(), "rcluster".into()),
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

/// The names any pod of the group is reached by, whatever the StatefulSets' sizes (one
/// certificate serves every pod, and `kubectl scale` must not need a new one): every pod's
/// name through a wildcard under its headless Service, and every Service's names.
pub fn pod_names_any_count(topology: &Topology) -> Vec<String> {
    let names = Names::of(topology);
    let mut out = Vec::new();
    let service_forms = |service: &str| {
        [
            format!("{service}.{}.svc.{}", names.namespace, names.domain),
            format!("{service}.{}.svc", names.namespace),
            format!("{service}.{}", names.namespace),
            service.to_string(),
        ]
    };
    for headless in [names.redis(), names.sentinel_headless()] {
        // OpenSSL matches `*` against one label only, and never in a name of two labels.
        out.extend(
            service_forms(&headless)
                .into_iter()
                .take(3)
                .map(|form| format!("*.{form}")),
        );
    }
    for service in [names.redis(), names.sentinel(), names.sentinel_headless()] {
        out.extend(service_forms(&service));
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
    let (redis_resources, sentinel_resources) = pod_resources(spec)?;
    let redis_config = redis_config_map(&names)?;
    let sentinel_config = sentinel_config_map(&names)?;
    // The user's Secret is theirs to roll out: rcluster cannot see it (they bump
    // `kubernetes.secret_revision`). A renewed certificate rolls the pods too (they copy the
    // TLS Secret at start). Each kind's checksum covers what its pods copy: the `[acl]`
    // users' own passwords only reach the redis pods.
    let secret_checksum = |kind: Kind| {
        password
            .value
            .filter(|_| spec.existing_secret.is_none())
            .map(|p| {
                let mut parts = vec![p];
                if kind == Kind::Redis {
                    parts.extend(acl_secrets(topology).map(|(_, secret)| secret));
                }
                if let Some(tls) = password.tls {
                    parts.extend([tls.ca_pem.as_str(), tls.pair.cert_pem.as_str()]);
                }
                checksum(&parts)
            })
    };
    let mut objects = secrets(&names, &password)?;
    let redis_set = redis_statefulset(
        &names,
        redis_resources,
        Checksums {
            config: checksum_of(&redis_config),
            secret: secret_checksum(Kind::Redis),
            revision: spec.secret_revision.clone(),
        },
    );
    let sentinel_set = sentinel_statefulset(
        &names,
        sentinel_resources,
        Checksums {
            config: checksum_of(&sentinel_config),
            secret: secret_checksum(Kind::Sentinel),
            revision: spec.secret_revision.clone(),
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
    ]);
    // Before the pods, so that none ever runs unprotected.
    if let Some(policy) = &spec.network_policy {
        objects.push(Object::NetworkPolicy(Box::new(network_policy(
            &names, policy,
        ))));
    }
    objects.extend([
        Object::StatefulSet(Box::new(redis_set)),
        Object::StatefulSet(Box::new(sentinel_set)),
    ]);
    objects.extend(budgets(&names)?);
    Ok(objects)
}

/// Each container's requests and limits: the topology's (per kind, else shared), else
/// default requests.
fn pod_resources(
    spec: &crate::topology::KubernetesSpec,
) -> anyhow::Result<(Option<ResourceRequirements>, Option<ResourceRequirements>)> {
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
    let redis = typed(redis_key, spec.redis_resources())?
        .or_else(|| Some(default_requests(REDIS_DEFAULT_REQUESTS)));
    let sentinel = typed(sentinel_key, spec.sentinel_resources())?
        .or_else(|| Some(default_requests(SENTINEL_DEFAULT_REQUESTS)));
    Ok((redis, sentinel))
}

/// The Secrets rcluster renders: only with `--show-secrets`, and never one the user
/// manages (`existing_secret`, `tls.existing_secret`).
fn secrets(names: &Names, password: &Password) -> anyhow::Result<Vec<Object>> {
    let topology = names.topology;
    let mut objects = Vec::new();
    if password.include_secret && topology.kubernetes.existing_secret.is_none() {
        let value = password.value.context(
            "no password to put in the Secret: set one in `[auth]`, run `rcluster up` once to generate one, \
             or name a Secret you manage in `kubernetes.existing_secret`",
        )?;
        objects.push(Object::Secret(Box::new(secret(names, value))));
    }
    if topology.tls.enabled && password.include_secret && topology.tls.existing_secret.is_none() {
        let tls = password.tls.context(
            "no certificates to put in the TLS Secret; this is a bug in rcluster (render makes them with `--show-secrets`)",
        )?;
        objects.push(Object::Secret(Box::new(tls_secret(names, tls))));
    }
    Ok(objects)
}

/// The two PodDisruptionBudgets, in the API version the target server serves.
fn budgets(names: &Names) -> anyhow::Result<Vec<Object>> {
    let topology = names.topology;
    let pdbs = [
        pdb(
            names,
            names.redis(),
            "redis",
            // One data node at a time: the preStop hook moves mastership first.
            1,
        ),
        pdb(
            names,
            names.sentinel(),
            "sentinel",
            sentinel_max_unavailable(topology.sentinel.count, topology.sentinel.quorum),
        ),
    ];
    pdbs.into_iter()
        .map(|pdb| {
            Ok(if topology.kubernetes.version.has_policy_v1() {
                Object::PodDisruptionBudget(Box::new(pdb))
            } else {
                Object::PodDisruptionBudgetV1Beta1(Box::new(PodDisruptionBudgetV1Beta1::of(&pdb)?))
            })
        })
        .collect()
}

/// Requests only: see [`REDIS_DEFAULT_REQUESTS`].
fn default_requests((cpu, memory): (&str, &str)) -> ResourceRequirements {
    ResourceRequirements {
        requests: Some(BTreeMap::from([
            ("cpu".into(), Quantity(cpu.into())),
            ("memory".into(), Quantity(memory.into())),
        ])),
        ..ResourceRequirements::default()
    }
}

/// How many sentinels a drain may take at once: never so many that the rest cannot declare
/// the master down (quorum) or authorize a failover (majority) when the group has a
/// sentinel to spare, and never 0, which would block every drain for good. With 1 or 2
/// sentinels or `quorum` = count there is none to spare; see [`SentinelDrain::of`].
pub fn sentinel_max_unavailable(count: u8, quorum: u8) -> i32 {
    i32::from(SentinelDrain::of(count, quorum).max_unavailable)
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
    /// `kubernetes.secret_revision`, verbatim.
    revision: Option<String>,
}

impl Checksums {
    fn annotations(self) -> BTreeMap<String, String> {
        let mut map = BTreeMap::from([(CONFIG_CHECKSUM.to_string(), self.config)]);
        if let Some(secret) = self.secret {
            map.insert(SECRET_CHECKSUM.to_string(), secret);
        }
        if let Some(revision) = self.revision {
            map.insert(SECRET_REVISION.to_string(), revision);
        }
        map
    }
}

/// The two kinds of pod: what one kind's objects hold must not depend on the other's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Redis,
    Sentinel,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Redis => "redis",
            Kind::Sentinel => "sentinel",
        }
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

/// The Secret's keys a kind's pods read (key, file name): the password, and on the redis
/// pods each `[acl]` user's own password (the sentinels hold no application user).
fn secret_keys(names: &Names, kind: Kind) -> Vec<(String, String)> {
    let mut keys = vec![(names.secret_key(), PASSWORD_KEY.to_string())];
    if kind == Kind::Redis {
        for (name, _) in acl_secrets(names.topology) {
            let key = crate::acl::secret_key(name);
            keys.push((key.clone(), key));
        }
    }
    keys
}

/// The Secret as the init container sees it: the keys the pods need (the pod does not
/// start without them), and, where the Secret has them, the `next_` / `previous_`
/// passwords that are accepted too during a rotation (optional: a missing one is no file).
fn secret_source(names: &Names, kind: Kind) -> ProjectedVolumeSource {
    let items = |prefix: &str| {
        secret_keys(names, kind)
            .into_iter()
            .map(|(key, path)| KeyToPath {
                key: format!("{prefix}{key}"),
                path: format!("{prefix}{path}"),
                ..KeyToPath::default()
            })
            .collect::<Vec<_>>()
    };
    let mut sources = vec![VolumeProjection {
        secret: Some(SecretProjection {
            name: names.secret(),
            items: Some(items("")),
            ..SecretProjection::default()
        }),
        ..VolumeProjection::default()
    }];
    for prefix in ACCEPTED_PREFIXES {
        sources.push(VolumeProjection {
            secret: Some(SecretProjection {
                name: names.secret(),
                items: Some(items(prefix)),
                optional: Some(true),
            }),
            ..VolumeProjection::default()
        });
    }
    ProjectedVolumeSource {
        sources: Some(sources),
        // Only the init container reads them, as the pod's user (the fsGroup's group).
        default_mode: Some(0o440),
    }
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
    let redis_conf = default_user_line(redis_conf, "redis.conf")?;
    let context = script_context(names, Kind::Redis);
    Ok(ConfigMap {
        metadata: names.meta(names.redis_config(), "redis"),
        data: Some(BTreeMap::from([
            ("redis.conf".into(), redis_conf),
            ("copy.sh".into(), render_template(COPY_TEMPLATE, &context)?),
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
        // None here: the start-up script seeds the redis pods it finds in DNS, so that the
        // sentinels' config does not change with the redis StatefulSet's size.
        known_replicas: Vec::new(),
        // Every sentinel; the start-up script drops its own line.
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
    let sentinel_conf = default_user_line(sentinel_conf, "sentinel.conf")?;
    let context = script_context(names, Kind::Sentinel);
    Ok(ConfigMap {
        metadata: names.meta(names.sentinel_config(), "sentinel"),
        data: Some(BTreeMap::from([
            ("sentinel.conf".into(), sentinel_conf),
            ("copy.sh".into(), render_template(COPY_TEMPLATE, &context)?),
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

/// The `default` user's line that stands for `requirepass` in the pods' configs:
/// `requirepass` holds one password, and during a rotation the pods accept two (the
/// start-up script fills in the hash of each, as it does for every `[acl]` user).
const DEFAULT_USER: &str = "default";

fn default_user_line(conf: String, file: &str) -> anyhow::Result<String> {
    let requirepass = format!("requirepass \"{PASSWORD_PLACEHOLDER}\"\n");
    if !conf.contains(&requirepass) {
        // `acl.disable_default`: `default` is off, and the admin user holds the password.
        anyhow::ensure!(
            conf.contains("user default off "),
            "{file} for Kubernetes has neither `requirepass` nor `default` off; this is a bug in rcluster"
        );
        return Ok(conf);
    }
    let line = format!(
        "user {DEFAULT_USER} on ~* &* +@all #{}\n",
        crate::acl::hash_placeholder(DEFAULT_USER)
    );
    Ok(conf.replacen(&requirepass, &line, 1))
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
    /// The scripts find pods by ordinal in DNS, until this many in a row have no name...
    dns_gap: u32,
    /// ... or this ordinal: no pod count is in any script (`kubectl scale` works).
    max_ordinals: u32,
    sentinel_port: u16,
    redis_port: u16,
    master_name: String,
    data_dir: &'static str,
    password_file: String,
    /// Where the Secret is mounted: `[acl]` users' own passwords are files `acl-<name>` there.
    secret_dir: &'static str,
    /// The user the scripts log in as (`rcluster` when `acl.disable_default`), or none.
    login_user: Option<&'static str>,
    /// The users whose hashes (and passwords) this kind's config holds as placeholders:
    /// `default` (unless `[acl]` turns it off) and the `[acl]` users.
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
    /// The init container's copy: where it finds the ConfigMap and Secrets, and where it
    /// puts them (the server container's paths).
    source_dir: &'static str,
    config_dir: &'static str,
    tls_dir: &'static str,
}

/// The users a kind's config names: redis.conf the replication and Sentinel users and the
/// topology's users; sentinel.conf the sentinels' peer and client users (and the Sentinel
/// user's clear password for `auth-pass`). Both: the password holder (`default`, or the
/// admin with `default` off).
fn script_users(topology: &Topology, kind: Kind) -> Vec<crate::acl::ScriptUser> {
    use crate::acl::{REPLICATION_USER, SENTINEL_CLIENT_USER, SENTINEL_PEER_USER};
    let own_sentinel_users = [SENTINEL_PEER_USER, SENTINEL_CLIENT_USER];
    let rcluster_users = [
        crate::acl::ADMIN_USER,
        REPLICATION_USER,
        crate::acl::SENTINEL_USER,
        SENTINEL_PEER_USER,
        SENTINEL_CLIENT_USER,
    ];
    let mut users = Vec::new();
    if !topology.acl.as_ref().is_some_and(|acl| acl.disable_default) {
        users.push(crate::acl::ScriptUser {
            name: DEFAULT_USER.into(),
            source: "group",
            clear: false,
        });
    }
    users.extend(
        crate::acl::script_users(topology)
            .into_iter()
            .filter(|user| match kind {
                Kind::Redis => !own_sentinel_users.contains(&user.name.as_str()),
                Kind::Sentinel => {
                    rcluster_users.contains(&user.name.as_str()) && user.name != REPLICATION_USER
                }
            }),
    );
    users
}

fn script_context(names: &Names, kind: Kind) -> ScriptContext {
    let spec = &names.topology.sentinel;
    ScriptContext {
        cluster: names.cluster.into(),
        kind: kind.as_str(),
        namespace: names.namespace.into(),
        cluster_domain: names.domain.into(),
        redis_statefulset: names.redis(),
        redis_service: names.redis(),
        sentinel_statefulset: names.sentinel(),
        sentinel_headless_service: names.sentinel_headless(),
        dns_gap: DNS_GAP,
        max_ordinals: MAX_ORDINALS,
        sentinel_port: SENTINEL_PORT,
        redis_port: REDIS_PORT,
        master_name: spec.master_name.clone(),
        data_dir: super::DATA_DIR,
        password_file: format!("{SECRET_MOUNT}/{PASSWORD_KEY}"),
        secret_dir: SECRET_MOUNT,
        login_user: names.topology.login_user(),
        acl_users: script_users(names.topology, kind),
        cli_timeout_s: CLI_TIMEOUT_S,
        decide_timeout_s: decide_timeout_s(names.topology),
        prestop: PrestopTiming::for_topology(names.topology),
        sentinel_prestop: SentinelPrestopTiming::for_topology(names.topology),
        redis_grace_period_s: redis_grace_period_s(names.topology),
        sentinel_grace_period_s: sentinel_grace_period_s(names.topology),
        tls: super::TlsConf::for_node(names.topology, kind == Kind::Redis, TLS_MOUNT),
        source_dir: SOURCE_MOUNT,
        config_dir: CONFIG_MOUNT,
        tls_dir: TLS_MOUNT,
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
            kind: Kind::Redis,
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
            kind: Kind::Sentinel,
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
        image_pull_policy: names
            .topology
            .kubernetes
            .image_pull_policy
            .map(|p| p.as_str().into()),
        // No password here: the scripts read it from the Secret's file, so redis-server and
        // Sentinel never carry it in their environment.
        env: Some(vec![field("POD_NAME", "metadata.name")]),
        startup_probe: Some(probe("startup", 2, timing.startup_failures)),
        // Six misses in a row (30 s) before the kubelet restarts the process: a restart is
        // a disturbance of its own (a sentinel's vote, a master's failover), and on a loaded
        // node an exec probe can miss its 5 s timeout several times in a row (seen on the
        // real test cluster at load 43: a sentinel restarted after 3 × 5 s). A node that is
        // really gone is the sentinels' to notice (`down_after_ms`), not the liveness probe's.
        liveness_probe: Some(probe("liveness", 5, 6)),
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
    kind: Kind,
    replicas: i32,
    container: Container,
    config_map: String,
    claim: PersistentVolumeClaim,
    grace_period_s: i64,
    checksums: Checksums,
}

/// What both server containers mount: the pod's copies of its config, the Secret and, when
/// the group speaks TLS, the TLS Secret (all read-only: nothing in the pod changes them),
/// scratch space and their data volume. Never the ConfigMap or a Secret itself.
fn volume_mounts(names: &Names) -> Vec<VolumeMount> {
    copies(names)
        .map(|(copy, path, _)| mount(copy, path, true))
        .chain([
            mount("tmp", "/tmp", false),
            mount("data", super::DATA_DIR, false),
        ])
        .collect()
}

/// (copy volume, where the server container has it, source volume): the init container
/// copies each source into its copy.
fn copies(names: &Names) -> impl Iterator<Item = (&'static str, &'static str, &'static str)> {
    [
        ("config", CONFIG_MOUNT, "config-source"),
        ("secret", SECRET_MOUNT, "secret-source"),
    ]
    .into_iter()
    .chain(
        names
            .topology
            .tls
            .enabled
            .then_some(("tls", TLS_MOUNT, "tls-source")),
    )
}

/// The init container: copies the ConfigMap and the Secrets into the pod's own volumes, as
/// the pod's user, under the same restrictions as the server container.
fn copy_container(names: &Names, server: &Container) -> Container {
    let mut mounts = Vec::new();
    for (copy, path, source) in copies(names) {
        mounts.push(mount(source, &format!("{SOURCE_MOUNT}/{copy}"), true));
        mounts.push(mount(copy, path, false));
    }
    Container {
        name: COPY_CONTAINER.into(),
        image: server.image.clone(),
        command: Some(vec!["sh".into(), format!("{SOURCE_MOUNT}/config/copy.sh")]),
        volume_mounts: Some(mounts),
        resources: server.resources.clone(),
        security_context: server.security_context.clone(),
        ..Container::default()
    }
}

/// The volumes of a pod: what the init container copies from (the ConfigMap, the Secret,
/// the TLS Secret), the copies, scratch space.
fn pod_volumes(names: &Names, kind: Kind, config_map: String) -> Vec<Volume> {
    // Passwords and keys stay in memory, as in a Secret volume: never on the node's disk.
    let memory = || EmptyDirVolumeSource {
        medium: Some("Memory".into()),
        size_limit: Some(Quantity("1Mi".into())),
    };
    let mut volumes = vec![
        Volume {
            name: "config-source".into(),
            config_map: Some(ConfigMapVolumeSource {
                name: config_map,
                default_mode: Some(0o444),
                ..ConfigMapVolumeSource::default()
            }),
            ..Volume::default()
        },
        Volume {
            name: "secret-source".into(),
            projected: Some(secret_source(names, kind)),
            ..Volume::default()
        },
    ];
    if names.topology.tls.enabled {
        volumes.push(Volume {
            name: "tls-source".into(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(names.tls_secret()),
                // Readable by the pod's group (fsGroup) only.
                default_mode: Some(0o440),
                ..SecretVolumeSource::default()
            }),
            ..Volume::default()
        });
    }
    for (copy, _, _) in copies(names) {
        volumes.push(Volume {
            name: copy.into(),
            empty_dir: Some(if copy == "config" {
                EmptyDirVolumeSource::default()
            } else {
                memory()
            }),
            ..Volume::default()
        });
    }
    volumes.push(Volume {
        name: "tmp".into(),
        empty_dir: Some(EmptyDirVolumeSource::default()),
        ..Volume::default()
    });
    volumes
}

fn statefulset(names: &Names, parts: StatefulSetParts) -> StatefulSet {
    let component = parts.kind.as_str();
    let init = copy_container(names, &parts.container);
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
                    image_pull_secrets: image_pull_secrets(names),
                    node_selector: Some(names.topology.kubernetes.node_selector.clone())
                        .filter(|s| !s.is_empty()),
                    tolerations: tolerations(names),
                    priority_class_name: names.topology.kubernetes.priority_class_name.clone(),
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
                    init_containers: Some(vec![init]),
                    containers: vec![parts.container],
                    volumes: Some(pod_volumes(names, parts.kind, parts.config_map)),
                    ..PodSpec::default()
                }),
            },
            volume_claim_templates: Some(vec![parts.claim]),
            ..StatefulSetSpec::default()
        }),
        ..StatefulSet::default()
    }
}

/// `kubernetes.image_pull_secrets` as references; `None` when there are none.
fn image_pull_secrets(names: &Names) -> Option<Vec<LocalObjectReference>> {
    let secrets = &names.topology.kubernetes.image_pull_secrets;
    (!secrets.is_empty()).then(|| {
        secrets
            .iter()
            .map(|name| LocalObjectReference { name: name.clone() })
            .collect()
    })
}

/// `kubernetes.tolerations`, checked by validation; `None` when there are none.
fn tolerations(names: &Names) -> Option<Vec<Toleration>> {
    let tolerations = &names.topology.kubernetes.tolerations;
    (!tolerations.is_empty()).then(|| {
        tolerations
            .iter()
            .map(|t| Toleration {
                key: t.key.clone(),
                operator: Some(t.operator.clone()),
                value: t.value.clone(),
                effect: t.effect.clone(),
                toleration_seconds: t.toleration_seconds,
            })
            .collect()
    })
}

/// Only the group's own pods and its clients may connect to the group's ports (Redis,
/// Sentinel, and with `tls.plaintext_port` the plaintext ones). Ingress only: the pods'
/// own connections (DNS, to each other) are not restricted by it. Exec probes run inside
/// the pod and are not affected.
fn network_policy(names: &Names, spec: &crate::topology::NetworkPolicySpec) -> NetworkPolicy {
    let selector = |labels: &BTreeMap<String, String>| LabelSelector {
        // An empty map selects everything; `{}` says so plainly.
        match_labels: Some(labels.clone()).filter(|l| !l.is_empty()),
        ..LabelSelector::default()
    };
    let group = names.group_selector();
    let mut ports = vec![REDIS_PORT, SENTINEL_PORT];
    if names.topology.tls.enabled && names.topology.tls.plaintext_port {
        ports.extend([REDIS_PLAINTEXT_PORT, SENTINEL_PLAINTEXT_PORT]);
    }
    let ports = ports
        .into_iter()
        .map(|port| NetworkPolicyPort {
            port: Some(IntOrString::Int(i32::from(port))),
            protocol: Some("TCP".into()),
            ..NetworkPolicyPort::default()
        })
        .collect();
    let peers = vec![
        // No namespace selector: the group's namespace.
        NetworkPolicyPeer {
            pod_selector: Some(selector(&group)),
            ..NetworkPolicyPeer::default()
        },
        NetworkPolicyPeer {
            pod_selector: Some(selector(&spec.client_labels)),
            namespace_selector: spec.client_namespaces.as_ref().map(selector),
            ..NetworkPolicyPeer::default()
        },
    ];
    NetworkPolicy {
        metadata: names.meta(names.cluster.to_string(), "network-policy"),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(selector(&group)),
            policy_types: Some(vec!["Ingress".into()]),
            ingress: Some(vec![NetworkPolicyIngressRule {
                from: Some(peers),
                ports: Some(ports),
            }]),
            ..NetworkPolicySpec::default()
        }),
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
    fn a_v1beta1_budget_is_the_v1_one_under_the_old_version_and_refuses_newer_fields() {
        let spec = PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(1)),
            selector: Some(LabelSelector::default()),
            ..PodDisruptionBudgetSpec::default()
        };
        let v1 = PodDisruptionBudget {
            spec: Some(spec.clone()),
            ..PodDisruptionBudget::default()
        };
        let old = serde_json::to_value(PodDisruptionBudgetV1Beta1::of(&v1).expect("same fields"))
            .expect("json");
        let mut want = serde_json::to_value(&v1).expect("json");
        assert_eq!(want["apiVersion"], "policy/v1");
        want["apiVersion"] = "policy/v1beta1".into();
        assert_eq!(old, want);
        let newer = PodDisruptionBudget {
            spec: Some(PodDisruptionBudgetSpec {
                unhealthy_pod_eviction_policy: Some("AlwaysAllow".into()),
                ..spec
            }),
            ..PodDisruptionBudget::default()
        };
        let err = PodDisruptionBudgetV1Beta1::of(&newer).expect_err("a v1-only field");
        assert!(
            err.to_string()
                .contains("`spec.unhealthyPodEvictionPolicy`"),
            "{err}"
        );
    }

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
