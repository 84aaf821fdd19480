//! Starting the session's command: its own process group, fresh signal
//! state and the caller's umask, output on pipes to the supervisor, and
//! stdin from the prompt, a pipe (`--stdin`) or /dev/null.

use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};

use nix::fcntl::OFlag;
use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, SigmaskHow, Signal};
use nix::sys::stat::{umask, Mode};
use nix::unistd::{pipe2, Pid};

use shared::layout;
use shared::record::{Kind, Record};

use crate::{pipes, pty};

/// The supervisor's ends of the command's output.
pub enum Io {
    /// Packet pipes for stdout and stderr (see [`crate::pipes`]).
    Pipes {
        /// The read end of stdout.
        stdout: OwnedFd,
        /// The read end of stderr.
        stderr: OwnedFd,
    },
    /// The master side of the command's terminal.
    Pty {
        /// The master.
        master: OwnedFd,
        /// Its window size: columns, rows.
        size: (u16, u16),
    },
}

/// The running command.
pub struct Started {
    /// The command's pid, which is also its process group.
    pub pid: Pid,
    /// Its output.
    pub io: Io,
    /// The write end of its stdin pipe (`--stdin` pipe sessions).
    pub stdin: Option<OwnedFd>,
}

/// Starts the command of `record` from the session directory `dir`.
///
/// A failed exec comes back as an error carrying its errno: the standard
/// library reports it through a close-on-exec pipe, so success means the
/// command really was exec'd.
pub fn start(record: &Record, dir: &Path, caller_umask: u32) -> io::Result<Started> {
    let (program, args) = record
        .argv
        .split_first()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "empty command line"))?;
    let mut command = Command::new(program);
    // The caller's environment plus the `--env` values (carried under
    // other names, so that they never applied to the supervisor), then
    // the session's id and token.
    let (values, carriers) = shared::launch::decode_env(std::env::vars_os());
    for name in carriers {
        command.env_remove(name);
    }
    command
        .args(args)
        .current_dir(&record.cwd)
        .envs(values)
        .env("CODEX_BACKGROUND_ID", &record.id);
    if let Some(token) = &record.token {
        command.env(shared::host::SESSION_VAR, token);
    }
    let mask = Mode::from_bits_truncate(caller_umask as nix::libc::mode_t);
    let mut keep_stdin = None;
    let io = if record.tty {
        let [cols, rows] = record.size.unwrap_or([80, 24]);
        let (master, slave) = pty::open(cols, rows)?;
        command
            .stdin(Stdio::from(slave.try_clone()?))
            .stdout(Stdio::from(slave.try_clone()?))
            .stderr(Stdio::from(slave))
            .env(
                "TERM",
                std::env::var_os("TERM")
                    .filter(|t| !t.is_empty())
                    .unwrap_or("xterm-256color".into()),
            );
        // Safety: the closure runs in the forked child before exec and
        // calls only async-signal-safe functions (setsid, ioctl, sigaction,
        // sigprocmask, umask); it allocates nothing.
        unsafe {
            command.pre_exec(move || {
                // A new session whose controlling terminal is the pty
                // (now the child's stdin).
                nix::unistd::setsid()?;
                if nix::libc::ioctl(0, nix::libc::TIOCSCTTY as _, 0) < 0 {
                    return Err(io::Error::last_os_error());
                }
                reset_signals();
                umask(mask);
                Ok(())
            });
        }
        Io::Pty {
            master,
            size: (cols, rows),
        }
    } else {
        let (out_read, out_write) = pipes::output_pipe()?;
        let (err_read, err_write) = pipes::output_pipe()?;
        // Before the command can write its first byte.
        pipes::announce_writes(&out_read)?;
        pipes::announce_writes(&err_read)?;
        let stdin = if record.kind == Kind::Exec {
            Stdio::from(shared::files::open_nofollow(&dir.join(layout::PROMPT))?)
        } else if record.stdin {
            let (read, write) = pipe2(OFlag::O_CLOEXEC)?;
            keep_stdin = Some(write);
            Stdio::from(read)
        } else {
            Stdio::null()
        };
        command
            .stdin(stdin)
            .stdout(Stdio::from(out_write))
            .stderr(Stdio::from(err_write))
            .process_group(0);
        with_defaults(&mut command, mask);
        Io::Pipes {
            stdout: out_read,
            stderr: err_read,
        }
    };
    let child = command.spawn()?;
    // `command` drops here, closing our copies of the child's ends (the
    // pty's slave included, so the master sees the end when the program
    // and its children are gone).
    drop(command);
    Ok(Started {
        pid: Pid::from_raw(child.id() as i32),
        io,
        stdin: keep_stdin,
    })
}

/// Makes `command` start as every program of a session does (the command,
/// a `--setup` script, a hook): default dispositions for every signal, an
/// empty signal mask ([`reset_signals`]) and the caller's umask `mask`.
pub(crate) fn with_defaults(command: &mut Command, mask: Mode) {
    // Safety: the closure runs in the forked child before exec and calls
    // only async-signal-safe functions (sigaction, sigprocmask, umask); it
    // allocates nothing.
    unsafe {
        command.pre_exec(move || {
            reset_signals();
            umask(mask);
            Ok(())
        });
    }
}

/// Gives the command default dispositions for every signal and an empty
/// mask: ignored signals stay ignored across exec otherwise, and the
/// supervisor ignores SIGHUP, SIGPIPE and SIGXFSZ and blocks others.
pub(crate) fn reset_signals() {
    let default = SigAction::new(SigHandler::SigDfl, SaFlags::empty(), SigSet::empty());
    for sig in Signal::iterator() {
        if matches!(sig, Signal::SIGKILL | Signal::SIGSTOP) {
            continue;
        }
        // Safety: installing SIG_DFL runs no code of ours in signal context.
        let _ = unsafe { sigaction(sig, &default) };
    }
    // Real-time signals (32 and up) are beyond nix's list, and glibc
    // refuses to touch the ones it reserves; the kernel does not.
    let default_action = [0u64; 4];
    for sig in 32..=64 {
        // Safety: rt_sigaction reads a zeroed kernel sigaction (SIG_DFL, no
        // flags, empty mask) from memory we own and writes nothing back.
        unsafe {
            nix::libc::syscall(
                nix::libc::SYS_rt_sigaction,
                sig,
                default_action.as_ptr(),
                std::ptr::null_mut::<u8>(),
                8usize,
            );
        }
    }
    let _ = nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None);
}
