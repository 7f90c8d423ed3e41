//! blackbox_exporter's dns prober: one query (UDP, TCP or DNS over TLS) to
//! the target server, its rcode checked against `valid_rcodes` and each
//! section's records against the module's regexps, matched on the
//! records' text as miekg/dns writes it ("name\tttl\tclass\ttype\trdata").
//! Messages are built and read by hickory-proto.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Instant as StdInstant;

use anyhow::{anyhow, bail, Context};
use exporter_toolkit::exposition::MetricSet;
use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use hickory_proto::serialize::binary::{BinDecodable, BinEncodable};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpSocket, UdpSocket};
use tokio::time::Instant;

use super::common;
use super::config::{Dns, RrValidator};

#[derive(Default)]
struct Phases {
    resolve: f64,
    connect: f64,
    request: f64,
}

pub async fn probe(target: &str, m: &Dns, deadline: Instant, out: &mut MetricSet) -> bool {
    let mut phases = Phases::default();
    let mut response = None;
    let result = tokio::time::timeout_at(deadline, run(target, m, &mut phases, &mut response, out))
        .await
        .unwrap_or_else(|_| Err(anyhow!("timed out")));
    for (phase, secs) in [
        ("resolve", phases.resolve),
        ("connect", phases.connect),
        ("request", phases.request),
    ] {
        out.gauge(
            "probe_dns_duration_seconds",
            "Duration of DNS request by phase",
            &[("phase", phase)],
            secs,
        );
    }
    let counts = response
        .as_ref()
        .map(|r: &Message| {
            (
                r.answers().len(),
                r.name_servers().len(),
                // miekg/dns keeps the OPT record among the additional ones.
                r.additionals().len() + usize::from(r.extensions().is_some()),
            )
        })
        .unwrap_or_default();
    for (name, help, n) in [
        (
            "probe_dns_answer_rrs",
            "Returns number of entries in the answer resource record list",
            counts.0,
        ),
        (
            "probe_dns_authority_rrs",
            "Returns number of entries in the authority resource record list",
            counts.1,
        ),
        (
            "probe_dns_additional_rrs",
            "Returns number of entries in the additional resource record list",
            counts.2,
        ),
    ] {
        out.gauge(name, help, &[], n as f64);
    }
    out.gauge(
        "probe_dns_query_succeeded",
        "Displays whether or not the query was executed successfully",
        &[],
        if response.is_some() { 1.0 } else { 0.0 },
    );
    if let Some(r) = &response {
        if m.query_type == RecordType::SOA {
            let serial = r
                .answers()
                .iter()
                .filter_map(|a| match a.data() {
                    RData::SOA(soa) => Some(soa.serial()),
                    _ => None,
                })
                .next_back()
                .unwrap_or(0);
            out.gauge(
                "probe_dns_serial",
                "Returns the serial number of the zone",
                &[],
                serial as f64,
            );
        }
    }
    match result.and_then(|()| check(response.as_ref(), m)) {
        Ok(()) => true,
        Err(e) => {
            super::common::log("error", "Probe failed", &[("err", &format!("{e:#}"))]);
            false
        }
    }
}

/// The rcode and the three sections against the module.
fn check(response: Option<&Message>, m: &Dns) -> anyhow::Result<()> {
    let r = response.ok_or_else(|| anyhow!("no response"))?;
    let rcode = u16::from(r.response_code());
    if !m.valid_rcodes.contains(&rcode) {
        bail!("rcode {} is not one of valid_rcodes", r.response_code());
    }
    let additional: Vec<String> = r.additionals().iter().map(miekg_text).collect();
    for (section, records, v) in [
        (
            "answer",
            r.answers().iter().map(miekg_text).collect::<Vec<_>>(),
            &m.validate_answer,
        ),
        (
            "authority",
            r.name_servers().iter().map(miekg_text).collect(),
            &m.validate_authority,
        ),
        ("additional", additional, &m.validate_additional),
    ] {
        valid_rrs(&records, v).with_context(|| format!("{section} RRs"))?;
    }
    Ok(())
}

