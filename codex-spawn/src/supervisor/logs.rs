//! The session's logs: each chunk of output appended to its stream's log,
//! then recorded in the index; rotation at `--max-log-size`; output that
//! cannot be written (disk full, file size limit) counted and dropped,
//! never allowed to stop the command.
//!
//! The index's times never go back: each entry is given the time it was
//! read, or the time of the entry before when the wall clock stepped back
//! meanwhile (NTP, a manual change), so that readers can choose lines by
//! time (`--since`, `--until`) walking the index in order.
//!
//! With `--max-log-size`, the index is compacted at each rotation (see
//! `shared::index::Writer::compact`): it keeps only the entries of bytes
//! still on disk, so it stays bounded with the logs.

use std::fs::{self, File};
use std::io::{self, Write};
use std::os::fd::BorrowedFd;

use nix::fcntl::{splice, SpliceFFlags};
use std::path::{Path, PathBuf};

use shared::files::create_private;
use shared::index::{self, Entry, EntryKind};
use shared::layout::{self, Stream};
use shared::Timestamp;

/// The most one splice moves: a full pipe.
const SPLICE_MAX: usize = 1 << 20;
/// Index entries kept while the index cannot be written (2.4 MB).
const MAX_HELD: usize = 100_000;

/// The writing end of one stream's log: its current file, and what was
/// written to it.
struct LogWriter {
    stream: Stream,
    file: File,
    /// Bytes in the current file.
    file_len: u64,
    /// Bytes ever logged on this stream, rotated files included.
    logged: u64,
    /// Stream offset of the previous file's first byte (`NAME.1`; 0
    /// before the second rotation): the first byte still on disk.
    prev_base: u64,
}

/// Both logs and the index of a session.
pub struct Logs {
    dir: PathBuf,
    out: LogWriter,
    err: LogWriter,
    index: index::Writer,
    /// Entries for bytes already in the logs, not yet in the index.
    entries: Vec<Entry>,
    max_size: Option<u64>,
    /// Bytes that could not be logged.
    pub dropped: u64,
    /// The time of the last entry queued: no entry gets an earlier one.
    last_time: Timestamp,
    /// A log rotated since the index was last compacted.
    rotated: bool,
}

impl Logs {
    /// Creates the empty logs and index in `dir`.
    pub fn create(dir: &Path, max_size: Option<u64>) -> shared::Result<Logs> {
        let index_path = dir.join(layout::INDEX);
        let files = [
            create_private(&Stream::Stdout.log_path(dir))?,
            create_private(&Stream::Stderr.log_path(dir))?,
            create_private(&index_path)?,
        ];
        Logs::adopt(dir, max_size, files)
    }

    /// The logs and index of `dir`, empty, from their open files (stdout,
    /// stderr, index): those [`Logs::into_files`] gave codex-spawn's child
    /// before it exec'd this image (see [`crate::handoff`]).
    pub fn adopt(dir: &Path, max_size: Option<u64>, files: [File; 3]) -> shared::Result<Logs> {
        let [out, err, index] = files;
        let writer = |stream: Stream, file: File| LogWriter {
            stream,
            file,
            file_len: 0,
            logged: 0,
            prev_base: 0,
        };
        let index = index::Writer::new(index, &dir.join(layout::INDEX))?;
        Ok(Logs {
            dir: dir.to_path_buf(),
            out: writer(Stream::Stdout, out),
            err: writer(Stream::Stderr, err),
            index,
            entries: Vec::new(),
            max_size: max_size.filter(|&m| m > 0),
            dropped: 0,
            last_time: Timestamp::default(),
            rotated: false,
        })
    }

    /// The open files of logs nothing was logged to yet: stdout, stderr,
    /// index.
    pub fn into_files(self) -> [File; 3] {
        [self.out.file, self.err.file, self.index.into_file()]
    }

