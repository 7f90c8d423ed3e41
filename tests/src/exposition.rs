//! A small reader of the Prometheus text format (0.0.4): enough to compare
//! two exporters family by family. It is deliberately independent of our
//! exporter's own encoder, so a shared bug cannot hide.

use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, Clone)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

#[derive(Debug, Clone)]
pub struct Family {
    pub name: String,
    /// `counter`, `gauge`, `summary`, `histogram` or `untyped`.
    pub kind: String,
    pub samples: Vec<Sample>,
}

impl Family {
    /// Every label name any sample of the family carries.
    pub fn label_names(&self) -> BTreeSet<String> {
        self.samples
            .iter()
            .flat_map(|s| s.labels.keys().cloned())
            .collect()
    }

    /// The distinct values of one label.
    pub fn label_values(&self, label: &str) -> BTreeSet<String> {
        self.samples
            .iter()
            .filter_map(|s| s.labels.get(label).cloned())
            .collect()
    }
}

/// One scrape, by family name.
#[derive(Debug, Clone, Default)]
pub struct Exposition {
    pub families: BTreeMap<String, Family>,
}

impl Exposition {
    pub fn parse(text: &str) -> Result<Exposition, String> {
        let mut families: BTreeMap<String, Family> = BTreeMap::new();
        // The family the last HELP/TYPE line opened; its samples follow it.
        let mut current: Option<String> = None;
        for (i, line) in text.lines().enumerate() {
            let at = |msg: &str| format!("line {}: {msg}: {line:?}", i + 1);
            let line = line.trim_end();
            if line.is_empty() {
                continue;
            }
            if let Some(rest) = line.strip_prefix('#') {
                let mut words = rest.trim_start().splitn(3, ' ');
                let (keyword, name) = (words.next().unwrap_or(""), words.next());
                if keyword != "HELP" && keyword != "TYPE" {
                    continue; // a plain comment
                }
                let name = name.ok_or_else(|| at("HELP/TYPE without a metric name"))?;
                let family = families.entry(name.to_string()).or_insert_with(|| Family {
                    name: name.to_string(),
                    kind: "untyped".into(),
                    samples: Vec::new(),
                });
                if keyword == "TYPE" {
                    family.kind = words.next().unwrap_or("").trim().to_string();
                }
                current = Some(name.to_string());
                continue;
            }
            let sample = parse_sample(line).map_err(|e| at(&e))?;
            let owner = match &current {
                Some(f) if belongs_to(&sample.name, f, &families[f].kind) => f.clone(),
                _ => sample.name.clone(),
            };
            families
                .entry(owner.clone())
                .or_insert_with(|| Family {
                    name: owner,
                    kind: "untyped".into(),
                    samples: Vec::new(),
                })
                .samples
                .push(sample);
        }
        Ok(Exposition { families })
    }

    pub fn family(&self, name: &str) -> Option<&Family> {
        self.families.get(name)
    }
}

fn belongs_to(sample: &str, family: &str, kind: &str) -> bool {
    if sample == family {
        return true;
    }
    let suffixes: &[&str] = match kind {
        "histogram" => &["_bucket", "_sum", "_count"],
        "summary" => &["_sum", "_count"],
        _ => &[],
    };
    suffixes
        .iter()
        .any(|s| sample.strip_suffix(s) == Some(family))
}

/// `name{a="b",c="d"} value [timestamp]`
fn parse_sample(line: &str) -> Result<Sample, String> {
    let name_end = line
        .find(['{', ' '])
        .ok_or("no value after the metric name")?;
    let name = &line[..name_end];
    if name.is_empty() {
        return Err("empty metric name".into());
    }
    let mut labels = BTreeMap::new();
    let mut rest = &line[name_end..];
    if let Some(r) = rest.strip_prefix('{') {
        rest = parse_labels(r, &mut labels)?;
    }
    let mut fields = rest.split_whitespace();
    let value = fields.next().ok_or("no value")?;
    let value: f64 = value
        .parse()
        .map_err(|_| format!("value {value:?} is not a number"))?;
    if let Some(ts) = fields.next() {
        ts.parse::<i64>()
            .map_err(|_| format!("timestamp {ts:?} is not an integer"))?;
    }
    if fields.next().is_some() {
        return Err("trailing fields after the timestamp".into());
    }
    Ok(Sample {
        name: name.to_string(),
        labels,
        value,
    })
}

/// Reads `a="b",c="d"}` and returns what follows the closing brace.
fn parse_labels<'a>(
    mut s: &'a str,
    labels: &mut BTreeMap<String, String>,
) -> Result<&'a str, String> {
    loop {
        s = s.trim_start();
        if let Some(rest) = s.strip_prefix('}') {
            return Ok(rest);
        }
        let eq = s.find('=').ok_or("label without '='")?;
        let name = s[..eq].trim().to_string();
        s = s[eq + 1..]
            .trim_start()
            .strip_prefix('"')
            .ok_or("label value is not quoted")?;
        let mut value = String::new();
        let mut chars = s.char_indices();
        let end = loop {
            match chars.next() {
                Some((i, '"')) => break i,
                Some((_, '\\')) => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, c)) => value.push(c),
                    None => return Err("unterminated escape".into()),
                },
                Some((_, c)) => value.push(c),
                None => return Err(format!("unterminated value of label {name}")),
            }
        };
        if labels.insert(name.clone(), value).is_some() {
            return Err(format!("label {name} given twice"));
        }
        s = s[end + 1..].trim_start();
        s = s.strip_prefix(',').unwrap_or(s);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_families_labels_and_escapes() {
        let text = "# HELP node_cpu_seconds_total Seconds.\n\
                    # TYPE node_cpu_seconds_total counter\n\
                    node_cpu_seconds_total{cpu=\"0\",mode=\"idle\"} 12.5\n\
                    node_cpu_seconds_total{cpu=\"1\",mode=\"idle\",} 1e3 1700000000000\n\
                    # TYPE h histogram\n\
                    h_bucket{le=\"+Inf\"} 3\n\
                    h_sum 1\n\
                    h_count 3\n\
                    stray{path=\"a\\\"b\\\\c\\nd\"} NaN\n";
        let e = Exposition::parse(text).unwrap();
        let cpu = e.family("node_cpu_seconds_total").unwrap();
        assert_eq!(cpu.kind, "counter");
        assert_eq!(cpu.samples.len(), 2);
        assert_eq!(cpu.samples[1].value, 1000.0);
        assert_eq!(cpu.label_values("cpu").len(), 2);
        assert_eq!(e.family("h").unwrap().samples.len(), 3);
        let stray = e.family("stray").unwrap();
        assert_eq!(stray.kind, "untyped");
        assert_eq!(stray.samples[0].labels["path"], "a\"b\\c\nd");
        assert!(stray.samples[0].value.is_nan());
    }

    #[test]
    fn rejects_broken_lines() {
        assert!(Exposition::parse("x{a=\"1\" 1\n").is_err());
        assert!(Exposition::parse("x one\n").is_err());
        assert!(Exposition::parse("x{a=1} 1\n").is_err());
    }
}
