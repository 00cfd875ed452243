//! Parsing and validation, fed from strings: every rule, warning and password source.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use super::*;

const DEFAULT_FILE: &str = include_str!("../../topology.toml");

fn no_env(_: &str) -> Option<String> {
    None
}

fn no_files(path: &Path) -> io::Result<String> {
    Err(io::Error::new(
        io::ErrorKind::NotFound,
        format!("No such file: {}", path.display()),
    ))
}

fn check(text: &str) -> Result<Loaded, TopologyError> {
    parse(Path::new("topology.toml"), text, None, &no_env, &no_files)
}

fn errors(text: &str) -> Vec<Diagnostic> {
    match check(text) {
        Ok(_) => panic!("expected errors for:\n{text}"),
        Err(e) => e.errors,
    }
}

/// The single error `text` produces, as (key, line, column, message).
fn error(text: &str) -> (String, usize, usize, String) {
    let errors = errors(text);
    assert_eq!(errors.len(), 1, "expected one error, got {errors:#?}");
    let e = &errors[0];
    assert_eq!(e.severity, Severity::Error);
    (
        e.key.clone(),
        e.line.unwrap_or(0),
        e.column.unwrap_or(0),
        e.message.clone(),
    )
}

fn warnings(text: &str) -> Vec<(String, String)> {
    match check(text) {
        Ok(loaded) => loaded
            .warnings
            .into_iter()
            .map(|w| {
                assert_eq!(w.severity, Severity::Warning);
                assert!(w.line.is_some() && w.column.is_some());
                (w.key, w.message)
            })
            .collect(),
        Err(e) => panic!("expected no errors, got {:#?}", e.errors),
    }
}

fn assert_error(text: &str, key: &str, line: usize, column: usize, message: &str) {
    assert_eq!(
        error(text),
        (key.to_string(), line, column, message.to_string()),
        "for:\n{text}"
    );
}

// ---- defaults -------------------------------------------------------------------------

#[test]
fn the_default_file_is_the_default_group_without_warnings() {
    let loaded = check(DEFAULT_FILE).expect("default topology is valid");
    assert_eq!(loaded.warnings, vec![]);
    assert!(loaded.password.is_none());
    let t = loaded.topology;
    assert_eq!(t.source, PathBuf::from("topology.toml"));
    assert_eq!(t.cluster.name, "demo");
    assert_eq!(t.cluster.bind.to_string(), "127.0.0.1");
    assert_eq!(t.cluster.subnet, None);
    assert_eq!(t.auth, AuthSource::Generated);
    assert_eq!(t.master.port, 6379);
    assert_eq!((t.replicas.count, t.replicas.port), (2, 6380));
    assert_eq!(
        t.sentinel,
        SentinelSpec {
            count: 3,
            port: 26379,
            master_name: "mymaster".into(),
            quorum: 2,
            down_after_ms: 5000,
            failover_timeout_ms: 60000,
            parallel_syncs: 1,
        }
    );
    assert_eq!(
        t.persistence,
        Persistence {
            rdb: true,
            save: vec!["900 1".into(), "300 10".into(), "60 10000".into()],
            stop_writes_on_bgsave_error: true,
            rdbcompression: true,
            dbfilename: "dump.rdb".into(),
            aof: true,
            appendfilename: "appendonly.aof".into(),
            appendfsync: AppendFsync::Everysec,
            no_appendfsync_on_rewrite: false,
            auto_aof_rewrite_min_size: "64mb".into(),
            auto_aof_rewrite_percentage: 100,
        }
    );
    assert_eq!(
        t.redis,
        RedisSpec {
            image: None,
            extra: BTreeMap::new()
        }
    );
    assert_eq!(
        t.kubernetes,
        KubernetesSpec {
            namespace: "default".into(),
            storage_class: None,
            storage_size: "1Gi".into(),
            anti_affinity: AntiAffinity::Preferred,
            image: "redis:7.2".into(),
            resources: None,
            redis_resources: None,
            sentinel_resources: None,
            cluster_domain: "cluster.local".into(),
            existing_secret: None,
            existing_secret_key: "password".into(),
            zone_spread: ZoneSpread::None,
            platform_uid: false,
            secret_revision: None,
            sentinel_storage_size: "100Mi".into(),
            version: KubeVersion { minor: 33 },
            image_pull_policy: None,
            image_pull_secrets: vec![],
            node_selector: BTreeMap::new(),
            tolerations: vec![],
            priority_class_name: None,
            network_policy: Some(NetworkPolicySpec {
                client_labels: BTreeMap::from([("demo-client".into(), "true".into())]),
                client_namespaces: None,
            }),
        }
    );
}

#[test]
fn an_empty_file_is_the_default_group() {
    let empty = check("").expect("empty file is valid");
    let default = check(DEFAULT_FILE).expect("default is valid");
    assert_eq!(empty.topology, default.topology);
    assert_eq!(empty.warnings, vec![]);
}

#[test]
fn extra_keys_are_read() {
    let text = r#"
[cluster]
subnet = "172.28.5.0/24"
bind = "::1"

[redis]
image = "redis:7.4"
extra = { maxmemory = "256mb", maxclients = 1000 }

[kubernetes]
namespace = "cache"
storage_class = "fast-ssd"
storage_size = "500Mi"
anti_affinity = "required"
image = "redis:7.4-alpine"
resources = { requests = { cpu = "100m", memory = "128Mi" } }
"#;
    let t = check(text).expect("valid").topology;
    assert_eq!(t.cluster.subnet, Some(Subnet([172, 28, 5])));
    assert_eq!(t.cluster.bind.to_string(), "::1");
    assert_eq!(t.redis.image.as_deref(), Some("redis:7.4"));
    assert_eq!(
        t.redis.extra.get("maxmemory").map(String::as_str),
        Some("256mb")
    );
    assert_eq!(
        t.redis.extra.get("maxclients").map(String::as_str),
        Some("1000")
    );
    assert_eq!(t.kubernetes.namespace, "cache");
    assert_eq!(t.kubernetes.storage_class.as_deref(), Some("fast-ssd"));
    assert_eq!(t.kubernetes.anti_affinity, AntiAffinity::Required);
    assert_eq!(
        t.kubernetes.resources,
        Some(serde_json::json!({ "requests": { "cpu": "100m", "memory": "128Mi" } }))
    );
}

#[test]
fn ports_zero_mean_the_engine_picks_and_never_collide() {
    let text = "[master]\nport = 0\n[replicas]\nport = 0\n[sentinel]\nport = 0\n";
    let t = check(text).expect("valid").topology;
    assert_eq!((t.master.port, t.replicas.port, t.sentinel.port), (0, 0, 0));
}

// ---- reading: syntax, types, unknown keys, positions -----------------------------------

#[test]
fn syntax_errors_carry_line_and_column() {
    assert_error(
        "[cluster]\nname = \n",
        "",
        2,
        8,
        "invalid toml: string values must be quoted, expected literal string",
    );
}

#[test]
fn duplicate_keys_name_the_key() {
    assert_error(
        "[master]\nport = 1\nport = 2\n",
        "",
        3,
        1,
        "duplicate key `port`: each key may appear only once in a table",
    );
}

#[test]
fn unknown_keys_name_the_path_and_list_the_valid_keys() {
    assert_error(
        "[sentinel]\ncount = 3\n  qorum = 2\n",
        "sentinel.qorum",
        3,
        3,
        "unknown key `sentinel.qorum` (did you mean `quorum`?); valid keys in `[sentinel]`: `count`, `port`, `master_name`, `quorum`, `down_after_ms`, `failover_timeout_ms`, `parallel_syncs`",
    );
    assert_error(
        "[master]\nhost = \"x\"\n",
        "master.host",
        2,
        1,
        "unknown key `master.host`; valid keys in `[master]`: `port`",
    );
}

