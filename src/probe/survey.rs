//! Asking every node of a group at once: what each one says it is (for `health`), and
//! who the current master is.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use futures_util::future::join_all;

use super::Probe;
use crate::health::NodeReport;
use crate::observed::Observed;
use crate::topology::{Layout, Node, Role};

/// Where rcluster connects to a node: its container address, or its published port where
/// container addresses are out of reach (`Layout::reached_at`, decided by `Reach`).
pub fn addr(node: &Node) -> SocketAddr {
    node.reach
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
        let state = observed.state(&node.key);
        let host_port = observed.container(&node.key).and_then(|c| c.host_port);
        let running = state.is_running();
        let (replication, sentinel) = match (running, node.role) {
            (false, _) => (None, None),
            (true, Role::Sentinel) => (
                None,
                Some(
                    probe
                        .sentinel_view(addr(node), master_name)
                        .await
                        .map_err(|e| e.describe()),
                ),
            ),
            (true, _) => (
                Some(
                    probe
                        .replication(addr(node))
                        .await
                        .map_err(|e| e.describe()),
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
    let sentinels = layout.sentinels().filter(|n| observed.is_running(&n.key));
    let answers = join_all(sentinels.map(|n| quick.master_addr(addr(n), master_name))).await;
    let mut counts: HashMap<Ipv4Addr, usize> = HashMap::new();
    for (host, port) in answers.into_iter().flatten().flatten() {
        // Any address in the group's subnet: the master may be a node the topology no
        // longer has (a scale-down), which `up` must recognise to refuse removing it.
        if let Some(ip) = layout.ip_of(&host, port)
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
    let data = layout.data_nodes().filter(|n| observed.is_running(&n.key));
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
