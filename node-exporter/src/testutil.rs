//! Helpers for the collectors' unit tests.

use std::path::Path;

use exporter_toolkit::exposition::{encode, Format, MetricSet};

use crate::collector::{Collector, Paths};

/// Writes `text` to `root/rel`, creating directories.
pub fn write(root: &Path, rel: &str, text: &str) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().expect("a file path has a parent"))
        .expect("creating fixture dirs");
    std::fs::write(p, text).expect("writing fixture file");
}

/// The text exposition of a set, as a scrape would show it.
pub fn render(set: MetricSet) -> String {
    encode(&set.finish().expect("consistent metric set"), Format::Text)
}

/// The default paths with /sys at `root`.
pub fn sysfs_at(root: &Path) -> Paths {
    Paths {
        sysfs: root.into(),
        ..Paths::default()
    }
}

/// One update of `c`, rendered as a scrape would show it.
pub fn collect(c: &dyn Collector) -> anyhow::Result<String> {
    let mut set = MetricSet::new();
    // As the scraper: no devices is a success with nothing.
    match c.update(&mut set) {
        Err(e) if e.downcast_ref::<crate::collector::NoDevices>().is_none() => return Err(e),
        _ => {}
    }
    Ok(render(set))
}
