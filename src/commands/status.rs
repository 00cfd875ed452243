//! `rcluster status`.

use super::Global;
use crate::cli::StatusArgs;

pub async fn run(global: &Global, args: &StatusArgs) -> anyhow::Result<i32> {
    let _ = (global, args);
    anyhow::bail!("`status` is not implemented yet")
}
