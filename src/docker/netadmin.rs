//! Network faults from inside a node's network namespace, without privileges for the node.
//!
//! A short-lived helper container joins the target container's network namespace
//! (`network_mode: container:<name>`) with the one capability `NET_ADMIN`, runs a shell
//! script of `iptables` / `tc` commands there, and is removed. The Redis containers stay
//! unprivileged; the rules live in the target's namespace until a second script removes them
//! (or the container is recreated).
//!
//! The helper image is built like the Redis image: `FROM scratch` with the host's own
//! `xtables-nft-multi` (as `iptables`), `tc`, `sh` and `sleep`, the libraries `ldd` lists,
//! and the xtables extensions; tagged by the hash of its content. Every helper carries the
//! group's project label and [`HELPER`], so `down` removes one left behind by a crash.
//!
//! Owns: the image, the helper's life, running a script. Must not decide which rules.

use std::path::Path;

use anyhow::Context;
use bollard::models::{ContainerCreateBody, HostConfig};
use sha2::Digest;

use super::Engine;
use super::image::{add_bytes, parse_ldd};
use super::platform::{HostFacts, Platform};
use crate::docker::observe::labels_for;

/// Label on helper containers (value: the node whose namespace they join).
pub const HELPER: &str = "io.rcluster.netadmin";

const BINARIES: &[(&str, &str)] = &[
    ("/usr/sbin/xtables-nft-multi", "usr/sbin/iptables"),
    ("/usr/sbin/tc", "usr/sbin/tc"),
    ("/bin/sh", "bin/sh"),
    ("/bin/sleep", "bin/sleep"),
];
const XTABLES_DIR: &str = "/usr/lib/x86_64-linux-gnu/xtables";

