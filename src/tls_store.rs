//! The certificates of `[tls]` on the host: the CA and node certificates rcluster
//! generates (or renews) and keeps in the group's state directory next to the generated
//! password, the user's own files read from disk, and the files rcluster's clients use.
//!
//! Side effects: reads and writes files. What to issue and how to check a certificate is
//! the pure `tls`; which names a certificate carries is `render::names`. Must not talk to
//! Docker or Redis.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use rcgen::{Issuer, KeyPair};
use sha2::Digest;
use time::OffsetDateTime;

use crate::host_files::HostFiles;
use crate::password_store::state_dir;
use crate::render::names::{kubernetes_sans, subject_alt_names};
use crate::secret::Secret;
use crate::tls::{
    CertKey, CertKeyWithCa, ClientFiles, ClientTls, GroupTls, generate_ca, issue, still_good,
};
use crate::topology::{Layout, Loaded, Subnet};

/// Where the generated CA and certificates of a group live (0700, files 0600).
pub fn generated_dir(cluster: &str) -> PathBuf {
    state_dir().join(cluster).join("tls")
}

/// A path from the topology, relative to the topology file's directory.
fn topology_path(loaded: &Loaded, path: &Path) -> PathBuf {
    if path.is_absolute() {
        return path.to_path_buf();
    }
    let base = loaded
        .topology
        .source
        .parent()
        .unwrap_or_else(|| Path::new("."));
    let full = base.join(path);
    std::fs::canonicalize(&full).unwrap_or(full)
}

/// The files clients use; `None` with TLS off.
pub fn client_files(loaded: &Loaded) -> Option<ClientFiles> {
    let tls = &loaded.topology.tls;
    if !tls.enabled {
        return None;
    }
    Some(match &tls.files {
        // The user's certificate doubles as the client certificate: it is signed by the
        // CA the nodes trust.
        Some(files) => ClientFiles {
            ca: topology_path(loaded, &files.ca),
            cert: topology_path(loaded, &files.cert),
            key: topology_path(loaded, &files.key),
            client_auth: tls.client_auth,
        },
        None => {
            let dir = generated_dir(&loaded.topology.cluster.name);
            ClientFiles {
                ca: dir.join("ca.crt"),
                cert: dir.join("client.crt"),
                key: dir.join("client.key"),
                client_auth: tls.client_auth,
            }
        }
    })
}

/// What of the TLS material the config hash must see: the user's own files' contents
/// (a renewed certificate must reach the nodes), or nothing (TLS off, or generated
/// certificates, which follow the layout).
pub fn fingerprint(loaded: &Loaded) -> anyhow::Result<String> {
    let tls = &loaded.topology.tls;
    let Some(files) = tls.files.as_ref().filter(|_| tls.enabled) else {
        return Ok(String::new());
    };
    let mut text = String::new();
    for path in [&files.ca, &files.cert, &files.key] {
        let path = topology_path(loaded, path);
        let bytes = std::fs::read(&path)
            .with_context(|| format!("cannot read the TLS file `{}`", path.display()))?;
        text.push_str(&hex::encode(sha2::Sha256::digest(&bytes)));
    }
    Ok(text)
}

/// Read the client files; `None` with TLS off. Generated files that do not exist yet mean
/// the group was never brought up.
pub fn client(loaded: &Loaded) -> anyhow::Result<Option<ClientTls>> {
    let Some(files) = client_files(loaded) else {
        return Ok(None);
    };
    let read = |path: &Path| {
        std::fs::read(path).with_context(|| {
            format!(
                "cannot read the TLS file `{}`; with generated certificates run `rcluster up` first, else fix `[tls]`",
                path.display()
            )
        })
    };
    let ca_pem = read(&files.ca)?;
    let identity = if files.client_auth.presents_certificate() {
        let key = String::from_utf8(read(&files.key)?)
            .with_context(|| format!("`{}` is not PEM text", files.key.display()))?;
        Some((read(&files.cert)?, Secret::new(key)))
    } else {
        None
    };
    Ok(Some(ClientTls { ca_pem, identity }))
}

/// The Kubernetes pods' certificate (generated into the state directory like the nodes'
/// ones, or the user's own files); `None` with TLS off.
pub fn ensure_kubernetes(
    loaded: &Loaded,
    host: &mut HostFiles,
) -> anyhow::Result<Option<CertKeyWithCa>> {
    let topology = &loaded.topology;
    if !topology.tls.enabled {
        return Ok(None);
    }
    let layout = Layout::new(topology, Subnet::derived(&topology.cluster.name));
    let Some(group) = ensure_user_files(loaded, &layout)? else {
        let mut store = Store::open(&topology.cluster.name);
        let (ca_pem, ca_key) = store.ca(&topology.cluster.name)?;
        let issuer = Issuer::from_ca_cert_pem(&ca_pem, ca_key)
            .context("cannot read the generated CA certificate")?;
        let pair = store.leaf(
            "kubernetes",
            &format!("{} pods", topology.cluster.name),
            &kubernetes_sans(topology),
            &issuer,
            OffsetDateTime::now_utc(),
        )?;
        store.into_host(host);
        return Ok(Some(CertKeyWithCa { ca_pem, pair }));
    };
    let pair = group.node(&layout.master().key)?.clone();
    Ok(Some(CertKeyWithCa {
        ca_pem: group.ca_pem,
        pair,
    }))
}

