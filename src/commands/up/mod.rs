//! `rcluster up`: load -> observe -> plan -> (dry run: print it) -> execute it -> report.
//! Everything `up` changes is a step of the plan; the executor runs it as listed.

mod preflight;

use std::sync::Mutex;
use std::time::Duration;

use self::preflight::{
    check_ports_free, port_conflict, port_conflict_message, refuse_a_changed_password,
    refuse_removing_the_master, refuse_switching_tls,
};
use super::Global;
use crate::addressing;
use crate::cli::UpArgs;
use crate::config_hash;
use crate::docker::apply::EngineSteps;
use crate::docker::observe::{foreign_conflicts, observe, used_subnets};
use crate::docker::platform::Platform;
use crate::docker::{Engine, image};
use crate::error::{CommandError, EXIT_OK};
use crate::executor::{Executor, Finally};
use crate::health::Health;
use crate::host_files::HostFiles;
use crate::observed::Observed;
use crate::password_store;
use crate::plan::{self, Plan};
use crate::probe::survey;
use crate::probe::{Credentials, Probe};
use crate::report::{Event, MasterJson, Reporter, json_line};
use crate::secret::Secret;
use crate::topology::{Layout, Loaded};

pub async fn run(global: &Global, args: &UpArgs) -> anyhow::Result<i32> {
    let loaded = super::load(global)?;
    let report = Reporter::new(global.json, global.quiet);
    let engine = Engine::connect().await?;
    let cluster = loaded.topology.cluster.name.clone();
    // The plan's `finally` steps once the executor has started, to run them on Ctrl-C too.
    let armed: Mutex<Option<Finally>> = Mutex::new(None);
    let work = up(global, args, &loaded, &engine, &report, &armed);
    tokio::select! {
        result = work => result,
        _ = tokio::signal::ctrl_c() => {
            report.finish();
            let finally = armed.lock().unwrap_or_else(|e| e.into_inner()).take();
            if let Some(finally) = finally {
                finally.run(Duration::from_secs(2)).await;
            }
            let observed = observe(&engine, &cluster).await?;
            let exists: Vec<String> = observed.containers.iter().map(|c| format!("{} ({})", c.name, c.state)).collect();
            Err(CommandError::interrupted(format!(
                    "interrupted; group `{cluster}` now has: {}. Run `rcluster up` to finish it or `rcluster down` to remove it",
                    if exists.is_empty() { "nothing".to_string() } else { exists.join(", ") }
                ),
            ).into())
        }
    }
}

/// Observe the engine once, choose the subnet and build the layout; refuses a group whose
/// addresses nobody here could reach, or names that something else already uses.
async fn lay_out(engine: &Engine, loaded: &Loaded) -> anyhow::Result<(Observed, Platform, Layout)> {
    let topology = &loaded.topology;
    let cluster = &topology.cluster.name;
    // What kind of engine (for the image and the port checks), asked alongside the
    // observation so it adds no round trip to `up`.
    let (observed, platform) = tokio::join!(observe(engine, cluster), engine.platform());
    let (observed, platform) = (observed?, platform?);
    // Every network on the engine, once: for a free subnet and for name conflicts.
    let networks = if observed.networks.is_empty() {
        engine.list_all_networks().await?
    } else {
        Vec::new()
    };
    let engine_subnets = used_subnets(&networks);
    let subnet = addressing::choose_subnet(topology, &observed, &engine_subnets)?;
    // Before anything is created: a group whose addresses nobody here could reach is refused.
    let (layout, _reach) = super::reach(
        engine,
        topology,
        &observed,
        subnet,
        &engine_subnets,
        Some(&platform),
    )
    .await?;

    let conflicts = foreign_conflicts(engine, &layout, &observed, &networks).await?;
    if !conflicts.is_empty() {
        return Err(CommandError::refused(format!(
                "nothing was changed: {}; rcluster never touches what it did not create. Choose another `cluster.name` (or `--name`), or remove them yourself",
                conflicts.join("; ")
            ),
        )
        .into());
    }

    Ok((observed, platform, layout))
}

/// Who the master is now: the sentinels' answer on an existing group (after refusing a
/// changed password), else the layout's master.
async fn master_now(
    loaded: &Loaded,
    layout: &Layout,
    observed: &Observed,
) -> anyhow::Result<std::net::Ipv4Addr> {
    let topology = &loaded.topology;
    let cluster = &topology.cluster.name;
    let existing_password = password_store::password(loaded, cluster)?;
    // Generated certificates that do not exist yet: the group (if any) runs without them.
    let existing_tls = crate::tls_store::client(loaded).ok().flatten();
    let existing_probe = |p: &Secret| {
        Probe::new(Credentials::for_group(topology, p.clone())).with_tls(existing_tls.clone())
    };
    if let Some(p) = &existing_password {
        refuse_a_changed_password(layout, observed, &existing_probe(p), loaded).await?;
    }
    let master = match &existing_password {
        Some(p) if !observed.containers.is_empty() => {
            survey::current_master(
                layout,
                observed,
                &existing_probe(p),
                &topology.sentinel.master_name,
            )
            .await
        }
        _ => layout.master().ip,
    };
    Ok(master)
}

