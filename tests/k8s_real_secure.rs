//! A TLS + ACL group on a real Kubernetes v1.20.2 (tests/realkube): mutual TLS on every
//! port, the `default` user off, one app user (tests/fixtures/k8s-group-tls-acl.toml). One
//! cluster, scenarios in sequence: a fresh start, `kubectl delete pod` of the master, SIGKILL
//! of the master's redis-server, and a drain of the node pod by pod through the eviction API,
//! where every answer must be the one the PodDisruptionBudgets give (at most one redis pod
//! and `maxUnavailable` sentinels away at once). Each runs under a writer that logs in as
//! `rcluster` over TLS and records every key a `WAIT 1` acknowledged, and asserts: no
//! acknowledged key is lost; exactly one master and every sentinel names it; every replica
//! is linked within 20 s of the last master switch; no pod is NotReady more than 20 s after
//! its own restart. The figures (failover after a delete and a kill, longest NotReady) are
//! printed.
//!
//! Then, on the same cluster, a default group whose password is in a Secret the test
//! manages (`existing_secret`) rotates its password in the three documented steps
//! (`next_password`, then `password` + `previous_password`, then `password` alone, each with
//! a `secret_revision` bump), under the writer and a prober that logs in to every pod with
//! every password that must be accepted, and checks each pod's `ACL LOG` for refused logins.
//! The machinery (group, writer, monitor, the four assertions) is tests/realkube/group.rs.

mod common;
mod realkube;

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use realkube::Cluster;
use realkube::group::{self, Disturb, Group, Login, Outcome, TlsLogin, lock};

/// `maxUnavailable` and `status.disruptionsAllowed` of the PodDisruptionBudget `name`.
fn budget(cluster: &Cluster, name: &str) -> Result<(i64, i64), String> {
    let json = cluster.kubectl(&["get", "pdb", name, "-o", "json"])?;
    let value: serde_json::Value =
        serde_json::from_str(&json).map_err(|e| format!("budget `{name}`: {e}"))?;
    let max = value["spec"]["maxUnavailable"]
        .as_i64()
        .ok_or_else(|| format!("budget `{name}` has no integer maxUnavailable"))?;
    let allowed = value["status"]["disruptionsAllowed"].as_i64().unwrap_or(0);
    Ok((max, allowed))
}

/// What the API server answered to an eviction.
#[derive(Debug, PartialEq, Eq)]
enum Eviction {
    /// 201: the pod is being deleted.
    Evicted,
    /// 429: a PodDisruptionBudget forbids it now.
    Refused,
}

/// POST a `policy/v1beta1` Eviction of `pod` (what `kubectl drain` does for each pod).
fn evict(cluster: &Cluster, pod: &str, dir: &std::path::Path) -> Result<Eviction, String> {
    let body = serde_json::json!({
        "apiVersion": "policy/v1beta1",
        "kind": "Eviction",
        "metadata": { "name": pod, "namespace": "default" },
    });
    let file = dir.join(format!("evict-{pod}.json"));
    std::fs::write(&file, body.to_string()).map_err(|e| format!("{}: {e}", file.display()))?;
    let path = format!("/api/v1/namespaces/default/pods/{pod}/eviction");
    let file = file.to_string_lossy().into_owned();
    match cluster.kubectl(&["create", "--raw", &path, "-f", &file]) {
        Ok(out) if out.contains("\"code\":201") => Ok(Eviction::Evicted),
        Ok(out) => Err(format!("eviction of `{pod}`: unexpected answer {out}")),
        Err(e) if e.contains("TooManyRequests") && e.contains("disruption budget") => {
            Ok(Eviction::Refused)
        }
        Err(e) => Err(format!("eviction of `{pod}`: {e}")),
    }
}

