//! promtail's YAML config. Owner: config work.
