//! The keep-or-recreate key of each node (the config-hash label). Pure.

use std::collections::HashMap;

use sha2::{Digest, Sha256};

use crate::render;
use crate::secret::MASK;
use crate::topology::{Layout, Topology};

/// Keep-or-recreate key for each node: its config as rendered for a fresh group (so a
/// failover does not count as a change) with the password masked, plus the image, and
/// the published address, plus `tls_fingerprint` (the user's own certificate files: a new
/// certificate recreates the nodes; generated ones follow the layout, already hashed).
pub fn config_hashes(
    topology: &Topology,
    layout: &Layout,
    image_reference: &str,
    tls_fingerprint: &str,
) -> anyhow::Result<HashMap<String, String>> {
    let mut hashes = HashMap::new();
    for node in &layout.nodes {
        let config = render::node_config(topology, layout, node, layout.master().ip, MASK)?;
        let mut h = Sha256::new();
        h.update(config.as_bytes());
        h.update(image_reference.as_bytes());
        h.update(format!("{}:{}", topology.cluster.bind, node.host_port).as_bytes());
        // Nothing added with TLS off, so plaintext groups keep their hashes.
        h.update(tls_fingerprint.as_bytes());
        hashes.insert(
            node.key.clone(),
            hex::encode(h.finalize())[..16].to_string(),
        );
    }
    Ok(hashes)
}
