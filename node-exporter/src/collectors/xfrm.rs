//! `node_xfrm_*_packets_total`: the IPsec (XFRM) error counters of
//! /proc/net/xfrm_stat, every one of node_exporter's list whether the file
//! has its line or not (0 when not), as node_exporter through procfs. A
//! kernel without XFRM has no such file: "no data".

use std::path::Path;

use anyhow::anyhow;
use exporter_toolkit::exposition::MetricSet;

use super::{no_flags, CollectorSpec};
use crate::collector::{Collector, Paths};
use crate::helpers::read_kept;

pub const SPEC: CollectorSpec = CollectorSpec {
    name: "xfrm",
    default_enabled: false,
    flags: no_flags,
    build: |f| {
        Ok(Box::new(Xfrm {
            paths: f.paths.clone(),
        }))
    },
};

struct Xfrm {
    paths: Paths,
}

/// (key in xfrm_stat, metric name, help).
const FIELDS: [(&str, &str, &str); 28] = [
    (
        "XfrmInError",
        "node_xfrm_in_error_packets_total",
        "All errors not matched by other",
    ),
    (
        "XfrmInBufferError",
        "node_xfrm_in_buffer_error_packets_total",
        "No buffer is left",
    ),
    (
        "XfrmInHdrError",
        "node_xfrm_in_hdr_error_packets_total",
        "Header error",
    ),
    (
        "XfrmInNoStates",
        "node_xfrm_in_no_states_packets_total",
        "No state is found i.e. Either inbound SPI, address, or IPsec protocol at SA is wrong",
    ),
    (
        "XfrmInStateProtoError",
        "node_xfrm_in_state_proto_error_packets_total",
        "Transformation protocol specific error e.g. SA key is wrong",
    ),
    (
        "XfrmInStateModeError",
        "node_xfrm_in_state_mode_error_packets_total",
        "Transformation mode specific error",
    ),
    (
        "XfrmInStateSeqError",
        "node_xfrm_in_state_seq_error_packets_total",
        "Sequence error i.e. Sequence number is out of window",
    ),
    (
        "XfrmInStateExpired",
        "node_xfrm_in_state_expired_packets_total",
        "State is expired",
    ),
    (
        "XfrmInStateMismatch",
        "node_xfrm_in_state_mismatch_packets_total",
        "State has mismatch option e.g. UDP encapsulation type is mismatch",
    ),
    (
        "XfrmInStateInvalid",
        "node_xfrm_in_state_invalid_packets_total",
        "State is invalid",
    ),
    (
        "XfrmInTmplMismatch",
        "node_xfrm_in_tmpl_mismatch_packets_total",
        "No matching template for states e.g. Inbound SAs are correct but SP rule is wrong",
    ),
    (
        "XfrmInNoPols",
        "node_xfrm_in_no_pols_packets_total",
        "No policy is found for states e.g. Inbound SAs are correct but no SP is found",
    ),
    (
        "XfrmInPolBlock",
        "node_xfrm_in_pol_block_packets_total",
        "Policy discards",
    ),
    (
        "XfrmInPolError",
        "node_xfrm_in_pol_error_packets_total",
        "Policy error",
    ),
    (
        "XfrmOutError",
        "node_xfrm_out_error_packets_total",
        "All errors which is not matched others",
    ),
    (
        "XfrmOutBundleGenError",
        "node_xfrm_out_bundle_gen_error_packets_total",
        "Bundle generation error",
    ),
    (
        "XfrmOutBundleCheckError",
        "node_xfrm_out_bundle_check_error_packets_total",
        "Bundle check error",
    ),
    (
        "XfrmOutNoStates",
        "node_xfrm_out_no_states_packets_total",
        "No state is found",
    ),
    (
        "XfrmOutStateProtoError",
        "node_xfrm_out_state_proto_error_packets_total",
        "Transformation protocol specific error",
    ),
    (
        "XfrmOutStateModeError",
        "node_xfrm_out_state_mode_error_packets_total",
        "Transformation mode specific error",
    ),
    (
        "XfrmOutStateSeqError",
        "node_xfrm_out_state_seq_error_packets_total",
        "Sequence error i.e. Sequence number overflow",
    ),
    (
        "XfrmOutStateExpired",
        "node_xfrm_out_state_expired_packets_total",
        "State is expired",
    ),
    (
        "XfrmOutPolBlock",
        "node_xfrm_out_pol_block_packets_total",
        "Policy discards",
    ),
    (
        "XfrmOutPolDead",
        "node_xfrm_out_pol_dead_packets_total",
        "Policy is dead",
    ),
    (
        "XfrmOutPolError",
        "node_xfrm_out_pol_error_packets_total",
        "Policy error",
    ),
    (
        "XfrmFwdHdrError",
        "node_xfrm_fwd_hdr_error_packets_total",
        "Forward routing of a packet is not allowed",
    ),
    (
        "XfrmOutStateInvalid",
        "node_xfrm_out_state_invalid_packets_total",
        "State is invalid, perhaps expired",
    ),
    (
        "XfrmAcquireError",
        "node_xfrm_acquire_error_packets_total",
        "State hasn\u{2019}t been fully acquired before use",
    ),
];

