//! `[acl]`: user names, their rules (never a password) and their password sources. A
//! child of `validate` so it uses the same `Checker`.

use std::path::PathBuf;

use super::{Checker, is_env_name};
use crate::topology::raw::{RawAclUser, RawAclUserTable};
use crate::topology::{Acl, AclUser, UserPassword};

/// Longest user name accepted (Redis has no limit; a name is also a file name and part of
/// an environment variable's name).
const MAX_USER_NAME: usize = 64;

/// Rule words that stand alone.
const RULE_WORDS: &[&str] = &[
    "on",
    "off",
    "allkeys",
    "allchannels",
    "allcommands",
    "nocommands",
    "resetkeys",
    "resetchannels",
    "clearselectors",
];

/// Rule prefixes: keys (`~`, `%R~`...), channels (`&`), commands and categories (`+`, `-`).
const RULE_PREFIXES: &[char] = &['~', '%', '&', '+', '-'];

impl Checker<'_> {
    pub(super) fn acl(&mut self) -> Option<Acl> {
        if !self.doc.has("acl") {
            return None;
        }
        let raw = &self.doc.topology.acl;
        let mut users = Vec::new();
        for (name, user) in raw.users.iter().flatten() {
            let key = format!("acl.users.{name}");
            if let Some(problem) = user_name_problem(name) {
                self.error(&key, format!("`{}` {problem}", super::one_line(&key)));
                continue;
            }
            let table = match user {
                RawAclUser::Rules(rules) => RawAclUserTable {
                    rules: Some(rules.clone()),
                    ..Default::default()
                },
                RawAclUser::Table(table) => table.clone(),
            };
            let rules_key = match user {
                RawAclUser::Rules(_) => key.clone(),
                RawAclUser::Table(_) => format!("{key}.rules"),
            };
            let Some(rules) = table.rules else {
                self.error(
                    &key,
                    format!("`{key}` has no `rules`; add `rules = \"on ~app:* +@all -@dangerous\"` (what the user may do)"),
                );
                continue;
            };
            self.rules(&rules_key, &rules);
            let password = match (table.password_env, table.password_file) {
                (Some(_), Some(_)) => {
                    self.error_at(
                        &key,
                        &format!("{key}.password_file"),
                        format!("`{key}.password_env` and `{key}.password_file` are both password sources; keep at most one (none lets `up` generate the password)"),
                    );
                    continue;
                }
                (Some(var), None) => {
                    let env_key = format!("{key}.password_env");
                    if !is_env_name(&var) {
                        self.error(
                            &env_key,
                            format!("`{env_key}` is `{}`, not an environment variable name; use letters, digits and `_`, not starting with a digit", super::one_line(&var)),
                        );
                    }
                    UserPassword::Env(var)
                }
                (None, Some(path)) => {
                    if path.is_empty() {
                        let file_key = format!("{key}.password_file");
                        self.error(
                            &file_key,
                            format!("`{file_key}` is empty; set it to the path of the file that holds the user's password"),
                        );
                    }
                    UserPassword::File(PathBuf::from(path))
                }
                (None, None) => UserPassword::Generated,
            };
            users.push(AclUser {
                name: name.clone(),
                rules: rules.split_whitespace().collect::<Vec<_>>().join(" "),
                password,
                secret: None,
            });
        }
        Some(Acl {
            users,
            disable_default: raw.disable_default.unwrap_or(false),
        })
    }

    /// Sanity of one user's rules: known words and prefixes, and no password in them.
    fn rules(&mut self, key: &str, rules: &str) {
        if rules.trim().is_empty() {
            self.error(
                key,
                format!("`{key}` is empty; write the user's rules, like `\"on ~app:* +@all -@dangerous\"`"),
            );
            return;
        }
        if rules.contains(['\n', '\r']) {
            self.error(
                key,
                format!("`{key}` contains a newline; write the rules on one line"),
            );
            return;
        }
        let mut depth = 0usize;
        let mut state = None;
        for token in rules.split_whitespace() {
            // Selectors `(~app:* +get)` hold the same rules inside parentheses.
            let inner = token.trim_start_matches('(');
            depth += token.len() - inner.len();
            let bare = inner.trim_end_matches(')');
            let closing = inner.len() - bare.len();
            let lower = bare.to_ascii_lowercase();
            if let Some(first) = bare
                .chars()
                .next()
                .filter(|c| matches!(c, '>' | '<' | '#' | '!'))
            {
                self.error(
                    key,
                    format!("`{key}` holds a password rule (`{first}...`); passwords never go in rules: rcluster generates each user's password, or reads it from `password_env` / `password_file` in the user's table"),
                );
                return;
            }
            if matches!(lower.as_str(), "nopass" | "resetpass" | "reset") {
                self.error(
                    key,
                    format!("`{key}` holds `{bare}`, which would remove the password rcluster sets (or let anyone in); leave passwords to rcluster"),
                );
                return;
            }
            let known = bare.is_empty()
                || RULE_WORDS.contains(&lower.as_str())
                || bare.starts_with(RULE_PREFIXES) && bare.len() > 1;
            if !known {
                self.error(
                    key,
                    format!("`{key}`: `{}` is not an ACL rule; rules are words like `on`, `~app:*` (keys), `&chan` (channels), `+@read`, `-flushall` (commands)", super::one_line(bare)),
                );
                return;
            }
            if depth == 0 && matches!(lower.as_str(), "on" | "off") {
                state = Some(lower);
            }
            if closing > depth {
                self.error(
                    key,
                    format!("`{key}` closes a selector `)` it never opened"),
                );
                return;
            }
            depth -= closing;
        }
        if depth != 0 {
            self.error(key, format!("`{key}` opens a selector `(` it never closes"));
            return;
        }
        if state.is_none() {
            self.warn(
                key,
                format!("`{key}` says neither `on` nor `off`: Redis creates the user `off`, and nobody can log in as it; add `on`"),
            );
        }
    }
}

/// What is wrong with an ACL user name, or `None`.
fn user_name_problem(name: &str) -> Option<String> {
    if name == "default" {
        return Some("names Redis's `default` user; turn it off with `acl.disable_default = true`, and give other users their own names".into());
    }
    if name == crate::topology::ADMIN_USER || name.starts_with("rcluster-") {
        return Some(format!(
            "is reserved: rcluster logs in as `{}` and replicates and monitors as `rcluster-*` users; choose another name",
            crate::topology::ADMIN_USER
        ));
    }
    let valid = !name.is_empty()
        && name.len() <= MAX_USER_NAME
        && !name.starts_with('-')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    (!valid).then(|| {
        format!("is not a valid user name; use 1 to {MAX_USER_NAME} letters, digits, `_` and `-`, not starting with `-`")
    })
}
