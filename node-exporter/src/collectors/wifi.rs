//! `node_wifi_*`: each WiFi interface's frequency, the BSS it is associated
//! with and its stations' statistics, read from nl80211 over generic netlink
//! as node_exporter does through github.com/mdlayher/wifi. A kernel without
//! nl80211 (no cfg80211 loaded), or a socket we may not use, is "no data",
//! as node_exporter's ErrNoData. `--collector.wifi.fixtures=DIR` reads
//! `DIR/interfaces.json`, `DIR/<ifname>/bss.json` and
//! `DIR/<ifname>/stationinfo.json` instead, node_exporter's end-to-end test
//! hook; those files are Go's JSON encoding of mdlayher/wifi's structs, so
//! keys match case-insensitively, hardware addresses are base64 and
//! durations are nanoseconds.

use std::io;
use std::path::{Path, PathBuf};

use anyhow::anyhow;
use exporter_toolkit::exposition::MetricSet;
use serde_json::Value;

use super::CollectorSpec;
use crate::cli::string_flag;
use crate::collector::{Collector, NoData};
use crate::genetlink::{self, attribute, attributes, string_of, u16_at, u32_at, u64_at};

pub const SPEC: CollectorSpec = CollectorSpec {
    name: "wifi",
    default_enabled: false,
    flags: || {
        vec![string_flag(
            "collector.wifi.fixtures",
            "",
            "test fixtures to use for wifi collector metrics",
        )]
    },
    build: |f| {
        let fixtures = f.string("collector.wifi.fixtures");
        Ok(Box::new(Wifi {
            fixtures: (!fixtures.is_empty()).then(|| PathBuf::from(fixtures)),
        }))
    },
};

struct Wifi {
    fixtures: Option<PathBuf>,
}

#[derive(Debug, Default, Clone, PartialEq)]
pub struct Interface {
    pub index: u32,
    pub name: String,
    pub kind: u32,
    /// MHz.
    pub frequency: i64,
}

#[derive(Debug, Default, Clone, PartialEq)]
pub struct Bss {
    pub ssid: String,
    pub bssid: Vec<u8>,
    /// nl80211's BSS status: 0 authenticated, 1 associated, 2 IBSS joined.
    pub status: i64,
}

#[derive(Debug, Default, Clone, PartialEq)]
pub struct Station {
    pub mac: Vec<u8>,
    pub connected_seconds: f64,
    pub inactive_seconds: f64,
    pub received_bytes: f64,
    pub transmitted_bytes: f64,
    pub received_packets: f64,
    pub transmitted_packets: f64,
    /// Bits per second.
    pub receive_bitrate: f64,
    pub transmit_bitrate: f64,
    pub signal: f64,
    pub transmit_retries: f64,
    pub transmit_failed: f64,
    pub beacon_loss: f64,
}

/// Go's `net.HardwareAddr.String()`.
fn mac_string(mac: &[u8]) -> String {
    let mut s = String::with_capacity(mac.len() * 3);
    for (i, b) in mac.iter().enumerate() {
        if i > 0 {
            s.push(':');
        }
        s.push_str(&format!("{b:02x}"));
    }
    s
}

fn bss_mode(status: i64) -> &'static str {
    match status {
        0 | 1 => "client",
        2 => "ad-hoc",
        _ => "unknown",
    }
}

// ---- The fixtures: Go's encoding/json of mdlayher/wifi's structs. ----

/// A field of a JSON object as Go's decoder finds it: the exact key, else
/// any key equal to it ignoring case.
fn field<'a>(obj: &'a serde_json::Map<String, Value>, name: &str) -> Option<&'a Value> {
    obj.get(name).or_else(|| {
        obj.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    })
}

