//! The status a reader derives from a record and the lock.
//!
//! | record says | lock held | status |
//! |---|---|---|
//! | starting | yes | `starting` |
//! | starting | no | `failed` (codex-spawn or the supervisor died mid-start) |
//! | queued | yes | `queued` (waiting for its dependencies or a slot) |
//! | queued | no | `lost` |
//! | running | yes | `running` |
//! | running | no | `lost` (the supervisor was killed, or the machine rebooted) |
//! | exited | – | `exited` |
//! | failed | – | `failed` |
//! | unreadable | – | `corrupt` |
//!
//! A record made on this host during another boot is `lost` without looking
//! at the lock: nothing from a previous boot still runs.

use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::host;
use crate::lock;
use crate::record::{Record, State};

/// What a session is doing, as users see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Waiting for its dependencies or a slot in its queue.
    Queued,
    /// Published, the command not yet exec'd, the supervisor alive.
    Starting,
    /// The supervisor holds the lock; the command runs.
    Running,
    /// The command ended.
    Exited,
    /// The command never ran.
    Failed,
    /// The record says starting or running but its supervisor is gone.
    Lost,
    /// The record is missing or unreadable.
    Corrupt,
}

impl Status {
    /// Every status, in the order they are documented.
    pub const ALL: [Status; 7] = [
        Status::Queued,
        Status::Starting,
        Status::Running,
        Status::Exited,
        Status::Failed,
        Status::Lost,
        Status::Corrupt,
    ];

    /// The lowercase name (`"running"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Queued => "queued",
            Status::Starting => "starting",
            Status::Running => "running",
            Status::Exited => "exited",
            Status::Failed => "failed",
            Status::Lost => "lost",
            Status::Corrupt => "corrupt",
        }
    }

    /// Parses a lowercase name.
    pub fn parse(s: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// Whether the session is over (exited, failed, lost or corrupt).
    pub fn is_over(self) -> bool {
        !matches!(self, Status::Queued | Status::Starting | Status::Running)
    }

    /// Derives the status of the session in `dir` from its record, probing
    /// the lock only when the record claims the session is alive.
    pub fn derive(record: &Record, dir: &Path) -> Status {
        let alive = || {
            let other_boot = record.host == host::hostname()
                && record.boot_id.is_some()
                && record.boot_id != host::boot_id();
            // An unreadable lock is taken as held: better "running" than
            // a wrong "lost" that invites a kill.
            !other_boot && lock::is_held(dir).unwrap_or(true)
        };
        match record.state {
            State::Queued if alive() => Status::Queued,
            State::Queued => Status::Lost,
            State::Starting if alive() => Status::Starting,
            State::Starting => Status::Failed,
            State::Running if alive() => Status::Running,
            State::Running => Status::Lost,
            State::Exited => Status::Exited,
            State::Failed => Status::Failed,
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lock::Lock;
    use crate::record::tests::sample;
    use crate::testdir::TempDir;

    fn derive(state: State, boot: Option<String>, locked: bool) -> Status {
        let dir = TempDir::new("status");
        let lock = locked.then(|| Lock::create(dir.path()).unwrap());
        let mut r = sample();
        r.state = state;
        r.host = host::hostname();
        r.boot_id = boot;
        let s = Status::derive(&r, dir.path());
        drop(lock);
        s
    }

    #[test]
    fn table_of_states() {
        let boot = host::boot_id();
        assert_eq!(
            derive(State::Starting, boot.clone(), true),
            Status::Starting
        );
        assert_eq!(derive(State::Starting, boot.clone(), false), Status::Failed);
        assert_eq!(derive(State::Running, boot.clone(), true), Status::Running);
        assert_eq!(derive(State::Running, boot.clone(), false), Status::Lost);
        assert_eq!(derive(State::Exited, boot.clone(), true), Status::Exited);
        assert_eq!(derive(State::Failed, boot, false), Status::Failed);
    }

    #[test]
    fn a_previous_boot_never_reads_as_running() {
        assert_eq!(
            derive(State::Running, Some("another-boot".into()), true),
            Status::Lost
        );
    }

    #[test]
    fn a_queued_session_is_queued_while_its_supervisor_waits_else_lost() {
        let boot = host::boot_id();
        assert_eq!(derive(State::Queued, boot.clone(), true), Status::Queued);
        assert_eq!(derive(State::Queued, boot, false), Status::Lost);
    }

    #[test]
    fn over_means_exited_failed_lost_or_corrupt() {
        let over: Vec<Status> = Status::ALL.into_iter().filter(|s| s.is_over()).collect();
        assert_eq!(
            over,
            [
                Status::Exited,
                Status::Failed,
                Status::Lost,
                Status::Corrupt
            ]
        );
    }

    #[test]
    fn names_round_trip() {
        for s in Status::ALL {
            assert_eq!(Status::parse(s.as_str()), Some(s));
            assert_eq!(s.to_string(), s.as_str(), "Display");
        }
        assert_eq!(Status::parse("zombie"), None);
    }
}
