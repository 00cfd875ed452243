//! The topology: what the user asked for, checked.
//!
//! Owns parsing `topology.toml` (`RawTopology`, serde), validation (every problem at once,
//! each naming the key and its line) and defaults, producing the checked [`Topology`].
//! Pure: the only I/O is in [`load`], which reads the file and resolves the password source.
//! Must not talk to Docker or Redis.

pub mod auth;
pub mod certs;
pub mod layout;
pub mod raw;
pub mod validate;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

pub use layout::{Layout, Node, Role, Subnet};
pub use raw::RawTopology;

/// The user rcluster logs in as when `acl.disable_default` turns `default` off; it holds
/// the group password and every right, like `default` otherwise.
pub const ADMIN_USER: &str = "rcluster";

/// The checked topology. Every field is valid; consumers never re-validate.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Topology {
    /// The file it was read from (for messages); `<string>` in tests.
    pub source: PathBuf,
    pub cluster: Cluster,
    pub auth: AuthSource,
    pub master: MasterSpec,
    pub replicas: ReplicasSpec,
    pub sentinel: SentinelSpec,
    pub persistence: Persistence,
    pub redis: RedisSpec,
    pub kubernetes: KubernetesSpec,
    pub replication: Replication,
    /// `[acl]`; `None` when the file has no `[acl]` section (the `default` user with the
    /// group password, as without ACL).
    pub acl: Option<Acl>,
    pub tls: TlsSpec,
}

/// `[acl]`: the named users, and whether the `default` user is turned off.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Acl {
    /// In name order.
    pub users: Vec<AclUser>,
    /// `default` is `off` on the data nodes and the sentinels; rcluster logs in as
    /// [`ADMIN_USER`].
    pub disable_default: bool,
}

/// One `acl.users` entry.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct AclUser {
    pub name: String,
    /// ACL rules as the user wrote them; never a password (`>`, `<`, `#`, `!`, `nopass`).
    pub rules: String,
    pub password: UserPassword,
    /// The password read from `password_env` / `password_file` by `load`; `None` for a
    /// generated one (derived from the group password, see `crate::acl`).
    #[serde(skip)]
    pub secret: Option<crate::secret::Secret>,
}

/// Where an ACL user's password comes from.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub enum UserPassword {
    Generated,
    Env(String),
    File(PathBuf),
}

impl Topology {
    /// The user rcluster logs in as on every node: `None` = `default` (the group password
    /// through `requirepass`), else the admin user that holds the group password.
    pub fn login_user(&self) -> Option<&'static str> {
        self.acl
            .as_ref()
            .filter(|acl| acl.disable_default)
            .map(|_| ADMIN_USER)
    }

    pub fn acl_user(&self, name: &str) -> Option<&AclUser> {
        self.acl.as_ref()?.users.iter().find(|u| u.name == name)
    }
}

/// `[tls]`: whether the group speaks TLS, and with which certificates.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct TlsSpec {
    pub enabled: bool,
    /// The user's own CA, certificate and key (one certificate for every node), as written
    /// (relative paths start at the topology file's directory); `None` = rcluster generates
    /// a CA and one certificate per node in the state directory.
    pub files: Option<TlsFiles>,
    pub client_auth: ClientAuth,
    /// Keep a plaintext port next to the TLS one (inside the group network only).
    pub plaintext_port: bool,
    /// Kubernetes: a Secret the user manages holding `ca.crt`, `tls.crt` and `tls.key`.
    pub existing_secret: Option<String>,
}

impl TlsSpec {
    /// `[tls]` with nothing set: plaintext, as before TLS existed.
    pub fn off() -> TlsSpec {
        TlsSpec {
            enabled: false,
            files: None,
            client_auth: ClientAuth::No,
            plaintext_port: false,
            existing_secret: None,
        }
    }
}

/// `tls.ca_file`, `tls.cert_file`, `tls.key_file`, as written in the topology.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct TlsFiles {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// `tls.client_auth`: Redis's `tls-auth-clients`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientAuth {
    /// Clients need no certificate.
    No,
    /// A client certificate, when given, must be signed by the CA.
    Optional,
    /// Mutual TLS: every client must present a certificate signed by the CA.
    Yes,
}

