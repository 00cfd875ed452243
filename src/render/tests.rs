//! Snapshot and property tests of the rendered configs. Topologies are built directly, so
//! these tests do not depend on parsing.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::*;
use crate::secret::MASK;
use crate::topology::{
    AntiAffinity, AppendFsync, AuthSource, Cluster, KubernetesSpec, MasterSpec, Persistence,
    RedisSpec, ReplicasSpec, SentinelSpec, Subnet,
};

const PASSWORD: &str = "s3cret-Pa55word";
const SUBNET: Subnet = Subnet([172, 28, 5]);

/// The topology an empty `topology.toml` checks to, named `demo`.
pub(crate) fn default_topology() -> Topology {
    Topology {
        replication: crate::topology::Replication {
            min_replicas_to_write: 0,
            min_replicas_max_lag: 10,
        },
        source: PathBuf::from("<string>"),
        cluster: Cluster {
            name: "demo".into(),
            bind: "127.0.0.1".parse().expect("literal IP"),
            subnet: None,
            announce: crate::topology::Announce::Auto,
        },
        auth: AuthSource::Generated,
        master: MasterSpec { port: 6379 },
        replicas: ReplicasSpec {
            count: 2,
            port: 6380,
        },
        sentinel: SentinelSpec {
            count: 3,
            port: 26379,
            master_name: "mymaster".into(),
            quorum: 2,
            down_after_ms: 5000,
            failover_timeout_ms: 60000,
            parallel_syncs: 1,
        },
        persistence: Persistence {
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
        },
        redis: RedisSpec {
            image: None,
            extra: BTreeMap::new(),
        },
        kubernetes: KubernetesSpec {
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
            zone_spread: crate::topology::ZoneSpread::None,
            platform_uid: false,
            secret_revision: None,
            sentinel_storage_size: "100Mi".into(),
            version: crate::topology::KubeVersion::DEFAULT,
            image_pull_policy: None,
            image_pull_secrets: vec![],
            node_selector: BTreeMap::new(),
            tolerations: vec![],
            priority_class_name: None,
            network_policy: Some(crate::topology::NetworkPolicySpec {
                client_labels: BTreeMap::from([("demo-client".into(), "true".into())]),
                client_namespaces: None,
            }),
        },
        acl: None,
        tls: crate::topology::TlsSpec::off(),
    }
}

/// The default group with `[acl]`: `default` off, `app` generated, `ops` from a file.
fn acl_topology() -> Topology {
    use crate::topology::{Acl, AclUser, UserPassword};
    let mut topology = default_topology();
    topology.acl = Some(Acl {
        users: vec![
            AclUser {
                name: "app".into(),
                rules: "on ~app:* +@all -@dangerous".into(),
                password: UserPassword::Generated,
                secret: None,
            },
            AclUser {
                name: "ops".into(),
                rules: "on ~* +@read".into(),
                password: UserPassword::File("ops.txt".into()),
                secret: Some(crate::secret::Secret::new("ops-Pa55word")),
            },
        ],
        disable_default: true,
    });
    topology
}

/// Render `key` (`master`, `replica-1`, `sentinel-1`...) of a fresh group.
fn render(topology: &Topology, key: &str) -> String {
    let layout = Layout::new(topology, SUBNET);
    let node = layout.node(key).expect("node in layout");
    node_config(topology, &layout, node, layout.master().ip, PASSWORD).expect("renders")
}

#[test]
fn default_master() {
    insta::assert_snapshot!(render(&default_topology(), "master"));
}

#[test]
fn default_replica() {
    insta::assert_snapshot!(render(&default_topology(), "replica-1"));
}

#[test]
fn default_sentinel() {
    insta::assert_snapshot!(render(&default_topology(), "sentinel-1"));
}

#[test]
fn rdb_off() {
    let mut topology = default_topology();
    topology.persistence.rdb = false;
    insta::assert_snapshot!(render(&topology, "master"));
}

#[test]
fn empty_save_list_disables_rdb() {
    let mut topology = default_topology();
    topology.persistence.save.clear();
    let text = render(&topology, "master");
    assert!(text.contains("\nsave \"\"\n"), "{text}");
    assert!(!text.contains("save 900"), "{text}");
}

