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
use crate::secret::Secret;
use crate::topology::{Node, Topology};

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
    let (layout, _) = super::existing_reach(&engine, topo, &observed, None).await?;
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
                &Probe::for_group(&loaded, password.clone())?,
                &topo.sentinel.master_name,
            )
            .await;
            layout
                .node_by_ip(ip)
                .cloned()
                .unwrap_or_else(|| layout.master().clone())
        }
    };

    let (user, secret) = login(topo, &node, args.user.as_deref(), &password)?;
    let mut auth = Vec::new();
    if let Some(user) = &user {
        auth.extend(["--user".to_string(), user.clone()]);
    }

    if args.args.is_empty() {
        // Interactive: the host's redis-cli, straight to where rcluster reaches the node.
        let status = Command::new("redis-cli")
            .arg("-h")
            .arg(node.reach.ip().to_string())
            .arg("-p")
            .arg(node.reach.port().to_string())
            .args(&auth)
            .args(tls_args(crate::tls_store::client_files(&loaded)))
            .env("REDISCLI_AUTH", secret.expose())
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
    cmd.extend(auth);
    // Inside the container: the node's own CA, certificate and key, next to its config.
    cmd.extend(tls_args(crate::tls_store::client_files(&loaded).map(
        |files| {
            let dir = std::path::Path::new(crate::render::CONFIG_DIR);
            crate::tls::ClientFiles {
                ca: dir.join(crate::tls::CA_FILE),
                cert: dir.join(crate::tls::CERT_FILE),
                key: dir.join(crate::tls::KEY_FILE),
                client_auth: files.client_auth,
            }
        },
    )));
    cmd.extend(args.args.iter().cloned());
    let env = vec![format!("REDISCLI_AUTH={}", secret.expose())];
    let code = engine
        .exec(&container.id, cmd, env, |bytes| {
            let mut stdout = std::io::stdout().lock();
            let _ = stdout.write_all(bytes).and_then(|()| stdout.flush());
        })
        .await?;
    Ok(if code == 0 { EXIT_OK } else { EXIT_FAILED })
}

/// Who `cli` logs in as on `node`: rcluster's own login, or the `[acl]` user `--user`
/// names (only on data nodes: the sentinels hold no application users).
fn login(
    topology: &Topology,
    node: &Node,
    user: Option<&str>,
    password: &Secret,
) -> anyhow::Result<(Option<String>, Secret)> {
    let Some(name) = user else {
        return Ok((topology.login_user().map(str::to_string), password.clone()));
    };
    let names: Vec<&str> = topology
        .acl
        .iter()
        .flat_map(|acl| acl.users.iter().map(|u| u.name.as_str()))
        .collect();
    let Some(acl_user) = topology.acl_user(name) else {
        let known = if names.is_empty() {
            "the topology has no `[acl]` users".to_string()
        } else {
            format!("users: {}", names.join(", "))
        };
        return Err(CommandError::usage(format!(
            "`--user {name}` is not a user of the topology's `[acl]`; {known}"
        ))
        .into());
    };
    if !node.role.is_data() {
        return Err(CommandError::usage(format!(
            "`--user {name}`: `{}` is a sentinel, which holds no `[acl]` users; name a data node, or leave out `--user`",
            node.name
        ))
        .into());
    }
    Ok((
        Some(name.to_string()),
        crate::acl::user_password(acl_user, password.expose()),
    ))
}

/// redis-cli's TLS flags: none for a plaintext group; `--tls --cacert`, and the client
/// certificate when the group asks clients for one.
fn tls_args(files: Option<crate::tls::ClientFiles>) -> Vec<String> {
    let Some(files) = files else {
        return Vec::new();
    };
    let mut args = vec![
        "--tls".to_string(),
        "--cacert".to_string(),
        files.ca.display().to_string(),
    ];
    if files.client_auth.presents_certificate() {
        args.extend([
            "--cert".to_string(),
            files.cert.display().to_string(),
            "--key".to_string(),
            files.key.display().to_string(),
        ]);
    }
    args
}
