//! The topology file as written: serde types (`RawTopology`) and the document reader.
//!
//! Reading happens in two passes so that one run reports every problem. First the TOML is
//! parsed into a spanned tree, which we walk ourselves: unknown keys and wrongly-typed values
//! become diagnostics and are pruned. What is left is then deserialized into `RawTopology`,
//! which cannot fail on a key we already checked. Pure: no I/O, no defaults applied.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;

use serde::Deserialize;
use toml::Spanned;
use toml::de::{DeArray, DeTable, DeValue, ValueDeserializer};

use super::{Diagnostic, Severity};

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawTopology {
    pub cluster: RawCluster,
    pub auth: RawAuth,
    pub master: RawMaster,
    pub replicas: RawReplicas,
    pub sentinel: RawSentinel,
    pub persistence: RawPersistence,
    pub redis: RawRedis,
    pub kubernetes: RawKubernetes,
    pub replication: RawReplication,
    pub acl: RawAcl,
    pub tls: RawTls,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawTls {
    pub enabled: Option<bool>,
    pub ca_file: Option<String>,
    pub cert_file: Option<String>,
    pub key_file: Option<String>,
    pub client_auth: Option<String>,
    pub plaintext_port: Option<bool>,
    pub existing_secret: Option<String>,
}

/// `[acl]`: named users, and whether the `default` user is turned off.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawAcl {
    pub users: Option<BTreeMap<String, RawAclUser>>,
    pub disable_default: Option<bool>,
}

/// One `acl.users` entry: the rules alone (`app = "on ~app:* +@all"`, the password is
/// generated), or a table that also names where the password comes from.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum RawAclUser {
    Rules(String),
    Table(RawAclUserTable),
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawAclUserTable {
    pub rules: Option<String>,
    pub password_env: Option<String>,
    pub password_file: Option<String>,
}

