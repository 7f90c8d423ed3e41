//! The collector registry: every collector module declares a [`CollectorSpec`]
//! (name, on by default or not, its own flags, a constructor) and is listed in
//! [`REGISTRY`] once. Scrape timing and `node_scrape_collector_*` live in
//! `crate::scrape`, not here.

use clap::Arg;

use crate::cli::Flags;
use crate::collector::Collector;

pub mod arp;
pub mod bcache;
pub mod bonding;
pub mod btrfs;
pub mod buddyinfo;
pub mod conntrack;
pub mod cpu;
pub mod cpu_vulnerabilities;
pub mod cpufreq;
pub mod diskstats;
pub mod dmi;
pub mod dmmultipath;
pub mod docker;
pub mod edac;
pub mod entropy;
pub mod fibrechannel;
pub mod filefd;
pub mod filesystem;
pub mod hwmon;
pub mod interrupts;
pub mod kernel_hung;
pub mod ksmd;
pub mod loadavg;
pub mod mdadm;
pub mod meminfo;
pub mod mountstats;
pub mod netclass;
pub mod netdev;
pub mod netstat;
pub mod nfs;
pub mod nfsd;
pub mod nvme;
pub mod os;
pub mod pending;
pub mod powersupplyclass;
pub mod pressure;
pub mod processes;
pub mod rapl;
pub mod schedstat;
pub mod sockstat;
pub mod softirqs;
pub mod softnet;
pub mod stat;
pub mod systemd;
pub mod tapestats;
pub mod tcpstat;
pub mod textfile;
pub mod thermal_zone;
pub mod time;
pub mod timex;
pub mod udp_queues;
pub mod uname;
pub mod vmstat;
pub mod watchdog;
pub mod xfs;
pub mod zfs;

pub struct CollectorSpec {
    pub name: &'static str,
    pub default_enabled: bool,
    /// The collector's own flags (`--collector.<name>.*`).
    pub flags: fn() -> Vec<Arg>,
    pub build: fn(&Flags) -> anyhow::Result<Box<dyn Collector>>,
}

pub fn no_flags() -> Vec<Arg> {
    Vec::new()
}

/// Sorted by name; `--help` lists them in this order.
pub static REGISTRY: &[CollectorSpec] = &[
    arp::SPEC,
    bcache::SPEC,
    bonding::SPEC,
    btrfs::SPEC,
    buddyinfo::SPEC,
    conntrack::SPEC,
    cpu::SPEC,
    cpu_vulnerabilities::SPEC,
    cpufreq::SPEC,
    diskstats::SPEC,
    dmi::SPEC,
    dmmultipath::SPEC,
    docker::SPEC,
    edac::SPEC,
    entropy::SPEC,
    fibrechannel::SPEC,
    filefd::SPEC,
    filesystem::SPEC,
    hwmon::SPEC,
    interrupts::SPEC,
    kernel_hung::SPEC,
    ksmd::SPEC,
    loadavg::SPEC,
    mdadm::SPEC,
    meminfo::SPEC,
    mountstats::SPEC,
    netclass::SPEC,
    netdev::SPEC,
    netstat::SPEC,
    nfs::SPEC,
    nfsd::SPEC,
    nvme::SPEC,
    os::SPEC,
    powersupplyclass::SPEC,
    pressure::SPEC,
    processes::SPEC,
    rapl::SPEC,
    schedstat::SPEC,
    sockstat::SPEC,
    softirqs::SPEC,
    softnet::SPEC,
    stat::SPEC,
    systemd::SPEC,
    tapestats::SPEC,
    tcpstat::SPEC,
    textfile::SPEC,
    thermal_zone::SPEC,
    time::SPEC,
    timex::SPEC,
    udp_queues::SPEC,
    uname::SPEC,
    vmstat::SPEC,
    watchdog::SPEC,
    xfs::SPEC,
    zfs::SPEC,
];

pub fn find(name: &str) -> Option<&'static CollectorSpec> {
    REGISTRY.iter().find(|s| s.name == name)
}
