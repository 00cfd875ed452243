//! `rcluster render`: write every node's config file.

use super::Global;
use crate::cli::RenderArgs;

pub fn run(global: &Global, args: &RenderArgs) -> anyhow::Result<i32> {
    let _ = (global, args);
    anyhow::bail!("`render` is not implemented yet")
}
