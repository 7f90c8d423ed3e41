//! node_exporter's command line, spelled as kingpin spells it: `--flag=value`
//! or `--flag value`, and booleans as `--flag` / `--no-flag` (the last one
//! given wins). Each collector module declares its own flags, like
//! node_exporter's collector files do; this module adds the global ones.

use std::time::Duration;

use clap::{Arg, ArgAction, ArgMatches, Command};
use regex::Regex;

use crate::collector::Paths;
use crate::collectors::pending::{OptionKind, PENDING_COLLECTORS, PENDING_OPTIONS};
use crate::collectors::{CollectorSpec, REGISTRY};

/// A boolean flag and its `--no-` twin.
pub fn bool_flag(name: &'static str, default: bool, help: &'static str) -> [Arg; 2] {
    let help = format!("{help} (default: {default})");
    [
        Arg::new(name)
            .long(name)
            .help(help)
            .action(ArgAction::SetTrue),
        Arg::new(format!("no-{name}"))
            .long(format!("no-{name}"))
            .hide(true)
            .action(ArgAction::SetTrue),
    ]
}

pub fn string_flag(name: &'static str, default: &'static str, help: &'static str) -> Arg {
    let mut a = Arg::new(name).long(name).help(help).action(ArgAction::Set);
    if !default.is_empty() {
        a = a.default_value(default);
    }
    a
}

/// A flag that may be given several times (`--web.listen-address`).
pub fn repeated_flag(name: &'static str, default: &'static str, help: &'static str) -> Arg {
    let mut a = Arg::new(name)
        .long(name)
        .help(help)
        .action(ArgAction::Append);
    if !default.is_empty() {
        a = a.default_value(default);
    }
    a
}

/// Parsed command line, handed to collector constructors.
pub struct Flags {
    matches: ArgMatches,
    pub paths: Paths,
}

impl Flags {
    /// `--name` / `--no-name`: whichever came last, else `default`.
    pub fn bool(&self, name: &str, default: bool) -> bool {
        let on = self.last_index(name);
        let off = self.last_index(&format!("no-{name}"));
        match (on, off) {
            (Some(a), Some(b)) => a > b,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => default,
        }
    }

    /// Whether the flag (or its `--no-` twin) is on the command line.
    pub fn given(&self, id: &str) -> bool {
        let on_cli = |id: &str| {
            self.matches.try_get_raw(id).ok().flatten().is_some()
                && self.matches.value_source(id) == Some(clap::parser::ValueSource::CommandLine)
        };
        on_cli(id) || on_cli(&format!("no-{id}"))
    }

    fn last_index(&self, id: &str) -> Option<usize> {
        if self.matches.get_flag(id) {
            self.matches.indices_of(id).and_then(|i| i.max())
        } else {
            None
        }
    }

    pub fn string(&self, name: &str) -> String {
        self.matches
            .get_one::<String>(name)
            .cloned()
            .unwrap_or_default()
    }

    pub fn strings(&self, name: &str) -> Vec<String> {
        self.matches
            .get_many::<String>(name)
            .map(|v| v.cloned().collect())
            .unwrap_or_default()
    }

    /// A regex flag; empty means "not set". Errors name the flag.
    pub fn regex(&self, name: &str) -> anyhow::Result<Option<Regex>> {
        let s = self.string(name);
        if s.is_empty() {
            return Ok(None);
        }
        Regex::new(&s)
            .map(Some)
            .map_err(|e| anyhow::anyhow!("--{name}: invalid regular expression: {e}"))
    }

    pub fn duration(&self, name: &str) -> anyhow::Result<Duration> {
        let s = self.string(name);
        parse_go_duration(&s).map_err(|e| anyhow::anyhow!("--{name}={s}: {e}"))
    }

    pub fn usize(&self, name: &str) -> anyhow::Result<usize> {
        let s = self.string(name);
        s.parse()
            .map_err(|_| anyhow::anyhow!("--{name}={s}: not a whole number"))
    }
}

