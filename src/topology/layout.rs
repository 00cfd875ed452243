//! The layout: which nodes a topology makes, their names, fixed addresses and ports.
//!
//! Pure and deterministic: the same topology and subnet always give the same layout, so
//! `render`, `up`, `status` and `down` agree on names without storing anything.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::str::FromStr;

use sha2::{Digest, Sha256};

use super::{Announce, Topology};

/// Port every redis data node listens on inside its container.
pub const REDIS_PORT: u16 = 6379;
/// Port every sentinel listens on inside its container.
pub const SENTINEL_PORT: u16 = 26379;

/// The role a node was created with. After a failover the node that was created as
/// `Master` may be a replica: ask the node (or the sentinels), never trust this for that.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Master,
    Replica,
    Sentinel,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Master => "master",
            Role::Replica => "replica",
            Role::Sentinel => "sentinel",
        }
    }
    pub fn is_data(self) -> bool {
        !matches!(self, Role::Sentinel)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The group network's name: the one place it is derived from the group's name.
pub fn network_name(cluster: &str) -> String {
    format!("{cluster}-net")
}

/// An IPv4 /24 for the group's bridge network. A /24 holds the largest group
/// (1 + 16 replicas + 9 sentinels) with room to spare, and fixed addresses inside it
/// keep every node's address stable across container restarts and failovers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub struct Subnet(pub [u8; 3]);

impl Subnet {
    /// A subnet derived from the cluster name, in 172.28.0.0/14's /24s, so that two groups
    /// with different names usually get different subnets without coordination.
    /// `up` moves on to the next free one when this one is taken.
    pub fn derived(name: &str) -> Subnet {
        let digest = Sha256::digest(name.as_bytes());
        let n = u16::from_be_bytes([digest[0], digest[1]]) as usize % Self::CANDIDATES;
        Self::candidate(n)
    }

    /// How many /24s `candidate` can return (172.28.0.0 .. 172.31.255.0).
    pub const CANDIDATES: usize = 4 * 256;

    pub fn candidate(n: usize) -> Subnet {
        let n = n % Self::CANDIDATES;
        Subnet([172, 28 + (n / 256) as u8, (n % 256) as u8])
    }

    /// Index of this subnet in the candidate list, if it is one.
    pub fn candidate_index(self) -> Option<usize> {
        let [a, b, c] = self.0;
        (a == 172 && (28..=31).contains(&b)).then(|| (b - 28) as usize * 256 + c as usize)
    }

    pub fn host(self, last: u8) -> Ipv4Addr {
        let [a, b, c] = self.0;
        Ipv4Addr::new(a, b, c, last)
    }

    pub fn gateway(self) -> Ipv4Addr {
        self.host(1)
    }

    pub fn contains(self, ip: Ipv4Addr) -> bool {
        ip.octets()[..3] == self.0
    }
}

/// An IPv4 network as (address, prefix length), for overlap checks.
pub type Cidr = (Ipv4Addr, u8);

/// `10.0.0.0/8` -> (10.0.0.0, 8); `None` for IPv6 or garbage.
pub fn parse_cidr(text: &str) -> Option<Cidr> {
    let (addr, prefix) = text.split_once('/')?;
    let prefix: u8 = prefix.parse().ok()?;
    (prefix <= 32).then_some(())?;
    Some((addr.parse().ok()?, prefix))
}

pub fn overlaps(a: Cidr, b: Cidr) -> bool {
    let mask = |p: u8| {
        if p == 0 {
            0
        } else {
            u32::MAX << (32 - u32::from(p))
        }
    };
    let shorter = a.1.min(b.1);
    (u32::from(a.0) & mask(shorter)) == (u32::from(b.0) & mask(shorter))
}

impl Subnet {
    pub fn cidr(self) -> Cidr {
        (self.host(0), 24)
    }

    pub fn overlaps_any(self, used: &[Cidr]) -> bool {
        used.iter().any(|u| overlaps(self.cidr(), *u))
    }

    /// The first candidate from `preferred` on that overlaps nothing in `used`.
    pub fn first_free(preferred: Subnet, used: &[Cidr]) -> Option<Subnet> {
        let start = preferred.candidate_index().unwrap_or(0);
        (0..Self::CANDIDATES)
            .map(|i| Self::candidate(start + i))
            .find(|s| !s.overlaps_any(used))
    }
}

impl fmt::Display for Subnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c] = self.0;
        write!(f, "{a}.{b}.{c}.0/24")
    }
}