/// blackbox's `validRRs`, on the records' text.
fn valid_rrs(rrs: &[String], v: &RrValidator) -> anyhow::Result<()> {
    if rrs.is_empty() && !v.fail_if_not_matches.is_empty() {
        bail!("fail_if_not_matches_regexp given but no RRs returned");
    }
    if rrs.is_empty() && !v.fail_if_none_matches.is_empty() {
        bail!("fail_if_none_matches_regexp given but no RRs returned");
    }
    let mut all_match = true;
    let mut any_match = false;
    for rr in rrs {
        if let Some(re) = v.fail_if_matches.iter().find(|re| re.is_match(rr)) {
            bail!("{rr:?} matched {:?}", re.as_str());
        }
        all_match &= v.fail_if_all_match.iter().all(|re| re.is_match(rr));
        if let Some(re) = v.fail_if_not_matches.iter().find(|re| !re.is_match(rr)) {
            bail!("{rr:?} did not match {:?}", re.as_str());
        }
        any_match |= v.fail_if_none_matches.iter().any(|re| re.is_match(rr));
    }
    // Despite its name, blackbox fails this one when *not* all records
    // match (its validation "passes if all records match").
    if !v.fail_if_all_match.is_empty() && !all_match {
        bail!("not all RRs matched fail_if_all_match_regexp");
    }
    if !v.fail_if_none_matches.is_empty() && !any_match {
        bail!("no RR matched fail_if_none_matches_regexp");
    }
    Ok(())
}

/// A record as miekg/dns' `RR.String()` writes it, which is what
/// blackbox's regexps are matched against.
fn miekg_text(r: &Record) -> String {
    let data = match r.data() {
        // miekg quotes each string and escapes in it; hickory runs them
        // together.
        RData::TXT(txt) => txt
            .txt_data()
            .iter()
            .map(|t| quoted(t))
            .collect::<Vec<_>>()
            .join(" "),
        d => d.to_string(),
    };
    format!(
        "{}\t{}\t{}\t{}\t{data}",
        r.name(),
        r.ttl(),
        r.dns_class(),
        r.record_type(),
    )
}

/// A character-string as miekg/dns prints it: in quotes, `"` and `\`
/// escaped, bytes outside printable ASCII as `\DDD`.
fn quoted(s: &[u8]) -> String {
    let mut out = String::from("\"");
    for &b in s {
        match b {
            b'"' | b'\\' => {
                out.push('\\');
                out.push(b as char);
            }
            b' '..=b'~' => out.push(b as char),
            _ => out.push_str(&format!("\\{b:03}")),
        }
    }
    out.push('"');
    out
}

async fn run(
    target: &str,
    m: &Dns,
    phases: &mut Phases,
    response: &mut Option<Message>,
    out: &mut MetricSet,
) -> anyhow::Result<()> {
    // A target without a port is a host: port 53 (853 for DNS over TLS).
    let (host, port) = match common::split_host_port(target) {
        Ok(hp) => hp,
        Err(_) => (target.to_string(), if m.dns_over_tls { 853 } else { 53 }),
    };
    let (ip, secs) = common::resolve(&host, &m.ip, out).await?;
    phases.resolve += secs;
    let addr = SocketAddr::new(ip, port);

    let mut name = Name::from_ascii(&m.query_name)
        .with_context(|| format!("query_name {:?}", m.query_name))?;
    name.set_fqdn(true);
    let mut query = Query::query(name, m.query_type);
    query.set_query_class(m.query_class);
    let id: u16 = rand_id();
    let mut msg = Message::new();
    msg.set_id(id)
        .set_message_type(MessageType::Query)
        .set_op_code(OpCode::Query)
        .set_recursion_desired(m.recursion_desired)
        .add_query(query);
    let wire = msg.to_bytes().context("encoding the query")?;

    let start = StdInstant::now();
    let (reply, rtt) = if m.tcp {
        exchange_tcp(addr, &host, m, &wire).await
    } else {
        exchange_udp(addr, m, &wire, id).await
    }
    .inspect_err(|_| phases.connect = start.elapsed().as_secs_f64())?;
    // As blackbox: "connect" is the whole exchange less its round trip.
    phases.request = rtt;
    phases.connect = (start.elapsed().as_secs_f64() - rtt).max(0.0);
    *response = Some(reply);
    Ok(())
}

