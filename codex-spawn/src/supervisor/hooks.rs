//! The session's hooks: `--on-state CMD` at each change of the agent's
//! state, `--on-exit CMD` once the final record is written.
//!
//! A hook must never delay the command, the record or the release of the
//! lock, and must be able to outlive the supervisor (an on-exit hook
//! always does). So a hook is not a child of the supervisor: it is started
//! by a small runner process made with `clone(CLONE_PARENT)`, which makes
//! the runner the supervisor's sibling. Nothing the supervisor waits for
//! or stops (its children, everything below it as their subreaper) ever
//! includes a hook, and the runner needs nobody after the supervisor
//! exits. The runner:
//!
//! - closes every descriptor it inherited (the lock above all: a hook must
//!   not keep the session looking alive), starts a new session and becomes
//!   a subreaper, so that all the hook starts stays below it;
//! - for an on-exit hook, waits until the supervisor has released the
//!   lock (a shared `flock`, let go at once), so the hook sees the session
//!   wholly ended (`codex-rm "$CODEX_SESSION_ID"` works in it);
//! - runs `sh -c CMD` in the session's working directory with the
//!   session's environment plus `CODEX_SESSION_*` / `CODEX_AGENT_*`, stdin
//!   on /dev/null, stdout and stderr appended to `hooks.log` (0600) in the
//!   session directory, default signal dispositions and the caller's umask;
//! - after the hook's time limit (`--hook-timeout`, 60 s by default),
//!   SIGTERM to everything below it, SIGKILL 2 s later;
//! - writes the outcome to `hooks.log` (`exited 3`, `killed at the time
//!   limit`): a hook that fails is recorded there, and nothing else
//!   happens.
//!
//! On-state hooks run one at a time, in order: a change that comes while
//! one runs waits for it (the supervisor watches the runner through a
//! pidfd), and further changes meanwhile are merged into the latest. A
//! change still waiting when the session ends gets its runner at once,
//! which first waits (through the pidfd it keeps) for the one before it.

use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::libc;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, Signal};
use nix::sys::stat::Mode;
use nix::unistd::Pid;

use shared::agent::AgentState;
use shared::hooks::{self, DEFAULT_TIMEOUT_MS};
use shared::record::{Record, State};
use shared::{layout, Timestamp};

use crate::descendants;

/// How often to look whether a running on-state hook has ended while
/// another change waits for it (only then).
const RECHECK: Duration = Duration::from_millis(100);
/// Between SIGTERM and SIGKILL at a hook's time limit.
const HOOK_GRACE: Duration = Duration::from_secs(2);

/// The hooks of a session, and the state of its on-state hook.
pub struct Hooks {
    config: hooks::Hooks,
    dir: PathBuf,
    umask: Mode,
    /// The state the last on-state hook was started for.
    reported: Option<AgentState>,
    /// The runner of the on-state hook under way, as a pidfd.
    running: Option<OwnedFd>,
    /// A change waiting for the running hook to end: its environment.
    pending: Option<(AgentState, Vec<(String, OsString)>)>,
}

impl Hooks {
    /// The hooks of `record`, if it has any.
    pub fn new(record: &Record, dir: &Path, caller_umask: u32) -> Option<Hooks> {
        let config = record.hooks.clone()?;
        Some(Hooks {
            config,
            dir: dir.to_path_buf(),
            umask: Mode::from_bits_truncate(caller_umask as libc::mode_t),
            reported: None,
            running: None,
            pending: None,
        })
    }

    /// The record was just written: starts the on-state hook if the
    /// agent's state changed since the last one.
    pub fn on_record(&mut self, record: &Record) {
        let Some(agent) = &record.agent else { return };
        if self.config.on_state.is_none() || self.reported == Some(agent.state) {
            self.pending = None;
            return;
        }
        let mut vars = vars(record, &self.dir, "state");
        vars.push((
            "CODEX_AGENT_PREVIOUS_STATE".into(),
            self.reported.map_or("", AgentState::as_str).into(),
        ));
        self.pending = Some((agent.state, vars));
        self.start_pending();
    }

    /// When to look again whether the running hook has ended.
    pub fn deadline(&self) -> Option<Instant> {
        self.pending.as_ref().map(|_| Instant::now() + RECHECK)
    }

    /// Starts the waiting on-state hook once the one before it has ended.
    pub fn check(&mut self) {
        if self.pending.is_some() {
            self.start_pending();
        }
    }

