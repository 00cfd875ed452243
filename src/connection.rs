//! How an application connects to the group: the settings `rcluster env` prints and
//! `failover-test -- CMD` puts in its command's environment. The password itself is never
//! among them, only the path of a private file that holds it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Serialize;

use crate::host_files::HostFiles;
use crate::probe::Probe;
use crate::secret::Secret;
use crate::topology::{AuthSource, Layout, Loaded, UserPassword};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Settings {
    /// `host:port` of every sentinel, reachable from this host.
    pub sentinels: Vec<String>,
    pub master_name: String,
    /// The current master as the first sentinel that answers names it; `None` when none did.
    pub master: Option<String>,
    /// A file (mode 0600) that holds the password, for the data nodes and the sentinels.
    pub password_file: PathBuf,
    /// The user that goes with `password_file` on the data nodes when `acl.disable_default`
    /// turns `default` off (`rcluster`); `None` = `default`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// `[acl]` users: a private file (0600) holding each one's password, by user name.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub user_password_files: BTreeMap<String, PathBuf>,
    /// With `[tls]`: the CA to verify every node with (the nodes and sentinels speak only
    /// TLS then, unless `tls.plaintext_port`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_ca_file: Option<PathBuf>,
    /// Under `tls.client_auth = "optional"` or `"yes"`: the certificate and key to present.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_cert_file: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_key_file: Option<PathBuf>,
    /// With `[acl]`: the user a Sentinel client logs in to the sentinels as
    /// (`rcluster-sentinel-client`, read-only), and a private file (0600) with its password.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sentinel_user: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sentinel_password_file: Option<PathBuf>,
}

impl Settings {
    /// `RCLUSTER_*` variables, in a fixed order.
    pub fn vars(&self) -> Vec<(String, String)> {
        let mut vars = vec![
            ("RCLUSTER_SENTINELS".to_string(), self.sentinels.join(",")),
            ("RCLUSTER_MASTER_NAME".to_string(), self.master_name.clone()),
        ];
        if let Some(master) = &self.master {
            vars.push(("RCLUSTER_MASTER".to_string(), master.clone()));
        }
        vars.push((
            "RCLUSTER_PASSWORD_FILE".to_string(),
            self.password_file.display().to_string(),
        ));
        if let Some(user) = &self.user {
            vars.push(("RCLUSTER_USER".to_string(), user.clone()));
        }
        for (name, path) in &self.user_password_files {
            vars.push((user_file_var(name), path.display().to_string()));
        }
        for (name, path) in [
            ("RCLUSTER_TLS_CA_FILE", &self.tls_ca_file),
            ("RCLUSTER_TLS_CERT_FILE", &self.tls_cert_file),
            ("RCLUSTER_TLS_KEY_FILE", &self.tls_key_file),
        ] {
            if let Some(path) = path {
                vars.push((name.to_string(), path.display().to_string()));
            }
        }
        if let Some(user) = &self.sentinel_user {
            vars.push(("RCLUSTER_SENTINEL_USER".to_string(), user.clone()));
        }
        if let Some(path) = &self.sentinel_password_file {
            vars.push((
                "RCLUSTER_SENTINEL_PASSWORD_FILE".to_string(),
                path.display().to_string(),
            ));
        }
        vars
    }

    /// `export NAME='value'` lines for `eval "$(rcluster env)"`.
    pub fn to_shell(&self) -> String {
        self.vars()
            .iter()
            .map(|(k, v)| format!("export {k}={}\n", shell_quote(v)))
            .collect()
    }

    /// `NAME=value` lines for a `.env` file (values double-quoted when they need it).
    pub fn to_dotenv(&self) -> String {
        self.vars()
            .iter()
            .map(|(k, v)| {
                if v.chars()
                    .all(|c| c.is_ascii_alphanumeric() || ",.:/_-".contains(c))
                {
                    format!("{k}={v}\n")
                } else {
                    format!("{k}=\"{}\"\n", v.replace('\\', "\\\\").replace('"', "\\\""))
                }
            })
            .collect()
    }
}

