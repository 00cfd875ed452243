//! Writers that behave like a well-made application: find the master through the sentinels,
//! check it says it is master, write, and count a write only when `WAIT 1` confirms that a
//! replica has it. On any failure they ask the sentinels again and retry the same key.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;
use tokio::task::JoinHandle;

use crate::probe::Probe;
use crate::probe::parse::ReportedRole;

/// Where to connect for the `host:port` a sentinel hands out: the node's reach (its
/// container address, or its published port), from the layout.
pub type Locate = Arc<dyn Fn(&str, u16) -> Option<SocketAddr> + Send + Sync>;

/// How long `WAIT` may wait for a replica before the write counts as unconfirmed.
const WAIT_MS: u64 = 500;

#[derive(Debug, Clone)]
pub struct Ack {
    pub key: String,
    pub at: Instant,
    pub master: SocketAddr,
}

#[derive(Debug, Default)]
pub struct WriterLog {
    pub acked: Vec<Ack>,
    /// When each failed attempt happened.
    pub failures: Vec<Instant>,
    /// Writes a master answered `OK` to but `WAIT` saw no replica take: they may be lost
    /// (split brain). Each has its own key, so they can be read back one by one.
    pub ok_only: Vec<Ack>,
    /// When a master refused a write with `NOREPLICAS` (`min-replicas-to-write`), and which.
    pub refused: Vec<(Instant, SocketAddr)>,
}

pub struct Writers {
    stop: Arc<AtomicBool>,
    tasks: Vec<JoinHandle<WriterLog>>,
    /// The master that acknowledged the latest write, for the command to watch live.
    last_ack: Arc<std::sync::Mutex<Option<SocketAddr>>>,
}

impl Writers {
    pub fn start(
        probe: &Probe,
        sentinels: Vec<SocketAddr>,
        locate: Locate,
        master_name: &str,
        prefix: &str,
        count: u32,
    ) -> Writers {
        Self::start_with_sticky(probe, sentinels, locate, master_name, prefix, count, 0)
    }

    /// Like `start`, but the first `sticky` writers behave like most real clients: they
    /// keep writing to the master they are connected to as long as it answers `OK`, even
    /// when `WAIT` sees no replica, and look for another master only after an error.
    pub fn start_with_sticky(
        probe: &Probe,
        sentinels: Vec<SocketAddr>,
        locate: Locate,
        master_name: &str,
        prefix: &str,
        count: u32,
        sticky: u32,
    ) -> Writers {
        let stop = Arc::new(AtomicBool::new(false));
        let last_ack = Arc::new(std::sync::Mutex::new(None));
        let probe = probe.clone().with_timeouts(
            Duration::from_millis(300),
            Duration::from_millis(WAIT_MS + 500),
        );
        let tasks = (0..count)
            .map(|w| {
                let writer = Writer {
                    probe: probe.clone(),
                    sentinels: sentinels.clone(),
                    locate: locate.clone(),
                    master_name: master_name.to_string(),
                    prefix: format!("{prefix}:{w}"),
                    stop: stop.clone(),
                    last_ack: last_ack.clone(),
                    sticky: w < sticky,
                };
                tokio::spawn(writer.run())
            })
            .collect();
        Writers {
            stop,
            tasks,
            last_ack,
        }
    }

