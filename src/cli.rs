//! The command line (clap derive). Parsing only; each command lives in `commands/`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "rcluster",
    version,
    about = "Run a highly available Redis group (master, replicas, Sentinel) on Docker, and prove its failover works",
    after_help = "Example:\n  rcluster up && rcluster status && rcluster failover-test && rcluster down"
)]
pub struct Cli {
    /// Topology file.
    #[arg(
        short = 'f',
        long = "file",
        global = true,
        default_value = "topology.toml"
    )]
    pub file: PathBuf,

    /// Override `cluster.name` from the topology.
    #[arg(long, global = true)]
    pub name: Option<String>,

    /// Print machine-readable JSON on stdout instead of human output.
    #[arg(long, global = true)]
    pub json: bool,

    /// Print only errors.
    #[arg(short, long, global = true)]
    pub quiet: bool,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate the topology and print errors and warnings.
    #[command(after_help = "Example:\n  rcluster -f topology.toml check")]
    Check,

    /// Write the config files (or manifests) the topology renders to.
    #[command(after_help = "Example:\n  rcluster render --out build/")]
    Render(RenderArgs),

    /// Create or repair the group and wait until it is healthy.
    #[command(after_help = "Example:\n  rcluster up --timeout 60")]
    Up(UpArgs),

    /// Remove the group's containers and network (data volumes only with --volumes).
    #[command(after_help = "Example:\n  rcluster down --volumes")]
    Down(DownArgs),

    /// Show every node as it reports itself, and whether the group is healthy.
    #[command(after_help = "Example:\n  rcluster status --json")]
    Status(StatusArgs),

    /// Kill the master, measure the failover, and check no acknowledged write was lost.
    #[command(
        name = "failover-test",
        after_help = "Example:\n  rcluster failover-test --fault kill --runs 3"
    )]
    FailoverTest(FailoverArgs),

    /// redis-cli on the current master (or a named node), already authenticated.
    #[command(
        after_help = "Examples:\n  rcluster cli\n  rcluster cli replica-1 -- INFO replication\n  rcluster cli -- SET greeting hello\n  rcluster cli --user app -- SET app:greeting hello"
    )]
    Cli(CliArgs),

    /// Show the nodes' logs, prefixed with the node name.
    #[command(after_help = "Example:\n  rcluster logs master sentinel-1 --tail 20 --follow")]
    Logs(LogsArgs),

    /// Print a shell completion script.
    #[command(
        after_help = "Example:\n  rcluster completions bash > /etc/bash_completion.d/rcluster"
    )]
    Completions { shell: clap_complete::Shell },

    /// Print how an application connects (sentinels, master name, password file).
    #[command(
        after_help = "Examples:\n  eval \"$(rcluster env)\"\n  rcluster env --format dotenv > .env"
    )]
    Env(EnvArgs),
}

