//! The plan's Redis-side steps: Sentinel's ping period, revived nodes pointed at the
//! master, a failover before the master is recreated, and sentinels told to forget removed
//! nodes. Side effects on Redis and Sentinel only; which of them run, and when, is the plan's.

use std::convert::Infallible;
use std::net::Ipv4Addr;
use std::time::Duration;

use anyhow::Context;
use futures_util::future::join_all;

use crate::probe::Probe;
use crate::probe::survey;
use crate::report::Reporter;
use crate::topology::{Layout, Node};
use crate::wait;

/// `SENTINEL RESET` on every sentinel, so that nodes removed from the group leave their
/// tables (they would be listed as down forever); the sentinels then learn the current
/// replicas from the master and each other from their hello messages within seconds.
pub(super) async fn reset_sentinels(
    probe: &Probe,
    layout: &Layout,
    master_name: &str,
) -> anyhow::Result<()> {
    for sentinel in layout.sentinels() {
        let mut con = probe.connect(survey::addr(sentinel)).await?;
        let _: i64 = redis::cmd("SENTINEL")
            .arg("RESET")
            .arg(master_name)
            .query_async(&mut con)
            .await
            .with_context(|| format!("SENTINEL RESET on `{}`", sentinel.name))?;
    }
    Ok(())
}

/// `SENTINEL DEBUG ping-period` on every sentinel, each as soon as it answers (best effort:
/// a sentinel that never answers is reported by the health wait, not here).
pub(super) async fn set_ping_period(
    probe: &Probe,
    layout: &Layout,
    period_ms: u64,
    patience: Duration,
) {
    join_all(layout.sentinels().map(|node| async move {
        let answered = wait::until_true(Duration::from_millis(20), async || {
            let Ok(mut con) = probe.connect(survey::addr(node)).await else {
                return false;
            };
            let reply: redis::RedisResult<()> = redis::cmd("SENTINEL")
                .arg("DEBUG")
                .arg("ping-period")
                .arg(period_ms)
                .query_async(&mut con)
                .await;
            reply.is_ok()
        });
        let _ = tokio::time::timeout(patience, answered).await;
    }))
    .await;
}

/// Make `node` a replica of `master` if it says it is a master itself, and persist that in
/// its config (`CONFIG REWRITE`) so that a restart keeps it.
pub(super) async fn follow_master(
    probe: &Probe,
    layout: &Layout,
    node: &Node,
    master: Ipv4Addr,
    timeout: Duration,
) -> anyhow::Result<()> {
    let mut last_error = None;
    let answered = wait::until(Duration::from_millis(20), async || {
        match probe.replication(survey::addr(node)).await {
            Ok(r) => Ok::<_, Infallible>(Some(r)),
            Err(e) => {
                last_error = Some(e);
                Ok(None)
            }
        }
    });
    let answered = tokio::time::timeout(timeout, answered).await;
    let replication = match answered {
        Ok(Ok(r)) => r,
        Ok(Err(never)) => match never {},
        Err(_) => {
            return Err(match last_error {
                Some(e) => e.into(),
                None => anyhow::anyhow!(
                    "`{}` did not answer within {} s",
                    node.name,
                    timeout.as_secs()
                ),
            });
        }
    };
    if replication.is_master() {
        // The master's address as the group hands it out, so that this node announces and
        // follows the same address the others do.
        let (host, port) = match layout.node_by_ip(master) {
            Some(m) => layout.advertised(m),
            None => (master.to_string(), crate::topology::layout::REDIS_PORT),
        };
        let mut con = probe.connect(survey::addr(node)).await?;
        let _: () = redis::cmd("REPLICAOF")
            .arg(host)
            .arg(port)
            .query_async(&mut con)
            .await?;
        let _: () = redis::cmd("CONFIG")
            .arg("REWRITE")
            .query_async(&mut con)
            .await?;
    }
    Ok(())
}

/// Ask a sentinel to fail over and wait until every sentinel names a new master.
pub(super) async fn failover(
    report: &Reporter,
    probe: &Probe,
    layout: &Layout,
    master_name: &str,
    from: &str,
    timeout: Duration,
) -> anyhow::Result<Ipv4Addr> {
    let sentinel = layout
        .sentinels()
        .next()
        .ok_or_else(|| anyhow::anyhow!("no sentinel to ask for a failover"))?;
    let mut con = probe.connect(survey::addr(sentinel)).await?;
    let _: () = redis::cmd("SENTINEL")
        .arg("FAILOVER")
        .arg(master_name)
        .query_async(&mut con)
        .await?;
    report.node(from, "failing over before recreate");
    let old = layout
        .node(from)
        .ok_or_else(|| anyhow::anyhow!("node `{from}` is not in the layout"))?;
    let sentinels: Vec<&Node> = layout.sentinels().collect();
    let mut said = wait::SentinelsSaid::default();
    let moved = wait::new_master(layout, &sentinels, probe, master_name, old, &mut said);
    let moved = tokio::time::timeout(timeout, moved).await;
    let new = moved.map_err(|_| {
        anyhow::anyhow!(
            "the sentinels did not move the master away from `{from}`: {}",
            said.what
        )
    })?;
    Ok(new.ip)
}
