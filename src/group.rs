//! The glue the commands share: load the topology and password, probe every node, find
//! the current master, wait for health. Side effects live here and in `docker`/`probe`;
//! the decisions are in `health` and `plan`.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use anyhow::Context;
use futures_util::future::join_all;
use sha2::{Digest, Sha256};

use crate::commands::Global;
use crate::docker::Engine;
use crate::docker::image::ImageChoice;
use crate::docker::observe::{Observed, observe};
use crate::error::{EXIT_USAGE, Exit};
use crate::health::{self, Health, NodeReport};
use crate::probe::Probe;
use crate::render;
use crate::secret::{MASK, Secret};
use crate::topology::{self, Layout, Loaded, Node, Role, Subnet, Topology};

/// Load and check the topology; warnings go to stderr unless quiet/json.
pub fn load(global: &Global) -> anyhow::Result<Loaded> {
    let loaded = topology::load(&global.file, global.name.as_deref())?;
    if !global.quiet && !global.json && !loaded.warnings.is_empty() {
        eprint!(
            "{}",
            topology::format_diagnostics(&global.file, &loaded.warnings)
        );
    }
    Ok(loaded)
}

/// The layout of an existing group (its network's subnet) or of the one `up` would make.
pub fn layout(topology: &Topology, observed: &Observed) -> Layout {
    let subnet = observed
        .subnet()
        .or(topology.cluster.subnet)
        .unwrap_or_else(|| Subnet::derived(&topology.cluster.name));
    Layout::new(topology, subnet)
}

pub fn addr(node: &Node) -> SocketAddr {
    SocketAddr::from((node.ip, node.port))
}

/// Ask every node, concurrently, what it is. Nodes whose container is not running are
/// reported with their state and not probed.
pub async fn probe_all(
    layout: &Layout,
    observed: &Observed,
    probe: &Probe,
    master_name: &str,
) -> Vec<NodeReport> {
    let futures = layout.nodes.iter().map(|node| async move {
        let container = observed.container(&node.key);
        let state = container.map_or("missing".to_string(), |c| c.state.clone());
        let host_port = container.and_then(|c| c.host_port);
        let running = state == "running";
        let (replication, sentinel) = match (running, node.role) {
            (false, _) => (None, None),
            (true, Role::Sentinel) => (
                None,
                Some(
                    probe
                        .sentinel_view(addr(node), master_name)
                        .await
                        .map_err(|e| format!("{e:#}")),
                ),
            ),
            (true, _) => (
                Some(
                    probe
                        .replication(addr(node))
                        .await
                        .map_err(|e| format!("{e:#}")),
                ),
                None,
            ),
        };
        NodeReport {
            node: node.clone(),
            state,
            host_port,
            replication,
            sentinel,
        }
    });
    join_all(futures).await
}

/// The master new nodes must follow: what most sentinels say, else the data node that says
/// it is master, else the node created as master (a fresh group).
pub async fn current_master(
    layout: &Layout,
    observed: &Observed,
    probe: &Probe,
    master_name: &str,
) -> Ipv4Addr {
    let quick = probe
        .clone()
        .with_timeouts(Duration::from_millis(300), Duration::from_millis(500));
    let sentinels = layout.sentinels().filter(|n| {
        observed
            .container(&n.key)
            .is_some_and(|c| c.state == "running")
    });
    let answers = join_all(sentinels.map(|n| quick.master_addr(addr(n), master_name))).await;
    let mut counts: HashMap<Ipv4Addr, usize> = HashMap::new();
    for (ip, _) in answers.into_iter().flatten().flatten() {
        // Any address in the group's subnet: the master may be a node the topology no
        // longer has (a scale-down), which `up` must recognise to refuse removing it.
        if let Ok(ip) = ip.parse::<Ipv4Addr>()
            && layout.subnet.contains(ip)
        {
            *counts.entry(ip).or_default() += 1;
        }
    }
    // A clear winner only: on a tie the sentinels do not know, and the nodes decide.
    let mut ranked: Vec<(Ipv4Addr, usize)> = counts.into_iter().collect();
    ranked.sort_by_key(|(_, votes)| std::cmp::Reverse(*votes));
    match ranked.as_slice() {
        [(ip, _)] => return *ip,
        [(ip, first), (_, second), ..] if first > second => return *ip,
        _ => {}
    }
    let data = layout.data_nodes().filter(|n| {
        observed
            .container(&n.key)
            .is_some_and(|c| c.state == "running")
    });
    let roles = join_all(data.map(|n| async { (n.ip, quick.replication(addr(n)).await) })).await;
    let masters: Vec<Ipv4Addr> = roles
        .into_iter()
        .filter(|(_, r)| {
            r.as_ref()
                .is_ok_and(|r| r.is_master() && !r.connected_replicas.is_empty())
        })
        .map(|(ip, _)| ip)
        .collect();
    match masters.as_slice() {
        [one] => *one,
        _ => layout.master().ip,
    }
}

