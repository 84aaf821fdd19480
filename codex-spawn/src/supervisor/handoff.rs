//! Starting a session before the supervisor's image exists, so that
//! codex-spawn waits for two process images (its own and the command's),
//! not three one after the other.
//!
//! codex-spawn forks; its child, still codex-spawn's image, [`launch`]es
//! the session: it detaches as the supervisor does, creates the logs,
//! blocks the supervisor's signals, starts the command, marks the record
//! running, binds the attach socket, reports `started` on the report pipe,
//! closes it (codex-spawn returns) and execs the supervisor's image, which
//! [`adopt`]s all of it. The
//! supervisor's image takes everything over as open descriptors (a copy
//! of the record in a memory file among them), so that nothing done to
//! the session directory meanwhile can come between. The supervisor
//! holds nothing of codex-spawn's heap or argv. Signals that come meanwhile
//! (the command's end, its writes) stay pending across the exec, blocked,
//! and the supervisor reads them from its signalfd.
//!
//! A session that waits (`--queue`, `--after`) or runs a `--setup` first
//! is left to the supervisor's image, as before: the child execs it at
//! once with the report pipe, and it reports.

use std::ffi::{CString, OsString};
use std::fs::File;
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::UnixListener;
use std::path::Path;

use nix::fcntl::{fcntl, FcntlArg, FdFlag, OFlag};
use nix::sys::signal::Signal;
use nix::sys::stat::{umask, Mode};
use nix::unistd::Pid;

use shared::launch::{self, Handoff, Report, SupervisorArgs};
use shared::lock::Lock;
use shared::record::Record;

use crate::command::{Io, Started};
use crate::relay::Supervisor;
use crate::{descendants, detach, record_failure, report_panics_to, server, start, wait};

/// What codex-spawn's child needs to start a session.
pub struct Launch<'a> {
    /// The published session directory.
    pub dir: &'a Path,
    /// The descriptor holding the session's lock.
    pub lock: OwnedFd,
    /// The write end of the report pipe (close-on-exec).
    pub report: OwnedFd,
    /// codex-spawn's umask, for the command.
    pub umask: u32,
    /// The `--env` values, for the command only.
    pub env: &'a [(String, OsString)],
    /// The session's token.
    pub token: &'a str,
    /// The supervisor's program.
    pub program: &'a Path,
}

