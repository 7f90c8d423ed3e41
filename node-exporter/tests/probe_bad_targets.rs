//! Every prober given targets that are not addresses: each answers a
//! failed probe (probe_success 0) and none panics.

use exporter_toolkit::exposition::Value;
use node_exporter::probe::{Modules, Prober};

const MODULES: &str = "modules:
  http: {prober: http, timeout: 2s}
  tcp: {prober: tcp, timeout: 2s}
  tcp_tls: {prober: tcp, timeout: 2s, tcp: {tls: true}}
  icmp: {prober: icmp, timeout: 2s}
  dns: {prober: dns, timeout: 2s, dns: {query_name: example.test}}
  dns_tcp: {prober: dns, timeout: 2s, dns: {query_name: example.test, transport_protocol: tcp}}
  grpc: {prober: grpc, timeout: 2s}
  grpc_tls: {prober: grpc, timeout: 2s, grpc: {tls: true}}
";

const TARGETS: &[&str] = &[
    ":",
    "[",
    "]",
    "[::1",
    "::1]:80",
    "a:b:c",
    "http://",
    "https://:",
    "::::",
    "127.0.0.1:99999",
    "127.0.0.1:-1",
    "%zz",
    "\u{0}",
    "ünïcödé.invalid:1",
    "[fe80::1%nope]:1",
    "1.2.3.4.5",
    "-",
];

#[tokio::test]
async fn bad_targets_fail_without_panicking() {
    let modules = Modules::parse(MODULES).unwrap();
    let names: Vec<String> = modules.modules.keys().cloned().collect();
    let prober = Prober::new(modules);
    let long = "a".repeat(5000);
    for module in &names {
        for target in TARGETS.iter().copied().chain([long.as_str()]) {
            let out = prober
                .probe(Some(target), Some(module), Some(3.0))
                .await
                .unwrap_or_else(|e| panic!("{module} {target:?}: refused: {e:?}"));
            let success = out
                .families()
                .iter()
                .find(|f| f.name == "probe_success")
                .unwrap_or_else(|| panic!("{module} {target:?}: no probe_success"));
            let values: Vec<_> = success.series.iter().map(|s| &s.value).collect();
            assert!(
                matches!(values.as_slice(), [Value::Single(v)] if *v == 0.0),
                "{module} {target:?}: {values:?}"
            );
        }
    }
}
