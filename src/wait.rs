//! Readiness as data plus one loop: wait until the group is healthy (a stopped container
//! fails at once with its logs), or until the sentinels agree on a new master.

use std::time::{Duration, Instant};

use futures_util::future::join_all;

use crate::docker::Engine;
use crate::docker::observe::observe;
use crate::health::{self, Health, NodeReport};
use crate::probe::Probe;
use crate::probe::survey::{addr, probe_all};
use crate::topology::{Layout, Node};

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
                    && c.state.has_stopped()
                {
                    let logs = engine.logs_tail(&node.name, 15).await.unwrap_or_default();
                    return Err(WaitError::NodeDied {
                        node: node.name.clone(),
                        state: c.state.to_string(),
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
