//! Creating a session directory: staged under a hidden name, then published
//! with one atomic, non-replacing rename, so that a reader never sees a
//! half-created session and two creators never share an id.

use std::fs::{self};
use std::io::Write;
use std::path::PathBuf;

use nix::errno::Errno;
use nix::fcntl::{renameat2, RenameFlags};

use crate::error::{Error, Result};
use crate::files::{create_private, create_private_dir};
use crate::id::SessionId;
use crate::layout;
use crate::lock::Lock;
use crate::record::{Durability, Record};
use crate::root::Root;

/// How many generated ids are tried before giving up.
const MAX_ATTEMPTS: usize = 64;

/// A session just published: its id, directory, and the held lock.
#[derive(Debug)]
pub struct Created {
    /// The session's id.
    pub id: SessionId,
    /// Its directory.
    pub dir: PathBuf,
    /// The lock, held since before publication.
    pub lock: Lock,
}

impl Root {
    /// Creates and publishes a session from `record` (its `id` is filled in):
    /// the directory, its lock (held), the prompt file when there is one,
    /// and the record. With `name`, that id or [`Error::NameTaken`];
    /// without, a fresh generated id, retried on collision.
    pub fn create_session(
        &self,
        name: Option<&SessionId>,
        mut record: Record,
        prompt: Option<&[u8]>,
    ) -> Result<Created> {
        let staging = self.path().join(format!(
            "{}{}-{}",
            layout::STAGING_PREFIX,
            std::process::id(),
            SessionId::generate()
        ));
        let result = (|| {
            create_private_dir(&staging)?;
            let lock = Lock::create(&staging)?;
            if let Some(prompt) = prompt {
                let path = staging.join(layout::PROMPT);
                create_private(&path)?
                    .write_all(prompt)
                    .map_err(|e| Error::io("writing", &path, e))?;
            }
            for _ in 0..MAX_ATTEMPTS {
                let id = name.cloned().unwrap_or_else(SessionId::generate);
                record.id = id.to_string();
                record.write(&staging, Durability::default())?;
                let dir = self.session_dir(&id);
                match renameat2(None, &staging, None, &dir, RenameFlags::RENAME_NOREPLACE) {
                    Ok(()) => return Ok(Created { id, dir, lock }),
                    Err(Errno::EEXIST | Errno::ENOTEMPTY) if name.is_some() => {
                        return Err(Error::NameTaken(id.to_string()))
                    }
                    Err(Errno::EEXIST | Errno::ENOTEMPTY) => continue,
                    Err(e) => return Err(Error::nix("publishing", &dir, e)),
                }
            }
            Err(Error::io(
                "choosing an id in",
                self.path(),
                std::io::Error::other("every generated id was taken"),
            ))
        })();
        if result.is_err() {
            let _ = fs::remove_dir_all(&staging);
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::tests::sample;
    use crate::root::Access;
    use crate::testdir::TempDir;

    #[test]
    fn publishes_complete_sessions_with_distinct_ids() {
        let t = TempDir::new("create");
        let root = Root::open(t.path().join("root"), Access::Create).unwrap();
        let mut ids = std::collections::HashSet::new();
        for _ in 0..50 {
            let c = root
                .create_session(None, sample(), Some(b"the prompt"))
                .unwrap();
            assert!(crate::lock::is_held(&c.dir).unwrap());
            assert_eq!(Record::read(&c.dir).unwrap().id, c.id.as_str());
            assert_eq!(fs::read(c.dir.join(layout::PROMPT)).unwrap(), b"the prompt");
            assert!(ids.insert(c.id));
        }
        // Nothing staged is left over.
        let hidden = fs::read_dir(root.path())
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with('.')
            })
            .count();
        assert_eq!(hidden, 0);
    }

    #[test]
    fn a_taken_name_is_refused_and_the_first_kept() {
        let t = TempDir::new("create");
        let root = Root::open(t.path().join("root"), Access::Create).unwrap();
        let name = SessionId::parse("job").unwrap();
        let first = root.create_session(Some(&name), sample(), None).unwrap();
        let err = root
            .create_session(Some(&name), sample(), Some(b"x"))
            .unwrap_err();
        assert!(matches!(err, Error::NameTaken(_)), "{err}");
        assert!(!first.dir.join(layout::PROMPT).exists());
        assert_eq!(fs::read_dir(root.path()).unwrap().count(), 1);
    }
}
