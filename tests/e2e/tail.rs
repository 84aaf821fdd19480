//! End-to-end tests of codex-tail against real sessions: the "Done when"
//! items of issue 4 (every option, a last line without newline, a 0-byte
//! log, interleaved stdout and stderr kept in order, `-f` with the
//! session's exit code, lines as they come), then lost and failed
//! sessions, usage errors, rotation, binary bytes and large logs.

use std::fs;
use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::{json, Value};
use shared::{Status, Timestamp};

use crate::support::*;

/// Runs `codex-tail --root ROOT ARGS...`.
fn tail(t: &TestRoot, args: &[&str]) -> Output {
    t.tool("codex-tail", args)
}

/// Runs `sh -c '"$@" 2>&1' sh codex-tail --root ROOT ARGS...`: both of
/// codex-tail's streams into one pipe, as a user's `2>&1` does.
fn tail_merged(t: &TestRoot, args: &[&str]) -> Output {
    let (bin, root) = (bin("codex-tail"), ["--root", s(t.root())]);
    t.command("sh")
        .args(["-c", "\"$@\" 2>&1", "sh", s(&bin)])
        .args(root)
        .args(args)
        .run()
}

/// Spawns `sh -c SCRIPT` with codex-spawn options `opts`; returns its id.
fn spawn_sh(t: &TestRoot, opts: &[&str], script: &str) -> String {
    t.spawn_id(&[opts, &["--", "sh", "-c", script]].concat())
}

/// Spawns `sh -c SCRIPT` and waits until it has ended.
fn done_sh(t: &TestRoot, script: &str) -> String {
    let id = spawn_sh(t, &[], script);
    t.wait_ended(&id, WAIT);
    id
}

/// Lines `a..=b`, each with its newline.
fn seq(a: u64, b: u64) -> String {
    (a..=b).map(|i| format!("{i}\n")).collect()
}

/// Fails unless codex-tail exited 0 with exactly `out` on stdout and `err`
/// on stderr.
fn expect_exact(o: &Output, out: &str, err: &str) {
    o.expect_success();
    expect_streams(o, out.as_bytes(), err.as_bytes());
}

/// Fails unless stdout and stderr are exactly these bytes.
fn expect_streams(o: &Output, out: &[u8], err: &[u8]) {
    if o.stdout != out || o.stderr != err {
        o.fail(&format!(
            "expected stdout {:?} and stderr {:?}",
            String::from_utf8_lossy(out),
            String::from_utf8_lossy(err)
        ));
    }
}

/// Every stdout line of `--json` output, checked to be an object with
/// exactly the fields id, stream ("stdout"/"stderr"), time (RFC 3339 UTC,
/// milliseconds) and line, all strings.
fn json_lines(o: &Output) -> Vec<Value> {
    o.expect_success()
        .check(o.stderr.is_empty(), "--json writes nothing on stderr");
    o.stdout_str()
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l)
                .unwrap_or_else(|e| o.fail(&format!("not a JSON line: {l:?}: {e}")));
            let typed = v.as_object().is_some_and(|m| m.len() == 4)
                && v["id"].is_string()
                && v["line"].is_string()
                && (v["stream"] == "stdout" || v["stream"] == "stderr")
                && v["time"].as_str().is_some_and(|s| ms_time(s).is_some());
            if !typed {
                o.fail(&format!("not an {{id, stream, time, line}} object: {l}"));
            }
            v
        })
        .collect()
}

/// (stream, line) of each JSON object.
fn stream_lines(v: &[Value]) -> Vec<(String, String)> {
    v.iter()
        .map(|v| {
            let f = |k: &str| v[k].as_str().unwrap().to_string();
            (f("stream"), f("line"))
        })
        .collect()
}

/// `s` parsed, if it is RFC 3339 UTC with exactly milliseconds:
/// `2026-11-23T20:00:30.123Z`.
fn ms_time(s: &str) -> Option<Timestamp> {
    let b = s.as_bytes();
    let shape =
        b.len() == 24 && b[19] == b'.' && b[20..23].iter().all(u8::is_ascii_digit) && b[23] == b'Z';
    shape.then(|| Timestamp::parse_rfc3339(s).ok()).flatten()
}

/// The numbers in `lines`, checked to rise one by one up to `last`, with
/// no repeat; with `gaps`, jumps are allowed (output rotated away before it
/// was read). A line may be cut (the end of a number whose start was
/// rotated away) only first, or right after a gap.
fn numbers(lines: &[&str], last: u64, gaps: bool) -> Result<Vec<u64>, String> {
    let mut nums: Vec<u64> = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        let prev = nums.last().copied();
        let n: Option<u64> = l.parse().ok();
        let whole = lines.get(i + 1).and_then(|x| x.parse::<u64>().ok());
        let before_next = whole.filter(|&x| x > 0).map(|x| (x - 1).to_string());
        let cut = (i == 0 || gaps)
            && before_next.is_some_and(|b| {
                b.ends_with(l) && b.len() > l.len() && n.is_none_or(|n| n + 1 != whole.unwrap())
            })
            && whole.is_some_and(|x| prev.is_none_or(|p| x > p + 1));
        match (n, prev) {
            _ if cut => continue,
            (Some(n), None) => nums.push(n),
            (Some(n), Some(p)) if n == p + 1 || (gaps && n > p + 1) => nums.push(n),
            _ => {
                return Err(format!(
                    "line {} is {l:?} after {prev:?}: a repeat, a gap or a broken line",
                    i + 1
                ))
            }
        }
    }
    match nums.last() {
        Some(&n) if n == last => Ok(nums),
        _ => Err(format!("the numbers do not end at {last}")),
    }
}

/// codex-tail running in the background with its stdout read line by
/// line as it comes; killed (by pid) if still running when dropped.
struct Follower {
    child: Child,
    desc: String,
    lines: mpsc::Receiver<Vec<u8>>,
    stderr: Arc<Mutex<Vec<u8>>>,
    stderr_done: Option<thread::JoinHandle<()>>,
}