#[test]
fn unknown_sections_list_the_valid_ones() {
    assert_error(
        "\n[sentinels]\ncount = 3\n",
        "sentinels",
        2,
        2,
        "unknown section `sentinels` (did you mean `sentinel`?); valid sections: `cluster`, `auth`, `master`, `replicas`, `sentinel`, `persistence`, `redis`, `kubernetes`, `replication`, `acl`, `tls`",
    );
}

#[test]
fn wrong_types_say_what_is_expected() {
    assert_error(
        "[sentinel]\nquorum = \"2\"\n",
        "sentinel.quorum",
        2,
        1,
        "`sentinel.quorum` must be an integer, found a string; remove the quotes: `quorum = 2`",
    );
    assert_error(
        "[persistence]\naof = \"yes\"\n",
        "persistence.aof",
        2,
        1,
        "`persistence.aof` must be `true` or `false`, found a string; write `true` or `false` without quotes",
    );
    assert_error(
        "[cluster]\nname = 5\n",
        "cluster.name",
        2,
        1,
        "`cluster.name` must be a string, found an integer; put the value in quotes",
    );
    assert_error(
        "[persistence]\nsave = \"900 1\"\n",
        "persistence.save",
        2,
        1,
        "`persistence.save` must be a list of strings, found a string; write a list like `[\"900 1\", \"300 10\"]`",
    );
    assert_error(
        "master = 6379\n",
        "master",
        1,
        1,
        "`master` must be a table (`[master]`), found an integer",
    );
    assert_error(
        "[persistence]\nsave = [\"900 1\", 300]\n",
        "persistence.save[1]",
        2,
        18,
        "`persistence.save[1]` must be a string, found an integer; write each entry as `\"SECONDS CHANGES\"`, like `\"900 1\"`",
    );
    assert_error(
        "[redis]\nextra = { appendonly-x = true }\n",
        "redis.extra.appendonly-x",
        2,
        11,
        "`redis.extra.appendonly-x` must be a string or an integer, found a boolean; redis.conf spells booleans `\"yes\"` and `\"no\"`",
    );
}

#[test]
fn a_wrong_type_is_not_reported_twice() {
    // The bad quorum must not also be checked against the count with its default.
    let errors = errors("[sentinel]\ncount = 1\nquorum = \"x\"\n");
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert_eq!(errors[0].key, "sentinel.quorum");
}

#[test]
fn every_problem_is_reported_in_one_run() {
    let text = "[sentinel]\nquorum = 5\nqorum = 1\n\n[persistence]\nappendfsync = \"sometimes\"\nrdb = 1\n";
    let errors = errors(text);
    let found: Vec<(&str, Option<usize>)> =
        errors.iter().map(|e| (e.key.as_str(), e.line)).collect();
    assert_eq!(
        found,
        vec![
            ("sentinel.quorum", Some(2)),
            ("sentinel.qorum", Some(3)),
            ("persistence.appendfsync", Some(6)),
            ("persistence.rdb", Some(7)),
        ]
    );
}

#[test]
fn dotted_keys_and_inline_tables_are_located() {
    assert_error(
        "sentinel.quorum = 7\n",
        "sentinel.quorum",
        1,
        10,
        "`sentinel.quorum` is 7 but there are only 3 sentinels; set it between 1 and 3",
    );
    assert_error(
        "sentinel = { count = 3, quorum = 0 }\n",
        "sentinel.quorum",
        1,
        25,
        "`sentinel.quorum` is 0; set it between 1 and 3",
    );
}

#[test]
fn columns_count_characters_not_bytes() {
    assert_error(
        "# ünïcödé\n[master]\n\tport = -1 # é\n",
        "master.port",
        3,
        2,
        "`master.port` is -1; set it between 0 and 65535 (0 lets the engine pick a free port)",
    );
}

// ---- cluster ------------------------------------------------------------------------------

#[test]
fn cluster_name_rules() {
    assert_error(
        "[cluster]\nname = \"\"\n",
        "cluster.name",
        2,
        1,
        "`cluster.name` is empty; set a short name like `demo` (lowercase letters, digits and `-`)",
    );
    assert_error(
        "[cluster]\nname = \"My_App\"\n",
        "cluster.name",
        2,
        1,
        "`cluster.name` is `My_App`; use lowercase letters, digits and `-`, starting and ending with a letter or digit (Docker and Kubernetes names); try `my-app`",
    );
    assert_error(
        "[cluster]\nname = \"-demo\"\n",
        "cluster.name",
        2,
        1,
        "`cluster.name` is `-demo`; use lowercase letters, digits and `-`, starting and ending with a letter or digit (Docker and Kubernetes names); try `demo`",
    );
    let long = "a".repeat(41);
    assert_error(
        &format!("[cluster]\nname = \"{long}\"\n"),
        "cluster.name",
        2,
        1,
        "`cluster.name` is 41 characters long; use at most 40 (it prefixes every container, network and volume)",
    );
    assert!(check(&format!("[cluster]\nname = \"{}\"\n", "a".repeat(40))).is_ok());
}

#[test]
fn name_override_replaces_and_is_validated() {
    let ok = parse(
        Path::new("t.toml"),
        DEFAULT_FILE,
        Some("other-1"),
        &no_env,
        &no_files,
    )
    .expect("valid override");
    assert_eq!(ok.topology.cluster.name, "other-1");

    let err = parse(
        Path::new("t.toml"),
        DEFAULT_FILE,
        Some("Bad Name"),
        &no_env,
        &no_files,
    )
    .expect_err("invalid override");
    assert_eq!(err.errors.len(), 1);
    let e = &err.errors[0];
    assert_eq!(
        (e.key.as_str(), e.line, e.column),
        ("cluster.name", None, None)
    );
    assert_eq!(
        e.message,
        "`--name` is `Bad Name`; use lowercase letters, digits and `-`, starting and ending with a letter or digit (Docker and Kubernetes names); try `bad-name`"
    );
    let err = parse(Path::new("t.toml"), "", Some(""), &no_env, &no_files).expect_err("empty");
    assert_eq!(
        err.errors[0].message,
        "`--name` is empty; set a short name like `demo` (lowercase letters, digits and `-`)"
    );
}

#[test]
fn bind_must_be_an_ip_address() {
    assert_error(
        "[cluster]\nbind = \"localhost\"\n",
        "cluster.bind",
        2,
        1,
        "`cluster.bind` is `localhost`, not an IP address; use `127.0.0.1` (this host only) or `0.0.0.0` (every interface)",
    );
}

#[test]
fn subnet_must_be_a_slash_24() {
    assert_error(
        "[cluster]\nsubnet = \"10.0.0.0/16\"\n",
        "cluster.subnet",
        2,
        1,
        "`cluster.subnet` is invalid: `10.0.0.0/16` must be a /24 (rcluster gives each node a fixed address in it); or remove it to derive one from the name",
    );
}

// ---- counts, quorum, times -----------------------------------------------------------------

#[test]
fn replica_count_range() {
    assert_error(
        "[replicas]\ncount = 17\n",
        "replicas.count",
        2,
        1,
        "`replicas.count` is 17; set it between 0 and 16",
    );
    assert!(check("[replicas]\ncount = 0\n").is_ok());
}

#[test]
fn sentinel_count_range() {
    assert_error(
        "[sentinel]\ncount = 0\nquorum = 1\n",
        "sentinel.count",
        2,
        1,
        "`sentinel.count` is 0; set it between 1 and 9 (an odd number, 3 or more, is best)",
    );
    // An invalid count must not also drag the quorum into an error.
    assert_eq!(errors("[sentinel]\ncount = 10\n").len(), 1);
}

