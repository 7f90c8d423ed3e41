//! Self-metrics on /metrics: each module keeps its own counters and a
//! `collect(&mut MetricSet)`; this module only calls them.
