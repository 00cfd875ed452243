//! Which engine to talk to, found as the docker CLI finds it: `DOCKER_HOST` (with
//! `DOCKER_TLS_VERIFY` / `DOCKER_CERT_PATH` for tcp), else `DOCKER_CONTEXT`, else the
//! `currentContext` of `$DOCKER_CONFIG/config.json` (default `~/.docker`), else the default
//! unix socket. A context's endpoint is `Endpoints.docker.Host` in
//! `contexts/meta/<sha256 of its name>/meta.json`, its TLS files `ca.pem`, `cert.pem`,
//! `key.pem` under `contexts/tls/<sha256 of its name>/docker/`.
//!
//! Owns: reading those settings and files and parsing the endpoint. Must not connect.

use std::fmt;
use std::path::{Path, PathBuf};

use sha2::Digest;

pub const DEFAULT_SOCKET: &str = "unix:///var/run/docker.sock";

/// Where the endpoint came from, for messages ("... from DOCKER_HOST").
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    DockerHost,
    /// A docker context; `selected_by` says how it was chosen.
    Context {
        name: String,
        selected_by: &'static str,
    },
    Default,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::DockerHost => write!(f, "DOCKER_HOST"),
            Origin::Context { name, selected_by } => {
                write!(f, "docker context `{name}` ({selected_by})")
            }
            Origin::Default => write!(f, "the default socket"),
        }
    }
}

/// Client certificate and CA for a TLS tcp endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tls {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// How the bytes travel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    Unix(PathBuf),
    Tcp {
        host: String,
        port: u16,
        tls: Option<Tls>,
    },
    /// `ssh [-l user] [-p port] -- host docker system dial-stdio`, as the docker CLI runs it.
    Ssh {
        user: Option<String>,
        host: String,
        port: Option<u16>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// As the user wrote it (DOCKER_HOST or the context's Host).
    pub url: String,
    pub origin: Origin,
    pub transport: Transport,
}

impl Endpoint {
    /// The host name or address a tcp/ssh endpoint names (`None` for a unix socket).
    pub fn host(&self) -> Option<&str> {
        match &self.transport {
            Transport::Unix(_) => None,
            Transport::Tcp { host, .. } | Transport::Ssh { host, .. } => Some(host),
        }
    }
}

/// The process settings the choice depends on (a value, so tests need no real env).
#[derive(Debug, Clone, Default)]
pub struct Settings {
    pub docker_host: Option<String>,
    pub docker_context: Option<String>,
    pub tls_verify: bool,
    /// `DOCKER_TLS` (TLS without verifying the engine), which rcluster refuses.
    pub tls_unverified: bool,
    pub cert_path: Option<PathBuf>,
    /// `$DOCKER_CONFIG`, else `~/.docker`.
    pub config_dir: PathBuf,
}

impl Settings {
    pub fn from_env() -> Settings {
        // The docker CLI treats an empty variable as unset.
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let config_dir = var("DOCKER_CONFIG").map(PathBuf::from).unwrap_or_else(|| {
            dirs::home_dir()
                .unwrap_or_else(|| PathBuf::from("/"))
                .join(".docker")
        });
        Settings {
            docker_host: var("DOCKER_HOST"),
            docker_context: var("DOCKER_CONTEXT"),
            tls_verify: var("DOCKER_TLS_VERIFY").is_some(),
            tls_unverified: var("DOCKER_TLS").is_some(),
            cert_path: var("DOCKER_CERT_PATH").map(PathBuf::from),
            config_dir,
        }
    }
}

