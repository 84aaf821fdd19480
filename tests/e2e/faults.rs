//! Fault injection: a session, once spawned, keeps running and keeps its
//! output whatever happens around it. Its supervisor killed with -9,
//! codex-spawn killed at any moment of a start, a follower or a client
//! killed with -9, a full disk, a command that closes its output, forks a
//! thousand children or writes random bytes, and a root so deep that the
//! attach socket's path does not fit in `sun_path`.
//!
//! Covered elsewhere (not repeated here): a SIGTERM-proof command ended by
//! `codex-rm -f` after the grace (rm.rs
//! `force_kills_a_command_that_ignores_sigterm_after_the_grace`), a reused
//! pid in a lost session's record left alone (rm.rs
//! `force_on_a_lost_session_kills_its_leftovers_but_never_a_reused_pid`),
//! RLIMIT_FSIZE (spawn.rs `a_file_size_limit_drops_output_but_not_the_session`).

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;
use shared::{Session, SessionId, Status};

use crate::support::*;

/// How long tmux commands and screen changes may take.
const SCREEN_WAIT: Duration = Duration::from_secs(15);

// ---------------------------------------------------------------------
// Helpers

/// Runs tool `name` with `--root root` (a root other than the test's).
fn tool_at(t: &TestRoot, root: &Path, name: &str, args: &[&str]) -> Output {
    t.command(bin(name))
        .arg("--root")
        .arg(root)
        .args(args)
        .run()
}

/// `codex-tail -n all` gives back `out` and `err` exactly, and
/// `codex-tail -c LEN --stream out` the whole of `out`.
fn expect_all_bytes(t: &TestRoot, id: &str, out: &[u8], err: &[u8]) {
    expect_bytes(&t.tool("codex-tail", &["-n", "all", id]), out, err);
    let len = out.len().to_string();
    expect_bytes(
        &t.tool("codex-tail", &["-c", &len, "--stream", "out", id]),
        out,
        b"",
    );
}

/// Fails unless `o` exited 0 with exactly `out` on stdout and `err` on
/// stderr (compared as bytes; shown lossily).
fn expect_bytes(o: &Output, out: &[u8], err: &[u8]) {
    o.expect_success();
    if o.stdout != out {
        o.fail(&format!(
            "stdout differs from the {} bytes written (got {} bytes; first difference at {:?})",
            out.len(),
            o.stdout.len(),
            o.stdout.iter().zip(out).position(|(a, b)| a != b)
        ));
    }
    o.check(
        o.stderr == err,
        &format!("stderr is not {:?}", String::from_utf8_lossy(err)),
    );
}

/// Lines `a..=b`, each with its newline.
fn seq(a: u64, b: u64) -> String {
    (a..=b).map(|i| format!("{i}\n")).collect()
}

/// Starts `cmd` in the background, stdin on /dev/null, stdout into file
/// `out` of the temp dir, stderr discarded; tracked for the cleanup.
fn background(t: &TestRoot, cmd: &mut TestCommand, out: &str) -> Child {
    let file = File::create(t.path().join(out)).unwrap();
    let child = cmd
        .cmd_mut()
        .stdin(Stdio::null())
        .stdout(file)
        .stderr(Stdio::null())
        .spawn()
        .expect("starting a background command");
    t.track(child.id() as i32);
    child
}

/// Kills a child with SIGKILL, by its pid (not yet reaped, so still its),
/// and reaps it.
fn kill_9(child: &mut Child) {
    let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGKILL);
    let _ = child.wait();
}

/// The numbers N of the `tick N` lines of `log` (a pty's `\r\n` endings
/// allowed).
fn ticks(log: &str) -> Vec<u64> {
    log.lines()
        .filter_map(|l| l.trim_end_matches('\r').strip_prefix("tick ")?.parse().ok())
        .collect()
}

/// The highest tick session `id` has logged so far (0 for none).
fn last_tick(t: &TestRoot, id: &str) -> u64 {
    let log = file_text(&t.session_dir(id).join("stdout.log"));
    ticks(&log).into_iter().max().unwrap_or(0)
}

/// Waits until a line of the screen contains `text`.
fn wait_text(tmux: &Tmux, text: &str) {
    tmux.wait_screen(&format!("{text:?}"), |l| l.iter().any(|l| l.contains(text)));
}

/// The status of session `id` in `root` (for roots other than the test's).
fn status_at(root: &Path, id: &str) -> Status {
    Session::load(SessionId::parse(id).unwrap(), root.join(id)).status
}

// ---------------------------------------------------------------------
// 1. kill -9 of the supervisor

