//! `failover-test` as an experiment: what one run measured, and the statistics over runs.
//! This file is pure (types, statistics, diagnosis); `events` and `writers` hold the
//! side effects that gather the measurements.

pub mod command;
pub mod events;
pub mod faults;
pub mod writers;

use std::time::{Duration, Instant};

use serde::Serialize;

/// The fault a failover experiment injects into the master.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Fault {
    /// SIGKILL the master's container.
    Kill,
    /// Stop the master gracefully.
    Stop,
    /// Freeze the master's process: the sentinels see a hung master.
    Pause,
    /// Disconnect the master from the group network while it keeps running.
    Partition,
    /// Cut the master off from its replicas and sentinels (both ways) while clients still
    /// reach it: split brain.
    Isolate,
    /// Slow the master's network link past `down_after_ms`: a failover without a crash.
    Delay,
}

/// How to run a failover experiment: the library's own options (the command line's
/// `failover-test` flags are converted into these by `commands`).
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    pub fault: Fault,
    /// How many failovers in a row.
    pub runs: u32,
    /// Concurrent writers.
    pub writers: u32,
    /// Seconds to wait for all sentinels to agree on a new master (default: the
    /// failover timeout plus a margin).
    pub deadline: Option<u64>,
    /// Sentinels stopped before the fault (restarted afterwards).
    pub stop_sentinels: u8,
    /// Seconds an `isolate` or `delay` fault lasts at least.
    pub hold: Option<u64>,
    /// `delay`: latency added to the master's link, in ms.
    pub delay_ms: Option<u64>,
    /// `delay`: packet loss in percent.
    pub loss: Option<f64>,
    /// Fail a run when more than this many writes acknowledged by `OK` alone were lost.
    pub max_split_brain_loss: Option<u64>,
    /// Seconds between the start of `command` and the fault.
    pub warmup: u64,
    /// Run no writers of rcluster's own (only `command`).
    pub no_writers: bool,
    /// Also give `command` the password itself, in `RCLUSTER_PASSWORD`.
    pub pass_password_env: bool,
    /// Keep the test's keys instead of deleting them.
    pub keep_keys: bool,
    /// The user's own workload, run through each run; a non-zero exit fails the run.
    pub command: Vec<String>,
}

