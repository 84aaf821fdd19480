//! The supervisor's life after detaching: start the command, then one
//! thread and one `poll` loop that relays its output to the logs, reaps
//! every child, enforces `--timeout` and stop requests, and finally writes
//! the exit into the record.

use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitid, waitpid, Id, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use shared::agent::Change;
use shared::layout::Stream;
use shared::lock::Lock;
use shared::protocol::{self, Exit, Frame, Welcome};
use shared::record::{Durability, Record, State};
use shared::{host, stop, Timestamp};

use crate::agent::Watcher;
use crate::command::{self, Io};
use crate::descendants;
use crate::feed::Feed;
use crate::logs::Logs;
use crate::pipes::{self, Pipes};
use crate::pty::Pty;
use crate::server::{Event, Server};

/// How long what the command left running has between SIGTERM and SIGKILL
/// once the command itself has exited.
const LEFTOVER_GRACE: Duration = Duration::from_secs(2);
/// Bytes read from a pty at a time (a pty hands out at most a few KiB per
/// read; a small buffer keeps an idle session small).
const PTY_CHUNK: usize = 8 * 1024;
/// Bytes read from a pty before other work gets a turn.
const PTY_BUDGET: usize = 1 << 20;
/// How long attached clients get to take the news of the end.
const CLIENT_PATIENCE: Duration = Duration::from_secs(1);
/// The least time between two writes of the agent summary.
const AGENT_WRITE_EVERY: Duration = Duration::from_millis(250);
/// Both output streams.
const STREAMS: [Stream; 2] = [Stream::Stdout, Stream::Stderr];
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

/// Where the command's output comes from.
enum Output {
    /// Packet pipes for stdout and stderr.
    Pipes(Pipes),
    /// A pseudo-terminal.
    Pty(Pty),
}

/// What poll found ready.
struct Ready {
    /// Pipes: each stream's end. Pty: [readable, room for input].
    output: [bool; 2],
    /// Room in the stdin pipe for waiting input.
    stdin: bool,
    /// The server's descriptors, in its order.
    server: Vec<bool>,
}