/// A supervisor killed with -9 leaves a lost session whose logged output
/// codex-tail still prints byte for byte, and `codex-rm -f` ends every
/// process the command left (setsid'd and double-forked ones included)
/// but not an older process that merely carries the session's id.
#[test]
fn kill_9_of_the_supervisor_keeps_the_output_and_rm_force_ends_every_orphan() {
    let t = TestRoot::new("f-sup-kill9");
    // A process older than the session with its id in its environment, as
    // a leftover of an earlier session of the same name would have.
    let mut elder = t.helper(&["sleep", "299"], &[("CODEX_BACKGROUND_ID", "k9")], None);
    let elder_pid = elder.id() as i32;
    // Start times tick every 10 ms: let the session's be clearly later.
    thread::sleep(Duration::from_millis(100));

    let ready = t.path().join("ready");
    let script = "seq 1 20000; printf 'err \\377\\000 x\\n' >&2; \
                  setsid sleep 300 & sleep 300 & (sleep 300 &); : > \"$0\"; exec sleep 300";
    let id = t.spawn_id(&["-n", "k9", "--", "sh", "-c", script, s(&ready)]);
    let out = seq(1, 20000).into_bytes();
    let err = b"err \xff\x00 x\n".to_vec();
    let sleep = ["sleep", "300"];
    let dir = t.session_dir(&id);
    assert!(
        eventually(WAIT, || ready.exists()
            && procs_running(&id, &sleep).len() == 4
            && file_size(&dir.join("stdout.log")) == out.len() as u64
            && file_size(&dir.join("stderr.log")) == err.len() as u64),
        "the command never got going: {:?}\n{}",
        describe(&live_session_pids(&id)),
        t.listing()
    );
    let orphans = procs_running(&id, &sleep);
    assert!(
        orphans.iter().any(|&p| sid(p) == Some(p)),
        "no sleep has its own session: {:?}",
        orphans.iter().map(|&p| (p, sid(p))).collect::<Vec<_>>()
    );

    make_lost(&t, &id);
    // Everything logged before the kill, byte for byte, in each stream.
    expect_all_bytes(&t, &id, &out, &err);
    let ps = t.tool("codex-ps", &["--json", &id]);
    ps.expect_success();
    let v: Value = serde_json::from_str(ps.stdout_str().trim())
        .unwrap_or_else(|e| ps.fail(&format!("not one JSON line: {e}")));
    ps.check(v["status"] == "lost", "the status is not lost");
    ps.check(
        v["stdout_bytes"] == out.len() && v["stderr_bytes"] == err.len(),
        "the byte counts are not the logs'",
    );
    assert!(
        orphans.iter().all(|&p| is_alive(p)),
        "the orphans died with the supervisor"
    );

    let rm = t.tool("codex-rm", &["-f", "--grace", "1s", &id]);
    rm.expect_success()
        .check(rm.stdout_str() == format!("{id}\n"), "the removed id");
    rm.check(!dir.exists(), "the directory stays");
    eventually(Duration::from_secs(10), || {
        live_session_pids(&id) == [elder_pid]
    });
    let left: Vec<i32> = live_session_pids(&id)
        .into_iter()
        .filter(|&p| p != elder_pid)
        .collect();
    assert!(left.is_empty(), "left running:\n{}", describe(&left));
    assert!(
        eventually(Duration::from_secs(10), || orphans
            .iter()
            .all(|&p| !is_alive(p))),
        "orphans left running"
    );
    let elder_alive = is_alive(elder_pid) && matches!(elder.try_wait(), Ok(None));
    let _ = elder.kill();
    let _ = elder.wait();
    assert!(
        elder_alive,
        "codex-rm -f killed pid {elder_pid}, older than the session"
    );
}

// ---------------------------------------------------------------------
// 2. kill -9 of codex-spawn during a start

