//! `rcluster failover-test`, the failover experiment: check healthy -> listen -> write ->
//! fault -> wait for the sentinels to agree on a new master -> read back -> heal -> wait
//! for the old master to rejoin -> report. Repeated `--runs` times. (Not a test file: it
//! is the command that runs the experiment.)

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::Context;

use super::Global;
use crate::cli::{self, FailoverArgs};
use crate::docker::Engine;
use crate::docker::observe::observe;
use crate::error::{CommandError, EXIT_FAILED, EXIT_OK};
use crate::failover::events::{Listener, Received};
use crate::failover::writers::{Writers, count_missing, delete_prefix, missing_keys};
use crate::failover::{self, Fault, Options, RunReport, Timings, Writes, ms};
use crate::probe::survey;
use crate::wait;
// An application may be writing during the test: replicas a few bytes behind are healthy.
use crate::health::{Health, STATUS_MAX_LAG_BYTES};
use crate::probe::Probe;
use crate::topology::{Layout, Loaded, Node};

/// `failover-test --json`.
#[derive(serde::Serialize)]
pub struct FailoverTestJson<'a> {
    pub name: &'a str,
    /// Every run finished and passed.
    pub passed: bool,
    pub fault: Fault,
    /// The runs that finished, also when a later one could not.
    pub runs: &'a [RunReport],
    pub summary: &'a failover::Summary,
    /// Why a run could not finish (e.g. the group was not healthy); null otherwise.
    pub error: Option<String>,
}

/// The library's options from the command line's flags.
pub fn options(args: &FailoverArgs) -> Options {
    Options {
        fault: match args.fault {
            cli::Fault::Kill => Fault::Kill,
            cli::Fault::Stop => Fault::Stop,
            cli::Fault::Pause => Fault::Pause,
            cli::Fault::Partition => Fault::Partition,
            cli::Fault::Isolate => Fault::Isolate,
            cli::Fault::Delay => Fault::Delay,
        },
        runs: args.runs,
        writers: args.writers,
        deadline: args.deadline,
        stop_sentinels: args.stop_sentinels,
        hold: args.hold,
        delay_ms: args.delay_ms,
        loss: args.loss,
        max_split_brain_loss: args.max_split_brain_loss,
        warmup: args.warmup,
        no_writers: args.no_writers,
        pass_password_env: args.pass_password_env,
        keep_keys: args.keep_keys,
        command: args.command.clone(),
    }
}

