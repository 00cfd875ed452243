//! Every name a node is reached by, and so what its TLS certificate must name: container
//! addresses and names, loopback, announced addresses and the Kubernetes DNS names this
//! module's `k8s` renders. Pure; `tls_store` issues certificates for these names.

use crate::topology::{Layout, Node, Topology};

/// Every name and address a client or another node may reach `node` by, each once, in a
/// fixed order: the container address and names, loopback, the host address ports are
/// published on, the Kubernetes pod and Service names, then `extra` (addresses the group
/// announces to clients beyond those, e.g. a published `host:port`'s host).
pub fn subject_alt_names(
    topology: &Topology,
    layout: &Layout,
    node: &Node,
    extra: &[String],
) -> Vec<String> {
    let mut names = vec![
        node.ip.to_string(),
        node.name.clone(),
        node.key.clone(),
        // The container's name on the group network, as a fully qualified alias some
        // resolvers hand out.
        format!("{}.{}", node.name, layout.network()),
        "localhost".to_string(),
        "127.0.0.1".to_string(),
    ];
    let bind = topology.cluster.bind;
    if !bind.is_unspecified() {
        names.push(bind.to_string());
    }
    names.extend(super::k8s::dns_names(topology, node));
    // `cluster.announce`: clients (and the nodes themselves) connect to the announced host
    // at the published ports, and verify the certificate for that name.
    names.extend(layout.announce.iter().cloned());
    names.extend(extra.iter().cloned());
    let mut seen = std::collections::BTreeSet::new();
    names.retain(|n| seen.insert(n.clone()));
    names
}

/// The names a client reaches any pod of the Kubernetes rendering by (one certificate is
/// shared by every pod, through one Secret): every pod's and Service's DNS names, and
/// loopback for the pods' own probes. Pods by wildcard, so that neither a count in the
/// topology nor `kubectl scale` changes the certificate (a changed one rolls every pod).
pub fn kubernetes_sans(topology: &Topology) -> Vec<String> {
    let mut names = vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ];
    names.extend(super::k8s::pod_names_any_count(topology));
    let mut seen = std::collections::BTreeSet::new();
    names.retain(|n| seen.insert(n.clone()));
    names
}
