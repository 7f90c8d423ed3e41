//! The one HTTP server setup of the project: listeners (Go-style addresses),
//! optional TLS, basic auth and extra headers from the web config, then a
//! handler that knows nothing of any of that.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

use crate::web_config::WebConfig;
use crate::web_config_reload::LiveWebConfig;

pub type Body = Full<Bytes>;

/// How long a client may take to finish the TLS handshake, so that idle
/// connections cannot hold a task forever.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Turns a Go-style listen address (`:9100`, `localhost:9100`,
/// `[::1]:9100`) into socket addresses to bind.
pub fn resolve_listen_address(addr: &str) -> Result<Vec<SocketAddr>, String> {
    // exporter-toolkit (Go) also listens on VM sockets; refused by name
    // rather than failing as an unparsable host.
    if addr.starts_with("vsock://") {
        return Err(format!(
            "listen address {addr:?}: vsock:// (VM socket) addresses are not supported yet; \
             use host:port"
        ));
    }
    if let Some(port) = addr.strip_prefix(':') {
        let port: u16 = port
            .parse()
            .map_err(|_| format!("listen address {addr:?}: bad port"))?;
        return Ok(vec![SocketAddr::from(([0u16; 8], port))]);
    }
    use std::net::ToSocketAddrs;
    let found: Vec<SocketAddr> = addr
        .to_socket_addrs()
        .map_err(|e| format!("listen address {addr:?}: {e}"))?
        .collect();
    if found.is_empty() {
        return Err(format!("listen address {addr:?} resolves to nothing"));
    }
    Ok(found)
}

/// Binds every address; an address that cannot be bound is a startup error.
pub async fn bind(addresses: &[String]) -> Result<Vec<TcpListener>, String> {
    let mut listeners = Vec::new();
    for a in addresses {
        for sa in resolve_listen_address(a)? {
            let l = match TcpListener::bind(sa).await {
                Ok(l) => l,
                // A host without IPv6 cannot bind [::]; Go falls back to IPv4.
                Err(_) if sa.ip().is_unspecified() && sa.is_ipv6() => {
                    TcpListener::bind(SocketAddr::from(([0, 0, 0, 0], sa.port())))
                        .await
                        .map_err(|e| format!("listening on {a}: {e}"))?
                }
                Err(e) => return Err(format!("listening on {a}: {e}")),
            };
            listeners.push(l);
        }
    }
    Ok(listeners)
}

/// The listening sockets systemd passed by socket activation (`LISTEN_FDS`
/// descriptors from fd 3, for the process named by `LISTEN_PID`), as
/// `--web.systemd-socket` takes them. Call before any thread is started: it
/// clears those variables so that children do not take the sockets too.
pub fn systemd_listeners() -> Result<Vec<std::net::TcpListener>, String> {
    use std::os::fd::FromRawFd;
    const FIRST_FD: i32 = 3;
    let pid = std::env::var("LISTEN_PID").map_err(|_| {
        "--web.systemd-socket: LISTEN_PID is not set (not started by systemd socket activation)"
            .to_string()
    })?;
    if pid.trim().parse::<u32>().ok() != Some(std::process::id()) {
        return Err(format!(
            "--web.systemd-socket: LISTEN_PID={pid} names another process, not this one ({})",
            std::process::id()
        ));
    }
    let count = std::env::var("LISTEN_FDS").unwrap_or_default();
    let count: i32 = count
        .trim()
        .parse()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("--web.systemd-socket: LISTEN_FDS={count:?} passes no socket"))?;
    std::env::remove_var("LISTEN_PID");
    std::env::remove_var("LISTEN_FDS");
    std::env::remove_var("LISTEN_FDNAMES");
    let mut listeners = Vec::new();
    for fd in FIRST_FD..FIRST_FD + count {
        check_listening_inet_socket(fd)?;
        // SAFETY: systemd hands this descriptor to the process; it is checked
        // above to be an open, listening TCP socket, and owned by nothing else.
        let listener = unsafe { std::net::TcpListener::from_raw_fd(fd) };
        // SAFETY: plain fcntl on a descriptor this process owns.
        unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
        listener
            .set_nonblocking(true)
            .map_err(|e| format!("--web.systemd-socket: fd {fd}: {e}"))?;
        listeners.push(listener);
    }
    Ok(listeners)
}