/// Keep-or-recreate key for each node: its config as rendered for a fresh group (so a
/// failover does not count as a change) with the password masked, plus the image, and
/// the published address.
pub fn config_hashes(
    topology: &Topology,
    layout: &Layout,
    image: &ImageChoice,
) -> anyhow::Result<HashMap<String, String>> {
    let mut hashes = HashMap::new();
    for node in &layout.nodes {
        let config = render::node_config(topology, layout, node, layout.master().ip, MASK)?;
        let mut h = Sha256::new();
        h.update(config.as_bytes());
        h.update(image.reference.as_bytes());
        h.update(format!("{}:{}", topology.cluster.bind, node.host_port).as_bytes());
        hashes.insert(
            node.key.clone(),
            hex::encode(h.finalize())[..16].to_string(),
        );
    }
    Ok(hashes)
}

/// Why waiting for health ended without it.
#[derive(Debug, thiserror::Error)]
pub enum WaitError {
    #[error("the group `{cluster}` was not healthy after {secs} s:\n{details}")]
    Timeout {
        cluster: String,
        secs: u64,
        details: String,
    },
    #[error("node `{node}` stopped ({state}); its last log lines:\n{logs}")]
    NodeDied {
        node: String,
        state: String,
        logs: String,
    },
}

/// Poll until healthy or `deadline`. A container that stops is "broken": fail at once with
/// its logs instead of waiting out the deadline.
pub async fn wait_healthy(
    engine: &Engine,
    layout: &Layout,
    probe: &Probe,
    master_name: &str,
    timeout: Duration,
    max_lag_bytes: i64,
    mut on_round: impl FnMut(&[NodeReport], &Health),
) -> anyhow::Result<Health> {
    let start = Instant::now();
    let fast = probe
        .clone()
        .with_timeouts(Duration::from_millis(250), Duration::from_millis(500));
    let mut observed = observe(engine, &layout.cluster).await?;
    let mut round = 0u32;
    loop {
        round += 1;
        if round.is_multiple_of(10) {
            observed = observe(engine, &layout.cluster).await?;
            for node in &layout.nodes {
                if let Some(c) = observed.container(&node.key)
                    && matches!(c.state.as_str(), "exited" | "dead")
                {
                    let logs = engine.logs_tail(&node.name, 15).await.unwrap_or_default();
                    return Err(WaitError::NodeDied {
                        node: node.name.clone(),
                        state: c.state.clone(),
                        logs: indent(&logs),
                    }
                    .into());
                }
            }
        }
        let reports = probe_all(layout, &observed, &fast, master_name).await;
        let health = health::evaluate(layout, &reports, max_lag_bytes);
        on_round(&reports, &health);
        if health.healthy {
            return Ok(health);
        }
        if start.elapsed() >= timeout {
            let mut details = String::new();
            for p in &health.problems {
                details.push_str(&format!("  {}: {}\n", p.node, p.reason));
                if layout.node(&p.node).is_some() {
                    let logs = engine.logs_tail(&p.node, 3).await.unwrap_or_default();
                    if !logs.trim().is_empty() {
                        details.push_str(&indent(&logs));
                    }
                }
            }
            return Err(WaitError::Timeout {
                cluster: layout.cluster.clone(),
                secs: timeout.as_secs(),
                details,
            }
            .into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("      | {l}\n")).collect()
}

/// The password every command that talks to Redis needs; a clear error when the group
/// was never brought up and the topology names none.
pub fn password(loaded: &Loaded) -> anyhow::Result<Secret> {
    let cluster = &loaded.topology.cluster.name;
    crate::state::password(loaded, cluster)?
        .ok_or_else(|| {
            Exit::new(
                EXIT_USAGE,
                format!(
                    "no password for group `{cluster}`: it was never brought up (run `rcluster up`), \
                     and the topology configures none in `[auth]`"
                ),
            )
        })
        .context("cannot talk to the group")
}

/// The group's subnet: its network's if it exists; the topology's if set (and free);
/// else the first free one from the name-derived candidate on, avoiding every engine
/// network and every host route.
pub fn choose_subnet(
    topology: &Topology,
    observed: &Observed,
    networks: &[bollard::models::Network],
) -> anyhow::Result<Subnet> {
    if let Some(subnet) = observed.subnet() {
        return Ok(subnet);
    }
    let mut used: Vec<topology::layout::Cidr> = crate::docker::observe::used_subnets(networks)
        .iter()
        .filter_map(|s| topology::layout::parse_cidr(s))
        .collect();
    used.extend(host_routes());
    if let Some(subnet) = topology.cluster.subnet {
        if subnet.overlaps_any(&used) {
            return Err(Exit::new(
                EXIT_USAGE,
                format!("`cluster.subnet` {subnet} overlaps a network or route that already exists on this host; choose another or remove the key"),
            )
            .into());
        }
        return Ok(subnet);
    }
    Subnet::first_free(Subnet::derived(&topology.cluster.name), &used).ok_or_else(|| {
        Exit::new(
            EXIT_USAGE,
            "no free /24 left in 172.28.0.0/14 for the group network; set `cluster.subnet`",
        )
        .into()
    })
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

/// Poll the watching sentinels until they all name one master other than `old` and that
/// node says it is master. Returns the node and when, or what they said last and how many
/// answered.
pub async fn wait_for_new_master(
    layout: &Layout,
    sentinels: &[&Node],
    probe: &Probe,
    master_name: &str,
    old: &Node,
    start: Instant,
    deadline: Duration,
) -> Result<(Node, Instant), (String, usize)> {
    let quick = probe
        .clone()
        .with_timeouts(Duration::from_millis(200), Duration::from_millis(300));
    let mut last = (String::new(), sentinels.len());
    while start.elapsed() < deadline {
        let answers = join_all(
            sentinels
                .iter()
                .map(|s| quick.master_addr(addr(s), master_name)),
        )
        .await;
        let ips: Vec<Option<std::net::Ipv4Addr>> = answers
            .iter()
            .map(|a| {
                a.as_ref()
                    .ok()
                    .and_then(|m| m.as_ref())
                    .and_then(|(ip, _)| ip.parse().ok())
            })
            .collect();
        if let Some(Some(first)) = ips.first()
            && ips.iter().all(|ip| *ip == Some(*first))
            && *first != old.ip
            && let Some(node) = layout.node_by_ip(*first)
            && quick
                .replication(addr(node))
                .await
                .is_ok_and(|r| r.is_master())
        {
            return Ok((node.clone(), Instant::now()));
        }
        last = (
            format!(
                "the sentinels answer {}",
                ips.iter()
                    .map(|ip| ip.map_or("nothing".to_string(), |ip| ip.to_string()))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            answers.iter().filter(|a| a.is_ok()).count(),
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Err(last)
}