#[test]
fn quorum_must_fit_the_sentinel_count() {
    assert_error(
        "[sentinel]\ncount = 3\nquorum = 5\n",
        "sentinel.quorum",
        3,
        1,
        "`sentinel.quorum` is 5 but there are only 3 sentinels; set it between 1 and 3",
    );
    // The default quorum (2) against one sentinel points at the count the user wrote.
    assert_error(
        "[sentinel]\ncount = 1\n",
        "sentinel.quorum",
        2,
        1,
        "`sentinel.quorum` is 2 (the default) but there is only 1 sentinel; set it to 1",
    );
    assert_error(
        "[sentinel]\nquorum = -1\n",
        "sentinel.quorum",
        2,
        1,
        "`sentinel.quorum` is -1; set it between 1 and 3",
    );
}

#[test]
fn times_must_be_positive_and_ordered() {
    assert_error(
        "[sentinel]\ndown_after_ms = 0\n",
        "sentinel.down_after_ms",
        2,
        1,
        "`sentinel.down_after_ms` is 0; set a positive number of milliseconds",
    );
    assert_error(
        "[sentinel]\nfailover_timeout_ms = -5\n",
        "sentinel.failover_timeout_ms",
        2,
        1,
        "`sentinel.failover_timeout_ms` is -5; set a positive number of milliseconds",
    );
    assert_error(
        "[sentinel]\ndown_after_ms = 60000\nfailover_timeout_ms = 10000\n",
        "sentinel.down_after_ms",
        2,
        1,
        "`sentinel.down_after_ms` (60000) must be less than `sentinel.failover_timeout_ms` (10000): a failover that times out before the master is even seen down never completes; lower the first or raise the second",
    );
    assert_error(
        "[sentinel]\ndown_after_ms = 9999999999\n",
        "sentinel.down_after_ms",
        2,
        1,
        "`sentinel.down_after_ms` is 9999999999; sentinel accepts at most 2147483647 milliseconds (about 24 days)",
    );
}

#[test]
fn parallel_syncs_must_be_positive() {
    assert_error(
        "[sentinel]\nparallel_syncs = 0\n",
        "sentinel.parallel_syncs",
        2,
        1,
        "`sentinel.parallel_syncs` is 0; set it between 1 and 2147483647 (how many replicas resync with a new master at once)",
    );
}

#[test]
fn master_name_rules() {
    assert_error(
        "[sentinel]\nmaster_name = \"\"\n",
        "sentinel.master_name",
        2,
        1,
        "`sentinel.master_name` is empty; set it to a name like `mymaster`",
    );
    assert_error(
        "[sentinel]\nmaster_name = \"my master\"\n",
        "sentinel.master_name",
        2,
        1,
        "`sentinel.master_name` is `my master`; use only letters, digits, `.`, `_` and `-` (clients look the master up by this name)",
    );
}

// ---- ports ----------------------------------------------------------------------------------

#[test]
fn ports_must_be_in_range() {
    assert_error(
        "[sentinel]\nport = 70000\n",
        "sentinel.port",
        2,
        1,
        "`sentinel.port` is 70000; set it between 0 and 65535 (0 lets the engine pick a free port)",
    );
}

#[test]
fn port_ranges_must_not_overflow() {
    assert_error(
        "[replicas]\ncount = 3\nport = 65534\n",
        "replicas.port",
        3,
        1,
        "`replicas.port` is 65534, so 3 replicas need ports up to 65536, past 65535; set it to 65533 or lower, or 0 to let the engine pick",
    );
}

#[test]
fn host_ports_must_not_collide() {
    assert_error(
        "[master]\nport = 6379\n[replicas]\nport = 6379\n",
        "replicas.port",
        4,
        1,
        "`replicas.port` (ports 6379-6380) and `master.port` (port 6379) both use host port 6379; move one of them, or set it to 0 to let the engine pick",
    );
    // The default replica range 6380-6381 reaches the sentinels moved onto 6381.
    assert_error(
        "[sentinel]\nport = 6381\n",
        "sentinel.port",
        2,
        1,
        "`sentinel.port` (ports 6381-6383) and `replicas.port` (ports 6380-6381) both use host port 6381; move one of them, or set it to 0 to let the engine pick",
    );
    // A port already rejected as out of range is not compared with the others.
    assert_eq!(
        errors("[master]\nport = 6380\n[replicas]\nport = 99999\n").len(),
        1
    );
}

// ---- persistence ------------------------------------------------------------------------------

#[test]
fn save_entries_are_two_positive_integers() {
    assert_error(
        "[persistence]\nsave = [\"900 1\", \"300\"]\n",
        "persistence.save[1]",
        2,
        18,
        "`persistence.save[1]` is `\"300\"`; write `\"SECONDS CHANGES\"`, two positive integers like `\"900 1\"` (an empty list turns snapshots off)",
    );
    let t = check("[persistence]\nsave = []\n").expect("valid").topology;
    assert!(t.persistence.save.is_empty());
}

#[test]
fn appendfsync_is_one_of_three() {
    assert_error(
        "[persistence]\nappendfsync = \"sometimes\"\n",
        "persistence.appendfsync",
        2,
        1,
        "`persistence.appendfsync` is `sometimes`; use one of `always`, `everysec`, `no`",
    );
    let t = check("[persistence]\nappendfsync = \"always\"\n")
        .expect("valid")
        .topology;
    assert_eq!(t.persistence.appendfsync, AppendFsync::Always);
}

#[test]
fn aof_rewrite_min_size_is_a_redis_size() {
    assert_error(
        "[persistence]\nauto_aof_rewrite_min_size = \"64 MB\"\n",
        "persistence.auto_aof_rewrite_min_size",
        2,
        1,
        "`persistence.auto_aof_rewrite_min_size` is `64 MB`: not a redis size; write digits with an optional unit `k`, `kb`, `m`, `mb`, `g` or `gb`, like `64mb`",
    );
    assert!(check("[persistence]\nauto_aof_rewrite_min_size = \"1GB\"\n").is_ok());
    assert_error(
        "[persistence]\nauto_aof_rewrite_percentage = -1\n",
        "persistence.auto_aof_rewrite_percentage",
        2,
        1,
        "`persistence.auto_aof_rewrite_percentage` is -1; set it between 0 and 2147483647 (0 turns automatic rewrites off)",
    );
}

#[test]
fn file_names_are_plain() {
    assert_error(
        "[persistence]\ndbfilename = \"data/dump.rdb\"\n",
        "persistence.dbfilename",
        2,
        1,
        "`persistence.dbfilename` is `data/dump.rdb`; use a plain file name without `/`: the directory is the node's data volume",
    );
    assert_error(
        "[persistence]\nappendfilename = \"\"\n",
        "persistence.appendfilename",
        2,
        1,
        "`persistence.appendfilename` is empty; set a file name like `appendonly.aof`",
    );
}

// ---- redis ------------------------------------------------------------------------------------

#[test]
fn extra_directives_rules() {
    assert_error(
        "[redis]\nextra = { port = \"7000\" }\n",
        "redis.extra.port",
        2,
        11,
        "`redis.extra.port` cannot be set here: `port` is managed by `master.port` and `replicas.port` (host ports; inside the container it is always 6379)",
    );
    assert_error(
        "[redis.extra]\nrequirepass = \"x\"\n",
        "redis.extra.requirepass",
        2,
        1,
        "`redis.extra.requirepass` cannot be set here: `requirepass` is managed by `[auth]`",
    );
    assert_error(
        "[redis.extra]\n\"max memory\" = \"1mb\"\n",
        "redis.extra.max memory",
        2,
        1,
        "`redis.extra.max memory` is not a redis.conf directive name; use one lowercase word like `maxmemory` or `maxmemory-policy`",
    );
    assert_error(
        "[redis.extra]\nmaxmemory = \"\"\n",
        "redis.extra.maxmemory",
        2,
        1,
        "`redis.extra.maxmemory` is empty; give the directive a value or remove it",
    );
    assert_error(
        "[redis.extra]\nmaxmemory = \"1mb\\nport 1\"\n",
        "redis.extra.maxmemory",
        2,
        1,
        "`redis.extra.maxmemory` contains a newline; a directive's value must fit on one line",
    );
    assert_error(
        "[redis.extra]\nrename-command = \"CONFIG \\\"\\\"\"\n",
        "redis.extra.rename-command",
        2,
        1,
        "`redis.extra.rename-command` renames `CONFIG`, which Sentinel sends to the nodes to monitor them and fail over; rename another command",
    );
    assert!(check("[redis.extra]\nrename-command = \"FLUSHALL \\\"\\\"\"\n").is_ok());
}