    /// Writes the index entries of everything logged so far, with one
    /// write. Their bytes are already in the logs, so an entry always
    /// points at bytes a reader can find. When the index cannot be
    /// written (a full disk), the entries are kept for the next commit
    /// (runs of dropped bytes merged, so that they stay few), so that the
    /// index still says where bytes were lost once there is room.
    pub fn commit(&mut self) {
        if !self.entries.is_empty()
            && (self.index.append_all(&self.entries).is_ok() || self.entries.len() > MAX_HELD)
        {
            self.entries.clear();
        }
        if self.rotated && self.entries.is_empty() {
            self.compact();
        }
    }

    /// Drops from the index the entries of bytes no longer on disk.
    fn compact(&mut self) {
        let first = [self.out.prev_base, self.err.prev_base];
        let tmp = self.dir.join(format!("{}.new", layout::INDEX));
        let needed = |e: &Entry| {
            let first = first[e.stream.index()];
            match e.kind {
                EntryKind::Data => e.offset + u64::from(e.len) > first,
                EntryKind::Dropped | EntryKind::Rotate => e.offset >= first,
            }
        };
        if self.index.compact(&tmp, needed).is_ok() {
            self.rotated = false;
        }
    }

    /// The time for an entry read at `time`: never earlier than the last.
    fn stamp(&mut self, time: Timestamp) -> Timestamp {
        self.last_time = self.last_time.max(time);
        self.last_time
    }

    /// Queues an entry for the index; data contiguous with the previous
    /// entry's, on the same stream, extends it instead (runs of one
    /// stream's output, such as bulk output, make one entry per commit).
    fn push(&mut self, entry: Entry) {
        if entry.kind == EntryKind::Dropped {
            // A run of bytes lost on a stream, with nothing of it logged
            // since (a full disk): one entry, at the run's start.
            let same = self
                .entries
                .iter_mut()
                .rev()
                .find(|e| e.stream == entry.stream)
                .filter(|e| e.kind == EntryKind::Dropped && e.offset == entry.offset);
            if let Some(last) = same {
                if let Some(len) = last.len.checked_add(entry.len) {
                    last.len = len;
                    return;
                }
            }
        }
        if let Some(last) = self.entries.last_mut() {
            if entry.kind == EntryKind::Data
                && last.kind == EntryKind::Data
                && last.stream == entry.stream
                && last.offset + u64::from(last.len) == entry.offset
                && u64::from(last.len) + u64::from(entry.len) <= u64::from(u32::MAX)
            {
                last.len += entry.len;
                return;
            }
        }
        self.entries.push(entry);
    }

    /// Entries in the index file (committed ones).
    pub fn index_len(&self) -> u64 {
        self.index.len()
    }

    /// Per stream, the bytes logged before its current log file began.
    pub fn rotated_bytes(&self) -> [u64; 2] {
        [
            self.out.logged - self.out.file_len,
            self.err.logged - self.err.file_len,
        ]
    }

    /// Bytes logged so far on `stream`.
    pub fn logged(&self, stream: Stream) -> u64 {
        match stream {
            Stream::Stdout => self.out.logged,
            Stream::Stderr => self.err.logged,
        }
    }

    /// Logs `pieces`, read in this order at `time`: each stream's bytes
    /// with one write, then all their index entries with one write (this
    /// is the supervisor's hot path). With `--max-log-size`, piece by piece.
    /// Never fails: bytes the log does not take are counted as dropped and
    /// marked so in the index.
    pub fn log_pieces(&mut self, pieces: &[(Stream, &[u8])], time: Timestamp) {
        let time = self.stamp(time);
        if self.max_size.is_some() {
            for (stream, bytes) in pieces {
                self.log_chunk(*stream, bytes, time);
            }
            return;
        }
        // How many bytes of each stream made it to its log.
        let mut landed = [0usize; 2];
        for (k, stream) in [Stream::Stdout, Stream::Stderr].into_iter().enumerate() {
            let parts: Vec<&[u8]> = pieces
                .iter()
                .filter(|(s, _)| *s == stream)
                .map(|&(_, b)| b)
                .collect();
            // One write per stream; a copy only when the stream's pieces
            // are interleaved with the other's.
            let file = &mut self.writer(stream).file;
            landed[k] = match parts.as_slice() {
                [] => 0,
                [one] => write_some(file, one),
                many => write_some(file, &many.concat()),
            };
        }
        let mut entries = Vec::with_capacity(pieces.len());
        for &(stream, bytes) in pieces {
            let k = stream.index();
            let ok = landed[k].min(bytes.len());
            landed[k] -= ok;
            let log = self.writer(stream);
            if ok > 0 {
                entries.push(Entry {
                    time,
                    offset: log.logged,
                    len: ok as u32,
                    stream,
                    kind: EntryKind::Data,
                });
                log.logged += ok as u64;
                log.file_len += ok as u64;
            }
            let lost = bytes.len() - ok;
            if lost > 0 {
                entries.push(Entry {
                    time,
                    offset: log.logged,
                    len: lost as u32,
                    stream,
                    kind: EntryKind::Dropped,
                });
                self.dropped += lost as u64;
            }
        }
        for e in entries {
            self.push(e);
        }
    }

