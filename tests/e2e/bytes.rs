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
    let a = ps_agent(&t, &id);
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

/// The CPU time process `pid` has used, in clock ticks (utime + stime).
fn cpu_ticks(pid: i32) -> u64 {
    stat(pid).map_or(0, |f| {
        f[11].parse::<u64>().unwrap_or(0) + f[12].parse::<u64>().unwrap_or(0)
    })
}

#[test]
fn a_flood_of_connections_neither_spins_nor_stops_the_supervisor() {
    use std::os::unix::net::UnixStream;
    let t = TestRoot::new("bytes-flood");
    // A low descriptor limit, so that the flood exhausts it.
    let spawn = bin("codex-spawn");
    bin("codex-supervisor");
    let script = "i=0; while [ $i -lt 40 ]; do echo line $i; i=$((i+1)); sleep 0.05; done";
    let out = t
        .command("sh")
        .arg("-c")
        .arg(format!(
            "ulimit -n 40 && exec {} -- sh -c {}",
            sh_quote(s(&spawn)),
            sh_quote(script)
        ))
        .run();
    let id = out.id();
    let rec = t.record(&id);
    let supervisor = int(&rec, "supervisor_pid") as i32;
    let sock = t.session_dir(&id).join("attach.sock");
    // 300 connections that never say hello, held open.
    let mut held = Vec::new();
    for _ in 0..300 {
        if let Ok(c) = UnixStream::connect(&sock) {
            held.push(c);
        }
    }
    let before = cpu_ticks(supervisor);
    let started = Instant::now();
    std::thread::sleep(Duration::from_millis(1000));
    let spent = cpu_ticks(supervisor) - before;
    assert!(
        spent < 40,
        "the supervisor spent {spent} ticks of CPU in {:?} with {} connections waiting",
        started.elapsed(),
        held.len()
    );
    let rec = t.wait_ended(&id, WAIT);
    assert_eq!(rec["exit_code"], 0, "{rec:#}");
    let log = String::from_utf8_lossy(&t.read(&id, "stdout.log")).into_owned();
    assert_eq!(log.lines().count(), 40, "the log lost lines:\n{log}");
    drop(held);
}

#[test]
fn a_connection_that_never_says_hello_is_closed() {
    use std::os::unix::net::UnixStream;
    let t = TestRoot::new("bytes-hello");
    let id = t.spawn_id(&["--", "sleep", "300"]);
    t.wait_status(&id, |s| s == Status::Running, WAIT);
    let mut c = UnixStream::connect(t.session_dir(&id).join("attach.sock")).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 64];
    let n = c.read(&mut buf);
    assert!(
        matches!(n, Ok(0)) && started.elapsed() < Duration::from_secs(8),
        "a silent connection was not closed: {n:?} after {:?}",
        started.elapsed()
    );
    t.tool("codex-rm", &["-f", "--grace", "1s", &id])
        .expect_success();
}
