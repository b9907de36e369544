//! `std::io` adaptors over a [`DataStream`], so the tar codec can write to
//! and read from a remote script directly. The transport's own error is
//! kept aside: an I/O error coming out of the codec is turned back into the
//! real cause (a lost link stays a lost link, and stays retryable).

use std::io;

use super::checksum::{Cksum, Sum};
use crate::transport::{DataStream, ScriptOutput, TransportError};

const CHUNK: usize = 256 * 1024;

/// Closes the script's stdin, reads the rest of its (small) stdout and
/// returns how it ended, stdout included. For scripts that answer with a
/// line or two; a bulk stream is read with [`StreamReader`].
pub fn finish_with_output(mut stream: Box<dyn DataStream>) -> Result<ScriptOutput, TransportError> {
    stream.close_input()?;
    let mut stdout = Vec::new();
    while let Some(c) = stream.read_chunk()? {
        stdout.extend_from_slice(&c);
    }
    let mut out = stream.finish()?;
    out.stdout = stdout;
    Ok(out)
}

/// Buffers writes into large channel messages, and sums what it sends.
pub struct StreamWriter<'s> {
    pub stream: &'s mut dyn DataStream,
    buf: Vec<u8>,
    pub failed: Option<TransportError>,
    sum: Cksum,
}

impl<'s> StreamWriter<'s> {
    pub fn new(stream: &'s mut dyn DataStream) -> Self {
        StreamWriter {
            stream,
            buf: Vec::with_capacity(CHUNK),
            failed: None,
            sum: Cksum::default(),
        }
    }

    /// `cksum` of every byte written so far.
    pub fn sum(&self) -> Sum {
        self.sum.sum()
    }

    fn send(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let r = self.stream.write_all(&self.buf);
        self.buf.clear();
        r.map_err(|e| {
            let io = io::Error::other(e.to_string());
            self.failed = Some(e);
            io
        })
    }
}

impl io::Write for StreamWriter<'_> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.sum.update(data);
        if self.buf.len() + data.len() > CHUNK {
            self.send()?;
        }
        if data.len() >= CHUNK {
            self.stream.write_all(data).map_err(|e| {
                let io = io::Error::other(e.to_string());
                self.failed = Some(e);
                io
            })?;
        } else {
            self.buf.extend_from_slice(data);
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send()
    }
}

/// Reads a script's stdout as a byte stream.
pub struct StreamReader<'s> {
    pub stream: &'s mut dyn DataStream,
    chunk: Vec<u8>,
    pos: usize,
    pub failed: Option<TransportError>,
    /// `cksum` of the bytes handed out by `read` (not by `line`).
    pub read_sum: Cksum,
}

impl<'s> StreamReader<'s> {
    pub fn new(stream: &'s mut dyn DataStream) -> Self {
        StreamReader {
            stream,
            chunk: Vec::new(),
            pos: 0,
            failed: None,
            read_sum: Cksum::default(),
        }
    }

    /// Reads one `\n`-terminated line (without it); `None` at the end.
    pub fn line(&mut self) -> io::Result<Option<Vec<u8>>> {
        let mut out = Vec::new();
        loop {
            if self.pos == self.chunk.len() && !self.refill()? {
                return Ok((!out.is_empty()).then_some(out));
            }
            let rest = &self.chunk[self.pos..];
            if let Some(i) = rest.iter().position(|b| *b == b'\n') {
                out.extend_from_slice(&rest[..i]);
                self.pos += i + 1;
                return Ok(Some(out));
            }
            out.extend_from_slice(rest);
            self.pos = self.chunk.len();
        }
    }

    fn refill(&mut self) -> io::Result<bool> {
        loop {
            match self.stream.read_chunk() {
                Ok(Some(c)) if c.is_empty() => continue,
                Ok(Some(c)) => {
                    self.chunk = c;
                    self.pos = 0;
                    return Ok(true);
                }
                Ok(None) => return Ok(false),
                Err(e) => {
                    let io = io::Error::other(e.to_string());
                    self.failed = Some(e);
                    return Err(io);
                }
            }
        }
    }
}

impl io::Read for StreamReader<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.pos == self.chunk.len() && !self.refill()? {
            return Ok(0);
        }
        let n = out.len().min(self.chunk.len() - self.pos);
        out[..n].copy_from_slice(&self.chunk[self.pos..self.pos + n]);
        self.read_sum.update(&out[..n]);
        self.pos += n;
        Ok(n)
    }
}