    /// Moves what `pipe` holds straight into `stream`'s log (splice, no
    /// copy through user space): the bulk path, for output that comes in
    /// whole pipe pages. Returns the bytes moved (0 at the pipe's end).
    /// Refused with `--max-log-size`, and failing on a full disk, leaving
    /// the data in the pipe for the caller to read.
    pub fn splice_from(
        &mut self,
        stream: Stream,
        pipe: BorrowedFd<'_>,
        time: Timestamp,
    ) -> io::Result<usize> {
        if self.max_size.is_some() {
            return Err(io::ErrorKind::Unsupported.into());
        }
        let time = self.stamp(time);
        let log = self.writer(stream);
        let flags = SpliceFFlags::SPLICE_F_NONBLOCK | SpliceFFlags::SPLICE_F_MOVE;
        let n = splice(pipe, None, &log.file, None, SPLICE_MAX, flags)?;
        if n > 0 {
            let offset = log.logged;
            log.logged += n as u64;
            log.file_len += n as u64;
            self.push(Entry {
                time,
                offset,
                len: n as u32,
                stream,
                kind: EntryKind::Data,
            });
        }
        Ok(n)
    }

    /// Logs one chunk read from `stream` at `time`. With `--max-log-size`
    /// the chunk is split at the size, so no log file grows past it. Like
    /// [`Logs::log_pieces`], what cannot be written is counted and dropped.
    pub fn log_chunk(&mut self, stream: Stream, mut chunk: &[u8], time: Timestamp) {
        let time = self.stamp(time);
        while !chunk.is_empty() {
            let take = match self.max_size {
                Some(max) => {
                    let log = self.writer(stream);
                    if log.file_len >= max && self.rotate(stream, time).is_err() {
                        // Cannot rotate: keep everything in the current file.
                        chunk.len()
                    } else {
                        let room = max - self.writer(stream).file_len;
                        chunk.len().min(room.min(usize::MAX as u64) as usize)
                    }
                }
                None => chunk.len(),
            };
            self.append(stream, &chunk[..take], time);
            chunk = &chunk[take..];
        }
    }

    fn writer(&mut self, stream: Stream) -> &mut LogWriter {
        match stream {
            Stream::Stdout => &mut self.out,
            Stream::Stderr => &mut self.err,
        }
    }

    /// Rotates `stream`'s log and says so in the index.
    fn rotate(&mut self, stream: Stream, time: Timestamp) -> shared::Result<()> {
        let dir = self.dir.clone();
        let log = self.writer(stream);
        let base = log.logged - log.file_len;
        rotate(&dir, log)?;
        log.prev_base = base;
        let offset = log.logged;
        self.rotated = true;
        self.entries.push(Entry {
            time,
            offset,
            len: 0,
            stream,
            kind: EntryKind::Rotate,
        });
        Ok(())
    }

