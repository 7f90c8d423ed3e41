//! blackbox_exporter's tcp prober: connect (over TLS with `tls: true`),
//! then walk `query_response`: wait for a line matching `expect`, send
//! `send` (with `expect`'s groups put in, as Go's `Regexp.Expand`), and
//! upgrade to TLS where `starttls` says so.

use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};

use anyhow::{anyhow, bail, Context};
use exporter_toolkit::exposition::{Family, MetricSet, MetricType, Series, Value};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::Instant;
use tokio_rustls::client::TlsStream;

use super::common::{self, TlsState};
use super::config::Tcp;

/// Go's `bufio.Scanner` gives up on a longer line.
const MAX_LINE: usize = 64 * 1024;
const EARLIEST_HELP: &str = "Returns earliest SSL cert expiry date";

pub async fn probe(target: &str, m: &Tcp, deadline: Instant, out: &mut MetricSet) -> bool {
    let result = match tokio::time::timeout_at(deadline, run(target, m, out)).await {
        Ok(r) => r,
        Err(_) => Err(Failure::Other(anyhow!("timed out"))),
    };
    // Written last but always, as blackbox registers it before dialing.
    out.gauge(
        "probe_failed_due_to_regex",
        "Indicates if probe failed due to regex",
        &[],
        if matches!(result, Err(Failure::Regex(_))) {
            1.0
        } else {
            0.0
        },
    );
    match result {
        Ok(()) => true,
        Err(Failure::Regex(e)) => {
            super::common::log("error", "Probe failed", &[("err", &e)]);
            false
        }
        Err(Failure::Other(e)) => {
            super::common::log("error", "Probe failed", &[("err", &format!("{e:#}"))]);
            false
        }
    }
}

enum Failure {
    /// No line matched an `expect`.
    Regex(String),
    Other(anyhow::Error),
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        Failure::Other(e)
    }
}

async fn run(target: &str, m: &Tcp, out: &mut MetricSet) -> Result<(), Failure> {
    let (host, port) = common::split_host_port(target)?;
    let (ip, _) = common::resolve(&host, &m.ip, out).await?;
    let tcp = connect(SocketAddr::new(ip, port), m.source_ip).await?;
    let mut conn = if m.tls {
        let tls = handshake(tcp, &host, m).await?;
        let state = TlsState::of(tls.get_ref().1, &m.tls_config);
        common::tls_metrics(&state, EARLIEST_HELP, out);
        Conn::Tls(Box::new(tls))
    } else {
        Conn::Plain(tcp)
    };
    let mut lines = Lines::default();
    for (i, qr) in m.query_response.iter().enumerate() {
        let mut send = qr.send.clone();
        if let Some(re) = &qr.expect {
            let mut matched = None;
            while let Some(line) = lines.next(&mut conn).await? {
                if let Some(caps) = re.captures(&line) {
                    let mut expanded = String::new();
                    caps.expand(&send, &mut expanded);
                    // blackbox's probe_expect_info: the labels' values
                    // with the match's groups put in.
                    if !qr.labels.is_empty() {
                        let labels = qr
                            .labels
                            .iter()
                            .map(|(n, v)| {
                                let mut e = String::new();
                                caps.expand(v, &mut e);
                                (n.clone().into(), e)
                            })
                            .collect();
                        // Names checked at load: this cannot be refused.
                        let _ = out.add_family(Family {
                            name: "probe_expect_info".into(),
                            help: "Explicit content matched".into(),
                            kind: MetricType::Gauge,
                            series: vec![Series {
                                labels,
                                value: Value::Single(1.0),
                            }],
                        });
                    }
                    matched = Some(expanded);
                    break;
                }
            }
            match matched {
                Some(s) => send = s,
                None => {
                    return Err(Failure::Regex(format!(
                        "query_response[{i}]: no line matched {:?}",
                        re.as_str()
                    )))
                }
            }
        }
        if !send.is_empty() {
            conn.write_all(format!("{send}\n").as_bytes())
                .await
                .with_context(|| format!("query_response[{i}]: sending"))?;
        }
        if qr.starttls {
            let Conn::Plain(tcp) = conn else {
                return Err(anyhow!("query_response[{i}]: starttls on a TLS connection").into());
            };
            let tls = handshake(tcp, &host, m).await?;
            let state = TlsState::of(tls.get_ref().1, &m.tls_config);
            common::tls_metrics(&state, EARLIEST_HELP, out);
            conn = Conn::Tls(Box::new(tls));
            // Whatever was read before the upgrade is dropped, as Go does.
            lines = Lines::default();
        }
    }
    Ok(())
}

