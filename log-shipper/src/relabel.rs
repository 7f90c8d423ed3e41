//! Prometheus relabeling. Owner: config work.
