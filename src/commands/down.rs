//! `rcluster down`.

use super::Global;
use crate::cli::DownArgs;

pub async fn run(global: &Global, args: &DownArgs) -> anyhow::Result<i32> {
    let _ = (global, args);
    anyhow::bail!("`down` is not implemented yet")
}
