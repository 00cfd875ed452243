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

/// The user rcluster logs in as when `acl.disable_default` turns `default` off; it holds
/// the group password and every right, like `default` otherwise.
pub const ADMIN_USER: &str = "rcluster";
/// The user replicas log in to their master as (`masteruser`).
pub const REPLICATION_USER: &str = "rcluster-replication";
/// The user Sentinel logs in to the data nodes as (`sentinel auth-user`).
pub const SENTINEL_USER: &str = "rcluster-sentinel";

/// The admin's rights: everything, like the `default` user it stands in for.
pub const ADMIN_RULES: &str = "~* &* +@all";
/// What a replica sends its master (Redis's ACL documentation, "ACL rules for Sentinel
/// and Replicas"): no key, no channel, three commands.
pub const REPLICATION_RULES: &str = "resetchannels -@all +psync +replconf +ping";
/// What Sentinel sends the data nodes (same documentation), with its one channel instead
/// of `allchannels`.
pub const SENTINEL_RULES: &str = "resetchannels &__sentinel__:hello -@all +multi +slaveof +ping +exec +subscribe +config|rewrite +role +publish +info +client|setname +client|kill +script|kill";

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

/// The `#<sha256>` form of a password in a `user` line; masked along with the group
/// password (for anything a user sees).
fn hash(password: &str, masked: bool) -> String {
    if masked {
        MASK.to_string()
    } else {
        hex::encode(Sha256::digest(password.as_bytes()))
    }
}

/// One `user NAME RULES #HASH` line of redis.conf / sentinel.conf.
#[derive(Clone, serde::Serialize)]
pub struct UserLine {
    pub name: String,
    pub rules: String,
    /// SHA-256 of the password in hex, or the mask.
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
    /// On the sentinels: the admin, so that rcluster logs in to them as to the data nodes.
    pub sentinel_users: Vec<UserLine>,
    pub replication_user: &'static str,
    /// `masterauth`: the replication user's password, verbatim (or the mask).
    pub replication_password: String,
    pub sentinel_user: &'static str,
    /// `sentinel auth-pass`: the Sentinel user's password, verbatim (or the mask).
    pub sentinel_password: String,
}

impl AclConf {
    /// `None` without `[acl]`. `password` is the group password as the config gets it:
    /// [`MASK`] masks every password and hash.
    pub fn new(topology: &Topology, password: &str) -> Option<AclConf> {
        let acl = topology.acl.as_ref()?;
        let masked = password == MASK;
        let secret = |user: &str| {
            if masked {
                MASK.to_string()
            } else {
                derived_password(password, user).expose().to_string()
            }
        };
        let line = |name: &str, rules: &str, password: &str| UserLine {
            name: name.to_string(),
            rules: rules.to_string(),
            hash: hash(password, masked),
        };
        let admin = line(ADMIN_USER, &format!("on {ADMIN_RULES}"), password);
        let mut users = Vec::new();
        if acl.disable_default {
            users.push(admin.clone());
        }
        let replication_password = secret(REPLICATION_USER);
        let sentinel_password = secret(SENTINEL_USER);
        users.push(line(
            REPLICATION_USER,
            &format!("on {REPLICATION_RULES}"),
            &replication_password,
        ));
        users.push(line(
            SENTINEL_USER,
            &format!("on {SENTINEL_RULES}"),
            &sentinel_password,
        ));
        for user in &acl.users {
            let own = user_password(user, password);
            users.push(line(&user.name, &user.rules, own.expose()));
        }
        Some(AclConf {
            disable_default: acl.disable_default,
            users,
            sentinel_users: if acl.disable_default {
                vec![admin]
            } else {
                Vec::new()
            },
            replication_user: REPLICATION_USER,
            replication_password,
            sentinel_user: SENTINEL_USER,
            sentinel_password,
        })
    }
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