/// The keys of an `acl.users.NAME` table.
pub const ACL_USER_KEYS: &[&str] = &["rules", "password_env", "password_file"];

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawReplication {
    pub min_replicas_to_write: Option<i64>,
    pub min_replicas_max_lag: Option<i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawCluster {
    pub name: Option<String>,
    pub bind: Option<String>,
    pub subnet: Option<String>,
    pub announce: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawAuth {
    pub password: Option<crate::secret::Secret>,
    pub password_env: Option<String>,
    pub password_file: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawMaster {
    pub port: Option<i64>,
}

// Integers are i64 here (TOML's own integer type) so that out-of-range values reach
// validation, which can say which range is allowed, instead of failing in serde.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawReplicas {
    pub count: Option<i64>,
    pub port: Option<i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawSentinel {
    pub count: Option<i64>,
    pub port: Option<i64>,
    pub master_name: Option<String>,
    pub quorum: Option<i64>,
    pub down_after_ms: Option<i64>,
    pub failover_timeout_ms: Option<i64>,
    pub parallel_syncs: Option<i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawPersistence {
    pub rdb: Option<bool>,
    pub save: Option<Vec<String>>,
    pub stop_writes_on_bgsave_error: Option<bool>,
    pub rdbcompression: Option<bool>,
    pub dbfilename: Option<String>,
    pub aof: Option<bool>,
    pub appendfilename: Option<String>,
    /// A string, not `AppendFsync`, so that a bad value gets validation's message.
    pub appendfsync: Option<String>,
    pub no_appendfsync_on_rewrite: Option<bool>,
    pub auto_aof_rewrite_min_size: Option<String>,
    pub auto_aof_rewrite_percentage: Option<i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawRedis {
    pub image: Option<String>,
    pub extra: Option<BTreeMap<String, ExtraValue>>,
}

/// A `redis.extra` value: redis.conf takes both as text.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum ExtraValue {
    Text(String),
    Integer(i64),
}

impl ExtraValue {
    pub fn to_text(&self) -> String {
        match self {
            ExtraValue::Text(s) => s.clone(),
            ExtraValue::Integer(n) => n.to_string(),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawKubernetes {
    pub namespace: Option<String>,
    pub storage_class: Option<String>,
    pub storage_size: Option<String>,
    pub anti_affinity: Option<String>,
    pub image: Option<String>,
    pub resources: Option<serde_json::Value>,
    pub redis_resources: Option<serde_json::Value>,
    pub sentinel_resources: Option<serde_json::Value>,
    pub cluster_domain: Option<String>,
    pub existing_secret: Option<String>,
    pub existing_secret_key: Option<String>,
    pub zone_spread: Option<String>,
    pub platform_uid: Option<bool>,
    pub sentinel_storage_size: Option<String>,
    pub version: Option<String>,
    pub image_pull_policy: Option<String>,
    pub image_pull_secrets: Option<Vec<String>>,
    pub node_selector: Option<BTreeMap<String, String>>,
    pub tolerations: Option<Vec<RawToleration>>,
    pub priority_class_name: Option<String>,
    pub network_policy: Option<RawNetworkPolicy>,

    pub secret_revision: Option<String>,
}

/// One `kubernetes.tolerations` entry as written (snake_case, like every other key).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawToleration {
    pub key: Option<String>,
    pub operator: Option<String>,
    pub value: Option<String>,
    pub effect: Option<String>,
    pub toleration_seconds: Option<i64>,
}

/// The keys of a `kubernetes.tolerations` entry, and their types.
pub const TOLERATION_KEYS: &[(&str, Kind)] = &[
    ("key", Kind::String),
    ("operator", Kind::String),
    ("value", Kind::String),
    ("effect", Kind::String),
    ("toleration_seconds", Kind::Integer),
];

/// `kubernetes.network_policy`: `true`/`false`, or a table that also names the clients.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum RawNetworkPolicy {
    Switch(bool),
    Table(RawNetworkPolicyTable),
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawNetworkPolicyTable {
    pub enabled: Option<bool>,
    pub client_labels: Option<BTreeMap<String, String>>,
    pub client_namespaces: Option<BTreeMap<String, String>>,
}

/// The keys of a `kubernetes.network_policy` table, and their types.
pub const NETWORK_POLICY_KEYS: &[(&str, Kind)] = &[
    ("enabled", Kind::Bool),
    ("client_labels", Kind::StringMap),
    ("client_namespaces", Kind::StringMap),
];

/// The TOML type a key takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Integer,
    String,
    Bool,
    StringList,
    Table,
    /// `redis.extra`: a table whose values are strings or integers.
    Directives,
    /// `acl.users`: a table whose values are rule strings or `{ rules, password_env,
    /// password_file }` tables.
    Users,
    /// A table whose values are strings (`kubernetes.node_selector`, label selectors).
    StringMap,
    /// `kubernetes.tolerations`: a list of tables of [`TOLERATION_KEYS`].
    Tolerations,
    /// `kubernetes.network_policy`: a boolean, or a table of [`NETWORK_POLICY_KEYS`].
    NetworkPolicy,
}

impl Kind {
    fn describe(self) -> &'static str {
        match self {
            Kind::Integer => "an integer",
            Kind::String => "a string",
            Kind::Bool => "`true` or `false`",
            Kind::StringList => "a list of strings",
            Kind::Table | Kind::Directives | Kind::Users => "a table",
            Kind::StringMap => "a table of strings",
            Kind::Tolerations => "a list of tables",
            Kind::NetworkPolicy => "`true`, `false` or a table",
        }
    }

    fn accepts(self, value: &DeValue<'_>) -> bool {
        matches!(
            (self, value),
            (Kind::Integer, DeValue::Integer(_))
                | (Kind::String, DeValue::String(_))
                | (Kind::Bool, DeValue::Boolean(_))
                | (Kind::StringList, DeValue::Array(_))
                | (
                    Kind::Table | Kind::Directives | Kind::Users | Kind::StringMap,
                    DeValue::Table(_)
                )
                | (Kind::Tolerations, DeValue::Array(_))
                | (Kind::NetworkPolicy, DeValue::Boolean(_) | DeValue::Table(_))
        )
    }
}

/// Every section and the keys it accepts, in the order the default file lists them.
/// Must match the `Raw*` structs; a unit test checks that.
pub const SCHEMA: &[(&str, &[(&str, Kind)])] = &[
    (
        "cluster",
        &[
            ("name", Kind::String),
            ("bind", Kind::String),
            ("subnet", Kind::String),
            ("announce", Kind::String),
        ],
    ),
    (
        "auth",
        &[
            ("password", Kind::String),
            ("password_env", Kind::String),
            ("password_file", Kind::String),
        ],
    ),
    ("master", &[("port", Kind::Integer)]),
    (
        "replicas",
        &[("count", Kind::Integer), ("port", Kind::Integer)],
    ),
    (
        "sentinel",
        &[
            ("count", Kind::Integer),
            ("port", Kind::Integer),
            ("master_name", Kind::String),
            ("quorum", Kind::Integer),
            ("down_after_ms", Kind::Integer),
            ("failover_timeout_ms", Kind::Integer),
            ("parallel_syncs", Kind::Integer),
        ],
    ),
    (
        "persistence",
        &[
            ("rdb", Kind::Bool),
            ("save", Kind::StringList),
            ("stop_writes_on_bgsave_error", Kind::Bool),
            ("rdbcompression", Kind::Bool),
            ("dbfilename", Kind::String),
            ("aof", Kind::Bool),
            ("appendfilename", Kind::String),
            ("appendfsync", Kind::String),
            ("no_appendfsync_on_rewrite", Kind::Bool),
            ("auto_aof_rewrite_min_size", Kind::String),
            ("auto_aof_rewrite_percentage", Kind::Integer),
        ],
    ),
    (
        "redis",
        &[("image", Kind::String), ("extra", Kind::Directives)],
    ),
    (
        "kubernetes",
        &[
            ("namespace", Kind::String),
            ("storage_class", Kind::String),
            ("storage_size", Kind::String),
            ("anti_affinity", Kind::String),
            ("image", Kind::String),
            ("resources", Kind::Table),
            ("redis_resources", Kind::Table),
            ("sentinel_resources", Kind::Table),
            ("cluster_domain", Kind::String),
            ("existing_secret", Kind::String),
            ("existing_secret_key", Kind::String),
            ("zone_spread", Kind::String),
            ("platform_uid", Kind::Bool),
            ("sentinel_storage_size", Kind::String),
            ("version", Kind::String),
            ("image_pull_policy", Kind::String),
            ("image_pull_secrets", Kind::StringList),
            ("node_selector", Kind::StringMap),
            ("tolerations", Kind::Tolerations),
            ("priority_class_name", Kind::String),
            ("network_policy", Kind::NetworkPolicy),
            ("secret_revision", Kind::String),
        ],
    ),
    (
        "replication",
        &[
            ("min_replicas_to_write", Kind::Integer),
            ("min_replicas_max_lag", Kind::Integer),
        ],
    ),
    (
        "acl",
        &[("users", Kind::Users), ("disable_default", Kind::Bool)],
    ),
    (
        "tls",
        &[
            ("enabled", Kind::Bool),
            ("ca_file", Kind::String),
            ("cert_file", Kind::String),
            ("key_file", Kind::String),
            ("client_auth", Kind::String),
            ("plaintext_port", Kind::Bool),
            ("existing_secret", Kind::String),
        ],
    ),
];

/// A 1-based line and column (in characters) in the topology file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Position {
    pub line: usize,
    pub column: usize,
}

impl Position {
    /// Converts a byte offset, clamping it into `text` so a stray span cannot panic.
    pub fn at(text: &str, offset: usize) -> Position {
        let mut offset = offset.min(text.len());
        while !text.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = &text[..offset];
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        Position {
            line: before.matches('\n').count() + 1,
            column: before[line_start..].chars().count() + 1,
        }
    }
}

/// The file as read: the values, where each key is, and what was already wrong.
#[derive(Debug, Clone, Default)]
pub struct RawDocument {
    pub topology: RawTopology,
    /// Where each dotted key (`sentinel.quorum`, `persistence.save[1]`,
    /// `redis.extra.maxmemory`, or a section `sentinel`) starts in the file.
    pub positions: BTreeMap<String, Position>,
    /// Keys whose value was rejected while reading; validation skips rules that use them,
    /// so one mistake is not reported twice.
    pub broken: BTreeSet<String>,
    /// Syntax errors, unknown keys and wrong types.
    pub errors: Vec<Diagnostic>,
    /// The TOML itself did not parse: nothing else is worth checking.
    pub syntax_failed: bool,
}

impl RawDocument {
    pub fn parse(text: &str) -> RawDocument {
        let mut reader = Reader {
            text,
            doc: RawDocument::default(),
        };
        let (root, syntax_errors) = DeTable::parse_recoverable(text);
        if !syntax_errors.is_empty() {
            for e in syntax_errors {
                let span = e.span().unwrap_or(0..0);
                let message = syntax_message(text, e.message(), &span);
                reader.error_at_span("", span, message);
            }
            reader.doc.syntax_failed = true;
            return reader.doc;
        }
        let span = root.span();
        let pruned = reader.walk_root(root.get_ref());
        reader.doc.topology = reader.deserialize(Spanned::new(span, DeValue::Table(pruned)));
        reader.doc
    }

    /// Where `key` is, or else its closest enclosing key that is in the file.
    pub fn position(&self, key: &str) -> Option<Position> {
        let mut key = key;
        loop {
            if let Some(p) = self.positions.get(key) {
                return Some(*p);
            }
            let cut = key.rfind(['.', '['])?;
            key = &key[..cut];
        }
    }

    pub fn has(&self, key: &str) -> bool {
        self.positions.contains_key(key)
    }
}

fn syntax_message(text: &str, message: &str, span: &Range<usize>) -> String {
    if message == "duplicate key"
        && let Some(key) = text.get(span.clone()).filter(|k| !k.is_empty())
    {
        let line_before = text[..span.start].rsplit('\n').next().unwrap_or("");
        if line_before.trim_start().starts_with('[') {
            return format!("table `[{key}]` appears twice; merge the two into one section");
        }
        return format!("duplicate key `{key}`: each key may appear only once in a table");
    }
    format!("invalid toml: {message}")
}

struct Reader<'t> {
    text: &'t str,
    doc: RawDocument,
}

impl<'t> Reader<'t> {
    fn error_at_span(&mut self, key: &str, span: Range<usize>, message: String) {
        let p = Position::at(self.text, span.start);
        self.doc.errors.push(Diagnostic {
            severity: Severity::Error,
            key: key.to_string(),
            line: Some(p.line),
            column: Some(p.column),
            message,
        });
    }

    fn record(&mut self, key: &str, span: &Range<usize>) {
        let p = Position::at(self.text, span.start);
        self.doc.positions.insert(key.to_string(), p);
    }

    fn walk_root<'i>(&mut self, root: &DeTable<'i>) -> DeTable<'i> {
        let mut pruned = DeTable::new();
        for (key, value) in root.iter() {
            let name: &str = key.get_ref();
            let Some((_, fields)) = SCHEMA.iter().find(|(s, _)| *s == name) else {
                let valid: Vec<&str> = SCHEMA.iter().map(|(s, _)| *s).collect();
                let message = format!(
                    "unknown section `{name}`{}; valid sections: {}",
                    did_you_mean(name, &valid),
                    backticked(&valid)
                );
                self.error_at_span(name, key.span(), message);
                continue;
            };
            self.record(name, &key.span());
            match value.get_ref() {
                DeValue::Table(table) => {
                    let section = self.walk_section(name, fields, table);
                    pruned.insert(
                        key.clone(),
                        Spanned::new(value.span(), DeValue::Table(section)),
                    );
                }
                other => {
                    let message = format!(
                        "`{name}` must be a table (`[{name}]`), found {}",
                        article(other.type_str())
                    );
                    self.error_at_span(name, key.span(), message);
                    self.doc.broken.insert(name.to_string());
                }
            }
        }
        pruned
    }

    fn walk_section<'i>(
        &mut self,
        section: &str,
        fields: &[(&str, Kind)],
        table: &DeTable<'i>,
    ) -> DeTable<'i> {
        let mut pruned = DeTable::new();
        for (key, value) in table.iter() {
            let name: &str = key.get_ref();
            let dotted = format!("{section}.{name}");
            let Some((_, kind)) = fields.iter().find(|(f, _)| *f == name) else {
                let valid: Vec<&str> = fields.iter().map(|(f, _)| *f).collect();
                let message = format!(
                    "unknown key `{dotted}`{}; valid keys in `[{section}]`: {}",
                    did_you_mean(name, &valid),
                    backticked(&valid)
                );
                self.error_at_span(&dotted, key.span(), message);
                continue;
            };
            self.record(&dotted, &key.span());
            if !kind.accepts(value.get_ref()) {
                let message = type_message(&dotted, *kind, value.get_ref());
                self.error_at_span(&dotted, key.span(), message);
                self.doc.broken.insert(dotted);
                continue;
            }
            let kept = match (kind, value.get_ref()) {
                (Kind::StringList, DeValue::Array(items)) => self.walk_list(&dotted, items),
                (Kind::Directives, DeValue::Table(entries)) => {
                    Some(self.walk_directives(&dotted, entries))
                }
                (Kind::Users, DeValue::Table(entries)) => Some(self.walk_users(&dotted, entries)),
                (Kind::StringMap, DeValue::Table(entries)) => {
                    self.walk_string_map(&dotted, entries)
                }
                (Kind::Tolerations, DeValue::Array(items)) => self.walk_tolerations(&dotted, items),
                (Kind::NetworkPolicy, DeValue::Table(fields)) => {
                    self.walk_fields(&dotted, NETWORK_POLICY_KEYS, "the network policy", fields)
                }
                _ => Some(value.get_ref().clone()),
            };
            match kept {
                Some(v) => {
                    pruned.insert(key.clone(), Spanned::new(value.span(), v));
                }
                None => {
                    self.doc.broken.insert(dotted);
                }
            }
        }
        pruned
    }

    /// A list with any non-string element is dropped whole: validating the rest alone
    /// would describe a list the user did not write.
    fn walk_list<'i>(&mut self, dotted: &str, items: &DeArray<'i>) -> Option<DeValue<'i>> {
        let mut ok = true;
        for (i, item) in items.iter().enumerate() {
            let path = format!("{dotted}[{i}]");
            self.record(&path, &item.span());
            if !matches!(item.get_ref(), DeValue::String(_)) {
                let message = format!(
                    "`{path}` must be a string, found {}{}",
                    article(item.get_ref().type_str()),
                    if dotted == "persistence.save" {
                        "; write each entry as `\"SECONDS CHANGES\"`, like `\"900 1\"`"
                    } else {
                        ""
                    }
                );
                self.error_at_span(&path, item.span(), message);
                ok = false;
            }
        }
        ok.then(|| DeValue::Array(items.clone()))
    }

    fn walk_directives<'i>(&mut self, dotted: &str, entries: &DeTable<'i>) -> DeValue<'i> {
        let mut kept = DeTable::new();
        for (key, value) in entries.iter() {
            let path = format!("{dotted}.{}", key.get_ref());
            self.record(&path, &key.span());
            match value.get_ref() {
                DeValue::String(_) | DeValue::Integer(_) => {
                    kept.insert(key.clone(), value.clone());
                }
                other => {
                    let hint = if matches!(other, DeValue::Boolean(_)) {
                        "; redis.conf spells booleans `\"yes\"` and `\"no\"`"
                    } else {
                        "; write the directive's value as redis.conf would, in quotes"
                    };
                    let message = format!(
                        "`{path}` must be a string or an integer, found {}{hint}",
                        article(other.type_str())
                    );
                    self.error_at_span(&path, key.span(), message);
                    self.doc.broken.insert(path);
                }
            }
        }
        DeValue::Table(kept)
    }

    /// `acl.users`: each user is a rules string or a table of [`ACL_USER_KEYS`], all
    /// strings. A user with a wrong key or type is dropped whole (and marked broken), so
    /// validation does not also call it incomplete.
    fn walk_users<'i>(&mut self, dotted: &str, entries: &DeTable<'i>) -> DeValue<'i> {
        let mut kept = DeTable::new();
        for (key, value) in entries.iter() {
            let path = format!("{dotted}.{}", key.get_ref());
            self.record(&path, &key.span());
            match value.get_ref() {
                DeValue::String(_) => {
                    kept.insert(key.clone(), value.clone());
                }
                DeValue::Table(fields) => {
                    let mut ok = true;
                    for (field, v) in fields.iter() {
                        let name: &str = field.get_ref();
                        let field_path = format!("{path}.{name}");
                        self.record(&field_path, &field.span());
                        if !ACL_USER_KEYS.contains(&name) {
                            let message = format!(
                                "unknown key `{field_path}`{}; valid keys of a user: {}",
                                did_you_mean(name, ACL_USER_KEYS),
                                backticked(ACL_USER_KEYS)
                            );
                            self.error_at_span(&field_path, field.span(), message);
                            ok = false;
                        } else if !matches!(v.get_ref(), DeValue::String(_)) {
                            let message = type_message(&field_path, Kind::String, v.get_ref());
                            self.error_at_span(&field_path, field.span(), message);
                            ok = false;
                        }
                    }
                    if ok {
                        kept.insert(key.clone(), value.clone());
                    } else {
                        self.doc.broken.insert(path);
                    }
                }
                other => {
                    let message = format!(
                        "`{path}` must be the user's rules as a string (`\"on ~app:* +@all\"`) or a table (`{{ rules = \"...\", password_env = \"NAME\" }}`), found {}",
                        article(other.type_str())
                    );
                    self.error_at_span(&path, key.span(), message);
                    self.doc.broken.insert(path);
                }
            }
        }
        DeValue::Table(kept)
    }

    /// A table of strings (labels, a node selector). One bad entry drops the whole table:
    /// a selector without it would select more than the user asked for.
    fn walk_string_map<'i>(&mut self, dotted: &str, entries: &DeTable<'i>) -> Option<DeValue<'i>> {
        let mut ok = true;
        for (key, value) in entries.iter() {
            let path = format!("{dotted}.{}", key.get_ref());
            self.record(&path, &key.span());
            if !matches!(value.get_ref(), DeValue::String(_)) {
                let message = type_message(&path, Kind::String, value.get_ref());
                self.error_at_span(&path, key.span(), message);
                ok = false;
            }
        }
        ok.then(|| DeValue::Table(entries.clone()))
    }

    /// `kubernetes.tolerations`: every entry a table of [`TOLERATION_KEYS`]. A bad entry is
    /// marked broken and kept as an empty table, so the others keep their indices and are
    /// still checked (validation skips broken entries).
    fn walk_tolerations<'i>(&mut self, dotted: &str, items: &DeArray<'i>) -> Option<DeValue<'i>> {
        let mut kept = DeArray::new();
        for (i, item) in items.iter().enumerate() {
            let path = format!("{dotted}[{i}]");
            self.record(&path, &item.span());
            let good = match item.get_ref() {
                DeValue::Table(fields) => self
                    .walk_fields(&path, TOLERATION_KEYS, "a toleration", fields)
                    .is_some(),
                other => {
                    let message = format!(
                        "`{path}` must be a table like `{{ key = \"dedicated\", operator = \"Equal\", value = \"redis\", effect = \"NoSchedule\" }}`, found {}",
                        article(other.type_str())
                    );
                    self.error_at_span(&path, item.span(), message);
                    false
                }
            };
            if good {
                kept.push(item.clone());
            } else {
                self.doc.broken.insert(path);
                kept.push(Spanned::new(item.span(), DeValue::Table(DeTable::new())));
            }
        }
        Some(DeValue::Array(kept))
    }

    /// A small table with fixed keys (`what` names it in messages): unknown keys and wrong
    /// types are errors, and drop the table.
    fn walk_fields<'i>(
        &mut self,
        dotted: &str,
        keys: &[(&str, Kind)],
        what: &str,
        fields: &DeTable<'i>,
    ) -> Option<DeValue<'i>> {
        let mut ok = true;
        for (field, value) in fields.iter() {
            let name: &str = field.get_ref();
            let path = format!("{dotted}.{name}");
            self.record(&path, &field.span());
            let Some((_, kind)) = keys.iter().find(|(k, _)| *k == name) else {
                let valid: Vec<&str> = keys.iter().map(|(k, _)| *k).collect();
                let message = format!(
                    "unknown key `{path}`{}; valid keys of {what}: {}",
                    did_you_mean(name, &valid),
                    backticked(&valid)
                );
                self.error_at_span(&path, field.span(), message);
                ok = false;
                continue;
            };
            if !kind.accepts(value.get_ref()) {
                let message = type_message(&path, *kind, value.get_ref());
                self.error_at_span(&path, field.span(), message);
                ok = false;
                continue;
            }
            if let (Kind::StringMap, DeValue::Table(entries)) = (kind, value.get_ref()) {
                ok &= self.walk_string_map(&path, entries).is_some();
            }
        }
        ok.then(|| DeValue::Table(fields.clone()))
    }

    /// Every key was type-checked, so this fails only on what the walk cannot see
    /// (an integer beyond 64 bits, say). Such a key is reported and removed, then we retry.
    fn deserialize(&mut self, mut root: Spanned<DeValue<'_>>) -> RawTopology {
        for _ in 0..64 {
            let err = match RawTopology::deserialize(ValueDeserializer::from(root.clone())) {
                Ok(raw) => return raw,
                Err(err) => err,
            };
            let span = err.span().unwrap_or(0..0);
            let message = err.message().trim().to_string();
            match remove_key_at(&mut root, &span) {
                Some((dotted, key_span, value)) => {
                    let message = match value.as_ref().and_then(DeValue::as_integer) {
                        Some(n) => format!(
                            "`{dotted}` is {}, beyond the largest integer toml allows ({}); use a smaller value",
                            n.as_str(),
                            i64::MAX
                        ),
                        None => format!("`{dotted}` is invalid: {message}"),
                    };
                    self.error_at_span(&dotted, key_span, message);
                    self.doc.broken.insert(dotted);
                }
                None => {
                    self.error_at_span("", span, format!("invalid topology: {message}"));
                    break;
                }
            }
        }
        RawTopology::default()
    }
}

