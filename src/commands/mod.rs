//! One short script per subcommand: load -> validate -> observe -> plan -> apply -> wait -> report,
//! and what only the commands share: the global options, loading the topology (warnings
//! shown here), and the password lookup. Nothing outside this module imports it.

pub mod check;
pub mod completions;
pub mod down;
pub mod env;
pub mod failover_experiment;
pub mod logs;
pub mod redis_cli;
pub mod render;
pub mod status;
pub mod up;

use anyhow::Context;

use crate::cli::{Cli, Command};
use crate::docker::Engine;
use crate::docker::platform::Platform;
use crate::error::CommandError;
use crate::observed::Observed;
use crate::reach::Reach;
use crate::secret::Secret;
use crate::topology::{self, Layout, Loaded, Subnet, Topology};

/// Options every command gets.
#[derive(Debug, Clone)]
pub struct Global {
    pub file: std::path::PathBuf,
    pub name: Option<String>,
    pub json: bool,
    pub quiet: bool,
}

pub async fn run(cli: Cli) -> anyhow::Result<i32> {
    let global = Global {
        file: cli.file,
        name: cli.name,
        json: cli.json,
        quiet: cli.quiet,
    };
    match cli.command {
        Command::Check => check::run(&global),
        Command::Render(args) => render::run(&global, &args),
        Command::Up(args) => up::run(&global, &args).await,
        Command::Down(args) => down::run(&global, &args).await,
        Command::Status(args) => status::run(&global, &args).await,
        Command::FailoverTest(args) => {
            failover_experiment::run(&global, &failover_experiment::options(&args)).await
        }
        Command::Cli(args) => redis_cli::run(&global, &args).await,
        Command::Logs(args) => logs::run(&global, &args).await,
        Command::Completions { shell } => completions::run(shell),
        Command::Env(args) => env::run(&global, &args).await,
    }
}

/// Load and check the topology; warnings go to stderr unless quiet/json.
pub fn load(global: &Global) -> anyhow::Result<Loaded> {
    let loaded = topology::load(&global.file, global.name.as_deref())?;
    if !global.quiet && !global.json && !loaded.warnings.is_empty() {
        eprint!(
            "{}",
            topology::format_diagnostics(&global.file, &loaded.warnings)
        );
    }
    Ok(loaded)
}

/// rcluster's login to the group's nodes with the group `password` (see
/// `Credentials::for_group`).
pub fn credentials(loaded: &Loaded, password: Secret) -> crate::probe::Credentials {
    crate::probe::Credentials::for_group(&loaded.topology, password)
}

/// The password every command that talks to Redis needs; a clear error when the group
/// was never brought up and the topology names none.
pub fn password(loaded: &Loaded) -> anyhow::Result<Secret> {
    let cluster = &loaded.topology.cluster.name;
    crate::password_store::password(loaded, cluster)?
        .ok_or_else(|| {
            CommandError::usage(format!(
                "no password for group `{cluster}`: it was never brought up (run `rcluster up`), \
                     and the topology configures none in `[auth]`"
            ))
        })
        .context("cannot talk to the group")
}

/// The group's layout with the one reach decision applied (`crate::reach`): which
/// addresses the nodes announce, and where rcluster connects to them. `engine_networks` are
/// the engine's network subnets, looked at when the group's network does not exist yet.
///
/// On a rootful Linux engine this reads the routing table and asks the engine nothing.
/// `known` is the engine's platform when the command already asked for it: it is then
/// always used, because a route can match by coincidence. Rootless Docker's own `bridge`
/// network is 172.17.0.0/16, the same as the host's `docker0` route of a rootful engine
/// next to it, so the routes said "reachable" and `up` probed container addresses that
/// led to the default gateway.
pub async fn reach(
    engine: &Engine,
    topology: &Topology,
    observed: &Observed,
    subnet: Subnet,
    engine_networks: &[String],
    known: Option<&Platform>,
) -> anyhow::Result<(Layout, Reach)> {
    let networks: Vec<topology::layout::Cidr> = match observed.subnet() {
        Some(s) => vec![s.cidr()],
        None => engine_networks
            .iter()
            .filter_map(|s| topology::layout::parse_cidr(s))
            .collect(),
    };
    let routed = crate::addressing::routed(&networks);
    // A remote engine's bridge subnets may happen to match a local route: ask it. Any
    // tcp or ssh endpoint counts, from DOCKER_HOST or a docker context alike.
    let remote = engine.endpoint().host().is_some();
    let platform = match known {
        Some(p) => Some(p.clone()),
        None if routed == Some(true) && !remote => None,
        None => Some(engine.platform().await?),
    };
    let reach =
        Reach::decide(topology, routed, platform.as_ref()).map_err(CommandError::refused)?;
    let via = match &reach.via {
        None => None,
        Some(host) => Some(resolve(host).with_context(|| {
            format!("cannot resolve `{host}`, where rcluster would reach the published ports")
        })?),
    };
    Ok((reach.apply(Layout::new(topology, subnet), via), reach))
}

/// The layout and reach of an existing group, for the commands that only talk to it.
pub async fn existing_reach(
    engine: &Engine,
    topology: &Topology,
    observed: &Observed,
    known: Option<&Platform>,
) -> anyhow::Result<(Layout, Reach)> {
    let layout = crate::addressing::layout(topology, observed);
    reach(engine, topology, observed, layout.subnet, &[], known).await
}

/// An address for a host name or IP, IPv4 first (the group is IPv4).
fn resolve(host: &str) -> anyhow::Result<std::net::IpAddr> {
    use std::net::ToSocketAddrs as _;
    if let Ok(ip) = host.parse() {
        return Ok(ip);
    }
    let addrs: Vec<std::net::SocketAddr> = (host, 0).to_socket_addrs()?.collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or(addrs.first())
        .map(|a| a.ip())
        .ok_or_else(|| anyhow::anyhow!("`{host}` has no address"))
}