/// Checks what `codex-ps` says of the root: it succeeds (table and JSON),
/// lists no hidden (staging) entry, and lists a session as running only
/// while its supervisor really runs. Once `settled` (no codex-spawn
/// left), also: no session is starting, every live supervisor's session
/// and every live command's session lists as running, and every published
/// directory is listed. Returns how many sessions have each status.
fn check_listing(t: &TestRoot, settled: bool) -> BTreeMap<String, usize> {
    let table = t.tool("codex-ps", &[]);
    table.expect_success();
    let ps = t.tool("codex-ps", &["--json"]);
    ps.expect_success();
    let mut counts = BTreeMap::new();
    let mut listed = BTreeMap::new();
    for line in ps.stdout_str().lines() {
        let v: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| ps.fail(&format!("not a JSON line: {line:?}: {e}")));
        let id = v["id"].as_str().unwrap_or_default().to_string();
        let status = v["status"].as_str().unwrap_or_default().to_string();
        ps.check(!id.starts_with('.'), "a staging directory is listed");
        ps.check(
            ["starting", "running", "failed", "lost", "corrupt"].contains(&status.as_str()),
            &format!("{id} is {status}"),
        );
        ps.check(
            !(settled && status == "starting"),
            &format!("{id} is still starting with no codex-spawn left"),
        );
        if status == "running" {
            let sup = v["supervisor_pid"].as_i64().unwrap_or(0) as i32;
            let argv = cmdline(sup);
            // Mid-start, the supervisor may still be codex-spawn's child
            // at the handoff (it started the command, then execs
            // codex-supervisor); once settled, it is codex-supervisor.
            let handing_off = !settled && argv.first().is_some_and(|a| a.ends_with("/codex-spawn"));
            ps.check(
                sup > 1
                    && is_alive(sup)
                    && (handing_off
                        || argv
                            .first()
                            .is_some_and(|a| a.ends_with("/codex-supervisor"))
                            && argv.get(1).map(String::as_str) == v["dir"].as_str()),
                &format!(
                    "{id} lists as running but its supervisor {sup} does not run it: {argv:?}"
                ),
            );
        }
        *counts.entry(status.clone()).or_insert(0) += 1;
        listed.insert(id, status);
    }
    if settled {
        for name in t.entries().iter().filter(|n| !n.starts_with('.')) {
            ps.check(listed.contains_key(name), &format!("{name} is not listed"));
        }
        for pid in pids_with_env(&t.tag()) {
            let argv = cmdline(pid);
            let id = if argv
                .first()
                .is_some_and(|a| a.ends_with("/codex-supervisor"))
            {
                argv.get(1)
                    .and_then(|d| Path::new(d).file_name())
                    .map(|n| n.to_string_lossy().into_owned())
            } else {
                environ(pid).iter().find_map(|e| {
                    e.strip_prefix(b"CODEX_BACKGROUND_ID=")
                        .map(|v| String::from_utf8_lossy(v).into_owned())
                })
            };
            if let Some(id) = id.filter(|_| is_alive(pid)) {
                ps.check(
                    listed.get(&id).map(String::as_str) == Some("running"),
                    &format!("{pid} {argv:?} runs for {id}, which does not list as running"),
                );
            }
        }
    }
    counts
}

/// codex-spawn killed with -9 (or stopped, then killed) at forty moments
/// of a start never leaves a session listed as running without a live
/// supervisor, nor a supervisor or command whose session does not list as
/// running; codex-ps keeps working; `codex-rm -f` of everything listed
/// leaves no session and no process behind.
#[test]
fn kill_9_of_codex_spawn_at_any_moment_leaves_no_false_session() {
    let t = TestRoot::new("f-spawn-kill9");
    // How long a start takes here, to spread the kills over all of it.
    let start = || {
        let mut cmd = t.spawn_cmd();
        cmd.args(["--", "sleep", "300"]);
        cmd.cmd_mut()
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting codex-spawn")
    };
    let mut whole = Duration::MAX;
    for _ in 0..3 {
        let started = Instant::now();
        let status = start().wait().expect("waiting for codex-spawn");
        assert!(status.success(), "codex-spawn: {status}\n{}", t.listing());
        whole = whole.min(started.elapsed());
    }
    let rounds = 40u32;
    for i in 0..rounds {
        // Denser early on, where codex-spawn does most of its steps.
        let delay = whole * (i * i) / (rounds * rounds);
        let mut child = start();
        let pid = Pid::from_raw(child.id() as i32);
        thread::sleep(delay);
        if i % 2 == 1 {
            // Frozen mid-start: what a reader sees meanwhile.
            let _ = kill(pid, Signal::SIGSTOP);
            check_listing(&t, false);
        }
        let _ = kill(pid, Signal::SIGKILL);
        let _ = child.wait();
    }
    // A supervisor already started records running on its own.
    let settled = eventually(WAIT, || {
        t.tool("codex-ps", &["-q", "-f", "status=starting"])
            .stdout
            .is_empty()
    });
    assert!(settled, "sessions stay starting\n{}", t.listing());
    let counts = check_listing(&t, true);
    let staging = t
        .entries()
        .iter()
        .filter(|n| n.starts_with(".new-"))
        .count();
    eprintln!(
        "after {rounds} starts killed within {whole:?}: {counts:?}, {staging} staging directories left"
    );
    // What a killed codex-spawn left in staging is reclaimed by the next
    // codex-rm once it is old enough (10 s; aged here rather than waited for).
    for name in t.entries().iter().filter(|n| n.starts_with('.')) {
        backdate(&t.root().join(name), Duration::from_secs(60));
    }

    let ids = t.tool("codex-ps", &["-q"]);
    ids.expect_success();
    let rm = t
        .tool_cmd("codex-rm")
        .args(["-f", "--grace", "1s"])
        .stdin(ids.stdout.clone())
        .run();
    rm.expect_success();
    let ps = t.tool("codex-ps", &["-q"]);
    ps.expect_success()
        .check(ps.stdout.is_empty(), "sessions are left after codex-rm -f");
    rm.check(
        t.entries().is_empty(),
        &format!(
            "codex-rm left entries in the root (staging directories not reclaimed?):\n{}",
            t.listing()
        ),
    );
    eventually(Duration::from_secs(3), || {
        pids_with_env(&t.tag()).is_empty()
    });
    let left = pids_with_env(&t.tag());
    assert!(left.is_empty(), "left running:\n{}", describe(&left));
}

