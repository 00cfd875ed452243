//! Image provisioning: which image the group runs, and making sure the engine has it.
//!
//! No registry is reachable on many CI machines, so rcluster's default image is built
//! locally from the host's own `redis-server` and `redis-cli` and the shared libraries they
//! link: a `FROM scratch` image of about 18 MB that runs both redis and sentinel as a
//! non-root user.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

use super::Engine;
use super::platform::{Flavor, HostFacts, Platform};

/// The uid/gid the redis processes run as in rcluster's image (the official image's too).
pub const REDIS_UID: u64 = 999;

/// The image a group runs and how its processes are started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageChoice {
    pub reference: String,
    /// rcluster's own image: runs as `REDIS_UID` by its `USER` line. The official image
    /// starts as root and drops to `redis` in its entrypoint, so we must not set a user.
    pub own: bool,
}

/// Where `up` gets its image, decided without side effects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageSource {
    /// The topology names one: use it if present, else pull it.
    Configured(String),
    /// rcluster's image, built from these host binaries when missing.
    HostBinaries {
        tag: String,
        server: PathBuf,
        cli: PathBuf,
    },
    /// No image configured and no redis-server on the host: the official image.
    Official(String),
    /// No image configured and the engine cannot run this machine's binaries (the reason):
    /// the official image, which must come from a registry or `docker load`.
    OfficialForEngine { reference: String, because: String },
}

pub const OFFICIAL_IMAGE: &str = "redis:7";

/// What the engine should run, decided from the facts alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Configured(String),
    /// Build rcluster's image from this machine's redis (or the official one if it has none).
    HostBinaries,
    /// The official image: this machine's binaries cannot run there, because ...
    Official {
        because: String,
    },
}

/// Which image for this engine: `redis.image` when set; else rcluster's own image from this
/// machine's binaries when they can run in the engine's containers; else the official image.
pub fn decide(configured: Option<&str>, platform: &Platform, host: &HostFacts) -> Decision {
    if let Some(image) = configured {
        return Decision::Configured(image.to_string());
    }
    if platform.runs_host_binaries(host) {
        return Decision::HostBinaries;
    }
    let because = if let Some(remote) = &platform.remote_host {
        format!("the engine runs on `{remote}`, not on this machine")
    } else if platform.flavor == Flavor::DockerDesktop {
        "Docker Desktop runs containers in its own virtual machine".to_string()
    } else {
        format!(
            "the engine runs {}/{} containers and this machine is {}/{}",
            platform.os, platform.arch, host.os, host.arch
        )
    };
    Decision::Official { because }
}

/// The image source for the engine `platform` describes (see [`decide`]).
pub fn choose_for(configured: Option<&str>, platform: &Platform) -> anyhow::Result<ImageSource> {
    match decide(configured, platform, &HostFacts::this_machine()) {
        Decision::Configured(image) => Ok(ImageSource::Configured(image)),
        Decision::HostBinaries => choose(None),
        Decision::Official { because } => Ok(ImageSource::OfficialForEngine {
            reference: OFFICIAL_IMAGE.to_string(),
            because,
        }),
    }
}

/// Decide the image source for an engine on this machine: the configured one, else the
/// host's redis, else the official.
pub fn choose(configured: Option<&str>) -> anyhow::Result<ImageSource> {
    if let Some(image) = configured {
        return Ok(ImageSource::Configured(image.to_string()));
    }
    match host_redis()? {
        Some((server, cli, version)) => Ok(ImageSource::HostBinaries {
            tag: format!("rcluster/redis:{version}"),
            server,
            cli,
        }),
        None => Ok(ImageSource::Official(OFFICIAL_IMAGE.to_string())),
    }
}

