//! Load: many sessions at once, each writing a lot on both streams, while
//! codex-ps, codex-tail and codex-rm run in loops beside them. Nothing may
//! be lost, reordered, mixed up between sessions or misreported.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Barrier, Mutex};
use std::thread;
use std::time::Duration;

use serde_json::Value;

use crate::support::{Output, TestRoot};

/// Sessions spawned at once.
const SESSIONS: usize = 200;
/// Numbered lines each session writes on each stream.
const LINES: usize = 10_000;

/// The workload: lines `oN:1`..`oN:LINES` on stdout and `eN:1`.. on
/// stderr (N the session's number), alternating, one write per line on
/// each stream (so the supervisor sees 2 × LINES writes), then exits with
/// `$N % 50`. Each line names its session and stream, so output mixed up
/// between sessions or streams cannot go unseen.
fn workload() -> String {
    format!(
        "awk -v n=\"$N\" 'BEGIN {{ for (i = 1; i <= {LINES}; i++) \
         {{ print \"o\" n \":\" i; fflush(); print \"e\" n \":\" i > \"/dev/stderr\" }}; exit n % 50 }}'"
    )
}

/// The tag of session `n`'s lines on `stream` (`"out"` or `"err"`).
fn tag(n: usize, stream: &str) -> String {
    let letter = if stream == "out" { 'o' } else { 'e' };
    format!("{letter}{n}:")
}

/// What session `n`'s log of `stream` must hold, exactly.
fn numbered(n: usize, stream: &str) -> Vec<u8> {
    let tag = tag(n, stream);
    (1..=LINES)
        .map(|i| format!("{tag}{i}\n"))
        .collect::<String>()
        .into_bytes()
}

/// What the watchers saw go wrong, one line each.
#[derive(Default)]
struct Problems(Mutex<Vec<String>>);

impl Problems {
    fn add(&self, what: String) {
        let mut all = self.0.lock().unwrap();
        if all.len() < 20 {
            all.push(what);
        }
    }

    fn check(&self, out: &Output, ok: bool, what: &str) {
        if !ok {
            self.add(format!(
                "{}: {what} (exit {:?})\nstdout: {}\nstderr: {}",
                out.desc,
                out.code(),
                out.stdout_str().chars().take(2000).collect::<String>(),
                out.stderr_str()
            ));
        }
    }
}

/// codex-ps --json in a loop: always exit 0, every line a record of one of
/// the load's sessions (or of the rm loop's), none lost, failed or
/// corrupt, and a session once seen exited never seen running again.
fn ps_loop(t: &TestRoot, stop: &AtomicBool, problems: &Problems) -> usize {
    let mut seen_exited: HashSet<String> = HashSet::new();
    let mut rounds = 0;
    // At least one round, however soon the sessions end on a busy machine.
    while rounds == 0 || !stop.load(Ordering::Relaxed) {
        let out = t.tool("codex-ps", &["--json"]);
        rounds += 1;
        problems.check(&out, out.code() == Some(0), "codex-ps --json failed");
        problems.check(&out, out.stderr.is_empty(), "codex-ps --json warned");
        for line in out.stdout_str().lines() {
            let Ok(v) = serde_json::from_str::<Value>(line) else {
                problems.check(&out, false, &format!("not JSON: {line:?}"));
                continue;
            };
            let id = v["id"].as_str().unwrap_or_default().to_string();
            let status = v["status"].as_str().unwrap_or_default();
            match status {
                "starting" | "running" if seen_exited.contains(&id) => {
                    problems.check(&out, false, &format!("{id} {status} after exited"))
                }
                "starting" | "running" => {}
                "exited" => {
                    seen_exited.insert(id);
                }
                other => problems.check(&out, false, &format!("{id} is {other}: {line}")),
            }
        }
    }
    rounds
}

/// codex-tail -n 3 on the sessions in turn, each stream: exit 0, and the
/// lines it prints are that session's and that stream's, consecutive.
fn tail_loop(
    t: &TestRoot,
    ids: &[(String, usize)],
    stop: &AtomicBool,
    problems: &Problems,
) -> usize {
    let mut rounds = 0;
    for (id, n) in ids.iter().cycle() {
        // At least one round, however soon the sessions end.
        if rounds > 0 && stop.load(Ordering::Relaxed) {
            break;
        }
        for stream in ["out", "err"] {
            let out = t.tool("codex-tail", &["-n", "3", "--stream", stream, id]);
            rounds += 1;
            problems.check(&out, out.code() == Some(0), "codex-tail failed");
            // Like `docker logs`, codex-tail prints stderr on stderr.
            let text = if stream == "err" {
                out.stderr_str()
            } else {
                out.stdout_str()
            };
            let tag = tag(*n, stream);
            let nums: Vec<usize> = text
                .lines()
                .map(|l| {
                    l.strip_prefix(&tag)
                        .and_then(|i| i.parse().ok())
                        .unwrap_or(0)
                })
                .collect();
            let consecutive = nums.windows(2).all(|w| w[1] == w[0] + 1);
            problems.check(
                &out,
                nums.len() <= 3 && consecutive && !nums.contains(&0),
                &format!("not consecutive lines {tag}N of this session and stream"),
            );
        }
    }
    rounds
}

