//! Rendering: checked topology + layout -> redis.conf / sentinel.conf text.
//! Pure: no I/O; templates are embedded in the binary.
//!
//! Each template has a serializable context ([`RedisConf`], [`SentinelConf`]) that carries
//! addresses as strings: the Docker group passes fixed IPs (built by `for_node`), a
//! Kubernetes renderer can build the same contexts with DNS names and `resolve_hostnames`.
//! Templates render with strict undefined behaviour, so a typo in a template is an error
//! that names the template and line, never an empty value in a config file.

pub mod compose;
pub mod k8s;
pub mod names;
#[cfg(test)]
pub(crate) mod tests;

use std::net::Ipv4Addr;

use anyhow::Context as _;
use minijinja::value::Serde;
use minijinja::{Environment, UndefinedBehavior};

use crate::acl::AclConf;
use crate::secret::MASK;
use crate::topology::layout::{REDIS_PORT, SENTINEL_PORT};
use crate::topology::{Layout, Node, Persistence, Topology};

/// Template name (as errors show it) and source of every data node's config.
pub const REDIS_TEMPLATE: (&str, &str) = (
    "redis.conf.j2",
    include_str!("../../templates/redis.conf.j2"),
);
/// Template name and source of every sentinel's config.
pub const SENTINEL_TEMPLATE: (&str, &str) = (
    "sentinel.conf.j2",
    include_str!("../../templates/sentinel.conf.j2"),
);

/// Where the data volume is mounted in a data node's container: the rendered `dir`.
pub const DATA_DIR: &str = "/data";
/// Directory in the container that holds the node's config file. Sentinel (and
/// `CONFIG REWRITE` after a failover) replaces the file by rename, so the directory must be
/// writable by the redis user, and a bind-mounted single file would break that.
pub const CONFIG_DIR: &str = "/etc/redis";

/// Every IPv4 address: the group network is IPv4 only.
pub const BIND_IPV4: &str = "0.0.0.0";
/// Every IPv4 address and, where the pod has one, every IPv6 address (`-`: optional), so
/// that IPv6-only and dual-stack clusters reach the pod too.
pub const BIND_DUAL_STACK: &str = "* -::*";

/// With `tls.plaintext_port`, the plaintext port of a data node inside its container (or
/// pod), next to TLS on [`REDIS_PORT`]. Not published: reachable on the group network only.
pub const REDIS_PLAINTEXT_PORT: u16 = 6380;
/// The same for a sentinel, next to TLS on [`SENTINEL_PORT`].
pub const SENTINEL_PLAINTEXT_PORT: u16 = 26380;

/// The `tls-*` directives of a node: where its files are, and what it asks of clients.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TlsConf {
    pub ca_file: String,
    pub cert_file: String,
    pub key_file: String,
    /// `tls-auth-clients`: `no`, `optional` or `yes`.
    pub auth_clients: &'static str,
    /// Present a certificate when replicating or monitoring (the other end asks for one).
    pub client_cert: bool,
    /// `port`: 0 (TLS only), or the plaintext port kept next to TLS.
    pub plaintext_port: u16,
}

impl TlsConf {
    /// `None` with TLS off; files in `dir` under the names `tls` uses for them.
    pub fn for_node(topology: &Topology, node_is_data: bool, dir: &str) -> Option<TlsConf> {
        let spec = &topology.tls;
        spec.enabled.then(|| TlsConf {
            ca_file: format!("{dir}/{}", crate::tls::CA_FILE),
            cert_file: format!("{dir}/{}", crate::tls::CERT_FILE),
            key_file: format!("{dir}/{}", crate::tls::KEY_FILE),
            auth_clients: spec.client_auth.as_str(),
            client_cert: spec.client_auth.presents_certificate(),
            plaintext_port: match (spec.plaintext_port, node_is_data) {
                (false, _) => 0,
                (true, true) => REDIS_PLAINTEXT_PORT,
                (true, false) => SENTINEL_PLAINTEXT_PORT,
            },
        })
    }
}

/// An address another node reaches a node at: an IP on Docker, a DNS name on Kubernetes.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
}

impl Endpoint {
    pub fn new(host: impl ToString, port: u16) -> Endpoint {
        Endpoint {
            host: host.to_string(),
            port,
        }
    }
}

/// One `redis.extra` directive, written as `key value`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Directive {
    pub key: String,
    pub value: String,
}

