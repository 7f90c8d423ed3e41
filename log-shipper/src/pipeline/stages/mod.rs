//! The stage registry: every stage module declares its key in
//! `pipeline_stages`, its settings and its constructor ([`StageSpec`]), and
//! is listed in [`each_stage`] once. Everything that needs the stages' names
//! (parsing `pipeline_stages`, the "unknown variant" error listing the known
//! ones, printing the config back, building pipelines) goes through it.
//! Configs validate what they can while the YAML is read (regexes, JMESPath,
//! selectors), so those errors carry a line number.

pub mod cri;
pub mod decolorize;
pub mod docker;
pub mod drop;
pub mod json;
pub mod labels;
pub mod limit;
pub mod logfmt;
pub mod matcher;
pub mod metrics;
pub mod multiline;
pub mod output;
pub mod pack;
pub mod regex;
pub mod replace;
pub mod sampling;
pub mod structured_metadata;
pub mod template;
pub mod tenant;
pub mod timestamp;

use std::convert::Infallible;
use std::fmt;
use std::marker::PhantomData;
use std::ops::ControlFlow;
use std::sync::{Arc, OnceLock};

use serde::de::{self, DeserializeOwned, DeserializeSeed, Deserializer, MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize, Serializer};

use super::Stage;
use crate::config::Opaque;

/// The registry: every stage the shipper runs, one line each; the
/// "unknown variant" error lists them in this order.
///
/// A function over a visitor, not a slice of fn pointers as node-exporter's
/// `REGISTRY`: a stage's settings are read by the YAML reader's own
/// deserializer, which is generic (it is what puts line and column in
/// errors), and a fn pointer in a slice could only take a type-erased one.
pub fn each_stage<V: StageVisitor>(v: &mut V) -> ControlFlow<V::Found> {
    v.visit::<regex::RegexStage>()?;
    v.visit::<json::JsonStage>()?;
    v.visit::<logfmt::LogfmtStage>()?;
    v.visit::<labels::LabelsStage>()?;
    v.visit::<labels::StaticLabelsStage>()?;
    v.visit::<labels::LabelDropStage>()?;
    v.visit::<labels::LabelAllowStage>()?;
    v.visit::<timestamp::TimestampStage>()?;
    v.visit::<output::OutputStage>()?;
    v.visit::<drop::DropStage>()?;
    v.visit::<matcher::MatchStage>()?;
    v.visit::<docker::DockerStage>()?;
    v.visit::<cri::CriStage>()?;
    v.visit::<multiline::MultilineStage>()?;
    v.visit::<replace::ReplaceStage>()?;
    v.visit::<template::TemplateStage>()?;
    v.visit::<metrics::MetricsStage>()?;
    v.visit::<limit::LimitStage>()?;
    v.visit::<tenant::TenantStage>()?;
    v.visit::<structured_metadata::StructuredMetadataStage>()?;
    v.visit::<structured_metadata::NonIndexedLabelsStage>()?;
    v.visit::<pack::PackStage>()?;
    v.visit::<decolorize::DecolorizeStage>()?;
    v.visit::<sampling::SamplingStage>()?;
    ControlFlow::Continue(())
}

/// What a parsing stage reads: the line, or the extracted value `source`
/// names, copied into `buf` (the stage then sets extracted values); `None`
/// when that value is absent or null, and the entry is left as it is.
pub(crate) fn source_text<'a>(
    source: Option<&str>,
    line: &'a str,
    x: &crate::pipeline::Extracted,
    buf: &'a mut String,
) -> Option<&'a str> {
    let Some(src) = source else {
        return Some(line);
    };
    let v = x.get_str(src)?;
    buf.clear();
    buf.push_str(v);
    Some(buf)
}

/// promtail's stages that load and print back but do not run yet (issue 6):
/// a pipeline using one does not build, and says so.
pub const NOT_YET_SUPPORTED: &[&str] = &["geoip", "eventlogmessage", "luhn"];

/// A pipeline stage as its module declares it for [`each_stage`].
pub trait StageSpec: Stage + Sized + 'static {
    /// The stage's key in `pipeline_stages`, as promtail spells it.
    const NAME: &'static str;
    /// The smallest settings the stage accepts, in YAML flow style: the
    /// registry's test loads, builds and prints back every stage with it.
    const EXAMPLE: &'static str;
    /// What is written under the stage's key.
    type Config: DeserializeOwned + Serialize + fmt::Debug + Send + Sync + 'static;

    /// Reads the settings (override to accept more than `Config` does).
    fn parse<'de, D: Deserializer<'de>>(d: D) -> Result<Self::Config, D::Error> {
        <Self::Config as Deserialize>::deserialize(d)
    }

    /// Checks what reading the settings could not and makes the stage.
    fn new(config: &Self::Config) -> Result<Self, String>;
}