impl Follower {
    fn start(t: &TestRoot, args: &[&str]) -> Follower {
        let mut cmd = t.tool_cmd("codex-tail");
        cmd.args(args);
        let cmd = cmd.cmd_mut();
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let desc = format!("codex-tail {}", args.join(" "));
        let mut child = cmd.spawn().expect("starting codex-tail");
        let (tx, lines) = mpsc::channel();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        thread::spawn(move || loop {
            let mut line = Vec::new();
            match out.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            }
        });
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let (buf, mut err) = (Arc::clone(&stderr), child.stderr.take().unwrap());
        let stderr_done = thread::spawn(move || {
            let mut chunk = [0u8; 4096];
            while let Ok(n @ 1..) = std::io::Read::read(&mut err, &mut chunk) {
                buf.lock().unwrap().extend_from_slice(&chunk[..n]);
            }
        });
        Follower {
            child,
            desc,
            lines,
            stderr,
            stderr_done: Some(stderr_done),
        }
    }

    /// The next line of stdout (with its newline), or a failure after
    /// `timeout`.
    fn line(&self, timeout: Duration) -> Vec<u8> {
        self.lines.recv_timeout(timeout).unwrap_or_else(|_| {
            panic!(
                "`{}`: no line within {timeout:?}; stderr: {}",
                self.desc,
                String::from_utf8_lossy(&self.stderr.lock().unwrap())
            )
        })
    }

    /// Waits for codex-tail to exit (failing after `timeout`); returns its
    /// exit code, the stdout lines not yet taken and its stderr.
    fn finish(&mut self, timeout: Duration) -> (Option<i32>, Vec<Vec<u8>>, String) {
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(st) = self.child.try_wait().expect("waiting for codex-tail") {
                break st;
            }
            if Instant::now() >= deadline {
                panic!("`{}` still running after {timeout:?}", self.desc);
            }
            thread::sleep(POLL);
        };
        let mut rest = Vec::new();
        while let Ok(l) = self.lines.recv_timeout(Duration::from_secs(10)) {
            rest.push(l);
        }
        if let Some(h) = self.stderr_done.take() {
            let _ = h.join();
        }
        let err = String::from_utf8_lossy(&self.stderr.lock().unwrap()).into_owned();
        (status.code(), rest, err)
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

// ---------------------------------------------------------------------
// The options, against finished sessions.
// ---------------------------------------------------------------------

