//! What the receivers (`loki_push_api`, `gelf`, `syslog`) share: the task
//! serving their socket.

use std::future::Future;
use std::net::SocketAddr;

use tokio::task::JoinHandle;

/// A receiver's serving task. It owns the socket and every connection, so
/// stopping it (or dropping it) closes them all: held pushes are answered
/// nothing and their senders retry; what is already in the job's queue is
/// still delivered by the pipeline.
pub struct Serving(JoinHandle<()>);

impl Serving {
    /// Starts `serve` (call inside a tokio runtime).
    pub fn spawn(serve: impl Future<Output = ()> + Send + 'static) -> Serving {
        Serving(tokio::spawn(serve))
    }

    /// Stops serving: the socket and every connection close.
    pub fn stop(&self) {
        self.0.abort();
    }

    /// Stops and waits until the socket is closed, so that the next config
    /// can bind it.
    pub async fn join(mut self) {
        self.stop();
        let _ = (&mut self.0).await;
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Binds `addr` with `bind` (a TCP listener's or a UDP socket's); on a
/// host without IPv6, `[::]` falls back to `0.0.0.0`, as Go does.
pub fn bind<T>(
    addr: SocketAddr,
    bind: impl Fn(SocketAddr) -> std::io::Result<T>,
) -> std::io::Result<T> {
    match bind(addr) {
        Err(_) if addr.ip().is_unspecified() && addr.is_ipv6() => {
            bind(SocketAddr::from(([0, 0, 0, 0], addr.port())))
        }
        bound => bound,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn join_frees_the_port_and_drop_stops_serving() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let s = Serving::spawn(async move {
            loop {
                let _ = l.accept().await;
            }
        });
        s.join().await;
        // Bound again at once: the listener went with the task.
        let l = tokio::net::TcpListener::bind(addr).await.unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let s = Serving::spawn(async move {
            let _tx = tx;
            let _ = l.accept().await;
        });
        drop(s);
        // The task, and so its sender, is gone without anything accepted.
        let closed = tokio::time::timeout(std::time::Duration::from_secs(30), rx).await;
        assert!(matches!(closed, Ok(Err(_))), "{closed:?}");
    }
}