#[test]
fn aof_off_fsync_always() {
    let mut topology = default_topology();
    topology.persistence.aof = false;
    topology.persistence.appendfsync = AppendFsync::Always;
    insta::assert_snapshot!(render(&topology, "replica-2"));
}

#[test]
fn extra_directives() {
    let mut topology = default_topology();
    topology.redis.extra = BTreeMap::from([
        ("maxmemory".to_string(), "256mb".to_string()),
        ("maxmemory-policy".to_string(), "allkeys-lru".to_string()),
        ("min-replicas-to-write".to_string(), "1".to_string()),
    ]);
    insta::assert_snapshot!(render(&topology, "master"));
}

#[test]
fn one_replica_five_sentinels() {
    let mut topology = default_topology();
    topology.replicas.count = 1;
    topology.sentinel.count = 5;
    topology.sentinel.quorum = 3;
    insta::assert_snapshot!(render(&topology, "sentinel-5"));
}

fn tls_topology(client_auth: crate::topology::ClientAuth, plaintext_port: bool) -> Topology {
    let mut topology = default_topology();
    topology.tls = crate::topology::TlsSpec {
        enabled: true,
        client_auth,
        plaintext_port,
        ..crate::topology::TlsSpec::off()
    };
    topology
}

#[test]
fn tls_master() {
    let topology = tls_topology(crate::topology::ClientAuth::No, false);
    insta::assert_snapshot!(render(&topology, "master"));
}

#[test]
fn tls_sentinel_mutual() {
    let topology = tls_topology(crate::topology::ClientAuth::Yes, false);
    insta::assert_snapshot!(render(&topology, "sentinel-1"));
}

#[test]
fn tls_replica_mutual_keeps_a_plaintext_port() {
    let topology = tls_topology(crate::topology::ClientAuth::Yes, true);
    let text = render(&topology, "replica-1");
    assert!(text.contains("\nport 6380\ntls-port 6379\n"), "{text}");
    assert!(
        text.contains("\ntls-client-cert-file /etc/redis/tls.crt\n"),
        "{text}"
    );
    assert!(text.contains("\ntls-auth-clients yes\n"), "{text}");
    let sentinel = render(&topology, "sentinel-2");
    assert!(
        sentinel.contains("\nport 26380\ntls-port 26379\n"),
        "{sentinel}"
    );
}

#[test]
fn tls_off_renders_no_tls_directive() {
    for key in ["master", "replica-1", "sentinel-1"] {
        let text = render(&default_topology(), key);
        assert!(!text.contains("tls-"), "{key}: {text}");
        assert!(text.contains("\nport "), "{key}");
    }
}

/// After a failover to replica-1: every config points at replica-1.
#[test]
fn failed_over_group() {
    let topology = default_topology();
    let layout = Layout::new(&topology, SUBNET);
    let new_master = layout.node("replica-1").expect("replica-1").ip;
    let render = |key: &str| {
        let node = layout.node(key).expect("node in layout");
        node_config(&topology, &layout, node, new_master, PASSWORD).expect("renders")
    };
    let old_master = render("master");
    let promoted = render("replica-1");
    let sentinel = render("sentinel-2");

    assert!(old_master.contains(&format!("\nreplicaof {new_master} 6379\n")));
    assert!(!promoted.contains("replicaof"), "{promoted}");
    insta::assert_snapshot!("failed_over_old_master", old_master);
    insta::assert_snapshot!("failed_over_promoted_replica", promoted);
    insta::assert_snapshot!("failed_over_sentinel", sentinel);
}

#[test]
fn masterauth_on_every_data_node() {
    let topology = default_topology();
    let layout = Layout::new(&topology, SUBNET);
    for (node, text) in render_all(&topology, &layout, PASSWORD).expect("renders") {
        if node.role.is_data() {
            assert!(
                text.contains(&format!("\nmasterauth \"{PASSWORD}\"\n")),
                "no masterauth on {}",
                node.name
            );
            assert!(text.contains(&format!("\nrequirepass \"{PASSWORD}\"\n")));
        } else {
            assert!(text.contains(&format!("\nsentinel auth-pass mymaster \"{PASSWORD}\"\n")));
            assert!(text.contains(&format!("\nsentinel sentinel-pass \"{PASSWORD}\"\n")));
        }
    }
}