/// For [`StageSpec::parse`]: a key with nothing after it (`- docker:`)
/// means the default settings, as in promtail.
pub fn null_as_default<'de, C, D>(d: D) -> Result<C, D::Error>
where
    C: Deserialize<'de> + Default,
    D: Deserializer<'de>,
{
    Ok(Option::<C>::deserialize(d)?.unwrap_or_default())
}

/// Something done with each stage of [`each_stage`], in order, until
/// `visit` breaks with what it was looking for.
pub trait StageVisitor {
    type Found;
    fn visit<S: StageSpec>(&mut self) -> ControlFlow<Self::Found>;
}

/// A registered stage, without its types: for lists and messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StageInfo {
    pub name: &'static str,
    pub example: &'static str,
}

/// The stages of [`each_stage`], in its order.
pub fn registered() -> &'static [StageInfo] {
    struct Collect(Vec<StageInfo>);
    impl StageVisitor for Collect {
        type Found = Infallible;
        fn visit<S: StageSpec>(&mut self) -> ControlFlow<Infallible> {
            self.0.push(StageInfo {
                name: S::NAME,
                example: S::EXAMPLE,
            });
            ControlFlow::Continue(())
        }
    }
    static ALL: OnceLock<Vec<StageInfo>> = OnceLock::new();
    ALL.get_or_init(|| {
        let mut all = Collect(Vec::new());
        let ControlFlow::Continue(()) = each_stage(&mut all);
        all.0
    })
}

/// Every key `pipeline_stages` accepts: the registry's, then those not run
/// yet. `'static` because serde's "unknown variant" error wants it so.
fn accepted_names() -> &'static [&'static str] {
    static NAMES: OnceLock<Vec<&'static str>> = OnceLock::new();
    NAMES.get_or_init(|| {
        let registry = registered().iter().map(|s| s.name);
        registry.chain(NOT_YET_SUPPORTED.iter().copied()).collect()
    })
}

/// One `pipeline_stages` item: a map with exactly one key, the stage's
/// name, and its settings, already read and checked as far as reading goes.
#[derive(Clone)]
pub struct StageConfig {
    kind: &'static str,
    settings: Arc<dyn Settings>,
}

impl StageConfig {
    /// The stage's name (`regex`, `match`, ...).
    pub fn kind(&self) -> &'static str {
        self.kind
    }

    /// The running stage; an error says what is wrong with the settings.
    pub fn build(&self) -> Result<Box<dyn Stage>, String> {
        self.settings.build()
    }
}

impl fmt::Debug for StageConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entry(&self.kind, &self.settings).finish()
    }
}

/// A stage's settings, whichever stage: what a config needs of them.
trait Settings: fmt::Debug + Send + Sync {
    fn build(&self) -> Result<Box<dyn Stage>, String>;
    /// For printing the config back (`-print-config-stderr`).
    fn to_yaml(&self) -> Result<Opaque, serde_yaml_ng::Error>;
}

struct Parsed<S: StageSpec>(S::Config);

impl<S: StageSpec> fmt::Debug for Parsed<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl<S: StageSpec> Settings for Parsed<S> {
    fn build(&self) -> Result<Box<dyn Stage>, String> {
        Ok(Box::new(S::new(&self.0)?))
    }

    fn to_yaml(&self) -> Result<Opaque, serde_yaml_ng::Error> {
        serde_yaml_ng::to_value(&self.0)
    }
}

/// The settings of a stage in [`NOT_YET_SUPPORTED`], kept as written.
#[derive(Debug)]
struct NotYet {
    kind: &'static str,
    config: Opaque,
}

impl Settings for NotYet {
    fn build(&self) -> Result<Box<dyn Stage>, String> {
        Err(format!("the {} stage is not supported yet", self.kind))
    }

    fn to_yaml(&self) -> Result<Opaque, serde_yaml_ng::Error> {
        Ok(self.config.clone())
    }
}