/// Starts the session in codex-spawn's child, just forked (codex-spawn is
/// single-threaded), and execs the supervisor's image. Never returns.
pub fn launch(l: Launch<'_>) -> ! {
    let mut report = File::from(l.report);
    let fail = |report: &mut File, message: String| -> ! {
        let _ = report.write_all(&Report::Failed { message }.encode());
        std::process::exit(125);
    };
    if let Err(e) = null_stdio() {
        fail(&mut report, format!("opening /dev/null: {e}"));
    }
    // Started from inside another session, this process carries that
    // session's token in its /proc environment until it execs: were it to
    // report first and exec after, the outer session's clean-up could take
    // it for one of its own in between. A nested session's supervisor is
    // exec'd at once, carrying its own token.
    let nested = std::env::var_os(shared::host::SESSION_VAR).is_some();
    environment(l.env, l.token);
    let lock_fd = l.lock.as_raw_fd();
    let quick = !nested
        && Record::read(l.dir).ok().is_some_and(|r| {
            !wait::needed(&r) && r.worktree.as_ref().is_none_or(|w| w.setup.is_none())
        });
    if !quick {
        // The supervisor starts the command itself and reports.
        let args = SupervisorArgs {
            dir: l.dir.to_path_buf(),
            lock_fd,
            report_fd: Some(report.as_raw_fd()),
            umask: l.umask,
            handoff: None,
        };
        let e = exec(l.program, &args, &[lock_fd, report.as_raw_fd()]);
        fail(
            &mut report,
            format!("starting {}: {e}", l.program.display()),
        );
    }
    if let Err(e) = detach::detach(&[lock_fd, report.as_raw_fd()]) {
        fail(&mut report, format!("detaching: {e}"));
    }
    umask(Mode::from_bits_truncate(0o077));
    report_panics_to(l.dir);

    let (record, logs, signals, started) = match start::begin(l.dir, l.umask) {
        Ok(s) => s,
        Err(e) => crate::fail_start(l.dir, e, Some(&mut report)),
    };
    // The signals stay blocked (the mask survives the exec), queued for
    // the supervisor's own signalfd.
    drop(signals);
    let logs = logs.into_files().map(IntoRawFd::into_raw_fd);
    let listener = server::listen(l.dir).ok();
    let pid = started.pid;
    let record_fd = match record_copy(&record) {
        Ok(fd) => fd,
        Err(e) => {
            descendants::signal_all(Some(pid), Signal::SIGKILL, record.token.as_deref());
            let _ = nix::sys::wait::waitpid(pid, None);
            record_failure(l.dir, format!("handing the record over: {e}"));
            fail(&mut report, format!("handing the record over: {e}"))
        }
    };
    let (output, size_fd) = match started.io {
        Io::Pipes { stdout, stderr } => (stdout, Some(stderr)),
        Io::Pty { master, .. } => (master, None),
    };
    let handoff = Handoff {
        pid: pid.as_raw(),
        output: (output.into_raw_fd(), size_fd.map(IntoRawFd::into_raw_fd)),
        stdin: started.stdin.map(IntoRawFd::into_raw_fd),
        listener: listener.map(IntoRawFd::into_raw_fd),
        record: record_fd.into_raw_fd(),
        logs,
    };
    let args = SupervisorArgs {
        dir: l.dir.to_path_buf(),
        lock_fd,
        report_fd: None,
        umask: l.umask,
        handoff: Some(handoff.clone()),
    };
    let mut fds = handoff.fds();
    fds.push(lock_fd);
    // codex-spawn returns now: the command runs, the record says so and
    // the socket listens. The supervisor's image loads after it (codex-spawn
    // checked that the program is there); should its exec fail all the
    // same, the session ends failed, its command stopped.
    let _ = report.write_all(&Report::Started { pid: pid.as_raw() }.encode());
    drop(report);
    let e = exec(l.program, &args, &fds);
    // Nobody would supervise the command: end it, and say so.
    descendants::signal_all(Some(pid), Signal::SIGKILL, record.token.as_deref());
    let _ = nix::sys::wait::waitpid(pid, None);
    let message = format!("starting {}: {e}", l.program.display());
    record_failure(l.dir, message);
    std::process::exit(125)
}

/// Takes over the session [`launch`] started, in the supervisor's image.
/// Never returns.
pub fn adopt(args: &SupervisorArgs, lock: OwnedFd, h: Handoff) -> ! {
    // The record's copy is read (and closed) before detaching.
    let mut keep: Vec<RawFd> = h.fds().into_iter().filter(|&fd| fd != h.record).collect();
    keep.push(args.lock_fd);
    // Safety: codex-spawn's child handed us these open descriptors
    // (checked by the caller) for us to own; nothing else refers to them.
    let (output, second, stdin, listener, record_file, logs) = unsafe {
        (
            OwnedFd::from_raw_fd(h.output.0),
            h.output.1.map(|fd| OwnedFd::from_raw_fd(fd)),
            h.stdin.map(|fd| OwnedFd::from_raw_fd(fd)),
            h.listener.map(|fd| UnixListener::from_raw_fd(fd)),
            File::from_raw_fd(h.record),
            h.logs.map(|fd| File::from_raw_fd(fd)),
        )
    };
    let pid = Pid::from_raw(h.pid);
    let record = read_copy(record_file, &args.dir);
    let token = record.as_ref().ok().and_then(|r| r.token.clone());
    let give_up = |why: String| -> ! {
        descendants::signal_all(Some(pid), Signal::SIGKILL, token.as_deref());
        let _ = nix::sys::wait::waitpid(pid, None);
        record_failure(&args.dir, why);
        std::process::exit(125);
    };
    if let Err(e) = detach::detach(&keep) {
        give_up(format!("detaching: {e}"));
    }
    umask(Mode::from_bits_truncate(0o077));
    report_panics_to(&args.dir);
    let record = match record {
        Ok(r) => r,
        Err(e) => give_up(format!("reading the record handed over: {e}")),
    };
    let size = record.size.unwrap_or([80, 24]);
    let io = match second {
        Some(stderr) => Io::Pipes {
            stdout: output,
            stderr,
        },
        None => Io::Pty {
            master: output,
            size: (size[0], size[1]),
        },
    };
    let started = Started { pid, io, stdin };
    let lock = Lock::from_fd(lock);
    match Supervisor::adopt(&args.dir, record, lock, logs, args.umask, started, listener) {
        Ok(s) => match s.run() {
            Ok(()) => std::process::exit(0),
            Err(_) => std::process::exit(1),
        },
        Err(e) => give_up(e.to_string()),
    }
}

