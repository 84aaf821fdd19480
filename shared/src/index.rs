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
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use memmap2::{Mmap, MmapOptions};

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

    /// The index file, to hand on.
    pub fn into_file(self) -> File {
        self.file
    }

    /// The number of entries written.
    pub fn len(&self) -> u64 {
        (self.len - HEADER.len() as u64) / ENTRY_SIZE as u64
    }

    /// Whether no entry has been written.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends one entry. A failed write (disk full) leaves no partial
    /// entry behind: the next write goes to the same place.
    pub fn append(&mut self, entry: &Entry) -> io::Result<()> {
        self.append_all(std::slice::from_ref(entry))
    }

    /// Appends several entries with one write.
    pub fn append_all(&mut self, entries: &[Entry]) -> io::Result<()> {
        let mut bytes = Vec::with_capacity(entries.len() * ENTRY_SIZE);
        for e in entries {
            bytes.extend_from_slice(&e.encode());
        }
        self.file.write_all_at(&bytes, self.len)?;
        self.len += bytes.len() as u64;
        Ok(())
    }
}

/// A reader's view of an index: the file mapped into memory, whole entries
/// only, remapped when it grows. The supervisor only ever appends to an
/// index, so the mapped part never shrinks under the reader.
#[derive(Debug)]
pub struct Reader {
    path: PathBuf,
    file: File,
    map: Option<Mmap>,
    count: usize,
}

impl Reader {
    /// Opens the index at `path` and checks its header.
    pub fn open(path: &Path) -> Result<Reader> {
        let file = crate::files::open_nofollow(path).map_err(|e| Error::io("opening", path, e))?;
        let mut header = [0u8; 16];
        let n = file
            .read_at(&mut header, 0)
            .map_err(|e| Error::io("reading", path, e))?;
        if n < HEADER.len() || header[..8] != HEADER[..8] {
            return Err(Error::Parse {
                what: "index",
                input: path.display().to_string(),
                hint: "it does not start with the index header",
            });
        }
        let mut r = Reader {
            path: path.to_path_buf(),
            file,
            map: None,
            count: 0,
        };
        r.refresh()?;
        Ok(r)
    }

    /// Takes in the entries appended since the last look; returns how many
    /// entries there are now.
    pub fn refresh(&mut self) -> Result<usize> {
        let len = self
            .file
            .metadata()
            .map_err(|e| Error::io("reading", &self.path, e))?
            .len() as usize;
        let count = len.saturating_sub(HEADER.len()) / ENTRY_SIZE;
        if count > self.count {
            let bytes = HEADER.len() + count * ENTRY_SIZE;
            // Safety: the mapping is read-only and covers only bytes that
            // exist; index files are append-only (the supervisor never
            // truncates them), so the mapped range stays backed by the file.
            let map = unsafe { MmapOptions::new().len(bytes).map(&self.file) }
                .map_err(|e| Error::io("mapping", &self.path, e))?;
            self.map = Some(map);
            self.count = count;
        }
        Ok(self.count)
    }

    /// The number of whole entries seen at the last refresh.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether the index has no entries.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Entry `i` (0 is the oldest); `None` past the end or when invalid.
    pub fn get(&self, i: usize) -> Option<Entry> {
        if i >= self.count {
            return None;
        }
        let start = HEADER.len() + i * ENTRY_SIZE;
        Entry::decode(self.map.as_ref()?.get(start..start + ENTRY_SIZE)?)
    }

    /// The offsets at which `stream`'s current and previous log files
    /// start, from its last two rotation entries (0 when there were none).
    pub fn log_bases(&self, stream: Stream) -> (u64, u64) {
        let mut found = Vec::with_capacity(2);
        for i in (0..self.count).rev() {
            match self.get(i) {
                Some(e) if e.stream == stream && e.kind == EntryKind::Rotate => {
                    found.push(e.offset);
                    if found.len() == 2 {
                        break;
                    }
                }
                _ => {}
            }
        }
        (
            found.first().copied().unwrap_or(0),
            found.get(1).copied().unwrap_or(0),
        )
    }
}

/// Reads every whole entry of the index at `path`.
pub fn read_all(path: &Path) -> Result<Vec<Entry>> {
    let r = Reader::open(path)?;
    Ok((0..r.len()).filter_map(|i| r.get(i)).collect())
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

    #[test]
    fn the_writer_counts_its_entries() {
        let dir = TempDir::new("index-len");
        let path = dir.path().join("index");
        let mut w = Writer::new(File::create(&path).unwrap(), &path).unwrap();
        assert!(w.is_empty());
        assert_eq!(w.len(), 0);
        let e = Entry {
            time: Timestamp(1),
            offset: 0,
            len: 4,
            stream: Stream::Stdout,
            kind: EntryKind::Data,
        };
        w.append_all(&[e, e, e]).unwrap();
        assert!(!w.is_empty());
        assert_eq!(w.len(), 3);
    }

    #[test]
    fn a_header_cut_short_is_refused() {
        let dir = TempDir::new("index-short");
        let path = dir.path().join("index");
        std::fs::write(&path, &HEADER[..8]).unwrap();
        assert!(Reader::open(&path).is_err());
    }

    #[test]
    fn a_reader_follows_appends_and_finds_the_rotations() {
        let dir = TempDir::new("index-reader");
        let path = dir.path().join("index");
        let mut w = Writer::new(File::create(&path).unwrap(), &path).unwrap();
        let mut r = Reader::open(&path).unwrap();
        assert!(r.is_empty());
        assert_eq!(r.log_bases(Stream::Stdout), (0, 0));
        let entry = |offset, stream, kind| Entry {
            time: Timestamp(1),
            offset,
            len: 0,
            stream,
            kind,
        };
        w.append_all(&[
            entry(0, Stream::Stdout, EntryKind::Data),
            entry(10, Stream::Stdout, EntryKind::Rotate),
            entry(7, Stream::Stderr, EntryKind::Rotate),
            entry(25, Stream::Stdout, EntryKind::Rotate),
            entry(30, Stream::Stdout, EntryKind::Data),
        ])
        .unwrap();
        assert!(r.is_empty(), "nothing seen before a refresh");
        assert_eq!(r.refresh().unwrap(), 5);
        assert!(!r.is_empty());
        assert_eq!(r.len(), 5);
        assert_eq!(r.get(4).map(|e| e.offset), Some(30));
        assert_eq!(r.get(5), None);
        // The last two rotations of each stream: (current, previous).
        assert_eq!(r.log_bases(Stream::Stdout), (25, 10));
        assert_eq!(r.log_bases(Stream::Stderr), (7, 0));
        w.append(&entry(40, Stream::Stdout, EntryKind::Rotate))
            .unwrap();
        assert_eq!(r.refresh().unwrap(), 6);
        assert_eq!(r.log_bases(Stream::Stdout), (40, 25));
    }
}