    fn start_pending(&mut self) {
        if self.running.as_ref().is_some_and(still_running) {
            return;
        }
        self.start_next(None);
    }

    /// Starts the waiting on-state hook, its runner first waiting for the
    /// end of the runner `after`.
    fn start_next(&mut self, after: Option<OwnedFd>) {
        let (Some(cmd), Some((state, vars))) = (&self.config.on_state, self.pending.take()) else {
            return;
        };
        self.reported = Some(state);
        let label = format!("on-state ({})", state.as_str());
        self.running = self.launch(&label, cmd, vars, after, false);
    }

    /// The final record is written: starts the on-exit hook, which waits
    /// for the lock's release and outlives the supervisor.
    pub fn on_exit(&mut self, record: &Record) {
        // A change still waiting for the hook before it: its runner waits
        // for that one itself, since the supervisor is about to exit.
        if self.pending.is_some() {
            let running = self.running.take().filter(still_running);
            self.start_next(running);
        }
        if let Some(cmd) = self.config.on_exit.clone() {
            self.launch("on-exit", &cmd, vars(record, &self.dir, "exit"), None, true);
        }
    }

    /// Starts a runner for `cmd`; its pidfd when the kernel gives one.
    fn launch(
        &self,
        label: &str,
        cmd: &str,
        vars: Vec<(String, OsString)>,
        after: Option<OwnedFd>,
        after_lock: bool,
    ) -> Option<OwnedFd> {
        let job = Job {
            label: label.to_string(),
            cmd: cmd.to_string(),
            vars,
            dir: self.dir.clone(),
            umask: self.umask,
            timeout: Duration::from_millis(self.config.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS)),
            after,
            after_lock,
        };
        match sibling() {
            Ok(Forked::Child) => job.run(),
            Ok(Forked::Parent(pidfd)) => pidfd,
            Err(e) => {
                job.log(&format!("-- {label}: not started: {e}\n"));
                None
            }
        }
    }
}

/// The hook's environment: what the session is, and what its agent does.
fn vars(record: &Record, dir: &Path, hook: &str) -> Vec<(String, OsString)> {
    let agent = record.agent.as_ref();
    let text = |f: fn(&shared::agent::Agent) -> Option<&String>| {
        agent.and_then(f).cloned().unwrap_or_default()
    };
    let status = match record.state {
        State::Queued => "queued",
        State::Starting => "starting",
        State::Running => "running",
        State::Exited => "exited",
        State::Failed => "failed",
    };
    [
        ("CODEX_HOOK", hook.to_string()),
        ("CODEX_SESSION_ID", record.id.clone()),
        ("CODEX_BACKGROUND_ID", record.id.clone()),
        ("CODEX_SESSION_KIND", record.kind.as_str().into()),
        ("CODEX_SESSION_STATUS", status.into()),
        (
            "CODEX_SESSION_EXIT_CODE",
            record.exit_code.map(|c| c.to_string()).unwrap_or_default(),
        ),
        (
            "CODEX_SESSION_SIGNAL",
            record.signal.clone().unwrap_or_default(),
        ),
        (
            "CODEX_SESSION_TIMED_OUT",
            if record.timed_out { "1" } else { "0" }.into(),
        ),
        ("CODEX_SESSION_DIR", dir.display().to_string()),
        (
            "CODEX_AGENT_STATE",
            agent.map_or("", |a| a.state.as_str()).into(),
        ),
        ("CODEX_AGENT_BLOCKED_ON", text(|a| a.blocked_on.as_ref())),
        ("CODEX_AGENT_MESSAGE", text(|a| a.blocked_message.as_ref())),
        (
            "CODEX_AGENT_LAST_MESSAGE",
            text(|a| a.last_message.as_ref()),
        ),
        ("CODEX_AGENT_THREAD_ID", text(|a| a.thread_id.as_ref())),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), OsString::from(v)))
    .chain([("CODEX_SESSION_CWD".to_string(), record.cwd.clone())])
    .collect()
}

/// Whether the process behind `pidfd` still runs.
fn still_running(pidfd: &OwnedFd) -> bool {
    use std::os::fd::AsFd;
    let mut fds = [PollFd::new(pidfd.as_fd(), PollFlags::POLLIN)];
    matches!(poll(&mut fds, PollTimeout::ZERO), Ok(0))
}

enum Forked {
    Child,
    Parent(Option<OwnedFd>),
}

