//! What the supervisor writes into the session's record: that the command
//! runs (with the pids and start times that identify it), the agent summary
//! while it runs, and how it ended. Each record is replaced atomically;
//! the running ones keep room on disk so that the final one can be written
//! in place when the disk is full, and the final one is fsync'd.

use std::path::Path;

use nix::sys::wait::WaitStatus;
use nix::unistd::Pid;

use shared::agent::Agent;
use shared::layout::Stream;
use shared::record::{Durability, Record, State};
use shared::{host, Timestamp};

use crate::logs::Logs;

/// Room kept in the running record so the final one can be written in
/// place when the disk is full.
const RECORD_RESERVE: usize = 1024;
/// How a record is written while the command runs.
const WHILE_RUNNING: Durability = Durability {
    sync: false,
    reserve: RECORD_RESERVE,
};

/// Records that the session waits (its dependencies, a queue slot), under
/// this supervisor, which a stop request reaches meanwhile.
pub fn queued(record: &mut Record, dir: &Path) -> shared::Result<()> {
    let me = nix::unistd::getpid().as_raw();
    record.state = State::Queued;
    record.supervisor_pid = Some(me);
    record.supervisor_start_time = host::process_start_time(me);
    record.queued_at = Some(Timestamp::now());
    record.write(dir, WHILE_RUNNING)
}

/// Records that the session ended without running its command.
pub fn never_ran(dir: &Path, error: String) {
    if let Ok(mut r) = Record::read(dir) {
        r.state = State::Failed;
        r.error = Some(error);
        r.ended_at = Some(Timestamp::now());
        let _ = r.write(
            dir,
            Durability {
                sync: true,
                reserve: 0,
            },
        );
    }
}

/// Records that the command `pid` runs, under this supervisor.
pub fn running(record: &mut Record, dir: &Path, pid: Pid) -> shared::Result<()> {
    let me = nix::unistd::getpid().as_raw();
    record.state = State::Running;
    record.supervisor_pid = Some(me);
    record.supervisor_start_time = host::process_start_time(me);
    record.pid = Some(pid.as_raw());
    record.pid_start_time = host::process_start_time(pid.as_raw());
    record.pgid = Some(pid.as_raw());
    record.started_at = Some(Timestamp::now());
    record.write(dir, WHILE_RUNNING)
}

/// Rewrites the running record; whether it was written.
pub fn rewrite(record: &Record, dir: &Path) -> bool {
    record.write(dir, WHILE_RUNNING).is_ok()
}

/// Records the agent summary so far (a failure waits for the next write).
pub fn agent(record: &mut Record, dir: &Path, agent: &Agent) {
    record.agent = Some(agent.clone());
    let _ = record.write(dir, WHILE_RUNNING);
}

/// Records a tty session's window size now (a failure waits for the next
/// write).
pub fn window(record: &mut Record, dir: &Path, size: [u16; 2]) {
    record.window = Some(size);
    let _ = record.write(dir, WHILE_RUNNING);
}

/// Records how the command ended (`exit`, `None` when its status was
/// lost), what was logged and dropped, and the last agent summary; durably.
pub fn exited(
    record: &mut Record,
    dir: &Path,
    exit: Option<WaitStatus>,
    logs: &Logs,
    agent: Option<&Agent>,
) -> shared::Result<()> {
    record.state = State::Exited;
    record.ended_at = Some(Timestamp::now());
    match exit {
        Some(WaitStatus::Exited(_, code)) => record.exit_code = Some(code),
        Some(WaitStatus::Signaled(_, sig, _)) => {
            record.exit_code = Some(128 + sig as i32);
            record.signal = Some(sig.as_str().to_string());
        }
        _ => record.error = Some("the command's exit status was lost".into()),
    }
    record.stdout_bytes = logs.logged(Stream::Stdout);
    record.stderr_bytes = logs.logged(Stream::Stderr);
    record.dropped_bytes = logs.dropped;
    if let Some(agent) = agent {
        record.agent = Some(agent.clone());
    }
    record.write(
        dir,
        Durability {
            sync: true,
            reserve: 0,
        },
    )
}
