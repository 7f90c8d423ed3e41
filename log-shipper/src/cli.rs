//! promtail's command line (one dash or two). Owner: config work.
