//! `rcluster completions <shell>`: a completion script on stdout.

use clap::CommandFactory;

use crate::cli::Cli;
use crate::error::EXIT_OK;

pub fn run(shell: clap_complete::Shell) -> anyhow::Result<i32> {
    let mut command = Cli::command();
    clap_complete::generate(shell, &mut command, "rcluster", &mut std::io::stdout());
    Ok(EXIT_OK)
}