fn socket_option(fd: i32, option: libc::c_int) -> std::io::Result<libc::c_int> {
    let mut value: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `value`.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            option,
            (&mut value as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if rc == 0 {
        Ok(value)
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Only TCP listeners can serve HTTP here; anything else is a clear error.
fn check_listening_inet_socket(fd: i32) -> Result<(), String> {
    let err = |what: String| format!("--web.systemd-socket: fd {fd}: {what}");
    let domain = socket_option(fd, libc::SO_DOMAIN).map_err(|e| err(e.to_string()))?;
    if domain != libc::AF_INET && domain != libc::AF_INET6 {
        return Err(err(
            "not a TCP socket (ListenStream= must be a port or address)".into(),
        ));
    }
    let kind = socket_option(fd, libc::SO_TYPE).map_err(|e| err(e.to_string()))?;
    let listening = socket_option(fd, libc::SO_ACCEPTCONN).map_err(|e| err(e.to_string()))?;
    if kind != libc::SOCK_STREAM || listening == 0 {
        return Err(err("not a listening stream socket".into()));
    }
    Ok(())
}

/// Serves `handler` on every listener until the process ends. The web
/// config is consulted afresh for every connection and request (see
/// [`LiveWebConfig`]); whether TLS is on is fixed at start.
pub async fn serve<H, F>(listeners: Vec<TcpListener>, web: LiveWebConfig, handler: H)
where
    H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<Body>> + Send + 'static,
{
    let web = Arc::new(web);
    let tls_on = web.current().tls.is_some();
    let mut tasks = Vec::new();
    for listener in listeners {
        let web = web.clone();
        let handler = handler.clone();
        if let Ok(addr) = listener.local_addr() {
            tracing::info!(address = %addr, tls = tls_on, "Listening on");
        }
        tasks.push(tokio::spawn(async move {
            loop {
                let (stream, peer) = match listener.accept().await {
                    Ok(x) => x,
                    Err(e) => {
                        // Out of descriptors and the like: back off, keep serving.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let web = web.clone();
                let handler = handler.clone();
                // This connection's certificate and HTTP/2 setting.
                let config = web.current();
                let http2 = config.http2;
                let tls = config.tls.clone().map(tokio_rustls::TlsAcceptor::from);
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                        let web = web.clone();
                        let handler = handler.clone();
                        async move {
                            Ok::<_, std::convert::Infallible>(guarded(&web, req, handler).await)
                        }
                    });
                    let mut builder =
                        hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                    if !http2 {
                        // `http_server_config.http2: false`.
                        builder = builder.http1_only();
                    }
                    let result = match tls {
                        Some(acceptor) => {
                            match tokio::time::timeout(
                                TLS_HANDSHAKE_TIMEOUT,
                                acceptor.accept(stream),
                            )
                            .await
                            {
                                Ok(Ok(s)) => {
                                    builder.serve_connection(TokioIo::new(s), service).await
                                }
                                Ok(Err(e)) => {
                                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                                    return;
                                }
                                Err(_) => {
                                    tracing::debug!(%peer, "TLS handshake timed out");
                                    return;
                                }
                            }
                        }
                        None => {
                            builder
                                .serve_connection(TokioIo::new(stream), service)
                                .await
                        }
                    };
                    if let Err(e) = result {
                        tracing::debug!(%peer, error = %e, "connection ended with an error");
                    }
                });
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
}

async fn guarded<H, F>(web: &LiveWebConfig, req: Request<Incoming>, handler: H) -> Response<Body>
where
    H: Fn(Request<Incoming>) -> F,
    F: Future<Output = Response<Body>>,
{
    let web: Arc<WebConfig> = web.current();
    if let Some(limiter) = &web.rate_limiter {
        if !limiter.allow() {
            return text_response(StatusCode::TOO_MANY_REQUESTS, "Too Many Requests\n");
        }
    }
    let authorization = req
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let mut resp = if web.requires_auth() {
        // bcrypt is CPU-heavy: keep it off the reactor threads.
        let w = web.clone();
        let ok = tokio::task::spawn_blocking(move || w.authorize(authorization.as_deref()))
            .await
            .unwrap_or(false);
        if ok {
            handler(req).await
        } else {
            let mut r = text_response(StatusCode::UNAUTHORIZED, "Unauthorized\n");
            r.headers_mut().insert(
                http::header::WWW_AUTHENTICATE,
                http::HeaderValue::from_static("Basic"),
            );
            r
        }
    } else {
        handler(req).await
    };
    for (k, v) in &web.headers {
        resp.headers_mut().insert(k.clone(), v.clone());
    }
    resp
}

pub fn text_response(status: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}
