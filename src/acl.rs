//! ACL users: the users rcluster itself needs (admin, replication, Sentinel), their
//! rights, and the passwords of the users it generates. Pure: no I/O.
//!
//! Passwords rcluster generates for ACL users are derived from the group password
//! (SHA-256 over a fixed label, the user's name and the group password): whoever holds the
//! group password is the group's administrator anyway, so deriving adds no access, and it
//! gives every `up`, `render` and `cli` the same passwords without another secret to keep
//! in step. They are also written to private files for applications (see
//! `password_store::write_user_passwords`).

use sha2::{Digest, Sha256};

use crate::secret::{MASK, Secret};
use crate::topology::{AclUser, Topology};

/// Defined with the checked model, which names it; here it is one of rcluster's users.
pub use crate::topology::ADMIN_USER;
/// The user replicas log in to their master as (`masteruser`).
pub const REPLICATION_USER: &str = "rcluster-replication";
/// The user Sentinel logs in to the data nodes as (`sentinel auth-user`).
pub const SENTINEL_USER: &str = "rcluster-sentinel";

/// The user a sentinel logs in to the other sentinels as (`sentinel sentinel-user`).
pub const SENTINEL_PEER_USER: &str = "rcluster-sentinel-peer";
/// The user applications' Sentinel clients log in to the sentinels as (`rcluster env`:
/// `RCLUSTER_SENTINEL_USER`).
pub const SENTINEL_CLIENT_USER: &str = "rcluster-sentinel-client";

/// The admin's rights: everything, like the `default` user it stands in for.
pub const ADMIN_RULES: &str = "~* &* +@all";
/// What a replica sends its master (Redis's ACL documentation, "ACL rules for Sentinel
/// and Replicas"): no key, no channel, three commands.
pub const REPLICATION_RULES: &str = "resetchannels -@all +psync +replconf +ping";
/// What Sentinel sends the data nodes (same documentation), with its one channel instead
/// of `allchannels`.
pub const SENTINEL_RULES: &str = "resetchannels &__sentinel__:hello -@all +multi +slaveof +ping +exec +subscribe +config|rewrite +role +publish +info +client|setname +client|kill +script|kill";

/// What a sentinel sends another sentinel (Redis's sentinel.c, and verified with `ACL LOG`
/// during a failover in `tests/acl_users.rs`): `PING`, its hello on the sentinel's own
/// `__sentinel__:hello` channel (`PUBLISH`), the vote `SENTINEL IS-MASTER-DOWN-BY-ADDR`, and
/// `CLIENT SETNAME` naming its links. (`AUTH` needs no right.)
pub const SENTINEL_PEER_RULES: &str = "resetchannels &__sentinel__:hello -@all +ping +publish +sentinel|is-master-down-by-addr +client|setname";
/// What a Sentinel-aware client sends to discover the group and follow failovers (redis-rs:
/// `SENTINEL MASTERS`, `SENTINEL SLAVES`; redis-py: the same plus `SENTINEL SENTINELS`;
/// others `SENTINEL GET-MASTER-ADDR-BY-NAME`, `SENTINEL REPLICAS`, and the event channels
/// such as `+switch-master`). Read-only: no `SENTINEL SET`, `FAILOVER`, `RESET`, `CONFIG`.
pub const SENTINEL_CLIENT_RULES: &str = "resetchannels &* -@all +ping +sentinel|masters +sentinel|master +sentinel|get-master-addr-by-name +sentinel|slaves +sentinel|replicas +sentinel|sentinels +sentinel|myid +subscribe +psubscribe +unsubscribe +punsubscribe +client|setname +client|getname +client|id +role +info";

/// The password of a user rcluster generates, derived from the group password.
pub fn derived_password(group_password: &str, user: &str) -> Secret {
    let mut hasher = Sha256::new();
    hasher.update(b"rcluster acl user v1\0");
    hasher.update(user.as_bytes());
    hasher.update(b"\0");
    hasher.update(group_password.as_bytes());
    Secret::new(hex::encode(hasher.finalize()))
}

