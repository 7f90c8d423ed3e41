//! The positions file (promtail's format). Owner: delivery work.
