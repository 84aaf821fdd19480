//! The session's logs: each chunk of output appended to its stream's log,
//! then recorded in the index; rotation at `--max-log-size`; output that
//! cannot be written (disk full, file size limit) counted and dropped,
//! never allowed to stop the command.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use shared::index::{self, Entry, EntryKind};
use shared::layout::{self, Stream};
use shared::record::create_private;
use shared::Timestamp;

/// One stream's current log file.
struct StreamLog {
    stream: Stream,
    file: File,
    /// Bytes in the current file.
    file_len: u64,
    /// Bytes ever logged on this stream, rotated files included.
    logged: u64,
}

/// Both logs and the index of a session.
pub struct Logs {
    dir: PathBuf,
    out: StreamLog,
    err: StreamLog,
    index: index::Writer,
    max_size: Option<u64>,
    /// Bytes that could not be logged.
    pub dropped: u64,
}

impl Logs {
    /// Creates the empty logs and index in `dir`.
    pub fn create(dir: &Path, max_size: Option<u64>) -> shared::Result<Logs> {
        let open = |stream: Stream| -> shared::Result<StreamLog> {
            Ok(StreamLog {
                stream,
                file: create_private(&stream.log_path(dir))?,
                file_len: 0,
                logged: 0,
            })
        };
        let index_path = dir.join(layout::INDEX);
        let index = index::Writer::new(create_private(&index_path)?, &index_path)?;
        Ok(Logs {
            dir: dir.to_path_buf(),
            out: open(Stream::Stdout)?,
            err: open(Stream::Stderr)?,
            index,
            max_size: max_size.filter(|&m| m > 0),
            dropped: 0,
        })
    }

    /// Bytes logged so far on `stream`.
    pub fn logged(&self, stream: Stream) -> u64 {
        match stream {
            Stream::Stdout => self.out.logged,
            Stream::Stderr => self.err.logged,
        }
    }

    /// Logs one chunk read from `stream` at `time`.
    pub fn write(&mut self, stream: Stream, chunk: &[u8], time: Timestamp) {
        let (log, index) = match stream {
            Stream::Stdout => (&mut self.out, &mut self.index),
            Stream::Stderr => (&mut self.err, &mut self.index),
        };
        if let Some(max) = self.max_size {
            if log.file_len > 0 && log.file_len + chunk.len() as u64 > max {
                if let Ok(()) = rotate(&self.dir, log) {
                    let _ = index.append(&Entry {
                        time,
                        offset: log.logged,
                        len: 0,
                        stream,
                        kind: EntryKind::Rotate,
                    });
                }
            }
        }
        let written = write_some(&mut log.file, chunk);
        if written > 0 {
            // The bytes are in the log before their entry is in the index.
            let _ = index.append(&Entry {
                time,
                offset: log.logged,
                len: written as u32,
                stream,
                kind: EntryKind::Data,
            });
            log.logged += written as u64;
            log.file_len += written as u64;
        }
        let lost = chunk.len() - written;
        if lost > 0 {
            self.dropped += lost as u64;
            let _ = index.append(&Entry {
                time,
                offset: log.logged,
                len: lost as u32,
                stream,
                kind: EntryKind::Dropped,
            });
        }
    }
}

/// Writes as much of `chunk` as the file takes; returns how much that was.
fn write_some(file: &mut File, chunk: &[u8]) -> usize {
    let mut done = 0;
    while done < chunk.len() {
        match file.write(&chunk[done..]) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    done
}

/// Moves the stream's log to `NAME.1` (replacing the previous one) and
/// starts a new, empty log.
fn rotate(dir: &Path, log: &mut StreamLog) -> shared::Result<()> {
    let current = log.stream.log_path(dir);
    let previous = log.stream.rotated_log_path(dir);
    fs::rename(&current, &previous).map_err(|e| shared::Error::io("rotating", &current, e))?;
    match create_private(&current) {
        Ok(file) => {
            log.file = file;
            log.file_len = 0;
            Ok(())
        }
        Err(e) => {
            // Keep logging to the old file under its old name.
            let _ = fs::rename(&previous, &current);
            Err(e)
        }
    }
}
