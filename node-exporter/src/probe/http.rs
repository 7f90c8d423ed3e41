//! blackbox_exporter's http prober: one request (and its redirects), timed
//! by phase (resolve, connect, tls, processing, transfer, summed over the
//! redirect chain), then checked against the module's expectations. Each
//! hop is done by hand (lookup, TCP, rustls, one HTTP/1.1 exchange) so that
//! every phase is measured where it happens.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{anyhow, bail, Context};
use bytes::Bytes;
use exporter_toolkit::exposition::MetricSet;
use http::{header, Request, Uri};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::common::{self, TlsState};
use super::config::{Http, IpProtocol, TlsConfig};

/// Go's http.Client gives up after 10 redirects; so does blackbox.
const MAX_REDIRECTS: usize = 10;
/// The most of a body read for the regexp checks.
const MAX_BODY: usize = 16 << 20;
const PHASES: [&str; 5] = ["resolve", "connect", "tls", "processing", "transfer"];

#[derive(Default)]
struct Timings {
    /// Seconds, in [`PHASES`] order.
    phases: [f64; 5],
    /// Whether the target's name resolved: blackbox reports the other
    /// phases only then.
    resolved: bool,
}

/// What the final response was.
struct Outcome {
    status: u16,
    version: f64,
    content_length: f64,
    body: Bytes,
    headers: http::HeaderMap,
    redirects: usize,
    /// A redirect not followed: Go's client closed its body unread.
    body_unread: bool,
    tls: Option<TlsState>,
}

/// Probes `target` and writes blackbox's `probe_http_*` (and `probe_ssl_*`)
/// metrics; returns whether the probe succeeded. Failures are logged at
/// debug level with why, as blackbox does.
pub async fn probe(
    target: &str,
    module: &Http,
    deadline: tokio::time::Instant,
    out: &mut MetricSet,
) -> bool {
    let mut timings = Timings::default();
    let result = tokio::time::timeout_at(deadline, run(target, module, &mut timings, out))
        .await
        .unwrap_or_else(|_| Err(anyhow!("timed out")));
    let phases = if timings.resolved { PHASES.len() } else { 1 };
    for (phase, secs) in PHASES.iter().zip(timings.phases).take(phases) {
        out.gauge(
            "probe_http_duration_seconds",
            "Duration of http request by phase, summed over all redirects",
            &[("phase", phase)],
            secs,
        );
    }
    match result {
        Ok(outcome) => check(&outcome, module, out),
        Err(e) => {
            tracing::debug!(target = target, error = format!("{e:#}"), "probe failed");
            for (name, help) in [
                ("probe_http_status_code", "Response HTTP status code"),
                (
                    "probe_http_uncompressed_body_length",
                    "Length of uncompressed response body",
                ),
                (
                    "probe_http_content_length",
                    "Length of http content response",
                ),
                ("probe_http_redirects", "The number of redirects"),
                (
                    "probe_http_ssl",
                    "Indicates if SSL was used for the final redirect",
                ),
                (
                    "probe_http_version",
                    "Returns the version of HTTP of the probe response",
                ),
                (
                    "probe_failed_due_to_regex",
                    "Indicates if probe failed due to regex",
                ),
            ] {
                out.gauge(name, help, &[], 0.0);
            }
            false
        }
    }
}

async fn run(
    target: &str,
    m: &Http,
    t: &mut Timings,
    out: &mut MetricSet,
) -> anyhow::Result<Outcome> {
    let mut url: Uri = if target.contains("://") {
        target.parse()
    } else {
        format!("http://{target}").parse()
    }
    .map_err(|e| anyhow!("target {target:?} is not a URL: {e}"))?;
    let mut method = m.method.clone();
    let mut body = m.body.clone().unwrap_or_default();
    let mut redirects = 0;
    let mut dns_reported = false;
    loop {
        let hop = hop(&url, &method, &body, m, t, out, &mut dns_reported).await?;
        let status = hop.status;
        let location = hop
            .headers
            .get(header::LOCATION)
            .and_then(|l| l.to_str().ok())
            .map(str::to_string);
        // The statuses Go's client follows, when they say where to.
        if matches!(status, 301 | 302 | 303 | 307 | 308) {
            if let Some(loc) = location {
                // blackbox counts the redirect before deciding not to
                // follow it; Go then hands back this response, its body
                // closed unread.
                redirects += 1;
                if !m.follow_redirects || redirects > MAX_REDIRECTS {
                    return Ok(Outcome {
                        redirects,
                        body_unread: true,
                        ..hop
                    });
                }
                url = resolve_location(&url, &loc)?;
                // As Go's client: 301/302/303 turn a POST into a GET.
                if status == 303
                    || ((status == 301 || status == 302) && method == http::Method::POST)
                {
                    method = http::Method::GET;
                    body.clear();
                }
                continue;
            }
        }
        return Ok(Outcome { redirects, ..hop });
    }
}