impl ClientAuth {
    /// The value of `tls-auth-clients`.
    pub fn as_str(self) -> &'static str {
        match self {
            ClientAuth::No => "no",
            ClientAuth::Optional => "optional",
            ClientAuth::Yes => "yes",
        }
    }

    /// Whether rcluster's own clients (and replication) present a certificate.
    pub fn presents_certificate(self) -> bool {
        self != ClientAuth::No
    }
}

/// `[replication]`: how many replicas a master needs to accept writes.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Replication {
    /// `min-replicas-to-write`: 0 = the master accepts writes with no replica at all.
    pub min_replicas_to_write: u8,
    /// `min-replicas-max-lag`: seconds since a replica's last acknowledgement after which
    /// it no longer counts.
    pub min_replicas_max_lag: u32,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Cluster {
    /// `[a-z0-9-]`, 1..=40 chars; prefixes every container, network and volume.
    pub name: String,
    /// Host address that published ports bind to.
    pub bind: IpAddr,
    /// The group network's IPv4 /24; `None` = derived from the name at `up` time.
    pub subnet: Option<Subnet>,
    /// The address Redis and Sentinel hand out for each node (`cluster.announce`).
    pub announce: Announce,
}

/// `cluster.announce`: which address every node is known by, to Sentinel, to the other
/// nodes and to clients.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Announce {
    /// Container addresses where this machine reaches them, else the engine's host
    /// (decided by `up` and the commands that talk to the group, per engine).
    Auto,
    /// Each node's fixed address on the group network (`<subnet>.10:6379`).
    Container,
    /// `<this host or address>:<the node's published port>`.
    Host(String),
}

impl Announce {
    /// As the user writes it in the topology.
    pub fn as_str(&self) -> &str {
        match self {
            Announce::Auto => "auto",
            Announce::Container => "container",
            Announce::Host(host) => host,
        }
    }
}

