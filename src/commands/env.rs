//! `rcluster env`: the settings an application needs to connect through the sentinels,
//! as shell exports, a `.env` body or JSON. The password itself is never printed, only the
//! path of the file that holds it.

use super::Global;
use crate::cli::{EnvArgs, EnvFormat};
use crate::docker::Engine;
use crate::docker::observe::observe;
use crate::error::{CommandError, EXIT_OK};
use crate::probe::Probe;

pub async fn run(global: &Global, args: &EnvArgs) -> anyhow::Result<i32> {
    let loaded = super::load(global)?;
    let password = super::password(&loaded)?;
    let engine = Engine::connect().await?;
    let observed = observe(&engine, &loaded.topology.cluster.name).await?;
    if observed.is_empty() {
        return Err(CommandError::failed(format!(
            "group `{}` does not exist; run `rcluster up` first",
            loaded.topology.cluster.name
        ))
        .into());
    }
    let (layout, _) = super::existing_reach(&engine, &loaded.topology, &observed, None).await?;
    let probe = Probe::for_group(&loaded, password.clone())?;
    let settings = crate::connection::settings(&loaded, &layout, &probe, &password).await?;
    let format = if global.json {
        EnvFormat::Json
    } else {
        args.format
    };
    match format {
        EnvFormat::Shell => print!("{}", settings.to_shell()),
        EnvFormat::Dotenv => print!("{}", settings.to_dotenv()),
        EnvFormat::Json => println!("{}", serde_json::to_string(&settings)?),
    }
    if settings.master.is_none() && !global.quiet {
        eprintln!("warning: no sentinel answered with a master; `RCLUSTER_MASTER` is not set");
    }
    Ok(EXIT_OK)
}