/// Which engine, and how to reach it. Reads `config.json` and the context's files.
pub fn resolve(settings: &Settings) -> Result<Endpoint, String> {
    if let Some(host) = &settings.docker_host {
        if settings.tls_unverified && !settings.tls_verify {
            return Err(format!(
                "DOCKER_TLS asks for TLS to `{host}` without verifying the engine, which rcluster does not do; \
                 set DOCKER_TLS_VERIFY=1 and put the engine's CA and a client certificate in DOCKER_CERT_PATH (`ca.pem`, `cert.pem`, `key.pem`)"
            ));
        }
        let tls = settings.tls_verify.then(|| {
            let dir = settings
                .cert_path
                .clone()
                .unwrap_or_else(|| settings.config_dir.clone());
            tls_files(&dir)
        });
        return parse(host, Origin::DockerHost, tls);
    }
    let (name, selected_by) = match &settings.docker_context {
        Some(name) => (name.clone(), "DOCKER_CONTEXT"),
        None => match current_context(&settings.config_dir)? {
            Some(name) => (name, "currentContext in config.json"),
            None => return parse(DEFAULT_SOCKET, Origin::Default, None),
        },
    };
    // "default" is the docker CLI's built-in context: DOCKER_HOST or the default socket.
    if name == "default" {
        return parse(DEFAULT_SOCKET, Origin::Default, None);
    }
    let id = hex::encode(sha2::Sha256::digest(name.as_bytes()));
    let origin = Origin::Context { name, selected_by };
    let meta = settings
        .config_dir
        .join("contexts/meta")
        .join(&id)
        .join("meta.json");
    let text = std::fs::read_to_string(&meta).map_err(|e| {
        format!(
            "{origin} does not exist: cannot read `{}`: {e}; list the contexts with `docker context ls`, or unset {selected_by}",
            meta.display()
        )
    })?;
    let host =
        context_host(&text).map_err(|why| format!("{origin}: `{}` {why}", meta.display()))?;
    let tls_dir = settings
        .config_dir
        .join("contexts/tls")
        .join(&id)
        .join("docker");
    let tls = tls_dir.join("ca.pem").exists().then(|| tls_files(&tls_dir));
    parse(&host, origin, tls)
}

fn tls_files(dir: &Path) -> Tls {
    Tls {
        ca: dir.join("ca.pem"),
        cert: dir.join("cert.pem"),
        key: dir.join("key.pem"),
    }
}

/// `currentContext` from `config.json`; `None` when the file or the key is absent.
fn current_context(config_dir: &Path) -> Result<Option<String>, String> {
    let path = config_dir.join("config.json");
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read `{}`: {e}", path.display())),
    };
    let value: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| format!("`{}` is not valid JSON: {e}", path.display()))?;
    Ok(value["currentContext"]
        .as_str()
        .filter(|s| !s.is_empty())
        .map(str::to_string))
}

/// `Endpoints.docker.Host` of a context's `meta.json`.
pub fn context_host(meta_json: &str) -> Result<String, String> {
    let value: serde_json::Value =
        serde_json::from_str(meta_json).map_err(|e| format!("is not valid JSON: {e}"))?;
    if value["Endpoints"]["docker"]["SkipTLSVerify"] == true {
        return Err("sets SkipTLSVerify, which rcluster does not support: give the context the engine's CA (`docker context update --docker ca=...`)".to_string());
    }
    value["Endpoints"]["docker"]["Host"]
        .as_str()
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .ok_or_else(|| "has no `Endpoints.docker.Host`".to_string())
}

/// Parse an endpoint URL as the docker CLI accepts it: `unix:///path`, `tcp://host[:port]`
/// (2375, or 2376 with TLS), `ssh://[user@]host[:port]`.
pub fn parse(url: &str, origin: Origin, tls: Option<Tls>) -> Result<Endpoint, String> {
    let bad = |why: &str| {
        format!(
            "the engine endpoint `{url}` from {origin} {why}; expected `unix:///path/to/docker.sock`, `tcp://host:port` or `ssh://user@host[:port]`"
        )
    };
    let (scheme, rest) = url.split_once("://").ok_or_else(|| bad("has no scheme"))?;
    let transport = match scheme {
        "unix" => {
            if rest.is_empty() {
                return Err(bad("names no socket"));
            }
            Transport::Unix(PathBuf::from(rest))
        }
        "tcp" | "http" | "https" => {
            let authority = rest.trim_end_matches('/');
            let default_port = if tls.is_some() || scheme == "https" {
                2376
            } else {
                2375
            };
            let (host, port) = split_host_port(authority).map_err(|why| bad(&why))?;
            if authority.contains('/') || authority.contains('@') {
                return Err(bad("has a path or a user, which tcp endpoints do not take"));
            }
            Transport::Tcp {
                host,
                port: port.unwrap_or(default_port),
                tls,
            }
        }
        "ssh" => {
            let authority = rest.trim_end_matches('/');
            if authority.contains('/') {
                return Err(bad(
                    "has a path; the docker CLI does not accept one on ssh endpoints",
                ));
            }
            let (user, hostport) = match authority.rsplit_once('@') {
                Some((user, hostport)) => (Some(user.to_string()), hostport),
                None => (None, authority),
            };
            let (host, port) = split_host_port(hostport).map_err(|why| bad(&why))?;
            Transport::Ssh { user, host, port }
        }
        "npipe" => return Err(bad("is a Windows named pipe, which exists only on Windows")),
        _ => return Err(bad(&format!("has the unknown scheme `{scheme}`"))),
    };
    Ok(Endpoint {
        url: url.to_string(),
        origin,
        transport,
    })
}

