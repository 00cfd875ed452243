//! `rcluster check` run as a real binary: the bad-topology corpus, the default file, `--json`.
//!
//! Each `tests/fixtures/bad/NAME.toml` has a sibling `NAME.expected` with the exact stderr.
//! After a deliberate message change, regenerate them with `RCLUSTER_BLESS=1 cargo test
//! --test check_cli` and review the diff.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Named by the `password-env-unset` fixture; removed from the child's environment.
const UNSET_VAR: &str = "RCLUSTER_TEST_UNSET_PW";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn bad_dir() -> PathBuf {
    repo().join("tests/fixtures/bad")
}

fn rcluster(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rcluster"))
        .current_dir(dir)
        .args(args)
        .env_remove(UNSET_VAR)
        .output()
        .expect("run rcluster")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `error: NAME:LINE:COL: ...` with both numbers present.
fn is_located(line: &str, file: &str) -> bool {
    let Some(rest) = line.strip_prefix(&format!("error: {file}:")) else {
        return false;
    };
    let mut parts = rest.splitn(3, ':');
    let number =
        |p: Option<&str>| p.is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    number(parts.next()) && number(parts.next()) && parts.next().is_some_and(|m| m.starts_with(' '))
}

#[test]
fn every_bad_topology_fails_with_its_expected_messages() {
    let bless = std::env::var_os("RCLUSTER_BLESS").is_some();
    let mut fixtures: Vec<PathBuf> = fs::read_dir(bad_dir())
        .expect("read fixtures")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    fixtures.sort();
    assert!(fixtures.len() >= 30, "only {} bad fixtures", fixtures.len());

    let mut failures = Vec::new();
    for path in &fixtures {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .expect("utf-8 name");
        let expected_path = path.with_extension("expected");
        let out = rcluster(&bad_dir(), &["-f", name, "check"]);
        let stderr = text(&out.stderr);
        if bless {
            fs::write(&expected_path, &stderr).expect("write expected");
        }
        let expected = fs::read_to_string(&expected_path)
            .unwrap_or_else(|e| panic!("{}: {e}", expected_path.display()));

        if out.status.code() != Some(2) {
            failures.push(format!("{name}: exit {:?}, expected 2", out.status.code()));
        }
        if !out.stdout.is_empty() {
            failures.push(format!("{name}: unexpected stdout: {}", text(&out.stdout)));
        }
        if stderr != expected {
            failures.push(format!(
                "{name}: stderr differs\n--- expected\n{expected}--- actual\n{stderr}"
            ));
        }
        let lines: Vec<&str> = expected.lines().collect();
        let (last, diagnostics) = lines.split_last().expect("expected file is not empty");
        assert!(
            last.starts_with(&format!("error: invalid topology `{name}`: ")),
            "{name}: last line is the headline"
        );
        for line in diagnostics.iter().filter(|l| l.starts_with("error:")) {
            assert!(
                is_located(line, name),
                "{name}: not `file:line:col:`: {line}"
            );
        }
        assert!(!diagnostics.is_empty(), "{name}: no diagnostics expected?");
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn the_default_topology_is_valid_without_warnings() {
    let out = rcluster(&repo(), &["check"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stderr), "");
    assert_eq!(
        text(&out.stdout),
        "topology.toml: ok: `demo`, 1 master, 2 replicas, 3 sentinels (quorum 2)\n"
    );
}

#[test]
fn one_run_reports_quorum_unknown_key_and_appendfsync_together() {
    let out = rcluster(&bad_dir(), &["-f", "combined.toml", "check"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    for wanted in [
        "error: combined.toml:3:1: `sentinel.quorum` is 5 but there are only 3 sentinels; set it between 1 and 3\n",
        "error: combined.toml:4:1: unknown key `sentinel.qorum` (did you mean `quorum`?)",
        "error: combined.toml:7:1: `persistence.appendfsync` is `sometimes`; use one of `always`, `everysec`, `no`\n",
        "error: invalid topology `combined.toml`: 3 error(s)\n",
    ] {
        assert!(stderr.contains(wanted), "missing {wanted:?} in:\n{stderr}");
    }
    // Printed once, not again by the top-level error printer.
    assert_eq!(stderr.matches("`sentinel.quorum` is 5").count(), 1);
}

#[test]
fn json_output_has_file_validity_errors_and_warnings() {
    let out = rcluster(&bad_dir(), &["-f", "combined.toml", "--json", "check"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(text(&out.stderr), "");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json on stdout");
    assert_eq!(report["file"], "combined.toml");
    assert_eq!(report["valid"], false);
    assert_eq!(report["warnings"], serde_json::json!([]));
    let errors = report["errors"].as_array().expect("errors array");
    assert_eq!(errors.len(), 3);
    assert_eq!(
        errors[0],
        serde_json::json!({
            "severity": "error",
            "key": "sentinel.quorum",
            "line": 3,
            "column": 1,
            "message": "`sentinel.quorum` is 5 but there are only 3 sentinels; set it between 1 and 3",
        })
    );
    let keys: Vec<&str> = errors.iter().filter_map(|e| e["key"].as_str()).collect();
    assert_eq!(
        keys,
        [
            "sentinel.quorum",
            "sentinel.qorum",
            "persistence.appendfsync"
        ]
    );

    let out = rcluster(&repo(), &["--json", "check"]);
    assert_eq!(out.status.code(), Some(0));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json on stdout");
    assert_eq!(
        report,
        serde_json::json!({ "file": "topology.toml", "valid": true, "errors": [], "warnings": [] })
    );
}

#[test]
fn warnings_do_not_fail_the_check_and_quiet_hides_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    fs::write(
        dir.path().join("t.toml"),
        "[sentinel]\ncount = 2\nquorum = 2\n",
    )
    .expect("write");

    let out = rcluster(dir.path(), &["-f", "t.toml", "check"]);
    assert_eq!(out.status.code(), Some(0));
    let stderr = text(&out.stderr);
    assert_eq!(stderr.lines().count(), 4, "{stderr}");
    assert!(
        stderr.starts_with("warning: t.toml:2:1: `sentinel.count` is 2: "),
        "{stderr}"
    );
    assert!(stderr.contains("warning: t.toml:3:1: `sentinel.quorum` is 2, every sentinel"));
    // Where a drain leaves too few sentinels to fail over, on the key to change.
    assert!(
        stderr.contains("warning: t.toml:2:1: on Kubernetes, a node drain may evict 1 of the 2 sentinels at once"),
        "{stderr}"
    );
    assert_eq!(
        text(&out.stdout),
        "t.toml: ok: `demo`, 1 master, 2 replicas, 2 sentinels (quorum 2), 4 warnings\n"
    );

    let out = rcluster(dir.path(), &["-f", "t.toml", "--quiet", "check"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(text(&out.stderr), "");
    assert_eq!(text(&out.stdout), "");

    // Quiet still shows errors.
    let out = rcluster(&bad_dir(), &["-f", "quorum-too-high.toml", "-q", "check"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("`sentinel.quorum` is 5"));
}

#[test]
fn the_password_is_never_printed() {
    let dir = tempfile::tempdir().expect("tempdir");
    fs::write(
        dir.path().join("t.toml"),
        "[auth]\npassword = \"Very-Secret-42\"\n",
    )
    .expect("write");
    for args in [
        &["-f", "t.toml", "check"][..],
        &["-f", "t.toml", "--json", "check"],
    ] {
        let out = rcluster(dir.path(), args);
        assert_eq!(out.status.code(), Some(0));
        let all = text(&out.stdout) + &text(&out.stderr);
        assert!(
            all.contains("`auth.password` is written in the topology file"),
            "{all}"
        );
        assert!(!all.contains("Very-Secret-42"), "{all}");
    }
}

#[test]
fn password_file_is_read_relative_to_the_topology_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    fs::create_dir(dir.path().join("conf")).expect("mkdir");
    fs::write(
        dir.path().join("conf/t.toml"),
        "[auth]\npassword_file = \"pw\"\n",
    )
    .expect("write");
    fs::write(dir.path().join("conf/pw"), "from-file\n").expect("write");
    let out = rcluster(dir.path(), &["-f", "conf/t.toml", "check"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(!text(&out.stdout).contains("from-file"));
}

#[test]
fn a_missing_file_and_a_bad_name_override_are_usage_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = rcluster(dir.path(), &["-f", "nope.toml", "check"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        text(&out.stderr),
        "error: nope.toml: topology file `nope.toml` does not exist; create it (see the default `topology.toml`) or pass `-f PATH`\n\
         error: invalid topology `nope.toml`: 1 error(s)\n"
    );

    let out = rcluster(&repo(), &["--name", "Not Valid", "check"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).starts_with("error: topology.toml: `--name` is `Not Valid`; "),
        "{}",
        text(&out.stderr)
    );
    let out = rcluster(&repo(), &["--name", "other", "check"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stdout).contains("ok: `other`"));
}

/// `[tls]` with the user's own files: every problem at once, each at its key's line.
#[test]
fn tls_files_that_do_not_belong_together_are_named_at_their_keys() {
    use rcluster::tls::{generate_ca, issue};
    let dir = tempfile::tempdir().expect("tempdir");
    let now = time::OffsetDateTime::now_utc();
    let (ca_pem, ca_key) = generate_ca("mine", now).expect("ca");
    let issuer = rcgen::Issuer::from_ca_cert_pem(&ca_pem, ca_key).expect("issuer");
    let addresses: Vec<String> = ["10", "11", "12", "101", "102", "103"]
        .iter()
        .map(|last| format!("172.30.77.{last}"))
        .collect();
    let node = issue("node", &addresses, &issuer, now).expect("cert");
    let other = issue("other", &addresses[..5], &issuer, now).expect("cert");
    fs::write(dir.path().join("ca.pem"), &ca_pem).expect("write");
    fs::write(dir.path().join("node.pem"), &node.cert_pem).expect("write");
    fs::write(dir.path().join("node.key"), node.key_pem.expose()).expect("write");
    fs::write(dir.path().join("other.key"), other.key_pem.expose()).expect("write");
    fs::write(dir.path().join("other.pem"), &other.cert_pem).expect("write");
    let topology = |key: &str, ca: &str| {
        format!(
            "[tls]\nenabled = true\nca_file = \"{ca}\"\ncert_file = \"node.pem\"\nkey_file = \"{key}\"\n\
             [cluster]\nsubnet = \"172.30.77.0/24\"\n"
        )
    };

    fs::write(dir.path().join("t.toml"), topology("node.key", "ca.pem")).expect("write");
    let out = rcluster(dir.path(), &["-f", "t.toml", "check"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stderr), "");

    fs::write(
        dir.path().join("t.toml"),
        topology("other.key", "missing.pem"),
    )
    .expect("write");
    let out = rcluster(dir.path(), &["-f", "t.toml", "check"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 3, "{stderr}");
    assert!(
        lines[0].starts_with("error: t.toml:3:1: `tls.ca_file` (`")
            && lines[0].contains("missing.pem`) cannot be read: "),
        "{stderr}"
    );
    assert!(
        lines[1].starts_with("error: t.toml:5:1: `tls.key_file` (`")
            && lines[1].contains("other.key`) is not the key of `tls.cert_file`"),
        "{stderr}"
    );
    assert_eq!(lines[2], "error: invalid topology `t.toml`: 2 error(s)");
    assert!(!stderr.contains("BEGIN"), "{stderr}");

    // A certificate that misses a node's address: rcluster's and clients' checks would fail.
    let text_toml = topology("other.key", "ca.pem").replace("node.pem", "other.pem");
    fs::write(dir.path().join("t.toml"), text_toml).expect("write");
    let out = rcluster(dir.path(), &["-f", "t.toml", "check"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with("error: t.toml:4:1: `tls.cert_file` (`")
            && stderr.contains("other.pem`) does not name the node address(es) 172.30.77.103: "),
        "{stderr}"
    );
}
