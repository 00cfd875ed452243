//! Validation: `RawDocument` -> `Topology` plus every error and warning.
//!
//! Pure: takes the parsed document and returns data. Each rule names the dotted key at
//! fault and points at it; a rule that needs a key the reader already rejected is skipped,
//! so one mistake is reported once. Password sources are only checked for shape here;
//! reading them is `auth`'s job.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::str::FromStr;

use super::raw::{Position, RawDocument, RawNetworkPolicy, RawToleration};
use super::{
    Announce, AntiAffinity, AppendFsync, AuthSource, Cluster, Diagnostic, ImagePullPolicy,
    KubeVersion, KubernetesSpec, MasterSpec, NetworkPolicySpec, Persistence, RedisSpec,
    ReplicasSpec, SentinelDrain, SentinelSpec, Severity, Subnet, Toleration, Topology, ZoneSpread,
};

mod acl;
mod replication;
mod tls;

pub const DEFAULT_NAME: &str = "demo";
pub const MAX_NAME_LEN: usize = 40;
pub const MAX_REPLICAS: i64 = 16;
pub const MAX_SENTINELS: i64 = 9;
/// Sentinel reads its times and `parallel-syncs` with `atoi`: anything larger wraps.
const SENTINEL_INT_MAX: i64 = i32::MAX as i64;

/// redis.conf directives rcluster writes itself, and what to set instead.
const MANAGED_DIRECTIVES: &[(&str, &str)] = &[
    (
        "port",
        "`master.port` and `replicas.port` (host ports; inside the container it is always 6379)",
    ),
    (
        "bind",
        "`cluster.bind` (the host address; inside the container rcluster binds every interface)",
    ),
    ("dir", "rcluster (the data volume)"),
    ("requirepass", "`[auth]`"),
    ("tls-port", "`[tls]` (`tls.enabled`)"),
    ("tls-cert-file", "`[tls]` (`tls.cert_file`, or generated)"),
    ("tls-key-file", "`[tls]` (`tls.key_file`, or generated)"),
    ("tls-ca-cert-file", "`[tls]` (`tls.ca_file`, or generated)"),
    ("tls-client-cert-file", "`[tls]`"),
    ("tls-client-key-file", "`[tls]`"),
    ("tls-replication", "`[tls]` (always on with TLS)"),
    ("tls-auth-clients", "`tls.client_auth`"),
    ("masterauth", "`[auth]`"),
    ("masteruser", "`[acl]` (the replication user)"),
    ("user", "`[acl]` (`acl.users`)"),
    ("aclfile", "`[acl]` (`acl.users`)"),
    (
        "replicaof",
        "rcluster at creation and Sentinel after a failover",
    ),
    (
        "slaveof",
        "rcluster at creation and Sentinel after a failover",
    ),
    (
        "protected-mode",
        "rcluster (the group always requires a password)",
    ),
    (
        "daemonize",
        "rcluster (redis runs in the foreground of its container)",
    ),
    (
        "include",
        "rcluster (each node's config is one self-contained file)",
    ),
    ("appendonly", "`persistence.aof`"),
    (
        "min-replicas-to-write",
        "`replication.min_replicas_to_write`",
    ),
    ("min-slaves-to-write", "`replication.min_replicas_to_write`"),
    ("min-replicas-max-lag", "`replication.min_replicas_max_lag`"),
    ("min-slaves-max-lag", "`replication.min_replicas_max_lag`"),
    ("appendfilename", "`persistence.appendfilename`"),
    ("appendfsync", "`persistence.appendfsync`"),
    ("dbfilename", "`persistence.dbfilename`"),
    ("save", "`persistence.save`"),
    (
        "stop-writes-on-bgsave-error",
        "`persistence.stop_writes_on_bgsave_error`",
    ),
    ("rdbcompression", "`persistence.rdbcompression`"),
    (
        "no-appendfsync-on-rewrite",
        "`persistence.no_appendfsync_on_rewrite`",
    ),
    (
        "auto-aof-rewrite-min-size",
        "`persistence.auto_aof_rewrite_min_size`",
    ),
    (
        "auto-aof-rewrite-percentage",
        "`persistence.auto_aof_rewrite_percentage`",
    ),
];

/// Commands Sentinel sends to the data nodes; renaming them breaks monitoring or failover.
const SENTINEL_COMMANDS: &[&str] = &[
    "config",
    "replicaof",
    "slaveof",
    "info",
    "ping",
    "publish",
    "subscribe",
    "client",
    "role",
    "multi",
    "exec",
    "script",
    "shutdown",
];

/// The outcome of validation: a topology built from valid values and defaults (complete
/// even when there are errors, so callers can keep going), and the diagnostics.
#[derive(Debug, Clone)]
pub struct Validation {
    pub topology: Topology,
    pub errors: Vec<Diagnostic>,
    pub warnings: Vec<Diagnostic>,
}

pub fn validate(doc: &RawDocument, name_override: Option<&str>) -> Validation {
    let mut c = Checker {
        doc,
        rejected: BTreeSet::new(),
        errors: Vec::new(),
        warnings: Vec::new(),
    };
    let cluster = c.cluster(name_override);
    let auth = c.auth();
    let master = MasterSpec {
        port: c.port("master.port", doc.topology.master.port, 6379),
    };
    let replicas = c.replicas();
    let sentinel = c.sentinel();
    c.port_ranges(&master, &replicas, &sentinel);
    c.announce_needs(&cluster, &master, &replicas, &sentinel);
    let persistence = c.persistence();
    let redis = c.redis();
    let kubernetes = c.kubernetes(&cluster.name);
    c.cross_warnings(&persistence, &redis, &kubernetes);
    let replication = c.replication(&replicas);
    let acl = c.acl();
    let tls = c.tls();
    Validation {
        topology: Topology {
            source: PathBuf::from("<string>"),
            cluster,
            auth,
            master,
            replicas,
            sentinel,
            persistence,
            redis,
            kubernetes,
            replication,
            acl,
            tls,
        },
        errors: c.errors,
        warnings: c.warnings,
    }
}

struct Checker<'a> {
    doc: &'a RawDocument,
    /// Keys validation found out of range: their stand-in defaults must not feed other rules.
    rejected: BTreeSet<String>,
    errors: Vec<Diagnostic>,
    warnings: Vec<Diagnostic>,
}

