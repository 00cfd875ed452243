//! `rcluster logs`: the nodes' logs, each line prefixed with its node, coloured per node on
//! a terminal (unless NO_COLOR), like `docker compose logs`.

use futures_util::StreamExt;
use futures_util::stream::select_all;

use super::Global;
use crate::addressing;
use crate::cli::LogsArgs;
use crate::docker::Engine;
use crate::docker::observe::observe;
use crate::error::{CommandError, EXIT_OK};
use crate::topology::Node;

const COLOURS: [&str; 6] = ["36", "33", "32", "35", "34", "31"];

pub async fn run(global: &Global, args: &LogsArgs) -> anyhow::Result<i32> {
    let loaded = super::load(global)?;
    let engine = Engine::connect().await?;
    let observed = observe(&engine, &loaded.topology.cluster.name).await?;
    let layout = addressing::layout(&loaded.topology, &observed);
    // Each node's container as the labels found it: never one that merely has its name.
    let nodes: Vec<(&Node, String)> = if args.nodes.is_empty() {
        layout
            .nodes
            .iter()
            .filter_map(|n| observed.container(&n.key).map(|c| (n, c.id.clone())))
            .collect()
    } else {
        args.nodes
            .iter()
            .map(|name| {
                let node = layout.node(name).ok_or_else(|| {
                    CommandError::usage(format!("no node `{name}` in group `{}`", layout.cluster))
                })?;
                let container = observed.container(&node.key).ok_or_else(|| {
                    CommandError::failed(format!(
                        "node `{}` has no container (run `rcluster up`)",
                        node.name
                    ))
                })?;
                Ok::<_, CommandError>((node, container.id.clone()))
            })
            .collect::<Result<_, _>>()?
    };
    let colour = crate::report::colour();
    let width = nodes.iter().map(|(n, _)| n.name.len()).max().unwrap_or(0);
    let streams = nodes.iter().enumerate().map(|(i, (node, id))| {
        let prefix = if colour {
            format!(
                "\x1b[{}m{:<width$} |\x1b[0m ",
                COLOURS[i % COLOURS.len()],
                node.name
            )
        } else {
            format!("{:<width$} | ", node.name)
        };
        engine
            .logs_stream(id, args.follow, args.tail)
            .map(move |chunk| (prefix.clone(), chunk))
            .boxed()
    });
    let mut merged = select_all(streams);
    // A chunk may end mid-line; keep the rest for the next chunk of the same node.
    let mut partial: std::collections::HashMap<String, String> = Default::default();
    loop {
        let item = tokio::select! {
            item = merged.next() => item,
            _ = tokio::signal::ctrl_c() => None,
        };
        let Some((prefix, chunk)) = item else { break };
        let buffer = partial.entry(prefix.clone()).or_default();
        buffer.push_str(&chunk?);
        while let Some(end) = buffer.find('\n') {
            let line: String = buffer.drain(..=end).collect();
            print!("{prefix}{line}");
        }
    }
    for (prefix, rest) in partial {
        if !rest.is_empty() {
            println!("{prefix}{rest}");
        }
    }
    Ok(EXIT_OK)
}
