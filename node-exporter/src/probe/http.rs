//! blackbox_exporter's http prober: one request (and its redirects), timed
//! by phase (resolve, connect, tls, processing, transfer, summed over the
//! redirect chain), then checked against the module's expectations. Each
//! hop is done by hand (lookup, TCP, an HTTP proxy's CONNECT, rustls, one
//! HTTP/1.1 or HTTP/2 exchange) so that every phase is measured where it
//! happens.

use std::io::Read as _;
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use anyhow::{anyhow, bail, Context};
use bytes::Bytes;
use exporter_toolkit::exposition::MetricSet;
use exporter_toolkit::http_client::{self, oauth2};
use http::{header, HeaderName, HeaderValue, Request, Uri};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use super::common::{self, log, TlsState};
use super::config::{Auth, Compression, Http, IpProtocol, OAuth2, Proxy, TlsConfig};

/// Go's http.Client gives up after 10 redirects; so does blackbox.
const MAX_REDIRECTS: usize = http_client::MAX_REDIRECTS;
/// The most of a body read for the regexp checks.
const MAX_BODY: usize = 16 << 20;
const PHASES: [&str; 5] = ["resolve", "connect", "tls", "processing", "transfer"];

#[derive(Default)]
struct Timings {
    /// Seconds, in [`PHASES`] order.
    phases: [f64; 5],
    /// Whether the target's name resolved (or was not to be, behind a
    /// proxy): blackbox reports the other phases only then.
    resolved: bool,
    /// `skip_resolve_phase_with_proxy` took effect: blackbox then has no
    /// "resolve" phase at all.
    resolve_skipped: bool,
}

/// What the final response was.
struct Outcome {
    status: u16,
    version: f64,
    content_length: f64,
    body: Bytes,
    /// Why the body could not be read whole (over `body_size_limit`, not
    /// in the module's `compression`): the probe fails.
    body_error: Option<String>,
    headers: http::HeaderMap,
    redirects: usize,
    /// A redirect not followed: Go's client closed its body unread.
    body_unread: bool,
    tls: Option<TlsState>,
}

/// What every hop of one probe sends besides the module's `headers`.
struct Extra {
    body: Bytes,
    authorization: Option<HeaderValue>,
    headers: Vec<(HeaderName, HeaderValue)>,
}

/// Probes `target` and writes blackbox's `probe_http_*` (and `probe_ssl_*`)
/// metrics; returns whether the probe succeeded. Failures are logged with
/// why, as blackbox does.
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
        if *phase == "resolve" && timings.resolve_skipped {
            continue;
        }
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
            log(
                "error",
                "Error for HTTP request",
                &[("err", &format!("{e:#}"))],
            );
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
    if m.enable_http3 {
        bail!("enable_http3: HTTP/3 (QUIC) is not supported by this exporter");
    }
    let mut url: Uri = if target.contains("://") {
        target.parse()
    } else {
        format!("http://{target}").parse()
    }
    .map_err(|e| anyhow!("target {target:?} is not a URL: {e}"))?;
    // Files are read at each probe, as blackbox and Prometheus' client do.
    let body = match &m.body_file {
        Some(f) => std::fs::read(f).with_context(|| format!("body_file {}", f.display()))?,
        None => m.body.clone().unwrap_or_default().into_bytes(),
    };
    let mut extra = Extra {
        body: Bytes::from(body),
        authorization: authorization(m).await?,
        headers: m
            .http_headers
            .resolve()
            .map_err(|e| anyhow!("http_headers: {e}"))?,
    };
    let mut method = m.method.clone();
    let mut redirects = 0;
    let mut first = true;
    loop {
        log(
            "info",
            "Making HTTP request",
            &[("url", &url), ("host", &url.host().unwrap_or(""))],
        );
        let hop = hop(&url, &method, &extra, m, t, out, first).await?;
        first = false;
        let status = hop.status;
        log(
            "info",
            "Received HTTP response",
            &[("status_code", &status)],
        );
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
                url = http_client::resolve_location(&url, &loc).map_err(|e| anyhow!(e))?;
                log("info", "Received redirect", &[("location", &url)]);
                // As Go's client: 301/302/303 turn a POST into a GET.
                if status == 303
                    || ((status == 301 || status == 302) && method == http::Method::POST)
                {
                    method = http::Method::GET;
                    extra.body = Bytes::new();
                }
                continue;
            }
        }
        return Ok(Outcome { redirects, ..hop });
    }
}

