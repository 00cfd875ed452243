//! `up` as data: desired layout vs observed resources -> steps. Pure: the plan's `Display`
//! is the `--dry-run` output and the test oracle; the executor in `docker::apply` makes no
//! decisions of its own.

use std::collections::HashMap;
use std::fmt;
use std::net::Ipv4Addr;

use crate::docker::observe::Observed;
use crate::topology::{Layout, Subnet};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    CreateNetwork {
        name: String,
        subnet: Subnet,
    },
    CreateVolume {
        name: String,
    },
    /// Create the container, copy its config in, start it. `replace`: remove a leftover
    /// container of that name first (one that was created but never started).
    CreateNode {
        node: String,
        replace: bool,
        reason: String,
    },
    StartNode {
        node: String,
        reason: String,
    },
    UnpauseNode {
        node: String,
        reason: String,
    },
    /// Move mastership away (SENTINEL FAILOVER) before the master is recreated.
    Failover {
        from: String,
        reason: String,
    },
    /// Remove and create again; done one at a time, each waiting for a healthy group.
    RecreateNode {
        node: String,
        reason: String,
    },
    /// Remove a node the topology no longer has (scaled down); its data volume stays.
    RemoveNode {
        node: String,
        reason: String,
    },
    /// Put a running container back on the group network at its fixed address (it was
    /// disconnected: a partition).
    ReconnectNode {
        node: String,
        reason: String,
    },
}

impl Step {
    /// The node (container name) the step is about, if any.
    pub fn node(&self) -> Option<&str> {
        match self {
            Step::CreateNode { node, .. }
            | Step::StartNode { node, .. }
            | Step::UnpauseNode { node, .. }
            | Step::RecreateNode { node, .. }
            | Step::RemoveNode { node, .. }
            | Step::ReconnectNode { node, .. } => Some(node),
            Step::Failover { from, .. } => Some(from),
            Step::CreateNetwork { .. } | Step::CreateVolume { .. } => None,
        }
    }

