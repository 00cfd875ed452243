//! Takes the snapshot (`crate::observed`) of what the engine has for a group, found by
//! the project label alone, and the checks for resources with our names that are not ours.

use std::collections::HashMap;

use bollard::models::{ContainerSummary, Network};
use futures_util::future::join_all;

use super::{DockerError, Engine};
use crate::labels;
use crate::observed::{
    ContainerState, Observed, ObservedContainer, ObservedNetwork, role_from_label,
};
use crate::topology::Layout;
use crate::topology::layout::network_name;

/// Everything labelled with this cluster's project label.
pub async fn observe(engine: &Engine, cluster: &str) -> Result<Observed, DockerError> {
    let filter = vec![labels::project_filter(cluster)];
    let (containers, networks, volumes) = tokio::try_join!(
        engine.list_containers(&filter),
        engine.list_networks(&filter),
        engine.list_volumes(&filter),
    )?;
    let network_name = network_name(cluster);
    Ok(Observed {
        containers: containers
            .iter()
            .filter_map(|c| container(c, &network_name))
            .collect(),
        networks: networks.iter().map(network).collect(),
        volumes: volumes.into_iter().map(|v| v.name).collect(),
    })
}

fn container(c: &ContainerSummary, network: &str) -> Option<ObservedContainer> {
    let labels = c.labels.as_ref()?;
    let ip = c
        .network_settings
        .as_ref()
        .and_then(|s| s.networks.as_ref())
        .and_then(|n| n.get(network))
        .and_then(|e| e.ip_address.as_deref())
        .and_then(|ip| ip.parse().ok());
    let host_port = c
        .ports
        .as_ref()
        .and_then(|ports| ports.iter().find_map(|p| p.public_port));
    Some(ObservedContainer {
        id: c.id.clone().unwrap_or_default(),
        name: c
            .names
            .as_ref()
            .and_then(|n| n.first())
            .map(|n| n.trim_start_matches('/').to_string())
            .unwrap_or_default(),
        node: labels.get(labels::NODE)?.clone(),
        created_as: labels.get(labels::ROLE).and_then(|r| role_from_label(r)),
        state: c.state.as_ref().map_or(ContainerState::Unknown, |s| {
            ContainerState::from_engine(s.as_ref())
        }),
        config_hash: labels.get(labels::CONFIG_HASH).cloned().unwrap_or_default(),
        ip,
        host_port,
        tls: labels.get(labels::TLS).is_some_and(|v| v == "on"),
    })
}

fn network(n: &Network) -> ObservedNetwork {
    let subnet = n
        .labels
        .as_ref()
        .and_then(|l| l.get(labels::SUBNET))
        .and_then(|s| s.parse().ok());
    ObservedNetwork {
        id: n.id.clone().unwrap_or_default(),
        name: n.name.clone().unwrap_or_default(),
        subnet,
    }
}

/// Subnets every network on the engine uses (ours or not), to choose a free one.
pub fn used_subnets(networks: &[Network]) -> Vec<String> {
    networks
        .iter()
        .filter_map(|n| n.ipam.as_ref()?.config.as_ref())
        .flatten()
        .filter_map(|c| c.subnet.clone())
        .collect()
}

/// Names of resources with our names that are not ours. rcluster never touches these;
/// `up` refuses to start until the user renames one side. `networks` is every network on
/// the engine (listed once by the caller, which also needs them to choose a subnet).
pub async fn foreign_conflicts(
    engine: &Engine,
    layout: &Layout,
    observed: &Observed,
    networks: &[Network],
) -> Result<Vec<String>, DockerError> {
    let containers = layout
        .nodes
        .iter()
        .filter(|n| observed.container(&n.key).is_none())
        .map(|n| async move {
            let found = engine.inspect_container(&n.name).await?;
            Ok::<_, DockerError>(found.map(|c| {
                let owner = c
                    .config
                    .as_ref()
                    .and_then(|cfg| cfg.labels.as_ref())
                    .and_then(|l| l.get(labels::PROJECT).cloned());
                foreign("container", &n.name, owner)
            }))
        });
    let volumes = layout
        .nodes
        .iter()
        .filter_map(|n| n.volume())
        .filter(|v| !observed.volumes.contains(v))
        .map(|volume| async move {
            let found = engine.inspect_volume(&volume).await?;
            Ok::<_, DockerError>(
                found.map(|v| foreign("volume", &volume, v.labels.get(labels::PROJECT).cloned())),
            )
        });
    let (containers, volumes) = tokio::join!(join_all(containers), join_all(volumes));
    let mut conflicts = Vec::new();
    for found in containers.into_iter().chain(volumes) {
        conflicts.extend(found?);
    }
    if observed.networks.is_empty() {
        for n in networks
            .iter()
            .filter(|n| n.name.as_deref() == Some(&layout.network()))
        {
            let owner = n
                .labels
                .as_ref()
                .and_then(|l| l.get(labels::PROJECT).cloned());
            conflicts.push(foreign("network", &layout.network(), owner));
        }
    }
    Ok(conflicts)
}

fn foreign(kind: &str, name: &str, owner: Option<String>) -> String {
    match owner {
        Some(project) => format!(
            "a {kind} named `{name}` already exists and belongs to rcluster group `{project}`, not this one"
        ),
        None => format!("a {kind} named `{name}` already exists and was not created by rcluster"),
    }
}

/// Label maps for a resource of this cluster.
pub fn labels_for(cluster: &str, extra: &[(&str, String)]) -> HashMap<String, String> {
    let mut map = HashMap::from([
        (labels::PROJECT.to_string(), cluster.to_string()),
        (
            labels::VERSION.to_string(),
            env!("CARGO_PKG_VERSION").to_string(),
        ),
    ]);
    for (k, v) in extra {
        map.insert(k.to_string(), v.clone());
    }
    map
}