/// The Authorization header of the module's `basic_auth`, `authorization`,
/// `bearer_token` or `oauth2` (a token fetched now: blackbox makes a new
/// client, and so a new token source, for each probe).
async fn authorization(m: &Http) -> anyhow::Result<Option<HeaderValue>> {
    let value = match &m.auth {
        None => return Ok(None),
        Some(Auth::Basic(b)) => {
            let user = b.username.as_ref().map(|s| s.read()).transpose()?;
            let pass = b.password.as_ref().map(|s| s.read()).transpose()?;
            let creds = format!("{}:{}", user.unwrap_or_default(), pass.unwrap_or_default());
            format!("Basic {}", http_client::base64(creds.as_bytes()))
        }
        Some(Auth::Header { kind, credentials }) => {
            let c = credentials.as_ref().map(|s| s.read()).transpose()?;
            format!("{kind} {}", c.unwrap_or_default())
        }
        Some(Auth::OAuth2(o)) => oauth2_token(o).await?,
    };
    HeaderValue::from_str(&value)
        .map(Some)
        .map_err(|_| anyhow!("the credentials are not a valid header value"))
}

/// OAuth 2.0 client credentials (RFC 6749 4.4): the client's id and secret
/// by HTTP Basic, as Go's oauth2 tries first; "TYPE TOKEN" back.
async fn oauth2_token(o: &OAuth2) -> anyhow::Result<String> {
    let params: Vec<(String, String)> = o
        .endpoint_params
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let body = oauth2::token_form(&o.scopes, &params).map_err(|e| anyhow!(e))?;
    let secret = o
        .client_secret
        .as_ref()
        .map(|s| s.read())
        .transpose()?
        .unwrap_or_default();
    let basic = oauth2::basic_credentials(&o.client_id, &secret);
    let url: Uri = o
        .token_url
        .parse()
        .map_err(|e| anyhow!("oauth2.token_url {:?}: {e}", o.token_url))?;
    let (mut status, mut reply) = simple_post(&url, Some(&basic), body.clone(), &o.tls)
        .await
        .context("oauth2: fetching a token")?;
    if !(200..300).contains(&status) {
        // Go's auto-detection: refused with the header, try the form.
        let body = oauth2::form_with_credentials(&body, &o.client_id, &secret);
        (status, reply) = simple_post(&url, None, body, &o.tls)
            .await
            .context("oauth2: fetching a token")?;
    }
    if !(200..300).contains(&status) {
        bail!("oauth2: token_url answered {status}");
    }
    Ok(oauth2::parse_reply(None, &reply)
        .map_err(|e| anyhow!(e))?
        .header())
}

/// One form POST over HTTP/1.1 (the token request).
async fn simple_post(
    url: &Uri,
    authorization: Option<&str>,
    body: String,
    tls: &TlsConfig,
) -> anyhow::Result<(u16, Bytes)> {
    let https = match url.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        _ => bail!("{url}: not an http(s) URL"),
    };
    let host = url
        .host()
        .ok_or_else(|| anyhow!("no host in {url}"))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let port = url.port_u16().unwrap_or(if https { 443 } else { 80 });
    let tcp = TcpStream::connect((host.as_str(), port))
        .await
        .with_context(|| format!("connecting to {host}:{port}"))?;
    let mut req = Request::post(url.path_and_query().map(|p| p.as_str()).unwrap_or("/"))
        .header(
            header::HOST,
            url.authority().map(|a| a.as_str()).unwrap_or(&host),
        )
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Full::new(Bytes::from(body)))?;
    if let Some(a) = authorization {
        req.headers_mut()
            .insert(header::AUTHORIZATION, HeaderValue::from_str(a)?);
    }
    async fn send<S>(io: S, req: Request<Full<Bytes>>) -> anyhow::Result<(u16, Bytes)>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io)).await?;
        let conn = tokio::spawn(conn);
        let resp = sender.send_request(req).await?;
        let status = resp.status().as_u16();
        let body = http_body_util::Limited::new(resp.into_body(), 1 << 20)
            .collect()
            .await
            .map_err(|e| anyhow!("reading the reply: {e}"))?
            .to_bytes();
        conn.abort();
        Ok((status, body))
    }
    if https {
        let connector = common::tls_connector(tls, &[b"http/1.1"])?;
        let tls_stream = connector
            .connect(common::server_name(tls, &host)?, tcp)
            .await
            .context("TLS handshake")?;
        send(tls_stream, req).await
    } else {
        send(tcp, req).await
    }
}

/// The proxy a request to `url` goes through, if any (Prometheus'
/// client's rules, the environment read now).
fn proxy_for(url: &Uri, m: &Http) -> anyhow::Result<Option<Uri>> {
    http_client::proxy_for(url, &m.proxy, |n| std::env::var(n).ok()).map_err(|e| anyhow!(e))
}

