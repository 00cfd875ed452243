//! `[tls]`'s certificates as data: the file names in a container, a certificate and key,
//! what the containers and rcluster's clients get, and issuing a CA or a certificate in
//! memory (rcgen). Pure: keeping them on disk is `tls_store`, checking the user's files is
//! `topology::certs` (re-exported here), which names a certificate carries is
//! `render::names`.
//!
//! Must not touch the disk, Docker or Redis.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Context;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use time::{Duration, OffsetDateTime};

use crate::secret::Secret;
use crate::topology::ClientAuth;
use crate::topology::certs::{Parsed, san_strings};

pub use crate::topology::certs::{
    EXPIRY_WARNING_DAYS, FileProblem, UserFiles, check_files, unnamed,
};

/// How long generated node and client certificates are valid (the most browsers accept;
/// Redis itself does not care). `up` issues a new one when fewer than 30 days remain.
const LEAF_DAYS: i64 = 825;
/// How long the generated CA is valid.
const CA_DAYS: i64 = 3650;

/// In the container, next to the config file (same private directory).
pub const CA_FILE: &str = "ca.crt";
pub const CERT_FILE: &str = "tls.crt";
pub const KEY_FILE: &str = "tls.key";

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

/// What the containers get: the CA, and each node's certificate (by node key); and the
/// certificate rcluster's own clients present.
#[derive(Clone)]
pub struct GroupTls {
    pub ca_pem: String,
    pub nodes: BTreeMap<String, CertKey>,
    pub client: CertKey,
}

impl GroupTls {
    /// What `probe` connects with, from memory: `up` needs it before the plan has
    /// written the files.
    pub fn client_tls(&self, client_auth: ClientAuth) -> ClientTls {
        ClientTls {
            ca_pem: self.ca_pem.clone().into_bytes(),
            identity: client_auth.presents_certificate().then(|| {
                (
                    self.client.cert_pem.clone().into_bytes(),
                    self.client.key_pem.clone(),
                )
            }),
        }
    }

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

/// A certificate worth keeping: it names exactly `sans` and has 30 days left.
pub fn still_good(cert_pem: &str, sans: &[String], now: OffsetDateTime) -> bool {
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

#[cfg(test)]
mod tests;
