//! `-config.print-alloy`: a loaded promtail config written as the Alloy
//! configuration that [`super::from_str`] reads back into the same
//! scrape configs and clients. What has no Alloy form here (file_sd,
//! other sources, limits) is an error naming it, not dropped.

use std::fmt::Write as _;

use serde_yaml_ng::Value as Yaml;

use crate::config::{ClientConfig, Config, ConfigError, ScrapeConfig};

/// Alloy stage block name for a promtail stage key.
fn stage_block(key: &str) -> Option<&'static str> {
    Some(match key {
        "cri" => "stage.cri",
        "docker" => "stage.docker",
        "json" => "stage.json",
        "logfmt" => "stage.logfmt",
        "regex" => "stage.regex",
        "timestamp" => "stage.timestamp",
        "output" => "stage.output",
        "drop" => "stage.drop",
        "multiline" => "stage.multiline",
        "replace" => "stage.replace",
        "template" => "stage.template",
        "tenant" => "stage.tenant",
        "limit" => "stage.limit",
        "pack" => "stage.pack",
        "decolorize" => "stage.decolorize",
        "sampling" => "stage.sampling",
        "labels" => "stage.labels",
        "static_labels" => "stage.static_labels",
        "structured_metadata" => "stage.structured_metadata",
        "labeldrop" => "stage.label_drop",
        "labelallow" => "stage.label_keep",
        "match" => "stage.match",
        "metrics" => "stage.metrics",
        _ => return None,
    })
}

