//! Pipeline stages with promtail's semantics. Owner: pipeline work.
