//! Opening and creating the files of a session root safely: never through
//! a symlink, private to the owner whatever the umask, close-on-exec; and
//! telling a full disk from other write errors.

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use nix::fcntl::{fcntl, FcntlArg, OFlag};

use crate::error::{Error, Result};

/// The most a record may hold: a larger `session.json` is corrupt, never
/// read whole into memory (codex-spawn refuses to write one).
pub const MAX_RECORD: u64 = 1 << 20;

/// Opens a session file for reading, refusing a symlink (`ELOOP`): a
/// file planted as a link never makes a tool read outside the root.
///
/// Anything else at `path` is refused too unless it is a regular file: the
/// open never blocks (`O_NONBLOCK`, so a FIFO put there by the session's
/// command or anyone of the same user cannot hang a tool; a socket fails
/// to open), and the type is checked on the open descriptor (`fstat`), so
/// a directory, FIFO or device is an error that says what it is. The
/// descriptor returned is blocking again, as a regular file's always is.
pub fn open_nofollow(path: &Path) -> io::Result<File> {
    let f = OpenOptions::new()
        .read(true)
        .custom_flags(
            nix::libc::O_CLOEXEC
                | nix::libc::O_NOFOLLOW
                | nix::libc::O_NONBLOCK
                | nix::libc::O_NOCTTY,
        )
        .open(path)?;
    let kind = f.metadata()?.file_type();
    if !kind.is_file() {
        return Err(not_regular(kind));
    }
    let flags = OFlag::from_bits_truncate(fcntl(f.as_raw_fd(), FcntlArg::F_GETFL)?);
    fcntl(f.as_raw_fd(), FcntlArg::F_SETFL(flags - OFlag::O_NONBLOCK))?;
    Ok(f)
}

/// The error for a session file that is not a regular file, saying what
/// it is instead.
pub fn not_regular(kind: fs::FileType) -> io::Error {
    use std::os::unix::fs::FileTypeExt;
    let what = if kind.is_dir() {
        "a directory"
    } else if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_socket() {
        "a socket"
    } else if kind.is_char_device() || kind.is_block_device() {
        "a device"
    } else if kind.is_symlink() {
        "a symlink"
    } else {
        "something else"
    };
    io::Error::other(format!("not a regular file ({what})"))
}

/// Reads a whole session file opened as [`open_nofollow`] does, refusing
/// one larger than `cap` bytes (whatever its size claims: a file that
/// grows while read is cut at `cap + 1` and refused).
pub fn read_capped(path: &Path, cap: u64) -> io::Result<Vec<u8>> {
    let f = open_nofollow(path)?;
    let too_big = || io::Error::other(format!("larger than {cap} bytes"));
    let size = f.metadata()?.len();
    if size > cap {
        return Err(too_big());
    }
    let mut bytes = Vec::with_capacity(size as usize);
    io::Read::read_to_end(&mut io::Read::take(f, cap + 1), &mut bytes)?;
    if bytes.len() as u64 > cap {
        return Err(too_big());
    }
    Ok(bytes)
}

/// Creates a new file readable and writable by its owner only (0600,
/// whatever the umask), close-on-exec, failing if anything exists at
/// `path` (a symlink included). Opened for reading and writing.
pub fn create_private(path: &Path) -> Result<File> {
    let f = OpenOptions::new()
        .read(true)
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
    fn odd_files_are_refused_without_blocking() {
        let dir = TempDir::new("files");
        let fifo = dir.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let e = open_nofollow(&fifo).unwrap_err();
        assert!(e.to_string().contains("a FIFO"), "{e}");
        let e = open_nofollow(dir.path()).unwrap_err();
        assert!(e.to_string().contains("a directory"), "{e}");
        let sock = dir.path().join("sock");
        let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        assert!(open_nofollow(&sock).is_err());

        let big = dir.path().join("big");
        let f = create_private(&big).unwrap();
        f.set_len(MAX_RECORD + 1).unwrap();
        assert!(read_capped(&big, MAX_RECORD).is_err(), "sparse and huge");
        f.set_len(10).unwrap();
        assert_eq!(read_capped(&big, MAX_RECORD).unwrap(), vec![0; 10]);
        // Blocking again: a read of a regular file never says EAGAIN.
        let flags = fcntl(open_nofollow(&big).unwrap().as_raw_fd(), FcntlArg::F_GETFL).unwrap();
        assert_eq!(flags & nix::libc::O_NONBLOCK, 0);
    }

    #[test]
    fn a_file_at_the_cap_is_read_whole_and_one_that_outgrows_it_is_refused() {
        let dir = TempDir::new("files");
        let full = dir.path().join("full");
        let bytes: Vec<u8> = (0..4096u32).map(|i| (i % 251) as u8).collect();
        fs::write(&full, &bytes).unwrap();
        assert_eq!(read_capped(&full, 4096).unwrap(), bytes);
        assert!(read_capped(&full, 4095).is_err());
        // A file whose size says 0 but holds more (as /proc's do, or one
        // growing while read) is refused past the cap, not cut at it.
        let status = Path::new("/proc/self/status");
        assert_eq!(fs::metadata(status).unwrap().len(), 0);
        assert!(read_capped(status, 16).is_err());
        assert!(read_capped(status, 1 << 20).unwrap().len() > 16);
    }

    #[test]
    fn a_device_is_named_a_device() {
        let kind = fs::metadata("/dev/null").unwrap().file_type();
        assert_eq!(
            not_regular(kind).to_string(),
            "not a regular file (a device)"
        );
        assert!(open_nofollow(Path::new("/dev/null"))
            .unwrap_err()
            .to_string()
            .contains("a device"));
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
