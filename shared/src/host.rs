//! Facts about this machine and its processes that make a recorded pid
//! trustworthy: the host name, the boot id, and a process's start time.
//!
//! A pid means something only on the host and the boot that recorded it,
//! and only while the process with that pid has the recorded start time.

use std::fs;

/// This boot's id (`/proc/sys/kernel/random/boot_id`), or `None` where the
/// kernel does not say.
pub fn boot_id() -> Option<String> {
    // Read once per process: it cannot change while the process lives,
    // and a listing asks for every live session.
    static BOOT_ID: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    BOOT_ID
        .get_or_init(|| {
            fs::read_to_string("/proc/sys/kernel/random/boot_id")
                .ok()
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
        })
        .clone()
}

/// The variable that carries a session's token in the environment of its
/// supervisor, its command and everything the command starts (see
/// [`new_token`]).
pub const SESSION_VAR: &str = "CODEX_BACKGROUND_SESSION";

/// A fresh session token: 128 random bits in hex. It names one session
/// instance, unlike its id (the same id can exist in another root, or be
/// reused after a removal): the processes of a session are those that
/// carry its token in their environment.
pub fn new_token() -> String {
    use std::io::Read;
    let mut bytes = [0u8; 16];
    let from_os = fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes));
    if from_os.is_err() {
        let (a, b) = (crate::id::random_u64(), crate::id::random_u64());
        bytes[..8].copy_from_slice(&a.to_le_bytes());
        bytes[8..].copy_from_slice(&b.to_le_bytes());
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// This process's pid namespace (`pid:[4026531836]`), which tells two
/// containers that share a kernel (and so a boot id) apart.
pub fn pid_namespace() -> Option<String> {
    fs::read_link("/proc/self/ns/pid")
        .ok()
        .and_then(|p| p.into_os_string().into_string().ok())
}

/// Whether a record made on `host`, during boot `boot`, in pid namespace
/// `pid_ns` (when recorded) was made on this machine and boot, where its
/// pids mean what they meant then. The boot id decides, not the host name:
/// a machine renamed since is still this machine, and two machines never
/// share a boot id. Without a boot id, nothing can be trusted.
pub fn same_boot(boot: Option<&str>, pid_ns: Option<&str>) -> bool {
    boot.is_some()
        && boot.map(str::to_string) == boot_id()
        && (pid_ns.is_none() || pid_ns.map(str::to_string) == pid_namespace())
}

/// This machine's host name.
pub fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_default()
}

/// The start time of process `pid`, in clock ticks since boot (field 22 of
/// `/proc/PID/stat`), or `None` when no such process exists.
pub fn process_start_time(pid: i32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_start_time(&stat)
}

/// The parent of process `pid` (field 4 of `/proc/PID/stat`), or `None`
/// when no such process exists.
pub fn parent_pid(pid: i32) -> Option<i32> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat_field(&stat, 4)?.parse().ok()
}

/// Field 22 of a `/proc/PID/stat` line.
fn parse_start_time(stat: &str) -> Option<u64> {
    stat_field(stat, 22)?.parse().ok()
}

/// Field `n` (1-based, `n` >= 3) of a `/proc/PID/stat` line. The command
/// name (field 2) may hold spaces and parentheses, so fields are counted
/// after its last `)`.
fn stat_field(stat: &str, n: usize) -> Option<&str> {
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_ascii_whitespace().nth(n.checked_sub(3)?)
}

/// Where a recorded process is, as seen from this host and boot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liveness {
    /// The process with this pid is the one recorded (same start time).
    Same,
    /// No process has this pid, or another process reuses it.
    Gone,
    /// The record comes from another host or boot: its pids mean nothing here.
    Foreign,
}

