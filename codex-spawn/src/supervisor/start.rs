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
        let other = |e: &dyn std::fmt::Display| StartError::Other(e.to_string());
        let mut record = Record::read(dir).map_err(|e| other(&e))?;
        let mut logs = Logs::create(dir, record.max_log_size).map_err(|e| other(&e))?;
        let signals = Signals::block().map_err(|e| other(&e))?;
        work::setup(&mut record, dir, &mut logs, &signals, caller_umask)
            .map_err(StartError::Setup)?;

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
        let output = Output::new(started.io, started.stdin).map_err(|e| other(&e))?;
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
            server: Server::bind(dir).ok(),
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