pub async fn run(global: &Global, args: &Options) -> anyhow::Result<i32> {
    if args.runs == 0 || args.writers == 0 {
        return Err(CommandError::usage("`--runs` and `--writers` must be at least 1").into());
    }
    let loaded = super::load(global)?;
    if let Some(problem) = crate::failover::command::usage_problem(args) {
        return Err(CommandError::usage(problem).into());
    }
    if args.stop_sentinels >= loaded.topology.sentinel.count {
        return Err(CommandError::usage(format!(
            "`--stop-sentinels {}` would leave no sentinel to watch the test; the group has {}",
            args.stop_sentinels, loaded.topology.sentinel.count
        ))
        .into());
    }
    let engine = Engine::connect().await?;
    let password = super::password(&loaded)?;
    let probe = Probe::for_group(&loaded, password)?;
    let topo = &loaded.topology;
    let deadline =
        Duration::from_secs(args.deadline.unwrap_or(
            (topo.sentinel.failover_timeout_ms + topo.sentinel.down_after_ms) / 1000 + 10,
        ));

    // What a run has broken and not yet mended: healed on every way out of a run,
    // including an error half-way and Ctrl-C, so the group is never left broken.
    if matches!(args.fault, Fault::Isolate | Fault::Delay) {
        let platform = engine.platform().await?;
        if let Some(why) = crate::docker::netadmin::cannot_run_on(&platform) {
            return Err(CommandError::usage(why).into());
        }
        // Built before any fault, so a run's timeline does not include building it.
        crate::docker::netadmin::ensure_image(&engine).await?;
    }
    let pending = Pending::default();
    let mut runs = Vec::new();
    let work = async {
        for run in 1..=args.runs {
            let report = one_run(run, args, &loaded, &engine, &probe, deadline, &pending).await?;
            if !global.json && !global.quiet {
                print!("{}", timeline(&report));
            }
            let stop = !report.passed;
            runs.push(report);
            if stop {
                break;
            }
        }
        anyhow::Ok(())
    };
    let outcome = tokio::select! {
        outcome = work => outcome,
        _ = tokio::signal::ctrl_c() => Err(CommandError::interrupted("interrupted").into()),
    };
    if let Some(broken) = pending.take() {
        let healed = broken.mend(&engine).await;
        if !global.quiet {
            eprintln!("{healed}");
        }
    }
    let summary = failover::summarize(&runs);
    let passed =
        outcome.is_ok() && runs.len() == args.runs as usize && runs.iter().all(|r| r.passed);
    if global.json {
        // Even when a run could not finish, scripts get the runs that did and the reason.
        let document = FailoverTestJson {
            name: &topo.cluster.name,
            passed,
            fault: args.fault,
            runs: &runs,
            summary: &summary,
            error: outcome.as_ref().err().map(|e| format!("{e:#}")),
        };
        println!("{}", crate::report::json_line(&document)?);
    } else if outcome.is_ok() && (!global.quiet || !passed) {
        println!("{}", verdict(passed, &summary, args.runs));
    }
    outcome?;
    Ok(if passed { EXIT_OK } else { EXIT_FAILED })
}

/// What one run works with, for its steps.
struct RunContext<'a> {
    args: &'a Options,
    loaded: &'a Loaded,
    engine: &'a Engine,
    probe: &'a Probe,
    deadline: Duration,
    layout: Layout,
    old: Node,
}

impl RunContext<'_> {
    fn master_name(&self) -> &str {
        &self.loaded.topology.sentinel.master_name
    }
}

/// What runs during the fault: the sentinels' listener, the writers, the user's command.
struct Load {
    listener: Listener,
    writers: Writers,
    prefix: String,
    command: Option<crate::failover::command::Running>,
}