impl Checker<'_> {
    fn diagnostic(&self, severity: Severity, key: &str, at: &str, message: String) -> Diagnostic {
        // A value that is only a default has no place in the file; the file's start is
        // the honest location then.
        let p = self
            .doc
            .position(at)
            .unwrap_or(Position { line: 1, column: 1 });
        Diagnostic {
            severity,
            key: key.to_string(),
            line: Some(p.line),
            column: Some(p.column),
            message,
        }
    }

    fn error(&mut self, key: &str, message: String) {
        self.error_at(key, key, message);
    }

    fn error_at(&mut self, key: &str, at: &str, message: String) {
        let d = self.diagnostic(Severity::Error, key, at, message);
        self.errors.push(d);
    }

    fn warn(&mut self, key: &str, message: String) {
        let d = self.diagnostic(Severity::Warning, key, key, message);
        self.warnings.push(d);
    }

    /// Usable: present in the file or defaulted, and not already rejected by the reader.
    fn ok(&self, key: &str) -> bool {
        !self.doc.broken.contains(key) && !self.rejected.contains(key)
    }

    /// An integer in `range`, else an error and `None`.
    fn int_in(
        &mut self,
        key: &str,
        value: i64,
        range: RangeInclusive<i64>,
        note: &str,
    ) -> Option<i64> {
        if range.contains(&value) {
            return Some(value);
        }
        self.rejected.insert(key.to_string());
        self.error(
            key,
            format!(
                "`{key}` is {value}; set it between {} and {}{note}",
                range.start(),
                range.end()
            ),
        );
        None
    }

    fn port(&mut self, key: &str, value: Option<i64>, default: u16) -> u16 {
        let Some(value) = value else { return default };
        self.int_in(
            key,
            value,
            0..=65535,
            " (0 lets the engine pick a free port)",
        )
        .and_then(|v| u16::try_from(v).ok())
        .unwrap_or(default)
    }

    fn cluster(&mut self, name_override: Option<&str>) -> Cluster {
        let raw = &self.doc.topology.cluster;
        let mut name = DEFAULT_NAME.to_string();
        if let Some(file_name) = &raw.name {
            match name_problem(file_name) {
                Some(problem) => self.error("cluster.name", format!("`cluster.name` {problem}")),
                None => name = file_name.clone(),
            }
        }
        if let Some(cli_name) = name_override {
            match name_problem(cli_name) {
                // Not in the file: no position to point at.
                Some(problem) => self.errors.push(Diagnostic {
                    severity: Severity::Error,
                    key: "cluster.name".into(),
                    line: None,
                    column: None,
                    message: format!("`--name` {problem}"),
                }),
                None => name = cli_name.to_string(),
            }
        }

        let mut bind = IpAddr::V4(Ipv4Addr::LOCALHOST);
        if let Some(text) = &raw.bind {
            match text.parse::<IpAddr>() {
                Ok(ip) => bind = ip,
                Err(_) => self.error(
                    "cluster.bind",
                    format!(
                        "`cluster.bind` is `{text}`, not an IP address; use `127.0.0.1` (this host only) or `0.0.0.0` (every interface)"
                    ),
                ),
            }
        }

        let mut subnet = None;
        if let Some(text) = &raw.subnet {
            match Subnet::from_str(text) {
                Ok(s) => subnet = Some(s),
                Err(why) => self.error(
                    "cluster.subnet",
                    format!("`cluster.subnet` is invalid: {why}; or remove it to derive one from the name"),
                ),
            }
        }
        let mut announce = Announce::Auto;
        if let Some(text) = &raw.announce {
            match announce_problem(text) {
                Ok(a) => announce = a,
                Err(problem) => {
                    self.rejected.insert("cluster.announce".into());
                    self.error("cluster.announce", format!("`cluster.announce` {problem}"))
                }
            }
        }
        Cluster {
            name,
            bind,
            subnet,
            announce,
        }
    }

    /// An announced address is `<announce>:<published port>`: the ports must be published
    /// where that address leads, and known before the nodes start (they write them in their
    /// configs).
    fn announce_needs(
        &mut self,
        cluster: &Cluster,
        master: &MasterSpec,
        replicas: &ReplicasSpec,
        sentinel: &SentinelSpec,
    ) {
        let Announce::Host(host) = &cluster.announce else {
            return;
        };
        if self.ok("cluster.bind") && cluster.bind.is_loopback() {
            self.error(
                "cluster.announce",
                format!(
                    "`cluster.announce` is `{host}` but `cluster.bind` is `{}`: the ports are published on this host's loopback only, so nothing reaches them at `{host}`; set `cluster.bind` to `{host}` (if it is an address of this host) or `0.0.0.0`",
                    cluster.bind
                ),
            );
        } else if let Ok(ip) = host.parse::<IpAddr>()
            && self.ok("cluster.bind")
            && !cluster.bind.is_unspecified()
            && ip != cluster.bind
        {
            self.warn(
                "cluster.announce",
                format!(
                    "`cluster.announce` is `{ip}` but the ports are published on `{}` only: clients and the nodes themselves reach `{ip}:<port>` only if it leads there (port forwarding); if `{ip}` is an address of this host, set `cluster.bind` to it or to `0.0.0.0`",
                    cluster.bind
                ),
            );
        }
        let ports = [
            ("master.port", master.port, 1),
            ("replicas.port", replicas.port, replicas.count),
            ("sentinel.port", sentinel.port, sentinel.count),
        ];
        for (key, port, count) in ports {
            if port == 0 && count > 0 && self.ok(key) {
                self.error(
                    key,
                    format!(
                        "`{key}` is 0 (the engine picks the port as the node starts), but with `cluster.announce = \"{host}\"` each node announces `{host}:<its published port>` in its config before it starts; set a fixed port (e.g. the default), or `cluster.announce = \"container\"`"
                    ),
                );
            }
        }
    }

    fn auth(&mut self) -> AuthSource {
        let raw = &self.doc.topology.auth;
        let sources = [
            ("auth.password", raw.password.is_some()),
            ("auth.password_env", raw.password_env.is_some()),
            ("auth.password_file", raw.password_file.is_some()),
        ];
        let set: Vec<&str> = sources
            .iter()
            .filter(|(_, on)| *on)
            .map(|(k, _)| *k)
            .collect();
        if set.len() > 1 {
            let listed = set
                .iter()
                .map(|k| format!("`{k}`"))
                .collect::<Vec<_>>()
                .join(" and ");
            // Point at the later one: the earlier is what the user meant first.
            let at = set
                .iter()
                .copied()
                .max_by_key(|k| self.doc.position(k))
                .unwrap_or("auth");
            self.error_at(
                "auth",
                at,
                format!(
                    "{listed} are {} password sources; keep at most one (none lets `up` generate a password)",
                    if set.len() == 2 { "both" } else { "all" }
                ),
            );
            return AuthSource::Generated;
        }
        if let Some(password) = &raw.password {
            if let Some(problem) = password_problem(password.expose()) {
                self.error("auth.password", format!("`auth.password` {problem}"));
            }
            self.warn(
                "auth.password",
                "`auth.password` is written in the topology file: anyone who can read the file can use the group; prefer `password_env` or `password_file`".into(),
            );
            return AuthSource::Literal;
        }
        if let Some(var) = &raw.password_env {
            if var.is_empty() {
                self.error(
                    "auth.password_env",
                    "`auth.password_env` is empty; set it to the name of the environment variable that holds the password".into(),
                );
            } else if !is_env_name(var) {
                self.error(
                    "auth.password_env",
                    format!("`auth.password_env` is `{var}`, not an environment variable name; use letters, digits and `_`, not starting with a digit"),
                );
            }
            return AuthSource::Env(var.clone());
        }
        if let Some(path) = &raw.password_file {
            if path.is_empty() {
                self.error(
                    "auth.password_file",
                    "`auth.password_file` is empty; set it to the path of the file that holds the password".into(),
                );
            }
            return AuthSource::File(PathBuf::from(path));
        }
        AuthSource::Generated
    }

    fn replicas(&mut self) -> ReplicasSpec {
        let raw = &self.doc.topology.replicas;
        let count = raw
            .count
            .and_then(|n| self.int_in("replicas.count", n, 0..=MAX_REPLICAS, ""))
            .unwrap_or(2);
        ReplicasSpec {
            count: u8::try_from(count).unwrap_or(2),
            port: self.port("replicas.port", raw.port, 6380),
        }
    }

    /// `sentinel.quorum`: between 1 and the number of sentinels (clamped there after an
    /// error, so later checks see a usable value).
    fn sentinel_quorum(&mut self, count: i64, count_valid: bool) -> i64 {
        let raw = &self.doc.topology.sentinel;
        let mut quorum = raw.quorum.unwrap_or(2);
        if self.ok("sentinel.quorum") && count_valid && !(1..=count).contains(&quorum) {
            let default = if raw.quorum.is_none() {
                " (the default)"
            } else {
                ""
            };
            let range = if count == 1 {
                "set it to 1".to_string()
            } else {
                format!("set it between 1 and {count}")
            };
            let message = if quorum < 1 {
                format!("`sentinel.quorum` is {quorum}; {range}")
            } else {
                format!(
                    "`sentinel.quorum` is {quorum}{default} but there {}; {range}",
                    if count == 1 {
                        "is only 1 sentinel".to_string()
                    } else {
                        format!("are only {count} sentinels")
                    }
                )
            };
            let at = if raw.quorum.is_some() {
                "sentinel.quorum"
            } else {
                "sentinel.count"
            };
            self.error_at("sentinel.quorum", at, message);
            quorum = quorum.clamp(1, count);
        } else if count_valid && self.ok("sentinel.quorum") {
            self.sentinel_warnings(count, quorum);
            self.sentinel_drain_warning(count, quorum);
        }
        quorum
    }

    /// `sentinel.master_name`: the name clients look the master up by.
    fn master_name(&mut self) -> String {
        let raw = &self.doc.topology.sentinel;
        let master_name = raw.master_name.clone().unwrap_or_else(|| "mymaster".into());
        if master_name.is_empty() {
            self.error(
                "sentinel.master_name",
                "`sentinel.master_name` is empty; set it to a name like `mymaster`".into(),
            );
        } else if !master_name
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '.' | '_' | '-'))
        {
            self.error(
                "sentinel.master_name",
                format!("`sentinel.master_name` is `{}`; use only letters, digits, `.`, `_` and `-` (clients look the master up by this name)", one_line(&master_name)),
            );
        }
        master_name
    }

    fn sentinel(&mut self) -> SentinelSpec {
        let raw = &self.doc.topology.sentinel;
        let count = match raw.count {
            Some(n) => self
                .int_in(
                    "sentinel.count",
                    n,
                    1..=MAX_SENTINELS,
                    " (an odd number, 3 or more, is best)",
                )
                .unwrap_or(3),
            None => 3,
        };
        let count_valid = self.ok("sentinel.count");

        let quorum = self.sentinel_quorum(count, count_valid);
        let master_name = self.master_name();

        let down_after = self.millis("sentinel.down_after_ms", raw.down_after_ms, 5000);
        let failover_timeout = self.millis(
            "sentinel.failover_timeout_ms",
            raw.failover_timeout_ms,
            60000,
        );
        if let (Some(down), Some(timeout)) = (down_after, failover_timeout)
            && down >= timeout
        {
            let at = if raw.down_after_ms.is_some() {
                "sentinel.down_after_ms"
            } else {
                "sentinel.failover_timeout_ms"
            };
            self.error_at(
                    "sentinel.down_after_ms",
                    at,
                    format!("`sentinel.down_after_ms` ({down}) must be less than `sentinel.failover_timeout_ms` ({timeout}): a failover that times out before the master is even seen down never completes; lower the first or raise the second"),
                );
        }

        if let Some(down) = down_after
            && super::down_after_hazard(down)
        {
            self.warn(
                "sentinel.down_after_ms",
                format!("`sentinel.down_after_ms` is {down}: Sentinel connects to a newly promoted master up to a second after the switch, so below {} ms it can judge that master down before it has even connected, and fail over a second time (losing writes the first new master acknowledged); use {} or more", super::DOWN_AFTER_SAFE_MS, super::DOWN_AFTER_SAFE_MS),
            );
        }

        let parallel_syncs = match raw.parallel_syncs {
            Some(n) => self
                .int_in(
                    "sentinel.parallel_syncs",
                    n,
                    1..=SENTINEL_INT_MAX,
                    " (how many replicas resync with a new master at once)",
                )
                .unwrap_or(1),
            None => 1,
        };

        SentinelSpec {
            count: u8::try_from(count).unwrap_or(3),
            port: self.port("sentinel.port", raw.port, 26379),
            master_name,
            quorum: u8::try_from(quorum).unwrap_or(2),
            down_after_ms: down_after.unwrap_or(5000),
            failover_timeout_ms: failover_timeout.unwrap_or(60000),
            parallel_syncs: u32::try_from(parallel_syncs).unwrap_or(1),
        }
    }

    /// A positive time in milliseconds; `None` when it is invalid or unusable.
    fn millis(&mut self, key: &str, value: Option<i64>, default: u64) -> Option<u64> {
        if !self.ok(key) {
            return None;
        }
        let Some(value) = value else {
            return Some(default);
        };
        if value <= 0 {
            self.error(
                key,
                format!("`{key}` is {value}; set a positive number of milliseconds"),
            );
            return None;
        }
        if value > SENTINEL_INT_MAX {
            self.error(
                key,
                format!("`{key}` is {value}; sentinel accepts at most {SENTINEL_INT_MAX} milliseconds (about 24 days)"),
            );
            return None;
        }
        u64::try_from(value).ok()
    }

    fn sentinel_warnings(&mut self, count: i64, quorum: i64) {
        let majority = count / 2 + 1;
        if count == 1 {
            self.warn(
                "sentinel.count",
                "`sentinel.count` is 1: if that sentinel is down, nothing fails over; use 3 sentinels".into(),
            );
        } else if count == 2 {
            self.warn(
                "sentinel.count",
                "`sentinel.count` is 2: with one sentinel down, the other cannot reach the majority of 2 that authorizes a failover; use 3 sentinels".into(),
            );
        }
        if count % 2 == 0 {
            self.warn(
                "sentinel.count",
                format!(
                    "`sentinel.count` is {count}, an even number: it survives no more sentinel failures than {} would; use an odd number",
                    count - 1
                ),
            );
        }
        if quorum < majority {
            self.warn(
                "sentinel.quorum",
                format!(
                    "`sentinel.quorum` is {quorum}, less than a majority of {count} sentinels: {quorum} sentinel{} can declare the master down on {} own view of the network, but a failover still needs {majority} sentinels to authorize it, so the majority decides anyway; set it to {majority}",
                    if quorum == 1 { "" } else { "s" },
                    if quorum == 1 { "its" } else { "their" },
                ),
            );
        }
        if count > 1 && quorum == count {
            self.warn(
                "sentinel.quorum",
                format!("`sentinel.quorum` is {quorum}, every sentinel: with one sentinel down the master can never be declared down, so no failover happens; set it to {majority}"),
            );
        }
    }

    /// On Kubernetes, the sentinels' PodDisruptionBudget never blocks a drain; where the
    /// group has no sentinel to spare, a drain can then leave too few for a failover.
    fn sentinel_drain_warning(&mut self, count: i64, quorum: i64) {
        let (Ok(count), Ok(quorum)) = (u8::try_from(count), u8::try_from(quorum)) else {
            return;
        };
        let drain = SentinelDrain::of(count, quorum);
        if drain.keeps_failover() {
            return;
        }
        let (key, fix) = if count < 3 {
            ("sentinel.count", "use 3 sentinels or more".to_string())
        } else {
            (
                "sentinel.quorum",
                format!("set `sentinel.quorum` to {}", count / 2 + 1),
            )
        };
        self.warn(
            key,
            format!(
                "on Kubernetes, a node drain may evict {} of the {count} sentinel{} at once (the PodDisruptionBudget's `maxUnavailable: {}`; 0 would block every drain), leaving {}, and a failover needs {} (quorum {quorum}, majority {}): a master lost during the drain is not failed over until the evicted sentinel{} {} back; {fix}",
                drain.max_unavailable,
                if count == 1 { "" } else { "s" },
                drain.max_unavailable,
                match drain.left {
                    0 => "none".to_string(),
                    n => n.to_string(),
                },
                drain.needed,
                count / 2 + 1,
                if drain.max_unavailable == 1 { "" } else { "s" },
                if drain.max_unavailable == 1 { "is" } else { "are" },
            ),
        );
    }

    /// Host ports that two nodes would both publish, or that run past 65535.
    fn port_ranges(
        &mut self,
        master: &MasterSpec,
        replicas: &ReplicasSpec,
        sentinel: &SentinelSpec,
    ) {
        let keys = [
            "master.port",
            "replicas.port",
            "sentinel.port",
            "replicas.count",
            "sentinel.count",
        ];
        if keys.iter().any(|k| !self.ok(k)) {
            return;
        }
        // (key, first, count, what)
        let ranges = [
            ("master.port", u32::from(master.port), 1u32, "the master"),
            (
                "replicas.port",
                u32::from(replicas.port),
                u32::from(replicas.count),
                "replicas",
            ),
            (
                "sentinel.port",
                u32::from(sentinel.port),
                u32::from(sentinel.count),
                "sentinels",
            ),
        ];
        let mut usable = Vec::new();
        for (key, first, count, what) in ranges {
            if first == 0 || count == 0 {
                continue;
            }
            let last = first + count - 1;
            if last > 65535 {
                self.error(
                    key,
                    format!(
                        "`{key}` is {first}, so {count} {what} need ports up to {last}, past 65535; set it to {} or lower, or 0 to let the engine pick",
                        65536 - count
                    ),
                );
                continue;
            }
            usable.push((key, first, last));
        }
        for (i, &(key_a, first_a, last_a)) in usable.iter().enumerate() {
            for &(key_b, first_b, last_b) in &usable[i + 1..] {
                if first_a <= last_b && first_b <= last_a {
                    let shared = first_a.max(first_b);
                    let (later, earlier) = if self.doc.position(key_b) >= self.doc.position(key_a)
                        && self.doc.has(key_b)
                    {
                        (key_b, key_a)
                    } else {
                        (key_a, key_b)
                    };
                    self.error(
                        later,
                        format!(
                            "`{later}` ({}) and `{earlier}` ({}) both use host port {shared}; move one of them, or set it to 0 to let the engine pick",
                            describe_range(later, &usable),
                            describe_range(earlier, &usable),
                        ),
                    );
                }
            }
        }
    }

    fn persistence(&mut self) -> Persistence {
        let raw = &self.doc.topology.persistence;
        let save = raw
            .save
            .clone()
            .unwrap_or_else(|| vec!["900 1".into(), "300 10".into(), "60 10000".into()]);
        if raw.save.is_some() {
            for (i, entry) in save.iter().enumerate() {
                if !is_save_rule(entry) {
                    let key = format!("persistence.save[{i}]");
                    self.error(
                        &key,
                        format!(
                            "`{key}` is `\"{}\"`; write `\"SECONDS CHANGES\"`, two positive integers like `\"900 1\"` (an empty list turns snapshots off)",
                            one_line(entry)
                        ),
                    );
                }
            }
        }

        let dbfilename = self.file_name(
            "persistence.dbfilename",
            raw.dbfilename.as_deref(),
            "dump.rdb",
        );
        let appendfilename = self.file_name(
            "persistence.appendfilename",
            raw.appendfilename.as_deref(),
            "appendonly.aof",
        );

        let appendfsync = match raw.appendfsync.as_deref() {
            None | Some("everysec") => AppendFsync::Everysec,
            Some("always") => AppendFsync::Always,
            Some("no") => AppendFsync::No,
            Some(other) => {
                self.error(
                    "persistence.appendfsync",
                    format!(
                        "`persistence.appendfsync` is `{}`; use one of `always`, `everysec`, `no`",
                        one_line(other)
                    ),
                );
                AppendFsync::Everysec
            }
        };

        let min_size = raw
            .auto_aof_rewrite_min_size
            .clone()
            .unwrap_or_else(|| "64mb".into());
        if let Err(why) = redis_size(&min_size) {
            self.error(
                "persistence.auto_aof_rewrite_min_size",
                format!(
                    "`persistence.auto_aof_rewrite_min_size` is `{}`: {why}",
                    one_line(&min_size)
                ),
            );
        }

        let percentage = match raw.auto_aof_rewrite_percentage {
            Some(n) => self
                .int_in(
                    "persistence.auto_aof_rewrite_percentage",
                    n,
                    0..=SENTINEL_INT_MAX,
                    " (0 turns automatic rewrites off)",
                )
                .unwrap_or(100),
            None => 100,
        };

        Persistence {
            rdb: raw.rdb.unwrap_or(true),
            save,
            stop_writes_on_bgsave_error: raw.stop_writes_on_bgsave_error.unwrap_or(true),
            rdbcompression: raw.rdbcompression.unwrap_or(true),
            dbfilename,
            aof: raw.aof.unwrap_or(true),
            appendfilename,
            appendfsync,
            no_appendfsync_on_rewrite: raw.no_appendfsync_on_rewrite.unwrap_or(false),
            auto_aof_rewrite_min_size: min_size,
            auto_aof_rewrite_percentage: u32::try_from(percentage).unwrap_or(100),
        }
    }

    fn file_name(&mut self, key: &str, value: Option<&str>, default: &str) -> String {
        let Some(value) = value else {
            return default.to_string();
        };
        let problem = if value.is_empty() {
            Some(format!("is empty; set a file name like `{default}`"))
        } else if value.contains(['/', '\\']) {
            Some(format!(
                "is `{}`; use a plain file name without `/`: the directory is the node's data volume",
                one_line(value)
            ))
        } else if value == "." || value == ".." {
            Some(format!(
                "is `{value}`; use a plain file name like `{default}`"
            ))
        } else if value
            .chars()
            .any(|ch| ch.is_whitespace() || ch.is_control() || ch == '"')
        {
            Some(format!(
                "is `{}`; use a file name without spaces, quotes or control characters",
                one_line(value)
            ))
        } else {
            None
        };
        match problem {
            Some(p) => {
                self.error(key, format!("`{key}` {p}"));
                default.to_string()
            }
            None => value.to_string(),
        }
    }

    fn redis(&mut self) -> RedisSpec {
        let raw = &self.doc.topology.redis;
        let image = match raw.image.as_deref() {
            None | Some("") => None,
            Some(image) => {
                if let Some(problem) = image_problem(image) {
                    self.error("redis.image", format!("`redis.image` {problem}; or leave it empty for rcluster's default image"));
                }
                Some(image.to_string())
            }
        };
        let mut extra = BTreeMap::new();
        for (name, value) in raw.extra.iter().flatten() {
            let key = format!("redis.extra.{name}");
            let value = value.to_text();
            if name.is_empty()
                || !name
                    .chars()
                    .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '-')
            {
                self.error(
                    &key,
                    format!("`{}` is not a redis.conf directive name; use one lowercase word like `maxmemory` or `maxmemory-policy`", one_line(&key)),
                );
                continue;
            }
            if let Some((_, owner)) = MANAGED_DIRECTIVES.iter().find(|(d, _)| *d == name) {
                self.error(
                    &key,
                    format!("`{key}` cannot be set here: `{name}` is managed by {owner}"),
                );
                continue;
            }
            if value.trim().is_empty() {
                self.error(
                    &key,
                    format!("`{key}` is empty; give the directive a value or remove it"),
                );
                continue;
            }
            if value.contains(['\n', '\r']) {
                self.error(
                    &key,
                    format!("`{key}` contains a newline; a directive's value must fit on one line"),
                );
                continue;
            }
            if name == "rename-command" {
                let command = value
                    .split_whitespace()
                    .next()
                    .unwrap_or("")
                    .to_ascii_lowercase();
                if SENTINEL_COMMANDS.contains(&command.as_str()) {
                    self.error(
                        &key,
                        format!("`{key}` renames `{}`, which Sentinel sends to the nodes to monitor them and fail over; rename another command", command.to_ascii_uppercase()),
                    );
                    continue;
                }
            }
            extra.insert(name.clone(), value);
        }
        RedisSpec { image, extra }
    }

    fn kubernetes(&mut self, cluster_name: &str) -> KubernetesSpec {
        let raw = &self.doc.topology.kubernetes;
        let namespace = self.kubernetes_namespace();
        self.storage_class();
        let storage_size =
            self.kubernetes_size("kubernetes.storage_size", raw.storage_size.as_ref(), "1Gi");
        let anti_affinity = self.anti_affinity();
        let image = raw.image.clone().unwrap_or_else(|| "redis:7.2".into());
        if let Some(problem) = image_problem(&image) {
            self.error("kubernetes.image", format!("`kubernetes.image` {problem}"));
        }
        let sentinel_storage_size = self.kubernetes_size(
            "kubernetes.sentinel_storage_size",
            raw.sentinel_storage_size.as_ref(),
            "100Mi",
        );
        let cluster_domain = self.cluster_domain();
        let existing_secret_key = self.existing_secret();
        let zone_spread = self.zone_spread();
        let version = self.kubernetes_version();
        let image_pull_policy = self.image_pull_policy();
        let image_pull_secrets = self.image_pull_secrets();
        let node_selector = self.node_selector();
        let tolerations = self.tolerations();
        let priority_class_name = self.priority_class_name();
        let network_policy = self.network_policy(cluster_name, version);

        // An annotation value: any text, but one line keeps `kubectl describe` readable.
        if let Some(revision) = &raw.secret_revision
            && (revision.is_empty() || revision.len() > 63 || revision.contains(['\n', '\r']))
        {
            self.error(
                "kubernetes.secret_revision",
                format!(
                    "`kubernetes.secret_revision` is `{}`; write a short label of one line (1 to 63 characters), like `2` or `2026-12-06`, and change it whenever the Secret changes",
                    one_line(revision)
                ),
            );
        }
        KubernetesSpec {
            namespace,
            storage_class: raw.storage_class.clone(),
            storage_size,
            anti_affinity,
            image,
            resources: raw.resources.clone(),
            redis_resources: raw.redis_resources.clone(),
            sentinel_resources: raw.sentinel_resources.clone(),
            cluster_domain,
            existing_secret: raw.existing_secret.clone(),
            existing_secret_key,
            zone_spread,
            platform_uid: raw.platform_uid.unwrap_or(false),
            sentinel_storage_size,
            version,
            image_pull_policy,
            image_pull_secrets,
            node_selector,
            tolerations,
            priority_class_name,
            network_policy,

            secret_revision: raw.secret_revision.clone(),
        }
    }

    fn kubernetes_namespace(&mut self) -> String {
        let raw = &self.doc.topology.kubernetes;
        let namespace = raw.namespace.clone().unwrap_or_else(|| "default".into());
        if !is_dns_label(&namespace, 63) {
            self.error(
                "kubernetes.namespace",
                format!("`kubernetes.namespace` is `{}`; a namespace is 1 to 63 lowercase letters, digits and `-`, starting and ending with a letter or digit", one_line(&namespace)),
            );
        }
        namespace
    }

    fn storage_class(&mut self) {
        let raw = &self.doc.topology.kubernetes;
        if let Some(class) = &raw.storage_class {
            let valid = !class.is_empty()
                && class.len() <= 253
                && class.split('.').all(|label| is_dns_label(label, 63));
            if class.is_empty() {
                self.error(
                    "kubernetes.storage_class",
                    "`kubernetes.storage_class` is empty; name a storage class, or remove the key to use the cluster's default".into(),
                );
            } else if !valid {
                self.error(
                    "kubernetes.storage_class",
                    format!("`kubernetes.storage_class` is `{}`; a storage class name is lowercase letters, digits, `-` and `.`", one_line(class)),
                );
            }
        }
    }

    /// A volume size under `key` (a Kubernetes quantity), `default` when unset.
    fn kubernetes_size(&mut self, key: &str, value: Option<&String>, default: &str) -> String {
        let size = value.cloned().unwrap_or_else(|| default.into());
        if let Err(why) = kubernetes_quantity(&size) {
            self.error(key, format!("`{key}` is `{}`: {why}", one_line(&size)));
        }
        size
    }

    fn anti_affinity(&mut self) -> AntiAffinity {
        let raw = &self.doc.topology.kubernetes;
        match raw.anti_affinity.as_deref() {
            None | Some("preferred") => AntiAffinity::Preferred,
            Some("required") => AntiAffinity::Required,
            Some(other) => {
                self.error(
                    "kubernetes.anti_affinity",
                    format!(
                        "`kubernetes.anti_affinity` is `{}`; use `preferred` or `required`",
                        one_line(other)
                    ),
                );
                AntiAffinity::Preferred
            }
        }
    }

    fn cluster_domain(&mut self) -> String {
        let raw = &self.doc.topology.kubernetes;
        let cluster_domain = raw
            .cluster_domain
            .clone()
            .unwrap_or_else(|| "cluster.local".into());
        if !is_dns_name(&cluster_domain) {
            self.error(
                "kubernetes.cluster_domain",
                format!("`kubernetes.cluster_domain` is `{}`; write the cluster's DNS domain, lowercase labels joined by `.`, like `cluster.local`", one_line(&cluster_domain)),
            );
        }
        cluster_domain
    }

    /// `existing_secret` and its key; returns the key.
    fn existing_secret(&mut self) -> String {
        let raw = &self.doc.topology.kubernetes;
        if let Some(name) = &raw.existing_secret
            && !is_dns_name(name)
        {
            self.error(
                "kubernetes.existing_secret",
                format!("`kubernetes.existing_secret` is `{}`; name a Secret in `kubernetes.namespace`: lowercase letters, digits, `-` and `.`", one_line(name)),
            );
        }
        let existing_secret_key = raw
            .existing_secret_key
            .clone()
            .unwrap_or_else(|| "password".into());
        let key_ok = !existing_secret_key.is_empty()
            && existing_secret_key.len() <= 253
            && existing_secret_key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !key_ok {
            self.error(
                "kubernetes.existing_secret_key",
                format!("`kubernetes.existing_secret_key` is `{}`; a Secret key is letters, digits, `-`, `_` and `.`, like `password`", one_line(&existing_secret_key)),
            );
        } else if raw.existing_secret_key.is_some() && raw.existing_secret.is_none() {
            self.warn(
                "kubernetes.existing_secret_key",
                "`kubernetes.existing_secret_key` is set but `kubernetes.existing_secret` is not, so it is not used; name the Secret in `kubernetes.existing_secret`".into(),
            );
        }
        existing_secret_key
    }

    fn zone_spread(&mut self) -> ZoneSpread {
        let raw = &self.doc.topology.kubernetes;
        match raw.zone_spread.as_deref() {
            None | Some("none") => ZoneSpread::None,
            Some("preferred") => ZoneSpread::Preferred,
            Some("required") => ZoneSpread::Required,
            Some(other) => {
                self.error(
                    "kubernetes.zone_spread",
                    format!(
                        "`kubernetes.zone_spread` is `{}`; use `none`, `preferred` (spread when possible) or `required` (never two pods of a kind in one zone while others have fewer)",
                        one_line(other)
                    ),
                );
                ZoneSpread::None
            }
        }
    }

    /// `kubernetes.version`: `"1.MINOR"`, a release from [`KubeVersion::OLDEST`] to
    /// [`KubeVersion::NEWEST`]; below [`KubeVersion::OLDEST_SUPPORTED`] a warning.
    fn kubernetes_version(&mut self) -> KubeVersion {
        const KEY: &str = "kubernetes.version";
        let Some(text) = self.doc.topology.kubernetes.version.as_deref() else {
            return KubeVersion::DEFAULT;
        };
        let range = format!(
            "from `\"{}\"` to `\"{}\"`",
            KubeVersion::OLDEST,
            KubeVersion::NEWEST
        );
        let version = match kube_version(text) {
            Ok(version) => version,
            Err(problem) => {
                let message = match problem {
                    VersionProblem::Patch(minor) => format!(
                        "`{KEY}` is `{}`; write the minor release only, `\"1.{minor}\"` (the manifests do not depend on the patch release)",
                        one_line(text)
                    ),
                    VersionProblem::Form => format!(
                        "`{KEY}` is `{}`; write the Kubernetes release of the target cluster as `\"1.MINOR\"`, {range}, like `\"{}\"`",
                        one_line(text),
                        KubeVersion::DEFAULT
                    ),
                };
                self.error(KEY, message);
                return KubeVersion::DEFAULT;
            }
        };
        if version < KubeVersion::OLDEST {
            self.error(
                KEY,
                format!(
                    "`{KEY}` is `{version}`; rcluster renders for Kubernetes {range}: the manifests use topologySpreadConstraints and `seccompProfile`, GA in {}",
                    KubeVersion::OLDEST
                ),
            );
            return KubeVersion::DEFAULT;
        }
        if version > KubeVersion::NEWEST {
            self.error(
                KEY,
                format!(
                    "`{KEY}` is `{version}`, a Kubernetes release rcluster does not know (the newest it knows is {}); use a release {range}",
                    KubeVersion::NEWEST
                ),
            );
            return KubeVersion::DEFAULT;
        }
        if version < KubeVersion::OLDEST_SUPPORTED {
            self.warn(
                KEY,
                format!(
                    "`{KEY}` is `{version}`, out of upstream support (no fixes, security ones included, below {}): plan an upgrade; the manifests use the APIs {version} has (PodDisruptionBudgets as `policy/{}`)",
                    KubeVersion::OLDEST_SUPPORTED,
                    if version.has_policy_v1() { "v1" } else { "v1beta1" }
                ),
            );
        }
        version
    }

    fn image_pull_policy(&mut self) -> Option<ImagePullPolicy> {
        const KEY: &str = "kubernetes.image_pull_policy";
        let text = self.doc.topology.kubernetes.image_pull_policy.as_deref()?;
        let all = [
            ImagePullPolicy::Always,
            ImagePullPolicy::IfNotPresent,
            ImagePullPolicy::Never,
        ];
        if let Some(policy) = all.iter().find(|p| p.as_str() == text) {
            return Some(*policy);
        }
        let hint = all
            .iter()
            .find(|p| p.as_str().eq_ignore_ascii_case(text))
            .map(|p| format!(" (Kubernetes spells it `{}`)", p.as_str()))
            .unwrap_or_default();
        self.error(
            KEY,
            format!(
                "`{KEY}` is `{}`{hint}; use `Always`, `IfNotPresent` or `Never`, or remove the key for Kubernetes' default (`Always` for a `:latest` or untagged image, else `IfNotPresent`)",
                one_line(text)
            ),
        );
        None
    }

    fn image_pull_secrets(&mut self) -> Vec<String> {
        let names = self
            .doc
            .topology
            .kubernetes
            .image_pull_secrets
            .clone()
            .unwrap_or_default();
        let mut seen = BTreeSet::new();
        for (i, name) in names.iter().enumerate() {
            let key = format!("kubernetes.image_pull_secrets[{i}]");
            if !is_dns_name(name) {
                self.error(
                    &key,
                    format!("`{key}` is `{}`; name a Secret in `kubernetes.namespace` (of type `kubernetes.io/dockerconfigjson`): lowercase letters, digits, `-` and `.`, at most 253 characters", one_line(name)),
                );
            } else if !seen.insert(name.as_str()) {
                self.error(
                    &key,
                    format!("`{key}`: the Secret `{name}` is listed twice; list each once"),
                );
            }
        }
        names
    }

    fn node_selector(&mut self) -> BTreeMap<String, String> {
        let selector = self
            .doc
            .topology
            .kubernetes
            .node_selector
            .clone()
            .unwrap_or_default();
        self.labels("kubernetes.node_selector", &selector, "node");
        selector
    }

    /// Label keys and values (a selector's) against Kubernetes' rules, each entry's errors
    /// on its own line.
    fn labels(&mut self, dotted: &str, labels: &BTreeMap<String, String>, whose: &str) {
        for (key, value) in labels {
            let at = format!("{dotted}.{key}");
            if let Some(why) = label_key_problem(key) {
                self.error(
                    &at,
                    format!(
                        "`{dotted}` has the {whose} label key `{}`, which is not valid: {why}",
                        one_line(key)
                    ),
                );
            } else if let Some(why) = label_value_problem(value) {
                self.error(
                    &at,
                    format!(
                        "`{at}` is `{}`, not a label value: {why} (or be empty)",
                        one_line(value)
                    ),
                );
            }
        }
    }

    fn tolerations(&mut self) -> Vec<Toleration> {
        let raw = self
            .doc
            .topology
            .kubernetes
            .tolerations
            .clone()
            .unwrap_or_default();
        let mut out = Vec::new();
        for (i, entry) in raw.iter().enumerate() {
            let path = format!("kubernetes.tolerations[{i}]");
            // Already reported by the reader.
            if !self.ok(&path) {
                continue;
            }
            if let Some(toleration) = self.toleration(&path, entry) {
                out.push(toleration);
            }
        }
        out
    }

    /// One toleration, checked as the API server would (`validateTolerations`), with each
    /// problem on the field's line.
    fn toleration(&mut self, path: &str, raw: &RawToleration) -> Option<Toleration> {
        let mut ok = true;
        let operator = raw.operator.clone().unwrap_or_else(|| "Equal".into());
        let field = |name: &str| format!("{path}.{name}");
        if !matches!(operator.as_str(), "Exists" | "Equal") {
            let key = field("operator");
            self.error(
                &key,
                format!(
                    "`{key}` is `{}`; use `Equal` (the taint's value must match `value`; the default) or `Exists` (any value)",
                    one_line(&operator)
                ),
            );
            ok = false;
        }
        let key_text = raw.key.as_deref().filter(|k| !k.is_empty());
        match key_text {
            Some(k) => {
                if let Some(why) = label_key_problem(k) {
                    let key = field("key");
                    self.error(
                        &key,
                        format!("`{key}` is `{}`, not a taint key: {why}", one_line(k)),
                    );
                    ok = false;
                }
            }
            None if operator == "Equal" => {
                self.error_at(
                    path,
                    &field("operator"),
                    format!("`{path}` has no `key` but `operator` is `Equal`: name the taint's `key`, or use `operator = \"Exists\"` with no key to tolerate every taint"),
                );
                ok = false;
            }
            None => {}
        }
        if let Some(value) = &raw.value {
            let key = field("value");
            if operator == "Exists" && !value.is_empty() {
                self.error(
                    &key,
                    format!("`{key}` is set but `operator` is `Exists`, which matches any value; remove `value`, or use `operator = \"Equal\"`"),
                );
                ok = false;
            } else if let Some(why) = label_value_problem(value) {
                self.error(
                    &key,
                    format!(
                        "`{key}` is `{}`, not a taint value: {why} (or be empty)",
                        one_line(value)
                    ),
                );
                ok = false;
            }
        }
        let effect = raw.effect.clone().filter(|e| !e.is_empty());
        if let Some(e) = &effect
            && !matches!(e.as_str(), "NoSchedule" | "PreferNoSchedule" | "NoExecute")
        {
            let key = field("effect");
            self.error(
                &key,
                format!(
                    "`{key}` is `{}`; use `NoSchedule`, `PreferNoSchedule`, `NoExecute`, or leave it out to tolerate every effect",
                    one_line(e)
                ),
            );
            ok = false;
        }
        if let Some(seconds) = raw.toleration_seconds {
            let key = field("toleration_seconds");
            if effect.as_deref() != Some("NoExecute") {
                self.error(
                    &key,
                    format!("`{key}` is set but `effect` is not `NoExecute`: only a `NoExecute` taint evicts running pods, after that many seconds; set `effect = \"NoExecute\"` or remove `toleration_seconds`"),
                );
                ok = false;
            } else if seconds < 0 {
                self.error(
                    &key,
                    format!("`{key}` is {seconds}; set 0 or more seconds (0: evicted at once), or remove it to stay for good"),
                );
                ok = false;
            }
        }
        ok.then(|| Toleration {
            key: key_text.map(str::to_string),
            operator,
            value: raw.value.clone(),
            effect,
            toleration_seconds: raw.toleration_seconds,
        })
    }

    fn priority_class_name(&mut self) -> Option<String> {
        const KEY: &str = "kubernetes.priority_class_name";
        let name = self.doc.topology.kubernetes.priority_class_name.clone()?;
        if !is_dns_name(&name) {
            self.error(
                KEY,
                format!("`{KEY}` is `{}`; name a PriorityClass: lowercase letters, digits, `-` and `.`, like `high-priority`", one_line(&name)),
            );
            return None;
        }
        Some(name)
    }

    /// On unless `false`; clients carry `<cluster>-client: "true"` unless named.
    fn network_policy(
        &mut self,
        cluster_name: &str,
        version: KubeVersion,
    ) -> Option<NetworkPolicySpec> {
        const KEY: &str = "kubernetes.network_policy";
        let default_labels = || BTreeMap::from([(format!("{cluster_name}-client"), "true".into())]);
        let table = match &self.doc.topology.kubernetes.network_policy {
            None => {
                return Some(NetworkPolicySpec {
                    client_labels: default_labels(),
                    client_namespaces: None,
                });
            }
            Some(RawNetworkPolicy::Switch(false)) => return None,
            Some(RawNetworkPolicy::Switch(true)) => {
                return Some(NetworkPolicySpec {
                    client_labels: default_labels(),
                    client_namespaces: None,
                });
            }
            Some(RawNetworkPolicy::Table(table)) => table.clone(),
        };
        let client_labels = table.client_labels.clone().unwrap_or_else(default_labels);
        self.labels(&format!("{KEY}.client_labels"), &client_labels, "pod");
        if let Some(namespaces) = &table.client_namespaces {
            self.labels(&format!("{KEY}.client_namespaces"), namespaces, "namespace");
            // Kubernetes labels every namespace with its name only from 1.21 on.
            const NAME_LABEL: &str = "kubernetes.io/metadata.name";
            if namespaces.contains_key(NAME_LABEL) && version < (KubeVersion { minor: 21 }) {
                let at = format!("{KEY}.client_namespaces.{NAME_LABEL}");
                self.warn(
                    &at,
                    format!("`{KEY}.client_namespaces` selects `{NAME_LABEL}`, which Kubernetes {version} does not set (it labels namespaces with their name from 1.21 on): no namespace matches until you label it yourself (`kubectl label namespace NAME {NAME_LABEL}=NAME`)"),
                );
            }
        }
        if table.enabled == Some(false) {
            if table.client_labels.is_some() || table.client_namespaces.is_some() {
                self.warn(
                    &format!("{KEY}.enabled"),
                    format!("`{KEY}.enabled` is `false`, so `client_labels` and `client_namespaces` are not used: no NetworkPolicy is rendered and every pod that reaches the group's pods may connect"),
                );
            }
            return None;
        }
        Some(NetworkPolicySpec {
            client_labels,
            client_namespaces: table.client_namespaces,
        })
    }

    /// Advice that needs several sections at once.
    fn cross_warnings(
        &mut self,
        persistence: &Persistence,
        redis: &RedisSpec,
        kubernetes: &KubernetesSpec,
    ) {
        let snapshots = persistence.rdb && !persistence.save.is_empty();
        if !snapshots && !persistence.aof {
            let key = if self.doc.has("persistence.aof") {
                "persistence.aof"
            } else {
                "persistence.rdb"
            };
            self.warn(
                key,
                "persistence is off (no RDB snapshots, no AOF): a master that restarts comes back empty, and when it is back before `sentinel.down_after_ms` its replicas copy the empty dataset; turn on `persistence.aof` (or `persistence.rdb` with `save` rules)".into(),
            );
        }
        let memory_limit = |value: Option<&serde_json::Value>| {
            value
                .and_then(|v| v.get("limits"))
                .and_then(|l| l.get("memory"))
                .is_some()
        };
        if memory_limit(kubernetes.redis_resources()) && !redis.extra.contains_key("maxmemory") {
            let key = if kubernetes.redis_resources.is_some() {
                "kubernetes.redis_resources"
            } else {
                "kubernetes.resources"
            };
            self.warn(
                key,
                format!("`{key}` sets a memory limit but `redis.extra` sets no `maxmemory`: redis grows until the kernel kills the pod, and a fork for a snapshot or AOF rewrite can double its memory; set `maxmemory` to about half the limit"),
            );
        }
    }
}