/// `RCLUSTER_USER_<NAME>_PASSWORD_FILE`, the name upper-cased and `-` as `_`.
pub fn user_file_var(name: &str) -> String {
    let name: String = name
        .chars()
        .map(|c| {
            if c == '-' {
                '_'
            } else {
                c.to_ascii_uppercase()
            }
        })
        .collect();
    format!("RCLUSTER_USER_{name}_PASSWORD_FILE")
}

/// Single quotes, with each `'` written as `'\''`.
pub fn shell_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', r"'\''"))
}

/// Ask the sentinels for the current master and put the settings together.
pub async fn settings(
    loaded: &Loaded,
    layout: &Layout,
    probe: &Probe,
    password: &Secret,
) -> anyhow::Result<Settings> {
    let master_name = loaded.topology.sentinel.master_name.clone();
    let mut master = None;
    for s in layout.sentinels() {
        if let Ok(Some((host, port))) = probe.master_addr(s.reach, &master_name).await {
            master = Some(client_master(layout, &host, port));
            break;
        }
    }
    let tls = crate::tls_store::client_files(loaded);
    let identity = tls
        .as_ref()
        .filter(|files| files.client_auth.presents_certificate());
    Ok(Settings {
        sentinels: layout
            .sentinels()
            .map(|n| client_address(layout, n))
            .collect(),
        master_name,
        master,
        password_file: password_file(loaded, password)?,
        user: loaded.topology.login_user().map(str::to_string),
        user_password_files: user_password_files(loaded, password)?,
        tls_ca_file: tls.as_ref().map(|files| files.ca.clone()),
        tls_cert_file: identity.map(|files| files.cert.clone()),
        tls_key_file: identity.map(|files| files.key.clone()),
        sentinel_user: loaded
            .topology
            .acl
            .as_ref()
            .map(|_| crate::acl::SENTINEL_CLIENT_USER.to_string()),
        sentinel_password_file: sentinel_password_file(loaded, password)?,
    })
}

/// With `[acl]`, a private file (0600, `users/rcluster-sentinel-client` under the group's
/// state directory) holding the Sentinel client user's password.
pub fn sentinel_password_file(
    loaded: &Loaded,
    password: &Secret,
) -> anyhow::Result<Option<PathBuf>> {
    let mut host = HostFiles::default();
    let path = plan_sentinel_password_file(loaded, password, &mut host);
    host.write_all()?;
    Ok(path)
}

/// The Sentinel client user's password file, to be written through `host` (only when it
/// is missing or differs).
pub fn plan_sentinel_password_file(
    loaded: &Loaded,
    password: &Secret,
    host: &mut HostFiles,
) -> Option<PathBuf> {
    loaded.topology.acl.as_ref()?;
    let user = crate::acl::SENTINEL_CLIENT_USER;
    let path = crate::password_store::user_password_path(&loaded.topology.cluster.name, user);
    let text = format!(
        "{}\n",
        crate::acl::derived_password(password.expose(), user).expose()
    );
    host.add(
        format!("the password of Sentinel's client user `{user}`"),
        vec![(path.clone(), Secret::new(text))],
        false,
    );
    Some(path)
}

/// A private file per `[acl]` user holding its password: the user's own `password_file`,
/// else a copy written (0600) under the group's state directory (`users/NAME`).
pub fn user_password_files(
    loaded: &Loaded,
    password: &Secret,
) -> anyhow::Result<BTreeMap<String, PathBuf>> {
    let mut host = HostFiles::default();
    let files = plan_user_password_files(loaded, password, &mut host);
    host.write_all()?;
    Ok(files)
}

