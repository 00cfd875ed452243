//! What kind of engine rcluster talks to, and so whether this machine reaches container addresses.
//!
//! Pure: [`classify`] turns the facts the engine reports (`/info`, `/version`) and the
//! endpoint rcluster connected through into a [`Platform`]; `Engine::platform` gathers the
//! facts. A tcp or ssh endpoint whose host is a loopback address (`127.0.0.0/8`, `::1`,
//! `localhost`) is an engine on this machine reached another way: it is classified local
//! (`remote_host = None`), so container addresses count as reachable and the host's
//! binaries as runnable there; `describe` says "this machine" for it.

use std::net::IpAddr;

use super::endpoint::{Endpoint, Transport};

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
    /// A loopback host is this machine: `None` (see the module comment).
    pub remote_host: Option<String>,
    /// The engine's OSType and Architecture, e.g. "linux", "x86_64".
    pub os: String,
    pub arch: String,
    /// The endpoint as the user would recognise it, e.g. "unix:///var/run/docker.sock".
    pub endpoint: String,
    /// The engine's version (Podman's own version for Podman), e.g. "28.2.2".
    pub version: String,
}

impl Platform {
    /// A local rootful Linux engine on the default socket (what tests and the pure core assume).
    pub fn local_rootful() -> Platform {
        Platform {
            flavor: Flavor::Docker,
            rootless: false,
            remote_host: None,
            os: "linux".to_string(),
            arch: normalize_arch(std::env::consts::ARCH),
            endpoint: super::endpoint::DEFAULT_SOCKET.to_string(),
            version: String::new(),
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
            return Some("host.docker.internal".to_string());
        }
        self.remote_host.clone()
    }

    /// Whether binaries built for this machine run in the engine's containers: the engine
    /// is on this machine (a VM does not count: Docker Desktop) with the same OS and CPU.
    pub fn runs_host_binaries(&self, host: &HostFacts) -> bool {
        self.remote_host.is_none()
            && self.flavor != Flavor::DockerDesktop
            && self.os == host.os
            && self.arch == host.arch
    }

    /// One line for `status`, e.g. "docker 28.2.2, rootful, unix:///var/run/docker.sock".
    pub fn describe(&self) -> String {
        let flavor = match self.flavor {
            Flavor::Docker => "docker",
            Flavor::DockerDesktop => "docker desktop",
            Flavor::Podman => "podman",
        };
        let mode = if self.rootless { "rootless" } else { "rootful" };
        let version = if self.version.is_empty() {
            String::new()
        } else {
            format!(" {}", self.version)
        };
        let place = match (&self.remote_host, self.endpoint.starts_with("unix://")) {
            (Some(host), _) => format!(" (remote host {host})"),
            (None, false) => " (this machine)".to_string(),
            (None, true) => String::new(),
        };
        format!(
            "{flavor}{version}, {mode}, {}/{}, {}{place}",
            self.os, self.arch, self.endpoint
        )
    }
}

/// This machine's OS and CPU, in the engine's spelling (`linux`, `x86_64`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostFacts {
    pub os: String,
    pub arch: String,
}

impl HostFacts {
    pub fn this_machine() -> HostFacts {
        HostFacts {
            os: std::env::consts::OS.to_string(),
            arch: normalize_arch(std::env::consts::ARCH),
        }
    }
}

/// What the engine says about itself, from `/info` and `/version`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EngineFacts {
    /// `/info` OperatingSystem, e.g. "Debian GNU/Linux 12 (bookworm)", "Docker Desktop".
    pub operating_system: String,
    /// `/info` OSType, e.g. "linux".
    pub os_type: String,
    /// `/info` Architecture, e.g. "x86_64" ("aarch64" on Apple silicon).
    pub architecture: String,
    /// `/info` ServerVersion.
    pub server_version: String,
    /// `/info` SecurityOptions, e.g. ["name=seccomp,profile=default", "name=rootless"].
    pub security_options: Vec<String>,
    /// `/version` Components: (Name, Version), e.g. ("Podman Engine", "4.3.1").
    pub components: Vec<(String, String)>,
    /// `/info` DockerRootDir: Podman's storage, `/var/lib/containers/storage` when rootful.
    pub docker_root_dir: String,
}

