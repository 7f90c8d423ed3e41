//! node_exporter's include/exclude filter (`device_filter.go`), shared by
//! every collector with `--collector.<name>.*-include/-exclude` flags.

use anyhow::anyhow;
use regex::Regex;

use crate::cli::Flags;

/// node_exporter's device filter (`device_filter.go`): excluded if the
/// exclude regex matches, or if an include regex is set and does not match.
pub struct DeviceFilter {
    exclude: Option<Regex>,
    include: Option<Regex>,
}

impl DeviceFilter {
    /// Compiles the two flags' values; an empty value is "not set".
    pub fn new(
        exclude_flag: &str,
        exclude: &str,
        include_flag: &str,
        include: &str,
    ) -> anyhow::Result<Self> {
        let compile = |flag: &str, re: &str| -> anyhow::Result<Option<Regex>> {
            if re.is_empty() {
                return Ok(None);
            }
            Regex::new(re)
                .map(Some)
                .map_err(|e| anyhow!("--{flag}: invalid regular expression: {e}"))
        };
        Ok(DeviceFilter {
            exclude: compile(exclude_flag, exclude)?,
            include: compile(include_flag, include)?,
        })
    }

    pub fn ignored(&self, name: &str) -> bool {
        self.exclude.as_ref().is_some_and(|r| r.is_match(name))
            || self.include.as_ref().is_some_and(|r| !r.is_match(name))
    }
}

impl DeviceFilter {
    pub fn from_regexes(exclude: Option<Regex>, include: Option<Regex>) -> Self {
        DeviceFilter { exclude, include }
    }

    /// From a plain include/exclude flag pair (no defaults, no old names).
    pub fn from_flag_pair(
        f: &Flags,
        exclude_flag: &str,
        include_flag: &str,
    ) -> anyhow::Result<Self> {
        Ok(DeviceFilter {
            exclude: f.regex(exclude_flag)?,
            include: f.regex(include_flag)?,
        })
    }

    /// Whether a filter is set at all (lets hot loops skip building names).
    pub fn is_active(&self) -> bool {
        self.exclude.is_some() || self.include.is_some()
    }

    /// Builds the filter from an exclude flag with a default, its
    /// deprecated spelling and an include flag, with node_exporter's rules:
    /// the old flag stands in for an exclude left at its default, and an
    /// include replaces an exclude left at its default (node_exporter
    /// refuses that combination for diskstats, which is a known nuisance).
    pub fn from_flags(
        f: &Flags,
        exclude_flag: &str,
        default_exclude: &str,
        old_flag: &str,
        include_flag: &str,
    ) -> anyhow::Result<Self> {
        let mut exclude = f.string(exclude_flag);
        let include = f.string(include_flag);
        let old = f.string(old_flag);
        // The flag parser cannot tell "left at default" from "given"; a
        // value equal to the default is taken as not given.
        let exclude_given = exclude != default_exclude;
        if !old.is_empty() {
            if exclude_given {
                anyhow::bail!("--{old_flag} and --{exclude_flag} are mutually exclusive");
            }
            tracing::warn!(
                "--{old_flag} is DEPRECATED and will be removed in 2.0.0, use --{exclude_flag}"
            );
            exclude = old;
        } else if !include.is_empty() && !exclude_given {
            exclude.clear();
        }
        if !exclude.is_empty() && !include.is_empty() {
            anyhow::bail!("--{exclude_flag} and --{include_flag} are mutually exclusive");
        }
        DeviceFilter::new(exclude_flag, &exclude, include_flag, &include)
    }
}