/// A user's password: the one read from its `password_env` / `password_file`, else the
/// derived one.
pub fn user_password(user: &AclUser, group_password: &str) -> Secret {
    user.secret
        .clone()
        .unwrap_or_else(|| derived_password(group_password, &user.name))
}

/// One `user NAME RULES #HASH` line of redis.conf / sentinel.conf.
#[derive(Clone, serde::Serialize)]
pub struct UserLine {
    pub name: String,
    pub rules: String,
    /// SHA-256 of the password in hex, the mask, or a placeholder (Kubernetes).
    pub hash: String,
}

/// What the templates write for `[acl]`. (No `Debug`: it holds a password.)
#[derive(Clone, serde::Serialize)]
pub struct AclConf {
    /// `default` is turned off; the admin user holds the group password.
    pub disable_default: bool,
    /// On the data nodes: admin (when `default` is off), replication, Sentinel, then the
    /// topology's users in name order.
    pub users: Vec<UserLine>,
    /// On the sentinels: the admin when `default` is off (rcluster logs in to them as to
    /// the data nodes), the peer user and the Sentinel client user.
    pub sentinel_users: Vec<UserLine>,
    pub replication_user: &'static str,
    /// `masterauth`: the replication user's password, verbatim (or the mask).
    pub replication_password: String,
    pub sentinel_user: &'static str,
    /// `sentinel auth-pass`: the Sentinel user's password, verbatim (or the mask).
    pub sentinel_password: String,
    pub sentinel_peer_user: &'static str,
    /// `sentinel sentinel-pass`: the peer user's password, verbatim (or the mask).
    pub sentinel_peer_password: String,
    pub sentinel_client_user: &'static str,
}

/// The placeholder a Kubernetes start-up script replaces with the SHA-256 of `user`'s
/// password (hex, so nothing in it needs escaping).
pub fn hash_placeholder(user: &str) -> String {
    format!("__RCLUSTER_ACL_HASH_{user}__")
}

/// The placeholder a Kubernetes start-up script replaces with `user`'s password (only
/// rcluster's derived ones, which are hex).
pub fn password_placeholder(user: &str) -> String {
    format!("__RCLUSTER_ACL_PASSWORD_{user}__")
}

/// The key of a Kubernetes Secret that holds an `[acl]` user's own password (one from
/// `password_env` / `password_file`).
pub fn secret_key(user: &str) -> String {
    format!("acl-{user}")
}

impl AclConf {
    /// `None` without `[acl]`. `password` is the group password as the config gets it:
    /// [`MASK`] masks every password and hash.
    pub fn new(topology: &Topology, password: &str) -> Option<AclConf> {
        let masked = password == MASK;
        AclConf::build(
            topology,
            &|user: &AclUserRef| {
                if masked {
                    return MASK.to_string();
                }
                let own = match user {
                    AclUserRef::Group => password.to_string(),
                    AclUserRef::Derived(name) => {
                        derived_password(password, name).expose().to_string()
                    }
                    AclUserRef::Topology(u) => user_password(u, password).expose().to_string(),
                };
                hex::encode(Sha256::digest(own.as_bytes()))
            },
            &|name: &str| {
                if masked {
                    MASK.to_string()
                } else {
                    derived_password(password, name).expose().to_string()
                }
            },
        )
    }

    /// The same with placeholders that a Kubernetes start-up script fills from the
    /// Secret (see `templates/k8s-lib.sh.j2`, `acl_sed`).
    pub fn placeholders(topology: &Topology) -> Option<AclConf> {
        AclConf::build(
            topology,
            &|user: &AclUserRef| hash_placeholder(user.name()),
            &password_placeholder,
        )
    }