/// Arguments of codex-tail (then the id), and its exact stdout and stderr;
/// arguments starting with `2>&1` run through [`tail_merged`].
type Case<'a> = (&'a [&'a str], &'a str, &'a str);

/// Runs every case against session `id`.
fn expect_cases(t: &TestRoot, id: &str, cases: &[Case]) {
    for (args, out, err) in cases {
        let o = match args.split_first() {
            Some((&"2>&1", rest)) => tail_merged(t, &[rest, &[id]].concat()),
            _ => tail(t, &[args, &[id][..]].concat()),
        };
        expect_exact(&o, out, err);
    }
}

#[test]
fn lines_last_n_from_n_and_all() {
    let t = TestRoot::new("tail-lines");
    // 31 lines: 1..15 on stdout, "err" on stderr, 16..30 on stdout.
    let id = done_sh(&t, "seq 1 15; echo err >&2; seq 16 30");
    let (s1_30, s15_30, s16_30) = (seq(1, 30), seq(15, 30), seq(16, 30));
    // Merged, the stderr line sits where it was written.
    let all = seq(1, 15) + "err\n" + &s16_30;
    let from15 = &all[all.find("15\n").unwrap()..];
    let cases: &[Case] = &[
        (&[], &seq(21, 30), ""),
        (&["-n", "3"], &seq(28, 30), ""),
        (&["--lines", "3"], &seq(28, 30), ""),
        (&["-n", "15"], &s16_30, ""),
        (&["-n", "16"], &s16_30, "err\n"),
        (&["-n", "17"], &s15_30, "err\n"),
        (&["-n", "0"], "", ""),
        (&["-n", "+30"], &seq(29, 30), ""),
        (&["-n", "+16"], &s16_30, "err\n"),
        (&["-n", "+17"], &s16_30, ""),
        (&["-n", "+32"], "", ""),
        (&["-n", "+1"], &s1_30, "err\n"),
        (&["-n", "all"], &s1_30, "err\n"),
        (&["-n", "1000"], &s1_30, "err\n"),
        (&["2>&1", "-n", "all"], &all, ""),
        (&["2>&1", "-n", "+15"], from15, ""),
    ];
    expect_cases(&t, &id, cases);
}

#[test]
fn bytes_are_the_last_n_as_written() {
    let t = TestRoot::new("tail-bytes");
    let id = done_sh(
        &t,
        r"printf 'hello\nworld\n'; printf 'ERR\n' >&2; printf tail",
    );
    let cases: &[Case] = &[
        (&["-c", "3"], "ail", ""),
        (&["-c", "8"], "tail", "ERR\n"),
        (&["-c", "0"], "", ""),
        (&["-c", "6", "--stream", "out"], "d\ntail", ""),
        (&["-c", "6", "--stream", "err"], "", "ERR\n"),
        (&["2>&1", "-c", "10"], "d\nERR\ntail", ""),
        (&["2>&1", "--bytes", "10"], "d\nERR\ntail", ""),
        (&["2>&1", "-c", "1000"], "hello\nworld\nERR\ntail", ""),
    ];
    expect_cases(&t, &id, cases);
}

#[test]
fn stream_selects_stdout_stderr_or_both() {
    let t = TestRoot::new("tail-stream");
    let id = done_sh(&t, "echo o1; echo e1 >&2; echo o2; echo e2 >&2");
    let cases: &[Case] = &[
        (&["--stream", "out"], "o1\no2\n", ""),
        (&["--stream", "err"], "", "e1\ne2\n"),
        (&["--stream", "all"], "o1\no2\n", "e1\ne2\n"),
        (&[], "o1\no2\n", "e1\ne2\n"),
        (&["--stream", "err", "-n", "1"], "", "e2\n"),
        (&["--stream", "out", "-n", "1"], "o2\n", ""),
        (&["2>&1", "--stream", "all"], "o1\ne1\no2\ne2\n", ""),
        (&["2>&1", "-n", "3"], "e1\no2\ne2\n", ""),
        (&["2>&1", "--stream", "out"], "o1\no2\n", ""),
    ];
    expect_cases(&t, &id, cases);
    let o = tail(&t, &["--stream", "err", "--json", &id]);
    let got = stream_lines(&json_lines(&o));
    let want = [("stderr", "e1"), ("stderr", "e2")].map(|(s, l)| (s.into(), l.into()));
    o.check(got == want, &format!("--stream err --json gave {got:?}"));
}

#[test]
fn timestamps_prefix_the_read_time_in_milliseconds() {
    let t = TestRoot::new("tail-timestamps");
    let before = Timestamp::now();
    let id = done_sh(&t, "echo a; echo b >&2; sleep 0.3; echo c");
    let after = Timestamp::now();
    for flag in ["-t", "--timestamps"] {
        let o = tail(&t, &[flag, &id]);
        o.expect_success();
        let parse = |text: &str, want: &[&str]| -> Vec<Timestamp> {
            let lines: Vec<&str> = text.lines().collect();
            o.check(lines.len() == want.len(), "one line per session line");
            lines
                .iter()
                .zip(want)
                .map(|(l, w)| {
                    let (time, rest) = l.split_once(' ').unwrap_or(("", ""));
                    o.check(rest == *w, &format!("{l:?} is not `TIME {w}`"));
                    let ts = ms_time(time)
                        .unwrap_or_else(|| o.fail(&format!("{time:?}: not RFC 3339 UTC ms")));
                    o.check(
                        ts >= before.minus(Duration::from_millis(1)) && ts <= after,
                        &format!("{time} is not between the spawn and the end"),
                    );
                    ts
                })
                .collect()
        };
        let out = parse(&o.stdout_str(), &["a", "c"]);
        let err = parse(&o.stderr_str(), &["b"]);
        o.check(
            out[0] <= err[0] && err[0] <= out[1] && out[0] < out[1],
            "times follow the order of arrival",
        );
        // The same times as --json gives.
        let j = json_lines(&tail(&t, &["--json", &id]));
        let jt: Vec<Timestamp> = j
            .iter()
            .map(|v| ms_time(v["time"].as_str().unwrap()).unwrap())
            .collect();
        o.check(
            jt == [out[0], err[0], out[1]],
            "-t and --json disagree on times",
        );
    }
    let m = tail_merged(&t, &["-t", &id]);
    let texts: Vec<&str> = m
        .stdout
        .split(|&b| b == b'\n')
        .map(|l| std::str::from_utf8(l).unwrap_or("").get(25..).unwrap_or(""))
        .collect();
    m.check(texts == ["a", "b", "c", ""], "-t 2>&1 keeps a, b, c");
}

#[test]
fn since_and_until_cut_by_time_and_duration() {
    let t = TestRoot::new("tail-since");
    let id = done_sh(
        &t,
        "echo early; echo early-err >&2; sleep 1.5; echo late; echo late-err >&2",
    );
    let all = json_lines(&tail(&t, &["--json", "-n", "all", &id]));
    let time = |i: usize| ms_time(all[i]["time"].as_str().unwrap()).unwrap();
    assert_eq!(all.len(), 4, "{all:?}");
    let (early, late) = (time(1), time(2));
    assert!(
        late.as_nanos() - early.as_nanos() >= 1_000_000_000,
        "the lines 1.5 s apart were read {} ms apart",
        (late.as_nanos() - early.as_nanos()) / 1_000_000
    );
    let mid = Timestamp((early.as_nanos() + late.as_nanos()) / 2);
    let mid_z = mid.to_rfc3339_millis();
    // The same instant written with an offset.
    let mid_plus2 = Timestamp(mid.as_nanos() + 7_200_000_000_000)
        .to_rfc3339_millis()
        .replace('Z', "+02:00");
    let (late_out, late_err) = ("late\n", "late-err\n");
    let (early_out, early_err) = ("early\n", "early-err\n");
    for cut in [mid_z.as_str(), &mid_plus2] {
        let cases: &[Case] = &[
            (&["--since", cut], late_out, late_err),
            (&["--until", cut], early_out, early_err),
            (&["--since", cut, "--until", cut], "", ""),
            (&["--since", cut, "-n", "1"], "", late_err),
            (&["--until", cut, "-n", "1"], "", early_err),
            (&["--since", cut, "-n", "all"], late_out, late_err),
            (&["--until", cut, "-n", "+2"], "", early_err),
            (&["2>&1", "--since", cut], "late\nlate-err\n", ""),
        ];
        expect_cases(&t, &id, cases);
        let j = json_lines(&tail(&t, &["--since", cut, "--json", &id]));
        assert_eq!(stream_lines(&j), stream_lines(&all[2..]), "--since {cut}");
    }
    // Durations ago: the cut between the two lines, in ms from now.
    let ms = (Timestamp::now().as_nanos() - mid.as_nanos()) / 1_000_000;
    expect_cases(
        &t,
        &id,
        &[(&["--since", &format!("{ms}ms")], late_out, late_err)],
    );
    let ms = (Timestamp::now().as_nanos() - mid.as_nanos()) / 1_000_000;
    expect_cases(
        &t,
        &id,
        &[(&["--until", &format!("{ms}ms")], early_out, early_err)],
    );
    let both = ("early\nlate\n", "early-err\nlate-err\n");
    let cases: &[Case] = &[
        (&["--since", "1h"], both.0, both.1),
        (&["--since", "90s"], both.0, both.1),
        (&["--until", "10m"], "", ""),
        (&["--since", "2h", "--until", "1h"], "", ""),
    ];
    expect_cases(&t, &id, cases);
}

#[test]
fn json_objects_are_typed_and_lossless() {
    let t = TestRoot::new("tail-json");
    let id = done_sh(
        &t,
        "echo out; printf 'err \"q\" \\\\ \\011x\\n' >&2; printf 'bad\\377\\376x\\n'; printf 'caf\\303\\251\\n'",
    );
    let o = tail(&t, &["--json", &id]);
    let text = o.stdout_str();
    let lines: Vec<&str> = text.lines().collect();
    o.check(lines.len() == 4, "one object per line");
    // The line with bytes that are not UTF-8, as raw text: one \udcXX escape per byte.
    o.check(
        lines[2].contains(r#""line":"bad\udcff\udcfex""#),
        "bytes not UTF-8 become \\udcXX escapes",
    );
    let valid: Vec<Value> = [0, 1, 3]
        .iter()
        .map(|&i| serde_json::from_str(lines[i]).unwrap_or_else(|e| o.fail(&format!("{e}"))))
        .collect();
    let want = |i: usize, stream: &str, line: &str| json!({"id": id, "stream": stream, "time": valid[i]["time"], "line": line});
    let err_line = "err \"q\" \\ \tx";
    let want = [
        want(0, "stdout", "out"),
        want(1, "stderr", err_line),
        want(2, "stdout", "café"),
    ];
    assert_eq!(valid, want);
    let err = json_lines(&tail(&t, &["--json", "-n", "2", "--stream", "err", &id]));
    assert_eq!(err, [want[1].clone()]);
    // Python's surrogateescape gives back the very bytes.
    let py = "import sys, json\nfor l in sys.stdin:\n    sys.stdout.buffer.write(json.loads(l)['line'].encode('utf-8', 'surrogateescape') + b'\\n')\n";
    let rt = t
        .command("sh")
        .args(["-c", "\"$@\" | python3 -c \"$PY\"", "sh"])
        .env("PY", py)
        .arg(bin("codex-tail"))
        .args(["--root", s(t.root()), "--json", &id])
        .run();
    expect_streams(
        &rt,
        b"out\nerr \"q\" \\ \tx\nbad\xff\xfex\ncaf\xc3\xa9\n",
        b"",
    );
}

#[test]
fn several_selectors_prefix_each_line_with_its_id() {
    let t = TestRoot::new("tail-several");
    let a = done_sh(&t, "echo a1; echo a2 >&2; echo a3");
    let b = done_sh(&t, "echo b1; printf b2");
    // The lines of `text` prefixed with `id`, without the prefix.
    let prefixed = |o: &Output, text: String, id: &str| -> Vec<String> {
        let lines = text.lines().map(|l| match l.split_once(" | ") {
            Some((p, rest)) if p == a || p == b => (p == id).then(|| rest.to_string()),
            _ => o.fail(&format!("{l:?} is not prefixed `ID | `")),
        });
        lines.flatten().collect()
    };
    let a_prefix = &a[..a.len() - 1];
    for sel in [[a.as_str(), b.as_str()], [a_prefix, "0"], ["1", "0"]] {
        let o = tail(&t, &sel);
        o.expect_success();
        o.check(
            prefixed(&o, o.stdout_str(), &a) == ["a1", "a3"],
            "A's stdout",
        );
        o.check(prefixed(&o, o.stderr_str(), &a) == ["a2"], "A's stderr");
        o.check(
            prefixed(&o, o.stdout_str(), &b) == ["b1", "b2"],
            "B's stdout",
        );
        o.check(prefixed(&o, o.stderr_str(), &b).is_empty(), "B's stderr");
    }
    let o = tail(&t, &["-n", "1", &a, &b]);
    expect_exact(&o, &format!("{a} | a3\n{b} | b2\n"), "");
    let j = json_lines(&tail(&t, &["--json", &a, &b]));
    let ids: Vec<&str> = j.iter().map(|v| v["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [&a, &a, &a, &b, &b], "{j:?}");
    // One session: no prefix; none named: the newest.
    expect_exact(&tail(&t, &[&b]), "b1\nb2\n", "");
    expect_exact(&tail(&t, &["0"]), "b1\nb2\n", "");
    expect_exact(&tail(&t, &[]), "b1\nb2\n", "");
    expect_exact(&tail(&t, &["1"]), "a1\na3\n", "a2\n");
    let o = tail(&t, &["no-such-session"]);
    o.expect_code(1).expect_one_error_line("no-such-session");
}

// ---------------------------------------------------------------------
// Odd logs: no final newline, empty, \r and binary, through a pty.
// ---------------------------------------------------------------------

#[test]
fn last_line_without_newline_is_printed_as_a_line() {
    let t = TestRoot::new("tail-nonl");
    let id = done_sh(&t, "printf 'a\\nb'; printf 'x\\ny' >&2");
    assert_eq!(t.read(&id, "stdout.log"), b"a\nb", "{}", t.listing());
    let cases: &[Case] = &[
        (&["--stream", "out"], "a\nb\n", ""),
        (&["--stream", "out", "-n", "1"], "b\n", ""),
        (&["-n", "all"], "a\nb\n", "x\ny\n"),
        (&["-f"], "a\nb\n", "x\ny\n"),
        (&["-c", "1", "--stream", "out"], "b", ""),
    ];
    expect_cases(&t, &id, cases);
    let j = json_lines(&tail(&t, &["--json", "--stream", "out", &id]));
    let got: Vec<&str> = j.iter().map(|v| v["line"].as_str().unwrap()).collect();
    assert_eq!(got, ["a", "b"], "{j:?}");
}

#[test]
fn unterminated_line_keeps_its_place_in_the_merge() {
    let t = TestRoot::new("tail-nonl-order");
    // "b" (no newline) was logged before "x": the merge says so however
    // the lines are chosen.
    let id = done_sh(&t, "printf 'a\\nb'; printf 'x\\ny' >&2");
    let cases: &[Case] = &[
        (&["2>&1", "-n", "4"], "a\nb\nx\ny\n", ""),
        (&["2>&1", "-n", "all"], "a\nb\nx\ny\n", ""),
        (&["2>&1", "-n", "+2"], "b\nx\ny\n", ""),
    ];
    expect_cases(&t, &id, cases);
}

#[test]
fn empty_log_prints_nothing() {
    let t = TestRoot::new("tail-empty");
    let id = done_sh(&t, "true");
    assert!(t.read(&id, "stdout.log").is_empty());
    assert!(t.read(&id, "stderr.log").is_empty());
    let none: &[&[&str]] = &[
        &[],
        &["-n", "all"],
        &["-n", "+1"],
        &["-c", "9"],
        &["--json"],
        &["-f"],
    ];
    let cases: Vec<Case> = none.iter().map(|a| (*a, "", "")).collect();
    expect_cases(&t, &id, &cases);
}

#[test]
fn progress_bars_and_binary_bytes_pass_through_untouched() {
    let t = TestRoot::new("tail-binary");
    let id = done_sh(&t, "printf 'p 10%%\\rp 50%%\\rdone\\n\\000\\001\\377\\n'");
    let want: &[u8] = b"p 10%\rp 50%\rdone\n\x00\x01\xff\n";
    assert_eq!(t.read(&id, "stdout.log"), want, "{}", t.listing());
    for args in [&[][..], &["-n", "all"], &["-f"], &["-c", "100"]] {
        let o = tail(&t, &[args, &[id.as_str()]].concat());
        o.expect_success();
        expect_streams(&o, want, b"");
    }
    let o = tail(&t, &["-n", "1", &id]);
    expect_streams(&o, b"\x00\x01\xff\n", b"");
    let o = tail(&t, &["--json", &id]);
    o.check(
        o.stdout_str().contains(r#""line":"p 10%\rp 50%\rdone""#)
            && o.stdout_str().contains(r#""line":"\u0000\u0001\udcff""#),
        "--json escapes \\r, control bytes and bad bytes",
    );

    // Through a pty: whatever the terminal made of it, as logged.
    let id = t.spawn_id(&[
        "-t",
        "--",
        "printf",
        "p 10%%\\rp 50%%\\rdone\\n\\033[1mbold\\033[0m\\n",
    ]);
    t.wait_ended(&id, WAIT);
    let log = t.read(&id, "stdout.log");
    assert!(
        log.windows(16).any(|w| w == b"p 10%\rp 50%\rdone"),
        "pty log {:?}",
        String::from_utf8_lossy(&log)
    );
    let mut want = log.clone();
    if !want.ends_with(b"\n") {
        want.push(b'\n');
    }
    expect_streams(tail(&t, &["-n", "all", &id]).expect_success(), &want, b"");
}

// ---------------------------------------------------------------------
// Order of stdout and stderr.
// ---------------------------------------------------------------------

#[test]
fn interleaved_stdout_and_stderr_keep_their_order_every_time() {
    let t = TestRoot::new("tail-order");
    for round in 0..20 {
        let id = done_sh(&t, "echo a; echo b >&2; echo c");
        let m = tail_merged(&t, &[&id]);
        m.check(
            m.stdout == b"a\nb\nc\n" && m.code() == Some(0),
            &format!("round {round}: `codex-tail ID 2>&1` is not a, b, c"),
        );
        expect_exact(&tail(&t, &[&id]), "a\nc\n", "b\n");
        let j = json_lines(&tail(&t, &["--json", &id]));
        let want = [("stdout", "a"), ("stderr", "b"), ("stdout", "c")];
        assert_eq!(
            stream_lines(&j),
            want.map(|(s, l)| (s.to_string(), l.to_string())),
            "round {round}"
        );
    }
}

/// A burst large enough to be spliced in bulk (announcements of its
/// writes turned off) leaves the log whole, and once it is over each write
/// is announced again: the lines after it keep their exact order, on
/// either stream.
#[test]
fn after_a_bulk_burst_the_order_is_exact_again() {
    let t = TestRoot::new("tail-bulk");
    // Lines of 101 bytes: 4 MB on stdout, then 3 MB on stderr.
    let script = "y=$(printf '%0100d' 0); \
                  yes $y | head -c 4040000; sleep 0.3; echo a; echo b >&2; echo c; \
                  yes $y | head -c 3030000 >&2; sleep 0.3; echo f; echo g >&2";
    for round in 0..3 {
        let id = done_sh(&t, script);
        let rec = t.wait_ended(&id, WAIT);
        let counts = (&rec["stdout_bytes"], &rec["stderr_bytes"]);
        assert_eq!(counts, (&json!(4_040_006), &json!(3_030_004)), "{rec:#}");
        let short: Vec<(String, String)> =
            stream_lines(&json_lines(&tail(&t, &["-n", "all", "--json", &id])))
                .into_iter()
                .filter(|(_, line)| line.len() < 100)
                .collect();
        let want = [
            ("stdout", "a"),
            ("stderr", "b"),
            ("stdout", "c"),
            ("stdout", "f"),
            ("stderr", "g"),
        ];
        assert_eq!(
            short,
            want.map(|(s, l)| (s.to_string(), l.to_string())),
            "round {round}: {}",
            t.path().display()
        );
    }
}

#[test]
fn large_output_keeps_each_stream_whole_and_in_order() {
    let t = TestRoot::new("tail-large");
    let id = done_sh(&t, "seq 1 100000 & seq 1 100000 >&2; wait");
    let nums = seq(1, 100000);
    let cases: &[Case] = &[
        (&["-n", "all", "--stream", "out"], &nums, ""),
        (&["-n", "all", "--stream", "err"], "", &nums),
        (&["-n", "all"], &nums, &nums),
    ];
    for (args, out, err) in cases {
        let o = tail(&t, &[args, &[id.as_str()][..]].concat());
        let ok = o.stdout == out.as_bytes() && o.stderr == err.as_bytes();
        assert!(
            ok && o.code() == Some(0),
            "{}: not each stream whole",
            o.desc
        );
    }
    // -n 10: the last 10 lines of the merged stream.
    let all = stream_lines(&json_lines(&tail(&t, &["-n", "all", "--json", &id])));
    assert_eq!(all.len(), 200_000);
    let ten = stream_lines(&json_lines(&tail(&t, &["-n", "10", "--json", &id])));
    assert_eq!(ten, all[all.len() - 10..], "-n 10 is not the end of -n all");
    let o = tail(&t, &["-n", "10", &id]);
    for (stream, text) in [("stdout", o.stdout_str()), ("stderr", o.stderr_str())] {
        let want: String = ten
            .iter()
            .filter(|(s, _)| s == stream)
            .map(|(_, l)| format!("{l}\n"))
            .collect();
        o.check(text == want, &format!("-n 10 {stream} differs from --json"));
        let lines: Vec<&str> = text.lines().collect();
        if !lines.is_empty() {
            numbers(&lines, 100_000, false).unwrap_or_else(|e| o.fail(&e));
        }
    }
}

// ---------------------------------------------------------------------
// --follow.
// ---------------------------------------------------------------------

#[test]
fn follow_exits_with_the_session_code() {
    let t = TestRoot::new("tail-follow-codes");
    for (end, code) in [("", 0), ("; exit 3", 3), ("; kill -TERM $$", 143)] {
        let id = spawn_sh(
            &t,
            &[],
            &format!("echo one; sleep 0.3; echo two >&2; sleep 0.2; echo three{end}"),
        );
        let o = tail(&t, &["-f", &id]);
        o.expect_code(code);
        expect_streams(&o, b"one\nthree\n", b"two\n");
        let rec = t.wait_ended(&id, WAIT);
        assert_eq!(rec["exit_code"], json!(code), "{rec:#}");
        // Already over: the tail, and the code at once.
        let o = tail(&t, &["--follow", &id]);
        o.expect_code(code).check(
            o.elapsed < Duration::from_secs(4),
            "an ended session returns at once",
        );
        expect_streams(&o, b"one\nthree\n", b"two\n");
    }
}

#[test]
fn follow_prints_lines_as_they_come_and_exits_4() {
    let t = TestRoot::new("tail-follow-live");
    // The session holds at a gate after its first line: "1" must come
    // while it runs, whatever the machine's load.
    let gate = t.path().join("gate");
    let script = format!(
        "echo 1; while [ ! -e {} ]; do sleep 0.05; done; echo 2; sleep 0.2; echo 3; exit 4",
        sh_quote(s(&gate))
    );
    let id = spawn_sh(&t, &[], &script);
    let mut f = Follower::start(&t, &["-f", &id]);
    let first = f.line(Duration::from_secs(10));
    assert_eq!(first, b"1\n");
    assert_eq!(t.status(&id), Status::Running, "{}", t.listing());
    fs::write(&gate, "").unwrap();
    let (code, rest, err) = f.finish(Duration::from_secs(15));
    assert_eq!(rest, [b"2\n".to_vec(), b"3\n".to_vec()], "stderr: {err}");
    assert_eq!(code, Some(4), "stderr: {err}");
    assert_eq!(err, "");
}

#[test]
fn follow_several_sessions_until_all_end() {
    let t = TestRoot::new("tail-follow-several");
    let a = spawn_sh(&t, &[], "echo a; sleep 0.3");
    let b = spawn_sh(&t, &[], "echo b; sleep 0.6; exit 5");
    let c = spawn_sh(&t, &[], "echo c; sleep 1.2; echo c-end; exit 7");
    for round in 0..2 {
        let o = tail(&t, &["-f", &a, &b, &c]);
        o.expect_code(5);
        let mut got: Vec<String> = o.stdout_str().lines().map(str::to_string).collect();
        got.sort();
        let mut want =
            [(&a, "a"), (&b, "b"), (&c, "c"), (&c, "c-end")].map(|(i, l)| format!("{i} | {l}"));
        want.sort();
        o.check(
            got == want,
            &format!("round {round}: every line of the three sessions"),
        );
        o.check(o.stderr.is_empty(), "nothing on stderr");
    }
    let o = tail(&t, &["-f", &a, &a]);
    expect_exact(&o, "a\n", "");
}

#[test]
fn follow_a_lost_session_ends_with_125() {
    let t = TestRoot::new("tail-follow-lost");
    let id = spawn_sh(&t, &[], "echo started; sleep 60");
    let rec = t.record(&id);
    let (sup, pgid) = (int(&rec, "supervisor_pid") as i32, int(&rec, "pgid") as i32);
    let mut f = Follower::start(&t, &["-f", &id]);
    assert_eq!(f.line(Duration::from_secs(10)), b"started\n");
    assert!(sup > 1 && is_alive(sup), "supervisor {sup}");
    kill(Pid::from_raw(sup), Signal::SIGKILL).expect("kill -9 the supervisor");
    let (code, rest, err) = f.finish(Duration::from_secs(15));
    assert!(
        pgid > 1 && pgid != nix::unistd::getpgrp().as_raw(),
        "pgid {pgid}"
    );
    let _ = kill(Pid::from_raw(-pgid), Signal::SIGKILL);
    assert_eq!(code, Some(125), "stderr: {err}");
    assert!(rest.is_empty(), "{rest:?}");
    assert!(err.contains(&id) && err.contains("lost"), "stderr: {err:?}");
    assert_eq!(t.status(&id), Status::Lost);
}

#[test]
fn follow_a_failed_session_ends_with_125() {
    let t = TestRoot::new("tail-follow-failed");
    let id = done_sh(&t, "echo partial");
    let mut rec = t.record(&id);
    rec["state"] = json!("failed");
    rec["exit_code"] = Value::Null;
    rec["error"] = json!("e2e: made to fail");
    t.write_record(&id, &rec);
    assert_eq!(t.status(&id), Status::Failed, "{}", t.listing());
    let o = tail(&t, &["-f", &id]);
    o.expect_code(125)
        .check(o.stdout == b"partial\n", "the tail first")
        .check(
            o.stderr_str().contains("failed"),
            "a message says it failed",
        );
    expect_exact(&tail(&t, &[&id]), "partial\n", "");
}

#[test]
fn usage_errors_exit_2_or_125_with_follow() {
    let t = TestRoot::new("tail-usage");
    let id = done_sh(&t, "echo x");
    let cases: [&[&str]; 4] = [
        &["--stream", "bogus"],
        &["-n", "bogus"],
        &["--no-such-option"],
        &["-c", "x"],
    ];
    for args in cases {
        let o = tail(&t, &[args, &[id.as_str()]].concat());
        o.expect_code(2)
            .check(o.stdout.is_empty(), "nothing on stdout");
        for f in ["-f", "--follow"] {
            let o = tail(&t, &[&[f], args, &[id.as_str()]].concat());
            o.expect_code(125)
                .check(o.stdout.is_empty(), "nothing on stdout");
            o.check(!o.stderr.is_empty(), "an error message");
        }
    }
    // codex-tail's own failure: 1, and 125 with -f.
    tail(&t, &["no-such-session"]).expect_code(1);
    tail(&t, &["-f", "no-such-session"]).expect_code(125);
}

#[test]
fn invalid_time_is_a_usage_error() {
    let t = TestRoot::new("tail-badtime");
    let id = done_sh(&t, "echo x");
    for opt in ["--since", "--until"] {
        let o = tail(&t, &[opt, "yesterday", &id]);
        o.check(
            o.stderr_str().contains("yesterday"),
            "the error names the value",
        )
        .expect_code(2);
        tail(&t, &["-f", opt, "yesterday", &id]).expect_code(125);
    }
}

// ---------------------------------------------------------------------
// Rotation by --max-log-size.
// ---------------------------------------------------------------------

#[test]
fn rotated_logs_give_the_last_lines() {
    let t = TestRoot::new("tail-rotate");
    let id = t.spawn_id(&["--max-log-size", "1k", "--", "seq", "1", "2000"]);
    t.wait_ended(&id, WAIT);
    let dir = t.session_dir(&id);
    assert!(
        dir.join("stdout.log.1").exists(),
        "no rotation\n{}",
        t.listing()
    );
    expect_exact(&tail(&t, &["-n", "5", &id]), &seq(1996, 2000), "");
    let o = tail(&t, &["-n", "all", &id]);
    o.expect_success();
    let text = o.stdout_str();
    let lines: Vec<&str> = text.lines().collect();
    let nums = numbers(&lines, 2000, false).unwrap_or_else(|e| o.fail(&e));
    o.check(nums[0] < 2000 - 150, "both kept files are read");
}

/// Follows session `id` from its start to its end; checks that it exits 0
/// and prints numbers up to `last` as [`numbers`] wants, and every line
/// still in the logs at the end; returns the numbers.
fn follow_numbers(t: &TestRoot, id: &str, last: u64, gaps: bool) -> Vec<u64> {
    let mut f = Follower::start(t, &["-f", id]);
    let (code, lines, err) = f.finish(Duration::from_secs(30));
    let text = String::from_utf8_lossy(&lines.concat()).into_owned();
    let lines: Vec<&str> = text.lines().collect();
    let nums = numbers(&lines, last, gaps);
    // The first whole line in the logs left at the end.
    let kept = [t.read(id, "stdout.log.1"), t.read(id, "stdout.log")].concat();
    let kept = String::from_utf8_lossy(&kept).into_owned();
    let kept_first: u64 = kept
        .lines()
        .nth(1)
        .and_then(|l| l.parse().ok())
        .unwrap_or(0);
    let missing = nums.as_ref().map_or(0, |n| {
        last - kept_first + 1 - n.iter().filter(|&&n| n >= kept_first).count() as u64
    });
    assert!(
        code == Some(0) && nums.is_ok() && missing == 0,
        "codex-tail -f {id}: exit {code:?}, {:?}, {missing} lines from {kept_first} on \
         missing\nstderr: {err}\n{} lines on stdout, starting {:?}\n{}",
        nums.as_ref().err(),
        lines.len(),
        lines.iter().take(20).collect::<Vec<_>>(),
        t.listing()
    );
    nums.unwrap()
}

#[test]
fn follow_a_rotating_burst_repeats_nothing() {
    let t = TestRoot::new("tail-rotate-burst");
    let id = spawn_sh(&t, &["--max-log-size", "1k"], "sleep 0.5; seq 1 3000");
    // The burst outruns the follower: what rotated away unread is gone.
    follow_numbers(&t, &id, 3000, true);
}

#[test]
fn follow_a_paced_rotating_session_loses_nothing() {
    let t = TestRoot::new("tail-rotate-paced");
    // About 500 bytes per 100 ms: a rotation every 200 ms, which a
    // follower woken by inotify keeps up with.
    let script = "sleep 0.5; seq 1 3000 | while read i; do echo $i; \
                  case $i in *00) sleep 0.1;; esac; done";
    let id = spawn_sh(&t, &["--max-log-size", "1k"], script);
    let nums = follow_numbers(&t, &id, 3000, false);
    assert!(
        nums[0] <= 100,
        "started at {} though followed from the start",
        nums[0]
    );
}

// ---------------------------------------------------------------------
// Following across rotation, and partial lines.
// ---------------------------------------------------------------------

/// With `--max-log-size`, a session of many small writes keeps its index
/// bounded (compacted with the logs: it used to grow 24 bytes a write for
/// good); a follower stopped while the logs rotate several times says, on
/// stderr and exactly, how many bytes it missed (it used to skip them
/// silently), and prints every line still in the logs.
#[test]
fn a_follower_behind_rotation_says_what_it_missed_and_the_index_stays_bounded() {
    let t = TestRoot::new("tail-rotate-missed");
    let (go, end) = (t.path().join("go"), t.path().join("end"));
    // One write per line, each read on its own (not coalesced into one
    // index entry by a supervisor that fell behind).
    let script = "while [ ! -e \"$0\" ]; do sleep 0.02; done; \
                  seq 1 80000 | while read i; do echo $i; done; \
                  while [ ! -e \"$1\" ]; do sleep 0.02; done";
    let id = t.spawn_id(&[
        "--max-log-size",
        "4k",
        "--",
        "sh",
        "-c",
        script,
        s(&go),
        s(&end),
    ]);
    let mut f = Follower::start(&t, &["-f", "-n", "all", &id]);
    thread::sleep(Duration::from_millis(300));
    let pid = Pid::from_raw(f.child.id() as i32);
    kill(pid, Signal::SIGSTOP).unwrap();
    fs::write(&go, "").unwrap();
    let written: i64 = (1..=80000)
        .map(|i: i64| i.to_string().len() as i64 + 1)
        .sum();
    let index = t.session_dir(&id).join("index");
    let mut biggest = 0;
    assert!(
        eventually(Duration::from_secs(60), || {
            biggest = biggest.max(fs::metadata(&index).map_or(0, |m| m.len()));
            let ps = t.tool("codex-ps", &["--json", &id]);
            ps.one_json()["stdout_bytes"].as_i64() == Some(written)
        }),
        "the session did not write its lines\n{}",
        t.listing()
    );
    kill(pid, Signal::SIGCONT).unwrap();
    fs::write(&end, "").unwrap();
    let (code, lines, err) = f.finish(Duration::from_secs(30));
    assert_eq!(code, Some(0), "stderr: {err}");
    let index_size = fs::metadata(&index).unwrap().len();
    assert!(
        biggest.max(index_size) < 64 * 1024,
        "the index grew to {} bytes for 8 KiB of logs (80,000 writes)",
        biggest.max(index_size)
    );

    let text = String::from_utf8_lossy(&lines.concat()).into_owned();
    // A line 0 before the first, so that a hole at the start is one too.
    let printed: Vec<&str> = std::iter::once("0").chain(text.lines()).collect();
    let nums: Vec<u64> = printed.iter().map(|l| l.parse().unwrap()).collect();
    assert_eq!(
        nums.last(),
        Some(&80000),
        "the last line is missing; stderr: {err}"
    );
    // What it printed: lines in order with one hole, what it missed; the
    // first line after the hole may be the end of a line whose start was
    // rotated away.
    let i = nums
        .windows(2)
        .position(|w| w[1] != w[0] + 1)
        .expect("the follower missed nothing: no test");
    let a = nums[i];
    let (b, fragment) = match nums.get(i + 2) {
        Some(&n) if n != nums[i + 1] + 1 => (n, printed[i + 1].len() as u64 + 1),
        _ => (nums[i + 1], 0),
    };
    assert!(
        nums[i + 1..]
            .windows(2)
            .skip(usize::from(fragment > 0))
            .all(|w| w[1] == w[0] + 1),
        "more than one hole"
    );
    if fragment > 0 {
        assert!(
            (b - 1).to_string().ends_with(printed[i + 1]),
            "not a fragment"
        );
    }
    let missed_bytes: u64 = (a + 1..b)
        .map(|i| i.to_string().len() as u64 + 1)
        .sum::<u64>()
        - fragment;
    assert_eq!(
        err.trim(),
        format!(
            "codex-tail: {id}: missed {missed_bytes} bytes of stdout: rotated away \
             (--max-log-size) before they were read"
        ),
        "hole after {a}, {b}"
    );
    // Every line still in the logs was printed.
    let kept = [t.read(&id, "stdout.log.1"), t.read(&id, "stdout.log")].concat();
    let kept = String::from_utf8_lossy(&kept).into_owned();
    let first_kept: u64 = kept.lines().nth(1).unwrap().parse().unwrap();
    assert!(
        (first_kept..=80000).all(|n| nums[i + 1..].contains(&n)),
        "lines from {first_kept} on, still in the logs, are missing"
    );

    // --json says the same as an object of its own.
    let mut f = Follower::start(&t, &["-f", "--json", "-n", "all", &id]);
    let (code, lines, _) = f.finish(Duration::from_secs(30));
    assert_eq!(code, Some(0));
    assert!(
        lines
            .iter()
            .all(|l| serde_json::from_slice::<Value>(l).is_ok_and(|v| v["missed"].is_null())),
        "an ended session read whole misses nothing"
    );
}

/// `codex-tail -f` shows a line still missing its newline (a prompt, a
/// progress bar) as soon as it is written, and its rest once it comes;
/// it used to wait for the newline.
#[test]
fn follow_shows_a_prompt_before_its_newline() {
    use std::io::Read;
    let t = TestRoot::new("tail-follow-partial");
    let go = t.path().join("go");
    let script = "printf 'Continue? [y/N] '; while [ ! -e \"$0\" ]; do sleep 0.02; done; \
                  echo yes; printf '10%%\\r50%%\\r'; sleep 0.2; echo 100%";
    let id = t.spawn_id(&["--", "sh", "-c", script, s(&go)]);
    let mut cmd = t.tool_cmd("codex-tail");
    cmd.args(["-f", &id]);
    let mut child = cmd
        .cmd_mut()
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    t.track(child.id() as i32);
    let mut out = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n @ 1..) = out.read(&mut buf) {
            if tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    let shown = |seen: &mut Vec<u8>, want: &[u8]| {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !seen.ends_with(want) && Instant::now() < deadline {
            if let Ok(b) = rx.recv_timeout(Duration::from_millis(50)) {
                seen.extend_from_slice(&b);
            }
        }
        seen.ends_with(want)
    };
    assert!(
        shown(&mut seen, b"Continue? [y/N] "),
        "the prompt is not shown before its newline: {:?}",
        String::from_utf8_lossy(&seen)
    );
    fs::write(&go, "").unwrap();
    assert!(
        shown(&mut seen, b"10%\r50%\r"),
        "the progress is not shown before its newline: {:?}",
        String::from_utf8_lossy(&seen)
    );
    let status = child.wait().unwrap();
    while let Ok(b) = rx.recv_timeout(Duration::from_secs(5)) {
        seen.extend_from_slice(&b);
    }
    assert_eq!(status.code(), Some(0));
    assert_eq!(
        String::from_utf8_lossy(&seen),
        "Continue? [y/N] yes\n10%\r50%\r100%\n"
    );
}