pub use exporter_toolkit::duration::parse_go_duration;

pub fn command() -> Command {
    let mut cmd = Command::new("node-exporter")
        .about("Prometheus exporter for machine metrics, compatible with node_exporter")
        .version(env!("CARGO_PKG_VERSION"))
        // kingpin's long help, which node_exporter's --help points to.
        .arg(
            Arg::new("help-long")
                .long("help-long")
                .action(ArgAction::Help)
                .help("Print help (the same as --help)."),
        )
        // kingpin's man page, as node_exporter prints it (see `man_page`).
        .arg(
            Arg::new("help-man")
                .long("help-man")
                .action(ArgAction::SetTrue)
                .hide(true),
        )
        .arg(repeated_flag(
            "web.listen-address",
            ":9100",
            "Addresses on which to expose metrics and web interface. Repeatable.",
        ))
        .arg(string_flag(
            "web.telemetry-path",
            "/metrics",
            "Path under which to expose metrics.",
        ))
        .arg(string_flag(
            "web.config.file",
            "",
            "Path to a configuration file that can enable TLS or authentication (exporter-toolkit format).",
        ))
        .arg(string_flag(
            "web.max-requests",
            "40",
            "Maximum number of parallel scrape requests. Use 0 to disable.",
        ))
        .args(bool_flag(
            "web.systemd-socket",
            false,
            "Use systemd socket activation listeners (LISTEN_FDS) instead of port listeners.",
        ))
        .args(bool_flag(
            "web.disable-exporter-metrics",
            false,
            "Exclude metrics about the exporter itself (promhttp_*, process_*).",
        ))
        .arg(string_flag(
            "probe.config.file",
            "",
            "blackbox_exporter modules file; serves /probe?target=...&module=... (off without it).",
        ))
        .arg(string_flag("path.procfs", "/proc", "procfs mountpoint."))
        .arg(string_flag("path.sysfs", "/sys", "sysfs mountpoint."))
        .arg(string_flag("path.rootfs", "/", "rootfs mountpoint."))
        .arg(string_flag("path.udev.data", "/run/udev/data", "udev data path."))
        .args(bool_flag(
            "collector.disable-defaults",
            false,
            "Set all collectors to disabled by default.",
        ))
        .arg(string_flag(
            "collector.timeout",
            "9s",
            "Time budget of each collector in a scrape; a collector past it is reported failed and \
             the scrape answers anyway. Lowered to fit Prometheus' X-Prometheus-Scrape-Timeout-Seconds.",
        ))
        .arg(
            // Go-only knob in node_exporter's systemd units; accepted so
            // those units run unchanged.
            Arg::new("runtime.gomaxprocs")
                .long("runtime.gomaxprocs")
                .help("Accepted for node_exporter compatibility; no effect (there is no Go runtime here).")
                .action(ArgAction::Set),
        )
        .arg(string_flag(
            "log.level",
            "info",
            "Only log messages with the given severity or above. One of: [debug, info, warn, error]",
        ))
        .arg(string_flag(
            "log.format",
            "logfmt",
            "Output format of log messages. One of: [logfmt, json]",
        ));
    for spec in REGISTRY {
        let help: &'static str =
            Box::leak(format!("Enable the {} collector", spec.name).into_boxed_str());
        let flag: &'static str = Box::leak(format!("collector.{}", spec.name).into_boxed_str());
        cmd = cmd.args(bool_flag(flag, spec.default_enabled, help));
        cmd = cmd.args((spec.flags)());
    }
    add_pending_flags(cmd)
}