async fn one_run(
    run: u32,
    args: &Options,
    loaded: &Loaded,
    engine: &Engine,
    probe: &Probe,
    deadline: Duration,
    pending: &Pending,
) -> anyhow::Result<RunReport> {
    // 1. Healthy first, or touch nothing.
    let (layout, old) = healthy_master(engine, &loaded.topology, probe).await?;
    refuse_isolating_an_announced_group(args, &layout)?;
    let cx = RunContext {
        args,
        loaded,
        engine,
        probe,
        deadline,
        layout,
        old,
    };
    let stopped = stop_sentinels(&cx, pending).await?;
    let watching: Vec<&Node> = cx
        .layout
        .sentinels()
        .filter(|n| !stopped.contains(n))
        .collect();
    // 2. Listen to every watching sentinel. 3. Writers, through the sentinels.
    let load = start_load(&cx, run, &watching).await?;

    // 4. The fault. 5. Until every watching sentinel names the same new master.
    let (mut report, fault_at) = inject_and_report(&cx, run, pending).await?;
    let (new_master, reachable_at_deadline) =
        agree_on_new_master(&cx, &watching, fault_at, &mut report).await;
    let new_addr = new_master.as_ref().map(survey::addr);
    if let Some(addr) = new_addr {
        wait_until(Duration::from_secs(5), || {
            load.writers.last_acked_by() == Some(addr)
        })
        .await;
    }
    // A network fault lasts long enough to show what the old master does meanwhile.
    if matches!(args.fault, Fault::Isolate | Fault::Delay) {
        let until = fault_at + crate::failover::faults::hold(args, &loaded.topology);
        tokio::time::sleep(until.saturating_duration_since(Instant::now())).await;
    }

    // 6. Stop the writers; read every acknowledged key back from the new master.
    let log = load.writers.stop().await;
    let (writes, first_write) = failover::account_writes(&log, fault_at, new_addr);
    report.writes = writes;
    report.timings_ms.first_write = first_write.map(|t| ms(t - fault_at));
    let acked_keys: Vec<String> = log.acked.iter().map(|a| a.key.clone()).collect();
    let old_addr = survey::addr(&cx.old);
    report.timings_ms.refused_by_old_master = log
        .refused
        .iter()
        .filter(|(at, addr)| *at >= fault_at && *addr == old_addr)
        .map(|(at, _)| ms(*at - fault_at))
        .min();
    if let Some(new) = &new_master {
        check_nothing_lost(&mut report, probe, new, &acked_keys).await;
    }

    // 7. Heal, and wait for the old master to rejoin as a caught-up replica.
    let healed_at = Instant::now();
    if let Some(broken) = pending.take() {
        broken.heal(engine).await?;
    }
    let rejoin = rejoin(&cx, &mut report, new_master.as_ref(), &acked_keys).await;
    let ok_only_keys: Vec<String> = log.ok_only.iter().map(|a| a.key.clone()).collect();
    if let Some(master) = rejoin.as_ref().ok().and_then(|h| h.master.as_ref()) {
        clean_up_keys(&cx, &mut report, master, &ok_only_keys, &load.prefix).await;
    }
    report.ok_only_keys = ok_only_keys;
    if let Some(why) = failover::split_brain_verdict(&report.writes, args.max_split_brain_loss) {
        report.failure.get_or_insert(why);
    }
    if let Some(running) = load.command {
        let finished = running.finish(deadline, fault_at).await;
        if let Some(why) = &finished.failure {
            report.failure.get_or_insert(why.clone());
        }
        report.command = Some(finished);
    }
    judge_rejoin(&cx, &mut report, rejoin, new_master.is_some(), healed_at);

    // The sentinels' own account of it.
    let events = load.listener.stop();
    let old_advertised = cx.layout.advertised(&cx.old);
    let master_name = cx.master_name();
    let (sdown, odown, switch) =
        failover::sentinel_milestones(&events, fault_at, master_name, &old_advertised);
    report.timings_ms.sdown = sdown;
    report.timings_ms.odown = odown;
    report.timings_ms.switch_master = switch;
    if new_master.is_some() {
        report.split_brain_window_ms =
            failover::promoted_at(&events, fault_at, master_name, &old_advertised)
                .map(|at| failover::split_brain_window(&log, old_addr, at));
    } else {
        let quorum = usize::from(loaded.topology.sentinel.quorum);
        let why = explain_no_failover(&cx.layout, reachable_at_deadline, quorum, &events, fault_at);
        report.failure = report.failure.map(|f| format!("{f}; {why}"));
    }
    report.events = failover::report_events(&events, fault_at);
    report.passed = report.failure.is_none();
    Ok(report)
}

/// `isolate`'s rules drop the peers by container address; announced, they reach the
/// master through the host's NAT, so the fault would isolate nothing and prove nothing.
fn refuse_isolating_an_announced_group(args: &Options, layout: &Layout) -> anyhow::Result<()> {
    if args.fault == Fault::Isolate && layout.announce.is_some() {
        return Err(CommandError::usage(format!(
            "`--fault isolate` cuts the master off from its peers by their container addresses, but this group announces `{}:<published port>` and its nodes reach each other through the engine's host; use `--fault partition` (or `kill`, `stop`, `pause`, `delay`)",
            layout.announce.as_deref().unwrap_or_default()
        ))
        .into());
    }
    Ok(())
}

