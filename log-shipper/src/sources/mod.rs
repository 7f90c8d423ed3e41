//! Log sources: files, Docker containers and events, the systemd journal,
//! syslog senders.

pub mod docker;
pub mod docker_engine;
pub mod docker_events;
pub mod docker_sd;
pub mod file;
pub mod journal;
pub mod syslog;
