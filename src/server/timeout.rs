//! Connection timeouts below the protocol, so they hold for HTTP/1.1 and HTTP/2 alike:
//! - write: a write (or flush) that makes no progress for `write_timeout` fails the connection,
//!   so a client that stops reading cannot hold a connection and its buffers forever;
//! - idle: a connection with no request in flight and no bytes either way for `idle_timeout` is
//!   closed (HTTP/2 keep-alive PINGs would otherwise keep an idle connection alive forever).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

/// A stream with the write and idle timeouts of a connection.
pub struct ConnectionTimeouts<S> {
    inner: S,
    write_timeout: Duration,
    stalled: Option<Pin<Box<Sleep>>>,
    idle_timeout: Duration,
    idle: Pin<Box<Sleep>>,
    active: Arc<AtomicUsize>,
}

impl<S> ConnectionTimeouts<S> {
    /// A stream whose writes fail after `write_timeout` without progress, and which is closed
    /// after `idle_timeout` without traffic while `active` (its requests in flight) is 0.
    pub fn new(
        inner: S,
        write_timeout: Duration,
        idle_timeout: Duration,
        active: Arc<AtomicUsize>,
    ) -> Self {
        Self {
            inner,
            write_timeout,
            stalled: None,
            idle_timeout,
            idle: Box::pin(tokio::time::sleep(idle_timeout)),
            active,
        }
    }

    fn touch(&mut self) {
        let deadline = tokio::time::Instant::now() + self.idle_timeout;
        self.idle.as_mut().reset(deadline);
    }

    /// Whether the idle timer ran out with nothing in flight (re-armed otherwise).
    fn idle_expired(&mut self, cx: &mut Context<'_>) -> bool {
        if self.idle.as_mut().poll(cx).is_pending() {
            return false;
        }
        if self.active.load(Ordering::Relaxed) == 0 {
            return true;
        }
        // A request is in flight: its own timeouts govern it; look again later.
        self.touch();
        let _ = self.idle.as_mut().poll(cx);
        false
    }

    fn pending<T>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        let timeout = self.write_timeout;
        let sleep = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        match sleep.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "write timeout",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn progressed<T>(
        &mut self,
        r: Poll<io::Result<T>>,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<T>> {
        match r {
            Poll::Ready(v) => {
                self.stalled = None;
                self.touch();
                Poll::Ready(v)
            }
            Poll::Pending => self.pending(cx),
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for ConnectionTimeouts<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(r) => {
                self.touch();
                Poll::Ready(r)
            }
            Poll::Pending if self.idle_expired(cx) => {
                Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, "idle timeout")))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for ConnectionTimeouts<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.progressed(r, cx)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let r = Pin::new(&mut self.inner).poll_flush(cx);
        self.progressed(r, cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let r = Pin::new(&mut self.inner).poll_shutdown(cx);
        self.progressed(r, cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.progressed(r, cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const HOUR: Duration = Duration::from_secs(3600);

    #[tokio::test(start_paused = true)]
    async fn a_peer_that_stops_reading_times_the_write_out() {
        let (a, _b) = tokio::io::duplex(16);
        let mut w = ConnectionTimeouts::new(a, Duration::from_secs(30), HOUR, Default::default());
        // 16 bytes fit the pipe; the rest waits for a reader that never comes.
        let err = w.write_all(&[0u8; 64]).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
    }

    #[tokio::test(start_paused = true)]
    async fn a_reading_peer_is_never_timed_out() {
        let (a, mut b) = tokio::io::duplex(16);
        let reader = tokio::spawn(async move {
            let mut sink = Vec::new();
            b.read_to_end(&mut sink).await.unwrap();
            sink.len()
        });
        let mut w = ConnectionTimeouts::new(a, Duration::from_secs(30), HOUR, Default::default());
        w.write_all(&[1u8; 4096]).await.unwrap();
        w.shutdown().await.unwrap();
        drop(w);
        assert_eq!(reader.await.unwrap(), 4096);
    }

    #[tokio::test(start_paused = true)]
    async fn idle_connections_close_but_busy_ones_do_not() {
        let (a, _b) = tokio::io::duplex(64);
        let active: Arc<AtomicUsize> = Default::default();
        let mut c = ConnectionTimeouts::new(
            a,
            Duration::from_secs(30),
            Duration::from_secs(45),
            active.clone(),
        );
        let mut buf = [0u8; 8];
        active.store(1, Ordering::Relaxed);
        // A request in flight: the idle timer re-arms instead of closing.
        let busy = tokio::time::timeout(Duration::from_secs(100), c.read(&mut buf)).await;
        assert!(busy.is_err(), "still open while a request is in flight");
        active.store(0, Ordering::Relaxed);
        let err = c.read(&mut buf).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
    }
}