fn is_ident(s: &str) -> bool {
    let mut cs = s.chars();
    matches!(cs.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && cs.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A component label from a job name.
fn label(job: &str, used: &mut Vec<String>) -> String {
    let mut l: String = job
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if !l.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') {
        l.insert(0, '_');
    }
    let base = l.clone();
    let mut n = 2;
    while used.contains(&l) {
        l = format!("{base}_{n}");
        n += 1;
    }
    used.push(l.clone());
    l
}

/// A string literal: a raw string where escapes would obscure a regex.
fn string(s: &str) -> String {
    if (s.contains('\\') || s.contains('"')) && !s.contains('`') {
        return format!("`{s}`");
    }
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn expr(v: &Yaml, null_as_empty: bool) -> Result<String, ConfigError> {
    Ok(match v {
        Yaml::Null if null_as_empty => "\"\"".into(),
        Yaml::Null => "null".into(),
        Yaml::Bool(b) => b.to_string(),
        Yaml::Number(n) => n.to_string(),
        Yaml::String(s) => string(s),
        Yaml::Sequence(items) => {
            let parts = items
                .iter()
                .map(|i| expr(i, false))
                .collect::<Result<Vec<_>, _>>()?;
            format!("[{}]", parts.join(", "))
        }
        Yaml::Mapping(m) => {
            let mut parts = Vec::new();
            for (k, v) in m {
                let k = k
                    .as_str()
                    .ok_or_else(|| ConfigError::new("-config.print-alloy: a non-string map key"))?;
                let key = if is_ident(k) {
                    k.to_string()
                } else {
                    string(k)
                };
                parts.push(format!("{key} = {}", expr(v, null_as_empty)?));
            }
            format!("{{ {} }}", parts.join(", "))
        }
        Yaml::Tagged(_) => {
            return Err(ConfigError::new("-config.print-alloy: a tagged YAML value"))
        }
    })
}

struct Out {
    text: String,
    indent: usize,
}

impl Out {
    fn line(&mut self, s: &str) {
        for _ in 0..self.indent {
            self.text.push_str("  ");
        }
        self.text.push_str(s);
        self.text.push('\n');
    }
    fn open(&mut self, s: &str) {
        self.line(&format!("{s} {{"));
        self.indent += 1;
    }
    fn close(&mut self) {
        self.indent -= 1;
        self.line("}");
    }
    fn attr(&mut self, k: &str, v: &Yaml) -> Result<(), ConfigError> {
        let e = expr(v, false)?;
        self.line(&format!("{k} = {e}"));
        Ok(())
    }
}

fn to_value<T: serde::Serialize>(v: &T) -> Result<Yaml, ConfigError> {
    serde_yaml_ng::to_value(v).map_err(|e| ConfigError::new(format!("-config.print-alloy: {e}")))
}

fn unsupported(what: &str) -> ConfigError {
    ConfigError::new(format!(
        "-config.print-alloy: {what} has no Alloy form here"
    ))
}

/// The whole config in Alloy's syntax.
pub fn to_alloy(cfg: &Config) -> Result<String, ConfigError> {
    let mut o = Out {
        text: String::from(
            "// Converted from a promtail config by log-shipper -config.print-alloy.\n// The HTTP server is set by flags (-server.http-listen-port, ...).\n\n",
        ),
        indent: 0,
    };
    if cfg.limits_config != Default::default() {
        return Err(unsupported("limits_config"));
    }
    if cfg.clients.is_empty() {
        return Err(ConfigError::new(
            "-config.print-alloy: the config has no clients",
        ));
    }
    let mut used = Vec::new();
    let writers: Vec<String> = cfg
        .clients
        .iter()
        .enumerate()
        .map(|(i, c)| {
            label(
                if c.name.is_empty() {
                    if i == 0 {
                        "default"
                    } else {
                        "client"
                    }
                } else {
                    &c.name
                },
                &mut used,
            )
        })
        .collect();
    let receivers = format!(
        "[{}]",
        writers
            .iter()
            .map(|w| format!("loki.write.{w}.receiver"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let default_positions = crate::config::PositionsConfig::default().filename;
    let file_watch_default = cfg.global.file_watch_config == Default::default();
    for sc in &cfg.scrape_configs {
        let l = label(&sc.job_name, &mut used);
        scrape(
            &mut o,
            sc,
            &l,
            &receivers,
            cfg,
            &default_positions,
            file_watch_default,
        )?;
    }
    for (c, w) in cfg.clients.iter().zip(&writers) {
        write(&mut o, c, w)?;
    }
    Ok(o.text)
}

fn rules(o: &mut Out, sc: &ScrapeConfig) -> Result<(), ConfigError> {
    for r in &sc.relabel_configs {
        o.open("rule");
        if let Yaml::Mapping(m) = to_value(r)? {
            for (k, v) in &m {
                o.attr(k.as_str().unwrap_or_default(), v)?;
            }
        }
        o.close();
    }
    Ok(())
}

fn scrape(
    o: &mut Out,
    sc: &ScrapeConfig,
    l: &str,
    receivers: &str,
    cfg: &Config,
    default_positions: &std::path::Path,
    file_watch_default: bool,
) -> Result<(), ConfigError> {
    let job = &sc.job_name;
    for (set, what) in [
        (!sc.file_sd_configs.is_empty(), "file_sd_configs"),
        (sc.docker_events.is_some(), "docker_events"),
        (sc.kafka.is_some(), "kafka"),
        (sc.limits_config.is_some(), "limits_config"),
    ] {
        if set {
            return Err(unsupported(&format!("scrape config {job:?}: {what}")));
        }
    }
    let forward = if sc.pipeline_stages.is_empty() {
        receivers.to_string()
    } else {
        format!("[loki.process.{l}.receiver]")
    };
    // Receivers and the journal take their relabeling as a loki.relabel's
    // rules.
    let receiver = sc.journal.is_some()
        || sc.syslog.is_some()
        || sc.loki_push_api.is_some()
        || sc.gelf.is_some();
    let gelf_rules = match &sc.gelf {
        Some(gelf) => gelf_label_rules(gelf),
        None => Vec::new(),
    };
    if receiver && !(sc.relabel_configs.is_empty() && gelf_rules.is_empty()) {
        o.open(&format!("loki.relabel {}", string(l)));
        o.line("forward_to = []");
        for r in &gelf_rules {
            o.open("rule");
            for (k, v) in r {
                o.attr(k, &Yaml::String(v.clone()))?;
            }
            o.close();
        }
        rules(o, sc)?;
        o.close();
        o.line("");
    }
    let relabel_rules = receiver && !(sc.relabel_configs.is_empty() && gelf_rules.is_empty());
    if let Some(s) = &sc.syslog {
        o.open(&format!("loki.source.syslog {}", string(l)));
        o.open("listener");
        let d = to_value(&crate::config::SyslogConfig::default())?;
        for (k, v) in to_value(s)?.as_mapping().into_iter().flatten() {
            let k = k.as_str().unwrap_or_default();
            if k != "listen_address" && d.get(k) == Some(v) {
                continue;
            }
            match k {
                "listen_address" => o.attr("address", v)?,
                "listen_protocol" => o.attr("protocol", v)?,
                "max_connections" => {
                    return Err(unsupported(&format!(
                        "scrape config {job:?}: syslog max_connections"
                    )))
                }
                "tls_config" => tls_block(o, v)?,
                _ => o.attr(k, v)?,
            }
        }
        o.close();
        end_source(o, relabel_rules.then_some(l), &forward);
    } else if let Some(p) = &sc.loki_push_api {
        o.open(&format!("loki.source.api {}", string(l)));
        let server = to_value(&p.server)?;
        let d = to_value(&crate::config::PushServerConfig::default())?;
        for (block, prefix) in [("http", "http_"), ("grpc", "grpc_")] {
            let mut attrs = Vec::new();
            for (k, v) in server.as_mapping().into_iter().flatten() {
                let k = k.as_str().unwrap_or_default();
                let Some(name) = k.strip_prefix(prefix) else {
                    continue;
                };
                let name = match name {
                    "server_read_timeout" | "server_write_timeout" => name,
                    n => match n.strip_prefix("listen_") {
                        Some("address") => "listen_address",
                        Some("port") => "listen_port",
                        _ => n,
                    },
                };
                // The http port always: it says where pushes arrive.
                if d.get(k) == Some(v) && !(block == "http" && name == "listen_port") {
                    continue;
                }
                if name.starts_with("listen_network") {
                    return Err(unsupported(&format!(
                        "scrape config {job:?}: loki_push_api server {k}"
                    )));
                }
                attrs.push((name, v.clone()));
            }
            if !attrs.is_empty() {
                o.open(block);
                for (k, v) in attrs {
                    o.attr(k, &v)?;
                }
                o.close();
            }
        }
        if !p.labels.is_empty() {
            o.attr("labels", &to_value(&p.labels)?)?;
        }
        if p.use_incoming_timestamp {
            o.line("use_incoming_timestamp = true");
        }
        end_source(o, relabel_rules.then_some(l), &forward);
    } else if let Some(gelf) = &sc.gelf {
        o.open(&format!("loki.source.gelf {}", string(l)));
        o.line(&format!(
            "listen_address = {}",
            string(&gelf.listen_address)
        ));
        if gelf.use_incoming_timestamp {
            o.line("use_incoming_timestamp = true");
        }
        end_source(o, relabel_rules.then_some(l), &forward);
    } else if let Some(j) = &sc.journal {
        o.open(&format!("loki.source.journal {}", string(l)));
        if let Yaml::Mapping(m) = to_value(j)? {
            let d = to_value(&crate::config::JournalConfig::default())?;
            for (k, v) in &m {
                if d.get(k) == Some(v) {
                    continue;
                }
                let k = k.as_str().unwrap_or_default();
                o.attr(if k == "json" { "format_as_json" } else { k }, v)?;
            }
        }
        end_source(o, relabel_rules.then_some(l), &forward);
    } else if !sc.docker_sd_configs.is_empty() {
        let [sd] = sc.docker_sd_configs.as_slice() else {
            return Err(unsupported(&format!(
                "scrape config {job:?}: several docker_sd_configs"
            )));
        };
        o.open(&format!("discovery.docker {}", string(l)));
        let d = to_value(&crate::config::DockerSdConfig::default())?;
        if let Yaml::Mapping(m) = to_value(sd)? {
            for (k, v) in &m {
                let k = k.as_str().unwrap_or_default();
                if k != "host" && d.get(k) == Some(v) {
                    continue;
                }
                match k {
                    "filters" => {
                        for f in v.as_sequence().into_iter().flatten() {
                            o.open("filter");
                            o.attr("name", &f["name"])?;
                            o.attr("values", &f["values"])?;
                            o.close();
                        }
                    }
                    "tls_config" | "basic_auth" | "authorization" | "oauth2" | "http_headers" => {
                        return Err(unsupported(&format!(
                            "scrape config {job:?}: docker_sd_configs {k}"
                        )))
                    }
                    _ => o.attr(k, v)?,
                }
            }
        }
        o.close();
        o.line("");
        let targets = if sc.relabel_configs.is_empty() {
            format!("discovery.docker.{l}.targets")
        } else {
            o.open(&format!("discovery.relabel {}", string(l)));
            o.line(&format!("targets = discovery.docker.{l}.targets"));
            rules(o, sc)?;
            o.close();
            o.line("");
            format!("discovery.relabel.{l}.output")
        };
        o.open(&format!("loki.source.docker {}", string(l)));
        o.line(&format!("host = {}", string(&sd.host)));
        o.line(&format!("targets = {targets}"));
        o.line(&format!("forward_to = {forward}"));
        o.close();
        o.line("");
    } else {
        o.open(&format!("local.file_match {}", string(l)));
        let targets: Vec<Yaml> = sc
            .static_configs
            .iter()
            .map(|s| to_value(&s.labels))
            .collect::<Result<_, _>>()?;
        o.attr("path_targets", &Yaml::Sequence(targets))?;
        if cfg.target_config.sync_period != crate::config::TargetConfig::default().sync_period {
            o.attr("sync_period", &to_value(&cfg.target_config.sync_period)?)?;
        }
        o.close();
        o.line("");
        let targets = if sc.relabel_configs.is_empty() {
            format!("local.file_match.{l}.targets")
        } else {
            o.open(&format!("discovery.relabel {}", string(l)));
            o.line(&format!("targets = local.file_match.{l}.targets"));
            rules(o, sc)?;
            o.close();
            o.line("");
            format!("discovery.relabel.{l}.output")
        };
        o.open(&format!("loki.source.file {}", string(l)));
        o.line(&format!("targets = {targets}"));
        o.line(&format!("forward_to = {forward}"));
        if !sc.encoding.is_empty() {
            o.line(&format!("encoding = {}", string(&sc.encoding)));
        }
        if sc.tail_from_end {
            o.line("tail_from_end = true");
        }
        if cfg.positions.filename != default_positions {
            o.line(&format!(
                "legacy_positions_file = {}",
                string(&cfg.positions.filename.display().to_string())
            ));
        }
        if let Some(d) = &sc.decompression {
            o.open("decompression");
            o.line(&format!("enabled = {}", d.enabled));
            o.attr("initial_delay", &to_value(&d.initial_delay)?)?;
            o.line(&format!("format = {}", string(&d.format)));
            o.close();
        }
        if !file_watch_default {
            o.open("file_watch");
            let fw = &cfg.global.file_watch_config;
            o.attr("min_poll_frequency", &to_value(&fw.min_poll_frequency)?)?;
            o.attr("max_poll_frequency", &to_value(&fw.max_poll_frequency)?)?;
            o.close();
        }
        o.close();
        o.line("");
    }
    if !sc.pipeline_stages.is_empty() {
        o.open(&format!("loki.process {}", string(l)));
        o.line(&format!("forward_to = {receivers}"));
        for st in &sc.pipeline_stages {
            stage(o, &to_value(st)?)?;
        }
        o.close();
        o.line("");
    }
    Ok(())
}

/// Alloy's `loki.source.gelf` labels every entry `job` = its component
/// id and has no `labels`: rules that make its labels the YAML's (run
/// before the config's own relabel_configs, as the YAML's labels are set
/// before them).
fn gelf_label_rules(gelf: &crate::config::GelfConfig) -> Vec<Vec<(&'static str, String)>> {
    let mut out = Vec::new();
    if !gelf.labels.contains_key("job") {
        out.push(vec![
            ("action", "labeldrop".into()),
            ("regex", "job".into()),
        ]);
    }
    for (k, v) in &gelf.labels {
        out.push(vec![
            ("target_label", k.clone()),
            ("replacement", v.replace('$', "$$")),
        ]);
    }
    out
}

/// A source block's last lines: its relabel rules (a loki.relabel of
/// the same label), where it forwards, the closing brace.
fn end_source(o: &mut Out, relabel: Option<&str>, forward: &str) {
    if let Some(l) = relabel {
        o.line(&format!("relabel_rules = loki.relabel.{l}.rules"));
    }
    o.line(&format!("forward_to = {forward}"));
    o.close();
    o.line("");
}

fn tls_block(o: &mut Out, v: &Yaml) -> Result<(), ConfigError> {
    o.open("tls_config");
    for (bk, bv) in v.as_mapping().into_iter().flatten() {
        let bk = bk.as_str().unwrap_or_default();
        let name = match bk {
            "ca" | "cert" | "key" => format!("{bk}_pem"),
            _ => bk.to_string(),
        };
        o.attr(&name, bv)?;
    }
    o.close();
    Ok(())
}

fn stage(o: &mut Out, st: &Yaml) -> Result<(), ConfigError> {
    let Some((k, settings)) = st.as_mapping().and_then(|m| m.iter().next()) else {
        return Err(ConfigError::new("-config.print-alloy: a malformed stage"));
    };
    let key = k.as_str().unwrap_or_default();
    let Some(block) = stage_block(key) else {
        return Err(unsupported(&format!("the {key} stage")));
    };
    o.open(block);
    match key {
        "labels" | "static_labels" | "structured_metadata" | "labeldrop" | "labelallow" => {
            o.line(&format!("values = {}", expr(settings, true)?));
        }
        "metrics" => {
            for (name, m) in settings.as_mapping().into_iter().flatten() {
                let kind = m["type"].as_str().unwrap_or_default().to_ascii_lowercase();
                o.open(&format!("metric.{kind}"));
                o.attr("name", name)?;
                for (k, v) in m.as_mapping().into_iter().flatten() {
                    match k.as_str().unwrap_or_default() {
                        "type" => {}
                        "config" => {
                            for (ck, cv) in v.as_mapping().into_iter().flatten() {
                                o.attr(ck.as_str().unwrap_or_default(), cv)?;
                            }
                        }
                        other => o.attr(other, v)?,
                    }
                }
                o.close();
            }
        }
        _ => {
            for (k, v) in settings.as_mapping().into_iter().flatten() {
                let k = k.as_str().unwrap_or_default();
                if key == "match" && k == "stages" {
                    for s in v.as_sequence().into_iter().flatten() {
                        stage(o, s)?;
                    }
                } else if matches!((key, k), ("json", "expressions") | ("logfmt", "mapping")) {
                    // A key without a value is "" in Alloy.
                    o.line(&format!("{k} = {}", expr(v, true)?));
                } else if !v.is_null() {
                    o.attr(k, v)?;
                }
            }
        }
    }
    o.close();
    Ok(())
}

/// A client's block (`oauth2` holds its own `tls_config`).
fn client_block(o: &mut Out, k: &str, val: &Yaml) -> Result<(), ConfigError> {
    o.open(k);
    for (bk, bv) in val.as_mapping().into_iter().flatten() {
        let bk = bk.as_str().unwrap_or_default();
        let name = match (k, bk) {
            ("oauth2", "tls_config") => {
                client_block(o, bk, bv)?;
                continue;
            }
            ("tls_config", "ca" | "cert" | "key") => format!("{bk}_pem"),
            _ => bk.to_string(),
        };
        o.attr(&name, bv)?;
    }
    o.close();
    Ok(())
}

fn write(o: &mut Out, c: &ClientConfig, l: &str) -> Result<(), ConfigError> {
    let v = to_value(c)?;
    let d = to_value(&ClientConfig::default())?;
    o.open(&format!("loki.write {}", string(l)));
    o.open("endpoint");
    let mut external = None;
    for (k, val) in v.as_mapping().into_iter().flatten() {
        let k = k.as_str().unwrap_or_default();
        if k != "url" && d.get(k) == Some(val) {
            continue;
        }
        match k {
            "batchwait" => o.attr("batch_wait", val)?,
            "batchsize" => o.attr("batch_size", val)?,
            "timeout" => o.attr("remote_timeout", val)?,
            "drop_rate_limited_batches" => o.attr(
                "retry_on_http_429",
                &Yaml::Bool(!val.as_bool().unwrap_or(false)),
            )?,
            "external_labels" => external = Some(val.clone()),
            "backoff_config" => {
                for (bk, bv) in val.as_mapping().into_iter().flatten() {
                    let name = match bk.as_str().unwrap_or_default() {
                        "min_period" => "min_backoff_period",
                        "max_period" => "max_backoff_period",
                        _ => "max_backoff_retries",
                    };
                    if d["backoff_config"].get(bk) != Some(bv) {
                        o.attr(name, bv)?;
                    }
                }
            }
            "tls_config" | "basic_auth" | "authorization" | "oauth2" => client_block(o, k, val)?,
            // Alloy's endpoint takes values only (no files), and this
            // shipper's Alloy form refuses it.
            "stream_lag_labels" | "http_headers" => {
                return Err(unsupported(&format!("clients {k}")))
            }
            _ => o.attr(k, val)?,
        }
    }
    o.close();
    if let Some(e) = external {
        o.attr("external_labels", &e)?;
    }
    o.close();
    o.line("");
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn http_headers_have_no_alloy_form_here() {
        for yaml in [
            "clients:\n  - url: http://l/\n    http_headers: {X-A: {values: [b]}}\n",
            "clients:\n  - url: http://l/\nscrape_configs:\n  - job_name: d\n    docker_sd_configs:\n      - host: tcp://e:2375\n        http_headers: {X-A: {values: [b]}}\n",
        ] {
            let cfg = crate::config::from_str(yaml).unwrap();
            let e = super::to_alloy(&cfg).unwrap_err().message;
            assert!(e.contains("http_headers has no Alloy form here"), "{e}");
        }
    }
}