/// Reads the settings of the stage named `kind`: the next value of `map`.
struct ParseNamed<'a, 'de, A> {
    kind: &'a str,
    map: &'a mut A,
    de: PhantomData<&'de ()>,
}

impl<'de, A: MapAccess<'de>> StageVisitor for ParseNamed<'_, 'de, A> {
    type Found = Result<StageConfig, A::Error>;

    fn visit<S: StageSpec>(&mut self) -> ControlFlow<Self::Found> {
        if self.kind != S::NAME {
            return ControlFlow::Continue(());
        }
        let parsed = self.map.next_value_seed(SettingsOf::<S>(PhantomData));
        ControlFlow::Break(parsed.map(|c| StageConfig {
            kind: S::NAME,
            settings: Arc::new(Parsed::<S>(c)),
        }))
    }
}

struct SettingsOf<S>(PhantomData<S>);

impl<'de, S: StageSpec> DeserializeSeed<'de> for SettingsOf<S> {
    type Value = S::Config;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<S::Config, D::Error> {
        S::parse(d)
    }
}

impl<'de> Deserialize<'de> for StageConfig {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = StageConfig;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a pipeline stage: a map with one key, the stage type (regex, json, labels, ...)")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<StageConfig, A::Error> {
                let Some(kind) = map.next_key::<String>()? else {
                    return Err(de::Error::custom("empty pipeline stage"));
                };
                let mut parse = ParseNamed {
                    kind: &kind,
                    map: &mut map,
                    de: PhantomData,
                };
                let stage = match each_stage(&mut parse) {
                    ControlFlow::Break(parsed) => parsed?,
                    ControlFlow::Continue(()) => {
                        let Some(&name) = NOT_YET_SUPPORTED.iter().find(|n| **n == kind) else {
                            return Err(de::Error::unknown_variant(&kind, accepted_names()));
                        };
                        StageConfig {
                            kind: name,
                            settings: Arc::new(NotYet {
                                kind: name,
                                config: map.next_value()?,
                            }),
                        }
                    }
                };
                if let Some(extra) = map.next_key::<String>()? {
                    return Err(de::Error::custom(format!(
                        "pipeline stage must contain only one key, found `{kind}` and `{extra}` (start a new list item with `-`)"
                    )));
                }
                Ok(stage)
            }
        }
        d.deserialize_map(V)
    }
}

impl Serialize for StageConfig {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let settings = self.settings.to_yaml().map_err(serde::ser::Error::custom)?;
        let mut m = s.serialize_map(Some(1))?;
        m.serialize_entry(self.kind, &settings)?;
        m.end()
    }
}

/// A Go-syntax regex, compiled when the config is read (unanchored, as
/// promtail's stages use `FindStringSubmatch`).
#[derive(Clone)]
pub struct GoRegex {
    pub source: String,
    pub re: ::regex::Regex,
}

impl fmt::Debug for GoRegex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.source)
    }
}

impl GoRegex {
    pub fn new(source: &str) -> Result<GoRegex, String> {
        ::regex::Regex::new(&crate::relabel::go_regex_syntax(source))
            .map(|re| GoRegex {
                source: source.to_string(),
                re,
            })
            .map_err(|e| format!("invalid regular expression {source:?}: {e}"))
    }
}

impl<'de> Deserialize<'de> for GoRegex {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        GoRegex::new(&s).map_err(de::Error::custom)
    }
}

impl Serialize for GoRegex {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.source)
    }
}

/// A string or a list of strings (promtail accepts both for `source`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    pub fn to_vec(&self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s.clone()],
            OneOrMany::Many(v) => v.clone(),
        }
    }
}

pub(crate) use crate::relabel::valid_label_name;

/// (group index, name) of a regex's named groups.
pub(crate) fn named_groups(re: &::regex::Regex) -> Vec<(usize, String)> {
    re.capture_names()
        .enumerate()
        .filter_map(|(i, n)| n.map(|n| (i, n.to_string())))
        .collect()
}

#[cfg(test)]
pub(crate) mod testutil {
    use crate::entry::{Entry, LabelSet};
    use crate::pipeline::{Pipeline, StageConfig};

    pub fn pipeline(yaml: &str) -> Pipeline {
        let stages: Vec<StageConfig> = serde_yaml_ng::from_str(yaml).unwrap();
        Pipeline::new(&stages, "test").unwrap()
    }

