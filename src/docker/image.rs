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
}

pub const OFFICIAL_IMAGE: &str = "redis:7";

/// Decide the image source: the configured one, else the host's redis, else the official.
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
            ImageSource::Configured(r) | ImageSource::Official(r) => ImageChoice {
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

/// Make sure the engine has the image; returns what containers should run.
pub async fn ensure(
    engine: &Engine,
    source: &ImageSource,
    mut progress: impl FnMut(&str),
) -> anyhow::Result<ImageChoice> {
    match source.clone() {
        ImageSource::Configured(reference) | ImageSource::Official(reference) => {
            if !engine.image_exists(&reference).await? {
                progress(&format!("pulling image `{reference}`"));
                engine
                    .pull_image(&reference, |line| progress(line))
                    .await
                    .with_context(|| {
                        format!(
                            "image `{reference}` is not on this engine and could not be pulled; \
                             install Debian's `redis-server` (rcluster then builds its own image from it) \
                             or set `redis.image` to an image the engine has"
                        )
                    })?;
            }
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
