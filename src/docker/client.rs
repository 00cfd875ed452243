//! The one wrapper around `bollard::Docker`. Each method is one engine verb; its error names
//! the operation and the resource. Nothing here decides anything.

use std::collections::HashMap;

use bollard::Docker;
use bollard::errors::Error as BollardError;
use bollard::models::{
    ContainerCreateBody, ContainerInspectResponse, ContainerSummary, Network,
    NetworkConnectRequest, NetworkCreateRequest, NetworkDisconnectRequest, Volume,
    VolumeCreateRequest,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, KillContainerOptionsBuilder, ListContainersOptionsBuilder,
    ListNetworksOptionsBuilder, ListVolumesOptionsBuilder, LogsOptionsBuilder,
    RemoveContainerOptionsBuilder, RemoveVolumeOptionsBuilder, StopContainerOptionsBuilder,
    UploadToContainerOptionsBuilder,
};
use futures_util::StreamExt;
use std::sync::Arc;

use super::endpoint::{self, Endpoint, Transport};
use super::platform::{self, EngineFacts, Platform};
use super::ssh_bridge::SshBridge;

#[derive(Debug, thiserror::Error)]
pub enum DockerError {
    /// `where_and_why`: the endpoint, where it came from (DOCKER_HOST, a docker context,
    /// the default) and what to check for that kind of endpoint (one string: the error
    /// stays small).
    #[error("cannot reach the Docker engine at {where_and_why}")]
    Unreachable {
        where_and_why: String,
        #[source]
        source: BollardError,
    },
    /// DOCKER_HOST or the docker context names an endpoint rcluster cannot use.
    #[error("{0}")]
    Endpoint(String),
    #[error("failed to {op} `{resource}`")]
    Api {
        op: &'static str,
        resource: String,
        #[source]
        source: BollardError,
    },
    /// Something with our name exists but is not ours: we never touch it.
    #[error("{0}")]
    Conflict(String),
    /// The engine could not build or pull an image.
    #[error("{0}")]
    Image(String),
}

/// What an engine's refusal means, for the callers that react to it rather than report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// 404: the resource does not exist.
    NotFound,
    /// 409: the name is taken.
    NameTaken,
    /// 304: already done (e.g. a container already stopped).
    AlreadyDone,
    /// A published host port is taken, by another container or another process.
    PortInUse,
    /// The engine, or its socket, refused this user.
    PermissionDenied,
    /// Anything else: reported as it is.
    Other,
}

impl DockerError {
    /// The one place an engine error is classified. Status codes where the API has them;
    /// a taken port has none (Docker answers 500), so its message is read here, and only
    /// here: Docker's "port is already allocated" (another container) and "address
    /// already in use" (another process; Podman says it too).
    pub fn refusal(&self) -> Refusal {
        match self {
            DockerError::Api {
                source:
                    BollardError::DockerResponseServerError {
                        status_code,
                        message,
                    },
                ..
            } => match status_code {
                404 => Refusal::NotFound,
                409 => Refusal::NameTaken,
                304 => Refusal::AlreadyDone,
                403 => Refusal::PermissionDenied,
                _ if message.contains("port is already allocated")
                    || message.contains("address already in use") =>
                {
                    Refusal::PortInUse
                }
                _ if message.to_ascii_lowercase().contains("permission denied") => {
                    Refusal::PermissionDenied
                }
                _ => Refusal::Other,
            },
            DockerError::Unreachable {
                source: BollardError::IOError { err },
                ..
            } if err.kind() == std::io::ErrorKind::PermissionDenied => Refusal::PermissionDenied,
            _ => Refusal::Other,
        }
    }

    /// What the engine itself said, for messages that quote it.
    pub fn engine_said(&self) -> Option<&str> {
        match self {
            DockerError::Api {
                source: BollardError::DockerResponseServerError { message, .. },
                ..
            } => Some(message),
            _ => None,
        }
    }

    /// The engine said the resource does not exist.
    pub fn is_not_found(&self) -> bool {
        self.refusal() == Refusal::NotFound
    }

    /// The engine said the name is taken.
    pub fn is_conflict(&self) -> bool {
        self.refusal() == Refusal::NameTaken
    }

    /// The engine said the operation is already done (e.g. container already stopped).
    pub fn is_not_modified(&self) -> bool {
        self.refusal() == Refusal::AlreadyDone
    }
}

