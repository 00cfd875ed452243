//! Side effects on the Docker engine. `client` is the only code that calls bollard;
//! `image` provisions the redis image; `observe` takes the snapshot `plan` works from;
//! `apply` executes a plan.

pub mod apply;
pub mod client;
pub mod image;
pub mod netadmin;
pub mod observe;

pub use client::{DockerError, Engine};
