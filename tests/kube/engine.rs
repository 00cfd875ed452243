//! The harness's one wrapper around `bollard::Docker`: each method is one engine verb and
//! its error names the operation and the resource. Nothing here knows about pods.

use std::collections::HashMap;
use std::time::Duration;

use bollard::Docker;
use bollard::models::{ContainerCreateBody, ExecConfig, NetworkCreateRequest, VolumeCreateRequest};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, CreateImageOptionsBuilder, KillContainerOptionsBuilder,
    ListContainersOptionsBuilder, ListNetworksOptionsBuilder, ListVolumesOptionsBuilder,
    LogsOptionsBuilder, RemoveContainerOptionsBuilder, RemoveVolumeOptionsBuilder,
    StopContainerOptionsBuilder, UploadToContainerOptionsBuilder, WaitContainerOptionsBuilder,
};
use futures_util::StreamExt;

pub type Result<T> = std::result::Result<T, String>;

fn api<E: std::fmt::Display>(op: &str, resource: &str) -> impl FnOnce(E) -> String {
    let what = format!("failed to {op} `{resource}`");
    move |e| format!("{what}: {e}")
}

fn status_code(e: &bollard::errors::Error) -> Option<u16> {
    match e {
        bollard::errors::Error::DockerResponseServerError { status_code, .. } => Some(*status_code),
        _ => None,
    }
}

/// What `exec` returns: exit code (None when it timed out), stdout and stderr.
#[derive(Debug, Clone)]
pub struct ExecOutput {
    pub exit: Option<i64>,
    pub stdout: String,
    pub stderr: String,
}

#[derive(Clone)]
pub struct Engine {
    docker: Docker,
}

impl Engine {
    pub async fn connect() -> Result<Engine> {
        let docker = Docker::connect_with_local_defaults()
            .map_err(api("connect to", "the Docker engine"))?
            .negotiate_version()
            .await
            .map_err(api("negotiate the API version with", "the Docker engine"))?;
        Ok(Engine { docker })
    }

    fn label_filter(label: &str) -> HashMap<String, Vec<String>> {
        HashMap::from([("label".to_string(), vec![label.to_string()])])
    }

    // ---- images ----

    pub async fn image_exists(&self, reference: &str) -> Result<bool> {
        match self.docker.inspect_image(reference).await {
            Ok(_) => Ok(true),
            Err(e) if status_code(&e) == Some(404) => Ok(false),
            Err(e) => Err(api("inspect image", reference)(e)),
        }
    }

    /// `docker import`: a root filesystem tar becomes an image (ownership and modes kept).
    pub async fn import_image(
        &self,
        repo: &str,
        tag: &str,
        rootfs: Vec<u8>,
        changes: Vec<String>,
    ) -> Result<()> {
        let options = CreateImageOptionsBuilder::new()
            .from_src("-")
            .repo(repo)
            .tag(tag)
            .changes(changes)
            .build();
        let mut stream =
            self.docker
                .create_image(Some(options), Some(bollard::body_full(rootfs.into())), None);
        while let Some(item) = stream.next().await {
            let info = item.map_err(api("import image", repo))?;
            if let Some(detail) = info.error_detail {
                return Err(format!(
                    "failed to import image `{repo}:{tag}`: {}",
                    detail.message.unwrap_or_default()
                ));
            }
        }
        Ok(())
    }

    // ---- networks ----

    /// Subnets of every network on the engine, to pick a free one.
    pub async fn used_subnets(&self) -> Result<Vec<String>> {
        let networks = self
            .docker
            .list_networks(None::<bollard::query_parameters::ListNetworksOptions>)
            .await
            .map_err(api("list", "networks"))?;
        Ok(networks
            .iter()
            .filter_map(|n| n.ipam.as_ref()?.config.clone())
            .flatten()
            .filter_map(|c| c.subnet)
            .collect())
    }

