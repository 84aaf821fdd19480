//! Finding and signalling everything the command started: its process
//! group, and every descendant of the supervisor, including those that
//! called setsid or double-forked (as a child subreaper, the supervisor is
//! the ancestor of all of them). Signalling only: reaping is the relay's,
//! on SIGCHLD.
//!
//! A session started from inside this one (a script or an agent running
//! codex-spawn) has its own supervisor, which lands below this one as an
//! orphan of codex-spawn. It carries its own session token: it and
//! everything below it are another session's, never walked into, never
//! signalled.

use std::collections::HashMap;
use std::fs;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// The pids of every living descendant of process `root` that belongs to
/// the session whose token is `token`, from /proc: walking down the tree
/// through each thread's `children` list, which costs what the tree holds
/// (a thousand sessions stopping at once each walk their own), else, on
/// kernels without those lists, from the parent of every process on the
/// machine. A process carrying another session's token is left out with
/// everything below it.
pub fn of(root: Pid, token: Option<&str>) -> Vec<Pid> {
    let me = nix::unistd::getpid().as_raw();
    if fs::metadata(format!("/proc/{me}/task/{me}/children")).is_err() {
        return by_scan(root, token);
    }
    let mut found = Vec::new();
    let mut buf = Vec::new();
    let mut queue = vec![root.as_raw()];
    while let Some(p) = queue.pop() {
        for c in children(p, &mut buf) {
            if !another_session(c, token, &mut buf) {
                found.push(Pid::from_raw(c));
                queue.push(c);
            }
        }
    }
    found
}

/// Whether process `pid` carries a session token other than `token` in
/// its environment: another session's supervisor or its command. (A
/// process whose environment cannot be read, a zombie, counts as ours.)
fn another_session(pid: i32, token: Option<&str>, buf: &mut Vec<u8>) -> bool {
    let Some(token) = token else { return false };
    if read_whole(std::path::Path::new(&format!("/proc/{pid}/environ")), buf).is_err() {
        return false;
    }
    let prefix = format!("{}=", shared::host::SESSION_VAR);
    buf.split(|&b| b == 0)
        .find_map(|var| var.strip_prefix(prefix.as_bytes()))
        .is_some_and(|theirs| theirs != token.as_bytes())
}

/// The children of every thread of `pid` (none once it is gone), read
/// through `buf` (one buffer for the whole walk).
fn children(pid: i32, buf: &mut Vec<u8>) -> Vec<i32> {
    let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for task in tasks.flatten() {
        if read_whole(&task.path().join("children"), buf).is_ok() {
            let list = String::from_utf8_lossy(buf);
            found.extend(
                list.split_whitespace()
                    .filter_map(|c| c.parse::<i32>().ok()),
            );
        }
    }
    found
}

/// Reads a /proc file in one `read` where it fits: the kernel builds a
/// `children` list afresh at each read, resuming by position, so a list
/// read in small pieces can skip a child when an earlier one is reaped
/// between two reads.
fn read_whole(path: &std::path::Path, buf: &mut Vec<u8>) -> std::io::Result<()> {
    use std::io::Read;
    let mut file = fs::File::open(path)?;
    buf.clear();
    buf.resize(64 * 1024, 0);
    let mut len = 0;
    loop {
        let n = file.read(&mut buf[len..])?;
        len += n;
        if n == 0 || len < buf.len() {
            break;
        }
        buf.resize(buf.len() * 2, 0);
    }
    buf.truncate(len);
    Ok(())
}

/// [`of`] from the parent of every process in /proc.
fn by_scan(root: Pid, token: Option<&str>) -> Vec<Pid> {
    let mut children: HashMap<i32, Vec<i32>> = HashMap::new();
    for pid in shared::host::pids() {
        if let Some(ppid) = shared::host::parent_pid(pid) {
            children.entry(ppid).or_default().push(pid);
        }
    }
    let mut found = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut buf = Vec::new();
    let mut queue = vec![root.as_raw()];
    while let Some(p) = queue.pop() {
        for &c in children.get(&p).map(Vec::as_slice).unwrap_or(&[]) {
            // A pid reused while /proc was read could close a loop.
            if seen.insert(c) && !another_session(c, token, &mut buf) {
                found.push(Pid::from_raw(c));
                queue.push(c);
            }
        }
    }
    found
}