/// One request/response over a fresh connection (through the proxy, if
/// any).
async fn hop(
    url: &Uri,
    method: &http::Method,
    extra: &Extra,
    m: &Http,
    t: &mut Timings,
    out: &mut MetricSet,
    first: bool,
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
    let proxy = proxy_for(url, m)?;

    // The first hop's lookup is blackbox's chooseProtocol, with its
    // metrics; blackbox skips it behind a `proxy_url` when told to, and
    // redirects are looked up again without them (by the proxy, if any).
    let target_ip = if first {
        let skip = m.skip_resolve_phase_with_proxy && matches!(m.proxy, Proxy::Url { .. });
        if skip && proxy.is_some() {
            t.resolved = true;
            t.resolve_skipped = true;
            None
        } else {
            let ip = IpProtocol {
                preferred: m.preferred_ip_protocol.clone(),
                fallback: m.ip_protocol_fallback,
            };
            let (ip, secs) = common::resolve_timed(&host, &ip, out).await;
            t.phases[0] += secs;
            t.resolved = ip.is_ok();
            Some(ip?)
        }
    } else if proxy.is_none() {
        let start = Instant::now();
        let addr = resolve(&host, port, m).await?;
        t.phases[0] += start.elapsed().as_secs_f64();
        Some(addr.ip())
    } else {
        None
    };
    // blackbox asks for the address it resolved (the proxy too).
    let dial_host = match target_ip {
        Some(IpAddr::V6(a)) => format!("[{a}]"),
        Some(IpAddr::V4(a)) => a.to_string(),
        None => url.host().unwrap_or(&host).to_string(),
    };

    let start = Instant::now();
    let mut tcp = match &proxy {
        None => {
            let ip = target_ip.ok_or_else(|| anyhow!("{host}: no address"))?;
            let addr = SocketAddr::new(ip, port);
            TcpStream::connect(addr)
                .await
                .with_context(|| format!("connecting to {addr}"))?
        }
        Some(p) => {
            let ph = p
                .host()
                .unwrap_or("")
                .trim_start_matches('[')
                .trim_end_matches(']');
            let pp = p.port_u16().unwrap_or(80);
            TcpStream::connect((ph, pp))
                .await
                .with_context(|| format!("connecting to the proxy {ph}:{pp}"))?
        }
    };
    if let (Some(p), true) = (&proxy, https) {
        http_client::connect_tunnel(
            &mut tcp,
            &format!("{dial_host}:{port}"),
            p,
            &m.proxy_connect_header,
        )
        .await
        .map_err(|e| anyhow!(e))?;
    }
    t.phases[1] += start.elapsed().as_secs_f64();

    let authority = url
        .authority()
        .map(|a| a.as_str().to_string())
        .unwrap_or(host.clone());
    let path = url.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let mut headers = http::HeaderMap::new();
    for (k, v) in &m.headers {
        headers.append(k, v.clone());
    }
    if !headers.contains_key(header::USER_AGENT) {
        headers.insert(
            header::USER_AGENT,
            HeaderValue::from_static(concat!("node-exporter-probe/", env!("CARGO_PKG_VERSION"))),
        );
    }
    if let Some(a) = &extra.authorization {
        headers.insert(header::AUTHORIZATION, a.clone());
    }
    for (k, v) in &extra.headers {
        headers.append(k, v.clone());
    }
    if let Some(c) = m.compression {
        // Ask for the coding the body is to be decoded from.
        if !headers.contains_key(header::ACCEPT_ENCODING) {
            headers.insert(header::ACCEPT_ENCODING, HeaderValue::from_static(c.name()));
        }
    }
    let host_header = headers
        .remove(header::HOST)
        .unwrap_or(HeaderValue::from_str(&authority).context("the target's host")?);

    if https {
        let start = Instant::now();
        let alpn: &[&[u8]] = if m.enable_http2 {
            &[b"h2", b"http/1.1"]
        } else {
            &[b"http/1.1"]
        };
        let connector = common::tls_connector(&m.tls, alpn)?;
        let tls = connector
            .connect(common::server_name(&m.tls, &host)?, tcp)
            .await
            .context("TLS handshake")?;
        t.phases[2] += start.elapsed().as_secs_f64();
        let state = TlsState::of(tls.get_ref().1, &m.tls);
        let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
        let req = if h2 {
            // HTTP/2 carries the host in the URI (:authority).
            let auth = host_header.to_str().unwrap_or(&authority);
            request(
                method,
                &format!("https://{auth}{path}"),
                headers,
                None,
                extra,
            )?
        } else {
            request(method, path, headers, Some(host_header), extra)?
        };
        let mut o = exchange(tls, req, h2, m, t).await?;
        o.tls = Some(state);
        Ok(o)
    } else {
        // Plain HTTP through a proxy: the absolute URI, to the address
        // resolved (as blackbox's request), the Host as the target's.
        let uri = match &proxy {
            Some(_) => format!("http://{dial_host}:{port}{path}"),
            None => path.to_string(),
        };
        if let Some(auth) = proxy.as_ref().and_then(http_client::proxy_authorization) {
            headers.insert(header::PROXY_AUTHORIZATION, auth);
        }
        let req = request(method, &uri, headers, Some(host_header), extra)?;
        exchange(tcp, req, false, m, t).await
    }
}