/// Milliseconds from the fault to each milestone; `None` when it never happened.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Timings {
    /// First `+sdown` about the master, from any sentinel.
    pub sdown: Option<u64>,
    /// First `+odown`.
    pub odown: Option<u64>,
    /// First `+switch-master`.
    pub switch_master: Option<u64>,
    /// Every sentinel answers the same new master.
    pub all_agree: Option<u64>,
    /// First write acknowledged (OK + WAIT) by the new master: the outage a client sees.
    pub first_write: Option<u64>,
    /// From the heal to the old master replicating from the new one, caught up.
    pub rejoined_after_heal: Option<u64>,
    /// First write the old master refused with `NOREPLICAS` (`min-replicas-to-write`).
    pub refused_by_old_master: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Writes {
    /// Confirmed: the master said OK and `WAIT 1` saw a replica take it.
    pub acked: u64,
    /// Acknowledged writes missing from the new master afterwards.
    pub lost: u64,
    /// Attempts that failed (error, timeout, or `WAIT` saw no replica) and were retried.
    pub failed: u64,
    /// Attempts made between the fault and the first acknowledged write on the new master.
    pub during_outage: u64,
    /// Writes a master answered `OK` to but `WAIT` saw no replica take (also in `failed`):
    /// a client that trusts `OK` counts them as done; split brain may discard them.
    pub ok_only: u64,
    /// Of `ok_only`, the keys missing from the master once the group healed.
    pub ok_only_lost: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SentinelEvent {
    /// Milliseconds since the fault (negative: before it).
    pub at_ms: i64,
    pub sentinel: String,
    pub event: String,
    pub payload: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunReport {
    pub run: u32,
    pub fault: String,
    pub old_master: String,
    pub new_master: Option<String>,
    /// The master once the group healed, when that is not `new_master`: the sentinels
    /// failed over a second time (with `down_after_ms` below 1500, a freshly promoted
    /// master can be judged down before Sentinel has even connected to it).
    pub master_after_heal: Option<String>,
    pub passed: bool,
    /// The step that failed and what the group said at that moment.
    pub failure: Option<String>,
    pub timings_ms: Timings,
    pub writes: Writes,
    pub events: Vec<SentinelEvent>,
    /// From the promotion of the new master (first `+switch-master`) to the last write the
    /// old master still accepted; 0 when it accepted none after it.
    pub split_brain_window_ms: Option<u64>,
    /// How the fault was made, when that is not obvious from its name (`delay`).
    pub fault_mechanism: Option<String>,
    /// The user's command (`failover-test -- CMD`), when one ran.
    pub command: Option<command::CommandReport>,
    /// The keys of the writes acknowledged by `OK` alone, and those lost, for reading back.
    pub ok_only_keys: Vec<String>,
    pub ok_only_lost_keys: Vec<String>,
}

/// min / median / max of one figure over the runs that reached it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Spread {
    pub min: u64,
    pub median: f64,
    pub max: u64,
    /// How many runs reached this milestone.
    pub n: usize,
}

pub fn spread(values: &[u64]) -> Option<Spread> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_unstable();
    let n = v.len();
    let median = if n % 2 == 1 {
        v[n / 2] as f64
    } else {
        (v[n / 2 - 1] + v[n / 2]) as f64 / 2.0
    };
    Some(Spread {
        min: v[0],
        median,
        max: v[n - 1],
        n,
    })
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    pub runs: usize,
    pub passed: usize,
    pub sdown: Option<Spread>,
    pub odown: Option<Spread>,
    pub switch_master: Option<Spread>,
    pub all_agree: Option<Spread>,
    pub first_write: Option<Spread>,
    pub rejoined_after_heal: Option<Spread>,
    pub acked: u64,
    pub lost: u64,
    pub failed: u64,
    /// Writes acknowledged by `OK` alone, and how many of them split brain discarded.
    pub ok_only: u64,
    pub ok_only_lost: u64,
    pub split_brain_window: Option<Spread>,
}

pub fn summarize(runs: &[RunReport]) -> Summary {
    let pick = |f: fn(&Timings) -> Option<u64>| {
        spread(
            &runs
                .iter()
                .filter_map(|r| f(&r.timings_ms))
                .collect::<Vec<_>>(),
        )
    };
    Summary {
        runs: runs.len(),
        passed: runs.iter().filter(|r| r.passed).count(),
        sdown: pick(|t| t.sdown),
        odown: pick(|t| t.odown),
        switch_master: pick(|t| t.switch_master),
        all_agree: pick(|t| t.all_agree),
        first_write: pick(|t| t.first_write),
        rejoined_after_heal: pick(|t| t.rejoined_after_heal),
        acked: runs.iter().map(|r| r.writes.acked).sum(),
        lost: runs.iter().map(|r| r.writes.lost).sum(),
        failed: runs.iter().map(|r| r.writes.failed).sum(),
        ok_only: runs.iter().map(|r| r.writes.ok_only).sum(),
        ok_only_lost: runs.iter().map(|r| r.writes.ok_only_lost).sum(),
        split_brain_window: spread(
            &runs
                .iter()
                .filter_map(|r| r.split_brain_window_ms)
                .collect::<Vec<_>>(),
        ),
    }
}

/// Why no failover happened, from what the sentinels said: the two conditions Sentinel
/// needs are `quorum` sentinels agreeing the master is down (ODOWN), then a majority of
/// all sentinels electing a leader to perform it.
pub fn diagnose_no_failover(
    sentinels_total: usize,
    sentinels_answering: usize,
    quorum: usize,
    saw_sdown: usize,
    saw_odown: bool,
    saw_try_failover: bool,
    saw_elected: bool,
) -> String {
    let majority = sentinels_total / 2 + 1;
    if sentinels_answering < quorum {
        format!(
            "quorum can't be reached: only {sentinels_answering} of {sentinels_total} sentinel(s) are reachable and the quorum is {quorum}, so the master can never be agreed down (ODOWN)"
        )
    } else if !saw_odown {
        format!(
            "the master was never agreed down (ODOWN): {saw_sdown} sentinel(s) saw it down (SDOWN), the quorum is {quorum}"
        )
    } else if sentinels_answering < majority {
        format!(
            "the master was agreed down, but a failover needs a majority of all sentinels ({majority} of {sentinels_total}) to elect a leader and only {sentinels_answering} are reachable"
        )
    } else if !saw_try_failover || !saw_elected {
        format!(
            "the master was agreed down but no sentinel was elected leader (try-failover: {saw_try_failover}, elected-leader: {saw_elected}); check that the sentinels can reach each other"
        )
    } else {
        "a leader was elected but no replica was promoted: check that a replica is reachable, linked and not `replica-priority 0`".to_string()
    }
}