#[derive(Debug, Args)]
pub struct EnvArgs {
    /// Output format (`--json` is the same as `--format json`).
    #[arg(long, value_enum, default_value_t = EnvFormat::Shell)]
    pub format: EnvFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EnvFormat {
    /// `export RCLUSTER_...='...'` lines, for `eval "$(rcluster env)"`.
    Shell,
    /// `RCLUSTER_...=...` lines, the body of a `.env` file.
    Dotenv,
    /// One JSON object.
    Json,
}

#[derive(Debug, Args)]
pub struct CliArgs {
    /// Node to talk to (`master`, `replica-1`, `sentinel-2` or the container name);
    /// default: the current master, as the sentinels say.
    pub node: Option<String>,
    /// Log in as this `[acl]` user (its password reaches redis-cli through its environment,
    /// never a command line); default: rcluster's own login.
    #[arg(long, value_name = "NAME")]
    pub user: Option<String>,
    /// One command to run instead of an interactive session.
    #[arg(last = true)]
    pub args: Vec<String>,
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// Nodes to show (`master`, `replica-1`, ... or container names); default: all.
    pub nodes: Vec<String>,
    /// Keep printing new lines until Ctrl-C. (No `-f`: that is the topology file.)
    #[arg(long)]
    pub follow: bool,
    /// Only the last N lines of each node.
    #[arg(long)]
    pub tail: Option<usize>,
}

#[derive(Debug, Args)]
pub struct RenderArgs {
    /// Directory to write into; one sub-directory per node.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// What to render.
    #[arg(long, value_enum, default_value_t = RenderFormat::Conf)]
    pub format: RenderFormat,
    /// Show the password instead of `********`.
    #[arg(long)]
    pub show_secrets: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RenderFormat {
    /// redis.conf and sentinel.conf per node.
    Conf,
    /// Kubernetes manifests.
    K8s,
    /// A docker-compose.yml and its config files.
    Compose,
}

#[derive(Debug, Args)]
pub struct UpArgs {
    /// Give up waiting for healthy after this many seconds.
    #[arg(long, default_value_t = 120)]
    pub timeout: u64,
    /// Print the plan and change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct DownArgs {
    /// Also delete the data volumes (the data is gone for good).
    #[arg(long)]
    pub volumes: bool,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Show the password's location and value.
    #[arg(long)]
    pub show_secrets: bool,
    /// Redraw every second until Ctrl-C.
    #[arg(long)]
    pub watch: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Fault {
    /// SIGKILL the master's container.
    Kill,
    /// Stop the master gracefully.
    Stop,
    /// Freeze the master's process: the sentinels see a hung master.
    Pause,
    /// Disconnect the master from the group network while it keeps running.
    Partition,
    /// Cut the master off from its replicas and sentinels (both ways) while clients still
    /// reach it: split brain.
    Isolate,
    /// Slow the master's network link (tc netem, or heavy packet loss when the kernel has
    /// no netem) past `down_after_ms`: a failover without a crash.
    Delay,
}

#[derive(Debug, Args)]
pub struct FailoverArgs {
    #[arg(long, value_enum, default_value_t = Fault::Kill)]
    pub fault: Fault,
    /// How many failovers in a row.
    #[arg(long, default_value_t = 1)]
    pub runs: u32,
    /// Concurrent writers.
    #[arg(long, default_value_t = 2)]
    pub writers: u32,
    /// Seconds to wait for all sentinels to agree on a new master
    /// (default: failover_timeout plus a margin).
    #[arg(long)]
    pub deadline: Option<u64>,
    /// Also stop this many sentinels before the fault (restarted afterwards), to rehearse
    /// losing them: with fewer sentinels than the quorum, no failover can happen.
    #[arg(long, default_value_t = 0)]
    pub stop_sentinels: u8,
    /// Keep an `isolate` or `delay` fault at least this many seconds after it starts
    /// (default: 10, or `replication.min_replicas_max_lag` + 5 when `min_replicas_to_write`
    /// is on and that is longer).
    #[arg(long)]
    pub hold: Option<u64>,
    /// `delay`: latency added to the master's link, in ms (default: 3 x `down_after_ms`).
    #[arg(long)]
    pub delay_ms: Option<u64>,
    /// `delay`: packet loss in percent (default: none with netem; 85 without it).
    #[arg(long)]
    pub loss: Option<f64>,
    /// Fail a run when more than N writes acknowledged by `OK` alone were lost to split brain.
    #[arg(long)]
    pub max_split_brain_loss: Option<u64>,
    /// Seconds between the start of CMD and the fault.
    #[arg(long, default_value_t = 2)]
    pub warmup: u64,
    /// Do not run rcluster's own writers (only CMD, if given).
    #[arg(long)]
    pub no_writers: bool,
    /// Also give CMD the password itself, in `RCLUSTER_PASSWORD`.
    #[arg(long)]
    pub pass_password_env: bool,
    /// Keep the test's keys (`rcluster:failover-test:*`) instead of deleting them, to read
    /// them back yourself.
    #[arg(long)]
    pub keep_keys: bool,
    /// Your own workload, run through each run with the connection settings in its
    /// environment (`RCLUSTER_SENTINELS`, `RCLUSTER_MASTER_NAME`, `RCLUSTER_MASTER`,
    /// `RCLUSTER_PASSWORD_FILE`); a non-zero exit fails the run.
    #[arg(last = true, value_name = "CMD")]
    pub command: Vec<String>,
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_command_line_is_consistent() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