/// `host`, `host:port`, `[v6]`, `[v6]:port`.
fn split_host_port(authority: &str) -> Result<(String, Option<u16>), String> {
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or_else(|| "has an unclosed `[`".to_string())?;
        (host, after.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err("names no host".to_string());
    }
    let port = port
        .map(|p| {
            p.parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| format!("has the bad port `{p}`"))
        })
        .transpose()?;
    Ok((host.to_string(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(dir: &Path) -> Settings {
        Settings {
            config_dir: dir.to_path_buf(),
            ..Default::default()
        }
    }

    /// Write a context as `docker context create NAME --docker host=HOST` does.
    fn write_context(dir: &Path, name: &str, host: &str, with_tls: bool) {
        let id = hex::encode(sha2::Sha256::digest(name.as_bytes()));
        let meta = dir.join("contexts/meta").join(&id);
        std::fs::create_dir_all(&meta).unwrap();
        std::fs::write(
            meta.join("meta.json"),
            format!(
                r#"{{"Name":"{name}","Metadata":{{}},"Endpoints":{{"docker":{{"Host":"{host}","SkipTLSVerify":false}}}}}}"#
            ),
        )
        .unwrap();
        if with_tls {
            let tls = dir.join("contexts/tls").join(&id).join("docker");
            std::fs::create_dir_all(&tls).unwrap();
            for f in ["ca.pem", "cert.pem", "key.pem"] {
                std::fs::write(tls.join(f), "x").unwrap();
            }
        }
    }

    #[test]
    fn parses_the_schemes_the_docker_cli_accepts() {
        let p = |url: &str| parse(url, Origin::DockerHost, None).map(|e| e.transport);
        assert_eq!(
            p("unix:///var/run/docker.sock"),
            Ok(Transport::Unix("/var/run/docker.sock".into()))
        );
        assert_eq!(
            p("tcp://10.0.0.5:2375"),
            Ok(Transport::Tcp {
                host: "10.0.0.5".into(),
                port: 2375,
                tls: None
            })
        );
        assert_eq!(
            p("tcp://engine.example"),
            Ok(Transport::Tcp {
                host: "engine.example".into(),
                port: 2375,
                tls: None
            })
        );
        assert_eq!(
            p("tcp://[::1]:2400"),
            Ok(Transport::Tcp {
                host: "::1".into(),
                port: 2400,
                tls: None
            })
        );
        assert_eq!(
            p("ssh://deploy@build-box:2222"),
            Ok(Transport::Ssh {
                user: Some("deploy".into()),
                host: "build-box".into(),
                port: Some(2222)
            })
        );
        assert_eq!(
            p("ssh://build-box"),
            Ok(Transport::Ssh {
                user: None,
                host: "build-box".into(),
                port: None
            })
        );
    }

    #[test]
    fn tls_moves_the_default_port_to_2376() {
        let tls = tls_files(Path::new("/certs"));
        let e = parse("tcp://engine", Origin::DockerHost, Some(tls.clone())).unwrap();
        assert_eq!(
            e.transport,
            Transport::Tcp {
                host: "engine".into(),
                port: 2376,
                tls: Some(tls)
            }
        );
    }

    #[test]
    fn bad_endpoints_say_where_they_came_from() {
        let origin = Origin::Context {
            name: "lab".into(),
            selected_by: "DOCKER_CONTEXT",
        };
        for (url, says) in [
            ("/var/run/docker.sock", "has no scheme"),
            ("ftp://x", "unknown scheme `ftp`"),
            ("tcp://engine:99999", "bad port `99999`"),
            ("tcp://:2375", "names no host"),
            ("npipe:////./pipe/docker_engine", "Windows"),
            ("ssh://u@h/path", "has a path"),
        ] {
            let err = parse(url, origin.clone(), None).unwrap_err();
            assert!(err.contains(says), "{url}: {err}");
            assert!(
                err.contains("docker context `lab` (DOCKER_CONTEXT)"),
                "{url}: {err}"
            );
        }
    }

    #[test]
    fn docker_host_wins_over_contexts() {
        let dir = tempfile::tempdir().unwrap();
        write_context(dir.path(), "lab", "tcp://10.1.1.1:2375", false);
        let mut s = settings(dir.path());
        s.docker_host = Some("tcp://127.0.0.1:2400".into());
        s.docker_context = Some("lab".into());
        let e = resolve(&s).unwrap();
        assert_eq!(e.origin, Origin::DockerHost);
        assert_eq!(e.url, "tcp://127.0.0.1:2400");
    }

    #[test]
    fn docker_tls_verify_takes_the_cert_path() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = settings(dir.path());
        s.docker_host = Some("tcp://engine:2376".into());
        s.tls_verify = true;
        s.cert_path = Some("/etc/engine-certs".into());
        let Transport::Tcp { tls, .. } = resolve(&s).unwrap().transport else {
            panic!("tcp")
        };
        assert_eq!(tls, Some(tls_files(Path::new("/etc/engine-certs"))));
        // Without DOCKER_CERT_PATH: the config directory, as the docker CLI does.
        s.cert_path = None;
        let Transport::Tcp { tls, .. } = resolve(&s).unwrap().transport else {
            panic!("tcp")
        };
        assert_eq!(tls, Some(tls_files(dir.path())));
    }

    #[test]
    fn docker_tls_without_verify_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = settings(dir.path());
        s.docker_host = Some("tcp://engine:2376".into());
        s.tls_unverified = true;
        let err = resolve(&s).unwrap_err();
        assert!(err.contains("DOCKER_TLS_VERIFY=1"), "{err}");
        s.tls_verify = true;
        assert!(resolve(&s).is_ok());
    }

    #[test]
    fn contexts_by_env_then_by_config() {
        let dir = tempfile::tempdir().unwrap();
        write_context(dir.path(), "lab", "tcp://10.1.1.1:2375", false);
        write_context(dir.path(), "secure", "tcp://10.2.2.2", true);
        std::fs::write(
            dir.path().join("config.json"),
            r#"{"auths":{},"currentContext":"secure"}"#,
        )
        .unwrap();
        let mut s = settings(dir.path());
        let e = resolve(&s).unwrap();
        assert_eq!(e.url, "tcp://10.2.2.2");
        assert_eq!(
            e.origin.to_string(),
            "docker context `secure` (currentContext in config.json)"
        );
        let tls_dir = dir
            .path()
            .join("contexts/tls")
            .join(hex::encode(sha2::Sha256::digest(b"secure")))
            .join("docker");
        assert_eq!(
            e.transport,
            Transport::Tcp {
                host: "10.2.2.2".into(),
                port: 2376,
                tls: Some(tls_files(&tls_dir))
            }
        );
        s.docker_context = Some("lab".into());
        let e = resolve(&s).unwrap();
        assert_eq!(e.url, "tcp://10.1.1.1:2375");
        assert_eq!(
            e.origin.to_string(),
            "docker context `lab` (DOCKER_CONTEXT)"
        );
        s.docker_context = Some("default".into());
        assert_eq!(resolve(&s).unwrap().url, DEFAULT_SOCKET);
    }

    #[test]
    fn no_config_means_the_default_socket() {
        let dir = tempfile::tempdir().unwrap();
        let e = resolve(&settings(dir.path())).unwrap();
        assert_eq!(e.url, DEFAULT_SOCKET);
        assert_eq!(e.origin, Origin::Default);
    }

    #[test]
    fn a_missing_context_says_how_to_list_them() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = settings(dir.path());
        s.docker_context = Some("nope".into());
        let err = resolve(&s).unwrap_err();
        assert!(
            err.contains("docker context `nope` (DOCKER_CONTEXT) does not exist"),
            "{err}"
        );
        assert!(err.contains("docker context ls"), "{err}");
    }

    #[test]
    fn skip_tls_verify_is_refused() {
        let err = context_host(
            r#"{"Endpoints":{"docker":{"Host":"tcp://x:2376","SkipTLSVerify":true}}}"#,
        )
        .unwrap_err();
        assert!(err.contains("SkipTLSVerify"), "{err}");
    }
}
