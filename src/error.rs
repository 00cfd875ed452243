//! Exit codes and the error printer. Every command returns `anyhow::Result`; typed errors
//! (thiserror) carry their context, and the printer shows the headline then the causes.

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

/// An error that decides its own exit code.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Exit {
    pub code: i32,
    pub message: String,
}

impl Exit {
    pub fn new(code: i32, message: impl Into<String>) -> Exit {
        Exit {
            code,
            message: message.into(),
        }
    }
}

/// The exit code an error deserves, from the first typed error in its chain.
pub fn exit_code(err: &anyhow::Error) -> i32 {
    for cause in err.chain() {
        if let Some(e) = cause.downcast_ref::<Exit>() {
            return e.code;
        }
        if cause
            .downcast_ref::<crate::topology::TopologyError>()
            .is_some()
        {
            return EXIT_USAGE;
        }
        if let Some(e) = cause.downcast_ref::<crate::docker::DockerError>() {
            return e.exit_code();
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
