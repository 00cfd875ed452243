//! One short script per subcommand: load -> validate -> observe -> plan -> apply -> wait -> report.

pub mod check;
pub mod cli;
pub mod completions;
pub mod down;
pub mod env;
pub mod failover_test;
pub mod logs;
pub mod render;
pub mod status;
pub mod up;

use crate::cli::{Cli, Command};

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
        Command::Cli(args) => cli::run(&global, &args).await,
        Command::Logs(args) => logs::run(&global, &args).await,
        Command::Completions { shell } => completions::run(shell),
        Command::Env(args) => env::run(&global, &args).await,
    }
}
