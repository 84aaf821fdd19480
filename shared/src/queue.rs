//! Queues on disk (`--queue NAME=N`): at most N sessions of a queue run at
//! once in a root, and waiting sessions start in the order they were
//! created. No daemon and no counter: each waiting session's supervisor
//! does its own waiting, and slots are locks the kernel releases.
//!
//! `ROOT/.queues/NAME/` (mode 0700) holds:
//!
//! | file | meaning |
//! |---|---|
//! | `slot.K` (K < N) | held by a running member of the queue: an exclusive `flock` on a read-only descriptor, and a write-only descriptor kept open beside it |
//! | `wait.TIME.ID` | the ticket of a waiting session (TIME: its creation, in nanoseconds, 20 digits), held with an exclusive `flock` while it waits |
//!
//! A member that ends, cleanly or by `kill -9`, has its descriptors closed
//! by the kernel: the lock is released and, since one descriptor was open
//! for writing, inotify reports `IN_CLOSE_WRITE` on the slot file, which
//! wakes the waiters watching the directory. Probes open files read-only,
//! so they wake nobody. A waiter takes a slot only when no older ticket is
//! held (a ticket whose lock is free belongs to a waiter that died: it is
//! removed), and removes its own ticket once it holds a slot, which wakes
//! the next waiter (`IN_DELETE`).

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

#[allow(deprecated)] // `Flock` owns the file; we keep ours (and its descriptor).
use nix::fcntl::{flock, FlockArg};

use crate::error::{Error, Result};
use crate::files::create_private_dir;
use crate::time::Timestamp;

/// The directory of a root that holds its queues.
pub const QUEUES_DIR: &str = ".queues";

/// The directory of queue `name` in `root`, created if missing.
pub fn dir(root: &Path, name: &str) -> Result<PathBuf> {
    let queues = root.join(QUEUES_DIR);
    for d in [&queues, &queues.join(name)] {
        match create_private_dir(d) {
            Err(Error::Io { source, .. }) if source.kind() == io::ErrorKind::AlreadyExists => {}
            other => other?,
        }
    }
    Ok(queues.join(name))
}

/// A slot of a queue, held until dropped (or the process ends).
#[derive(Debug)]
pub struct Slot {
    _held: File,
    _mark: File,
    /// Which slot.
    pub index: u32,
}

/// Opens `path` read-only (creating it first if needed) and tries to lock
/// it exclusively without waiting.
fn try_lock(path: &Path) -> Result<Option<File>> {
    let open = || {
        OpenOptions::new()
            .read(true)
            .custom_flags(nix::libc::O_CLOEXEC | nix::libc::O_NOFOLLOW)
            .open(path)
    };
    let file = match open() {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            // Created once, by whoever comes first.
            let _ = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .custom_flags(nix::libc::O_CLOEXEC)
                .open(path);
            open().map_err(|e| Error::io("opening", path, e))?
        }
        Err(e) => return Err(Error::io("opening", path, e)),
    };
    match flock_nb(&file) {
        Ok(true) => Ok(Some(file)),
        Ok(false) => Ok(None),
        Err(e) => Err(Error::io("locking", path, e)),
    }
}