pub fn ms(d: Duration) -> u64 {
    d.as_millis() as u64
}

/// Milliseconds of `at` relative to `origin`, negative when before it.
pub fn signed_ms(at: Instant, origin: Instant) -> i64 {
    if at >= origin {
        ms(at - origin) as i64
    } else {
        -(ms(origin - at) as i64)
    }
}

/// What the writers' log says about a run: counts, and when the new master (if any)
/// acknowledged its first write after the fault: the outage a client sees.
pub fn account_writes(
    log: &writers::WriterLog,
    fault_at: Instant,
    new_master: Option<std::net::SocketAddr>,
) -> (Writes, Option<Instant>) {
    let first_write = new_master.and_then(|addr| {
        log.acked
            .iter()
            .filter(|a| a.at >= fault_at && a.master == addr)
            .map(|a| a.at)
            .min()
    });
    let outage_end = first_write.unwrap_or_else(Instant::now);
    let writes = Writes {
        acked: log.acked.len() as u64,
        lost: 0,
        ok_only: log.ok_only.len() as u64,
        ok_only_lost: 0,
        failed: log.failures.len() as u64,
        during_outage: log
            .failures
            .iter()
            .filter(|t| **t >= fault_at && **t <= outage_end)
            .count() as u64,
    };
    (writes, first_write)
}

/// From `promoted_at` to the last write (`OK` alone or confirmed) the old master accepted
/// after it; 0 when it accepted none.
pub fn split_brain_window(
    log: &writers::WriterLog,
    old: std::net::SocketAddr,
    promoted_at: Instant,
) -> u64 {
    log.acked
        .iter()
        .chain(&log.ok_only)
        .filter(|a| a.master == old && a.at >= promoted_at)
        .map(|a| ms(a.at - promoted_at))
        .max()
        .unwrap_or(0)
}

/// Split-brain loss of `OK`-only writes is reported; it fails a run only beyond `max`
/// (`--max-split-brain-loss`). Lost `WAIT`-acknowledged writes are judged elsewhere, always.
pub fn split_brain_verdict(writes: &Writes, max: Option<u64>) -> Option<String> {
    let max = max?;
    (writes.ok_only_lost > max).then(|| {
        format!(
            "{} write(s) acknowledged by `OK` alone were lost to split brain, more than `--max-split-brain-loss {max}`",
            writes.ok_only_lost
        )
    })
}

/// When the first `+switch-master` away from `old` arrived. `old` is the old master's
/// address as the sentinels hand it out (`Layout::advertised`): `<host> <port>` in events.
pub fn promoted_at(
    events: &[events::Received],
    fault_at: Instant,
    master_name: &str,
    old: &(String, u16),
) -> Option<Instant> {
    let switch = format!("{master_name} {} {}", old.0, old.1);
    events
        .iter()
        .filter(|e| e.at >= fault_at && e.channel == "+switch-master" && names(&e.payload, &switch))
        .map(|e| e.at)
        .min()
}

/// Whether an event's payload starts with `words` (whole words: port 6380 is not 63801).
fn names(payload: &str, words: &str) -> bool {
    payload
        .strip_prefix(words)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with(' '))
}

