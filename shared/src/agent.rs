//! What an exec session's agent is doing, summed up from the JSONL event
//! stream `codex exec --json` writes to stdout: the thread, the turns, the
//! tokens, the last message, whether it is working, done or failed. For
//! an interactive agent (a repl, or a `-t` program that reports its
//! state), the same summary holds what the program said on its terminal
//! (see [`crate::agent::Agent::observe_terminal`]): working, idle,
//! blocked (with what on), done or failed.
//!
//! The supervisor keeps this summary in the record, so listing thousands of
//! sessions never reads a log. Unknown events and lines that are not JSON
//! are ignored.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// How long a message or error the summary keeps, in characters.
const MAX_TEXT: usize = 1000;

/// The agent's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum AgentState {
    /// A turn is under way (or about to be). Never the state of a session
    /// that has ended.
    #[default]
    Working,
    /// The last turn completed.
    Done,
    /// The last turn failed (`turn.failed`), or the run ended without
    /// completing it (transient errors codex recovers from are not
    /// failures); for a terminal program, its `state=error`.
    Failed,
    /// Waiting for the user's next prompt (interactive agents).
    Idle,
    /// Waiting on the user: a permission or a question (interactive
    /// agents); see `blocked_on` and `blocked_message`.
    Blocked,
}

impl AgentState {
    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            AgentState::Working => "working",
            AgentState::Done => "done",
            AgentState::Failed => "failed",
            AgentState::Idle => "idle",
            AgentState::Blocked => "blocked",
        }
    }

    /// Every state, in the order the README lists them.
    pub const ALL: [AgentState; 5] = [
        AgentState::Working,
        AgentState::Idle,
        AgentState::Blocked,
        AgentState::Done,
        AgentState::Failed,
    ];

    /// The state named `s`; `error` is another name for `failed`.
    pub fn parse(s: &str) -> Option<AgentState> {
        match s {
            "error" => Some(AgentState::Failed),
            _ => AgentState::ALL.into_iter().find(|st| st.as_str() == s),
        }
    }
}

/// The summary of an agent's event stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Agent {
    /// The thread (conversation) id, once codex has said it.
    #[serde(default)]
    pub thread_id: Option<String>,
    /// Turns ended (completed or failed).
    #[serde(default)]
    pub turns: u32,
    /// Input tokens of the thread so far. codex's `turn.completed.usage`
    /// is the thread's running total (codex 0.169: a resumed thread counts
    /// its earlier turns too), so the summary keeps the last one reported.
    #[serde(default)]
    pub input_tokens: u64,
    /// Of those, served from the cache.
    #[serde(default)]
    pub cached_input_tokens: u64,
    /// Output tokens of the thread so far.
    #[serde(default)]
    pub output_tokens: u64,
    /// Of those, reasoning tokens, when codex reports them.
    #[serde(default)]
    pub reasoning_output_tokens: u64,
    /// The last message the agent wrote (its start).
    #[serde(default)]
    pub last_message: Option<String>,
    /// Working, done or failed.
    #[serde(default)]
    pub state: AgentState,
    /// The last error codex reported.
    #[serde(default)]
    pub last_error: Option<String>,
    /// Blocked: on what, as the program said (`permission`, `question`).
    #[serde(default)]
    pub blocked_on: Option<String>,
    /// Blocked: the program's message (a question, the command to allow).
    #[serde(default)]
    pub blocked_message: Option<String>,
    /// Interactive agents: the program that reported the state, as it
    /// named itself (`codex`).
    #[serde(default)]
    pub app: Option<String>,
    /// When the state last changed (interactive agents).
    #[serde(default)]
    pub state_since: Option<crate::Timestamp>,
    /// Whether the program has reported its state with `OSC 7501` (kept
    /// by the supervisor only; see [`crate::termstate`]).
    #[serde(skip)]
    pub speaks_state: bool,
}

/// How much an event changed the summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Change {
    /// Nothing that the summary keeps.
    None,
    /// Something worth writing soon.
    Some,
    /// A turn ended: worth writing now.
    TurnEnd,
}

