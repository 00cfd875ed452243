//! `rcluster failover-test`: check healthy -> listen -> write -> fault -> wait for the
//! sentinels to agree on a new master -> read back -> heal -> wait for the old master to
//! rejoin -> report. Repeated `--runs` times.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::Context;
use bollard::models::{EndpointIpamConfig, EndpointSettings, NetworkConnectRequest};

use super::Global;
use crate::cli::{FailoverArgs, Fault};
use crate::docker::Engine;
use crate::docker::observe::observe;
use crate::error::{EXIT_FAILED, EXIT_OK, EXIT_USAGE, Exit};
use crate::failover::events::{Listener, Received};
use crate::failover::writers::{Writers, count_missing, delete_keys};
use crate::failover::{self, RunReport, SentinelEvent, Timings, Writes, ms};
use crate::group;
use crate::health;
use crate::probe::Probe;
use crate::topology::{Layout, Loaded, Node};

pub async fn run(global: &Global, args: &FailoverArgs) -> anyhow::Result<i32> {
    if args.runs == 0 || args.writers == 0 {
        return Err(Exit::new(EXIT_USAGE, "`--runs` and `--writers` must be at least 1").into());
    }
    let loaded = group::load(global)?;
    if args.stop_sentinels >= loaded.topology.sentinel.count {
        return Err(Exit::new(
            EXIT_USAGE,
            format!(
                "`--stop-sentinels {}` would leave no sentinel to watch the test; the group has {}",
                args.stop_sentinels, loaded.topology.sentinel.count
            ),
        )
        .into());
    }
    let engine = Engine::connect().await?;
    let password = group::password(&loaded)?;
    let probe = Probe::new(password);
    let topo = &loaded.topology;
    let deadline =
        Duration::from_secs(args.deadline.unwrap_or(
            (topo.sentinel.failover_timeout_ms + topo.sentinel.down_after_ms) / 1000 + 10,
        ));

    let mut runs = Vec::new();
    for run in 1..=args.runs {
        let report = one_run(run, args, &loaded, &engine, &probe, deadline).await?;
        if !global.json && !global.quiet {
            print!("{}", timeline(&report));
        }
        let stop = !report.passed;
        runs.push(report);
        if stop {
            break;
        }
    }
    let summary = failover::summarize(&runs);
    let passed = runs.len() == args.runs as usize && runs.iter().all(|r| r.passed);
    if global.json {
        let value = serde_json::json!({
            "name": topo.cluster.name,
            "passed": passed,
            "fault": args.fault,
            "runs": runs,
            "summary": summary,
        });
        println!("{value}");
    } else if !global.quiet || !passed {
        println!("{}", verdict(passed, &summary, args.runs));
    }
    Ok(if passed { EXIT_OK } else { EXIT_FAILED })
}