/// One request/response over a fresh connection.
async fn hop(
    url: &Uri,
    method: &http::Method,
    body: &str,
    m: &Http,
    t: &mut Timings,
    out: &mut MetricSet,
    dns_reported: &mut bool,
) -> anyhow::Result<Outcome> {
    let https = match url.scheme_str() {
        Some("https") => true,
        Some("http") | None => false,
        Some(s) => bail!("unsupported scheme {s:?} in {url}"),
    };
    let host = url.host().ok_or_else(|| anyhow!("no host in {url}"))?;
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let port = url.port_u16().unwrap_or(if https { 443 } else { 80 });

    // The first hop's lookup is blackbox's chooseProtocol, with its
    // metrics; redirects are looked up again without them.
    let addr = if !*dns_reported {
        *dns_reported = true;
        let ip = IpProtocol {
            preferred: m.preferred_ip_protocol.clone(),
            fallback: m.ip_protocol_fallback,
        };
        let (ip, secs) = common::resolve_timed(&host, &ip, out).await;
        t.phases[0] += secs;
        t.resolved = ip.is_ok();
        SocketAddr::new(ip?, port)
    } else {
        let start = Instant::now();
        let addr = resolve(&host, port, m).await?;
        t.phases[0] += start.elapsed().as_secs_f64();
        addr
    };

    let start = Instant::now();
    let tcp = TcpStream::connect(addr)
        .await
        .with_context(|| format!("connecting to {addr}"))?;
    t.phases[1] += start.elapsed().as_secs_f64();

    let authority = url
        .authority()
        .map(|a| a.as_str().to_string())
        .unwrap_or(host.clone());
    let path = url.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let mut req = Request::builder().method(method.clone()).uri(path);
    let mut has_host = false;
    for (k, v) in &m.headers {
        has_host |= *k == header::HOST;
        req = req.header(k, v);
    }
    if !has_host {
        req = req.header(header::HOST, authority);
    }
    if !m.headers.iter().any(|(k, _)| *k == header::USER_AGENT) {
        req = req.header(
            header::USER_AGENT,
            concat!("node-exporter-probe/", env!("CARGO_PKG_VERSION")),
        );
    }
    if let Some(auth) = &m.basic_auth {
        let creds = format!(
            "{}:{}",
            auth.username,
            auth.password.as_deref().unwrap_or("")
        );
        req = req.header(
            header::AUTHORIZATION,
            format!("Basic {}", base64(creds.as_bytes())),
        );
    } else if let Some(token) = &m.bearer_token {
        req = req.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let req = req
        .body(Full::new(Bytes::from(body.to_string())))
        .context("building the request")?;

    if https {
        let start = Instant::now();
        let config = tls_config(&m.tls)?;
        let name = m.tls.server_name.clone().unwrap_or(host.clone());
        let server_name = rustls::pki_types::ServerName::try_from(name.clone())
            .map_err(|_| anyhow!("{name:?} is not a valid TLS server name"))?;
        let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(server_name, tcp)
            .await
            .context("TLS handshake")?;
        t.phases[2] += start.elapsed().as_secs_f64();
        let state = TlsState::of(tls.get_ref().1, &m.tls);
        let mut o = exchange(TokioIo::new(tls), req, t).await?;
        o.tls = Some(state);
        Ok(o)
    } else {
        exchange(TokioIo::new(tcp), req, t).await
    }
}

async fn exchange<S>(
    io: TokioIo<S>,
    req: Request<Full<Bytes>>,
    t: &mut Timings,
) -> anyhow::Result<Outcome>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let start = Instant::now();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .context("HTTP handshake")?;
    let conn = tokio::spawn(conn);
    let resp = sender
        .send_request(req)
        .await
        .context("sending the request")?;
    t.phases[3] += start.elapsed().as_secs_f64();
    let start = Instant::now();
    let status = resp.status().as_u16();
    let version = match resp.version() {
        http::Version::HTTP_10 => 1.0,
        http::Version::HTTP_2 => 2.0,
        _ => 1.1,
    };
    let headers = resp.headers().clone();
    // Go reports -1 when the server sent no Content-Length.
    let content_length = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(-1.0);
    let mut body = Vec::new();
    let mut incoming = resp.into_body();
    while let Some(frame) = incoming.frame().await {
        let frame = frame.context("reading the response body")?;
        if let Ok(data) = frame.into_data() {
            let room = MAX_BODY.saturating_sub(body.len());
            body.extend_from_slice(&data[..data.len().min(room)]);
        }
    }
    t.phases[4] += start.elapsed().as_secs_f64();
    conn.abort();
    Ok(Outcome {
        status,
        version,
        content_length,
        body: Bytes::from(body),
        headers,
        redirects: 0,
        body_unread: false,
        tls: None,
    })
}

