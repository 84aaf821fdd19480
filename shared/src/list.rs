//! Listing a root: one small read per session, newest first.
//!
//! Hidden entries (sessions still being created) are skipped, so a
//! half-created session is never listed; a directory whose record cannot be
//! read is listed as corrupt, never fatal to the listing.

use std::fs;
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::files::{self, Beneath};
use crate::id::SessionId;
use crate::layout::{Stream, RECORD};
use crate::record::{Record, State};
use crate::root::Root;
use crate::status::Status;
use crate::time::Timestamp;

/// A session as read from its directory.
#[derive(Debug)]
pub struct Session {
    /// The id (the directory name).
    pub id: SessionId,
    /// The session directory.
    pub dir: PathBuf,
    /// The record, or why it could not be read (boxed: a listing sorts
    /// thousands of sessions, which move as pointers).
    pub record: Result<Box<Record>>,
    /// The derived status.
    pub status: Status,
}

impl Session {
    /// Reads the session in `dir` named `id`.
    pub fn load(id: SessionId, dir: PathBuf) -> Session {
        let record = check_is_dir(&dir).and_then(|()| Record::read(&dir));
        Session::with_record(id, dir, record)
    }

    /// Reads the session named `id` of the root open as `root` (its path
    /// `dir`) the quick way ([`files::read_beneath`]), falling back on
    /// [`Session::load`] for anything the quick way cannot read or parse,
    /// so that the outcome and its error are always the careful way's.
    fn load_beneath(
        id: SessionId,
        dir: PathBuf,
        root: BorrowedFd<'_>,
        quick: &mut Quick,
    ) -> Session {
        if quick.supported {
            let rel = Path::new(id.as_str()).join(RECORD);
            match files::read_beneath(root, &rel, files::MAX_RECORD, &mut quick.buf) {
                Ok(()) => {
                    // The path only words a parse error, which sends us
                    // the careful way anyway.
                    if let Ok(r) = Record::from_slice(&rel, &quick.buf) {
                        return Session::with_record(id, dir, Ok(r));
                    }
                }
                Err(Beneath::Unsupported) => quick.supported = false,
                Err(Beneath::Failed) => {}
            }
        }
        Session::load(id, dir)
    }

    /// The session named `id` in `dir` whose record read gave `record`:
    /// the id checked against the directory's name, the status derived.
    fn with_record(id: SessionId, dir: PathBuf, record: Result<Record>) -> Session {
        let mut record = record.and_then(|r| {
            if r.id == id.as_str() {
                Ok(Box::new(r))
            } else {
                Err(Error::Parse {
                    what: "record",
                    input: r.id,
                    hint: "the record's id differs from its directory's name",
                })
            }
        });
        let mut status = match &record {
            Ok(r) => Status::derive(r, &dir),
            Err(_) => Status::Corrupt,
        };
        // The supervisor may have written its final record and released the
        // lock between our read and our probe: a free lock under a live
        // record is only believed once the record has been read again.
        if let (Status::Lost | Status::Failed, Ok(r)) = (status, &record) {
            if matches!(r.state, State::Running | State::Starting | State::Queued) {
                if let Ok(again) = Record::read(&dir) {
                    if again.state != r.state && again.id == r.id {
                        status = Status::derive(&again, &dir);
                        record = Ok(Box::new(again));
                    }
                }
            }
        }
        Session {
            id,
            dir,
            record,
            status,
        }
    }

    /// When the session was created: from the record, else (corrupt) the
    /// directory's modification time.
    pub fn created_at(&self) -> Timestamp {
        match &self.record {
            Ok(r) => r.created_at,
            Err(_) => fs::metadata(&self.dir)
                .map(|m| Timestamp(m.mtime() * 1_000_000_000 + m.mtime_nsec()))
                .unwrap_or_default(),
        }
    }

