//! `node_systemd_*`: unit states, start times, restarts, sockets, timers and
//! the manager's state, read from systemd over the D-Bus system bus (zbus,
//! blocking API), as node_exporter's systemd collector. Off by default. No
//! reachable bus is a collector error naming the bus, never a scrape failure.

use anyhow::Context as _;
use exporter_toolkit::exposition::MetricSet;
use regex::Regex;
use zbus::blocking::{Connection, Proxy};
use zbus::zvariant::OwnedObjectPath;

use super::CollectorSpec;
use crate::cli::{bool_flag, string_flag};
use crate::collector::Collector;

const UNIT_INCLUDE: &str = "collector.systemd.unit-include";
const UNIT_EXCLUDE: &str = "collector.systemd.unit-exclude";
const OLD_UNIT_INCLUDE: &str = "collector.systemd.unit-whitelist";
const OLD_UNIT_EXCLUDE: &str = "collector.systemd.unit-blacklist";
const TASKS: &str = "collector.systemd.enable-task-metrics";
const RESTARTS: &str = "collector.systemd.enable-restarts-metrics";
const START_TIME: &str = "collector.systemd.enable-start-time-metrics";
const PRIVATE: &str = "collector.systemd.private";

pub const SPEC: CollectorSpec = CollectorSpec {
    name: "systemd",
    default_enabled: false,
    flags: || {
        let mut v = vec![
            string_flag(
                UNIT_INCLUDE,
                ".+",
                "Regexp of systemd units to include. Units must both match include and not match exclude to be included.",
            ),
            string_flag(
                UNIT_EXCLUDE,
                r".+\.(automount|device|mount|scope|slice)",
                "Regexp of systemd units to exclude. Units must both match include and not match exclude to be included.",
            ),
            string_flag(OLD_UNIT_INCLUDE, "", "DEPRECATED: Use --collector.systemd.unit-include").hide(true),
            string_flag(OLD_UNIT_EXCLUDE, "", "DEPRECATED: Use --collector.systemd.unit-exclude").hide(true),
        ];
        v.extend(bool_flag(
            TASKS,
            false,
            "Enables service unit tasks metrics unit_tasks_current and unit_tasks_max",
        ));
        v.extend(bool_flag(
            RESTARTS,
            false,
            "Enables service unit metric service_restart_total",
        ));
        v.extend(bool_flag(
            START_TIME,
            false,
            "Enables service unit metric unit_start_time_seconds",
        ));
        v.extend(bool_flag(
            PRIVATE,
            false,
            "Connect to systemd's private socket instead of D-Bus (not implemented yet: giving it is an error).",
        ));
        v
    },
    build: |f| {
        if f.bool(PRIVATE, false) {
            anyhow::bail!("--{PRIVATE}: not implemented yet; the collector uses the system bus");
        }
        let pattern = |new: &str, old: &str| -> anyhow::Result<Regex> {
            let value = match (f.given(new), f.string(old)) {
                (true, o) if !o.is_empty() => {
                    anyhow::bail!("--{old} and --{new} are mutually exclusive")
                }
                (false, o) if !o.is_empty() => o,
                _ => f.string(new),
            };
            Regex::new(&format!("^(?:{value})$"))
                .map_err(|e| anyhow::anyhow!("--{new}: invalid regular expression: {e}"))
        };
        Ok(Box::new(Systemd {
            include: pattern(UNIT_INCLUDE, OLD_UNIT_INCLUDE)?,
            exclude: pattern(UNIT_EXCLUDE, OLD_UNIT_EXCLUDE)?,
            tasks: f.bool(TASKS, false),
            restarts: f.bool(RESTARTS, false),
            start_time: f.bool(START_TIME, false),
        }))
    },
};

struct Systemd {
    include: Regex,
    exclude: Regex,
    tasks: bool,
    restarts: bool,
    start_time: bool,
}

const UNIT_STATES: [&str; 5] = ["active", "activating", "deactivating", "inactive", "failed"];

