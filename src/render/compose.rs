//! docker-compose: checked topology + layout -> a `docker-compose.yml` and the config files it
//! mounts, equivalent to the group `up` creates (same configs, fixed IPs on the same subnet,
//! same volume and container names, same ports).
//!
//! Pure: no I/O. The caller decides the image (see `docker::image::choose`) and writes the
//! files. Must not hand-write YAML: the file is serde structs serialized by serde-saphyr.

use std::collections::BTreeMap;

use anyhow::Context as _;

// Each node's whole directory is mounted at CONFIG_DIR (not its single file: see there),
// so it must be writable by the uid redis runs as (999).
use super::{CONFIG_DIR, DATA_DIR, config_file_name, node_config};
use crate::topology::{Layout, Node, Role, Topology};

/// Name of the compose file in the output directory.
pub const COMPOSE_FILE: &str = "docker-compose.yml";

/// The image the services run, decided by the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    pub reference: String,
    /// rcluster's own image: run as `user` (it has no root step to drop from).
    pub user: Option<String>,
}

/// The whole `docker-compose.yml`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ComposeFile {
    pub services: BTreeMap<String, Service>,
    pub networks: BTreeMap<String, Network>,
    pub volumes: BTreeMap<String, NamedVolume>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Service {
    pub image: String,
    pub container_name: String,
    pub hostname: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    pub command: Vec<String>,
    /// `./<node>:/etc/redis`, and the data volume at `/data` for redis nodes.
    pub volumes: Vec<String>,
    /// `<bind>:<host port>:<port>`, or `<bind>::<port>` when the engine picks the host port.
    pub ports: Vec<String>,
    pub networks: BTreeMap<String, ServiceNetwork>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cap_drop: Vec<String>,
    pub security_opt: Vec<String>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct ServiceNetwork {
    pub ipv4_address: String,
    pub aliases: Vec<String>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Network {
    /// The same network name `up` uses, not prefixed with the compose project.
    pub name: String,
    pub driver: String,
    pub ipam: Ipam,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Ipam {
    pub config: Vec<IpamConfig>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct IpamConfig {
    pub subnet: String,
    pub gateway: String,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct NamedVolume {
    /// `<cluster>-<node>-data`, as `up` names it, not prefixed with the compose project.
    pub name: String,
}

/// One file of the rendering, relative to the output directory.
#[derive(Debug, Clone)]
pub struct File {
    /// The node it belongs to; `None` for the compose file itself.
    pub node: Option<String>,
    pub path: String,
    pub content: String,
}

/// The compose file and every node's config, compose file first. `password` is written
/// into the configs verbatim: pass `secret::MASK` for anything a user will see. With TLS
/// on, each node directory also gets `ca.crt`, `tls.crt` and `tls.key` from `tls` (the
/// caller passes it only when secrets are shown; the compose file mounts them either way).
pub fn render(
    topology: &Topology,
    layout: &Layout,
    image: &Image,
    password: &str,
    tls: Option<&crate::tls::GroupTls>,
) -> anyhow::Result<Vec<File>> {
    let compose = compose_file(topology, layout, image);
    let yaml = serde_saphyr::to_string(&compose).context("cannot serialize the compose file")?;
    let mut files = vec![File {
        node: None,
        path: COMPOSE_FILE.into(),
        content: yaml,
    }];
    let master_ip = layout.master().ip;
    for node in &layout.nodes {
        files.push(File {
            node: Some(node.name.clone()),
            path: super::config_path(node),
            content: node_config(topology, layout, node, master_ip, password)?,
        });
        if let Some(tls) = tls {
            let mine = tls.node(&node.key)?;
            let mut add = |name: &str, content: &str| {
                files.push(File {
                    node: Some(node.name.clone()),
                    path: format!("{}/{name}", node.name),
                    content: content.to_string(),
                })
            };
            add(crate::tls::CA_FILE, &tls.ca_pem);
            add(crate::tls::CERT_FILE, &mine.cert_pem);
            add(crate::tls::KEY_FILE, mine.key_pem.expose());
        }
    }
    Ok(files)
}

pub fn compose_file(topology: &Topology, layout: &Layout, image: &Image) -> ComposeFile {
    let network = layout.network();
    let services = layout
        .nodes
        .iter()
        .map(|node| (node.key.clone(), service(topology, layout, node, image)))
        .collect();
    let volumes = layout
        .nodes
        .iter()
        .filter_map(Node::volume)
        .map(|name| (name.clone(), NamedVolume { name }))
        .collect();
    ComposeFile {
        services,
        networks: BTreeMap::from([(
            network.clone(),
            Network {
                name: network,
                driver: "bridge".into(),
                ipam: Ipam {
                    config: vec![IpamConfig {
                        subnet: layout.subnet.to_string(),
                        gateway: layout.subnet.gateway().to_string(),
                    }],
                },
            },
        )]),
        volumes,
    }
}

fn service(topology: &Topology, layout: &Layout, node: &Node, image: &Image) -> Service {
    let config = format!("{CONFIG_DIR}/{}", config_file_name(node));
    let mut command = vec!["redis-server".to_string(), config];
    if node.role == Role::Sentinel {
        command.push("--sentinel".into());
    }
    let mut volumes = vec![format!("./{}:{CONFIG_DIR}", node.name)];
    if topology.tls.enabled {
        // Over the writable config directory, read-only: Sentinel rewrites its config
        // there, nothing may rewrite the certificates.
        for name in [
            crate::tls::CA_FILE,
            crate::tls::CERT_FILE,
            crate::tls::KEY_FILE,
        ] {
            volumes.push(format!("./{}/{name}:{CONFIG_DIR}/{name}:ro", node.name));
        }
    }
    if let Some(volume) = node.volume() {
        volumes.push(format!("{volume}:{DATA_DIR}"));
    }
    let bind = topology.cluster.bind;
    let bind = if bind.is_ipv6() {
        format!("[{bind}]")
    } else {
        bind.to_string()
    };
    let host_port = if node.host_port == 0 {
        String::new()
    } else {
        node.host_port.to_string()
    };
    Service {
        image: image.reference.clone(),
        container_name: node.name.clone(),
        hostname: node.name.clone(),
        user: image.user.clone(),
        command,
        volumes,
        ports: vec![format!("{bind}:{host_port}:{}", node.port)],
        networks: BTreeMap::from([(
            layout.network(),
            ServiceNetwork {
                ipv4_address: node.ip.to_string(),
                aliases: vec![node.key.clone()],
            },
        )]),
        // rcluster's own image runs as the redis user from the start and needs no
        // capability; the official image drops to `redis` with gosu, which needs them.
        cap_drop: if image.user.is_some() {
            vec!["ALL".into()]
        } else {
            Vec::new()
        },
        security_opt: vec!["no-new-privileges:true".into()],
    }
}
