//! An `ssh://` engine, reached as the docker CLI reaches it: every connection is one
//! `ssh [-l user] [-p port] -o ConnectTimeout=30 -T -- host docker system dial-stdio`,
//! whose stdin and stdout carry the engine's API. bollard has no such transport of its own
//! (its `ssh` feature brings a second ssh client library), so rcluster listens on a unix
//! socket in a private temporary directory and bridges each connection bollard opens there
//! to one such ssh process. The user's own ssh configuration (keys, agent, known_hosts,
//! `~/.ssh/config`) applies, as with the docker CLI. One addition: bollard opens a
//! connection per request (measured: `up` over ssh took 8.8 s, about 1.5 s locally), so the
//! bridge also keeps one ssh master connection (`ControlMaster`, its socket in the same
//! private directory) that the per-request ssh processes share when it is up; they connect
//! on their own until it is.
//!
//! Owns: the socket, the ssh processes. Dropping the bridge stops accepting, kills the ssh
//! processes still running and removes the directory.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use tokio::io::AsyncWriteExt;
use tokio::net::UnixListener;
use tokio::process::Command;
use tokio::task::JoinHandle;

pub struct SshBridge {
    dir: tempfile::TempDir,
    /// The shared ssh connection; killed on drop.
    _master: Option<tokio::process::Child>,
    accept: JoinHandle<()>,
    /// What the last ssh that failed printed on stderr (why the engine is unreachable).
    last_error: Arc<Mutex<String>>,
}

/// The ssh arguments the docker CLI uses (cli/connhelper): a connect timeout, no tty.
pub fn ssh_args(user: Option<&str>, host: &str, port: Option<u16>) -> Vec<String> {
    let mut args = vec![
        "-o".to_string(),
        "ConnectTimeout=30".to_string(),
        "-T".to_string(),
    ];
    if let Some(user) = user {
        args.extend(["-l".to_string(), user.to_string()]);
    }
    if let Some(port) = port {
        args.extend(["-p".to_string(), port.to_string()]);
    }
    args.extend(
        ["--", host, "docker", "system", "dial-stdio"]
            .iter()
            .map(|s| s.to_string()),
    );
    args
}

/// `ssh` options that share the master connection at `control` (if it is up).
fn shared(control: &std::path::Path, master: &str) -> Vec<String> {
    vec![
        "-o".to_string(),
        format!("ControlMaster={master}"),
        "-o".to_string(),
        format!("ControlPath={}", control.display()),
    ]
}

impl SshBridge {
    /// Listen on a fresh socket; each connection runs the docker CLI's ssh command.
    pub fn start(user: Option<&str>, host: &str, port: Option<u16>) -> std::io::Result<SshBridge> {
        let dir = tempfile::Builder::new().prefix("rcluster-ssh-").tempdir()?;
        let control = dir.path().join("ctl");
        let mut master_args = shared(&control, "yes");
        master_args.extend(["-o", "ControlPersist=no", "-N"].map(String::from));
        let mut login = ssh_args(user, host, port);
        // The master runs no command: drop `docker system dial-stdio`.
        login.truncate(login.len() - 3);
        master_args.extend(login);
        let master = Command::new("ssh")
            .args(&master_args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .ok();
        let mut args = shared(&control, "no");
        args.extend(ssh_args(user, host, port));
        // The directory is 0700 (tempfile): only this user can use the bridge.
        let listener = UnixListener::bind(dir.path().join("docker.sock"))?;
        let last_error = Arc::new(Mutex::new(String::new()));
        let errors = last_error.clone();
        let accept = tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let args = args.clone();
                let errors = errors.clone();
                tokio::spawn(async move {
                    if let Err(e) = bridge_one(socket, &args, &errors).await {
                        *errors.lock().unwrap_or_else(|p| p.into_inner()) =
                            format!("cannot run `ssh`: {e}");
                    }
                });
            }
        });
        Ok(SshBridge {
            dir,
            _master: master,
            accept,
            last_error,
        })
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("docker.sock")
    }

    pub fn last_error(&self) -> String {
        self.last_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .trim()
            .to_string()
    }
}

impl Drop for SshBridge {
    fn drop(&mut self) {
        // Aborting the accept loop drops the listener; each bridged connection's ssh is
        // `kill_on_drop`, and ends when bollard closes its side.
        self.accept.abort();
    }
}

async fn bridge_one(
    mut socket: tokio::net::UnixStream,
    args: &[String],
    errors: &Mutex<String>,
) -> std::io::Result<()> {
    let mut child = Command::new("ssh")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let (Some(mut stdin), Some(mut stdout), Some(mut stderr)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        return Ok(());
    };
    let stderr_text = tokio::spawn(async move {
        let mut text = Vec::new();
        let _ = tokio::io::AsyncReadExt::read_to_end(&mut stderr, &mut text).await;
        String::from_utf8_lossy(&text).into_owned()
    });
    let (mut from_client, mut to_client) = socket.split();
    let upstream = async {
        let r = tokio::io::copy(&mut from_client, &mut stdin).await;
        // The client finished its request: let the remote side see end of input.
        let _ = stdin.shutdown().await;
        drop(stdin);
        r
    };
    let downstream = tokio::io::copy(&mut stdout, &mut to_client);
    // Done when the engine's side is done; the client may keep its half open.
    tokio::select! {
        _ = downstream => {}
        _ = async { let _ = upstream.await; std::future::pending::<()>().await } => {}
    }
    // Why ssh failed is recorded before the client sees the end of the stream: the client's
    // error message reads it.
    let status = child.wait().await?;
    if !status.success() {
        let text = stderr_text.await.unwrap_or_default();
        *errors.lock().unwrap_or_else(|p| p.into_inner()) = if text.trim().is_empty() {
            format!("`ssh {}` ended with {status}", args.join(" "))
        } else {
            text
        };
    }
    let _ = to_client.shutdown().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::ssh_args;

    #[test]
    fn runs_ssh_as_the_docker_cli_does() {
        assert_eq!(
            ssh_args(Some("root"), "127.0.0.1", Some(2222)).join(" "),
            "-o ConnectTimeout=30 -T -l root -p 2222 -- 127.0.0.1 docker system dial-stdio"
        );
        assert_eq!(
            ssh_args(None, "build-box", None).join(" "),
            "-o ConnectTimeout=30 -T -- build-box docker system dial-stdio"
        );
    }
}