/// An integer field (Go's `int` or `time.Duration`); absent or null is 0.
fn int_field(obj: &serde_json::Map<String, Value>, name: &str) -> anyhow::Result<i64> {
    match field(obj, name) {
        None | Some(Value::Null) => Ok(0),
        Some(v) => v
            .as_i64()
            .ok_or_else(|| anyhow!("{name}: cannot unmarshal {v} into an integer")),
    }
}

fn string_field(obj: &serde_json::Map<String, Value>, name: &str) -> anyhow::Result<String> {
    match field(obj, name) {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(v) => Err(anyhow!("{name}: cannot unmarshal {v} into a string")),
    }
}

/// A `[]byte` field: base64 (standard alphabet, padded) in Go's JSON.
fn bytes_field(obj: &serde_json::Map<String, Value>, name: &str) -> anyhow::Result<Vec<u8>> {
    use base64::Engine;
    match field(obj, name) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) => base64::engine::general_purpose::STANDARD
            .decode(s)
            .map_err(|e| anyhow!("{name}: {e}")),
        Some(v) => Err(anyhow!("{name}: cannot unmarshal {v} into bytes")),
    }
}

fn objects(v: Value, what: &str) -> anyhow::Result<Vec<Option<serde_json::Map<String, Value>>>> {
    match v {
        Value::Null => Ok(Vec::new()),
        Value::Array(items) => items
            .into_iter()
            .map(|i| match i {
                Value::Object(o) => Ok(Some(o)),
                Value::Null => Ok(None),
                other => Err(anyhow!("{what}: cannot unmarshal {other} into an object")),
            })
            .collect(),
        other => Err(anyhow!("{what}: cannot unmarshal {other} into a list")),
    }
}

/// interfaces.json: a list of `wifi.Interface`. A null entry is skipped
/// (node_exporter would dereference nil and crash).
pub fn parse_interfaces_json(text: &str) -> anyhow::Result<Vec<Interface>> {
    let v: Value = serde_json::from_str(text)?;
    let mut out = Vec::new();
    for o in objects(v, "interfaces")?.into_iter().flatten() {
        out.push(Interface {
            index: u32::try_from(int_field(&o, "Index")?).unwrap_or(0),
            name: string_field(&o, "Name")?,
            kind: u32::try_from(int_field(&o, "Type")?).unwrap_or(0),
            frequency: int_field(&o, "Frequency")?,
        });
    }
    Ok(out)
}

/// bss.json: one `wifi.BSS`.
pub fn parse_bss_json(text: &str) -> anyhow::Result<Bss> {
    let o = match serde_json::from_str::<Value>(text)? {
        Value::Object(o) => o,
        Value::Null => serde_json::Map::new(),
        other => return Err(anyhow!("bss: cannot unmarshal {other} into an object")),
    };
    Ok(Bss {
        ssid: string_field(&o, "SSID")?,
        bssid: bytes_field(&o, "BSSID")?,
        status: int_field(&o, "Status")?,
    })
}

/// stationinfo.json: a list of `wifi.StationInfo`.
pub fn parse_stations_json(text: &str) -> anyhow::Result<Vec<Station>> {
    let v: Value = serde_json::from_str(text)?;
    let mut out = Vec::new();
    for o in objects(v, "stations")?.into_iter().flatten() {
        let int = |name| int_field(&o, name).map(|v| v as f64);
        out.push(Station {
            mac: bytes_field(&o, "HardwareAddr")?,
            connected_seconds: int("Connected")? / 1e9,
            inactive_seconds: int("Inactive")? / 1e9,
            received_bytes: int("ReceivedBytes")?,
            transmitted_bytes: int("TransmittedBytes")?,
            received_packets: int("ReceivedPackets")?,
            transmitted_packets: int("TransmittedPackets")?,
            receive_bitrate: int("ReceiveBitrate")?,
            transmit_bitrate: int("TransmitBitrate")?,
            signal: int("Signal")?,
            transmit_retries: int("TransmitRetries")?,
            transmit_failed: int("TransmitFailed")?,
            beacon_loss: int("BeaconLoss")?,
        });
    }
    Ok(out)
}