/// kingpin's `--help-man` page (troff, its `ManPageTemplate`): each flag
/// as `.TP`, `\fB--name=PLACEHOLDER\fR` (booleans bare), its help on the
/// next line, in `--help`'s order. The placeholder is the default, quoted
/// as Go's `%q` for single-valued string flags, or the flag's name
/// upper-cased.
pub fn man_page() -> String {
    let cmd = command();
    let mut out = format!(
        ".TH {name} 1 {version} \"\"\n.SH \"NAME\"\n{name}\n.SH \"SYNOPSIS\"\n.TP\n\\fB{name} [<flags>]\\fR\n\n.SH \"DESCRIPTION\"\n{about}\n.SH \"OPTIONS\"\n",
        name = cmd.get_name(),
        version = cmd.get_version().unwrap_or_default(),
        about = cmd.get_about().map(|a| a.to_string()).unwrap_or_default(),
    );
    out.push_str(".TP\n\\fB-h, --help\\fR\nShow context-sensitive help (also try --help-long and --help-man).\n");
    for arg in cmd.get_arguments().filter(|a| !a.is_hide_set()) {
        let Some(long) = arg.get_long() else { continue };
        if long == "help-long" {
            continue;
        }
        let value = match arg.get_action() {
            ArgAction::SetTrue => String::new(),
            action => {
                let defaults: Vec<String> = arg
                    .get_default_values()
                    .iter()
                    .map(|d| d.to_string_lossy().into_owned())
                    .collect();
                // kingpin quotes string defaults only: not lists, nor
                // enums (whose help lists the choices).
                let enumeration = arg
                    .get_help()
                    .is_some_and(|h| h.to_string().contains("One of: ["));
                match defaults.first() {
                    None => format!("={}", long.to_uppercase()),
                    Some(d) if matches!(action, ArgAction::Append) || enumeration => {
                        format!("={d}")
                    }
                    Some(d) => format!("={d:?}"),
                }
            }
        };
        let help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
        out.push_str(&format!(".TP\n\\fB--{long}{value}\\fR\n{help}\n"));
    }
    out.push_str(".TP\n\\fB--version\\fR\nShow application version.\n");
    out
}

fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

/// The flags of node_exporter's collectors and options we do not have yet
/// (see `collectors::pending`), unless a registered collector declares them.
fn add_pending_flags(mut cmd: Command) -> Command {
    let declared = |cmd: &Command, id: &str| cmd.get_arguments().any(|a| a.get_id() == id);
    for p in PENDING_COLLECTORS {
        let flag = leak(format!("collector.{}", p.name));
        if declared(&cmd, flag) {
            continue;
        }
        let help = leak(format!(
            "Enable the {} collector (not implemented yet: enabling it is an error)",
            p.name
        ));
        cmd = cmd.args(bool_flag(flag, p.default_enabled, help));
    }
    // A registered collector declares its own options; one it lacks is then
    // an unknown flag (and the --help test names it), never a silent no-op.
    let options = PENDING_COLLECTORS
        .iter()
        .filter(|p| !REGISTRY.iter().any(|s| s.name == p.name))
        .flat_map(|p| p.options.iter().map(|(o, k)| (*o, *k)))
        .chain(PENDING_OPTIONS.iter().map(|(_, o, k)| (*o, *k)));
    for (option, kind) in options {
        if declared(&cmd, option) {
            continue;
        }
        let help = "Not implemented yet: giving it while its collector is enabled is an error.";
        cmd = match kind {
            OptionKind::Bool => cmd.args(bool_flag(option, false, help)),
            OptionKind::Value => cmd.arg(string_flag(option, "", help)),
            OptionKind::Repeated => cmd.arg(repeated_flag(option, "", help)),
        };
    }
    cmd
}

/// Accepts kingpin's single-dash long flags (`-web.listen-address`) too.
fn normalize_args(args: impl IntoIterator<Item = String>) -> Vec<String> {
    args.into_iter()
        .enumerate()
        .map(|(i, a)| {
            if i > 0 && a.starts_with('-') && !a.starts_with("--") && a.len() > 2 && a.contains('.')
            {
                format!("-{a}")
            } else {
                a
            }
        })
        .collect()
}

pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Flags, clap::Error> {
    let matches = command().try_get_matches_from(normalize_args(args))?;
    let mut flags = Flags {
        matches,
        paths: Paths::default(),
    };
    flags.paths = Paths {
        procfs: flags.string("path.procfs").into(),
        sysfs: flags.string("path.sysfs").into(),
        rootfs: flags.string("path.rootfs").into(),
        udev_data: flags.string("path.udev.data").into(),
    };
    Ok(flags)
}

