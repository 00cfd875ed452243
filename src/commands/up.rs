//! `rcluster up`.

use super::Global;
use crate::cli::UpArgs;

pub async fn run(global: &Global, args: &UpArgs) -> anyhow::Result<i32> {
    let _ = (global, args);
    anyhow::bail!("`up` is not implemented yet")
}
