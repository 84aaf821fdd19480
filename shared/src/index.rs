//! The output index: one fixed-size binary record per chunk the supervisor
//! read, in arrival order, so that readers can merge stdout and stderr as
//! they arrived and give every chunk its time, without touching the logs'
//! bytes.
//!
//! The file starts with a 16-byte header (`CXINDEX` and a format byte, then
//! the number of the file's first entry, a little-endian u64), followed by
//! 24-byte little-endian entries:
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
//!
//! **Entry numbers.** Entries are numbered from 0 for the session's first,
//! and keep their number for good. With `--max-log-size` the supervisor
//! compacts the index when a log rotates (see [`Writer::compact`]): it
//! writes a new file holding only the entries whose bytes are still on
//! disk, and renames it over the old one. The header's first-entry number
//! says where the new file starts; entries that were still needed from
//! before that point are moved just ahead of it (their numbers change, so
//! a follower may meet them twice: readers skip bytes of a stream they
//! already took in, by stream offset). A reader that finds the file
//! replaced reopens it ([`Reader::refresh`]); a reader whose position was
//! compacted away continues at the new file's first entry, and what it
//! missed shows as a gap in the stream offsets.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use memmap2::{Mmap, MmapOptions};

use crate::error::{Error, Result};
use crate::layout::Stream;
use crate::time::Timestamp;

/// The header every index starts with (for a first entry numbered 0).
pub const HEADER: [u8; 16] = *b"CXINDEX\x01\0\0\0\0\0\0\0\0";

/// The header of an index file whose first entry is number `first`.
fn header(first: u64) -> [u8; 16] {
    let mut h = HEADER;
    h[8..16].copy_from_slice(&first.to_le_bytes());
    h
}
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
    path: PathBuf,
    /// The number of the file's first entry.
    first: u64,
    /// Bytes in the file.
    len: u64,
}

/// Entries read at a time when an index is compacted.
const COMPACT_BLOCK: usize = 2730;

impl Writer {
    /// Starts the index in `file`, a new empty file at `path`.
    pub fn new(file: File, path: &Path) -> Result<Writer> {
        file.write_all_at(&HEADER, 0)
            .map_err(|e| Error::io("writing", path, e))?;
        Ok(Writer {
            file,
            path: path.to_path_buf(),
            first: 0,
            len: HEADER.len() as u64,
        })
    }

    /// The index file, to hand on.
    pub fn into_file(self) -> File {
        self.file
    }

    /// The number of entries written (the next entry's number).
    pub fn len(&self) -> u64 {
        self.first + (self.len - HEADER.len() as u64) / ENTRY_SIZE as u64
    }

    /// Whether no entry has been written.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The size of the index file in bytes.
    pub fn file_size(&self) -> u64 {
        self.len
    }

    /// Appends one entry. A failed write (disk full) leaves no partial
    /// entry behind: the next write goes to the same place.
    pub fn append(&mut self, entry: &Entry) -> io::Result<()> {
        self.append_all(std::slice::from_ref(entry))
    }

    /// Appends several entries with one write. On failure nothing counts
    /// as written (a partial write is overwritten by the next one).
    pub fn append_all(&mut self, entries: &[Entry]) -> io::Result<()> {
        let mut bytes = Vec::with_capacity(entries.len() * ENTRY_SIZE);
        for e in entries {
            bytes.extend_from_slice(&e.encode());
        }
        self.file.write_all_at(&bytes, self.len)?;
        self.len += bytes.len() as u64;
        Ok(())
    }

