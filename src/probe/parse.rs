//! Pure parsing of Redis and Sentinel replies into typed views: the one place a reply's
//! words (`master`, `slave`, `up`, `s_down`, ...) are read. Everything else matches on the
//! enums below.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use crate::topology::Layout;

/// `INFO` text -> field map (section headers and blank lines dropped).
pub fn info_fields(text: &str) -> HashMap<String, String> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.trim().split_once(':'))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The role a data node reports (`INFO replication`'s `role`, `ROLE`'s first word).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ReportedRole {
    Master,
    /// Redis says `slave` (older versions) or `replica`.
    Replica,
}

impl ReportedRole {
    pub fn parse(word: &str) -> Option<ReportedRole> {
        match word {
            "master" => Some(ReportedRole::Master),
            "slave" | "replica" => Some(ReportedRole::Replica),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ReportedRole::Master => "master",
            ReportedRole::Replica => "replica",
        }
    }

    /// The first word of a `ROLE` reply; `None` for a sentinel or anything unreadable.
    pub fn of_role_reply(reply: &redis::Value) -> Option<ReportedRole> {
        let redis::Value::Array(items) = reply else {
            return None;
        };
        match items.first()? {
            redis::Value::BulkString(word) => ReportedRole::parse(std::str::from_utf8(word).ok()?),
            redis::Value::SimpleString(word) => ReportedRole::parse(word),
            _ => None,
        }
    }
}

impl std::fmt::Display for ReportedRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A replica's `master_link_status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkStatus {
    Up,
    Down,
    /// A word this version of rcluster does not know, kept to be shown.
    Other(String),
}

impl LinkStatus {
    pub fn parse(word: &str) -> LinkStatus {
        match word {
            "up" => LinkStatus::Up,
            "down" => LinkStatus::Down,
            other => LinkStatus::Other(other.to_string()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            LinkStatus::Up => "up",
            LinkStatus::Down => "down",
            LinkStatus::Other(word) => word,
        }
    }
}

/// A flag in a sentinel's tables (`SENTINEL MASTER`, `REPLICAS`, `SENTINELS`), as Redis
/// spells it in `flags`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SentinelFlag {
    Master,
    /// `slave`.
    Replica,
    Sentinel,
    /// `s_down`: this sentinel sees it down.
    SubjectivelyDown,
    /// `o_down`: a quorum agrees it is down.
    ObjectivelyDown,
    Disconnected,
    MasterDown,
    FailoverInProgress,
    Promoted,
    ReconfSent,
    ReconfInProgress,
    ReconfDone,
    /// A flag this version of rcluster does not know, kept to be shown.
    Other(String),
}

impl SentinelFlag {
    pub fn parse(word: &str) -> SentinelFlag {
        match word {
            "master" => SentinelFlag::Master,
            "slave" => SentinelFlag::Replica,
            "sentinel" => SentinelFlag::Sentinel,
            "s_down" => SentinelFlag::SubjectivelyDown,
            "o_down" => SentinelFlag::ObjectivelyDown,
            "disconnected" => SentinelFlag::Disconnected,
            "master_down" => SentinelFlag::MasterDown,
            "failover_in_progress" => SentinelFlag::FailoverInProgress,
            "promoted" => SentinelFlag::Promoted,
            "reconf_sent" => SentinelFlag::ReconfSent,
            "reconf_inprog" => SentinelFlag::ReconfInProgress,
            "reconf_done" => SentinelFlag::ReconfDone,
            other => SentinelFlag::Other(other.to_string()),
        }
    }

    /// `a,b,c` as in a sentinel's reply.
    pub fn parse_list(text: &str) -> Vec<SentinelFlag> {
        text.split(',')
            .filter(|w| !w.is_empty())
            .map(SentinelFlag::parse)
            .collect()
    }

    pub fn as_str(&self) -> &str {
        match self {
            SentinelFlag::Master => "master",
            SentinelFlag::Replica => "slave",
            SentinelFlag::Sentinel => "sentinel",
            SentinelFlag::SubjectivelyDown => "s_down",
            SentinelFlag::ObjectivelyDown => "o_down",
            SentinelFlag::Disconnected => "disconnected",
            SentinelFlag::MasterDown => "master_down",
            SentinelFlag::FailoverInProgress => "failover_in_progress",
            SentinelFlag::Promoted => "promoted",
            SentinelFlag::ReconfSent => "reconf_sent",
            SentinelFlag::ReconfInProgress => "reconf_inprog",
            SentinelFlag::ReconfDone => "reconf_done",
            SentinelFlag::Other(word) => word,
        }
    }

    /// Down or unreachable as the sentinel sees it.
    pub fn means_down(&self) -> bool {
        matches!(
            self,
            SentinelFlag::SubjectivelyDown
                | SentinelFlag::ObjectivelyDown
                | SentinelFlag::Disconnected
        )
    }

