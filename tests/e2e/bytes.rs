//! Issue 14, "every byte, everywhere": the agent summary and attached
//! clients see the bytes the logs get, whatever the batch; input piped
//! through codex-attach arrives whole; a flood of connections does not
//! stop the supervisor.

use std::fs;
use std::io::Read;
use std::process::Stdio;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use serde_json::Value;
use shared::Status;

use crate::support::*;

/// The agent summary of `id` from `codex-ps --json`.
fn agent(t: &TestRoot, id: &str) -> Value {
    let out = t.tool("codex-ps", &["--json", id]);
    out.expect_success();
    let row: Value = serde_json::from_str(out.stdout_str().trim())
        .unwrap_or_else(|e| out.fail(&format!("not JSON: {e}")));
    row["agent"].clone()
}

#[test]
fn the_agent_summary_sees_output_read_after_the_supervisor_fell_behind() {
    let t = TestRoot::new("bytes-behind");
    // A first turn, then 3 MiB of events in one write, then a second turn:
    // written while the supervisor is stopped, so it finds more than a
    // batch waiting when it resumes.
    let mut events = String::new();
    events.push_str("{\"type\":\"thread.started\",\"thread_id\":\"t-behind\"}\n");
    events.push_str("{\"type\":\"turn.started\"}\n");
    events.push_str("{\"type\":\"turn.completed\",\"usage\":{\"input_tokens\":1}}\n");
    events.push_str("{\"type\":\"turn.started\"}\n");
    let filler = "x".repeat(1000);
    for i in 0..3000 {
        events.push_str(&format!(
            "{{\"type\":\"item.completed\",\"item\":{{\"id\":\"i{i}\",\"type\":\"reasoning\",\"text\":\"{filler}\"}}}}\n"
        ));
    }
    events.push_str("{\"type\":\"item.completed\",\"item\":{\"id\":\"m\",\"type\":\"agent_message\",\"text\":\"last words\"}}\n");
    events.push_str("{\"type\":\"turn.completed\",\"usage\":{\"input_tokens\":2}}\n");
    let file = t.path().join("events.jsonl");
    fs::write(&file, &events).unwrap();
    let gate = t.path().join("gate");
    let fake = t.script(
        "behind",
        &format!(
            "#!/bin/sh\ncat >/dev/null\nwhile [ ! -e {g} ]; do sleep 0.02; done\n\
             dd if={f} bs=8M 2>/dev/null\n",
            g = sh_quote(s(&gate)),
            f = sh_quote(s(&file))
        ),
    );
    let id = t.spawn_id(&["--codex-bin", s(&fake), "exec", "go"]);
    t.wait_status(&id, |s| s == Status::Running, WAIT);
    let supervisor = int(&t.record(&id), "supervisor_pid") as i32;
    signal(supervisor, Signal::SIGSTOP);
    fs::write(&gate, "").unwrap();
    // The pipe fills (1 MiB) while the supervisor is stopped.
    std::thread::sleep(Duration::from_millis(700));
    signal(supervisor, Signal::SIGCONT);
    t.wait_ended(&id, WAIT);
    assert_eq!(
        t.read(&id, "stdout.log").len(),
        events.len(),
        "the log lost bytes"
    );
    let a = agent(&t, &id);
    assert_eq!(
        (
            &a["thread_id"],
            &a["turns"],
            &a["last_message"],
            &a["state"]
        ),
        (
            &Value::from("t-behind"),
            &Value::from(2),
            &Value::from("last words"),
            &Value::from("done")
        ),
        "the agent summary missed what the log got: {a:#}"
    );
}

#[test]
fn a_client_attached_to_an_idle_session_gets_its_first_burst() {
    let t = TestRoot::new("bytes-burst");
    let gate = t.path().join("gate");
    let script = format!(
        "while [ ! -e {} ]; do sleep 0.02; done; head -c 300000 /dev/zero | tr '\\0' x; echo; echo END",
        sh_quote(s(&gate))
    );
    let id = t.spawn_id(&["--", "sh", "-c", &script]);
    t.wait_status(&id, |s| s == Status::Running, WAIT);
    // Idle for a while: the supervisor settles into its bulk mode.
    std::thread::sleep(Duration::from_millis(200));
    let mut attach = t
        .command(bin("codex-attach"))
        .args(["--root", s(t.root()), "--no-stdin", &id])
        .cmd_mut()
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting codex-attach");
    t.track(attach.id() as i32);
    let mut out = attach.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = out.read_to_end(&mut buf);
        buf
    });
    // The client is attached once the supervisor has greeted it; give it
    // a moment, then release the burst.
    std::thread::sleep(Duration::from_millis(500));
    fs::write(&gate, "").unwrap();
    let deadline = Instant::now() + WAIT;
    let status = loop {
        if let Some(st) = attach.try_wait().unwrap() {
            break st;
        }
        assert!(Instant::now() < deadline, "codex-attach did not end");
        std::thread::sleep(POLL);
    };
    let got = reader.join().unwrap();
    let xs = got.iter().filter(|&&b| b == b'x').count();
    assert!(
        status.success() && xs == 300_000 && got.ends_with(b"END\n"),
        "the attached client got {xs} of the 300000 bytes of the first burst ({status}); its output ends {:?}",
        String::from_utf8_lossy(&got[got.len().saturating_sub(40)..])
    );
}