/// `--stop-sentinels`: stop them now (remembered in `pending`, so they start again on
/// every way out).
async fn stop_sentinels(cx: &RunContext<'_>, pending: &Pending) -> anyhow::Result<Vec<Node>> {
    let stopped = stop_last(&cx.layout, cx.args.stop_sentinels);
    pending.set(Broken {
        cluster: cx.layout.cluster.clone(),
        network: cx.layout.network(),
        node: cx.old.clone(),
        fault: None,
        stopped: stopped.clone(),
    });
    for s in &stopped {
        cx.engine.stop_container(&s.name, 1).await?;
    }
    Ok(stopped)
}

/// The listener on every watching sentinel, the writers (through the sentinels) and the
/// user's command, each working before the fault.
async fn start_load(cx: &RunContext<'_>, run: u32, watching: &[&Node]) -> anyhow::Result<Load> {
    let args = cx.args;
    let sentinels: Vec<(String, SocketAddr)> = watching
        .iter()
        .map(|n| (n.name.clone(), survey::addr(n)))
        .collect();
    let listener = Listener::start(cx.probe, &sentinels).await?;
    let prefix = format!("rcluster:failover-test:{}:{run}", std::process::id());
    let addrs = sentinels.iter().map(|(_, a)| *a).collect();
    let count = if args.no_writers { 0 } else { args.writers };
    // Under split brain, clients that trust `OK` stay with the master they know.
    let sticky = if args.fault == Fault::Isolate {
        count.div_ceil(2)
    } else {
        0
    };
    let writers = Writers::start_with_sticky(
        cx.probe,
        addrs,
        locate(&cx.layout),
        cx.master_name(),
        &prefix,
        count,
        sticky,
    );
    // Measure the outage from a working client, not from one still starting.
    if count > 0 {
        wait_until(Duration::from_secs(5), || writers.last_acked_by().is_some()).await;
    }
    // The user's command, with the settings an application gets from `rcluster env`.
    let command = match args.command.is_empty() {
        true => None,
        false => {
            let password = super::password(cx.loaded)?;
            let running = crate::failover::command::start_for(
                args, cx.loaded, &cx.layout, cx.probe, &password,
            )
            .await?;
            tokio::time::sleep(Duration::from_secs(args.warmup)).await;
            Some(running)
        }
    };
    Ok(Load {
        listener,
        writers,
        prefix,
        command,
    })
}

/// Inject the fault; the run's report so far, and when the fault took hold.
async fn inject_and_report(
    cx: &RunContext<'_>,
    run: u32,
    pending: &Pending,
) -> anyhow::Result<(RunReport, Instant)> {
    let mut fault_at = Instant::now();
    pending.fault(cx.args.fault);
    let mechanism =
        inject_fault(cx.engine, &cx.layout, &cx.old, cx.args, &cx.loaded.topology).await?;
    if matches!(cx.args.fault, Fault::Isolate | Fault::Delay) {
        // The rules are in place now; starting the helper that set them took a moment.
        fault_at = Instant::now();
    }
    let report = RunReport {
        run,
        fault: format!("{:?}", cx.args.fault).to_lowercase(),
        old_master: cx.old.name.clone(),
        new_master: None,
        master_after_heal: None,
        passed: false,
        failure: None,
        timings_ms: Timings::default(),
        writes: Writes::default(),
        events: vec![],
        split_brain_window_ms: None,
        fault_mechanism: mechanism,
        command: None,
        ok_only_keys: vec![],
        ok_only_lost_keys: vec![],
    };
    Ok((report, fault_at))
}