impl Agent {
    /// Takes one line of the event stream into account.
    pub fn observe_line(&mut self, line: &[u8]) -> Change {
        match serde_json::from_slice::<Value>(line) {
            Ok(event) => self.observe(&event),
            Err(_) => Change::None,
        }
    }

    /// Takes one event into account.
    pub fn observe(&mut self, event: &Value) -> Change {
        let str_at = |v: &Value, key: &str| v.get(key).and_then(Value::as_str).map(clip);
        match event.get("type").and_then(Value::as_str) {
            Some("thread.started") => {
                self.thread_id = str_at(event, "thread_id");
                Change::Some
            }
            Some("turn.started") => {
                self.state = AgentState::Working;
                Change::Some
            }
            Some("turn.completed") => {
                self.turns += 1;
                self.state = AgentState::Done;
                if let Some(usage) = event.get("usage") {
                    // The thread's running total, not this turn's.
                    let n = |k: &str, was: u64| usage.get(k).and_then(Value::as_u64).unwrap_or(was);
                    self.input_tokens = n("input_tokens", self.input_tokens);
                    self.cached_input_tokens = n("cached_input_tokens", self.cached_input_tokens);
                    self.output_tokens = n("output_tokens", self.output_tokens);
                    self.reasoning_output_tokens =
                        n("reasoning_output_tokens", self.reasoning_output_tokens);
                }
                Change::TurnEnd
            }
            Some("turn.failed") => {
                self.turns += 1;
                self.state = AgentState::Failed;
                self.last_error = event
                    .get("error")
                    .and_then(|e| str_at(e, "message"))
                    .or(self.last_error.take());
                Change::TurnEnd
            }
            // Transient trouble ("Reconnecting... 1/5", a config warning)
            // as well as fatal: only `turn.failed`, or the end of the run
            // without a completed turn, makes the agent failed.
            Some("error") => {
                self.last_error = str_at(event, "message").or(self.last_error.take());
                Change::Some
            }
            Some("item.completed") => {
                let item = event.get("item").unwrap_or(&Value::Null);
                match item.get("type").and_then(Value::as_str) {
                    Some("agent_message") => {
                        self.last_message = str_at(item, "text");
                        Change::Some
                    }
                    Some("error") => {
                        self.last_error = str_at(item, "message");
                        Change::Some
                    }
                    _ => Change::None,
                }
            }
            _ => Change::None,
        }
    }
}

impl Agent {
    /// The session has ended: a run that did not end its last turn (no
    /// turn at all, or one started and never completed: codex refused its
    /// arguments, found no git repository, was killed...) has failed. Its
    /// last error stays what codex said, else `stderr_tail` (codex's last
    /// line on stderr), else `ending` (how the command ended).
    pub fn end(&mut self, stderr_tail: Option<&str>, ending: &str) {
        if self.state != AgentState::Working {
            return;
        }
        self.state = AgentState::Failed;
        if self.last_error.is_none() {
            self.last_error = Some(clip(stderr_tail.unwrap_or(ending)));
        }
    }
}