// ---- nl80211 ----

const NL80211_CMD_GET_INTERFACE: u8 = 5;
const NL80211_CMD_GET_STATION: u8 = 17;
const NL80211_CMD_GET_SCAN: u8 = 32;
const NL80211_ATTR_IFINDEX: u16 = 3;
const NL80211_ATTR_IFNAME: u16 = 4;
const NL80211_ATTR_IFTYPE: u16 = 5;
const NL80211_ATTR_MAC: u16 = 6;
const NL80211_ATTR_STA_INFO: u16 = 21;
const NL80211_ATTR_WIPHY_FREQ: u16 = 38;
const NL80211_ATTR_BSS: u16 = 47;
const NL80211_BSS_BSSID: u16 = 1;
const NL80211_BSS_INFORMATION_ELEMENTS: u16 = 6;
const NL80211_BSS_STATUS: u16 = 9;
const STA_INACTIVE_TIME: u16 = 1;
const STA_RX_BYTES: u16 = 2;
const STA_TX_BYTES: u16 = 3;
const STA_SIGNAL: u16 = 7;
const STA_TX_BITRATE: u16 = 8;
const STA_RX_PACKETS: u16 = 9;
const STA_TX_PACKETS: u16 = 10;
const STA_TX_RETRIES: u16 = 11;
const STA_TX_FAILED: u16 = 12;
const STA_RX_BITRATE: u16 = 14;
const STA_CONNECTED_TIME: u16 = 16;
const STA_BEACON_LOSS: u16 = 18;
const STA_RX_BYTES64: u16 = 23;
const STA_TX_BYTES64: u16 = 24;
const RATE_INFO_BITRATE: u16 = 1;
const RATE_INFO_BITRATE32: u16 = 5;

fn short(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("nl80211: short {what} attribute"),
    )
}

/// One NL80211_CMD_NEW_INTERFACE reply's attributes.
pub fn parse_interface(attrs: &[u8]) -> io::Result<Interface> {
    let mut ifi = Interface::default();
    for (k, d) in attributes(attrs)? {
        match k {
            NL80211_ATTR_IFINDEX => ifi.index = u32_at(d, 0).ok_or_else(|| short("ifindex"))?,
            NL80211_ATTR_IFNAME => ifi.name = string_of(d),
            NL80211_ATTR_IFTYPE => ifi.kind = u32_at(d, 0).ok_or_else(|| short("iftype"))?,
            NL80211_ATTR_WIPHY_FREQ => {
                ifi.frequency = i64::from(u32_at(d, 0).ok_or_else(|| short("frequency"))?)
            }
            _ => {}
        }
    }
    Ok(ifi)
}

/// One scan result's attributes: the BSS if it carries a status, i.e. is
/// the one the interface is authenticated/associated with or joined.
pub fn parse_scan_result(attrs: &[u8]) -> io::Result<Option<Bss>> {
    for (k, d) in attributes(attrs)? {
        if k != NL80211_ATTR_BSS {
            continue;
        }
        let mut bss = Bss::default();
        let mut has_status = false;
        for (k, d) in attributes(d)? {
            match k {
                NL80211_BSS_BSSID => bss.bssid = d.to_vec(),
                NL80211_BSS_STATUS => {
                    bss.status = i64::from(u32_at(d, 0).ok_or_else(|| short("bss status"))?);
                    has_status = true;
                }
                NL80211_BSS_INFORMATION_ELEMENTS => bss.ssid = ssid_of(d),
                _ => {}
            }
        }
        if has_status {
            return Ok(Some(bss));
        }
    }
    Ok(None)
}

/// The SSID element (id 0) of a list of 802.11 information elements.
fn ssid_of(mut ies: &[u8]) -> String {
    while ies.len() >= 2 {
        let (id, len) = (ies[0], usize::from(ies[1]));
        let Some(data) = ies.get(2..2 + len) else {
            break;
        };
        if id == 0 {
            return String::from_utf8_lossy(data).into_owned();
        }
        ies = &ies[2 + len..];
    }
    String::new()
}