impl ImageSource {
    /// What containers will run, known before the image exists (for plans and hashes).
    pub fn choice(&self) -> ImageChoice {
        match self {
            ImageSource::Configured(r)
            | ImageSource::Official(r)
            | ImageSource::OfficialForEngine { reference: r, .. } => ImageChoice {
                reference: r.clone(),
                own: false,
            },
            ImageSource::HostBinaries { tag, .. } => ImageChoice {
                reference: tag.clone(),
                own: true,
            },
        }
    }
}

/// Pull `reference` unless the engine has it, announcing the pull with `note`; a failed
/// pull says `advice` (what to do instead), since the two callers differ only in that.
async fn pull_if_missing(
    engine: &Engine,
    reference: &str,
    note: &str,
    advice: impl FnOnce() -> String,
    progress: &mut impl FnMut(&str),
) -> anyhow::Result<()> {
    if !engine.image_exists(reference).await? {
        progress(note);
        engine
            .pull_image(reference, |line| progress(line))
            .await
            .with_context(advice)?;
    }
    Ok(())
}

/// Make sure the engine has the image; returns what containers should run.
pub async fn ensure(
    engine: &Engine,
    source: &ImageSource,
    mut progress: impl FnMut(&str),
) -> anyhow::Result<ImageChoice> {
    match source.clone() {
        ImageSource::OfficialForEngine { reference, because } => {
            let url = engine.endpoint().url.clone();
            pull_if_missing(
                engine,
                &reference,
                &format!(
                    "pulling image `{reference}` ({because}, so rcluster does not build its image from this machine's redis-server)"
                ),
                || {
                    format!(
                        "image `{reference}` is not on the engine at `{url}` and could not be pulled; \
                         rcluster does not build its own image there because {because}. \
                         Put an image with `redis-server` and `redis-sentinel` on that engine \
                         (`docker save redis:7 | docker -H {url} load`, or `docker load -i redis.tar` on that machine) \
                         and set `redis.image` to it"
                    )
                },
                &mut progress,
            )
            .await?;
            Ok(ImageChoice {
                own: false,
                reference,
            })
        }
        ImageSource::Configured(reference) | ImageSource::Official(reference) => {
            let url = engine.endpoint().url.clone();
            pull_if_missing(
                engine,
                &reference,
                &format!("pulling image `{reference}`"),
                || {
                    format!(
                        "image `{reference}` is not on the engine at `{url}` and could not be pulled; \
                         put it there (`docker load -i image.tar`) or set `redis.image` to an image the engine has; \
                         on an engine on this machine, installing Debian's `redis-server` without `redis.image` \
                         lets rcluster build its own image from it"
                    )
                },
                &mut progress,
            )
            .await?;
            Ok(ImageChoice {
                own: false,
                reference,
            })
        }
        ImageSource::HostBinaries { tag, server, cli } => {
            if !engine.image_exists(&tag).await? {
                progress(&format!("building image `{tag}` from {}", server.display()));
                let context = build_context(&server, &cli)?;
                engine.build_image(&tag, context).await?;
            }
            Ok(ImageChoice {
                own: true,
                reference: tag,
            })
        }
    }
}

