//! The only module that calls bollard.

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct DockerError(String);

impl DockerError {
    pub fn exit_code(&self) -> i32 {
        crate::error::EXIT_ENGINE
    }
}
