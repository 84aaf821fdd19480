//! The session's end, once the command and everything it started have
//! ended and their output is in: the final record, written durably, then
//! the news to the attached clients, and the socket removed. The lock is
//! released when the process exits, after this.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::time::Duration;

use nix::sys::wait::WaitStatus;

use shared::layout::Stream;
use shared::protocol::{Exit, Frame};

use crate::relay::Supervisor;
use crate::{state, work};

/// How long attached clients get to take the news of the end.
const CLIENT_PATIENCE: Duration = Duration::from_secs(1);
/// How much of the end of stderr is searched for its last line.
const STDERR_TAIL: u64 = 4096;

impl Supervisor {
    /// Writes the final record, durably, and ends the supervision.
    pub(crate) fn finish(mut self) -> shared::Result<()> {
        let exit = self.children.exit();
        if let Some(server) = &mut self.server {
            // The final record needs descriptors: whatever a flood of
            // connections took, the spare one is there for it.
            server.release_spare();
            // Input not delivered by now never will be: say so.
            let output = &self.output;
            server.tell_delivery(|mark| output.delivery(mark));
        }
        if let Some(w) = self.watcher.as_mut() {
            // The agent is not working once the session is over.
            w.finish();
            let tail = last_line(&Stream::Stderr.log_path(&self.dir));
            w.agent
                .end(tail.as_deref(), &ending(exit, self.record.timed_out));
        }
        let agent = self
            .watcher
            .as_ref()
            .map(|w| &w.agent)
            .or(self.heard.as_ref().and_then(|h| h.agent.as_ref()));
        if let Some(agent) = agent {
            self.record.agent = Some(agent.clone());
        }
        // The work on its branch before the final record, which says so.
        work::commit(&mut self.record, &self.dir);
        let agent = self
            .watcher
            .as_ref()
            .map(|w| &w.agent)
            .or(self.heard.as_ref().and_then(|h| h.agent.as_ref()));
        let written = state::exited(&mut self.record, &self.dir, exit, &self.logs, agent);
        // Hooks start only now, and never hold anything up (see hooks.rs).
        if let (Ok(()), Some(hooks)) = (&written, &mut self.hooks) {
            hooks.on_record(&self.record);
            hooks.on_exit(&self.record);
        }
        // Clients hear of the end only once it is on disk.
        if let Some(server) = self.server.take() {
            let exit = Exit {
                code: self.record.exit_code.unwrap_or(125),
                signal: self.record.signal.clone(),
            };
            server.close(&Frame::Exit(exit), CLIENT_PATIENCE);
        }
        written
    }
}

/// How the command ended, for an agent that never said why it stopped.
fn ending(exit: Option<WaitStatus>, timed_out: bool) -> String {
    let how = match exit {
        _ if timed_out => "timed out".to_string(),
        Some(WaitStatus::Exited(_, code)) => format!("exited with code {code}"),
        Some(WaitStatus::Signaled(_, sig, _)) => format!("was killed by {}", sig.as_str()),
        _ => "ended".to_string(),
    };
    format!("codex {how} without completing its turn")
}

/// The last non-empty line of the file at `path` (within its last few
/// KiB), its control characters dropped; `None` when there is none.
fn last_line(path: &Path) -> Option<String> {
    let mut file = std::fs::File::open(path).ok()?;
    let len = file.metadata().ok()?.len();
    file.seek(SeekFrom::Start(len.saturating_sub(STDERR_TAIL)))
        .ok()?;
    let mut tail = Vec::new();
    file.take(STDERR_TAIL).read_to_end(&mut tail).ok()?;
    let text = String::from_utf8_lossy(&tail);
    text.lines()
        .map(|l| l.chars().filter(|c| !c.is_control()).collect::<String>())
        .map(|l| l.trim().to_string())
        .rfind(|l| !l.is_empty())
}