#[test]
fn masked_password_never_leaks() {
    let topology = default_topology();
    let layout = Layout::new(&topology, SUBNET);
    let configs = render_all(&topology, &layout, MASK).expect("renders");
    assert_eq!(configs.len(), 6);
    for (node, text) in configs {
        assert!(!text.contains(PASSWORD), "{} leaks the password", node.name);
        assert!(text.contains(MASK), "{} has no masked password", node.name);
    }
}

#[test]
fn replicaof_only_off_the_master() {
    let topology = default_topology();
    let layout = Layout::new(&topology, SUBNET);
    let master_ip = layout.master().ip;
    for (node, text) in render_all(&topology, &layout, PASSWORD).expect("renders") {
        let has = text.contains("\nreplicaof ");
        match node.role {
            crate::topology::Role::Master => assert!(!has, "{}", node.name),
            crate::topology::Role::Replica => {
                assert!(text.contains(&format!("\nreplicaof {master_ip} 6379\n")))
            }
            crate::topology::Role::Sentinel => assert!(!has),
        }
    }
}

#[test]
fn sentinel_seeds_the_rest_of_the_group() {
    let topology = default_topology();
    let layout = Layout::new(&topology, SUBNET);
    let me = layout.node("sentinel-2").expect("sentinel-2");
    let text = render(&topology, "sentinel-2");
    assert!(text.contains(&format!("\nsentinel myid {}\n", me.sentinel_myid())));
    for replica in layout.replicas() {
        assert!(text.contains(&format!(
            "\nsentinel known-replica mymaster {} 6379\n",
            replica.ip
        )));
    }
    for other in layout.sentinels() {
        let line = format!(
            "\nsentinel known-sentinel mymaster {} 26379 {}\n",
            other.ip,
            other.sentinel_myid()
        );
        assert_eq!(text.contains(&line), other.name != me.name, "{line}");
    }
    assert!(!text.contains("known-replica mymaster 172.28.5.10 "));
}

/// The Kubernetes renderer will pass DNS names: the template then resolves them.
#[test]
fn sentinel_with_hostnames() {
    let topology = default_topology();
    let layout = Layout::new(&topology, SUBNET);
    let node = layout.node("sentinel-1").expect("sentinel-1");
    let mut conf = SentinelConf::for_node(&topology, &layout, node, layout.master().ip, MASK);
    conf.master = Endpoint::new("demo-master.demo.default.svc", 6379);
    conf.announce = Endpoint::new("demo-sentinel-1.demo.default.svc", 26379);
    conf.resolve_hostnames = true;
    let text = conf.render().expect("renders");
    let resolve = text
        .find("sentinel resolve-hostnames yes")
        .expect("resolve line");
    let monitor = text
        .find("sentinel monitor mymaster demo-master.demo.default.svc 6379 2")
        .expect("monitor line");
    // redis 7.0 refuses a monitor line naming a host unless resolving was enabled before it.
    assert!(resolve < monitor);
    assert!(text.contains("sentinel announce-hostnames yes"));

    let ips = render(&topology, "sentinel-1");
    assert!(!ips.contains("resolve-hostnames"));
}

#[test]
fn strict_undefined_names_template_and_line() {
    let topology = default_topology();
    let layout = Layout::new(&topology, SUBNET);
    let conf = RedisConf::for_node(&topology, &layout, layout.master(), SUBNET.host(10), MASK);
    let err = render_template(
        ("broken.conf.j2", "port {{ port }}\nbind {{ bnid }}\n"),
        &conf,
    )
    .expect_err("an undefined variable must fail");
    let message = format!("{err:#}");
    assert!(message.contains("broken.conf.j2"), "{message}");
    assert!(message.contains("broken.conf.j2:2"), "{message}");
    assert!(message.contains("undefined"), "{message}");
}

