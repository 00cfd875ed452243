//! `rcluster up`: load -> observe -> plan -> apply -> wait healthy -> report.

mod converge;
mod preflight;

use std::time::Duration;

use futures_util::future::join_all;

use self::converge::{
    FORMING_PING_PERIOD_MS, SENTINEL_PING_PERIOD_MS, failover, follow_master, forget_removed,
    set_ping_period, settle,
};
use self::preflight::{check_ports_free, refuse_a_changed_password, refuse_removing_the_master};
use super::Global;
use crate::cli::UpArgs;
use crate::docker::apply::Executor;
use crate::docker::observe::{foreign_conflicts, observe};
use crate::docker::{Engine, image};
use crate::error::{EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, Exit};
use crate::group;
use crate::health::Health;
use crate::plan::{self, Plan, Step};
use crate::probe::Probe;
use crate::report::Reporter;
use crate::state;
use crate::topology::{Layout, Loaded, Role};

pub async fn run(global: &Global, args: &UpArgs) -> anyhow::Result<i32> {
    let loaded = group::load(global)?;
    let report = Reporter::new(global.json, global.quiet);
    let engine = Engine::connect().await?;
    let cluster = loaded.topology.cluster.name.clone();
    let work = up(global, args, &loaded, &engine, &report);
    tokio::select! {
        result = work => result,
        _ = tokio::signal::ctrl_c() => {
            report.finish();
            let observed = observe(&engine, &cluster).await?;
            let exists: Vec<String> = observed.containers.iter().map(|c| format!("{} ({})", c.name, c.state)).collect();
            Err(Exit::new(
                EXIT_INTERRUPTED,
                format!(
                    "interrupted; group `{cluster}` now has: {}. Run `rcluster up` to finish it or `rcluster down` to remove it",
                    if exists.is_empty() { "nothing".to_string() } else { exists.join(", ") }
                ),
            ).into())
        }
    }
}

async fn up(
    global: &Global,
    args: &UpArgs,
    loaded: &Loaded,
    engine: &Engine,
    report: &Reporter,
) -> anyhow::Result<i32> {
    let topology = &loaded.topology;
    let cluster = &topology.cluster.name;
    let observed = observe(engine, cluster).await?;
    // Every network on the engine, once: for a free subnet and for name conflicts.
    let networks = if observed.networks.is_empty() {
        engine.list_all_networks().await?
    } else {
        Vec::new()
    };
    let subnet = group::choose_subnet(topology, &observed, &networks)?;
    let layout = Layout::new(topology, subnet);

    let conflicts = foreign_conflicts(engine, &layout, &observed, &networks).await?;
    if !conflicts.is_empty() {
        return Err(Exit::new(
            EXIT_USAGE,
            format!(
                "nothing was changed: {}; rcluster never touches what it did not create. Choose another `cluster.name` (or `--name`), or remove them yourself",
                conflicts.join("; ")
            ),
        )
        .into());
    }

    let source = image::choose(topology.redis.image.as_deref())?;
    let hashes = group::config_hashes(topology, &layout, &source.choice())?;
    let existing_password = state::password(loaded, cluster)?;
    if let Some(p) = &existing_password {
        refuse_a_changed_password(&layout, &observed, &Probe::new(p.clone()), loaded).await?;
    }
    let master = match &existing_password {
        Some(p) if !observed.containers.is_empty() => {
            group::current_master(
                &layout,
                &observed,
                &Probe::new(p.clone()),
                &topology.sentinel.master_name,
            )
            .await
        }
        _ => layout.master().ip,
    };
    let plan = plan::plan(&layout, &hashes, &observed, master);
    report.expect_nodes(layout.nodes.iter().map(|n| n.name.as_str()));
    refuse_removing_the_master(&plan, &observed, &layout, master)?;

    if args.dry_run {
        print!("{plan}");
        return Ok(EXIT_OK);
    }
    check_ports_free(&layout, &plan, topology.cluster.bind)?;

    let password = state::password_or_generate(loaded, cluster)?;
    let image = image::ensure(engine, &source, |line| report.info(line)).await?;
    let probe = Probe::new(password.clone());
    let executor = Executor {
        engine,
        topology,
        layout: &layout,
        password: &password,
        image: &image,
        hashes: &hashes,
        report,
    };
    if plan.is_empty() {
        report.info(format!(
            "group `{cluster}` exists and matches the topology; checking health"
        ));
    }
    apply(
        &executor,
        &plan,
        &probe,
        &layout,
        &topology.sentinel.master_name,
        args,
    )
    .await?;

    let timeout = Duration::from_secs(args.timeout);
    // Sentinels started a moment apart find some peers not listening yet, and Sentinel
    // retries a failed link only once per ping period (1 s). A short period while the
    // group forms, put back once it is healthy, saves that second.
    let started_sentinels = plan.steps.iter().any(|s| {
        s.node()
            .and_then(|n| layout.node(n))
            .is_some_and(|n| n.role == Role::Sentinel)
    });
    let quicken = started_sentinels.then(|| {
        let (probe, layout) = (probe.clone(), layout.clone());
        tokio::spawn(async move {
            let patience = Duration::from_secs(10);
            set_ping_period(&probe, &layout, FORMING_PING_PERIOD_MS, patience).await
        })
    });
    let health = group::wait_healthy(
        engine,
        &layout,
        &probe,
        &topology.sentinel.master_name,
        timeout,
        0,
        |reports, health| {
            // Each node's line says what it is still waiting for, or that it is ready.
            for r in reports {
                let problem = health.problems.iter().find(|p| p.node == r.node.name);
                match problem {
                    Some(p) => report.node(&r.node.name, format!("waiting: {}", p.reason)),
                    None if r.reported_role().is_some() => report.node(&r.node.name, "ready"),
                    None => {}
                }
            }
        },
    )
    .await;
    // Put Sentinel's ping period back whatever happened: a failed `up` must not leave the
    // sentinels pinging ten times faster than in production.
    if let Some(task) = quicken {
        task.abort();
        let _ = task.await;
        let patience = Duration::from_secs(if health.is_ok() { 10 } else { 2 });
        set_ping_period(&probe, &layout, SENTINEL_PING_PERIOD_MS, patience).await;
    }
    let health = health?;
    for node in &layout.nodes {
        report.node(
            &node.name,
            if node.role.is_data() {
                "synced"
            } else {
                "watched"
            },
        );
    }
    report.finish();
    print_result(global, cluster, &plan, &health, report);
    Ok(EXIT_OK)
}