const DOCKERFILE: &str = "\
FROM scratch
COPY rootfs/ /
LABEL io.rcluster.image=\"netadmin\"
CMD [\"/bin/sleep\", \"3600\"]
";

/// The helper image's build context (deterministic, so its hash names its content).
fn build_context() -> anyhow::Result<Vec<u8>> {
    let mut libs = Vec::new();
    for (host, _) in BINARIES {
        let out = std::process::Command::new("ldd")
            .arg(host)
            .output()
            .with_context(|| format!("cannot run `ldd {host}`"))?;
        libs.extend(parse_ldd(&String::from_utf8_lossy(&out.stdout)));
    }
    libs.sort();
    libs.dedup();
    let mut tar = tar::Builder::new(Vec::new());
    add_bytes(&mut tar, "Dockerfile", DOCKERFILE.as_bytes(), 0o644)?;
    for (host, inside) in BINARIES {
        let bytes = std::fs::read(host).with_context(|| {
            format!("cannot read `{host}`: install `iptables` and `iproute2` on the host for the network faults")
        })?;
        add_bytes(&mut tar, &format!("rootfs/{inside}"), &bytes, 0o755)?;
    }
    for lib in libs {
        let bytes =
            std::fs::read(&lib).with_context(|| format!("cannot read `{}`", lib.display()))?;
        add_bytes(
            &mut tar,
            &format!("rootfs{}", lib.to_string_lossy()),
            &bytes,
            0o755,
        )?;
    }
    let mut modules: Vec<_> = std::fs::read_dir(XTABLES_DIR)
        .with_context(|| format!("cannot list `{XTABLES_DIR}` (iptables' extensions)"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "so"))
        .collect();
    modules.sort();
    for module in modules {
        let bytes = std::fs::read(&module)
            .with_context(|| format!("cannot read `{}`", module.display()))?;
        add_bytes(
            &mut tar,
            &format!("rootfs{}", module.to_string_lossy()),
            &bytes,
            0o644,
        )?;
    }
    // iptables resolves `-p tcp` through /etc/protocols and takes its lock under /run.
    let protocols = std::fs::read(Path::new("/etc/protocols")).unwrap_or_default();
    add_bytes(&mut tar, "rootfs/etc/protocols", &protocols, 0o644)?;
    add_bytes(&mut tar, "rootfs/run/.keep", b"", 0o644)?;
    tar.into_inner()
        .context("cannot finish the helper image context")
}

/// Why the helper cannot run on this engine, if it cannot: it is built from this machine's
/// binaries, which run only in an engine's containers on this machine with the same CPU.
pub fn cannot_run_on(platform: &Platform) -> Option<String> {
    (!platform.runs_host_binaries(&HostFacts::this_machine())).then(|| {
        format!(
            "`--fault isolate` and `--fault delay` need a helper built from this machine's `iptables` and `tc`, \
             which cannot run on the engine at `{}` ({}); use `--fault kill`, `stop` or `pause` there",
            platform.endpoint,
            platform.describe()
        )
    })
}

/// Make sure the helper image exists; returns its tag.
pub async fn ensure_image(engine: &Engine) -> anyhow::Result<String> {
    let context = build_context()?;
    let hash = hex::encode(sha2::Sha256::digest(&context));
    let tag = format!("rcluster/netadmin:{}", &hash[..16]);
    if !engine.image_exists(&tag).await? {
        engine.build_image(&tag, context).await?;
    }
    Ok(tag)
}

/// What a script printed and how it ended.
#[derive(Debug, Clone)]
pub struct ScriptOutput {
    pub exit_code: i64,
    pub output: String,
}

/// Run `script` with `sh -c` in `target`'s network namespace, from a fresh helper that is
/// removed afterwards whatever happened.
pub async fn run_script(
    engine: &Engine,
    cluster: &str,
    target: &str,
    script: &str,
) -> anyhow::Result<ScriptOutput> {
    let image = ensure_image(engine).await?;
    let name = format!("{target}-netadmin");
    // One left by an interrupted run would hold the name.
    engine.remove_container(&name).await?;
    let body = ContainerCreateBody {
        image: Some(image),
        labels: Some(labels_for(cluster, &[(HELPER, target.to_string())])),
        host_config: Some(HostConfig {
            network_mode: Some(format!("container:{target}")),
            cap_drop: Some(vec!["ALL".into()]),
            cap_add: Some(vec!["NET_ADMIN".into()]),
            security_opt: Some(vec!["no-new-privileges:true".into()]),
            ..Default::default()
        }),
        ..Default::default()
    };
    engine.create_container(&name, body).await?;
    let result = async {
        engine.start_container(&name).await?;
        let mut output = Vec::new();
        let exit_code = engine
            .exec(
                &name,
                vec!["/bin/sh".into(), "-c".into(), script.to_string()],
                vec![],
                |chunk| output.extend_from_slice(chunk),
            )
            .await?;
        anyhow::Ok(ScriptOutput {
            exit_code,
            output: String::from_utf8_lossy(&output).into_owned(),
        })
    }
    .await;
    let removed = engine.remove_container(&name).await;
    let out = result?;
    removed?;
    Ok(out)
}

/// Remove every helper of the group (for `down`, and after a crash).
pub async fn remove_helpers(engine: &Engine, cluster: &str) -> anyhow::Result<()> {
    let filter = vec![crate::labels::project_filter(cluster), HELPER.to_string()];
    for c in engine.list_containers(&filter).await? {
        if let Some(id) = c.id {
            engine.remove_container(&id).await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::docker::endpoint::{Origin, parse};
    use crate::docker::platform::{EngineFacts, classify};

    #[test]
    fn the_helper_runs_only_where_host_binaries_do() {
        assert_eq!(cannot_run_on(&Platform::local_rootful()), None);
        let facts = EngineFacts {
            os_type: "linux".into(),
            architecture: std::env::consts::ARCH.into(),
            ..Default::default()
        };
        let remote = classify(
            &facts,
            &parse("ssh://deploy@10.0.0.5", Origin::DockerHost, None).unwrap(),
        );
        let why = cannot_run_on(&remote).expect("refused on a remote engine");
        assert!(why.contains("ssh://deploy@10.0.0.5"), "{why}");
        assert!(why.contains("`--fault kill`"), "{why}");
    }
}
