//! Checking the user's own TLS files: do a CA, certificate and key belong together, are
//! they valid long enough, which names does a certificate carry. Pure over PEM text (the
//! caller reads the files): validation uses it, and `tls_store` to decide whether a
//! generated certificate can be kept. Part of `topology` so the checked model depends on
//! nothing above it.

use std::net::IpAddr;
use std::path::Path;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use time::{Duration, OffsetDateTime};
use x509_parser::extensions::GeneralName;

/// Warn when a certificate expires within this many days.
pub const EXPIRY_WARNING_DAYS: i64 = 30;

/// A PEM certificate's DER, kept so the parsed certificate can borrow it.
pub struct Parsed {
    der: Vec<u8>,
}

impl Parsed {
    pub fn new(pem: &str) -> Result<Parsed, String> {
        let der = CertificateDer::pem_slice_iter(pem.as_bytes())
            .next()
            .ok_or_else(|| "holds no PEM certificate (`-----BEGIN CERTIFICATE-----`)".to_string())?
            .map_err(|e| format!("is not a readable PEM certificate ({e})"))?;
        Ok(Parsed { der: der.to_vec() })
    }

    pub fn cert(&self) -> Result<x509_parser::certificate::X509Certificate<'_>, String> {
        x509_parser::parse_x509_certificate(&self.der)
            .map(|(_, c)| c)
            .map_err(|e| format!("is not a readable X.509 certificate ({e})"))
    }
}

/// The DNS names and IP addresses a certificate names.
pub fn san_strings(cert: &x509_parser::certificate::X509Certificate<'_>) -> Vec<String> {
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
        if let Some(c) = c {
            problems.extend(validity_problems(key, name, c, now));
        }
    }
    problems
}

fn error_at(key: &'static str, message: String) -> FileProblem {
    FileProblem {
        key,
        warning: false,
        message,
    }
}

/// An expired certificate, one not valid yet, or one that expires within
/// [`EXPIRY_WARNING_DAYS`] (a warning).
fn validity_problems(
    key: &'static str,
    name: &str,
    c: &x509_parser::certificate::X509Certificate<'_>,
    now: OffsetDateTime,
) -> Vec<FileProblem> {
    let mut problems = Vec::new();
    let not_after = c.validity().not_after.to_datetime();
    let not_before = c.validity().not_before.to_datetime();
    if not_after <= now {
        problems.push(error_at(
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
        problems.push(error_at(
            key,
            format!(
                "{name} is not valid before {}; check the clock or the certificate",
                not_before.date()
            ),
        ));
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
