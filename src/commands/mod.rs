//! One short script per subcommand: load -> validate -> observe -> plan -> apply -> wait -> report,
//! and what only the commands share: the global options, loading the topology (warnings
//! shown here), and the password lookup. Nothing outside this module imports it.

pub mod check;
pub mod completions;
pub mod down;
pub mod env;
pub mod failover_test;
pub mod logs;
pub mod redis_cli;
pub mod render;
pub mod status;
pub mod up;

use anyhow::Context;

use crate::cli::{Cli, Command};
use crate::error::CommandError;
use crate::secret::Secret;
use crate::topology::{self, Loaded};

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
        Command::FailoverTest(args) => failover_test::run(&global, &args).await,
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