/// The host's redis-server and redis-cli and the server's version, if installed.
fn host_redis() -> anyhow::Result<Option<(PathBuf, PathBuf, String)>> {
    let (Some(server), Some(cli)) = (which("redis-server"), which("redis-cli")) else {
        return Ok(None);
    };
    let out = Command::new(&server)
        .arg("--version")
        .output()
        .with_context(|| format!("cannot run `{} --version`", server.display()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let version = parse_version(&text)
        .with_context(|| format!("cannot read the version from `{}`", text.trim()))?;
    Ok(Some((server, cli, version)))
}

fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}

/// `Redis server v=7.0.15 sha=...` -> `7.0.15`.
pub fn parse_version(text: &str) -> Option<String> {
    let v = text.split_whitespace().find_map(|w| w.strip_prefix("v="))?;
    let ok = !v.is_empty() && v.chars().all(|c| c.is_ascii_digit() || c == '.');
    ok.then(|| v.to_string())
}

/// Absolute paths of the shared objects `ldd` lists (including the dynamic loader).
pub fn parse_ldd(text: &str) -> Vec<PathBuf> {
    text.lines()
        .filter_map(|line| {
            let line = line.trim();
            let path = match line.split_once("=>") {
                Some((_, rest)) => rest.split_whitespace().next()?,
                None => line.split_whitespace().next()?,
            };
            path.starts_with('/').then(|| PathBuf::from(path))
        })
        .collect()
}

fn libraries(binary: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let out = Command::new("ldd").arg(binary).output().with_context(|| {
        format!(
            "cannot run `ldd {}` to find its libraries",
            binary.display()
        )
    })?;
    if !out.status.success() {
        bail!(
            "`ldd {}` failed: {}",
            binary.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(parse_ldd(&String::from_utf8_lossy(&out.stdout)))
}

const DOCKERFILE: &str = "\
FROM scratch
COPY rootfs/ /
COPY --chown=999:999 data/ /data/
COPY --chown=999:999 config/ /etc/redis/
COPY --chown=999:999 tmp/ /tmp/
LABEL io.rcluster.image=\"host-binaries\"
USER 999:999
WORKDIR /data
CMD [\"redis-server\", \"/etc/redis/redis.conf\"]
";

/// The build context, in memory: the two binaries (stored under their own names even when
/// the host's are symlinks, since redis picks its mode from argv[0]), their libraries,
/// a passwd with the `redis` user, and the directories the redis user writes.
fn build_context(server: &Path, cli: &Path) -> anyhow::Result<Vec<u8>> {
    let mut libs = libraries(server)?;
    libs.extend(libraries(cli)?);
    libs.sort();
    libs.dedup();

    let mut tar = tar::Builder::new(Vec::new());
    add_bytes(&mut tar, "Dockerfile", DOCKERFILE.as_bytes(), 0o644)?;
    add_bytes(
        &mut tar,
        "rootfs/etc/passwd",
        b"root:x:0:0:root:/root:/sbin/nologin\nredis:x:999:999:redis:/data:/sbin/nologin\n",
        0o644,
    )?;
    add_bytes(
        &mut tar,
        "rootfs/etc/group",
        b"root:x:0:\nredis:x:999:\n",
        0o644,
    )?;
    for (name, path) in [("redis-server", server), ("redis-cli", cli)] {
        let bytes =
            std::fs::read(path).with_context(|| format!("cannot read `{}`", path.display()))?;
        add_bytes(&mut tar, &format!("rootfs/usr/bin/{name}"), &bytes, 0o755)?;
    }
    for lib in libs {
        let bytes =
            std::fs::read(&lib).with_context(|| format!("cannot read `{}`", lib.display()))?;
        let inside = lib.to_string_lossy();
        add_bytes(&mut tar, &format!("rootfs{inside}"), &bytes, 0o755)?;
    }
    for dir in ["data/", "config/", "tmp/"] {
        add_dir(&mut tar, dir, 0o700)?;
    }
    tar.into_inner()
        .context("cannot finish the image build context")
}

pub fn add_bytes(
    tar: &mut tar::Builder<Vec<u8>>,
    path: &str,
    bytes: &[u8],
    mode: u32,
) -> anyhow::Result<()> {
    add_owned(tar, path, bytes, mode, 0)
}

/// Add a file owned by `uid` (gid = uid).
pub fn add_owned(
    tar: &mut tar::Builder<Vec<u8>>,
    path: &str,
    bytes: &[u8],
    mode: u32,
    uid: u64,
) -> anyhow::Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_size(bytes.len() as u64);
    header.set_mode(mode);
    header.set_uid(uid);
    header.set_gid(uid);
    header.set_mtime(0);
    header.set_entry_type(tar::EntryType::Regular);
    tar.append_data(&mut header, path, bytes)
        .with_context(|| format!("cannot add `{path}` to a tar archive"))
}

fn add_dir(tar: &mut tar::Builder<Vec<u8>>, path: &str, mode: u32) -> anyhow::Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_size(0);
    header.set_mode(mode);
    header.set_mtime(0);
    header.set_entry_type(tar::EntryType::Directory);
    tar.append_data(&mut header, path, std::io::empty())
        .with_context(|| format!("cannot add `{path}` to a tar archive"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::docker::endpoint::{Origin, parse};
    use crate::docker::platform::{EngineFacts, classify};

    fn engine(url: &str, operating_system: &str, arch: &str) -> Platform {
        let facts = EngineFacts {
            operating_system: operating_system.into(),
            os_type: "linux".into(),
            architecture: arch.into(),
            server_version: "28.2.2".into(),
            ..Default::default()
        };
        classify(&facts, &parse(url, Origin::DockerHost, None).unwrap())
    }

    fn x86_linux() -> HostFacts {
        HostFacts {
            os: "linux".into(),
            arch: "x86_64".into(),
        }
    }

    #[test]
    fn host_binaries_only_where_they_run() {
        let local = engine(
            "unix:///var/run/docker.sock",
            "Debian GNU/Linux 12",
            "x86_64",
        );
        assert_eq!(decide(None, &local, &x86_linux()), Decision::HostBinaries);
        // A loopback tcp endpoint is this machine too.
        let loopback = engine("tcp://127.0.0.1:2400", "Debian GNU/Linux 12", "x86_64");
        assert_eq!(
            decide(None, &loopback, &x86_linux()),
            Decision::HostBinaries
        );
    }

    #[test]
    fn the_official_image_where_host_binaries_cannot_run() {
        let cases = [
            (
                engine("ssh://deploy@10.0.0.5", "Ubuntu 24.04", "x86_64"),
                x86_linux(),
                "the engine runs on `10.0.0.5`, not on this machine",
            ),
            (
                engine(
                    "unix:///Users/me/.docker/run/docker.sock",
                    "Docker Desktop",
                    "aarch64",
                ),
                HostFacts {
                    os: "macos".into(),
                    arch: "aarch64".into(),
                },
                "Docker Desktop runs containers in its own virtual machine",
            ),
            (
                engine(
                    "unix:///var/run/docker.sock",
                    "Debian GNU/Linux 12",
                    "aarch64",
                ),
                x86_linux(),
                "the engine runs linux/aarch64 containers and this machine is linux/x86_64",
            ),
        ];
        for (platform, host, because) in cases {
            assert_eq!(
                decide(None, &platform, &host),
                Decision::Official {
                    because: because.to_string()
                },
                "{}",
                platform.describe()
            );
            // `redis.image` always wins.
            assert_eq!(
                decide(Some("registry.lan/redis:7.2"), &platform, &host),
                Decision::Configured("registry.lan/redis:7.2".to_string())
            );
        }
    }

    #[test]
    fn reads_redis_version() {
        let v = "Redis server v=7.0.15 sha=00000000:0 malloc=jemalloc-5.3.0 bits=64 build=ae4d7c971a948f0";
        assert_eq!(parse_version(v).as_deref(), Some("7.0.15"));
        assert_eq!(parse_version("garbage"), None);
    }

    #[test]
    fn reads_ldd_output() {
        let text = "\tlinux-vdso.so.1 (0x00007f2f9b640000)\n\
                    \tlibm.so.6 => /lib/x86_64-linux-gnu/libm.so.6 (0x00007f2f9b53f000)\n\
                    \t/lib64/ld-linux-x86-64.so.2 (0x00007f2f9b642000)\n";
        assert_eq!(
            parse_ldd(text),
            vec![
                PathBuf::from("/lib/x86_64-linux-gnu/libm.so.6"),
                PathBuf::from("/lib64/ld-linux-x86-64.so.2")
            ]
        );
    }
}
