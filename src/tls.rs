//! `[tls]`'s certificates: which names each node's certificate must carry (pure), the CA
//! and node certificates rcluster generates (rcgen) and keeps in the group's state
//! directory next to the generated password, the files a user brings, and checking that a
//! CA, certificate and key belong together (x509-parser, rustls; pure over PEM text).
//!
//! Must not talk to Docker or Redis: `up` puts the files into the containers, `probe`
//! connects with them.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use sha2::Digest;
use time::{Duration, OffsetDateTime};
use x509_parser::extensions::GeneralName;

use crate::secret::Secret;
use crate::topology::{ClientAuth, Layout, Loaded, Node, Topology};

/// Warn when a certificate expires within this many days.
pub const EXPIRY_WARNING_DAYS: i64 = 30;
/// How long generated node and client certificates are valid (the most browsers accept;
/// Redis itself does not care). `up` issues a new one when fewer than 30 days remain.
const LEAF_DAYS: i64 = 825;
/// How long the generated CA is valid.
const CA_DAYS: i64 = 3650;

/// In the container, next to the config file (same private directory).
pub const CA_FILE: &str = "ca.crt";
pub const CERT_FILE: &str = "tls.crt";
pub const KEY_FILE: &str = "tls.key";

/// Every name and address a client or another node may reach `node` by, each once, in a
/// fixed order: the container address and names, loopback, the host address ports are
/// published on, the Kubernetes pod and Service names, then `extra` (addresses the group
/// announces to clients beyond those, e.g. a published `host:port`'s host).
pub fn subject_alt_names(
    topology: &Topology,
    layout: &Layout,
    node: &Node,
    extra: &[String],
) -> Vec<String> {
    let mut names = vec![
        node.ip.to_string(),
        node.name.clone(),
        node.key.clone(),
        // The container's name on the group network, as a fully qualified alias some
        // resolvers hand out.
        format!("{}.{}", node.name, layout.network()),
        "localhost".to_string(),
        "127.0.0.1".to_string(),
    ];
    let bind = topology.cluster.bind;
    if !bind.is_unspecified() {
        names.push(bind.to_string());
    }
    names.extend(crate::render::k8s::dns_names(topology, node));
    // `cluster.announce`: clients (and the nodes themselves) connect to the announced host
    // at the published ports, and verify the certificate for that name.
    names.extend(layout.announce.iter().cloned());
    names.extend(extra.iter().cloned());
    let mut seen = std::collections::BTreeSet::new();
    names.retain(|n| seen.insert(n.clone()));
    names
}

/// A certificate and its private key, PEM.
#[derive(Clone)]
pub struct CertKey {
    pub cert_pem: String,
    pub key_pem: Secret,
}

/// One certificate and key with the CA that signed it: what the Kubernetes pods share.
#[derive(Clone)]
pub struct CertKeyWithCa {
    pub ca_pem: String,
    pub pair: CertKey,
}

/// What the containers get: the CA, and each node's certificate (by node key).
#[derive(Clone)]
pub struct GroupTls {
    pub ca_pem: String,
    pub nodes: BTreeMap<String, CertKey>,
}

impl GroupTls {
    pub fn node(&self, key: &str) -> anyhow::Result<&CertKey> {
        self.nodes
            .get(key)
            .with_context(|| format!("no TLS certificate for node `{key}`"))
    }
}

/// The files rcluster's own clients (and `rcluster env`, `cli`) use: the CA, and the
/// client certificate and key (presented when `tls.client_auth` asks for one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientFiles {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    pub client_auth: ClientAuth,
}

/// The same, read: what `probe` builds its TLS connections from.
#[derive(Clone)]
pub struct ClientTls {
    pub ca_pem: Vec<u8>,
    /// Certificate and key PEM; `None` when the group asks clients for no certificate.
    pub identity: Option<(Vec<u8>, Secret)>,
}

impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientTls")
            .field("identity", &self.identity.as_ref().map(|_| "<certificate>"))
            .finish_non_exhaustive()
    }
}

/// Where the generated CA and certificates of a group live (0700, files 0600).
pub fn generated_dir(cluster: &str) -> PathBuf {
    crate::password_store::state_dir().join(cluster).join("tls")
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

/// The names a client reaches any pod of the Kubernetes rendering by (one certificate is
/// shared by every pod, through one Secret): every pod's and Service's DNS names, and
/// loopback for the pods' own probes. Pods by wildcard, so that neither a count in the
/// topology nor `kubectl scale` changes the certificate (a changed one rolls every pod).
pub fn kubernetes_sans(topology: &Topology) -> Vec<String> {
    let mut names = vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ];
    names.extend(crate::render::k8s::pod_names_any_count(topology));
    let mut seen = std::collections::BTreeSet::new();
    names.retain(|n| seen.insert(n.clone()));
    names
}

