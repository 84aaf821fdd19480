//! A `--worktree` session's two moments in the supervisor: `--setup`, run
//! in the worktree before the command (its output in the session's logs;
//! codex-spawn waits for it as for the command's exec), and the commit of
//! what the command changed, once it has ended and before the final record
//! (see `shared::worktree`).

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{killpg, Signal};
use nix::sys::stat::Mode;
use nix::unistd::Pid;

use shared::layout::Stream;
use shared::record::Record;
use shared::Timestamp;

use crate::logs::Logs;
use crate::signals::{Arrival, Signals};

/// How often the setup's end is looked for while its output is quiet.
const TICK: Duration = Duration::from_millis(50);

/// Runs the session's `--setup`, if it has one, with `sh -c` in the
/// worktree: stdin on /dev/null, its output into the logs (a tty session's
/// all on stdout), the command's environment, the caller's umask. A stop
/// request ends it (SIGTERM to its process group, SIGKILL after the
/// grace). The error says how it failed.
pub fn setup(
    record: &mut Record,
    dir: &Path,
    logs: &mut Logs,
    signals: &Signals,
    caller_umask: u32,
) -> Result<(), String> {
    let Some((cmd, worktree)) = record
        .worktree
        .as_ref()
        .and_then(|w| Some((w.setup.clone()?, w.path.clone())))
    else {
        return Ok(());
    };
    // Who to ask to stop it (codex-rm -f waits for this while starting).
    let me = nix::unistd::getpid().as_raw();
    record.supervisor_pid = Some(me);
    record.supervisor_start_time = shared::host::process_start_time(me);
    record
        .write(dir, shared::record::Durability::default())
        .map_err(|e| e.to_string())?;
    let mask = Mode::from_bits_truncate(caller_umask as nix::libc::mode_t);
    let mut command = Command::new("/bin/sh");
    command
        .arg("-c")
        .arg(&cmd)
        .current_dir(&worktree)
        .env("CODEX_BACKGROUND_ID", &record.id)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    crate::command::with_defaults(&mut command, mask);
    let mut child = command
        .spawn()
        .map_err(|e| format!("starting the setup (sh -c {cmd:?}): {e}"))?;
    let err_stream = if record.tty {
        Stream::Stdout
    } else {
        Stream::Stderr
    };
    let outputs = [
        child
            .stdout
            .take()
            .map(|p| (File::from(OwnedFd::from(p)), Stream::Stdout)),
        child
            .stderr
            .take()
            .map(|p| (File::from(OwnedFd::from(p)), err_stream)),
    ];
    let status = relay(&mut child, outputs, logs, signals);
    logs.commit();
    match status {
        Ok((status, stopped)) if status.success() && !stopped => Ok(()),
        Ok((_, true)) => Err(format!("the setup (sh -c {cmd:?}) was stopped")),
        Ok((status, false)) => Err(match (status.code(), status.signal()) {
            (Some(code), _) => format!("the setup (sh -c {cmd:?}) exited with {code}"),
            (_, Some(sig)) => format!(
                "the setup (sh -c {cmd:?}) was killed by {}",
                Signal::try_from(sig).map_or_else(|_| format!("signal {sig}"), |s| s.to_string())
            ),
            _ => format!("the setup (sh -c {cmd:?}) failed"),
        }),
        Err(e) => Err(format!("running the setup (sh -c {cmd:?}): {e}")),
    }
}

/// Logs the setup's output until it exits (what it left running may keep
/// the pipes open: they are read until then, then drained), acting on stop
/// requests. Its exit status, and whether it was stopped.
fn relay(
    child: &mut Child,
    mut outputs: [Option<(File, Stream)>; 2],
    logs: &mut Logs,
    signals: &Signals,
) -> io::Result<(std::process::ExitStatus, bool)> {
    for (f, _) in outputs.iter().flatten() {
        let flags = OFlag::from_bits_truncate(fcntl(f.as_raw_fd(), FcntlArg::F_GETFL)?);
        fcntl(f.as_raw_fd(), FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK))?;
    }
    let group = Pid::from_raw(child.id() as i32);
    let mut stopped = false;
    let mut kill_at: Option<Instant> = None;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        {
            let mut fds = vec![PollFd::new(signals.fd(), PollFlags::POLLIN)];
            fds.extend(
                outputs
                    .iter()
                    .flatten()
                    .map(|(f, _)| PollFd::new(f.as_fd(), PollFlags::POLLIN)),
            );
            let _ = poll(
                &mut fds,
                PollTimeout::try_from(TICK).unwrap_or(PollTimeout::MAX),
            );
        }
        signals.take(|arrival| {
            if let Arrival::Stop(grace) = arrival {
                let sig = if stopped {
                    Signal::SIGKILL
                } else {
                    Signal::SIGTERM
                };
                stopped = true;
                let _ = killpg(group, sig);
                kill_at = Some(kill_at.unwrap_or_else(|| Instant::now() + grace));
            }
        });
        if kill_at.is_some_and(|k| k <= Instant::now()) {
            let _ = killpg(group, Signal::SIGKILL);
        }
        drain(&mut outputs, logs, &mut buf);
        if let Some(status) = child.try_wait()? {
            drain(&mut outputs, logs, &mut buf);
            return Ok((status, stopped));
        }
    }
}

/// Logs what can be read now from each open output; closes those at EOF.
fn drain(outputs: &mut [Option<(File, Stream)>; 2], logs: &mut Logs, buf: &mut [u8]) {
    for slot in outputs.iter_mut() {
        let Some((f, stream)) = slot else { continue };
        loop {
            match f.read(buf) {
                Ok(0) => {
                    *slot = None;
                    break;
                }
                Ok(n) => logs.log_chunk(*stream, &buf[..n], Timestamp::now()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break, // nothing more for now
            }
        }
    }
    logs.commit();
}

/// Commits what the command changed in the worktree (nothing without a
/// worktree), filling in the record's worktree: status, final commit,
/// diffstat, or why the commit failed.
pub fn commit(record: &mut Record, dir: &Path) {
    if record.worktree.is_some() {
        shared::worktree::commit_session(record, dir);
    }
}