fn request(
    method: &http::Method,
    uri: &str,
    headers: http::HeaderMap,
    host: Option<HeaderValue>,
    extra: &Extra,
) -> anyhow::Result<Request<Full<Bytes>>> {
    let mut req = Request::builder()
        .method(method.clone())
        .uri(uri)
        .body(Full::new(extra.body.clone()))
        .context("building the request")?;
    if let Some(h) = host {
        req.headers_mut().insert(header::HOST, h);
    }
    for (k, v) in headers.iter() {
        req.headers_mut().append(k, v.clone());
    }
    Ok(req)
}

async fn exchange<S>(
    io: S,
    req: Request<Full<Bytes>>,
    h2: bool,
    m: &Http,
    t: &mut Timings,
) -> anyhow::Result<Outcome>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let start = Instant::now();
    let io = TokioIo::new(io);
    let (resp, conn) = if h2 {
        let (mut sender, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
            .await
            .context("HTTP/2 handshake")?;
        let conn = tokio::spawn(conn);
        let resp = sender
            .send_request(req)
            .await
            .context("sending the request")?;
        (resp, conn)
    } else {
        // Header names as Go writes them ("X-Api-Key"): some servers care.
        let (mut sender, conn) = hyper::client::conn::http1::Builder::new()
            .title_case_headers(true)
            .handshake(io)
            .await
            .context("HTTP handshake")?;
        let conn = tokio::spawn(conn);
        let resp = sender
            .send_request(req)
            .await
            .context("sending the request")?;
        (resp, conn)
    };
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
    let mut raw = Vec::new();
    let mut incoming = resp.into_body();
    while let Some(frame) = incoming.frame().await {
        let frame = frame.context("reading the response body")?;
        if let Ok(data) = frame.into_data() {
            let room = MAX_BODY.saturating_sub(raw.len());
            raw.extend_from_slice(&data[..data.len().min(room)]);
        }
    }
    t.phases[4] += start.elapsed().as_secs_f64();
    conn.abort();
    let (body, body_error) = decode(raw, m.compression, m.body_size_limit);
    Ok(Outcome {
        status,
        version,
        content_length,
        body: Bytes::from(body),
        body_error,
        headers,
        redirects: 0,
        body_unread: false,
        tls: None,
    })
}