/// The `[acl]` users' password files, the generated ones to be written through `host`
/// (only when missing or different).
pub fn plan_user_password_files(
    loaded: &Loaded,
    password: &Secret,
    host: &mut HostFiles,
) -> BTreeMap<String, PathBuf> {
    let topology = &loaded.topology;
    let mut files = BTreeMap::new();
    for user in topology.acl.iter().flat_map(|acl| acl.users.iter()) {
        let path = match &user.password {
            UserPassword::File(path) => {
                let full = topology
                    .source
                    .parent()
                    .unwrap_or_else(|| Path::new("."))
                    .join(path);
                std::fs::canonicalize(&full).unwrap_or(full)
            }
            UserPassword::Generated | UserPassword::Env(_) => {
                let path =
                    crate::password_store::user_password_path(&topology.cluster.name, &user.name);
                let secret = crate::acl::user_password(user, password.expose());
                host.add(
                    format!("the password of `[acl]` user `{}`", user.name),
                    vec![(path.clone(), Secret::new(format!("{}\n", secret.expose())))],
                    false,
                );
                path
            }
        };
        files.insert(user.name.clone(), path);
    }
    files
}

/// Where a client on this machine asks a sentinel: the announced address, else where
/// rcluster itself reaches it (its container address, or its published port where container
/// addresses are out of reach).
fn client_address(layout: &Layout, node: &crate::topology::Node) -> String {
    match &layout.announce {
        Some(_) => {
            let (host, port) = layout.advertised(node);
            format!("{host}:{port}")
        }
        None => node.reach.to_string(),
    }
}

/// Where a client on this machine reaches the master a sentinel named `host:port`: as named
/// when the group announces addresses (that is what clients are handed), else where rcluster
/// reaches that node. With container addresses out of reach (a rootless engine with ports
/// on loopback) the sentinel names a container address that this machine cannot reach, so
/// `RCLUSTER_MASTER` must be the node's published port, like `RCLUSTER_SENTINELS`.
fn client_master(layout: &Layout, host: &str, port: u16) -> String {
    match (&layout.announce, layout.node_by_addr(host, port)) {
        (None, Some(node)) => node.reach.to_string(),
        _ => format!("{host}:{port}"),
    }
}

/// A private file holding the password: the topology's own file, or the generated one in
/// the state directory; for a password from the environment or the topology itself, a
/// copy written (0600) next to where a generated one would be.
pub fn password_file(loaded: &Loaded, password: &Secret) -> anyhow::Result<PathBuf> {
    let cluster = &loaded.topology.cluster.name;
    match &loaded.topology.auth {
        AuthSource::Generated => Ok(crate::password_store::password_path(cluster)),
        AuthSource::File(path) => {
            let base = loaded
                .topology
                .source
                .parent()
                .unwrap_or_else(|| Path::new("."));
            let full = if path.is_absolute() {
                path.clone()
            } else {
                base.join(path)
            };
            Ok(std::fs::canonicalize(&full).unwrap_or(full))
        }
        AuthSource::Literal | AuthSource::Env(_) => {
            let path = crate::password_store::state_dir()
                .join(cluster)
                .join("client-password");
            write_private(&path, password.expose())?;
            Ok(path)
        }
    }
}