/// What the collector reads of one unit; the optional fields are only
/// asked for when a metric needs them.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Unit {
    pub name: String,
    pub active_state: String,
    /// `Service.Type` or `Mount.Type`; empty for other units.
    pub kind: String,
    pub restarts: Option<u32>,
    pub active_enter_usec: Option<u64>,
    pub tasks_current: Option<u64>,
    pub tasks_max: Option<u64>,
    pub socket: Option<SocketCounts>,
    pub timer_last_trigger_usec: Option<u64>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct SocketCounts {
    pub accepted: u32,
    pub current: u32,
    pub refused: Option<u32>,
}

/// The manager's view: version, state, and the active state of every unit
/// (for `node_systemd_units`, counted before filtering).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Manager {
    pub version: String,
    pub system_state: String,
    pub all_states: Vec<String>,
}

/// "252.22-1~deb12u1" → 252.22, as node_exporter parses the Version property.
fn version_number(v: &str) -> f64 {
    let numeric: String = v
        .trim_start_matches('v')
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    let mut parts = numeric.split('.').filter(|p| !p.is_empty());
    let major = parts.next().unwrap_or("0");
    match parts.next() {
        Some(minor) => format!("{major}.{minor}").parse().unwrap_or(0.0),
        None => major.parse().unwrap_or(0.0),
    }
}

/// node_exporter's systemd metrics from what was read; no D-Bus here.
pub fn add_metrics(out: &mut MetricSet, manager: &Manager, units: &[Unit]) {
    for state in UNIT_STATES {
        let n = manager.all_states.iter().filter(|s| *s == state).count();
        out.gauge(
            "node_systemd_units",
            "Summary of systemd unit states",
            &[("state", state)],
            n as f64,
        );
    }
    for u in units {
        for state in UNIT_STATES {
            out.gauge(
                "node_systemd_unit_state",
                "Systemd unit",
                &[("name", &u.name), ("state", state), ("type", &u.kind)],
                if u.active_state == state { 1.0 } else { 0.0 },
            );
        }
        let name = [("name", u.name.as_str())];
        if let Some(n) = u.restarts {
            out.counter(
                "node_systemd_service_restart_total",
                "Service unit count of Restart triggers",
                &name,
                n.into(),
            );
        }
        if let Some(usec) = u.active_enter_usec {
            // Not active: 0, as node_exporter.
            let usec = if u.active_state == "active" { usec } else { 0 };
            out.gauge(
                "node_systemd_unit_start_time_seconds",
                "Start time of the unit since unix epoch in seconds.",
                &name,
                usec as f64 / 1e6,
            );
        }
        // u64::MAX means "no limit / not counted": left out.
        if let Some(n) = u.tasks_current.filter(|n| *n != u64::MAX) {
            out.gauge(
                "node_systemd_unit_tasks_current",
                "Current number of tasks per Systemd unit",
                &name,
                n as f64,
            );
        }
        if let Some(n) = u.tasks_max.filter(|n| *n != u64::MAX) {
            out.gauge(
                "node_systemd_unit_tasks_max",
                "Maximum number of tasks per Systemd unit",
                &name,
                n as f64,
            );
        }
        if let Some(s) = u.socket {
            out.counter(
                "node_systemd_socket_accepted_connections_total",
                "Total number of accepted socket connections",
                &name,
                s.accepted.into(),
            );
            out.gauge(
                "node_systemd_socket_current_connections",
                "Current number of socket connections",
                &name,
                s.current.into(),
            );
            if let Some(r) = s.refused {
                out.gauge(
                    "node_systemd_socket_refused_connections_total",
                    "Total number of refused socket connections",
                    &name,
                    r.into(),
                );
            }
        }
        if let Some(usec) = u.timer_last_trigger_usec {
            out.gauge(
                "node_systemd_timer_last_trigger_seconds",
                "Seconds since epoch of last trigger.",
                &name,
                usec as f64 / 1e6,
            );
        }
    }
    out.gauge(
        "node_systemd_system_running",
        "Whether the system is operational (see 'systemctl is-system-running')",
        &[],
        if manager.system_state == "running" {
            1.0
        } else {
            0.0
        },
    );
    out.gauge(
        "node_systemd_version",
        "Detected systemd version",
        &[("version", &manager.version)],
        version_number(&manager.version),
    );
}

/// One row of `ListUnits`.
type UnitRow = (
    String,
    String,
    String,
    String,
    String,
    String,
    OwnedObjectPath,
    u32,
    String,
    OwnedObjectPath,
);

