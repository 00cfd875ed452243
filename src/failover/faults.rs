//! The network faults `failover-test` injects from inside the master's network namespace:
//! `isolate` (the master loses its replicas and sentinels, both ways, while clients still
//! reach it: the split brain Sentinel is known for) and `delay` (a slow, lossy link long
//! enough to exceed `down_after_ms`: a failover without a crash).
//!
//! The scripts are pure strings (unit-tested); [`apply`] and [`heal`] run them through the
//! NET_ADMIN helper of `docker::netadmin`. Healing is idempotent: it removes whatever any
//! of these scripts may have added, so it is safe after a half-applied fault or a crash.

use std::net::Ipv4Addr;
use std::time::Duration;

use anyhow::bail;

use super::{Fault, Options};
use crate::docker::Engine;
use crate::docker::netadmin;
use crate::topology::{Layout, Node, Topology};

/// Our own chain: healing flushes and deletes it, touching no other rule.
const CHAIN: &str = "RCLUSTER-FAULT";

/// How a `delay` fault slows the master's link.
#[derive(Debug, Clone, PartialEq)]
pub struct Delay {
    /// Added latency in each direction, with `tc netem` when the kernel has it.
    pub delay_ms: u64,
    /// Packets lost, in percent (netem's `loss`, or the fallback's drop probability).
    pub loss_pct: Option<f64>,
}

/// Used when the kernel has no `sch_netem`: drop this share of packets instead, so that
/// TCP's retransmissions (200 ms, then doubling) stretch every exchange past `down_after_ms`.
pub const FALLBACK_LOSS_PCT: f64 = 85.0;

/// Drop the master's traffic to and from each peer, in both directions. The host (the
/// network's gateway, where the writers and the user's clients run) is not a peer.
pub fn isolate_script(peers: &[Ipv4Addr]) -> String {
    let mut s = chain_setup();
    for ip in peers {
        s.push_str(&format!("iptables -A {CHAIN} -s {ip} -j DROP\n"));
        s.push_str(&format!("iptables -A {CHAIN} -d {ip} -j DROP\n"));
    }
    s.push_str(&chain_hooks(""));
    s
}

/// netem when the kernel has it; else a random drop of `loss` (or [`FALLBACK_LOSS_PCT`])
/// on the interface, both ways. The script's last line says which: `mechanism: ...`.
pub fn delay_script(delay: &Delay) -> String {
    let netem_loss = delay
        .loss_pct
        .map(|p| format!(" loss {p}%"))
        .unwrap_or_default();
    let fallback = delay.loss_pct.unwrap_or(FALLBACK_LOSS_PCT);
    let probability = (fallback / 100.0).clamp(0.0, 1.0);
    let mut s = String::from("if tc qdisc add dev eth0 root netem delay ");
    s.push_str(&format!(
        "{}ms{netem_loss} 2>/dev/null; then\n  echo 'mechanism: tc netem delay {}ms{netem_loss} on eth0'\nelse\n",
        delay.delay_ms, delay.delay_ms
    ));
    s.push_str(&chain_setup());
    s.push_str(&format!(
        "iptables -A {CHAIN} -m statistic --mode random --probability {probability:.4} -j DROP\n"
    ));
    s.push_str(&chain_hooks("eth0"));
    s.push_str(&format!(
        "echo 'mechanism: iptables random drop of {fallback}% of packets both ways on eth0 (this kernel has no sch_netem, so no added latency: TCP retransmission turns the loss into delay)'\nfi\n"
    ));
    s
}

fn chain_setup() -> String {
    format!("set -e\niptables -N {CHAIN} 2>/dev/null || iptables -F {CHAIN}\n")
}

/// Jump to our chain first thing in INPUT and OUTPUT (on `dev` only, when given).
fn chain_hooks(dev: &str) -> String {
    let (i, o) = if dev.is_empty() {
        (String::new(), String::new())
    } else {
        (format!(" -i {dev}"), format!(" -o {dev}"))
    };
    format!("iptables -I INPUT 1{i} -j {CHAIN}\niptables -I OUTPUT 1{o} -j {CHAIN}\n")
}

/// Undo anything the scripts above added; fine to run when nothing was.
pub fn heal_script() -> String {
    format!(
        "tc qdisc del dev eth0 root 2>/dev/null\n\
         for hook in 'INPUT' 'INPUT -i eth0' 'OUTPUT' 'OUTPUT -o eth0'; do\n\
         \x20 while iptables -D $hook -j {CHAIN} 2>/dev/null; do :; done\n\
         done\n\
         iptables -F {CHAIN} 2>/dev/null\n\
         iptables -X {CHAIN} 2>/dev/null\n\
         if iptables -S {CHAIN} >/dev/null 2>&1; then echo 'chain still there'; exit 1; fi\n\
         exit 0\n"
    )
}

/// Run a fault script in `target`'s namespace; returns what it printed.
pub async fn apply(
    engine: &Engine,
    cluster: &str,
    target: &str,
    script: &str,
) -> anyhow::Result<String> {
    let out = netadmin::run_script(engine, cluster, target, script).await?;
    if out.exit_code != 0 {
        // Leave nothing half-applied.
        let _ = heal(engine, cluster, target).await;
        bail!(
            "could not set up the network fault in `{target}`'s network namespace (exit {}): {}",
            out.exit_code,
            out.output.trim()
        );
    }
    Ok(out.output)
}

