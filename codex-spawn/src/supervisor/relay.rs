//! The supervisor's life after detaching: start the command, then one
//! thread and one `poll` loop that relays its output to the logs, reaps
//! every child, enforces `--timeout` and stop requests, and finally writes
//! the exit into the record.

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitid, waitpid, Id, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use shared::layout::Stream;
use shared::lock::Lock;
use shared::record::{Durability, Record, State};
use shared::{host, Timestamp};

use crate::command;
use crate::logs::Logs;
use crate::reap;

/// How long the command's process group has between SIGTERM and SIGKILL
/// when the supervisor is asked to stop, unless the request says otherwise
/// (a second request kills at once).
const STOP_GRACE: Duration = Duration::from_secs(10);
/// How long what the command left running has between SIGTERM and SIGKILL
/// once the command itself has exited.
const LEFTOVER_GRACE: Duration = Duration::from_secs(2);
/// Bytes read from a pipe at a time.
const CHUNK: usize = 64 * 1024;
/// Room kept in the running record so the final one can be written in
/// place when the disk is full.
const RECORD_RESERVE: usize = 1024;

/// Why the command could not be started.
pub enum StartError {
    /// exec failed with this errno.
    Exec(Errno, io::Error),
    /// Anything else.
    Other(String),
}

/// A running session.
pub struct Supervisor {
    dir: PathBuf,
    record: Record,
    _lock: Lock,
    logs: Logs,
    signals: SignalFd,
    pid: Pid,
    stdout: Option<File>,
    stderr: Option<File>,
    /// Kept open so a `--stdin` command does not see end of input.
    _stdin: Option<OwnedFd>,
    /// The command's end, once seen.
    exit: Option<WaitStatus>,
    /// Whether the supervisor still has children to reap.
    children_left: bool,
    timeout_at: Option<Instant>,
    /// When to escalate a stop to SIGKILL.
    kill_at: Option<Instant>,
    stopping: bool,
}