/// A struct rate_info's bitrate in bits per second: BITRATE32 when the
/// kernel gives it (rates above 6.5 Gbit/s need it), in units of 100 kbit/s.
fn bitrate(d: &[u8]) -> io::Result<f64> {
    let (mut r16, mut r32) = (None, None);
    for (k, d) in attributes(d)? {
        match k {
            RATE_INFO_BITRATE => r16 = Some(u16_at(d, 0).ok_or_else(|| short("bitrate"))?),
            RATE_INFO_BITRATE32 => r32 = Some(u32_at(d, 0).ok_or_else(|| short("bitrate"))?),
            _ => {}
        }
    }
    let units = r32.or(r16.map(u32::from)).unwrap_or(0);
    Ok(f64::from(units) * 100.0 * 1000.0)
}

/// One NL80211_CMD_NEW_STATION reply's attributes.
pub fn parse_station(attrs: &[u8]) -> io::Result<Station> {
    let mut st = Station::default();
    let (mut rx64, mut tx64) = (None, None);
    for (k, d) in attributes(attrs)? {
        match k {
            NL80211_ATTR_MAC => st.mac = d.to_vec(),
            NL80211_ATTR_STA_INFO => {
                for (k, d) in attributes(d)? {
                    let u32v = || u32_at(d, 0).map(f64::from).ok_or_else(|| short("station"));
                    match k {
                        STA_INACTIVE_TIME => st.inactive_seconds = u32v()? / 1000.0,
                        STA_CONNECTED_TIME => st.connected_seconds = u32v()?,
                        STA_RX_BYTES => st.received_bytes = u32v()?,
                        STA_TX_BYTES => st.transmitted_bytes = u32v()?,
                        STA_RX_BYTES64 => rx64 = Some(u64_at(d, 0).ok_or_else(|| short("rx"))?),
                        STA_TX_BYTES64 => tx64 = Some(u64_at(d, 0).ok_or_else(|| short("tx"))?),
                        STA_RX_PACKETS => st.received_packets = u32v()?,
                        STA_TX_PACKETS => st.transmitted_packets = u32v()?,
                        STA_TX_RETRIES => st.transmit_retries = u32v()?,
                        STA_TX_FAILED => st.transmit_failed = u32v()?,
                        STA_BEACON_LOSS => st.beacon_loss = u32v()?,
                        STA_SIGNAL => {
                            st.signal = f64::from(*d.first().ok_or_else(|| short("signal"))? as i8)
                        }
                        STA_RX_BITRATE => st.receive_bitrate = bitrate(d)?,
                        STA_TX_BITRATE => st.transmit_bitrate = bitrate(d)?,
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    if let Some(v) = rx64 {
        st.received_bytes = v as f64;
    }
    if let Some(v) = tx64 {
        st.transmitted_bytes = v as f64;
    }
    Ok(st)
}

fn not_exist(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ENOENT) | Some(libc::ENODEV) | Some(libc::EOPNOTSUPP)
    ) || e.kind() == io::ErrorKind::NotFound
}

/// Where a collection reads from: nl80211, or the fixture files.
enum Source {
    Netlink {
        sock: genetlink::Socket,
        family: u16,
    },
    Fixtures(PathBuf),
}

impl Source {
    fn interfaces(&mut self) -> anyhow::Result<Vec<Interface>> {
        match self {
            Source::Fixtures(dir) => {
                let path = dir.join("interfaces.json");
                parse_interfaces_json(&read(&path)?)
                    .map_err(|e| anyhow!("parsing {}: {e}", path.display()))
            }
            Source::Netlink { sock, family } => {
                let mut out = Vec::new();
                sock.request(
                    *family,
                    NL80211_CMD_GET_INTERFACE,
                    genetlink::NLM_F_DUMP,
                    &[],
                    |_, a| {
                        out.push(parse_interface(a)?);
                        Ok(())
                    },
                )?;
                Ok(out)
            }
        }
    }

    /// The BSS the interface is in; NotFound when there is none.
    fn bss(&mut self, ifi: &Interface) -> io::Result<Bss> {
        match self {
            Source::Fixtures(dir) => {
                let path = dir.join(&ifi.name).join("bss.json");
                parse_bss_json(&std::fs::read_to_string(&path)?).map_err(|e| {
                    io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("parsing {}: {e}", path.display()),
                    )
                })
            }
            Source::Netlink { sock, family } => {
                let mut found = None;
                let attrs = attribute(NL80211_ATTR_IFINDEX, &ifi.index.to_ne_bytes());
                sock.request(
                    *family,
                    NL80211_CMD_GET_SCAN,
                    genetlink::NLM_F_DUMP,
                    &attrs,
                    |_, a| {
                        if found.is_none() {
                            found = parse_scan_result(a)?;
                        }
                        Ok(())
                    },
                )?;
                found.ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))
            }
        }
    }

    /// The interface's stations; NotFound when it has none.
    fn stations(&mut self, ifi: &Interface) -> io::Result<Vec<Station>> {
        match self {
            Source::Fixtures(dir) => {
                let path = dir.join(&ifi.name).join("stationinfo.json");
                parse_stations_json(&std::fs::read_to_string(&path)?).map_err(|e| {
                    io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("parsing {}: {e}", path.display()),
                    )
                })
            }
            Source::Netlink { sock, family } => {
                let mut out = Vec::new();
                let attrs = attribute(NL80211_ATTR_IFINDEX, &ifi.index.to_ne_bytes());
                sock.request(
                    *family,
                    NL80211_CMD_GET_STATION,
                    genetlink::NLM_F_DUMP,
                    &attrs,
                    |_, a| {
                        out.push(parse_station(a)?);
                        Ok(())
                    },
                )?;
                if out.is_empty() {
                    return Err(io::ErrorKind::NotFound.into());
                }
                Ok(out)
            }
        }
    }
}

