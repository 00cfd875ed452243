//! Checks `up` makes before it changes anything: each refuses with a message that says
//! what to do, and nothing has been created yet.

use std::net::{IpAddr, Ipv4Addr, TcpListener};

use crate::error::CommandError;
use crate::observed::Observed;
use crate::password_store;
use crate::plan::{Plan, Step};
use crate::probe::Probe;
use crate::probe::survey;
use crate::topology::{Layout, Loaded};

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
        return Err(CommandError::refused(format!(
                "nothing was changed: `{}` rejects the password from {}; it changed since the group was created. \
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
pub(super) fn check_ports_free(layout: &Layout, plan: &Plan, bind: IpAddr) -> anyhow::Result<()> {
    let mut taken = Vec::new();
    for step in plan.steps() {
        if let Step::CreateContainer { node, .. } = step
            && let Some(n) = layout.node(node)
            && n.host_port != 0
            // Only "in use" is in use: "address not available" means the ports are published
            // somewhere this machine cannot bind (a remote engine, another network namespace).
            && TcpListener::bind((bind, n.host_port))
                .is_err_and(|e| e.kind() == std::io::ErrorKind::AddrInUse)
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
