//! What "healthy" means, as a pure function of what the nodes said. `up` waits for it,
//! `status` reports it, `failover-test` requires it before and after.

use std::net::Ipv4Addr;

use crate::probe::{Replication, SentinelView};
use crate::topology::{Layout, Node, Role};

/// What one node's container and process said in one probe round.
#[derive(Debug, Clone, serde::Serialize)]
pub struct NodeReport {
    pub node: Node,
    /// Container state as the engine reports it (`running`, `exited`, `paused`, ...),
    /// or `missing`.
    pub state: String,
    /// Host port the engine published the node on, if any.
    pub host_port: Option<u16>,
    /// For data nodes: `INFO replication`, or why it could not be read.
    pub replication: Option<Result<Replication, String>>,
    /// For sentinels: the sentinel's view, or why it could not be read.
    pub sentinel: Option<Result<SentinelView, String>>,
}

impl NodeReport {
    /// The role the node reports itself (`master`, `replica`, `sentinel`), if it answered.
    pub fn reported_role(&self) -> Option<&str> {
        match (&self.replication, &self.sentinel) {
            (Some(Ok(r)), _) => Some(r.role.as_str()),
            (_, Some(Ok(_))) => Some("sentinel"),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Problem {
    pub node: String,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Health {
    pub healthy: bool,
    /// The master: the address every answering sentinel agrees on, or (when no sentinel
    /// answers) the one data node that says it is master.
    pub master: Option<Node>,
    /// Every sentinel answered and they all name the same master.
    pub sentinels_agree: bool,
    pub problems: Vec<Problem>,
}

/// How far behind (bytes of replication stream) a replica may be and still count as
/// caught up. `up` uses 0 (nothing writes during `up`); `status` allows live traffic.
pub const STATUS_MAX_LAG_BYTES: i64 = 1024 * 1024;

pub fn evaluate(layout: &Layout, reports: &[NodeReport], max_lag_bytes: i64) -> Health {
    let mut problems = Vec::new();

    // Who do the sentinels say is master?
    let mut named: Vec<Option<Ipv4Addr>> = Vec::new();
    for r in reports.iter().filter(|r| r.node.role == Role::Sentinel) {
        match &r.sentinel {
            Some(Ok(view)) => named.push(view.master_ip()),
            _ => named.push(None),
        }
    }
    let answered: Vec<Ipv4Addr> = named.iter().flatten().copied().collect();
    let sentinels_agree = !named.is_empty()
        && answered.len() == named.len()
        && answered.iter().all(|ip| *ip == answered[0]);
    let self_declared: Vec<&Node> = reports
        .iter()
        .filter(|r| matches!(&r.replication, Some(Ok(rep)) if rep.is_master()))
        .map(|r| &r.node)
        .collect();
    let master_ip =
        most_common(&answered).or_else(|| (self_declared.len() == 1).then(|| self_declared[0].ip));
    let master = master_ip.and_then(|ip| layout.node_by_ip(ip)).cloned();
    let master_offset = master.as_ref().and_then(|m| {
        reports
            .iter()
            .find(|r| r.node == *m)
            .and_then(|r| r.replication.as_ref()?.as_ref().ok())
            .map(|rep| rep.offset)
    });

    if master.is_none() {
        problems.push(Problem {
            node: layout.cluster.clone(),
            reason: match master_ip {
                Some(ip) => {
                    format!("the sentinels name {ip} as master, which is not a node of this group")
                }
                None => "no master: no sentinel names one and no data node says it is master"
                    .to_string(),
            },
        });
    }
    if !answered.is_empty() && !answered.iter().all(|ip| *ip == answered[0]) {
        problems.push(Problem {
            node: layout.cluster.clone(),
            reason: format!(
                "the sentinels disagree on the master: {}",
                answered
                    .iter()
                    .map(|ip| ip.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        });
    }

    let other_sentinels = layout.sentinels().count().saturating_sub(1);
    let mut problem = |node: &Node, reason: String| {
        problems.push(Problem {
            node: node.name.clone(),
            reason,
        })
    };
    for r in reports {
        let node = &r.node;
        if r.state != "running" {
            problem(node, format!("container is {}", r.state));
            continue;
        }
        match node.role {
            Role::Master | Role::Replica => match &r.replication {
                None => problem(node, "not probed".to_string()),
                Some(Err(e)) => problem(node, format!("does not answer: {e}")),
                Some(Ok(rep)) => {
                    let is_master = master.as_ref() == Some(node);
                    if is_master {
                        if !rep.is_master() {
                            problem(
                                node,
                                format!(
                                    "the sentinels name it master but it says it is a {}",
                                    rep.role
                                ),
                            );
                        }
                    } else if rep.is_master() {
                        problem(
                            node,
                            "says it is a master, but it should be a replica".to_string(),
                        );
                    } else if let Some(m) = &master {
                        let follows = rep.master_host.as_deref() == Some(m.ip.to_string().as_str());
                        if !follows {
                            problem(
                                node,
                                format!(
                                    "follows {} instead of the master {}",
                                    rep.master_host.as_deref().unwrap_or("nothing"),
                                    m.ip
                                ),
                            );
                        } else if rep.master_link_status.as_deref() != Some("up") {
                            problem(
                                node,
                                format!(
                                    "link to the master is {}",
                                    rep.master_link_status.as_deref().unwrap_or("unknown")
                                ),
                            );
                        } else if let Some(mo) = master_offset {
                            let lag = mo - rep.offset;
                            if lag > max_lag_bytes {
                                problem(node, format!("{lag} bytes behind the master"));
                            }
                        }
                    }
                }
            },
            Role::Sentinel => match &r.sentinel {
                None => problem(node, "not probed".to_string()),
                Some(Err(e)) => problem(node, format!("does not answer: {e}")),
                Some(Ok(view)) => {
                    let Some(m) = &master else { continue };
                    if view.master_ip() != Some(m.ip) {
                        problem(
                            node,
                            format!(
                                "names {} as master",
                                view.master
                                    .as_ref()
                                    .map_or("nothing".to_string(), |(ip, p)| format!("{ip}:{p}"))
                            ),
                        );
                        continue;
                    }
                    if view.master_is_down() {
                        problem(
                            node,
                            format!("sees the master as down ({})", view.master_flags.join(",")),
                        );
                    }
                    let expected: Vec<&Node> = layout.data_nodes().filter(|n| *n != m).collect();
                    let healthy_replicas = expected
                        .iter()
                        .filter(|n| {
                            view.replicas
                                .iter()
                                .any(|p| p.ipv4() == Some(n.ip) && !p.is_down())
                        })
                        .count();
                    if healthy_replicas < expected.len() {
                        problem(
                            node,
                            format!(
                                "sees {healthy_replicas} of {} replicas healthy",
                                expected.len()
                            ),
                        );
                    }
                    let healthy_sentinels = view.sentinels.iter().filter(|p| !p.is_down()).count();
                    if healthy_sentinels < other_sentinels {
                        problem(
                            node,
                            format!(
                                "sees {healthy_sentinels} of {other_sentinels} other sentinels"
                            ),
                        );
                    }
                }
            },
        }
    }

    Health {
        healthy: problems.is_empty(),
        master,
        sentinels_agree,
        problems,
    }
}

fn most_common(ips: &[Ipv4Addr]) -> Option<Ipv4Addr> {
    let mut best: Option<(Ipv4Addr, usize)> = None;
    for ip in ips {
        let n = ips.iter().filter(|x| *x == ip).count();
        if best.is_none_or(|(_, c)| n > c) {
            best = Some((*ip, n));
        }
    }
    best.map(|(ip, _)| ip)
}