/// Forks a process whose parent is the supervisor's parent, not the
/// supervisor (`CLONE_PARENT`), with a pidfd for it where the kernel has
/// them (Linux 5.2).
fn sibling() -> std::io::Result<Forked> {
    let mut pidfd: libc::c_int = -1;
    for flags in [libc::CLONE_PARENT | libc::CLONE_PIDFD, libc::CLONE_PARENT] {
        // Safety: a clone without CLONE_VM and with no new stack is a fork:
        // the child runs on a copy of this (single-threaded) process, so no
        // lock can be held by another thread. With CLONE_PIDFD the kernel
        // writes the pidfd into `pidfd`, which we own.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_clone,
                (flags | libc::SIGCHLD) as libc::c_ulong,
                0usize,
                &mut pidfd as *mut libc::c_int,
                0usize,
                0usize,
            )
        };
        match rc {
            0 => return Ok(Forked::Child),
            n if n > 0 => {
                let fd = (flags & libc::CLONE_PIDFD != 0 && pidfd >= 0)
                    // Safety: the kernel just gave us this new descriptor.
                    .then(|| unsafe { OwnedFd::from_raw_fd(pidfd) });
                return Ok(Forked::Parent(fd));
            }
            _ => {
                let e = std::io::Error::last_os_error();
                if e.raw_os_error() != Some(libc::EINVAL) {
                    return Err(e);
                }
            }
        }
    }
    Err(std::io::Error::from_raw_os_error(libc::EINVAL))
}

/// One hook to run, in the runner process.
struct Job {
    label: String,
    cmd: String,
    vars: Vec<(String, OsString)>,
    dir: PathBuf,
    umask: Mode,
    timeout: Duration,
    /// The runner to wait for first (a pidfd).
    after: Option<OwnedFd>,
    after_lock: bool,
}

impl Job {
    /// The runner's life (see the module's documentation); never returns.
    fn run(self) -> ! {
        close_all_but(self.after.as_ref().map(AsRawFd::as_raw_fd));
        // Safety: PR_SET_NAME reads a NUL-terminated name we own.
        unsafe { libc::prctl(libc::PR_SET_NAME, c"codex-hook".as_ptr()) };
        let _ = nix::unistd::setsid();
        let _ = nix::sys::prctl::set_child_subreaper(true);
        if let Some(before) = &self.after {
            // It ends within its own time limit (and grace).
            use std::os::fd::AsFd;
            let mut fds = [PollFd::new(before.as_fd(), PollFlags::POLLIN)];
            let _ = poll(&mut fds, timeout_of(self.timeout + 2 * HOOK_GRACE));
        }
        if self.after_lock {
            wait_for_lock(&self.dir);
        }
        let code = match self.hook() {
            Ok(true) => 0,
            Ok(false) => 1,
            Err(e) => {
                self.log(&format!("-- {}: not started: {e}\n", self.label));
                1
            }
        };
        // Safety: _exit ends this process without running the
        // supervisor's destructors or flushing its buffers (copies).
        unsafe { libc::_exit(code) }
    }

