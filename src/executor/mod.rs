//! Runs any plan: its phases in order, the steps of a phase concurrently, then the
//! `finally` steps whatever happened. Decides nothing: each step is one action, done as
//! written. The only state it carries is what a step found out (the master after a
//! failover, the health the last wait saw).

mod sentinel;

use std::net::Ipv4Addr;
use std::time::Duration;

use futures_util::future::try_join_all;

use crate::docker::apply::Discard;
use crate::docker::apply::EngineSteps;
use crate::health::Health;
use crate::plan::{Plan, Step};
use crate::probe::Probe;
use crate::topology::Layout;
use crate::wait;

pub struct Executor<'a> {
    pub engine: EngineSteps<'a>,
    pub probe: &'a Probe,
    /// The files on this machine the plan's host steps write.
    pub host: &'a crate::host_files::HostFiles,
    /// For each wait: until healthy, until the sentinels agree, until a node answers.
    pub timeout: Duration,
}

/// What a step found out that later steps need.
#[derive(Default)]
struct Outcome {
    /// A failover moved the master here.
    master: Option<Ipv4Addr>,
    /// The group was healthy, as this wait saw it.
    health: Option<Health>,
}

impl Executor<'_> {
    /// Run the plan; returns the health the last wait saw. The `finally` steps run on
    /// every way out of the phases, failure included.
    pub async fn run(&self, plan: &Plan) -> anyhow::Result<Option<Health>> {
        let result = self.run_phases(plan).await;
        // After a failure the sentinels may never answer: do not hold the error long.
        let patience = Duration::from_secs(if result.is_ok() { 10 } else { 2 });
        self.finally(plan).run(patience).await;
        result
    }

    /// The plan's `finally` steps with what they need, owned: `up` keeps a copy to run
    /// them also when Ctrl-C drops the executor in the middle of the plan.
    pub fn finally(&self, plan: &Plan) -> Finally {
        Finally {
            probe: self.probe.clone(),
            layout: self.engine.layout.clone(),
            master_name: self.engine.topology.sentinel.master_name.clone(),
            steps: plan.finally.clone(),
        }
    }

    async fn run_phases(&self, plan: &Plan) -> anyhow::Result<Option<Health>> {
        let mut master = plan.master;
        let mut health = None;
        for phase in &plan.phases {
            // The first failure ends the phase: "broken" fails at once.
            let outcomes = try_join_all(phase.steps.iter().map(|s| self.step(s, master))).await?;
            for outcome in outcomes {
                master = outcome.master.unwrap_or(master);
                health = outcome.health.or(health);
            }
        }
        Ok(health)
    }

    /// One step; `master` is who new and recreated nodes follow.
    async fn step(&self, step: &Step, master: Ipv4Addr) -> anyhow::Result<Outcome> {
        let engine = &self.engine;
        let layout = engine.layout;
        let master_name = &engine.topology.sentinel.master_name;
        match step {
            Step::CreateHostDir { path } => self.host.create_dir(path)?,
            Step::DiscardContainer { id, .. } => engine.discard(&Discard::Container(id)).await?,
            Step::DiscardNetwork { id, .. } => engine.discard(&Discard::Network(id)).await?,
            Step::DiscardVolume { name } => engine.discard(&Discard::Volume(name)).await?,
            Step::WriteHostFiles { paths, .. } => self.host.write(paths)?,
            Step::CreateNetwork { name, subnet } => engine.network(name, *subnet).await?,
            Step::CreateVolume { name } => engine.volume(name).await?,
            Step::CreateContainer { node, replace, .. } => {
                engine.create(node, *replace, master).await?
            }
            Step::StartNode { node, .. } => engine.start(node).await?,
            Step::UnpauseNode { node, .. } => engine.unpause(node).await?,
            Step::ReconnectNode { node, .. } => engine.reconnect(node).await?,
            Step::RecreateNode { node, .. } => engine.recreate(node, master).await?,
            Step::RemoveNode { node, .. } => engine.remove(node).await?,
            Step::FollowMaster { node, master } => {
                let node = engine.node(node)?;
                sentinel::follow_master(self.probe, engine.layout, node, *master, self.timeout)
                    .await?
            }
            Step::Failover { from, .. } => {
                let new = sentinel::failover(
                    engine.report,
                    self.probe,
                    layout,
                    master_name,
                    from,
                    self.timeout,
                )
                .await?;
                return Ok(Outcome {
                    master: Some(new),
                    health: None,
                });
            }
            Step::ResetSentinels => {
                sentinel::reset_sentinels(self.probe, layout, master_name).await?
            }
            Step::SetPingPeriod { ms } => {
                // Best effort: a sentinel that never answers is reported by the wait.
                let patience = Duration::from_secs(10);
                sentinel::set_ping_period(self.probe, layout, *ms, patience).await
            }
            Step::WaitHealthy { progress } => {
                let report = engine.report;
                let group = wait::Group {
                    engine: engine.engine,
                    layout,
                    probe: self.probe,
                    master_name,
                    max_lag_bytes: 0,
                };
                let mut last = None;
                let waiting = group.healthy(&mut last, |reports, health| {
                    if !progress {
                        return;
                    }
                    // Each node's line says what it is still waiting for, or that it is ready.
                    for r in reports {
                        let problem = health.problems.iter().find(|p| p.node == r.node.name);
                        match problem {
                            Some(p) => report.node(&r.node.name, format!("waiting: {}", p.reason)),
                            None if r.reported_role().is_some() => {
                                report.node(&r.node.name, "ready")
                            }
                            None => {}
                        }
                    }
                });
                let waited = tokio::time::timeout(self.timeout, waiting).await;
                let health = match waited {
                    Ok(health) => health?,
                    Err(_) => return Err(group.not_healthy(last, self.timeout).await),
                };
                return Ok(Outcome {
                    master: None,
                    health: Some(health),
                });
            }
        }
        Ok(Outcome::default())
    }
}

/// Steps that run on every way out of a plan. Only Redis-side steps can be planned here
/// (`plan` puts nothing else in `finally`): they need no engine, so they can run after
/// the executor is gone.
#[derive(Clone)]
pub struct Finally {
    probe: Probe,
    layout: Layout,
    master_name: String,
    steps: Vec<Step>,
}

impl Finally {
    /// Best effort: never an error of its own (the run's error, if any, is the one to
    /// report); `patience` bounds the wait for each sentinel to answer.
    pub async fn run(&self, patience: Duration) {
        for step in &self.steps {
            match step {
                Step::SetPingPeriod { ms } => {
                    sentinel::set_ping_period(&self.probe, &self.layout, *ms, patience).await
                }
                Step::ResetSentinels => {
                    let reset =
                        sentinel::reset_sentinels(&self.probe, &self.layout, &self.master_name);
                    let _ = tokio::time::timeout(patience, reset).await;
                }
                other => debug_assert!(false, "`{other}` cannot run in a finally phase"),
            }
        }
    }
}