#[test]
fn redis_image_has_no_spaces() {
    assert_error(
        "[redis]\nimage = \"redis 7\"\n",
        "redis.image",
        2,
        1,
        "`redis.image` is `redis 7`, not an image reference; write it like `redis:7.2`; or leave it empty for rcluster's default image",
    );
}

// ---- kubernetes -------------------------------------------------------------------------------

#[test]
fn kubernetes_rules() {
    assert_error(
        "[kubernetes]\nnamespace = \"Prod\"\n",
        "kubernetes.namespace",
        2,
        1,
        "`kubernetes.namespace` is `Prod`; a namespace is 1 to 63 lowercase letters, digits and `-`, starting and ending with a letter or digit",
    );
    assert_error(
        "[kubernetes]\nstorage_size = \"1GB\"\n",
        "kubernetes.storage_size",
        2,
        1,
        "`kubernetes.storage_size` is `1GB`: not a kubernetes quantity; write a kubernetes quantity like `1Gi`, `500Mi` or `10G`",
    );
    assert_error(
        "[kubernetes]\nanti_affinity = \"strict\"\n",
        "kubernetes.anti_affinity",
        2,
        1,
        "`kubernetes.anti_affinity` is `strict`; use `preferred` or `required`",
    );
    assert_error(
        "[kubernetes]\nstorage_class = \"\"\n",
        "kubernetes.storage_class",
        2,
        1,
        "`kubernetes.storage_class` is empty; name a storage class, or remove the key to use the cluster's default",
    );
    assert_error(
        "[kubernetes]\nimage = \"\"\n",
        "kubernetes.image",
        2,
        1,
        "`kubernetes.image` is empty; name an image like `redis:7.2`",
    );
    assert_error(
        "[kubernetes]\ncluster_domain = \"Cluster.Local.\"\n",
        "kubernetes.cluster_domain",
        2,
        1,
        "`kubernetes.cluster_domain` is `Cluster.Local.`; write the cluster's DNS domain, lowercase labels joined by `.`, like `cluster.local`",
    );
    assert_error(
        "[kubernetes]\nexisting_secret = \"My Secret\"\n",
        "kubernetes.existing_secret",
        2,
        1,
        "`kubernetes.existing_secret` is `My Secret`; name a Secret in `kubernetes.namespace`: lowercase letters, digits, `-` and `.`",
    );
    assert_error(
        "[kubernetes]\nexisting_secret = \"s\"\nexisting_secret_key = \"a/b\"\n",
        "kubernetes.existing_secret_key",
        3,
        1,
        "`kubernetes.existing_secret_key` is `a/b`; a Secret key is letters, digits, `-`, `_` and `.`, like `password`",
    );
    assert_error(
        "[kubernetes]\nzone_spread = \"yes\"\n",
        "kubernetes.zone_spread",
        2,
        1,
        "`kubernetes.zone_spread` is `yes`; use `none`, `preferred` (spread when possible) or `required` (never two pods of a kind in one zone while others have fewer)",
    );
    assert_error(
        "[kubernetes]\nsentinel_storage_size = \"tiny\"\n",
        "kubernetes.sentinel_storage_size",
        2,
        1,
        "`kubernetes.sentinel_storage_size` is `tiny`: not a kubernetes quantity; write a kubernetes quantity like `1Gi`, `500Mi` or `10G`",
    );
    assert_error(
        "[kubernetes]\nsecret_revision = \"\"\n",
        "kubernetes.secret_revision",
        2,
        1,
        "`kubernetes.secret_revision` is ``; write a short label of one line (1 to 63 characters), like `2` or `2026-12-06`, and change it whenever the Secret changes",
    );
}

#[test]
fn new_kubernetes_keys_are_read() {
    let t = check(
        "[kubernetes]\ncluster_domain = \"corp.example\"\nexisting_secret = \"team-redis\"\n\
         existing_secret_key = \"pw\"\nzone_spread = \"preferred\"\nplatform_uid = true\n\
         secret_revision = \"7\"\n\
         resources = { requests = { cpu = \"1\" } }\nsentinel_resources = { requests = { cpu = \"10m\" } }\n",
    )
    .expect("valid");
    let k = &t.topology.kubernetes;
    assert_eq!(k.cluster_domain, "corp.example");
    assert_eq!(k.existing_secret.as_deref(), Some("team-redis"));
    assert_eq!(k.existing_secret_key, "pw");
    assert_eq!(k.zone_spread, ZoneSpread::Preferred);
    assert!(k.platform_uid);
    assert_eq!(k.secret_revision.as_deref(), Some("7"));
    // `resources` is the default for both kinds; a kind's own key wins.
    assert_eq!(k.redis_resources(), k.resources.as_ref());
    assert_eq!(
        k.sentinel_resources().map(|r| r["requests"]["cpu"].clone()),
        Some("10m".into())
    );
}

#[test]
fn a_memory_limit_without_maxmemory_warns() {
    assert_eq!(
        warnings("[kubernetes]\nredis_resources = { limits = { memory = \"1Gi\" } }\n"),
        vec![(
            "kubernetes.redis_resources".into(),
            "`kubernetes.redis_resources` sets a memory limit but `redis.extra` sets no `maxmemory`: redis grows until the kernel kills the pod, and a fork for a snapshot or AOF rewrite can double its memory; set `maxmemory` to about half the limit".into()
        )]
    );
    assert!(
        warnings("[redis]\nextra = { maxmemory = \"400mb\" }\n[kubernetes]\nresources = { limits = { memory = \"1Gi\" } }\n")
            .is_empty()
    );
}

#[test]
fn persistence_off_warns() {
    assert_eq!(
        warnings("[persistence]\nrdb = false\naof = false\n"),
        vec![(
            "persistence.aof".into(),
            "persistence is off (no RDB snapshots, no AOF): a master that restarts comes back empty, and when it is back before `sentinel.down_after_ms` its replicas copy the empty dataset; turn on `persistence.aof` (or `persistence.rdb` with `save` rules)".into()
        )]
    );
    assert!(warnings("[persistence]\nrdb = false\n").is_empty());
}