    /// Bytes logged on `stream`, rotated files included: the final count
    /// once the session is over; while it runs (or once lost), the bytes
    /// logged before the current log file (as the supervisor recorded at
    /// its last rotation) plus that file's size. Without a readable record,
    /// the sizes of its log files (none through a symlink out of the root).
    pub fn log_bytes(&self, stream: Stream) -> u64 {
        // Not through a symlink; a FIFO or directory in a log's place is 0.
        let size = |p: PathBuf| {
            fs::symlink_metadata(p)
                .ok()
                .filter(fs::Metadata::is_file)
                .map_or(0, |m| m.len())
        };
        match &self.record {
            Ok(r) if matches!(self.status, Status::Exited | Status::Failed) => match stream {
                Stream::Stdout => r.stdout_bytes,
                Stream::Stderr => r.stderr_bytes,
            },
            Ok(r) if r.rotated_bytes != [0, 0] => {
                r.rotated_bytes[stream.index()] + size(stream.log_path(&self.dir))
            }
            Err(_) if check_is_dir(&self.dir).is_err() => 0,
            // Without --max-log-size nothing is ever rotated.
            Ok(r) if r.max_log_size.is_none() => size(stream.log_path(&self.dir)),
            _ => size(stream.log_path(&self.dir)) + size(stream.rotated_log_path(&self.dir)),
        }
    }
}

/// The state of the quick way of reading records through one listing.
struct Quick {
    /// False once `openat2` turned out to be missing.
    supported: bool,
    /// The buffer each record is read into, reused.
    buf: Vec<u8>,
}

/// Refuses a session "directory" that is a symlink or not a directory, so
/// that nothing reads or writes through a link out of the root.
fn check_is_dir(dir: &std::path::Path) -> Result<()> {
    let meta = fs::symlink_metadata(dir).map_err(|e| Error::io("reading", dir, e))?;
    if meta.is_dir() {
        Ok(())
    } else {
        Err(Error::io(
            "reading",
            dir,
            io::Error::other("not a directory (a symlink or a file)"),
        ))
    }
}

impl Root {
    /// The ids of every session directory, in no particular order. Entries
    /// that are hidden or not valid ids are skipped.
    pub fn ids(&self) -> Result<Vec<SessionId>> {
        let entries = match fs::read_dir(self.path()) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound && !self.exists() => {
                return Ok(Vec::new())
            }
            Err(e) => return Err(Error::io("listing", self.path(), e)),
        };
        let mut ids = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| Error::io("listing", self.path(), e))?;
            if let Some(id) = entry
                .file_name()
                .to_str()
                .and_then(|n| SessionId::parse(n).ok())
            {
                ids.push(id);
            }
        }
        Ok(ids)
    }

    /// Every session, newest first (ties broken by id).
    ///
    /// A large root is read by a few threads at once (one per core, at
    /// most [`MAX_READERS`]), each taking a share of the sessions: reading
    /// and parsing records is most of a listing's time, and independent.
    pub fn list(&self) -> Result<Vec<Session>> {
        let ids = self.ids()?;
        // One descriptor of the root, beneath which each record is opened.
        let root = fs::OpenOptions::new()
            .read(true)
            .custom_flags(nix::libc::O_DIRECTORY)
            .open(self.path())
            .ok();
        let readers = if ids.len() < SESSIONS_PER_READER {
            1
        } else {
            std::thread::available_parallelism()
                .map_or(1, usize::from)
                .min(MAX_READERS)
                .min(ids.len() / SESSIONS_PER_READER)
        };
        let share = ids.len().div_ceil(readers.max(1)).max(1);
        let mut shares: Vec<Vec<SessionId>> = Vec::with_capacity(readers);
        let mut ids = ids.into_iter();
        loop {
            let part: Vec<SessionId> = ids.by_ref().take(share).collect();
            if part.is_empty() {
                break;
            }
            shares.push(part);
        }
        let read = |part: Vec<SessionId>| self.load_all(part, root.as_ref());
        let mut sessions: Vec<Session> = match shares.len() {
            0 => Vec::new(),
            1 => read(shares.pop().expect("one share")),
            _ => std::thread::scope(|scope| {
                let running: Vec<_> = shares
                    .into_iter()
                    .map(|part| scope.spawn(move || read(part)))
                    .collect();
                running
                    .into_iter()
                    .flat_map(|t| t.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                    .collect()
            }),
        };
        sort_newest_first(&mut sessions);
        Ok(sessions)
    }

    /// The sessions named `ids`, read beneath `root` (this root, open)
    /// when there is one; those removed since the root was listed left
    /// out.
    fn load_all(&self, ids: Vec<SessionId>, root: Option<&fs::File>) -> Vec<Session> {
        let mut quick = Quick {
            supported: root.is_some(),
            buf: Vec::with_capacity(16 << 10),
        };
        let mut sessions = Vec::with_capacity(ids.len());
        for id in ids {
            let dir = self.session_dir(&id);
            let session = match root {
                Some(f) => Session::load_beneath(id, dir, f.as_fd(), &mut quick),
                None => Session::load(id, dir),
            };
            // Removed since the directory was listed: gone, not corrupt.
            if session.record.is_ok() || fs::symlink_metadata(&session.dir).is_ok() {
                sessions.push(session);
            }
        }
        sessions
    }
}

