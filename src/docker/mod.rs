//! Side effects on the Docker engine. `client` is the only code that calls bollard;
//! `image` provisions the redis image; `observe` takes the snapshot (`crate::observed`)
//! `plan` works from; `apply` is the engine side of a plan's steps, run by `crate::executor`.

pub mod apply;
pub mod client;
pub mod image;
pub mod netadmin;
pub mod observe;
pub mod platform;

pub use client::{DockerError, Engine};