impl FromStr for Subnet {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (addr, prefix) = s
            .split_once('/')
            .ok_or_else(|| format!("`{s}` is not a CIDR like `172.28.5.0/24`"))?;
        if prefix != "24" {
            return Err(format!(
                "`{s}` must be a /24 (rcluster gives each node a fixed address in it)"
            ));
        }
        let ip: Ipv4Addr = addr
            .parse()
            .map_err(|_| format!("`{addr}` is not an IPv4 address"))?;
        let [a, b, c, d] = ip.octets();
        if d != 0 {
            return Err(format!(
                "`{s}` has host bits set; did you mean `{a}.{b}.{c}.0/24`?"
            ));
        }
        Ok(Subnet([a, b, c]))
    }
}

/// One container of the group.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Node {
    /// `master`, `replica-1`, `sentinel-2`: the node's name inside the group (label value).
    pub key: String,
    /// `<cluster>-<key>`: container name and hostname.
    pub name: String,
    pub role: Role,
    /// 1-based for replicas and sentinels, 0 for the master.
    pub index: u8,
    /// Fixed address on the group network; what Sentinel knows the node by.
    pub ip: Ipv4Addr,
    /// Port inside the container.
    pub port: u16,
    /// Host port to publish on `cluster.bind`; 0 = the engine picks.
    pub host_port: u16,
    /// Where rcluster itself connects to the node: its container address, or the published
    /// port where this machine cannot reach container addresses (see [`Layout::reached_at`]).
    #[serde(skip)]
    pub reach: SocketAddr,
}

impl Node {
    /// Named data volume for redis nodes; sentinels keep no data.
    pub fn volume(&self) -> Option<String> {
        self.role.is_data().then(|| format!("{}-data", self.name))
    }

    /// Sentinel's 40-hex run id, fixed per node so that seeded `known-sentinel` lines
    /// in the other sentinels' configs match the id this sentinel really has.
    pub fn sentinel_myid(&self) -> String {
        let digest = Sha256::digest(format!("rcluster-sentinel:{}", self.name).as_bytes());
        hex::encode(digest)[..40].to_string()
    }
}

/// Every node of a topology, in creation order: master, replicas, sentinels.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Layout {
    pub cluster: String,
    pub subnet: Subnet,
    pub nodes: Vec<Node>,
    /// The host every node is announced at (`<host>:<published port>`), or `None` for the
    /// nodes' container addresses. `cluster.announce = "auto"` is decided per engine by the
    /// commands ([`Layout::announcing`]); here it starts as container addresses.
    pub announce: Option<String>,
}