    /// Steps that change a running group one node at a time (after the parallel ones).
    pub fn is_rolling(&self) -> bool {
        matches!(
            self,
            Step::Failover { .. } | Step::RecreateNode { .. } | Step::RemoveNode { .. }
        )
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::CreateNetwork { name, subnet } => write!(f, "create network `{name}` ({subnet})"),
            Step::CreateVolume { name } => write!(f, "create volume `{name}`"),
            Step::CreateNode { node, reason, .. } => {
                write!(f, "create and start `{node}`: {reason}")
            }
            Step::StartNode { node, reason } => write!(f, "start `{node}`: {reason}"),
            Step::UnpauseNode { node, reason } => write!(f, "unpause `{node}`: {reason}"),
            Step::Failover { from, reason } => write!(f, "fail over away from `{from}`: {reason}"),
            Step::RecreateNode { node, reason } => write!(f, "recreate `{node}`: {reason}"),
            Step::RemoveNode { node, reason } => write!(f, "remove `{node}`: {reason}"),
            Step::ReconnectNode { node, reason } => {
                write!(f, "reconnect `{node}` to the group network: {reason}")
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The master every new or recreated node is configured to follow.
    pub master: Ipv4Addr,
    pub steps: Vec<Step>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.steps.is_empty() {
            return writeln!(
                f,
                "nothing to do: every node exists, runs and has its current config"
            );
        }
        for (i, step) in self.steps.iter().enumerate() {
            writeln!(f, "{:>2}. {step}", i + 1)?;
        }
        Ok(())
    }
}

/// Compare what should exist with what does. `desired_hash` maps node key -> config hash;
/// `master` is the current master's address (the sentinels' answer on an existing group).
pub fn plan(
    layout: &Layout,
    desired_hash: &HashMap<String, String>,
    observed: &Observed,
    master: Ipv4Addr,
) -> Plan {
    let mut steps = Vec::new();
    if observed.networks.is_empty() {
        steps.push(Step::CreateNetwork {
            name: layout.network(),
            subnet: layout.subnet,
        });
    }
    for volume in layout.nodes.iter().filter_map(|n| n.volume()) {
        if !observed.volumes.contains(&volume) {
            steps.push(Step::CreateVolume { name: volume });
        }
    }
    let mut rolling = Vec::new();
    // Data nodes before sentinels: the order the executor starts them in.
    for node in &layout.nodes {
        let want = desired_hash
            .get(&node.key)
            .map(String::as_str)
            .unwrap_or("");
        let node_name = node.name.clone();
        match observed.container(&node.key) {
            None => steps.push(Step::CreateNode {
                node: node_name,
                replace: false,
                reason: "missing".to_string(),
            }),
            // Never started: an interrupted `up` may have left it without its config file.
            Some(c) if c.state == "created" => steps.push(Step::CreateNode {
                node: node_name,
                replace: true,
                reason: "created but never started".to_string(),
            }),
            // Not serving anything: replace it now, with the others, instead of waiting
            // for a healthy group that cannot be healthy without it.
            Some(c) if c.config_hash != want && c.state != "running" && c.state != "paused" => {
                steps.push(Step::CreateNode {
                    node: node_name,
                    replace: true,
                    reason: format!("config changed (container is {})", c.state),
                })
            }
            Some(c) if c.config_hash != want => {
                if node.ip == master {
                    rolling.push(Step::Failover {
                        from: node_name.clone(),
                        reason: "its config changed and the master must not go away".to_string(),
                    });
                }
                rolling.push(Step::RecreateNode {
                    node: node_name,
                    reason: "config changed".to_string(),
                });
            }
            Some(c) => match c.state.as_str() {
                "running" if c.ip.is_none() => steps.push(Step::ReconnectNode {
                    node: node_name,
                    reason: "it runs but is not on the network".to_string(),
                }),
                "running" => {}
                "paused" => steps.push(Step::UnpauseNode {
                    node: node_name,
                    reason: "paused".to_string(),
                }),
                state => steps.push(Step::StartNode {
                    node: node_name,
                    reason: format!("container is {state}"),
                }),
            },
        }
    }
    // Nodes the topology no longer has (it was scaled down).
    for c in &observed.containers {
        if layout.node(&c.node).is_none() {
            let kept = if c.node.starts_with("sentinel") {
                ""
            } else {
                " (its data volume is kept)"
            };
            rolling.push(Step::RemoveNode {
                node: c.name.clone(),
                reason: format!("not in the topology any more{kept}"),
            });
        }
    }
    // Recreate the master last: by then the replicas and sentinels are current.
    rolling.sort_by_key(|s| {
        matches!(s, Step::Failover { .. } | Step::RecreateNode { .. })
            && s.node() == master_name(layout, master)
    });
    steps.extend(rolling);
    Plan { master, steps }
}

fn master_name(layout: &Layout, master: Ipv4Addr) -> Option<&str> {
    layout.node_by_ip(master).map(|n| n.name.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::docker::observe::{ObservedContainer, ObservedNetwork};
    use crate::render::tests::default_topology;

    fn layout() -> Layout {
        Layout::new(&default_topology(), Subnet([172, 28, 7]))
    }

    fn hashes(layout: &Layout) -> HashMap<String, String> {
        layout
            .nodes
            .iter()
            .map(|n| (n.key.clone(), format!("h-{}", n.key)))
            .collect()
    }

    /// What the engine would report for a group `up` created with these hashes.
    fn healthy_group(layout: &Layout) -> Observed {
        Observed {
            containers: layout
                .nodes
                .iter()
                .map(|n| ObservedContainer {
                    id: format!("id-{}", n.key),
                    name: n.name.clone(),
                    node: n.key.clone(),
                    state: "running".into(),
                    config_hash: format!("h-{}", n.key),
                    ip: Some(n.ip),
                    host_port: Some(n.host_port),
                })
                .collect(),
            networks: vec![ObservedNetwork {
                id: "net".into(),
                name: layout.network(),
                subnet: Some(layout.subnet),
            }],
            volumes: layout.nodes.iter().filter_map(|n| n.volume()).collect(),
        }
    }

    #[test]
    fn a_fresh_group_creates_everything_in_order() {
        let l = layout();
        let plan = plan(&l, &hashes(&l), &Observed::default(), l.master().ip);
        insta::assert_snapshot!(plan.to_string(), @r"
         1. create network `demo-net` (172.28.7.0/24)
         2. create volume `demo-master-data`
         3. create volume `demo-replica-1-data`
         4. create volume `demo-replica-2-data`
         5. create and start `demo-master`: missing
         6. create and start `demo-replica-1`: missing
         7. create and start `demo-replica-2`: missing
         8. create and start `demo-sentinel-1`: missing
         9. create and start `demo-sentinel-2`: missing
        10. create and start `demo-sentinel-3`: missing
        ");
    }

    #[test]
    fn a_healthy_group_needs_nothing() {
        let l = layout();
        let plan = plan(&l, &hashes(&l), &healthy_group(&l), l.master().ip);
        assert!(plan.is_empty());
        assert!(plan.to_string().starts_with("nothing to do"));
    }

    #[test]
    fn stopped_paused_and_half_created_nodes_are_brought_back() {
        let l = layout();
        let mut observed = healthy_group(&l);
        observed.containers[1].state = "exited".into();
        observed.containers[2].state = "paused".into();
        observed.containers[3].state = "created".into();
        observed.containers.retain(|c| c.node != "sentinel-3");
        observed.containers[0].ip = None;
        let mut want = hashes(&l);
        observed.containers[4].state = "exited".into();
        want.insert("sentinel-2".into(), "changed".into());
        let plan = plan(&l, &want, &observed, l.master().ip);
        insta::assert_snapshot!(plan.to_string(), @r"
        1. reconnect `demo-master` to the group network: it runs but is not on the network
        2. start `demo-replica-1`: container is exited
        3. unpause `demo-replica-2`: paused
        4. create and start `demo-sentinel-1`: created but never started
        5. create and start `demo-sentinel-2`: config changed (container is exited)
        6. create and start `demo-sentinel-3`: missing
        ");
    }

    #[test]
    fn a_changed_master_is_failed_over_before_it_is_recreated_last() {
        let l = layout();
        let mut want = hashes(&l);
        want.insert("master".into(), "new".into());
        want.insert("replica-2".into(), "new".into());
        // After an earlier failover replica-1 is master; the node created as master is not.
        let current = l.node("replica-1").unwrap().ip;
        want.insert("replica-1".into(), "new".into());
        let plan = plan(&l, &want, &healthy_group(&l), current);
        insta::assert_snapshot!(plan.to_string(), @r"
        1. recreate `demo-master`: config changed
        2. recreate `demo-replica-2`: config changed
        3. fail over away from `demo-replica-1`: its config changed and the master must not go away
        4. recreate `demo-replica-1`: config changed
        ");
        assert!(plan.steps.iter().all(Step::is_rolling));
    }

    #[test]
    fn nodes_scaled_away_are_removed_last() {
        let mut bigger = default_topology();
        bigger.replicas.count = 3;
        bigger.sentinel.count = 4;
        let big = Layout::new(&bigger, Subnet([172, 28, 7]));
        let l = layout();
        let plan = plan(&l, &hashes(&l), &healthy_group(&big), l.master().ip);
        insta::assert_snapshot!(plan.to_string(), @r"
        1. remove `demo-replica-3`: not in the topology any more (its data volume is kept)
        2. remove `demo-sentinel-4`: not in the topology any more
        ");
    }
}
