//! Issue 14, "the agent summary tells the truth": never `working` once
//! the session has ended; a run without a completed turn is `failed` with
//! what codex said; transient errors are not failures; token totals follow
//! codex's meaning of `turn.completed.usage`. With the real codex against
//! the scripted model server, and with scripted event streams where codex
//! cannot be made to say a thing on demand.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::Value;
use shared::Status;

use crate::support::model::*;
use crate::support::*;

/// How long a scripted codex run may take.
const CODEX_WAIT: Duration = Duration::from_secs(60);

/// A model server scripted with replies, the CODEX_HOME pointing at it
/// and the codex binary.
struct Codex {
    /// Kept for its lifetime: the server stops when dropped.
    _server: ModelServer,
    home: PathBuf,
    bin: PathBuf,
}

impl Codex {
    fn new(t: &TestRoot, replies: impl IntoIterator<Item = Reply>) -> Codex {
        let bin = codex_bin();
        let server = ModelServer::start(replies);
        let home = codex_home(t.path(), &server, "");
        Codex {
            _server: server,
            home,
            bin,
        }
    }

    /// `codex-spawn --codex-bin BIN -e CODEX_HOME=HOME --timeout 180s
    /// ARGS...` with HOME in the temp dir; the id.
    fn spawn(&self, t: &TestRoot, args: &[&str]) -> String {
        let home = format!("CODEX_HOME={}", s(&self.home));
        let mut all = vec!["--codex-bin", s(&self.bin), "-e", &home];
        if !args.contains(&"--timeout") {
            all.extend_from_slice(&["--timeout", "180s"]);
        }
        all.extend_from_slice(args);
        t.spawn_cmd().env("HOME", t.path()).args(all).run().id()
    }
}

/// Waits until session `id` has ended; its final record, with the logs
/// for failure messages.
fn ended(t: &TestRoot, id: &str) -> (Value, String) {
    let deadline = Instant::now() + CODEX_WAIT;
    while Instant::now() < deadline {
        if t.status(id) == Status::Exited && !t.lock_held(id) {
            let logs = format!(
                "--- stdout.log ---\n{}--- stderr.log ---\n{}",
                file_text(&t.session_dir(id).join("stdout.log")),
                file_text(&t.session_dir(id).join("stderr.log"))
            );
            return (t.record(id), logs);
        }
        std::thread::sleep(POLL);
    }
    panic!("session {id} has not ended\n{}", t.listing());
}

/// A fake codex: a script that prints `events` (JSONL, one a line) on
/// stdout and `stderr` on stderr, then exits with `code`. Returns its path.
fn fake_codex(t: &TestRoot, name: &str, events: &[&str], stderr: &str, code: i32) -> String {
    let mut body = String::from("#!/bin/sh\ncat >/dev/null\n");
    for e in events {
        body.push_str(&format!("printf '%s\\n' {}\n", sh_quote(e)));
    }
    if !stderr.is_empty() {
        body.push_str(&format!("printf '%s\\n' {} >&2\n", sh_quote(stderr)));
    }
    body.push_str(&format!("exit {code}\n"));
    t.script(name, &body).to_str().unwrap().to_string()
}