/// The value of each of [`FIELDS`], in its order. As procfs, every line
/// must be `<name> <integer>`; names it does not know are skipped.
pub fn parse_xfrm_stat(text: &str, path: &Path) -> anyhow::Result<[i64; 28]> {
    let mut values = [0i64; 28];
    for (n, line) in text.lines().enumerate() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [name, value] = fields[..] else {
            return Err(anyhow!(
                "parsing {} line {}: {line:?} is not a name and a value",
                path.display(),
                n + 1
            ));
        };
        let v: i64 = value.parse().map_err(|_| {
            anyhow!(
                "parsing {} line {}: {value:?} is not an integer",
                path.display(),
                n + 1
            )
        })?;
        if let Some(i) = FIELDS.iter().position(|(key, _, _)| *key == name) {
            values[i] = v;
        }
    }
    Ok(values)
}

impl Collector for Xfrm {
    fn update(&self, out: &mut MetricSet) -> anyhow::Result<()> {
        let path = self.paths.proc("net/xfrm_stat");
        let values = parse_xfrm_stat(&read_kept(&path)?, &path)?;
        for ((_, name, help), v) in FIELDS.iter().zip(values) {
            out.counter(*name, *help, &[], v as f64);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{collect, write};

    fn run(root: &Path) -> anyhow::Result<String> {
        collect(&Xfrm {
            paths: Paths {
                procfs: root.into(),
                ..Paths::default()
            },
        })
    }

    #[test]
    fn every_counter_missing_ones_as_zero() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "net/xfrm_stat",
            "XfrmInError                     1\nXfrmAcquireError                24532\nXfrmNewThing 5\n",
        );
        let text = run(dir.path()).unwrap();
        assert!(
            text.contains("node_xfrm_in_error_packets_total 1\n"),
            "{text}"
        );
        assert!(
            text.contains("node_xfrm_acquire_error_packets_total 24532\n"),
            "{text}"
        );
        assert!(
            text.contains("node_xfrm_out_pol_dead_packets_total 0\n"),
            "{text}"
        );
        assert_eq!(text.matches("# TYPE node_xfrm_").count(), 28, "{text}");
    }

    #[test]
    fn no_file_is_no_data_and_garbage_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        assert!(crate::helpers::is_no_data(&run(dir.path()).unwrap_err()));
        for text in [
            "XfrmInError\n",
            "XfrmInError 1 2\n",
            "XfrmInError x\n",
            "\n",
        ] {
            let err = parse_xfrm_stat(text, Path::new("net/xfrm_stat")).unwrap_err();
            assert!(
                err.to_string().contains("net/xfrm_stat line 1"),
                "{text:?}: {err}"
            );
        }
    }
}
