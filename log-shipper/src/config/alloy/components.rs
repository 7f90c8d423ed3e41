//! Alloy's logging components mapped onto the shipper's promtail config:
//! `loki.source.*` become scrape configs, the `loki.process` chains they
//! forward to become their pipelines, `loki.write` endpoints become
//! clients. Each component's arguments are checked against the list it
//! supports, so nothing written is silently ignored.

use std::collections::{BTreeMap, BTreeSet};

use serde::de::DeserializeOwned;
use serde_yaml_ng::{Mapping, Value as Yaml};

use super::eval::{self, EvalError, Scope, Value};
use super::syntax::{Block, Body, Pos, Stmt};
use super::{located, Host};
use crate::config::{
    ClientConfig, Config, ConfigError, DecompressionConfig, DockerSdConfig, FileWatchConfig,
    GelfConfig, GoDuration, JournalConfig, PushApiConfig, ScrapeConfig, StaticConfig, SyslogConfig,
};
use crate::pipeline::StageConfig;
use crate::relabel::RelabelConfig;

/// The components this shipper runs, with their exports.
const COMPONENTS: &[(&str, &[&str])] = &[
    ("local.file_match", &["targets"]),
    ("discovery.docker", &["targets"]),
    ("discovery.relabel", &["output", "rules"]),
    ("loki.source.file", &[]),
    ("loki.source.journal", &[]),
    ("loki.source.docker", &[]),
    ("loki.source.syslog", &[]),
    ("loki.source.api", &[]),
    ("loki.source.gelf", &[]),
    ("loki.process", &["receiver"]),
    ("loki.relabel", &["receiver", "rules"]),
    ("loki.write", &["receiver"]),
    ("loki.echo", &["receiver"]),
];

/// Alloy components that exist but that this shipper does not run yet.
const NOT_YET: &[&str] = &[
    "loki.source.kubernetes",
    "loki.source.podlogs",
    "loki.source.kafka",
    "loki.source.windowsevent",
    "loki.source.cloudflare",
    "loki.source.gcplog",
    "loki.source.heroku",
    "loki.source.awsfirehose",
    "loki.source.azure_event_hubs",
    "loki.source.kubernetes_events",
    "discovery.kubernetes",
    "discovery.file",
    "logging",
    "tracing",
    "livedebugging",
    "import.file",
    "declare",
];

/// The `stage.*` blocks whose attributes have promtail's names: Alloy's
/// block name, then the key in `pipeline_stages`.
const PLAIN_STAGES: &[(&str, &str)] = &[
    ("stage.cri", "cri"),
    ("stage.docker", "docker"),
    ("stage.json", "json"),
    ("stage.logfmt", "logfmt"),
    ("stage.regex", "regex"),
    ("stage.timestamp", "timestamp"),
    ("stage.output", "output"),
    ("stage.drop", "drop"),
    ("stage.multiline", "multiline"),
    ("stage.replace", "replace"),
    ("stage.template", "template"),
    ("stage.tenant", "tenant"),
    ("stage.limit", "limit"),
    ("stage.pack", "pack"),
    ("stage.decolorize", "decolorize"),
    ("stage.sampling", "sampling"),
];

/// `stage.*` blocks whose `values` map onto a promtail stage's map or list.
const VALUES_STAGES: &[(&str, &str)] = &[
    ("stage.labels", "labels"),
    ("stage.static_labels", "static_labels"),
    ("stage.structured_metadata", "structured_metadata"),
    ("stage.label_drop", "labeldrop"),
    ("stage.label_keep", "labelallow"),
];

const STAGES_NOT_YET: &[&str] = &[
    "stage.eventlogmessage",
    "stage.geoip",
    "stage.luhn",
    "stage.windowsevent",
];

type R<T> = Result<T, ConfigError>;

fn at(pos: Pos, message: impl Into<String>) -> ConfigError {
    located(pos, message)
}

impl From<EvalError> for ConfigError {
    fn from(e: EvalError) -> Self {
        located(e.pos, e.message)
    }
}

struct Component<'a> {
    kind: &'static str,
    block: &'a Block,
}

struct Graph<'a> {
    components: BTreeMap<String, Component<'a>>,
    host: &'a dyn Host,
}

impl Scope for Graph<'_> {
    fn has_component(&self, id: &str) -> bool {
        self.components.contains_key(id)
    }
    fn exports(&self, id: &str) -> &'static [&'static str] {
        self.components
            .get(id)
            .and_then(|c| COMPONENTS.iter().find(|(k, _)| *k == c.kind))
            .map_or(&[], |(_, e)| e)
    }
    fn env(&self, name: &str) -> Option<String> {
        self.host.env(name)
    }
    fn hostname(&self) -> String {
        self.host.hostname()
    }
}

/// A block's attributes, evaluated, and sub-blocks, checked against what
/// the block supports.
struct Args<'a> {
    what: String,
    pos: Pos,
    attrs: Vec<(&'a str, Pos, Value)>,
    blocks: Vec<&'a Block>,
}

impl<'a> Args<'a> {
    fn new(
        what: &str,
        block: &'a Block,
        g: &Graph,
        attrs: &[&str],
        blocks: &[&str],
    ) -> R<Args<'a>> {
        let mut out = Args {
            what: what.to_string(),
            pos: block.pos,
            attrs: Vec::new(),
            blocks: Vec::new(),
        };
        for s in &block.body {
            match s {
                Stmt::Attr(a) => {
                    if !attrs.contains(&a.name.as_str()) {
                        return Err(at(
                            a.pos,
                            format!(
                                "{what}: unsupported attribute {:?} (supported: {})",
                                a.name,
                                list(attrs)
                            ),
                        ));
                    }
                    if out.attrs.iter().any(|(n, _, _)| *n == a.name) {
                        return Err(at(
                            a.pos,
                            format!("{what}: attribute {:?} set twice", a.name),
                        ));
                    }
                    let v = eval::eval(&a.value, g)?;
                    out.attrs.push((&a.name, a.value.pos, v));
                }
                Stmt::Block(b) => {
                    let ok = blocks.iter().any(|p| {
                        *p == b.name || (p.ends_with('*') && b.name.starts_with(&p[..p.len() - 1]))
                    });
                    if !ok {
                        return Err(at(
                            b.pos,
                            format!(
                                "{what}: unsupported block {:?} (supported: {})",
                                b.name,
                                list(blocks)
                            ),
                        ));
                    }
                    if let Some(l) = &b.label {
                        return Err(at(
                            b.pos,
                            format!("{what}: block {} takes no label, got {l:?}", b.name),
                        ));
                    }
                    out.blocks.push(b);
                }
            }
        }
        Ok(out)
    }

    fn get(&self, name: &str) -> Option<(&Value, Pos)> {
        self.attrs
            .iter()
            .find(|(n, _, _)| *n == name)
            .map(|(_, p, v)| (v, *p))
    }

    fn required(&self, name: &str) -> R<(&Value, Pos)> {
        self.get(name).ok_or_else(|| {
            at(
                self.pos,
                format!("{}: missing required attribute {name:?}", self.what),
            )
        })
    }

    fn string(&self, name: &str) -> R<Option<String>> {
        match self.get(name) {
            None => Ok(None),
            Some((Value::Str(s), _)) => Ok(Some(s.clone())),
            Some((v, p)) => Err(at(
                p,
                format!(
                    "{}: {name} must be a string, got {}",
                    self.what,
                    v.type_name()
                ),
            )),
        }
    }

    fn bool(&self, name: &str) -> R<Option<bool>> {
        match self.get(name) {
            None => Ok(None),
            Some((Value::Bool(b), _)) => Ok(Some(*b)),
            Some((v, p)) => Err(at(
                p,
                format!(
                    "{}: {name} must be a bool, got {}",
                    self.what,
                    v.type_name()
                ),
            )),
        }
    }

    /// The attributes as a YAML mapping, names renamed by `rename`
    /// (Alloy's name, promtail's); the rest keep their names.
    fn yaml(&self, rename: &[(&str, &str)], skip: &[&str]) -> R<Mapping> {
        let mut m = Mapping::new();
        for (n, p, v) in &self.attrs {
            if skip.contains(n) {
                continue;
            }
            let key = rename.iter().find(|(a, _)| a == n).map_or(*n, |(_, y)| *y);
            m.insert(Yaml::String(key.into()), to_yaml(v, *p)?);
        }
        Ok(m)
    }

    /// Reads `T` from YAML built from these attributes; a field `T` does not
    /// know is reported at the attribute that set it.
    fn de<T: DeserializeOwned>(&self, y: Yaml, rename: &[(&str, &str)]) -> R<T> {
        serde_yaml_ng::from_value(y).map_err(|e| {
            let msg = e.to_string();
            let pos = msg
                .split('`')
                .nth(1)
                .and_then(|field| {
                    let alloy = rename
                        .iter()
                        .find(|(_, y)| *y == field)
                        .map_or(field, |(a, _)| *a);
                    self.get(alloy).map(|(_, p)| p)
                })
                .unwrap_or(self.pos);
            at(pos, format!("{}: {msg}", self.what))
        })
    }
}

