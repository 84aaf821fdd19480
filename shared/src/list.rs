//! Listing a root: one small read per session, newest first.
//!
//! Hidden entries (sessions still being created) are skipped, so a
//! half-created session is never listed; a directory whose record cannot be
//! read is listed as corrupt, never fatal to the listing.

use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::id::SessionId;
use crate::layout::Stream;
use crate::record::Record;
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
    /// The record, or why it could not be read.
    pub record: Result<Record>,
    /// The derived status.
    pub status: Status,
}

impl Session {
    /// Reads the session in `dir` named `id`.
    pub fn load(id: SessionId, dir: PathBuf) -> Session {
        let record = check_is_dir(&dir)
            .and_then(|()| Record::read(&dir))
            .and_then(|r| {
                if r.id == id.as_str() {
                    Ok(r)
                } else {
                    Err(Error::Parse {
                        what: "record",
                        input: r.id,
                        hint: "the record's id differs from its directory's name",
                    })
                }
            });
        let status = match &record {
            Ok(r) => Status::derive(r, &dir),
            Err(_) => Status::Corrupt,
        };
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

    /// Bytes logged on `stream`: the final count once the session is over,
    /// else the sizes of its log files.
    pub fn log_bytes(&self, stream: Stream) -> u64 {
        if let Ok(r) = &self.record {
            if matches!(self.status, Status::Exited | Status::Failed) {
                return match stream {
                    Stream::Stdout => r.stdout_bytes,
                    Stream::Stderr => r.stderr_bytes,
                };
            }
        }
        let size = |p: PathBuf| fs::metadata(p).map(|m| m.len()).unwrap_or(0);
        size(stream.log_path(&self.dir)) + size(stream.rotated_log_path(&self.dir))
    }
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
    pub fn list(&self) -> Result<Vec<Session>> {
        let mut sessions: Vec<Session> = self
            .ids()?
            .into_iter()
            .map(|id| {
                let dir = self.session_dir(&id);
                Session::load(id, dir)
            })
            .collect();
        sort_newest_first(&mut sessions);
        Ok(sessions)
    }
}

/// Sorts sessions newest first, ties broken by id.
pub fn sort_newest_first(sessions: &mut [Session]) {
    sessions.sort_by_cached_key(|s| (std::cmp::Reverse(s.created_at()), s.id.clone()));
}