/// A drain of the single node, pod by pod: cordon it, wait until both budgets allow their
/// `maxUnavailable`, then evict the master first and every other pod of each kind; exactly
/// the first `maxUnavailable` of a kind may go (nothing can come back on a cordoned node),
/// every later one must be refused. Then uncordon, so the evicted pods come back. The
/// evicted master, and what was answered.
fn drain_through_budgets(group: &Group, dir: &std::path::Path) -> Result<String, String> {
    let cluster = group.cluster;
    let node = cluster.kubectl(&["get", "nodes", "-o", "jsonpath={.items[0].metadata.name}"])?;
    let node = node.trim().to_string();
    // The disruption controller counts healthy pods a moment after they are Ready.
    let deadline = Instant::now() + Duration::from_secs(60);
    let budgets = loop {
        let redis = budget(cluster, &group.redis_set)?;
        let sentinel = budget(cluster, &group.sentinel_set)?;
        if redis.0 == redis.1 && sentinel.0 == sentinel.1 {
            break (redis.0, sentinel.0);
        }
        if Instant::now() > deadline {
            return Err(format!(
                "budgets never allowed their maxUnavailable: redis {redis:?}, sentinel {sentinel:?}"
            ));
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    eprintln!(
        "  budgets: maxUnavailable redis {}, sentinel {}",
        budgets.0, budgets.1
    );
    let master = group.agreed_master().ok_or("no agreed master")?;
    cluster.kubectl(&["cordon", &node])?;
    let answers = (|| {
        let mut redis = vec![master.clone()];
        redis.extend(group.redis_pods().into_iter().filter(|p| *p != master));
        let mut answers = Vec::new();
        for (pods, max) in [(redis, budgets.0), (group.sentinel_pods(), budgets.1)] {
            for (n, pod) in pods.iter().enumerate() {
                let answer = evict(cluster, pod, dir)?;
                let expected = if (n as i64) < max {
                    Eviction::Evicted
                } else {
                    Eviction::Refused
                };
                eprintln!("  evict `{pod}`: {answer:?}");
                if answer != expected {
                    answers.push(format!(
                        "evicting `{pod}` (number {} of its kind, maxUnavailable {max}): {answer:?}, the budget says {expected:?}",
                        n + 1
                    ));
                }
            }
        }
        Ok::<_, String>(answers)
    })();
    // Uncordon whatever happened: the group must heal, and later scenarios need the node.
    let uncordon = cluster.kubectl(&["uncordon", &node]);
    let wrong = answers?;
    uncordon?;
    if !wrong.is_empty() {
        return Err(wrong.join("; "));
    }
    Ok(master)
}

/// The TLS + ACL group: fresh start, master pod delete, master SIGKILL, drain.
fn tls_acl_scenarios(cluster: &Cluster) -> Vec<(String, Outcome)> {
    let password = group::fresh_password();
    let state = tempfile::tempdir().expect("a state dir for the CA");
    let state_dir = state.path().to_string_lossy().into_owned();
    // The fixture says `version = "1.20"`: its budgets are policy/v1beta1, as 1.20 serves.
    let yaml = group::render(
        &common::fixture("k8s-group-tls-acl.toml"),
        &password,
        &[("RCLUSTER_STATE_DIR", &state_dir)],
    );
    assert!(
        yaml.contains("apiVersion: policy/v1beta1\n") && !yaml.contains("apiVersion: policy/v1\n"),
        "a render for 1.20 must carry policy/v1beta1 budgets only"
    );
    let manifests = realkube::manifest::parse(&yaml);
    let images = group::images(&manifests);
    let tls_secret = manifests
        .secrets
        .keys()
        .find(|name| name.ends_with("-tls"))
        .expect("a [tls] render has a TLS Secret")
        .clone();
    let tls_file = |key: &str| {
        manifests
            .secret_value(&tls_secret, key)
            .unwrap_or_else(|| panic!("`{tls_secret}` has no `{key}`"))
    };
    // `client_auth = "yes"`: the test presents the pods' own certificate, as they do to
    // each other.
    let tls = TlsLogin {
        ca_pem: tls_file("ca.crt"),
        identity: Some((tls_file("tls.crt"), tls_file("tls.key"))),
    };
    cluster.load_test_image(&images.iter().map(String::as_str).collect::<Vec<_>>());
    // `default` is off: the test logs in as the scripts do.
    let login = Login {
        user: Some("rcluster".to_string()),
        password,
        tls: Some(tls),
    };
    let group = Group::new(cluster, &yaml, login.clone());
    let applied = Instant::now();
    eprintln!("{}", cluster.apply(&yaml));
    let scenarios: Vec<(&str, Disturb)> = vec![
        (
            "TLS+ACL: fresh start",
            Box::new(|g: &Group| {
                g.cluster.wait_ready(&g.all_pods(), group::READY)?;
                g.note("every pod Ready after apply", applied.elapsed());
                // Neither plaintext nor the `default` user gets in; the TLS login did.
                let master = g.agreed_master().ok_or("no agreed master")?;
                let ip = g.pod_ip(&master).ok_or("the master has no address")?;
                let plain = Login {
                    tls: None,
                    ..login.clone()
                };
                if group::connect(ip, g.redis_port, &plain, Duration::from_secs(2)).is_ok() {
                    return Err(format!("`{master}` accepts a plaintext login"));
                }
                let default = Login {
                    user: None,
                    ..login.clone()
                };
                match group::connect(ip, g.redis_port, &default, Duration::from_secs(2)) {
                    Err(e) if is_auth_refusal(&e) => {}
                    other => {
                        return Err(format!(
                            "`{master}` answered a `default` login over TLS with {:?}",
                            other.map(|_| "a connection")
                        ));
                    }
                }
                Ok(None)
            }),
        ),
        (
            "TLS+ACL: kubectl delete pod of the master",
            Box::new(group::delete_master),
        ),
        (
            "TLS+ACL: SIGKILL of the master's redis-server",
            Box::new(group::kill_master_redis),
        ),
        (
            "TLS+ACL: drain of the node through the eviction API",
            Box::new(|g: &Group| drain_through_budgets(g, state.path()).map(Some)),
        ),
    ];
    let results = group::run_scenarios(&group, scenarios);
    // The rotation group runs next on the same two cores: this group's pods go.
    for set in [&group.redis_set, &group.sentinel_set] {
        if let Err(e) = cluster.kubectl(&["delete", "statefulset", set, "--wait=false"]) {
            eprintln!("{e}");
        }
    }
    results
}

/// Passwords (a label to print, the password) that every pod must accept.
type Accepted = Vec<(&'static str, String)>;

/// Which passwords every running pod must accept now, and what the probes saw.
struct Rotation {
    /// The phase's name and the passwords (label, password) every pod must accept in it.
    accepted: Mutex<(String, Accepted)>,
    /// Logins a pod refused for a password it had to accept.
    refusals: Mutex<Vec<String>>,
    /// Successful logins per phase and label.
    logins: Mutex<BTreeMap<String, usize>>,
    /// The step applied last and when, until the next step (or the end) closes it.
    applied: Mutex<Option<(usize, Instant)>>,
    /// How long each step took from apply to settled.
    rolls: Mutex<Vec<(String, Duration)>>,
}

/// An error that says the server refused the credentials (not that it was unreachable):
/// redis answered WRONGPASS (the redis crate reports `AuthenticationFailed`) or NOAUTH.
fn is_auth_refusal(e: &str) -> bool {
    [
        "WRONGPASS",
        "AuthenticationFailed",
        "NOAUTH",
        "invalid password",
    ]
    .iter()
    .any(|w| e.contains(w))
}

/// Until `stop`: every 0.5 s, log in to every redis and sentinel pod of `group` with every
/// password the phase says all pods accept, and record each refusal.
fn probe_logins(group: &Group, rotation: &Rotation, stop: &AtomicBool) {
    while !stop.load(Ordering::SeqCst) {
        let (phase, passwords) = lock(&rotation.accepted).clone();
        let redis = group.redis_pods();
        for pod in group.all_pods() {
            let port = if redis.contains(&pod) {
                group.redis_port
            } else {
                group.sentinel_port
            };
            let Some(ip) = group.pod_ip(&pod) else {
                continue;
            };
            for (label, password) in &passwords {
                let login = Login::password(password);
                let answer =
                    group::connect(ip, port, &login, Duration::from_secs(1)).and_then(|mut c| {
                        redis::cmd("PING")
                            .query::<String>(&mut c)
                            .map_err(|e| e.to_string())
                    });
                match answer {
                    Ok(_) => {
                        *lock(&rotation.logins)
                            .entry(format!("{phase}: {label}"))
                            .or_default() += 1;
                    }
                    Err(e) if is_auth_refusal(&e) => lock(&rotation.refusals).push(format!(
                        "{phase}: `{pod}` refused the {label} password: {}",
                        e.replace(password.as_str(), "***")
                    )),
                    // A pod being replaced: not a refusal.
                    Err(_) => {}
                }
            }
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// `ACL LOG` entries of every pod of `group` that record a refused login.
fn auth_log(group: &Group) -> Result<Vec<String>, String> {
    let redis = group.redis_pods();
    let mut out = Vec::new();
    for pod in group.all_pods() {
        let port = if redis.contains(&pod) {
            group.redis_port
        } else {
            group.sentinel_port
        };
        let mut con = group.connect(&pod, port, Duration::from_secs(2))?;
        let log: Vec<BTreeMap<String, redis::Value>> = redis::cmd("ACL")
            .arg("LOG")
            .query(&mut con)
            .map_err(|e| format!("ACL LOG on `{pod}`: {e}"))?;
        let text = |v: Option<&redis::Value>| match v {
            Some(redis::Value::BulkString(b)) => String::from_utf8_lossy(b).into_owned(),
            Some(redis::Value::SimpleString(s)) => s.clone(),
            Some(other) => format!("{other:?}"),
            None => String::new(),
        };
        for entry in log {
            if text(entry.get("reason")) == "auth" {
                out.push(format!(
                    "`{pod}` refused a login as `{}` ({} times, from {})",
                    text(entry.get("username")),
                    text(entry.get("count")),
                    text(entry.get("client-info"))
                        .split_whitespace()
                        .find(|w| w.starts_with("addr="))
                        .unwrap_or("?")
                ));
            }
        }
    }
    Ok(out)
}

/// `rcluster render --format k8s` of the rotation fixture with `secret_revision = revision`.
fn render_rotation(dir: &std::path::Path, revision: &str) -> String {
    let base = std::fs::read_to_string(common::fixture("k8s-group-rotate.toml"))
        .expect("the rotation fixture");
    let file = dir.join(format!("{revision}.toml"));
    // `[kubernetes]` is the fixture's last table.
    std::fs::write(&file, format!("{base}secret_revision = \"{revision}\"\n"))
        .expect("write the topology");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_rcluster"))
        .arg("-f")
        .arg(&file)
        .args(["render", "--format", "k8s"])
        .output()
        .expect("run rcluster render");
    assert!(
        out.status.success(),
        "rcluster render failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 manifests")
}

/// The Secret `name` holding `keys` (key, file with the value), applied as the docs do it:
/// `kubectl create secret generic --from-file ... --dry-run=client -o yaml | kubectl apply`.
fn apply_secret(
    cluster: &Cluster,
    name: &str,
    keys: &[(&str, &std::path::Path)],
) -> Result<(), String> {
    let mut args = vec![
        "create".to_string(),
        "secret".to_string(),
        "generic".to_string(),
        name.to_string(),
    ];
    for (key, file) in keys {
        args.push(format!("--from-file={key}={}", file.display()));
    }
    args.extend(["--dry-run=client", "-o", "yaml"].map(str::to_string));
    let yaml = cluster.kubectl(&args.iter().map(String::as_str).collect::<Vec<_>>())?;
    cluster.apply(&yaml);
    Ok(())
}

/// The end of the step before (if any): how long from its apply until the scenario
/// machinery found both StatefulSets rolled and the group converged and settled; and what
/// its pods refused since they started (their ACL logs; the pods the roll replaced took
/// theirs with them, the prober saw those).
fn close_step(g: &Group, rotation: &Rotation) -> Result<(), String> {
    if let Some((n, applied)) = lock(&rotation.applied).take() {
        let took = applied.elapsed();
        eprintln!(
            "  step {n}: both StatefulSets rolled and the group settled {took:.1?} after the apply"
        );
        lock(&rotation.rolls).push((format!("step {n} applied to settled"), took));
        lock(&rotation.refusals).extend(
            auth_log(g)?
                .into_iter()
                .map(|r| format!("after step {n}: {r}")),
        );
    }
    Ok(())
}

/// One rotation step, as the docs give it: the Secret's new keys (key, file), then the
/// topology's `secret_revision` bumped and applied; the scenario then waits for both
/// StatefulSets to roll. The prober expects `during` to be accepted by every pod from the
/// apply on, and `after` once the roll is over (from the next step's start).
fn rotation_step<'s>(
    rotation: &'s Rotation,
    dir: &'s std::path::Path,
    n: usize,
    keys: Vec<(&'s str, &'s std::path::Path)>,
    during: Accepted,
) -> Disturb<'s> {
    Box::new(move |g: &Group| {
        close_step(g, rotation)?;
        *lock(&rotation.accepted) = (format!("step {n} roll"), during);
        apply_secret(g.cluster, SECRET, &keys)?;
        let yaml = render_rotation(dir, &format!("rotate-{n}"));
        g.cluster.apply(&yaml);
        *lock(&rotation.applied) = Some((n, Instant::now()));
        Ok(None)
    })
}

/// The Secret the rotation group reads (`kubernetes.existing_secret` in its fixture).
const SECRET: &str = "kr-auth";

/// Password rotation with `existing_secret`, the three documented steps, under the writer
/// and a prober that logs in to every pod with every password that must be accepted.
fn rotation_scenarios(cluster: &Cluster) -> Vec<(String, Outcome)> {
    let dir = tempfile::tempdir().expect("a dir for the topology and password files");
    let old = group::fresh_password();
    let new = loop {
        let p = group::fresh_password();
        if p != old {
            break p;
        }
    };
    let old_file = dir.path().join("old.txt");
    let new_file = dir.path().join("new.txt");
    std::fs::write(&old_file, &old).expect("write old.txt");
    std::fs::write(&new_file, &new).expect("write new.txt");
    let yaml = render_rotation(dir.path(), "rotate-0");
    assert!(
        !yaml.contains("kind: Secret\n"),
        "with existing_secret rcluster renders no Secret"
    );
    apply_secret(cluster, SECRET, &[("password", &old_file)]).unwrap_or_else(|e| panic!("{e}"));
    let applied = Instant::now();
    eprintln!("{}", cluster.apply(&yaml));
    let rotation = Rotation {
        accepted: Mutex::new(("before".to_string(), vec![("old", old.clone())])),
        refusals: Mutex::default(),
        logins: Mutex::default(),
        applied: Mutex::default(),
        rolls: Mutex::default(),
    };
    let both = vec![("old", old.clone()), ("new", new.clone())];
    let only_new = vec![("new", new.clone())];
    // The application logs in with the old password until step 2 has rolled ...
    let old_group = Group::new(cluster, &yaml, Login::password(&old));
    let mut results = group::run_scenarios_with(
        &old_group,
        vec![
            (
                "rotation: fresh start",
                Box::new(|g: &Group| {
                    g.cluster.wait_ready(&g.all_pods(), group::READY)?;
                    g.note("every pod Ready after apply", applied.elapsed());
                    Ok(None)
                }),
            ),
            (
                "rotation step 1: accept the new password too",
                rotation_step(
                    &rotation,
                    dir.path(),
                    1,
                    vec![("password", &old_file), ("next_password", &new_file)],
                    vec![("old", old.clone())],
                ),
            ),
            (
                "rotation step 2: log in with the new password",
                rotation_step(
                    &rotation,
                    dir.path(),
                    2,
                    vec![("password", &new_file), ("previous_password", &old_file)],
                    both.clone(),
                ),
            ),
        ],
        |stop| probe_logins(&old_group, &rotation, stop),
    );
    // ... and moves to the new one, which every pod accepts from then on.
    let new_group = Group::new(cluster, &yaml, Login::password(&new));
    results.extend(group::run_scenarios_with(
        &new_group,
        vec![
            (
                "rotation step 3: stop accepting the old password",
                rotation_step(
                    &rotation,
                    dir.path(),
                    3,
                    vec![("password", &new_file)],
                    only_new,
                ),
            ),
            (
                "rotation: nothing refused, then the old password gets WRONGPASS",
                Box::new(|g: &Group| {
                    close_step(g, &rotation)?;
                    for (what, took) in lock(&rotation.rolls).iter() {
                        g.note(what, *took);
                    }
                    let mut problems = lock(&rotation.refusals).clone();
                    let redis = g.redis_pods();
                    for pod in g.all_pods() {
                        let port = if redis.contains(&pod) {
                            g.redis_port
                        } else {
                            g.sentinel_port
                        };
                        let ip = g
                            .pod_ip(&pod)
                            .ok_or_else(|| format!("`{pod}` has no address"))?;
                        match group::connect(
                            ip,
                            port,
                            &Login::password(&old),
                            Duration::from_secs(2),
                        ) {
                            Err(e) if is_auth_refusal(&e) => {}
                            Err(e) => problems.push(format!(
                                "`{pod}` answered the old password with {}",
                                e.replace(old.as_str(), "***")
                            )),
                            Ok(_) => {
                                problems.push(format!("`{pod}` still accepts the old password"))
                            }
                        }
                    }
                    for (phase, count) in lock(&rotation.logins).iter() {
                        eprintln!("  {phase}: {count} logins accepted");
                    }
                    if problems.is_empty() {
                        Ok(None)
                    } else {
                        Err(problems.join("; "))
                    }
                }),
            ),
        ],
        |stop| probe_logins(&new_group, &rotation, stop),
    ));
    results
}

#[test]
fn tls_acl_group_and_password_rotation_on_a_real_cluster() {
    let total = Instant::now();
    let cluster = Cluster::start();
    eprintln!("cluster Ready after {:.1?}", cluster.ready_after);
    let mut results = tls_acl_scenarios(&cluster);
    results.extend(rotation_scenarios(&cluster));
    group::judge(&cluster, &results, total);
}