/// The fewest sessions worth a thread of their own when listing.
const SESSIONS_PER_READER: usize = 1000;

/// The most threads reading one root.
pub const MAX_READERS: usize = 4;

/// Sorts sessions newest first, ties broken by id.
pub fn sort_newest_first(sessions: &mut [Session]) {
    sessions.sort_by_cached_key(|s| (std::cmp::Reverse(s.created_at()), s.id.clone()));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::root::Access;
    use crate::select::Selector;
    use crate::testdir::{copy_tree, TempDir};
    use std::path::Path;

    /// The checked-in root written by format version 1 must keep loading.
    #[test]
    fn v1_fixture_root_keeps_loading() {
        let t = TempDir::new("fixture");
        let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/v1");
        copy_tree(&fixture, &t.path().join("root"));
        let root = Root::open(t.path().join("root"), Access::Read).unwrap();
        let sessions = root.list().unwrap();
        let status = |id: &str| {
            sessions
                .iter()
                .find(|s| s.id.as_str() == id)
                .unwrap()
                .status
        };
        assert_eq!(sessions.len(), 6, "the staging directory is not listed");
        assert_eq!(status("crisp-owlet-3f2a"), Status::Exited);
        assert_eq!(status("calm-yak-0001"), Status::Exited);
        assert_eq!(status("brave-otter-1234"), Status::Lost);
        assert_eq!(status("bold-heron-abcd"), Status::Failed);
        assert_eq!(status("quick-lynx-9999"), Status::Failed);
        assert_eq!(status("tidy-wombat-5555"), Status::Corrupt);

        let ordered: Vec<&str> = sessions
            .iter()
            .filter(|s| s.status != Status::Corrupt)
            .map(|s| s.id.as_str())
            .collect();
        assert_eq!(
            ordered,
            [
                "crisp-owlet-3f2a",
                "calm-yak-0001",
                "brave-otter-1234",
                "bold-heron-abcd",
                "quick-lynx-9999"
            ]
        );
        let crisp = sessions
            .iter()
            .find(|s| s.id.as_str() == "crisp-owlet-3f2a")
            .unwrap();
        let r = crisp.record.as_ref().unwrap();
        assert_eq!(r.kind, crate::record::Kind::Exec);
        assert_eq!(r.labels["team"], "core");
        assert_eq!(crisp.log_bytes(Stream::Stdout), 6);
        let calm = sessions
            .iter()
            .find(|s| s.id.as_str() == "calm-yak-0001")
            .unwrap();
        assert_eq!(
            calm.record.as_ref().unwrap().signal.as_deref(),
            Some("SIGTERM")
        );
        let entries = crate::index::read_all(&crisp.dir.join(crate::layout::INDEX)).unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[1].stream, Stream::Stderr);

        // Selectors work on the listing.
        let i = Selector::parse("calm", true)
            .unwrap()
            .find(&sessions)
            .unwrap();
        assert_eq!(sessions[i].id.as_str(), "calm-yak-0001");
        assert!(
            Selector::parse("b", true).unwrap().find(&sessions).is_err(),
            "ambiguous"
        );
    }

    #[test]
    fn missing_root_lists_nothing() {
        let t = TempDir::new("list");
        let root = Root::open(t.path().join("nope"), Access::Read).unwrap();
        assert!(root.list().unwrap().is_empty());
    }

    #[test]
    fn symlinked_and_foreign_entries() {
        let t = TempDir::new("list");
        let root = Root::open(t.path().join("root"), Access::Create).unwrap();
        std::fs::create_dir(t.path().join("elsewhere")).unwrap();
        std::os::unix::fs::symlink(t.path().join("elsewhere"), root.path().join("linked-1"))
            .unwrap();
        std::fs::create_dir(root.path().join("Not An Id")).unwrap();
        let sessions = root.list().unwrap();
        assert_eq!(sessions.len(), 1);
        assert_eq!(sessions[0].status, Status::Corrupt);
    }
}
