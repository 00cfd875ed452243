//! Rendering: checked topology + layout -> redis.conf / sentinel.conf text.
//! Pure: no I/O; templates are embedded in the binary.

use std::net::Ipv4Addr;

use crate::topology::{Layout, Node, Topology};

/// The config file a node runs with: `redis.conf` for data nodes, `sentinel.conf` for
/// sentinels. `master_ip` is the current master (the created master on a fresh group,
/// whatever the sentinels say after a failover). `password` is written verbatim: pass
/// `secret::MASK` for anything a user will see.
pub fn node_config(
    topology: &Topology,
    layout: &Layout,
    node: &Node,
    master_ip: Ipv4Addr,
    password: &str,
) -> anyhow::Result<String> {
    let _ = (topology, layout, node, master_ip, password);
    todo!("render::node_config")
}

/// File name of a node's config inside its container and in `render --out`.
pub fn config_file_name(node: &Node) -> &'static str {
    if node.role.is_data() {
        "redis.conf"
    } else {
        "sentinel.conf"
    }
}