fn bind_addr(addr: &SocketAddr, m: &Dns) -> anyhow::Result<SocketAddr> {
    match m.source_ip {
        Some(src) if src.is_ipv4() != addr.is_ipv4() => {
            bail!("source_ip_address {src} is not of {addr}'s family")
        }
        Some(src) => Ok(SocketAddr::new(src, 0)),
        None if addr.is_ipv4() => Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0)),
        None => Ok(SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0)),
    }
}

async fn exchange_udp(
    addr: SocketAddr,
    m: &Dns,
    wire: &[u8],
    id: u16,
) -> anyhow::Result<(Message, f64)> {
    let socket = UdpSocket::bind(bind_addr(&addr, m)?)
        .await
        .context("binding a UDP socket")?;
    socket
        .connect(addr)
        .await
        .with_context(|| format!("connecting to {addr}"))?;
    let start = StdInstant::now();
    socket.send(wire).await.context("sending the query")?;
    let mut buf = vec![0u8; 65_535];
    loop {
        let n = socket.recv(&mut buf).await.context("reading the reply")?;
        // A stray or malformed datagram is not the answer: wait on.
        match Message::from_bytes(&buf[..n]) {
            Ok(reply) if reply.id() == id => return Ok((reply, start.elapsed().as_secs_f64())),
            Ok(_) => continue,
            Err(e) => tracing::debug!(error = %e, "dropping a malformed DNS reply"),
        }
    }
}

async fn exchange_tcp(
    addr: SocketAddr,
    host: &str,
    m: &Dns,
    wire: &[u8],
) -> anyhow::Result<(Message, f64)> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .context("creating a socket")?;
    if m.source_ip.is_some() {
        socket.bind(bind_addr(&addr, m)?).context("binding")?;
    }
    let tcp = socket
        .connect(addr)
        .await
        .with_context(|| format!("connecting to {addr}"))?;
    if m.dns_over_tls {
        let connector = common::tls_connector(&m.tls_config, &[])?;
        let name = common::server_name(&m.tls_config, host)?;
        let mut tls = connector
            .connect(name, tcp)
            .await
            .context("TLS handshake")?;
        framed(&mut tls, wire).await
    } else {
        let mut tcp = tcp;
        framed(&mut tcp, wire).await
    }
}

/// One message each way with RFC 1035's two-byte length before it.
async fn framed<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    wire: &[u8],
) -> anyhow::Result<(Message, f64)> {
    let len = u16::try_from(wire.len()).map_err(|_| anyhow!("query too long"))?;
    let start = StdInstant::now();
    let mut framed = len.to_be_bytes().to_vec();
    framed.extend_from_slice(wire);
    s.write_all(&framed).await.context("sending the query")?;
    let mut len = [0u8; 2];
    s.read_exact(&mut len).await.context("reading the reply")?;
    let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
    s.read_exact(&mut buf).await.context("reading the reply")?;
    let reply = Message::from_bytes(&buf).context("decoding the reply")?;
    Ok((reply, start.elapsed().as_secs_f64()))
}

/// A query id that is not predictable from one probe to the next.
fn rand_id() -> u16 {
    let mut b = [0u8; 2];
    if ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b).is_err() {
        // No randomness: the clock's nanoseconds will do for an id.
        let n = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        return n as u16;
    }
    u16::from_be_bytes(b)
}

#[cfg(test)]
mod tests {
    use super::super::Modules;
    use super::*;
    use regex::Regex;