/// Everything `redis.conf.j2` reads. (No derived `Debug`: it holds the password.)
#[derive(Clone, serde::Serialize)]
pub struct RedisConf<'a> {
    /// For the header comment only.
    pub node_name: String,
    /// `bind`: [`BIND_IPV4`] in a container, [`BIND_DUAL_STACK`] in a pod.
    pub bind: &'static str,
    /// Port redis listens on inside its container (or pod).
    pub port: u16,
    /// Working directory: where RDB and AOF files go.
    pub dir: String,
    /// Written verbatim as `requirepass` and `masterauth`; `secret::MASK` for display.
    pub password: &'a str,
    /// `replica-announce-ip` / `-port`: the address Sentinel should know this node by.
    pub announce: Endpoint,
    /// The current master, or `None` when this node is the master.
    pub replicaof: Option<Endpoint>,
    pub persistence: &'a Persistence,
    /// `[replication]`: `min-replicas-to-write` / `-max-lag`, written when turned on.
    pub replication: &'a crate::topology::Replication,
    /// `redis.extra`, in the topology's key order, written last.
    pub extra: Vec<Directive>,
    /// `[acl]`: `user` lines, `masteruser`; `None` without `[acl]`.
    pub acl: Option<AclConf>,
    /// `[tls]`: `None` = plaintext on `port`.
    pub tls: Option<TlsConf>,
}

impl<'a> RedisConf<'a> {
    /// The context for a data node of the Docker group, whose addresses are fixed IPs.
    pub fn for_node(
        topology: &'a Topology,
        layout: &Layout,
        node: &Node,
        master_ip: Ipv4Addr,
        password: &'a str,
    ) -> RedisConf<'a> {
        RedisConf {
            node_name: node.name.clone(),
            bind: BIND_IPV4,
            port: REDIS_PORT,
            dir: DATA_DIR.to_string(),
            password,
            announce: advertised(layout, node),
            replicaof: (node.ip != master_ip).then(|| advertised_ip(layout, master_ip, REDIS_PORT)),
            persistence: &topology.persistence,
            replication: &topology.replication,
            extra: topology
                .redis
                .extra
                .iter()
                .map(|(key, value)| Directive {
                    key: key.clone(),
                    value: value.clone(),
                })
                .collect(),
            acl: AclConf::new(topology, password),
            tls: TlsConf::for_node(topology, true, CONFIG_DIR),
        }
    }

    pub fn render(&self) -> anyhow::Result<String> {
        render_template(REDIS_TEMPLATE, self)
    }
}

/// A seeded `sentinel known-sentinel` entry.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct KnownSentinel {
    pub host: String,
    pub port: u16,
    /// The other sentinel's fixed `sentinel myid`.
    pub myid: String,
}

/// Everything `sentinel.conf.j2` reads.
#[derive(Clone, serde::Serialize)]
pub struct SentinelConf<'a> {
    /// For the header comment only.
    pub node_name: String,
    /// `bind`: [`BIND_IPV4`] in a container, [`BIND_DUAL_STACK`] in a pod.
    pub bind: &'static str,
    pub port: u16,
    /// 40 hex characters, fixed per node (see `Node::sentinel_myid`).
    pub myid: String,
    /// `sentinel announce-ip` / `-port`.
    pub announce: Endpoint,
    /// Written verbatim as `requirepass`, `sentinel-pass` and `auth-pass`.
    pub password: &'a str,
    pub master_name: &'a str,
    /// The current master.
    pub master: Endpoint,
    pub quorum: u8,
    pub down_after_ms: u64,
    pub failover_timeout_ms: u64,
    pub parallel_syncs: u32,
    /// Every data node but the current master.
    pub known_replicas: Vec<Endpoint>,
    /// Every sentinel but this one.
    pub known_sentinels: Vec<KnownSentinel>,
    /// Addresses are host names (Kubernetes): Sentinel must resolve them, and redis 7.0
    /// refuses a `sentinel monitor` naming a host without this.
    pub resolve_hostnames: bool,
    /// `[acl]`: `sentinel auth-user`, and the admin user; `None` without `[acl]`.
    pub acl: Option<AclConf>,
    /// `[tls]`: `None` = plaintext on `port`.
    pub tls: Option<TlsConf>,
}

impl<'a> SentinelConf<'a> {
    /// The context for a sentinel of the Docker group, whose addresses are fixed IPs.
    pub fn for_node(
        topology: &'a Topology,
        layout: &Layout,
        node: &Node,
        master_ip: Ipv4Addr,
        password: &'a str,
    ) -> SentinelConf<'a> {
        let spec = &topology.sentinel;
        SentinelConf {
            node_name: node.name.clone(),
            bind: BIND_IPV4,
            port: SENTINEL_PORT,
            myid: node.sentinel_myid(),
            announce: advertised(layout, node),
            password,
            master_name: &spec.master_name,
            master: advertised_ip(layout, master_ip, REDIS_PORT),
            quorum: spec.quorum,
            down_after_ms: spec.down_after_ms,
            failover_timeout_ms: spec.failover_timeout_ms,
            parallel_syncs: spec.parallel_syncs,
            known_replicas: layout
                .data_nodes()
                .filter(|n| n.ip != master_ip)
                .map(|n| advertised(layout, n))
                .collect(),
            known_sentinels: layout
                .sentinels()
                .filter(|n| n.name != node.name)
                .map(|n| {
                    let Endpoint { host, port } = advertised(layout, n);
                    KnownSentinel {
                        host,
                        port,
                        myid: n.sentinel_myid(),
                    }
                })
                .collect(),
            // Sentinel 7.0 refuses a `sentinel monitor` naming a host without it.
            resolve_hostnames: layout
                .announce
                .as_ref()
                .is_some_and(|host| host.parse::<std::net::IpAddr>().is_err()),
            acl: AclConf::new(topology, password),
            tls: TlsConf::for_node(topology, false, CONFIG_DIR),
        }
    }

    pub fn render(&self) -> anyhow::Result<String> {
        render_template(SENTINEL_TEMPLATE, self)
    }
}