/// Until every watching sentinel names the same new master, within the deadline from the
/// fault; the new master (if any) and how many sentinels answered at the end.
async fn agree_on_new_master(
    cx: &RunContext<'_>,
    watching: &[&Node],
    fault_at: Instant,
    report: &mut RunReport,
) -> (Option<Node>, usize) {
    let mut said = wait::SentinelsSaid::default();
    let agreeing = wait::new_master(
        &cx.layout,
        watching,
        cx.probe,
        cx.master_name(),
        &cx.old,
        &mut said,
    );
    let left = cx.deadline.saturating_sub(fault_at.elapsed());
    let agreed = tokio::time::timeout(left, agreeing).await;
    match agreed.map_err(|_| said) {
        Ok(node) => {
            report.timings_ms.all_agree = Some(ms(Instant::now() - fault_at));
            report.new_master = Some(node.name.clone());
            (Some(node), watching.len())
        }
        Err(said) => {
            report.failure = Some(format!(
                "no new master agreed by all sentinels within {} s: {}",
                cx.deadline.as_secs(),
                said.what
            ));
            (None, said.answering)
        }
    }
}

/// After healing: the group healthy again, or why not. Healed with another master than
/// the one first agreed on is a second failover, checked before the test's keys go.
async fn rejoin(
    cx: &RunContext<'_>,
    report: &mut RunReport,
    new_master: Option<&Node>,
    acked_keys: &[String],
) -> anyhow::Result<Health> {
    let settle = cx.deadline.max(Duration::from_secs(30));
    let group = wait::Group {
        engine: cx.engine,
        layout: &cx.layout,
        probe: cx.probe,
        master_name: cx.master_name(),
        max_lag_bytes: STATUS_MAX_LAG_BYTES,
    };
    let rejoin = healthy_within(&group, settle).await;
    if let (Some(new), Some(now)) = (
        new_master,
        rejoin.as_ref().ok().and_then(|h| h.master.as_ref()),
    ) && now != new
        && *now != cx.old
    {
        let topo = &cx.loaded.topology;
        second_failover(report, cx.probe, new, now, acked_keys, topo).await;
    }
    rejoin
}

/// The test's keys go, wherever the master is now; the user's data set stays as it was.
/// Writes acknowledged by `OK` alone are read back key by key first.
async fn clean_up_keys(
    cx: &RunContext<'_>,
    report: &mut RunReport,
    master: &Node,
    ok_only_keys: &[String],
    prefix: &str,
) {
    match missing_keys(cx.probe, survey::addr(master), ok_only_keys).await {
        Ok(lost) => {
            report.writes.ok_only_lost = lost.len() as u64;
            report.ok_only_lost_keys = lost;
        }
        Err(e) => {
            report.failure.get_or_insert(format!(
                "cannot read the `OK`-acknowledged keys back from `{}`: {e:#}",
                master.name
            ));
        }
    }
    if !cx.args.keep_keys {
        let _ = delete_prefix(cx.probe, survey::addr(master), prefix).await;
    }
}

/// The old master must rejoin as a replica of another master.
fn judge_rejoin(
    cx: &RunContext<'_>,
    report: &mut RunReport,
    rejoin: anyhow::Result<Health>,
    failed_over: bool,
    healed_at: Instant,
) {
    match rejoin {
        Ok(h) if h.master.as_ref().is_some_and(|m| *m != cx.old) => {
            report.timings_ms.rejoined_after_heal = Some(ms(healed_at.elapsed()));
        }
        Ok(_) if !failed_over => {}
        Ok(h) => {
            let now = h.master.map_or("none".into(), |m| m.name);
            report
                .failure
                .get_or_insert(format!("after healing, the master is `{now}` again"));
        }
        Err(e) => {
            report.failure.get_or_insert(format!(
                "the old master `{}` did not rejoin as a healthy replica: {e:#}",
                cx.old.name
            ));
        }
    }
}