/// The certificates the containers get, generating (or renewing) what is missing in memory
/// and putting the files to store in `host` (the plan writes them); `None` with TLS off. `extra` goes into every node's subject alternative names.
pub fn ensure(
    loaded: &Loaded,
    layout: &Layout,
    extra: &[String],
    host: &mut HostFiles,
) -> anyhow::Result<Option<GroupTls>> {
    let topology = &loaded.topology;
    if !topology.tls.enabled {
        return Ok(None);
    }
    if let Some(group) = ensure_user_files(loaded, layout)? {
        return Ok(Some(group));
    }
    let mut store = Store::open(&topology.cluster.name);
    let (ca_pem, ca_key) = store.ca(&topology.cluster.name)?;
    let issuer = Issuer::from_ca_cert_pem(&ca_pem, ca_key)
        .context("cannot read the generated CA certificate")?;
    let now = OffsetDateTime::now_utc();
    let mut nodes = BTreeMap::new();
    for node in &layout.nodes {
        let sans = subject_alt_names(topology, layout, node, extra);
        let pair = store.leaf(&node.key, &node.name, &sans, &issuer, now)?;
        nodes.insert(node.key.clone(), pair);
    }
    let client = store.leaf(
        "client",
        &format!("{} client", topology.cluster.name),
        &[],
        &issuer,
        now,
    )?;
    store.into_host(host);
    Ok(Some(GroupTls {
        ca_pem,
        nodes,
        client,
    }))
}

/// The user's own CA, certificate and key for every node; `None` when rcluster generates.
fn ensure_user_files(loaded: &Loaded, layout: &Layout) -> anyhow::Result<Option<GroupTls>> {
    let Some(files) = &loaded.topology.tls.files else {
        return Ok(None);
    };
    let read = |path: &Path| {
        let path = topology_path(loaded, path);
        std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read the TLS file `{}`", path.display()))
    };
    let ca_pem = read(&files.ca)?;
    let mine = CertKey {
        cert_pem: read(&files.cert)?,
        key_pem: Secret::new(read(&files.key)?),
    };
    let nodes = layout
        .nodes
        .iter()
        .map(|n| (n.key.clone(), mine.clone()))
        .collect();
    // The user's certificate doubles as the client certificate (see `client_files`).
    Ok(Some(GroupTls {
        ca_pem,
        nodes,
        client: mine,
    }))
}

/// The generated files of one group: read from disk, written only through the plan
/// (`pending`, in order: a key before its certificate).
struct Store {
    dir: PathBuf,
    pending: Vec<(PathBuf, Secret)>,
}

impl Store {
    fn open(cluster: &str) -> Store {
        Store {
            dir: generated_dir(cluster),
            pending: Vec::new(),
        }
    }

    /// What is to be written, as one plan step in `host`.
    fn into_host(self, host: &mut HostFiles) {
        if !self.pending.is_empty() {
            host.add("the generated CA and certificates", self.pending, false);
        }
    }

    fn read(&self, name: &str) -> anyhow::Result<Option<String>> {
        let path = self.dir.join(name);
        match std::fs::read_to_string(&path) {
            Ok(text) => Ok(Some(text)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("cannot read `{}`", path.display())),
        }
    }

    fn write(&mut self, name: &str, text: &str) {
        self.pending
            .push((self.dir.join(name), Secret::new(text.to_string())));
    }

    /// The group's CA, generated once: every certificate issued later chains to it, so
    /// clients keep trusting the same `ca.crt` across `up`s.
    fn ca(&mut self, cluster: &str) -> anyhow::Result<(String, KeyPair)> {
        if let (Some(cert), Some(key)) = (self.read("ca.crt")?, self.read("ca.key")?) {
            let key = KeyPair::from_pem(&key).context("cannot read the generated CA key")?;
            return Ok((cert, key));
        }
        let (cert, key) = generate_ca(cluster, OffsetDateTime::now_utc())?;
        // The key first: a CA certificate without its key would be useless on the next run.
        self.write("ca.key", &key.serialize_pem());
        self.write("ca.crt", &cert);
        Ok((cert, key))
    }

    /// `<name>.crt`/`.key`: kept while it chains to the CA, names exactly `sans` and has
    /// 30 days left; issued again otherwise (a grown group, a new subnet, an old cert).
    fn leaf(
        &mut self,
        name: &str,
        common_name: &str,
        sans: &[String],
        issuer: &Issuer<'_, KeyPair>,
        now: OffsetDateTime,
    ) -> anyhow::Result<CertKey> {
        let (cert_file, key_file) = (format!("{name}.crt"), format!("{name}.key"));
        if let (Some(cert), Some(key)) = (self.read(&cert_file)?, self.read(&key_file)?)
            && still_good(&cert, sans, now)
        {
            return Ok(CertKey {
                cert_pem: cert,
                key_pem: Secret::new(key),
            });
        }
        let issued = issue(common_name, sans, issuer, now)?;
        self.write(&key_file, issued.key_pem.expose());
        self.write(&cert_file, &issued.cert_pem);
        Ok(issued)
    }
}