async fn connect(addr: SocketAddr, source: Option<IpAddr>) -> anyhow::Result<TcpStream> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .context("creating a socket")?;
    if let Some(src) = source {
        if src.is_ipv4() != addr.is_ipv4() {
            bail!("source_ip_address {src} is not of {addr}'s family");
        }
        socket
            .bind(SocketAddr::new(src, 0))
            .with_context(|| format!("binding to {src}"))?;
    }
    socket
        .connect(addr)
        .await
        .with_context(|| format!("connecting to {addr}"))
}

async fn handshake(tcp: TcpStream, host: &str, m: &Tcp) -> anyhow::Result<TlsStream<TcpStream>> {
    let connector = common::tls_connector(&m.tls_config, &[])?;
    let name = common::server_name(&m.tls_config, host)?;
    connector.connect(name, tcp).await.context("TLS handshake")
}

enum Conn {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_flush(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// Lines as Go's `bufio.Scanner` splits them: on "\n", a "\r" before it
/// dropped, the last line given even without its "\n".
#[derive(Default)]
struct Lines {
    buf: Vec<u8>,
    eof: bool,
}

impl Lines {
    async fn next<R: AsyncRead + Unpin>(&mut self, r: &mut R) -> anyhow::Result<Option<String>> {
        loop {
            if let Some(pos) = self.buf.iter().position(|&b| b == b'\n') {
                let mut line: Vec<u8> = self.buf.drain(..=pos).collect();
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                return Ok(Some(String::from_utf8_lossy(&line).into_owned()));
            }
            if self.eof {
                if self.buf.is_empty() {
                    return Ok(None);
                }
                let line = std::mem::take(&mut self.buf);
                return Ok(Some(String::from_utf8_lossy(&line).into_owned()));
            }
            if self.buf.len() > MAX_LINE {
                bail!("a line longer than {MAX_LINE} bytes");
            }
            let mut chunk = [0u8; 4096];
            let n = r.read(&mut chunk).await.context("reading")?;
            if n == 0 {
                self.eof = true;
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lines_split_as_go_scanner() {
        let mut input: &[u8] = b"a\r\nb\n\nlast";
        let mut l = Lines::default();
        let mut got = Vec::new();
        while let Some(line) = l.next(&mut input).await.unwrap() {
            got.push(line);
        }
        assert_eq!(got, ["a", "b", "", "last"]);
    }

    #[tokio::test]
    async fn a_line_without_end_is_refused() {
        let long = vec![b'x'; MAX_LINE * 2];
        let mut input: &[u8] = &long;
        assert!(Lines::default().next(&mut input).await.is_err());
    }

    #[test]
    fn send_expands_groups_as_go() {
        let re = regex::Regex::new(r"^SSH-(?P<v>[0-9.]+)-(.+)$").unwrap();
        let caps = re.captures("SSH-2.0-OpenSSH").unwrap();
        let mut s = String::new();
        caps.expand("${v} $2 $$", &mut s);
        assert_eq!(s, "2.0 OpenSSH $");
    }

    #[test]
    fn unknown_tcp_option_names_module_and_option() {
        let err = format!(
            "{:#}",
            super::super::Modules::parse(
                "modules:\n  smtp:\n    prober: tcp\n    tcp:\n      query_response:\n        - expect: x\n          lables: []\n"
            )
            .unwrap_err()
        );
        assert!(err.contains("\"smtp\"") && err.contains("lables"), "{err}");
        let err = format!(
            "{:#}",
            super::super::Modules::parse(
                "modules:\n  t:\n    prober: tcp\n    tcp:\n      query_response:\n        - expect: '('\n"
            )
            .unwrap_err()
        );
        assert!(err.contains("\"t\"") && err.contains("expect"), "{err}");
    }
}
