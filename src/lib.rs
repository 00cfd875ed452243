//! rcluster: a highly available Redis group (master, replicas, Sentinel) on the Docker engine.
//!
//! Pure core: `topology` (file -> checked model), `acl` and `tls` (users and certificates
//! as data), `render` (model -> config files), `config_hash` (keep or recreate),
//! `observed` (what exists, as data), `plan` (desired vs observed -> phases of steps),
//! `health` (what the nodes said -> a verdict with reasons), `reach` (which addresses the
//! group hands out and rcluster connects to).
//! Side effects: `docker` (the engine), `probe` (Redis and Sentinel), `wait` (readiness
//! loops), `executor` (runs a plan), `password_store` and `tls_store` (the generated
//! passwords and certificates on disk), `addressing` (reads the host's routes).
//! `tests/architecture.rs` keeps the pure core free of side-effect modules and circles.
//! `commands` holds one short script per subcommand; nothing outside it imports it.

pub mod acl;
pub mod addressing;
pub mod cli;
pub mod commands;
pub mod config_hash;
pub mod connection;
pub mod docker;
pub mod error;
pub mod executor;
pub mod failover;
pub mod health;
pub mod host_files;
pub mod labels;
pub mod observed;
pub mod password_store;
pub mod plan;
pub mod probe;
pub mod reach;
pub mod render;
pub mod report;
pub mod secret;
pub mod tls;
pub mod tls_store;
pub mod topology;
pub mod wait;

use clap::Parser;

/// Parse the command line, run the command, print any error; returns the exit code.
pub fn main() -> i32 {
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() {
                error::EXIT_USAGE
            } else {
                error::EXIT_OK
            };
            let _ = e.print();
            return code;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return error::EXIT_FAILED;
        }
    };
    match runtime.block_on(commands::run(cli)) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("{}", error::render(&err));
            error::exit_code(&err)
        }
    }
}
