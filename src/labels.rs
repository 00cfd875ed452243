//! Every label rcluster puts on what it creates. Labels are the single source of truth for
//! what rcluster owns: `down` and every lookup filter on [`PROJECT`], never on names alone.

/// The cluster name. Present on every container, network and volume rcluster creates.
pub const PROJECT: &str = "io.rcluster.project";
/// `master`, `replica` or `sentinel`: the role the node was created with (not its current one).
pub const ROLE: &str = "io.rcluster.role";
/// The node's key inside the group: `master`, `replica-1`, `sentinel-2`.
pub const NODE: &str = "io.rcluster.node";
/// Hash of the node's rendered config (password masked) and image: decides keep vs recreate.
pub const CONFIG_HASH: &str = "io.rcluster.config-hash";
/// The rcluster version that created the resource.
pub const VERSION: &str = "io.rcluster.version";
/// `on` on a container created with `[tls]` (its nodes speak only TLS); absent otherwise.
pub const TLS: &str = "io.rcluster.tls";
/// On the network: the /24 the group's fixed addresses live in.
pub const SUBNET: &str = "io.rcluster.subnet";

/// `key=value` filter for the engine's list calls.
pub fn project_filter(cluster: &str) -> String {
    format!("{PROJECT}={cluster}")
}