#[test]
fn embedded_templates_parse() {
    for (name, source) in [REDIS_TEMPLATE, SENTINEL_TEMPLATE] {
        let mut env = Environment::new();
        env.add_template(name, source)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

#[test]
fn quote_escapes_what_redis_unescapes() {
    assert_eq!(quote("plain"), "\"plain\"");
    assert_eq!(quote(""), "\"\"");
    assert_eq!(quote(r#"a"b\c"#), r#""a\"b\\c""#);
    assert_eq!(quote("a\nb"), "\"a\\x0ab\"");
}

#[test]
fn min_replicas_are_written_only_when_turned_on() {
    let mut topology = default_topology();
    let layout = Layout::new(&topology, SUBNET);
    let master = &layout.nodes[0];
    let conf = RedisConf::for_node(&topology, &layout, master, master.ip, "pw")
        .render()
        .unwrap();
    assert!(!conf.contains("min-replicas"), "{conf}");
    topology.replication.min_replicas_to_write = 1;
    topology.replication.min_replicas_max_lag = 5;
    let conf = RedisConf::for_node(&topology, &layout, master, master.ip, "pw")
        .render()
        .unwrap();
    assert!(
        conf.contains("\nmin-replicas-to-write 1\nmin-replicas-max-lag 5\n"),
        "{conf}"
    );
}

#[test]
fn acl_master() {
    insta::assert_snapshot!(render(&acl_topology(), "master"));
}

#[test]
fn acl_sentinel() {
    insta::assert_snapshot!(render(&acl_topology(), "sentinel-1"));
}

#[test]
fn acl_with_default_on_keeps_requirepass_and_no_admin_user() {
    let mut topology = acl_topology();
    if let Some(acl) = topology.acl.as_mut() {
        acl.disable_default = false;
    }
    let master = render(&topology, "master");
    assert!(master.contains(&format!("\nrequirepass \"{PASSWORD}\"\n")));
    assert!(!master.contains("user default"));
    assert!(!master.contains("user rcluster on"));
    assert!(master.contains("\nmasteruser rcluster-replication\n"));
    let sentinel = render(&topology, "sentinel-1");
    // `default` keeps the group password; no admin user, but the peer and client users.
    assert!(sentinel.contains(&format!("\nrequirepass \"{PASSWORD}\"\n")));
    assert!(!sentinel.contains("user default"), "{sentinel}");
    assert!(!sentinel.contains("user rcluster on"), "{sentinel}");
    assert!(
        sentinel.contains("\nuser rcluster-sentinel-peer on "),
        "{sentinel}"
    );
    assert!(
        sentinel.contains("\nuser rcluster-sentinel-client on "),
        "{sentinel}"
    );
    assert!(sentinel.contains("\nsentinel sentinel-user rcluster-sentinel-peer\n"));
    assert!(sentinel.contains("\nsentinel auth-user mymaster rcluster-sentinel\n"));
}

#[test]
fn acl_configs_hold_hashes_not_user_passwords() {
    let topology = acl_topology();
    let layout = Layout::new(&topology, SUBNET);
    for (node, text) in render_all(&topology, &layout, PASSWORD).expect("renders") {
        assert!(!text.contains("ops-Pa55word"), "{}", node.name);
        let app = crate::acl::derived_password(PASSWORD, "app");
        assert!(!text.contains(app.expose()), "{}", node.name);
    }
    // Masked: neither passwords nor hashes.
    for (node, text) in render_all(&topology, &layout, MASK).expect("renders") {
        assert!(!text.contains(PASSWORD), "{}", node.name);
        for line in text.lines().filter(|l| l.starts_with("user ")) {
            assert!(
                line.ends_with(&format!("#{MASK}")) || line.starts_with("user default off"),
                "{line}"
            );
        }
    }
}

#[test]
fn kubernetes_configs_hold_placeholders_the_pods_fill_never_a_password_or_hash() {
    let password = super::k8s::Password {
        value: Some(PASSWORD),
        include_secret: false,
        tls: None,
    };
    let yaml = super::k8s::render(&acl_topology(), password).expect("renders");
    assert!(yaml.contains("user app on ~app:* +@all -@dangerous #__RCLUSTER_ACL_HASH_app__"));
    assert!(yaml.contains("masterauth \"__RCLUSTER_ACL_PASSWORD_rcluster-replication__\""));
    assert!(
        yaml.contains("--user rcluster "),
        "the scripts log in as rcluster"
    );
    assert!(
        !yaml.contains("ops-Pa55word"),
        "no Secret without --show-secrets"
    );
    let app = crate::acl::derived_password(PASSWORD, "app");
    assert!(!yaml.contains(app.expose()));
}

/// The default group announced at a LAN address, ports published on every address.
fn announced(host: &str) -> Topology {
    let mut topology = default_topology();
    topology.cluster.bind = "0.0.0.0".parse().expect("literal IP");
    topology.cluster.announce = crate::topology::Announce::Host(host.into());
    topology
}

#[test]
fn announced_replica() {
    insta::assert_snapshot!(render(&announced("192.168.1.20"), "replica-1"));
}

#[test]
fn announced_sentinel() {
    insta::assert_snapshot!(render(&announced("192.168.1.20"), "sentinel-2"));
}

#[test]
fn announced_host_names_are_resolved_and_handed_out_as_names() {
    let text = render(&announced("redis.example.com"), "sentinel-1");
    assert!(
        text.contains("\nsentinel resolve-hostnames yes\n"),
        "{text}"
    );
    assert!(
        text.contains("\nsentinel announce-hostnames yes\n"),
        "{text}"
    );
    assert!(
        text.contains("\nsentinel announce-ip redis.example.com\nsentinel announce-port 26379\n"),
        "{text}"
    );
    assert!(
        text.contains("\nsentinel monitor mymaster redis.example.com 6379 2\n"),
        "{text}"
    );
}

#[test]
fn announced_failover_follows_the_new_master_at_its_published_port() {
    let topology = announced("192.168.1.20");
    let layout = Layout::new(&topology, SUBNET);
    let new_master = layout.node("replica-1").unwrap().ip;
    let old = layout.master();
    let text = node_config(&topology, &layout, old, new_master, PASSWORD).expect("renders");
    assert!(text.contains("\nreplicaof 192.168.1.20 6380\n"), "{text}");
    assert!(
        text.contains("\nreplica-announce-ip 192.168.1.20\nreplica-announce-port 6379\n"),
        "{text}"
    );
    assert!(!text.contains("172."), "{text}");
}

#[test]
fn compose_carries_the_announced_addresses_and_publishes_where_they_lead() {
    let topology = announced("192.168.1.20");
    let layout = Layout::new(&topology, SUBNET);
    let image = super::compose::Image {
        reference: "redis:7".into(),
        user: None,
    };
    let files = super::compose::render(&topology, &layout, &image, MASK, None).expect("renders");
    let file = |path: &str| {
        files
            .iter()
            .find(|f| f.path == path)
            .unwrap_or_else(|| panic!("no {path}"))
            .content
            .clone()
    };
    let compose = file("docker-compose.yml");
    assert!(compose.contains("0.0.0.0:6380:6379"), "{compose}");
    let replica = file("demo-replica-1/redis.conf");
    assert!(
        replica.contains("\nreplicaof 192.168.1.20 6379\n"),
        "{replica}"
    );
    let sentinel = file("demo-sentinel-1/sentinel.conf");
    assert!(
        sentinel.contains("\nsentinel monitor mymaster 192.168.1.20 6379 2\n"),
        "{sentinel}"
    );
}

#[test]
fn sentinel_peer_password_is_derived_and_masked_without_show_secrets() {
    let topology = acl_topology();
    let layout = Layout::new(&topology, SUBNET);
    let peer = crate::acl::derived_password(PASSWORD, crate::acl::SENTINEL_PEER_USER);
    let sentinel = render(&topology, "sentinel-1");
    assert!(sentinel.contains(&format!("\nsentinel sentinel-pass \"{}\"\n", peer.expose())));
    let masked = render_all(&topology, &layout, crate::secret::MASK).expect("renders");
    for (node, text) in masked {
        assert!(!text.contains(peer.expose()), "{}", node.name);
        assert!(!text.contains(PASSWORD), "{}", node.name);
        if !node.role.is_data() {
            assert!(
                text.contains(&format!(
                    "\nsentinel sentinel-pass \"{}\"\n",
                    crate::secret::MASK
                )),
                "{text}"
            );
        }
    }
}