/// Where the password comes from. Resolution (reading env/file) happens in `load`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub enum AuthSource {
    Literal,
    Env(String),
    File(PathBuf),
    /// None configured: `up` generates one and stores it in the state directory.
    Generated,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct MasterSpec {
    /// Host port; 0 = the engine picks.
    pub port: u16,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ReplicasSpec {
    pub count: u8,
    /// First replica's host port, next ones +1; 0 = the engine picks.
    pub port: u16,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SentinelSpec {
    pub count: u8,
    pub port: u16,
    pub master_name: String,
    pub quorum: u8,
    pub down_after_ms: u64,
    pub failover_timeout_ms: u64,
    pub parallel_syncs: u32,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Persistence {
    pub rdb: bool,
    pub save: Vec<String>,
    pub stop_writes_on_bgsave_error: bool,
    pub rdbcompression: bool,
    pub dbfilename: String,
    pub aof: bool,
    pub appendfilename: String,
    pub appendfsync: AppendFsync,
    pub no_appendfsync_on_rewrite: bool,
    /// Kept as the user wrote it ("64mb"); validated as a Redis size.
    pub auto_aof_rewrite_min_size: String,
    pub auto_aof_rewrite_percentage: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AppendFsync {
    Always,
    Everysec,
    No,
}

impl AppendFsync {
    pub fn as_str(self) -> &'static str {
        match self {
            AppendFsync::Always => "always",
            AppendFsync::Everysec => "everysec",
            AppendFsync::No => "no",
        }
    }
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RedisSpec {
    /// `None` = rcluster's own image, built from the host's redis-server if missing.
    pub image: Option<String>,
    /// More redis.conf directives, verbatim, in key order.
    pub extra: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct KubernetesSpec {
    pub namespace: String,
    pub storage_class: Option<String>,
    pub storage_size: String,
    pub anti_affinity: AntiAffinity,
    pub image: String,
    /// Default requests/limits of both kinds of container.
    pub resources: Option<serde_json::Value>,
    /// Override `resources` for the redis containers (they hold the data and fork to save).
    pub redis_resources: Option<serde_json::Value>,
    /// Override `resources` for the sentinel containers (small: no data).
    pub sentinel_resources: Option<serde_json::Value>,
    /// The cluster's DNS domain, the tail of every pod's name (`cluster.local`).
    pub cluster_domain: String,
    /// A Secret the user manages; rcluster then renders none and reads `existing_secret_key`.
    pub existing_secret: Option<String>,
    pub existing_secret_key: String,
    pub zone_spread: ZoneSpread,
    /// Leave runAsUser/runAsGroup/fsGroup to the platform (OpenShift's restricted SCCs pick
    /// a uid from the namespace's range and refuse a fixed one).
    pub platform_uid: bool,
    /// Each sentinel's volume: it keeps Sentinel's own state (which node is master, epochs).
    pub sentinel_storage_size: String,
    /// The Kubernetes server the manifests are for: API versions follow it.
    pub version: KubeVersion,
    /// The containers' `imagePullPolicy`; `None` leaves Kubernetes' own default.
    pub image_pull_policy: Option<ImagePullPolicy>,
    /// Secrets (in `namespace`) holding registry credentials: the pods' `imagePullSecrets`.
    pub image_pull_secrets: Vec<String>,
    /// Labels a node must carry for the pods to run there (`nodeSelector`).
    pub node_selector: BTreeMap<String, String>,
    /// Taints the pods tolerate, in file order.
    pub tolerations: Vec<Toleration>,
    /// The pods' PriorityClass; `None` = the cluster's default priority.
    pub priority_class_name: Option<String>,
    /// Who may connect to the pods; `None` = no NetworkPolicy (`network_policy = false`).
    pub network_policy: Option<NetworkPolicySpec>,
    /// Written on both pod templates: a new value rolls every pod, which then copies the
    /// Secrets again (rcluster cannot checksum a Secret it does not render).
    pub secret_revision: Option<String>,
}

/// What a node drain may do to the sentinels under the PodDisruptionBudget rendered for
/// them (`render --format k8s`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SentinelDrain {
    /// The PDB's `maxUnavailable`: how many sentinels evictions may take at once.
    pub max_unavailable: u8,
    /// Sentinels a failover needs: `quorum` to declare the master down, a majority of all
    /// of them to elect the leader that runs it.
    pub needed: u8,
    /// Sentinels left running while `max_unavailable` are evicted.
    pub left: u8,
}

impl SentinelDrain {
    /// The PDB lets evictions take as many sentinels as can go while `needed` stay, and
    /// never fewer than 1: `maxUnavailable: 0` would block every drain for good, which
    /// with 1 or 2 sentinels, or `quorum` = count, is the only way to keep `needed`.
    /// Those groups trade safety for drains that finish; `check` warns about them.
    pub fn of(count: u8, quorum: u8) -> SentinelDrain {
        let needed = (count / 2 + 1).max(quorum);
        let max_unavailable = count.saturating_sub(needed).max(1);
        SentinelDrain {
            max_unavailable,
            needed,
            left: count.saturating_sub(max_unavailable),
        }
    }

    /// Whether the sentinels left during a drain can still fail the master over.
    pub fn keeps_failover(self) -> bool {
        self.left >= self.needed
    }
}

/// `kubernetes.version`: a Kubernetes release, `1.<minor>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub struct KubeVersion {
    pub minor: u32,
}

impl KubeVersion {
    /// The default target: a release in upstream support when this was written.
    pub const DEFAULT: KubeVersion = KubeVersion { minor: 33 };
    /// The oldest release the manifests work on: every field they use is GA there
    /// (topologySpreadConstraints and `securityContext.seccompProfile` since 1.19).
    pub const OLDEST: KubeVersion = KubeVersion { minor: 19 };
    /// The newest release we know of (and whose schemas the tests validate against).
    pub const NEWEST: KubeVersion = KubeVersion { minor: 37 };
    /// Below this release upstream no longer ships fixes; `check` warns.
    pub const OLDEST_SUPPORTED: KubeVersion = KubeVersion { minor: 25 };

    /// PodDisruptionBudget is `policy/v1` from 1.21 on, `policy/v1beta1` before.
    pub fn has_policy_v1(self) -> bool {
        self.minor >= 21
    }
}

impl std::fmt::Display for KubeVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "1.{}", self.minor)
    }
}

/// `kubernetes.image_pull_policy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum ImagePullPolicy {
    Always,
    IfNotPresent,
    Never,
}

