//! Processes as /proc shows them: environments, command lines, groups,
//! the processes of a session, and signals sent by pid.

use std::fs;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;
use shared::Status;

use super::*;

/// Every pid in /proc.
pub fn all_pids() -> Vec<i32> {
    fs::read_dir("/proc")
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// The environment of `pid` as `K=V` entries (empty for a zombie or a
/// process that is gone).
pub fn environ(pid: i32) -> Vec<Vec<u8>> {
    fs::read(format!("/proc/{pid}/environ"))
        .map(|b| {
            b.split(|&c| c == 0)
                .filter(|e| !e.is_empty())
                .map(<[u8]>::to_vec)
                .collect()
        })
        .unwrap_or_default()
}

/// Whether `pid`'s environment holds exactly the entry `kv` (`K=V`).
pub fn has_env(pid: i32, kv: &str) -> bool {
    environ(pid).iter().any(|e| e == kv.as_bytes())
}

/// The pids whose environment holds `kv`.
pub fn pids_with_env(kv: &str) -> Vec<i32> {
    all_pids().into_iter().filter(|&p| has_env(p, kv)).collect()
}

/// The raw command line of `pid` (NUL-separated; empty for a zombie).
pub fn cmdline_raw(pid: i32) -> Vec<u8> {
    fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default()
}

/// The command line of `pid` as arguments.
pub fn cmdline(pid: i32) -> Vec<String> {
    cmdline_raw(pid)
        .split(|&c| c == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect()
}

/// Fields 3 onwards of `/proc/PID/stat` (state, ppid, pgrp, session,
/// tty_nr, ...): index 0 is field 3.
pub fn stat(pid: i32) -> Option<Vec<String>> {
    let s = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &s[s.rfind(')')? + 1..];
    Some(after.split_whitespace().map(str::to_string).collect())
}

/// Whether `pid` exists and is not a zombie.
pub fn is_alive(pid: i32) -> bool {
    stat(pid).is_some_and(|f| f[0] != "Z" && f[0] != "X")
}

/// The process group of `pid`.
pub fn pgrp(pid: i32) -> Option<i32> {
    stat(pid)?.get(2)?.parse().ok()
}

/// The session (sid) of `pid`.
pub fn sid(pid: i32) -> Option<i32> {
    stat(pid)?.get(3)?.parse().ok()
}

/// The controlling terminal of `pid` (0: none).
pub fn tty_nr(pid: i32) -> Option<i64> {
    stat(pid)?.get(4)?.parse().ok()
}

// ---------------------------------------------------------------------
// The processes of a session, and signals.

/// The environment entry that marks the processes of session `id`.
pub fn bg_id(id: &str) -> String {
    format!("CODEX_BACKGROUND_ID={id}")
}

/// The processes whose environment says they belong to session `id`.
pub fn session_pids(id: &str) -> Vec<i32> {
    pids_with_env(&bg_id(id))
}

/// Live processes of session `id`.
pub fn live_session_pids(id: &str) -> Vec<i32> {
    session_pids(id)
        .into_iter()
        .filter(|&p| is_alive(p))
        .collect()
}

/// Live processes of session `id` running exactly `argv`.
pub fn procs_running(id: &str, argv: &[&str]) -> Vec<i32> {
    live_session_pids(id)
        .into_iter()
        .filter(|&p| cmdline(p) == argv)
        .collect()
}

/// Each pid and its command line, one a line, for messages.
pub fn describe(pids: &[i32]) -> String {
    pids.iter()
        .map(|&p| format!("{p}: {:?}", cmdline(p)))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The live members of process group `pgid`.
pub fn group_members(pgid: i32) -> Vec<i32> {
    all_pids()
        .into_iter()
        .filter(|&p| pgrp(p) == Some(pgid) && is_alive(p))
        .collect()
}

/// Sends `sig` to `pid`, never to this process or init, failing the test
/// when that is impossible.
pub fn signal(pid: i32, sig: Signal) {
    assert!(
        pid > 1 && pid != std::process::id() as i32,
        "refusing to signal {pid}"
    );
    kill(Pid::from_raw(pid), sig).unwrap_or_else(|e| panic!("kill -{sig} {pid}: {e}"));
}

/// Kills the supervisor of running session `id` with SIGKILL and waits
/// until the session reads as lost. Returns its record.
pub fn make_lost(t: &TestRoot, id: &str) -> Value {
    t.wait_status(id, |s| s == Status::Running, WAIT);
    let rec = t.record(id);
    signal(int(&rec, "supervisor_pid") as i32, Signal::SIGKILL);
    t.wait_status(id, |s| s == Status::Lost, WAIT);
    rec
}

/// Kills the orphaned command of lost session `id` by its process group,
/// after checking that every live member belongs to the session; returns
/// the members it found.
pub fn end_orphans(id: &str, pgid: i32) -> Vec<i32> {
    let members = group_members(pgid);
    for &p in &members {
        assert!(
            has_env(p, &bg_id(id)),
            "group {pgid} holds {p} ({:?}), not of session {id}",
            cmdline(p)
        );
    }
    if !members.is_empty() {
        assert!(pgid > 1);
        let _ = kill(Pid::from_raw(-pgid), Signal::SIGKILL);
    }
    members
}
