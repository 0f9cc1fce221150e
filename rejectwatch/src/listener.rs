//! The API's HTTP server, for a listener that hostile clients can reach:
//! at most `api.max_connections` connections are served at once (the
//! rest are answered 503 and closed, and counted), a request's head must
//! arrive within `api.header_timeout` and fit in `api.max_header_bytes`
//! (431), its body in `api.max_body_bytes` (413), and the rest of it must
//! be done within `api.request_timeout` (408), and a client that stops
//! reading its answer is cut off once a write has waited that long.
//! `axum::serve` sets none of these, so connections are served here with
//! hyper directly.

use std::{
    io,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use axum::{
    Router,
    extract::{DefaultBodyLimit, Request, State},
    http::{HeaderValue, StatusCode, header},
    middleware::{self, Next},
    response::{IntoResponse as _, Response},
};
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    service::TowerToHyperService,
};
use prometheus::IntCounter;
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::TcpListener,
    sync::Semaphore,
    time::Sleep,
};

/// What [`serve`] allows each client.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_connections: usize,
    pub max_header_bytes: usize,
    pub max_body_bytes: usize,
    pub header_timeout: Duration,
    pub request_timeout: Duration,
}

/// The API's one-line JSON error, also what the listener answers a
/// request that ran out of time with.
pub(crate) fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, axum::Json(serde_json::json!({ "error": message.into() }))).into_response()
}

/// Said to a connection past the cap, in whatever room its socket has:
/// a client learns it was refused, not that the server vanished.
const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Type: text/plain\r\n\
Content-Length: 54\r\nRetry-After: 1\r\n\r\ntoo many connections (api.max_connections); try again\n";

/// Serves `app` on `listener` until the process ends, within `limits`;
/// `refused` counts the connections turned away at the cap.
pub async fn serve(listener: TcpListener, app: Router, limits: Limits, refused: IntCounter) {
    let app = app
        .layer(middleware::from_fn_with_state(limits.request_timeout, deadline))
        .layer(DefaultBodyLimit::max(limits.max_body_bytes));
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let mut accept_failing = false;
    loop {
        let stream = match listener.accept().await {
            Ok((s, _)) => {
                accept_failing = false;
                s
            }
            Err(e) => {
                // Out of descriptors, or a connection reset before it was
                // taken: said once per spell, and given a moment to pass
                // rather than spinning on it.
                if !accept_failing {
                    log::error!("API: cannot accept a connection: {e}");
                    accept_failing = true;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            refused.inc();
            // Never waits: a client that reads nothing gets what fits.
            let _ = stream.try_write(BUSY);
            continue;
        };
        let service = TowerToHyperService::new(app.clone());
        tokio::spawn(async move {
            let mut http = hyper::server::conn::http1::Builder::new();
            http.timer(TokioTimer::new())
                .header_read_timeout(limits.header_timeout)
                .max_header_size(limits.max_header_bytes)
                // The read buffer need not be larger than a head: a body
                // is read through it a buffer at a time.
                .max_buf_size(limits.max_header_bytes.max(8192) + 1024);
            // A client's error (a reset, a timeout, a bad head) is the
            // client's; hyper has answered it where it could.
            let io = TokioIo::new(WriteStall::new(stream, limits.request_timeout));
            let _ = http.serve_connection(io, service).await;
            drop(permit);
        });
    }
}

/// Ends a request that takes longer than the request timeout (a body
/// dribbled in, an answer the client will not take) with 408, and closes
/// its connection.
async fn deadline(State(timeout): State<Duration>, req: Request, next: Next) -> Response {
    match tokio::time::timeout(timeout, next.run(req)).await {
        Ok(r) => r,
        Err(_) => {
            let mut r = error(StatusCode::REQUEST_TIMEOUT, "the request took longer than api.request_timeout");
            r.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
            r
        }
    }
}

/// A stream whose writes fail once one has waited `limit` for room: a
/// client that reads nothing (a slow-read attack) cannot hold a
/// connection, and its slot, forever while its answer waits.
struct WriteStall<S> {
    inner: S,
    limit: Duration,
    /// Running while a write waits.
    waiting: Option<Pin<Box<Sleep>>>,
}

impl<S> WriteStall<S> {
    fn new(inner: S, limit: Duration) -> Self {
        Self { inner, limit, waiting: None }
    }

    /// What a pending write becomes: still pending, or an error once it
    /// has waited too long.
    fn stalled<T>(&mut self, cx: &mut Context<'_>, r: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        if r.is_ready() {
            self.waiting = None;
            return r;
        }
        let limit = self.limit;
        let waiting = self.waiting.get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        match waiting.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client read nothing for api.request_timeout",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for WriteStall<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for WriteStall<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.stalled(cx, r)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.stalled(cx, r)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let r = Pin::new(&mut self.inner).poll_flush(cx);
        self.stalled(cx, r)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let r = Pin::new(&mut self.inner).poll_shutdown(cx);
        self.stalled(cx, r)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    use super::*;

    #[tokio::test]
    async fn a_reader_that_stops_reading_is_cut_off_and_one_that_reads_is_not() {
        let (ours, mut theirs) = tokio::io::duplex(1024);
        let mut w = WriteStall::new(ours, Duration::from_millis(50));
        // Read as it comes: far more than the pipe holds gets through.
        let reader = tokio::spawn(async move {
            let mut buf = vec![0u8; 64 << 10];
            theirs.read_exact(&mut buf).await.map(|_| theirs)
        });
        w.write_all(&vec![1u8; 64 << 10]).await.expect("a reading client is served");
        let _theirs = reader.await.expect("reader").expect("read");
        // Now nobody reads: the write fails rather than waiting forever.
        let e = w.write_all(&vec![1u8; 64 << 10]).await.expect_err("a stalled client");
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
    }
}