/// The Kubernetes pods' certificate (generated into the state directory like the nodes'
/// ones, or the user's own files); `None` with TLS off.
pub fn ensure_kubernetes(loaded: &Loaded) -> anyhow::Result<Option<CertKeyWithCa>> {
    let topology = &loaded.topology;
    if !topology.tls.enabled {
        return Ok(None);
    }
    let layout = Layout::new(
        topology,
        crate::topology::Subnet::derived(&topology.cluster.name),
    );
    let Some(group) = ensure_user_files(loaded, &layout)? else {
        let store = Store::open(&topology.cluster.name)?;
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
        return Ok(Some(CertKeyWithCa { ca_pem, pair }));
    };
    let pair = group.node(&layout.master().key)?.clone();
    Ok(Some(CertKeyWithCa {
        ca_pem: group.ca_pem,
        pair,
    }))
}

/// The certificates the containers get, generating (or renewing) what is missing; `None`
/// with TLS off. `extra` goes into every node's subject alternative names.
pub fn ensure(
    loaded: &Loaded,
    layout: &Layout,
    extra: &[String],
) -> anyhow::Result<Option<GroupTls>> {
    let topology = &loaded.topology;
    if !topology.tls.enabled {
        return Ok(None);
    }
    if let Some(group) = ensure_user_files(loaded, layout)? {
        return Ok(Some(group));
    }
    let store = Store::open(&topology.cluster.name)?;
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
    store.leaf(
        "client",
        &format!("{} client", topology.cluster.name),
        &[],
        &issuer,
        now,
    )?;
    Ok(Some(GroupTls { ca_pem, nodes }))
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
    Ok(Some(GroupTls { ca_pem, nodes }))
}

/// The generated files of one group.
struct Store {
    dir: PathBuf,
}

impl Store {
    fn open(cluster: &str) -> anyhow::Result<Store> {
        use std::os::unix::fs::DirBuilderExt;
        let dir = generated_dir(cluster);
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .with_context(|| format!("cannot create `{}`", dir.display()))?;
        Ok(Store { dir })
    }

    fn read(&self, name: &str) -> anyhow::Result<Option<String>> {
        let path = self.dir.join(name);
        match std::fs::read_to_string(&path) {
            Ok(text) => Ok(Some(text)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("cannot read `{}`", path.display())),
        }
    }

    fn write(&self, name: &str, text: &str) -> anyhow::Result<()> {
        crate::password_store::write_private(&self.dir.join(name), text)
    }

    /// The group's CA, generated once: every certificate issued later chains to it, so
    /// clients keep trusting the same `ca.crt` across `up`s.
    fn ca(&self, cluster: &str) -> anyhow::Result<(String, KeyPair)> {
        if let (Some(cert), Some(key)) = (self.read("ca.crt")?, self.read("ca.key")?) {
            let key = KeyPair::from_pem(&key).context("cannot read the generated CA key")?;
            return Ok((cert, key));
        }
        let (cert, key) = generate_ca(cluster, OffsetDateTime::now_utc())?;
        // The key first: a CA certificate without its key would be useless on the next run.
        self.write("ca.key", &key.serialize_pem())?;
        self.write("ca.crt", &cert)?;
        Ok((cert, key))
    }

    /// `<name>.crt`/`.key`: kept while it chains to the CA, names exactly `sans` and has
    /// 30 days left; issued again otherwise (a grown group, a new subnet, an old cert).
    fn leaf(
        &self,
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
        self.write(&key_file, issued.key_pem.expose())?;
        self.write(&cert_file, &issued.cert_pem)?;
        Ok(issued)
    }
}

/// A certificate worth keeping: it names exactly `sans` and has 30 days left.
fn still_good(cert_pem: &str, sans: &[String], now: OffsetDateTime) -> bool {
    let Ok(parsed) = Parsed::new(cert_pem) else {
        return false;
    };
    let Ok(cert) = parsed.cert() else {
        return false;
    };
    let left = cert.validity().not_after.to_datetime() - now;
    let mut have = san_strings(&cert);
    let mut want = sans.to_vec();
    have.sort();
    want.sort();
    left > Duration::days(EXPIRY_WARNING_DAYS) && have == want
}

