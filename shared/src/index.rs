//! The output index: one fixed-size binary record per chunk the supervisor
//! read, in arrival order, so that readers can merge stdout and stderr as
//! they arrived and give every chunk its time, without touching the logs'
//! bytes.
//!
//! The file starts with a 16-byte header (`CXINDEX` and a format byte, then
//! zeros), followed by 24-byte little-endian entries:
//!
//! | bytes | field |
//! |---|---|
//! | 0..8 | time the chunk was read, ns since the epoch (i64) |
//! | 8..16 | offset of the chunk in its stream, counting every byte ever logged on it, across rotations (u64) |
//! | 16..20 | length (u32) |
//! | 20 | stream: 1 stdout, 2 stderr |
//! | 21 | kind: 0 data; 1 rotation (the stream's current log starts at `offset`); 2 dropped (`len` bytes could not be logged) |
//! | 22..24 | zero |
//!
//! The supervisor writes a chunk to its log before its entry, so an entry
//! always points at bytes already in the log.

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::Path;

use crate::error::{Error, Result};
use crate::layout::Stream;
use crate::time::Timestamp;

/// The header every index starts with.
pub const HEADER: [u8; 16] = *b"CXINDEX\x01\0\0\0\0\0\0\0\0";
/// Size of one entry.
pub const ENTRY_SIZE: usize = 24;

/// What an entry says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// `len` bytes at `offset` of the stream were logged.
    Data,
    /// The stream's log was rotated; the new file starts at `offset`.
    Rotate,
    /// `len` bytes could not be logged and are lost.
    Dropped,
}

/// One index entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    /// When the supervisor read the chunk.
    pub time: Timestamp,
    /// The chunk's offset in its stream.
    pub offset: u64,
    /// The chunk's length.
    pub len: u32,
    /// Its stream.
    pub stream: Stream,
    /// What the entry says.
    pub kind: EntryKind,
}

impl Entry {
    /// The entry as stored.
    pub fn encode(&self) -> [u8; ENTRY_SIZE] {
        let mut b = [0u8; ENTRY_SIZE];
        b[0..8].copy_from_slice(&self.time.as_nanos().to_le_bytes());
        b[8..16].copy_from_slice(&self.offset.to_le_bytes());
        b[16..20].copy_from_slice(&self.len.to_le_bytes());
        b[20] = match self.stream {
            Stream::Stdout => 1,
            Stream::Stderr => 2,
        };
        b[21] = match self.kind {
            EntryKind::Data => 0,
            EntryKind::Rotate => 1,
            EntryKind::Dropped => 2,
        };
        b
    }

    /// Decodes a stored entry; `None` when it is not a valid one.
    pub fn decode(b: &[u8]) -> Option<Entry> {
        let b: &[u8; ENTRY_SIZE] = b.try_into().ok()?;
        let u64_at = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().unwrap());
        Some(Entry {
            time: Timestamp(u64_at(0) as i64),
            offset: u64_at(8),
            len: u32::from_le_bytes(b[16..20].try_into().unwrap()),
            stream: match b[20] {
                1 => Stream::Stdout,
                2 => Stream::Stderr,
                _ => return None,
            },
            kind: match b[21] {
                0 => EntryKind::Data,
                1 => EntryKind::Rotate,
                2 => EntryKind::Dropped,
                _ => return None,
            },
        })
    }
}

/// Appends entries to an index file (the supervisor's side).
#[derive(Debug)]
pub struct Writer {
    file: File,
    len: u64,
}

impl Writer {
    /// Starts the index in `file`, a new empty file.
    pub fn new(file: File, path: &Path) -> Result<Writer> {
        file.write_all_at(&HEADER, 0)
            .map_err(|e| Error::io("writing", path, e))?;
        Ok(Writer {
            file,
            len: HEADER.len() as u64,
        })
    }

    /// Appends one entry. A failed write (disk full) leaves no partial
    /// entry behind: the next write goes to the same place.
    pub fn append(&mut self, entry: &Entry) -> io::Result<()> {
        self.file.write_all_at(&entry.encode(), self.len)?;
        self.len += ENTRY_SIZE as u64;
        Ok(())
    }
}

/// Reads every whole entry of the index at `path` (a reader's side; an
/// entry being written is not yet counted).
pub fn read_all(path: &Path) -> Result<Vec<Entry>> {
    let mut bytes = Vec::new();
    File::open(path)
        .and_then(|mut f| f.read_to_end(&mut bytes))
        .map_err(|e| Error::io("reading", path, e))?;
    if bytes.len() < HEADER.len() || bytes[..8] != HEADER[..8] {
        return Err(Error::Parse {
            what: "index",
            input: path.display().to_string(),
            hint: "it does not start with the index header",
        });
    }
    Ok(bytes[HEADER.len()..]
        .chunks_exact(ENTRY_SIZE)
        .filter_map(Entry::decode)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdir::TempDir;

    #[test]
    fn entries_round_trip_through_a_file() {
        let dir = TempDir::new("index");
        let path = dir.path().join("index");
        let mut w = Writer::new(File::create(&path).unwrap(), &path).unwrap();
        let entries = [
            Entry {
                time: Timestamp(1),
                offset: 0,
                len: 4,
                stream: Stream::Stdout,
                kind: EntryKind::Data,
            },
            Entry {
                time: Timestamp(2),
                offset: 0,
                len: 4,
                stream: Stream::Stderr,
                kind: EntryKind::Data,
            },
            Entry {
                time: Timestamp(3),
                offset: 4,
                len: 9,
                stream: Stream::Stdout,
                kind: EntryKind::Dropped,
            },
            Entry {
                time: Timestamp(4),
                offset: 4,
                len: 0,
                stream: Stream::Stdout,
                kind: EntryKind::Rotate,
            },
        ];
        for e in &entries {
            w.append(e).unwrap();
        }
        assert_eq!(read_all(&path).unwrap(), entries);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 16 + 4 * 24);
    }
}
