//! The liveness lock: the supervisor holds an exclusive `flock` on
//! `ROOT/ID/lock` for its whole life; readers probe it with a shared,
//! non-blocking lock, which survives pid reuse and crashes alike (the kernel
//! drops the lock when the last descriptor of the holder closes).
//!
//! codex-spawn takes the lock before it publishes the session and hands the
//! same open file (and so the same lock) to the supervisor, so a session is
//! never seen unlocked between its creation and its end.

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::Path;

use nix::errno::Errno;
#[allow(deprecated)] // `Flock` unlocks on drop, which would release the lock we hand over.
use nix::fcntl::{flock, FlockArg};

use crate::error::{Error, Result};
use crate::files::create_private;

use crate::layout::LOCK as LOCK_FILE;

/// The held exclusive lock of a session.
///
/// Dropping it closes the descriptor, which releases the lock only when no
/// other descriptor (such as the supervisor's inherited copy) shares it.
#[derive(Debug)]
pub struct Lock {
    file: File,
}

impl Lock {
    /// Creates `dir/lock` (0600) and locks it exclusively.
    pub fn create(dir: &Path) -> Result<Lock> {
        let path = dir.join(LOCK_FILE);
        let file = create_private(&path)?;
        #[allow(deprecated)]
        flock(file.as_raw_fd(), FlockArg::LockExclusiveNonblock)
            .map_err(|e| Error::nix("locking", &path, e))?;
        Ok(Lock { file })
    }

    /// Adopts a descriptor that already holds the lock (the supervisor's
    /// inherited copy).
    pub fn from_fd(fd: OwnedFd) -> Lock {
        Lock {
            file: File::from(fd),
        }
    }

    /// The descriptor holding the lock, to pass on to another image.
    pub fn into_fd(self) -> OwnedFd {
        OwnedFd::from(self.file)
    }
}

impl AsFd for Lock {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }
}

/// Whether someone holds the lock of the session in `dir`: a shared,
/// non-blocking probe, so that readers never block each other or the
/// supervisor. A missing lock file reads as not held.
pub fn is_held(dir: &Path) -> Result<bool> {
    let path = dir.join(LOCK_FILE);
    // Never through a symlink, never blocking on a FIFO put in its place.
    // Whatever is at the path and is not a regular file is not the
    // supervisor's lock (which holds its own regular file, whatever was
    // later renamed over it): not held. The type is looked at only when
    // the lock is held: a listing probes every live session's lock.
    let file = match crate::files::open_untyped(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        // A symlink (ELOOP), a socket (ENXIO), ...
        Err(_) if !std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_file()) => return Ok(false),
        Err(e) => return Err(Error::io("opening", &path, e)),
    };
    #[allow(deprecated)]
    match flock(file.as_raw_fd(), FlockArg::LockSharedNonblock) {
        // We got it, so nobody holds it exclusively; closing releases ours.
        Ok(()) => Ok(false),
        Err(Errno::EWOULDBLOCK) => Ok(file.metadata().is_ok_and(|m| m.is_file())),
        Err(e) => Err(Error::nix("probing the lock", &path, e)),
    }
}

/// The processes (of those this user may inspect) that hold the lock of
/// the session in `dir`: a descriptor of theirs on its lock file carries
/// the exclusive `flock` (as /proc/PID/fdinfo shows), which only its
/// supervisor (or a codex-spawn still creating it) has. A process that
/// merely has the file open, or waits for a shared lock, is not one. This
/// is how a session is reached when its record cannot be read to name its
/// supervisor. A lock file with other links (it could be another session's)
/// has no holders here. This process itself is left out.
pub fn holders(dir: &Path) -> Result<Vec<i32>> {
    use std::os::unix::fs::MetadataExt;
    let path = dir.join(LOCK_FILE);
    let lock = std::fs::symlink_metadata(&path).map_err(|e| Error::io("reading", &path, e))?;
    if !lock.is_file() || lock.nlink() != 1 {
        return Ok(Vec::new());
    }
    let me = std::process::id() as i32;
    let mut pids = Vec::new();
    for pid in crate::host::pids().into_iter().filter(|&pid| pid != me) {
        let proc = std::path::PathBuf::from(format!("/proc/{pid}"));
        // Another user's descriptors cannot be listed: not ours to stop.
        let Ok(fds) = std::fs::read_dir(proc.join("fd")) else {
            continue;
        };
        let holds = fds.flatten().any(|fd| {
            std::fs::metadata(fd.path())
                .is_ok_and(|m| m.dev() == lock.dev() && m.ino() == lock.ino())
                && std::fs::read_to_string(proc.join("fdinfo").join(fd.file_name()))
                    .is_ok_and(|info| holds_exclusive_flock(&info))
        });
        if holds {
            pids.push(pid);
        }
    }
    Ok(pids)
}

/// Whether a /proc/PID/fdinfo/FD text shows an exclusive `flock` held
/// through that descriptor (`lock: 1: FLOCK ADVISORY WRITE ...`).
fn holds_exclusive_flock(fdinfo: &str) -> bool {
    fdinfo.lines().any(|line| {
        let mut words = line.split_whitespace();
        words.next() == Some("lock:")
            && words.next().is_some() // the lock's number
            && words.next() == Some("FLOCK")
            && words.next() == Some("ADVISORY")
            && words.next() == Some("WRITE")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdir::TempDir;

    #[test]
    fn held_until_last_descriptor_closes() {
        let dir = TempDir::new("lock");
        assert!(!is_held(dir.path()).unwrap(), "missing lock reads as free");
        let lock = Lock::create(dir.path()).unwrap();
        assert!(is_held(dir.path()).unwrap());
        // Two probes never block each other nor take the lock away.
        assert!(is_held(dir.path()).unwrap());
        let copy = lock.file.try_clone().unwrap();
        drop(lock);
        assert!(is_held(dir.path()).unwrap(), "a shared copy keeps it held");
        drop(copy);
        assert!(!is_held(dir.path()).unwrap());
    }

    #[test]
    fn holders_are_the_processes_holding_the_lock_not_those_reading_it() {
        let dir = TempDir::new("lock");
        let lock = Lock::create(dir.path()).unwrap();
        assert_eq!(holders(dir.path()).unwrap(), Vec::<i32>::new(), "not us");
        // One that merely has the file open is no holder.
        let mut reader = std::process::Command::new("sleep")
            .arg("30")
            .stdin(File::open(dir.path().join(LOCK_FILE)).unwrap())
            .spawn()
            .unwrap();
        // A child that inherits the locked descriptor holds the lock too.
        nix::fcntl::fcntl(
            lock.file.as_raw_fd(),
            nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty()),
        )
        .unwrap();
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let found = holders(dir.path()).unwrap();
        for c in [&mut child, &mut reader] {
            let _ = c.kill();
            let _ = c.wait();
        }
        // (A child another test spawns meanwhile may inherit it too.)
        assert!(found.contains(&(child.id() as i32)), "{found:?}");
        assert!(!found.contains(&(reader.id() as i32)), "{found:?}");
    }
}
