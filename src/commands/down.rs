//! `rcluster down`: remove what carries this group's project label, and nothing else.
//! Works from labels alone: the topology file is read only for the group's name, leniently,
//! so `down` works when the file changed, is invalid, or is gone (then use `--name`).

use anyhow::Context;
use futures_util::future::join_all;

use super::Global;
use crate::cli::DownArgs;
use crate::docker::Engine;
use crate::docker::observe::observe;
use crate::error::{CommandError, EXIT_OK};
use crate::labels;
use crate::password_store;
use crate::report::json_line;

/// `down --json`.
#[derive(serde::Serialize)]
pub struct DownJson {
    pub name: String,
    pub removed: Removed,
    pub kept: Kept,
}

#[derive(serde::Serialize)]
pub struct Removed {
    pub containers: Vec<String>,
    pub networks: Vec<String>,
    pub volumes: Vec<String>,
}

#[derive(serde::Serialize)]
pub struct Kept {
    /// Data volumes `down` left (without `--volumes`).
    pub volumes: Vec<String>,
}

pub async fn run(global: &Global, args: &DownArgs) -> anyhow::Result<i32> {
    let cluster = cluster_name(global)?;
    // The name becomes a label filter and a directory name under the state directory:
    // it must be a real group name, whatever file or flag it came from.
    if let Some(problem) = crate::topology::validate::name_problem(&cluster) {
        return Err(CommandError::usage(format!("the group name `{cluster}` {problem}")).into());
    }
    let engine = Engine::connect().await?;
    let observed = observe(&engine, &cluster).await?;
    // A network-fault helper left by a crashed `failover-test` shares a node's namespace.
    crate::docker::netadmin::remove_helpers(&engine, &cluster).await?;

    // Sentinels first so that none of them starts a failover while the data nodes go.
    let (sentinels, data): (Vec<_>, Vec<_>) =
        observed.containers.iter().partition(|c| c.is_sentinel());
    let results = join_all(sentinels.iter().map(|c| engine.remove_container(&c.id))).await;
    results.into_iter().collect::<Result<Vec<()>, _>>()?;
    // Data nodes that keep their volumes get a clean shutdown first: redis then writes
    // its last RDB snapshot, which a kill would lose when AOF is off.
    if !args.volumes {
        let results = join_all(data.iter().map(|c| engine.stop_container(&c.id, 10))).await;
        results.into_iter().collect::<Result<Vec<()>, _>>()?;
    }
    let results = join_all(data.iter().map(|c| engine.remove_container(&c.id))).await;
    results.into_iter().collect::<Result<Vec<()>, _>>()?;
    // A network still used by containers rcluster did not create (a client the user
    // attached) is left alone; the rest of `down` still happens, and the message says
    // what to do.
    let mut in_use = Vec::new();
    for network in &observed.networks {
        if let Err(e) = engine.remove_network(&network.id).await {
            let cause = std::error::Error::source(&e).map_or(e.to_string(), |c| c.to_string());
            in_use.push(format!("`{}` ({cause})", network.name));
        }
    }
    let (removed_volumes, kept_volumes) = if args.volumes {
        let results = join_all(observed.volumes.iter().map(|v| engine.remove_volume(v))).await;
        results.into_iter().collect::<Result<Vec<()>, _>>()?;
        // The generated password protected data that no longer exists.
        password_store::forget(&cluster)?;
        (observed.volumes.clone(), vec![])
    } else {
        (vec![], observed.volumes.clone())
    };

    if !in_use.is_empty() {
        return Err(CommandError::failed(format!(
                "removed the group's containers{}, but not network {}: containers rcluster did not create are attached; \
                 `docker network disconnect` them, then run `rcluster down` again",
                if args.volumes { " and volumes" } else { "" },
                in_use.join(", ")
            ),
        )
        .into());
    }
    let containers: Vec<&str> = observed
        .containers
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    let networks: Vec<&str> = observed.networks.iter().map(|n| n.name.as_str()).collect();
    if global.json {
        let document = DownJson {
            name: cluster.clone(),
            removed: Removed {
                containers: containers.iter().map(|c| c.to_string()).collect(),
                networks: networks.iter().map(|n| n.to_string()).collect(),
                volumes: removed_volumes.clone(),
            },
            kept: Kept {
                volumes: kept_volumes.clone(),
            },
        };
        println!("{}", json_line(&document)?);
    } else if !global.quiet {
        if observed.is_empty() {
            println!(
                "group `{cluster}`: nothing to remove (no container, network or volume labelled {}={cluster})",
                labels::PROJECT
            );
        } else {
            println!(
                "group `{cluster}`: removed {} container(s), {} network(s), {} volume(s)",
                containers.len(),
                networks.len(),
                removed_volumes.len()
            );
            if !kept_volumes.is_empty() {
                println!(
                    "kept data volume(s) {} (`down --volumes` deletes them)",
                    kept_volumes.join(", ")
                );
            }
        }
    }
    Ok(EXIT_OK)
}

/// `--name`, else `cluster.name` from the topology file read leniently (an invalid file
/// must not stop a `down`), else the default name.
fn cluster_name(global: &Global) -> anyhow::Result<String> {
    if let Some(name) = &global.name {
        return Ok(name.clone());
    }
    let text = std::fs::read_to_string(&global.file).map_err(|e| {
        CommandError::usage(format!(
            "cannot read `{}` to learn the group's name ({e}); pass `--name NAME`",
            global.file.display()
        ))
    })?;
    let value: toml::Table = match toml::from_str(&text) {
        Ok(v) => v,
        Err(_) => {
            return Err(CommandError::usage(format!(
                "`{}` does not parse, so the group's name is unknown; pass `--name NAME`",
                global.file.display()
            )))
            .context("down removes by name and label only");
        }
    };
    Ok(value
        .get("cluster")
        .and_then(|c| c.get("name"))
        .and_then(|n| n.as_str())
        .unwrap_or(crate::topology::validate::DEFAULT_NAME)
        .to_string())
}
