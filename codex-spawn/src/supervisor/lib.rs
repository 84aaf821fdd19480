//! codex-supervisor: the small process that runs one background session.
//!
//! codex-spawn starts it with the session directory, the descriptor that
//! holds the session's lock, the write end of a report pipe, and its umask
//! (see `shared::launch`). It detaches, starts the command, reports, relays
//! output until everything the command started has ended, records the exit
//! and exits, releasing the lock.
//!
//! Usually codex-spawn's child does the start itself, in the image it
//! already has, and execs the supervisor's image only once the command
//! runs (see [`handoff`]): codex-spawn then waits for two images, not
//! three. The program is `main.rs`; this library is also linked into
//! codex-spawn for that.

mod agent;
mod announce;
mod children;
mod command;
mod descendants;
mod detach;
mod feed;
mod finish;
pub mod handoff;
mod hooks;
mod logs;
mod output;
mod pipes;
mod pty;
mod relay;
mod server;
mod signals;
mod start;
mod state;
mod trim;
mod wait;
mod work;

use std::fs::File;
use std::io::Write;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;

use nix::fcntl::{fcntl, FcntlArg};
use nix::sys::stat::{umask, Mode};

use shared::launch::{Report, SupervisorArgs};
use shared::layout;
use shared::lock::Lock;
use shared::record::Record;

use relay::Supervisor;
use start::StartError;

/// The supervisor's program.
pub fn main() {
    let args = SupervisorArgs::from_args(std::env::args_os().skip(1)).filter(|a| {
        let mut fds = vec![a.lock_fd];
        fds.extend(a.report_fd);
        fds.extend(a.handoff.iter().flat_map(|h| h.fds()));
        fds.into_iter().all(is_open)
    });
    let Some(args) = args else {
        eprintln!("codex-supervisor: this program is started by codex-spawn, not by hand");
        std::process::exit(2);
    };
    // Safety: codex-spawn handed us the lock's open descriptor (checked
    // above) for us to own; nothing else in this process refers to it.
    let lock = unsafe { OwnedFd::from_raw_fd(args.lock_fd) };
    if let Some(handoff) = args.handoff.clone() {
        handoff::adopt(&args, lock, handoff);
    }
    let Some(report_fd) = args.report_fd else {
        std::process::exit(2);
    };
    // Safety: as for the lock, the report pipe is ours alone.
    let mut report = unsafe { File::from_raw_fd(report_fd) };
    if let Err(e) = detach::detach(&[args.lock_fd, report_fd]) {
        let _ = report.write_all(
            &Report::Failed {
                message: format!("detaching: {e}"),
            }
            .encode(),
        );
        std::process::exit(125);
    }
    umask(Mode::from_bits_truncate(0o077));
    report_panics_to(&args.dir);

    // A session that waits (--after, --queue) is queued now: codex-spawn
    // returns, and what becomes of it is in the record from then on.
    let mut report = Some(report);
    let mut _slot = None;
    let mut ticket_held = None;
    if let Some(mut record) = Record::read(&args.dir).ok().filter(wait::needed) {
        if let Err(e) = state::queued(&mut record, &args.dir) {
            record_failure(&args.dir, e.to_string());
            if let Some(mut r) = report.take() {
                let _ = r.write_all(
                    &Report::Failed {
                        message: e.to_string(),
                    }
                    .encode(),
                );
            }
            std::process::exit(125);
        }
        // codex-spawn returns once the session has its place in line.
        let mut queued = || {
            if let Some(mut r) = report.take() {
                let _ = r.write_all(&Report::Queued.encode());
            }
        };
        let waited = wait::wait(&args.dir, &record, &mut queued);
        queued();
        match waited {
            wait::Waited::Go(held) => {
                if let Some((slot, ticket)) = held {
                    _slot = Some(slot);
                    ticket_held = Some(ticket);
                }
            }
            wait::Waited::Never(why) => {
                state::never_ran(&args.dir, why);
                std::process::exit(0);
            }
        }
    }

    let supervisor = match Supervisor::start(&args.dir, Lock::from_fd(lock), args.umask) {
        Ok(s) => s,
        Err(e) => fail_start(&args.dir, e, report.as_mut()),
    };
    if let Some(mut r) = report {
        let _ = r.write_all(
            &Report::Started {
                pid: supervisor.pid().as_raw(),
            }
            .encode(),
        );
    }
    // Recorded running: the next in the queue's line may go.
    drop(ticket_held);
    if supervisor.run().is_err() {
        std::process::exit(1);
    }
}

/// Records and reports (when codex-spawn still waits) that the command
/// could not be started, and exits.
pub(crate) fn fail_start(dir: &std::path::Path, e: StartError, report: Option<&mut File>) -> ! {
    let (report_msg, error) = match e {
        StartError::Exec(errno, err) => (
            Report::ExecFailed {
                errno: errno as i32,
                message: err.to_string(),
            },
            err.to_string(),
        ),
        StartError::Setup(message) => (
            Report::SetupFailed {
                message: message.clone(),
            },
            message,
        ),
        StartError::Other(message) => (
            Report::Failed {
                message: message.clone(),
            },
            message,
        ),
    };
    record_failure(dir, error);
    if let Some(r) = report {
        let _ = r.write_all(&report_msg.encode());
    }
    std::process::exit(125);
}

/// Records that the command never ran, for readers who look before
/// codex-spawn removes the directory (or if codex-spawn died meanwhile).
pub(crate) fn record_failure(dir: &std::path::Path, error: String) {
    state::never_ran(dir, error);
}

/// Makes a panic leave its message (and, with `RUST_BACKTRACE`, its
/// backtrace) in the session's `supervisor.log`: the supervisor's stderr
/// is /dev/null, and a panic otherwise only shows as a lost session.
pub(crate) fn report_panics_to(dir: &std::path::Path) {
    let path = dir.join(layout::SUPERVISOR_LOG);
    std::panic::set_hook(Box::new(move |info| {
        let backtrace = std::backtrace::Backtrace::capture();
        let text = format!("codex-supervisor {info}\n{backtrace}\n");
        let _ = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC)
            .open(&path)
            .and_then(|mut f| f.write_all(text.as_bytes()));
    }));
}

fn is_open(fd: RawFd) -> bool {
    fcntl(fd, FcntlArg::F_GETFD).is_ok()
}