async fn up(
    global: &Global,
    args: &UpArgs,
    loaded: &Loaded,
    engine: &Engine,
    report: &Reporter,
    armed: &Mutex<Option<Finally>>,
) -> anyhow::Result<i32> {
    let topology = &loaded.topology;
    let cluster = &topology.cluster.name;
    let (observed, platform, layout) = lay_out(engine, loaded).await?;
    let source = image::choose_for(topology.redis.image.as_deref(), &platform)?;
    let hashes = config_hash::config_hashes(
        topology,
        &layout,
        &source.choice().reference,
        &crate::tls_store::fingerprint(loaded)?,
    )?;
    refuse_switching_tls(&observed, loaded)?;
    let master = master_now(loaded, &layout, &observed).await?;
    // What this machine gets: prepared in memory now, written by the plan's first steps
    // (after the image: an image the engine cannot get must leave no state), so
    // `--dry-run` lists them and writes nothing.
    let mut host = HostFiles::default();
    let password = password_store::password_or_new(loaded, cluster, &mut host)?;
    // The `[acl]` users' passwords, in private files next to the group password, for
    // `rcluster env` and the applications, and the Sentinel client user's.
    crate::connection::plan_user_password_files(loaded, &password, &mut host);
    crate::connection::plan_sentinel_password_file(loaded, &password, &mut host);
    let tls = crate::tls_store::ensure(loaded, &layout, &[], &mut host)?;
    let (host_dirs, host_files) = host.steps();
    let plan =
        plan::plan(&layout, &hashes, &observed, master).with_host_steps(host_dirs, host_files);
    report.expect_nodes(layout.nodes.iter().map(|n| n.name.as_str()));
    refuse_removing_the_master(&plan, &observed, &layout, master)?;

    if args.dry_run {
        print!("{plan}");
        return Ok(EXIT_OK);
    }
    check_ports_free(&layout, &plan, topology.cluster.bind, &platform)?;

    let image = image::ensure(engine, &source, |line| report.info(line)).await?;
    // The certificates as prepared, not as stored: the plan writes them.
    let client_tls = tls
        .as_ref()
        .map(|group| group.client_tls(topology.tls.client_auth));
    let probe = Probe::new(Credentials::for_group(topology, password.clone())).with_tls(client_tls);
    let executor = Executor {
        engine: EngineSteps {
            engine,
            topology,
            layout: &layout,
            password: &password,
            tls: tls.as_ref(),
            image: &image,
            hashes: &hashes,
            report,
        },
        probe: &probe,
        host: &host,
        timeout: Duration::from_secs(args.timeout),
    };
    if plan.is_empty() {
        report.info(format!(
            "group `{cluster}` exists and matches the topology; checking health"
        ));
    }
    *armed.lock().unwrap_or_else(|e| e.into_inner()) = Some(executor.finally(&plan));
    let health = executor.run(&plan).await;
    // The executor ran the `finally` steps itself.
    armed.lock().unwrap_or_else(|e| e.into_inner()).take();
    if let Err(e) = &health
        && let Some(said) = port_conflict(e)
    {
        report.finish();
        let undone = remove_what_up_created(&executor, engine, cluster, &observed).await;
        return Err(CommandError::refused(port_conflict_message(
            &said,
            &engine.endpoint().url,
            &undone,
        ))
        .into());
    }
    // Every plan ends with a wait until healthy (plan.rs); its verdict is the result.
    let health = health?.ok_or_else(|| {
        anyhow::anyhow!("the plan has no wait until healthy; this is a bug in rcluster")
    })?;
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
    print_result(global, &layout, &plan, &health, report)?;
    Ok(EXIT_OK)
}

/// After the engine refused a port: remove the containers, network and volumes this `up`
/// created (what `before` did not have), so a failed first `up` leaves nothing behind and
/// a failed scale-up leaves the group as it was. Says what it did, for the message.
/// Undo a failed `up` (a port the engine found taken): a plan of removals, run by the
/// same executor; says what it did, for the message.
async fn remove_what_up_created(
    executor: &Executor<'_>,
    engine: &Engine,
    cluster: &str,
    before: &Observed,
) -> String {
    let result = async {
        let now = observe(engine, cluster).await?;
        let rollback = plan::rollback(before, &now);
        executor.run(&rollback).await?;
        anyhow::Ok(rollback.steps().count())
    }
    .await;
    match result {
        Ok(0) => "nothing was created".to_string(),
        Ok(n) => {
            format!("removed the {n} container(s), network(s) and volume(s) this `up` had created")
        }
        Err(e) => format!(
            "could not remove what this `up` created ({}); `rcluster down` removes it",
            crate::error::render(&e).trim_start_matches("error: ")
        ),
    }
}

/// `up --json`.
#[derive(serde::Serialize)]
pub struct UpJson {
    pub name: String,
    pub healthy: bool,
    pub elapsed_ms: u64,
    /// The plan changed something (it was not only a health check).
    pub changed: bool,
    /// The plan's steps that change something, as `--dry-run` words them.
    pub steps: Vec<String>,
    pub master: Option<MasterJson>,
    pub events: Vec<Event>,
}

fn print_result(
    global: &Global,
    layout: &Layout,
    plan: &Plan,
    health: &Health,
    report: &Reporter,
) -> anyhow::Result<()> {
    let cluster = &layout.cluster;
    let master = health.master.as_ref();
    if global.json {
        let document = UpJson {
            name: cluster.to_string(),
            healthy: health.healthy,
            elapsed_ms: (report.elapsed() * 1000.0).round() as u64,
            changed: !plan.is_empty(),
            steps: plan
                .steps()
                .filter(|s| s.changes_something())
                .map(|s| s.to_string())
                .collect(),
            master: master.map(|m| MasterJson::of(layout, m)),
            events: report.events(),
        };
        println!("{}", json_line(&document)?);
    } else if !global.quiet {
        let what = if plan.is_empty() {
            "unchanged, healthy"
        } else {
            "healthy"
        };
        match master {
            Some(m) => {
                let (host, port) = layout.advertised(m);
                println!(
                    "group `{cluster}` {what} in {:.2}s; master `{}` at {host}:{port}",
                    report.elapsed(),
                    m.name,
                )
            }
            None => println!("group `{cluster}` {what} in {:.2}s", report.elapsed()),
        }
    }
    Ok(())
}