#[test]
fn kubernetes_version_is_a_known_minor_release() {
    let version = |text: &str| {
        check(&format!("[kubernetes]\nversion = \"{text}\"\n"))
            .expect("valid")
            .topology
            .kubernetes
            .version
    };
    assert_eq!(
        check("").expect("valid").topology.kubernetes.version,
        KubeVersion::DEFAULT
    );
    assert_eq!(KubeVersion::DEFAULT.to_string(), "1.33");
    assert_eq!(version("1.19"), KubeVersion { minor: 19 });
    assert_eq!(version("1.37"), KubeVersion { minor: 37 });
    assert_eq!(version("v1.29"), KubeVersion { minor: 29 });
    let expected = "write the Kubernetes release of the target cluster as `\"1.MINOR\"`, from `\"1.19\"` to `\"1.37\"`, like `\"1.33\"`";
    for bad in [
        "", "1", "1.", "1.x", "1.020", "01.20", "2.0", "1.20-gke", "latest", "1.2.3.4",
    ] {
        assert_error(
            &format!("[kubernetes]\nnamespace = \"a\"\nversion = \"{bad}\"\n"),
            "kubernetes.version",
            3,
            1,
            &format!("`kubernetes.version` is `{bad}`; {expected}"),
        );
    }
    assert_error(
        "[kubernetes]\nversion = \"1.20.2\"\n",
        "kubernetes.version",
        2,
        1,
        "`kubernetes.version` is `1.20.2`; write the minor release only, `\"1.20\"` (the manifests do not depend on the patch release)",
    );
    assert_error(
        "[kubernetes]\nversion = \"1.18\"\n",
        "kubernetes.version",
        2,
        1,
        "`kubernetes.version` is `1.18`; rcluster renders for Kubernetes from `\"1.19\"` to `\"1.37\"`: the manifests use topologySpreadConstraints and `seccompProfile`, GA in 1.19",
    );
    assert_error(
        "[kubernetes]\nversion = \"1.99\"\n",
        "kubernetes.version",
        2,
        1,
        "`kubernetes.version` is `1.99`, a Kubernetes release rcluster does not know (the newest it knows is 1.37); use a release from `\"1.19\"` to `\"1.37\"`",
    );
    assert_error(
        "[kubernetes]\nversion = 1.20\n",
        "kubernetes.version",
        2,
        1,
        "`kubernetes.version` must be a string, found a float; put the value in quotes",
    );
}

#[test]
fn kubernetes_versions_out_of_upstream_support_warn() {
    assert_eq!(
        warnings("[kubernetes]\nversion = \"1.20\"\n"),
        vec![(
            "kubernetes.version".into(),
            "`kubernetes.version` is `1.20`, out of upstream support (no fixes, security ones included, below 1.25): plan an upgrade; the manifests use the APIs 1.20 has (PodDisruptionBudgets as `policy/v1beta1`)".into()
        )]
    );
    assert!(
        warnings("[kubernetes]\nversion = \"1.24\"\n")[0]
            .1
            .contains("`policy/v1`")
    );
    assert!(warnings("[kubernetes]\nversion = \"1.25\"\n").is_empty());
    assert!(!KubeVersion { minor: 20 }.has_policy_v1());
    assert!(KubeVersion { minor: 21 }.has_policy_v1());
}

#[test]
fn kubernetes_scheduling_and_pull_keys_are_read() {
    let t = check(
        r#"[cluster]
name = "cache"

[kubernetes]
image_pull_policy = "IfNotPresent"
image_pull_secrets = ["regcred", "mirror.creds"]
node_selector = { "kubernetes.io/os" = "linux", "node.example.com/pool" = "redis", empty = "" }
priority_class_name = "redis-critical"
tolerations = [
  { key = "dedicated", operator = "Equal", value = "redis", effect = "NoSchedule" },
  { key = "node.kubernetes.io/unreachable", operator = "Exists", effect = "NoExecute", toleration_seconds = 30 },
  { operator = "Exists" },
  { key = "spot", value = "true" },
]
"#,
    )
    .expect("valid")
    .topology;
    let k = &t.kubernetes;
    assert_eq!(k.image_pull_policy, Some(ImagePullPolicy::IfNotPresent));
    assert_eq!(k.image_pull_secrets, vec!["regcred", "mirror.creds"]);
    assert_eq!(
        k.node_selector,
        BTreeMap::from([
            ("kubernetes.io/os".into(), "linux".into()),
            ("node.example.com/pool".into(), "redis".into()),
            ("empty".into(), "".into()),
        ])
    );
    assert_eq!(k.priority_class_name.as_deref(), Some("redis-critical"));
    let toleration =
        |key: Option<&str>, op: &str, value: Option<&str>, effect: Option<&str>, seconds| {
            Toleration {
                key: key.map(Into::into),
                operator: op.into(),
                value: value.map(Into::into),
                effect: effect.map(Into::into),
                toleration_seconds: seconds,
            }
        };
    assert_eq!(
        k.tolerations,
        vec![
            toleration(
                Some("dedicated"),
                "Equal",
                Some("redis"),
                Some("NoSchedule"),
                None
            ),
            toleration(
                Some("node.kubernetes.io/unreachable"),
                "Exists",
                None,
                Some("NoExecute"),
                Some(30)
            ),
            toleration(None, "Exists", None, None, None),
            // `Equal` is Kubernetes' default operator.
            toleration(Some("spot"), "Equal", Some("true"), None, None),
        ]
    );
    // The group's own name makes the default client label.
    assert_eq!(
        k.network_policy,
        Some(NetworkPolicySpec {
            client_labels: BTreeMap::from([("cache-client".into(), "true".into())]),
            client_namespaces: None,
        })
    );
}

#[test]
fn kubernetes_network_policy_forms() {
    let policy = |text: &str| {
        check(text)
            .expect("valid")
            .topology
            .kubernetes
            .network_policy
    };
    assert_eq!(policy("[kubernetes]\nnetwork_policy = false\n"), None);
    assert_eq!(
        policy("[kubernetes]\nnetwork_policy = true\n"),
        policy(""),
        "true is the default"
    );
    assert_eq!(
        policy(
            "[kubernetes.network_policy]\nclient_labels = { \"app.example/redis-client\" = \"true\", tier = \"web\" }\nclient_namespaces = { \"kubernetes.io/metadata.name\" = \"apps\" }\n"
        ),
        Some(NetworkPolicySpec {
            client_labels: BTreeMap::from([
                ("app.example/redis-client".into(), "true".into()),
                ("tier".into(), "web".into()),
            ]),
            client_namespaces: Some(BTreeMap::from([(
                "kubernetes.io/metadata.name".into(),
                "apps".into()
            )])),
        })
    );
    // Every pod of every namespace: both selectors empty.
    assert_eq!(
        policy("[kubernetes]\nnetwork_policy = { client_labels = {}, client_namespaces = {} }\n"),
        Some(NetworkPolicySpec {
            client_labels: BTreeMap::new(),
            client_namespaces: Some(BTreeMap::new()),
        })
    );
    assert_eq!(
        policy("[kubernetes]\nnetwork_policy = { enabled = false }\n"),
        None
    );
    assert_eq!(
        warnings("[kubernetes]\nnetwork_policy = { enabled = false, client_labels = { a = \"b\" } }\n"),
        vec![(
            "kubernetes.network_policy.enabled".into(),
            "`kubernetes.network_policy.enabled` is `false`, so `client_labels` and `client_namespaces` are not used: no NetworkPolicy is rendered and every pod that reaches the group's pods may connect".into()
        )]
    );
    assert_eq!(
        warnings(
            "[kubernetes]\nversion = \"1.30\"\nnetwork_policy = { client_namespaces = { \"kubernetes.io/metadata.name\" = \"apps\" } }\n"
        ),
        vec![]
    );
    let w = warnings(
        "[kubernetes]\nversion = \"1.20\"\nnetwork_policy = { client_namespaces = { \"kubernetes.io/metadata.name\" = \"apps\" } }\n",
    );
    assert_eq!(w.len(), 2, "{w:?}");
    assert_eq!(
        w[1].0,
        "kubernetes.network_policy.client_namespaces.kubernetes.io/metadata.name"
    );
    assert!(
        w[1].1.contains("which Kubernetes 1.20 does not set"),
        "{w:?}"
    );
    assert_error(
        "[kubernetes]\nnetwork_policy = \"on\"\n",
        "kubernetes.network_policy",
        2,
        1,
        "`kubernetes.network_policy` must be `true`, `false` or a table, found a string",
    );
    assert_error(
        "[kubernetes.network_policy]\nclient_namespaces = { \"team\" = \"a b\" }\n",
        "kubernetes.network_policy.client_namespaces.team",
        2,
        23,
        "`kubernetes.network_policy.client_namespaces.team` is `a b`, not a label value: it must be letters, digits, `-`, `_` and `.`, starting and ending with a letter or digit (or be empty)",
    );
}