/// The group's layout and master, once it is healthy (a group still settling gets a
/// short grace period); an unhealthy group is an error before anything is touched.
async fn healthy_master(
    engine: &Engine,
    topo: &crate::topology::Topology,
    probe: &Probe,
) -> anyhow::Result<(Layout, Node)> {
    let master_name = &topo.sentinel.master_name;
    let observed = observe(engine, &topo.cluster.name).await?;
    let (layout, _) = super::existing_reach(engine, topo, &observed, None).await?;
    let grace = Duration::from_secs(10);
    let group = wait::Group {
        engine,
        layout: &layout,
        probe,
        master_name,
        max_lag_bytes: STATUS_MAX_LAG_BYTES,
    };
    let health = healthy_within(&group, grace).await.map_err(|e| {
        CommandError::failed(format!(
            "the group is not healthy, so no fault was injected: {e:#}"
        ))
    })?;
    let master = health.master.context("a healthy group without a master")?;
    Ok((layout, master))
}

/// Where the writers connect for the master a sentinel names: the node's reach (the one
/// decision in `crate::reach`), or the address as named for a node the layout lacks.
fn locate(layout: &Layout) -> crate::failover::writers::Locate {
    let layout = layout.clone();
    std::sync::Arc::new(move |host: &str, port: u16| {
        layout
            .node_by_addr(host, port)
            .map(|n| n.reach)
            .or_else(|| Some(SocketAddr::new(host.parse().ok()?, port)))
    })
}

/// The last `count` sentinels: the ones `--stop-sentinels` takes away.
fn stop_last(layout: &Layout, count: u8) -> Vec<Node> {
    let all: Vec<&Node> = layout.sentinels().collect();
    all[all.len() - usize::from(count)..]
        .iter()
        .map(|n| (*n).clone())
        .collect()
}

/// Look at `done` every 10 ms for at most `limit`.
async fn wait_until(limit: Duration, done: impl Fn() -> bool) {
    let _ = tokio::time::timeout(
        limit,
        wait::until_true(Duration::from_millis(10), async || done()),
    )
    .await;
}

/// The group healthy within `limit` (no progress shown), or why not.
async fn healthy_within(group: &wait::Group<'_>, limit: Duration) -> anyhow::Result<Health> {
    let mut last = None;
    let waited = tokio::time::timeout(limit, group.healthy(&mut last, |_, _| {})).await;
    match waited {
        Ok(health) => health,
        Err(_) => Err(group.not_healthy(last, limit).await),
    }
}

/// The group healed with another master than the one the sentinels first agreed on: they
/// failed over again, and writes acknowledged by the first new master's replicas may be
/// gone. A run that ends like this fails, with every acknowledged key checked once more on
/// the master the group ended with.
async fn second_failover(
    report: &mut RunReport,
    probe: &Probe,
    first: &Node,
    now: &Node,
    acked_keys: &[String],
    topo: &crate::topology::Topology,
) {
    report.master_after_heal = Some(now.name.clone());
    let lost = count_missing(probe, survey::addr(now), acked_keys).await;
    if let Ok(missing) = lost {
        report.writes.lost = report.writes.lost.max(missing);
    }
    let loss = match lost {
        Ok(0) => "every acknowledged write is still there".to_string(),
        Ok(n) => format!(
            "{n} of {} acknowledged write(s) are missing from it",
            acked_keys.len()
        ),
        Err(e) => format!("the acknowledged keys cannot be read back from it: {e:#}"),
    };
    let hint = match crate::topology::down_after_hazard(topo.sentinel.down_after_ms) {
        true => format!(
            "; sentinel.down_after_ms = {} is likely why (see `rcluster check`)",
            topo.sentinel.down_after_ms
        ),
        false => String::new(),
    };
    report.failure.get_or_insert(format!(
        "the sentinels failed over a second time: after `{}` the master is now `{}` ({loss}){hint}",
        first.name, now.name
    ));
}

/// Every acknowledged key must be on the new master.
async fn check_nothing_lost(report: &mut RunReport, probe: &Probe, new: &Node, keys: &[String]) {
    match count_missing(probe, survey::addr(new), keys).await {
        Ok(0) => {}
        Ok(missing) => {
            report.writes.lost = missing;
            report.failure = Some(format!(
                "{missing} of {} acknowledged write(s) are missing from the new master `{}`",
                keys.len(),
                new.name
            ));
        }
        Err(e) => {
            report.failure = Some(format!(
                "cannot read the acknowledged keys back from `{}`: {e:#}",
                new.name
            ))
        }
    }
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
        // Injected by `inject_fault`.
        Fault::Isolate | Fault::Delay => {}
    }
    Ok(())
}

