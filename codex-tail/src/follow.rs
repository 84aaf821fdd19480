//! `--follow`: wait for new output with inotify on the session directories
//! (the record is replaced by rename, so the directory is watched, not the
//! file), print it as it comes, and end when every session has ended.
//!
//! A session has ended when its record says so or its lock is released
//! (a supervisor killed with -9 counts); its logs are drained after that,
//! since the supervisor writes all output before it lets go of the lock.

use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Duration;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};

use shared::{Record, Session, Status, Timestamp};

use crate::output::Printer;
use shared::output::{Source, Window};

/// A safety net against a missed event (a session on a network
/// filesystem, where inotify sees only this machine's writes): look again
/// this often even when nothing is reported, twice as long after each look
/// that found nothing new, up to [`IDLE_WAKE_MAX`], and this often again
/// after any event.
const IDLE_WAKE: u16 = 5000;
/// The longest wait between two looks when nothing is reported, and the
/// only one where every session is on a local filesystem (inotify sees
/// every change there, a supervisor's end included: its lock's descriptor
/// closes).
const IDLE_WAKE_MAX: u16 = 60_000;
/// How often to look where inotify is refused.
const POLL_INTERVAL: Duration = Duration::from_millis(250);

/// Follows `sources` until all have ended, or the `--until` time has
/// passed; returns the exit status: the first non-zero exit code among
/// those that ended, else 0; 125 for a session that is lost, failed or
/// gone.
pub fn follow(sources: &mut [Source], printer: &mut Printer, w: &Window) -> anyhow::Result<i32> {
    let inotify = watch(sources);
    let mut codes: Vec<Option<i32>> = vec![None; sources.len()];
    let mut seen: Vec<Option<Seen>> = (0..sources.len()).map(|_| None).collect();
    let first_wake = match sources.iter().all(|s| is_local(&s.dir)) {
        true => IDLE_WAKE_MAX,
        false => IDLE_WAKE,
    };
    let mut idle_wake = first_wake;
    loop {
        for (nth, source) in sources.iter_mut().enumerate() {
            if codes[nth].is_some() {
                continue;
            }
            let id = source.id.to_string();
            source.advance(w, &mut |line| {
                let _ = printer.line(&id, nth, &line);
            })?;
            if seen[nth]
                .as_ref()
                .is_some_and(|s| s.still_live(&source.dir))
            {
                source.partial_lines(w, &mut |line| {
                    let _ = printer.line(&id, nth, &line);
                });
                continue;
            }
            let session = Session::load(source.id.clone(), source.dir.clone());
            seen[nth] = Seen::of(&session);
            if !session.status.is_over() {
                // A prompt or a progress bar shows before its newline.
                source.partial_lines(w, &mut |line| {
                    let _ = printer.line(&id, nth, &line);
                });
                continue;
            }
            // Over: whatever it wrote is in the logs now; take the rest.
            source.advance(w, &mut |line| {
                let _ = printer.line(&id, nth, &line);
            })?;
            for line in source.take_pending() {
                printer.line(&id, nth, &line)?;
            }
            if printer.renders(nth) {
                if let Some(line) = crate::tail::closing_line(source) {
                    printer.shown(&id, nth, &line)?;
                }
            }
            codes[nth] = Some(exit_code(&session));
        }
        printer.flush()?;
        // `--until T`: nothing later can be wanted once T has passed (the
        // output is taken up to now first, so a line read at T is shown).
        let past_until = w.until.is_some_and(|u| Timestamp::now() > u);
        if past_until || codes.iter().all(Option::is_some) {
            let codes: Vec<i32> = codes.into_iter().flatten().collect();
            return Ok(codes.iter().copied().find(|&c| c != 0).unwrap_or(0));
        }
        // Wake at T to end then.
        let wake = w.until.map_or(idle_wake, |u| {
            let left_ms = (u.0 - Timestamp::now().0).max(0) / 1_000_000 + 1;
            left_ms.min(i64::from(idle_wake)) as u16
        });
        match &inotify {
            Some(inotify) => {
                let mut fds = [PollFd::new(inotify.as_fd(), PollFlags::POLLIN)];
                let events = poll(&mut fds, PollTimeout::from(wake)).unwrap_or(1);
                idle_wake = match events {
                    0 => idle_wake.saturating_mul(2).min(IDLE_WAKE_MAX),
                    _ => first_wake,
                };
                // Drain the events; which ones came does not matter.
                while let Ok(events) = inotify.read_events() {
                    if events.is_empty() {
                        break;
                    }
                }
            }
            None => std::thread::sleep(POLL_INTERVAL.min(Duration::from_millis(u64::from(wake)))),
        }
    }
}

