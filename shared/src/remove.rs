//! Removing a session directory, safely: the id is validated before any
//! path is built, a symlink is removed as a link (never its target), only
//! directories that look like sessions are touched, and a removal that
//! races with the supervisor's last write still succeeds.

use std::fs;
use std::io;
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::{renameat2, RenameFlags};

use crate::error::{Error, Result};
use crate::id::SessionId;
use crate::layout;
use crate::root::Root;

/// Files a session directory may hold; a directory holding none of them
/// is not removed.
const SESSION_FILES: [&str; 8] = [
    layout::RECORD,
    layout::SUPERVISOR_LOG,
    layout::LOCK,
    layout::PROMPT,
    layout::STDOUT_LOG,
    layout::STDERR_LOG,
    layout::INDEX,
    layout::SOCKET,
];

/// How often a removal is retried when a file appears meanwhile.
const ATTEMPTS: usize = 20;

/// How many hidden names a removal tries.
const MAX_HIDE_ATTEMPTS: usize = 16;

/// How old an unlocked staging directory must be before it counts as
/// abandoned: creating one takes milliseconds, but its lock file appears
/// a moment after the directory itself.
const STAGING_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

impl Root {
    /// Removes the directory of session `id`. Whoever calls this has made
    /// sure the session is over (or accepted that it is not).
    pub fn remove_session(&self, id: &SessionId) -> Result<()> {
        let dir = self.session_dir(id);
        let meta = fs::symlink_metadata(&dir).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => Error::NotFound(id.to_string()),
            _ => Error::io("reading", &dir, e),
        })?;
        if meta.file_type().is_symlink() {
            // Remove the link itself; whatever it points at stays.
            return fs::remove_file(&dir).map_err(|e| Error::io("removing", &dir, e));
        }
        if !meta.is_dir() {
            return Err(Error::io(
                "removing",
                &dir,
                io::Error::other("not a session directory (a plain file)"),
            ));
        }
        if !looks_like_session(&dir)? {
            return Err(Error::io(
                "removing",
                &dir,
                io::Error::other("not a session directory (no session files in it); left alone"),
            ));
        }
        // Out of sight first, in one rename: a reader sees the whole
        // session or nothing, never a directory losing its files.
        let doomed = self.hide(id, &dir)?;
        remove_tree(&doomed).inspect_err(|_| {
            // Back in sight, so that the removal can be tried again.
            let _ = renameat2(None, &doomed, None, &dir, RenameFlags::RENAME_NOREPLACE);
        })
    }

    /// Renames `dir` (session `id`) to a fresh hidden `.rm-` name and
    /// returns it, its time set to now so that no sweep takes it for an
    /// abandoned removal while this one runs.
    fn hide(&self, id: &SessionId, dir: &Path) -> Result<std::path::PathBuf> {
        for attempt in 0..MAX_HIDE_ATTEMPTS {
            let doomed = self.path().join(format!(
                "{}{id}-{}-{attempt}",
                layout::REMOVING_PREFIX,
                std::process::id(),
            ));
            match renameat2(None, dir, None, &doomed, RenameFlags::RENAME_NOREPLACE) {
                Ok(()) => {
                    let _ = fs::File::open(&doomed)
                        .and_then(|f| f.set_modified(std::time::SystemTime::now()));
                    return Ok(doomed);
                }
                // Left by an earlier codex-rm of the same pid: another name.
                Err(Errno::EEXIST | Errno::ENOTEMPTY) => continue,
                Err(Errno::ENOENT) => return Err(Error::NotFound(id.to_string())),
                Err(e) => return Err(Error::nix("removing", dir, e)),
            }
        }
        Err(Error::io(
            "removing",
            dir,
            io::Error::other("every hidden name for it was taken"),
        ))
    }

    /// Removes what a codex-spawn killed mid-creation (`.new-*`) or a
    /// codex-rm killed mid-removal (`.rm-*`) left behind: directories
    /// whose lock nobody holds and that are older than a few seconds.
    /// They are never listed, so nothing else would ever reclaim them.
    /// Returns how many were removed; one that cannot be removed is
    /// skipped.
    pub fn sweep_staging(&self) -> Result<usize> {
        let root = self.path();
        let mut removed = 0;
        for entry in fs::read_dir(root).map_err(|e| Error::io("listing", root, e))? {
            let Ok(entry) = entry else { continue };
            let dir = entry.path();
            let abandoned = entry.file_name().to_str().is_some_and(|n| {
                n.starts_with(layout::STAGING_PREFIX) || n.starts_with(layout::REMOVING_PREFIX)
            }) && entry.file_type().is_ok_and(|t| t.is_dir())
                && fs::symlink_metadata(&dir)
                    .and_then(|m| m.modified())
                    .is_ok_and(|m| m.elapsed().is_ok_and(|age| age > STAGING_GRACE))
                && !crate::lock::is_held(&dir).unwrap_or(true);
            if abandoned && remove_tree(&dir).is_ok() {
                removed += 1;
            }
        }
        Ok(removed)
    }
}

