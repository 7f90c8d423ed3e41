//! blackbox_exporter's grpc prober: one `grpc.health.v1.Health/Check`
//! call over HTTP/2 (hyper's client, cleartext or TLS with ALPN "h2"),
//! its messages (de)coded by prost. The probe succeeds when the call does
//! and the service answers SERVING. The call goes to the address the
//! lookup chose (blackbox 0.23 hands grpc-go "host:port" to resolve again,
//! which for an IPv6 address cannot work).

use std::net::SocketAddr;
use std::time::Instant as StdInstant;

use anyhow::{anyhow, Context};
use bytes::{Buf, Bytes};
use exporter_toolkit::exposition::MetricSet;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use prost::Message as _;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::common::{self, TlsState};
use super::config::Grpc;

/// grpc.health.v1.HealthCheckRequest.
#[derive(Clone, PartialEq, prost::Message)]
pub struct HealthCheckRequest {
    #[prost(string, tag = "1")]
    pub service: String,
}

/// grpc.health.v1.HealthCheckResponse.
#[derive(Clone, PartialEq, prost::Message)]
pub struct HealthCheckResponse {
    #[prost(int32, tag = "1")]
    pub status: i32,
}

/// HealthCheckResponse.ServingStatus, by number.
pub const SERVING_STATUSES: [&str; 4] = ["UNKNOWN", "SERVING", "NOT_SERVING", "SERVICE_UNKNOWN"];

/// gRPC's codes.
const OK: u32 = 0;
const UNKNOWN: u32 = 2;
const DEADLINE_EXCEEDED: u32 = 4;
const UNIMPLEMENTED: u32 = 12;
const INTERNAL: u32 = 13;
const UNAVAILABLE: u32 = 14;
const UNAUTHENTICATED: u32 = 16;
const PERMISSION_DENIED: u32 = 7;

/// What the call came to.
struct Call {
    code: u32,
    /// The serving status' name, when the call succeeded.
    serving: Option<String>,
    tls: Option<TlsState>,
}

pub async fn probe(target: &str, m: &Grpc, deadline: Instant, out: &mut MetricSet) -> bool {
    let mut resolve_secs = 0.0;
    let mut check_start = None;
    let result = tokio::time::timeout_at(
        deadline,
        run(target, m, &mut resolve_secs, &mut check_start, out),
    )
    .await;
    let call = match result {
        Ok(Ok(call)) => Some(call),
        Ok(Err(e)) => {
            super::common::log("error", "Probe failed", &[("err", &format!("{e:#}"))]);
            None
        }
        // blackbox 0.23 calls without a deadline and would hang on; the
        // code of a call that ran out of time says what happened.
        Err(_) => check_start.map(|_| Call {
            code: DEADLINE_EXCEEDED,
            serving: None,
            tls: None,
        }),
    };
    out.gauge(
        "probe_grpc_duration_seconds",
        "Duration of gRPC request by phase",
        &[("phase", "resolve")],
        resolve_secs,
    );
    // The call's time, whether it ended or ran out of time.
    if let Some(secs) = check_start.map(|s: StdInstant| s.elapsed().as_secs_f64()) {
        out.gauge(
            "probe_grpc_duration_seconds",
            "Duration of gRPC request by phase",
            &[("phase", "check")],
            secs,
        );
    }
    let ssl = call.as_ref().is_some_and(|c| c.tls.is_some());
    out.gauge(
        "probe_grpc_ssl",
        "Indicates if SSL was used for the connection",
        &[],
        if ssl { 1.0 } else { 0.0 },
    );
    out.gauge(
        "probe_grpc_status_code",
        "Response gRPC status code",
        &[],
        call.as_ref().map(|c| c.code as f64).unwrap_or(0.0),
    );
    // As blackbox: the family only once the call was made.
    if let Some(c) = &call {
        for s in SERVING_STATUSES {
            let v = if c.serving.as_deref() == Some(s) {
                1.0
            } else {
                0.0
            };
            out.gauge(
                "probe_grpc_healthcheck_response",
                "Response HealthCheck response",
                &[("serving_status", s)],
                v,
            );
        }
        if let Some(other) = c
            .serving
            .as_deref()
            .filter(|s| !SERVING_STATUSES.contains(s))
        {
            out.gauge(
                "probe_grpc_healthcheck_response",
                "Response HealthCheck response",
                &[("serving_status", other)],
                1.0,
            );
        }
    }
    let tls = call.as_ref().and_then(|c| c.tls.as_ref());
    // blackbox registers the expiry always: 0 without TLS.
    out.gauge(
        "probe_ssl_earliest_cert_expiry",
        "Returns last SSL chain expiry in unixtime",
        &[],
        tls.and_then(TlsState::earliest_expiry).unwrap_or(0.0),
    );
    if let Some(t) = tls {
        out.gauge(
            "probe_tls_version_info",
            "Returns the TLS version used or NaN when unknown",
            &[("version", &t.version)],
            1.0,
        );
        common::last_chain_info(t, out);
    }
    call.is_some_and(|c| c.code == OK && c.serving.as_deref() == Some("SERVING"))
}