/// Removes the `section.key` whose value contains `span`; returns its path, the key's span
/// and the value removed.
fn remove_key_at<'i>(
    root: &mut Spanned<DeValue<'i>>,
    span: &Range<usize>,
) -> Option<(String, Range<usize>, Option<DeValue<'i>>)> {
    let contains = |outer: Range<usize>| outer.start <= span.start && span.end <= outer.end;
    let DeValue::Table(sections) = root.get_mut() else {
        return None;
    };
    let mut found = None;
    for (section, value) in sections.iter() {
        if let DeValue::Table(keys) = value.get_ref() {
            for (key, v) in keys.iter() {
                if contains(v.span()) || contains(key.span()) {
                    found = Some((
                        section.get_ref().to_string(),
                        key.get_ref().to_string(),
                        key.span(),
                    ));
                }
            }
        }
    }
    let (section, key, key_span) = found?;
    let mut removed = None;
    if let Some(DeValue::Table(keys)) = sections.get_mut(section.as_str()).map(Spanned::get_mut) {
        removed = keys.remove(key.as_str()).map(Spanned::into_inner);
    }
    Some((format!("{section}.{key}"), key_span, removed))
}

fn type_message(dotted: &str, kind: Kind, value: &DeValue<'_>) -> String {
    let mut message = format!(
        "`{dotted}` must be {}, found {}",
        kind.describe(),
        article(value.type_str())
    );
    let key = dotted.rsplit('.').next().unwrap_or(dotted);
    match (kind, value) {
        (Kind::Integer, DeValue::String(s)) if s.trim().parse::<i64>().is_ok() => {
            message.push_str(&format!("; remove the quotes: `{key} = {}`", s.trim()));
        }
        (Kind::Bool, DeValue::String(s))
            if matches!(s.as_ref(), "true" | "false" | "yes" | "no") =>
        {
            message.push_str("; write `true` or `false` without quotes");
        }
        (Kind::String, DeValue::Integer(_) | DeValue::Float(_) | DeValue::Boolean(_)) => {
            message.push_str("; put the value in quotes");
        }
        (Kind::StringList, DeValue::String(_)) => {
            message.push_str("; write a list like `[\"900 1\", \"300 10\"]`");
        }
        _ => {}
    }
    message
}