    fn v(field: &str, res: &[&str]) -> RrValidator {
        let res: Vec<Regex> = res.iter().map(|r| Regex::new(r).unwrap()).collect();
        let mut v = RrValidator::default();
        match field {
            "matches" => v.fail_if_matches = res,
            "all" => v.fail_if_all_match = res,
            "not" => v.fail_if_not_matches = res,
            _ => v.fail_if_none_matches = res,
        }
        v
    }

    #[test]
    fn rr_validation_as_blackbox() {
        let rrs = vec![
            "a.\t60\tIN\tA\t10.0.0.1".to_string(),
            "a.\t60\tIN\tA\t10.0.0.2".to_string(),
        ];
        assert!(valid_rrs(&rrs, &v("matches", &["10.0.0.2"])).is_err());
        assert!(valid_rrs(&rrs, &v("matches", &["192"])).is_ok());
        assert!(valid_rrs(&rrs, &v("all", &["10\\.0"])).is_ok());
        assert!(valid_rrs(&rrs, &v("all", &["0.1$"])).is_err());
        assert!(valid_rrs(&rrs, &v("not", &["0.1$"])).is_err());
        assert!(valid_rrs(&rrs, &v("not", &["IN\tA"])).is_ok());
        assert!(valid_rrs(&rrs, &v("none", &["0.2$"])).is_ok());
        assert!(valid_rrs(&rrs, &v("none", &["0.3$"])).is_err());
        // No records: the "must match" lists fail, the others pass.
        assert!(valid_rrs(&[], &v("not", &["x"])).is_err());
        assert!(valid_rrs(&[], &v("none", &["x"])).is_err());
        assert!(valid_rrs(&[], &v("all", &["x"])).is_ok());
    }

    #[test]
    fn records_print_as_miekg() {
        let r = Record::from_rdata(
            Name::from_ascii("www.example.org.").unwrap(),
            300,
            RData::A("192.0.2.7".parse().unwrap()),
        );
        assert_eq!(miekg_text(&r), "www.example.org.\t300\tIN\tA\t192.0.2.7");
        let r = Record::from_rdata(
            Name::from_ascii("t.example.org.").unwrap(),
            60,
            RData::TXT(hickory_proto::rr::rdata::TXT::new(vec![
                "a b".into(),
                "q\"\\\u{7f}".into(),
            ])),
        );
        assert_eq!(
            miekg_text(&r),
            "t.example.org.\t60\tIN\tTXT\t\"a b\" \"q\\\"\\\\\\127\""
        );
    }

    #[test]
    fn bad_dns_modules_name_module_and_option() {
        for (yaml, words) in [
            (
                "modules:\n  d:\n    prober: dns\n    dns:\n      query_name: x\n      query_typ: A\n",
                &["\"d\"", "query_typ"][..],
            ),
            (
                "modules:\n  d:\n    prober: dns\n    dns:\n      query_name: x\n      validate_answer_rrs:\n        fail_if_matches: [x]\n",
                &["\"d\"", "fail_if_matches"],
            ),
            (
                "modules:\n  d:\n    prober: dns\n    dns:\n      query_name: x\n      query_type: AAAAA\n",
                &["\"d\"", "query_type"],
            ),
            (
                "modules:\n  d:\n    prober: dns\n    dns:\n      query_name: x\n      valid_rcodes: [NOPE]\n",
                &["\"d\"", "valid_rcodes"],
            ),
            (
                "modules:\n  d:\n    prober: dns\n    dns:\n      query_name: x\n      transport_protocol: sctp\n",
                &["\"d\"", "transport_protocol"],
            ),
            ("modules:\n  d:\n    prober: dns\n", &["\"d\"", "query_name"]),
        ] {
            let err = format!("{:#}", Modules::parse(yaml).unwrap_err());
            for w in words {
                assert!(err.contains(w), "{yaml}: {err}");
            }
        }
    }
}
