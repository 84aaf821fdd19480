//! Finding and signalling everything the command started: its process
//! group, and every descendant of the supervisor, including those that
//! called setsid or double-forked (as a child subreaper, the supervisor is
//! the ancestor of all of them).

use std::collections::HashMap;
use std::fs;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// The pids of every living descendant of process `root`, from /proc.
pub fn descendants(root: Pid) -> Vec<Pid> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut children: HashMap<i32, Vec<i32>> = HashMap::new();
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        if let Some(ppid) = shared::host::parent_pid(pid) {
            children.entry(ppid).or_default().push(pid);
        }
    }
    let mut found = Vec::new();
    let mut queue = vec![root.as_raw()];
    while let Some(p) = queue.pop() {
        for &c in children.get(&p).map(Vec::as_slice).unwrap_or(&[]) {
            found.push(Pid::from_raw(c));
            queue.push(c);
        }
    }
    found
}

/// Sends `sig` to process group `pgid`, when given, and to every descendant
/// of the supervisor. Processes already gone are no error.
///
/// Pass the group only while its leader (the command) is not yet reaped:
/// until then its id cannot be reused by another group.
pub fn signal_all(pgid: Option<Pid>, sig: Signal) {
    if let Some(pgid) = pgid {
        let _ = kill(Pid::from_raw(-pgid.as_raw()), sig);
    }
    for pid in descendants(nix::unistd::getpid()) {
        let _ = kill(pid, sig);
    }
}
