//! Targets from static_configs and file_sd_configs. Owner: config work.
