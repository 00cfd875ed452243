//! `rcluster cli`: redis-cli on the current master or a named node, authenticated without
//! the password on any command line: `REDISCLI_AUTH` in the environment of one process only.

use std::io::Write;
use std::process::Command;

use super::Global;
use crate::cli::CliArgs;
use crate::docker::Engine;
use crate::docker::observe::observe;
use crate::error::{CommandError, EXIT_FAILED, EXIT_OK};
use crate::probe::Probe;
use crate::probe::survey;
use crate::topology::Node;

pub async fn run(global: &Global, args: &CliArgs) -> anyhow::Result<i32> {
    let loaded = super::load(global)?;
    let topo = &loaded.topology;
    let engine = Engine::connect().await?;
    let observed = observe(&engine, &topo.cluster.name).await?;
    if observed.containers.is_empty() {
        return Err(CommandError::failed(format!(
            "group `{}` does not exist (run `rcluster up`)",
            topo.cluster.name
        ))
        .into());
    }
    let (layout, _) = super::existing_reach(&engine, topo, &observed).await?;
    let password = super::password(&loaded)?;
    let node: Node = match &args.node {
        Some(name) => layout.node(name).cloned().ok_or_else(|| {
            let known: Vec<&str> = layout.nodes.iter().map(|n| n.key.as_str()).collect();
            CommandError::usage(format!(
                "no node `{name}` in group `{}`; nodes: {}",
                layout.cluster,
                known.join(", ")
            ))
        })?,
        None => {
            let ip = survey::current_master(
                &layout,
                &observed,
                &Probe::new(password.clone()),
                &topo.sentinel.master_name,
            )
            .await;
            layout
                .node_by_ip(ip)
                .cloned()
                .unwrap_or_else(|| layout.master().clone())
        }
    };

    if args.args.is_empty() {
        // Interactive: the host's redis-cli, straight to where rcluster reaches the node.
        let status = Command::new("redis-cli")
            .arg("-h")
            .arg(node.reach.ip().to_string())
            .arg("-p")
            .arg(node.reach.port().to_string())
            .env("REDISCLI_AUTH", password.expose())
            .status()
            .map_err(|e| {
                CommandError::failed(format!("cannot run `redis-cli` on this host ({e}); install `redis-tools`, or pass a command after `--` to run it inside the container"),
                )
            })?;
        return Ok(if status.success() {
            EXIT_OK
        } else {
            EXIT_FAILED
        });
    }

    // One command: run redis-cli inside the node's container (the labelled one), its
    // output streamed as it comes (MONITOR, SUBSCRIBE run until Ctrl-C).
    let container = observed
        .container(&node.key)
        .filter(|c| c.state.is_running())
        .ok_or_else(|| {
            CommandError::failed(format!(
                "node `{}` is not running (see `rcluster status`)",
                node.name
            ))
        })?;
    let mut cmd = vec![
        "redis-cli".to_string(),
        "-p".to_string(),
        node.port.to_string(),
    ];
    cmd.extend(args.args.iter().cloned());
    let env = vec![format!("REDISCLI_AUTH={}", password.expose())];
    let code = engine
        .exec(&container.id, cmd, env, |bytes| {
            let mut stdout = std::io::stdout().lock();
            let _ = stdout.write_all(bytes).and_then(|()| stdout.flush());
        })
        .await?;
    Ok(if code == 0 { EXIT_OK } else { EXIT_FAILED })
}
