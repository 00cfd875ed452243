//! `failover-test` as an experiment: what one run measured, and the statistics over runs.
//! This file is pure (types, statistics, diagnosis); `events` and `writers` hold the
//! side effects that gather the measurements.

pub mod events;
pub mod writers;

use std::time::Duration;

use serde::Serialize;

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
    pub passed: bool,
    /// The step that failed and what the group said at that moment.
    pub failure: Option<String>,
    pub timings_ms: Timings,
    pub writes: Writes,
    pub events: Vec<SentinelEvent>,
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
        }
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
