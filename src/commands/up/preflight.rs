//! Checks `up` makes before it changes anything: each refuses with a message that says
//! what to do, and nothing has been created yet.

use std::net::{IpAddr, Ipv4Addr, TcpListener};

use crate::docker::client::{DockerError, Refusal};
use crate::docker::platform::Platform;
use crate::error::CommandError;
use crate::observed::Observed;
use crate::password_store;
use crate::plan::{Plan, Step};
use crate::probe::Probe;
use crate::probe::survey;
use crate::topology::{Layout, Loaded};

/// Turning TLS on or off cannot roll node by node: a node that speaks TLS and one that
/// does not cannot replicate or monitor each other, nor can one probe talk to both. Say
/// so before anything changes.
pub(super) fn refuse_switching_tls(observed: &Observed, loaded: &Loaded) -> anyhow::Result<()> {
    let wanted = loaded.topology.tls.enabled;
    let Some(other) = observed.containers.iter().find(|c| c.tls != wanted) else {
        return Ok(());
    };
    let (was, now) = if wanted { ("off", "on") } else { ("on", "off") };
    Err(CommandError::refused(format!(
        "nothing was changed: `{}` was created with TLS {was} and the topology turns it {now} (`tls.enabled`); \
         a group cannot switch node by node. Recreate it: `rcluster down` then `rcluster up` (the data volumes are kept)",
        other.name
    ))
    .into())
}

/// The password is not part of the config hash (a hash of it in a label would let anyone
/// who can inspect a container test guesses offline), so a changed password would show
/// only as nodes that reject every probe. Say so plainly instead.
pub(super) async fn refuse_a_changed_password(
    layout: &Layout,
    observed: &Observed,
    probe: &Probe,
    loaded: &Loaded,
) -> anyhow::Result<()> {
    let running = layout.data_nodes().find(|n| observed.is_running(&n.key));
    let Some(node) = running else { return Ok(()) };
    // Only a rejected password counts: a node that does not answer yet is the health
    // wait's business.
    let Err(e) = probe.replication(survey::addr(node)).await else {
        return Ok(());
    };
    if e.is_auth() {
        let cluster = &loaded.topology.cluster.name;
        // rcluster's login also changes with `acl.disable_default` (`rcluster` instead of
        // `default`): the nodes then reject it the same way.
        let login = match loaded.topology.login_user() {
            Some(user) => format!(
                " (logging in as `{user}`, since `acl.disable_default` is on; turning it on or off also needs the nodes recreated)"
            ),
            None => String::new(),
        };
        return Err(CommandError::refused(format!(
                "nothing was changed: `{}` rejects the password from {}{login}; it changed since the group was created. \
                 Put the old password back, or recreate the nodes with the new one: `rcluster down` then `rcluster up` \
                 (the data volumes are kept)",
                node.name,
                password_store::password_origin(loaded, cluster)
            ),
        )
        .into());
    }
    Ok(())
}

/// A scale-down must not remove the current master: that is a failover, which the user
/// should ask for (and watch) explicitly.
pub(super) fn refuse_removing_the_master(
    plan: &Plan,
    observed: &Observed,
    layout: &Layout,
    master: Ipv4Addr,
) -> anyhow::Result<()> {
    for step in plan.steps() {
        if let Step::RemoveNode { node, .. } = step
            && observed
                .containers
                .iter()
                .any(|c| c.name == *node && c.ip == Some(master))
        {
            let sentinel = layout
                .sentinels()
                .next()
                .map_or("sentinel-1".to_string(), |s| s.key.clone());
            return Err(CommandError::refused(format!(
                    "nothing was changed: `{node}` is the current master and the topology no longer has it; \
                     move mastership first (`rcluster cli {sentinel} -- SENTINEL FAILOVER <master_name>`), then run `up` again"
                ),
            )
            .into());
        }
    }
    Ok(())
}

/// A published port already taken by another process: say so before creating anything.
/// Only an engine on this machine publishes its ports here, so only then can a bind here
/// tell; for a remote engine the engine itself refuses at start ([`port_conflict`]).
pub(super) fn check_ports_free(
    layout: &Layout,
    plan: &Plan,
    bind: IpAddr,
    platform: &Platform,
) -> anyhow::Result<()> {
    if !checks_ports_here(platform) {
        return Ok(());
    }
    let mut taken = Vec::new();
    for step in plan.steps() {
        if let Step::CreateContainer { node, .. } = step
            && let Some(n) = layout.node(node)
            && n.host_port != 0
            && is_taken(&TcpListener::bind((bind, n.host_port)).map(drop))
        {
            taken.push(format!("{bind}:{} (for `{}`)", n.host_port, n.name));
        }
    }
    if taken.is_empty() {
        return Ok(());
    }
    Err(CommandError::refused(format!(
            "nothing was changed: host port {} already in use by another process; change the ports in the topology (0 lets the engine pick)",
            taken.join(", ")
        ),
    )
    .into())
}

