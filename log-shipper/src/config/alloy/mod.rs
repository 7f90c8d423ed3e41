//! Grafana Alloy's configuration (`config.alloy`), read into the same
//! [`Config`] a promtail YAML file gives: every Alloy component maps onto
//! what the shipper already runs, so delivery (positions advance only past
//! what every client accepted) is the YAML form's.
//!
//! The component graph is mapped source by source: the `forward_to` chain
//! from a `loki.source.*` through `loki.process` components gives the
//! scrape config's pipeline, and it must end at every `loki.write` (the
//! shipper sends every source to every client). An unknown or unsupported
//! component, block or attribute is an error naming it and where it is.

pub mod components;
pub mod eval;
pub mod print;
pub mod syntax;

use std::path::Path;

use super::{Config, ConfigError};

/// What the host gives the evaluation (the environment, the host name):
/// a trait so tests can fix them.
pub trait Host {
    fn env(&self, name: &str) -> Option<String>;
    fn hostname(&self) -> String;
}

/// The process's own environment and host name.
pub struct RealHost;

impl Host for RealHost {
    fn env(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }

    fn hostname(&self) -> String {
        let mut buf = [0u8; 256];
        // SAFETY: the buffer is valid for its length; gethostname writes at
        // most that many bytes.
        let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
        if rc != 0 {
            return String::new();
        }
        let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
        String::from_utf8_lossy(&buf[..end]).into_owned()
    }
}

/// Whether a config file is in Alloy's syntax: by its extension.
pub fn is_alloy_path(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "alloy")
}

/// Parses Alloy text into the shipper's config (no file name attached).
pub fn from_str(text: &str, host: &dyn Host) -> Result<Config, ConfigError> {
    let body = syntax::parse(text).map_err(|e| located(e.pos, e.message))?;
    let cfg = components::build(&body, host)?;
    cfg.validate()?;
    Ok(cfg)
}

/// Reads an Alloy file; errors name the file, line and column.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let raw = std::fs::read(path)
        .map_err(|e| ConfigError::new(format!("cannot read config: {e}")).in_file(path))?;
    let text = String::from_utf8(raw)
        .map_err(|e| ConfigError::new(format!("config is not UTF-8: {e}")).in_file(path))?;
    from_str(&text, &RealHost).map_err(|e| e.in_file(path))
}

fn located(pos: syntax::Pos, message: impl Into<String>) -> ConfigError {
    ConfigError {
        file: None,
        line: Some(pos.line),
        column: Some(pos.col),
        message: message.into(),
    }
}
