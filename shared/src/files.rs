//! Opening and creating the files of a session root safely: never through
//! a symlink, private to the owner whatever the umask, close-on-exec; and
//! telling a full disk from other write errors.

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use crate::error::{Error, Result};

/// Opens a session file for reading, refusing a symlink (`ELOOP`): a
/// file planted as a link never makes a tool read outside the root.
pub fn open_nofollow(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_CLOEXEC | nix::libc::O_NOFOLLOW)
        .open(path)
}

/// Creates a new file readable and writable by its owner only (0600,
/// whatever the umask), close-on-exec, failing if anything exists at
/// `path` (a symlink included).
pub fn create_private(path: &Path) -> Result<File> {
    let f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(nix::libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| Error::io("creating", path, e))?;
    f.set_permissions(fs::Permissions::from_mode(0o600))
        .map_err(|e| Error::io("setting permissions of", path, e))?;
    Ok(f)
}

/// Creates directory `path` with mode 0700, whatever the umask, failing if
/// anything exists there.
pub fn create_private_dir(path: &Path) -> Result<()> {
    DirBuilder::new()
        .mode(0o700)
        .create(path)
        .map_err(|e| Error::io("creating", path, e))?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o700))
        .map_err(|e| Error::io("setting permissions of", path, e))
}

/// Whether `e` is the error of a full disk, an exhausted quota or an
/// exceeded file size limit: trouble that may pass, unlike the others.
pub fn is_space_error(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(nix::libc::ENOSPC | nix::libc::EFBIG | nix::libc::EDQUOT)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdir::TempDir;

    #[test]
    fn private_whatever_the_umask_and_never_through_a_link() {
        let dir = TempDir::new("files");
        let old = nix::sys::stat::umask(nix::sys::stat::Mode::empty());
        let f = dir.path().join("f");
        let d = dir.path().join("d");
        let made = create_private(&f).and_then(|_| create_private_dir(&d));
        nix::sys::stat::umask(old);
        made.unwrap();
        assert_eq!(
            fs::metadata(&f).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(
            fs::metadata(&d).unwrap().permissions().mode() & 0o777,
            0o700
        );
        assert!(
            create_private(&f).is_err(),
            "an existing file is never reused"
        );

        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&f, &link).unwrap();
        assert_eq!(
            open_nofollow(&link).unwrap_err().raw_os_error(),
            Some(nix::libc::ELOOP)
        );
        assert!(
            create_private(&link).is_err(),
            "never created through a link"
        );
        assert!(open_nofollow(&f).is_ok());
    }

    #[test]
    fn space_errors_are_told_apart() {
        for errno in [nix::libc::ENOSPC, nix::libc::EFBIG, nix::libc::EDQUOT] {
            assert!(is_space_error(&io::Error::from_raw_os_error(errno)));
        }
        for errno in [nix::libc::EIO, nix::libc::EACCES, nix::libc::EROFS] {
            assert!(!is_space_error(&io::Error::from_raw_os_error(errno)));
        }
    }
}