/// Whether binding the ports on this machine says anything about the engine's: only when
/// the engine runs here (a loopback tcp/ssh endpoint included).
pub(super) fn checks_ports_here(platform: &Platform) -> bool {
    platform.remote_host.is_none()
}

/// A failed bind means "in use" only when the address is in use. "Address not available"
/// (the bind address is not on this machine) and "permission denied" (a low port for a
/// non-root user; the engine may still bind it) are the engine's to judge.
pub(super) fn is_taken(bind: &std::io::Result<()>) -> bool {
    matches!(bind, Err(e) if e.kind() == std::io::ErrorKind::AddrInUse)
}

/// The engine refused to start a container because a published port is taken (the
/// engine client classifies it, `Refusal::PortInUse`). The engine's own words, for the
/// message.
pub(super) fn port_conflict(err: &anyhow::Error) -> Option<String> {
    err.chain()
        .filter_map(|cause| cause.downcast_ref::<DockerError>())
        .find(|e| e.refusal() == Refusal::PortInUse)
        .and_then(|e| e.engine_said().map(str::to_string))
}

/// The message for a port the engine found taken.
pub(super) fn port_conflict_message(engine_said: &str, endpoint: &str, undone: &str) -> String {
    format!(
        "host port already in use on the engine at `{endpoint}` (it said: {}); {undone}. \
         Change the ports in the topology (0 lets the engine pick)",
        engine_said.trim()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::docker::endpoint::{Origin, parse};
    use crate::docker::platform::{EngineFacts, classify};
    use std::io::{Error, ErrorKind};

    fn platform(url: &str) -> Platform {
        let facts = EngineFacts {
            os_type: "linux".into(),
            architecture: "x86_64".into(),
            ..Default::default()
        };
        classify(&facts, &parse(url, Origin::DockerHost, None).unwrap())
    }

    #[test]
    fn only_address_in_use_is_in_use() {
        assert!(is_taken(&Err(Error::from(ErrorKind::AddrInUse))));
        assert!(!is_taken(&Ok(())));
        assert!(!is_taken(&Err(Error::from(ErrorKind::AddrNotAvailable))));
        assert!(!is_taken(&Err(Error::from(ErrorKind::PermissionDenied))));
        // EADDRNOTAVAIL as the kernel reports it, for an address not on this machine.
        let not_here = std::net::TcpListener::bind(("203.0.113.77", 0)).map(drop);
        assert!(!is_taken(&not_here), "{not_here:?}");
    }

    #[test]
    fn ports_are_checked_here_only_for_an_engine_here() {
        assert!(checks_ports_here(&platform("unix:///var/run/docker.sock")));
        assert!(checks_ports_here(&platform("tcp://127.0.0.1:2400")));
        assert!(checks_ports_here(&platform("ssh://root@localhost:2222")));
        assert!(!checks_ports_here(&platform("tcp://10.0.0.5:2375")));
        assert!(!checks_ports_here(&platform("ssh://deploy@build-box")));
    }

    /// What a failed start looks like to `up`: the engine client's error, as `apply` and
    /// the executor pass it on.
    fn engine_refused(said: &str, container: &str) -> anyhow::Error {
        anyhow::Error::new(DockerError::Api {
            op: "start container",
            resource: container.to_string(),
            source: bollard::errors::Error::DockerResponseServerError {
                status_code: 500,
                message: said.to_string(),
            },
        })
        .context("running the plan")
    }

    #[test]
    fn recognises_the_engines_port_conflicts() {
        for said in [
            "driver failed programming external connectivity on endpoint g-master (4f1c): Bind for 127.0.0.1:17400 failed: port is already allocated",
            "driver failed programming external connectivity on endpoint g-master (4f1c): Error starting userland proxy: listen tcp4 127.0.0.1:17400: bind: address already in use",
            "rootlessport listen tcp 127.0.0.1:17400: bind: address already in use",
        ] {
            let err = engine_refused(said, "g-master");
            assert_eq!(port_conflict(&err).as_deref(), Some(said));
        }
        let other = engine_refused("no such image", "x");
        assert_eq!(port_conflict(&other), None);
    }
}
