//! Reach: the one decision of which addresses the group hands out (`cluster.announce`) and
//! which ones rcluster itself connects to, per engine.
//!
//! On a rootful Linux engine this machine reaches the nodes' container addresses, and they
//! are what Sentinel hands out (the fast, default path). Where it cannot (rootless engines,
//! Docker Desktop, a remote engine, or a network namespace that only reaches the engine's
//! host), rcluster talks to the published ports, and `auto` announces
//! `<host>:<published port>` so that clients there can follow a failover too.
//! Pure: the caller reads the routes and asks the engine (only when the routes say no).

use std::fmt;
use std::net::IpAddr;

use crate::docker::platform::Platform;
use crate::topology::{Announce, Layout, Topology};

/// How rcluster reaches the nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Path {
    /// Each node's address on the group network.
    Container,
    /// `<via>:<published port>`.
    Published,
}

/// The decision, as `status` reports it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Reach {
    pub path: Path,
    /// The host every node is announced at, or `None` for container addresses.
    pub announce: Option<String>,
    /// Where rcluster connects on the published path (a host name is resolved by the caller).
    pub via: Option<String>,
}

impl Reach {
    /// Today's behaviour: container addresses, handed out and used.
    pub fn container() -> Reach {
        Reach {
            path: Path::Container,
            announce: None,
            via: None,
        }
    }

    /// Decide from the topology, whether this network namespace routes to the engine's
    /// bridge networks (`None`: nothing to look at), and the engine's platform when it was
    /// asked (`None`: not asked, because the routes said yes).
    pub fn decide(
        topology: &Topology,
        routed: Option<bool>,
        platform: Option<&Platform>,
    ) -> Result<Reach, String> {
        let bind = topology.cluster.bind;
        let reachable =
            routed.unwrap_or(true) && platform.is_none_or(Platform::container_addresses_reachable);
        let ports_fixed =
            topology.master.port != 0 && topology.replicas.port != 0 && topology.sentinel.port != 0;
        let auto_host = || {
            platform
                .and_then(Platform::auto_announce_host)
                .or_else(|| usable_bind(bind).map(|ip| ip.to_string()))
        };
        let why = match platform {
            Some(p) if !p.container_addresses_reachable() => {
                format!("the engine ({}) keeps them out of reach", p.describe())
            }
            _ => "this network namespace has no route to the engine's bridge networks".into(),
        };
        match &topology.cluster.announce {
            Announce::Container if reachable => Ok(Reach::container()),
            Announce::Container => {
                let suggestion = match auto_host() {
                    Some(host) => format!("set `cluster.announce = \"{host}\"` (or `\"auto\"`)"),
                    None => "set `cluster.bind` to an address of the engine's host that this machine reaches (or `0.0.0.0`) and `cluster.announce` to that address (or `\"auto\"`)".to_string(),
                };
                Err(format!(
                    "`cluster.announce = \"container\"` hands out the nodes' container addresses, but this machine cannot reach them: {why}; {suggestion}, so that rcluster and clients use the published ports"
                ))
            }
            Announce::Host(host) if reachable => Ok(Reach {
                path: Path::Container,
                announce: Some(host.clone()),
                via: None,
            }),
            Announce::Host(host) => Ok(Reach {
                path: Path::Published,
                announce: Some(host.clone()),
                via: Some(connect_host(bind, Some(host))),
            }),
            Announce::Auto if reachable => Ok(Reach::container()),
            Announce::Auto => {
                if !ports_fixed {
                    return Err(format!(
                        "this machine cannot reach the nodes' container addresses ({why}), so rcluster must announce and use `<host>:<published port>`, which needs every port known before the nodes start; set `master.port`, `replicas.port` and `sentinel.port` to fixed ports (not 0)"
                    ));
                }
                let announce = auto_host();
                let via = connect_host(bind, announce.as_deref());
                Ok(Reach {
                    path: Path::Published,
                    announce,
                    via: Some(via),
                })
            }
        }
    }

    /// The layout with this decision applied; `via_ip` is `via` resolved.
    pub fn apply(&self, layout: Layout, via_ip: Option<IpAddr>) -> Layout {
        let layout = layout.announcing(self.announce.clone());
        match (self.path, via_ip) {
            (Path::Published, Some(ip)) => layout.reached_at(ip),
            _ => layout,
        }
    }
}

/// The bind address when it is one address containers and other machines reach: not
/// loopback (a container's loopback is its own), not every address.
fn usable_bind(bind: IpAddr) -> Option<IpAddr> {
    (!bind.is_loopback() && !bind.is_unspecified()).then_some(bind)
}

/// Where rcluster connects to published ports: the one address they are published on,
/// else the announced host, else this machine's loopback (ports on every address).
fn connect_host(bind: IpAddr, announce: Option<&str>) -> String {
    if !bind.is_unspecified() {
        return bind.to_string();
    }
    announce.map_or_else(|| "127.0.0.1".to_string(), str::to_string)
}

impl fmt::Display for Reach {
    /// `status`'s line: `reach: container addresses` or `reach: published ports at ...`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.path {
            Path::Container => f.write_str("container addresses")?,
            Path::Published => write!(
                f,
                "published ports at {}",
                self.via.as_deref().unwrap_or("?")
            )?,
        }
        match &self.announce {
            Some(host) => write!(f, "; announced as {host}:<published port>"),
            None => f.write_str("; announced as container addresses"),
        }
    }
}
