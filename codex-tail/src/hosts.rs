//! codex-tail of sessions on several hosts: one codex-tail per host, run
//! at once (a thread each), each asked for lines named `ID@DEST`
//! (`--host-label`: every line prefixed `ID@DEST | `, a `host` field in
//! JSON), their lines relayed as they come: stdout to stdout, stderr to
//! stderr, whole lines where they can be. Another host's codex-tail runs
//! through ssh (`cli::ssh`), this host's is this program run again.
//!
//! Session output is passed on byte for byte (rendered views are escaped
//! by the codex-tail that renders them); what a host's codex-tail says of
//! its own (`codex-tail: …`) comes out escaped, on one line, naming the
//! host.

use std::ffi::OsString;
use std::io::{self, Write};
use std::process::Command;
use std::sync::Mutex;

use ::cli::{ssh, Dest, Failure};
use clap::CommandFactory;

use crate::cli::Cli;

const TOOL: &str = "codex-tail";

/// Where the relayed pieces go: at once, or kept per host and printed in
/// host order when every host is done (`--screen`, `-c` without `-f`,
/// whose output is blocks rather than lines).
enum Sink {
    Now,
    Kept(Vec<(bool, Vec<u8>)>),
}

/// Runs one codex-tail per host of `groups` (each with its selectors) and
/// relays their output; the exit status: with `-f` the first non-zero one
/// of the hosts' (in the order named), 125 when a host could not be asked;
/// without, 0, or 1 when anything failed.
pub fn run(cli: &Cli, groups: Vec<(Dest, Vec<String>)>) -> Result<i32, Failure> {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let cmd = Cli::command();
    let kept = cli.screen || (cli.bytes.is_some() && !cli.follow);
    let lock = Mutex::new(());
    let results: Vec<(anyhow::Result<i32>, Sink)> = std::thread::scope(|scope| {
        let threads: Vec<_> = groups
            .iter()
            .map(|(dest, selectors)| {
                let command = host_command(&cmd, &args, dest, selectors);
                let lock = &lock;
                scope.spawn(move || relay_host(command, dest, kept, lock))
            })
            .collect();
        threads
            .into_iter()
            .map(|t| {
                t.join().unwrap_or_else(|_| {
                    (Err(anyhow::anyhow!("a relay thread panicked")), Sink::Now)
                })
            })
            .collect()
    });
    let mut codes = Vec::new();
    let mut unreachable = false;
    let mut err = io::stderr().lock();
    for ((dest, _), (result, sink)) in groups.iter().zip(results) {
        if let Sink::Kept(pieces) = sink {
            for (is_err, piece) in pieces {
                if is_err {
                    let _ = err.write_all(&piece);
                } else {
                    let mut out = io::stdout().lock();
                    let _ = out.write_all(&piece);
                    let _ = out.flush();
                }
            }
        }
        match result {
            Ok(code) => codes.push(code),
            Err(e) => {
                unreachable = true;
                let mut msg = ::cli::text::line(&format!("{e:#}").replace('\n', " "));
                if !msg.contains(dest.name()) {
                    msg = format!("{dest}: {msg}");
                }
                let _ = writeln!(err, "{TOOL}: {msg}");
            }
        }
    }
    let _ = err.flush();
    let first = codes.iter().copied().find(|&c| c != 0);
    Ok(match (cli.follow, unreachable, first) {
        (true, true, _) => 125,
        (true, false, code) => code.unwrap_or(0),
        (false, false, None) => 0,
        (false, _, _) => 1,
    })
}

/// The codex-tail that shows `selectors` of `dest`: through ssh for
/// another host, this program again for this one (`--root` kept), with
/// the same options, asked for `ID@DEST` names and the exit-status
/// trailer.
fn host_command(
    cmd: &clap::Command,
    args: &[OsString],
    dest: &Dest,
    selectors: &[String],
) -> Command {
    let mut words = ::cli::host::options(cmd, args, dest.is_local());
    if dest.is_local() {
        words.extend(["-H", "local"].map(OsString::from));
    }
    words.push("--host-label".into());
    words.push(dest.name().into());
    words.push("--".into());
    words.extend(selectors.iter().map(OsString::from));
    match dest {
        Dest::Remote(d) => ssh::command(d, TOOL, &words, ssh::Tty::No, true),
        Dest::Local => {
            let exe = std::env::current_exe().unwrap_or_else(|_| TOOL.into());
            let mut c = Command::new(exe);
            c.args(&words)
                .env(ssh::REMOTE_VAR, ssh::PROTOCOL.to_string());
            c
        }
    }
}

/// Runs one host's codex-tail, relaying its output (or keeping it, with
/// `kept`); its exit status, or why there is none.
fn relay_host(
    command: Command,
    dest: &Dest,
    kept: bool,
    lock: &Mutex<()>,
) -> (anyhow::Result<i32>, Sink) {
    let store = Mutex::new(Vec::new());
    let emit = |is_err: bool, piece: &[u8]| {
        if kept {
            store.lock().unwrap().push((is_err, piece.to_vec()));
            return;
        }
        // One piece at a time over all hosts, flushed, so that lines of
        // two hosts never mix and `2>&1` keeps their order.
        let _guard = lock.lock().unwrap_or_else(|e| e.into_inner());
        if is_err {
            let mut e = io::stderr().lock();
            let _ = e.write_all(piece);
            let _ = e.flush();
        } else {
            let mut o = io::stdout().lock();
            let _ = o.write_all(piece);
            let _ = o.flush();
        }
    };
    // What the host's codex-tail prints is a session's line (`ID@DEST |
    // …`) or its own message (`codex-tail: …`); anything else on stderr
    // before it has printed anything of those is ssh's (or the remote
    // shell's) and is held back: when the host cannot be asked, the one
    // error line says what it said; else it is shown after all.
    let held: Mutex<Option<Vec<Vec<u8>>>> = Mutex::new(Some(Vec::new()));
    let go_live = || {
        if let Some(lines) = held.lock().unwrap_or_else(|e| e.into_inner()).take() {
            for l in lines {
                emit(true, &l);
            }
        }
    };
    let mut out = |piece: &[u8]| {
        go_live();
        emit(false, piece)
    };
    let own = format!("{TOOL}: ").into_bytes();
    let label = format!("@{dest} | ").into_bytes();
    let mut mid = false;
    let mut err = |piece: &[u8]| {
        for line in piece.split_inclusive(|&b| b == b'\n') {
            let at_start = !mid;
            mid = !line.ends_with(b"\n");
            if at_start && line.windows(label.len()).any(|w| w == label) {
                go_live();
            }
            match line.strip_prefix(own.as_slice()) {
                // The host's own messages name the host, escaped.
                Some(said) if at_start => {
                    go_live();
                    let said = said.strip_suffix(b"\n").unwrap_or(said);
                    let said = ::cli::text::line_bytes(said);
                    emit(true, format!("{TOOL}: {dest}: {said}\n").as_bytes());
                }
                _ => {
                    let mut h = held.lock().unwrap_or_else(|e| e.into_inner());
                    match h.as_mut() {
                        Some(lines) => lines.push(line.to_vec()),
                        None => {
                            drop(h);
                            emit(true, line)
                        }
                    }
                }
            }
        }
    };
    let result = ssh::relay(command, dest.name(), TOOL, &mut out, &mut err);
    if result.is_ok() {
        go_live();
    }
    let sink = if kept {
        Sink::Kept(store.into_inner().unwrap_or_default())
    } else {
        Sink::Now
    };
    (result, sink)
}