impl ImagePullPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            ImagePullPolicy::Always => "Always",
            ImagePullPolicy::IfNotPresent => "IfNotPresent",
            ImagePullPolicy::Never => "Never",
        }
    }
}

/// One `kubernetes.tolerations` entry, checked: the pod spec's `tolerations[]` as written.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Toleration {
    /// `None` with `Exists`: every taint.
    pub key: Option<String>,
    /// `Exists` or `Equal`.
    pub operator: String,
    pub value: Option<String>,
    /// `NoSchedule`, `PreferNoSchedule`, `NoExecute`; `None` = every effect.
    pub effect: Option<String>,
    /// With `NoExecute` only: how long the pod stays after the taint appears.
    pub toleration_seconds: Option<i64>,
}

/// `kubernetes.network_policy`, when on: the group's pods, and clients matching these,
/// may connect to the group's ports; nothing else may.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct NetworkPolicySpec {
    /// Labels a client pod must carry (all of them).
    pub client_labels: BTreeMap<String, String>,
    /// `None`: clients in the group's namespace only. Some: clients in namespaces carrying
    /// these labels (an empty map: every namespace).
    pub client_namespaces: Option<BTreeMap<String, String>>,
}

impl KubernetesSpec {
    /// The requests/limits of the redis containers.
    pub fn redis_resources(&self) -> Option<&serde_json::Value> {
        self.redis_resources.as_ref().or(self.resources.as_ref())
    }

    /// The requests/limits of the sentinel containers.
    pub fn sentinel_resources(&self) -> Option<&serde_json::Value> {
        self.sentinel_resources.as_ref().or(self.resources.as_ref())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AntiAffinity {
    Preferred,
    Required,
}

/// Spreading pods over zones (`topology.kubernetes.io/zone`): losing a zone then costs
/// one pod of each kind, not the majority.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ZoneSpread {
    None,
    /// `whenUnsatisfiable: ScheduleAnyway`.
    Preferred,
    /// `whenUnsatisfiable: DoNotSchedule`.
    Required,
}

/// How bad a diagnostic is: errors stop everything, warnings are advice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

/// One problem (or piece of advice) about the topology, located in the user's file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Diagnostic {
    pub severity: Severity,
    /// Dotted key, e.g. `sentinel.quorum`; empty when the file as a whole is at fault.
    pub key: String,
    /// 1-based line and column in the file, when known.
    pub line: Option<usize>,
    pub column: Option<usize>,
    /// What is wrong and what is expected, lowercase, names in backticks.
    pub message: String,
}

/// The topology file is invalid: every error found, plus the warnings.
#[derive(Debug, Clone, thiserror::Error)]
#[error("invalid topology `{}`: {} error(s)", file.display(), errors.len())]
pub struct TopologyError {
    pub file: PathBuf,
    pub errors: Vec<Diagnostic>,
    pub warnings: Vec<Diagnostic>,
}

/// A checked topology and the password its `auth` section resolved to.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub topology: Topology,
    /// `None` when `auth` configures nothing (the state directory holds a generated one).
    pub password: Option<crate::secret::Secret>,
    pub warnings: Vec<Diagnostic>,
}

impl TopologyError {
    /// The headline, then every error and warning on its own line.
    pub fn render(&self) -> String {
        let mut out = format_diagnostics(&self.file, &self.errors);
        out.push_str(&format_diagnostics(&self.file, &self.warnings));
        out.push_str(&format!("error: {self}"));
        out
    }
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        }
    }
}

/// One line per diagnostic: `error: topology.toml:12:1: message`.
pub fn format_diagnostics(file: &Path, diagnostics: &[Diagnostic]) -> String {
    let mut out = String::new();
    for d in diagnostics {
        let _ = match (d.line, d.column) {
            (Some(line), Some(column)) => writeln!(
                out,
                "{}: {}:{line}:{column}: {}",
                d.severity.as_str(),
                file.display(),
                d.message
            ),
            _ => writeln!(
                out,
                "{}: {}: {}",
                d.severity.as_str(),
                file.display(),
                d.message
            ),
        };
    }
    out
}

