//! The user's own workload under test (`failover-test -- CMD ARGS...`): started once the
//! group is healthy, with the connection settings in its environment, watched through the
//! fault, and judged by its exit status. Its output is kept (the last lines of each stream)
//! for the report, not echoed: rcluster's stdout is for results.

use std::collections::VecDeque;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Serialize;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::task::JoinHandle;

use super::signed_ms;

/// Lines of stdout and of stderr kept for the report.
pub const TAIL_LINES: usize = 20;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CommandReport {
    pub argv: Vec<String>,
    /// `None` when it was killed by a signal or did not finish in time.
    pub exit_code: Option<i32>,
    pub passed: bool,
    /// Milliseconds since the fault (negative: before it).
    pub started_ms: i64,
    pub ended_ms: Option<i64>,
    /// Why it failed, in words.
    pub failure: Option<String>,
    pub stdout_tail: Vec<String>,
    pub stderr_tail: Vec<String>,
}

type Tail = Arc<Mutex<VecDeque<String>>>;

pub struct Running {
    argv: Vec<String>,
    child: tokio::process::Child,
    started: Instant,
    stdout: (Tail, JoinHandle<()>),
    stderr: (Tail, JoinHandle<()>),
}

impl Running {
    /// Start `argv` with `env` added to rcluster's own environment. The child is killed if
    /// rcluster stops first (Ctrl-C, an error).
    pub fn start(argv: &[String], env: &[(String, String)]) -> anyhow::Result<Running> {
        let (program, args) = argv.split_first().context("no command to run")?;
        let mut child = tokio::process::Command::new(program)
            .args(args)
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start the command `{program}`"))?;
        let started = Instant::now();
        let stdout = keep_tail(child.stdout.take());
        let stderr = keep_tail(child.stderr.take());
        Ok(Running {
            argv: argv.to_vec(),
            child,
            started,
            stdout,
            stderr,
        })
    }

    /// Wait for the command to exit, at most `limit`, then kill it; times relative to
    /// `origin` (the fault).
    pub async fn finish(mut self, limit: Duration, origin: Instant) -> CommandReport {
        let waited = tokio::time::timeout(limit, self.child.wait()).await;
        let ended = Instant::now();
        let (exit_code, ended_ms, failure) = match waited {
            Ok(Ok(status)) => {
                let code = status.code();
                let failure = match code {
                    Some(0) => None,
                    Some(c) => Some(format!("the command exited with status {c}")),
                    None => Some("the command was killed by a signal".to_string()),
                };
                (code, Some(signed_ms(ended, origin)), failure)
            }
            Ok(Err(e)) => (
                None,
                None,
                Some(format!("cannot wait for the command: {e}")),
            ),
            Err(_) => {
                let _ = self.child.kill().await;
                (
                    None,
                    None,
                    Some(format!(
                        "the command was still running {} s after the group healed, so it was killed",
                        limit.as_secs()
                    )),
                )
            }
        };
        // The pipes close when the process is gone; the readers then finish.
        let tail = |(t, h): (Tail, JoinHandle<()>)| async move {
            let _ = tokio::time::timeout(Duration::from_secs(2), h).await;
            let lines = t.lock().unwrap_or_else(|e| e.into_inner());
            lines.iter().cloned().collect::<Vec<_>>()
        };
        let stdout_tail = tail(self.stdout).await;
        let stderr_tail = tail(self.stderr).await;
        CommandReport {
            argv: self.argv,
            exit_code,
            passed: failure.is_none(),
            started_ms: signed_ms(self.started, origin),
            ended_ms,
            failure,
            stdout_tail,
            stderr_tail,
        }
    }
}

/// Start the user's command (`failover-test -- CMD`) with the settings of `rcluster env`
/// in its environment, and the password itself only with `--pass-password-env`.
pub async fn start_for(
    args: &super::Options,
    loaded: &crate::topology::Loaded,
    layout: &crate::topology::Layout,
    probe: &crate::probe::Probe,
    password: &crate::secret::Secret,
) -> anyhow::Result<Running> {
    let settings = crate::connection::settings(loaded, layout, probe, password).await?;
    let mut env = settings.vars();
    if args.pass_password_env {
        env.push(("RCLUSTER_PASSWORD".into(), password.expose().to_string()));
    }
    Running::start(&args.command, &env)
}

fn keep_tail(pipe: Option<impl AsyncRead + Unpin + Send + 'static>) -> (Tail, JoinHandle<()>) {
    let tail: Tail = Arc::new(Mutex::new(VecDeque::new()));
    let kept = tail.clone();
    let handle = tokio::spawn(async move {
        let Some(pipe) = pipe else { return };
        let mut lines = BufReader::new(pipe).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            let mut t = kept.lock().unwrap_or_else(|e| e.into_inner());
            if t.len() == TAIL_LINES {
                t.pop_front();
            }
            t.push_back(line);
        }
    });
    (tail, handle)
}

