//! Ending what still runs before a removal: a live session through its
//! supervisor, a lost session's leftovers directly, each pid checked first
//! so that a reused pid is never hit.

use std::path::Path;
use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use shared::host::{self, Liveness};
use shared::record::Record;
use shared::{lock, Session};

/// How often the lock and the processes are looked at while waiting.
const TICK: Duration = Duration::from_millis(10);
/// How long a session still starting gets to record its supervisor.
const START_WAIT: Duration = Duration::from_secs(5);
/// After the grace, how long the supervisor gets to finish after being told
/// to kill at once.
const FINISH_WAIT: Duration = Duration::from_secs(10);

/// A stop request sent to a live session's supervisor, to wait on.
pub struct Asked {
    record: Record,
    /// The supervisor signalled; none when the lock is held by someone
    /// other than the recorded supervisor (waited for, never signalled).
    pid: Option<i32>,
    at: Instant,
}

/// Stops a starting or running session: asks its supervisor to stop the
/// command (SIGKILL after `grace`) and waits until the supervisor has
/// released the lock, which it does only once everything has ended.
pub fn stop_live(session: &Session, grace: Duration) -> anyhow::Result<()> {
    match ask_to_stop(session, grace)? {
        Some(asked) => wait_stopped(session, asked, grace),
        None => Ok(()),
    }
}

/// The first half of [`stop_live`]: asks the supervisor to stop, without
/// waiting (so that many sessions can be stopped at once). `None` when the
/// session has ended meanwhile.
pub fn ask_to_stop(session: &Session, grace: Duration) -> anyhow::Result<Option<Asked>> {
    let dir = &session.dir;
    let at = Instant::now();
    let record = loop {
        let record = Record::read(dir).context("reading the record")?;
        if record.supervisor_pid.is_some() || !held(dir) {
            break record;
        }
        if at.elapsed() > START_WAIT {
            bail!("it is still starting after {}s", START_WAIT.as_secs());
        }
        sleep(TICK);
    };
    if !held(dir) {
        return Ok(None);
    }
    let pid = record
        .supervisor_pid
        .context("the record names no supervisor")?;
    let pid = match host::liveness(
        record.boot_id.as_deref(),
        record.pid_ns.as_deref(),
        pid,
        record.supervisor_start_time,
    ) {
        Liveness::Same => {
            shared::stop::request(pid, grace).context("signalling the supervisor")?;
            Some(pid)
        }
        Liveness::Foreign => bail!("it runs on host {}, not here: stop it there", record.host),
        // The lock is held by someone other than the recorded supervisor:
        // wait for them rather than signal a stranger.
        Liveness::Gone => None,
    };
    Ok(Some(Asked { record, pid, at }))
}

/// The second half of [`stop_live`]: waits until the supervisor asked has
/// released the lock, telling it to kill at once past the grace.
pub fn wait_stopped(session: &Session, asked: Asked, grace: Duration) -> anyhow::Result<()> {
    let dir = &session.dir;
    let Asked { record, pid, at } = asked;
    let escalate_at = at + grace + Duration::from_millis(500);
    let mut escalated = false;
    while held(dir) {
        if !escalated && Instant::now() >= escalate_at {
            escalated = true;
            if let Some(pid) = pid.filter(|&pid| {
                host::liveness(
                    record.boot_id.as_deref(),
                    record.pid_ns.as_deref(),
                    pid,
                    record.supervisor_start_time,
                ) == Liveness::Same
            }) {
                let _ = shared::stop::request(pid, Duration::ZERO);
            }
        }
        if Instant::now() >= escalate_at + FINISH_WAIT {
            match pid {
                Some(pid) => bail!("its supervisor (pid {pid}) has not finished"),
                None => bail!("whoever holds its lock has not finished"),
            }
        }
        sleep(TICK);
    }
    Ok(())
}

/// Stops a session whose record cannot be read while its lock is held:
/// without a record naming its supervisor, the processes holding the lock
/// file open are asked to stop (the supervisor stops its command; SIGKILL
/// after `grace`), then it waits until the lock is released.
pub fn stop_lock_holders(session: &Session, grace: Duration) -> anyhow::Result<()> {
    let dir = &session.dir;
    let started = Instant::now();
    let holders = lock::holders(dir).context("finding who holds its lock")?;
    if holders.is_empty() && held(dir) {
        bail!("its lock is held by a process this user cannot see");
    }
    for &pid in &holders {
        let _ = shared::stop::request(pid, grace);
    }
    let escalate_at = started + grace + Duration::from_millis(500);
    let mut escalated = false;
    while held(dir) {
        if !escalated && Instant::now() >= escalate_at {
            escalated = true;
            for pid in lock::holders(dir).unwrap_or_default() {
                let _ = shared::stop::request(pid, Duration::ZERO);
            }
        }
        if Instant::now() >= escalate_at + FINISH_WAIT {
            bail!("what holds its lock (pids {holders:?}) has not finished");
        }
        sleep(TICK);
    }
    Ok(())
}

/// The processes a lost session left running (none when it ran on another
/// boot; an error when it ran on another host, whose pids mean nothing).
pub fn leftovers(session: &Session) -> anyhow::Result<Vec<i32>> {
    let Ok(record) = &session.record else {
        return Ok(Vec::new());
    };
    // The boot id says "this machine" (a machine renamed since is still
    // this one); failing that, the host name.
    if !host::same_boot(record.boot_id.as_deref(), record.pid_ns.as_deref()) {
        if !record.host.is_empty() && record.host != host::hostname() {
            bail!(
                "it ran on host {}: its processes cannot be checked from here",
                record.host
            );
        }
        // This host, another boot: nothing of it still runs.
        if record.boot_id.is_some() {
            return Ok(Vec::new());
        }
    }
    let since = record
        .pid_start_time
        .or(record.supervisor_start_time)
        .unwrap_or(0);
    // The session's own token; records made before tokens existed name
    // their processes by id.
    let marker = match &record.token {
        Some(token) => format!("{}={token}", host::SESSION_VAR),
        None => format!("CODEX_BACKGROUND_ID={}", session.id),
    };
    Ok(host::session_processes(&marker, since))
}

/// Kills a lost session's leftovers: SIGTERM, then SIGKILL after `grace`
/// to those still there. Each round re-identifies the processes, so a pid
/// that was reused meanwhile is left alone.
pub fn kill_leftovers(session: &Session, grace: Duration) -> anyhow::Result<bool> {
    let first = leftovers(session)?;
    if first.is_empty() {
        return Ok(false);
    }
    signal(&first, Signal::SIGTERM);
    let deadline = Instant::now() + grace;
    loop {
        let left = leftovers(session)?;
        if left.is_empty() {
            return Ok(true);
        }
        if Instant::now() >= deadline {
            signal(&left, Signal::SIGKILL);
            sleep(TICK);
            if leftovers(session)?.is_empty() {
                return Ok(true);
            }
        }
        sleep(TICK);
    }
}

fn signal(pids: &[i32], sig: Signal) {
    for &pid in pids {
        let _ = kill(Pid::from_raw(pid), sig);
    }
}

fn held(dir: &Path) -> bool {
    lock::is_held(dir).unwrap_or(true)
}