fn looks_like_session(dir: &Path) -> Result<bool> {
    let mut empty = true;
    for entry in fs::read_dir(dir).map_err(|e| Error::io("listing", dir, e))? {
        let entry = entry.map_err(|e| Error::io("listing", dir, e))?;
        empty = false;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if SESSION_FILES.contains(&name.as_ref())
            || name.starts_with(&format!("{}.", layout::STDOUT_LOG))
        {
            return Ok(true);
        }
    }
    // An empty directory is what an interrupted creation or removal leaves.
    Ok(empty)
}

/// Removes `dir` and what it holds without following symlinks (the
/// standard library's `remove_dir_all` opens each level with
/// `O_NOFOLLOW`), retrying while the supervisor's last record write lands.
fn remove_tree(dir: &Path) -> Result<()> {
    let mut last = None;
    for _ in 0..ATTEMPTS {
        match fs::remove_dir_all(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::DirectoryNotEmpty => {
                last = Some(e);
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            Err(e) => return Err(Error::io("removing", dir, e)),
        }
    }
    Err(Error::io(
        "removing",
        dir,
        last.unwrap_or_else(|| io::Error::other("it kept changing")),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::tests::sample;
    use crate::root::Access;
    use crate::testdir::TempDir;

    #[test]
    fn removes_sessions_but_never_what_links_point_at() {
        let t = TempDir::new("remove");
        let root = Root::open(t.path().join("root"), Access::Create).unwrap();
        let outside = t.path().join("precious");
        fs::write(&outside, "keep me").unwrap();
        let c = root.create_session(None, sample(), None).unwrap();
        std::os::unix::fs::symlink(&outside, c.dir.join("stdout.log")).unwrap();
        drop(c.lock);
        root.remove_session(&c.id).unwrap();
        assert!(!c.dir.exists());
        assert_eq!(fs::read_to_string(&outside).unwrap(), "keep me");

        // A session "directory" that is a link to a directory elsewhere.
        let elsewhere = t.path().join("elsewhere");
        fs::create_dir(&elsewhere).unwrap();
        fs::write(elsewhere.join("session.json"), "{}").unwrap();
        let id = SessionId::parse("linked").unwrap();
        std::os::unix::fs::symlink(&elsewhere, root.session_dir(&id)).unwrap();
        root.remove_session(&id).unwrap();
        assert!(!root.session_dir(&id).exists());
        assert!(elsewhere.join("session.json").exists());
    }

    #[test]
    fn sweeps_abandoned_creations_and_removals_only() {
        let t = TempDir::new("remove");
        let root = Root::open(t.path().join("root"), Access::Create).unwrap();
        let old = std::time::SystemTime::now() - 2 * STAGING_GRACE;
        let staging = |name: &str| {
            let dir = root.path().join(name);
            fs::create_dir(&dir).unwrap();
            fs::write(dir.join(layout::RECORD), "{}").unwrap();
            dir
        };
        let abandoned = staging(".new-1-a");
        fs::File::open(&abandoned)
            .unwrap()
            .set_modified(old)
            .unwrap();
        let half_removed = staging(".rm-calm-yak-0001-77");
        fs::File::open(&half_removed)
            .unwrap()
            .set_modified(old)
            .unwrap();
        let fresh = staging(".new-2-b");
        let busy = staging(".new-3-c");
        let lock = crate::lock::Lock::create(&busy).unwrap();
        fs::File::open(&busy).unwrap().set_modified(old).unwrap();
        let c = root.create_session(None, sample(), None).unwrap();
        drop(c.lock);
        fs::File::open(&c.dir).unwrap().set_modified(old).unwrap();

        assert_eq!(root.sweep_staging().unwrap(), 2);
        assert!(!abandoned.exists() && !half_removed.exists());
        assert!(fresh.exists() && busy.exists() && c.dir.exists());
        drop(lock);
    }

    #[test]
    fn a_missing_session_is_not_found_and_a_tree_already_gone_is_removed() {
        let t = TempDir::new("remove");
        let root = Root::open(t.path().join("root"), Access::Create).unwrap();
        let id = SessionId::parse("nobody-here").unwrap();
        assert!(matches!(
            root.remove_session(&id),
            Err(Error::NotFound(ref what)) if what == "nobody-here"
        ));
        // Removed meanwhile by someone else: done, not an error.
        remove_tree(&t.path().join("gone")).unwrap();
        // What cannot be removed (here a plain file) is an error, and
        // stays.
        let file = t.path().join("file");
        fs::write(&file, "x").unwrap();
        assert!(remove_tree(&file).is_err());
        assert!(file.exists());
    }

    #[test]
    fn leaves_directories_that_are_not_sessions() {
        let t = TempDir::new("remove");
        let root = Root::open(t.path().join("root"), Access::Create).unwrap();
        let id = SessionId::parse("photos").unwrap();
        fs::create_dir(root.session_dir(&id)).unwrap();
        fs::write(root.session_dir(&id).join("cat.jpg"), "x").unwrap();
        assert!(root.remove_session(&id).is_err());
        assert!(root.session_dir(&id).join("cat.jpg").exists());
    }
}