// ---------------------------------------------------------------------
// 3. kill -9 of a follower and of a client

/// A command that logs `tick N` every 20 ms until file `$0` exists, then
/// `end`.
const TICKER: &str =
    "i=0; while [ ! -e \"$0\" ]; do i=$((i+1)); echo \"tick $i\"; sleep 0.02; done; echo end";

/// Waits until session `id` has logged a tick past `n`; returns it.
fn ticks_past(t: &TestRoot, id: &str, n: u64) -> u64 {
    assert!(
        eventually(WAIT, || last_tick(t, id) > n),
        "{id} logged nothing past tick {n}\n{}",
        t.listing()
    );
    last_tick(t, id)
}

/// `codex-tail -f` and `codex-attach` killed with -9 leave the session
/// running and logging: a later attach works, and once it ends codex-tail
/// prints every tick, with none missing.
#[test]
fn kill_9_of_a_follower_and_of_a_client_leaves_the_session_logging() {
    let t = TestRoot::new("f-client-kill9");
    let stop = t.path().join("stop");
    let id = t.spawn_id(&["-t", "-n", "ticker", "--", "sh", "-c", TICKER, s(&stop)]);

    let mut follower = background(&t, t.tool_cmd("codex-tail").args(["-f", &id]), "follow.out");
    let followed = t.path().join("follow.out");
    assert!(
        eventually(WAIT, || ticks(&file_text(&followed)).len() >= 3),
        "codex-tail -f printed no ticks: {:?}",
        file_text(&followed)
    );
    kill_9(&mut follower);
    let n = ticks_past(&t, &id, last_tick(&t, &id));
    assert_eq!(t.status(&id), Status::Running, "{}", t.listing());

    let tmux = Tmux::shell(&t, (80, 24), "xterm", SCREEN_WAIT);
    tmux.type_line(&format!("codex-attach {id}; echo rc1=$?"));
    tmux.wait_screen("ticks through codex-attach", |l| {
        ticks(&l.join("\n")).iter().any(|&k| k > n) && !l.iter().any(|l| l.starts_with(OUT.1))
    });
    let mut client = None;
    assert!(
        eventually(SCREEN_WAIT, || {
            client = attach_in_pane(&t, tmux.pane);
            client.is_some()
        }),
        "no codex-attach in the pane"
    );
    signal(client.unwrap(), Signal::SIGKILL);
    wait_text(&tmux, "rc1=137");
    // Nothing could restore the terminal: do it by hand.
    tmux.type_line("stty sane; clear");
    let n = ticks_past(&t, &id, last_tick(&t, &id) + 10);
    assert_eq!(t.status(&id), Status::Running, "{}", t.listing());

    tmux.type_line(&format!("codex-attach {id}; echo rc2=$?"));
    tmux.wait_screen("later ticks through a second codex-attach", |l| {
        ticks(&l.join("\n")).iter().any(|&k| k > n)
    });
    tmux.keys(&["C-\\"]);
    wait_text(&tmux, "rc2=0");

    fs::write(&stop, "").unwrap();
    assert_eq!(int(&t.wait_ended(&id, WAIT), "exit_code"), 0);
    let all = t.tool("codex-tail", &["-n", "all", &id]);
    all.expect_success();
    let text = all.stdout_str();
    let got = ticks(&text);
    let want: Vec<u64> = (1..=got.len() as u64).collect();
    all.check(got == want, "the ticks are not 1, 2, 3... without a gap");
    all.check(got.len() as u64 > n, "fewer ticks than seen while attached");
    all.check(text.trim_end().ends_with("end"), "no end line");
}

// ---------------------------------------------------------------------
// 4. A full filesystem

