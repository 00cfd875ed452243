//! Where a group lives on the host: its /24 (the network's, the topology's, or the first
//! free one) and so its layout. Pure but for reading the host's routes.

use std::net::Ipv4Addr;

use crate::error::CommandError;
use crate::observed::Observed;
use crate::topology::{self, Layout, Subnet, Topology};

/// The layout of an existing group (its network's subnet) or of the one `up` would make.
pub fn layout(topology: &Topology, observed: &Observed) -> Layout {
    let subnet = observed
        .subnet()
        .or(topology.cluster.subnet)
        .unwrap_or_else(|| Subnet::derived(&topology.cluster.name));
    Layout::new(topology, subnet)
}

/// The group's subnet: its network's if it exists; the topology's if set (and free);
/// else the first free one from the name-derived candidate on, avoiding every engine
/// network (`engine_subnets`) and every host route.
pub fn choose_subnet(
    topology: &Topology,
    observed: &Observed,
    engine_subnets: &[String],
) -> anyhow::Result<Subnet> {
    if let Some(subnet) = observed.subnet() {
        return Ok(subnet);
    }
    let mut used: Vec<topology::layout::Cidr> = engine_subnets
        .iter()
        .filter_map(|s| topology::layout::parse_cidr(s))
        .collect();
    used.extend(host_routes());
    if let Some(subnet) = topology.cluster.subnet {
        if subnet.overlaps_any(&used) {
            return Err(CommandError::usage(format!("`cluster.subnet` {subnet} overlaps a network or route that already exists on this host; choose another or remove the key"),
            )
            .into());
        }
        return Ok(subnet);
    }
    Subnet::first_free(Subnet::derived(&topology.cluster.name), &used).ok_or_else(|| {
        CommandError::usage(
            "no free /24 left in 172.28.0.0/14 for the group network; set `cluster.subnet`",
        )
        .into()
    })
}

/// Whether this network namespace has a route (not the default one) to any of `networks`:
/// on a rootful Linux engine each bridge network has one, through its bridge; a rootless
/// or remote engine's, or Docker Desktop's, live elsewhere. `None` when there is nothing to
/// look at. Reading `/proc/net/route` costs no round trip.
pub fn routed(networks: &[topology::layout::Cidr]) -> Option<bool> {
    if networks.is_empty() {
        return None;
    }
    let routes = host_routes();
    Some(networks.iter().any(|n| {
        routes
            .iter()
            .any(|r| r.1 <= n.1 && topology::layout::overlaps(*r, *n))
    }))
}

/// The host's IPv4 routes (from /proc/net/route), so the group network never shadows a
/// network the host really uses.
fn host_routes() -> Vec<topology::layout::Cidr> {
    let Ok(text) = std::fs::read_to_string("/proc/net/route") else {
        return Vec::new();
    };
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let cols: Vec<&str> = line.split_whitespace().collect();
            let dest = u32::from_str_radix(cols.get(1)?, 16).ok()?;
            let mask = u32::from_str_radix(cols.get(7)?, 16).ok()?;
            // The default route (mask 0) covers everything; it is not a network to avoid.
            (mask != 0).then(|| {
                (
                    Ipv4Addr::from(u32::from_be(dest)),
                    u32::from_be(mask).count_ones() as u8,
                )
            })
        })
        .collect()
}
