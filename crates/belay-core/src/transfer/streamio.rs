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

/// The longest line [`StreamReader::line`] accepts (tar's zero padding
/// after an archive is one "line" of at most a record, 10 KiB by default).
pub const LINE_LIMIT: usize = 1 << 20;

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
    /// A line longer than [`LINE_LIMIT`] is an error: a hostile host must
    /// not make us hold an endless "line" in memory.
    pub fn line(&mut self) -> io::Result<Option<Vec<u8>>> {
        let mut out = Vec::new();
        loop {
            if out.len() > LINE_LIMIT {
                return Err(io::Error::other(format!(
                    "a line of over {} KiB",
                    LINE_LIMIT / 1024
                )));
            }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::ScriptOutput;

    /// Output in fixed chunks, as a host would send it.
    struct Canned(Vec<Vec<u8>>);

    impl DataStream for Canned {
        fn write_all(&mut self, _: &[u8]) -> Result<(), TransportError> {
            Ok(())
        }
        fn close_input(&mut self) -> Result<(), TransportError> {
            Ok(())
        }
        fn read_chunk(&mut self) -> Result<Option<Vec<u8>>, TransportError> {
            Ok((!self.0.is_empty()).then(|| self.0.remove(0)))
        }
        fn finish(self: Box<Self>) -> Result<ScriptOutput, TransportError> {
            unreachable!()
        }
        fn abort(self: Box<Self>) {}
    }

    #[test]
    fn a_line_without_end_is_an_error_once_over_the_limit() {
        // 4 MiB of output without a newline, in 64 KiB chunks.
        let mut s = Canned(vec![vec![b'x'; 64 * 1024]; 64]);
        let mut r = StreamReader::new(&mut s);
        let err = r.line().unwrap_err().to_string();
        assert!(err.contains("over 1024 KiB"), "{err}");
        let mut s = Canned(vec![b"short\nlast".to_vec()]);
        let mut r = StreamReader::new(&mut s);
        assert_eq!(r.line().unwrap().unwrap(), b"short");
        assert_eq!(r.line().unwrap().unwrap(), b"last");
        assert_eq!(r.line().unwrap(), None);
    }
}