    pub async fn create_network(&self, request: NetworkCreateRequest) -> Result<String> {
        let name = request.name.clone();
        self.docker
            .create_network(request)
            .await
            .map(|r| r.id)
            .map_err(api("create network", &name))
    }

    pub async fn networks_labelled(&self, label: &str) -> Result<Vec<String>> {
        let options = ListNetworksOptionsBuilder::new()
            .filters(&Self::label_filter(label))
            .build();
        let networks = self
            .docker
            .list_networks(Some(options))
            .await
            .map_err(api("list networks labelled", label))?;
        Ok(networks.into_iter().filter_map(|n| n.id).collect())
    }

    pub async fn remove_network(&self, id: &str) -> Result<()> {
        match self.docker.remove_network(id).await {
            Ok(()) => Ok(()),
            Err(e) if status_code(&e) == Some(404) => Ok(()),
            Err(e) => Err(api("remove network", id)(e)),
        }
    }

    // ---- volumes ----

    /// Create a volume unless it exists (a claim's volume outlives its pod).
    pub async fn ensure_volume(&self, name: &str, labels: HashMap<String, String>) -> Result<()> {
        if self.docker.inspect_volume(name).await.is_ok() {
            return Ok(());
        }
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

    pub async fn volumes_labelled(&self, label: &str) -> Result<Vec<String>> {
        let options = ListVolumesOptionsBuilder::new()
            .filters(&Self::label_filter(label))
            .build();
        let volumes = self
            .docker
            .list_volumes(Some(options))
            .await
            .map_err(api("list volumes labelled", label))?;
        Ok(volumes
            .volumes
            .unwrap_or_default()
            .into_iter()
            .map(|v| v.name)
            .collect())
    }

    pub async fn remove_volume(&self, name: &str) -> Result<()> {
        let options = RemoveVolumeOptionsBuilder::new().force(true).build();
        match self.docker.remove_volume(name, Some(options)).await {
            Ok(()) => Ok(()),
            Err(e) if status_code(&e) == Some(404) => Ok(()),
            Err(e) => Err(api("remove volume", name)(e)),
        }
    }

    // ---- containers ----

    pub async fn create_container(&self, name: &str, body: ContainerCreateBody) -> Result<()> {
        let options = CreateContainerOptionsBuilder::new().name(name).build();
        self.docker
            .create_container(Some(options), body)
            .await
            .map(|_| ())
            .map_err(api("create container", name))
    }

    pub async fn start_container(&self, name: &str) -> Result<()> {
        match self.docker.start_container(name, None).await {
            Ok(()) => Ok(()),
            Err(e) if status_code(&e) == Some(304) => Ok(()),
            Err(e) => Err(api("start container", name)(e)),
        }
    }

    /// Unpack a tar archive at `path` in a container (running or not).
    pub async fn upload(&self, container: &str, path: &str, tar: Vec<u8>) -> Result<()> {
        let options = UploadToContainerOptionsBuilder::new().path(path).build();
        self.docker
            .upload_to_container(container, Some(options), bollard::body_full(tar.into()))
            .await
            .map_err(api("upload files into container", container))
    }

    /// Wait until the container exits; its exit code.
    pub async fn wait_exit(&self, name: &str) -> Result<i64> {
        let options = WaitContainerOptionsBuilder::new()
            .condition("not-running")
            .build();
        let mut stream = self.docker.wait_container(name, Some(options));
        match stream.next().await {
            Some(Ok(response)) => Ok(response.status_code),
            Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. })) => Ok(code),
            Some(Err(e)) => Err(api("wait for container", name)(e)),
            None => Err(format!("failed to wait for container `{name}`: no answer")),
        }
    }

    pub async fn kill(&self, name: &str, signal: &str) -> Result<()> {
        let options = KillContainerOptionsBuilder::new().signal(signal).build();
        match self.docker.kill_container(name, Some(options)).await {
            Ok(()) => Ok(()),
            // Not running (409) or gone (404): nothing to signal.
            Err(e) if matches!(status_code(&e), Some(404) | Some(409)) => Ok(()),
            Err(e) => Err(api("kill container", name)(e)),
        }
    }

    /// SIGTERM, then SIGKILL after `grace_secs`.
    pub async fn stop(&self, name: &str, grace_secs: i32) -> Result<()> {
        let options = StopContainerOptionsBuilder::new().t(grace_secs).build();
        match self.docker.stop_container(name, Some(options)).await {
            Ok(()) => Ok(()),
            Err(e) if matches!(status_code(&e), Some(304) | Some(404)) => Ok(()),
            Err(e) => Err(api("stop container", name)(e)),
        }
    }

    pub async fn remove_container(&self, name: &str) -> Result<()> {
        let options = RemoveContainerOptionsBuilder::new()
            .force(true)
            .v(false)
            .build();
        match self.docker.remove_container(name, Some(options)).await {
            Ok(()) => Ok(()),
            Err(e) if status_code(&e) == Some(404) => Ok(()),
            Err(e) => Err(api("remove container", name)(e)),
        }
    }

    pub async fn containers_labelled(&self, label: &str) -> Result<Vec<String>> {
        let options = ListContainersOptionsBuilder::new()
            .all(true)
            .filters(&Self::label_filter(label))
            .build();
        let containers = self
            .docker
            .list_containers(Some(options))
            .await
            .map_err(api("list containers labelled", label))?;
        Ok(containers.into_iter().filter_map(|c| c.id).collect())
    }

    pub async fn is_running(&self, name: &str) -> bool {
        match self.docker.inspect_container(name, None).await {
            Ok(c) => c.state.and_then(|s| s.running).unwrap_or(false),
            Err(_) => false,
        }
    }

    /// The last `tail` lines of a container's output (stdout and stderr interleaved), or
    /// the last `RCLUSTER_K8S_LOG_LINES` when that is set (to read a whole failure).
    pub async fn logs_tail(&self, name: &str, tail: usize) -> Result<String> {
        let tail = std::env::var("RCLUSTER_K8S_LOG_LINES")
            .ok()
            .and_then(|n| n.parse::<usize>().ok())
            .unwrap_or(tail);
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

    /// Run `cmd` in a running container as `user` (None: the container's), giving up after
    /// `timeout` (exit None; the process may keep running, as with a kubelet probe).
    pub async fn exec(
        &self,
        container: &str,
        cmd: Vec<String>,
        user: Option<String>,
        timeout: Duration,
    ) -> Result<ExecOutput> {
        let config = ExecConfig {
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            cmd: Some(cmd),
            user,
            ..Default::default()
        };
        let created = self
            .docker
            .create_exec(container, config)
            .await
            .map_err(api("create exec in container", container))?;
        let mut stdout = String::new();
        let mut stderr = String::new();
        let run = async {
            if let bollard::exec::StartExecResults::Attached { mut output, .. } = self
                .docker
                .start_exec(&created.id, None)
                .await
                .map_err(api("start exec in container", container))?
            {
                while let Some(chunk) = output.next().await {
                    match chunk.map_err(api("read exec output in container", container))? {
                        bollard::container::LogOutput::StdErr { message } => {
                            stderr.push_str(&String::from_utf8_lossy(&message))
                        }
                        other => stdout.push_str(&String::from_utf8_lossy(&other.into_bytes())),
                    }
                }
            }
            Ok::<(), String>(())
        };
        match tokio::time::timeout(timeout, run).await {
            Ok(result) => result?,
            Err(_) => {
                return Ok(ExecOutput {
                    exit: None,
                    stdout,
                    stderr,
                });
            }
        }
        let inspect = self
            .docker
            .inspect_exec(&created.id)
            .await
            .map_err(api("inspect exec in container", container))?;
        Ok(ExecOutput {
            exit: Some(inspect.exit_code.unwrap_or(-1)),
            stdout,
            stderr,
        })
    }
}
