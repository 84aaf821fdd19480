//! The session's end, once the command and everything it started have
//! ended and their output is in: the final record, written durably, then
//! the news to the attached clients, and the socket removed. The lock is
//! released when the process exits, after this.

use std::time::Duration;

use shared::protocol::{Exit, Frame};

use crate::relay::Supervisor;
use crate::state;

/// How long attached clients get to take the news of the end.
const CLIENT_PATIENCE: Duration = Duration::from_secs(1);

impl Supervisor {
    /// Writes the final record, durably, and ends the supervision.
    pub(crate) fn finish(mut self) -> shared::Result<()> {
        let agent = self
            .watcher
            .as_ref()
            .map(|w| &w.agent)
            .or(self.heard.as_ref().and_then(|h| h.agent.as_ref()));
        let exit = self.children.exit();
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
