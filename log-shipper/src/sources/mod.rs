//! Log sources: files, Docker containers and events, the systemd journal, Loki's push
//! API, GELF and syslog senders.

pub mod docker;
pub mod docker_engine;
pub mod docker_events;
pub mod docker_sd;
pub mod file;
pub mod gelf;
pub mod journal;
pub mod loki_push;
pub mod serving;
pub mod stdin;
pub mod syslog;
