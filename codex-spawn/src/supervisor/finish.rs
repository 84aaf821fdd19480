//! The session's end, once the command and everything it started have
//! ended and their output is in: the final record, written durably, then
//! the news to the attached clients, and the socket removed. The lock is
//! released when the process exits, after this.

use std::time::Duration;

use shared::protocol::{Exit, Frame};

use crate::relay::Supervisor;
use crate::{state, work};

/// How long attached clients get to take the news of the end.
const CLIENT_PATIENCE: Duration = Duration::from_secs(1);

impl Supervisor {
    /// Writes the final record, durably, and ends the supervision.
    pub(crate) fn finish(mut self) -> shared::Result<()> {
        if let Some(w) = &self.watcher {
            self.record.agent = Some(w.agent.clone());
        }
        // The work on its branch before the final record, which says so.
        work::commit(&mut self.record, &self.dir);
        let agent = self.watcher.as_ref().map(|w| &w.agent);
        let exit = self.children.exit();
        let written = state::exited(&mut self.record, &self.dir, exit, &self.logs, agent);
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