enum VersionProblem {
    /// `1.MINOR.PATCH`: the minor release is enough.
    Patch(u32),
    Form,
}

/// `"1.MINOR"` (a leading `v` is allowed, as `kubectl version` prints it).
fn kube_version(text: &str) -> Result<KubeVersion, VersionProblem> {
    let digits = |s: &str| !s.is_empty() && s.len() <= 3 && s.bytes().all(|b| b.is_ascii_digit());
    let bare = text.strip_prefix('v').unwrap_or(text);
    let parts: Vec<&str> = bare.split('.').collect();
    let minor = match parts.as_slice() {
        ["1", minor] | ["1", minor, _] if digits(minor) => {
            minor.parse::<u32>().map_err(|_| VersionProblem::Form)?
        }
        _ => return Err(VersionProblem::Form),
    };
    if minor.to_string() != parts[1] {
        // `1.020`: not how Kubernetes writes a release.
        return Err(VersionProblem::Form);
    }
    match parts.as_slice() {
        [_, _, patch] if digits(patch) => Err(VersionProblem::Patch(minor)),
        [_, _, _] => Err(VersionProblem::Form),
        _ => Ok(KubeVersion { minor }),
    }
}

/// A label key: an optional DNS-subdomain prefix and `/`, then a name of at most 63
/// characters, alphanumeric at both ends, `-`, `_` and `.` inside.
fn label_key_problem(key: &str) -> Option<String> {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    if let Some(prefix) = prefix
        && !is_dns_name(prefix)
    {
        return Some(format!(
            "its prefix `{}` is not a DNS subdomain (lowercase letters, digits, `-` and `.`, like `example.com`)",
            one_line(prefix)
        ));
    }
    if name.is_empty() {
        return Some("it has no name (write `prefix/name` or `name`)".into());
    }
    label_name_problem(name).map(|why| format!("its name {why}"))
}

