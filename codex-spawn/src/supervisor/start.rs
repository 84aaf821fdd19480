//! The session's start, once the supervisor has detached: the logs, the
//! signals blocked before the command exists, the command itself (see
//! [`crate::command`]), the record marked running, and the attach socket.

use std::io;
use std::path::Path;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::Signal;
use nix::sys::wait::waitpid;
use nix::unistd::Pid;

use shared::lock::Lock;
use shared::record::Record;

use crate::agent::Watcher;
use crate::announce::Announcements;
use crate::children::Children;
use crate::hooks::Hooks;
use crate::logs::Logs;
use crate::output::Output;
use crate::relay::Supervisor;
use crate::server::Server;
use crate::signals::Signals;
use crate::{command, descendants, state, work};

/// Why the command could not be started.
pub enum StartError {
    /// exec failed with this errno.
    Exec(Errno, io::Error),
    /// `--setup` failed (its output is in the logs).
    Setup(String),
    /// Anything else.
    Other(String),
}

impl Supervisor {
    /// Prepares the logs, starts the command and records it as running.
    pub fn start(dir: &Path, lock: Lock, caller_umask: u32) -> Result<Supervisor, StartError> {
        let (record, logs, signals, started) = begin(dir, caller_umask)?;
        let server = Server::bind(dir).ok();
        Supervisor::assemble(
            dir,
            record,
            lock,
            logs,
            signals,
            started,
            server,
            caller_umask,
        )
        .map_err(|e| StartError::Other(e.to_string()))
    }

    /// Takes over the session that codex-spawn's child started (see
    /// [`crate::handoff`]), whose `record` it wrote: that record says
    /// running, its `logs` and index (stdout, stderr, index) are open and
    /// empty, and its signals have been blocked since before the
    /// command existed.
    pub fn adopt(
        dir: &Path,
        record: Record,
        lock: Lock,
        logs: [std::fs::File; 3],
        caller_umask: u32,
        started: command::Started,
        listener: Option<std::os::unix::net::UnixListener>,
    ) -> shared::Result<Supervisor> {
        let logs = Logs::adopt(dir, record.max_log_size, logs)?;
        let signals = Signals::block()
            .map_err(|e| shared::Error::io("blocking signals for", dir, e.into()))?;
        let server = listener.and_then(|l| Server::listening(l, dir).ok());
        Supervisor::assemble(
            dir,
            record,
            lock,
            logs,
            signals,
            started,
            server,
            caller_umask,
        )
        .map_err(|e| shared::Error::io("relaying the output of", dir, e))
    }

    #[allow(clippy::too_many_arguments)]
    fn assemble(
        dir: &Path,
        record: Record,
        lock: Lock,
        logs: Logs,
        signals: Signals,
        started: command::Started,
        server: Option<Server>,
        caller_umask: u32,
    ) -> std::io::Result<Supervisor> {
        let output = Output::new(started.io, started.stdin)?;
        let watcher = record.agent.clone().map(Watcher::new);
        let children = Children::new(started.pid, record.token.clone());
        let heard = record.tty.then(Announcements::new);
        let hooks = Hooks::new(&record, dir, caller_umask);
        let timeout_at = record
            .timeout_ms
            .map(|ms| Instant::now() + Duration::from_millis(ms));
        Ok(Supervisor {
            dir: dir.to_path_buf(),
            record,
            _lock: lock,
            logs,
            signals,
            children,
            output,
            server,
            watcher,
            heard,
            hooks,
            timeout_at,
        })
    }

    /// The command's pid.
    pub fn pid(&self) -> Pid {
        self.children.pid()
    }
}

/// The start up to the command running: the record read, the logs
/// created, the signals blocked, the `--setup` run, the command started
/// and the record marked running.
pub fn begin(
    dir: &Path,
    caller_umask: u32,
) -> Result<(Record, Logs, Signals, command::Started), StartError> {
    let other = |e: &dyn std::fmt::Display| StartError::Other(e.to_string());
    let mut record = Record::read(dir).map_err(|e| other(&e))?;
    let mut logs = Logs::create(dir, record.max_log_size).map_err(|e| other(&e))?;
    let signals = Signals::block().map_err(|e| other(&e))?;
    work::setup(&mut record, dir, &mut logs, &signals, caller_umask).map_err(StartError::Setup)?;

    let started =
        command::start(&record, dir, caller_umask).map_err(|e| match e.raw_os_error() {
            Some(errno) => StartError::Exec(Errno::from_raw(errno), e),
            None => other(&e),
        })?;
    if let Err(e) = state::running(&mut record, dir, started.pid) {
        descendants::signal_all(Some(started.pid), Signal::SIGKILL, record.token.as_deref());
        let _ = waitpid(started.pid, None);
        return Err(other(&e));
    }
    Ok((record, logs, signals, started))
}
