//! `[replication]`: `min_replicas_to_write` and `min_replicas_max_lag`, checked against
//! the replica count. A child of `validate` so it uses the same `Checker`.

use super::Checker;
use crate::topology::{ReplicasSpec, Replication};

/// `min-replicas-max-lag`'s default in Redis, in seconds.
pub const DEFAULT_MAX_LAG: u32 = 10;
/// Longest lag accepted: beyond an hour the setting protects nothing.
const MAX_LAG: i64 = 3600;

impl Checker<'_> {
    pub(super) fn replication(&mut self, replicas: &ReplicasSpec) -> Replication {
        let raw = &self.doc.topology.replication;
        let count = i64::from(replicas.count);
        let mut to_write = 0;
        if let Some(n) = raw.min_replicas_to_write {
            if n < 0 {
                self.int_in(
                    "replication.min_replicas_to_write",
                    n,
                    0..=count,
                    " (0 lets the master accept writes with no replica)",
                );
            } else if n > count {
                let count_key = if self.doc.has("replicas.count") {
                    "`replicas.count`"
                } else {
                    "`replicas.count` (default)"
                };
                self.error(
                    "replication.min_replicas_to_write",
                    format!(
                        "`replication.min_replicas_to_write` is {n} but the group has {count} replica(s) ({count_key} = {count}): the master would refuse every write; set it between 0 and {count}"
                    ),
                );
            } else if n == 0 {
                self.warn(
                    "replication.min_replicas_to_write",
                    "`replication.min_replicas_to_write` is 0: a master cut off from its replicas and sentinels keeps accepting writes from the clients that still reach it, and once the sentinels promote a replica every one of those writes is lost when the old master rejoins (split brain); set it to 1 to bound that loss by `replication.min_replicas_max_lag`".into(),
                );
            } else {
                to_write = n;
            }
        }
        let max_lag = match raw.min_replicas_max_lag {
            Some(n) => self
                .int_in(
                    "replication.min_replicas_max_lag",
                    n,
                    1..=MAX_LAG,
                    " (seconds)",
                )
                .unwrap_or(i64::from(DEFAULT_MAX_LAG)),
            None => i64::from(DEFAULT_MAX_LAG),
        };
        if raw.min_replicas_max_lag.is_some()
            && self.ok("replication.min_replicas_max_lag")
            && to_write == 0
            && raw.min_replicas_to_write.is_none()
        {
            self.warn(
                "replication.min_replicas_max_lag",
                "`replication.min_replicas_max_lag` has no effect while `replication.min_replicas_to_write` is 0 (the default); set that too".into(),
            );
        }
        Replication {
            min_replicas_to_write: u8::try_from(to_write).unwrap_or(0),
            min_replicas_max_lag: u32::try_from(max_lag).unwrap_or(DEFAULT_MAX_LAG),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::topology::{Diagnostic, Loaded, TopologyError, parse};

    fn check(text: &str) -> Result<Loaded, TopologyError> {
        parse(Path::new("topology.toml"), text, None, &|_| None, &|p| {
            Err(std::io::Error::other(p.display().to_string()))
        })
    }

    fn located(d: &Diagnostic) -> (String, usize, usize, String) {
        (
            d.key.clone(),
            d.line.unwrap_or(0),
            d.column.unwrap_or(0),
            d.message.clone(),
        )
    }

    #[test]
    fn defaults_to_off_with_redis_lag() {
        let t = check("").unwrap().topology.replication;
        assert_eq!((t.min_replicas_to_write, t.min_replicas_max_lag), (0, 10));
        let t = check("[replication]\nmin_replicas_to_write = 1\nmin_replicas_max_lag = 5\n")
            .unwrap()
            .topology
            .replication;
        assert_eq!((t.min_replicas_to_write, t.min_replicas_max_lag), (1, 5));
    }

    #[test]
    fn every_problem_at_once_with_line_and_key() {
        let text = "[replicas]\ncount = 1\n\n[replication]\nmin_replicas_to_write = 2\nmin_replicas_max_lag = 0\n";
        let errors: Vec<_> = check(text)
            .unwrap_err()
            .errors
            .iter()
            .map(located)
            .collect();
        assert_eq!(
            errors,
            vec![
                (
                    "replication.min_replicas_to_write".into(),
                    5,
                    1,
                    "`replication.min_replicas_to_write` is 2 but the group has 1 replica(s) (`replicas.count` = 1): the master would refuse every write; set it between 0 and 1".into()
                ),
                (
                    "replication.min_replicas_max_lag".into(),
                    6,
                    1,
                    "`replication.min_replicas_max_lag` is 0; set it between 1 and 3600 (seconds)".into()
                ),
            ]
        );
        let (key, line, _, message) = located(
            &check("[replication]\nmin_replicas_to_write = -1\n")
                .unwrap_err()
                .errors[0],
        );
        assert_eq!(
            (key.as_str(), line),
            ("replication.min_replicas_to_write", 2)
        );
        assert_eq!(
            message,
            "`replication.min_replicas_to_write` is -1; set it between 0 and 2 (0 lets the master accept writes with no replica)"
        );
    }

    #[test]
    fn zero_is_a_warning_that_names_split_brain() {
        let loaded = check("[replication]\nmin_replicas_to_write = 0\n").unwrap();
        assert_eq!(loaded.warnings.len(), 1);
        let w = &loaded.warnings[0];
        assert_eq!(
            (w.key.as_str(), w.line),
            ("replication.min_replicas_to_write", Some(2))
        );
        assert!(w.message.contains("split brain"), "{}", w.message);
        let loaded = check("[replication]\nmin_replicas_max_lag = 5\n").unwrap();
        assert!(loaded.warnings[0].message.contains("has no effect"));
    }

    #[test]
    fn the_directives_are_not_accepted_in_redis_extra() {
        let e = check("[redis.extra]\nmin-replicas-to-write = 1\n").unwrap_err();
        assert!(
            e.errors[0]
                .message
                .contains("`replication.min_replicas_to_write`"),
            "{}",
            e.errors[0].message
        );
    }
}