/// A label value: empty, or what a label key's name may be.
fn label_value_problem(value: &str) -> Option<String> {
    if value.is_empty() {
        return None;
    }
    label_name_problem(value).map(|why| format!("it {why}"))
}

fn label_name_problem(name: &str) -> Option<String> {
    let alnum = |ch: char| ch.is_ascii_alphanumeric();
    if name.len() > 63 {
        return Some(format!("is {} characters long, more than 63", name.len()));
    }
    if !name
        .chars()
        .all(|ch| alnum(ch) || matches!(ch, '-' | '_' | '.'))
        || !name.starts_with(alnum)
        || !name.ends_with(alnum)
    {
        return Some(
            "must be letters, digits, `-`, `_` and `.`, starting and ending with a letter or digit"
                .into(),
        );
    }
    None
}

fn describe_range(key: &str, ranges: &[(&str, u32, u32)]) -> String {
    match ranges.iter().find(|(k, _, _)| *k == key) {
        Some((_, first, last)) if first == last => format!("port {first}"),
        Some((_, first, last)) => format!("ports {first}-{last}"),
        None => String::new(),
    }
}

/// What is wrong with a group name, phrased to follow the key (`cluster.name` or `--name`).
pub fn name_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some(
            "is empty; set a short name like `demo` (lowercase letters, digits and `-`)".into(),
        );
    }
    let length = name.chars().count();
    if length > MAX_NAME_LEN {
        return Some(format!(
            "is {length} characters long; use at most {MAX_NAME_LEN} (it prefixes every container, network and volume)"
        ));
    }
    if !is_dns_label(name, MAX_NAME_LEN) {
        let suggestion = suggest_name(name);
        let hint = if suggestion.is_empty() {
            String::new()
        } else {
            format!("; try `{suggestion}`")
        };
        return Some(format!(
            "is `{}`; use lowercase letters, digits and `-`, starting and ending with a letter or digit (Docker and Kubernetes names){hint}",
            one_line(name)
        ));
    }
    None
}

