//! log-shipper: a promtail-compatible log shipper for Loki.
//!
//! Data flows one way: a source (`sources`: files, Docker, the journal) reads lines into [`entry::Entry`]s,
//! each carrying an [`ack::Ack`] for the bytes it came from; the scrape
//! config's `pipeline` transforms or drops them; the `client` batches and
//! pushes them to Loki and completes their acks once Loki accepted them;
//! `positions` only ever saves what the acks say is delivered. Bounded
//! channels between the stages give backpressure: when Loki is slow the
//! tailers stop reading, and the files are the buffer.

pub mod ack;
pub mod entry;

pub mod cli;
pub mod config;
pub mod discovery;
pub mod pipeline;
pub mod relabel;

pub mod client;
pub mod positions;
pub mod sources;

pub mod app;
pub mod graph;
pub mod limits;
pub mod metrics;
pub mod server;