/// A tmpfs mounted on a directory for one test; unmounted when dropped
/// (lazily if something still holds it), and then the test's directory
/// removed, which the test's own cleanup could not do around a mount.
struct Tmpfs {
    dir: PathBuf,
    test_dir: PathBuf,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (mode 0700) on `dir`, creating it; `None`
    /// where mounting is not allowed (a failure in CI, else a loud skip).
    fn mount(t: &TestRoot, dir: &Path, size: &str) -> Option<Tmpfs> {
        fs::create_dir_all(dir).unwrap();
        let opts = format!("size={size},mode=0700");
        let out = t
            .command("mount")
            .args(["-t", "tmpfs", "-o", &opts, "tmpfs", s(dir)])
            .run();
        if !out.status.success() {
            skip(&format!(
                "cannot mount a tmpfs (root needed): {}",
                out.stderr_str().trim()
            ));
            return None;
        }
        Some(Tmpfs {
            dir: dir.to_path_buf(),
            test_dir: t.path().to_path_buf(),
        })
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let umount = |args: &[&str]| {
            Command::new("umount")
                .args(args)
                .arg(&self.dir)
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        if !umount(&[]) {
            umount(&["-l"]);
        }
        let _ = fs::remove_dir_all(&self.test_dir);
    }
}

/// A session whose output overflows a full filesystem runs to its natural
/// end: its exit code is recorded, every byte is either logged or counted
/// in `dropped_bytes` (shown by codex-ps --json), logging resumes once
/// there is room again, and codex-ps and codex-tail keep working.
#[test]
fn a_full_disk_drops_output_but_the_session_runs_to_its_end() {
    let t = TestRoot::new("f-full-disk");
    let Some(_tmpfs) = Tmpfs::mount(&t, t.root(), "2m") else {
        return;
    };
    // 1 MiB to give back once the disk is full (hidden: not a session).
    let filler = t.root().join(".filler");
    fs::write(&filler, vec![1u8; 1 << 20]).unwrap();
    let (full, go, done) = (
        t.path().join("full"),
        t.path().join("go"),
        t.path().join("done"),
    );
    let script =
        "head -c 3000000 /dev/zero; : > \"$0\"; while [ ! -e \"$1\" ]; do sleep 0.02; done; \
                  echo after-out; echo after-err >&2; : > \"$2\"; exit 7";
    // Started while there is room, it ends while there is none.
    let b_go = t.path().join("b-go");
    let b = t.spawn_id(&[
        "--",
        "sh",
        "-c",
        "while [ ! -e \"$0\" ]; do sleep 0.02; done; echo b-out; exit 5",
        s(&b_go),
    ]);
    let id = t.spawn_id(&["--", "sh", "-c", script, s(&full), s(&go), s(&done)]);
    assert!(
        wait_file(&full, WAIT),
        "the flood never ended\n{}",
        t.listing()
    );
    assert_eq!(t.status(&id), Status::Running, "{}", t.listing());
    fs::write(&b_go, "").unwrap();
    let rec = t.wait_ended(&b, WAIT);
    assert_eq!(rec["exit_code"], 5, "the end on a full disk: {rec:#}");
    assert_eq!(
        int(&rec, "stdout_bytes") + int(&rec, "dropped_bytes"),
        "b-out\n".len() as i64,
        "{rec:#}"
    );

    // Full: the tools still work, and a new session starts or is refused
    // cleanly.
    t.tool("codex-ps", &[]).expect_success();
    t.tool("codex-tail", &["-c", "10", &id]).expect_success();
    let before = t.entries();
    let other = t.spawn(&["--", "true"]);
    match other.code() {
        Some(0) => {
            eprintln!("note: codex-spawn on the full disk started a session");
            let other_id = other.id();
            t.wait_ended(&other_id, WAIT);
        }
        Some(125) => {
            eprintln!(
                "note: codex-spawn on the full disk: {}",
                other.stderr_str().trim()
            );
            other.expect_one_error_line("codex-spawn: ");
            other.check(
                other.stderr_str().contains("No space left on device"),
                "the error does not say the disk is full",
            );
            other.check(
                other.stderr_str().matches("(os error").count() <= 1,
                "the OS error is told twice",
            );
            other.check(t.entries() == before, "a failed start left something");
        }
        _ => other.fail("codex-spawn on a full disk: neither started nor refused"),
    }

    fs::remove_file(&filler).unwrap();
    fs::write(&go, "").unwrap();
    let rec = t.wait_ended(&id, WAIT);
    assert!(done.exists(), "the command did not run to its end");
    assert_eq!(rec["exit_code"], 7, "{rec:#}");
    let dropped = int(&rec, "dropped_bytes");
    assert!(dropped > 0, "nothing dropped on a 2 MiB disk: {rec:#}");
    let logged = t.read(&id, "stdout.log");
    assert_eq!(int(&rec, "stdout_bytes"), logged.len() as i64, "{rec:#}");
    assert_eq!(
        int(&rec, "stdout_bytes") + int(&rec, "stderr_bytes") + dropped,
        3_000_000 + "after-out\nafter-err\n".len() as i64,
        "every byte is either logged or counted as dropped: {rec:#}"
    );
    assert!(
        logged.ends_with(b"after-out\n") && logged[..logged.len() - 10].iter().all(|&b| b == 0),
        "stdout.log is not zeros then after-out ({} bytes)",
        logged.len()
    );
    assert_eq!(t.read(&id, "stderr.log"), b"after-err\n");

    let ps = t.tool("codex-ps", &["--json", &id]);
    ps.expect_success();
    let v: Value = serde_json::from_str(ps.stdout_str().trim())
        .unwrap_or_else(|e| ps.fail(&format!("not one JSON line: {e}")));
    ps.check(
        v["status"] == "exited" && v["exit_code"] == 7 && v["dropped_bytes"] == dropped,
        "codex-ps --json does not show the exit code and the dropped bytes",
    );
    expect_bytes(
        &t.tool("codex-tail", &["-n", "1", &id]),
        b"",
        b"after-err\n",
    );
    expect_bytes(
        &t.tool("codex-tail", &["-c", "10", "--stream", "out", &id]),
        b"after-out\n",
        b"",
    );
    t.tool("codex-tail", &["-f", "-n", "1", &id]).expect_code(7);
    // The test's cleanup and its check for a supervisor's panic look into
    // the root: before the tmpfs under it is unmounted.
    drop(t);
}

/// Bytes dropped on a full disk leave a mark where they were lost in what
/// codex-tail prints (`-n all`, `-n N`, `-f`), and `--json` says so with
/// an object of its own (`"dropped": N`), instead of the text before and
/// after joining into a line the program never wrote.
#[test]
fn bytes_lost_on_a_full_disk_leave_a_mark_where_they_were_lost() {
    let t = TestRoot::new("f-full-mark");
    let Some(_tmpfs) = Tmpfs::mount(&t, t.root(), "2m") else {
        return;
    };
    let filler = t.root().join(".filler");
    fs::write(&filler, vec![1u8; 1 << 20]).unwrap();
    let (full, go) = (t.path().join("full"), t.path().join("go"));
    let script = "printf 'before-'; head -c 3000000 /dev/zero | tr '\\0' x; : > \"$0\"; \
                  while [ ! -e \"$1\" ]; do sleep 0.02; done; echo -after; echo last";
    let id = t.spawn_id(&["--", "sh", "-c", script, s(&full), s(&go)]);
    assert!(wait_file(&full, WAIT), "the flood never ended");
    // The command is done writing; the supervisor may still be a pipe's
    // worth behind. Room is made only once all of the flood is logged or
    // counted as lost, so that nothing of it lands after the mark.
    let index = t.root().join(&id).join("index");
    let accounted = || {
        shared::index::read_all(&index).map_or(0, |entries| {
            entries
                .iter()
                .filter(|e| e.stream == shared::layout::Stream::Stdout)
                .map(|e| u64::from(e.len))
                .sum::<u64>()
        })
    };
    assert!(
        eventually(WAIT, || accounted() >= 7 + 3_000_000),
        "the supervisor never took in the whole flood: {} bytes",
        accounted()
    );
    fs::remove_file(&filler).unwrap();
    fs::write(&go, "").unwrap();
    let rec = t.wait_ended(&id, WAIT);
    let dropped = int(&rec, "dropped_bytes");
    assert!(dropped > 0, "nothing dropped on a 2 MiB disk: {rec:#}");
    let mark = format!("[{dropped} bytes of stdout lost here: they could not be logged]");

    let all = t.tool("codex-tail", &["-n", "all", &id]);
    all.expect_success();
    let text = all.stdout_str();
    let lines: Vec<&str> = text.lines().collect();
    all.check(
        lines.len() == 4
            && lines[0].starts_with("before-xxx")
            && lines[0].bytes().skip(7).all(|b| b == b'x')
            && lines[1] == mark
            && lines[2] == "-after"
            && lines[3] == "last",
        &format!("not: the text before, the mark {mark:?}, the text after"),
    );
    let last = t.tool("codex-tail", &["-n", "3", &id]);
    last.check(
        last.stdout_str() == format!("{mark}\n-after\nlast\n"),
        "-n 3 is not the mark and the lines after it",
    );
    let follow = t.tool("codex-tail", &["-f", "-n", "+1", &id]);
    follow.check(follow.stdout_str() == text, "-f -n +1 differs from -n all");
    let json = t.tool("codex-tail", &["--json", "-n", "3", &id]);
    let v = json.json_lines();
    json.check(
        v.len() == 3
            && v[0]["dropped"] == dropped
            && v[0]["line"].is_null()
            && v[0]["stream"] == "stdout"
            && v[1]["line"] == "-after",
        "--json does not say where the bytes were dropped",
    );
    drop(t);
}

// ---------------------------------------------------------------------
// 5. What the command does

/// A command that closes its stdout, then its stderr too, still runs as a
/// session: running until it exits, its stderr logged after stdout closed,
/// and `codex-tail -f` follows it to its exit code.
#[test]
fn a_command_that_closes_its_output_stays_a_running_session() {
    let t = TestRoot::new("f-closed-out");
    let (closed, go) = (t.path().join("closed"), t.path().join("go"));
    let script =
        "echo before; exec >&-; i=0; while [ $i -lt 20 ]; do i=$((i+1)); echo \"err $i\" >&2; \
                  done; exec 2>&-; : > \"$0\"; while [ ! -e \"$1\" ]; do sleep 0.02; done; exit 3";
    let id = t.spawn_id(&["--", "sh", "-c", script, s(&closed), s(&go)]);
    assert!(wait_file(&closed, WAIT), "{}", t.listing());
    for _ in 0..10 {
        assert_eq!(t.status(&id), Status::Running, "{}", t.listing());
        thread::sleep(POLL);
    }
    // The command may end only once codex-tail runs: it must follow it.
    let (gate, tag) = (go.clone(), t.tag());
    let opener = thread::spawn(move || {
        eventually(WAIT, || {
            pids_with_env(&tag).into_iter().any(|p| {
                fs::read_to_string(format!("/proc/{p}/comm"))
                    .is_ok_and(|c| c.trim() == "codex-tail")
            })
        });
        thread::sleep(Duration::from_millis(100));
        fs::write(gate, "").unwrap();
    });
    let errs: String = (1..=20).map(|i| format!("err {i}\n")).collect();
    let follow = t.tool("codex-tail", &["-f", "-n", "all", &id]);
    opener.join().unwrap();
    follow.expect_code(3);
    follow.check(follow.stdout == b"before\n", "stdout");
    follow.check(follow.stderr_str() == errs, "stderr");
    let rec = t.wait_ended(&id, WAIT);
    assert_eq!(rec["exit_code"], 3, "{rec:#}");
    assert_eq!(t.read(&id, "stdout.log"), b"before\n");
    assert_eq!(t.read(&id, "stderr.log"), errs.as_bytes());
}

/// A command that starts a thousand children: `codex-rm -f` ends them all
/// while it waits for them, and when the command exits the thousand it
/// leaves (SIGTERM ignored) are ended too, its exit code recorded.
#[test]
fn a_thousand_children_all_end_with_rm_force_or_with_the_command() {
    let t = TestRoot::new("f-thousand");
    let sleep = ["sleep", "1000"];
    let thousand = |id: &str| {
        assert!(
            eventually(Duration::from_secs(60), || procs_running(id, &sleep).len()
                == 1000),
            "{} sleeps of {id} run, not 1000\n{}",
            procs_running(id, &sleep).len(),
            t.listing()
        );
    };
    let a = t.spawn_id(&[
        "--",
        "sh",
        "-c",
        "for i in $(seq 1000); do sleep 1000 & done; wait",
    ]);
    thousand(&a);
    let rm = t.tool("codex-rm", &["-f", "--grace", "1s", &a]);
    rm.expect_success()
        .check(!t.session_dir(&a).exists(), "the directory stays");
    eventually(Duration::from_secs(5), || live_session_pids(&a).is_empty());
    let left = live_session_pids(&a);
    assert!(left.is_empty(), "{} processes of {a} left", left.len());

    let go = t.path().join("go");
    let script = "trap '' TERM; for i in $(seq 1000); do sleep 1000 & done; \
                  while [ ! -e \"$0\" ]; do sleep 0.05; done; exit 4";
    let b = t.spawn_id(&["--", "sh", "-c", script, s(&go)]);
    thousand(&b);
    fs::write(&go, "").unwrap();
    let rec = t.wait_ended(&b, Duration::from_secs(60));
    assert_eq!(rec["exit_code"], 4, "{rec:#}");
    eventually(Duration::from_secs(5), || live_session_pids(&b).is_empty());
    let left = live_session_pids(&b);
    assert!(left.is_empty(), "{} processes of {b} left", left.len());
}

/// A mebibyte of random bytes plus 0xff, 0xfe and NULs comes back exactly
/// from codex-tail (`-n all`, `-c`), every `--json` line is valid UTF-8
/// JSON that gives the bytes back, and codex-ps lists the session.
#[test]
fn random_bytes_come_back_exactly() {
    let t = TestRoot::new("f-binary");
    let mut out = vec![0u8; 1 << 20];
    File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut out))
        .expect("reading /dev/urandom");
    out.extend_from_slice(b"\xff\xfe\x00\x00 end\n");
    let err = b"\x00\xff\xfe err\n".to_vec();
    let data = t.path().join("data.bin");
    fs::write(&data, &out).unwrap();
    let id = t.spawn_id(&[
        "--",
        "sh",
        "-c",
        "cat \"$0\"; printf '\\000\\377\\376 err\\n' >&2",
        s(&data),
    ]);
    let rec = t.wait_ended(&id, WAIT);
    assert_eq!(rec["exit_code"], 0, "{rec:#}");
    assert!(t.read(&id, "stdout.log") == out, "stdout.log differs");
    assert_eq!(t.read(&id, "stderr.log"), err);

    expect_all_bytes(&t, &id, &out, &err);
    // Each line strictly decoded as UTF-8 and parsed as JSON by Python,
    // its `line` turned back into bytes (surrogateescape), to its stream.
    let py = "import sys, json\n\
              for l in sys.stdin.buffer:\n\
              \x20   o = json.loads(l.decode('utf-8'))\n\
              \x20   f = sys.stdout if o['stream'] == 'stdout' else sys.stderr\n\
              \x20   f.buffer.write(o['line'].encode('utf-8', 'surrogateescape') + b'\\n')\n";
    let rt = t
        .command("sh")
        .args(["-c", "\"$@\" | python3 -c \"$PY\"", "sh"])
        .env("PY", py)
        .arg(bin("codex-tail"))
        .args(["--root", s(t.root()), "--json", "-n", "all", &id])
        .run();
    expect_bytes(&rt, &out, &err);

    let ps = t.tool("codex-ps", &["--json", &id]);
    ps.expect_success();
    ps.check(
        ps.one_json()["stdout_bytes"] == out.len(),
        "codex-ps --json does not count the bytes",
    );
    t.tool("codex-ps", &[]).expect_success();
}