    /// `a,b,c`, for messages.
    pub fn join(flags: &[SentinelFlag]) -> String {
        flags
            .iter()
            .map(SentinelFlag::as_str)
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// The words as Redis wrote them, so `--json` keeps its shape.
macro_rules! serialize_as_str {
    ($($t:ty),*) => {$(
        impl serde::Serialize for $t {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }
        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    )*};
}
serialize_as_str!(LinkStatus, SentinelFlag);

impl From<&str> for SentinelFlag {
    fn from(word: &str) -> SentinelFlag {
        SentinelFlag::parse(word)
    }
}

/// What a data node says about its replication (`INFO replication`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Replication {
    pub role: ReportedRole,
    /// For a replica: the master it follows.
    pub master_host: Option<String>,
    pub master_port: Option<u16>,
    /// For a replica: `up` when linked.
    pub master_link_status: Option<LinkStatus>,
    /// This node's replication offset (`master_repl_offset` on a master, `slave_repl_offset` on a replica).
    pub offset: i64,
    /// For a master: its replicas as it sees them.
    pub connected_replicas: Vec<ConnectedReplica>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ConnectedReplica {
    pub ip: String,
    pub port: u16,
    pub state: String,
    pub offset: i64,
    pub lag: i64,
}

impl Replication {
    pub fn is_master(&self) -> bool {
        self.role == ReportedRole::Master
    }

    pub fn parse(text: &str) -> Result<Replication, String> {
        let f = info_fields(text);
        let role = match f.get("role").map(String::as_str) {
            Some(word) => ReportedRole::parse(word)
                .ok_or_else(|| format!("unknown role `{word}` in INFO replication"))?,
            None => return Err("INFO replication has no `role`".to_string()),
        };
        let num = |k: &str| f.get(k).and_then(|v| v.parse::<i64>().ok());
        let offset = if role == ReportedRole::Master {
            num("master_repl_offset")
        } else {
            num("slave_repl_offset")
        }
        .unwrap_or(0);
        let mut connected_replicas: Vec<ConnectedReplica> = f
            .iter()
            .filter(|(k, _)| {
                k.strip_prefix("slave")
                    .is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
            })
            .filter_map(|(_, v)| parse_connected_replica(v))
            .collect();
        connected_replicas.sort_by(|a, b| a.ip.cmp(&b.ip));
        Ok(Replication {
            master_host: f.get("master_host").cloned(),
            master_port: f.get("master_port").and_then(|p| p.parse().ok()),
            master_link_status: f.get("master_link_status").map(|w| LinkStatus::parse(w)),
            offset,
            connected_replicas,
            role,
        })
    }
}

/// `ip=172.28.0.11,port=6379,state=online,offset=123,lag=0`
fn parse_connected_replica(value: &str) -> Option<ConnectedReplica> {
    let kv: HashMap<&str, &str> = value.split(',').filter_map(|p| p.split_once('=')).collect();
    Some(ConnectedReplica {
        ip: kv.get("ip")?.to_string(),
        port: kv.get("port")?.parse().ok()?,
        state: kv.get("state").unwrap_or(&"").to_string(),
        offset: kv.get("offset").and_then(|v| v.parse().ok()).unwrap_or(0),
        lag: kv.get("lag").and_then(|v| v.parse().ok()).unwrap_or(-1),
    })
}

/// Sentinel's flat `[k1, v1, k2, v2, ...]` replies -> map.
pub fn pairs(flat: &[String]) -> HashMap<String, String> {
    flat.chunks(2)
        .filter(|c| c.len() == 2)
        .map(|c| (c[0].clone(), c[1].clone()))
        .collect()
}

/// One peer in a sentinel's tables (a replica or another sentinel).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Peer {
    pub ip: String,
    pub port: u16,
    pub flags: Vec<SentinelFlag>,
}

impl Peer {
    pub fn from_pairs(flat: &[String]) -> Option<Peer> {
        let m = pairs(flat);
        Some(Peer {
            ip: m.get("ip")?.clone(),
            port: m.get("port")?.parse().ok()?,
            flags: m
                .get("flags")
                .map(|f| SentinelFlag::parse_list(f))
                .unwrap_or_default(),
        })
    }

    /// Down or unreachable as the sentinel sees it.
    pub fn is_down(&self) -> bool {
        self.flags.iter().any(SentinelFlag::means_down)
    }

    pub fn ipv4(&self) -> Option<Ipv4Addr> {
        self.ip.parse().ok()
    }
}

/// What one sentinel says about the monitored master.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SentinelView {
    /// `SENTINEL get-master-addr-by-name`.
    pub master: Option<(String, u16)>,
    /// Flags of the master in `SENTINEL MASTER` (`master`, `s_down`, `o_down`, ...).
    pub master_flags: Vec<SentinelFlag>,
    pub replicas: Vec<Peer>,
    pub sentinels: Vec<Peer>,
}

