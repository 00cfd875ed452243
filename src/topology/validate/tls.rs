//! `[tls]`: on or off, the user's own certificate files or generated ones, client
//! certificates. Only the keys' shapes are checked here; whether the files exist and belong
//! together is `crate::topology::certs::check_files`, which reads them. A child of `validate` so it uses
//! the same `Checker`.

use std::path::PathBuf;

use super::{Checker, is_dns_name, one_line};
use crate::topology::{ClientAuth, TlsFiles, TlsSpec};

const FILE_KEYS: [&str; 3] = ["tls.ca_file", "tls.cert_file", "tls.key_file"];

impl Checker<'_> {
    pub(super) fn tls(&mut self) -> TlsSpec {
        let raw = &self.doc.topology.tls;
        let enabled = raw.enabled.unwrap_or(false);
        let client_auth = match raw.client_auth.as_deref() {
            None | Some("no") => ClientAuth::No,
            Some("optional") => ClientAuth::Optional,
            Some("yes") => ClientAuth::Yes,
            Some(other) => {
                self.error(
                    "tls.client_auth",
                    format!("`tls.client_auth` is `{}`; use `no` (clients need no certificate), `optional` or `yes` (mutual TLS: every client presents a certificate signed by the CA)", one_line(other)),
                );
                ClientAuth::No
            }
        };
        let values = [&raw.ca_file, &raw.cert_file, &raw.key_file];
        for (key, value) in FILE_KEYS.iter().zip(values) {
            if value.as_deref() == Some("") {
                self.error(
                    key,
                    format!("`{key}` is empty; set it to a PEM file's path (relative paths start at the topology file's directory), or remove all three file keys to let rcluster generate the certificates"),
                );
            }
        }
        let files = match values {
            [Some(ca), Some(cert), Some(key)] => Some(TlsFiles {
                ca: PathBuf::from(ca),
                cert: PathBuf::from(cert),
                key: PathBuf::from(key),
            }),
            [None, None, None] => None,
            _ => {
                let missing: Vec<String> = FILE_KEYS
                    .iter()
                    .zip(values)
                    .filter(|(_, v)| v.is_none())
                    .map(|(k, _)| format!("`{k}`"))
                    .collect();
                let at = FILE_KEYS
                    .iter()
                    .zip(values)
                    .find(|(_, v)| v.is_some())
                    .map_or("tls", |(k, _)| *k);
                self.error_at(
                    "tls",
                    at,
                    format!("`[tls]` names some certificate files but not {}; give all three of `tls.ca_file`, `tls.cert_file` and `tls.key_file` (your own CA, certificate and key), or none to let rcluster generate them", missing.join(" and ")),
                );
                None
            }
        };
        if let Some(name) = &raw.existing_secret
            && !is_dns_name(name)
        {
            self.error(
                "tls.existing_secret",
                format!("`tls.existing_secret` is `{}`; name a Secret in `kubernetes.namespace` (keys `ca.crt`, `tls.crt`, `tls.key`): lowercase letters, digits, `-` and `.`", one_line(name)),
            );
        }
        if !enabled {
            let set = [
                ("tls.ca_file", raw.ca_file.is_some()),
                ("tls.cert_file", raw.cert_file.is_some()),
                ("tls.key_file", raw.key_file.is_some()),
                ("tls.client_auth", raw.client_auth.is_some()),
                ("tls.plaintext_port", raw.plaintext_port.is_some()),
                ("tls.existing_secret", raw.existing_secret.is_some()),
            ];
            for (key, _) in set.iter().filter(|(_, on)| *on) {
                self.warn(
                    key,
                    format!("`{key}` is set but `tls.enabled` is not true, so the group speaks plaintext and this is not used; set `tls.enabled = true`"),
                );
            }
        }
        TlsSpec {
            enabled,
            files,
            client_auth,
            plaintext_port: raw.plaintext_port.unwrap_or(false),
            existing_secret: raw.existing_secret.clone(),
        }
    }
}
