//! The rendered manifests on a real Kubernetes v1.20.2 (tests/realkube): one cluster, one
//! default group (2 replicas, 3 sentinels), scenarios in sequence. Each scenario runs under
//! a writer that records every key a `WAIT 1` acknowledged, and asserts: no acknowledged key
//! is lost; exactly one master and every sentinel names it; every replica is linked within
//! 20 s of the last master switch; no pod is NotReady more than 20 s after its own restart
//! (tests/realkube/group.rs). The figures (failover time after a delete and after a kill,
//! longest NotReady) are printed.

mod common;
mod realkube;

use std::time::Instant;

use realkube::Cluster;
use realkube::group::{self, Disturb, Group, Login};

#[test]
fn default_group_on_a_real_cluster() {
    let total = Instant::now();
    let cluster = Cluster::start();
    eprintln!("cluster Ready after {:.1?}", cluster.ready_after);
    let password = group::fresh_password();
    // The fixture says `version = "1.20"`: its budgets are policy/v1beta1, as 1.20 serves.
    let yaml = group::render(&common::fixture("k8s-group.toml"), &password, &[]);
    assert!(
        yaml.contains("apiVersion: policy/v1beta1\n") && !yaml.contains("apiVersion: policy/v1\n"),
        "a render for 1.20 must carry policy/v1beta1 budgets only"
    );
    let images = group::images(&realkube::manifest::parse(&yaml));
    cluster.load_test_image(&images.iter().map(String::as_str).collect::<Vec<_>>());
    let group = Group::new(&cluster, &yaml, Login::password(&password));
    let applied = Instant::now();
    eprintln!("{}", cluster.apply(&yaml));

    let scenarios: Vec<(&str, Disturb)> = vec![
        (
            "fresh start",
            Box::new(|g: &Group| {
                g.cluster.wait_ready(&g.all_pods(), group::READY)?;
                g.note("every pod Ready after apply", applied.elapsed());
                Ok(None)
            }),
        ),
        (
            "kubectl delete pod of the master",
            Box::new(|g: &Group| {
                let master = g.agreed_master().ok_or("no agreed master")?;
                g.cluster
                    .kubectl(&["delete", "pod", &master, "--wait=false"])?;
                Ok(Some(master))
            }),
        ),
        (
            "SIGKILL of the master's redis-server",
            Box::new(|g: &Group| {
                let master = g.agreed_master().ok_or("no agreed master")?;
                let pid = group::redis_server_pid(g.cluster, &master)?;
                // SAFETY: kill(2) on a PID just read from containerd's task list.
                let rc = unsafe { libc::kill(pid, libc::SIGKILL) };
                if rc != 0 {
                    return Err(format!(
                        "kill -9 {pid}: {}",
                        std::io::Error::last_os_error()
                    ));
                }
                Ok(Some(master))
            }),
        ),
    ];
    let results = group::run_scenarios(&group, scenarios);
    group::judge(&cluster, &results, total);
}
