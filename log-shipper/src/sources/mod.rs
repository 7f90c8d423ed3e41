//! Log sources other than files.

pub mod docker;
pub mod docker_engine;
pub mod docker_events;
pub mod docker_sd;
pub mod journal;