async fn one_run(
    run: u32,
    args: &FailoverArgs,
    loaded: &Loaded,
    engine: &Engine,
    probe: &Probe,
    deadline: Duration,
) -> anyhow::Result<RunReport> {
    let topo = &loaded.topology;
    let master_name = &topo.sentinel.master_name;
    let observed = observe(engine, &topo.cluster.name).await?;
    let layout = group::layout(topo, &observed);

    // 1. Healthy first, or touch nothing.
    let before = health::evaluate(
        &layout,
        &group::probe_all(&layout, &observed, probe, master_name).await,
        0,
    );
    let old = match (&before.healthy, &before.master) {
        (true, Some(m)) => m.clone(),
        _ => {
            // A group that is still settling (offsets converging) gets a short grace period.
            let settled = group::wait_healthy(
                engine,
                &layout,
                probe,
                master_name,
                Duration::from_secs(10),
                0,
                |_, _| {},
            )
            .await
            .map_err(|e| {
                Exit::new(
                    EXIT_FAILED,
                    format!("the group is not healthy, so no fault was injected: {e:#}"),
                )
            })?;
            settled.master.context("healthy group without a master")?
        }
    };

    // Sentinels the user asked us to take away first (the last ones).
    let all_sentinels: Vec<&Node> = layout.sentinels().collect();
    let keep = all_sentinels.len() - args.stop_sentinels as usize;
    let stopped: Vec<&Node> = all_sentinels[keep..].to_vec();
    for s in &stopped {
        engine.stop_container(&s.name, 1).await?;
    }

    // 2. Listen to every remaining sentinel.
    let sentinels: Vec<(String, SocketAddr)> = layout
        .sentinels()
        .filter(|n| !stopped.contains(n))
        .map(|n| (n.name.clone(), group::addr(n)))
        .collect();
    let listener = Listener::start(probe, &sentinels).await?;

    // 3. Writers, through the sentinels like an application.
    let prefix = format!("rcluster:failover-test:{}:{run}", std::process::id());
    let writers = Writers::start(
        probe,
        sentinels.iter().map(|(_, a)| *a).collect(),
        master_name,
        &prefix,
        args.writers,
    );
    // Let the writers reach the master before the fault, so the outage is measured from a
    // working client rather than from one still starting.
    let warm = Instant::now();
    while writers.last_acked_by().is_none() && warm.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // 4. The fault.
    let fault_at = Instant::now();
    inject(engine, &layout, &old, args.fault).await?;

    // 5. Until every sentinel names the same new master, each reachable sentinel answering.
    let mut report = RunReport {
        run,
        fault: format!("{:?}", args.fault).to_lowercase(),
        old_master: old.name.clone(),
        new_master: None,
        passed: false,
        failure: None,
        timings_ms: Timings::default(),
        writes: Writes::default(),
        events: vec![],
    };
    let watching: Vec<&Node> = layout
        .sentinels()
        .filter(|n| !stopped.contains(n))
        .collect();
    let agreed = group::wait_for_new_master(
        &layout,
        &watching,
        probe,
        master_name,
        &old,
        fault_at,
        deadline,
    )
    .await;
    let mut reachable_at_deadline = watching.len();
    let new_master = match agreed {
        Ok((node, at)) => {
            report.timings_ms.all_agree = Some(ms(at - fault_at));
            Some(node)
        }
        Err((why, answering)) => {
            reachable_at_deadline = answering;
            report.failure = Some(format!(
                "no new master agreed by all sentinels within {} s: {why}",
                deadline.as_secs()
            ));
            None
        }
    };

    // Let the writers reach the new master, so the first acknowledged write on it is seen.
    if let Some(new) = &new_master {
        let until = Instant::now() + Duration::from_secs(5);
        while Instant::now() < until && writers.last_acked_by() != Some(group::addr(new)) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    // 6. Stop the writers; read every acknowledged key back from the new master.
    let log = writers.stop().await;
    let acked_keys: Vec<String> = log.acked.iter().map(|a| a.key.clone()).collect();
    let first_write = new_master.as_ref().and_then(|new| {
        log.acked
            .iter()
            .filter(|a| a.at >= fault_at && a.master == group::addr(new))
            .map(|a| a.at)
            .min()
    });
    report.timings_ms.first_write = first_write.map(|t| ms(t - fault_at));
    let outage_end = first_write.unwrap_or_else(Instant::now);
    report.writes = Writes {
        acked: log.acked.len() as u64,
        lost: 0,
        failed: log.failures.len() as u64,
        during_outage: log
            .failures
            .iter()
            .filter(|t| **t >= fault_at && **t <= outage_end)
            .count() as u64,
    };
    if let Some(new) = &new_master {
        report.new_master = Some(new.name.clone());
        match count_missing(probe, group::addr(new), &acked_keys).await {
            Ok(missing) => {
                report.writes.lost = missing;
                if missing > 0 {
                    report.failure = Some(format!(
                        "{missing} of {} acknowledged write(s) are missing from the new master `{}`",
                        acked_keys.len(),
                        new.name
                    ));
                }
            }
            Err(e) => {
                report.failure = Some(format!(
                    "cannot read the acknowledged keys back from `{}`: {e:#}",
                    new.name
                ))
            }
        }
    }

    // 7. Heal, and wait for the old master to rejoin as a replica and catch up.
    let healed_at = Instant::now();
    heal(engine, &layout, &old, args.fault).await?;
    for s in &stopped {
        engine.start_container(&s.name).await?;
    }
    let rejoin = group::wait_healthy(
        engine,
        &layout,
        probe,
        master_name,
        deadline.max(Duration::from_secs(30)),
        0,
        |_, _| {},
    )
    .await;
    match rejoin {
        Ok(h) if h.master.as_ref().is_some_and(|m| *m != old) => {
            report.timings_ms.rejoined_after_heal = Some(ms(healed_at.elapsed()));
        }
        Ok(_) if new_master.is_none() => {}
        Ok(h) => {
            report.failure.get_or_insert(format!(
                "after healing, the master is `{}` again",
                h.master.map_or("none".into(), |m| m.name)
            ));
        }
        Err(e) => {
            report.failure.get_or_insert(format!(
                "the old master `{}` did not rejoin as a healthy replica: {e:#}",
                old.name
            ));
        }
    }
    if let Some(new) = &new_master {
        let _ = delete_keys(probe, group::addr(new), &acked_keys).await;
    }

    // Timings from the sentinels' own events.
    let events = listener.stop();
    let old_prefix = format!("master {master_name} {} ", old.ip);
    let first = |channel: &str| {
        first_event(&events, channel, &old_prefix, fault_at).map(|t| ms(t - fault_at))
    };
    report.timings_ms.sdown = first("+sdown");
    report.timings_ms.odown = first("+odown");
    report.timings_ms.switch_master = events
        .iter()
        .filter(|e| e.at >= fault_at && e.channel == "+switch-master")
        .map(|e| ms(e.at - fault_at))
        .min();
    if report
        .failure
        .as_deref()
        .is_some_and(|f| f.starts_with("no new master"))
    {
        let why = explain_no_failover(
            &layout,
            reachable_at_deadline,
            topo.sentinel.quorum as usize,
            &events,
            fault_at,
        );
        report.failure = report.failure.map(|f| format!("{f}; {why}"));
    }
    report.events = events
        .iter()
        .filter(|e| !matches!(e.channel.as_str(), "__sentinel__:hello"))
        .map(|e| SentinelEvent {
            at_ms: if e.at >= fault_at {
                ms(e.at - fault_at) as i64
            } else {
                -(ms(fault_at - e.at) as i64)
            },
            sentinel: e.sentinel.clone(),
            event: e.channel.clone(),
            payload: e.payload.clone(),
        })
        .collect();
    report.passed = report.failure.is_none();
    Ok(report)
}

fn first_event(
    events: &[Received],
    channel: &str,
    prefix: &str,
    since: Instant,
) -> Option<Instant> {
    events
        .iter()
        .filter(|e| e.at >= since && e.channel == channel && e.payload.starts_with(prefix))
        .map(|e| e.at)
        .min()
}

async fn inject(engine: &Engine, layout: &Layout, node: &Node, fault: Fault) -> anyhow::Result<()> {
    match fault {
        Fault::Kill => engine.kill_container(&node.name, "SIGKILL").await?,
        Fault::Stop => engine.stop_container(&node.name, 10).await?,
        Fault::Pause => engine.pause_container(&node.name).await?,
        Fault::Partition => {
            engine
                .disconnect_network(&layout.network(), &node.name)
                .await?
        }
    }
    Ok(())
}

async fn heal(engine: &Engine, layout: &Layout, node: &Node, fault: Fault) -> anyhow::Result<()> {
    match fault {
        Fault::Kill | Fault::Stop => engine.start_container(&node.name).await?,
        Fault::Pause => engine.unpause_container(&node.name).await?,
        Fault::Partition => {
            // Back on the network at its own fixed address, as the sentinels know it.
            let request = NetworkConnectRequest {
                container: node.name.clone(),
                endpoint_config: Some(EndpointSettings {
                    ipam_config: Some(EndpointIpamConfig {
                        ipv4_address: Some(node.ip.to_string()),
                        ..Default::default()
                    }),
                    aliases: Some(vec![node.key.clone()]),
                    ..Default::default()
                }),
            };
            engine.connect_network(&layout.network(), request).await?;
        }
    }
    Ok(())
}

fn explain_no_failover(
    layout: &Layout,
    answering: usize,
    quorum: usize,
    events: &[Received],
    since: Instant,
) -> String {
    let total = layout.sentinels().count();
    let sdown_by: std::collections::BTreeSet<&str> = events
        .iter()
        .filter(|e| e.at >= since && e.channel == "+sdown" && e.payload.starts_with("master "))
        .map(|e| e.sentinel.as_str())
        .collect();
    let seen = |c: &str| events.iter().any(|e| e.at >= since && e.channel == c);
    failover::diagnose_no_failover(
        total,
        answering,
        quorum,
        sdown_by.len(),
        seen("+odown"),
        seen("+try-failover"),
        seen("+elected-leader"),
    )
}

fn timeline(r: &RunReport) -> String {
    let t = &r.timings_ms;
    let f = |v: Option<u64>| v.map_or("-".to_string(), |v| format!("{v} ms"));
    let mut out = format!(
        "run {}: {} `{}` -> new master `{}`\n",
        r.run,
        r.fault,
        r.old_master,
        r.new_master.as_deref().unwrap_or("none")
    );
    out.push_str(&format!("  +sdown          {}\n", f(t.sdown)));
    out.push_str(&format!("  +odown          {}\n", f(t.odown)));
    out.push_str(&format!("  +switch-master  {}\n", f(t.switch_master)));
    out.push_str(&format!("  all agree       {}\n", f(t.all_agree)));
    out.push_str(&format!(
        "  first write     {}  (write outage seen by clients)\n",
        f(t.first_write)
    ));
    out.push_str(&format!(
        "  rejoined        {}  (after heal)\n",
        f(t.rejoined_after_heal)
    ));
    out.push_str(&format!(
        "  writes: {} acknowledged, {} lost, {} failed attempts ({} during the outage)\n",
        r.writes.acked, r.writes.lost, r.writes.failed, r.writes.during_outage
    ));
    match &r.failure {
        None => out.push_str("  PASSED\n"),
        Some(why) => out.push_str(&format!("  FAILED: {why}\n")),
    }
    out
}

fn verdict(passed: bool, s: &failover::Summary, runs: u32) -> String {
    let f = |v: &Option<failover::Spread>| {
        v.as_ref().map_or("-".to_string(), |s| {
            format!("{} / {} / {} ms", s.min, s.median, s.max)
        })
    };
    format!(
        "{}: {} of {runs} run(s) passed; {} acknowledged writes, {} lost\n  all sentinels agree (min/median/max): {}\n  write outage       (min/median/max): {}",
        if passed { "PASSED" } else { "FAILED" },
        s.passed,
        s.acked,
        s.lost,
        f(&s.all_agree),
        f(&s.first_write),
    )
}
