//! Exit codes, the errors commands decide, and the error printer. Every command returns
//! `anyhow::Result`; typed errors (thiserror) carry their context, [`exit_code`] maps them
//! to codes in one place, and the printer shows the headline then the causes.

/// Everything asked for was done and the group (if any) is healthy.
pub const EXIT_OK: i32 = 0;
/// The command ran but the result is bad: group degraded or down, failover test failed,
/// `up` did not reach healthy.
pub const EXIT_FAILED: i32 = 1;
/// Usage or input error: bad flags, invalid topology. Nothing was changed.
pub const EXIT_USAGE: i32 = 2;
/// The Docker engine could not be reached or refused us.
pub const EXIT_ENGINE: i32 = 3;
/// Interrupted by Ctrl-C.
pub const EXIT_INTERRUPTED: i32 = 130;

/// A failure decided by a command, in the user's terms. Which variant it is decides the
/// exit code (in [`exit_code`], the one place codes are chosen); the message is the
/// headline the printer shows.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// Bad flags or input (a name, a subnet, a node that does not exist); nothing was changed.
    #[error("{0}")]
    Usage(String),
    /// `up` stopped before changing anything: something is in the way (resources it did
    /// not create, a port in use, a changed password, removing the current master).
    #[error("{0}")]
    Refused(String),
    /// The command ran and the result is bad.
    #[error("{0}")]
    Failed(String),
    /// Ctrl-C.
    #[error("{0}")]
    Interrupted(String),
}

impl CommandError {
    pub fn usage(message: impl Into<String>) -> CommandError {
        CommandError::Usage(message.into())
    }
    pub fn refused(message: impl Into<String>) -> CommandError {
        CommandError::Refused(message.into())
    }
    pub fn failed(message: impl Into<String>) -> CommandError {
        CommandError::Failed(message.into())
    }
    pub fn interrupted(message: impl Into<String>) -> CommandError {
        CommandError::Interrupted(message.into())
    }
}

/// The exit code an error deserves, from the first typed error in its chain. The only
/// place that maps errors to codes.
pub fn exit_code(err: &anyhow::Error) -> i32 {
    use crate::docker::DockerError;
    use bollard::errors::Error as BollardError;
    for cause in err.chain() {
        if let Some(e) = cause.downcast_ref::<CommandError>() {
            return match e {
                CommandError::Usage(_) | CommandError::Refused(_) => EXIT_USAGE,
                CommandError::Failed(_) => EXIT_FAILED,
                CommandError::Interrupted(_) => EXIT_INTERRUPTED,
            };
        }
        if cause
            .downcast_ref::<crate::topology::TopologyError>()
            .is_some()
        {
            return EXIT_USAGE;
        }
        if let Some(e) = cause.downcast_ref::<DockerError>() {
            return match e {
                DockerError::Unreachable { .. }
                | DockerError::Endpoint(_)
                | DockerError::Image(_) => EXIT_ENGINE,
                DockerError::Conflict(_) => EXIT_USAGE,
                // The engine answered: 403 is "not permitted", anything else is about the
                // request (a conflict, a missing object), which the command reports.
                DockerError::Api {
                    source: BollardError::DockerResponseServerError { status_code, .. },
                    ..
                } if *status_code != 403 => EXIT_FAILED,
                // Not permitted, or the engine did not answer properly: the connection
                // broke, timed out, ...
                DockerError::Api { .. } => EXIT_ENGINE,
            };
        }
    }
    EXIT_FAILED
}

/// `error: headline` then `  caused by: ...` for each source, like cargo.
pub fn render(err: &anyhow::Error) -> String {
    // An invalid topology prints every located problem, not just the headline.
    if let Some(e) = err.downcast_ref::<crate::topology::TopologyError>() {
        return e.render();
    }
    let mut out = format!("error: {err}");
    for cause in err.chain().skip(1) {
        out.push_str(&format!("\n  caused by: {cause}"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_command_error_has_its_code_also_under_context() {
        let cases = [
            (CommandError::usage("x"), EXIT_USAGE),
            (CommandError::refused("x"), EXIT_USAGE),
            (CommandError::failed("x"), EXIT_FAILED),
            (CommandError::interrupted("x"), EXIT_INTERRUPTED),
        ];
        for (e, code) in cases {
            let err = anyhow::Error::from(e).context("while doing something");
            assert_eq!(exit_code(&err), code);
        }
        assert_eq!(exit_code(&anyhow::anyhow!("untyped")), EXIT_FAILED);
    }
}