/// The first address of the preferred family, else (with fallback) any.
async fn resolve(host: &str, port: u16, m: &Http) -> anyhow::Result<SocketAddr> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .with_context(|| format!("resolving {host}"))?
        .collect();
    let want_v4 = m.preferred_ip_protocol == "ip4";
    addrs
        .iter()
        .find(|a| a.is_ipv4() == want_v4)
        .or_else(|| addrs.first().filter(|_| m.ip_protocol_fallback))
        .copied()
        .ok_or_else(|| anyhow!("resolving {host}: no {} address", m.preferred_ip_protocol))
}

fn check(o: &Outcome, m: &Http, out: &mut MetricSet) -> bool {
    out.gauge(
        "probe_http_status_code",
        "Response HTTP status code",
        &[],
        o.status as f64,
    );
    out.gauge(
        "probe_http_content_length",
        "Length of http content response",
        &[],
        o.content_length,
    );
    out.gauge(
        "probe_http_uncompressed_body_length",
        "Length of uncompressed response body",
        &[],
        if o.body_unread {
            0.0
        } else {
            o.body.len() as f64
        },
    );
    out.gauge(
        "probe_http_redirects",
        "The number of redirects",
        &[],
        o.redirects as f64,
    );
    out.gauge(
        "probe_http_ssl",
        "Indicates if SSL was used for the final redirect",
        &[],
        if o.tls.is_some() { 1.0 } else { 0.0 },
    );
    out.gauge(
        "probe_http_version",
        "Returns the version of HTTP of the probe response",
        &[],
        o.version,
    );
    if let Some(tls) = &o.tls {
        common::tls_metrics(tls, "Returns last SSL chain expiry in unixtime", out);
    }
    // Go's http.ParseTime: the header's date, when it has a valid one.
    if let Some(when) = o
        .headers
        .get(header::LAST_MODIFIED)
        .and_then(|v| v.to_str().ok())
        .and_then(http_date)
    {
        out.gauge(
            "probe_http_last_modified_timestamp_seconds",
            "Returns the Last-Modified HTTP response header in unixtime",
            &[],
            when,
        );
    }
    // blackbox's order: the status; then, while all is well, the headers'
    // regexps and the body's; then the HTTP version and TLS.
    let mut ok = if m.valid_status_codes.is_empty() {
        (200..300).contains(&o.status)
    } else {
        m.valid_status_codes.contains(&o.status)
    };
    let mut regex_failed = false;
    if ok && !(m.fail_if_header_matches.is_empty() && m.fail_if_header_not_matches.is_empty()) {
        ok = headers_pass(o, m);
        regex_failed = !ok;
    }
    if ok && !(m.fail_if_body_matches.is_empty() && m.fail_if_body_not_matches.is_empty()) {
        // An unread body cannot be read: Go's read fails, and the check.
        ok = !o.body_unread && {
            let text = String::from_utf8_lossy(&o.body);
            !m.fail_if_body_matches.iter().any(|r| r.is_match(&text))
                && m.fail_if_body_not_matches.iter().all(|r| r.is_match(&text))
        };
        regex_failed = !ok;
    }
    if !m.valid_http_versions.is_empty() {
        let v = if o.version == 2.0 {
            "HTTP/2.0".to_string()
        } else {
            format!("HTTP/{:.1}", o.version)
        };
        ok &= m
            .valid_http_versions
            .iter()
            .any(|w| *w == v || (w == "HTTP/2" && v == "HTTP/2.0"));
    }
    let ssl = o.tls.is_some();
    ok &= !(m.fail_if_ssl && ssl || m.fail_if_not_ssl && !ssl);
    out.gauge(
        "probe_failed_due_to_regex",
        "Indicates if probe failed due to regex",
        &[],
        if regex_failed { 1.0 } else { 0.0 },
    );
    ok && !regex_failed
}

