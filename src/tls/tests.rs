use super::*;
use crate::render::names::subject_alt_names;
use crate::topology::{Layout, Loaded, Subnet, parse};
use std::path::Path;

fn loaded(text: &str) -> Loaded {
    parse(
        Path::new("/work/topology.toml"),
        text,
        None,
        &|_| None,
        &|_| Err(std::io::Error::from(std::io::ErrorKind::NotFound)),
    )
    .expect("valid topology")
}

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

#[test]
fn sans_cover_every_address_a_client_uses() {
    let l = loaded("[cluster]\nname = \"shop\"\nbind = \"10.1.2.3\"\n[tls]\nenabled = true\n");
    let layout = Layout::new(&l.topology, Subnet([172, 28, 5]));
    let replica = layout.node("replica-2").unwrap();
    let sans = subject_alt_names(&l.topology, &layout, replica, &["203.0.113.9".to_string()]);
    for want in [
        "172.28.5.12",
        "shop-replica-2",
        "replica-2",
        "localhost",
        "127.0.0.1",
        "10.1.2.3",
        "shop-redis-2.shop-redis.default.svc.cluster.local",
        "shop-redis-2",
        "shop-redis.default.svc.cluster.local",
        "203.0.113.9",
    ] {
        assert!(
            sans.contains(&want.to_string()),
            "{want} missing from {sans:?}"
        );
    }
    let unique: std::collections::BTreeSet<_> = sans.iter().collect();
    assert_eq!(unique.len(), sans.len(), "no name twice: {sans:?}");

    let sentinel = layout.node("sentinel-1").unwrap();
    let sans = subject_alt_names(&l.topology, &layout, sentinel, &[]);
    assert!(
        sans.contains(
            &"shop-sentinel-0.shop-sentinel-headless.default.svc.cluster.local".to_string()
        ),
        "{sans:?}"
    );
    assert!(
        sans.contains(&"shop-sentinel.default.svc.cluster.local".to_string()),
        "{sans:?}"
    );
    assert!(sans.contains(&"172.28.5.101".to_string()), "{sans:?}");
}

#[test]
fn the_announced_host_is_named_whether_set_or_decided_by_auto() {
    let l = loaded(
        "[cluster]\nbind = \"0.0.0.0\"\nannounce = \"redis.example.com\"\n[tls]\nenabled = true\n",
    );
    let layout = Layout::new(&l.topology, Subnet([172, 28, 5]));
    let sans = subject_alt_names(&l.topology, &layout, layout.master(), &[]);
    assert!(sans.contains(&"redis.example.com".to_string()), "{sans:?}");
    // `auto` decided to announce the host the ports are published on.
    let l = loaded("[cluster]\nbind = \"10.1.2.3\"\n[tls]\nenabled = true\n");
    let layout =
        Layout::new(&l.topology, Subnet([172, 28, 5])).announcing(Some("10.9.9.9".to_string()));
    let sans = subject_alt_names(&l.topology, &layout, layout.master(), &[]);
    assert!(sans.contains(&"10.9.9.9".to_string()), "{sans:?}");
}

#[test]
fn the_default_bind_address_is_named_once() {
    let l = loaded("[tls]\nenabled = true\n");
    let layout = Layout::new(&l.topology, Subnet([172, 28, 5]));
    let sans = subject_alt_names(&l.topology, &layout, layout.master(), &[]);
    assert_eq!(sans.iter().filter(|s| *s == "127.0.0.1").count(), 1);
}

fn generated(sans: &[String]) -> (String, CertKey, CertKey) {
    let (ca_pem, ca_key) = generate_ca("demo", now()).unwrap();
    let other_key = KeyPair::generate().unwrap();
    let issuer = Issuer::from_ca_cert_pem(&ca_pem, ca_key).unwrap();
    let leaf = issue("demo-master", sans, &issuer, now()).unwrap();
    let (other_ca, _) = generate_ca("other", now()).unwrap();
    let other_issuer = Issuer::from_ca_cert_pem(&other_ca, other_key).unwrap();
    let foreign = issue("x", sans, &other_issuer, now()).unwrap();
    (ca_pem, leaf, foreign)
}

fn check(ca: &str, cert: &str, key: &str) -> Vec<FileProblem> {
    let files = UserFiles {
        ca: (Path::new("ca.pem"), Ok(ca.to_string())),
        cert: (Path::new("node.pem"), Ok(cert.to_string())),
        key: (Path::new("node.key"), Ok(key.to_string())),
    };
    check_files(&files, now())
}