/// A new CA: its certificate (PEM) and key.
pub fn generate_ca(cluster: &str, now: OffsetDateTime) -> anyhow::Result<(String, KeyPair)> {
    let key = KeyPair::generate().context("cannot generate the CA key")?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "rcluster");
    dn.push(DnType::CommonName, format!("rcluster {cluster} CA"));
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = now - Duration::hours(1);
    params.not_after = now + Duration::days(CA_DAYS);
    let cert = params
        .self_signed(&key)
        .context("cannot sign the CA certificate")?;
    Ok((cert.pem(), key))
}

/// A certificate for both ends of a connection (a node serves clients and, replicating or
/// monitoring, is a client itself), naming `sans`, signed by `issuer`.
pub fn issue(
    common_name: &str,
    sans: &[String],
    issuer: &Issuer<'_, KeyPair>,
    now: OffsetDateTime,
) -> anyhow::Result<CertKey> {
    let key = KeyPair::generate().context("cannot generate a TLS key")?;
    let mut params = CertificateParams::new(sans.to_vec())
        .with_context(|| format!("cannot put the names {sans:?} in a certificate"))?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "rcluster");
    dn.push(DnType::CommonName, common_name);
    params.distinguished_name = dn;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.use_authority_key_identifier_extension = true;
    params.not_before = now - Duration::hours(1);
    params.not_after = now + Duration::days(LEAF_DAYS);
    let cert = params
        .signed_by(&key, issuer)
        .with_context(|| format!("cannot sign the certificate of `{common_name}`"))?;
    Ok(CertKey {
        cert_pem: cert.pem(),
        key_pem: Secret::new(key.serialize_pem()),
    })
}

/// A PEM certificate's DER, kept so the parsed certificate can borrow it.
struct Parsed {
    der: Vec<u8>,
}

impl Parsed {
    fn new(pem: &str) -> Result<Parsed, String> {
        let der = CertificateDer::pem_slice_iter(pem.as_bytes())
            .next()
            .ok_or_else(|| "holds no PEM certificate (`-----BEGIN CERTIFICATE-----`)".to_string())?
            .map_err(|e| format!("is not a readable PEM certificate ({e})"))?;
        Ok(Parsed { der: der.to_vec() })
    }

    fn cert(&self) -> Result<x509_parser::certificate::X509Certificate<'_>, String> {
        x509_parser::parse_x509_certificate(&self.der)
            .map(|(_, c)| c)
            .map_err(|e| format!("is not a readable X.509 certificate ({e})"))
    }
}