#[test]
fn usage_is_codexs_running_total_kept_with_reasoning_tokens() {
    let t = TestRoot::new("agent-usage");
    // The real codex: one turn of two model responses, then a resumed
    // turn of one. codex 0.169 reports the thread's running total at each
    // turn's end: (20, 10), then (30, 15).
    let c = Codex::new(
        &t,
        [
            Reply::shell("echo hi"),
            Reply::message("First."),
            Reply::message("Second."),
        ],
    );
    let first = c.spawn(&t, &["exec", "one", "--skip-git-repo-check"]);
    let (_, logs) = ended(&t, &first);
    let a = ps_agent(&t, &first);
    assert_eq!(
        (&a["input_tokens"], &a["output_tokens"], &a["turns"]),
        (&Value::from(20), &Value::from(10), &Value::from(1)),
        "{a:#}\n{logs}"
    );
    let second = c.spawn(
        &t,
        &["exec", "--resume", &first, "two", "--skip-git-repo-check"],
    );
    let (_, logs) = ended(&t, &second);
    let a = ps_agent(&t, &second);
    assert!(
        logs.contains(r#""usage":{"input_tokens":30"#),
        "codex no longer reports the thread's running total:\n{logs}"
    );
    assert_eq!(
        (&a["input_tokens"], &a["output_tokens"]),
        (&Value::from(30), &Value::from(15)),
        "{a:#}\n{logs}"
    );

    // Several turns in one stream: the last total, not the sum of totals;
    // reasoning tokens kept.
    let fake = fake_codex(
        &t,
        "two-turns",
        &[
            r#"{"type":"thread.started","thread_id":"t-2"}"#,
            r#"{"type":"turn.started"}"#,
            r#"{"type":"turn.completed","usage":{"input_tokens":20,"cached_input_tokens":4,"output_tokens":10,"reasoning_output_tokens":3}}"#,
            r#"{"type":"turn.started"}"#,
            r#"{"type":"turn.completed","usage":{"input_tokens":30,"cached_input_tokens":6,"output_tokens":15,"reasoning_output_tokens":5}}"#,
        ],
        "",
        0,
    );
    let id = t.spawn_id(&["--codex-bin", &fake, "exec", "go"]);
    ended(&t, &id);
    let a = ps_agent(&t, &id);
    let got: Vec<&Value> = [
        "turns",
        "input_tokens",
        "cached_input_tokens",
        "output_tokens",
        "reasoning_output_tokens",
    ]
    .iter()
    .map(|k| &a[*k])
    .collect();
    assert_eq!(
        got,
        [2, 30, 6, 15, 5]
            .map(Value::from)
            .iter()
            .collect::<Vec<_>>(),
        "{a:#}"
    );
}

#[test]
fn a_run_without_a_completed_turn_ends_failed_with_what_codex_said() {
    let t = TestRoot::new("agent-fail");
    // The real codex outside a git repository refuses to run.
    let c = Codex::new(&t, []);
    let outside = t.path().join("not-a-repo");
    std::fs::create_dir_all(&outside).unwrap();
    let id = c.spawn(&t, &["-C", s(&outside), "exec", "hello"]);
    let (rec, logs) = ended(&t, &id);
    let a = ps_agent(&t, &id);
    assert_eq!(a["state"], "failed", "{a:#}\n{logs}");
    let err = a["last_error"].as_str().unwrap_or_default().to_string();
    assert!(
        !err.is_empty() && logs.contains(&err),
        "last_error {err:?} is not what codex said\n{rec:#}\n{logs}"
    );

    // A run that starts a turn and exits 0 without completing it, its
    // last stderr line being the reason.
    let fake = fake_codex(
        &t,
        "mid-turn",
        &[
            r#"{"type":"thread.started","thread_id":"t-3"}"#,
            r#"{"type":"turn.started"}"#,
        ],
        "fatal: the model vanished",
        0,
    );
    let id = t.spawn_id(&["--codex-bin", &fake, "exec", "go"]);
    let (_, logs) = ended(&t, &id);
    let a = ps_agent(&t, &id);
    assert_eq!(
        (&a["state"], &a["last_error"]),
        (
            &Value::from("failed"),
            &Value::from("fatal: the model vanished")
        ),
        "{a:#}\n{logs}"
    );

    // A turn cut short by --timeout, codex saying nothing.
    let c = Codex::new(&t, [Reply::slow("too late")]);
    let id = c.spawn(
        &t,
        &["--timeout", "2s", "exec", "wait", "--skip-git-repo-check"],
    );
    let (rec, logs) = ended(&t, &id);
    let a = ps_agent(&t, &id);
    assert_eq!(rec["timed_out"], true, "{rec:#}");
    assert_eq!(a["state"], "failed", "{a:#}\n{logs}");
    assert!(a["last_error"].is_string(), "{a:#}\n{logs}");
}

#[test]
fn transient_errors_leave_the_agent_working_then_done() {
    let t = TestRoot::new("agent-transient");
    let gate = t.path().join("gate");
    let body = format!(
        "#!/bin/sh\ncat >/dev/null\n\
         echo '{{\"type\":\"turn.started\"}}'\n\
         echo '{{\"type\":\"error\",\"message\":\"Reconnecting... 1/5\"}}'\n\
         echo '{{\"type\":\"item.completed\",\"item\":{{\"id\":\"i\",\"type\":\"error\",\"message\":\"config warning\"}}}}'\n\
         while [ ! -e {gate} ]; do sleep 0.05; done\n\
         echo '{{\"type\":\"turn.completed\",\"usage\":{{\"input_tokens\":1,\"output_tokens\":1}}}}'\n",
        gate = sh_quote(s(&gate))
    );
    let fake = t.script("transient", &body);
    let id = t.spawn_id(&["--codex-bin", s(&fake), "exec", "go"]);
    // The summary is written within a quarter second of a change.
    assert!(
        eventually(WAIT, || ps_agent(&t, &id)["last_error"] == "config warning"),
        "{:#}",
        ps_agent(&t, &id)
    );
    let a = ps_agent(&t, &id);
    assert_eq!(
        a["state"], "working",
        "a transient error is not a failure: {a:#}"
    );
    std::fs::write(&gate, "").unwrap();
    ended(&t, &id);
    let a = ps_agent(&t, &id);
    assert_eq!(a["state"], "done", "{a:#}");
    assert_eq!(a["last_error"], "config warning", "{a:#}");
}
