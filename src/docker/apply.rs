//! The engine side of a plan's steps: each method turns one step into engine calls.
//! Makes no decisions: what to do and in which order comes from `plan`, run by `executor`.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};

use anyhow::Context;
use bollard::models::{
    ContainerCreateBody, EndpointIpamConfig, EndpointSettings, HostConfig, Ipam, IpamConfig, Mount,
    MountType, NetworkCreateRequest, NetworkingConfig, PortBinding,
};

use super::Engine;
use super::image::{ImageChoice, REDIS_UID, add_owned};
use super::observe::labels_for;
use crate::labels;
use crate::render::{self, CONFIG_DIR, DATA_DIR};
use crate::report::Reporter;
use crate::secret::Secret;
use crate::topology::{Layout, Node, Role, Subnet, Topology};

/// What a rollback step removes, by the engine's id (a volume by its name).
pub enum Discard<'a> {
    Container(&'a str),
    Network(&'a str),
    Volume(&'a str),
}

/// The engine-side actions of a plan's steps, one verb each; built once by `up`.
pub struct EngineSteps<'a> {
    pub engine: &'a Engine,
    pub topology: &'a Topology,
    pub layout: &'a Layout,
    pub password: &'a Secret,
    /// The CA and each node's certificate, copied in next to the config; `None` = no TLS.
    pub tls: Option<&'a crate::tls::GroupTls>,
    pub image: &'a ImageChoice,
    pub hashes: &'a HashMap<String, String>,
    pub report: &'a Reporter,
}

impl EngineSteps<'_> {
    pub fn node(&self, name: &str) -> anyhow::Result<&Node> {
        self.layout
            .node(name)
            .with_context(|| format!("node `{name}` is not in the layout"))
    }

    pub async fn network(&self, name: &str, subnet: Subnet) -> anyhow::Result<()> {
        self.create_network(name, subnet).await?;
        self.report
            .info(format!("created network `{name}` ({subnet})"));
        Ok(())
    }

    pub async fn volume(&self, name: &str) -> anyhow::Result<()> {
        let owner = self
            .layout
            .nodes
            .iter()
            .find(|n| n.volume().as_deref() == Some(name));
        let mut extra = vec![];
        if let Some(n) = owner {
            extra.push((labels::NODE, n.key.clone()));
        }
        self.engine
            .create_volume(name, labels_for(&self.layout.cluster, &extra))
            .await?;
        Ok(())
    }

    /// Create the node's container with its config inside, following `master`; not started.
    /// `replace`: remove a container of that name first.
    pub async fn create(&self, node: &str, replace: bool, master: Ipv4Addr) -> anyhow::Result<()> {
        let node = self.node(node)?;
        if replace {
            self.engine.remove_container(&node.name).await?;
        }
        self.create_container(node, master).await
    }

    /// Remove, create again following `master`, and start.
    pub async fn recreate(&self, node: &str, master: Ipv4Addr) -> anyhow::Result<()> {
        let node = self.node(node)?;
        self.engine.remove_container(&node.name).await?;
        self.report.node(&node.name, "removed (config changed)");
        self.create_container(node, master).await?;
        self.start(&node.name).await
    }

    /// A clean shutdown first: its volume stays, with the last snapshot in it.
    pub async fn remove(&self, node: &str) -> anyhow::Result<()> {
        self.engine.stop_container(node, 10).await?;
        self.engine.remove_container(node).await?;
        self.report.node(node, "removed (not in the topology)");
        Ok(())
    }

    /// Undo a failed `up`: remove a container, network or volume it created.
    pub async fn discard(&self, step: &Discard<'_>) -> anyhow::Result<()> {
        match step {
            Discard::Container(id) => self.engine.remove_container(id).await?,
            Discard::Network(id) => self.engine.remove_network(id).await?,
            Discard::Volume(name) => self.engine.remove_volume(name).await?,
        }
        Ok(())
    }

    pub async fn start(&self, node: &str) -> anyhow::Result<()> {
        self.engine.start_container(node).await?;
        self.report.node(node, "started");
        Ok(())
    }

    pub async fn unpause(&self, node: &str) -> anyhow::Result<()> {
        self.engine.unpause_container(node).await?;
        self.report.node(node, "unpaused");
        Ok(())
    }

    pub async fn reconnect(&self, node: &str) -> anyhow::Result<()> {
        let node = self.node(node)?;
        self.engine
            .connect_network(&self.layout.network(), endpoint_request(node))
            .await?;
        self.report.node(&node.name, "reconnected");
        Ok(())
    }

    async fn create_network(&self, name: &str, subnet: Subnet) -> anyhow::Result<()> {
        let request = NetworkCreateRequest {
            name: name.to_string(),
            driver: Some("bridge".to_string()),
            ipam: Some(Ipam {
                driver: Some("default".to_string()),
                config: Some(vec![IpamConfig {
                    subnet: Some(subnet.to_string()),
                    gateway: Some(subnet.gateway().to_string()),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            labels: Some(labels_for(
                &self.layout.cluster,
                &[(labels::SUBNET, subnet.to_string())],
            )),
            ..Default::default()
        };
        match self.engine.create_network(request).await {
            Ok(_) => Ok(()),
            Err(e) => {
                // An interrupted `up` may have had the engine create it after this `up`
                // looked (its subnet then overlaps ours): that network is ours to use.
                let filter = [labels::project_filter(&self.layout.cluster)];
                let ours = self.engine.list_networks(&filter).await?;
                if ours.iter().any(|n| n.name.as_deref() == Some(name)) {
                    Ok(())
                } else {
                    Err(e.into())
                }
            }
        }
    }

    /// Create the container and copy its config in (0600, owned by the redis user, in a
    /// 0700 directory: Redis's `CONFIG REWRITE`, which Sentinel triggers on every failover,
    /// replaces the file with one of mode `0644 & ~umask`, so the directory keeps it private).
    async fn create_container(&self, node: &Node, master: Ipv4Addr) -> anyhow::Result<()> {
        let config = render::node_config(
            self.topology,
            self.layout,
            node,
            master,
            self.password.expose(),
        )?;
        let body = self.container_body(node);
        match self.engine.create_container(&node.name, body.clone()).await {
            Ok(_) => {}
            // An interrupted `up` may have left a create request that the engine finished
            // after this `up` looked. Ours (by label) and never started: replace it.
            // Anyone else's: refuse, as before anything was created.
            Err(e) if e.is_conflict() => {
                let existing = self.engine.inspect_container(&node.name).await?;
                let ours = existing
                    .as_ref()
                    .and_then(|c| c.config.as_ref()?.labels.as_ref()?.get(labels::PROJECT))
                    .is_some_and(|project| *project == self.layout.cluster);
                if !ours {
                    return Err(e.into());
                }
                self.engine.remove_container(&node.name).await?;
                self.engine.create_container(&node.name, body).await?;
            }
            Err(e) => return Err(e.into()),
        }
        self.report.node(&node.name, "created");
        let (parent, dir) = CONFIG_DIR
            .rsplit_once('/')
            .context("the config directory is an absolute path")?;
        let file = format!("{dir}/{}", render::config_file_name(node));
        let mut tar = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_size(0);
        header.set_mode(0o700);
        header.set_uid(REDIS_UID);
        header.set_gid(REDIS_UID);
        header.set_mtime(0);
        header.set_entry_type(tar::EntryType::Directory);
        tar.append_data(&mut header, format!("{dir}/"), std::io::empty())
            .context("cannot build the config archive")?;
        add_owned(&mut tar, &file, config.as_bytes(), 0o600, REDIS_UID)?;
        if let Some(tls) = self.tls {
            // In the same private directory, owned by the redis user: the key is as secret
            // as the password in the config.
            let mine = tls.node(&node.key)?;
            for (name, text) in [
                (crate::tls::CA_FILE, tls.ca_pem.as_str()),
                (crate::tls::CERT_FILE, mine.cert_pem.as_str()),
                (crate::tls::KEY_FILE, mine.key_pem.expose()),
            ] {
                add_owned(
                    &mut tar,
                    &format!("{dir}/{name}"),
                    text.as_bytes(),
                    0o600,
                    REDIS_UID,
                )?;
            }
        }
        let tar = tar
            .into_inner()
            .context("cannot build the config archive")?;
        let parent = if parent.is_empty() { "/" } else { parent };
        self.engine.upload(&node.name, parent, tar).await?;
        Ok(())
    }

    fn container_body(&self, node: &Node) -> ContainerCreateBody {
        let config_path = format!("{CONFIG_DIR}/{}", render::config_file_name(node));
        let cmd = match node.role {
            Role::Sentinel => vec![
                "redis-server".to_string(),
                config_path,
                "--sentinel".to_string(),
            ],
            _ => vec!["redis-server".to_string(), config_path],
        };
        let port = format!("{}/tcp", node.port);
        let bind: IpAddr = self.topology.cluster.bind;
        let host_port = if node.host_port == 0 {
            String::new()
        } else {
            node.host_port.to_string()
        };
        let network = self.layout.network();
        let hash = self.hashes.get(&node.key).cloned().unwrap_or_default();
        let mounts = node.volume().map(|volume| {
            vec![Mount {
                target: Some(DATA_DIR.to_string()),
                source: Some(volume),
                typ: Some(MountType::VOLUME),
                ..Default::default()
            }]
        });
        // rcluster's own image runs as the redis user from the first instruction, so it
        // needs no capability at all. The official image starts as root and drops to
        // `redis` with gosu, which needs its default capabilities.
        let (user, cap_drop) = if self.image.own {
            (
                Some(format!("{REDIS_UID}:{REDIS_UID}")),
                Some(vec!["ALL".to_string()]),
            )
        } else {
            (None, None)
        };
        ContainerCreateBody {
            image: Some(self.image.reference.clone()),
            cmd: Some(cmd),
            hostname: Some(node.name.clone()),
            user,
            labels: Some(labels_for(
                &self.layout.cluster,
                &[
                    (labels::ROLE, node.role.to_string()),
                    (labels::NODE, node.key.clone()),
                    (labels::CONFIG_HASH, hash),
                    (
                        labels::TLS,
                        if self.topology.tls.enabled {
                            "on"
                        } else {
                            "off"
                        }
                        .to_string(),
                    ),
                ],
            )),
            exposed_ports: Some(vec![port.clone()]),
            host_config: Some(HostConfig {
                port_bindings: Some(HashMap::from([(
                    port,
                    Some(vec![PortBinding {
                        host_ip: Some(bind.to_string()),
                        host_port: Some(host_port),
                    }]),
                )])),
                mounts,
                network_mode: Some(network.clone()),
                cap_drop,
                security_opt: Some(vec!["no-new-privileges:true".to_string()]),
                ..Default::default()
            }),
            networking_config: Some(NetworkingConfig {
                endpoints_config: Some(HashMap::from([(network, endpoint(node))])),
            }),
            ..Default::default()
        }
    }
}

/// Attach `node`'s container to the group network at its fixed address.
pub fn endpoint_request(node: &Node) -> bollard::models::NetworkConnectRequest {
    bollard::models::NetworkConnectRequest {
        container: node.name.clone(),
        endpoint_config: Some(endpoint(node)),
    }
}

/// The node's endpoint on the group network: its fixed address and its key as an alias.
fn endpoint(node: &Node) -> EndpointSettings {
    EndpointSettings {
        ipam_config: Some(EndpointIpamConfig {
            ipv4_address: Some(node.ip.to_string()),
            ..Default::default()
        }),
        aliases: Some(vec![node.key.clone()]),
        ..Default::default()
    }
}