/// Network and volumes first, then every container, the master's process first, then the
/// rolling steps one by one, each after the group is healthy again, and the removals.
async fn apply(
    executor: &Executor<'_>,
    plan: &Plan,
    probe: &Probe,
    layout: &Layout,
    master_name: &str,
    args: &UpArgs,
) -> anyhow::Result<()> {
    let (rolling, parallel): (Vec<&Step>, Vec<&Step>) =
        plan.steps.iter().partition(|s| s.is_rolling());
    let (setup, nodes): (Vec<&Step>, Vec<&Step>) = parallel
        .into_iter()
        .partition(|s| matches!(s, Step::CreateNetwork { .. } | Step::CreateVolume { .. }));
    // The network and the volumes do not depend on each other.
    first_error(join_all(setup.iter().map(|s| executor.run(s, plan.master))).await)?;
    first_error(join_all(nodes.iter().map(|s| executor.prepare(s, plan.master))).await)?;
    // The master's process first: a replica that starts before its master can be reached
    // retries once a second (Redis's replication cron). Then everything else at once; the
    // engine takes about 0.3 s a container, so the master alone is the shortest wait.
    let is_master = |s: &&&Step| {
        s.node()
            .and_then(|n| layout.node(n))
            .is_some_and(|n| n.ip == plan.master)
    };
    first_error(join_all(nodes.iter().filter(is_master).map(|s| executor.start(s))).await)?;
    let others = nodes.iter().filter(|s| !is_master(s));
    first_error(join_all(others.map(|s| executor.start(s))).await)?;

    let timeout = Duration::from_secs(args.timeout);
    // A restarted, unpaused or reconnected data node keeps the role it had: an old master would serve
    // as a second master until Sentinel notices it (up to 10 s). Point it at the current
    // master at once, as Sentinel itself would.
    let revived = nodes
        .iter()
        .filter(|s| {
            matches!(
                s,
                Step::StartNode { .. } | Step::UnpauseNode { .. } | Step::ReconnectNode { .. }
            )
        })
        .filter_map(|s| s.node().and_then(|n| layout.node(n)))
        .filter(|n| n.role.is_data() && n.ip != plan.master);
    first_error(join_all(revived.map(|n| follow_master(probe, n, plan.master, timeout))).await)?;

    let mut master = plan.master;
    for step in rolling
        .iter()
        .filter(|s| !matches!(s, Step::RemoveNode { .. }))
    {
        settle(executor, layout, probe, master_name, timeout).await?;
        match step {
            Step::Failover { from, .. } => {
                master = failover(executor, probe, layout, master_name, from, timeout).await?;
            }
            _ => executor.run(step, master).await?,
        }
    }
    let removals: Vec<&&Step> = rolling
        .iter()
        .filter(|s| matches!(s, Step::RemoveNode { .. }))
        .collect();
    if !removals.is_empty() {
        first_error(join_all(removals.iter().map(|s| executor.run(s, master))).await)?;
        forget_removed(probe, layout, master_name).await?;
    }
    Ok(())
}

fn first_error(results: Vec<anyhow::Result<()>>) -> anyhow::Result<()> {
    results
        .into_iter()
        .collect::<anyhow::Result<Vec<()>>>()
        .map(|_| ())
}

fn print_result(global: &Global, cluster: &str, plan: &Plan, health: &Health, report: &Reporter) {
    let master = health.master.as_ref();
    if global.json {
        let value = serde_json::json!({
            "name": cluster,
            "healthy": health.healthy,
            "elapsed_ms": (report.elapsed() * 1000.0).round() as u64,
            "changed": !plan.is_empty(),
            "steps": plan.steps.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            "master": master.map(|m| serde_json::json!({"node": m.name, "host": m.ip.to_string(), "port": m.port})),
            "events": report.events(),
        });
        println!("{value}");
    } else if !global.quiet {
        let what = if plan.is_empty() {
            "unchanged, healthy"
        } else {
            "healthy"
        };
        match master {
            Some(m) => println!(
                "group `{cluster}` {what} in {:.2}s; master `{}` at {}:{}",
                report.elapsed(),
                m.name,
                m.ip,
                m.port
            ),
            None => println!("group `{cluster}` {what} in {:.2}s", report.elapsed()),
        }
    }
}