/// A memory file holding `record`, for the supervisor's image.
fn record_copy(record: &Record) -> std::io::Result<OwnedFd> {
    let json = serde_json::to_vec(record).map_err(std::io::Error::other)?;
    // Safety: memfd_create reads the NUL-terminated name and returns a new
    // descriptor or -1.
    let fd = unsafe { nix::libc::memfd_create(c"record".as_ptr(), nix::libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // Safety: a descriptor just created, owned by nobody else.
    let mut file = unsafe { File::from_raw_fd(fd) };
    file.write_all(&json)?;
    Ok(OwnedFd::from(file))
}

/// The record in the memory file [`record_copy`] wrote.
fn read_copy(mut file: File, dir: &Path) -> shared::Result<Record> {
    use std::io::{Read, Seek, SeekFrom};
    let path = dir.join(shared::layout::RECORD);
    let mut json = Vec::new();
    file.seek(SeekFrom::Start(0))
        .and_then(|_| file.read_to_end(&mut json))
        .map_err(|e| shared::Error::io("reading the handed-over copy of", &path, e))?;
    Record::from_slice(&path, &json)
}

/// Points stdin, stdout and stderr at /dev/null, as the supervisor's.
fn null_stdio() -> nix::Result<()> {
    let null = nix::fcntl::open("/dev/null", OFlag::O_RDWR, Mode::empty())?;
    for fd in 0..=2 {
        if null != fd {
            nix::unistd::dup2(null, fd)?;
        }
    }
    if null > 2 {
        nix::unistd::close(null)?;
    }
    Ok(())
}

/// The supervisor's environment: codex-spawn's, with the `--env` values
/// under their carrying names (see [`launch::ENV_PREFIX`]) and the
/// session's token; not the id or token of a session codex-spawn itself
/// runs in, nor stale carriers.
fn environment(env: &[(String, OsString)], token: &str) {
    let stale: Vec<OsString> = std::env::vars_os()
        .map(|(name, _)| name)
        .filter(|n| {
            n.to_str()
                .is_some_and(|n| n.starts_with(launch::ENV_PREFIX))
        })
        .collect();
    for name in stale {
        std::env::remove_var(name);
    }
    std::env::remove_var("CODEX_BACKGROUND_ID");
    std::env::set_var(shared::host::SESSION_VAR, token);
    for (k, v) in launch::encode_env(env) {
        std::env::set_var(k, v);
    }
}

/// Execs the supervisor's program with `args`, `fds` passing the exec;
/// returns only the error. Not std's `Command::exec`: that empties the
/// signal mask first, and a signal blocked for the supervisor (a write
/// announcement) would then kill this process.
fn exec(program: &Path, args: &SupervisorArgs, fds: &[RawFd]) -> nix::errno::Errno {
    let cstr = |s: &[u8]| CString::new(s).map_err(|_| nix::errno::Errno::EINVAL);
    let run = || -> nix::Result<std::convert::Infallible> {
        for &fd in fds {
            fcntl(fd, FcntlArg::F_SETFD(FdFlag::empty()))?;
        }
        let path = cstr(program.as_os_str().as_bytes())?;
        let mut argv = vec![path.clone()];
        for a in args.to_args() {
            argv.push(cstr(a.as_bytes())?);
        }
        nix::unistd::execv(&path, &argv)
    };
    match run() {
        Ok(never) => match never {},
        Err(e) => e,
    }
}