const DEST: &str = "org.freedesktop.systemd1";

impl Systemd {
    /// Units matching include and not exclude, and loaded (as node_exporter:
    /// a not-found unit some other unit names has no state of its own).
    fn selects(&self, name: &str, load_state: &str) -> bool {
        self.include.is_match(name) && !self.exclude.is_match(name) && load_state == "loaded"
    }

    fn read(&self) -> anyhow::Result<(Manager, Vec<Unit>)> {
        let conn = Connection::system()
            .context("connecting to the D-Bus system bus (is dbus running?)")?;
        let manager = Proxy::new(
            &conn,
            DEST,
            "/org/freedesktop/systemd1",
            "org.freedesktop.systemd1.Manager",
        )?;
        let rows: Vec<UnitRow> = manager
            .call("ListUnits", &())
            .context("systemd ListUnits over D-Bus")?;
        let version: String = manager.get_property("Version").unwrap_or_default();
        let system_state: String = manager.get_property("SystemState").unwrap_or_default();
        let all_states = rows.iter().map(|r| r.3.clone()).collect();
        let mut units = Vec::new();
        for (name, _, load_state, active, _, _, path, ..) in rows {
            if !self.selects(&name, &load_state) {
                continue;
            }
            units.push(self.read_unit(&conn, name, active, path));
        }
        Ok((
            Manager {
                version,
                system_state,
                all_states,
            },
            units,
        ))
    }

    /// A property that a unit may lack (older systemd) is simply left out.
    fn read_unit(
        &self,
        conn: &Connection,
        name: String,
        active: String,
        path: OwnedObjectPath,
    ) -> Unit {
        let iface = |i: &'static str| Proxy::new(conn, DEST, path.clone(), i).ok();
        let get_u32 = |p: &Option<Proxy>, prop: &str| {
            p.as_ref().and_then(|p| p.get_property::<u32>(prop).ok())
        };
        let get_u64 = |p: &Option<Proxy>, prop: &str| {
            p.as_ref().and_then(|p| p.get_property::<u64>(prop).ok())
        };
        let mut u = Unit {
            name,
            active_state: active,
            ..Unit::default()
        };
        if u.name.ends_with(".service") {
            let service = iface("org.freedesktop.systemd1.Service");
            u.kind = service
                .as_ref()
                .and_then(|p| p.get_property::<String>("Type").ok())
                .unwrap_or_default();
            if self.restarts {
                u.restarts = get_u32(&service, "NRestarts");
            }
            if self.tasks {
                u.tasks_current = get_u64(&service, "TasksCurrent");
                u.tasks_max = get_u64(&service, "TasksMax");
            }
        } else if u.name.ends_with(".mount") {
            u.kind = iface("org.freedesktop.systemd1.Mount")
                .and_then(|p| p.get_property::<String>("Type").ok())
                .unwrap_or_default();
        } else if u.name.ends_with(".socket") {
            let socket = iface("org.freedesktop.systemd1.Socket");
            if let (Some(accepted), Some(current)) = (
                get_u32(&socket, "NAccepted"),
                get_u32(&socket, "NConnections"),
            ) {
                u.socket = Some(SocketCounts {
                    accepted,
                    current,
                    refused: get_u32(&socket, "NRefused"),
                });
            }
        } else if u.name.ends_with(".timer") {
            u.timer_last_trigger_usec =
                get_u64(&iface("org.freedesktop.systemd1.Timer"), "LastTriggerUSec");
        }
        if self.start_time {
            u.active_enter_usec = if u.active_state == "active" {
                get_u64(
                    &iface("org.freedesktop.systemd1.Unit"),
                    "ActiveEnterTimestamp",
                )
            } else {
                Some(0)
            };
        }
        u
    }
}