/// Sends `sig` to process group `pgid`, when given, and to every descendant
/// of the supervisor that belongs to the session `token`. Processes
/// already gone are no error.
///
/// Pass the group only while its leader (the command) is not yet reaped:
/// until then its id cannot be reused by another group. (Another session's
/// supervisor is never in it: it starts a session of its own.)
pub fn signal_all(pgid: Option<Pid>, sig: Signal, token: Option<&str>) {
    if let Some(pgid) = pgid {
        let _ = kill(Pid::from_raw(-pgid.as_raw()), sig);
    }
    for pid in of(nix::unistd::getpid(), token) {
        let _ = kill(pid, sig);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;
    use std::process::Command;

    #[test]
    fn the_tree_walk_reads_a_list_longer_than_its_first_buffer_whole() {
        // A children list past 64 KiB (some ten thousand children) stands
        // in for a file of that size: read whole, not cut at the buffer.
        let long = std::env::temp_dir().join(format!("cx-read-whole-{}", std::process::id()));
        let text: Vec<u8> = (0..40_000u32)
            .flat_map(|i| format!("{} ", 100_000 + i).into_bytes())
            .collect();
        assert!(text.len() > 3 * 64 * 1024);
        fs::write(&long, &text).unwrap();
        let mut buf = Vec::new();
        let read = read_whole(&long, &mut buf);
        let _ = fs::remove_file(&long);
        read.unwrap();
        assert_eq!(buf.len(), text.len());
        assert!(buf == text, "the list read is not the file");
        // And one that fits leaves nothing of the longer one behind.
        let short = long.with_extension("short");
        fs::write(&short, b"12 34 56").unwrap();
        let read = read_whole(&short, &mut buf);
        let _ = fs::remove_file(&short);
        read.unwrap();
        assert_eq!(buf, b"12 34 56");
    }

    #[test]
    fn the_tree_walk_and_the_scan_leave_out_another_sessions_processes() {
        let var = shared::host::SESSION_VAR;
        let start = |token: &str| {
            Command::new("sleep")
                .arg("30")
                .env(var, token)
                .spawn()
                .unwrap()
        };
        let (mut mine, mut theirs) = (start("t-mine"), start("t-theirs"));
        // spawn returns once exec has begun, before the new image's
        // environment can be read: wait for both to be sleep proper.
        for c in [&mine, &theirs] {
            let cmdline = format!("/proc/{}/cmdline", c.id());
            let mut tries = 0;
            while fs::read(&cmdline).is_ok_and(|b| b.is_empty()) && tries < 500 {
                std::thread::sleep(std::time::Duration::from_millis(10));
                tries += 1;
            }
        }
        let me = nix::unistd::getpid();
        let (mine_pid, theirs_pid) = (
            Pid::from_raw(mine.id() as i32),
            Pid::from_raw(theirs.id() as i32),
        );
        let walked = of(me, Some("t-mine"));
        let scanned = by_scan(me, Some("t-mine"));
        let unowned = of(me, None);
        for c in [&mut mine, &mut theirs] {
            let _ = c.kill();
            let _ = c.wait();
        }
        for (how, found) in [("walk", &walked), ("scan", &scanned)] {
            assert!(found.contains(&mine_pid), "{how}: ours missing");
            assert!(
                !found.contains(&theirs_pid),
                "{how}: another session's taken"
            );
        }
        assert!(unowned.contains(&mine_pid) && unowned.contains(&theirs_pid));
    }

    #[test]
    fn the_tree_walk_finds_what_the_full_scan_finds() {
        // A shell with a child, one that left its session, and a
        // grandchild (under a subshell that waits for it).
        let mut sh = Command::new("sh")
            .args(["-c", "sleep 30 & setsid sleep 30 & (sleep 30; :) & wait"])
            .spawn()
            .unwrap();
        let root = Pid::from_raw(sh.id() as i32);
        let mut walked = BTreeSet::new();
        for _ in 0..200 {
            walked = of(root, None).into_iter().collect::<BTreeSet<_>>();
            if walked.len() >= 4 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let scanned: BTreeSet<Pid> = by_scan(root, None).into_iter().collect();
        for pid in walked.iter().chain(&scanned).chain([&root]) {
            let _ = kill(*pid, Signal::SIGKILL);
        }
        let _ = sh.wait();
        assert_eq!(walked.len(), 4, "{walked:?}");
        assert_eq!(walked, scanned);
    }
}
