//! `target_config.stdin` / `-stdin`: lines piped to the shipper, as
//! promtail's stdin target reads them. Only the first scrape config is
//! used (the others are named in a warning): its `pipeline_stages`, and
//! the labels of its `static_configs` merged (their targets and any other
//! source, relabeling and `__` label are not used). Without a scrape
//! config the labels are `{job="stdin", hostname="<host name>"}`. Each
//! line (its trailing `\r`/`\n` removed) is stamped when read; empty lines
//! are skipped. No other source runs and no position is kept; at the end
//! of the input, what was read is delivered and the shipper exits.

use tokio::io::AsyncBufReadExt;
use tokio::sync::mpsc;

use crate::config::{Config, ScrapeConfig};
use crate::entry::{Entry, LabelSet, Labels};

/// The scrape config stdin is read with (the first, or promtail's default).
pub fn scrape_config(cfg: &Config) -> ScrapeConfig {
    if let Some(sc) = cfg.scrape_configs.first() {
        if cfg.scrape_configs.len() > 1 {
            tracing::warn!(
                used = %sc.job_name,
                skipped = cfg.scrape_configs.len() - 1,
                "reading stdin: only the first scrape config is used"
            );
        }
        return sc.clone();
    }
    use crate::config::alloy::Host;
    let host = crate::config::alloy::RealHost.hostname();
    ScrapeConfig {
        job_name: "stdin".into(),
        static_configs: vec![crate::config::StaticConfig {
            targets: Vec::new(),
            labels: [("job", "stdin"), ("hostname", host.as_str())]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }],
        ..ScrapeConfig::default()
    }
}

/// The labels of stdin's entries: the static labels, later ones winning.
pub fn labels(sc: &ScrapeConfig) -> LabelSet {
    sc.static_configs
        .iter()
        .flat_map(|s| s.labels.iter())
        .filter(|(k, _)| !k.starts_with("__"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Reads `input` line by line into `out` until its end (or `out` closes).
pub async fn read<R: tokio::io::AsyncRead + Unpin>(
    input: R,
    labels: LabelSet,
    out: mpsc::Sender<Entry>,
) {
    let labels: Labels = labels.into();
    let mut reader = tokio::io::BufReader::with_capacity(64 * 1024, input);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf).await {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "reading stdin");
                break;
            }
        }
        let text = String::from_utf8_lossy(&buf);
        let line = text.trim_end_matches(['\r', '\n']);
        if line.is_empty() {
            continue;
        }
        let mut e = Entry::new(labels.clone(), line.to_string());
        // Each its own nanosecond, as file lines: repeated lines stay.
        let nanos = crate::sources::file::watcher::read_times(1);
        e.timestamp = std::time::UNIX_EPOCH + std::time::Duration::from_nanos(nanos);
        if out.send(e).await.is_err() {
            break;
        }
    }
    tracing::info!("end of stdin: delivering what was read, then exiting");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lines_without_line_ends_and_empty_lines_skipped() {
        let (tx, mut rx) = mpsc::channel(16);
        let input: &[u8] = b"one\r\n\n\ntwo\r\r\nthree";
        read(input, crate::relabel::labels([("job", "j")]), tx).await;
        let mut got = Vec::new();
        while let Some(e) = rx.recv().await {
            got.push((e.line, e.timestamp));
        }
        let lines: Vec<&str> = got.iter().map(|(l, _)| l.as_str()).collect();
        assert_eq!(lines, ["one", "two", "three"]);
        assert!(got.windows(2).all(|w| w[0].1 < w[1].1));
    }

    #[test]
    fn first_scrape_config_or_promtails_default() {
        let cfg = crate::config::from_str(
            "scrape_configs:\n  - job_name: a\n    static_configs:\n      - targets: [localhost]\n        labels: {job: app, __path__: /x}\n      - labels: {env: prod}\n  - job_name: b\n",
        )
        .unwrap();
        let sc = scrape_config(&cfg);
        assert_eq!(sc.job_name, "a");
        assert_eq!(
            labels(&sc),
            crate::relabel::labels([("env", "prod"), ("job", "app")])
        );
        let none = scrape_config(&crate::config::from_str("").unwrap());
        let l = labels(&none);
        assert_eq!(l.get("job").map(String::as_str), Some("stdin"));
        assert!(l.contains_key("hostname"));
    }
}
