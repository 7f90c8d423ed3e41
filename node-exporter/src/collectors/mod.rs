//! The collector registry: every collector module declares a [`CollectorSpec`]
//! (name, on by default or not, its own flags, a constructor) and is listed in
//! [`REGISTRY`] once. Scrape timing and `node_scrape_collector_*` live in
//! `crate::scrape`, not here.

use clap::Arg;

use crate::cli::Flags;
use crate::collector::Collector;

pub mod arp;
pub mod bcache;
pub mod bcachefs;
pub mod bonding;
pub mod btrfs;
pub mod buddyinfo;
pub mod cgroups;
pub mod conntrack;
pub mod cpu;
pub mod cpu_info;
pub mod cpu_vulnerabilities;
pub mod cpufreq;
pub mod diskstats;
pub mod dmi;
pub mod dmmultipath;
pub mod docker;
pub mod drbd;
pub mod edac;
pub mod entropy;
pub mod ethtool;
pub mod fibrechannel;
pub mod filefd;
pub mod filesystem;
pub mod hwmon;
pub mod infiniband;
pub mod interrupts;
pub mod ipvs;
pub mod kernel_hung;
pub mod ksmd;
pub mod lnstat;
pub mod loadavg;
pub mod mdadm;
pub mod meminfo;
pub mod meminfo_numa;
pub mod mountstats;
pub mod netclass;
pub mod netdev;
pub mod netstat;
pub mod nfs;
pub mod nfsd;
pub mod nvme;
pub mod os;
pub mod pcidevice;
pub mod pending;
pub mod powersupplyclass;
pub mod pressure;
pub mod processes;
pub mod qdisc;
pub mod rapl;
pub mod schedstat;
pub mod selinux;
pub mod slabinfo;
pub mod sockstat;
pub mod softirqs;
pub mod softnet;
pub mod stat;
pub mod sysctl;
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
pub mod wifi;
pub mod xfrm;
pub mod xfs;
pub mod zfs;
pub mod zoneinfo;

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
    bcachefs::SPEC,
    bonding::SPEC,
    btrfs::SPEC,
    buddyinfo::SPEC,
    cgroups::SPEC,
    conntrack::SPEC,
    cpu::SPEC,
    cpu_vulnerabilities::SPEC,
    cpufreq::SPEC,
    diskstats::SPEC,
    dmi::SPEC,
    dmmultipath::SPEC,
    docker::SPEC,
    drbd::SPEC,
    edac::SPEC,
    entropy::SPEC,
    ethtool::SPEC,
    fibrechannel::SPEC,
    filefd::SPEC,
    filesystem::SPEC,
    hwmon::SPEC,
    infiniband::SPEC,
    interrupts::SPEC,
    ipvs::SPEC,
    kernel_hung::SPEC,
    ksmd::SPEC,
    lnstat::SPEC,
    loadavg::SPEC,
    mdadm::SPEC,
    meminfo::SPEC,
    meminfo_numa::SPEC,
    mountstats::SPEC,
    netclass::SPEC,
    netdev::SPEC,
    netstat::SPEC,
    nfs::SPEC,
    nfsd::SPEC,
    nvme::SPEC,
    os::SPEC,
    pcidevice::SPEC,
    powersupplyclass::SPEC,
    pressure::SPEC,
    processes::SPEC,
    qdisc::SPEC,
    rapl::SPEC,
    schedstat::SPEC,
    selinux::SPEC,
    slabinfo::SPEC,
    sockstat::SPEC,
    softirqs::SPEC,
    softnet::SPEC,
    stat::SPEC,
    sysctl::SPEC,
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
    wifi::SPEC,
    xfrm::SPEC,
    xfs::SPEC,
    zfs::SPEC,
    zoneinfo::SPEC,
];

pub fn find(name: &str) -> Option<&'static CollectorSpec> {
    REGISTRY.iter().find(|s| s.name == name)
}
