//! Every /proc and /sys parser, in one table, so that the fuzz target
//! (`fuzz/fuzz_targets/parsers.rs`) and the mutation test
//! (`tests/parsers_never_panic.rs`) exercise all of them. A collector whose
//! parser is not listed here is not fuzzed: add it when you add a parser.

use std::path::Path;

use crate::collectors::*;

/// (name, a call that parses `text` and throws the result away).
pub type ParserEntry = (&'static str, fn(&str));

pub static PARSERS: &[ParserEntry] = &[
    ("cpu", |t| drop(cpu::parse_cpu_lines(t, Path::new("stat")))),
    ("cpuinfo", |t| {
        drop(cpu_info::parse_cpuinfo(t, Path::new("cpuinfo")))
    }),
    ("cpu-isolated", |t| {
        drop(cpu_info::parse_isolated(t, Path::new("isolated")))
    }),
    ("ipvs-stats", |t| {
        drop(ipvs::parse_stats(t, Path::new("net/ip_vs_stats")))
    }),
    ("ipvs-backends", |t| {
        drop(ipvs::parse_backends(t, Path::new("net/ip_vs")))
    }),
    ("ipvs-labels", |t| drop(ipvs::parse_labels(t))),
    ("infiniband", |t| {
        let p = Path::new("ports/1/state");
        drop(infiniband::parse_state(t, p));
        drop(infiniband::parse_rate(t, p));
        drop(infiniband::parse_counter(t, p));
    }),
    ("selinux", |t| {
        drop(selinux::parse_cache_stats(t, Path::new("avc/cache_stats")));
        drop(selinux::parse_hash_stats(t, Path::new("avc/hash_stats")));
        let _ = selinux::config_mode(t);
    }),
    ("bcachefs", |t| {
        let p = Path::new("fs/bcachefs/x/counters/y");
        drop(bcachefs::parse_compression(t, p));
        drop(bcachefs::parse_errors(t, p));
        drop(bcachefs::parse_counter(t, p));
        drop(bcachefs::parse_btree_writes(t, p));
        drop(bcachefs::parse_io_done(t, p));
        drop(bcachefs::parse_io_errors(t, p));
        let _ = bcachefs::parse_human_bytes(t);
    }),
    ("xfrm", |t| {
        drop(xfrm::parse_xfrm_stat(t, Path::new("net/xfrm_stat")))
    }),
    ("lnstat", |t| {
        drop(lnstat::parse_net_stat(t, Path::new("net/stat/arp_cache")))
    }),
    ("meminfo_numa", |t| {
        let p = Path::new("node0/meminfo");
        drop(meminfo_numa::parse_node_meminfo(t, p));
        drop(meminfo_numa::parse_numastat(t, "0", p));
    }),
    ("slabinfo", |t| {
        drop(slabinfo::parse_slabinfo(t, Path::new("slabinfo")))
    }),
    ("sysctl", |t| {
        drop(sysctl::parse_values(t, true, Path::new("sys/fs/file-nr")));
        let _ = sysctl::parse_int(t);
    }),
    ("cgroups", |t| {
        drop(cgroups::parse_cgroups(t, Path::new("cgroups")))
    }),
    ("zoneinfo", |t| {
        drop(zoneinfo::parse_zoneinfo(t, Path::new("zoneinfo")))
    }),
    ("drbd", |t| drop(drbd::parse_drbd(t, Path::new("drbd")))),
    ("pcidevice", |t| {
        let _ = pcidevice::parse_location(t);
        drop(pcidevice::parse_link_speed(t, Path::new("max_link_speed")));
        let _ = pcidevice::parse_int32(t);
        let _ = pcidevice::parse_pci_ids(t);
    }),
    ("qdisc", |t| {
        drop(qdisc::parse_fixtures(t, Path::new("results.json")));
        drop(qdisc::parse_qdisc_message(t.as_bytes()));
    }),
    ("wifi", |t| {
        drop(wifi::parse_interfaces_json(t));
        drop(wifi::parse_bss_json(t));
        drop(wifi::parse_stations_json(t));
        let b = t.as_bytes();
        drop(wifi::parse_interface(b));
        drop(wifi::parse_scan_result(b));
        drop(wifi::parse_station(b));
        drop(crate::genetlink::walk_messages(b, 1, &mut |_, a| {
            crate::genetlink::attributes(a).map(drop)
        }));
    }),
    ("loadavg", |t| {
        drop(loadavg::parse_loadavg(t, Path::new("loadavg")))
    }),
    ("meminfo", |t| {
        drop(meminfo::parse_meminfo(t, Path::new("meminfo")))
    }),
    ("stat", |t| drop(stat::parse_stat(t, Path::new("stat")))),
    ("vmstat", |t| {
        drop(vmstat::parse_vmstat(t, Path::new("vmstat")))
    }),
    ("netstat", |t| {
        drop(netstat::parse_netstat(t, Path::new("netstat")))
    }),
    ("snmp6", |t| {
        drop(netstat::parse_snmp6(t, Path::new("snmp6")))
    }),
    ("sockstat", |t| {
        drop(sockstat::parse_sockstat(t, Path::new("sockstat")))
    }),
    ("file-nr", |t| {
        drop(filefd::parse_file_nr(t, Path::new("file-nr")))
    }),
    ("conntrack", |t| {
        drop(conntrack::parse_conntrack_stat(
            t,
            Path::new("nf_conntrack"),
        ))
    }),
    ("pressure", |t| {
        drop(pressure::parse_psi(t, Path::new("pressure")))
    }),
    ("schedstat", |t| {
        drop(schedstat::parse_schedstat(t, Path::new("schedstat")))
    }),
    ("softnet", |t| {
        drop(softnet::parse_softnet(t, Path::new("softnet_stat")))
    }),
    ("interrupts", |t| {
        drop(interrupts::parse_interrupts(t, Path::new("interrupts")))
    }),
    ("processes", |t| {
        drop(processes::parse_proc_stat(t, Path::new("1/stat")))
    }),
    ("tcpstat", |t| {
        drop(tcpstat::parse_tcp(t, Path::new("net/tcp")))
    }),
    ("kernel_hung", |t| {
        drop(kernel_hung::parse_hung_task_detect_count(
            t,
            Path::new("hung_task_detect_count"),
        ))
    }),
    ("udp_queues", |t| {
        drop(udp_queues::parse_udp(t, Path::new("net/udp")))
    }),
    ("arp", |t| drop(arp::parse_arp(t, Path::new("net/arp")))),
    ("cpufreq", |t| {
        drop(cpufreq::parse_cpu_list(t, Path::new("online")))
    }),
    ("powersupply", |t| {
        drop(powersupplyclass::parse_value(t, Path::new("capacity")))
    }),
    ("os-release", |t| {
        drop(os::parse_os_release(t, Path::new("os-release")))
    }),
    ("textfile", |t| {
        drop(textfile::parse_text(t, Path::new("x.prom")))
    }),
    ("hwmon-sensor-name", |t| {
        let _ = hwmon::explode_sensor_filename(t);
    }),
    ("diskstats", |t| {
        drop(diskstats::parse_diskstats(t, Path::new("diskstats")))
    }),
    ("udev", |t| drop(diskstats::parse_udev_properties(t))),
    ("mountinfo", |t| {
        drop(filesystem::parse_mountinfo(t, Path::new("1/mountinfo")))
    }),
    ("mounts", |t| {
        drop(filesystem::parse_mounts(t, Path::new("mounts")))
    }),
    ("netdev", |t| {
        drop(netdev::parse_net_dev(t, Path::new("net/dev")))
    }),
    ("watchdog", |t| {
        drop(watchdog::parse_attr(t, Path::new("timeout")))
    }),
    ("edac", |t| {
        drop(edac::parse_count(t, Path::new("ce_count")))
    }),
    ("nvme-namespace", |t| {
        let _ = nvme::namespace_id("nvme0", t);
    }),
    ("rapl-zone-name", |t| {
        drop(rapl::name_and_index(
            t,
            &std::collections::HashMap::new(),
            Path::new("name"),
        ))
    }),
    ("cpu_vulnerabilities", |t| {
        drop(cpu_vulnerabilities::parse_vulnerability(
            t,
            Path::new("mds"),
        ))
    }),
    ("tapestats", |t| {
        drop(tapestats::parse_stat(t, Path::new("io_ns")));
        let _ = tapestats::is_drive(t);
    }),
    ("fibrechannel", |t| {
        drop(fibrechannel::parse_counter(t, Path::new("rx_frames")))
    }),
    ("buddyinfo", |t| {
        drop(buddyinfo::parse_buddyinfo(t, Path::new("buddyinfo")))
    }),
    ("softirqs", |t| {
        drop(softirqs::parse_softirqs(t, Path::new("softirqs")))
    }),
    ("mdstat", |t| {
        drop(mdadm::parse_mdstat(t, Path::new("mdstat")))
    }),
    ("nfs", |t| drop(nfs::parse_nfs(t, Path::new("nfs")))),
    ("nfsd", |t| drop(nfsd::parse_nfsd(t, Path::new("nfsd")))),
    ("xfs", |t| drop(xfs::parse_xfs_stats(t, Path::new("stats")))),
    ("zfs-kstat", |t| {
        drop(zfs::parse_kstat(t, Path::new("arcstats"), true))
    }),
    ("zfs-pool-io", |t| {
        drop(zfs::parse_pool_io(t, Path::new("io")))
    }),
    ("zfs-objset", |t| {
        drop(zfs::parse_objset(t, Path::new("objset-0x36")))
    }),
    ("btrfs-commit-stats", |t| {
        drop(btrfs::parse_commit_stats(t, Path::new("commit_stats")))
    }),
    ("bcache-writeback", |t| {
        drop(bcache::parse_writeback_rate_debug(
            t,
            Path::new("writeback_rate_debug"),
        ));
        let _ = bcache::dehumanize(t);
    }),
    ("bcache-priority", |t| {
        drop(bcache::parse_priority_stats(t, Path::new("priority_stats")))
    }),
    ("mountstats", |t| {
        drop(mountstats::parse_mountstats(t, Path::new("mountstats")));
        drop(mountstats::parse_mountinfo_addrs(t, Path::new("mountinfo")));
    }),
    ("go-int", |t| {
        let _ = netclass::parse_go_int(t);
    }),
];
