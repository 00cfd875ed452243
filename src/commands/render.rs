//! `rcluster render`: write every node's config file, or print them.
//!
//! Renders what a fresh `up` would start each node with. The password is masked unless
//! `--show-secrets`; files written with `--out` are private (0600) either way.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;

use super::Global;
use crate::cli::{RenderArgs, RenderFormat};
use crate::docker::image::{self, REDIS_UID};
use crate::error::EXIT_OK;
use crate::render;
use crate::secret::MASK;
use crate::topology::{self, Layout, Loaded, Subnet};

/// One rendered file, as `--json` reports it.
#[derive(Debug, serde::Serialize)]
pub struct FileReport {
    pub node: String,
    /// Where it was written, or (without `--out`) its path relative to an output directory.
    pub path: PathBuf,
    /// Only without `--out`: the file itself goes to stdout inside the JSON.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
}

pub fn run(global: &Global, args: &RenderArgs) -> anyhow::Result<i32> {
    let loaded = topology::load(&global.file, global.name.as_deref())?;
    if !global.quiet {
        eprint!(
            "{}",
            topology::format_diagnostics(&global.file, &loaded.warnings)
        );
    }
    match args.format {
        RenderFormat::Conf => run_conf(global, args, &loaded),
        RenderFormat::K8s => run_k8s(global, args, &loaded),
        RenderFormat::Compose => run_compose(global, args, &loaded),
    }
}

/// One Kubernetes manifest (multi-document YAML), on stdout or in `DIR/<name>.k8s.yaml`.
///
/// The Secret is in it only with `--show-secrets` (and never with
/// `kubernetes.existing_secret`): a manifest without the password must not overwrite the
/// real Secret when applied, nor deploy a placeholder Redis would accept as a password.
fn run_k8s(global: &Global, args: &RenderArgs, loaded: &Loaded) -> anyhow::Result<i32> {
    let topology = &loaded.topology;
    let known = crate::password_store::password(loaded, &topology.cluster.name)?;
    let k8s = &topology.kubernetes;
    if args.show_secrets && k8s.existing_secret.is_none() && known.is_none() {
        return Err(crate::error::CommandError::usage(
            format!(
                "nothing was written: `--show-secrets` would render the Secret `{}-auth`, but there is no password yet; \
                 set one in `[auth]`, run `rcluster up` once to generate one, or name a Secret you manage in `kubernetes.existing_secret`",
                topology.cluster.name
            ),
        )
        .into());
    }
    if !global.quiet {
        match &k8s.existing_secret {
            Some(name) => eprintln!(
                "note: the pods read the password from the key `{}` of your Secret `{name}` in namespace `{}`; rcluster renders no Secret. \
                 Running pods keep the copy they started with: after changing the Secret, change `kubernetes.secret_revision` and apply again",
                k8s.existing_secret_key, k8s.namespace
            ),
            None if !args.show_secrets => eprintln!(
                "note: the Secret `{name}-auth` is left out (render with `--show-secrets` to include it); create it first: \
                 kubectl -n {ns} create secret generic {name}-auth --from-file=password=<file holding the password>",
                name = topology.cluster.name,
                ns = k8s.namespace
            ),
            None => {}
        }
        // `[acl]` users with their own password read it from the same Secret.
        let own: Vec<String> = topology
            .acl
            .iter()
            .flat_map(|acl| acl.users.iter())
            .filter(|u| u.secret.is_some())
            .map(|u| format!("`{}`", crate::acl::secret_key(&u.name)))
            .collect();
        if !own.is_empty() && (k8s.existing_secret.is_some() || !args.show_secrets) {
            eprintln!(
                "note: the `[acl]` users' own passwords are read from the keys {} of the same Secret; add them (`--from-file=acl-NAME=<file>`)",
                own.join(", ")
            );
        }
    }
    let tls_spec = &topology.tls;
    // Made like `up` makes the Docker nodes' ones, in the state directory: one certificate
    // every pod shares (it names every pod and Service).
    let tls = if tls_spec.enabled && args.show_secrets && tls_spec.existing_secret.is_none() {
        {
            // `render` has no plan: what it generates is stored at once.
            let mut host = crate::host_files::HostFiles::default();
            let tls = crate::tls_store::ensure_kubernetes(loaded, &mut host)?;
            host.write_all()?;
            tls
        }
    } else {
        None
    };
    if tls_spec.enabled && !global.quiet {
        match &tls_spec.existing_secret {
            Some(name) => eprintln!(
                "note: the pods read `ca.crt`, `tls.crt` and `tls.key` from your Secret `{name}` in namespace `{}`; rcluster renders no TLS Secret",
                k8s.namespace
            ),
            None if !args.show_secrets => eprintln!(
                "note: the TLS Secret `{name}-tls` is left out (render with `--show-secrets` to include it); create it first: \
                 kubectl -n {ns} create secret generic {name}-tls --from-file=ca.crt=<CA> --from-file=tls.crt=<certificate> --from-file=tls.key=<key>",
                name = topology.cluster.name,
                ns = k8s.namespace
            ),
            None => {}
        }
    }
    let password = render::k8s::Password {
        value: known.as_ref().map(|p| p.expose()),
        include_secret: args.show_secrets,
        tls: tls.as_ref(),
    };
    let yaml = render::k8s::render(topology, password)?;
    let relative = PathBuf::from(format!("{}.k8s.yaml", topology.cluster.name));
    let report = match &args.out {
        Some(out) => {
            let path = out.join(&relative);
            // The Secret is in it.
            write_private(&path, &yaml)?;
            FileReport {
                node: topology.cluster.name.clone(),
                path,
                content: None,
            }
        }
        None if global.json => FileReport {
            node: topology.cluster.name.clone(),
            path: relative,
            content: Some(yaml),
        },
        // Plain YAML, so that `rcluster render --format k8s | kubectl apply -f -` works.
        None => {
            return match write_stdout(&yaml) {
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(EXIT_OK),
                result => result.context("cannot write to stdout").map(|()| EXIT_OK),
            };
        }
    };
    finish(global, &[report])
}

