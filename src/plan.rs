//! `up` as data: desired layout vs observed resources -> the whole of what `up` does, in
//! phases. Pure: the plan's `Display` is the `--dry-run` output and the test oracle; the
//! executor (`crate::executor`) runs any plan, step by step as listed, and decides nothing.
//!
//! Order and why: the network and volumes; every container created with its config; the
//! master's process started alone first (a replica that cannot reach its master retries only
//! once a second); the other nodes started; revived data nodes pointed at the master; then
//! the rolling changes one at a time, each after the group is healthy again (the master's
//! last, after a failover moved mastership away); the removals and a `SENTINEL RESET` so
//! the sentinels forget them; finally the wait until healthy. Sentinel's ping period is
//! 100 ms while the group forms and is put back in a `finally` phase that always runs.

use std::collections::HashMap;
use std::fmt;
use std::net::Ipv4Addr;
use std::path::PathBuf;

use crate::observed::{ContainerState, Observed, ObservedContainer};
use crate::topology::{Layout, Node, Role, Subnet};

/// Sentinel's default ping period (its link retry interval), and the one used while a
/// group forms: sentinels started a moment apart find some peers not listening yet, and
/// retry a failed link only once per period.
pub const SENTINEL_PING_PERIOD_MS: u64 = 1000;
pub const FORMING_PING_PERIOD_MS: u64 = 100;

/// One action and the reason for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// A private directory on this machine (the group's state directory).
    CreateHostDir {
        path: PathBuf,
    },
    /// Files on this machine, written in order (0600): what they hold is named, never
    /// shown.
    WriteHostFiles {
        what: String,
        paths: Vec<PathBuf>,
        reason: String,
    },
    CreateNetwork {
        name: String,
        subnet: Subnet,
    },
    CreateVolume {
        name: String,
    },
    /// Create the container and copy its config in; not started. `replace`: remove a
    /// leftover container of that name first (one that was created but never started, or
    /// a stopped one whose config changed).
    CreateContainer {
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
    /// Put a running container back on the group network at its fixed address (it was
    /// disconnected: a partition).
    ReconnectNode {
        node: String,
        reason: String,
    },
    /// A restarted, unpaused or reconnected data node keeps the role it had: an old master
    /// would serve as a second master until Sentinel notices (up to 10 s). If it says it is
    /// a master, `REPLICAOF master` and `CONFIG REWRITE`, as Sentinel itself would.
    FollowMaster {
        node: String,
        master: Ipv4Addr,
    },
    /// Poll until the group is healthy (under `up`'s timeout). `progress`: show each node's
    /// line (the final wait); otherwise silent (between rolling steps).
    WaitHealthy {
        progress: bool,
    },
    /// Move mastership away (SENTINEL FAILOVER) and wait until every sentinel names the
    /// new master; later steps follow the new master.
    Failover {
        from: String,
        reason: String,
    },
    /// Remove and create again, following the current master, and start.
    RecreateNode {
        node: String,
        reason: String,
    },
    /// Stop cleanly and remove a node the topology no longer has; its data volume stays.
    RemoveNode {
        node: String,
        reason: String,
    },
    /// `SENTINEL RESET` on every sentinel, so that removed nodes leave their tables.
    ResetSentinels,
    /// Undo a failed `up`: remove a container, network or volume it created (`id` is the
    /// engine's id, `name` for people).
    DiscardContainer {
        id: String,
        name: String,
    },
    DiscardNetwork {
        id: String,
        name: String,
    },
    DiscardVolume {
        name: String,
    },
    /// `SENTINEL DEBUG ping-period` on every sentinel, each as soon as it answers.
    SetPingPeriod {
        ms: u64,
    },
}

impl Step {
    /// The node (container name) the step is about, if any.
    pub fn node(&self) -> Option<&str> {
        match self {
            Step::CreateContainer { node, .. }
            | Step::StartNode { node, .. }
            | Step::UnpauseNode { node, .. }
            | Step::ReconnectNode { node, .. }
            | Step::FollowMaster { node, .. }
            | Step::RecreateNode { node, .. }
            | Step::RemoveNode { node, .. } => Some(node),
            Step::Failover { from, .. } => Some(from),
            Step::CreateNetwork { .. }
            | Step::DiscardContainer { .. }
            | Step::DiscardNetwork { .. }
            | Step::DiscardVolume { .. }
            | Step::CreateHostDir { .. }
            | Step::WriteHostFiles { .. }
            | Step::CreateVolume { .. }
            | Step::WaitHealthy { .. }
            | Step::ResetSentinels
            | Step::SetPingPeriod { .. } => None,
        }
    }