pub type Result<T> = std::result::Result<T, DockerError>;

fn api(op: &'static str, resource: &str) -> impl FnOnce(BollardError) -> DockerError {
    let resource = resource.to_string();
    move |source| DockerError::Api {
        op,
        resource,
        source,
    }
}

/// Label filter map for list calls.
fn label_filter(labels: &[String]) -> HashMap<String, Vec<String>> {
    HashMap::from([("label".to_string(), labels.to_vec())])
}

/// A handle on the engine. Cheap to clone (bollard's client is reference-counted).
#[derive(Clone)]
pub struct Engine {
    docker: Docker,
    endpoint: Arc<Endpoint>,
    /// For an ssh endpoint: the local socket bollard talks to; lives as long as any clone.
    _bridge: Option<Arc<SshBridge>>,
}

/// Seconds bollard waits for one request (its default).
const REQUEST_TIMEOUT: u64 = 120;

impl Engine {
    /// The only way commands reach an engine: the one the docker CLI would use
    /// (`DOCKER_HOST`, `DOCKER_CONTEXT`, the current context, the default socket; see
    /// `endpoint`), with an agreed API version (the engines here speak 1.41, older than
    /// bollard's default).
    pub async fn connect() -> Result<Engine> {
        let endpoint =
            endpoint::resolve(&endpoint::Settings::from_env()).map_err(DockerError::Endpoint)?;
        let mut bridge = None;
        let unreachable = |endpoint: &Endpoint, bridge: Option<&SshBridge>, source| {
            let hint = match (&endpoint.transport, bridge) {
                (Transport::Unix(_), _) => "is the daemon running (`systemctl status docker`), and may this user use the socket (root, or the `docker` group)? Set DOCKER_HOST or a docker context to use another engine".to_string(),
                (Transport::Tcp { tls: None, .. }, _) => "is the engine listening there (`dockerd -H tcp://...`), and does a firewall let this machine in? `docker -H <the same url> info` should answer".to_string(),
                (Transport::Tcp { tls: Some(tls), .. }, _) => format!("is the engine listening there with TLS, and are `{}`, `{}` and `{}` its CA and a client certificate it accepts?", tls.ca.display(), tls.cert.display(), tls.key.display()),
                (Transport::Ssh { .. }, Some(b)) if !b.last_error().is_empty() => format!("ssh said: {}", b.last_error()),
                (Transport::Ssh { .. }, _) => "does `ssh <that host> docker system dial-stdio` work from this shell (keys, known_hosts, and `docker` installed there)?".to_string(),
            };
            DockerError::Unreachable {
                where_and_why: format!("`{}` (from {}): {hint}", endpoint.url, endpoint.origin),
                source,
            }
        };
        let docker = match &endpoint.transport {
            Transport::Unix(path) => Docker::connect_with_unix(
                &path.to_string_lossy(),
                REQUEST_TIMEOUT,
                bollard::API_DEFAULT_VERSION,
            ),
            Transport::Tcp {
                host,
                port,
                tls: None,
            } => Docker::connect_with_http(
                &format!("tcp://{}:{port}", bracket_v6(host)),
                REQUEST_TIMEOUT,
                bollard::API_DEFAULT_VERSION,
            ),
            Transport::Tcp {
                host,
                port,
                tls: Some(tls),
            } => Docker::connect_with_ssl(
                &format!("tcp://{}:{port}", bracket_v6(host)),
                &tls.key,
                &tls.cert,
                &tls.ca,
                REQUEST_TIMEOUT,
                bollard::API_DEFAULT_VERSION,
            ),
            Transport::Ssh { user, host, port } => {
                let b = SshBridge::start(user.as_deref(), host, *port).map_err(|e| {
                    DockerError::Endpoint(format!(
                        "cannot make the local socket that carries `{}` (from {}) over ssh: {e}",
                        endpoint.url, endpoint.origin
                    ))
                })?;
                let socket = b.socket();
                bridge = Some(Arc::new(b));
                Docker::connect_with_unix(
                    &socket.to_string_lossy(),
                    REQUEST_TIMEOUT,
                    bollard::API_DEFAULT_VERSION,
                )
            }
        }
        .map_err(|e| unreachable(&endpoint, bridge.as_deref(), e))?;
        let docker = match docker.negotiate_version().await {
            Ok(docker) => docker,
            Err(e) => return Err(unreachable(&endpoint, bridge.as_deref(), e)),
        };
        Ok(Engine {
            docker,
            endpoint: Arc::new(endpoint),
            _bridge: bridge,
        })
    }

