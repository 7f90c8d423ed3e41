//! HTTP: /metrics, /ready, /targets, POST /reload.
