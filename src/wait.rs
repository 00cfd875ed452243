//! Waiting, in one shape: a condition plus an interval ([`until`]), never a deadline. The
//! caller owns the timeout and wraps the wait in `tokio::time::timeout` (kube-runtime's
//! `await_condition`). On top of it: until the group is healthy (a stopped container
//! fails at once with its logs), until the sentinels agree on a new master.

use std::convert::Infallible;
use std::time::Duration;

use futures_util::future::join_all;

use crate::docker::Engine;
use crate::docker::observe::observe;
use crate::health::{self, Health, NodeReport};
use crate::observed::ContainerState;
use crate::probe::Probe;
use crate::probe::survey::{addr, probe_all};
use crate::topology::{Layout, Node};

/// Look at `condition` every `interval` until it holds (`Ok(Some)`) or is broken (`Err`,
/// returned at once). Never times out: wrap it in `tokio::time::timeout`.
pub async fn until<T, E>(
    interval: Duration,
    mut condition: impl AsyncFnMut() -> Result<Option<T>, E>,
) -> Result<T, E> {
    loop {
        if let Some(done) = condition().await? {
            return Ok(done);
        }
        tokio::time::sleep(interval).await;
    }
}

/// [`until`] for a condition that cannot break.
pub async fn until_true(interval: Duration, mut condition: impl AsyncFnMut() -> bool) {
    let _: Result<(), Infallible> =
        until(interval, async || Ok(condition().await.then_some(()))).await;
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
        state: ContainerState,
        logs: String,
    },
}

/// The group a health wait watches, and how far behind a replica may be.
pub struct Group<'a> {
    pub engine: &'a Engine,
    pub layout: &'a Layout,
    pub probe: &'a Probe,
    pub master_name: &'a str,
    pub max_lag_bytes: i64,
}

impl Group<'_> {
    /// Until the group is healthy; `last` keeps the latest verdict, for the caller's message
    /// when its timeout fires ([`Group::not_healthy`]). A container that stops is "broken":
    /// fail at once with its logs instead of waiting out the caller's timeout.
    pub async fn healthy(
        &self,
        last: &mut Option<Health>,
        mut on_round: impl FnMut(&[NodeReport], &Health),
    ) -> anyhow::Result<Health> {
        let (engine, layout) = (self.engine, self.layout);
        let fast = self
            .probe
            .clone()
            .with_timeouts(Duration::from_millis(250), Duration::from_millis(500));
        let mut observed = observe(engine, &layout.cluster).await?;
        let mut round = 0u32;
        until(Duration::from_millis(50), async || {
            round += 1;
            // Looking at the containers costs an engine round trip: every tenth round.
            if round.is_multiple_of(10) {
                observed = observe(engine, &layout.cluster).await?;
                self.stopped(&observed).await?;
            }
            let reports = probe_all(layout, &observed, &fast, self.master_name).await;
            let health = health::evaluate(layout, &reports, self.max_lag_bytes);
            on_round(&reports, &health);
            *last = Some(health.clone());
            anyhow::Ok(health.healthy.then_some(health))
        })
        .await
    }

    /// A node whose container stopped, as an error with its last log lines.
    async fn stopped(&self, observed: &crate::observed::Observed) -> Result<(), WaitError> {
        for node in &self.layout.nodes {
            if let Some(c) = observed.container(&node.key)
                && c.state.has_stopped()
            {
                let logs = self
                    .engine
                    .logs_tail(&node.name, 15)
                    .await
                    .unwrap_or_default();
                return Err(WaitError::NodeDied {
                    node: node.name.clone(),
                    state: c.state,
                    logs: indent(&logs),
                });
            }
        }
        Ok(())
    }

    /// The error for a health wait whose timeout fired: the last verdict's problems, each
    /// with the node's last log lines.
    pub async fn not_healthy(&self, last: Option<Health>, waited: Duration) -> anyhow::Error {
        let mut details = String::new();
        let problems = last.map(|h| h.problems).unwrap_or_default();
        if problems.is_empty() {
            details.push_str("  no round of checks finished\n");
        }
        for p in &problems {
            details.push_str(&format!("  {}: {}\n", p.node, p.reason));
            if self.layout.node(&p.node).is_some() {
                let logs = self.engine.logs_tail(&p.node, 3).await.unwrap_or_default();
                if !logs.trim().is_empty() {
                    details.push_str(&indent(&logs));
                }
            }
        }
        WaitError::Timeout {
            cluster: self.layout.cluster.clone(),
            secs: waited.as_secs(),
            details,
        }
        .into()
    }
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("      | {l}\n")).collect()
}

/// What the sentinels said last while waiting for a new master, and how many answered.
#[derive(Debug, Clone, Default)]
pub struct SentinelsSaid {
    pub what: String,
    pub answering: usize,
}

/// Until the watching sentinels all name one master other than `old` and that node says
/// it is master; `last` keeps what they said, for the caller's message when its timeout
/// fires.
pub async fn new_master(
    layout: &Layout,
    sentinels: &[&Node],
    probe: &Probe,
    master_name: &str,
    old: &Node,
    last: &mut SentinelsSaid,
) -> Node {
    let quick = probe
        .clone()
        .with_timeouts(Duration::from_millis(200), Duration::from_millis(300));
    last.answering = sentinels.len();
    let agreed: Result<Node, Infallible> = until(Duration::from_millis(20), async || {
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
                    .and_then(|(host, port)| layout.ip_of(host, *port))
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
            return Ok(Some(node.clone()));
        }
        *last = SentinelsSaid {
            what: format!(
                "the sentinels answer {}",
                ips.iter()
                    .map(|ip| ip.map_or("nothing".to_string(), |ip| ip.to_string()))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            answering: answers.iter().filter(|a| a.is_ok()).count(),
        };
        Ok(None)
    })
    .await;
    match agreed {
        Ok(node) => node,
        Err(never) => match never {},
    }
}