/// The address Redis and Sentinel hand out for `node` (see `Layout::advertised`).
fn advertised(layout: &Layout, node: &Node) -> Endpoint {
    let (host, port) = layout.advertised(node);
    Endpoint { host, port }
}

/// The address handed out for the node whose container address is `ip`; a node the layout
/// no longer has (the master of a group being scaled down) by its container address.
fn advertised_ip(layout: &Layout, ip: Ipv4Addr, container_port: u16) -> Endpoint {
    match layout.node_by_ip(ip) {
        Some(node) => advertised(layout, node),
        None => Endpoint::new(ip, container_port),
    }
}

/// The config file a node runs with: `redis.conf` for data nodes, `sentinel.conf` for
/// sentinels. `master_ip` is the current master (the created master on a fresh group,
/// whatever the sentinels say after a failover). `password` is written verbatim: pass
/// `secret::MASK` for anything a user will see.
pub fn node_config(
    topology: &Topology,
    layout: &Layout,
    node: &Node,
    master_ip: Ipv4Addr,
    password: &str,
) -> anyhow::Result<String> {
    let text = if node.role.is_data() {
        RedisConf::for_node(topology, layout, node, master_ip, password).render()
    } else {
        SentinelConf::for_node(topology, layout, node, master_ip, password).render()
    };
    text.with_context(|| format!("cannot render the config of `{}`", node.name))
}

/// Every node's config for a fresh group, whose master is the created master, in layout order.
pub fn render_all(
    topology: &Topology,
    layout: &Layout,
    password: &str,
) -> anyhow::Result<Vec<(Node, String)>> {
    let master_ip = layout.master().ip;
    layout
        .nodes
        .iter()
        .map(|node| {
            let text = node_config(topology, layout, node, master_ip, password)?;
            Ok((node.clone(), text))
        })
        .collect()
}

/// File name of a node's config inside its container and in `render --out`.
pub fn config_file_name(node: &Node) -> &'static str {
    if node.role.is_data() {
        "redis.conf"
    } else {
        "sentinel.conf"
    }
}

/// `<node name>/<file name>`: where `render --out` puts a node's config, relative to the
/// output directory, and the header `render` prints above it.
pub fn config_path(node: &Node) -> String {
    format!("{}/{}", node.name, config_file_name(node))
}

/// Render one template with strict undefined behaviour.
fn render_template(
    (name, source): (&'static str, &'static str),
    context: &impl serde::Serialize,
) -> anyhow::Result<String> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    // Config files, not HTML: nothing is escaped except by the explicit `quote` filter.
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
    env.set_syntax(
        minijinja::syntax::SyntaxConfig::builder()
            .trim_blocks(true)
            .lstrip_blocks(true)
            .keep_trailing_newline(true)
            .build()
            .context("invalid template syntax settings")?,
    );
    env.add_filter("quote", quote);
    env.add_filter("yesno", yesno);
    env.add_template(name, source)
        .with_context(|| format!("cannot parse template `{name}`"))?;
    let template = env.get_template(name)?;
    // Plain `{e}` (template and line), never `{e:#}`: minijinja's alternate form lists
    // the values of the variables the template referenced, the password among them.
    template
        .render(Serde(context))
        .map_err(|e| anyhow::anyhow!("cannot render template `{name}`: {e}"))
}

/// A Redis config argument in double quotes. Redis unescapes `\\`, `\"`, `\n`, `\xHH`,
/// etc. inside double quotes, so a backslash or quote in the value must be escaped too.
fn quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_ascii_control() => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Redis's booleans.
fn yesno(value: bool) -> &'static str {
    if value { "yes" } else { "no" }
}

impl std::fmt::Debug for RedisConf<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RedisConf({}, password: {MASK})", self.node_name)
    }
}

impl std::fmt::Debug for SentinelConf<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SentinelConf({}, password: {MASK})", self.node_name)
    }
}
