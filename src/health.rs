//! What "healthy" means, as a pure function of what the nodes said. `up` waits for it,
//! `status` reports it, `failover-test` requires it before and after.

use std::net::Ipv4Addr;

use crate::observed::ContainerState;
use crate::probe::parse::{LinkStatus, Replication, SentinelFlag, SentinelView};
use crate::topology::{Layout, Node, Role};

/// What one node's container and process said in one probe round.
#[derive(Debug, Clone, serde::Serialize)]
pub struct NodeReport {
    pub node: Node,
    /// Container state as the engine reports it, or `Missing`.
    pub state: ContainerState,
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

/// The verdict on the whole group: who the master is, then each node's problems in
/// layout order (a node with none is fine).
pub fn evaluate(layout: &Layout, reports: &[NodeReport], max_lag_bytes: i64) -> Health {
    let found = find_master(layout, reports);
    let mut problems = group_problems(layout, &found);
    let master = found.master.as_ref();
    let master_offset = master.and_then(|m| {
        reports
            .iter()
            .find(|r| r.node == *m)
            .and_then(|r| r.replication.as_ref()?.as_ref().ok())
            .map(|rep| rep.offset)
    });
    for r in reports {
        let reasons = if !r.state.is_running() {
            vec![format!("container is {}", r.state)]
        } else if r.node.role.is_data() {
            answer(&r.replication, |rep| {
                data_node_problem(layout, &r.node, rep, master, master_offset, max_lag_bytes)
                    .into_iter()
                    .collect()
            })
        } else {
            answer(&r.sentinel, |view| {
                master.map_or(Vec::new(), |m| sentinel_problems(layout, view, m))
            })
        };
        problems.extend(reasons.into_iter().map(|reason| Problem {
            node: r.node.name.clone(),
            reason,
        }));
    }
    Health {
        healthy: problems.is_empty(),
        master: found.master,
        sentinels_agree: found.sentinels_agree,
        problems,
    }
}

/// Who the group's master is, and how the sentinels answered.
struct FoundMaster {
    /// The sentinels' most common answer, else the one data node that says it is master.
    ip: Option<Ipv4Addr>,
    /// That address as a node of this group.
    master: Option<Node>,
    /// The address each answering sentinel names.
    answered: Vec<Ipv4Addr>,
    sentinels_agree: bool,
}

fn find_master(layout: &Layout, reports: &[NodeReport]) -> FoundMaster {
    let named: Vec<Option<Ipv4Addr>> = reports
        .iter()
        .filter(|r| r.node.role == Role::Sentinel)
        .map(|r| match &r.sentinel {
            Some(Ok(view)) => view.master_ip(layout),
            _ => None,
        })
        .collect();
    let answered: Vec<Ipv4Addr> = named.iter().flatten().copied().collect();
    let sentinels_agree = !named.is_empty()
        && answered.len() == named.len()
        && answered.iter().all(|ip| *ip == answered[0]);
    let self_declared: Vec<&Node> = reports
        .iter()
        .filter(|r| matches!(&r.replication, Some(Ok(rep)) if rep.is_master()))
        .map(|r| &r.node)
        .collect();
    let ip =
        most_common(&answered).or_else(|| (self_declared.len() == 1).then(|| self_declared[0].ip));
    FoundMaster {
        ip,
        master: ip.and_then(|ip| layout.node_by_ip(ip)).cloned(),
        answered,
        sentinels_agree,
    }
}

/// Problems of the group as a whole: no master, or sentinels that disagree.
fn group_problems(layout: &Layout, found: &FoundMaster) -> Vec<Problem> {
    let mut reasons = Vec::new();
    if found.master.is_none() {
        reasons.push(match found.ip {
            Some(ip) => {
                format!("the sentinels name {ip} as master, which is not a node of this group")
            }
            None => {
                "no master: no sentinel names one and no data node says it is master".to_string()
            }
        });
    }
    let answered = &found.answered;
    if !answered.is_empty() && !answered.iter().all(|ip| *ip == answered[0]) {
        let ips: Vec<String> = answered.iter().map(|ip| ip.to_string()).collect();
        reasons.push(format!(
            "the sentinels disagree on the master: {}",
            ips.join(", ")
        ));
    }
    reasons
        .into_iter()
        .map(|reason| Problem {
            node: layout.cluster.clone(),
            reason,
        })
        .collect()
}

/// A probe that was not made or failed is the node's problem; else `check` the answer.
fn answer<T>(
    probe: &Option<Result<T, String>>,
    check: impl FnOnce(&T) -> Vec<String>,
) -> Vec<String> {
    match probe {
        None => vec!["not probed".to_string()],
        Some(Err(e)) => vec![format!("does not answer: {e}")],
        Some(Ok(reply)) => check(reply),
    }
}

/// A data node: the master must say it is one; a replica must follow the master over a
/// link that is up, at most `max_lag_bytes` behind.
fn data_node_problem(
    layout: &Layout,
    node: &Node,
    rep: &Replication,
    master: Option<&Node>,
    master_offset: Option<i64>,
    max_lag_bytes: i64,
) -> Option<String> {
    if master == Some(node) {
        return (!rep.is_master()).then(|| {
            format!(
                "the sentinels name it master but it says it is a {}",
                rep.role
            )
        });
    }
    if rep.is_master() {
        return Some("says it is a master, but it should be a replica".to_string());
    }
    let m = master?;
    let followed = rep
        .master_host
        .as_deref()
        .and_then(|host| layout.ip_of(host, rep.master_port.unwrap_or(0)));
    if followed != Some(m.ip) {
        let (host, port) = layout.advertised(m);
        // Announced, every node shares the host: only the port tells them apart.
        let (followed, master) = match (&layout.announce, &rep.master_host) {
            (Some(_), Some(h)) => (
                format!("{h}:{}", rep.master_port.unwrap_or(0)),
                format!("{host}:{port}"),
            ),
            (_, h) => (h.as_deref().unwrap_or("nothing").to_string(), host),
        };
        return Some(format!("follows {followed} instead of the master {master}"));
    }
    if rep.master_link_status != Some(LinkStatus::Up) {
        return Some(format!(
            "link to the master is {}",
            rep.master_link_status
                .as_ref()
                .map_or("unknown", LinkStatus::as_str)
        ));
    }
    let lag = master_offset? - rep.offset;
    (lag > max_lag_bytes).then(|| format!("{lag} bytes behind the master"))
}

/// A sentinel must name the master, see it up, and see every replica and every other
/// sentinel healthy.
fn sentinel_problems(layout: &Layout, view: &SentinelView, master: &Node) -> Vec<String> {
    if view.master_ip(layout) != Some(master.ip) {
        let named = view
            .master
            .as_ref()
            .map_or("nothing".to_string(), |(ip, p)| format!("{ip}:{p}"));
        return vec![format!("names {named} as master")];
    }
    let mut reasons = Vec::new();
    if view.master_is_down() {
        reasons.push(format!(
            "sees the master as down ({})",
            SentinelFlag::join(&view.master_flags)
        ));
    }
    let expected: Vec<&Node> = layout.data_nodes().filter(|n| *n != master).collect();
    let healthy_replicas = expected
        .iter()
        .filter(|n| {
            view.replicas
                .iter()
                .any(|p| layout.ip_of(&p.ip, p.port) == Some(n.ip) && !p.is_down())
        })
        .count();
    if healthy_replicas < expected.len() {
        reasons.push(format!(
            "sees {healthy_replicas} of {} replicas healthy",
            expected.len()
        ));
    }
    let other_sentinels = layout.sentinels().count().saturating_sub(1);
    let healthy_sentinels = view.sentinels.iter().filter(|p| !p.is_down()).count();
    if healthy_sentinels < other_sentinels {
        reasons.push(format!(
            "sees {healthy_sentinels} of {other_sentinels} other sentinels"
        ));
    }
    reasons
}

/// Why no failover could happen right now, if it could not: Sentinel needs `quorum`
/// sentinels to agree the master is down, then a majority of all sentinels to authorize
/// the failover. `None` when enough sentinels answer for both.
pub fn failover_blocker(reports: &[NodeReport], quorum: usize) -> Option<String> {
    let sentinels: Vec<&NodeReport> = reports
        .iter()
        .filter(|r| r.node.role == Role::Sentinel)
        .collect();
    let total = sentinels.len();
    let answering = sentinels
        .iter()
        .filter(|r| matches!(r.sentinel, Some(Ok(_))))
        .count();
    let majority = total / 2 + 1;
    if answering < quorum {
        Some(format!(
            "a failover is impossible now: only {answering} of {total} sentinels answer and the quorum is {quorum}"
        ))
    } else if answering < majority {
        Some(format!(
            "a failover is impossible now: it needs a majority of the sentinels ({majority} of {total}) to authorize it and only {answering} answer"
        ))
    } else {
        None
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::Peer;
    use crate::probe::parse::ReportedRole;
    use crate::render::tests::default_topology;
    use crate::topology::Subnet;

    fn layout() -> Layout {
        Layout::new(&default_topology(), Subnet([172, 28, 7]))
    }

    fn peer(ip: Ipv4Addr, port: u16, flags: &str) -> Peer {
        Peer {
            ip: ip.to_string(),
            port,
            flags: SentinelFlag::parse_list(flags),
        }
    }

    /// Every node answering as in a healthy group whose master is `master`.
    fn healthy(layout: &Layout, master: &Node) -> Vec<NodeReport> {
        layout
            .nodes
            .iter()
            .map(|n| {
                let (replication, sentinel) = match n.role {
                    Role::Sentinel => (
                        None,
                        Some(Ok(SentinelView {
                            master: Some((master.ip.to_string(), 6379)),
                            master_flags: vec!["master".into()],
                            replicas: layout
                                .data_nodes()
                                .filter(|d| *d != master)
                                .map(|d| peer(d.ip, 6379, "slave"))
                                .collect(),
                            sentinels: layout
                                .sentinels()
                                .filter(|s| *s != n)
                                .map(|s| peer(s.ip, 26379, "sentinel"))
                                .collect(),
                        })),
                    ),
                    _ => (
                        Some(Ok(Replication {
                            role: if n == master {
                                ReportedRole::Master
                            } else {
                                ReportedRole::Replica
                            },
                            master_host: (n != master).then(|| master.ip.to_string()),
                            master_port: (n != master).then_some(6379),
                            master_link_status: (n != master).then_some(LinkStatus::Up),
                            offset: 100,
                            connected_replicas: vec![],
                        })),
                        None,
                    ),
                };
                NodeReport {
                    node: n.clone(),
                    state: ContainerState::Running,
                    host_port: None,
                    replication,
                    sentinel,
                }
            })
            .collect()
    }

    /// The same reports with every address in the announced form the layout hands out.
    fn announced(layout: &Layout, reports: Vec<NodeReport>) -> Vec<NodeReport> {
        let hand_out = |ip: &str| {
            let node = layout.node_by_ip(ip.parse().unwrap()).unwrap();
            layout.advertised(node)
        };
        reports
            .into_iter()
            .map(|mut r| {
                if let Some(Ok(rep)) = &mut r.replication
                    && let Some(host) = rep.master_host.clone()
                {
                    let (h, p) = hand_out(&host);
                    (rep.master_host, rep.master_port) = (Some(h), Some(p));
                }
                if let Some(Ok(view)) = &mut r.sentinel {
                    view.master = view.master.as_ref().map(|(ip, _)| hand_out(ip));
                    for p in view.replicas.iter_mut().chain(view.sentinels.iter_mut()) {
                        (p.ip, p.port) = hand_out(&p.ip);
                    }
                }
                r
            })
            .collect()
    }

    #[test]
    fn announced_addresses_are_judged_by_host_and_port() {
        let mut topology = default_topology();
        topology.cluster.bind = "0.0.0.0".parse().unwrap();
        topology.cluster.announce = crate::topology::Announce::Host("10.253.0.1".into());
        let l = Layout::new(&topology, Subnet([172, 28, 7]));
        let reports = announced(&l, healthy(&l, l.master()));
        let h = evaluate(&l, &reports, 0);
        assert!(h.healthy, "{:?}", h.problems);
        assert_eq!(h.master.as_ref(), Some(l.master()));

        // Same host, another node's port: not the master.
        let mut wrong = reports.clone();
        if let Some(Ok(rep)) = &mut wrong[1].replication {
            rep.master_port = Some(6381);
        }
        let h = evaluate(&l, &wrong, 0);
        assert_eq!(
            h.problems,
            vec![Problem {
                node: "demo-replica-1".into(),
                reason: "follows 10.253.0.1:6381 instead of the master 10.253.0.1:6379".into(),
            }]
        );
    }

    #[test]
    fn a_healthy_group_is_healthy() {
        let l = layout();
        let h = evaluate(&l, &healthy(&l, l.master()), 0);
        assert!(h.healthy, "{:?}", h.problems);
        assert!(h.sentinels_agree);
        assert_eq!(h.master.as_ref(), Some(l.master()));
    }

    #[test]
    fn after_a_failover_the_sentinels_decide_who_is_master() {
        let l = layout();
        let new = l.node("replica-2").unwrap().clone();
        let h = evaluate(&l, &healthy(&l, &new), 0);
        assert!(h.healthy, "{:?}", h.problems);
        assert_eq!(h.master, Some(new));
    }

    #[test]
    fn a_lagging_replica_is_healthy_only_within_the_allowed_lag() {
        let l = layout();
        let mut reports = healthy(&l, l.master());
        if let Some(Ok(r)) = reports[1].replication.as_mut() {
            r.offset = 40;
        }
        let strict = evaluate(&l, &reports, 0);
        assert_eq!(
            strict.problems,
            vec![Problem {
                node: "demo-replica-1".into(),
                reason: "60 bytes behind the master".into()
            }]
        );
        assert!(evaluate(&l, &reports, STATUS_MAX_LAG_BYTES).healthy);
    }

    #[test]
    fn a_dead_master_and_a_blind_sentinel_are_named() {
        let l = layout();
        let mut reports = healthy(&l, l.master());
        reports[0].state = ContainerState::Exited;
        reports[0].replication = None;
        if let Some(Ok(v)) = reports[3].sentinel.as_mut() {
            v.master_flags = vec!["master".into(), "s_down".into()];
            v.sentinels[0].flags = vec!["sentinel".into(), "s_down".into()];
        }
        let h = evaluate(&l, &reports, 0);
        assert!(!h.healthy);
        let reasons: Vec<String> = h
            .problems
            .iter()
            .map(|p| format!("{}: {}", p.node, p.reason))
            .collect();
        assert_eq!(
            reasons,
            vec![
                "demo-master: container is exited",
                "demo-sentinel-1: sees the master as down (master,s_down)",
                "demo-sentinel-1: sees 1 of 2 other sentinels",
            ]
        );
    }

    #[test]
    fn too_few_sentinels_block_a_failover() {
        let l = layout();
        let mut reports = healthy(&l, l.master());
        assert_eq!(failover_blocker(&reports, 2), None);
        for r in reports.iter_mut().skip(4) {
            r.state = ContainerState::Exited;
            r.sentinel = None;
        }
        assert_eq!(
            failover_blocker(&reports, 2).as_deref(),
            Some("a failover is impossible now: only 1 of 3 sentinels answer and the quorum is 2")
        );
        assert_eq!(
            failover_blocker(&reports, 1).as_deref(),
            Some(
                "a failover is impossible now: it needs a majority of the sentinels (2 of 3) to authorize it and only 1 answer"
            )
        );
    }

    #[test]
    fn disagreeing_sentinels_are_a_problem() {
        let l = layout();
        let mut reports = healthy(&l, l.master());
        if let Some(Ok(v)) = reports[5].sentinel.as_mut() {
            v.master = Some((l.node("replica-1").unwrap().ip.to_string(), 6379));
        }
        let h = evaluate(&l, &reports, 0);
        assert!(!h.sentinels_agree);
        assert!(
            h.problems
                .iter()
                .any(|p| p.reason.starts_with("the sentinels disagree"))
        );
    }
}
