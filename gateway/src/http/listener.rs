//! The HTTP listener's accept loop (page, APIs, `/ws`, uploads), with what `axum::serve`
//! does not offer: caps on the connections one IP and everybody together may hold,
//! enforced at accept (over a cap the connection is closed at once and counted), a
//! request-head timeout that also bounds kept-alive idle connections, and an idle timeout
//! for connections on which nothing moves while a request is read or answered.
//!
//! Each connection is served by hyper's HTTP/1.1 server with upgrades (so `/ws` works),
//! `TCP_NODELAY`, and the peer address as axum's `ConnectInfo<SocketAddr>`. On stop, the
//! listener closes, idle connections close and requests in flight finish (bounded by the
//! caller).

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use parking_lot::Mutex;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;
use tracing::{debug, warn};

use crate::config::HttpServerConfig;

/// What the listener counts (read them with [`HttpConns::stats`]).
#[derive(Debug, Default)]
pub struct HttpStats {
    /// Connections closed at accept: their IP held `max_connections_per_ip` already.
    pub refused_per_ip: AtomicU64,
    /// Connections closed at accept: `max_connections` were open.
    pub refused_total: AtomicU64,
    /// Connections closed because nothing moved for `idle_timeout_secs`.
    pub idle_closed: AtomicU64,
}

/// Which cap a refused connection hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Over {
    #[error("too many HTTP connections from this address")]
    PerIp,
    #[error("too many HTTP connections")]
    Total,
}

/// Open HTTP connections, per IP and in total, against their caps.
#[derive(Debug)]
pub struct HttpConns {
    max_total: usize,
    max_per_ip: usize,
    open: Mutex<(usize, HashMap<IpAddr, usize>)>,
    stats: HttpStats,
}

/// One admitted connection; its count goes when it is dropped.
pub struct Slot {
    conns: Arc<HttpConns>,
    ip: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.conns.open.lock();
        open.0 -= 1;
        if let Some(n) = open.1.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.1.remove(&self.ip);
            }
        }
    }
}

impl HttpConns {
    pub fn new(cfg: &HttpServerConfig) -> Arc<HttpConns> {
        Arc::new(HttpConns {
            max_total: cfg.max_connections,
            max_per_ip: cfg.max_connections_per_ip,
            open: Mutex::new((0, HashMap::new())),
            stats: HttpStats::default(),
        })
    }

    /// Admit a connection from `ip`, or say which cap it is over (and count it).
    pub fn try_open(self: &Arc<Self>, ip: IpAddr) -> Result<Slot, Over> {
        let ip = ip.to_canonical();
        let mut open = self.open.lock();
        let over = if open.0 >= self.max_total {
            Some((Over::Total, &self.stats.refused_total))
        } else if open.1.get(&ip).is_some_and(|&n| n >= self.max_per_ip) {
            Some((Over::PerIp, &self.stats.refused_per_ip))
        } else {
            None
        };
        if let Some((over, counter)) = over {
            counter.fetch_add(1, Ordering::Relaxed);
            return Err(over);
        }
        open.0 += 1;
        *open.1.entry(ip).or_insert(0) += 1;
        Ok(Slot {
            conns: self.clone(),
            ip,
        })
    }

    /// HTTP connections open now (WebSockets stop counting once upgraded).
    pub fn open(&self) -> usize {
        self.open.lock().0
    }

    pub fn stats(&self) -> &HttpStats {
        &self.stats
    }
}

/// When a byte last moved on a connection, in milliseconds since it was accepted.
struct Activity {
    since: Instant,
    last_ms: AtomicU64,
}

impl Activity {
    fn touch(&self) {
        let ms = self.since.elapsed().as_millis() as u64;
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    fn last(&self) -> Instant {
        self.since + Duration::from_millis(self.last_ms.load(Ordering::Relaxed))
    }
}

/// A TCP stream that notes every successful read and write in its [`Activity`].
struct Tracked<T> {
    inner: T,
    activity: Arc<Activity>,
}

impl<T: AsyncRead + Unpin> AsyncRead for Tracked<T> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let r = Pin::new(&mut this.inner).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.activity.touch();
        }
        r
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Tracked<T> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            this.activity.touch();
        }
        r
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            this.activity.touch();
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// Serve `app` on `listener` until `stop`, then let the connections finish their requests
/// (the caller bounds the wait).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    cfg: HttpServerConfig,
    conns: Arc<HttpConns>,
    stop: CancellationToken,
) {
    let tracker = TaskTracker::new();
    let header_timeout = Duration::from_secs(cfg.header_timeout_secs);
    let idle = Duration::from_secs(cfg.idle_timeout_secs);
    loop {
        let (tcp, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors (or a similar resource error): wait a little
                    // for connections to close instead of spinning on the error.
                    warn!(error = %e, "HTTP accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = stop.cancelled() => break,
        };
        let slot = match conns.try_open(remote.ip()) {
            Ok(s) => s,
            Err(over) => {
                debug!(%remote, %over, "closing an HTTP connection at accept");
                drop(tcp);
                continue;
            }
        };
        // Chat frames are small and latency-bound: no Nagle delay on the WebSocket.
        let _ = tcp.set_nodelay(true);
        let activity = Arc::new(Activity {
            since: Instant::now(),
            last_ms: AtomicU64::new(0),
        });
        let io = TokioIo::new(Tracked {
            inner: tcp,
            activity: activity.clone(),
        });
        let app = app.clone();
        let service = hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
            req.extensions_mut().insert(ConnectInfo::<SocketAddr>(remote));
            app.clone().oneshot(req)
        });
        let (stop, conns) = (stop.clone(), conns.clone());
        tracker.spawn(async move {
            let _slot = slot;
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout)
                .keep_alive(true);
            let conn = builder.serve_connection(io, service).with_upgrades();
            tokio::pin!(conn);
            let mut draining = false;
            loop {
                tokio::select! {
                    done = conn.as_mut() => {
                        if let Err(e) = done {
                            debug!(%remote, error = %e, "HTTP connection ended with an error");
                        }
                        return;
                    }
                    _ = stop.cancelled(), if !draining => {
                        conn.as_mut().graceful_shutdown();
                        draining = true;
                    }
                    _ = tokio::time::sleep_until(activity.last() + idle) => {
                        if activity.last().elapsed() >= idle {
                            conns.stats.idle_closed.fetch_add(1, Ordering::Relaxed);
                            debug!(%remote, "closing an HTTP connection on which nothing moved");
                            return;
                        }
                    }
                }
            }
        });
    }
    drop(listener);
    tracker.close();
    tracker.wait().await;
}