/// The DNS names and IP addresses a certificate names.
fn san_strings(cert: &x509_parser::certificate::X509Certificate<'_>) -> Vec<String> {
    let Ok(Some(ext)) = cert.subject_alternative_name() else {
        return Vec::new();
    };
    ext.value
        .general_names
        .iter()
        .filter_map(|name| match name {
            GeneralName::DNSName(dns) => Some(dns.to_string()),
            GeneralName::IPAddress(bytes) => match bytes.len() {
                4 => <[u8; 4]>::try_from(*bytes)
                    .ok()
                    .map(|b| IpAddr::from(b).to_string()),
                16 => <[u8; 16]>::try_from(*bytes)
                    .ok()
                    .map(|b| IpAddr::from(b).to_string()),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

/// One problem with the user's TLS files, for `check`: which key it is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileProblem {
    pub key: &'static str,
    pub warning: bool,
    pub message: String,
}

/// The user's CA, certificate and key, as read (`Err` = the reason the file could not be).
pub struct UserFiles<'a> {
    pub ca: (&'a Path, Result<String, String>),
    pub cert: (&'a Path, Result<String, String>),
    pub key: (&'a Path, Result<String, String>),
}

/// Do the CA, certificate and key belong together, and are they valid long enough?
/// Pure over the files' text; every problem at once.
pub fn check_files(files: &UserFiles<'_>, now: OffsetDateTime) -> Vec<FileProblem> {
    let mut problems = Vec::new();
    let error = |key: &'static str, message: String| FileProblem {
        key,
        warning: false,
        message,
    };
    let named = |key: &str, path: &Path| format!("`tls.{key}` (`{}`)", path.display());
    let mut text = |key: &'static str, (path, read): &(&Path, Result<String, String>)| match read {
        Ok(text) => Some(text.clone()),
        Err(e) => {
            problems.push(error(
                    key,
                    format!(
                        "{} cannot be read: {e}; fix the path (relative paths start at the topology file's directory)",
                        named(key.trim_start_matches("tls."), path)
                    ),
                ));
            None
        }
    };
    let ca_text = text("tls.ca_file", &files.ca);
    let cert_text = text("tls.cert_file", &files.cert);
    let key_text = text("tls.key_file", &files.key);

    let ca = ca_text.map(|t| Parsed::new(&t));
    let cert = cert_text.map(|t| Parsed::new(&t));
    let ca_name = named("ca_file", files.ca.0);
    let cert_name = named("cert_file", files.cert.0);
    let key_name = named("key_file", files.key.0);
    let mut parsed = |key: &'static str, name: &str, p: &Option<Result<Parsed, String>>| match p {
        Some(Ok(p)) => match p.cert() {
            Ok(_) => Some(()),
            Err(e) => {
                problems.push(error(key, format!("{name} {e}; give a PEM certificate")));
                None
            }
        },
        Some(Err(e)) => {
            problems.push(error(key, format!("{name} {e}; give a PEM certificate")));
            None
        }
        None => None,
    };
    let ca_ok = parsed("tls.ca_file", &ca_name, &ca).is_some();
    let cert_ok = parsed("tls.cert_file", &cert_name, &cert).is_some();
    let ca = ca.and_then(Result::ok).filter(|_| ca_ok);
    let cert = cert.and_then(Result::ok).filter(|_| cert_ok);
    let ca = ca.as_ref().and_then(|p| p.cert().ok());
    let cert = cert.as_ref().and_then(|p| p.cert().ok());

    let key_spki = key_text.and_then(|text| match public_key_of(&text) {
        Ok(spki) => Some(spki),
        Err(e) => {
            problems.push(error(
                "tls.key_file",
                format!("{key_name} {e}; give the certificate's private key in PEM (PKCS#8, PKCS#1 or SEC1)"),
            ));
            None
        }
    });
    if let (Some(cert), Some(spki)) = (&cert, &key_spki)
        && cert.tbs_certificate.subject_pki.raw != spki.as_slice()
    {
        problems.push(error(
            "tls.key_file",
            format!("{key_name} is not the key of {cert_name}: their public keys differ; give the key the certificate was issued for"),
        ));
    }
    if let (Some(ca), Some(cert)) = (&ca, &cert)
        && cert.verify_signature(Some(ca.public_key())).is_err()
    {
        problems.push(error(
            "tls.cert_file",
            format!("{cert_name} is not signed by the CA in {ca_name}: nodes and clients would refuse it; give the CA that issued the certificate"),
        ));
    }
    for (key, name, c) in [
        ("tls.ca_file", &ca_name, &ca),
        ("tls.cert_file", &cert_name, &cert),
    ] {
        let Some(c) = c else { continue };
        let not_after = c.validity().not_after.to_datetime();
        let not_before = c.validity().not_before.to_datetime();
        if not_after <= now {
            problems.push(error(
                key,
                format!("{name} expired on {}; renew it", not_after.date()),
            ));
        } else if not_after - now < Duration::days(EXPIRY_WARNING_DAYS) {
            problems.push(FileProblem {
                key,
                warning: true,
                message: format!(
                    "{name} expires on {}, in {} day(s); renew it before then",
                    not_after.date(),
                    (not_after - now).whole_days()
                ),
            });
        }
        if not_before > now {
            problems.push(error(
                key,
                format!(
                    "{name} is not valid before {}; check the clock or the certificate",
                    not_before.date()
                ),
            ));
        }
    }
    problems
}

/// Which of `names` the PEM certificate does not name (DNS names and IP addresses as
/// written; no wildcard matching); `None` when it cannot be read (`check_files` says why).
pub fn unnamed(cert_pem: &str, names: &[String]) -> Option<Vec<String>> {
    let parsed = Parsed::new(cert_pem).ok()?;
    let cert = parsed.cert().ok()?;
    let have = san_strings(&cert);
    Some(
        names
            .iter()
            .filter(|n| !have.contains(n))
            .cloned()
            .collect(),
    )
}

/// The SubjectPublicKeyInfo (DER) of a PEM private key.
fn public_key_of(pem: &str) -> Result<Vec<u8>, String> {
    let der = PrivateKeyDer::from_pem_slice(pem.as_bytes())
        .map_err(|e| format!("holds no readable private key ({e})"))?;
    let key = rustls::crypto::ring::sign::any_supported_type(&der)
        .map_err(|e| format!("holds a key of a kind TLS cannot use ({e})"))?;
    key.public_key()
        .map(|spki| spki.as_ref().to_vec())
        .ok_or_else(|| "holds a key whose public half cannot be derived".to_string())
}

#[cfg(test)]
mod tests;