    pub fn build_err(yaml: &str) -> String {
        match serde_yaml_ng::from_str::<Vec<StageConfig>>(yaml) {
            Err(e) => e.to_string(),
            Ok(stages) => Pipeline::new(&stages, "test").unwrap_err().to_string(),
        }
    }

    /// Runs one line; `None` when dropped.
    pub fn run(p: &mut Pipeline, labels: LabelSet, line: &str) -> Option<Entry> {
        let mut out = Vec::new();
        p.process(Entry::new(labels, line.to_string()), &mut out);
        out.pop()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::testutil::{build_err, pipeline};
    use super::*;

    #[test]
    fn every_registered_stage_loads_builds_and_prints_back() {
        let mut seen = HashSet::new();
        for StageInfo { name, example } in registered() {
            assert!(seen.insert(*name), "two stages are named {name}");
            assert!(!NOT_YET_SUPPORTED.contains(name), "{name} runs");
            let yaml = format!("- {name}: {example}\n");
            let parsed: Vec<StageConfig> =
                serde_yaml_ng::from_str(&yaml).unwrap_or_else(|e| panic!("{yaml}: {e}"));
            assert_eq!(parsed[0].kind(), *name);
            crate::pipeline::Pipeline::new(&parsed, "registry")
                .unwrap_or_else(|e| panic!("{yaml}: {e}"));
            // What -print-config-stderr prints loads again, to the same.
            let printed = serde_yaml_ng::to_string(&parsed).unwrap();
            assert!(printed.starts_with(&format!("- {name}:")), "{printed}");
            let again: Vec<StageConfig> =
                serde_yaml_ng::from_str(&printed).unwrap_or_else(|e| panic!("{printed}: {e}"));
            assert_eq!(serde_yaml_ng::to_string(&again).unwrap(), printed);
        }
    }

    #[test]
    fn an_unknown_stage_is_refused_listing_every_known_one() {
        let e = build_err("- static_labels: {a: b}\n- regexp:\n    expression: x\n");
        let known: Vec<String> = registered()
            .iter()
            .map(|s| s.name)
            .chain(NOT_YET_SUPPORTED.iter().copied())
            .map(|n| format!("`{n}`"))
            .collect();
        let expected = format!(
            "[1]: unknown variant `regexp`, expected one of {} at line 2 column 3",
            known.join(", ")
        );
        assert!(e.ends_with(&expected), "{e}\nwanted: {expected}");
    }

    #[test]
    fn a_stage_not_run_yet_loads_and_prints_back_but_does_not_build() {
        let yaml = "- geoip:\n    db: /etc/GeoLite2-City.mmdb\n    source: ip\n";
        let parsed: Vec<StageConfig> = serde_yaml_ng::from_str(yaml).unwrap();
        assert_eq!(parsed[0].kind(), "geoip");
        assert_eq!(serde_yaml_ng::to_string(&parsed).unwrap(), yaml);
        let e = build_err(yaml);
        assert!(
            e.contains("pipeline_stages[0].geoip: the geoip stage is not supported yet"),
            "{e}"
        );
    }

    #[test]
    fn a_nested_stage_is_parsed_by_the_registry_too() {
        let e = build_err("- match:\n    selector: '{job=\"a\"}'\n    stages:\n      - luhn: {}\n");
        assert!(
            e.contains(
                "pipeline_stages[0].match: stages[0].luhn: the luhn stage is not supported yet"
            ),
            "{e}"
        );
        let mut p = pipeline(
            "- match:\n    selector: '{job=\"a\"}'\n    stages:\n      - static_labels: {env: prod}\n",
        );
        let e = testutil::run(&mut p, crate::relabel::labels([("job", "a")]), "l").unwrap();
        assert_eq!(e.labels["env"], "prod");
    }

    /// The README's list of stages is the registry's: a user reading it
    /// finds every stage, and no stage that is not there.
    #[test]
    fn readme_lists_the_registered_stages() {
        let readme = include_str!("../../../../README.md");
        let bullet = "- Stages, with promtail's semantics:";
        let start = readme.find(bullet).expect("README has the stages bullet") + bullet.len();
        let text = &readme[start..];
        let text = &text[..text.find(';').expect("the list ends with ';'")];
        let mut listed: Vec<&str> = text
            .split(',')
            .map(|item| item.split('(').next().unwrap_or("").trim())
            .collect();
        let mut names: Vec<&str> = registered().iter().map(|s| s.name).collect();
        listed.sort_unstable();
        names.sort_unstable();
        assert_eq!(listed, names);
    }
}