    /// The endpoint this engine was reached through, and where it came from.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// What kind of engine this is, from its `/info` and `/version` and how we reached it.
    pub async fn platform(&self) -> Result<Platform> {
        let info = self
            .docker
            .info()
            .await
            .map_err(api("read engine info from", &self.endpoint.url))?;
        let version = self
            .docker
            .version()
            .await
            .map_err(api("read engine version from", &self.endpoint.url))?;
        let facts = EngineFacts {
            operating_system: info.operating_system.unwrap_or_default(),
            os_type: info.os_type.unwrap_or_default(),
            architecture: info.architecture.unwrap_or_default(),
            server_version: info.server_version.unwrap_or_default(),
            security_options: info.security_options.unwrap_or_default(),
            docker_root_dir: info.docker_root_dir.unwrap_or_default(),
            components: version
                .components
                .unwrap_or_default()
                .into_iter()
                .map(|c| (c.name, c.version))
                .collect(),
        };
        Ok(platform::classify(&facts, &self.endpoint))
    }

    // ---- containers ----

    pub async fn list_containers(&self, labels: &[String]) -> Result<Vec<ContainerSummary>> {
        let options = ListContainersOptionsBuilder::new()
            .all(true)
            .filters(&label_filter(labels))
            .build();
        self.docker
            .list_containers(Some(options))
            .await
            .map_err(api("list containers labelled", &labels.join(",")))
    }

    /// Inspect by name or id; `None` when it does not exist.
    pub async fn inspect_container(&self, name: &str) -> Result<Option<ContainerInspectResponse>> {
        match self.docker.inspect_container(name, None).await {
            Ok(c) => Ok(Some(c)),
            Err(e) => {
                let e = api("inspect container", name)(e);
                if e.is_not_found() { Ok(None) } else { Err(e) }
            }
        }
    }

    pub async fn create_container(&self, name: &str, body: ContainerCreateBody) -> Result<String> {
        let options = CreateContainerOptionsBuilder::new().name(name).build();
        self.docker
            .create_container(Some(options), body)
            .await
            .map(|r| r.id)
            .map_err(api("create container", name))
    }

    /// Unpack a tar archive at `path` inside a (created, not necessarily started) container.
    pub async fn upload(&self, container: &str, path: &str, tar: Vec<u8>) -> Result<()> {
        let options = UploadToContainerOptionsBuilder::new().path(path).build();
        self.docker
            .upload_to_container(container, Some(options), bollard::body_full(tar.into()))
            .await
            .map_err(api("copy config files into container", container))
    }

    pub async fn start_container(&self, name: &str) -> Result<()> {
        match self.docker.start_container(name, None).await {
            Ok(()) => Ok(()),
            Err(e) => {
                let e = api("start container", name)(e);
                if e.is_not_modified() { Ok(()) } else { Err(e) }
            }
        }
    }

    pub async fn kill_container(&self, name: &str, signal: &str) -> Result<()> {
        let options = KillContainerOptionsBuilder::new().signal(signal).build();
        self.docker
            .kill_container(name, Some(options))
            .await
            .map_err(api("kill container", name))
    }

    pub async fn stop_container(&self, name: &str, grace_secs: i32) -> Result<()> {
        let options = StopContainerOptionsBuilder::new().t(grace_secs).build();
        match self.docker.stop_container(name, Some(options)).await {
            Ok(()) => Ok(()),
            Err(e) => {
                let e = api("stop container", name)(e);
                if e.is_not_modified() { Ok(()) } else { Err(e) }
            }
        }
    }

    pub async fn pause_container(&self, name: &str) -> Result<()> {
        self.docker
            .pause_container(name)
            .await
            .map_err(api("pause container", name))
    }

    pub async fn unpause_container(&self, name: &str) -> Result<()> {
        self.docker
            .unpause_container(name)
            .await
            .map_err(api("unpause container", name))
    }

    /// Force-remove; "already gone" is success.
    pub async fn remove_container(&self, name: &str) -> Result<()> {
        let options = RemoveContainerOptionsBuilder::new()
            .force(true)
            .v(false)
            .build();
        match self.docker.remove_container(name, Some(options)).await {
            Ok(()) => Ok(()),
            Err(e) => {
                let e = api("remove container", name)(e);
                if e.is_not_found() { Ok(()) } else { Err(e) }
            }
        }
    }

