//! Talking RESP to redis and sentinel (redis crate). This module owns connections and
//! timeouts; parsing replies is pure and lives in `parse`.

pub mod parse;
pub mod survey;

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, IntoConnectionInfo, RedisConnectionInfo};

pub use parse::{Peer, Replication, SentinelView};

use crate::secret::Secret;

/// Connects to nodes with one password and explicit timeouts (the crate's defaults are
/// 1 s to connect and 500 ms per command; a probe that hangs must not stall a poll loop).
#[derive(Clone)]
pub struct Probe {
    password: Secret,
    connect_timeout: Duration,
    response_timeout: Duration,
}

impl Probe {
    pub fn new(password: Secret) -> Probe {
        Probe {
            password,
            connect_timeout: Duration::from_millis(500),
            response_timeout: Duration::from_millis(1000),
        }
    }

    pub fn with_timeouts(mut self, connect: Duration, response: Duration) -> Probe {
        self.connect_timeout = connect;
        self.response_timeout = response;
        self
    }

    pub fn client(&self, addr: SocketAddr) -> anyhow::Result<redis::Client> {
        let info = (addr.ip().to_string(), addr.port())
            .into_connection_info()?
            .set_redis_settings(
                RedisConnectionInfo::default()
                    .set_password(self.password.expose())
                    .set_skip_set_lib_name(),
            );
        Ok(redis::Client::open(info)?)
    }

    pub async fn connect(&self, addr: SocketAddr) -> anyhow::Result<MultiplexedConnection> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.connect_timeout))
            .set_response_timeout(Some(self.response_timeout));
        let client = self.client(addr)?;
        client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .with_context(|| format!("cannot connect to {addr}"))
    }

    /// `INFO replication` of a data node.
    pub async fn replication(&self, addr: SocketAddr) -> anyhow::Result<Replication> {
        let mut con = self.connect(addr).await?;
        let text: String = redis::cmd("INFO")
            .arg("replication")
            .query_async(&mut con)
            .await
            .with_context(|| format!("INFO replication on {addr}"))?;
        Replication::parse(&text).map_err(anyhow::Error::msg)
    }

    /// Everything a sentinel says about `master_name`, in one connection.
    pub async fn sentinel_view(
        &self,
        addr: SocketAddr,
        master_name: &str,
    ) -> anyhow::Result<SentinelView> {
        let mut con = self.connect(addr).await?;
        let master = get_master_addr(&mut con, addr, master_name).await?;
        let flat: Vec<String> = redis::cmd("SENTINEL")
            .arg("MASTER")
            .arg(master_name)
            .query_async(&mut con)
            .await
            .with_context(|| format!("SENTINEL MASTER on {addr}"))?;
        let replicas: Vec<Vec<String>> = redis::cmd("SENTINEL")
            .arg("REPLICAS")
            .arg(master_name)
            .query_async(&mut con)
            .await
            .with_context(|| format!("SENTINEL REPLICAS on {addr}"))?;
        let sentinels: Vec<Vec<String>> = redis::cmd("SENTINEL")
            .arg("SENTINELS")
            .arg(master_name)
            .query_async(&mut con)
            .await
            .with_context(|| format!("SENTINEL SENTINELS on {addr}"))?;
        let master_flags = parse::pairs(&flat)
            .get("flags")
            .map(|f| f.split(',').map(str::to_string).collect())
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
    ) -> anyhow::Result<Option<(String, u16)>> {
        let mut con = self.connect(addr).await?;
        get_master_addr(&mut con, addr, master_name).await
    }
}

/// `SENTINEL get-master-addr-by-name` on an open connection to the sentinel at `addr`.
async fn get_master_addr(
    con: &mut MultiplexedConnection,
    addr: SocketAddr,
    master_name: &str,
) -> anyhow::Result<Option<(String, u16)>> {
    let master: Option<(String, String)> = redis::cmd("SENTINEL")
        .arg("get-master-addr-by-name")
        .arg(master_name)
        .query_async(con)
        .await
        .with_context(|| format!("SENTINEL get-master-addr-by-name on {addr}"))?;
    Ok(master.and_then(|(ip, port)| Some((ip, port.parse().ok()?))))
}