/// A running session.
pub struct Supervisor {
    dir: PathBuf,
    record: Record,
    _lock: Lock,
    logs: Logs,
    signals: SignalFd,
    pid: Pid,
    output: Output,
    /// Input for a `--stdin` pipe session's command (kept open so that it
    /// does not see the end of its input).
    stdin: Option<Feed>,
    /// The attach socket (none if it could not be bound).
    server: Option<Server>,
    /// Exec sessions: the agent summary kept from the event stream.
    watcher: Option<Watcher>,
    /// When the summary is to be written next (a few times a second at
    /// most, and at once at a turn's end).
    agent_write_at: Option<Instant>,
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
        for sig in [Signal::SIGCHLD, Signal::SIGIO]
            .into_iter()
            .chain(stop::SIGNALS)
        {
            mask.add(sig);
        }
        let mut raw: nix::libc::sigset_t = *mask.as_ref();
        // Safety: sigaddset writes into the sigset we own; the number is a
        // valid real-time signal.
        unsafe { nix::libc::sigaddset(&mut raw, pipes::event_signal()) };
        // Safety: `raw` was initialised from a valid SigSet above.
        let mask = unsafe { SigSet::from_sigset_t_unchecked(raw) };
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
            descendants::signal_all(Some(started.pid), Signal::SIGKILL);
            let _ = waitpid(started.pid, None);
            return Err(other(&e));
        }
        let output = match started.io {
            Io::Pipes { stdout, stderr } => Output::Pipes(Pipes::new(stdout, stderr)),
            Io::Pty { master, size } => Output::Pty(Pty::new(master, size).map_err(|e| other(&e))?),
        };
        let stdin = started
            .stdin
            .map(Feed::new)
            .transpose()
            .map_err(|e| other(&e))?;
        let watcher = record.agent.clone().map(Watcher::new);
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
            output,
            stdin,
            server: Server::bind(dir).ok(),
            watcher,
            agent_write_at: None,
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
        // Only a pty is read through this buffer (pipes have their own).
        let mut buf = match self.output {
            Output::Pty(_) => vec![0u8; PTY_CHUNK],
            Output::Pipes(_) => Vec::new(),
        };
        while !self.done() {
            let timeout = self.next_deadline().map_or(PollTimeout::NONE, |at| {
                let left = at.saturating_duration_since(Instant::now());
                // Round up, so we never wake just before a deadline.
                PollTimeout::try_from(left + Duration::from_millis(1)).unwrap_or(PollTimeout::MAX)
            });
            let ready = self.wait(timeout)?;
            self.handle_signals();
            match &mut self.output {
                Output::Pipes(pipes) => {
                    for (stream, hung_up) in STREAMS.into_iter().zip(ready.output) {
                        if hung_up {
                            // Every writer is gone: what is left comes after
                            // all the announced writes just handled.
                            pipes.drain(stream, &mut self.logs);
                        }
                    }
                }
                Output::Pty(pty) => {
                    if ready.output[1] {
                        pty.write_pending();
                    }
                    if ready.output[0] {
                        self.read_pty(&mut buf);
                    }
                }
            }
            if ready.stdin {
                if let Some(feed) = &mut self.stdin {
                    feed.write_pending();
                }
            }
            self.check_deadlines();
            if self.exit.is_some() && !self.children_left {
                // Every writer we know of is gone: take what is left
                // without waiting for an end of file that a stranger
                // holding the pipe could delay forever.
                self.handle_signals();
                self.read_pty(&mut buf);
                match &mut self.output {
                    Output::Pipes(pipes) => {
                        for stream in STREAMS {
                            pipes.drain(stream, &mut self.logs);
                        }
                        pipes.close();
                    }
                    Output::Pty(pty) => pty.close(),
                }
            }
            self.flush_output();
            self.serve(&ready.server);
        }
        self.finish()
    }

    /// Waits for something to do; says what is ready.
    fn wait(&self, timeout: PollTimeout) -> shared::Result<Ready> {
        let mut fds = vec![PollFd::new(self.signals.as_fd(), PollFlags::POLLIN)];
        // Where each thing's entry is in `fds`, when it is polled.
        let mut slots = [None::<usize>; 3];
        fn add<'a>(
            fds: &mut Vec<PollFd<'a>>,
            slots: &mut [Option<usize>; 3],
            slot: usize,
            fd: Option<BorrowedFd<'a>>,
            flags: PollFlags,
        ) {
            if let Some(fd) = fd {
                slots[slot] = Some(fds.len());
                fds.push(PollFd::new(fd, flags));
            }
        }
        match &self.output {
            // Pipes are polled only for their end (POLLHUP is always
            // reported); their data is read when a write is announced.
            Output::Pipes(p) => {
                add(
                    &mut fds,
                    &mut slots,
                    0,
                    p.fd(Stream::Stdout),
                    PollFlags::empty(),
                );
                add(
                    &mut fds,
                    &mut slots,
                    1,
                    p.fd(Stream::Stderr),
                    PollFlags::empty(),
                );
            }
            Output::Pty(p) => {
                add(&mut fds, &mut slots, 0, p.fd(), PollFlags::POLLIN);
                add(&mut fds, &mut slots, 1, p.waiting_fd(), PollFlags::POLLOUT);
            }
        }
        add(
            &mut fds,
            &mut slots,
            2,
            self.stdin.as_ref().and_then(Feed::waiting_fd),
            PollFlags::POLLOUT,
        );
        let server_at = fds.len();
        if let Some(server) = &self.server {
            fds.extend(
                server
                    .poll_fds()
                    .into_iter()
                    .map(|(fd, flags)| PollFd::new(fd, flags)),
            );
        }
        match poll(&mut fds, timeout) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => return Err(shared::Error::nix("polling", &self.dir, e)),
        }
        let ready = |f: &PollFd<'_>| f.revents().is_some_and(|r| !r.is_empty());
        let at = |slot: usize| slots[slot].is_some_and(|i| ready(&fds[i]));
        Ok(Ready {
            output: [at(0), at(1)],
            stdin: at(2),
            server: fds[server_at..].iter().map(ready).collect(),
        })
    }

    /// Reads what the program wrote to its terminal: logged, sent to the
    /// attached clients, and, while nobody is attached, scanned for
    /// terminal queries to answer.
    fn read_pty(&mut self, buf: &mut [u8]) {
        let Output::Pty(pty) = &mut self.output else {
            return;
        };
        let mut budget = PTY_BUDGET;
        while budget > 0 {
            let Some(chunk) = pty.read(buf) else { break };
            if chunk.is_empty() {
                break;
            }
            budget = budget.saturating_sub(chunk.len());
            self.logs
                .log_chunk(Stream::Stdout, &chunk, Timestamp::now());
            match &mut self.server {
                Some(server) if server.has_clients() => server.broadcast(&Frame::Stdout(chunk)),
                _ => pty.answer_queries(&chunk),
            }
        }
    }

    /// Logs and sends out what was read, and commits the index.
    fn flush_output(&mut self) {
        let server = &mut self.server;
        let watcher = &mut self.watcher;
        if let Output::Pipes(pipes) = &mut self.output {
            // Bulk output skips user space: only when nobody needs to see it.
            pipes.splice = watcher.is_none() && !server.as_ref().is_some_and(Server::has_clients);
            pipes.flush(&mut self.logs, &mut |stream, bytes| {
                if let (Some(w), Stream::Stdout) = (watcher.as_mut(), stream) {
                    w.feed(bytes);
                }
                if let Some(server) = server.as_mut() {
                    let bytes = bytes.to_vec();
                    server.broadcast(&match stream {
                        Stream::Stdout => Frame::Stdout(bytes),
                        Stream::Stderr => Frame::Stderr(bytes),
                    });
                }
            });
        }
        self.logs.commit();
        self.note_agent();
    }

    /// Schedules writing the agent summary: at once at a turn's end, else
    /// at most a few times a second.
    fn note_agent(&mut self) {
        let Some(watcher) = &mut self.watcher else {
            return;
        };
        let now = Instant::now();
        match watcher.take_change() {
            Change::None => {}
            Change::TurnEnd => self.agent_write_at = Some(now),
            Change::Some => {
                self.agent_write_at.get_or_insert(now + AGENT_WRITE_EVERY);
            }
        }
        if self.agent_write_at.is_some_and(|t| t <= now) {
            self.write_agent();
        }
    }

    /// Writes the record with the current agent summary.
    fn write_agent(&mut self) {
        self.agent_write_at = None;
        if let Some(watcher) = &self.watcher {
            self.record.agent = Some(watcher.agent.clone());
            let durability = Durability {
                sync: false,
                reserve: RECORD_RESERVE,
            };
            let _ = self.record.write(&self.dir, durability);
        }
    }

    /// Serves the attach socket: new clients, their input and sizes.
    fn serve(&mut self, ready: &[bool]) {
        let Some(server) = &mut self.server else {
            return;
        };
        if !ready.iter().any(|&r| r) {
            return;
        }
        let welcome = Welcome {
            version: protocol::VERSION,
            tty: self.record.tty,
            stdin: self.record.tty || self.stdin.is_some(),
            index_len: self.logs.index_len(),
            stdout_len: self.logs.logged(Stream::Stdout),
            stderr_len: self.logs.logged(Stream::Stderr),
        };
        for event in server.handle(ready, &welcome) {
            match (event, &mut self.output) {
                (Event::Attached(Some((cols, rows))), Output::Pty(pty)) => {
                    if (cols, rows) != pty.size() {
                        pty.resize(cols, rows);
                    } else {
                        // Same size: a jiggle makes full-screen programs
                        // repaint. (A client without a terminal, such as
                        // piped input, needs no repaint; a jiggle would
                        // only disturb the program as the input arrives.)
                        pty.jiggle();
                    }
                }
                (Event::Resize(cols, rows), Output::Pty(pty)) => pty.resize(cols, rows),
                (Event::Input(bytes), Output::Pty(pty)) => pty.input(&bytes),
                (Event::Input(bytes), Output::Pipes(_)) => {
                    if let Some(feed) = &mut self.stdin {
                        feed.push(&bytes);
                    }
                }
                _ => {}
            }
        }
    }

    /// The command's process group, while it is safe to signal (its leader
    /// not yet reaped).
    fn group(&self) -> Option<Pid> {
        self.exit.is_none().then_some(self.pid)
    }

    fn done(&self) -> bool {
        let output_open = match &self.output {
            Output::Pipes(p) => p.is_open(Stream::Stdout) || p.is_open(Stream::Stderr),
            Output::Pty(p) => p.fd().is_some(),
        };
        self.exit.is_some() && !self.children_left && !output_open
    }

    fn next_deadline(&self) -> Option<Instant> {
        let jiggle = match &self.output {
            Output::Pty(p) => p.deadline(),
            Output::Pipes(_) => None,
        };
        [
            self.timeout_at.filter(|_| self.exit.is_none()),
            self.kill_at,
            jiggle,
            self.agent_write_at,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Handles every queued signal, in order: announced writes are read
    /// as they come, so output keeps the order it was written in.
    fn handle_signals(&mut self) {
        let event = pipes::event_signal() as u32;
        let mut infos = [SIGINFO_ZERO; 64];
        loop {
            let n = read_signals(&self.signals, &mut infos);
            if n == 0 {
                break;
            }
            for info in &infos[..n] {
                if info.ssi_signo == event {
                    if let Output::Pipes(pipes) = &mut self.output {
                        if let Some(stream) = pipes.stream_of(info.ssi_fd) {
                            pipes.on_write(stream, &mut self.logs);
                        }
                    }
                    continue;
                }
                match Signal::try_from(info.ssi_signo as i32) {
                    Ok(Signal::SIGCHLD) => {}
                    // The kernel's queue of write signals overflowed: read
                    // everything; the order is as good as two pipes allow.
                    Ok(Signal::SIGIO) => {
                        if let Output::Pipes(pipes) = &mut self.output {
                            for stream in STREAMS {
                                pipes.drain(stream, &mut self.logs);
                            }
                        }
                    }
                    _ => {
                        let (signo, code) = (info.ssi_signo as i32, info.ssi_code);
                        if let Some(grace) = stop::decode(signo, code, info.ssi_int) {
                            self.stop(grace);
                        }
                    }
                }
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
        descendants::signal_all(self.group(), Signal::SIGTERM);
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
            descendants::signal_all(self.group(), Signal::SIGKILL);
            return;
        }
        self.stopping = true;
        descendants::signal_all(self.group(), Signal::SIGTERM);
        let at = Instant::now() + grace;
        self.kill_at = Some(self.kill_at.map_or(at, |k| k.min(at)));
    }

    fn check_deadlines(&mut self) {
        let now = Instant::now();
        if let Output::Pty(pty) = &mut self.output {
            pty.check_deadline(now);
        }
        if self.agent_write_at.is_some_and(|t| t <= now) {
            self.write_agent();
        }
        if self.exit.is_none() && self.timeout_at.is_some_and(|t| t <= now) {
            self.timeout_at = None;
            self.record.timed_out = true;
            self.stop(stop::DEFAULT_GRACE);
        }
        if self.kill_at.is_some_and(|k| k <= now) {
            self.kill_at = None;
            descendants::signal_all(self.group(), Signal::SIGKILL);
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
        if let Some(watcher) = &self.watcher {
            r.agent = Some(watcher.agent.clone());
        }
        let written = r.write(
            &self.dir,
            Durability {
                sync: true,
                reserve: 0,
            },
        );
        // Clients hear of the end only once it is on disk.
        if let Some(server) = self.server.take() {
            let exit = Exit {
                code: r.exit_code.unwrap_or(125),
                signal: r.signal.clone(),
            };
            server.close(&Frame::Exit(exit), CLIENT_PATIENCE);
        }
        // The lock is released when the process exits, after this.
        written
    }
}

/// A zeroed signalfd record, to size the buffer of [`read_signals`].
const SIGINFO_ZERO: nix::libc::signalfd_siginfo = {
    // Safety: signalfd_siginfo is plain integers; all zeroes is valid.
    unsafe { std::mem::zeroed() }
};

/// Reads as many queued signals as fit in `buf` with one read; returns how
/// many (0 when none are queued).
fn read_signals(fd: &SignalFd, buf: &mut [nix::libc::signalfd_siginfo]) -> usize {
    let size = std::mem::size_of::<nix::libc::signalfd_siginfo>();
    // Safety: the kernel writes whole signalfd_siginfo records into `buf`,
    // which we own and whose byte length we pass; they are plain integers.
    let n = unsafe {
        nix::libc::read(
            std::os::fd::AsRawFd::as_raw_fd(fd),
            buf.as_mut_ptr().cast(),
            std::mem::size_of_val(buf),
        )
    };
    if n <= 0 {
        0
    } else {
        n as usize / size
    }
}
