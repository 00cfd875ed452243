//! Listening to every sentinel's event channels while a failover test runs.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tokio::task::JoinHandle;

use crate::probe::Probe;

/// One event as received, with the local time it arrived.
#[derive(Debug, Clone)]
pub struct Received {
    pub at: Instant,
    pub sentinel: String,
    pub channel: String,
    pub payload: String,
}

/// Subscriptions to all sentinels; events accumulate until `stop`.
pub struct Listener {
    pub log: Arc<Mutex<Vec<Received>>>,
    tasks: Vec<JoinHandle<()>>,
}

impl Listener {
    /// Subscribe to every channel (`PSUBSCRIBE *`) of each sentinel. Returns once every
    /// subscription is confirmed, so no event after this point is missed. A sentinel that
    /// cannot be subscribed to is an error: the test would be blind to it.
    pub async fn start(
        probe: &Probe,
        sentinels: &[(String, SocketAddr)],
    ) -> anyhow::Result<Listener> {
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for (name, addr) in sentinels {
            let client = probe.client(*addr)?;
            // The pub/sub connection ignores the crate's timeouts: bound it ourselves.
            let mut pubsub =
                tokio::time::timeout(Duration::from_secs(2), client.get_async_pubsub())
                    .await
                    .map_err(|_| anyhow::anyhow!("timed out subscribing to sentinel `{name}`"))??;
            tokio::time::timeout(Duration::from_secs(2), pubsub.psubscribe("*"))
                .await
                .map_err(|_| anyhow::anyhow!("timed out subscribing to sentinel `{name}`"))??;
            let log = log.clone();
            let name = name.clone();
            tasks.push(tokio::spawn(async move {
                let mut stream = pubsub.into_on_message();
                while let Some(msg) = stream.next().await {
                    let payload: String = msg.get_payload().unwrap_or_default();
                    let event = Received {
                        at: Instant::now(),
                        sentinel: name.clone(),
                        channel: msg.get_channel_name().to_string(),
                        payload,
                    };
                    log.lock().unwrap_or_else(|e| e.into_inner()).push(event);
                }
            }));
        }
        Ok(Listener { log, tasks })
    }

    pub fn events(&self) -> Vec<Received> {
        self.log.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn stop(self) -> Vec<Received> {
        for t in &self.tasks {
            t.abort();
        }
        self.events()
    }
}
