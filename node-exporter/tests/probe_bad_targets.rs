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
  http_proxy: {prober: http, timeout: 2s, http: {proxy_url: 'http://u:p@127.0.0.1:1', skip_resolve_phase_with_proxy: true, proxy_connect_header: {X: [y]}}}
  http_no_proxy: {prober: http, timeout: 2s, http: {proxy_url: 'http://127.0.0.1:1', no_proxy: '*.invalid,::1/128,[,:'}}
  http_env_proxy: {prober: http, timeout: 2s, http: {proxy_from_environment: true}}
  http_oauth2: {prober: http, timeout: 2s, http: {oauth2: {client_id: a, token_url: 'http://127.0.0.1:1/t'}}}
  http_gzip: {prober: http, timeout: 2s, http: {compression: gzip, body_size_limit: 1KB, enable_http2: true, fail_if_body_json_matches_cel: 'body.x'}}
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

/// A modules file with every prober's options, each byte of it deleted or
/// replaced in turn: loading answers a module or an error, never a panic.
#[test]
fn mangled_modules_files_never_panic() {
    let full = "modules:
  t:
    prober: tcp
    timeout: 5s
    tcp:
      preferred_ip_protocol: ip4
      ip_protocol_fallback: false
      source_ip_address: 127.0.0.1
      query_response: [{expect: '^220 (\\w+)', send: 'HELLO ${1}', starttls: true}]
      tls: true
      tls_config: {insecure_skip_verify: true, server_name: a}
  d:
    prober: dns
    dns:
      query_name: example.test
      query_type: SOA
      query_class: IN
      transport_protocol: tcp
      dns_over_tls: true
      recursion_desired: false
      valid_rcodes: [NOERROR, NXDOMAIN]
      validate_answer_rrs: {fail_if_matches_regexp: [a], fail_if_all_match_regexp: [b]}
      validate_authority_rrs: {fail_if_not_matches_regexp: [c], fail_if_none_matches_regexp: [d]}
  i:
    prober: icmp
    icmp: {payload_size: 64, dont_fragment: true, ttl: 9, source_ip_address: '::1'}
  g:
    prober: grpc
    grpc: {service: s, tls: true, preferred_ip_protocol: ip6}
  h:
    prober: http
    http:
      body_size_limit: 1MB
      compression: gzip
      headers: {Accept-Encoding: 'gzip, br;q=0'}
      http_headers: {X-A: {values: [a], secrets: [b], files: [/f]}}
      proxy_url: 'http://u:p@127.0.0.1:3128'
      no_proxy: 'example.com,10.0.0.0/8'
      proxy_connect_header: {X-T: [a]}
      skip_resolve_phase_with_proxy: true
      oauth2: {client_id: a, client_secret: b, token_url: 'http://t/', scopes: [s], endpoint_params: {k: v}}
      tls_config: {min_version: TLS12, max_version: TLS13}
      fail_if_body_json_matches_cel: \"body.a == 'b' && body.c.startsWith('d')\"
      fail_if_header_matches: [{header: X, regexp: y, allow_missing: true}]
      valid_http_versions: [HTTP/1.1, HTTP/3.0]
      enable_http2: false
      enable_http3: false
      accept_any_response: true
      body_file: /b
";
    assert!(Modules::parse(full).is_ok());
    let bytes = full.as_bytes();
    let mut parsed = 0;
    for i in 0..bytes.len() {
        for replacement in [None, Some(b':'), Some(b'[')] {
            let mut m = bytes[..i].to_vec();
            m.extend(replacement);
            m.extend_from_slice(&bytes[i + 1..]);
            if let Ok(text) = String::from_utf8(m) {
                let _ = Modules::parse(&text);
                parsed += 1;
            }
        }
    }
    assert!(parsed > 1000, "{parsed}");
}

/// A server that accepts and never says a word: each prober over TCP gives
/// up at the module's timeout with a failed probe (blackbox 0.23's grpc
/// prober would wait for ever; ours reports DEADLINE_EXCEEDED).
#[tokio::test]
async fn silent_servers_time_out() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            held.push(s);
        }
    });
    let modules = Modules::parse(
        "modules:
  tcp: {prober: tcp, timeout: 1s, tcp: {query_response: [{expect: x}]}}
  tcp_tls: {prober: tcp, timeout: 1s, tcp: {tls: true}}
  dns: {prober: dns, timeout: 1s, dns: {query_name: a.test, transport_protocol: tcp}}
  grpc: {prober: grpc, timeout: 1s}
  http: {prober: http, timeout: 1s}
",
    )
    .unwrap();
    let prober = Prober::new(modules);
    for (module, target) in [
        ("tcp", addr.to_string()),
        ("tcp_tls", addr.to_string()),
        ("dns", addr.to_string()),
        ("grpc", addr.to_string()),
        ("http", format!("http://{addr}/")),
    ] {
        let start = std::time::Instant::now();
        let out = prober
            .probe(Some(&target), Some(module), None)
            .await
            .unwrap();
        let took = start.elapsed();
        assert!(
            took >= std::time::Duration::from_millis(900)
                && took < std::time::Duration::from_secs(3),
            "{module}: {took:?}"
        );
        let value = |name: &str| {
            out.families()
                .iter()
                .find(|f| f.name == name)
                .and_then(|f| match f.series.first().map(|s| &s.value) {
                    Some(Value::Single(v)) => Some(*v),
                    _ => None,
                })
        };
        assert_eq!(value("probe_success"), Some(0.0), "{module}");
        if module == "grpc" {
            assert_eq!(value("probe_grpc_status_code"), Some(4.0));
        }
    }
}