    /// Appends `chunk` to the current log of `stream`, and queues its entry.
    fn append(&mut self, stream: Stream, chunk: &[u8], time: Timestamp) {
        let log = self.writer(stream);
        let offset = log.logged;
        let written = write_some(&mut log.file, chunk);
        log.logged += written as u64;
        log.file_len += written as u64;
        if written > 0 {
            self.push(Entry {
                time,
                offset,
                len: written as u32,
                stream,
                kind: EntryKind::Data,
            });
        }
        let lost = chunk.len() - written;
        if lost > 0 {
            self.dropped += lost as u64;
            self.push(Entry {
                time,
                offset: offset + written as u64,
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
fn rotate(dir: &Path, log: &mut LogWriter) -> shared::Result<()> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("codex-logs-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// The wall clock stepping back while a session runs never puts an
    /// entry before the one it follows: `--since`/`--until` walk the index
    /// in order. (Unit-level: the supervisor takes the real clock, and no
    /// end-to-end test may step the machine's clock.)
    #[test]
    fn index_times_never_go_back_when_the_clock_does() {
        let dir = temp_dir("clock");
        let mut logs = Logs::create(&dir, None).unwrap();
        logs.log_chunk(Stream::Stdout, b"one\n", Timestamp(5_000));
        logs.log_pieces(&[(Stream::Stderr, b"two\n")], Timestamp(1_000));
        logs.log_chunk(Stream::Stdout, b"three\n", Timestamp(2_000));
        logs.commit();
        logs.log_chunk(Stream::Stdout, b"four\n", Timestamp(9_000));
        logs.commit();
        let times: Vec<i64> = index::read_all(&dir.join(layout::INDEX))
            .unwrap()
            .iter()
            .map(|e| e.time.0)
            .collect();
        let _ = fs::remove_dir_all(&dir);
        assert_eq!(times, [5_000, 5_000, 5_000, 9_000]);
    }

    /// With `--max-log-size`, the index keeps only what is still on disk:
    /// its size stays bounded however much is written, and what it keeps
    /// reads back the logs' bytes.
    #[test]
    fn the_index_is_compacted_with_the_logs() {
        let dir = temp_dir("compact");
        let mut logs = Logs::create(&dir, Some(1000)).unwrap();
        logs.log_chunk(Stream::Stderr, b"quiet stderr\n", Timestamp(1));
        let mut sizes = Vec::new();
        for i in 0..20_000u32 {
            logs.log_chunk(Stream::Stdout, format!("{i}\n").as_bytes(), Timestamp(2));
            logs.commit();
            sizes.push(logs.index.file_size());
        }
        let max = *sizes.iter().max().unwrap();
        assert!(max < 24 * 3 * 1000, "the index grew to {max} bytes");
        let r = index::Reader::open(&dir.join(layout::INDEX)).unwrap();
        assert_eq!(r.len() as u64, logs.index_len());
        assert!(r.first() > 0, "never compacted");
        let entries: Vec<Entry> = (r.first()..r.len()).filter_map(|i| r.get(i)).collect();
        // The quiet stream's entry is still there, ahead of the rest.
        assert_eq!(entries[0].stream, Stream::Stderr);
        // The stdout entries kept cover the bytes on disk, in order.
        let out: Vec<&Entry> = entries
            .iter()
            .filter(|e| e.stream == Stream::Stdout && e.kind == EntryKind::Data)
            .collect();
        let on_disk = fs::metadata(dir.join("stdout.log.1")).unwrap().len()
            + fs::metadata(dir.join("stdout.log")).unwrap().len();
        let end = out.last().map(|e| e.offset + u64::from(e.len)).unwrap();
        assert_eq!(end, logs.logged(Stream::Stdout));
        assert!(out[0].offset <= end - on_disk, "an entry on disk is gone");
        assert!(out
            .windows(2)
            .all(|w| w[0].offset + u64::from(w[0].len) == w[1].offset));
        let _ = fs::remove_dir_all(&dir);
    }

    /// A full index (disk full) keeps its entries for the next commit, so
    /// the index still says where bytes were lost, merged into one entry.
    #[test]
    fn dropped_runs_merge_into_one_entry() {
        let dir = temp_dir("dropped");
        let mut logs = Logs::create(&dir, None).unwrap();
        for _ in 0..3 {
            logs.push(Entry {
                time: Timestamp(1),
                offset: 10,
                len: 5,
                stream: Stream::Stdout,
                kind: EntryKind::Dropped,
            });
        }
        let _ = fs::remove_dir_all(&dir);
        assert_eq!(logs.entries.len(), 1);
        assert_eq!(logs.entries[0].len, 15);
    }
}