fn suggest_name(name: &str) -> String {
    let mapped: String = name
        .chars()
        .map(|ch| {
            let ch = ch.to_ascii_lowercase();
            if ch.is_ascii_lowercase() || ch.is_ascii_digit() {
                ch
            } else {
                '-'
            }
        })
        .collect();
    let trimmed = mapped.trim_matches('-');
    trimmed
        .chars()
        .take(MAX_NAME_LEN)
        .collect::<String>()
        .trim_end_matches('-')
        .to_string()
}

/// `^[a-z0-9]([a-z0-9-]*[a-z0-9])?$`, at most `max` characters.
/// A DNS name: labels joined by `.`, at most 253 characters.
pub(super) fn is_dns_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(|label| is_dns_label(label, 63))
}

/// `cluster.announce`: `auto`, `container`, or an address that clients and the nodes reach
/// this host at (an IP address or a host name).
pub fn announce_problem(text: &str) -> Result<Announce, String> {
    match text {
        "auto" => return Ok(Announce::Auto),
        "container" => return Ok(Announce::Container),
        _ => {}
    }
    let loopback = |what: &str| {
        format!(
            "is `{what}`, a loopback address: the nodes reach each other through the announced address, and in a container loopback is the container itself, so replication and Sentinel would break; announce an address of this host that containers and clients reach (e.g. the one `cluster.bind` publishes on), or `auto`"
        )
    };
    if let Ok(ip) = text.parse::<IpAddr>() {
        return if ip.is_loopback() {
            Err(loopback(text))
        } else if ip.is_unspecified() || ip.is_multicast() || ip == IpAddr::V4(Ipv4Addr::BROADCAST)
        {
            Err(format!(
                "is `{text}`, which no client can connect to; announce one address of this host (e.g. `192.168.1.20`), a host name, `auto` or `container`"
            ))
        } else {
            Ok(Announce::Host(text.to_string()))
        };
    }
    if text.eq_ignore_ascii_case("localhost") || text.to_ascii_lowercase().ends_with(".localhost") {
        return Err(loopback(text));
    }
    if is_host_name(text) {
        Ok(Announce::Host(text.to_string()))
    } else {
        Err(format!(
            "is `{}`, neither `auto`, `container`, an IP address nor a host name (letters, digits and `-` in dot-separated labels of at most 63 characters)",
            one_line(text)
        ))
    }
}