fn write_stdout(text: &str) -> std::io::Result<()> {
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(text.as_bytes())?;
    stdout.flush()
}

fn finish(global: &Global, reports: &[FileReport]) -> anyhow::Result<i32> {
    match print(global, reports) {
        // `rcluster render | head`: the reader has all it wanted.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
        result => result.context("cannot write to stdout")?,
    }
    Ok(EXIT_OK)
}

/// `docker-compose.yml` plus every node's config, as `up` would create the group.
fn run_compose(global: &Global, args: &RenderArgs, loaded: &Loaded) -> anyhow::Result<i32> {
    let topology = &loaded.topology;
    warn_if_deployable_with_mask(global, args, "compose");
    let layout = Layout::new(topology, subnet_to_render(topology));
    let choice = image::choose(topology.redis.image.as_deref())?.choice();
    let image = render::compose::Image {
        reference: choice.reference,
        user: choice.own.then(|| format!("{REDIS_UID}:{REDIS_UID}")),
    };
    let password = password_to_render(loaded, args.show_secrets, global.quiet);
    // The certificates are made like `up` makes them (generated ones for this layout's
    // addresses, kept in the state directory); keys only with `--show-secrets`.
    let tls = if topology.tls.enabled && args.show_secrets {
        {
            let mut host = crate::host_files::HostFiles::default();
            let tls = crate::tls_store::ensure(loaded, &layout, &[], &mut host)?;
            host.write_all()?;
            tls
        }
    } else {
        None
    };
    if topology.tls.enabled && !args.show_secrets && !global.quiet {
        eprintln!(
            "note: `[tls]` is on and the certificate files (`ca.crt`, `tls.crt`, `tls.key` in each node's directory) are left out; \
             render with `--format compose --show-secrets` to include them"
        );
    }
    let files = render::compose::render(topology, &layout, &image, &password?, tls.as_ref())?;
    let mut reports = Vec::with_capacity(files.len());
    for file in files {
        let node = file.node.unwrap_or_else(|| topology.cluster.name.clone());
        let report = match &args.out {
            Some(out) => {
                let path = out.join(&file.path);
                // The node directories are mounted into the containers: redis (uid 999)
                // must be able to write them, which the user arranges (`chown -R 999:999`).
                write_private(&path, &file.content)?;
                FileReport {
                    node,
                    path,
                    content: None,
                }
            }
            None => FileReport {
                node,
                path: PathBuf::from(file.path),
                content: Some(file.content),
            },
        };
        reports.push(report);
    }
    finish(global, &reports)
}

