//! What exists of a group, as plain data: one snapshot of the resources carrying its
//! project label, in rcluster's own types. Pure: `docker::observe` fills it from the
//! engine; `plan`, `health` and the commands read it. Nothing here talks to the engine.

use std::fmt;
use std::net::Ipv4Addr;

use crate::topology::{Role, Subnet};

/// A container's state as the engine reports it, or `Missing` when there is no container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ContainerState {
    Created,
    Running,
    Paused,
    Restarting,
    Removing,
    Exited,
    Dead,
    /// No container for the node (only in reports about nodes, never from the engine).
    Missing,
    /// A state this version does not know; treated as "not running".
    Unknown,
}

impl ContainerState {
    /// The engine's word for the state (`running`, `exited`, ...).
    pub fn from_engine(state: &str) -> ContainerState {
        match state {
            "created" => ContainerState::Created,
            "running" => ContainerState::Running,
            "paused" => ContainerState::Paused,
            "restarting" => ContainerState::Restarting,
            "removing" => ContainerState::Removing,
            "exited" => ContainerState::Exited,
            "dead" => ContainerState::Dead,
            _ => ContainerState::Unknown,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ContainerState::Created => "created",
            ContainerState::Running => "running",
            ContainerState::Paused => "paused",
            ContainerState::Restarting => "restarting",
            ContainerState::Removing => "removing",
            ContainerState::Exited => "exited",
            ContainerState::Dead => "dead",
            ContainerState::Missing => "missing",
            ContainerState::Unknown => "unknown",
        }
    }

    pub fn is_running(self) -> bool {
        self == ContainerState::Running
    }

    /// The process has ended and will not come back by itself.
    pub fn has_stopped(self) -> bool {
        matches!(self, ContainerState::Exited | ContainerState::Dead)
    }
}

impl fmt::Display for ContainerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The role label's value back as a role (`master`, `replica`, `sentinel`).
pub fn role_from_label(value: &str) -> Option<Role> {
    [Role::Master, Role::Replica, Role::Sentinel]
        .into_iter()
        .find(|r| r.as_str() == value)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedContainer {
    pub id: String,
    pub name: String,
    /// The node key label (`master`, `replica-1`, ...).
    pub node: String,
    /// The role label: the role the node was created with (not necessarily its current
    /// one). `None` only for a container whose label was tampered with.
    pub created_as: Option<Role>,
    pub state: ContainerState,
    pub config_hash: String,
    /// Address on the group network, when connected.
    pub ip: Option<Ipv4Addr>,
    /// Host port published for the node's port, when any.
    pub host_port: Option<u16>,
    /// Created with `[tls]` on (the TLS label): it speaks only TLS.
    pub tls: bool,
}

impl ObservedContainer {
    pub fn is_sentinel(&self) -> bool {
        self.created_as == Some(Role::Sentinel)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedNetwork {
    pub id: String,
    pub name: String,
    pub subnet: Option<Subnet>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observed {
    pub containers: Vec<ObservedContainer>,
    pub networks: Vec<ObservedNetwork>,
    pub volumes: Vec<String>,
}

impl Observed {
    pub fn container(&self, node_key: &str) -> Option<&ObservedContainer> {
        self.containers.iter().find(|c| c.node == node_key)
    }

    /// The state of a node's container, `Missing` when it has none.
    pub fn state(&self, node_key: &str) -> ContainerState {
        self.container(node_key)
            .map_or(ContainerState::Missing, |c| c.state)
    }

    pub fn is_running(&self, node_key: &str) -> bool {
        self.state(node_key).is_running()
    }

    pub fn is_empty(&self) -> bool {
        self.containers.is_empty() && self.networks.is_empty() && self.volumes.is_empty()
    }

    /// The subnet of the group's network, if it exists.
    pub fn subnet(&self) -> Option<Subnet> {
        self.networks.iter().find_map(|n| n.subnet)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_states_and_role_labels_read_back() {
        for s in ["created", "running", "paused", "exited", "dead"] {
            assert_eq!(ContainerState::from_engine(s).as_str(), s);
        }
        assert_eq!(
            ContainerState::from_engine("weird"),
            ContainerState::Unknown
        );
        for r in [Role::Master, Role::Replica, Role::Sentinel] {
            assert_eq!(role_from_label(&r.to_string()), Some(r));
        }
        assert_eq!(role_from_label("sentinel-1"), None);
    }
}