impl Collector for Systemd {
    fn update(&self, out: &mut MetricSet) -> anyhow::Result<()> {
        let (manager, units) = self.read()?;
        add_metrics(out, &manager, &units);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use exporter_toolkit::exposition::{encode, Format};

    fn render(manager: &Manager, units: &[Unit]) -> String {
        let mut out = MetricSet::new();
        add_metrics(&mut out, manager, units);
        encode(&out.finish().unwrap(), Format::Text)
    }

    #[test]
    fn unit_properties_become_node_exporter_metrics() {
        let manager = Manager {
            version: "252.22-1~deb12u1".into(),
            system_state: "degraded".into(),
            all_states: vec!["active".into(), "failed".into(), "active".into()],
        };
        let units = vec![
            Unit {
                name: "ssh.service".into(),
                active_state: "active".into(),
                kind: "notify".into(),
                restarts: Some(3),
                active_enter_usec: Some(1_700_000_000_500_000),
                tasks_current: Some(2),
                tasks_max: Some(u64::MAX),
                ..Unit::default()
            },
            Unit {
                name: "broken.service".into(),
                active_state: "failed".into(),
                kind: "simple".into(),
                active_enter_usec: Some(0),
                ..Unit::default()
            },
            Unit {
                name: "dbus.socket".into(),
                active_state: "active".into(),
                socket: Some(SocketCounts {
                    accepted: 7,
                    current: 1,
                    refused: None,
                }),
                ..Unit::default()
            },
            Unit {
                name: "apt-daily.timer".into(),
                active_state: "active".into(),
                timer_last_trigger_usec: Some(1_700_000_123_000_000),
                ..Unit::default()
            },
        ];
        let text = render(&manager, &units);
        for line in [
            r#"node_systemd_unit_state{name="ssh.service",state="active",type="notify"} 1"#,
            r#"node_systemd_unit_state{name="ssh.service",state="failed",type="notify"} 0"#,
            r#"node_systemd_unit_state{name="broken.service",state="failed",type="simple"} 1"#,
            r#"node_systemd_unit_state{name="dbus.socket",state="active",type=""} 1"#,
            r#"node_systemd_service_restart_total{name="ssh.service"} 3"#,
            r#"node_systemd_unit_start_time_seconds{name="ssh.service"} 1.7000000005e+09"#,
            r#"node_systemd_unit_start_time_seconds{name="broken.service"} 0"#,
            r#"node_systemd_unit_tasks_current{name="ssh.service"} 2"#,
            r#"node_systemd_socket_accepted_connections_total{name="dbus.socket"} 7"#,
            r#"node_systemd_socket_current_connections{name="dbus.socket"} 1"#,
            r#"node_systemd_timer_last_trigger_seconds{name="apt-daily.timer"} 1.700000123e+09"#,
            r#"node_systemd_units{state="active"} 2"#,
            r#"node_systemd_units{state="failed"} 1"#,
            r#"node_systemd_units{state="inactive"} 0"#,
            "node_systemd_system_running 0",
            r#"node_systemd_version{version="252.22-1~deb12u1"} 252.22"#,
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line}\n{text}");
        }
        // No limit: no tasks_max series; no NRefused: no refused series.
        assert!(!text.contains("node_systemd_unit_tasks_max{"), "{text}");
        assert!(
            !text.contains("node_systemd_socket_refused_connections_total{"),
            "{text}"
        );
    }

    #[test]
    fn units_are_selected_by_include_exclude_and_load_state() {
        let c = Systemd {
            include: Regex::new("^(?:.+)$").unwrap(),
            exclude: Regex::new(r"^(?:.+\.(automount|device|mount|scope|slice))$").unwrap(),
            tasks: false,
            restarts: false,
            start_time: false,
        };
        assert!(c.selects("ssh.service", "loaded"));
        assert!(!c.selects("ssh.service", "not-found"));
        assert!(!c.selects("user.slice", "loaded"));
        assert!(!c.selects("dev-sda.device", "loaded"));
        assert!(c.selects("dbus.socket", "loaded"));
    }

    #[test]
    fn no_system_bus_is_a_collector_error_naming_it() {
        // Point zbus at a bus address that cannot exist.
        std::env::set_var(
            "DBUS_SYSTEM_BUS_ADDRESS",
            "unix:path=/nonexistent/node-exporter-test/bus",
        );
        let c = Systemd {
            include: Regex::new(".+").unwrap(),
            exclude: Regex::new("^$").unwrap(),
            tasks: false,
            restarts: false,
            start_time: false,
        };
        let err = c.update(&mut MetricSet::new()).unwrap_err();
        assert!(format!("{err:#}").contains("D-Bus system bus"), "{err:#}");
    }
}