    /// The last `tail` lines of a container's stdout and stderr.
    pub async fn logs_tail(&self, name: &str, tail: usize) -> Result<String> {
        let options = LogsOptionsBuilder::new()
            .stdout(true)
            .stderr(true)
            .tail(&tail.to_string())
            .build();
        let mut stream = self.docker.logs(name, Some(options));
        let mut out = String::new();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(api("read logs of container", name))?;
            out.push_str(&String::from_utf8_lossy(&chunk.into_bytes()));
        }
        Ok(out)
    }

    /// Follow (or dump) a container's logs as a stream of text chunks.
    pub fn logs_stream(
        &self,
        name: &str,
        follow: bool,
        tail: Option<usize>,
    ) -> impl futures_util::Stream<Item = Result<String>> + use<> {
        let tail = tail.map_or("all".to_string(), |n| n.to_string());
        let options = LogsOptionsBuilder::new()
            .stdout(true)
            .stderr(true)
            .follow(follow)
            .tail(&tail)
            .build();
        let owned = name.to_string();
        self.docker.logs(name, Some(options)).map(move |chunk| {
            chunk
                .map(|c| String::from_utf8_lossy(&c.into_bytes()).into_owned())
                .map_err(api("read logs of container", &owned))
        })
    }

    /// Run a command in a running container, handing its output (stdout and stderr) to
    /// `on_output` as it comes; returns its exit code. `env` reaches only that process
    /// (not the container's config, not `docker inspect`).
    pub async fn exec(
        &self,
        container: &str,
        cmd: Vec<String>,
        env: Vec<String>,
        mut on_output: impl FnMut(&[u8]),
    ) -> Result<i64> {
        let config = bollard::models::ExecConfig {
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            env: Some(env),
            cmd: Some(cmd),
            ..Default::default()
        };
        let created = self
            .docker
            .create_exec(container, config)
            .await
            .map_err(api("create exec in container", container))?;
        if let bollard::exec::StartExecResults::Attached { mut output, .. } = self
            .docker
            .start_exec(&created.id, None)
            .await
            .map_err(api("start exec in container", container))?
        {
            while let Some(chunk) = output.next().await {
                let chunk = chunk.map_err(api("read exec output in container", container))?;
                on_output(&chunk.into_bytes());
            }
        }
        let inspect = self
            .docker
            .inspect_exec(&created.id)
            .await
            .map_err(api("inspect exec in container", container))?;
        Ok(inspect.exit_code.unwrap_or(-1))
    }

    // ---- networks ----

    pub async fn list_networks(&self, labels: &[String]) -> Result<Vec<Network>> {
        let options = ListNetworksOptionsBuilder::new()
            .filters(&label_filter(labels))
            .build();
        self.docker
            .list_networks(Some(options))
            .await
            .map_err(api("list networks labelled", &labels.join(",")))
    }

    /// Every network on the engine (to find a free subnet and name conflicts).
    pub async fn list_all_networks(&self) -> Result<Vec<Network>> {
        self.docker
            .list_networks(None)
            .await
            .map_err(api("list networks", "*"))
    }

    pub async fn create_network(&self, request: NetworkCreateRequest) -> Result<String> {
        let name = request.name.clone();
        self.docker
            .create_network(request)
            .await
            .map(|r| r.id)
            .map_err(api("create network", &name))
    }

    /// Remove by id (the engine accepts duplicate names); "already gone" is success.
    pub async fn remove_network(&self, id: &str) -> Result<()> {
        match self.docker.remove_network(id).await {
            Ok(()) => Ok(()),
            Err(e) => {
                let e = api("remove network", id)(e);
                if e.is_not_found() { Ok(()) } else { Err(e) }
            }
        }
    }

    pub async fn connect_network(
        &self,
        network: &str,
        request: NetworkConnectRequest,
    ) -> Result<()> {
        self.docker
            .connect_network(network, request)
            .await
            .map_err(api("connect container to network", network))
    }

    pub async fn disconnect_network(&self, network: &str, container: &str) -> Result<()> {
        let request = NetworkDisconnectRequest {
            container: container.to_string(),
            force: Some(true),
        };
        self.docker
            .disconnect_network(network, request)
            .await
            .map_err(api("disconnect container from network", network))
    }

    // ---- volumes ----

    pub async fn list_volumes(&self, labels: &[String]) -> Result<Vec<Volume>> {
        let options = ListVolumesOptionsBuilder::new()
            .filters(&label_filter(labels))
            .build();
        self.docker
            .list_volumes(Some(options))
            .await
            .map(|r| r.volumes.unwrap_or_default())
            .map_err(api("list volumes labelled", &labels.join(",")))
    }

    pub async fn inspect_volume(&self, name: &str) -> Result<Option<Volume>> {
        match self.docker.inspect_volume(name).await {
            Ok(v) => Ok(Some(v)),
            Err(e) => {
                let e = api("inspect volume", name)(e);
                if e.is_not_found() { Ok(None) } else { Err(e) }
            }
        }
    }

    pub async fn create_volume(&self, name: &str, labels: HashMap<String, String>) -> Result<()> {
        let request = VolumeCreateRequest {
            name: Some(name.to_string()),
            labels: Some(labels),
            ..Default::default()
        };
        self.docker
            .create_volume(request)
            .await
            .map(|_| ())
            .map_err(api("create volume", name))
    }

    pub async fn remove_volume(&self, name: &str) -> Result<()> {
        let options = RemoveVolumeOptionsBuilder::new().force(false).build();
        match self.docker.remove_volume(name, Some(options)).await {
            Ok(()) => Ok(()),
            Err(e) => {
                let e = api("remove volume", name)(e);
                if e.is_not_found() { Ok(()) } else { Err(e) }
            }
        }
    }

    // ---- images ----

    pub async fn image_exists(&self, reference: &str) -> Result<bool> {
        match self.docker.inspect_image(reference).await {
            Ok(_) => Ok(true),
            Err(e) => {
                let e = api("inspect image", reference)(e);
                if e.is_not_found() { Ok(false) } else { Err(e) }
            }
        }
    }

    /// Build an image from an in-memory context with the classic builder.
    pub async fn build_image(&self, tag: &str, context: Vec<u8>) -> Result<()> {
        let options = bollard::query_parameters::BuildImageOptionsBuilder::new()
            .t(tag)
            .rm(true)
            .forcerm(true)
            .build();
        let mut stream =
            self.docker
                .build_image(options, None, Some(bollard::body_full(context.into())));
        let mut log = String::new();
        while let Some(item) = stream.next().await {
            let info = item.map_err(api("build image", tag))?;
            if let Some(line) = info.stream {
                log.push_str(&line);
            }
            if let Some(detail) = info.error_detail {
                return Err(DockerError::Image(format!(
                    "failed to build image `{tag}`: {}\n{log}",
                    detail.message.unwrap_or_default()
                )));
            }
        }
        Ok(())
    }

    /// Pull an image, calling `progress` with each status line.
    pub async fn pull_image(&self, reference: &str, mut progress: impl FnMut(&str)) -> Result<()> {
        let (repo, tag) = split_reference(reference);
        let options = bollard::query_parameters::CreateImageOptionsBuilder::new()
            .from_image(repo)
            .tag(tag)
            .build();
        let mut stream = self.docker.create_image(Some(options), None, None);
        while let Some(item) = stream.next().await {
            let info = item.map_err(api("pull image", reference))?;
            if let Some(detail) = info.error_detail {
                return Err(DockerError::Image(format!(
                    "failed to pull image `{reference}`: {}",
                    detail.message.unwrap_or_default()
                )));
            }
            if let Some(status) = info.status {
                progress(&status);
            }
        }
        Ok(())
    }
}

/// An IPv6 literal needs brackets in a URL.
fn bracket_v6(host: &str) -> String {
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    }
}

/// `redis:7.2` -> (`redis`, `7.2`); `host:5000/redis` -> (`host:5000/redis`, `latest`).
fn split_reference(reference: &str) -> (&str, &str) {
    match reference.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => (repo, tag),
        _ => (reference, "latest"),
    }
}

#[cfg(test)]
mod tests {
    use super::split_reference;

    #[test]
    fn splits_image_references() {
        assert_eq!(split_reference("redis:7.2"), ("redis", "7.2"));
        assert_eq!(split_reference("redis"), ("redis", "latest"));
        assert_eq!(
            split_reference("reg:5000/team/redis"),
            ("reg:5000/team/redis", "latest")
        );
        assert_eq!(split_reference("reg:5000/redis:7"), ("reg:5000/redis", "7"));
    }
}