/// The password store's writer, in a private (0700) directory of its own.
fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    if let Some(dir) = path.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("cannot create `{}`", dir.display()))?;
    }
    crate::password_store::write_private(path, &format!("{text}\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Settings {
        Settings {
            sentinels: vec!["172.28.1.101:26379".into(), "172.28.1.102:26379".into()],
            master_name: "mymaster".into(),
            master: Some("172.28.1.10:6379".into()),
            password_file: PathBuf::from("/home/a b/.local/state/rcluster/demo/password"),
            user: None,
            user_password_files: BTreeMap::new(),
            tls_ca_file: None,
            tls_cert_file: None,
            tls_key_file: None,
            sentinel_user: None,
            sentinel_password_file: None,
        }
    }

    #[test]
    fn the_master_is_given_where_this_machine_reaches_it() {
        use crate::topology::layout::Subnet;
        let topology = crate::render::tests::default_topology();
        let layout = Layout::new(&topology, Subnet([172, 28, 7]));
        // Rootful: the container address the sentinel names is reachable as it is.
        assert_eq!(
            client_master(&layout, "172.28.7.11", 6379),
            "172.28.7.11:6379"
        );
        // Rootless with ports on loopback: the sentinel still names the container address,
        // which only the replica's published port reaches from here.
        let published = layout.clone().reached_at("127.0.0.1".parse().unwrap());
        assert_eq!(
            client_master(&published, "172.28.7.11", 6379),
            "127.0.0.1:6380"
        );
        // Announced: clients are handed the announced address, so it stays.
        let announced = published.announcing(Some("192.0.2.2".into()));
        assert_eq!(
            client_master(&announced, "192.0.2.2", 6381),
            "192.0.2.2:6381"
        );
        // Not a node of this layout (a sentinel that names something else): as named.
        assert_eq!(client_master(&layout, "10.1.1.1", 6379), "10.1.1.1:6379");
    }

    #[test]
    fn shell_output_is_quoted_exports() {
        assert_eq!(
            sample().to_shell(),
            "export RCLUSTER_SENTINELS='172.28.1.101:26379,172.28.1.102:26379'\n\
             export RCLUSTER_MASTER_NAME='mymaster'\n\
             export RCLUSTER_MASTER='172.28.1.10:6379'\n\
             export RCLUSTER_PASSWORD_FILE='/home/a b/.local/state/rcluster/demo/password'\n"
        );
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }

    #[test]
    fn dotenv_output_quotes_only_what_needs_it() {
        assert_eq!(
            sample().to_dotenv(),
            "RCLUSTER_SENTINELS=172.28.1.101:26379,172.28.1.102:26379\n\
             RCLUSTER_MASTER_NAME=mymaster\n\
             RCLUSTER_MASTER=172.28.1.10:6379\n\
             RCLUSTER_PASSWORD_FILE=\"/home/a b/.local/state/rcluster/demo/password\"\n"
        );
    }

    #[test]
    fn acl_login_and_user_files_are_paths_never_passwords() {
        let mut s = sample();
        s.user = Some("rcluster".into());
        s.user_password_files
            .insert("app-1".into(), PathBuf::from("/s/demo/users/app-1"));
        s.sentinel_user = Some("rcluster-sentinel-client".into());
        s.sentinel_password_file = Some(PathBuf::from("/s/demo/users/rcluster-sentinel-client"));
        let shell = s.to_shell();
        assert!(shell.ends_with(
            "export RCLUSTER_USER='rcluster'\n\
             export RCLUSTER_USER_APP_1_PASSWORD_FILE='/s/demo/users/app-1'\n\
             export RCLUSTER_SENTINEL_USER='rcluster-sentinel-client'\n\
             export RCLUSTER_SENTINEL_PASSWORD_FILE='/s/demo/users/rcluster-sentinel-client'\n"
        ));
    }

    #[test]
    fn tls_adds_the_ca_and_the_client_certificate_files() {
        let mut s = sample();
        s.tls_ca_file = Some(PathBuf::from("/state/demo/tls/ca.crt"));
        assert!(
            s.to_shell()
                .ends_with("export RCLUSTER_TLS_CA_FILE='/state/demo/tls/ca.crt'\n")
        );
        assert!(!s.to_shell().contains("RCLUSTER_TLS_CERT_FILE"));
        s.tls_cert_file = Some(PathBuf::from("/state/demo/tls/client.crt"));
        s.tls_key_file = Some(PathBuf::from("/state/demo/tls/client.key"));
        assert!(s.to_dotenv().ends_with(
            "RCLUSTER_TLS_CA_FILE=/state/demo/tls/ca.crt\n\
             RCLUSTER_TLS_CERT_FILE=/state/demo/tls/client.crt\n\
             RCLUSTER_TLS_KEY_FILE=/state/demo/tls/client.key\n"
        ));
    }

    #[test]
    fn no_master_no_variable() {
        let mut s = sample();
        s.master = None;
        assert!(!s.to_shell().contains("RCLUSTER_MASTER="));
    }
}
