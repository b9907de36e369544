//! A command's stdin and stdout as one byte stream: the way to reach a
//! place no `direct-tcpip` can, through a program on the host that relays
//! (on a Slurm cluster, `srun --overlap` into a job's allocation on a
//! compute node the login node cannot forward to). The stream holds its
//! session channel's place under the server's MaxSessions for as long as
//! it lives; its stderr is not part of the stream.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use russh::ChannelStream;
use russh::client::Msg;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::OwnedSemaphorePermit;

/// A running command's stdin (writes) and stdout (reads).
pub struct CommandStream {
    stream: ChannelStream<Msg>,
    _permit: OwnedSemaphorePermit,
}

impl CommandStream {
    pub(crate) fn new(stream: ChannelStream<Msg>, permit: OwnedSemaphorePermit) -> CommandStream {
        CommandStream {
            stream,
            _permit: permit,
        }
    }
}

impl AsyncRead for CommandStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for CommandStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}
