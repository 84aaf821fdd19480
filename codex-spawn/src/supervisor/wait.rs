//! Before the command starts: waiting for the sessions of `--after` and
//! `--after-ok` to end, then for a slot of the `--queue` (see
//! [`shared::queue`]), while the session reads `queued`.
//!
//! Event-driven: inotify on the dependencies' directories (their records
//! are replaced by rename) and on the root (a removal renames the
//! directory away), and on the queue's directory (a member's slot is
//! released with `IN_CLOSE_WRITE`, a waiter's ticket removed with
//! `IN_DELETE`); a slow safety poll catches what no event announces (a
//! dependency whose supervisor was killed with -9). A stop request ends
//! the wait at once: the session then never runs.

use std::os::fd::AsFd;
use std::path::Path;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};

use shared::queue::{self, Slot, Ticket};
use shared::record::{Dependency, Record};
use shared::{Session, SessionId, Status};

use crate::signals::{Arrival, Signals};

/// How often to look again when no event came.
const SAFETY_POLL_MS: u16 = 2000;

/// How a wait ended.
pub enum Waited {
    /// Go: start the command, holding the queue's slot, if any, and its
    /// ticket, to be dropped once the command is recorded running (so the
    /// next in line starts after it, in creation order).
    Go(Option<(Slot, Ticket)>),
    /// It will never run, for this reason.
    Never(String),
}

/// Whether `record` asks to wait before its command runs.
pub fn needed(record: &Record) -> bool {
    record.queue.is_some() || !record.after.is_empty()
}

/// Waits as `record` asks for the session in `dir`, calling `placed` once
/// the session has its place: at once when it waits for dependencies
/// first, else once it holds its ticket in the queue, so that sessions
/// spawned one after another are in line in that order.
pub fn wait(dir: &Path, record: &Record, placed: &mut dyn FnMut()) -> Waited {
    match wait_inner(dir, record, placed) {
        Ok(w) => w,
        Err(e) => Waited::Never(format!("waiting to start: {e}")),
    }
}

fn wait_inner(dir: &Path, record: &Record, placed: &mut dyn FnMut()) -> shared::Result<Waited> {
    let root = dir.parent().unwrap_or(Path::new("/"));
    let signals = Signals::block().map_err(|e| io_error(dir, e.into()))?;
    let inotify = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC).ok();
    if let Some(ino) = &inotify {
        let _ = ino.add_watch(
            root,
            AddWatchFlags::IN_MOVED_FROM | AddWatchFlags::IN_DELETE,
        );
        for dep in &record.after {
            let _ = ino.add_watch(
                &root.join(&dep.id),
                AddWatchFlags::IN_MOVED_TO | AddWatchFlags::IN_CLOSE_WRITE,
            );
        }
    }

    // First the dependencies.
    if !record.after.is_empty() {
        placed();
    }
    loop {
        match dependencies(root, &record.after) {
            Deps::Met => break,
            Deps::Never(why) => return Ok(Waited::Never(why)),
            Deps::Waiting => {}
        }
        if pause(&signals, inotify.as_ref()) {
            return Ok(stopped());
        }
    }
    // Then the queue, in the order the sessions were created.
    let Some(spec) = &record.queue else {
        return Ok(Waited::Go(None));
    };
    let qdir = queue::dir(root, &spec.name)?;
    if let Some(ino) = &inotify {
        let _ = ino.add_watch(
            &qdir,
            AddWatchFlags::IN_CLOSE_WRITE | AddWatchFlags::IN_DELETE,
        );
    }
    let ticket = Ticket::take(&qdir, record.created_at, &record.id)?;
    placed();
    loop {
        if queue::any_free(&qdir, spec.limit)? && ticket.is_first()? {
            if let Some(slot) = queue::try_slot(&qdir, spec.limit)? {
                return Ok(Waited::Go(Some((slot, ticket))));
            }
        }
        if pause(&signals, inotify.as_ref()) {
            return Ok(stopped());
        }
    }
}

fn stopped() -> Waited {
    Waited::Never("stopped while queued: it never ran".into())
}

fn io_error(dir: &Path, e: std::io::Error) -> shared::Error {
    shared::Error::io("waiting in", dir, e)
}

/// Where the dependencies stand.
enum Deps {
    Met,
    Waiting,
    Never(String),
}

fn dependencies(root: &Path, deps: &[Dependency]) -> Deps {
    for dep in deps {
        let Ok(id) = SessionId::parse(&dep.id) else {
            return Deps::Never(format!("dependency {:?} is not a session id", dep.id));
        };
        let dir = root.join(&dep.id);
        if !dir.exists() {
            if dep.ok {
                return Deps::Never(format!(
                    "dependency {} was removed before it was seen to exit 0",
                    dep.id
                ));
            }
            continue;
        }
        let session = Session::load(id, dir);
        if !session.status.is_over() {
            return Deps::Waiting;
        }
        let code = session.record.as_deref().ok().and_then(|r| r.exit_code);
        if dep.ok && !(session.status == Status::Exited && code == Some(0)) {
            let how = match (session.status, code) {
                (Status::Exited, Some(c)) => format!("exited {c}"),
                (s, _) => s.to_string(),
            };
            return Deps::Never(format!(
                "dependency {} did not exit 0 ({how}), so this session never ran",
                dep.id
            ));
        }
    }
    Deps::Met
}

/// Sleeps until an event, a signal or the safety poll; whether a stop was
/// asked for.
fn pause(signals: &Signals, inotify: Option<&Inotify>) -> bool {
    let mut fds = vec![PollFd::new(signals.fd(), PollFlags::POLLIN)];
    if let Some(ino) = inotify {
        fds.push(PollFd::new(ino.as_fd(), PollFlags::POLLIN));
    }
    let _ = poll(&mut fds, PollTimeout::from(SAFETY_POLL_MS));
    if let Some(ino) = inotify {
        while matches!(ino.read_events(), Ok(events) if !events.is_empty()) {}
    }
    let mut stop = false;
    signals.take(|a| stop |= matches!(a, Arrival::Stop(_)));
    stop
}