/// The sentinels' milestones about the old master, from their events: first `+sdown`,
/// `+odown` and `+switch-master` after the fault, in ms since it.
pub fn sentinel_milestones(
    events: &[events::Received],
    fault_at: Instant,
    master_name: &str,
    old: &(String, u16),
) -> (Option<u64>, Option<u64>, Option<u64>) {
    let about_old = format!("master {master_name} {} {}", old.0, old.1);
    let first = |channel: &str, prefix: &str| {
        events
            .iter()
            .filter(|e| e.at >= fault_at && e.channel == channel && names(&e.payload, prefix))
            .map(|e| ms(e.at - fault_at))
            .min()
    };
    let switch = format!("{master_name} {} {}", old.0, old.1);
    (
        first("+sdown", &about_old),
        first("+odown", &about_old),
        first("+switch-master", &switch),
    )
}

/// The events worth keeping in a report (not the hello chatter), times relative to the fault.
pub fn report_events(events: &[events::Received], fault_at: Instant) -> Vec<SentinelEvent> {
    events
        .iter()
        .filter(|e| e.channel != "__sentinel__:hello")
        .map(|e| SentinelEvent {
            at_ms: signed_ms(e.at, fault_at),
            sentinel: e.sentinel.clone(),
            event: e.channel.clone(),
            payload: e.payload.clone(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_of_odd_and_even_counts() {
        assert_eq!(spread(&[]), None);
        let s = spread(&[30, 10, 20]).unwrap();
        assert_eq!((s.min, s.median, s.max, s.n), (10, 20.0, 30, 3));
        let s = spread(&[4, 1, 3, 2]).unwrap();
        assert_eq!((s.min, s.median, s.max), (1, 2.5, 4));
    }

    fn run(agree: Option<u64>, acked: u64, lost: u64, passed: bool) -> RunReport {
        RunReport {
            run: 1,
            fault: "kill".into(),
            old_master: "a".into(),
            new_master: Some("b".into()),
            master_after_heal: None,
            passed,
            failure: None,
            timings_ms: Timings {
                all_agree: agree,
                ..Default::default()
            },
            writes: Writes {
                acked,
                lost,
                ..Default::default()
            },
            events: vec![],
            split_brain_window_ms: None,
            fault_mechanism: None,
            command: None,
            ok_only_keys: vec![],
            ok_only_lost_keys: vec![],
        }
    }

    #[test]
    fn split_brain_window_ends_at_the_old_masters_last_write() {
        let t0 = Instant::now();
        let old: std::net::SocketAddr = "172.28.1.10:6379".parse().unwrap();
        let new: std::net::SocketAddr = "172.28.1.12:6379".parse().unwrap();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let ack = |ms: u64, master| writers::Ack {
            key: format!("k{ms}"),
            at: at(ms),
            master,
        };
        let log = writers::WriterLog {
            acked: vec![ack(100, old), ack(3000, new)],
            ok_only: vec![ack(1500, old), ack(4200, old), ack(5000, new)],
            ..Default::default()
        };
        assert_eq!(split_brain_window(&log, old, at(2000)), 2200);
        assert_eq!(split_brain_window(&log, old, at(4500)), 0);
    }

    #[test]
    fn split_brain_loss_fails_a_run_only_beyond_the_limit() {
        let writes = Writes {
            ok_only: 33,
            ok_only_lost: 31,
            ..Default::default()
        };
        assert_eq!(split_brain_verdict(&writes, None), None);
        assert_eq!(split_brain_verdict(&writes, Some(31)), None);
        assert_eq!(
            split_brain_verdict(&writes, Some(0)).as_deref(),
            Some(
                "31 write(s) acknowledged by `OK` alone were lost to split brain, more than `--max-split-brain-loss 0`"
            )
        );
    }

    #[test]
    fn summary_skips_runs_that_never_reached_a_milestone() {
        let s = summarize(&[
            run(Some(2000), 10, 0, true),
            run(None, 5, 1, false),
            run(Some(3000), 7, 0, true),
        ]);
        assert_eq!(s.runs, 3);
        assert_eq!(s.passed, 2);
        let agree = s.all_agree.unwrap();
        assert_eq!((agree.n, agree.median), (2, 2500.0));
        assert_eq!((s.acked, s.lost), (22, 1));
        assert!(s.sdown.is_none());
    }

    fn received(at: Instant, channel: &str, payload: &str) -> events::Received {
        events::Received {
            at,
            sentinel: "demo-sentinel-1".into(),
            channel: channel.into(),
            payload: payload.into(),
        }
    }

    #[test]
    fn announced_switches_are_matched_by_whole_host_and_port() {
        let fault = Instant::now();
        let at = |ms: u64| fault + Duration::from_millis(ms);
        let events = vec![
            received(
                at(100),
                "+switch-master",
                "mymaster 10.253.0.1 16379 10.253.0.1 16380",
            ),
            received(
                at(200),
                "+switch-master",
                "mymaster 10.253.0.1 1637 10.253.0.1 16380",
            ),
        ];
        let old = ("10.253.0.1".to_string(), 1637);
        assert_eq!(promoted_at(&events, fault, "mymaster", &old), Some(at(200)));
    }

    #[test]
    fn milestones_are_about_the_old_master_and_after_the_fault() {
        let fault = Instant::now();
        let old: std::net::Ipv4Addr = "172.28.1.10".parse().unwrap();
        let at = |ms: u64| fault + Duration::from_millis(ms);
        let events = vec![
            received(
                fault - Duration::from_millis(5),
                "+sdown",
                "master mymaster 172.28.1.10 6379",
            ),
            received(
                at(900),
                "+sdown",
                "slave 172.28.1.11:6379 172.28.1.11 6379 @ mymaster 172.28.1.10 6379",
            ),
            received(at(1100), "+sdown", "master mymaster 172.28.1.10 6379"),
            received(at(1050), "+sdown", "master mymaster 172.28.1.100 6379"),
            received(
                at(1180),
                "+odown",
                "master mymaster 172.28.1.10 6379 #quorum 2/2",
            ),
            received(
                at(2250),
                "+switch-master",
                "mymaster 172.28.1.10 6379 172.28.1.12 6379",
            ),
            received(at(2240), "__sentinel__:hello", "x"),
        ];
        assert_eq!(
            sentinel_milestones(&events, fault, "mymaster", &(old.to_string(), 6379)),
            (Some(1100), Some(1180), Some(2250))
        );
        let kept = report_events(&events, fault);
        assert_eq!(kept.len(), 6);
        assert_eq!(kept[0].at_ms, -5);
    }

    #[test]
    fn writes_are_counted_and_the_outage_ends_at_the_first_ack_on_the_new_master() {
        let fault = Instant::now();
        let at = |ms: u64| fault + Duration::from_millis(ms);
        let (old, new): (std::net::SocketAddr, std::net::SocketAddr) = (
            "172.28.1.10:6379".parse().unwrap(),
            "172.28.1.12:6379".parse().unwrap(),
        );
        let ack = |ms: u64, master| writers::Ack {
            key: format!("k{ms}"),
            at: at(ms),
            master,
        };
        let log = writers::WriterLog {
            acked: vec![
                writers::Ack {
                    key: "before".into(),
                    at: fault - Duration::from_millis(10),
                    master: old,
                },
                ack(2300, new),
                ack(2400, new),
            ],
            failures: vec![
                fault - Duration::from_millis(1),
                at(100),
                at(2000),
                at(2500),
            ],
            ..Default::default()
        };
        let (writes, first) = account_writes(&log, fault, Some(new));
        assert_eq!(first, Some(at(2300)));
        assert_eq!(
            writes,
            Writes {
                acked: 3,
                lost: 0,
                failed: 4,
                during_outage: 2,
                ok_only: 0,
                ok_only_lost: 0,
            }
        );
        let (_, none) = account_writes(&log, fault, None);
        assert_eq!(none, None);
    }

    #[test]
    fn diagnoses_an_unreachable_quorum() {
        let why = diagnose_no_failover(3, 1, 2, 1, false, false, false);
        assert!(
            why.starts_with("quorum can't be reached: only 1 of 3"),
            "{why}"
        );
    }

    #[test]
    fn diagnoses_a_missing_majority() {
        // 5 sentinels, quorum 2, two reachable: ODOWN possible, leader election not.
        let why = diagnose_no_failover(5, 2, 2, 2, true, true, false);
        assert!(why.contains("majority of all sentinels (3 of 5)"), "{why}");
    }

    #[test]
    fn diagnoses_no_odown() {
        let why = diagnose_no_failover(3, 3, 3, 2, false, false, false);
        assert!(why.contains("never agreed down"), "{why}");
    }
}
