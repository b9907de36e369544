//! A TCP stream that acknowledges received data at once (Linux
//! `TCP_QUICKACK`), and reads the socket in large pieces.
//!
//! Why: sshd leaves Nagle's algorithm on for sessions without a pty, and
//! after authentication it writes several small packets in a row (host-key
//! announcement, debug messages, then the reply we wait for). Nagle holds
//! each one until the previous is acknowledged, while our kernel delays its
//! ACK (40 ms on Linux) because we have nothing to send: every cold connect
//! stalled ~45 ms, and again on each hop of a jump chain. Quick-ACK is not
//! sticky, so it is re-armed after every read that returned data. Elsewhere
//! than Linux that part is a pass-through.
//!
//! Why the read buffer: russh reads each packet with two exact reads (its
//! length, then the rest), each a `recvfrom` (and a re-arm) of its own. A
//! 46 MB download came in ~4,900 socket reads; one read of whatever the
//! socket holds (up to [`READ_BUF`]) now serves many packets. Nothing waits
//! for the buffer to fill: a read returns what has arrived.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// Largest single socket read.
const READ_BUF: usize = 256 * 1024;

pub struct QuickAck {
    inner: TcpStream,
    /// Bytes read from the socket and not yet handed out: `buf[start..end]`.
    buf: Box<[u8]>,
    start: usize,
    end: usize,
}

impl QuickAck {
    pub fn new(inner: TcpStream) -> Self {
        arm(&inner);
        Self {
            inner,
            buf: vec![0; READ_BUF].into_boxed_slice(),
            start: 0,
            end: 0,
        }
    }
}

#[cfg(target_os = "linux")]
fn arm(s: &TcpStream) {
    use std::os::fd::AsRawFd;
    let one: libc::c_int = 1;
    // SAFETY: setsockopt on a socket we own, with a correctly sized int.
    // Failure only costs the optimisation, so its result is ignored.
    unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_QUICKACK,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

#[cfg(not(target_os = "linux"))]
fn arm(_: &TcpStream) {}

impl AsyncRead for QuickAck {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.start == this.end {
            if out.remaining() >= this.buf.len() {
                // As large as ours: one socket read straight into it.
                let before = out.filled().len();
                let r = Pin::new(&mut this.inner).poll_read(cx, out);
                if matches!(r, Poll::Ready(Ok(()))) && out.filled().len() > before {
                    arm(&this.inner);
                }
                return r;
            }
            let mut into = ReadBuf::new(&mut this.buf);
            match Pin::new(&mut this.inner).poll_read(cx, &mut into) {
                Poll::Ready(Ok(())) => {}
                other => return other,
            }
            let got = into.filled().len();
            if got == 0 {
                return Poll::Ready(Ok(()));
            }
            arm(&this.inner);
            this.start = 0;
            this.end = got;
        }
        let n = out.remaining().min(this.end - this.start);
        out.put_slice(&this.buf[this.start..this.start + n]);
        this.start += n;
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for QuickAck {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