    fn build(
        topology: &Topology,
        hash_of: &dyn Fn(&AclUserRef) -> String,
        clear: &dyn Fn(&str) -> String,
    ) -> Option<AclConf> {
        let acl = topology.acl.as_ref()?;
        let line = |user: AclUserRef, rules: &str| UserLine {
            name: user.name().to_string(),
            rules: rules.to_string(),
            hash: hash_of(&user),
        };
        let admin = line(AclUserRef::Group, &format!("on {ADMIN_RULES}"));
        let mut users = Vec::new();
        if acl.disable_default {
            users.push(admin.clone());
        }
        users.push(line(
            AclUserRef::Derived(REPLICATION_USER),
            &format!("on {REPLICATION_RULES}"),
        ));
        users.push(line(
            AclUserRef::Derived(SENTINEL_USER),
            &format!("on {SENTINEL_RULES}"),
        ));
        for user in &acl.users {
            users.push(line(AclUserRef::Topology(user), &user.rules));
        }
        let mut sentinel_users = Vec::new();
        if acl.disable_default {
            sentinel_users.push(admin);
        }
        sentinel_users.push(line(
            AclUserRef::Derived(SENTINEL_PEER_USER),
            &format!("on {SENTINEL_PEER_RULES}"),
        ));
        sentinel_users.push(line(
            AclUserRef::Derived(SENTINEL_CLIENT_USER),
            &format!("on {SENTINEL_CLIENT_RULES}"),
        ));
        Some(AclConf {
            disable_default: acl.disable_default,
            users,
            sentinel_users,
            replication_user: REPLICATION_USER,
            replication_password: clear(REPLICATION_USER),
            sentinel_user: SENTINEL_USER,
            sentinel_password: clear(SENTINEL_USER),
            sentinel_peer_user: SENTINEL_PEER_USER,
            sentinel_peer_password: clear(SENTINEL_PEER_USER),
            sentinel_client_user: SENTINEL_CLIENT_USER,
        })
    }
}

/// Whose password a `user` line hashes.
enum AclUserRef<'a> {
    /// The admin: the group password itself.
    Group,
    /// One of rcluster's users, with a derived password.
    Derived(&'a str),
    /// A topology user: its own password, or a derived one.
    Topology(&'a AclUser),
}

impl AclUserRef<'_> {
    fn name(&self) -> &str {
        match self {
            AclUserRef::Group => ADMIN_USER,
            AclUserRef::Derived(name) => name,
            AclUserRef::Topology(user) => &user.name,
        }
    }
}

/// How a Kubernetes start-up script gets an ACL user's password (to hash it, and for
/// rcluster's own users to write it as `masterauth` / `auth-pass`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ScriptUser {
    pub name: String,
    /// `group` (the Secret's password), `derived` (from it), or `secret` (its own key).
    pub source: &'static str,
    /// Its clear password goes into a config (`masterauth`, `sentinel auth-pass`).
    pub clear: bool,
}

/// Every user whose hash (or password) a Kubernetes config holds as a placeholder.
pub fn script_users(topology: &Topology) -> Vec<ScriptUser> {
    let Some(acl) = &topology.acl else {
        return Vec::new();
    };
    let mut users = Vec::new();
    if acl.disable_default {
        users.push(ScriptUser {
            name: ADMIN_USER.into(),
            source: "group",
            clear: false,
        });
    }
    for name in [REPLICATION_USER, SENTINEL_USER, SENTINEL_PEER_USER] {
        users.push(ScriptUser {
            name: name.into(),
            source: "derived",
            clear: true,
        });
    }
    users.push(ScriptUser {
        name: SENTINEL_CLIENT_USER.into(),
        source: "derived",
        clear: false,
    });
    for user in &acl.users {
        users.push(ScriptUser {
            name: user.name.clone(),
            source: if user.secret.is_some() {
                "secret"
            } else {
                "derived"
            },
            clear: false,
        });
    }
    users
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_passwords_differ_per_user_and_group_password() {
        let a = derived_password("group", "app");
        assert_eq!(a.expose().len(), 64);
        assert_eq!(a, derived_password("group", "app"));
        assert_ne!(a, derived_password("group", "app2"));
        assert_ne!(a, derived_password("other", "app"));
        assert_ne!(a.expose(), "group");
    }
}