async fn run(
    target: &str,
    m: &Grpc,
    resolve_secs: &mut f64,
    check_start: &mut Option<StdInstant>,
    out: &mut MetricSet,
) -> anyhow::Result<Call> {
    let rest = target
        .strip_prefix("http://")
        .or_else(|| target.strip_prefix("https://"))
        .unwrap_or(target);
    let authority = rest.split('/').next().unwrap_or("");
    let (host, port) = match common::split_host_port(authority) {
        Ok(hp) => hp,
        Err(_) => (authority.to_string(), if m.tls { 443 } else { 80 }),
    };
    let (ip, secs) = common::resolve(&host, &m.ip, out).await?;
    *resolve_secs += secs;
    *check_start = Some(StdInstant::now());
    let call = check(SocketAddr::new(ip, port), &host, m).await;
    Ok(call.unwrap_or_else(|e| {
        tracing::debug!(error = format!("{e:#}"), "health check failed");
        // What Go's client says of a connection it could not make.
        Call {
            code: UNAVAILABLE,
            serving: None,
            tls: None,
        }
    }))
}

async fn check(addr: SocketAddr, host: &str, m: &Grpc) -> anyhow::Result<Call> {
    let tcp = TcpStream::connect(addr)
        .await
        .with_context(|| format!("connecting to {addr}"))?;
    let authority = if host.contains(':') {
        format!("[{host}]:{}", addr.port())
    } else {
        format!("{host}:{}", addr.port())
    };
    if m.tls {
        let connector = common::tls_connector(&m.tls_config, &[b"h2"])?;
        let name = common::server_name(&m.tls_config, host)?;
        let tls = connector
            .connect(name, tcp)
            .await
            .context("TLS handshake")?;
        let state = TlsState::of(tls.get_ref().1, &m.tls_config);
        let mut call = call(tls, "https", &authority, &m.service).await?;
        // Go's client knows the peer only of a call that succeeded.
        if call.code == OK {
            call.tls = Some(state);
        }
        Ok(call)
    } else {
        call(tcp, "http", &authority, &m.service).await
    }
}

async fn call<S>(io: S, scheme: &str, authority: &str, service: &str) -> anyhow::Result<Call>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(io))
            .await
            .context("HTTP/2 handshake")?;
    let conn = tokio::spawn(conn);
    let message = HealthCheckRequest {
        service: service.to_string(),
    }
    .encode_to_vec();
    // gRPC's framing: uncompressed flag, length, message.
    let mut body = vec![0u8];
    body.extend_from_slice(&(message.len() as u32).to_be_bytes());
    body.extend_from_slice(&message);
    let req = http::Request::post(format!(
        "{scheme}://{authority}/grpc.health.v1.Health/Check"
    ))
    .header("content-type", "application/grpc")
    .header("te", "trailers")
    .header(
        "user-agent",
        concat!("node-exporter-probe/", env!("CARGO_PKG_VERSION")),
    )
    .body(Full::new(Bytes::from(body)))
    .context("building the request")?;
    let result = exchange(&mut sender, req).await;
    conn.abort();
    result
}