    /// Rewrites the index without the entries no reader needs any more:
    /// the file then holds the entries from the last one `needed` refuses
    /// on (their numbers kept), preceded by the ones `needed` keeps from
    /// before that point, in order (renumbered just ahead of it). The new
    /// file replaces the old by rename, so a reader never sees it half
    /// written; on failure (a full disk) the old one stays. `tmp` is the
    /// path of the new file while it is written.
    pub fn compact(&mut self, tmp: &Path, needed: impl Fn(&Entry) -> bool) -> io::Result<()> {
        let count = (self.len - HEADER.len() as u64) / ENTRY_SIZE as u64;
        let at = |i: u64| HEADER.len() as u64 + i * ENTRY_SIZE as u64;
        let mut block = vec![0u8; COMPACT_BLOCK * ENTRY_SIZE];
        // The first entry from which every entry is kept (local number).
        let mut cut = 0;
        let mut hi = count;
        'scan: while hi > 0 {
            let lo = hi.saturating_sub(COMPACT_BLOCK as u64);
            let bytes = &mut block[..((hi - lo) as usize * ENTRY_SIZE)];
            self.file.read_exact_at(bytes, at(lo))?;
            for (j, b) in bytes.chunks_exact(ENTRY_SIZE).enumerate().rev() {
                if !Entry::decode(b).is_some_and(|e| needed(&e)) {
                    cut = lo + j as u64 + 1;
                    break 'scan;
                }
            }
            hi = lo;
        }
        if cut == 0 {
            return Ok(());
        }
        let mut kept = Vec::new();
        let mut lo = 0;
        while lo < cut {
            let hi = (lo + COMPACT_BLOCK as u64).min(cut);
            let bytes = &mut block[..((hi - lo) as usize * ENTRY_SIZE)];
            self.file.read_exact_at(bytes, at(lo))?;
            for b in bytes.chunks_exact(ENTRY_SIZE) {
                if Entry::decode(b).is_some_and(|e| needed(&e)) {
                    kept.extend_from_slice(b);
                }
            }
            lo = hi;
        }
        let first = self.first + cut - (kept.len() / ENTRY_SIZE) as u64;
        let result = (|| {
            let _ = std::fs::remove_file(tmp);
            let new = crate::files::create_private(tmp).map_err(io::Error::other)?;
            new.write_all_at(&header(first), 0)?;
            new.write_all_at(&kept, HEADER.len() as u64)?;
            let mut to = (HEADER.len() + kept.len()) as u64;
            let mut lo = cut;
            while lo < count {
                let hi = (lo + COMPACT_BLOCK as u64).min(count);
                let bytes = &mut block[..((hi - lo) as usize * ENTRY_SIZE)];
                self.file.read_exact_at(bytes, at(lo))?;
                new.write_all_at(bytes, to)?;
                to += bytes.len() as u64;
                lo = hi;
            }
            std::fs::rename(tmp, &self.path)?;
            Ok((new, to))
        })();
        match result {
            Ok((new, len)) => {
                self.file = new;
                self.first = first;
                self.len = len;
                Ok(())
            }
            Err(e) => {
                let _ = std::fs::remove_file(tmp);
                Err(e)
            }
        }
    }
}

/// A reader's view of an index: the file mapped into memory, whole entries
/// only, remapped when it grows, reopened when the supervisor replaced it
/// (compaction). Entries are addressed by their number (see the module's
/// documentation): those before [`Reader::first`] are gone.
#[derive(Debug)]
pub struct Reader {
    path: PathBuf,
    file: File,
    map: Option<Mmap>,
    /// The number of the file's first entry.
    first: usize,
    /// Whole entries in the file, at the last look.
    count: usize,
}

impl Reader {
    /// Opens the index at `path` and checks its header.
    pub fn open(path: &Path) -> Result<Reader> {
        let (file, first) = Reader::open_file(path)?;
        let mut r = Reader {
            path: path.to_path_buf(),
            file,
            map: None,
            first,
            count: 0,
        };
        r.refresh()?;
        Ok(r)
    }

    fn open_file(path: &Path) -> Result<(File, usize)> {
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
        let first = u64::from_le_bytes(header[8..16].try_into().unwrap());
        Ok((file, usize::try_from(first).unwrap_or(usize::MAX / 2)))
    }

    /// Whether the file at the index's path is no longer the one open
    /// (the supervisor compacted the index).
    fn replaced(&self) -> bool {
        use std::os::unix::fs::MetadataExt;
        let (Ok(now), Ok(open)) = (std::fs::symlink_metadata(&self.path), self.file.metadata())
        else {
            return false;
        };
        (now.dev(), now.ino()) != (open.dev(), open.ino())
    }

    /// Takes in the entries appended since the last look (reopening the
    /// index when it was replaced); returns the number of the entry after
    /// the last one there is now ([`Reader::len`]).
    pub fn refresh(&mut self) -> Result<usize> {
        if self.map.is_some() && self.replaced() {
            // Compacted: the new file. (Should it fail to open, the old
            // one is still a consistent, if ageing, view.)
            if let Ok((file, first)) = Reader::open_file(&self.path) {
                if first >= self.first {
                    self.file = file;
                    self.first = first;
                    self.count = 0;
                    self.map = None;
                }
            }
        }
        let len = self
            .file
            .metadata()
            .map_err(|e| Error::io("reading", &self.path, e))?
            .len() as usize;
        let count = len.saturating_sub(HEADER.len()) / ENTRY_SIZE;
        if count > self.count || self.map.is_none() {
            let bytes = HEADER.len() + count * ENTRY_SIZE;
            // Safety: the mapping is read-only and covers only bytes that
            // exist; index files are append-only (the supervisor never
            // truncates one: compaction writes a new file), so the mapped
            // range stays backed by the file.
            let map = unsafe { MmapOptions::new().len(bytes).map(&self.file) }
                .map_err(|e| Error::io("mapping", &self.path, e))?;
            self.map = Some(map);
            self.count = count;
        }
        Ok(self.len())
    }

    /// The number of the first entry still in the index (0 until the
    /// index was compacted).
    pub fn first(&self) -> usize {
        self.first
    }

    /// The number after the last entry seen at the last refresh.
    pub fn len(&self) -> usize {
        self.first + self.count
    }

    /// Whether the index has no entries.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Entry number `i`; `None` past the end, before [`Reader::first`], or
    /// when invalid.
    pub fn get(&self, i: usize) -> Option<Entry> {
        let i = i.checked_sub(self.first)?;
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
        for i in (self.first..self.len()).rev() {
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
    Ok((r.first()..r.len()).filter_map(|i| r.get(i)).collect())
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