/// codex-rm in a loop: refuses a running session without -f (and leaves
/// it), and spawns then force-removes a short session of its own.
fn rm_loop(t: &TestRoot, stop: &AtomicBool, problems: &Problems) -> usize {
    let sentinel = t.spawn_id(&["-l", "from=rm-loop", "--", "sleep", "600"]);
    let mut rounds = 0;
    // At least one round, however soon the sessions end.
    while rounds == 0 || !stop.load(Ordering::Relaxed) {
        rounds += 1;
        let out = t.tool("codex-rm", &[&sentinel]);
        problems.check(
            &out,
            out.code() == Some(1) && t.session_dir(&sentinel).exists(),
            "codex-rm without -f removed a running session",
        );
        let spawned = t.spawn(&["-l", "from=rm-loop", "--", "sleep", "5"]);
        problems.check(&spawned, spawned.code() == Some(0), "spawn failed");
        let own = spawned.stdout_str().trim().to_string();
        let out = t.tool("codex-rm", &["-f", &own]);
        problems.check(
            &out,
            out.code() == Some(0) && out.stdout_str().trim() == own,
            "codex-rm -f of a running session did not remove it",
        );
    }
    let out = t.tool("codex-rm", &["-f", &sentinel]);
    problems.check(&out, out.code() == Some(0), "codex-rm -f of the sentinel");
    rounds
}

/// 200 sessions spawned at once, each writing 10,000 numbered lines on
/// both streams, one write per line, while codex-ps, codex-tail and
/// codex-rm loop beside them: every id distinct, every log complete and
/// in order, every exit code right, and the tools never fail or misreport.
#[test]
fn two_hundred_sessions_at_once_lose_nothing() {
    let t = TestRoot::new("load");
    let script = workload();
    let barrier = Barrier::new(SESSIONS);
    let spawned: Vec<(usize, Output)> = thread::scope(|sc| {
        let handles: Vec<_> = (0..SESSIONS)
            .map(|n| {
                let (t, script, barrier) = (&t, &script, &barrier);
                sc.spawn(move || {
                    let mut cmd = t.spawn_cmd();
                    cmd.args(["-e", &format!("N={n}"), "--", "sh", "-c", script]);
                    cmd.timeout(Duration::from_secs(120));
                    barrier.wait();
                    (n, cmd.run())
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let by_id: HashMap<String, usize> = spawned.iter().map(|(n, out)| (out.id(), *n)).collect();
    assert_eq!(by_id.len(), SESSIONS, "ids are not all distinct");
    let ids: Vec<String> = by_id.keys().cloned().collect();
    let numbered_ids: Vec<(String, usize)> = by_id.iter().map(|(id, &n)| (id.clone(), n)).collect();

    let stop = AtomicBool::new(false);
    let problems = Problems::default();
    let (ps_rounds, tail_rounds, rm_rounds) = thread::scope(|sc| {
        let ps = sc.spawn(|| ps_loop(&t, &stop, &problems));
        let tail = sc.spawn(|| tail_loop(&t, &numbered_ids, &stop, &problems));
        let rm = sc.spawn(|| rm_loop(&t, &stop, &problems));
        for id in &ids {
            t.wait_ended(id, Duration::from_secs(300));
        }
        stop.store(true, Ordering::Relaxed);
        (ps.join().unwrap(), tail.join().unwrap(), rm.join().unwrap())
    });
    let problems = problems.0.into_inner().unwrap();
    assert!(
        problems.is_empty(),
        "{} problems while the sessions ran (ps {ps_rounds}, tail {tail_rounds}, rm {rm_rounds} rounds):\n{}",
        problems.len(),
        problems.join("\n\n")
    );
    eprintln!(
        "watchers: codex-ps {ps_rounds}, codex-tail {tail_rounds}, codex-rm {rm_rounds} rounds"
    );
    assert!(ps_rounds > 0 && tail_rounds > 0 && rm_rounds > 0);

    for (id, n) in &by_id {
        let rec = t.record(id);
        assert_eq!(rec["exit_code"], (n % 50) as i64, "{id}: {rec:#}");
        assert_eq!(rec["dropped_bytes"], 0, "{id}: {rec:#}");
        for (log, stream, bytes) in [
            ("stdout.log", "out", "stdout_bytes"),
            ("stderr.log", "err", "stderr_bytes"),
        ] {
            let expected = numbered(*n, stream);
            let got = t.read(id, log);
            assert!(
                got == expected,
                "{id} {log}: {} bytes, not its {} numbered lines in order (first difference at byte {:?})",
                got.len(),
                LINES,
                got.iter().zip(&expected).position(|(a, b)| a != b)
            );
            assert_eq!(rec[bytes], expected.len() as u64, "{id}: {rec:#}");
        }
    }
    // What the tools read back is what the logs hold.
    for (id, n) in numbered_ids.iter().take(5) {
        let out = t.tool("codex-tail", &["-n", "all", "--stream", "err", id]);
        out.expect_success();
        out.check(
            out.stderr == numbered(*n, "err") && out.stdout.is_empty(),
            "codex-tail -n all differs from the log",
        );
    }
    let listed = t.tool("codex-ps", &["-q", "-f", "status=exited"]);
    listed.expect_success();
    let listed: HashSet<String> = listed.stdout_str().lines().map(String::from).collect();
    let all: HashSet<String> = ids.into_iter().collect();
    assert!(all.is_subset(&listed), "codex-ps -q misses load sessions");
}
