//! `rcluster check`: print the topology's errors and warnings.

use super::Global;

pub fn run(global: &Global) -> anyhow::Result<i32> {
    let _ = global;
    anyhow::bail!("`check` is not implemented yet")
}