/// A live session's record as last read, and the file it was read from:
/// while that file is unchanged, a look only asks whether its supervisor
/// still holds the lock (an idle follower reads and parses nothing).
struct Seen {
    /// Inode, size and modification time of the record file.
    stamp: (u64, u64, i64, i64),
    /// The record read from it.
    record: Box<Record>,
}

impl Seen {
    /// What to keep of `session`: its record, while it is live.
    fn of(session: &Session) -> Option<Seen> {
        let record = session.record.as_ref().ok()?;
        if session.status.is_over() {
            return None;
        }
        Some(Seen {
            stamp: stamp(&session.dir)?,
            record: record.clone(),
        })
    }

    /// Whether the session in `dir` is still live with the same record.
    fn still_live(&self, dir: &Path) -> bool {
        stamp(dir) == Some(self.stamp) && !Status::derive(&self.record, dir).is_over()
    }
}

/// Whether `dir` is on a filesystem known to be local, whose every change
/// inotify reports.
fn is_local(dir: &Path) -> bool {
    use nix::sys::statfs::{
        statfs, BTRFS_SUPER_MAGIC, EXT4_SUPER_MAGIC, TMPFS_MAGIC, XFS_SUPER_MAGIC,
    };
    let local = [
        BTRFS_SUPER_MAGIC,
        EXT4_SUPER_MAGIC,
        TMPFS_MAGIC,
        XFS_SUPER_MAGIC,
    ];
    statfs(dir).is_ok_and(|fs| local.contains(&fs.filesystem_type()))
}

/// The identity of the record file in `dir`: inode, size, modification
/// time (a rewrite replaces it by rename, or writes it in place).
fn stamp(dir: &Path) -> Option<(u64, u64, i64, i64)> {
    let m = std::fs::symlink_metadata(dir.join(shared::layout::RECORD)).ok()?;
    Some((m.ino(), m.len(), m.mtime(), m.mtime_nsec()))
}

/// One inotify instance watching every session directory, or `None` when
/// inotify refuses (limits reached): then we poll slowly instead.
fn watch(sources: &[Source]) -> Option<Inotify> {
    let inotify = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC).ok()?;
    let mask = AddWatchFlags::IN_MODIFY
        | AddWatchFlags::IN_CLOSE_WRITE
        | AddWatchFlags::IN_MOVED_TO
        | AddWatchFlags::IN_CREATE
        | AddWatchFlags::IN_DELETE_SELF
        | AddWatchFlags::IN_MOVE_SELF;
    for s in sources {
        inotify.add_watch(&s.dir, mask).ok()?;
    }
    Some(inotify)
}

/// The exit status a follow ends with for `session`, saying why on stderr
/// when the session did not simply exit.
fn exit_code(session: &Session) -> i32 {
    let record = session.record.as_deref().ok();
    match session.status {
        Status::Exited => record.and_then(|r| r.exit_code).unwrap_or(125),
        Status::Lost => {
            eprintln!("codex-tail: {} is lost: its supervisor is gone", session.id);
            125
        }
        Status::Failed => {
            let why = record
                .and_then(|r| r.error.clone())
                .unwrap_or_else(|| "it never ran".into());
            let why = ::cli::text::line(&why);
            eprintln!("codex-tail: {} failed: {why}", session.id);
            125
        }
        _ => {
            match &session.record {
                Err(e) if e.is_not_found() => eprintln!("codex-tail: {} was removed", session.id),
                Err(e) => eprintln!(
                    "codex-tail: {}: {}",
                    session.id,
                    ::cli::text::line(&e.to_string())
                ),
                Ok(_) => eprintln!("codex-tail: {} is {}", session.id, session.status),
            }
            125
        }
    }
}