/// Flags that make no sense together, in words; `None` when they are fine.
pub fn usage_problem(args: &super::Options) -> Option<String> {
    if args.no_writers && args.command.is_empty() {
        return Some(
            "`--no-writers` leaves nothing to write during the test; give a command after `--`"
                .into(),
        );
    }
    if args.pass_password_env && args.command.is_empty() {
        return Some("`--pass-password-env` is for a command given after `--`".into());
    }
    if let Some(loss) = args.loss
        && !(0.0..=100.0).contains(&loss)
    {
        return Some(format!("`--loss {loss}` is a percentage: 0 to 100"));
    }
    None
}

/// The lines `failover-test` adds to a run's timeline for what this edition measures.
pub fn timeline_extra(r: &super::RunReport) -> String {
    let mut out = String::new();
    if let Some(m) = &r.fault_mechanism {
        out.push_str(&format!("  fault made by   {m}\n"));
    }
    if r.writes.ok_only > 0 || r.split_brain_window_ms.is_some() {
        out.push_str(&format!(
            "  OK-only writes: {} acknowledged by `OK` without a replica (`WAIT` 0), {} lost after healing\n",
            r.writes.ok_only, r.writes.ok_only_lost
        ));
    }
    if let Some(w) = r.split_brain_window_ms {
        out.push_str(&format!(
            "  split brain     {w} ms  (the old master still accepted writes after the promotion)\n"
        ));
    }
    if let Some(t) = r.timings_ms.refused_by_old_master {
        out.push_str(&format!(
            "  NOREPLICAS      {t} ms  (the old master refused writes: min-replicas-to-write)\n"
        ));
    }
    if let Some(c) = &r.command {
        let end = c.ended_ms.map_or("-".to_string(), |e| format!("{e} ms"));
        let code = c.exit_code.map_or("none".to_string(), |c| c.to_string());
        out.push_str(&format!(
            "  command         `{}`: started {} ms, ended {end}, exit {code}\n",
            c.argv.join(" "),
            c.started_ms
        ));
        for line in c.stdout_tail.iter().rev().take(5).rev() {
            out.push_str(&format!("    | {line}\n"));
        }
        for line in c.stderr_tail.iter().rev().take(5).rev() {
            out.push_str(&format!("    ! {line}\n"));
        }
    }
    out
}

/// The summary lines about `OK`-only writes, when there were any.
pub fn verdict_extra(s: &super::Summary) -> String {
    if s.ok_only == 0 && s.split_brain_window.is_none() {
        return String::new();
    }
    let window = s.split_brain_window.as_ref().map_or("-".to_string(), |w| {
        format!("{} / {} / {} ms", w.min, w.median, w.max)
    });
    format!(
        "\n  OK-only writes: {} acknowledged by `OK` alone, {} lost to split brain\n  split brain window (min/median/max): {window}",
        s.ok_only, s.ok_only_lost
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reports_exit_status_and_the_last_lines() {
        let argv: Vec<String> = [
            "sh",
            "-c",
            "for i in $(seq 1 30); do echo out$i; done; echo \"$GREETING\" >&2; exit 3",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let origin = Instant::now();
        let running = Running::start(&argv, &[("GREETING".into(), "hello".into())]).unwrap();
        let report = running.finish(Duration::from_secs(10), origin).await;
        assert_eq!(report.exit_code, Some(3));
        assert!(!report.passed);
        assert_eq!(report.stdout_tail.len(), TAIL_LINES);
        assert_eq!(report.stdout_tail.last().map(String::as_str), Some("out30"));
        assert_eq!(report.stderr_tail, vec!["hello".to_string()]);
        assert!(report.ended_ms.is_some());
    }

    fn failover_args(args: &[&str]) -> super::super::Options {
        use clap::Parser;
        let mut argv = vec!["rcluster", "failover-test"];
        argv.extend_from_slice(args);
        match crate::cli::Cli::try_parse_from(argv).unwrap().command {
            crate::cli::Command::FailoverTest(a) => {
                crate::commands::failover_experiment::options(&a)
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn flags_that_need_a_command_say_so() {
        let problem = |args: &[&str]| usage_problem(&failover_args(args));
        assert_eq!(
            problem(&["--no-writers"]).unwrap(),
            "`--no-writers` leaves nothing to write during the test; give a command after `--`"
        );
        assert_eq!(
            problem(&["--pass-password-env"]).unwrap(),
            "`--pass-password-env` is for a command given after `--`"
        );
        assert_eq!(
            problem(&["--fault", "delay", "--loss", "120"]).unwrap(),
            "`--loss 120` is a percentage: 0 to 100"
        );
        assert_eq!(problem(&["--no-writers", "--", "true"]), None);
        let args = failover_args(&["--fault", "isolate", "--", "sh", "-c", "exit 3"]);
        assert_eq!(args.command, vec!["sh", "-c", "exit 3"]);
        assert_eq!(args.warmup, 2);
    }

    #[tokio::test]
    async fn a_command_that_outlives_the_limit_is_killed() {
        let argv: Vec<String> = ["sleep", "30"].iter().map(|s| s.to_string()).collect();
        let running = Running::start(&argv, &[]).unwrap();
        let report = running
            .finish(Duration::from_millis(200), Instant::now())
            .await;
        assert_eq!(report.exit_code, None);
        assert!(report.failure.unwrap().contains("still running"));
    }
}