/// The `fail_if_header_*` checks: a missing header fails unless allowed.
fn headers_pass(o: &Outcome, m: &Http) -> bool {
    let values = |h: &str| -> Vec<String> {
        o.headers
            .get_all(h)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect()
    };
    for hm in &m.fail_if_header_matches {
        let vs = values(&hm.header);
        if (vs.is_empty() && !hm.allow_missing) || vs.iter().any(|v| hm.regexp.is_match(v)) {
            return false;
        }
    }
    for hm in &m.fail_if_header_not_matches {
        let vs = values(&hm.header);
        if (vs.is_empty() && !hm.allow_missing)
            || (!vs.is_empty() && !vs.iter().any(|v| hm.regexp.is_match(v)))
        {
            return false;
        }
    }
    true
}

/// A `Location` against the URL it came from (absolute, scheme-relative,
/// absolute-path or relative-path).
fn resolve_location(base: &Uri, loc: &str) -> anyhow::Result<Uri> {
    let scheme = base.scheme_str().unwrap_or("http");
    let authority = base.authority().map(|a| a.as_str()).unwrap_or("");
    let s = if loc.contains("://") {
        loc.to_string()
    } else if let Some(rest) = loc.strip_prefix("//") {
        format!("{scheme}://{rest}")
    } else if loc.starts_with('/') {
        format!("{scheme}://{authority}{loc}")
    } else {
        let dir = base.path().rsplit_once('/').map(|(d, _)| d).unwrap_or("");
        format!("{scheme}://{authority}{dir}/{loc}")
    };
    s.parse()
        .map_err(|e| anyhow!("redirect to {loc:?}: not a URL: {e}"))
}

fn tls_config(c: &TlsConfig) -> anyhow::Result<rustls::ClientConfig> {
    exporter_toolkit::tls::client_config(&exporter_toolkit::tls::ClientTls {
        ca_file: c.ca_file.as_ref().map(Into::into),
        cert_file: c.cert_file.as_ref().map(Into::into),
        key_file: c.key_file.as_ref().map(Into::into),
        insecure_skip_verify: c.insecure_skip_verify,
    })
    .map_err(anyhow::Error::msg)
}

/// An IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT"), the form RFC 9110
/// has senders use, in Unix seconds.
fn http_date(s: &str) -> Option<f64> {
    let parts: Vec<&str> = s.split_whitespace().collect();
    let [_, day, month, year, time, "GMT"] = parts.as_slice() else {
        return None;
    };
    let day: i64 = day.parse().ok()?;
    let month = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ]
    .iter()
    .position(|m| m == month)? as i64
        + 1;
    let year: i64 = year.parse().ok()?;
    let hms: Vec<i64> = time
        .split(':')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    let [h, mi, sec] = hms.as_slice() else {
        return None;
    };
    if !(1..=31).contains(&day) || *h > 23 || *mi > 59 || *sec > 60 {
        return None;
    }
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some((days * 86_400 + h * 3600 + mi * 60 + sec) as f64)
}

fn base64(input: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(input)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_resolve_like_a_browser() {
        let base: Uri = "http://a:8080/x/y?q=1".parse().unwrap();
        assert_eq!(resolve_location(&base, "/z").unwrap(), "http://a:8080/z");
        assert_eq!(resolve_location(&base, "z").unwrap(), "http://a:8080/x/z");
        assert_eq!(resolve_location(&base, "//b/c").unwrap(), "http://b/c");
        assert_eq!(resolve_location(&base, "https://c/").unwrap(), "https://c/");
    }

    #[test]
    fn last_modified_dates() {
        assert_eq!(
            http_date("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(784_111_777.0)
        );
        assert_eq!(http_date("Thu, 01 Jan 1970 00:00:00 GMT"), Some(0.0));
        assert_eq!(http_date("Sun, 06 Nov 1994 08:49:37 CET"), None);
        assert_eq!(http_date("yesterday"), None);
        assert_eq!(http_date("Sun, 06 Foo 1994 08:49:37 GMT"), None);
    }

    #[test]
    fn basic_auth_encoding() {
        assert_eq!(base64(b"user:pass"), "dXNlcjpwYXNz");
        assert_eq!(base64(b"a"), "YQ==");
        assert_eq!(base64(b"ab"), "YWI=");
    }
}
