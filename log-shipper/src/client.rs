//! The Loki push client. Owner: delivery work.
