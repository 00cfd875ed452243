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
}

impl Step {
    /// Steps that change a running group one node at a time (after the parallel ones).
    pub fn is_rolling(&self) -> bool {
        matches!(self, Step::Failover { .. } | Step::RecreateNode { .. })
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
    // Recreate the master last: by then the replicas and sentinels are current.
    rolling.sort_by_key(|s| {
        matches!(s, Step::Failover { .. } | Step::RecreateNode { .. })
            && step_node(s) == master_name(layout, master)
    });
    steps.extend(rolling);
    Plan { master, steps }
}

fn step_node(step: &Step) -> Option<&str> {
    match step {
        Step::Failover { from, .. } => Some(from),
        Step::RecreateNode { node, .. } => Some(node),
        _ => None,
    }
}

fn master_name(layout: &Layout, master: Ipv4Addr) -> Option<&str> {
    layout.node_by_ip(master).map(|n| n.name.as_str())
}