    /// Whether the step changes anything (waiting does not).
    pub fn changes_something(&self) -> bool {
        !matches!(self, Step::WaitHealthy { .. })
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::CreateHostDir { path } => write!(f, "create directory `{}`", path.display()),
            Step::DiscardContainer { name, .. } => {
                write!(f, "remove container `{name}`: this `up` created it")
            }
            Step::DiscardNetwork { name, .. } => {
                write!(f, "remove network `{name}`: this `up` created it")
            }
            Step::DiscardVolume { name } => {
                write!(f, "remove volume `{name}`: this `up` created it")
            }
            Step::WriteHostFiles {
                what,
                paths,
                reason,
            } => {
                let paths: Vec<String> =
                    paths.iter().map(|p| format!("`{}`", p.display())).collect();
                write!(f, "write {what}: {} ({reason})", paths.join(", "))
            }
            Step::CreateNetwork { name, subnet } => write!(f, "create network `{name}` ({subnet})"),
            Step::CreateVolume { name } => write!(f, "create volume `{name}`"),
            Step::CreateContainer {
                node,
                replace,
                reason,
            } => {
                let old = if *replace {
                    " (removing the old one first)"
                } else {
                    ""
                };
                write!(
                    f,
                    "create container `{node}` with its config{old}: {reason}"
                )
            }
            Step::StartNode { node, reason } => write!(f, "start `{node}`: {reason}"),
            Step::UnpauseNode { node, reason } => write!(f, "unpause `{node}`: {reason}"),
            Step::ReconnectNode { node, reason } => {
                write!(f, "reconnect `{node}` to the group network: {reason}")
            }
            Step::FollowMaster { node, master } => write!(
                f,
                "make `{node}` a replica of {master} if it says it is a master (REPLICAOF, CONFIG REWRITE)"
            ),
            Step::WaitHealthy { progress: false } => {
                write!(f, "wait until the group is healthy")
            }
            Step::WaitHealthy { progress: true } => write!(
                f,
                "wait until the group is healthy, showing what each node waits for"
            ),
            Step::Failover { from, reason } => write!(f, "fail over away from `{from}`: {reason}"),
            Step::RecreateNode { node, reason } => write!(
                f,
                "recreate `{node}` following the current master: {reason}"
            ),
            Step::RemoveNode { node, reason } => write!(f, "remove `{node}`: {reason}"),
            Step::ResetSentinels => write!(
                f,
                "SENTINEL RESET on every sentinel, so that they forget the removed nodes"
            ),
            Step::SetPingPeriod { ms } if *ms == SENTINEL_PING_PERIOD_MS => write!(
                f,
                "set Sentinel's ping period back to {ms} ms on every sentinel"
            ),
            Step::SetPingPeriod { ms } => write!(
                f,
                "set Sentinel's ping period to {ms} ms on every sentinel while the group forms"
            ),
        }
    }
}

/// Steps that run together; the next phase starts when every one has finished.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Phase {
    pub steps: Vec<Step>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The master every new node is configured to follow (until a failover step moves it).
    pub master: Ipv4Addr,
    pub phases: Vec<Phase>,
    /// Run after the phases whatever happened, also when a step failed.
    pub finally: Vec<Step>,
}

impl Plan {
    /// The host's own changes first: `dirs` in a phase, then `files` in the next (each
    /// phase only when it has steps).
    pub fn with_host_steps(mut self, dirs: Vec<Step>, files: Vec<Step>) -> Plan {
        for steps in [files, dirs] {
            if !steps.is_empty() {
                self.phases.insert(0, Phase { steps });
            }
        }
        self
    }

    /// No step changes anything: `up` only waits until the group is healthy.
    pub fn is_empty(&self) -> bool {
        !self.steps().any(Step::changes_something)
    }