#[test]
fn kubernetes_bad_tolerations_and_selectors_name_their_key() {
    assert_error(
        "[kubernetes]\ntolerations = [{ key = \"a\", operator = \"In\" }]\n",
        "kubernetes.tolerations[0].operator",
        2,
        29,
        "`kubernetes.tolerations[0].operator` is `In`; use `Equal` (the taint's value must match `value`; the default) or `Exists` (any value)",
    );
    assert_error(
        "[kubernetes]\ntolerations = [{ key = \"a\", operator = \"Exists\", effect = \"NoExecute\", toleration_seconds = -5 }]\n",
        "kubernetes.tolerations[0].toleration_seconds",
        2,
        72,
        "`kubernetes.tolerations[0].toleration_seconds` is -5; set 0 or more seconds (0: evicted at once), or remove it to stay for good",
    );
    assert_error(
        "[kubernetes]\ntolerations = [{ key = \"bad key\", operator = \"Exists\" }]\n",
        "kubernetes.tolerations[0].key",
        2,
        18,
        "`kubernetes.tolerations[0].key` is `bad key`, not a taint key: its name must be letters, digits, `-`, `_` and `.`, starting and ending with a letter or digit",
    );
    assert_error(
        "[kubernetes]\ntolerations = [\"dedicated=redis:NoSchedule\"]\n",
        "kubernetes.tolerations[0]",
        2,
        16,
        "`kubernetes.tolerations[0]` must be a table like `{ key = \"dedicated\", operator = \"Equal\", value = \"redis\", effect = \"NoSchedule\" }`, found a string",
    );
    assert_error(
        "[kubernetes]\ntolerations = { key = \"a\" }\n",
        "kubernetes.tolerations",
        2,
        1,
        "`kubernetes.tolerations` must be a list of tables, found a table",
    );
    let long = "a".repeat(64);
    assert_error(
        &format!("[kubernetes]\nnode_selector = {{ pool = \"{long}\" }}\n"),
        "kubernetes.node_selector.pool",
        2,
        19,
        &format!(
            "`kubernetes.node_selector.pool` is `{}`, not a label value: it is 64 characters long, more than 63 (or be empty)",
            super::validate::one_line(&long)
        ),
    );
    assert_error(
        "[kubernetes]\nnode_selector = { \"a/b/c\" = \"x\" }\n",
        "kubernetes.node_selector.a/b/c",
        2,
        19,
        "`kubernetes.node_selector` has the node label key `a/b/c`, which is not valid: its prefix `a/b` is not a DNS subdomain (lowercase letters, digits, `-` and `.`, like `example.com`)",
    );
    assert_error(
        "[kubernetes]\nnode_selector = { disk = true }\n",
        "kubernetes.node_selector.disk",
        2,
        19,
        "`kubernetes.node_selector.disk` must be a string, found a boolean; put the value in quotes",
    );
    assert_error(
        "[kubernetes]\nimage_pull_secrets = [\"regcred\", \"regcred\"]\n",
        "kubernetes.image_pull_secrets[1]",
        2,
        34,
        "`kubernetes.image_pull_secrets[1]`: the Secret `regcred` is listed twice; list each once",
    );
    assert_error(
        "[kubernetes]\nimage_pull_policy = \"Sometimes\"\n",
        "kubernetes.image_pull_policy",
        2,
        1,
        "`kubernetes.image_pull_policy` is `Sometimes`; use `Always`, `IfNotPresent` or `Never`, or remove the key for Kubernetes' default (`Always` for a `:latest` or untagged image, else `IfNotPresent`)",
    );
}

#[test]
fn a_drain_warning_comes_exactly_where_the_sentinel_pdb_cannot_keep_a_failover() {
    for count in 1..=7u8 {
        for quorum in 1..=count {
            let drain = SentinelDrain::of(count, quorum);
            let majority = count / 2 + 1;
            let needed = majority.max(quorum);
            assert_eq!(drain.needed, needed);
            // Never blocks a drain.
            assert!(drain.max_unavailable >= 1, "{count}/{quorum}");
            assert_eq!(drain.left, count - drain.max_unavailable);
            if count > needed {
                // A sentinel to spare: evictions keep exactly enough, and take all they can.
                assert_eq!(drain.left, needed, "{count}/{quorum}");
                assert!(drain.keeps_failover());
            } else {
                // 1-2 sentinels or quorum = count: nothing to spare, one may still go.
                assert!(count <= 2 || quorum == count, "{count}/{quorum}");
                assert_eq!(drain.max_unavailable, 1);
                assert!(!drain.keeps_failover(), "{count}/{quorum}");
            }
            let drain_warnings: Vec<_> =
                warnings(&format!("[sentinel]\ncount = {count}\nquorum = {quorum}\n"))
                    .into_iter()
                    .filter(|(_, m)| m.starts_with("on Kubernetes, a node drain"))
                    .collect();
            assert_eq!(
                drain_warnings.len(),
                usize::from(!drain.keeps_failover()),
                "{count}/{quorum}: {drain_warnings:?}"
            );
            if let Some((key, message)) = drain_warnings.first() {
                let want = if count < 3 {
                    "sentinel.count"
                } else {
                    "sentinel.quorum"
                };
                assert_eq!(key, want);
                assert!(
                    message.contains(&format!(
                        "leaving {}",
                        match drain.left {
                            0 => "none".to_string(),
                            n => n.to_string(),
                        }
                    )),
                    "{message}"
                );
            }
        }
    }
}

// ---- warnings ---------------------------------------------------------------------------------

#[test]
fn down_after_within_sentinels_reconnect_period_warns() {
    let found = warnings("[sentinel]\ndown_after_ms = 1000\nfailover_timeout_ms = 5000\n");
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].0, "sentinel.down_after_ms");
    assert!(found[0].1.contains("fail over a second time"), "{found:?}");
    assert!(found[0].1.contains("use 1500 or more"), "{found:?}");
    assert!(warnings("[sentinel]\ndown_after_ms = 1500\nfailover_timeout_ms = 5000\n").is_empty());
    assert!(warnings("").is_empty(), "the default (5000) is safe");
}

#[test]
fn one_sentinel_warns() {
    assert_eq!(
        warnings("[sentinel]\ncount = 1\nquorum = 1\n"),
        vec![
            (
                "sentinel.count".into(),
                "`sentinel.count` is 1: if that sentinel is down, nothing fails over; use 3 sentinels"
                    .into()
            ),
            ("sentinel.count".into(), "on Kubernetes, a node drain may evict 1 of the 1 sentinel at once (the PodDisruptionBudget's `maxUnavailable: 1`; 0 would block every drain), leaving none, and a failover needs 1 (quorum 1, majority 1): a master lost during the drain is not failed over until the evicted sentinel is back; use 3 sentinels or more".into()),
        ]
    );
}

#[test]
fn two_sentinels_warn_about_count_evenness_and_quorum() {
    assert_eq!(
        warnings("[sentinel]\ncount = 2\nquorum = 2\n"),
        vec![
            ("sentinel.count".into(), "`sentinel.count` is 2: with one sentinel down, the other cannot reach the majority of 2 that authorizes a failover; use 3 sentinels".into()),
            ("sentinel.count".into(), "`sentinel.count` is 2, an even number: it survives no more sentinel failures than 1 would; use an odd number".into()),
            ("sentinel.count".into(), "on Kubernetes, a node drain may evict 1 of the 2 sentinels at once (the PodDisruptionBudget's `maxUnavailable: 1`; 0 would block every drain), leaving 1, and a failover needs 2 (quorum 2, majority 2): a master lost during the drain is not failed over until the evicted sentinel is back; use 3 sentinels or more".into()),
            ("sentinel.quorum".into(), "`sentinel.quorum` is 2, every sentinel: with one sentinel down the master can never be declared down, so no failover happens; set it to 2".into()),
        ]
    );
}