impl Layout {
    pub fn new(topology: &Topology, subnet: Subnet) -> Layout {
        let name = &topology.cluster.name;
        let mut nodes = vec![Node {
            key: "master".into(),
            name: format!("{name}-master"),
            role: Role::Master,
            index: 0,
            ip: subnet.host(10),
            port: REDIS_PORT,
            host_port: topology.master.port,
            reach: SocketAddr::from((subnet.host(10), REDIS_PORT)),
        }];
        for i in 1..=topology.replicas.count {
            nodes.push(Node {
                key: format!("replica-{i}"),
                name: format!("{name}-replica-{i}"),
                role: Role::Replica,
                index: i,
                ip: subnet.host(10 + i),
                port: REDIS_PORT,
                host_port: offset_port(topology.replicas.port, i),
                reach: SocketAddr::from((subnet.host(10 + i), REDIS_PORT)),
            });
        }
        for i in 1..=topology.sentinel.count {
            nodes.push(Node {
                key: format!("sentinel-{i}"),
                name: format!("{name}-sentinel-{i}"),
                role: Role::Sentinel,
                index: i,
                ip: subnet.host(100 + i),
                port: SENTINEL_PORT,
                host_port: offset_port(topology.sentinel.port, i),
                reach: SocketAddr::from((subnet.host(100 + i), SENTINEL_PORT)),
            });
        }
        let announce = match &topology.cluster.announce {
            Announce::Host(host) => Some(host.clone()),
            Announce::Auto | Announce::Container => None,
        };
        Layout {
            cluster: name.clone(),
            subnet,
            nodes,
            announce,
        }
    }

    /// The same layout with every node announced at `host` (`None`: container addresses).
    /// Announcing needs every published port fixed: validation refuses port 0 with an
    /// explicit address, and `Reach::decide` with the one `auto` would pick.
    pub fn announcing(mut self, host: Option<String>) -> Layout {
        self.announce = host;
        self
    }

    /// The same layout with rcluster's own connections going to `ip:<published port>`
    /// instead of container addresses.
    pub fn reached_at(mut self, ip: IpAddr) -> Layout {
        for node in &mut self.nodes {
            node.reach = SocketAddr::new(ip, node.host_port);
        }
        self
    }

    /// The address Redis and Sentinel hand out for `node`: `(announce, published port)`, or
    /// its container address and port.
    pub fn advertised(&self, node: &Node) -> (String, u16) {
        match &self.announce {
            Some(host) => (host.clone(), node.host_port),
            None => (node.ip.to_string(), node.port),
        }
    }

    /// The container address (rcluster's identity for a node) of what Redis or Sentinel
    /// names as `host:port`. With container addresses that is the address itself, whether
    /// or not the layout has such a node (a scale-down leaves nodes the topology no longer
    /// has); announced, `host:port` must be a node of this layout.
    pub fn ip_of(&self, host: &str, port: u16) -> Option<Ipv4Addr> {
        match &self.announce {
            None => host.parse::<Ipv4Addr>().ok(),
            // A group created before the announce changed still names container addresses
            // until `up` renders its configs again: recognise those too.
            Some(announced) => self
                .nodes
                .iter()
                .find(|n| host.eq_ignore_ascii_case(announced) && port == n.host_port)
                .map(|n| n.ip)
                .or_else(|| {
                    host.parse::<Ipv4Addr>()
                        .ok()
                        .filter(|ip| self.subnet.contains(*ip))
                }),
        }
    }

    /// The node of this layout that Redis or Sentinel names as `host:port`.
    pub fn node_by_addr(&self, host: &str, port: u16) -> Option<&Node> {
        self.ip_of(host, port).and_then(|ip| self.node_by_ip(ip))
    }

    pub fn network(&self) -> String {
        network_name(&self.cluster)
    }

    pub fn master(&self) -> &Node {
        &self.nodes[0]
    }

    pub fn data_nodes(&self) -> impl Iterator<Item = &Node> {
        self.nodes.iter().filter(|n| n.role.is_data())
    }

    pub fn replicas(&self) -> impl Iterator<Item = &Node> {
        self.nodes.iter().filter(|n| n.role == Role::Replica)
    }

    pub fn sentinels(&self) -> impl Iterator<Item = &Node> {
        self.nodes.iter().filter(|n| n.role == Role::Sentinel)
    }

    pub fn node(&self, key_or_name: &str) -> Option<&Node> {
        self.nodes
            .iter()
            .find(|n| n.key == key_or_name || n.name == key_or_name)
    }

    pub fn node_by_ip(&self, ip: Ipv4Addr) -> Option<&Node> {
        self.nodes.iter().find(|n| n.ip == ip)
    }
}

