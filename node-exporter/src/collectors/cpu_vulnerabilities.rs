//! `node_cpu_vulnerabilities_info` from /sys/devices/system/cpu/vulnerabilities/
//! (off by default, as in node_exporter): one series per file, its state
//! (`not affected`, `vulnerable`, `mitigation`) and mitigation as labels. A
//! file in none of those states fails the collector naming it.

use std::path::Path;

use anyhow::anyhow;
use exporter_toolkit::exposition::MetricSet;

use super::{no_flags, CollectorSpec};
use crate::collector::{Collector, Paths};

pub const SPEC: CollectorSpec = CollectorSpec {
    name: "cpu_vulnerabilities",
    default_enabled: false,
    flags: no_flags,
    build: |f| {
        Ok(Box::new(CpuVulnerabilities {
            paths: f.paths.clone(),
        }))
    },
};

struct CpuVulnerabilities {
    paths: Paths,
}

/// (state label, mitigation) of a vulnerability file's text, e.g.
/// `Mitigation: Retpolines` -> (`mitigation`, `Retpolines`).
pub fn parse_vulnerability(text: &str, path: &Path) -> anyhow::Result<(&'static str, String)> {
    let t = text.trim();
    if t.to_ascii_lowercase().starts_with("not affected") {
        return Ok(("not affected", String::new()));
    }
    if let Some(rest) = t.strip_prefix("Vulnerable") {
        let rest = rest.trim_start_matches(':').trim();
        return Ok(("vulnerable", rest.to_string()));
    }
    if let Some(rest) = t.strip_prefix("Mitigation") {
        let rest = rest.trim_start_matches(':').trim();
        return Ok(("mitigation", rest.to_string()));
    }
    Err(anyhow!(
        "parsing {}: unknown vulnerability state {t:?}",
        path.display()
    ))
}

impl Collector for CpuVulnerabilities {
    fn update(&self, out: &mut MetricSet) -> anyhow::Result<()> {
        let dir = self.paths.sys("devices/system/cpu/vulnerabilities");
        for name in crate::helpers::read_dir_names(&dir)? {
            let path = dir.join(&name);
            let text = crate::helpers::read_to_string(&path)
                .map_err(|e| anyhow!("reading {}: {e}", path.display()))?;
            let (state, mitigation) = parse_vulnerability(&text, &path)?;
            out.gauge(
                "node_cpu_vulnerabilities_info",
                "Details of each CPU vulnerability reported by sysfs. The value of the series is an int encoded state of the vulnerability. The same state is stored as a string in the label",
                &[("codename", &name), ("mitigation", &mitigation), ("state", state)],
                1.0,
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_and_mitigations() {
        let p = Path::new("spectre_v2");
        assert_eq!(
            parse_vulnerability("Not affected\n", p).unwrap(),
            ("not affected", String::new())
        );
        assert_eq!(
            parse_vulnerability("Vulnerable\n", p).unwrap(),
            ("vulnerable", String::new())
        );
        assert_eq!(
            parse_vulnerability("Mitigation: Retpolines, IBPB: conditional\n", p).unwrap(),
            ("mitigation", "Retpolines, IBPB: conditional".to_string())
        );
        let err = parse_vulnerability("Unknown: who knows\n", p)
            .unwrap_err()
            .to_string();
        assert!(err.contains("spectre_v2"), "{err}");
        assert!(parse_vulnerability("", p).is_err());
    }
}