/// RFC 1123 host name: dot-separated labels of letters, digits and `-`, not starting or
/// ending with `-`, at most 253 characters; not all digits (that would be a bad IP).
fn is_host_name(s: &str) -> bool {
    let label = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(label)
        && !s.chars().all(|ch| ch.is_ascii_digit() || ch == '.')
}

fn is_dns_label(s: &str, max: usize) -> bool {
    let alnum = |ch: char| ch.is_ascii_lowercase() || ch.is_ascii_digit();
    !s.is_empty()
        && s.len() <= max
        && s.chars().all(|ch| alnum(ch) || ch == '-')
        && s.starts_with(alnum)
        && s.ends_with(alnum)
}

fn is_env_name(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with(|ch: char| ch.is_ascii_digit())
        && s.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '_')
}

/// What is wrong with a password's text. Never includes the password itself.
pub fn password_problem(password: &str) -> Option<&'static str> {
    if password.is_empty() {
        Some("is empty; set a password, or remove the `[auth]` keys so that `up` generates one")
    } else if password
        .chars()
        .any(|ch| ch.is_whitespace() || ch == '"' || ch.is_control())
    {
        Some(
            "contains whitespace, `\"` or a control character, which cannot be written into redis.conf; choose a password without them",
        )
    } else {
        None
    }
}