/// Remove the fault's rules from `target`'s namespace.
pub async fn heal(engine: &Engine, cluster: &str, target: &str) -> anyhow::Result<()> {
    let out = netadmin::run_script(engine, cluster, target, &heal_script()).await?;
    if out.exit_code != 0 {
        bail!(
            "could not remove the network fault from `{target}` (exit {}): {}",
            out.exit_code,
            out.output.trim()
        );
    }
    Ok(())
}

/// Inject `isolate` or `delay` into `node`; returns how it was made, or `None` for the
/// other faults (the caller's).
pub async fn inject(
    engine: &Engine,
    layout: &Layout,
    node: &Node,
    args: &Options,
    topo: &Topology,
) -> anyhow::Result<Option<String>> {
    match args.fault {
        Fault::Isolate => {
            let peers: Vec<_> = layout
                .nodes
                .iter()
                .filter(|n| n.name != node.name)
                .map(|n| n.ip)
                .collect();
            apply(engine, &layout.cluster, &node.name, &isolate_script(&peers)).await?;
            Ok(Some(
                "iptables in the master's network namespace: replicas and sentinels dropped both ways, clients still reach it".into(),
            ))
        }
        Fault::Delay => {
            let delay = Delay {
                delay_ms: args.delay_ms.unwrap_or(3 * topo.sentinel.down_after_ms),
                loss_pct: args.loss,
            };
            let out = apply(engine, &layout.cluster, &node.name, &delay_script(&delay)).await?;
            Ok(mechanism(&out).or(Some("unknown".into())))
        }
        _ => Ok(None),
    }
}

/// How long an `isolate` or `delay` fault lasts at least: `--hold`, else 10 s, or, with
/// `min_replicas_to_write` on, its lag + 5 s when that is longer (so the lag runs out
/// while the fault lasts).
pub fn hold(args: &Options, topo: &Topology) -> Duration {
    let replication = &topo.replication;
    let lag = match replication.min_replicas_to_write {
        0 => 0,
        _ => u64::from(replication.min_replicas_max_lag),
    };
    Duration::from_secs(args.hold.unwrap_or(10.max(lag + 5)))
}

/// The `mechanism: ...` line a delay script printed.
pub fn mechanism(output: &str) -> Option<String> {
    output
        .lines()
        .find_map(|l| l.strip_prefix("mechanism: "))
        .map(|m| m.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn isolation_drops_each_peer_both_ways_and_spares_the_host() {
        let s = isolate_script(&[
            "172.28.1.11".parse().unwrap(),
            "172.28.1.101".parse().unwrap(),
        ]);
        assert!(s.contains("iptables -A RCLUSTER-FAULT -s 172.28.1.11 -j DROP\n"));
        assert!(s.contains("iptables -A RCLUSTER-FAULT -d 172.28.1.11 -j DROP\n"));
        assert!(s.contains("iptables -A RCLUSTER-FAULT -d 172.28.1.101 -j DROP\n"));
        assert!(s.contains("iptables -I INPUT 1 -j RCLUSTER-FAULT\n"));
        assert!(s.contains("iptables -I OUTPUT 1 -j RCLUSTER-FAULT\n"));
        assert!(
            !s.contains(".1 "),
            "the gateway (host) is never dropped: {s}"
        );
    }

    #[test]
    fn delay_uses_netem_else_says_it_drops_packets() {
        let s = delay_script(&Delay {
            delay_ms: 2000,
            loss_pct: None,
        });
        assert!(s.starts_with("if tc qdisc add dev eth0 root netem delay 2000ms 2>/dev/null"));
        assert!(s.contains("--probability 0.8500 -j DROP"));
        assert!(s.contains("iptables -I INPUT 1 -i eth0 -j RCLUSTER-FAULT"));
        assert!(s.contains("mechanism: iptables random drop of 85%"));
        let s = delay_script(&Delay {
            delay_ms: 100,
            loss_pct: Some(30.0),
        });
        assert!(s.contains("netem delay 100ms loss 30%"));
        assert!(s.contains("--probability 0.3000"));
    }

    #[test]
    fn the_fault_outlasts_the_replication_lag_only_when_it_is_on() {
        use clap::Parser;
        let topology = |text: &str| {
            crate::topology::parse(
                std::path::Path::new("t.toml"),
                text,
                None,
                &|_| None,
                &|p| Err(std::io::Error::other(p.display().to_string())),
            )
            .unwrap()
            .topology
        };
        let args = |extra: &[&str]| {
            let mut argv = vec!["rcluster", "failover-test", "--fault", "isolate"];
            argv.extend_from_slice(extra);
            match crate::cli::Cli::try_parse_from(argv).unwrap().command {
                crate::cli::Command::FailoverTest(a) => {
                    crate::commands::failover_experiment::options(&a)
                }
                other => panic!("{other:?}"),
            }
        };
        let secs = |a: &Options, t: &Topology| hold(a, t).as_secs();
        assert_eq!(secs(&args(&[]), &topology("")), 10);
        let on = topology("[replication]\nmin_replicas_to_write = 1\nmin_replicas_max_lag = 8\n");
        assert_eq!(secs(&args(&[]), &on), 13);
        assert_eq!(secs(&args(&["--hold", "4"]), &on), 4);
    }

    #[test]
    fn reads_the_mechanism_line() {
        assert_eq!(
            mechanism("x\nmechanism: tc netem delay 5ms\n").as_deref(),
            Some("tc netem delay 5ms")
        );
        assert_eq!(mechanism("nothing"), None);
    }
}
