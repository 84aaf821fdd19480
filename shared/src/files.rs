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
    let f = open_untyped(path)?;
    let kind = f.metadata()?.file_type();
    if !kind.is_file() {
        return Err(not_regular(kind));
    }
    let flags = OFlag::from_bits_truncate(fcntl(f.as_raw_fd(), FcntlArg::F_GETFL)?);
    fcntl(f.as_raw_fd(), FcntlArg::F_SETFL(flags - OFlag::O_NONBLOCK))?;
    Ok(f)
}

/// Opens `path` for reading as [`open_nofollow`] does (never through a
/// symlink, never blocking, never as a controlling terminal), but leaves
/// the type of what it opened to the caller and the descriptor
/// non-blocking: for a caller that looks at the type only when it matters.
pub fn open_untyped(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .custom_flags(
            nix::libc::O_CLOEXEC
                | nix::libc::O_NOFOLLOW
                | nix::libc::O_NONBLOCK
                | nix::libc::O_NOCTTY,
        )
        .open(path)
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

/// Why [`read_beneath`] could not answer: the system has no `openat2`
/// (a kernel before 5.6, or a sandbox refusing the call), or the file
/// could not be read that way (missing, a symlink on the way, not a
/// directory on the way, unreadable, too big). The caller reads the
/// careful way ([`read_capped`]) for the first, and may for the second to
/// learn the exact error.
#[derive(Debug, PartialEq, Eq)]
pub enum Beneath {
    /// `openat2` is not available: use [`read_capped`] from now on.
    Unsupported,
    /// This file could not be read in three calls.
    Failed,
}

/// Reads `rel` beneath the directory `dir` into `buf` (cleared first) in
/// three system calls where [`read_capped`] takes eight: one `openat2`
/// that refuses a symlink anywhere on the way and any path leading out of
/// `dir` (`RESOLVE_NO_SYMLINKS | RESOLVE_BENEATH`, as safe as a `statx` of
/// each directory and `O_NOFOLLOW` together), one `read`, one `close`.
///
/// The open never blocks (`O_NONBLOCK`), and no more than `cap` bytes are
/// taken. The file's type is not looked at: the reads are `pread`s, which
/// fail on a FIFO, socket or terminal, so what is read is a file (or a
/// device only root can put there, refused past `cap`); a directory fails
/// to read. A short read is taken as the end of the file, as it is for a
/// regular file; anything that leaves the bytes unparsable is for the
/// caller to read again the careful way.
pub fn read_beneath(
    dir: std::os::fd::BorrowedFd<'_>,
    rel: &Path,
    cap: u64,
    buf: &mut Vec<u8>,
) -> std::result::Result<(), Beneath> {
    use nix::errno::Errno;
    use nix::fcntl::{openat2, OpenHow, ResolveFlag};
    use std::os::fd::{FromRawFd, OwnedFd};

    let how = OpenHow::new()
        .flags(OFlag::O_RDONLY | OFlag::O_CLOEXEC | OFlag::O_NOCTTY | OFlag::O_NONBLOCK)
        .resolve(ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_SYMLINKS);
    let fd = match openat2(dir.as_raw_fd(), rel, how) {
        // Safety: openat2 just returned this descriptor, owned by no one else.
        Ok(fd) => unsafe { OwnedFd::from_raw_fd(fd) },
        // No openat2, a sandbox refusing it, or resolve flags unknown.
        Err(Errno::ENOSYS | Errno::EPERM | Errno::E2BIG | Errno::EINVAL) => {
            return Err(Beneath::Unsupported)
        }
        Err(_) => return Err(Beneath::Failed),
    };
    let limit = usize::try_from(cap.saturating_add(1)).unwrap_or(usize::MAX);
    buf.clear();
    loop {
        if buf.len() == buf.capacity() {
            buf.reserve(buf.capacity().max(4096));
        }
        let room = (buf.capacity() - buf.len()).min(limit - buf.len());
        // pread, not read: it fails (ESPIPE) on a FIFO, socket or
        // terminal, so nothing but a file is ever read this way.
        let at = buf.len() as nix::libc::off_t;
        let spare = &mut buf.spare_capacity_mut()[..room];
        // Safety: `spare` is `room` writable bytes of `buf`'s allocation;
        // pread(2) writes at most that many and returns how many it wrote.
        let n = unsafe { nix::libc::pread(fd.as_raw_fd(), spare.as_mut_ptr().cast(), room, at) };
        let Ok(n) = usize::try_from(n) else {
            return Err(Beneath::Failed);
        };
        // Safety: pread(2) initialised the first `n` bytes past the length.
        unsafe { buf.set_len(buf.len() + n) };
        if buf.len() >= limit {
            return Err(Beneath::Failed);
        }
        if n < room {
            return Ok(());
        }
    }
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

    /// The quick read refuses what the careful one refuses (a symlink
    /// anywhere on the way, a way out of the directory, too much), never
    /// blocks on a FIFO, and reads a file of any size up to the cap whole.
    #[test]
    fn read_beneath_is_as_safe_as_the_careful_read() {
        let dir = TempDir::new("files");
        let root = dir.path().join("root");
        let session = root.join("s");
        fs::create_dir_all(&session).unwrap();
        let fd = File::open(&root).unwrap();
        let read = |rel: &str, cap: u64| {
            let mut buf = Vec::new();
            read_beneath(std::os::fd::AsFd::as_fd(&fd), Path::new(rel), cap, &mut buf).map(|()| buf)
        };
        for len in [0, 1, 4095, 4096, 4097, 70_000] {
            let body: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            fs::write(session.join("f"), &body).unwrap();
            assert_eq!(read("s/f", 1 << 20).unwrap(), body, "{len} bytes");
        }
        assert_eq!(read("s/f", 69_999), Err(Beneath::Failed), "over the cap");
        assert_eq!(read("s/f", 70_000).unwrap().len(), 70_000, "at the cap");

        fs::create_dir(dir.path().join("outside")).unwrap();
        fs::write(dir.path().join("outside/f"), "secret").unwrap();
        std::os::unix::fs::symlink(dir.path().join("outside"), root.join("linked")).unwrap();
        std::os::unix::fs::symlink(session.join("f"), session.join("link")).unwrap();
        std::os::unix::fs::symlink("f", session.join("relative")).unwrap();
        for rel in [
            "linked/f",
            "s/link",
            "s/relative",
            "../outside/f",
            "s/missing",
        ] {
            assert_eq!(read(rel, 1 << 20), Err(Beneath::Failed), "{rel}");
        }
        let abs = dir.path().join("outside/f");
        assert_eq!(read(abs.to_str().unwrap(), 1 << 20), Err(Beneath::Failed));

        let fifo = session.join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        assert_eq!(
            read("s/fifo", 1 << 20),
            Err(Beneath::Failed),
            "no writer: at once"
        );
        // A writer holding a record in the FIFO: refused, and nothing taken.
        let mut writer = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&fifo)
            .unwrap();
        io::Write::write_all(&mut writer, b"{}").unwrap();
        assert_eq!(read("s/fifo", 1 << 20), Err(Beneath::Failed), "a FIFO");
        let mut left = [0u8; 2];
        io::Read::read_exact(&mut writer, &mut left).unwrap();
        assert_eq!(&left, b"{}", "the FIFO's bytes are still there");
        assert_eq!(read("s", 1 << 20), Err(Beneath::Failed), "a directory");
        assert_eq!(
            read("s/f", u64::MAX).unwrap().len(),
            70_000,
            "no cap at all"
        );
    }
}