// ---------------------------------------------------------------------
// 6. A socket path too long for sun_path

/// Under a root so deep that `DIR/attach.sock` is longer than `sun_path`
/// holds, codex-attach still attaches to a tty session, detaches, and sees
/// its exit code.
#[test]
fn attach_works_when_the_socket_path_is_too_long_for_sun_path() {
    let t = TestRoot::new("f-long-sock");
    bin("codex-supervisor");
    let root = t.path().join("d".repeat(100)).join("root");
    let id = t
        .command(bin("codex-spawn"))
        .env("TERM", "screen")
        .env("HOME", t.path())
        .env("HISTFILE", "/dev/null")
        .env("PS1", "in> ")
        .arg("--root")
        .arg(&root)
        .args(["-t", "-n", "deep", "--", "bash", "--norc", "--noprofile"])
        .run()
        .id();
    let sock = root.join(&id).join("attach.sock");
    assert!(
        sock.as_os_str().len() > 108,
        "{} fits in sun_path",
        sock.display()
    );
    assert!(
        wait_file(&sock, WAIT),
        "no attach socket\n{}",
        listing(&root)
    );

    let tmux = Tmux::shell(&t, (80, 24), "xterm", SCREEN_WAIT);
    let attach = format!("codex-attach --root {} {id}", s(&root));
    let attached = |l: &[&str]| {
        l.iter().any(|l| l.starts_with("in>")) && !l.iter().any(|l| l.starts_with(OUT.1))
    };
    tmux.type_line(&format!("{attach}; echo rc1=$?"));
    tmux.wait_screen("the session's prompt", attached);
    tmux.type_line("echo $((6*7))");
    tmux.wait_line("42");
    tmux.keys(&["C-\\"]);
    wait_text(&tmux, "rc1=0");
    assert_eq!(status_at(&root, &id), Status::Running, "{}", listing(&root));

    tmux.type_line(&format!("clear; {attach}; echo rc2=$?"));
    tmux.wait_screen("the session's prompt again", |l| {
        attached(l) && l.contains(&"42")
    });
    tmux.type_line("exit 4");
    wait_text(&tmux, "rc2=4");
    assert!(
        eventually(WAIT, || status_at(&root, &id) == Status::Exited),
        "{}",
        listing(&root)
    );
    let ps = tool_at(&t, &root, "codex-ps", &["--json", &id]);
    ps.expect_success()
        .check(ps.one_json()["exit_code"] == 4, "exit code 4");
    // This root is not the test's own, whose drop looks for panics.
    let panic_log = root.join(&id).join(shared::layout::SUPERVISOR_LOG);
    assert!(!panic_log.exists(), "{}", file_text(&panic_log));
}