impl Supervisor {
    /// Prepares the logs, starts the command and records it as running.
    pub fn start(dir: &Path, lock: Lock, caller_umask: u32) -> Result<Supervisor, StartError> {
        let other = |e: &dyn std::fmt::Display| StartError::Other(e.to_string());
        let mut record = Record::read(dir).map_err(|e| other(&e))?;
        let logs = Logs::create(dir, record.max_log_size).map_err(|e| other(&e))?;

        // Block the signals we handle so that they queue for the signalfd,
        // from before the command exists (no SIGCHLD can be missed).
        let mut mask = SigSet::empty();
        for sig in [
            Signal::SIGCHLD,
            Signal::SIGTERM,
            Signal::SIGINT,
            Signal::SIGQUIT,
        ] {
            mask.add(sig);
        }
        nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&mask), None)
            .map_err(|e| other(&e))?;
        let signals = SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
            .map_err(|e| other(&e))?;

        let started =
            command::start(&record, dir, caller_umask).map_err(|e| match e.raw_os_error() {
                Some(errno) => StartError::Exec(Errno::from_raw(errno), e),
                None => other(&e),
            })?;

        let me = nix::unistd::getpid().as_raw();
        record.state = State::Running;
        record.supervisor_pid = Some(me);
        record.supervisor_start_time = host::process_start_time(me);
        record.pid = Some(started.pid.as_raw());
        record.pid_start_time = host::process_start_time(started.pid.as_raw());
        record.pgid = Some(started.pid.as_raw());
        record.started_at = Some(Timestamp::now());
        let durability = Durability {
            sync: false,
            reserve: RECORD_RESERVE,
        };
        if let Err(e) = record.write(dir, durability) {
            reap::signal_all(Some(started.pid), Signal::SIGKILL);
            let _ = waitpid(started.pid, None);
            return Err(other(&e));
        }
        let timeout_at = record
            .timeout_ms
            .map(|ms| Instant::now() + Duration::from_millis(ms));
        Ok(Supervisor {
            dir: dir.to_path_buf(),
            record,
            _lock: lock,
            logs,
            signals,
            pid: started.pid,
            stdout: Some(started.stdout),
            stderr: Some(started.stderr),
            _stdin: started.stdin,
            exit: None,
            children_left: true,
            timeout_at,
            kill_at: None,
            stopping: false,
        })
    }

    /// The command's pid.
    pub fn pid(&self) -> Pid {
        self.pid
    }

    /// Relays until the command and everything it started have ended, then
    /// writes the final record. Returns when the session is over.
    pub fn run(mut self) -> shared::Result<()> {
        let mut buf = vec![0u8; CHUNK];
        while !self.done() {
            let timeout = self.next_deadline().map_or(PollTimeout::NONE, |at| {
                let left = at.saturating_duration_since(Instant::now());
                // Round up, so we never wake just before a deadline.
                PollTimeout::try_from(left + Duration::from_millis(1)).unwrap_or(PollTimeout::MAX)
            });
            let (sig_ready, out_ready, err_ready) = {
                let mut fds = vec![PollFd::new(self.signals.as_fd(), PollFlags::POLLIN)];
                for f in [&self.stdout, &self.stderr].into_iter().flatten() {
                    fds.push(PollFd::new(f.as_fd(), PollFlags::POLLIN));
                }
                match poll(&mut fds, timeout) {
                    Ok(_) | Err(Errno::EINTR) => {}
                    Err(e) => return Err(shared::Error::nix("polling", &self.dir, e)),
                }
                let ready = |i: usize| {
                    fds.get(i)
                        .and_then(|f| f.revents())
                        .is_some_and(|r| !r.is_empty())
                };
                let out_slot = self.stdout.is_some().then_some(1);
                let err_slot = self
                    .stderr
                    .is_some()
                    .then(|| 1 + usize::from(self.stdout.is_some()));
                (
                    ready(0),
                    out_slot.is_some_and(ready),
                    err_slot.is_some_and(ready),
                )
            };
            if out_ready {
                self.relay(Stream::Stdout, &mut buf);
            }
            if err_ready {
                self.relay(Stream::Stderr, &mut buf);
            }
            if sig_ready {
                self.handle_signals();
            }
            self.check_deadlines();
            if self.exit.is_some() && !self.children_left {
                // Every writer we know of is gone: take what is left in the
                // pipes without waiting for an end of file that a stranger
                // holding the pipe could delay forever.
                for stream in [Stream::Stdout, Stream::Stderr] {
                    while self.relay(stream, &mut buf) {}
                }
                self.stdout = None;
                self.stderr = None;
            }
        }
        self.finish()
    }

    /// The command's process group, while it is safe to signal (its leader
    /// not yet reaped).
    fn group(&self) -> Option<Pid> {
        self.exit.is_none().then_some(self.pid)
    }

    fn done(&self) -> bool {
        self.exit.is_some() && !self.children_left && self.stdout.is_none() && self.stderr.is_none()
    }

    fn next_deadline(&self) -> Option<Instant> {
        [
            self.timeout_at.filter(|_| self.exit.is_none()),
            self.kill_at,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Reads one chunk from `stream` into the logs. Returns whether it read
    /// anything; closes the stream at end of file.
    fn relay(&mut self, stream: Stream, buf: &mut [u8]) -> bool {
        let pipe = match stream {
            Stream::Stdout => &mut self.stdout,
            Stream::Stderr => &mut self.stderr,
        };
        let Some(file) = pipe else { return false };
        match file.read(buf) {
            Ok(0) => {
                *pipe = None;
                false
            }
            Ok(n) => {
                self.logs.write(stream, &buf[..n], Timestamp::now());
                true
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                ) =>
            {
                false
            }
            Err(_) => {
                *pipe = None;
                false
            }
        }
    }

    fn handle_signals(&mut self) {
        while let Ok(Some(info)) = self.signals.read_signal() {
            match Signal::try_from(info.ssi_signo as i32) {
                Ok(Signal::SIGCHLD) => {}
                // codex-rm sends its --grace, in milliseconds, with the
                // signal (sigqueue); a plain kill gets the default.
                Ok(_) if info.ssi_code == nix::libc::SI_QUEUE => {
                    self.stop(Duration::from_millis(u64::from(info.ssi_int as u32)))
                }
                Ok(_) => self.stop(STOP_GRACE),
                Err(_) => {}
            }
        }
        // SIGCHLD coalesces: reap whatever has ended, whichever signal came.
        self.reap();
    }

    /// Reaps every ended child. When the command itself ends, what it left
    /// running is told to stop before its process group can disappear.
    fn reap(&mut self) {
        if self.exit.is_none() {
            // Look without reaping: while the command is a zombie its pgid
            // cannot be reused, so signalling the group is safe.
            let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT;
            if let Ok(WaitStatus::Exited(..) | WaitStatus::Signaled(..)) =
                waitid(Id::Pid(self.pid), flags)
            {
                self.command_ended();
            }
        }
        loop {
            match waitpid(None::<Pid>, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) => break,
                Ok(status) => {
                    if status.pid() == Some(self.pid) && self.exit.is_none() {
                        self.exit = Some(status);
                    }
                }
                Err(Errno::EINTR) => {}
                Err(_) => {
                    self.children_left = false;
                    break;
                }
            }
        }
    }

    fn command_ended(&mut self) {
        reap::signal_all(self.group(), Signal::SIGTERM);
        let leftover_kill = Instant::now() + LEFTOVER_GRACE;
        self.kill_at = Some(self.kill_at.map_or(leftover_kill, |k| k.min(leftover_kill)));
        if let Ok(status) = waitpid(self.pid, Some(WaitPidFlag::WNOHANG)) {
            if status != WaitStatus::StillAlive {
                self.exit = Some(status);
            }
        }
    }

    /// A stop request (SIGTERM, SIGINT, SIGQUIT, or the timeout): SIGTERM
    /// to everything, SIGKILL after the grace period; a second request
    /// kills at once.
    fn stop(&mut self, grace: Duration) {
        if self.stopping {
            reap::signal_all(self.group(), Signal::SIGKILL);
            return;
        }
        self.stopping = true;
        reap::signal_all(self.group(), Signal::SIGTERM);
        let at = Instant::now() + grace;
        self.kill_at = Some(self.kill_at.map_or(at, |k| k.min(at)));
    }

    fn check_deadlines(&mut self) {
        let now = Instant::now();
        if self.exit.is_none() && self.timeout_at.is_some_and(|t| t <= now) {
            self.timeout_at = None;
            self.record.timed_out = true;
            self.stop(STOP_GRACE);
        }
        if self.kill_at.is_some_and(|k| k <= now) {
            self.kill_at = None;
            reap::signal_all(self.group(), Signal::SIGKILL);
            // Whatever survives SIGKILL's delivery is reaped on SIGCHLD;
            // check again soon in case something new appeared meanwhile.
            if self.children_left {
                self.kill_at = Some(now + Duration::from_millis(200));
            }
        }
    }

    /// Writes the final record, durably, and ends the supervision.
    fn finish(mut self) -> shared::Result<()> {
        let r = &mut self.record;
        r.state = State::Exited;
        r.ended_at = Some(Timestamp::now());
        match self.exit {
            Some(WaitStatus::Exited(_, code)) => r.exit_code = Some(code),
            Some(WaitStatus::Signaled(_, sig, _)) => {
                r.exit_code = Some(128 + sig as i32);
                r.signal = Some(sig.as_str().to_string());
            }
            _ => r.error = Some("the command's exit status was lost".into()),
        }
        r.stdout_bytes = self.logs.logged(Stream::Stdout);
        r.stderr_bytes = self.logs.logged(Stream::Stderr);
        r.dropped_bytes = self.logs.dropped;
        r.write(
            &self.dir,
            Durability {
                sync: true,
                reserve: 0,
            },
        )
        // The lock is released when the process exits, after this.
    }
}