    /// Runs the hook to its end or its time limit; whether it exited 0.
    fn hook(&self) -> std::io::Result<bool> {
        let log = open_log(&self.dir)?;
        let started = Instant::now();
        self.log(&format!(
            "-- {} at {}: sh -c {}\n",
            self.label,
            Timestamp::now().to_rfc3339_millis(),
            self.cmd
        ));
        let cwd = self
            .vars
            .iter()
            .find(|(k, _)| k == "CODEX_SESSION_CWD")
            .map(|(_, v)| PathBuf::from(v))
            .filter(|p| p.is_dir())
            .unwrap_or_else(|| self.dir.clone());
        let mut command = Command::new("/bin/sh");
        let umask = self.umask;
        // The session's environment: the caller's plus the `--env` values
        // (carried under other names, as for the command).
        let (values, carriers) = shared::launch::decode_env(std::env::vars_os());
        for name in carriers {
            command.env_remove(name);
        }
        command
            .arg("-c")
            .arg(&self.cmd)
            .current_dir(cwd)
            .envs(values)
            .envs(self.vars.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .process_group(0);
        crate::command::with_defaults(&mut command, umask);
        let child = command.spawn()?;
        let hook = Pid::from_raw(child.id() as i32);
        drop(child);
        let outcome = self.wait(hook, started);
        self.log(&format!("-- {}: {outcome}\n", self.label));
        Ok(outcome.starts_with("exited 0 "))
    }

    /// Waits for the hook, and then what it left, until the time limit;
    /// says how the hook ended.
    fn wait(&self, hook: Pid, started: Instant) -> String {
        let deadline = started + self.timeout;
        let mut outcome = None;
        let mut kill_at: Option<Instant> = None;
        loop {
            // Reap whatever has ended.
            loop {
                match nix::sys::wait::waitpid(
                    None::<Pid>,
                    Some(nix::sys::wait::WaitPidFlag::WNOHANG),
                ) {
                    Ok(nix::sys::wait::WaitStatus::StillAlive) => break,
                    Ok(status) if status.pid() == Some(hook) => {
                        let took = started.elapsed().as_secs_f64();
                        outcome.get_or_insert(match status {
                            nix::sys::wait::WaitStatus::Exited(_, code) => {
                                format!("exited {code} after {took:.1}s")
                            }
                            nix::sys::wait::WaitStatus::Signaled(_, sig, _) => {
                                format!("killed by {} after {took:.1}s", sig.as_str())
                            }
                            _ => format!("ended after {took:.1}s"),
                        });
                    }
                    Ok(_) => {}
                    Err(nix::errno::Errno::EINTR) => {}
                    Err(_) => {
                        return outcome.unwrap_or_else(|| "its status was lost".into());
                    }
                }
            }
            let now = Instant::now();
            if now >= deadline && kill_at.is_none() {
                if outcome.is_none() {
                    outcome = Some(format!(
                        "killed at the time limit ({}s)",
                        self.timeout.as_secs_f64()
                    ));
                }
                signal_below(Signal::SIGTERM);
                kill_at = Some(now + HOOK_GRACE);
            }
            if kill_at.is_some_and(|k| now >= k) {
                signal_below(Signal::SIGKILL);
                kill_at = Some(now + Duration::from_millis(200));
            }
            let until = kill_at.unwrap_or(deadline);
            wait_for_child(until.saturating_duration_since(now));
        }
    }

    /// Appends `line` to hooks.log (nothing if it cannot be opened).
    fn log(&self, line: &str) {
        if let Ok(mut f) = open_log(&self.dir) {
            let _ = f.write_all(line.as_bytes());
        }
    }
}

/// Sends `sig` to everything below this runner.
fn signal_below(sig: Signal) {
    for pid in descendants::of(nix::unistd::getpid(), None) {
        let _ = kill(pid, sig);
    }
}

/// Waits up to `left` for a SIGCHLD (blocked, as in the supervisor).
fn wait_for_child(left: Duration) {
    let mut set = nix::sys::signal::SigSet::empty();
    set.add(Signal::SIGCHLD);
    let _ =
        nix::sys::signal::sigprocmask(nix::sys::signal::SigmaskHow::SIG_BLOCK, Some(&set), None);
    let ts = libc::timespec {
        tv_sec: left.as_secs() as libc::time_t,
        tv_nsec: left.subsec_nanos() as libc::c_long,
    };
    // Safety: sigtimedwait reads the set and the timeout, both ours, and
    // writes no siginfo (null).
    unsafe { libc::sigtimedwait(set.as_ref(), std::ptr::null_mut(), &ts) };
}

/// Waits until nobody holds the session's lock, then lets go at once.
fn wait_for_lock(dir: &Path) {
    if let Ok(f) = File::open(dir.join(layout::LOCK)) {
        // Safety: flock on a descriptor we own.
        unsafe {
            libc::flock(f.as_raw_fd(), libc::LOCK_SH);
            libc::flock(f.as_raw_fd(), libc::LOCK_UN);
        }
    }
}

fn open_log(dir: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(dir.join(hooks::LOG))
}

/// Closes every descriptor from 3 up but `keep`.
fn close_all_but(keep: Option<i32>) {
    let ranges = match keep {
        Some(k) if k >= 3 => [(3, k - 1), (k + 1, i32::MAX)],
        _ => [(3, i32::MAX), (0, -1)],
    };
    for (first, last) in ranges.into_iter().filter(|(f, l)| f <= l) {
        // Safety: in the runner, right after the clone: none of the
        // inherited descriptors but `keep` is used from here on.
        let rc = unsafe { libc::syscall(libc::SYS_close_range, first as u32, last as u32, 0) };
        if rc != 0 {
            for fd in first..last.min(1024) {
                let _ = nix::unistd::close(fd);
            }
        }
    }
}

fn timeout_of(d: Duration) -> PollTimeout {
    PollTimeout::try_from(d).unwrap_or(PollTimeout::MAX)
}