fn list(names: &[&str]) -> String {
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

fn to_yaml(v: &Value, pos: Pos) -> R<Yaml> {
    Ok(match v {
        Value::Null => Yaml::Null,
        Value::Bool(b) => Yaml::Bool(*b),
        Value::Int(n) => Yaml::Number((*n).into()),
        Value::Float(f) => Yaml::Number((*f).into()),
        Value::Str(s) => Yaml::String(s.clone()),
        Value::Array(a) => Yaml::Sequence(a.iter().map(|i| to_yaml(i, pos)).collect::<R<_>>()?),
        Value::Object(o) => {
            let mut m = Mapping::new();
            for (k, v) in o {
                m.insert(Yaml::String(k.clone()), to_yaml(v, pos)?);
            }
            Yaml::Mapping(m)
        }
        Value::Export { component, export } => {
            return Err(at(
                pos,
                format!("{component}.{export} is a component export, not a value here"),
            ))
        }
    })
}

fn ymap(pairs: Vec<(&str, Yaml)>) -> Yaml {
    let mut m = Mapping::new();
    for (k, v) in pairs {
        m.insert(Yaml::String(k.into()), v);
    }
    Yaml::Mapping(m)
}

/// The whole file as the shipper's config.
pub fn build(body: &Body, host: &dyn Host) -> R<Config> {
    let mut g = Graph {
        components: BTreeMap::new(),
        host,
    };
    let mut order = Vec::new();
    for s in body {
        let b = match s {
            Stmt::Attr(a) => {
                return Err(at(
                    a.pos,
                    format!(
                        "expected a component block at the top level, got attribute {:?}",
                        a.name
                    ),
                ))
            }
            Stmt::Block(b) => b,
        };
        let Some(&(kind, _)) = COMPONENTS.iter().find(|(k, _)| *k == b.name) else {
            if NOT_YET.contains(&b.name.as_str()) {
                return Err(at(
                    b.pos,
                    format!("{}: not supported yet by this shipper", b.name),
                ));
            }
            return Err(at(
                b.pos,
                format!(
                    "unknown component {:?} (supported: {})",
                    b.name,
                    COMPONENTS
                        .iter()
                        .map(|(k, _)| *k)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        };
        let Some(label) = &b.label else {
            return Err(at(
                b.pos,
                format!("{kind}: a component needs a label: {kind} \"name\" {{ ... }}"),
            ));
        };
        let id = format!("{kind}.{label}");
        if g.components.contains_key(&id) {
            return Err(at(b.pos, format!("component {id} declared twice")));
        }
        g.components
            .insert(id.clone(), Component { kind, block: b });
        order.push(id);
    }

    let mut cfg = Config::default();
    // Alloy's own default listen address (its --server.http.listen-addr);
    // -server.http-listen-address/-port override it as for YAML.
    cfg.server.http_listen_address = "127.0.0.1".into();
    cfg.server.http_listen_port = 12345;
    let mut globals = Globals::default();
    // Each loki.write's clients, by their index in cfg.clients.
    let mut writers: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    let mut sources: Vec<Source> = Vec::new();
    for id in &order {
        let c = &g.components[id];
        match c.kind {
            "loki.write" => {
                let start = cfg.clients.len();
                cfg.clients.extend(write(id, c.block, &g, &mut globals)?);
                writers.insert(id.clone(), (start..cfg.clients.len()).collect());
            }
            "loki.source.file" => sources.push(source_file(id, c.block, &g, &mut globals)?),
            "loki.source.journal" => sources.push(source_journal(id, c.block, &g)?),
            "loki.source.docker" => sources.push(source_docker(id, c.block, &g, &mut globals)?),
            "loki.source.syslog" => sources.extend(source_syslog(id, c.block, &g)?),
            "loki.source.api" => sources.push(source_api(id, c.block, &g)?),
            "loki.source.gelf" => sources.push(source_gelf(id, c.block, &g)?),
            "loki.echo" => {
                Args::new(id, c.block, &g, &[], &[])?;
            }
            // Checked here even when nothing uses them: an unsupported
            // argument is an error wherever it is.
            "loki.process" => {
                process(id, c.block, &g)?;
            }
            "loki.relabel" => {
                relabel_component(id, c.block, &g)?;
            }
            "discovery.relabel" | "discovery.docker" | "local.file_match" => {
                targets_of(id, &g, &mut globals, 0)?;
            }
            other => unreachable!("{other} is in COMPONENTS"),
        }
    }
    if writers.is_empty() && !g.components.values().any(|c| c.kind == "loki.echo") {
        return Err(ConfigError::new(
            "no loki.write or loki.echo component: nothing would be delivered",
        ));
    }
    // promtail's model when every source is one chain of loki.process
    // components into every loki.write; the component graph otherwise.
    let all: BTreeSet<&String> = writers.keys().collect();
    let mut linear = Vec::new();
    for (_, fwd, pos) in &sources {
        match linear_chain(fwd, *pos, &g, 0)? {
            Some((stages, reached)) if reached.iter().collect::<BTreeSet<_>>() == all => {
                linear.push(Some(stages))
            }
            _ => linear.push(None),
        }
    }
    if linear.iter().all(Option::is_some) {
        for ((mut sc, _, _), stages) in sources.into_iter().zip(linear) {
            sc.pipeline_stages = stages.unwrap_or_default();
            cfg.scrape_configs.push(sc);
        }
    } else {
        let mut b = GraphBuilder {
            g: &g,
            writers: &writers,
            index: BTreeMap::new(),
            visiting: BTreeSet::new(),
            graph: crate::graph::Graph::default(),
        };
        for (sc, fwd, pos) in sources {
            let to = b.targets(&fwd, pos)?;
            b.graph.sources.insert(sc.job_name.clone(), to);
            cfg.scrape_configs.push(sc);
        }
        cfg.graph = Some(b.graph);
    }
    if let Some((f, _)) = globals.positions {
        cfg.positions.filename = f.into();
    }
    if let Some((d, _)) = globals.sync_period {
        cfg.target_config.sync_period = d;
    }
    if let Some((w, _)) = globals.file_watch {
        cfg.global.file_watch_config = w;
    }
    if let Some((n, _)) = globals.max_streams {
        cfg.limits_config.max_streams = n;
    }
    Ok(cfg)
}

/// Settings Alloy gives per component that the shipper has once: they
/// must agree.
#[derive(Default)]
struct Globals {
    positions: Option<(String, Pos)>,
    sync_period: Option<(GoDuration, Pos)>,
    file_watch: Option<(FileWatchConfig, Pos)>,
    max_streams: Option<(u64, Pos)>,
}

/// A source's scrape config (its pipeline still empty), its `forward_to`
/// and where that is.
type Source = (ScrapeConfig, Value, Pos);

fn set_once<T: PartialEq + std::fmt::Debug>(
    slot: &mut Option<(T, Pos)>,
    v: T,
    pos: Pos,
    what: &str,
) -> R<()> {
    match slot {
        Some((old, p)) if *old != v => Err(at(
            pos,
            format!("{what} {v:?} differs from {old:?} set at {p}; this shipper has one"),
        )),
        Some(_) => Ok(()),
        None => {
            *slot = Some((v, pos));
            Ok(())
        }
    }
}

// ---------------------------------------------------------------- targets

enum Targets {
    Files(Vec<BTreeMap<String, String>>),
    Docker(Box<DockerSdConfig>, String),
}

struct TargetSet {
    targets: Targets,
    rules: Vec<RelabelConfig>,
}

fn component<'g, 'a>(
    g: &'g Graph<'a>,
    v: &Value,
    pos: Pos,
    export: &str,
) -> R<(&'g str, &'g Component<'a>)> {
    match v {
        Value::Export {
            component,
            export: e,
        } if e == export => {
            let (id, c) = g
                .components
                .get_key_value(component.as_str())
                .expect("eval checked it");
            Ok((id.as_str(), c))
        }
        Value::Export {
            component,
            export: e,
        } => Err(at(
            pos,
            format!("expected a {export} export here, got {component}.{e}"),
        )),
        other => Err(at(
            pos,
            format!(
                "expected a component's {export} export here, got {}",
                other.type_name()
            ),
        )),
    }
}

/// What a `targets` argument gives: literal target objects, or the
/// `targets`/`output` export of a discovery component.
fn resolve_targets(
    v: &Value,
    pos: Pos,
    g: &Graph,
    globals: &mut Globals,
    depth: usize,
) -> R<TargetSet> {
    if depth > 32 {
        return Err(at(pos, "targets refer to each other in a cycle"));
    }
    match v {
        Value::Array(items) => Ok(TargetSet {
            targets: Targets::Files(literal_targets(items, pos)?),
            rules: Vec::new(),
        }),
        Value::Export { component, export } if export != "rules" && export != "receiver" => {
            targets_of(component, g, globals, depth + 1)
        }
        other => Err(at(
            pos,
            format!(
                "targets must be an array of objects or a discovery export, got {}",
                other.type_name()
            ),
        )),
    }
}

fn literal_targets(items: &[Value], pos: Pos) -> R<Vec<BTreeMap<String, String>>> {
    items
        .iter()
        .map(|t| match t {
            Value::Object(o) => o
                .iter()
                .map(|(k, v)| match v {
                    Value::Str(s) => Ok((k.clone(), s.clone())),
                    other => Err(at(
                        pos,
                        format!(
                            "target label {k:?} must be a string, got {}",
                            other.type_name()
                        ),
                    )),
                })
                .collect(),
            other => Err(at(
                pos,
                format!(
                    "a target must be an object of strings, got {}",
                    other.type_name()
                ),
            )),
        })
        .collect()
}

/// The targets a discovery component exports (`export` empty: only check it).
fn targets_of(id: &str, g: &Graph, globals: &mut Globals, depth: usize) -> R<TargetSet> {
    let c = &g.components[id];
    match c.kind {
        "local.file_match" => {
            let a = Args::new(id, c.block, g, &["path_targets", "sync_period"], &[])?;
            let (v, p) = a.required("path_targets")?;
            let Value::Array(items) = v else {
                return Err(at(
                    p,
                    format!("{id}: path_targets must be an array of objects"),
                ));
            };
            let files = literal_targets(items, p)?;
            if let Some(t) = files.iter().find(|t| !t.contains_key("__path__")) {
                return Err(at(
                    p,
                    format!("{id}: every path target needs __path__, {t:?} has none"),
                ));
            }
            if let Some(s) = a.string("sync_period")? {
                let d = crate::config::units::parse_duration(&s).map_err(|e| {
                    at(
                        a.get("sync_period").unwrap().1,
                        format!("{id}: sync_period: {e}"),
                    )
                })?;
                set_once(
                    &mut globals.sync_period,
                    GoDuration(d),
                    a.get("sync_period").unwrap().1,
                    "sync_period",
                )?;
            }
            Ok(TargetSet {
                targets: Targets::Files(files),
                rules: Vec::new(),
            })
        }
        "discovery.docker" => {
            let (sd, host) = discovery_docker(id, c.block, g)?;
            Ok(TargetSet {
                targets: Targets::Docker(Box::new(sd), host),
                rules: Vec::new(),
            })
        }
        "discovery.relabel" => {
            let a = Args::new(id, c.block, g, &["targets"], &["rule"])?;
            let rules = rules(&a, g)?;
            let (v, p) = a.required("targets")?;
            let mut set = resolve_targets(v, p, g, globals, depth)?;
            set.rules.extend(rules);
            Ok(set)
        }
        other => Err(at(c.block.pos, format!("{other} does not export targets"))),
    }
}

fn rules(a: &Args, g: &Graph) -> R<Vec<RelabelConfig>> {
    let mut out = Vec::new();
    for b in a.blocks.iter().filter(|b| b.name == "rule") {
        let r = Args::new(
            &format!("{}: rule", a.what),
            b,
            g,
            &[
                "source_labels",
                "separator",
                "regex",
                "modulus",
                "target_label",
                "replacement",
                "action",
            ],
            &[],
        )?;
        out.push(r.de(Yaml::Mapping(r.yaml(&[], &[])?), &[])?);
    }
    Ok(out)
}

fn rules_export(v: &Value, pos: Pos, g: &Graph) -> R<Vec<RelabelConfig>> {
    let (id, c) = component(g, v, pos, "rules")?;
    let blocks: &[&str] = &["rule"];
    let attrs: &[&str] = if c.kind == "loki.relabel" {
        &["forward_to", "max_cache_size"]
    } else {
        &["targets"]
    };
    let a = Args::new(id, c.block, g, attrs, blocks)?;
    rules(&a, g)
}

// ---------------------------------------------------------------- sources

/// The components a `forward_to` list names (each a receiver export).
fn receivers<'g>(v: &Value, pos: Pos, g: &'g Graph) -> R<Vec<(&'g str, &'g Component<'g>)>> {
    let Value::Array(items) = v else {
        return Err(at(
            pos,
            format!(
                "forward_to must be a list of receivers, got {}",
                v.type_name()
            ),
        ));
    };
    if items.is_empty() {
        return Err(at(pos, "forward_to is empty: the entries would go nowhere"));
    }
    items
        .iter()
        .map(|it| component(g, it, pos, "receiver"))
        .collect()
}

/// Follows `forward_to` through a single chain of `loki.process`
/// components to `loki.write` components only: the stages on the way and
/// the writers reached. `None` when the graph is anything else (relabel,
/// echo, a fan-out to a loki.process and other receivers).
fn linear_chain(
    v: &Value,
    pos: Pos,
    g: &Graph,
    depth: usize,
) -> R<Option<(Vec<StageConfig>, BTreeSet<String>)>> {
    if depth > 32 {
        return Err(at(pos, "forward_to chains loop back on themselves"));
    }
    let mut writers = BTreeSet::new();
    let mut processes = Vec::new();
    for (id, c) in receivers(v, pos, g)? {
        match c.kind {
            "loki.write" => {
                writers.insert(id.to_string());
            }
            "loki.process" => processes.push(id),
            _ => return Ok(None),
        }
    }
    match (processes.as_slice(), writers.is_empty()) {
        ([], _) => Ok(Some((Vec::new(), writers))),
        ([p], true) => {
            let c = &g.components[*p];
            let (stages, fwd, fpos) = process(p, c.block, g)?;
            Ok(linear_chain(&fwd, fpos, g, depth + 1)?
                .map(|(more, writers)| (stages.into_iter().chain(more).collect(), writers)))
        }
        _ => Ok(None),
    }
}

/// The receivers reachable from the sources as a [`crate::graph::Graph`],
/// each component once, every node after the nodes it forwards to.
struct GraphBuilder<'a, 'g> {
    g: &'g Graph<'a>,
    writers: &'g BTreeMap<String, Vec<usize>>,
    index: BTreeMap<String, usize>,
    visiting: BTreeSet<String>,
    graph: crate::graph::Graph,
}

impl GraphBuilder<'_, '_> {
    fn targets(&mut self, v: &Value, pos: Pos) -> R<Vec<usize>> {
        let mut out = Vec::new();
        for (id, _) in receivers(v, pos, self.g)? {
            let i = self.node(id, pos)?;
            if !out.contains(&i) {
                out.push(i);
            }
        }
        Ok(out)
    }

    fn node(&mut self, id: &str, pos: Pos) -> R<usize> {
        use crate::graph::{Node, NodeKind};
        if let Some(i) = self.index.get(id) {
            return Ok(*i);
        }
        if !self.visiting.insert(id.to_string()) {
            return Err(at(pos, "forward_to chains loop back on themselves"));
        }
        let c = &self.g.components[id];
        let (kind, forward_to) = match c.kind {
            "loki.write" => (NodeKind::Write(self.writers[id].clone()), Vec::new()),
            "loki.echo" => (NodeKind::Echo, Vec::new()),
            "loki.process" => {
                let (stages, fwd, fpos) = process(id, c.block, self.g)?;
                (NodeKind::Process(stages), self.targets(&fwd, fpos)?)
            }
            "loki.relabel" => {
                let (rules, max_cache_size, fwd, fpos) = relabel_component(id, c.block, self.g)?;
                (
                    NodeKind::Relabel {
                        rules,
                        max_cache_size,
                    },
                    self.targets(&fwd, fpos)?,
                )
            }
            other => return Err(at(pos, format!("{id}: {other} is not a receiver"))),
        };
        self.visiting.remove(id);
        let i = self.graph.nodes.len();
        self.graph.nodes.push(Node {
            id: id.to_string(),
            kind,
            forward_to,
        });
        self.index.insert(id.to_string(), i);
        Ok(i)
    }
}

fn source_file(id: &str, b: &Block, g: &Graph, globals: &mut Globals) -> R<Source> {
    let a = Args::new(
        id,
        b,
        g,
        &[
            "targets",
            "forward_to",
            "encoding",
            "tail_from_end",
            "legacy_positions_file",
        ],
        &["file_watch", "decompression"],
    )?;
    if let Some(f) = a.string("legacy_positions_file")? {
        set_once(
            &mut globals.positions,
            f,
            a.get("legacy_positions_file").unwrap().1,
            "legacy_positions_file",
        )?;
    }
    let mut decompression = None;
    for blk in &a.blocks {
        match blk.name.as_str() {
            "file_watch" => {
                let w = Args::new(
                    &format!("{id}: file_watch"),
                    blk,
                    g,
                    &["min_poll_frequency", "max_poll_frequency"],
                    &[],
                )?;
                let fw: FileWatchConfig = w.de(Yaml::Mapping(w.yaml(&[], &[])?), &[])?;
                set_once(&mut globals.file_watch, fw, blk.pos, "file_watch")?;
            }
            _ => {
                // Alloy's block has promtail's keys: the YAML's reader does it.
                let d = Args::new(
                    &format!("{id}: decompression"),
                    blk,
                    g,
                    &["enabled", "initial_delay", "format"],
                    &[],
                )?;
                let dc: DecompressionConfig = d.de(Yaml::Mapping(d.yaml(&[], &[])?), &[])?;
                decompression = Some(dc);
            }
        }
    }
    let (tv, tp) = a.required("targets")?;
    let set = resolve_targets(tv, tp, g, globals, 0)?;
    let Targets::Files(files) = set.targets else {
        return Err(at(
            tp,
            format!("{id}: targets come from discovery.docker: use loki.source.docker"),
        ));
    };
    let (fv, fp) = a.required("forward_to")?;
    let encoding = a.string("encoding")?.unwrap_or_default();
    if let Err(e) = crate::sources::file::encoding::FileEncoding::named(&encoding) {
        let pos = a.get("encoding").map_or(fp, |(_, p)| p);
        return Err(at(pos, format!("{id}: encoding: {e}")));
    }
    let sc = ScrapeConfig {
        job_name: id.to_string(),
        static_configs: files
            .into_iter()
            .map(|labels| StaticConfig {
                targets: vec!["localhost".into()],
                labels,
            })
            .collect(),
        relabel_configs: set.rules,
        encoding,
        tail_from_end: a.bool("tail_from_end")?.unwrap_or(false),
        decompression,
        ..ScrapeConfig::default()
    };
    Ok((sc, fv.clone(), fp))
}

fn source_journal(id: &str, b: &Block, g: &Graph) -> R<Source> {
    let a = Args::new(
        id,
        b,
        g,
        &[
            "forward_to",
            "format_as_json",
            "max_age",
            "path",
            "matches",
            "labels",
            "relabel_rules",
        ],
        &[],
    )?;
    let rename = &[("format_as_json", "json")];
    let m = a.yaml(rename, &["forward_to", "relabel_rules"])?;
    let journal: JournalConfig = a.de(Yaml::Mapping(m), rename)?;
    let relabel = relabel_rules(&a, g)?;
    let (fv, fp) = a.required("forward_to")?;
    let sc = ScrapeConfig {
        job_name: id.to_string(),
        relabel_configs: relabel,
        journal: Some(journal),
        ..ScrapeConfig::default()
    };
    Ok((sc, fv.clone(), fp))
}

fn source_docker(id: &str, b: &Block, g: &Graph, globals: &mut Globals) -> R<Source> {
    let a = Args::new(
        id,
        b,
        g,
        &[
            "host",
            "targets",
            "forward_to",
            "labels",
            "relabel_rules",
            "refresh_interval",
        ],
        &[],
    )?;
    let (tv, tp) = a.required("targets")?;
    let set = resolve_targets(tv, tp, g, globals, 0)?;
    let Targets::Docker(mut sd, dhost) = set.targets else {
        return Err(at(
            tp,
            format!("{id}: targets must come from a discovery.docker"),
        ));
    };
    let host = a
        .string("host")?
        .ok_or_else(|| at(b.pos, format!("{id}: missing required attribute \"host\"")))?;
    if host != dhost {
        return Err(at(
            a.get("host").unwrap().1,
            format!("{id}: host {host:?} differs from the discovery.docker host {dhost:?}; this shipper reads logs from where it discovers"),
        ));
    }
    if let Some(r) = a.string("refresh_interval")? {
        sd.refresh_interval =
            GoDuration(crate::config::units::parse_duration(&r).map_err(|e| {
                at(
                    a.get("refresh_interval").unwrap().1,
                    format!("{id}: refresh_interval: {e}"),
                )
            })?);
    }
    let mut relabel = set.rules;
    if let Some((v, p)) = a.get("labels") {
        let Value::Object(o) = v else {
            return Err(at(p, format!("{id}: labels must be an object of strings")));
        };
        for (k, v) in o {
            let Value::Str(s) = v else {
                return Err(at(p, format!("{id}: label {k:?} must be a string")));
            };
            // A static label is a replace rule with nothing to match.
            let y = ymap(vec![
                ("target_label", Yaml::String(k.clone())),
                ("replacement", Yaml::String(s.replace('$', "$$"))),
            ]);
            relabel.push(a.de(y, &[])?);
        }
    }
    if let Some((v, p)) = a.get("relabel_rules") {
        relabel.extend(rules_export(v, p, g)?);
    }
    let (fv, fp) = a.required("forward_to")?;
    let sc = ScrapeConfig {
        job_name: id.to_string(),
        relabel_configs: relabel,
        docker_sd_configs: vec![*sd],
        ..ScrapeConfig::default()
    };
    Ok((sc, fv.clone(), fp))
}

/// A receiver's `relabel_rules` (a loki.relabel's `rules` export).
fn relabel_rules(a: &Args, g: &Graph) -> R<Vec<RelabelConfig>> {
    match a.get("relabel_rules") {
        Some((v, p)) => rules_export(v, p, g),
        None => Ok(Vec::new()),
    }
}

/// `loki.source.syslog`: one scrape config with a `syslog` block per
/// `listener` block, all forwarding alike.
fn source_syslog(id: &str, b: &Block, g: &Graph) -> R<Vec<Source>> {
    let a = Args::new(id, b, g, &["forward_to", "relabel_rules"], &["listener"])?;
    let relabel = relabel_rules(&a, g)?;
    let (fv, fp) = a.required("forward_to")?;
    let rename = &[
        ("address", "listen_address"),
        ("protocol", "listen_protocol"),
    ];
    let mut out = Vec::new();
    for (i, l) in a.blocks.iter().enumerate() {
        let what = format!("{id}: listener");
        let la = Args::new(
            &what,
            l,
            g,
            &[
                "address",
                "protocol",
                "idle_timeout",
                "label_structured_data",
                "labels",
                "use_incoming_timestamp",
                "use_rfc5424_message",
                "max_message_length",
                "syslog_format",
            ],
            &["tls_config"],
        )?;
        la.required("address")?;
        let mut m = la.yaml(rename, &[])?;
        for t in &la.blocks {
            m.insert(
                Yaml::String("tls_config".into()),
                tls(&format!("{what}: tls_config"), t, g)?,
            );
        }
        let syslog: SyslogConfig = la.de(Yaml::Mapping(m), rename)?;
        out.push((
            ScrapeConfig {
                job_name: if a.blocks.len() == 1 {
                    id.to_string()
                } else {
                    format!("{id}/{i}")
                },
                relabel_configs: relabel.clone(),
                syslog: Some(syslog),
                ..ScrapeConfig::default()
            },
            fv.clone(),
            fp,
        ));
    }
    if out.is_empty() {
        return Err(at(
            b.pos,
            format!("{id}: no listener block: nothing would be received"),
        ));
    }
    Ok(out)
}

/// `loki.source.api`: a `loki_push_api` scrape config. Its `http` block
/// is promtail's server keys for the push server.
fn source_api(id: &str, b: &Block, g: &Graph) -> R<Source> {
    let a = Args::new(
        id,
        b,
        g,
        &[
            "forward_to",
            "labels",
            "use_incoming_timestamp",
            "relabel_rules",
        ],
        &["http", "grpc"],
    )?;
    let relabel = relabel_rules(&a, g)?;
    let (fv, fp) = a.required("forward_to")?;
    let mut server = Mapping::new();
    let mut http = false;
    for blk in &a.blocks {
        let what = format!("{id}: {}", blk.name);
        let (attrs, prefix): (&[&str], &str) = if blk.name == "http" {
            http = true;
            (
                &[
                    "listen_address",
                    "listen_port",
                    "server_read_timeout",
                    "server_write_timeout",
                ],
                "http_",
            )
        } else {
            // promtail opens no gRPC push service either: parsed only.
            (&["listen_address", "listen_port"], "grpc_")
        };
        let ba = Args::new(&what, blk, g, attrs, &[])?;
        if blk.name == "http" {
            ba.required("listen_port")?;
        }
        for (k, v) in ba.yaml(&[], &[])? {
            let key = format!("{prefix}{}", k.as_str().unwrap_or_default());
            server.insert(Yaml::String(key), v);
        }
    }
    if !http {
        return Err(at(
            b.pos,
            format!("{id}: needs an http block with listen_port (where pushes are received)"),
        ));
    }
    let mut m = a.yaml(&[], &["forward_to", "relabel_rules"])?;
    m.insert(Yaml::String("server".into()), Yaml::Mapping(server));
    let push: PushApiConfig = a.de(Yaml::Mapping(m), &[])?;
    let sc = ScrapeConfig {
        job_name: id.to_string(),
        relabel_configs: relabel,
        loki_push_api: Some(push),
        ..ScrapeConfig::default()
    };
    Ok((sc, fv.clone(), fp))
}

/// `loki.source.gelf`: a `gelf` scrape config. Alloy labels every entry
/// with `job` = the component's id; so does this mapping.
fn source_gelf(id: &str, b: &Block, g: &Graph) -> R<Source> {
    let a = Args::new(
        id,
        b,
        g,
        &[
            "forward_to",
            "listen_address",
            "use_incoming_timestamp",
            "relabel_rules",
        ],
        &[],
    )?;
    let relabel = relabel_rules(&a, g)?;
    let (fv, fp) = a.required("forward_to")?;
    let mut m = a.yaml(&[], &["forward_to", "relabel_rules"])?;
    m.insert(
        Yaml::String("labels".into()),
        ymap(vec![("job", Yaml::String(id.into()))]),
    );
    let gelf: GelfConfig = a.de(Yaml::Mapping(m), &[])?;
    let sc = ScrapeConfig {
        job_name: id.to_string(),
        relabel_configs: relabel,
        gelf: Some(gelf),
        ..ScrapeConfig::default()
    };
    Ok((sc, fv.clone(), fp))
}

fn discovery_docker(id: &str, b: &Block, g: &Graph) -> R<(DockerSdConfig, String)> {
    let a = Args::new(
        id,
        b,
        g,
        &[
            "host",
            "port",
            "host_networking_host",
            "refresh_interval",
            "match_first_network",
            "bearer_token",
            "bearer_token_file",
            "proxy_url",
            "follow_redirects",
            "enable_http2",
        ],
        &["filter", "basic_auth", "authorization", "tls_config"],
    )?;
    let host = a
        .string("host")?
        .ok_or_else(|| at(b.pos, format!("{id}: missing required attribute \"host\"")))?;
    let mut m = a.yaml(&[], &[])?;
    let mut filters = Vec::new();
    for blk in &a.blocks {
        let what = format!("{id}: {}", blk.name);
        let (key, y) = match blk.name.as_str() {
            "filter" => {
                let f = Args::new(&what, blk, g, &["name", "values"], &[])?;
                filters.push(Yaml::Mapping(f.yaml(&[], &[])?));
                continue;
            }
            "tls_config" => ("tls_config", tls(&what, blk, g)?),
            "basic_auth" => ("basic_auth", basic_auth(&what, blk, g)?),
            _ => ("authorization", authorization(&what, blk, g)?),
        };
        m.insert(Yaml::String(key.into()), y);
    }
    if !filters.is_empty() {
        m.insert(Yaml::String("filters".into()), Yaml::Sequence(filters));
    }
    Ok((a.de(Yaml::Mapping(m), &[])?, host))
}

// ---------------------------------------------------------------- process

/// A `loki.process`: its stages, its `forward_to` and where that is.
fn process(id: &str, b: &Block, g: &Graph) -> R<(Vec<StageConfig>, Value, Pos)> {
    let a = Args::new(id, b, g, &["forward_to"], &["stage.*"])?;
    let stages = a
        .blocks
        .iter()
        .map(|s| stage(id, s, g))
        .collect::<R<Vec<_>>>()?;
    let (fv, fp) = a.required("forward_to")?;
    Ok((stages, fv.clone(), fp))
}

/// A `loki.relabel`: its rules, cache size, `forward_to` and where that is.
fn relabel_component(id: &str, b: &Block, g: &Graph) -> R<(Vec<RelabelConfig>, usize, Value, Pos)> {
    let a = Args::new(id, b, g, &["forward_to", "max_cache_size"], &["rule"])?;
    let (fv, fp) = a.required("forward_to")?;
    let max_cache_size = match a.get("max_cache_size") {
        None => 10_000,
        Some((Value::Int(n), p)) => usize::try_from(*n)
            .map_err(|_| at(p, format!("{id}: max_cache_size must not be negative")))?,
        Some((v, p)) => {
            return Err(at(
                p,
                format!("{id}: max_cache_size must be an int, got {}", v.type_name()),
            ))
        }
    };
    Ok((rules(&a, g)?, max_cache_size, fv.clone(), fp))
}

fn stage(parent: &str, b: &Block, g: &Graph) -> R<StageConfig> {
    let what = format!("{parent}: {}", b.name);
    if STAGES_NOT_YET.contains(&b.name.as_str()) {
        return Err(at(
            b.pos,
            format!("{what}: not supported yet by this shipper"),
        ));
    }
    let (key, settings, a) =
        if let Some(&(_, key)) = PLAIN_STAGES.iter().find(|(n, _)| *n == b.name) {
            // Attribute names are promtail's; the stage's own config refuses
            // the ones it does not know, reported at the attribute.
            let all: Vec<&str> = b
                .body
                .iter()
                .filter_map(|s| match s {
                    Stmt::Attr(a) => Some(a.name.as_str()),
                    Stmt::Block(_) => None,
                })
                .collect();
            let a = Args::new(&what, b, g, &all, &[])?;
            let mut m = a.yaml(&[], &[])?;
            // json's expressions and logfmt's mapping: "" is "the key's own
            // name" in Alloy, an empty value in promtail's YAML.
            for field in ["expressions", "mapping"] {
                if let Some(Yaml::Mapping(inner)) = m.get_mut(field) {
                    empty_to_null(inner);
                }
            }
            (key, Yaml::Mapping(m), a)
        } else if let Some(&(_, key)) = VALUES_STAGES.iter().find(|(n, _)| *n == b.name) {
            let a = Args::new(&what, b, g, &["values"], &[])?;
            let (v, p) = a.required("values")?;
            let mut y = to_yaml(v, p)?;
            // Alloy writes "" for "the extracted value of the same name",
            // promtail an empty value.
            if let Yaml::Mapping(m) = &mut y {
                empty_to_null(m);
            }
            (key, y, a)
        } else if b.name == "stage.match" {
            let a = Args::new(
                &what,
                b,
                g,
                &["selector", "pipeline_name", "action", "drop_counter_reason"],
                &["stage.*"],
            )?;
            let mut m = a.yaml(&[], &[])?;
            let nested = a
                .blocks
                .iter()
                .map(|s| stage(parent, s, g))
                .collect::<R<Vec<_>>>()?;
            if !nested.is_empty() {
                let y = serde_yaml_ng::to_value(&nested).map_err(|e| at(b.pos, e.to_string()))?;
                m.insert(Yaml::String("stages".into()), y);
            }
            ("match", Yaml::Mapping(m), a)
        } else if b.name == "stage.metrics" {
            let a = Args::new(
                &what,
                b,
                g,
                &[],
                &["metric.counter", "metric.gauge", "metric.histogram"],
            )?;
            let mut m = Mapping::new();
            for mb in &a.blocks {
                let kind = match mb.name.as_str() {
                    "metric.counter" => "Counter",
                    "metric.gauge" => "Gauge",
                    _ => "Histogram",
                };
                let mut allowed = vec![
                    "name",
                    "description",
                    "source",
                    "prefix",
                    "max_idle_duration",
                    "value",
                    "action",
                ];
                match kind {
                    "Counter" => allowed.extend(["match_all", "count_entry_bytes"]),
                    "Histogram" => allowed.push("buckets"),
                    _ => {}
                }
                let mwhat = format!("{what}: {}", mb.name);
                let ma = Args::new(&mwhat, mb, g, &allowed, &[])?;
                let name = ma.string("name")?.ok_or_else(|| {
                    at(
                        mb.pos,
                        format!("{mwhat}: missing required attribute \"name\""),
                    )
                })?;
                let mut metric = ma.yaml(
                    &[],
                    &[
                        "name",
                        "value",
                        "action",
                        "match_all",
                        "count_entry_bytes",
                        "buckets",
                    ],
                )?;
                metric.insert(Yaml::String("type".into()), Yaml::String(kind.into()));
                let mut config = Mapping::new();
                for k in [
                    "value",
                    "action",
                    "match_all",
                    "count_entry_bytes",
                    "buckets",
                ] {
                    if let Some((v, p)) = ma.get(k) {
                        config.insert(Yaml::String(k.into()), to_yaml(v, p)?);
                    }
                }
                metric.insert(Yaml::String("config".into()), Yaml::Mapping(config));
                if m.insert(Yaml::String(name.clone()), Yaml::Mapping(metric))
                    .is_some()
                {
                    return Err(at(mb.pos, format!("{what}: metric {name:?} defined twice")));
                }
            }
            ("metrics", Yaml::Mapping(m), a)
        } else {
            let known: Vec<&str> = PLAIN_STAGES
                .iter()
                .chain(VALUES_STAGES)
                .map(|(n, _)| *n)
                .chain(["stage.match", "stage.metrics"])
                .collect();
            return Err(at(
                b.pos,
                format!(
                    "{parent}: unknown stage block {:?} (supported: {})",
                    b.name,
                    known.join(", ")
                ),
            ));
        };
    a.de(ymap(vec![(key, settings)]), &[])
}

fn empty_to_null(m: &mut Mapping) {
    for (_, v) in m.iter_mut() {
        if v.as_str() == Some("") {
            *v = Yaml::Null;
        }
    }
}

// ---------------------------------------------------------------- write

/// Alloy `loki.write` settings this shipper does not implement: refused by
/// name where they are written, before the generic "unsupported" error.
const WRITE_NOT_YET: &[(&str, &str)] = &[
    (
        "wal",
        "the write-ahead log (the files and positions are the buffer here)",
    ),
    ("queue_config", "the WAL's queue (no WAL here)"),
    ("http_headers", "secret headers; use headers"),
];

fn refuse_not_yet(what: &str, b: &Block) -> R<()> {
    for s in &b.body {
        let (name, pos) = match s {
            Stmt::Attr(a) => (a.name.as_str(), a.pos),
            Stmt::Block(b) => (b.name.as_str(), b.pos),
        };
        if let Some((_, why)) = WRITE_NOT_YET.iter().find(|(n, _)| *n == name) {
            return Err(at(
                pos,
                format!("{what}: {name} is not supported yet by this shipper ({why})"),
            ));
        }
    }
    Ok(())
}

fn write(id: &str, b: &Block, g: &Graph, globals: &mut Globals) -> R<Vec<ClientConfig>> {
    refuse_not_yet(id, b)?;
    let a = Args::new(id, b, g, &["external_labels", "max_streams"], &["endpoint"])?;
    if let Some((v, p)) = a.get("max_streams") {
        let Value::Int(n) = v else {
            return Err(at(p, format!("{id}: max_streams must be an int")));
        };
        let n = u64::try_from(*n)
            .map_err(|_| at(p, format!("{id}: max_streams must not be negative")))?;
        // The shipper's limit is limits_config.max_streams, per client.
        set_once(&mut globals.max_streams, n, p, "max_streams")?;
    }
    let external = match a.get("external_labels") {
        Some((v, p)) => to_yaml(v, p)?,
        None => Yaml::Null,
    };
    if a.blocks.is_empty() {
        return Err(at(
            b.pos,
            format!("{id}: needs at least one endpoint block"),
        ));
    }
    let mut out = Vec::new();
    for e in &a.blocks {
        let what = format!("{id}: endpoint");
        refuse_not_yet(&what, e)?;
        let rename = &[
            ("batch_wait", "batchwait"),
            ("batch_size", "batchsize"),
            ("remote_timeout", "timeout"),
        ];
        let ea = Args::new(
            &what,
            e,
            g,
            &[
                "name",
                "url",
                "headers",
                "batch_wait",
                "batch_size",
                "remote_timeout",
                "tenant_id",
                "min_backoff_period",
                "max_backoff_period",
                "max_backoff_retries",
                "retry_on_http_429",
                "bearer_token",
                "bearer_token_file",
                "follow_redirects",
                "enable_http2",
                "proxy_url",
                "no_proxy",
                "proxy_from_environment",
                "proxy_connect_header",
            ],
            &["basic_auth", "authorization", "oauth2", "tls_config"],
        )?;
        ea.required("url")?;
        let mut m = ea.yaml(
            rename,
            &[
                "min_backoff_period",
                "max_backoff_period",
                "max_backoff_retries",
                "retry_on_http_429",
            ],
        )?;
        let mut backoff = Mapping::new();
        for (alloy, yaml) in [
            ("min_backoff_period", "min_period"),
            ("max_backoff_period", "max_period"),
            ("max_backoff_retries", "max_retries"),
        ] {
            if let Some((v, p)) = ea.get(alloy) {
                backoff.insert(Yaml::String(yaml.into()), to_yaml(v, p)?);
            }
        }
        if !backoff.is_empty() {
            m.insert(
                Yaml::String("backoff_config".into()),
                Yaml::Mapping(backoff),
            );
        }
        // Alloy retries 429s unless told not to; promtail's switch is the
        // other way round.
        if let Some(retry) = ea.bool("retry_on_http_429")? {
            m.insert(
                Yaml::String("drop_rate_limited_batches".into()),
                Yaml::Bool(!retry),
            );
        }
        if !external.is_null() {
            m.insert(Yaml::String("external_labels".into()), external.clone());
        }
        for blk in &ea.blocks {
            let bwhat = format!("{what}: {}", blk.name);
            let (key, y) = match blk.name.as_str() {
                "tls_config" => {
                    // The Loki client reads certificates from files only.
                    for st in &blk.body {
                        if let Stmt::Attr(at_) = st {
                            if let Some(key) = at_.name.strip_suffix("_pem") {
                                return Err(at(
                                    at_.pos,
                                    format!("{bwhat}: {} is not supported yet by this shipper; use {key}_file", at_.name),
                                ));
                            }
                        }
                    }
                    ("tls_config", tls(&bwhat, blk, g)?)
                }
                "basic_auth" => ("basic_auth", basic_auth(&bwhat, blk, g)?),
                "oauth2" => ("oauth2", oauth2(&bwhat, blk, g)?),
                _ => ("authorization", authorization(&bwhat, blk, g)?),
            };
            m.insert(Yaml::String(key.into()), y);
        }
        out.push(ea.de(Yaml::Mapping(m), rename)?);
    }
    Ok(out)
}

fn tls(what: &str, b: &Block, g: &Graph) -> R<Yaml> {
    let rename = &[("ca_pem", "ca"), ("cert_pem", "cert"), ("key_pem", "key")];
    let a = Args::new(
        what,
        b,
        g,
        &[
            "ca_pem",
            "ca_file",
            "cert_pem",
            "cert_file",
            "key_pem",
            "key_file",
            "server_name",
            "insecure_skip_verify",
            "min_version",
        ],
        &[],
    )?;
    Ok(Yaml::Mapping(a.yaml(rename, &[])?))
}

/// An `oauth2` block: promtail's keys, and its own `tls_config` block.
fn oauth2(what: &str, b: &Block, g: &Graph) -> R<Yaml> {
    let a = Args::new(
        what,
        b,
        g,
        &[
            "client_id",
            "client_secret",
            "client_secret_file",
            "scopes",
            "token_url",
            "endpoint_params",
            "proxy_url",
            "no_proxy",
            "proxy_from_environment",
            "proxy_connect_header",
        ],
        &["tls_config"],
    )?;
    let mut m = a.yaml(&[], &[])?;
    for blk in &a.blocks {
        let bwhat = format!("{what}: {}", blk.name);
        m.insert(Yaml::String("tls_config".into()), tls(&bwhat, blk, g)?);
    }
    Ok(Yaml::Mapping(m))
}

fn basic_auth(what: &str, b: &Block, g: &Graph) -> R<Yaml> {
    let a = Args::new(what, b, g, &["username", "password", "password_file"], &[])?;
    Ok(Yaml::Mapping(a.yaml(&[], &[])?))
}

fn authorization(what: &str, b: &Block, g: &Graph) -> R<Yaml> {
    let a = Args::new(
        what,
        b,
        g,
        &["type", "credentials", "credentials_file"],
        &[],
    )?;
    Ok(Yaml::Mapping(a.yaml(&[], &[])?))
}

#[cfg(test)]
mod tests {
    use super::super::{from_str, Host};
    use crate::config::Config;

    struct Fixed;
    impl Host for Fixed {
        fn env(&self, name: &str) -> Option<String> {
            (name == "LOKI").then(|| "http://loki:3100/loki/api/v1/push".to_string())
        }
        fn hostname(&self) -> String {
            "web1".into()
        }
    }

    fn load(src: &str) -> Result<Config, String> {
        from_str(src, &Fixed).map_err(|e| e.to_string())
    }

    const WRITE: &str = "loki.write \"default\" {\n  endpoint {\n    url = env(\"LOKI\")\n  }\n}\n";

    #[test]
    fn a_file_pipeline_maps_onto_the_promtail_config() {
        let cfg = load(&format!(
            "local.file_match \"f\" {{\n  path_targets = [{{ __path__ = \"/var/log/*.log\", job = \"varlogs\", host = constants.hostname }}]\n  sync_period = \"5s\"\n}}\n\
             discovery.relabel \"r\" {{\n  targets = local.file_match.f.targets\n  rule {{\n    target_label = \"env\"\n    replacement = \"prod\"\n  }}\n}}\n\
             loki.source.file \"f\" {{\n  targets = discovery.relabel.r.output\n  forward_to = [loki.process.p.receiver]\n  legacy_positions_file = \"/tmp/p.yaml\"\n}}\n\
             loki.process \"p\" {{\n  forward_to = [loki.write.default.receiver, loki.write.second.receiver]\n  stage.json {{\n    expressions = {{ level = \"\" }}\n  }}\n  stage.match {{\n    selector = \"{{job=\\\"varlogs\\\"}}\"\n    stage.labels {{\n      values = {{ level = \"\" }}\n    }}\n  }}\n  stage.metrics {{\n    metric.counter {{\n      name = \"lines\"\n      description = \"lines\"\n      match_all = true\n      action = \"inc\"\n    }}\n  }}\n}}\n\
             {WRITE}loki.write \"second\" {{\n  endpoint {{\n    url = \"http://b:3100/loki/api/v1/push\"\n    tenant_id = \"t1\"\n    batch_wait = \"2s\"\n    retry_on_http_429 = false\n    max_backoff_retries = 3\n    basic_auth {{\n      username = \"u\"\n      password = \"p\"\n    }}\n  }}\n  external_labels = {{ cluster = \"c1\" }}\n}}\n"
        ))
        .unwrap();
        assert_eq!(cfg.scrape_configs.len(), 1);
        let sc = &cfg.scrape_configs[0];
        assert_eq!(sc.job_name, "loki.source.file.f");
        assert_eq!(sc.static_configs[0].labels["host"], "web1");
        assert_eq!(sc.relabel_configs.len(), 1);
        let kinds: Vec<_> = sc.pipeline_stages.iter().map(|s| s.kind()).collect();
        assert_eq!(kinds, ["json", "match", "metrics"]);
        assert_eq!(cfg.positions.filename.to_str(), Some("/tmp/p.yaml"));
        assert_eq!(cfg.target_config.sync_period.get().as_secs(), 5);
        assert_eq!(cfg.clients.len(), 2);
        let c = &cfg.clients[1];
        assert_eq!(
            (
                c.tenant_id.as_str(),
                c.batchwait.get().as_secs(),
                c.drop_rate_limited_batches
            ),
            ("t1", 2, true)
        );
        assert_eq!(c.backoff_config.max_retries, 3);
        assert_eq!(c.external_labels["cluster"], "c1");
        assert_eq!(c.basic_auth.as_ref().unwrap().username, "u");
        cfg.check_all().unwrap();
    }

    #[test]
    fn decompression_is_the_yaml_block_and_prints_back() {
        let cfg = load(&format!(
            "loki.source.file \"f\" {{\n  targets = [{{ __path__ = \"/var/log/*.gz\" }}]\n  forward_to = [loki.write.default.receiver]\n  decompression {{\n    enabled = true\n    initial_delay = \"10s\"\n    format = \"bz2\"\n  }}\n}}\n{WRITE}"
        ))
        .unwrap();
        let yaml: crate::config::DecompressionConfig =
            serde_yaml_ng::from_str("enabled: true\ninitial_delay: 10s\nformat: bz2\n").unwrap();
        let got = cfg.scrape_configs[0].decompression.clone();
        assert_eq!(got, Some(yaml));
        let printed = crate::config::alloy::print::to_alloy(&cfg).unwrap();
        let again = load(&printed).unwrap();
        assert_eq!(again.scrape_configs[0].decompression, got, "{printed}");
        let bad = load(&format!(
            "loki.source.file \"f\" {{\n  targets = []\n  forward_to = [loki.write.default.receiver]\n  decompression {{\n    enabled = true\n    format = \"lz4\"\n  }}\n}}\n{WRITE}"
        ))
        .unwrap_err();
        assert!(bad.contains("\"lz4\" is not supported"), "{bad}");
    }

    #[test]
    fn write_http_options_are_the_yaml_keys_and_print_back() {
        let cfg = load(
            "loki.source.file \"f\" {\n  targets = []\n  forward_to = [loki.write.default.receiver]\n}\n\
             loki.write \"default\" {\n  endpoint {\n    url = \"https://loki:3100/loki/api/v1/push\"\n    follow_redirects = false\n    enable_http2 = false\n    proxy_url = \"http://proxy:3128\"\n    no_proxy = \"10.0.0.0/8\"\n    proxy_connect_header = { \"Proxy-Authorization\" = [\"Basic dTpw\"] }\n    oauth2 {\n      client_id = \"id\"\n      client_secret_file = \"/s\"\n      token_url = \"https://auth/token\"\n      scopes = [\"logs:write\"]\n      endpoint_params = { audience = \"loki\" }\n      proxy_from_environment = true\n      tls_config {\n        insecure_skip_verify = true\n      }\n    }\n  }\n}\n",
        )
        .unwrap();
        let yaml: crate::config::ClientConfig = serde_yaml_ng::from_str(
            "url: https://loki:3100/loki/api/v1/push\nfollow_redirects: false\nenable_http2: false\nproxy_url: http://proxy:3128\nno_proxy: 10.0.0.0/8\nproxy_connect_header: {Proxy-Authorization: [Basic dTpw]}\noauth2:\n  client_id: id\n  client_secret_file: /s\n  token_url: https://auth/token\n  scopes: [logs:write]\n  endpoint_params: {audience: loki}\n  proxy_from_environment: true\n  tls_config: {insecure_skip_verify: true}\n",
        )
        .unwrap();
        let got = &cfg.clients[0];
        let as_yaml = |c: &crate::config::ClientConfig| serde_yaml_ng::to_string(c).unwrap();
        assert_eq!(as_yaml(got), as_yaml(&yaml));
        let printed = crate::config::alloy::print::to_alloy(&cfg).unwrap();
        let again = load(&printed).unwrap();
        assert_eq!(as_yaml(&again.clients[0]), as_yaml(got), "{printed}");
    }

    #[test]
    fn errors_name_the_component_attribute_and_place() {
        let cases = [
            (
                "loki.source.file \"f\" {\n  targets = []\n  forward_to = [loki.write.default.receiver]\n  bogus = 1\n}\n",
                "config:4:3: loki.source.file.f: unsupported attribute \"bogus\" (supported: targets, forward_to, encoding, tail_from_end, legacy_positions_file)",
            ),
            (
                "loki.process \"p\" {\n  forward_to = [loki.write.default.receiver]\n  stage.json {\n    expressions = { a = \"\" }\n    sourse = \"x\"\n  }\n}\n",
                "config:5:14: loki.process.p: stage.json: unknown field `sourse`, expected one of",
            ),
            (
                "loki.process \"p\" {\n  forward_to = [loki.write.default.receiver]\n  stage.geoip {\n  }\n}\n",
                "config:3:3: loki.process.p: stage.geoip: not supported yet by this shipper",
            ),
            (
                "loki.source.file \"f\" {\n  targets = []\n  forward_to = [loki.write.default.receiver]\n  encoding = \"klingon\"\n}\n",
                "config:4:14: loki.source.file.f: encoding: unknown encoding \"klingon\"",
            ),
            (
                "loki.source.kafka \"s\" {\n}\n",
                "config:1:1: loki.source.kafka: not supported yet by this shipper",
            ),
            (
                "loki.source.syslog \"s\" {\n  forward_to = [loki.write.default.receiver]\n}\n",
                "config:1:1: loki.source.syslog.s: no listener block: nothing would be received",
            ),
            (
                "loki.source.syslog \"s\" {\n  forward_to = [loki.write.default.receiver]\n  listener {\n    address = \"127.0.0.1:514\"\n    rfc3164_default_to_current_year = true\n  }\n}\n",
                "config:5:5: loki.source.syslog.s: listener: unsupported attribute \"rfc3164_default_to_current_year\"",
            ),
            (
                "loki.source.api \"a\" {\n  forward_to = [loki.write.default.receiver]\n}\n",
                "config:1:1: loki.source.api.a: needs an http block with listen_port",
            ),
            (
                "loki.relabel \"r\" {\n  forward_to = [loki.write.default.receiver]\n  max_cache_size = -1\n}\n",
                "config:3:20: loki.relabel.r: max_cache_size must not be negative",
            ),
            (
                "loki.source.file \"f\" {\n  targets = []\n  forward_to = [loki.relabel.r.receiver]\n}\nloki.relabel \"r\" {\n  forward_to = [loki.process.p.receiver, loki.echo.e.receiver]\n}\nloki.process \"p\" {\n  forward_to = [loki.relabel.r.receiver]\n}\nloki.echo \"e\" {\n}\n",
                "config:9:16: forward_to chains loop back on themselves",
            ),
            (
                "prometheus.scrape \"s\" {\n}\n",
                "config:1:1: unknown component \"prometheus.scrape\" (supported: ",
            ),
            (
                "loki.source.file \"f\" {\n  targets = []\n  forward_to = [loki.write.default.receiver]\n  tail_from_end = \"yes\"\n}\n",
                "config:4:19: loki.source.file.f: tail_from_end must be a bool, got string",
            ),
            (
                "loki.source.file \"f\" {\n  targets = []\n  forward_to = [loki.write.nope.receiver]\n}\n",
                "config:3:17: \"loki.write.nope.receiver\" is not a declared component's export",
            ),
            (
                "loki.write \"default\" {\n  endpoint {\n    url = \"http://b/x\"\n    oauth2 {\n      client_id = \"a\"\n      bogus = 1\n    }\n  }\n}\n",
                "config:6:7: loki.write.default: endpoint: oauth2: unsupported attribute \"bogus\"",
            ),
            (
                "loki.write \"default\" {\n  endpoint {\n    url = \"http://b/x\"\n    tls_config {\n      ca_pem = \"-----BEGIN CERTIFICATE-----\"\n    }\n  }\n}\n",
                "config:5:7: loki.write.default: endpoint: tls_config: ca_pem is not supported yet by this shipper; use ca_file",
            ),
            (
                "loki.write \"default\" {\n  endpoint {\n    url = \"http://b/x\"\n    queue_config {\n    }\n  }\n}\n",
                "config:4:5: loki.write.default: endpoint: queue_config is not supported yet by this shipper",
            ),
            (
                "loki.write \"default\" {\n  endpoint {\n    url = \"http://b/x\"\n  }\n  wal {\n    enabled = true\n  }\n}\n",
                "config:5:3: loki.write.default: wal is not supported yet by this shipper",
            ),
            ("local.file_match {\n}\n", "config:1:1: local.file_match: a component needs a label"),
            (
                "discovery.relabel \"a\" {\n  targets = discovery.relabel.a.output\n}\n",
                "config:2:13: targets refer to each other in a cycle",
            ),
            (
                "loki.source.file \"f\" {\n  targets = []\n  forward_to = [loki.process.p.receiver]\n}\nloki.process \"p\" {\n  forward_to = [loki.process.p.receiver]\n}\n",
                "config:6:16: forward_to chains loop back on themselves",
            ),
        ];
        for (src, want) in cases {
            let src = if src.contains("loki.write \"default\"") {
                src.to_string()
            } else {
                format!("{src}{WRITE}")
            };
            let got = load(&src).unwrap_err();
            assert!(got.starts_with(want), "got:  {got}\nwant: {want}");
        }
    }

    /// A graph promtail's model cannot hold (a loki.relabel in the chain, a
    /// loki.echo, a source reaching only one of two loki.write) runs as a
    /// component graph: each component once, sources forwarding into it.
    #[test]
    fn a_partial_fan_out_becomes_a_component_graph() {
        use crate::graph::NodeKind;
        let cfg = load(&format!(
            "loki.source.file \"a\" {{\n  targets = [{{ __path__ = \"/a.log\" }}]\n  forward_to = [loki.relabel.r.receiver, loki.write.second.receiver]\n}}\n\
             loki.source.file \"b\" {{\n  targets = [{{ __path__ = \"/b.log\" }}]\n  forward_to = [loki.process.p.receiver]\n}}\n\
             loki.relabel \"r\" {{\n  forward_to = [loki.process.p.receiver, loki.echo.e.receiver]\n  max_cache_size = 5\n  rule {{\n    target_label = \"via\"\n    replacement = \"r\"\n  }}\n}}\n\
             loki.process \"p\" {{\n  forward_to = [loki.write.default.receiver]\n  stage.static_labels {{\n    values = {{ p = \"yes\" }}\n  }}\n}}\n\
             loki.echo \"e\" {{\n}}\n\
             {WRITE}loki.write \"second\" {{\n  endpoint {{\n    url = \"http://b:3100/loki/api/v1/push\"\n  }}\n  endpoint {{\n    url = \"http://c:3100/loki/api/v1/push\"\n  }}\n  max_streams = 100\n}}\n"
        ))
        .unwrap();
        assert_eq!(cfg.clients.len(), 3);
        assert_eq!(cfg.limits_config.max_streams, 100);
        assert!(cfg
            .scrape_configs
            .iter()
            .all(|s| s.pipeline_stages.is_empty()));
        let g = cfg.graph.as_ref().expect("a graph");
        let ids: Vec<&str> = g.nodes.iter().map(|n| n.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "loki.write.default",
                "loki.process.p",
                "loki.echo.e",
                "loki.relabel.r",
                "loki.write.second"
            ]
        );
        assert!(matches!(&g.nodes[4].kind, NodeKind::Write(c) if c == &[1, 2]));
        assert!(
            matches!(&g.nodes[3].kind, NodeKind::Relabel { rules, max_cache_size: 5 } if rules.len() == 1)
        );
        assert_eq!(g.nodes[3].forward_to, [1, 2]);
        assert_eq!(g.sources["loki.source.file.a"], [3, 4]);
        assert_eq!(g.sources["loki.source.file.b"], [1]);
        assert_eq!(
            g.clients_reached("loki.source.file.a"),
            [0, 1, 2].into_iter().collect()
        );
        assert_eq!(
            g.clients_reached("loki.source.file.b"),
            [0].into_iter().collect()
        );
        cfg.check_all().unwrap();
        assert!(cfg
            .to_yaml()
            .contains("#   loki.relabel.r -> loki.process.p, loki.echo.e\n"));
    }

    #[test]
    fn receivers_map_onto_syslog_push_and_gelf_scrape_configs() {
        let cfg = load(&format!(
            "loki.relabel \"sys\" {{\n  forward_to = []\n  rule {{\n    source_labels = [\"__syslog_message_hostname\"]\n    target_label = \"host\"\n  }}\n}}\n\
             loki.source.syslog \"s\" {{\n  listener {{\n    address = \"127.0.0.1:51893\"\n    labels = {{ protocol = \"tcp\" }}\n  }}\n  listener {{\n    address = \"127.0.0.1:51898\"\n    protocol = \"udp\"\n    idle_timeout = \"60s\"\n    use_incoming_timestamp = true\n  }}\n  relabel_rules = loki.relabel.sys.rules\n  forward_to = [loki.write.default.receiver]\n}}\n\
             loki.source.api \"push\" {{\n  http {{\n    listen_address = \"0.0.0.0\"\n    listen_port = encoding.from_json(\"9999\")\n  }}\n  labels = {{ forwarded = \"true\" }}\n  forward_to = [loki.write.default.receiver]\n}}\n\
             loki.source.gelf \"g\" {{\n  listen_address = \"127.0.0.1:12201\"\n  forward_to = [loki.write.default.receiver]\n}}\n{WRITE}"
        ))
        .unwrap();
        assert!(cfg.graph.is_none(), "promtail's model holds it");
        let jobs: Vec<&str> = cfg
            .scrape_configs
            .iter()
            .map(|s| s.job_name.as_str())
            .collect();
        assert_eq!(
            jobs,
            [
                "loki.source.syslog.s/0",
                "loki.source.syslog.s/1",
                "loki.source.api.push",
                "loki.source.gelf.g"
            ]
        );
        let push = cfg.scrape_configs[2].loki_push_api.as_ref().unwrap();
        assert_eq!(
            (
                push.server.http_listen_address.as_str(),
                push.server.http_listen_port
            ),
            ("0.0.0.0", 9999)
        );
        assert_eq!(push.labels["forwarded"], "true");
        let gelf = cfg.scrape_configs[3].gelf.as_ref().unwrap();
        assert_eq!(gelf.labels["job"], "loki.source.gelf.g");
        let udp = cfg.scrape_configs[1].syslog.as_ref().unwrap();
        assert_eq!(
            (
                udp.listen_address.as_str(),
                udp.listen_protocol.as_str(),
                udp.idle_timeout.get().as_secs(),
                udp.use_incoming_timestamp
            ),
            ("127.0.0.1:51898", "udp", 60, true)
        );
        assert_eq!(
            cfg.scrape_configs[0].syslog.as_ref().unwrap().labels["protocol"],
            "tcp"
        );
        assert_eq!(cfg.scrape_configs[1].relabel_configs.len(), 1);
        cfg.check_all().unwrap();
    }

    /// Every prefix of a valid file is a clean error or a config, never a
    /// panic: what a half-written file gives.
    #[test]
    fn truncated_files_give_one_error() {
        let src =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/auth.alloy"))
                .unwrap();
        let mut errors = 0;
        for (i, _) in src.char_indices().step_by(7) {
            if load(&src[..i]).is_err() {
                errors += 1;
            }
        }
        assert!(errors > 0);
    }
}