/// First port + (i - 1), keeping 0 as "engine picks" for every node.
fn offset_port(first: u16, i: u8) -> u16 {
    if first == 0 {
        0
    } else {
        first + u16::from(i) - 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnets_parse_and_print() {
        let s: Subnet = "172.28.5.0/24".parse().unwrap();
        assert_eq!(s.to_string(), "172.28.5.0/24");
        assert_eq!(s.gateway(), Ipv4Addr::new(172, 28, 5, 1));
        assert!("172.28.5.0/16".parse::<Subnet>().is_err());
        assert!(
            "172.28.5.9/24"
                .parse::<Subnet>()
                .unwrap_err()
                .contains("172.28.5.0/24")
        );
    }

    #[test]
    fn derived_subnets_are_stable_candidates() {
        let a = Subnet::derived("demo");
        assert_eq!(a, Subnet::derived("demo"));
        assert_eq!(Subnet::candidate(a.candidate_index().unwrap()), a);
    }

    #[test]
    fn announced_addresses_map_back_to_nodes_by_host_and_port() {
        let mut topology = crate::render::tests::default_topology();
        topology.cluster.bind = "0.0.0.0".parse().unwrap();
        let subnet = Subnet([172, 28, 7]);
        let plain = Layout::new(&topology, subnet);
        assert_eq!(
            plain.advertised(plain.master()),
            ("172.28.7.10".into(), 6379)
        );
        assert_eq!(plain.ip_of("172.28.7.12", 6379), Some(subnet.host(12)));
        assert_eq!(
            plain.node_by_addr("172.28.7.12", 6379).unwrap().key,
            "replica-2"
        );

        topology.cluster.announce = Announce::Host("Redis.example.com".into());
        let layout = Layout::new(&topology, subnet);
        let sentinel = layout.node("sentinel-2").unwrap();
        assert_eq!(
            layout.advertised(sentinel),
            ("Redis.example.com".into(), 26380)
        );
        // Every node shares the host: the port tells them apart (host names ignore case).
        assert_eq!(
            layout.node_by_addr("redis.example.com", 6381).unwrap().key,
            "replica-2"
        );
        assert_eq!(
            layout.node_by_addr("redis.example.com", 26381).unwrap().key,
            "sentinel-3"
        );
        assert!(layout.node_by_addr("redis.example.com", 7000).is_none());
        assert!(layout.node_by_addr("other.example.com", 6379).is_none());
        // A group still running with container addresses is recognised until `up` renders
        // its configs again; anything outside the group's subnet is not a node.
        assert_eq!(layout.ip_of("172.28.7.11", 6379), Some(subnet.host(11)));
        assert_eq!(layout.ip_of("10.1.1.11", 6379), None);
    }

    #[test]
    fn reached_at_moves_only_where_rcluster_connects() {
        let topology = crate::render::tests::default_topology();
        let layout = Layout::new(&topology, Subnet([172, 28, 7]));
        assert_eq!(layout.master().reach, "172.28.7.10:6379".parse().unwrap());
        let via = layout.clone().reached_at("10.253.0.1".parse().unwrap());
        assert_eq!(
            via.node("sentinel-3").unwrap().reach,
            "10.253.0.1:26381".parse().unwrap()
        );
        assert_eq!(
            via.advertised(via.master()),
            layout.advertised(layout.master())
        );
    }

    #[test]
    fn first_free_skips_overlapping_networks() {
        let preferred = Subnet::candidate(0);
        let used = vec![
            parse_cidr("172.28.0.0/23").unwrap(),
            parse_cidr("10.0.0.0/8").unwrap(),
        ];
        assert_eq!(
            Subnet::first_free(preferred, &used),
            Some(Subnet::candidate(2))
        );
        let everything = vec![parse_cidr("172.16.0.0/12").unwrap()];
        assert_eq!(Subnet::first_free(preferred, &everything), None);
        assert!(parse_cidr("fd00::/64").is_none());
    }
}
