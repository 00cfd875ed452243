//! The rendered Kubernetes manifests, run on the local engine by the pod harness
//! (tests/kube): the harness's own check on a tiny hand-written manifest, then the
//! scenarios the redis group must survive. Every scenario asserts that no key a `WAIT 1`
//! acknowledged is lost, that exactly one node reports `role:master` after convergence,
//! and that every sentinel names that node.

mod common;
mod kube;

use std::time::Duration;

use kube::{Cluster, Options};

fn selftest_manifest() -> String {
    std::fs::read_to_string(common::fixture("kube/harness-selftest.yaml"))
        .expect("read the harness manifest")
}

/// `sh -c SCRIPT` in the pod's `main` container; stdout, required to exit 0.
fn sh(cluster: &Cluster, pod: &str, script: &str) -> String {
    let (code, out, err) = cluster.exec(pod, "main", &["sh", "-c", script]);
    assert_eq!(code, 0, "`{script}` in {pod}: exit {code}: {out}{err}");
    out.trim().to_string()
}

#[test]
fn harness_runs_pods_like_a_kubelet() {
    let _lock = common::docker_lock();
    let cluster = Cluster::start("harness", &selftest_manifest(), Options::default());
    let pods = cluster.statefulset_pods("t-web");
    cluster.wait_ready(&pods, Duration::from_secs(60));
    let ip0 = cluster.pod_ip("t-web-0").expect("t-web-0 exists");
    let ip1 = cluster.pod_ip("t-web-1").expect("t-web-1 exists");

    // DNS: the pod's own names, the headless Service (one record per pod), and a ClusterIP
    // Service at the gateway, proxied to a Ready pod.
    let fqdn = sh(
        &cluster,
        "t-web-0",
        "getent hosts t-web-1.t-web.default.svc.cluster.local",
    );
    assert!(fqdn.starts_with(&ip1.to_string()), "{fqdn}");
    let short = sh(&cluster, "t-web-1", "getent hosts t-web-0.t-web");
    assert!(short.starts_with(&ip0.to_string()), "{short}");
    let all = sh(
        &cluster,
        "t-web-0",
        "getent ahostsv4 t-web | awk '{print $1}' | sort -u",
    );
    assert!(
        all.contains(&ip0.to_string()) && all.contains(&ip1.to_string()),
        "{all}"
    );
    let front = sh(
        &cluster,
        "t-web-0",
        "getent hosts t-front.default.svc.cluster.local",
    );
    assert!(front.starts_with(&cluster.gateway().to_string()), "{front}");
    assert_eq!(
        sh(&cluster, "t-web-0", "redis-cli -h t-front -p 7000 ping"),
        "PONG"
    );
    assert_eq!(
        cluster.resolve("t-web-1.t-web.default.svc.cluster.local"),
        Some(ip1)
    );

    // Env: fieldRef, secretKeyRef (compared by hash, never printed), configMapKeyRef, $(VAR).
    let env = sh(
        &cluster,
        "t-web-0",
        "echo $POD_NAME $POD_NAMESPACE $POD_IP $GREETING $COMPOSED",
    );
    assert_eq!(env, format!("t-web-0 default {ip0} hello t-web-0-hello"));
    assert_eq!(
        sh(
            &cluster,
            "t-web-0",
            "printf %s \"$TOKEN\" | sha256sum | cut -c1-16"
        ),
        sh(
            &cluster,
            "t-web-0",
            "printf %s not-a-real-password | sha256sum | cut -c1-16"
        )
    );

    // Security context and volumes: uid/gid, fsGroup as a supplementary group and on the
    // volumes, ConfigMap files root-owned and read-only, no-new-privileges, no capabilities.
    assert_eq!(
        sh(&cluster, "t-web-0", "id -u; id -g; id -G"),
        "999\n999\n999"
    );
    assert_eq!(
        sh(
            &cluster,
            "t-web-0",
            "stat -c '%u:%g %a' /config /config/hello.txt /scratch /data"
        ),
        "0:999 755\n0:999 644\n0:999 2777\n0:999 2775"
    );
    let (code, _, _) = cluster.exec("t-web-0", "main", &["sh", "-c", "echo x > /config/x"]);
    assert_ne!(code, 0, "a ConfigMap volume must be read-only");
    assert_eq!(
        sh(
            &cluster,
            "t-web-0",
            "grep -E '^(NoNewPrivs|CapEff)' /proc/self/status | awk '{print $2}'"
        ),
        "0000000000000000\n1"
    );

    // Restart in place: same address, emptyDir kept, restartCount + 1.
    sh(&cluster, "t-web-0", "echo kept > /scratch/marker");
    cluster.kill_main_process("t-web-0", "main");
    common::poll(
        "t-web-0 restarted in place",
        Duration::from_secs(30),
        || (cluster.restart_count("t-web-0") == 1 && cluster.is_ready("t-web-0")).then_some(()),
    );
    assert_eq!(cluster.pod_ip("t-web-0"), Some(ip0));
    assert_eq!(sh(&cluster, "t-web-0", "cat /scratch/marker"), "kept");

    // A failing liveness probe restarts the container.
    sh(&cluster, "t-web-1", "touch /scratch/die");
    common::poll(
        "t-web-1 restarted by liveness",
        Duration::from_secs(30),
        || (cluster.restart_count("t-web-1") == 1 && cluster.is_ready("t-web-1")).then_some(()),
    );
    assert!(!cluster.probe_failures("t-web-1").is_empty());

    // Deletion: preStop runs, the pod comes back with a new address, its claim kept and
    // its emptyDir fresh.
    let uid1 = cluster.pod_uid("t-web-1");
    sh(&cluster, "t-web-1", "echo gone > /scratch/marker");
    cluster.delete_pod("t-web-1");
    common::poll("t-web-1 re-created", Duration::from_secs(30), || {
        (cluster.pod_uid("t-web-1") != uid1 && cluster.is_ready("t-web-1")).then_some(())
    });
    let new_ip1 = cluster.pod_ip("t-web-1").expect("t-web-1 exists");
    assert_ne!(new_ip1, ip1, "a re-created pod gets a new address");
    assert_eq!(sh(&cluster, "t-web-1", "cat /data/prestop"), "stopped");
    assert_eq!(sh(&cluster, "t-web-1", "wc -l < /data/starts"), "3");
    assert_eq!(sh(&cluster, "t-web-1", "ls /scratch"), "ready");
    let fqdn = sh(&cluster, "t-web-0", "getent hosts t-web-1.t-web");
    assert!(fqdn.starts_with(&new_ip1.to_string()), "{fqdn}");

    // A held pod is Pending: not created, its name does not resolve.
    cluster.hold("t-web-1");
    cluster.delete_pod("t-web-1");
    let (code, _, _) = cluster.exec("t-web-0", "main", &["getent", "hosts", "t-web-1.t-web"]);
    assert_ne!(code, 0, "a Pending pod's name must not resolve");
    cluster.release("t-web-1");
    cluster.wait_ready(&pods, Duration::from_secs(30));

    // runAsNonRoot with an image that runs as root: never started.
    assert!(!cluster.is_ready("t-root-0"));
    assert!(
        cluster
            .events()
            .iter()
            .any(|e| e.contains("t-root-0") && e.contains("CreateContainerConfigError")),
        "{:?}",
        cluster.events()
    );
}
