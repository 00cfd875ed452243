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
                // A remote engine publishes on its own loopback: only that machine, not
                // this one nor the containers, could reach the ports.
                if let Some(host) = platform
                    .and_then(|p| p.remote_host.as_deref())
                    .filter(|_| bind.is_loopback())
                {
                    return Err(format!(
                        "the engine runs on `{host}`, so ports published on `cluster.bind = \"{bind}\"` are reachable only on that machine, and its container addresses not at all from here; set `cluster.bind = \"0.0.0.0\"` (or an address of `{host}` that this machine and the containers reach) and fixed ports, and rcluster announces `{host}:<published port>`"
                    ));
                }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::docker::platform::Flavor;
    use crate::render::tests::default_topology;

    fn topology(bind: &str, announce: Announce) -> Topology {
        let mut t = default_topology();
        t.cluster.bind = bind.parse().unwrap();
        t.cluster.announce = announce;
        t
    }

    fn remote(host: &str) -> Platform {
        Platform {
            remote_host: Some(host.into()),
            endpoint: format!("ssh://me@{host}"),
            ..Platform::local_rootful()
        }
    }

    #[test]
    fn rootful_linux_keeps_container_addresses_without_asking_the_engine() {
        let t = topology("127.0.0.1", Announce::Auto);
        assert_eq!(Reach::decide(&t, Some(true), None), Ok(Reach::container()));
        let local = Platform::local_rootful();
        assert_eq!(
            Reach::decide(&t, None, Some(&local)),
            Ok(Reach::container())
        );
    }

    #[test]
    fn auto_announces_the_published_address_where_containers_are_out_of_reach() {
        let t = topology("10.253.0.1", Announce::Auto);
        let local = Platform::local_rootful();
        let reach = Reach::decide(&t, Some(false), Some(&local)).unwrap();
        assert_eq!(reach.path, Path::Published);
        assert_eq!(reach.announce.as_deref(), Some("10.253.0.1"));
        assert_eq!(reach.via.as_deref(), Some("10.253.0.1"));

        // A remote engine: its host, ports published on every address there.
        let t = topology("0.0.0.0", Announce::Auto);
        let reach = Reach::decide(&t, Some(true), Some(&remote("build-box"))).unwrap();
        assert_eq!(reach.announce.as_deref(), Some("build-box"));
        assert_eq!(reach.via.as_deref(), Some("build-box"));

        // Docker Desktop: containers reach the host as host.docker.internal.
        let desktop = Platform {
            flavor: Flavor::DockerDesktop,
            ..Platform::local_rootful()
        };
        let t = topology("127.0.0.1", Announce::Auto);
        let reach = Reach::decide(&t, Some(false), Some(&desktop)).unwrap();
        assert_eq!(reach.announce.as_deref(), Some("host.docker.internal"));
        assert_eq!(reach.via.as_deref(), Some("127.0.0.1"));

        // Rootless, loopback ports: nothing to announce that containers reach, so the
        // nodes keep container addresses and rcluster still uses the published ports.
        let rootless = Platform {
            rootless: true,
            ..Platform::local_rootful()
        };
        let reach = Reach::decide(&t, Some(false), Some(&rootless)).unwrap();
        assert_eq!((reach.path, reach.announce), (Path::Published, None));
    }

    #[test]
    fn a_remote_engine_with_loopback_ports_is_refused_with_what_to_set() {
        let t = topology("127.0.0.1", Announce::Auto);
        let why = Reach::decide(&t, Some(true), Some(&remote("build-box"))).unwrap_err();
        assert!(why.contains("the engine runs on `build-box`"), "{why}");
        assert!(why.contains("`cluster.bind = \"0.0.0.0\"`"), "{why}");
        // Rootless on this machine with loopback ports is fine (see above).
    }

    #[test]
    fn a_rootless_engine_wins_over_a_route_that_matches_by_coincidence() {
        // Rootless Docker's own `bridge` is 172.17.0.0/16 like the host's `docker0`, so
        // the routes say yes; the platform, once known, must still send rcluster to the
        // published ports (`up` passes the one it already has).
        let rootless = Platform {
            rootless: true,
            ..Platform::local_rootful()
        };
        let t = topology("127.0.0.1", Announce::Auto);
        let reach = Reach::decide(&t, Some(true), Some(&rootless)).unwrap();
        assert_eq!(
            (reach.path, reach.announce, reach.via.as_deref()),
            (Path::Published, None, Some("127.0.0.1"))
        );
        // With the ports on the host's own address, that address is announced, so that
        // Sentinel-aware clients on the host follow a failover too.
        let t = topology("192.0.2.2", Announce::Auto);
        let reach = Reach::decide(&t, Some(true), Some(&rootless)).unwrap();
        assert_eq!(reach.announce.as_deref(), Some("192.0.2.2"));
        assert_eq!(reach.via.as_deref(), Some("192.0.2.2"));
    }

    #[test]
    fn auto_with_engine_picked_ports_cannot_announce() {
        let mut t = topology("10.253.0.1", Announce::Auto);
        t.replicas.port = 0;
        let why = Reach::decide(&t, Some(false), Some(&Platform::local_rootful())).unwrap_err();
        assert!(
            why.contains("`replicas.port`") && why.contains("not 0"),
            "{why}"
        );
    }

    #[test]
    fn container_out_of_reach_says_what_to_set() {
        let t = topology("10.253.0.1", Announce::Container);
        let why = Reach::decide(&t, Some(false), Some(&Platform::local_rootful())).unwrap_err();
        assert!(why.contains("`cluster.announce = \"10.253.0.1\"`"), "{why}");
        assert!(why.contains("no route"), "{why}");

        let t = topology("0.0.0.0", Announce::Container);
        let why = Reach::decide(&t, Some(true), Some(&remote("build-box"))).unwrap_err();
        assert!(why.contains("`cluster.announce = \"build-box\"`"), "{why}");
        assert!(why.contains("keeps them out of reach"), "{why}");

        let t = topology("127.0.0.1", Announce::Container);
        let why = Reach::decide(&t, Some(false), Some(&Platform::local_rootful())).unwrap_err();
        assert!(why.contains("set `cluster.bind`"), "{why}");
    }

    #[test]
    fn an_announced_host_is_used_where_containers_are_out_of_reach() {
        let t = topology("0.0.0.0", Announce::Host("lan-box".into()));
        let near = Reach::decide(&t, Some(true), None).unwrap();
        assert_eq!(
            (near.path, near.announce.as_deref()),
            (Path::Container, Some("lan-box"))
        );
        let far = Reach::decide(&t, Some(false), Some(&Platform::local_rootful())).unwrap();
        assert_eq!(
            (far.path, far.via.as_deref()),
            (Path::Published, Some("lan-box"))
        );
        assert_eq!(
            far.to_string(),
            "published ports at lan-box; announced as lan-box:<published port>"
        );
    }
}