/// What a run broke: the old master's fault and the sentinels it stopped.
#[derive(Debug, Clone)]
struct Broken {
    cluster: String,
    network: String,
    node: Node,
    fault: Option<Fault>,
    stopped: Vec<Node>,
}

impl Broken {
    /// Undo the fault and start the stopped sentinels.
    async fn heal(&self, engine: &Engine) -> anyhow::Result<()> {
        match self.fault {
            Some(Fault::Kill | Fault::Stop) => engine.start_container(&self.node.name).await?,
            Some(Fault::Pause) => engine.unpause_container(&self.node.name).await?,
            Some(Fault::Partition) => {
                // Back on the network at its own fixed address, as the sentinels know it.
                let request = crate::docker::apply::endpoint_request(&self.node);
                engine.connect_network(&self.network, request).await?;
            }
            Some(Fault::Isolate | Fault::Delay) => {
                crate::failover::faults::heal(engine, &self.cluster, &self.node.name).await?
            }
            None => {}
        }
        for s in &self.stopped {
            engine.start_container(&s.name).await?;
        }
        Ok(())
    }

    /// Heal after a run was cut short, saying what was done or what is left to do.
    async fn mend(&self, engine: &Engine) -> String {
        match self.heal(engine).await {
            Ok(()) => format!(
                "healed what the interrupted run broke (`{}`{}); `rcluster up` checks the group",
                self.node.name,
                if self.stopped.is_empty() {
                    ""
                } else {
                    " and the stopped sentinels"
                }
            ),
            Err(e) => format!(
                "could not heal `{}` after the interrupted run ({e:#}); run `rcluster up` to repair the group",
                self.node.name
            ),
        }
    }
}

/// The run's unmended damage, shared with the Ctrl-C handler.
#[derive(Default)]
struct Pending(std::sync::Mutex<Option<Broken>>);

impl Pending {
    fn set(&self, broken: Broken) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(broken);
    }

    fn fault(&self, fault: Fault) {
        if let Some(b) = self.0.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
            b.fault = Some(fault);
        }
    }

    fn take(&self) -> Option<Broken> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
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
    if let Some(now) = &r.master_after_heal {
        out.push_str(&format!(
            "  master after heal `{now}` (a second failover)\n"
        ));
    }
    out.push_str(&format!(
        "  writes: {} acknowledged, {} lost, {} failed attempts ({} during the outage)\n",
        r.writes.acked, r.writes.lost, r.writes.failed, r.writes.during_outage
    ));
    out.push_str(&crate::failover::command::timeline_extra(r));
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
    let mut out = format!(
        "{}: {} of {runs} run(s) passed; {} acknowledged writes, {} lost\n  all sentinels agree (min/median/max): {}\n  write outage       (min/median/max): {}",
        if passed { "PASSED" } else { "FAILED" },
        s.passed,
        s.acked,
        s.lost,
        f(&s.all_agree),
        f(&s.first_write),
    );
    out.push_str(&crate::failover::command::verdict_extra(s));
    out
}

/// The fault, including the network faults of `failover::faults`; returns how a network
/// fault was made.
async fn inject_fault(
    engine: &Engine,
    layout: &Layout,
    node: &Node,
    args: &Options,
    topo: &crate::topology::Topology,
) -> anyhow::Result<Option<String>> {
    if let Some(how) = crate::failover::faults::inject(engine, layout, node, args, topo).await? {
        return Ok(Some(how));
    }
    inject(engine, layout, node, args.fault).await?;
    Ok(None)
}