#[test]
fn an_even_count_warns() {
    assert_eq!(
        warnings("[sentinel]\ncount = 4\nquorum = 3\n"),
        vec![(
            "sentinel.count".into(),
            "`sentinel.count` is 4, an even number: it survives no more sentinel failures than 3 would; use an odd number".into()
        )]
    );
}

#[test]
fn a_quorum_below_the_majority_warns_that_the_majority_still_decides() {
    assert_eq!(
        warnings("[sentinel]\ncount = 5\nquorum = 2\n"),
        vec![(
            "sentinel.quorum".into(),
            "`sentinel.quorum` is 2, less than a majority of 5 sentinels: 2 sentinels can declare the master down on their own view of the network, but a failover still needs 3 sentinels to authorize it, so the majority decides anyway; set it to 3".into()
        )]
    );
    assert_eq!(
        warnings("[sentinel]\nquorum = 1\n")[0].1,
        "`sentinel.quorum` is 1, less than a majority of 3 sentinels: 1 sentinel can declare the master down on its own view of the network, but a failover still needs 2 sentinels to authorize it, so the majority decides anyway; set it to 2"
    );
}

#[test]
fn a_quorum_of_every_sentinel_warns() {
    let w = warnings("[sentinel]\ncount = 3\nquorum = 3\n");
    assert_eq!(
        w,
        vec![
            (
                "sentinel.quorum".into(),
                "`sentinel.quorum` is 3, every sentinel: with one sentinel down the master can never be declared down, so no failover happens; set it to 2".into()
            ),
            ("sentinel.quorum".into(), "on Kubernetes, a node drain may evict 1 of the 3 sentinels at once (the PodDisruptionBudget's `maxUnavailable: 1`; 0 would block every drain), leaving 2, and a failover needs 3 (quorum 3, majority 2): a master lost during the drain is not failed over until the evicted sentinel is back; set `sentinel.quorum` to 2".into()),
        ]
    );
}

#[test]
fn a_literal_password_warns_and_is_used() {
    let loaded = check("[auth]\npassword = \"s3cret\"\n").expect("valid");
    assert_eq!(loaded.topology.auth, AuthSource::Literal);
    assert_eq!(loaded.password.as_ref().map(|p| p.expose()), Some("s3cret"));
    assert_eq!(loaded.warnings.len(), 1);
    let w = &loaded.warnings[0];
    assert_eq!(
        (w.key.as_str(), w.line, w.column),
        ("auth.password", Some(2), Some(1))
    );
    assert_eq!(
        w.message,
        "`auth.password` is written in the topology file: anyone who can read the file can use the group; prefer `password_env` or `password_file`"
    );
    // Warnings never carry the password either.
    assert!(!format!("{loaded:?}").contains("s3cret"));
}

// ---- passwords --------------------------------------------------------------------------------

#[test]
fn password_from_env() {
    let env = |var: &str| (var == "RC_PW").then(|| "from-env".to_string());
    let loaded = parse(
        Path::new("t.toml"),
        "[auth]\npassword_env = \"RC_PW\"\n",
        None,
        &env,
        &no_files,
    )
    .expect("valid");
    assert_eq!(loaded.topology.auth, AuthSource::Env("RC_PW".into()));
    assert_eq!(
        loaded.password.map(|p| p.expose().to_string()).as_deref(),
        Some("from-env")
    );
    assert_eq!(loaded.warnings, vec![]);
}

#[test]
fn password_env_missing_or_empty() {
    assert_error(
        "[auth]\npassword_env = \"RC_PW\"\n",
        "auth.password_env",
        2,
        1,
        "`auth.password_env` names `RC_PW`, which is not set; export it, or use another password source",
    );
    let empty = |_: &str| Some(String::new());
    let err = parse(
        Path::new("t.toml"),
        "[auth]\npassword_env = \"RC_PW\"\n",
        None,
        &empty,
        &no_files,
    )
    .expect_err("empty env");
    assert_eq!(
        err.errors[0].message,
        "`auth.password_env` names `RC_PW`, which is set but empty; put the password in it"
    );
    assert_error(
        "[auth]\npassword_env = \"1 BAD\"\n",
        "auth.password_env",
        2,
        1,
        "`auth.password_env` is `1 BAD`, not an environment variable name; use letters, digits and `_`, not starting with a digit",
    );
}

#[test]
fn password_from_a_file_relative_to_the_topology() {
    let read = |path: &Path| {
        if path == Path::new("conf/secrets/pw.txt") {
            Ok("from-file\n".to_string())
        } else {
            no_files(path)
        }
    };
    let loaded = parse(
        Path::new("conf/topology.toml"),
        "[auth]\npassword_file = \"secrets/pw.txt\"\n",
        None,
        &no_env,
        &read,
    )
    .expect("valid");
    assert_eq!(
        loaded.topology.auth,
        AuthSource::File("secrets/pw.txt".into())
    );
    assert_eq!(
        loaded.password.map(|p| p.expose().to_string()).as_deref(),
        Some("from-file")
    );
}

#[test]
fn password_file_missing_or_empty() {
    assert_error(
        "[auth]\npassword_file = \"pw.txt\"\n",
        "auth.password_file",
        2,
        1,
        "`auth.password_file` is `pw.txt`, which cannot be read: no such file: pw.txt; create it or fix the path (relative paths start at the topology file's directory)",
    );
    let empty = |_: &Path| Ok("\n".to_string());
    let err = parse(
        Path::new("topology.toml"),
        "[auth]\npassword_file = \"pw.txt\"\n",
        None,
        &no_env,
        &empty,
    )
    .expect_err("empty file");
    assert_eq!(
        err.errors[0].message,
        "`auth.password_file` is `pw.txt`, which is empty; write the password in it"
    );
}

#[test]
fn at_most_one_password_source() {
    assert_error(
        "[auth]\npassword_env = \"A\"\npassword_file = \"f\"\n",
        "auth",
        3,
        1,
        "`auth.password_env` and `auth.password_file` are both password sources; keep at most one (none lets `up` generate a password)",
    );
}

#[test]
fn passwords_must_fit_in_a_config_file() {
    assert_error(
        "[auth]\npassword = \"two words\"\n",
        "auth.password",
        2,
        1,
        "`auth.password` contains whitespace, `\"` or a control character, which cannot be written into redis.conf; choose a password without them",
    );
    assert_error(
        "[auth]\npassword = \"\"\n",
        "auth.password",
        2,
        1,
        "`auth.password` is empty; set a password, or remove the `[auth]` keys so that `up` generates one",
    );
    let quoted = |_: &str| Some("a\"b".to_string());
    let err = parse(
        Path::new("t.toml"),
        "[auth]\npassword_env = \"PW\"\n",
        None,
        &quoted,
        &no_files,
    )
    .expect_err("quote in password");
    assert_eq!(
        err.errors[0].message,
        "the password in `PW` (from `auth.password_env`) contains whitespace, `\"` or a control character, which cannot be written into redis.conf; choose a password without them"
    );
    assert!(!err.errors[0].message.contains("a\"b"));
}

// ---- formatting ---------------------------------------------------------------------------------

#[test]
fn diagnostics_format_as_file_line_column() {
    let err = check("[sentinel]\ncount = 3\nquorum = 5\n").expect_err("invalid");
    assert_eq!(
        format_diagnostics(Path::new("topology.toml"), &err.errors),
        "error: topology.toml:3:1: `sentinel.quorum` is 5 but there are only 3 sentinels; set it between 1 and 3\n"
    );
    assert_eq!(
        err.to_string(),
        "invalid topology `topology.toml`: 1 error(s)"
    );
    let located_nowhere = Diagnostic {
        severity: Severity::Warning,
        key: String::new(),
        line: None,
        column: None,
        message: "m".into(),
    };
    assert_eq!(
        format_diagnostics(Path::new("t.toml"), &[located_nowhere]),
        "warning: t.toml: m\n"
    );
}