/// The body as the checks see it: decoded from the module's
/// `compression`, and no longer than `body_size_limit` (more is an error,
/// as Go's MaxBytesReader makes it).
fn decode(
    raw: Vec<u8>,
    compression: Option<Compression>,
    limit: Option<u64>,
) -> (Vec<u8>, Option<String>) {
    let cap = limit.map_or(MAX_BODY as u64, |l| l.min(MAX_BODY as u64)) + 1;
    let mut out = Vec::new();
    let read = match compression {
        None | Some(Compression::Identity) => {
            out = raw;
            Ok(())
        }
        Some(Compression::Gzip) => flate2::read::GzDecoder::new(&raw[..])
            .take(cap)
            .read_to_end(&mut out)
            .map(|_| ()),
        Some(Compression::Deflate) => flate2::read::DeflateDecoder::new(&raw[..])
            .take(cap)
            .read_to_end(&mut out)
            .map(|_| ()),
    };
    if let Err(e) = read {
        let name = compression.map_or("", |c| c.name());
        return (out, Some(format!("decompressing the {name} body: {e}")));
    }
    match limit {
        Some(l) if out.len() as u64 > l => {
            out.truncate(l as usize);
            (out, Some("http: request body too large".to_string()))
        }
        _ => (out, None),
    }
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
    let mut ok = if m.accept_any_response {
        true
    } else if m.valid_status_codes.is_empty() {
        (200..300).contains(&o.status)
    } else {
        m.valid_status_codes.contains(&o.status)
    };
    let mut regex_failed = false;
    if ok && !(m.fail_if_header_matches.is_empty() && m.fail_if_header_not_matches.is_empty()) {
        ok = headers_pass(o, m);
        regex_failed = !ok;
    }
    if !ok {
        log(
            "info",
            "Invalid HTTP response status code",
            &[("status_code", &o.status)],
        );
    }
    let regexes = !(m.fail_if_body_matches.is_empty() && m.fail_if_body_not_matches.is_empty());
    if let (true, Some(e)) = (ok, &o.body_error) {
        // blackbox reads the body through its limit and decoder: that
        // read fails, in the regexp check when there is one.
        log("error", "Failed to read HTTP response body", &[("err", e)]);
        ok = false;
        regex_failed = regexes;
    }
    if ok && regexes {
        // An unread body cannot be read: Go's read fails, and the check.
        ok = !o.body_unread && {
            let text = String::from_utf8_lossy(&o.body);
            !m.fail_if_body_matches.iter().any(|r| r.is_match(&text))
                && m.fail_if_body_not_matches.iter().all(|r| r.is_match(&text))
        };
        regex_failed = !ok;
    }
    let cels =
        m.fail_if_body_json_matches_cel.is_some() || m.fail_if_body_json_not_matches_cel.is_some();
    let mut cel_failed = false;
    if ok && cels {
        ok = !o.body_unread && o.body_error.is_none() && cel_pass(&o.body, m);
        cel_failed = !ok;
    }
    if cels {
        out.gauge(
            "probe_failed_due_to_cel",
            "Indicates if probe failed due to CEL expression not matching",
            &[],
            if cel_failed { 1.0 } else { 0.0 },
        );
    }
    if !m.valid_http_versions.is_empty() {
        let v = if o.version == 2.0 {
            "HTTP/2.0".to_string()
        } else {
            format!("HTTP/{:.1}", o.version)
        };
        if !m
            .valid_http_versions
            .iter()
            .any(|w| *w == v || (w == "HTTP/2" && v == "HTTP/2.0"))
        {
            log("error", "Invalid HTTP version number", &[("version", &v)]);
            ok = false;
        }
    }
    let ssl = o.tls.is_some();
    if m.fail_if_ssl && ssl {
        log("error", "Final request was over SSL", &[]);
        ok = false;
    }
    if m.fail_if_not_ssl && !ssl {
        log("error", "Final request was not over SSL", &[]);
        ok = false;
    }
    out.gauge(
        "probe_failed_due_to_regex",
        "Indicates if probe failed due to regex",
        &[],
        if regex_failed { 1.0 } else { 0.0 },
    );
    ok && !regex_failed
}

/// The `fail_if_body_json_*_cel` checks: the body as JSON is `body`.
fn cel_pass(body: &[u8], m: &Http) -> bool {
    let json: serde_json::Value = match serde_json::from_slice(body) {
        Ok(j) => j,
        Err(e) => {
            log("error", "Error unmarshalling HTTP body", &[("err", &e)]);
            return false;
        }
    };
    let mut ctx = cel_interpreter::Context::default();
    if let Err(e) = ctx.add_variable("body", json) {
        log("error", "Error evaluating CEL expression", &[("err", &e)]);
        return false;
    }
    for (cel, fail_when) in [
        (&m.fail_if_body_json_matches_cel, true),
        (&m.fail_if_body_json_not_matches_cel, false),
    ] {
        let Some(cel) = cel else { continue };
        match cel.program.execute(&ctx) {
            Ok(cel_interpreter::Value::Bool(b)) if b == fail_when => {
                let msg = if fail_when {
                    "Body matched CEL expression"
                } else {
                    "Body did not match CEL expression"
                };
                log("error", msg, &[("expr", &cel.source)]);
                return false;
            }
            Ok(cel_interpreter::Value::Bool(_)) => {}
            Ok(_) => {
                log(
                    "error",
                    "CEL evaluation result is not a boolean",
                    &[("expr", &cel.source)],
                );
                return false;
            }
            Err(e) => {
                log(
                    "error",
                    "Error evaluating CEL expression",
                    &[("expr", &cel.source), ("err", &e)],
                );
                return false;
            }
        }
    }
    true
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

#[cfg(test)]
mod tests {
    use super::*;

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
    fn bodies_decode_within_the_limit() {
        assert_eq!(
            decode(b"hello".to_vec(), None, None),
            (b"hello".to_vec(), None)
        );
        let (body, err) = decode(b"hello".to_vec(), None, Some(3));
        assert_eq!(body, b"hel");
        assert!(err.is_some());
        let (_, err) = decode(b"not gzip".to_vec(), Some(Compression::Gzip), None);
        assert!(err.unwrap().contains("gzip"));
    }
}