fn clip(s: &str) -> String {
    match s.char_indices().nth(MAX_TEXT) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STREAM: &str = r#"{"type":"thread.started","thread_id":"t-1"}
{"type":"turn.started"}
{"type":"item.started","item":{"id":"item_0","type":"command_execution","command":"echo hi","status":"in_progress"}}
{"type":"item.completed","item":{"id":"item_1","type":"agent_message","text":"All done"}}
{"type":"turn.completed","usage":{"input_tokens":20,"cached_input_tokens":3,"output_tokens":10}}
not json at all
{"type":"some.future.event","x":1}
{"type":"turn.started"}
{"type":"turn.failed","error":{"message":"boom"}}"#;

    #[test]
    fn sums_up_a_stream() {
        let mut a = Agent::default();
        let changes: Vec<Change> = STREAM
            .lines()
            .map(|l| a.observe_line(l.as_bytes()))
            .collect();
        assert_eq!(changes[4], Change::TurnEnd);
        assert_eq!(changes[5], Change::None);
        assert_eq!(changes[6], Change::None);
        assert_eq!(a.thread_id.as_deref(), Some("t-1"));
        assert_eq!(a.turns, 2);
        assert_eq!(
            (a.input_tokens, a.cached_input_tokens, a.output_tokens),
            (20, 3, 10)
        );
        assert_eq!(a.last_message.as_deref(), Some("All done"));
        assert_eq!(a.state, AgentState::Failed);
        assert_eq!(a.last_error.as_deref(), Some("boom"));
    }

    #[test]
    fn usage_is_the_running_total_and_errors_are_not_fatal() {
        let mut a = Agent::default();
        for line in [
            r#"{"type":"turn.started"}"#,
            r#"{"type":"error","message":"Reconnecting... 1/5"}"#,
            r#"{"type":"turn.completed","usage":{"input_tokens":20,"output_tokens":10,"reasoning_output_tokens":4}}"#,
            r#"{"type":"turn.started"}"#,
            r#"{"type":"item.completed","item":{"type":"error","message":"warning"}}"#,
        ] {
            a.observe_line(line.as_bytes());
        }
        assert_eq!(a.state, AgentState::Working);
        assert_eq!(a.last_error.as_deref(), Some("warning"));
        a.observe_line(
            br#"{"type":"turn.completed","usage":{"input_tokens":30,"output_tokens":15,"reasoning_output_tokens":6}}"#,
        );
        assert_eq!(
            (a.input_tokens, a.output_tokens, a.reasoning_output_tokens),
            (30, 15, 6)
        );
        assert_eq!(a.state, AgentState::Done);
        a.end(Some("ignored"), "exit 0");
        assert_eq!(a.state, AgentState::Done);
    }

    #[test]
    fn a_run_that_ends_mid_turn_has_failed_with_what_codex_said() {
        let mut a = Agent::default();
        a.end(Some("Not inside a trusted directory"), "exited with code 1");
        assert_eq!(a.state, AgentState::Failed);
        assert_eq!(
            a.last_error.as_deref(),
            Some("Not inside a trusted directory")
        );
        let mut b = Agent::default();
        b.observe_line(br#"{"type":"error","message":"stream disconnected"}"#);
        b.end(Some("a later stderr line"), "killed by SIGTERM");
        assert_eq!(b.last_error.as_deref(), Some("stream disconnected"));
        let mut c = Agent::default();
        c.end(None, "killed by SIGTERM");
        assert_eq!(c.last_error.as_deref(), Some("killed by SIGTERM"));
    }

    #[test]
    fn long_texts_are_clipped() {
        let mut a = Agent::default();
        let text = "é".repeat(5000);
        let line = serde_json::json!({"type":"item.completed","item":{"type":"agent_message","text":text}});
        a.observe(&line);
        assert_eq!(a.last_message.unwrap().chars().count(), MAX_TEXT + 1);
    }

    #[test]
    fn states_are_named_as_codex_ps_shows_them() {
        let names =
            [AgentState::Working, AgentState::Done, AgentState::Failed].map(AgentState::as_str);
        assert_eq!(names, ["working", "done", "failed"]);
    }

    #[test]
    fn a_new_turn_works_again_and_errors_are_kept() {
        let mut a = Agent::default();
        a.observe_line(br#"{"type":"turn.completed"}"#);
        assert_eq!(a.state, AgentState::Done);
        assert_eq!(a.observe_line(br#"{"type":"turn.started"}"#), Change::Some);
        assert_eq!(a.state, AgentState::Working);
        assert_eq!(
            a.observe_line(br#"{"type":"error","message":"stream cut"}"#),
            Change::Some
        );
        assert_eq!(a.last_error.as_deref(), Some("stream cut"));
        a.observe_line(
            br#"{"type":"item.completed","item":{"type":"error","message":"bad tool"}}"#,
        );
        assert_eq!(a.last_error.as_deref(), Some("bad tool"));
    }
}
