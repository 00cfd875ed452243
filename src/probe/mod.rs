//! Talking RESP to redis and sentinel (redis crate). This module owns connections and
//! timeouts; parsing replies is pure and lives in `parse`.

pub mod parse;
pub mod survey;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{
    AsyncConnectionConfig, ClientTlsConfig, ConnectionAddr, ErrorKind, IntoConnectionInfo,
    RedisConnectionInfo, RedisError, TlsCertificates,
};

pub use parse::{Peer, Replication, SentinelView};

use crate::secret::Secret;
use crate::tls::ClientTls;

/// Why a node could not be asked, decided where the probe is made (from the redis
/// crate's error kinds and the server's error codes, never from the text). `what` says
/// which request to which address failed; the source is the client's error.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// The node rejects the password (`WRONGPASS`, `NOAUTH`, failed `AUTH`).
    #[error("{what}")]
    Auth {
        what: String,
        #[source]
        source: RedisError,
    },
    /// Nothing answers at the address, or the connection broke.
    #[error("{what}")]
    Unreachable {
        what: String,
        #[source]
        source: RedisError,
    },
    /// The connection or the reply took longer than the probe's timeout.
    #[error("{what}")]
    Timeout {
        what: String,
        #[source]
        source: RedisError,
    },
    /// The node answered, but with an error or with something that cannot be read.
    #[error("{what}")]
    Protocol {
        what: String,
        #[source]
        source: Option<RedisError>,
    },
}

impl ProbeError {
    /// Classify a client error; `what` names the request and the address.
    pub fn from_redis(what: impl Into<String>, source: RedisError) -> ProbeError {
        let what = what.into();
        let auth = source.kind() == ErrorKind::AuthenticationFailed
            || matches!(source.code(), Some("WRONGPASS" | "NOAUTH"));
        if auth {
            ProbeError::Auth { what, source }
        } else if source.is_timeout() {
            ProbeError::Timeout { what, source }
        } else if source.is_io_error()
            || source.is_connection_refusal()
            || source.is_connection_dropped()
        {
            ProbeError::Unreachable { what, source }
        } else {
            ProbeError::Protocol {
                what,
                source: Some(source),
            }
        }
    }

    pub fn is_auth(&self) -> bool {
        matches!(self, ProbeError::Auth { .. })
    }

    /// The request and every cause on one line (`what: cause: cause`), as shown per node.
    pub fn describe(&self) -> String {
        let mut text = self.to_string();
        let mut cause = std::error::Error::source(self);
        while let Some(c) = cause {
            text.push_str(&format!(": {c}"));
            cause = c.source();
        }
        text
    }
}

/// Attach what was asked of whom to a client error, classified.
trait Asked<T> {
    fn asked(self, what: impl FnOnce() -> String) -> Result<T, ProbeError>;
}

impl<T> Asked<T> for Result<T, RedisError> {
    fn asked(self, what: impl FnOnce() -> String) -> Result<T, ProbeError> {
        self.map_err(|e| ProbeError::from_redis(what(), e))
    }
}

/// How rcluster logs in: a user (`None` = `default`) and its password.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credentials {
    pub user: Option<String>,
    pub password: Secret,
}

impl Credentials {
    /// rcluster's own login to a group: the group password, as `default`, or as the admin
    /// user when `acl.disable_default` turns `default` off (every node has that user).
    pub fn for_group(topology: &crate::topology::Topology, password: Secret) -> Credentials {
        Credentials {
            user: topology.login_user().map(str::to_string),
            password,
        }
    }
}

/// The `default` user with this password.
impl From<Secret> for Credentials {
    fn from(password: Secret) -> Credentials {
        Credentials {
            user: None,
            password,
        }
    }
}

/// Connects to nodes with one login and explicit timeouts (the crate's defaults are
/// 1 s to connect and 500 ms per command; a probe that hangs must not stall a poll loop),
/// over TLS when the group speaks it: every connection rcluster makes goes through here.
#[derive(Clone)]
pub struct Probe {
    credentials: Credentials,
    connect_timeout: Duration,
    response_timeout: Duration,
    /// The group's CA (and client certificate): `None` = plaintext.
    tls: Option<Arc<ClientTls>>,
}

impl Probe {
    pub fn new(credentials: impl Into<Credentials>) -> Probe {
        Probe {
            credentials: credentials.into(),
            connect_timeout: Duration::from_millis(500),
            response_timeout: Duration::from_millis(1000),
            tls: None,
        }
    }

    /// A probe for the group `loaded` describes: plaintext, or TLS with the group's CA
    /// (and client certificate under `tls.client_auth`).
    pub fn for_group(loaded: &crate::topology::Loaded, password: Secret) -> anyhow::Result<Probe> {
        Ok(
            Probe::new(Credentials::for_group(&loaded.topology, password))
                .with_tls(crate::tls_store::client(loaded)?),
        )
    }

    /// Connect over TLS, trusting `tls`'s CA and checking that the certificate names the
    /// address connected to (as any client would); `None` = plaintext.
    pub fn with_tls(mut self, tls: Option<ClientTls>) -> Probe {
        self.tls = tls.map(Arc::new);
        self
    }

    pub fn with_timeouts(mut self, connect: Duration, response: Duration) -> Probe {
        self.connect_timeout = connect;
        self.response_timeout = response;
        self
    }

