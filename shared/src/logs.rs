//! Reading a stream's output by its offset in the stream (every byte ever
//! logged on it), whichever log file now holds it: `stdout.log`, or
//! `stdout.log.1` after a `--max-log-size` rotation. Reads use `pread`, not
//! a mapping, since rotation can replace a file under a reader.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::index::Reader;
use crate::layout::Stream;

/// One stream's logs, addressed by stream offset.
#[derive(Debug)]
pub struct StreamLog {
    dir: PathBuf,
    stream: Stream,
    current: Option<File>,
    /// Stream offset of the current file's first byte.
    base: u64,
    previous: Option<File>,
    /// Stream offset of the previous file's first byte.
    prev_base: u64,
}

impl StreamLog {
    /// Opens `stream`'s logs in session directory `dir`; `index` tells where
    /// each file starts. A missing log reads as empty.
    pub fn open(dir: &Path, stream: Stream, index: Option<&Reader>) -> Result<StreamLog> {
        let open = |p: PathBuf| match crate::files::open_nofollow(&p) {
            Ok(f) => Ok(Some(f)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io("opening", &p, e)),
        };
        let previous = open(stream.rotated_log_path(dir))?;
        let (base, prev_base) = match (&previous, index) {
            (Some(_), Some(ix)) => ix.log_bases(stream),
            _ => (0, 0),
        };
        Ok(StreamLog {
            dir: dir.to_path_buf(),
            stream,
            current: open(stream.log_path(dir))?,
            base,
            previous,
            prev_base,
        })
    }

    /// The first stream offset still on disk.
    pub fn first(&self) -> u64 {
        if self.previous.is_some() {
            self.prev_base
        } else {
            self.base
        }
    }

    /// The stream offset just past the last byte on disk now.
    pub fn end(&self) -> u64 {
        let len = self
            .current
            .as_ref()
            .and_then(|f| f.metadata().ok())
            .map_or(0, |m| m.len());
        self.base + len
    }

    /// The offset at which the current log file starts.
    pub fn base(&self) -> u64 {
        self.base
    }

    /// Follows a rotation seen in the index: reopens both files and takes
    /// their starting offsets from the index as it is now (a reader that
    /// fell behind by several rotations catches up at once; what was rotated
    /// away meanwhile reads as gone).
    pub fn reopen(&mut self, index: &Reader) -> Result<()> {
        *self = StreamLog::open(&self.dir, self.stream, Some(index))?;
        Ok(())
    }

    /// Reads up to `buf.len()` bytes at stream offset `offset`; returns how
    /// many were read (0 when that part of the stream is gone or not yet
    /// written).
    pub fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        let (file, base, limit) = if offset >= self.base {
            (self.current.as_ref(), self.base, u64::MAX)
        } else if offset >= self.prev_base {
            (self.previous.as_ref(), self.prev_base, self.base)
        } else {
            return Ok(0);
        };
        let Some(file) = file else { return Ok(0) };
        let want = buf
            .len()
            .min((limit - offset).min(usize::MAX as u64) as usize);
        let mut done = 0;
        while done < want {
            match file.read_at(&mut buf[done..want], offset - base + done as u64) {
                Ok(0) => break,
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(done)
    }

    /// Reads the bytes in `start..end` of the stream (fewer if some are gone).
    pub fn read_range(&self, start: u64, end: u64) -> io::Result<Vec<u8>> {
        let mut buf = vec![0u8; end.saturating_sub(start) as usize];
        let mut done = 0;
        while done < buf.len() {
            let n = self.read_at(start + done as u64, &mut buf[done..])?;
            if n == 0 {
                break;
            }
            done += n;
        }
        buf.truncate(done);
        Ok(buf)
    }

    /// The stream offset just after the last `\n` before `before` (searching
    /// backward in blocks), or [`StreamLog::first`] when there is none.
    pub fn line_start(&self, before: u64) -> io::Result<u64> {
        const BLOCK: u64 = 64 * 1024;
        let first = self.first();
        let mut end = before;
        while end > first {
            let start = end.saturating_sub(BLOCK).max(first);
            let block = self.read_range(start, end)?;
            if let Some(i) = block.iter().rposition(|&b| b == b'\n') {
                return Ok(start + i as u64 + 1);
            }
            if block.len() < (end - start) as usize {
                // That part is gone (rotated away meanwhile): start after it.
                return Ok(end);
            }
            end = start;
        }
        Ok(first)
    }
}