fn article(type_name: &str) -> String {
    match type_name.chars().next() {
        Some('a' | 'e' | 'i' | 'o' | 'u') => format!("an {type_name}"),
        _ => format!("a {type_name}"),
    }
}

fn backticked(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// ` (did you mean `quorum`?)` when a valid name is a typo away.
fn did_you_mean(name: &str, valid: &[&str]) -> String {
    valid
        .iter()
        .map(|v| (edit_distance(name, v), *v))
        .filter(|(d, v)| *d <= 1.max(v.len() / 3))
        .min()
        .map(|(_, v)| format!(" (did you mean `{v}`?)"))
        .unwrap_or_default()
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1)
                .min(row[j] + 1)
                .min(diagonal + usize::from(ca != *cb));
            diagonal = above;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_one_based_and_count_characters() {
        let text = "ab\nçd = 1\n";
        assert_eq!(Position::at(text, 0), Position { line: 1, column: 1 });
        assert_eq!(Position::at(text, 3), Position { line: 2, column: 1 });
        // `d` follows a two-byte character: byte 5, column 2.
        assert_eq!(Position::at(text, 5), Position { line: 2, column: 2 });
        assert_eq!(Position::at(text, 999), Position { line: 3, column: 1 });
        // Inside a multi-byte character: clamped back, no panic.
        assert_eq!(Position::at(text, 4), Position { line: 2, column: 1 });
    }

    #[test]
    fn schema_matches_the_raw_structs() {
        // Every schema key, with a value of its kind, deserializes under deny_unknown_fields.
        let mut text = String::new();
        for (section, fields) in SCHEMA {
            text.push_str(&format!("[{section}]\n"));
            for (key, kind) in *fields {
                let value = match kind {
                    Kind::Integer => "1",
                    Kind::String => "\"x\"",
                    Kind::Bool => "true",
                    Kind::StringList => "[\"1 1\"]",
                    Kind::Table | Kind::Directives => "{ a = \"b\" }",
                    Kind::Users => "{ a = \"on\", b = { rules = \"on\", password_env = \"X\" } }",
                    Kind::StringMap => "{ a = \"b\" }",
                    Kind::Tolerations => {
                        "[{ key = \"k\", operator = \"Equal\", value = \"v\", effect = \"NoExecute\", toleration_seconds = 1 }]"
                    }
                    Kind::NetworkPolicy => {
                        "{ enabled = true, client_labels = { a = \"b\" }, client_namespaces = {} }"
                    }
                };
                text.push_str(&format!("{key} = {value}\n"));
            }
        }
        let doc = RawDocument::parse(&text);
        assert_eq!(doc.errors, vec![]);
        assert_eq!(doc.topology.sentinel.quorum, Some(1));
        assert_eq!(doc.topology.kubernetes.image.as_deref(), Some("x"));
        let whole: Result<RawTopology, _> = toml::from_str(&text);
        assert!(whole.is_ok(), "{whole:?}");
    }

    #[test]
    fn suggests_close_names() {
        assert_eq!(
            did_you_mean("qorum", &["count", "quorum"]),
            " (did you mean `quorum`?)"
        );
        assert_eq!(did_you_mean("zzzzzz", &["count", "quorum"]), "");
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }

    #[test]
    fn an_integer_beyond_64_bits_is_reported_on_its_key() {
        let doc = RawDocument::parse("[sentinel]\nquorum = 99999999999999999999\ncount = 3\n");
        assert_eq!(doc.errors.len(), 1, "{:?}", doc.errors);
        assert_eq!(doc.errors[0].key, "sentinel.quorum");
        assert_eq!(
            (doc.errors[0].line, doc.errors[0].column),
            (Some(2), Some(1))
        );
        assert_eq!(doc.topology.sentinel.count, Some(3));
        assert!(doc.broken.contains("sentinel.quorum"));
    }
}