#[allow(deprecated)] // See the import.
fn flock_nb(file: &File) -> io::Result<bool> {
    match flock(file.as_fd().as_raw_fd(), FlockArg::LockExclusiveNonblock) {
        Ok(()) => Ok(true),
        Err(nix::errno::Errno::EWOULDBLOCK) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Takes a free slot of the queue in `qdir`, if one of its `limit` slots
/// is free.
pub fn try_slot(qdir: &Path, limit: u32) -> Result<Option<Slot>> {
    for index in 0..limit {
        let path = qdir.join(format!("slot.{index}"));
        if let Some(held) = try_lock(&path)? {
            let mark = OpenOptions::new()
                .write(true)
                .custom_flags(nix::libc::O_CLOEXEC | nix::libc::O_NOFOLLOW)
                .open(&path)
                .map_err(|e| Error::io("opening", &path, e))?;
            return Ok(Some(Slot {
                _held: held,
                _mark: mark,
                index,
            }));
        }
    }
    Ok(None)
}

/// Whether any of the `limit` slots of the queue in `qdir` is free now
/// (a probe: it takes nothing and wakes nobody).
pub fn any_free(qdir: &Path, limit: u32) -> Result<bool> {
    for index in 0..limit {
        if try_lock(&qdir.join(format!("slot.{index}")))?.is_some() {
            return Ok(true);
        }
    }
    Ok(false)
}

/// A waiting session's place in line, held until dropped (which removes
/// it).
#[derive(Debug)]
pub struct Ticket {
    path: PathBuf,
    name: String,
    _file: File,
}

impl Ticket {
    /// Takes a ticket for session `id`, created at `created`.
    pub fn take(qdir: &Path, created: Timestamp, id: &str) -> Result<Ticket> {
        let name = format!("wait.{:020}.{id}", created.0.max(0));
        let path = qdir.join(&name);
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(nix::libc::O_CLOEXEC | nix::libc::O_NOFOLLOW)
            .open(&path)
            .map_err(|e| Error::io("creating", &path, e))?;
        if !flock_nb(&file).map_err(|e| Error::io("locking", &path, e))? {
            return Err(Error::io(
                "locking",
                &path,
                io::Error::new(io::ErrorKind::WouldBlock, "held by another waiter"),
            ));
        }
        Ok(Ticket {
            path,
            name,
            _file: file,
        })
    }

    /// Whether this ticket is the oldest one still held: no live session
    /// created before this one waits in the queue. Tickets of waiters that
    /// died are removed on the way.
    pub fn is_first(&self) -> Result<bool> {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        let mut older: Vec<String> = fs::read_dir(dir)
            .map_err(|e| Error::io("listing", dir, e))?
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| n.starts_with("wait.") && *n < self.name)
            .collect();
        older.sort_unstable();
        for name in older {
            let path = dir.join(&name);
            match try_lock(&path) {
                Ok(Some(_stale)) => {
                    let _ = fs::remove_file(&path);
                }
                Ok(None) => return Ok(false),
                // Gone meanwhile: that waiter has started or left.
                Err(Error::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdir::TempDir;

    #[test]
    fn at_most_limit_slots_and_a_dropped_one_is_free_again() {
        let root = TempDir::new("queue");
        let q = dir(root.path(), "builds").unwrap();
        assert_eq!(dir(root.path(), "builds").unwrap(), q, "idempotent");
        let a = try_slot(&q, 2).unwrap().unwrap();
        let b = try_slot(&q, 2).unwrap().unwrap();
        assert_ne!(a.index, b.index);
        assert!(try_slot(&q, 2).unwrap().is_none());
        assert!(!any_free(&q, 2).unwrap());
        drop(a);
        assert!(any_free(&q, 2).unwrap());
        assert!(try_slot(&q, 2).unwrap().is_some());
    }

    #[test]
    fn a_queue_under_something_not_a_directory_is_an_error() {
        let root = TempDir::new("queue");
        fs::write(root.path().join(QUEUES_DIR), b"").unwrap();
        assert!(dir(root.path(), "q").is_err());
    }

    #[test]
    fn slots_are_neither_inherited_nor_reached_through_links() {
        let root = TempDir::new("queue");
        let q = dir(root.path(), "q").unwrap();
        // Held slots close on exec: a command's leftovers never hold one.
        let cloexec = |f: &File| {
            let flags = nix::fcntl::fcntl(f.as_raw_fd(), nix::fcntl::FcntlArg::F_GETFD).unwrap();
            flags & nix::libc::FD_CLOEXEC != 0
        };
        let held = try_lock(&q.join("slot.0")).unwrap().unwrap();
        assert!(cloexec(&held), "a probe's descriptor");
        drop(held);
        let slot = try_slot(&q, 1).unwrap().unwrap();
        assert!(
            cloexec(&slot._held) && cloexec(&slot._mark),
            "a slot's descriptors"
        );
        drop(slot);
        let ticket = Ticket::take(&q, Timestamp(1), "t-1").unwrap();
        assert!(cloexec(&ticket._file), "a ticket's descriptor");
        drop(ticket);
        // A ticket's name taken by a symlink: refused, not followed.
        let target = root.path().join("target");
        std::os::unix::fs::symlink(&target, q.join(format!("wait.{:020}.t-2", 2))).unwrap();
        assert!(Ticket::take(&q, Timestamp(2), "t-2").is_err());
        assert!(!target.exists(), "the ticket was created through the link");
        // A slot that is a symlink is refused, not followed.
        let elsewhere = root.path().join("elsewhere");
        fs::write(&elsewhere, b"").unwrap();
        fs::remove_file(q.join("slot.0")).unwrap();
        std::os::unix::fs::symlink(&elsewhere, q.join("slot.0")).unwrap();
        assert!(any_free(&q, 1).is_err());
    }

    #[test]
    fn an_older_ticket_that_cannot_be_probed_is_an_error_not_a_free_pass() {
        let root = TempDir::new("queue");
        let q = dir(root.path(), "q").unwrap();
        let mine = Ticket::take(&q, Timestamp(20), "mine-1").unwrap();
        let target = root.path().join("target");
        fs::write(&target, b"").unwrap();
        std::os::unix::fs::symlink(&target, q.join(format!("wait.{:020}.odd-1", 10))).unwrap();
        assert!(mine.is_first().is_err());
    }

    #[test]
    fn tickets_go_in_creation_order_and_dead_ones_are_skipped() {
        let root = TempDir::new("queue");
        let q = dir(root.path(), "q").unwrap();
        let old = Ticket::take(&q, Timestamp(10), "old-1").unwrap();
        let new = Ticket::take(&q, Timestamp(20), "new-1").unwrap();
        assert!(old.is_first().unwrap());
        assert!(!new.is_first().unwrap());
        let old_path = old.path.clone();
        drop(old);
        // Its ticket goes with it (the removal wakes the next waiter).
        assert!(!old_path.exists(), "a dropped ticket is left behind");
        assert!(new.is_first().unwrap());
        // A ticket left by a waiter that died (no lock held) is stale.
        fs::write(q.join(format!("wait.{:020}.dead-1", 5)), b"").unwrap();
        assert!(new.is_first().unwrap());
        assert!(!q.join(format!("wait.{:020}.dead-1", 5)).exists());
    }
}