/// Whether the process recorded as (`pid`, `start_time`) during `boot` (in
/// pid namespace `pid_ns`, when recorded) is still that process. Never
/// signals anything.
pub fn liveness(
    boot: Option<&str>,
    pid_ns: Option<&str>,
    pid: i32,
    start_time: Option<u64>,
) -> Liveness {
    if !same_boot(boot, pid_ns) {
        return Liveness::Foreign;
    }
    match (process_start_time(pid), start_time) {
        (Some(now), Some(then)) if now == then => Liveness::Same,
        _ => Liveness::Gone,
    }
}

/// Every process id in /proc (none when it cannot be listed).
pub fn pids() -> Vec<i32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .collect()
}

/// The processes of a session still alive on this host: those whose
/// environment carries `marker` (`CODEX_BACKGROUND_SESSION=<token>`: every
/// process the session started inherits it, setsid or not, and a session
/// started inside it carries its own) and that started no earlier than
/// `since` (the command's start time, in clock ticks since boot), so a
/// reused pid is never taken for one of them.
pub fn session_processes(marker: &str, since: u64) -> Vec<i32> {
    let me = std::process::id() as i32;
    pids()
        .into_iter()
        .filter(|&pid| pid != me)
        .filter(|&pid| {
            fs::read(format!("/proc/{pid}/environ"))
                .is_ok_and(|env| env.split(|&b| b == 0).any(|v| v == marker.as_bytes()))
        })
        .filter(|&pid| process_start_time(pid).is_some_and(|t| t >= since))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_time_of_self_is_stable() {
        let me = std::process::id() as i32;
        let t = process_start_time(me).expect("own start time");
        assert_eq!(process_start_time(me), Some(t));
        let boot = boot_id();
        let ns = pid_namespace();
        assert_eq!(
            liveness(boot.as_deref(), ns.as_deref(), me, Some(t)),
            Liveness::Same
        );
        assert_eq!(liveness(boot.as_deref(), None, me, Some(t)), Liveness::Same);
        assert_eq!(
            liveness(boot.as_deref(), ns.as_deref(), me, Some(t + 1)),
            Liveness::Gone
        );
        assert_eq!(
            liveness(boot.as_deref(), Some("pid:[1]"), me, Some(t)),
            Liveness::Foreign
        );
        assert_eq!(
            liveness(Some("other-boot"), ns.as_deref(), me, Some(t)),
            Liveness::Foreign
        );
    }

    #[test]
    fn parses_names_with_parens_and_spaces() {
        let line =
            "42 (a) b (c) S 1 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10 1844";
        assert_eq!(parse_start_time(line), Some(987_654));
        assert_eq!(parse_start_time("garbage"), None);
    }

    #[test]
    fn boot_id_and_hostname_are_the_kernels() {
        let boot = fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap();
        assert_eq!(boot_id().as_deref(), Some(boot.trim()));
        assert_eq!(boot.trim().len(), 36);
        let name = fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
        assert_eq!(hostname(), name.trim());
    }

    #[test]
    fn a_child_is_found_by_its_session_token_and_start_time() {
        let token = format!("unit-{}", std::process::id());
        let id = format!("CODEX_BACKGROUND_SESSION={token}");
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .env("CODEX_BACKGROUND_SESSION", &token)
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        let me = std::process::id() as i32;
        let start = process_start_time(pid).expect("the child's start time");
        assert!(start >= process_start_time(me).unwrap() && start > 1);
        assert_eq!(parent_pid(pid), Some(me));
        assert_eq!(parent_pid(me), Some(nix::unistd::getppid().as_raw()));
        // The parent may run on before the kernel has set up the child's
        // environment (vfork's parent resumes mid-exec): look again.
        let mut found = session_processes(&id, start);
        for _ in 0..500 {
            if !found.is_empty() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
            found = session_processes(&id, start);
        }
        let later = session_processes(&id, start + 1);
        let other = session_processes(&format!("{id}-other"), 0);
        let _ = child.kill();
        let _ = child.wait();
        assert_eq!(found, [pid]);
        assert!(later.is_empty(), "{later:?}");
        assert!(other.is_empty(), "{other:?}");
    }
}