fn image_problem(image: &str) -> Option<String> {
    if image.is_empty() {
        Some("is empty; name an image like `redis:7.2`".into())
    } else if image
        .chars()
        .any(|ch| ch.is_whitespace() || ch.is_control())
    {
        Some(format!(
            "is `{}`, not an image reference; write it like `redis:7.2`",
            one_line(image)
        ))
    } else {
        None
    }
}

/// `"SECONDS CHANGES"`: two positive integers redis accepts (it reads them as `int`).
fn is_save_rule(entry: &str) -> bool {
    let parts: Vec<&str> = entry.split_whitespace().collect();
    parts.len() == 2
        && parts.iter().all(|p| {
            p.chars().all(|ch| ch.is_ascii_digit()) && p.parse::<i32>().is_ok_and(|n| n > 0)
        })
}

/// Bytes in a redis size like `64mb` (digits, then k/kb/m/mb/g/gb, any case).
pub fn redis_size(text: &str) -> Result<u64, String> {
    const EXPECTED: &str =
        "write digits with an optional unit `k`, `kb`, `m`, `mb`, `g` or `gb`, like `64mb`";
    let digits_end = text
        .find(|ch: char| !ch.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(digits_end);
    if digits.is_empty() {
        return Err(format!("not a redis size; {EXPECTED}"));
    }
    let multiplier: u64 = match unit.to_ascii_lowercase().as_str() {
        "" => 1,
        "k" => 1000,
        "kb" => 1024,
        "m" => 1000 * 1000,
        "mb" => 1024 * 1024,
        "g" => 1000 * 1000 * 1000,
        "gb" => 1024 * 1024 * 1024,
        _ => return Err(format!("not a redis size; {EXPECTED}")),
    };
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(multiplier))
        .filter(|n| i64::try_from(*n).is_ok())
        .ok_or_else(|| "too large for redis; use a size below 8 exabytes, like `64mb`".to_string())
}