    /// Every step in the order it runs: the phases', then the `finally` ones.
    pub fn steps(&self) -> impl Iterator<Item = &Step> {
        self.phases
            .iter()
            .flat_map(|p| p.steps.iter())
            .chain(&self.finally)
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            writeln!(
                f,
                "nothing to do: every node exists, runs and has its current config; only:"
            )?;
        } else {
            writeln!(
                f,
                "each phase starts when the one before has finished; its steps run together"
            )?;
        }
        let mut number = 0;
        for (i, phase) in self.phases.iter().enumerate() {
            writeln!(f, "phase {}:", i + 1)?;
            for step in &phase.steps {
                number += 1;
                writeln!(f, "{number:>4}. {step}")?;
            }
        }
        if !self.finally.is_empty() {
            writeln!(f, "finally, also when a step fails:")?;
            for step in &self.finally {
                number += 1;
                writeln!(f, "{number:>4}. {step}")?;
            }
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
    let mut nodes = NodeSteps::default();
    // Data nodes before sentinels: the order of the layout.
    for node in &layout.nodes {
        let want = desired_hash
            .get(&node.key)
            .map(String::as_str)
            .unwrap_or("");
        nodes.add(node, observed, want, master);
    }
    let NodeSteps {
        create,
        start_master,
        start_others,
        follow,
        mut rolling,
        touches_sentinels,
    } = nodes;
    let setup = setup_steps(layout, observed);
    // Recreate the master last: by then the replicas and sentinels are current.
    let master_name = layout.node_by_ip(master).map(|n| n.name.as_str());
    rolling.sort_by_key(|s| {
        matches!(s, Step::Failover { .. } | Step::RecreateNode { .. }) && s.node() == master_name
    });
    let removals = removals(layout, observed);

    let mut phases: Vec<Phase> = [setup, create, start_master, start_others, follow]
        .into_iter()
        .filter(|steps| !steps.is_empty())
        .map(|steps| Phase { steps })
        .collect();
    // One node at a time, each after the group is healthy again.
    for step in rolling {
        phases.push(Phase {
            steps: vec![Step::WaitHealthy { progress: false }],
        });
        phases.push(Phase { steps: vec![step] });
    }
    if !removals.is_empty() {
        phases.push(Phase { steps: removals });
        phases.push(Phase {
            steps: vec![Step::ResetSentinels],
        });
    }
    let mut last = Vec::new();
    let mut finally = Vec::new();
    if touches_sentinels {
        last.push(Step::SetPingPeriod {
            ms: FORMING_PING_PERIOD_MS,
        });
        finally.push(Step::SetPingPeriod {
            ms: SENTINEL_PING_PERIOD_MS,
        });
    }
    last.push(Step::WaitHealthy { progress: true });
    phases.push(Phase { steps: last });
    Plan {
        master,
        phases,
        finally,
    }
}

/// Undo a failed `up`: remove what exists `now` and did not `before`, containers first
/// (a network or volume in use cannot go).
pub fn rollback(before: &Observed, now: &Observed) -> Plan {
    let containers: Vec<Step> = now
        .containers
        .iter()
        .filter(|c| !before.containers.iter().any(|b| b.id == c.id))
        .map(|c| Step::DiscardContainer {
            id: c.id.clone(),
            name: c.name.clone(),
        })
        .collect();
    let mut rest: Vec<Step> = now
        .networks
        .iter()
        .filter(|n| !before.networks.iter().any(|b| b.id == n.id))
        .map(|n| Step::DiscardNetwork {
            id: n.id.clone(),
            name: n.name.clone(),
        })
        .collect();
    rest.extend(
        now.volumes
            .iter()
            .filter(|v| !before.volumes.contains(v))
            .map(|v| Step::DiscardVolume { name: v.clone() }),
    );
    Plan {
        master: Ipv4Addr::UNSPECIFIED,
        phases: [containers, rest]
            .into_iter()
            .filter(|steps| !steps.is_empty())
            .map(|steps| Phase { steps })
            .collect(),
        finally: Vec::new(),
    }
}

/// The network and volumes to create.
fn setup_steps(layout: &Layout, observed: &Observed) -> Vec<Step> {
    let mut setup = Vec::new();
    if observed.networks.is_empty() {
        setup.push(Step::CreateNetwork {
            name: layout.network(),
            subnet: layout.subnet,
        });
    }
    for volume in layout.nodes.iter().filter_map(|n| n.volume()) {
        if !observed.volumes.contains(&volume) {
            setup.push(Step::CreateVolume { name: volume });
        }
    }
    setup
}

/// Each node's steps, by when they run.
#[derive(Default)]
struct NodeSteps {
    create: Vec<Step>,
    start_master: Vec<Step>,
    start_others: Vec<Step>,
    follow: Vec<Step>,
    rolling: Vec<Step>,
    touches_sentinels: bool,
}

impl NodeSteps {
    /// What `node` needs: created, replaced, recreated in turn, or brought back.
    fn add(&mut self, node: &Node, observed: &Observed, want: &str, master: Ipv4Addr) {
        let name = node.name.clone();
        let mut fresh = |replace: bool, reason: String| {
            self.create.push(Step::CreateContainer {
                node: name.clone(),
                replace,
                reason,
            });
            Step::StartNode {
                node: name.clone(),
                reason: "created above".to_string(),
            }
        };
        let start = match observed.container(&node.key) {
            None => Some(fresh(false, "missing".to_string())),
            // Never started: an interrupted `up` may have left it without its config file.
            Some(c) if c.state == ContainerState::Created => {
                Some(fresh(true, "created but never started".to_string()))
            }
            // Not serving anything: replace it now, with the others, instead of waiting
            // for a healthy group that cannot be healthy without it.
            Some(c)
                if c.config_hash != want
                    && !matches!(c.state, ContainerState::Running | ContainerState::Paused) =>
            {
                Some(fresh(
                    true,
                    format!("config changed (container is {})", c.state),
                ))
            }
            Some(c) if c.config_hash != want => {
                if node.ip == master {
                    self.rolling.push(Step::Failover {
                        from: name.clone(),
                        reason: "its config changed and the master must not go away".to_string(),
                    });
                }
                self.rolling.push(Step::RecreateNode {
                    node: name.clone(),
                    reason: "config changed".to_string(),
                });
                self.touches_sentinels |= node.role == Role::Sentinel;
                None
            }
            Some(c) => revive(node, c, master, &mut self.follow),
        };
        if let Some(step) = start {
            self.touches_sentinels |= node.role == Role::Sentinel;
            if node.ip == master {
                self.start_master.push(step);
            } else {
                self.start_others.push(step);
            }
        }
    }
}

/// A container that exists with the wanted config: started, unpaused or reconnected if it
/// does not serve; a data node brought back follows the master.
fn revive(
    node: &Node,
    c: &ObservedContainer,
    master: Ipv4Addr,
    follow: &mut Vec<Step>,
) -> Option<Step> {
    let name = node.name.clone();
    let revive = match c.state {
        ContainerState::Running if c.ip.is_none() => Some(Step::ReconnectNode {
            node: name.clone(),
            reason: "it runs but is not on the network".to_string(),
        }),
        ContainerState::Running => None,
        ContainerState::Paused => Some(Step::UnpauseNode {
            node: name.clone(),
            reason: "paused".to_string(),
        }),
        state => Some(Step::StartNode {
            node: name.clone(),
            reason: format!("container is {state}"),
        }),
    };
    if revive.is_some() && node.role.is_data() && node.ip != master {
        follow.push(Step::FollowMaster {
            node: name.clone(),
            master,
        });
    }
    revive
}

/// Nodes the topology no longer has (it was scaled down).
fn removals(layout: &Layout, observed: &Observed) -> Vec<Step> {
    observed
        .containers
        .iter()
        .filter(|c| layout.node(&c.node).is_none())
        .map(|c| {
            let kept = if c.is_sentinel() {
                ""
            } else {
                " (its data volume is kept)"
            };
            Step::RemoveNode {
                node: c.name.clone(),
                reason: format!("not in the topology any more{kept}"),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observed::{ObservedContainer, ObservedNetwork};
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
                    created_as: Some(n.role),
                    state: ContainerState::Running,
                    config_hash: format!("h-{}", n.key),
                    ip: Some(n.ip),
                    host_port: Some(n.host_port),
                    tls: false,
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
    fn a_failed_up_is_undone_by_removing_only_what_it_created() {
        let l = layout();
        let before = healthy_group(&l);
        let mut now = before.clone();
        let mut extra = now.containers[0].clone();
        extra.id = "new-container".into();
        extra.name = "demo-replica-3".into();
        now.containers.push(extra);
        now.volumes.push("demo-replica-3-data".into());
        insta::assert_snapshot!(rollback(&before, &now).to_string(), @r"
        each phase starts when the one before has finished; its steps run together
        phase 1:
           1. remove container `demo-replica-3`: this `up` created it
        phase 2:
           2. remove volume `demo-replica-3-data`: this `up` created it
        ");
        assert!(rollback(&before, &before).is_empty());
    }

    #[test]
    fn what_up_writes_on_this_machine_comes_first_and_names_no_secret() {
        let l = layout();
        let dirs = vec![Step::CreateHostDir {
            path: "/state/demo".into(),
        }];
        let files = vec![
            Step::WriteHostFiles {
                what: "the generated group password".into(),
                paths: vec!["/state/demo/password".into()],
                reason: "missing".into(),
            },
            Step::WriteHostFiles {
                what: "the generated CA and certificates".into(),
                paths: vec![
                    "/state/demo/tls/ca.key".into(),
                    "/state/demo/tls/ca.crt".into(),
                ],
                reason: "missing".into(),
            },
        ];
        let plan =
            plan(&l, &hashes(&l), &healthy_group(&l), l.master().ip).with_host_steps(dirs, files);
        insta::assert_snapshot!(plan.to_string(), @r"
        each phase starts when the one before has finished; its steps run together
        phase 1:
           1. create directory `/state/demo`
        phase 2:
           2. write the generated group password: `/state/demo/password` (missing)
           3. write the generated CA and certificates: `/state/demo/tls/ca.key`, `/state/demo/tls/ca.crt` (missing)
        phase 3:
           4. wait until the group is healthy, showing what each node waits for
        ");
    }

    #[test]
    fn a_fresh_group_creates_everything_in_order() {
        let l = layout();
        let plan = plan(&l, &hashes(&l), &Observed::default(), l.master().ip);
        insta::assert_snapshot!(plan.to_string(), @r"
        each phase starts when the one before has finished; its steps run together
        phase 1:
           1. create network `demo-net` (172.28.7.0/24)
           2. create volume `demo-master-data`
           3. create volume `demo-replica-1-data`
           4. create volume `demo-replica-2-data`
        phase 2:
           5. create container `demo-master` with its config: missing
           6. create container `demo-replica-1` with its config: missing
           7. create container `demo-replica-2` with its config: missing
           8. create container `demo-sentinel-1` with its config: missing
           9. create container `demo-sentinel-2` with its config: missing
          10. create container `demo-sentinel-3` with its config: missing
        phase 3:
          11. start `demo-master`: created above
        phase 4:
          12. start `demo-replica-1`: created above
          13. start `demo-replica-2`: created above
          14. start `demo-sentinel-1`: created above
          15. start `demo-sentinel-2`: created above
          16. start `demo-sentinel-3`: created above
        phase 5:
          17. set Sentinel's ping period to 100 ms on every sentinel while the group forms
          18. wait until the group is healthy, showing what each node waits for
        finally, also when a step fails:
          19. set Sentinel's ping period back to 1000 ms on every sentinel
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
        observed.containers[1].state = ContainerState::Exited;
        observed.containers[2].state = ContainerState::Paused;
        observed.containers[3].state = ContainerState::Created;
        observed.containers.retain(|c| c.node != "sentinel-3");
        observed.containers[0].ip = None;
        let mut want = hashes(&l);
        observed.containers[4].state = ContainerState::Exited;
        want.insert("sentinel-2".into(), "changed".into());
        let plan = plan(&l, &want, &observed, l.master().ip);
        insta::assert_snapshot!(plan.to_string(), @r"
        each phase starts when the one before has finished; its steps run together
        phase 1:
           1. create container `demo-sentinel-1` with its config (removing the old one first): created but never started
           2. create container `demo-sentinel-2` with its config (removing the old one first): config changed (container is exited)
           3. create container `demo-sentinel-3` with its config: missing
        phase 2:
           4. reconnect `demo-master` to the group network: it runs but is not on the network
        phase 3:
           5. start `demo-replica-1`: container is exited
           6. unpause `demo-replica-2`: paused
           7. start `demo-sentinel-1`: created above
           8. start `demo-sentinel-2`: created above
           9. start `demo-sentinel-3`: created above
        phase 4:
          10. make `demo-replica-1` a replica of 172.28.7.10 if it says it is a master (REPLICAOF, CONFIG REWRITE)
          11. make `demo-replica-2` a replica of 172.28.7.10 if it says it is a master (REPLICAOF, CONFIG REWRITE)
        phase 5:
          12. set Sentinel's ping period to 100 ms on every sentinel while the group forms
          13. wait until the group is healthy, showing what each node waits for
        finally, also when a step fails:
          14. set Sentinel's ping period back to 1000 ms on every sentinel
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
        each phase starts when the one before has finished; its steps run together
        phase 1:
           1. wait until the group is healthy
        phase 2:
           2. recreate `demo-master` following the current master: config changed
        phase 3:
           3. wait until the group is healthy
        phase 4:
           4. recreate `demo-replica-2` following the current master: config changed
        phase 5:
           5. wait until the group is healthy
        phase 6:
           6. fail over away from `demo-replica-1`: its config changed and the master must not go away
        phase 7:
           7. wait until the group is healthy
        phase 8:
           8. recreate `demo-replica-1` following the current master: config changed
        phase 9:
           9. wait until the group is healthy, showing what each node waits for
        ");
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
        each phase starts when the one before has finished; its steps run together
        phase 1:
           1. remove `demo-replica-3`: not in the topology any more (its data volume is kept)
           2. remove `demo-sentinel-4`: not in the topology any more
        phase 2:
           3. SENTINEL RESET on every sentinel, so that they forget the removed nodes
        phase 3:
           4. wait until the group is healthy, showing what each node waits for
        ");
    }

    #[test]
    fn after_a_failover_the_stopped_old_master_comes_back_as_a_replica() {
        let l = layout();
        let mut observed = healthy_group(&l);
        observed.containers[0].state = ContainerState::Exited;
        let current = l.node("replica-1").unwrap().ip;
        let plan = plan(&l, &hashes(&l), &observed, current);
        insta::assert_snapshot!(plan.to_string(), @r"
        each phase starts when the one before has finished; its steps run together
        phase 1:
           1. start `demo-master`: container is exited
        phase 2:
           2. make `demo-master` a replica of 172.28.7.11 if it says it is a master (REPLICAOF, CONFIG REWRITE)
        phase 3:
           3. wait until the group is healthy, showing what each node waits for
        ");
    }

    #[test]
    fn a_changed_config_on_the_master_fails_over_first() {
        let l = layout();
        let mut want = hashes(&l);
        want.insert("master".into(), "new".into());
        let plan = plan(&l, &want, &healthy_group(&l), l.master().ip);
        insta::assert_snapshot!(plan.to_string(), @r"
        each phase starts when the one before has finished; its steps run together
        phase 1:
           1. wait until the group is healthy
        phase 2:
           2. fail over away from `demo-master`: its config changed and the master must not go away
        phase 3:
           3. wait until the group is healthy
        phase 4:
           4. recreate `demo-master` following the current master: config changed
        phase 5:
           5. wait until the group is healthy, showing what each node waits for
        ");
    }

    #[test]
    fn a_changed_sentinel_is_recreated_with_the_ping_period_restored_finally() {
        let l = layout();
        let mut want = hashes(&l);
        want.insert("sentinel-1".into(), "new".into());
        let plan = plan(&l, &want, &healthy_group(&l), l.master().ip);
        insta::assert_snapshot!(plan.to_string(), @r"
        each phase starts when the one before has finished; its steps run together
        phase 1:
           1. wait until the group is healthy
        phase 2:
           2. recreate `demo-sentinel-1` following the current master: config changed
        phase 3:
           3. set Sentinel's ping period to 100 ms on every sentinel while the group forms
           4. wait until the group is healthy, showing what each node waits for
        finally, also when a step fails:
           5. set Sentinel's ping period back to 1000 ms on every sentinel
        ");
    }
}