fn disable_defaults(flags: &Flags) -> bool {
    flags.bool("collector.disable-defaults", false)
}

/// Refuses a command line that enables a collector, or sets an option of an
/// enabled collector, that this exporter does not implement yet. Returns the
/// collectors node_exporter would run by default that are missing here, for
/// the startup log.
pub fn check_not_implemented(flags: &Flags) -> anyhow::Result<Vec<&'static str>> {
    let registered = |name: &str| REGISTRY.iter().any(|s| s.name == name);
    let option_given = |option: &str, kind: OptionKind| match kind {
        OptionKind::Bool => flags.bool(option, false),
        OptionKind::Value | OptionKind::Repeated => flags.given(option),
    };
    let mut skipped = Vec::new();
    for p in PENDING_COLLECTORS.iter().filter(|p| !registered(p.name)) {
        let flag = format!("collector.{}", p.name);
        let default = p.default_enabled && !disable_defaults(flags);
        if !flags.bool(&flag, default) {
            continue;
        }
        if flags.given(&flag) {
            anyhow::bail!("--{flag}: the {} collector is not implemented yet", p.name);
        }
        for (option, kind) in p.options {
            if option_given(option, *kind) {
                anyhow::bail!(
                    "--{option}: the {} collector is not implemented yet \
                     (it is on by default in node_exporter; --no-{flag} turns it off)",
                    p.name
                );
            }
        }
        skipped.push(p.name);
    }
    let enabled = enabled_collectors(flags);
    for (collector, option, kind) in PENDING_OPTIONS {
        let declared_by_collector = REGISTRY
            .iter()
            .any(|s| (s.flags)().iter().any(|a| a.get_id() == *option));
        if declared_by_collector || !enabled.iter().any(|s| s.name == *collector) {
            continue;
        }
        if option_given(option, *kind) {
            anyhow::bail!("--{option}: not implemented yet in the {collector} collector");
        }
    }
    Ok(skipped)
}

/// The collectors this command line enables, in registry order.
pub fn enabled_collectors(flags: &Flags) -> Vec<&'static CollectorSpec> {
    let disable_defaults = disable_defaults(flags);
    REGISTRY
        .iter()
        .filter(|spec| {
            let default = spec.default_enabled && !disable_defaults;
            flags.bool(&format!("collector.{}", spec.name), default)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_args(a: &[&str]) -> Flags {
        parse(
            std::iter::once("node-exporter")
                .chain(a.iter().copied())
                .map(String::from),
        )
        .unwrap()
    }

    fn names(f: &Flags) -> Vec<&'static str> {
        enabled_collectors(f).iter().map(|s| s.name).collect()
    }

    #[test]
    fn last_of_flag_and_no_flag_wins() {
        let f = parse_args(&["--no-collector.cpu", "--collector.cpu"]);
        assert!(names(&f).contains(&"cpu"));
        let f = parse_args(&["--collector.cpu", "--no-collector.cpu"]);
        assert!(!names(&f).contains(&"cpu"));
    }

    #[test]
    fn disable_defaults_keeps_only_named_collectors() {
        let f = parse_args(&["--collector.disable-defaults", "--collector.meminfo"]);
        assert_eq!(names(&f), vec!["meminfo"]);
    }

    #[test]
    fn single_dash_and_equals_forms_work() {
        let f = parse_args(&["-web.listen-address=127.0.0.1:9999", "--path.procfs", "/x"]);
        assert_eq!(f.strings("web.listen-address"), vec!["127.0.0.1:9999"]);
        assert_eq!(f.paths.procfs, std::path::PathBuf::from("/x"));
    }

    #[test]
    fn unknown_flag_is_an_error() {
        assert!(parse(["node-exporter", "--collector.nosuch"].map(String::from)).is_err());
    }
}
