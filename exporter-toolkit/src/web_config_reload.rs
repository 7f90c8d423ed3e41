//! The web config as node_exporter uses it: re-read for every request and
//! TLS handshake, so a rotated certificate or a changed password applies
//! without a restart. Only a change of the file or of a file it names
//! (certificate, key, client CA) rebuilds it. A file that became invalid
//! keeps the last good config, logged once per change. Turning TLS on or off
//! needs a restart, as in exporter-toolkit, which picks the listener kind at
//! startup: such a change is refused the same way.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::web_config::{WebConfig, WebConfigError};

pub struct LiveWebConfig {
    /// None: a fixed config (no `--web.config.file`).
    path: Option<PathBuf>,
    state: Mutex<Loaded>,
}

struct Loaded {
    config: Arc<WebConfig>,
    /// The config file and the files it names, with the contents seen last
    /// (None: unreadable).
    seen: Vec<(PathBuf, Option<Vec<u8>>)>,
}

impl Default for LiveWebConfig {
    fn default() -> Self {
        LiveWebConfig::fixed(WebConfig::default())
    }
}

impl From<WebConfig> for LiveWebConfig {
    fn from(config: WebConfig) -> Self {
        LiveWebConfig::fixed(config)
    }
}

fn snapshot(paths: impl IntoIterator<Item = PathBuf>) -> Vec<(PathBuf, Option<Vec<u8>>)> {
    paths
        .into_iter()
        .map(|p| {
            let contents = std::fs::read(&p).ok();
            (p, contents)
        })
        .collect()
}

fn watched(path: &Path, config: &WebConfig) -> Vec<PathBuf> {
    std::iter::once(path.to_path_buf())
        .chain(config.files.iter().cloned())
        .collect()
}

impl LiveWebConfig {
    pub fn fixed(config: WebConfig) -> Self {
        LiveWebConfig {
            path: None,
            state: Mutex::new(Loaded {
                config: Arc::new(config),
                seen: Vec::new(),
            }),
        }
    }

    /// Loads `path` at startup: an invalid file is an error here.
    pub fn load(path: &Path) -> Result<Self, WebConfigError> {
        // Contents first: a change racing with the load is then seen as a
        // change at the next request and re-read.
        let first = snapshot([path.to_path_buf()]);
        let config = WebConfig::load(path)?;
        let mut seen = first;
        seen.extend(snapshot(config.files.iter().cloned()));
        Ok(LiveWebConfig {
            path: Some(path.to_path_buf()),
            state: Mutex::new(Loaded {
                config: Arc::new(config),
                seen,
            }),
        })
    }

    /// The config to apply now, re-read if its files changed.
    pub fn current(&self) -> Arc<WebConfig> {
        // A panic mid-reload leaves the last good config in place: use it.
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let Some(path) = &self.path else {
            return state.config.clone();
        };
        let now = snapshot(state.seen.iter().map(|(p, _)| p.clone()));
        if now == state.seen {
            return state.config.clone();
        }
        match WebConfig::load(path) {
            Ok(new) if new.tls.is_some() != state.config.tls.is_some() => {
                tracing::warn!(
                    file = %path.display(),
                    "web config change ignored, keeping the last good config: turning TLS on or off needs a restart"
                );
                state.seen = now;
            }
            Ok(mut new) => {
                // The same limit keeps its bucket: a reload is no free burst.
                if let (Some(old), Some(fresh)) = (&state.config.rate_limiter, &new.rate_limiter) {
                    if old.limit == fresh.limit {
                        new.rate_limiter = Some(old.clone());
                    }
                }
                state.seen = snapshot(watched(path, &new));
                state.config = Arc::new(new);
                tracing::info!(file = %path.display(), "web config reloaded");
            }
            Err(e) => {
                tracing::warn!(error = %e, "web config invalid, keeping the last good config");
                state.seen = now;
            }
        }
        state.config.clone()
    }
}