async fn exchange(
    sender: &mut hyper::client::conn::http2::SendRequest<Full<Bytes>>,
    req: http::Request<Full<Bytes>>,
) -> anyhow::Result<Call> {
    let resp = sender.send_request(req).await.context("sending the call")?;
    let status = resp.status();
    if status != http::StatusCode::OK {
        return Ok(Call {
            code: http_to_grpc(status.as_u16()),
            serving: None,
            tls: None,
        });
    }
    let mut code = grpc_status(resp.headers());
    let mut body = Vec::new();
    let mut incoming = resp.into_body();
    while let Some(frame) = incoming.frame().await {
        let frame = frame.context("reading the reply")?;
        match frame.into_data() {
            Ok(d) => body.extend_from_slice(d.chunk()),
            Err(frame) => {
                if let Ok(t) = frame.into_trailers() {
                    code = code.or(grpc_status(&t));
                }
            }
        }
    }
    // No grpc-status at all is a broken reply.
    let code = code.unwrap_or(INTERNAL);
    if code != OK {
        return Ok(Call {
            code,
            serving: None,
            tls: None,
        });
    }
    let message = unframe(&body)?;
    let reply = HealthCheckResponse::decode(message).context("decoding the reply")?;
    let serving = usize::try_from(reply.status)
        .ok()
        .and_then(|i| SERVING_STATUSES.get(i))
        .map(|s| s.to_string())
        .unwrap_or_else(|| reply.status.to_string());
    Ok(Call {
        code: OK,
        serving: Some(serving),
        tls: None,
    })
}

/// The one message of a unary reply, out of its 5-byte frame.
fn unframe(body: &[u8]) -> anyhow::Result<&[u8]> {
    if body.len() < 5 {
        return Err(anyhow!("reply shorter than a gRPC frame"));
    }
    if body[0] != 0 {
        return Err(anyhow!("compressed reply, which was not asked for"));
    }
    let len = u32::from_be_bytes([body[1], body[2], body[3], body[4]]) as usize;
    body.get(5..5 + len)
        .ok_or_else(|| anyhow!("reply frame of {len} bytes cut short"))
}

fn grpc_status(h: &http::HeaderMap) -> Option<u32> {
    h.get("grpc-status")?.to_str().ok()?.trim().parse().ok()
}

/// gRPC's mapping of an HTTP status without grpc-status to a code.
fn http_to_grpc(status: u16) -> u32 {
    match status {
        400 => INTERNAL,
        401 => UNAUTHENTICATED,
        403 => PERMISSION_DENIED,
        404 => UNIMPLEMENTED,
        429 | 502 | 503 | 504 => UNAVAILABLE,
        _ => UNKNOWN,
    }
}

#[cfg(test)]
mod tests {
    use super::super::Modules;
    use super::*;

    #[test]
    fn frames_are_checked() {
        assert!(unframe(&[0, 0, 0]).is_err());
        assert!(unframe(&[1, 0, 0, 0, 0]).is_err());
        assert!(unframe(&[0, 0, 0, 0, 9, 1]).is_err());
        assert_eq!(unframe(&[0, 0, 0, 0, 2, 8, 1]).unwrap(), &[8, 1]);
        let r = HealthCheckResponse::decode(&[8u8, 1][..]).unwrap();
        assert_eq!(SERVING_STATUSES[r.status as usize], "SERVING");
    }

    #[test]
    fn http_statuses_map_as_grpc_says() {
        assert_eq!(http_to_grpc(404), UNIMPLEMENTED);
        assert_eq!(http_to_grpc(503), UNAVAILABLE);
        assert_eq!(http_to_grpc(500), UNKNOWN);
    }

    #[test]
    fn bad_grpc_modules_name_module_and_option() {
        for (yaml, word) in [
            ("modules:\n  g:\n    prober: grpc\n    grpc:\n      servise: x\n", "servise"),
            (
                "modules:\n  g:\n    prober: grpc\n    grpc:\n      tls_config:\n        insecure: true\n",
                "insecure",
            ),
            ("modules:\n  g:\n    prober: grpcs\n", "grpcs"),
        ] {
            let err = format!("{:#}", Modules::parse(yaml).unwrap_err());
            assert!(err.contains("\"g\"") && err.contains(word), "{yaml}: {err}");
        }
    }
}
