//! `rcluster failover-test`.

use super::Global;
use crate::cli::FailoverArgs;

pub async fn run(global: &Global, args: &FailoverArgs) -> anyhow::Result<i32> {
    let _ = (global, args);
    anyhow::bail!("`failover-test` is not implemented yet")
}