/// Read and check a topology file. `name` overrides `cluster.name` (from `--name`).
///
/// The only I/O of this module: the file, the password's environment variable or file.
pub fn load(path: &Path, name: Option<&str>) -> Result<Loaded, TopologyError> {
    let fail = |message: String| TopologyError {
        file: path.to_path_buf(),
        errors: vec![Diagnostic {
            severity: Severity::Error,
            key: String::new(),
            line: None,
            column: None,
            message,
        }],
        warnings: Vec::new(),
    };
    let bytes = std::fs::read(path).map_err(|e| {
        if e.kind() == io::ErrorKind::NotFound {
            fail(format!(
                "topology file `{}` does not exist; create it (see the default `topology.toml`) or pass `-f PATH`",
                path.display()
            ))
        } else {
            fail(format!("cannot read topology file `{}`: {e}", path.display()))
        }
    })?;
    let text = match String::from_utf8(bytes) {
        Ok(text) => text,
        Err(e) => {
            let valid = e.utf8_error().valid_up_to();
            let bytes = e.as_bytes();
            // Everything before the bad byte is valid UTF-8, so it can be counted.
            let before = std::str::from_utf8(&bytes[..valid]).unwrap_or_default();
            let p = raw::Position::at(before, before.len());
            let mut err = fail(format!(
                "the file is not UTF-8 text (invalid byte 0x{:02x}); save it as UTF-8",
                bytes.get(valid).copied().unwrap_or_default()
            ));
            err.errors[0].line = Some(p.line);
            err.errors[0].column = Some(p.column);
            return Err(err);
        }
    };
    parse(path, &text, name, &|var| std::env::var(var).ok(), &|file| {
        std::fs::read_to_string(file)
    })
}

/// Parse and check topology text, reading the environment and password files only through
/// `env` and `read_file`. `source_path` is for messages and to resolve a relative
/// `auth.password_file`.
pub fn parse(
    source_path: &Path,
    text: &str,
    name_override: Option<&str>,
    env: &dyn Fn(&str) -> Option<String>,
    read_file: &dyn Fn(&Path) -> io::Result<String>,
) -> Result<Loaded, TopologyError> {
    let doc = raw::RawDocument::parse(text);
    let mut errors = doc.errors.clone();
    let mut warnings = Vec::new();
    let mut password = None;
    let mut topology = None;
    if !doc.syntax_failed {
        let checked = validate::validate(&doc, name_override);
        errors.extend(checked.errors);
        warnings = checked.warnings;
        // Reading a password is pointless (and its errors noise) when `[auth]` is wrong.
        let auth_ok = !errors.iter().any(|e| e.key.starts_with("auth"));
        if auth_ok {
            let base = source_path.parent().unwrap_or(Path::new(""));
            match auth::resolve(&doc, &checked.topology.auth, base, env, read_file) {
                Ok(p) => password = p,
                Err(e) => errors.push(e),
            }
        }
        let mut checked_topology = checked.topology;
        // As with `[auth]`: a user whose keys are wrong is not read (its errors say enough).
        let wrong: Vec<String> = errors.iter().map(|e| e.key.clone()).collect();
        let base = source_path.parent().unwrap_or(Path::new(""));
        errors.extend(auth::resolve_users(
            &doc,
            &mut checked_topology,
            &wrong,
            base,
            env,
            read_file,
        ));
        let tls_ok = !errors.iter().any(|e| e.key.starts_with("tls"));
        if let (true, true, Some(files)) = (
            tls_ok,
            checked_topology.tls.enabled,
            &checked_topology.tls.files,
        ) {
            let (e, w) = tls_file_problems(&doc, &checked_topology, files, base, read_file);
            errors.extend(e);
            warnings.extend(w);
        }
        topology = Some(checked_topology);
    }
    sort_by_position(&mut errors);
    sort_by_position(&mut warnings);
    match topology {
        Some(mut topology) if errors.is_empty() => {
            topology.source = source_path.to_path_buf();
            Ok(Loaded {
                topology,
                password,
                warnings,
            })
        }
        _ => Err(TopologyError {
            file: source_path.to_path_buf(),
            errors,
            warnings,
        }),
    }
}