/// A Kubernetes quantity for a volume: a positive number with an optional suffix.
fn kubernetes_quantity(text: &str) -> Result<(), String> {
    const EXPECTED: &str = "write a kubernetes quantity like `1Gi`, `500Mi` or `10G`";
    let number_end = text
        .find(|ch: char| !(ch.is_ascii_digit() || ch == '.'))
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(number_end);
    let well_formed = !number.is_empty()
        && !number.starts_with('.')
        && !number.ends_with('.')
        && number.matches('.').count() <= 1
        && matches!(
            suffix,
            "" | "Ki" | "Mi" | "Gi" | "Ti" | "Pi" | "Ei" | "k" | "M" | "G" | "T" | "P" | "E"
        );
    if !well_formed {
        return Err(format!("not a kubernetes quantity; {EXPECTED}"));
    }
    // A quantity past 2^63 bytes does not fit Kubernetes' int64 either.
    if number.len() > 18 {
        return Err(format!("too large; {EXPECTED}"));
    }
    if number.chars().all(|ch| ch == '0' || ch == '.') {
        return Err(format!("a volume needs a positive size; {EXPECTED}"));
    }
    Ok(())
}

/// A value quoted in a message must not break the message's one line.
pub(super) fn one_line(s: &str) -> String {
    let mut out: String = s
        .chars()
        .take(60)
        .collect::<String>()
        .escape_debug()
        .to_string();
    if s.chars().count() > 60 {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redis_sizes() {
        assert_eq!(redis_size("64mb"), Ok(64 * 1024 * 1024));
        assert_eq!(redis_size("1G"), Ok(1_000_000_000));
        assert_eq!(redis_size("100"), Ok(100));
        assert_eq!(redis_size("1KB"), Ok(1024));
        assert!(redis_size("").is_err());
        assert!(redis_size("mb").is_err());
        assert!(redis_size("64 mb").is_err());
        assert!(redis_size("1tb").is_err());
        assert!(redis_size("-1").is_err());
        assert!(
            redis_size("99999999999999gb")
                .unwrap_err()
                .starts_with("too large")
        );
    }

    #[test]
    fn kubernetes_quantities() {
        for ok in ["1Gi", "500Mi", "10G", "1.5Gi", "1000"] {
            assert_eq!(kubernetes_quantity(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "1GB",
            "Gi",
            "1 Gi",
            "0Gi",
            ".5Gi",
            "1..5Gi",
            "-1Gi",
            "9999999999999999999999Ei",
        ] {
            assert!(kubernetes_quantity(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn save_rules() {
        assert!(is_save_rule("900 1"));
        assert!(is_save_rule(" 60   10000 "));
        for bad in [
            "",
            "900",
            "900 0",
            "0 1",
            "a b",
            "900 1 2",
            "-1 1",
            "+5 1",
            "99999999999 1",
        ] {
            assert!(!is_save_rule(bad), "{bad}");
        }
    }

    #[test]
    fn names() {
        assert_eq!(name_problem("demo"), None);
        assert_eq!(name_problem("a"), None);
        assert_eq!(name_problem("my-group-2"), None);
        assert!(name_problem("-x").is_some());
        assert!(name_problem("x-").is_some());
        assert!(name_problem(&"a".repeat(41)).is_some());
        assert_eq!(name_problem(&"a".repeat(40)), None);
        assert_eq!(suggest_name("My_App"), "my-app");
        assert_eq!(suggest_name("__"), "");
    }

    #[test]
    fn one_line_escapes_and_truncates() {
        assert_eq!(one_line("a\nb"), "a\\nb");
        assert_eq!(one_line(&"x".repeat(61)), format!("{}…", "x".repeat(60)));
    }
}