// ---- [acl] ----------------------------------------------------------------------------

#[test]
fn acl_users_in_both_forms_with_their_password_sources() {
    let text = "[acl]\ndisable_default = true\n\n[acl.users]\napp = \"on  ~app:*   +@all -@dangerous\"\n\n[acl.users.ops]\nrules = \"on ~* +@read\"\npassword_env = \"OPS_PW\"\n\n[acl.users.batch]\nrules = \"on ~batch:* +@all\"\npassword_file = \"batch.txt\"\n";
    let env = |var: &str| (var == "OPS_PW").then(|| "ops-secret".to_string());
    let files = |path: &Path| {
        if path == Path::new("dir/batch.txt") {
            Ok("batch-secret\n".to_string())
        } else {
            no_files(path)
        }
    };
    let loaded =
        parse(Path::new("dir/topology.toml"), text, None, &env, &files).expect("valid acl");
    let t = &loaded.topology;
    assert_eq!(t.login_user(), Some("rcluster"));
    let acl = t.acl.as_ref().expect("acl");
    let names: Vec<&str> = acl.users.iter().map(|u| u.name.as_str()).collect();
    assert_eq!(names, ["app", "batch", "ops"]);
    let app = t.acl_user("app").expect("app");
    assert_eq!(app.rules, "on ~app:* +@all -@dangerous");
    assert_eq!(app.password, UserPassword::Generated);
    assert_eq!(app.secret, None);
    let ops = t.acl_user("ops").expect("ops");
    assert_eq!(ops.password, UserPassword::Env("OPS_PW".into()));
    assert_eq!(ops.secret.as_ref().map(|s| s.expose()), Some("ops-secret"));
    let batch = t.acl_user("batch").expect("batch");
    assert_eq!(
        batch.secret.as_ref().map(|s| s.expose()),
        Some("batch-secret")
    );
    assert_eq!(loaded.warnings, vec![]);
}

#[test]
fn no_acl_section_means_default_login_and_no_acl() {
    let t = check("").expect("valid").topology;
    assert_eq!(t.acl, None);
    assert_eq!(t.login_user(), None);
    // An empty `[acl]` turns ACL on (replication and Sentinel users) with `default` kept.
    let t = check("[acl]\n").expect("valid").topology;
    assert_eq!(t.login_user(), None);
    assert!(
        t.acl
            .is_some_and(|a| a.users.is_empty() && !a.disable_default)
    );
}

#[test]
fn announce_accepts_auto_container_addresses_and_host_names() {
    let announce = |text: &str| {
        check(text)
            .unwrap_or_else(|e| panic!("{text}: {:#?}", e.errors))
            .topology
            .cluster
            .announce
    };
    assert_eq!(announce(""), Announce::Auto);
    assert_eq!(
        announce("[cluster]\nannounce = \"container\"\n"),
        Announce::Container
    );
    assert_eq!(
        announce("[cluster]\nbind = \"0.0.0.0\"\nannounce = \"192.168.1.20\"\n"),
        Announce::Host("192.168.1.20".into())
    );
    assert_eq!(
        announce("[cluster]\nbind = \"0.0.0.0\"\nannounce = \"redis-host.example.com\"\n"),
        Announce::Host("redis-host.example.com".into())
    );
}

#[test]
fn acl_rules_never_hold_a_password() {
    for rules in [
        "on >pw ~*",
        "on <pw ~*",
        "on #abc ~*",
        "on !abc ~*",
        "on nopass ~*",
        "on resetpass ~*",
        "reset on ~*",
    ] {
        let (key, line, _, message) = error(&format!("[acl.users]\napp = \"{rules}\"\n"));
        assert_eq!((key.as_str(), line), ("acl.users.app", 2), "{rules}");
        assert!(message.contains("password"), "{rules}: {message}");
        assert!(
            !message.contains("pw ") && !message.contains("abc"),
            "{message}"
        );
    }
    // Selectors are rules too.
    assert!(check("[acl.users]\napp = \"on ~app:* +get (~other:* +set)\"\n").is_ok());
}

#[test]
fn acl_users_inline_as_the_issue_writes_them() {
    let text = "[acl]\nusers = { app = \"on ~app:* +@all -@dangerous\", ops = { rules = \"on ~* +@read\", password_env = \"OPS_PW\" } }\n";
    let env = |var: &str| (var == "OPS_PW").then(|| "ops-secret".to_string());
    let loaded = parse(Path::new("topology.toml"), text, None, &env, &no_files).expect("valid");
    let t = loaded.topology;
    assert_eq!(t.login_user(), None);
    assert_eq!(
        t.acl_user("app").map(|u| u.rules.as_str()),
        Some("on ~app:* +@all -@dangerous")
    );
    assert_eq!(
        t.acl_user("ops")
            .and_then(|u| u.secret.as_ref())
            .map(|s| s.expose()),
        Some("ops-secret")
    );
    // A wrong key inside an inline user is located at that key.
    let (key, line, _, message) =
        error("[acl]\nusers = { app = { rules = \"on\", pasword_env = \"X\" } }\n");
    assert_eq!((key.as_str(), line), ("acl.users.app.pasword_env", 2));
    assert!(
        message.contains("did you mean `password_env`?"),
        "{message}"
    );
}

#[test]
fn announce_refuses_what_no_client_or_container_can_reach() {
    for (value, expect) in [
        (
            "not a host",
            "neither `auto`, `container`, an IP address nor a host name",
        ),
        ("-bad.example", "neither"),
        ("999.1.1.1", "neither"),
        ("0.0.0.0", "which no client can connect to"),
        ("127.0.0.1", "a loopback address"),
        ("localhost", "a loopback address"),
        ("::1", "a loopback address"),
    ] {
        let text = format!("[cluster]\nbind = \"0.0.0.0\"\nannounce = \"{value}\"\n");
        let (key, line, _, message) = error(&text);
        assert_eq!((key.as_str(), line), ("cluster.announce", 3), "{value}");
        assert!(message.contains(expect), "{value}: {message}");
        assert!(message.starts_with("`cluster.announce` is"), "{message}");
    }
}

#[test]
fn announce_needs_ports_published_where_it_points_and_known_in_advance() {
    // The default bind (loopback) with a LAN address: the ports are not where it points.
    let (key, line, _, message) = error("[cluster]\nannounce = \"192.168.1.20\"\n");
    assert_eq!((key.as_str(), line), ("cluster.announce", 2));
    assert!(
        message.contains("`cluster.bind` is `127.0.0.1`"),
        "{message}"
    );
    assert!(message.contains("`0.0.0.0`"), "{message}");

    // Port 0 with an address: every such key, at once, each at its line.
    let text = "[cluster]\nbind = \"0.0.0.0\"\nannounce = \"10.0.0.5\"\n[master]\nport = 0\n[sentinel]\nport = 0\n";
    let errors = errors(text);
    let at: Vec<(&str, Option<usize>)> = errors.iter().map(|e| (e.key.as_str(), e.line)).collect();
    assert_eq!(at, [("master.port", Some(5)), ("sentinel.port", Some(7))]);
    assert!(
        errors[0].message.contains("set a fixed port"),
        "{errors:#?}"
    );

    // Port 0 is fine with container addresses.
    assert!(check("[cluster]\nannounce = \"container\"\n[master]\nport = 0\n").is_ok());

    // Published on one address, announced as another: works only through forwarding.
    let w = warnings("[cluster]\nbind = \"10.0.0.5\"\nannounce = \"203.0.113.7\"\n");
    assert_eq!(w.len(), 1, "{w:?}");
    assert_eq!(w[0].0, "cluster.announce");
    assert!(w[0].1.contains("port forwarding"), "{w:?}");
    assert!(warnings("[cluster]\nbind = \"10.0.0.5\"\nannounce = \"10.0.0.5\"\n").is_empty());
}