fn read(path: &Path) -> anyhow::Result<String> {
    crate::helpers::read_to_string(path).map_err(|e| anyhow!("reading {}: {e}", path.display()))
}

impl Wifi {
    fn source(&self) -> anyhow::Result<Source> {
        if let Some(dir) = &self.fixtures {
            return Ok(Source::Fixtures(dir.clone()));
        }
        let opened = genetlink::Socket::open().and_then(|mut sock| {
            let family = sock.family("nl80211")?;
            Ok(Source::Netlink { sock, family })
        });
        match opened {
            Ok(s) => Ok(s),
            Err(e)
                if e.kind() == io::ErrorKind::NotFound
                    || e.kind() == io::ErrorKind::PermissionDenied
                    || matches!(e.raw_os_error(), Some(libc::ENOENT) | Some(libc::EPERM)) =>
            {
                Err(NoData(format!("wifi collector metrics are not available: {e}")).into())
            }
            Err(e) => Err(anyhow!("failed to access wifi data: {e}")),
        }
    }
}

impl Collector for Wifi {
    fn update(&self, out: &mut MetricSet) -> anyhow::Result<()> {
        let mut src = self.source()?;
        let ifis = src
            .interfaces()
            .map_err(|e| anyhow!("failed to retrieve wifi interfaces: {e}"))?;
        for ifi in ifis {
            // Some virtual devices (P2P) have no name, as node_exporter skips.
            if ifi.name.is_empty() {
                continue;
            }
            let dev = ifi.name.as_str();
            out.gauge(
                "node_wifi_interface_frequency_hertz",
                "The current frequency a WiFi interface is operating at, in hertz.",
                &[("device", dev)],
                ifi.frequency as f64 * 1e6,
            );
            match src.bss(&ifi) {
                Ok(bss) => out.gauge(
                    "node_wifi_station_info",
                    "Labeled WiFi interface station information as provided by the operating system.",
                    &[
                        ("device", dev),
                        ("bssid", &mac_string(&bss.bssid)),
                        ("ssid", &bss.ssid),
                        ("mode", bss_mode(bss.status)),
                    ],
                    1.0,
                ),
                Err(e) if not_exist(&e) => {
                    tracing::debug!(device = dev, "BSS information not found for wifi device")
                }
                Err(e) => return Err(anyhow!("failed to retrieve BSS for device {dev}: {e}")),
            }
            let stations = match src.stations(&ifi) {
                Ok(s) => s,
                Err(e) if not_exist(&e) => {
                    tracing::debug!(
                        device = dev,
                        "station information not found for wifi device"
                    );
                    continue;
                }
                Err(e) => {
                    return Err(anyhow!(
                        "failed to retrieve station info for device {dev:?}: {e}"
                    ))
                }
            };
            for st in stations {
                let mac = mac_string(&st.mac);
                let labels = [("device", dev), ("mac_address", mac.as_str())];
                for (name, help, counter, v) in [
                    ("node_wifi_station_connected_seconds_total", "The total number of seconds a station has been connected to an access point.", true, st.connected_seconds),
                    ("node_wifi_station_inactive_seconds", "The number of seconds since any wireless activity has occurred on a station.", false, st.inactive_seconds),
                    ("node_wifi_station_receive_bits_per_second", "The current WiFi receive bitrate of a station, in bits per second.", false, st.receive_bitrate),
                    ("node_wifi_station_transmit_bits_per_second", "The current WiFi transmit bitrate of a station, in bits per second.", false, st.transmit_bitrate),
                    ("node_wifi_station_receive_bytes_total", "The total number of bytes received by a WiFi station.", true, st.received_bytes),
                    ("node_wifi_station_transmit_bytes_total", "The total number of bytes transmitted by a WiFi station.", true, st.transmitted_bytes),
                    ("node_wifi_station_signal_dbm", "The current WiFi signal strength, in decibel-milliwatts (dBm).", false, st.signal),
                    ("node_wifi_station_transmit_retries_total", "The total number of times a station has had to retry while sending a packet.", true, st.transmit_retries),
                    ("node_wifi_station_transmit_failed_total", "The total number of times a station has failed to send a packet.", true, st.transmit_failed),
                    ("node_wifi_station_beacon_loss_total", "The total number of times a station has detected a beacon loss.", true, st.beacon_loss),
                    ("node_wifi_station_transmitted_packets_total", "The total number of packets transmitted by a station.", true, st.transmitted_packets),
                    ("node_wifi_station_received_packets_total", "The total number of packets received by a station.", true, st.received_packets),
                ] {
                    if counter {
                        out.counter(name, help, &labels, v);
                    } else {
                        out.gauge(name, help, &labels, v);
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{collect, write};

    #[test]
    fn fixtures_as_node_exporter_reads_them() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "interfaces.json",
            r#"[{"name": "wlan0", "type": 2, "frequency": 2412},
                {"NAME": "wlan1", "Frequency": 5180}, {"type": 10}, null]"#,
        );
        write(
            dir.path(),
            "wlan0/bss.json",
            r#"{"ssid": "Café", "bssid": "ABEiM0RV", "status": 2}"#,
        );
        write(
            dir.path(),
            "wlan0/stationinfo.json",
            r#"[{"hardwareaddr": "qrvM3e7/", "connected": 30000000000, "inactive": 400000000,
                 "receivebitrate": 128000000, "signal": -52, "ReceivedPackets": 7,
                 "transmittedbytes": 12}]"#,
        );
        let c = Wifi {
            fixtures: Some(dir.path().into()),
        };
        let text = collect(&c).unwrap();
        for want in [
            "node_wifi_interface_frequency_hertz{device=\"wlan0\"} 2.412e+09\n",
            "node_wifi_interface_frequency_hertz{device=\"wlan1\"} 5.18e+09\n",
            "node_wifi_station_info{bssid=\"00:11:22:33:44:55\",device=\"wlan0\",mode=\"ad-hoc\",ssid=\"Café\"} 1\n",
            "node_wifi_station_connected_seconds_total{device=\"wlan0\",mac_address=\"aa:bb:cc:dd:ee:ff\"} 30\n",
            "node_wifi_station_inactive_seconds{device=\"wlan0\",mac_address=\"aa:bb:cc:dd:ee:ff\"} 0.4\n",
            "node_wifi_station_signal_dbm{device=\"wlan0\",mac_address=\"aa:bb:cc:dd:ee:ff\"} -52\n",
            "node_wifi_station_received_packets_total{device=\"wlan0\",mac_address=\"aa:bb:cc:dd:ee:ff\"} 7\n",
            "node_wifi_station_transmit_bytes_total{device=\"wlan0\",mac_address=\"aa:bb:cc:dd:ee:ff\"} 12\n",
            "# TYPE node_wifi_station_inactive_seconds gauge\n",
            "# TYPE node_wifi_station_beacon_loss_total counter\n",
        ] {
            assert!(text.contains(want), "{want} not in\n{text}");
        }
        // wlan1 has no files: no BSS, no stations, and no error.
        assert!(!text.contains("device=\"wlan1\",mac"), "{text}");

        // A broken file fails the collection, naming the file.
        write(dir.path(), "wlan0/bss.json", r#"{"bssid": "not base64!"}"#);
        let err = collect(&c).unwrap_err().to_string();
        assert!(err.contains("bss.json"), "{err}");
        write(dir.path(), "wlan0/bss.json", "{}");
        write(dir.path(), "wlan0/stationinfo.json", r#"[{"signal": 1.5}]"#);
        let err = collect(&c).unwrap_err().to_string();
        assert!(err.contains("stationinfo.json"), "{err}");
        write(dir.path(), "interfaces.json", r#"{"name": "wlan0"}"#);
        assert!(collect(&c).is_err());
        std::fs::remove_file(dir.path().join("interfaces.json")).unwrap();
        assert!(collect(&c).is_err());
    }

    #[test]
    fn unknown_status_and_empty_fields() {
        assert_eq!(bss_mode(1), "client");
        assert_eq!(bss_mode(0), "client");
        assert_eq!(bss_mode(7), "unknown");
        assert_eq!(mac_string(&[]), "");
        assert_eq!(parse_bss_json("null").unwrap(), Bss::default());
        assert!(parse_stations_json("[1]").is_err());
        assert!(parse_interfaces_json(r#"[{"frequency": "x"}]"#).is_err());
        assert!(parse_interfaces_json("[").is_err());
    }

    fn nested(kind: u16, parts: &[Vec<u8>]) -> Vec<u8> {
        attribute(kind | 0x8000, &parts.concat())
    }

    #[test]
    fn nl80211_interface_scan_and_station_messages() {
        let ifi = [
            attribute(NL80211_ATTR_IFINDEX, &3u32.to_ne_bytes()),
            attribute(NL80211_ATTR_IFNAME, b"wlp2s0\0"),
            attribute(NL80211_ATTR_IFTYPE, &2u32.to_ne_bytes()),
            attribute(NL80211_ATTR_WIPHY_FREQ, &5180u32.to_ne_bytes()),
        ]
        .concat();
        assert_eq!(
            parse_interface(&ifi).unwrap(),
            Interface {
                index: 3,
                name: "wlp2s0".into(),
                kind: 2,
                frequency: 5180
            }
        );

        let ies = [&[0u8, 4][..], b"home", &[1, 2, 0x82, 0x84]].concat();
        let seen_only = nested(
            NL80211_ATTR_BSS,
            &[attribute(NL80211_BSS_BSSID, &[1, 2, 3, 4, 5, 6])],
        );
        assert_eq!(parse_scan_result(&seen_only).unwrap(), None);
        let joined = nested(
            NL80211_ATTR_BSS,
            &[
                attribute(NL80211_BSS_BSSID, &[1, 2, 3, 4, 5, 6]),
                attribute(NL80211_BSS_INFORMATION_ELEMENTS, &ies),
                attribute(NL80211_BSS_STATUS, &1u32.to_ne_bytes()),
            ],
        );
        let bss = parse_scan_result(&joined).unwrap().unwrap();
        assert_eq!((bss.ssid.as_str(), bss.status), ("home", 1));
        assert_eq!(mac_string(&bss.bssid), "01:02:03:04:05:06");
        assert_eq!(ssid_of(&[0, 9, b'x']), "");

        let rate = |r16: u16, r32: Option<u32>| {
            let mut parts = vec![attribute(RATE_INFO_BITRATE, &r16.to_ne_bytes())];
            if let Some(r) = r32 {
                parts.push(attribute(RATE_INFO_BITRATE32, &r.to_ne_bytes()));
            }
            parts.concat()
        };
        let info = nested(
            NL80211_ATTR_STA_INFO,
            &[
                attribute(STA_INACTIVE_TIME, &1500u32.to_ne_bytes()),
                attribute(STA_CONNECTED_TIME, &60u32.to_ne_bytes()),
                attribute(STA_RX_BYTES, &5u32.to_ne_bytes()),
                attribute(STA_RX_BYTES64, &(1u64 << 33).to_ne_bytes()),
                attribute(STA_TX_BYTES, &6u32.to_ne_bytes()),
                attribute(STA_SIGNAL, &[(-40i8) as u8]),
                attribute(STA_RX_PACKETS, &9u32.to_ne_bytes()),
                attribute(STA_TX_RETRIES, &2u32.to_ne_bytes()),
                attribute(STA_BEACON_LOSS, &1u32.to_ne_bytes()),
                attribute(STA_RX_BITRATE | 0x8000, &rate(1300, None)),
                attribute(STA_TX_BITRATE | 0x8000, &rate(0xffff, Some(86667))),
            ],
        );
        let msg = [attribute(NL80211_ATTR_MAC, &[0xaa; 6]), info].concat();
        let st = parse_station(&msg).unwrap();
        assert_eq!(mac_string(&st.mac), "aa:aa:aa:aa:aa:aa");
        assert_eq!((st.inactive_seconds, st.connected_seconds), (1.5, 60.0));
        assert_eq!(
            (st.received_bytes, st.transmitted_bytes),
            (8589934592.0, 6.0)
        );
        assert_eq!((st.signal, st.received_packets), (-40.0, 9.0));
        assert_eq!((st.transmit_retries, st.beacon_loss), (2.0, 1.0));
        assert_eq!(st.receive_bitrate, 130e6);
        assert_eq!(st.transmit_bitrate, 8666.7e6);
        for cut in [5, msg.len() - 2] {
            assert!(parse_station(&msg[..cut]).is_err(), "cut at {cut}");
        }
        let short_signal = nested(NL80211_ATTR_STA_INFO, &[attribute(STA_SIGNAL, &[])]);
        assert!(parse_station(&short_signal).is_err());
    }

    #[test]
    fn this_host_without_nl80211_is_no_data_else_its_interfaces() {
        let c = Wifi { fixtures: None };
        let has_nl80211 = genetlink::Socket::open()
            .and_then(|mut s| s.family("nl80211"))
            .is_ok();
        match collect(&c) {
            Ok(text) => assert!(has_nl80211, "{text}"),
            Err(e) => {
                assert!(!has_nl80211, "{e}");
                assert!(crate::helpers::is_no_data(&e), "{e}");
            }
        }
    }
}