/// The platform from the engine's facts and the endpoint used to reach it.
pub fn classify(facts: &EngineFacts, endpoint: &Endpoint) -> Platform {
    let podman = facts
        .components
        .iter()
        .find(|(name, _)| name.to_ascii_lowercase().contains("podman"));
    let flavor = if podman.is_some() {
        Flavor::Podman
    } else if facts.operating_system.contains("Docker Desktop") {
        Flavor::DockerDesktop
    } else {
        Flavor::Docker
    };
    // Docker reports `name=rootless` among the security options. Podman 4.3's
    // Docker-compatible `/info` does not (measured: rootless, it lists only seccomp); its
    // own `Rootless: true` is not in the Docker schema bollard reads, so a Podman storing
    // its containers anywhere but the rootful default runs rootless (rootless Podman keeps
    // them under the user's `~/.local/share/containers/storage`).
    let rootless = facts
        .security_options
        .iter()
        .any(|o| o.split(',').any(|kv| kv == "name=rootless"))
        || (podman.is_some()
            && !facts.docker_root_dir.is_empty()
            && !facts.docker_root_dir.starts_with("/var/lib/containers"));
    let version = podman.map_or(facts.server_version.clone(), |(_, v)| v.clone());
    let remote_host = match &endpoint.transport {
        Transport::Unix(_) => None,
        Transport::Tcp { host, .. } | Transport::Ssh { host, .. } => {
            (!is_loopback(host)).then(|| host.clone())
        }
    };
    Platform {
        flavor,
        rootless,
        remote_host,
        os: if facts.os_type.is_empty() {
            "linux".to_string()
        } else {
            facts.os_type.clone()
        },
        arch: normalize_arch(&facts.architecture),
        endpoint: endpoint.url.clone(),
        version,
    }
}