    /// The master that acknowledged the most recent write, if any write was acknowledged.
    pub fn last_acked_by(&self) -> Option<SocketAddr> {
        *self.last_ack.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub async fn stop(self) -> WriterLog {
        self.stop.store(true, Ordering::SeqCst);
        let mut all = WriterLog::default();
        for task in self.tasks {
            if let Ok(log) = task.await {
                all.acked.extend(log.acked);
                all.failures.extend(log.failures);
                all.ok_only.extend(log.ok_only);
                all.refused.extend(log.refused);
            }
        }
        all
    }
}

struct Writer {
    probe: Probe,
    sentinels: Vec<SocketAddr>,
    locate: Locate,
    master_name: String,
    prefix: String,
    stop: Arc<AtomicBool>,
    last_ack: Arc<std::sync::Mutex<Option<SocketAddr>>>,
    sticky: bool,
}

impl Writer {
    async fn run(self) -> WriterLog {
        let mut log = WriterLog::default();
        let mut seq: u64 = 0;
        let mut current: Option<(SocketAddr, MultiplexedConnection)> = None;
        while !self.stop.load(Ordering::SeqCst) {
            let (addr, con) = match current.as_mut() {
                Some((addr, con)) => (*addr, con),
                None => match self.find_master().await {
                    Some(found) => {
                        current = Some(found);
                        continue;
                    }
                    None => {
                        // Not a write attempt, so not counted as one. Back off a little:
                        // every sentinel just said no, or named a master that is not one.
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    }
                },
            };
            let key = format!("{}:{seq}", self.prefix);
            let reply: redis::RedisResult<((), i64)> = redis::pipe()
                .cmd("SET")
                .arg(&key)
                .arg(seq)
                .cmd("WAIT")
                .arg(1)
                .arg(WAIT_MS)
                .query_async(con)
                .await;
            match reply {
                Ok(((), replicas)) if replicas >= 1 => {
                    log.acked.push(Ack {
                        key,
                        at: Instant::now(),
                        master: addr,
                    });
                    seq += 1;
                    *self.last_ack.lock().unwrap_or_else(|e| e.into_inner()) = Some(addr);
                }
                Ok(_) => {
                    // Written but not confirmed on any replica: `OK` alone, which split
                    // brain may undo. The next write gets a new key, so this one can be
                    // read back on its own.
                    let now = Instant::now();
                    log.ok_only.push(Ack {
                        key,
                        at: now,
                        master: addr,
                    });
                    seq += 1;
                    log.failures.push(now);
                    if !self.sticky {
                        // A careful client asks the sentinels again: this master may have
                        // lost its replicas.
                        current = None;
                    }
                }
                Err(e) => {
                    let now = Instant::now();
                    // In a pipeline the crate reports the server error without its code.
                    if e.code() == Some("NOREPLICAS") || e.to_string().contains("NOREPLICAS") {
                        log.refused.push((now, addr));
                    }
                    log.failures.push(now);
                    current = None;
                }
            }
        }
        log
    }

    /// Ask the sentinels in turn for the master, connect, and check with `ROLE` that it
    /// really is master (a sentinel's answer may be stale during a failover).
    async fn find_master(&self) -> Option<(SocketAddr, MultiplexedConnection)> {
        for sentinel in &self.sentinels {
            let Ok(Some((host, port))) = self.probe.master_addr(*sentinel, &self.master_name).await
            else {
                continue;
            };
            let Some(addr) = (self.locate)(&host, port) else {
                continue;
            };
            let Ok(mut con) = self.probe.connect(addr).await else {
                continue;
            };
            let role: redis::RedisResult<redis::Value> =
                redis::cmd("ROLE").query_async(&mut con).await;
            if role.is_ok_and(|r| ReportedRole::of_role_reply(&r) == Some(ReportedRole::Master)) {
                return Some((addr, con));
            }
        }
        None
    }
}

/// Of `keys`, how many the master at `addr` does not have.
pub async fn count_missing(
    probe: &Probe,
    addr: SocketAddr,
    keys: &[String],
) -> anyhow::Result<u64> {
    Ok(missing_keys(probe, addr, keys).await?.len() as u64)
}

/// Of `keys`, those the master at `addr` does not have, in order.
pub async fn missing_keys(
    probe: &Probe,
    addr: SocketAddr,
    keys: &[String],
) -> anyhow::Result<Vec<String>> {
    let mut con = probe.connect(addr).await?;
    let mut missing = Vec::new();
    for chunk in keys.chunks(1000) {
        let values: Vec<Option<String>> =
            redis::cmd("MGET").arg(chunk).query_async(&mut con).await?;
        missing.extend(
            chunk
                .iter()
                .zip(values)
                .filter(|(_, v)| v.is_none())
                .map(|(k, _)| k.clone()),
        );
    }
    Ok(missing)
}

/// Remove every key under the test's prefix (acknowledged or not) so the user's data set
/// is left as it was.
pub async fn delete_prefix(probe: &Probe, addr: SocketAddr, prefix: &str) -> anyhow::Result<()> {
    let mut con = probe.connect(addr).await?;
    let pattern = format!("{prefix}:*");
    let mut cursor: u64 = 0;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut con)
            .await?;
        if !keys.is_empty() {
            let _: i64 = redis::cmd("UNLINK")
                .arg(&keys)
                .query_async(&mut con)
                .await?;
        }
        if next == 0 {
            return Ok(());
        }
        cursor = next;
    }
}
