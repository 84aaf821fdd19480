//! `--wait`: block until the sessions listed have ended (all of them, or
//! any one), as `docker wait` does, then say how they ended.
//!
//! Event-driven: inotify on each session directory wakes us when the
//! record is replaced (a rename into the directory), when the supervisor
//! lets go of the lock (the lock file, open for writing, is closed: also
//! when the supervisor is killed with -9), and when the directory is
//! removed or renamed away (codex-rm). Readers' own opens (ours included)
//! close files unwritten, which is not watched, so looking never wakes us.
//! Where inotify is refused (its limits), we look four times a second.

use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};

use shared::{Session, Status};

/// A safety net against a missed event: look again this often anyway.
const IDLE_WAKE: Duration = Duration::from_secs(5);
/// How often to look where inotify is refused.
const POLL_INTERVAL: Duration = Duration::from_millis(250);

/// Exit status when `--timeout` ran out first (as GNU timeout).
pub const TIMED_OUT: i32 = 124;

/// How many of the sessions to wait for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Until {
    /// Every one has ended.
    All,
    /// Any one has ended.
    Any,
}

/// What the wait found: the sessions as they are now, and which have ended.
pub struct Waited {
    /// Each session, reloaded when it ended.
    pub sessions: Vec<Session>,
    /// Whether each has ended.
    pub ended: Vec<bool>,
    /// Whether the timeout ran out first.
    pub timed_out: bool,
}

/// Waits for `sessions` until `until` is met or `timeout` runs out.
pub fn wait(sessions: Vec<Session>, until: Until, timeout: Option<Duration>) -> Waited {
    let deadline = timeout.map(|t| Instant::now() + t);
    let inotify = watch(&sessions);
    let mut w = Waited {
        ended: vec![false; sessions.len()],
        sessions,
        timed_out: false,
    };
    loop {
        for (s, ended) in w.sessions.iter_mut().zip(&mut w.ended) {
            if !*ended {
                let fresh = Session::load(s.id.clone(), s.dir.clone());
                // Removed right after it ended: what was seen last tells more.
                let removed = fresh.record.as_ref().is_err_and(|e| e.is_not_found());
                if !(removed && s.status.is_over() && s.record.is_ok()) {
                    *s = fresh;
                }
                // Over, and its supervisor gone: all is on disk and the
                // session can be removed at once.
                *ended = s.status.is_over() && !shared::lock::is_held(&s.dir).unwrap_or(false);
            }
        }
        let done = match until {
            Until::All => w.ended.iter().all(|&e| e),
            Until::Any => w.ended.iter().any(|&e| e),
        };
        if done {
            return w;
        }
        let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        if left == Some(Duration::ZERO) {
            w.timed_out = true;
            return w;
        }
        match &inotify {
            Some(inotify) => {
                let nap = left.map_or(IDLE_WAKE, |l| l.min(IDLE_WAKE));
                let mut fds = [PollFd::new(inotify.as_fd(), PollFlags::POLLIN)];
                let _ = poll(&mut fds, timeout_of(nap));
                while let Ok(events) = inotify.read_events() {
                    if events.is_empty() {
                        break;
                    }
                }
            }
            None => std::thread::sleep(left.map_or(POLL_INTERVAL, |l| l.min(POLL_INTERVAL))),
        }
    }
}

fn timeout_of(d: Duration) -> PollTimeout {
    // Round up, so as not to wake just before the deadline.
    PollTimeout::try_from(d + Duration::from_millis(1)).unwrap_or(PollTimeout::MAX)
}

/// One inotify instance watching every session directory, or `None` when
/// inotify refuses.
fn watch(sessions: &[Session]) -> Option<Inotify> {
    let inotify = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC).ok()?;
    let mask = AddWatchFlags::IN_MOVED_TO
        | AddWatchFlags::IN_CLOSE_WRITE
        | AddWatchFlags::IN_DELETE_SELF
        | AddWatchFlags::IN_MOVE_SELF;
    for s in sessions {
        // A session already gone cannot be watched; it has ended.
        if s.dir.exists() {
            inotify.add_watch(&s.dir, mask).ok()?;
        }
    }
    Some(inotify)
}

/// The exit status for one session that ended, saying why on stderr when
/// it did not simply exit: its exit code; 1 when it has none.
pub fn code_of(session: &Session) -> i32 {
    let record = session.record.as_deref().ok();
    match session.status {
        Status::Exited => record.and_then(|r| r.exit_code).unwrap_or(1),
        Status::Lost => {
            eprintln!("codex-ps: {} is lost: its supervisor is gone", session.id);
            1
        }
        Status::Failed => {
            let why = record
                .and_then(|r| r.error.clone())
                .unwrap_or_else(|| "it never ran".into());
            eprintln!("codex-ps: {} failed: {why}", session.id);
            1
        }
        _ => {
            match &session.record {
                Err(e) if e.is_not_found() => eprintln!("codex-ps: {} was removed", session.id),
                Err(e) => eprintln!("codex-ps: {}: {e}", session.id),
                Ok(_) => eprintln!("codex-ps: {} is {}", session.id, session.status),
            }
            1
        }
    }
}
