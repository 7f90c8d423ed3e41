//! `node_entropy_available_bits` and `node_entropy_pool_size_bits` from
//! /proc/sys/kernel/random/{entropy_avail,poolsize}.

use exporter_toolkit::exposition::MetricSet;

use super::{no_flags, CollectorSpec};
use crate::collector::{Collector, Paths};
use crate::helpers::read_kept_u64;

pub const SPEC: CollectorSpec = CollectorSpec {
    name: "entropy",
    default_enabled: true,
    flags: no_flags,
    build: |f| {
        Ok(Box::new(Entropy {
            paths: f.paths.clone(),
        }))
    },
};

struct Entropy {
    paths: Paths,
}

impl Collector for Entropy {
    fn update(&self, out: &mut MetricSet) -> anyhow::Result<()> {
        let avail = read_kept_u64(&self.paths.proc("sys/kernel/random/entropy_avail"))?;
        let pool = read_kept_u64(&self.paths.proc("sys/kernel/random/poolsize"))?;
        out.gauge(
            "node_entropy_available_bits",
            "Bits of available entropy.",
            &[],
            avail as f64,
        );
        out.gauge(
            "node_entropy_pool_size_bits",
            "Bits of entropy pool.",
            &[],
            pool as f64,
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::helpers::is_no_data;

    fn collect(avail: Option<&str>, pool: Option<&str>) -> anyhow::Result<MetricSet> {
        let dir = tempfile::tempdir().unwrap();
        let random = dir.path().join("sys/kernel/random");
        std::fs::create_dir_all(&random).unwrap();
        if let Some(a) = avail {
            std::fs::write(random.join("entropy_avail"), a).unwrap();
        }
        if let Some(p) = pool {
            std::fs::write(random.join("poolsize"), p).unwrap();
        }
        let c = Entropy {
            paths: Paths {
                procfs: dir.path().to_path_buf(),
                ..Paths::default()
            },
        };
        let mut out = MetricSet::new();
        c.update(&mut out).map(|()| out)
    }

    #[test]
    fn reports_both_values() {
        let out = collect(Some("256\n"), Some("256\n")).unwrap();
        assert_eq!(out.families().len(), 2);
    }

    #[test]
    fn missing_file_is_no_data_and_garbage_is_an_error() {
        assert!(is_no_data(&collect(None, Some("256\n")).unwrap_err()));
        let err = collect(Some("lots\n"), Some("256\n")).unwrap_err();
        assert!(!is_no_data(&err));
        assert!(err.to_string().contains("entropy_avail"), "{err}");
        let err = collect(Some("12\n"), Some("-1\n")).unwrap_err();
        assert!(err.to_string().contains("poolsize"), "{err}");
    }
}