/// `localhost` or a loopback address: the engine is on this machine.
pub fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Go's names (`/version` Arch, image platforms) to the kernel's (`/info` Architecture).
fn normalize_arch(arch: &str) -> String {
    match arch {
        "amd64" => "x86_64",
        "arm64" => "aarch64",
        other => other,
    }
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::docker::endpoint::{Origin, parse};

    fn endpoint(url: &str) -> Endpoint {
        parse(url, Origin::DockerHost, None).unwrap()
    }

    fn linux_docker() -> EngineFacts {
        EngineFacts {
            operating_system: "Debian GNU/Linux 12 (bookworm)".into(),
            os_type: "linux".into(),
            architecture: "x86_64".into(),
            server_version: "20.10.24+dfsg1".into(),
            security_options: vec!["name=seccomp,profile=default".into()],
            components: vec![("Engine".into(), "20.10.24+dfsg1".into())],
            docker_root_dir: "/var/lib/docker".into(),
        }
    }

    fn x86_linux() -> HostFacts {
        HostFacts {
            os: "linux".into(),
            arch: "x86_64".into(),
        }
    }

    #[test]
    fn local_rootful_docker_reaches_containers_and_runs_host_binaries() {
        let p = classify(&linux_docker(), &endpoint("unix:///var/run/docker.sock"));
        assert_eq!(p.flavor, Flavor::Docker);
        assert!(!p.rootless);
        assert_eq!(p.remote_host, None);
        assert!(p.container_addresses_reachable());
        assert!(p.runs_host_binaries(&x86_linux()));
        assert_eq!(p.auto_announce_host(), None);
        assert_eq!(
            p.describe(),
            "docker 20.10.24+dfsg1, rootful, linux/x86_64, unix:///var/run/docker.sock"
        );
    }

    #[test]
    fn rootless_docker_is_local_but_its_containers_are_not_reachable() {
        let mut facts = linux_docker();
        facts.security_options.push("name=rootless".to_string());
        let p = classify(&facts, &endpoint("unix:///run/user/1000/docker.sock"));
        assert!(p.rootless);
        assert!(!p.container_addresses_reachable());
        assert!(p.runs_host_binaries(&x86_linux()));
        assert_eq!(p.auto_announce_host(), None);
        assert!(p.describe().contains("rootless"), "{}", p.describe());
    }

    #[test]
    fn docker_desktop_on_apple_silicon() {
        let facts = EngineFacts {
            operating_system: "Docker Desktop".into(),
            os_type: "linux".into(),
            architecture: "aarch64".into(),
            server_version: "28.2.2".into(),
            security_options: vec!["name=seccomp,profile=unconfined".into()],
            components: vec![("Engine".into(), "28.2.2".into())],
            docker_root_dir: "/var/lib/docker".into(),
        };
        let p = classify(
            &facts,
            &endpoint("unix:///Users/me/.docker/run/docker.sock"),
        );
        assert_eq!(p.flavor, Flavor::DockerDesktop);
        assert!(!p.container_addresses_reachable());
        assert_eq!(
            p.auto_announce_host().as_deref(),
            Some("host.docker.internal")
        );
        let mac = HostFacts {
            os: "macos".into(),
            arch: "aarch64".into(),
        };
        assert!(!p.runs_host_binaries(&mac));
        // Even on a Linux host of the same CPU: Desktop's engine runs in its own VM.
        let linux_arm = HostFacts {
            os: "linux".into(),
            arch: "aarch64".into(),
        };
        assert!(!p.runs_host_binaries(&linux_arm));
        assert!(
            p.describe()
                .starts_with("docker desktop 28.2.2, rootful, linux/aarch64")
        );
    }

    #[test]
    fn podman_by_its_version_component_rootful_and_rootless() {
        let mut facts = linux_docker();
        facts.server_version = "4.3.1".into();
        facts.components = vec![("Podman Engine".into(), "4.3.1".into())];
        facts.docker_root_dir = "/var/lib/containers/storage".into();
        let p = classify(&facts, &endpoint("unix:///run/podman/podman.sock"));
        assert_eq!(p.flavor, Flavor::Podman);
        assert!(!p.rootless);
        assert!(p.container_addresses_reachable());
        assert_eq!(p.version, "4.3.1");
        // What Podman 4.3.1 rootless reports here: no `name=rootless`, storage in the home.
        facts.docker_root_dir = "/home/rctest/.local/share/containers/storage".into();
        let p = classify(
            &facts,
            &endpoint("unix:///run/user/1000/podman/podman.sock"),
        );
        assert!(p.rootless);
        assert!(!p.container_addresses_reachable());
        assert!(
            p.describe().starts_with("podman 4.3.1, rootless"),
            "{}",
            p.describe()
        );
    }

    #[test]
    fn remote_engines_by_tcp_and_ssh() {
        for url in ["tcp://10.20.0.7:2375", "ssh://deploy@10.20.0.7"] {
            let p = classify(&linux_docker(), &endpoint(url));
            assert_eq!(p.remote_host.as_deref(), Some("10.20.0.7"), "{url}");
            assert!(!p.container_addresses_reachable(), "{url}");
            assert!(!p.runs_host_binaries(&x86_linux()), "{url}");
            assert_eq!(p.auto_announce_host().as_deref(), Some("10.20.0.7"));
            assert!(
                p.describe().ends_with("(remote host 10.20.0.7)"),
                "{}",
                p.describe()
            );
        }
        // A name, kept as written.
        let p = classify(&linux_docker(), &endpoint("ssh://build-box.lan:2222"));
        assert_eq!(p.remote_host.as_deref(), Some("build-box.lan"));
    }

    #[test]
    fn loopback_tcp_and_ssh_are_this_machine() {
        for url in [
            "tcp://127.0.0.1:2400",
            "tcp://localhost:2400",
            "tcp://[::1]:2400",
            "ssh://root@127.0.0.1:2222",
        ] {
            let p = classify(&linux_docker(), &endpoint(url));
            assert_eq!(p.remote_host, None, "{url}");
            assert!(p.container_addresses_reachable(), "{url}");
            assert!(p.runs_host_binaries(&x86_linux()), "{url}");
            assert!(
                p.describe().ends_with(&format!("{url} (this machine)")),
                "{}",
                p.describe()
            );
        }
    }

    #[test]
    fn another_cpu_does_not_run_host_binaries() {
        let mut facts = linux_docker();
        facts.architecture = "arm64".into();
        let p = classify(&facts, &endpoint("unix:///var/run/docker.sock"));
        assert_eq!(p.arch, "aarch64");
        assert!(!p.runs_host_binaries(&x86_linux()));
    }

    #[test]
    fn local_rootful_is_this_machine() {
        let p = Platform::local_rootful();
        assert!(p.container_addresses_reachable());
        assert!(p.runs_host_binaries(&HostFacts::this_machine()));
    }

    #[test]
    fn serializes_for_status_json() {
        let p = classify(&linux_docker(), &endpoint("tcp://10.20.0.7:2375"));
        let v = serde_json::to_value(&p).unwrap();
        assert_eq!(v["flavor"], "docker");
        assert_eq!(v["remote_host"], "10.20.0.7");
        assert_eq!(v["endpoint"], "tcp://10.20.0.7:2375");
        let desktop = Platform {
            flavor: Flavor::DockerDesktop,
            ..p
        };
        assert_eq!(
            serde_json::to_value(&desktop).unwrap()["flavor"],
            "docker-desktop"
        );
    }
}
