//! What kind of engine rcluster talks to, and so whether this machine reaches container addresses.
//!
//! Minimal version (announce/reach work); the engines work owns and replaces this file.
//! Keep to the shared interface: no other logic here.

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Flavor {
    Docker,
    DockerDesktop,
    Podman,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Platform {
    pub flavor: Flavor,
    pub rootless: bool,
    /// `None`: the engine runs on this machine (unix socket). `Some(host)`: the host name or
    /// address that DOCKER_HOST / the docker context names (tcp://, ssh://), as written there.
    pub remote_host: Option<String>,
    /// The engine's OSType and Architecture, e.g. "linux", "x86_64".
    pub os: String,
    pub arch: String,
    /// The endpoint as the user would recognise it, e.g. "unix:///var/run/docker.sock".
    pub endpoint: String,
}

impl Platform {
    /// A local rootful Linux engine on the default socket (what tests and the pure core assume).
    pub fn local_rootful() -> Platform {
        Platform {
            flavor: Flavor::Docker,
            rootless: false,
            remote_host: None,
            os: "linux".into(),
            arch: std::env::consts::ARCH.into(),
            endpoint: "unix:///var/run/docker.sock".into(),
        }
    }

    /// Whether this machine is expected to reach the engine's bridge-network container
    /// addresses: local, not rootless, not Docker Desktop. (A probe may still find it cannot.)
    pub fn container_addresses_reachable(&self) -> bool {
        self.remote_host.is_none() && !self.rootless && self.flavor != Flavor::DockerDesktop
    }

    /// What `cluster.announce = "auto"` announces when container addresses are not reachable:
    /// `host.docker.internal` on Docker Desktop; the remote host for a remote engine; `None`
    /// = the address the ports are published on (`cluster.bind`).
    pub fn auto_announce_host(&self) -> Option<String> {
        if self.flavor == Flavor::DockerDesktop {
            Some("host.docker.internal".into())
        } else {
            self.remote_host.clone()
        }
    }

    /// One line for `status`, e.g. "docker 28.2.2, rootful, unix:///var/run/docker.sock".
    pub fn describe(&self) -> String {
        let flavor = match self.flavor {
            Flavor::Docker => "docker",
            Flavor::DockerDesktop => "docker desktop",
            Flavor::Podman => "podman",
        };
        let mode = if self.rootless { "rootless" } else { "rootful" };
        format!("{flavor}, {mode}, {}", self.endpoint)
    }
}
