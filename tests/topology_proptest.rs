//! `topology::parse` never panics, whatever the text, and what it accepts is consistent.

use std::io;
use std::path::Path;

use proptest::prelude::*;
use rcluster::topology::raw::SCHEMA;
use rcluster::topology::{Loaded, TopologyError, parse};

fn run(text: &str, name: Option<&str>, secret: Option<String>) -> Result<Loaded, TopologyError> {
    let env = |_: &str| secret.clone();
    let read = |_: &Path| -> io::Result<String> {
        secret
            .clone()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "absent"))
    };
    parse(Path::new("dir/topology.toml"), text, name, &env, &read)
}

/// Whatever `parse` decides must hold together.
fn check_outcome(result: &Result<Loaded, TopologyError>) {
    match result {
        Ok(loaded) => {
            let t = &loaded.topology;
            assert!((1..=9).contains(&t.sentinel.count));
            assert!((1..=t.sentinel.count).contains(&t.sentinel.quorum));
            assert!(t.replicas.count <= 16);
            assert!(t.sentinel.down_after_ms < t.sentinel.failover_timeout_ms);
            assert!(!t.cluster.name.is_empty() && t.cluster.name.len() <= 40);
            // Published host ports are distinct and in range (0 = the engine picks).
            let mut ports = vec![u32::from(t.master.port)];
            for (first, count) in [
                (t.replicas.port, t.replicas.count),
                (t.sentinel.port, t.sentinel.count),
            ] {
                if first != 0 {
                    ports.extend((0..u32::from(count)).map(|i| u32::from(first) + i));
                }
            }
            ports.retain(|p| *p != 0);
            assert!(ports.iter().all(|p| *p <= 65535), "{ports:?}");
            let mut unique = ports.clone();
            unique.sort_unstable();
            unique.dedup();
            assert_eq!(unique.len(), ports.len(), "{ports:?}");
            for w in &loaded.warnings {
                assert!(w.line.is_some() && w.column.is_some(), "{w:?}");
            }
        }
        Err(e) => {
            assert!(!e.errors.is_empty());
            for d in &e.errors {
                // Only `--name` (not in the file) has no location.
                assert!(
                    d.line.is_some() || d.message.starts_with("`--name`"),
                    "{d:?}"
                );
                assert!(!d.message.is_empty());
                assert!(!d.message.contains('\n'), "one line: {d:?}");
            }
        }
    }
}

fn toml_string(s: &str) -> String {
    let mut out = String::from("\"");
    for ch in s.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn scalar() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<i64>().prop_map(|n| n.to_string()),
        (-5i64..70000).prop_map(|n| n.to_string()),
        any::<bool>().prop_map(|b| b.to_string()),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| format!("{f:?}")),
        any::<String>().prop_map(|s| toml_string(&s)),
        "[a-z0-9 -]{0,12}".prop_map(|s| toml_string(&s)),
        Just("\"900 1\"".to_string()),
        Just("1979-05-27T07:32:00Z".to_string()),
    ]
}

fn value() -> impl Strategy<Value = String> {
    scalar().prop_recursive(2, 12, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(|v| format!("[{}]", v.join(", "))),
            prop::collection::vec(("[a-z-]{1,8}", inner), 0..4).prop_map(|kv| {
                let body: Vec<String> = kv.iter().map(|(k, v)| format!("\"{k}\" = {v}")).collect();
                format!("{{ {} }}", body.join(", "))
            }),
        ]
    })
}

fn key_in(section: usize) -> impl Strategy<Value = String> {
    let known: Vec<String> = SCHEMA[section]
        .1
        .iter()
        .map(|(k, _)| k.to_string())
        .collect();
    prop_oneof![
        4 => prop::sample::select(known),
        1 => "[a-z_]{1,10}",
    ]
}

/// A document of known (and some unknown) sections and keys with values of any type.
fn document() -> impl Strategy<Value = String> {
    let section = (0..SCHEMA.len())
        .prop_flat_map(|i| (Just(i), prop::collection::vec((key_in(i), value()), 0..6)));
    (
        prop::collection::vec(section, 0..8),
        prop::option::of("[a-z]{1,8}"),
    )
        .prop_map(|(sections, unknown)| {
            let mut text = String::new();
            for (i, keys) in sections {
                text.push_str(&format!("[{}]\n", SCHEMA[i].0));
                for (k, v) in keys {
                    text.push_str(&format!("{k} = {v}\n"));
                }
            }
            if let Some(u) = unknown {
                text.push_str(&format!("[{u}]\nx = 1\n"));
            }
            text
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_text_never_panics(text in any::<String>()) {
        check_outcome(&run(&text, None, None));
    }

    #[test]
    fn toml_like_text_never_panics(text in "[\\[\\]a-z_.=\"' \n0-9{},#-]{0,200}") {
        check_outcome(&run(&text, None, None));
    }

    #[test]
    fn arbitrary_documents_never_panic(
        text in document(),
        name in prop::option::of(any::<String>()),
        secret in prop::option::of(any::<String>()),
    ) {
        check_outcome(&run(&text, name.as_deref(), secret));
    }

    #[test]
    fn valid_looking_values_in_known_keys_never_panic(
        count in -2i64..12,
        quorum in -2i64..12,
        replicas in -2i64..20,
        master in -1i64..70000,
        replica_port in -1i64..70000,
        sentinel_port in -1i64..70000,
        down in -1i64..100000,
        timeout in -1i64..100000,
    ) {
        let text = format!(
            "[master]\nport = {master}\n[replicas]\ncount = {replicas}\nport = {replica_port}\n\
             [sentinel]\ncount = {count}\nquorum = {quorum}\nport = {sentinel_port}\n\
             down_after_ms = {down}\nfailover_timeout_ms = {timeout}\n"
        );
        check_outcome(&run(&text, None, None));
    }
}