/// The derived subnet is the one `up` tries first; if another network already holds it,
/// `up` moves on to the next free one and the addresses differ from what is shown here.
fn subnet_to_render(topology: &topology::Topology) -> Subnet {
    topology
        .cluster
        .subnet
        .unwrap_or_else(|| Subnet::derived(&topology.cluster.name))
}

/// redis.conf and sentinel.conf per node, as `up` starts them.
fn run_conf(global: &Global, args: &RenderArgs, loaded: &Loaded) -> anyhow::Result<i32> {
    let topology = &loaded.topology;
    let layout = Layout::new(topology, subnet_to_render(topology));
    let password = password_to_render(loaded, args.show_secrets, global.quiet);
    let configs = render::render_all(topology, &layout, &password?)?;

    let mut reports = Vec::with_capacity(configs.len());
    for (node, text) in configs {
        let relative = render::config_path(&node);
        let report = match &args.out {
            Some(out) => {
                let path = out.join(&relative);
                write_private(&path, &text)?;
                FileReport {
                    node: node.name,
                    path,
                    content: None,
                }
            }
            None => FileReport {
                node: node.name,
                path: PathBuf::from(relative),
                content: Some(text),
            },
        };
        reports.push(report);
    }
    finish(global, &reports)
}

/// `render --json`: the files written, or their contents when no `--out` is given.
#[derive(serde::Serialize)]
pub struct RenderJson<'a> {
    pub files: &'a [FileReport],
}

fn print(global: &Global, reports: &[FileReport]) -> std::io::Result<()> {
    let mut stdout = std::io::stdout().lock();
    if global.json {
        // Through a Value, like every command's JSON: keys sorted.
        let json = serde_json::to_value(RenderJson { files: reports })?;
        return writeln!(stdout, "{json:#}");
    }
    for report in reports {
        match &report.content {
            // The files are the output asked for: printed even with --quiet.
            Some(content) => {
                writeln!(stdout, "# ==> {} <==", report.path.display())?;
                write!(stdout, "{content}")?;
                writeln!(stdout)?;
            }
            None if !global.quiet => writeln!(stdout, "{}", report.path.display())?,
            None => {}
        }
    }
    stdout.flush()
}

/// Manifests and compose files are meant to be deployed, and Redis takes `********` as a
/// password like any other: without `--show-secrets` a deployed group would have a
/// password everyone knows.
fn warn_if_deployable_with_mask(global: &Global, args: &RenderArgs, format: &str) {
    if !args.show_secrets && !global.quiet {
        eprintln!(
            "warning: these files hold the placeholder `{MASK}` as the password, which Redis would accept as it is; \
             render with `--format {format} --show-secrets` to deploy them"
        );
    }
}

/// The password as it goes into the rendered files: the real one only with `--show-secrets`
/// (the topology's, else the one `up` generated and stored in the state directory).
fn password_to_render(loaded: &Loaded, show_secrets: bool, quiet: bool) -> anyhow::Result<String> {
    if !show_secrets {
        return Ok(MASK.to_string());
    }
    match crate::password_store::password(loaded, &loaded.topology.cluster.name)? {
        Some(secret) => Ok(secret.expose().to_string()),
        None => {
            if !quiet {
                eprintln!(
                    "note: the topology configures no password and `rcluster up` has not generated one yet, \
                     so the files show `{MASK}`"
                );
            }
            Ok(MASK.to_string())
        }
    }
}

/// Write a config file only its owner can read: it may hold the password.
fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};

    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create directory `{}`", dir.display()))?;
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot write `{}`", path.display()))?;
    // `mode` applies only to a new file: tighten one left by an earlier run too.
    file.set_permissions(std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("cannot make `{}` private", path.display()))?;
    file.write_all(text.as_bytes())
        .with_context(|| format!("cannot write `{}`", path.display()))?;
    Ok(())
}