    pub fn client(&self, addr: SocketAddr) -> Result<redis::Client, ProbeError> {
        let what = || format!("cannot connect to {addr}");
        let target = match &self.tls {
            None => ConnectionAddr::Tcp(addr.ip().to_string(), addr.port()),
            Some(_) => ConnectionAddr::TcpTls {
                host: addr.ip().to_string(),
                port: addr.port(),
                insecure: false,
                tls_params: None,
            },
        };
        let info = target
            .into_connection_info()
            .asked(what)?
            .set_redis_settings({
                let settings = RedisConnectionInfo::default()
                    .set_password(self.credentials.password.expose())
                    .set_skip_set_lib_name();
                match &self.credentials.user {
                    Some(user) => settings.set_username(user),
                    None => settings,
                }
            });
        match &self.tls {
            None => redis::Client::open(info).asked(what),
            Some(tls) => redis::Client::build_with_tls(
                info,
                TlsCertificates {
                    client_tls: tls.identity.as_ref().map(|(cert, key)| ClientTlsConfig {
                        client_cert: cert.clone(),
                        client_key: key.expose().as_bytes().to_vec(),
                    }),
                    root_cert: Some(tls.ca_pem.clone()),
                },
            )
            .asked(what),
        }
    }

    pub async fn connect(&self, addr: SocketAddr) -> Result<MultiplexedConnection, ProbeError> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.connect_timeout))
            .set_response_timeout(Some(self.response_timeout));
        let client = self.client(addr)?;
        client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .asked(|| format!("cannot connect to {addr}"))
    }

    /// `INFO replication` of a data node.
    pub async fn replication(&self, addr: SocketAddr) -> Result<Replication, ProbeError> {
        let mut con = self.connect(addr).await?;
        let text: String = redis::cmd("INFO")
            .arg("replication")
            .query_async(&mut con)
            .await
            .asked(|| format!("INFO replication on {addr}"))?;
        Replication::parse(&text).map_err(|what| ProbeError::Protocol { what, source: None })
    }

    /// Every ACL user of a data node and whether it is on (`ACL LIST`, passwords dropped),
    /// in the node's order.
    pub async fn acl_users(
        &self,
        addr: SocketAddr,
    ) -> Result<Vec<parse::AclUserState>, ProbeError> {
        let mut con = self.connect(addr).await?;
        let lines: Vec<String> = redis::cmd("ACL")
            .arg("LIST")
            .query_async(&mut con)
            .await
            .asked(|| format!("ACL LIST on {addr}"))?;
        Ok(lines.iter().filter_map(|l| parse::acl_user(l)).collect())
    }

    /// Everything a sentinel says about `master_name`, in one connection.
    pub async fn sentinel_view(
        &self,
        addr: SocketAddr,
        master_name: &str,
    ) -> Result<SentinelView, ProbeError> {
        let mut con = self.connect(addr).await?;
        let master = get_master_addr(&mut con, addr, master_name).await?;
        let flat: Vec<String> = redis::cmd("SENTINEL")
            .arg("MASTER")
            .arg(master_name)
            .query_async(&mut con)
            .await
            .asked(|| format!("SENTINEL MASTER on {addr}"))?;
        let replicas: Vec<Vec<String>> = redis::cmd("SENTINEL")
            .arg("REPLICAS")
            .arg(master_name)
            .query_async(&mut con)
            .await
            .asked(|| format!("SENTINEL REPLICAS on {addr}"))?;
        let sentinels: Vec<Vec<String>> = redis::cmd("SENTINEL")
            .arg("SENTINELS")
            .arg(master_name)
            .query_async(&mut con)
            .await
            .asked(|| format!("SENTINEL SENTINELS on {addr}"))?;
        let master_flags = parse::pairs(&flat)
            .get("flags")
            .map(|f| parse::SentinelFlag::parse_list(f))
            .unwrap_or_default();
        Ok(SentinelView {
            master,
            master_flags,
            replicas: replicas
                .iter()
                .filter_map(|r| Peer::from_pairs(r))
                .collect(),
            sentinels: sentinels
                .iter()
                .filter_map(|s| Peer::from_pairs(s))
                .collect(),
        })
    }

    /// Just the master's address as one sentinel reports it.
    pub async fn master_addr(
        &self,
        addr: SocketAddr,
        master_name: &str,
    ) -> Result<Option<(String, u16)>, ProbeError> {
        let mut con = self.connect(addr).await?;
        get_master_addr(&mut con, addr, master_name).await
    }
}

/// `SENTINEL get-master-addr-by-name` on an open connection to the sentinel at `addr`.
async fn get_master_addr(
    con: &mut MultiplexedConnection,
    addr: SocketAddr,
    master_name: &str,
) -> Result<Option<(String, u16)>, ProbeError> {
    let master: Option<(String, String)> = redis::cmd("SENTINEL")
        .arg("get-master-addr-by-name")
        .arg(master_name)
        .query_async(con)
        .await
        .asked(|| format!("SENTINEL get-master-addr-by-name on {addr}"))?;
    Ok(master.and_then(|(ip, port)| Some((ip, port.parse().ok()?))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_errors_are_classified_by_kind_not_text() {
        let auth = RedisError::from((ErrorKind::AuthenticationFailed, "nope"));
        assert!(ProbeError::from_redis("AUTH on a", auth).is_auth());
        let refused = RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert!(matches!(
            ProbeError::from_redis("connect a", refused),
            ProbeError::Unreachable { .. }
        ));
        let slow = RedisError::from(std::io::Error::from(std::io::ErrorKind::TimedOut));
        assert!(matches!(
            ProbeError::from_redis("INFO on a", slow),
            ProbeError::Timeout { .. }
        ));
        let garbage = RedisError::from((ErrorKind::Parse, "bad reply"));
        let e = ProbeError::from_redis("INFO on a", garbage);
        assert!(matches!(e, ProbeError::Protocol { .. }));
        assert!(e.describe().starts_with("INFO on a: "), "{}", e.describe());
    }
}