impl SentinelView {
    /// The container address of the master this sentinel names (see `Layout::ip_of`).
    pub fn master_ip(&self, layout: &Layout) -> Option<Ipv4Addr> {
        self.master
            .as_ref()
            .and_then(|(host, port)| layout.ip_of(host, *port))
    }

    pub fn master_is_down(&self) -> bool {
        self.master_flags.iter().any(SentinelFlag::means_down)
    }
}

/// A user as `status` shows it: its name and whether it is on, never its rules'
/// passwords or hashes.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AclUserState {
    pub name: String,
    pub on: bool,
}

/// One `ACL LIST` line (`user NAME on|off #hash ~keys ...`) -> name and state; only the
/// first three words are read, so no hash or password goes further.
pub fn acl_user(line: &str) -> Option<AclUserState> {
    let mut words = line.split_whitespace();
    if words.next()? != "user" {
        return None;
    }
    let name = words.next()?.to_string();
    let on = match words.next()? {
        "on" => true,
        "off" => false,
        _ => return None,
    };
    Some(AclUserState { name, on })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acl_list_lines_give_name_and_state_only() {
        let on = acl_user("user app on #5e88 ~app:* resetchannels -@all +get").unwrap();
        assert_eq!(
            on,
            AclUserState {
                name: "app".into(),
                on: true
            }
        );
        let off = acl_user("user default off resetkeys -@all").unwrap();
        assert!(!off.on);
        assert_eq!(acl_user("garbage"), None);
        assert!(!format!("{on:?}").contains("5e88"));
    }

    const MASTER_INFO: &str = "# Replication\r\nrole:master\r\nconnected_slaves:2\r\n\
        slave0:ip=172.28.1.11,port=6379,state=online,offset=1234,lag=0\r\n\
        slave1:ip=172.28.1.12,port=6379,state=wait_bgsave,offset=0,lag=1\r\n\
        master_failover_state:no-failover\r\nmaster_repl_offset:1234\r\n";

    const REPLICA_INFO: &str = "# Replication\r\nrole:slave\r\nmaster_host:172.28.1.10\r\n\
        master_port:6379\r\nmaster_link_status:up\r\nslave_repl_offset:1200\r\nmaster_repl_offset:1200\r\n";

    #[test]
    fn parses_a_master() {
        let r = Replication::parse(MASTER_INFO).unwrap();
        assert!(r.is_master());
        assert_eq!(r.offset, 1234);
        assert_eq!(r.connected_replicas.len(), 2);
        assert_eq!(r.connected_replicas[1].state, "wait_bgsave");
        assert_eq!(r.connected_replicas[0].offset, 1234);
    }

    #[test]
    fn parses_a_replica() {
        let r = Replication::parse(REPLICA_INFO).unwrap();
        assert_eq!(r.role.as_str(), "replica");
        assert_eq!(r.master_host.as_deref(), Some("172.28.1.10"));
        assert_eq!(r.master_port, Some(6379));
        assert_eq!(
            r.master_link_status.as_ref().map(LinkStatus::as_str),
            Some("up")
        );
        assert_eq!(r.offset, 1200);
    }

    #[test]
    fn reads_roles_link_states_and_flags_in_redis_words() {
        assert_eq!(ReportedRole::parse("slave"), Some(ReportedRole::Replica));
        assert_eq!(ReportedRole::parse("sentinel"), None);
        let role = redis::Value::Array(vec![redis::Value::BulkString(b"master".to_vec())]);
        assert_eq!(
            ReportedRole::of_role_reply(&role),
            Some(ReportedRole::Master)
        );
        assert_eq!(LinkStatus::parse("down"), LinkStatus::Down);
        assert_eq!(LinkStatus::parse("handshake").as_str(), "handshake");
        let flags = SentinelFlag::parse_list("master,s_down,o_down,failover_in_progress");
        assert!(flags.iter().any(SentinelFlag::means_down));
        assert_eq!(
            SentinelFlag::join(&flags),
            "master,s_down,o_down,failover_in_progress"
        );
        assert_eq!(
            serde_json::to_string(&flags).unwrap(),
            r#"["master","s_down","o_down","failover_in_progress"]"#
        );
        assert!(
            !SentinelFlag::parse_list("slave")
                .iter()
                .any(SentinelFlag::means_down)
        );
    }

    #[test]
    fn rejects_info_without_role() {
        assert!(Replication::parse("# Replication\r\n").is_err());
    }

    #[test]
    fn parses_sentinel_peers() {
        let flat: Vec<String> = [
            "name",
            "x",
            "ip",
            "172.28.1.11",
            "port",
            "6379",
            "flags",
            "slave,s_down",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let p = Peer::from_pairs(&flat).unwrap();
        assert_eq!(p.ip, "172.28.1.11");
        assert!(p.is_down());
        assert!(Peer::from_pairs(&flat[..2]).is_none());
    }
}