#[test]
fn a_generated_certificate_verifies_against_the_generated_ca() {
    let sans = vec!["172.28.5.10".to_string(), "demo-master".to_string()];
    let (ca, leaf, _) = generated(&sans);
    assert_eq!(check(&ca, &leaf.cert_pem, leaf.key_pem.expose()), vec![]);
    assert!(still_good(&leaf.cert_pem, &sans, now()));
    assert!(
        !still_good(&leaf.cert_pem, &sans[..1], now()),
        "a changed name list is reissued"
    );
    assert!(
        !still_good(
            &leaf.cert_pem,
            &sans,
            now() + Duration::days(LEAF_DAYS - 10)
        ),
        "renewed 30 days ahead"
    );
}

#[test]
fn check_names_a_foreign_key_and_a_foreign_ca() {
    let sans = vec!["localhost".to_string()];
    let (ca, leaf, foreign) = generated(&sans);
    let problems = check(&ca, &leaf.cert_pem, foreign.key_pem.expose());
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].key, "tls.key_file");
    assert!(
        problems[0]
            .message
            .contains("is not the key of `tls.cert_file` (`node.pem`)"),
        "{}",
        problems[0].message
    );

    let problems = check(&ca, &foreign.cert_pem, foreign.key_pem.expose());
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].key, "tls.cert_file");
    assert!(
        problems[0]
            .message
            .contains("is not signed by the CA in `tls.ca_file` (`ca.pem`)"),
        "{}",
        problems[0].message
    );
}

#[test]
fn check_reports_unreadable_and_garbled_files_all_at_once() {
    let files = UserFiles {
        ca: (
            Path::new("missing.pem"),
            Err("no such file or directory".into()),
        ),
        cert: (Path::new("node.pem"), Ok("hello".into())),
        key: (
            Path::new("node.key"),
            Ok("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n".into()),
        ),
    };
    let problems = check_files(&files, now());
    let keys: Vec<_> = problems.iter().map(|p| p.key).collect();
    assert_eq!(
        keys,
        ["tls.ca_file", "tls.cert_file", "tls.key_file"],
        "{problems:?}"
    );
    assert!(
        problems[0].message.contains("cannot be read: no such file"),
        "{}",
        problems[0].message
    );
    assert!(
        problems[1].message.contains("holds no PEM certificate"),
        "{}",
        problems[1].message
    );
}

#[test]
fn check_warns_30_days_before_expiry() {
    let (ca_pem, ca_key) = generate_ca("demo", now()).unwrap();
    let issuer = Issuer::from_ca_cert_pem(&ca_pem, ca_key).unwrap();
    let leaf = issue("n", &["localhost".to_string()], &issuer, now()).unwrap();
    let files = UserFiles {
        ca: (Path::new("ca.pem"), Ok(ca_pem.clone())),
        cert: (Path::new("node.pem"), Ok(leaf.cert_pem.clone())),
        key: (Path::new("node.key"), Ok(leaf.key_pem.expose().to_string())),
    };
    let later = now() + Duration::days(LEAF_DAYS - 10);
    let problems = check_files(&files, later);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].warning);
    assert!(
        problems[0].message.contains("expires on"),
        "{}",
        problems[0].message
    );
    let problems = check_files(&files, now() + Duration::days(LEAF_DAYS + 1));
    assert!(
        problems
            .iter()
            .any(|p| !p.warning && p.message.contains("expired on")),
        "{problems:?}"
    );
}

#[test]
fn unnamed_lists_the_addresses_a_certificate_misses() {
    let (ca_pem, ca_key) = generate_ca("demo", now()).unwrap();
    let issuer = Issuer::from_ca_cert_pem(&ca_pem, ca_key).unwrap();
    let leaf = issue(
        "n",
        &["172.28.5.10".to_string(), "demo-master".to_string()],
        &issuer,
        now(),
    )
    .unwrap();
    let wanted = ["172.28.5.10".to_string(), "172.28.5.11".to_string()];
    assert_eq!(
        unnamed(&leaf.cert_pem, &wanted),
        Some(vec!["172.28.5.11".to_string()])
    );
    assert_eq!(unnamed("not pem", &wanted), None);
}