/// Read the user's CA, certificate and key and check that they belong together
/// (`certs::check_files`), located at their keys.
fn tls_file_problems(
    doc: &raw::RawDocument,
    topology: &Topology,
    files: &TlsFiles,
    base: &Path,
    read_file: &dyn Fn(&Path) -> io::Result<String>,
) -> (Vec<Diagnostic>, Vec<Diagnostic>) {
    let full = |p: &Path| {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            base.join(p)
        }
    };
    let (ca, cert, key) = (full(&files.ca), full(&files.cert), full(&files.key));
    let read = |p: &Path| read_file(p).map_err(|e| e.to_string().to_lowercase());
    let user = certs::UserFiles {
        ca: (&ca, read(&ca)),
        cert: (&cert, read(&cert)),
        key: (&key, read(&key)),
    };
    let (mut errors, mut warnings) = (Vec::new(), Vec::new());
    let mut problems = certs::check_files(&user, time::OffsetDateTime::now_utc());
    if let (true, Ok(cert_pem)) = (problems.is_empty(), &user.cert.1) {
        problems.extend(node_addresses_named(topology, &cert, cert_pem));
    }
    for problem in problems {
        let p = doc.position(problem.key);
        let d = Diagnostic {
            severity: if problem.warning {
                Severity::Warning
            } else {
                Severity::Error
            },
            key: problem.key.to_string(),
            line: p.map(|p| p.line),
            column: p.map(|p| p.column),
            message: problem.message,
        };
        if problem.warning {
            warnings.push(d);
        } else {
            errors.push(d);
        }
    }
    (errors, warnings)
}

/// One certificate serves every node, and rcluster and clients check that it names the
/// address they connect to (the one Sentinel hands out): with `cluster.subnet` fixed the
/// addresses are known, and a missing one is an error; otherwise `up` picks the subnet
/// and a certificate without the likely addresses gets a warning.
fn node_addresses_named(
    topology: &Topology,
    cert_path: &Path,
    cert_pem: &str,
) -> Option<certs::FileProblem> {
    let subnet = topology
        .cluster
        .subnet
        .unwrap_or_else(|| Subnet::derived(&topology.cluster.name));
    let layout = Layout::new(topology, subnet);
    let addresses: Vec<String> = layout.nodes.iter().map(|n| n.ip.to_string()).collect();
    let missing = certs::unnamed(cert_pem, &addresses)?;
    if missing.is_empty() {
        return None;
    }
    let name = format!("`tls.cert_file` (`{}`)", cert_path.display());
    Some(match topology.cluster.subnet {
        Some(_) => certs::FileProblem {
            key: "tls.cert_file",
            warning: false,
            message: format!(
                "{name} does not name the node address(es) {}: rcluster and clients check that a node's certificate names the address they connect to; issue it for every node's address",
                missing.join(", ")
            ),
        },
        None => certs::FileProblem {
            key: "tls.cert_file",
            warning: true,
            message: format!(
                "{name} does not name the node address(es) {}, which `up` gives the nodes unless that subnet is taken: rcluster and clients check that a node's certificate names the address they connect to; set `cluster.subnet` and issue the certificate for the nodes' addresses",
                missing.join(", ")
            ),
        },
    })
}

/// File order reads best; diagnostics without a place (from flags) come first.
fn sort_by_position(diagnostics: &mut [Diagnostic]) {
    diagnostics.sort_by_key(|d| (d.line, d.column));
}

/// The smallest `sentinel.down_after_ms` without a spurious second failover. Sentinel
/// reconnects to an instance at most once per `min(down_after, 1000)` ms and counts the
/// wait from the moment it switched to the new master, so a freshly promoted master can go
/// `+sdown` before the first PING was even sent; the other sentinels' votes from the
/// previous master's `+odown` (kept up to 5 s) then make it `+odown` at once. Seen in the
/// pod harness with 1000 ms: a second failover 1.06 s after the first, 43 acknowledged
/// writes lost.
pub const DOWN_AFTER_SAFE_MS: u64 = 1500;

/// Whether `down_after_ms` is short enough for the spurious second failover above.
pub fn down_after_hazard(down_after_ms: u64) -> bool {
    down_after_ms < DOWN_AFTER_SAFE_MS
}
