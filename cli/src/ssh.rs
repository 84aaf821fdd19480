//! Running a tool on another host: `ssh DEST 'codex-ps --json …'`.
//!
//! - `ssh` is the one on `PATH`, reading the user's own ssh config (aliases,
//!   keys, jump hosts, wrappers all work); we add `BatchMode=yes` (nothing
//!   ever prompts and hangs a script), `LogLevel=ERROR` (its errors, not its
//!   notices), `-e none` (ssh's escape character
//!   never takes a key from codex-attach), and connection reuse: a
//!   `ControlMaster` kept for a minute (`ControlPersist`) behind a socket
//!   in a private directory of ours ([`control_dir`]).
//! - The remote command line is one string that the remote login shell
//!   parses: every argument is quoted ([`shlex`]), so the remote tool sees
//!   exactly the argv given. The tools are looked up on the remote `PATH`,
//!   with `~/.cargo/bin` added (a non-interactive ssh session reads no
//!   profile) and the directories of `$CODEX_REMOTE_PATH` (on this side)
//!   put first.
//! - ssh exits 255 for its own failures and when the remote command does:
//!   the remote tool therefore reports its exit status in band. Run with
//!   `CODEX_BACKGROUND_REMOTE=1` in its environment, [`crate::run`] ends
//!   its stderr with a trailer, `\0codex-background exit=N protocol=1\n`,
//!   which this side takes off. No trailer means the tool is missing on
//!   the remote host (status 127), ssh failed (255), or the remote tool is
//!   of a version that does not speak this protocol.

use std::ffi::OsString;
use std::io::{self, Read, Write};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;

use anyhow::bail;

/// The variable that asks a tool for the exit-status trailer; its value is
/// the protocol version the caller speaks.
pub const REMOTE_VAR: &str = "CODEX_BACKGROUND_REMOTE";
/// The protocol spoken here: the trailer, and `codex-ps --json` lines.
pub const PROTOCOL: u32 = 1;
/// Directories (colon separated, on the remote host) searched first for
/// the tools there.
pub const REMOTE_PATH_VAR: &str = "CODEX_REMOTE_PATH";
/// How long an idle shared connection stays open.
const PERSIST: &str = "60";

const MARKER: &[u8] = b"\0codex-background exit=";
/// The longest trailer: the marker, a code, ` protocol=N`, a newline.
const TRAILER_MAX: usize = 64;

/// Whether this run was started by another host's tool: takes the
/// variable out of the environment (so that nothing this tool starts, a
/// session's command above all, inherits it).
pub(crate) fn take_remote_mode() -> bool {
    let on = std::env::var_os(REMOTE_VAR).is_some();
    if on {
        std::env::remove_var(REMOTE_VAR);
    }
    on
}

/// Ends stderr with the trailer that carries `code` to the calling host.
pub(crate) fn write_trailer(code: i32) {
    let _ = io::stdout().flush();
    let mut err = io::stderr().lock();
    let _ = writeln!(err, "\0codex-background exit={code} protocol={PROTOCOL}");
    let _ = err.flush();
}

/// The private directory of the shared connections' sockets:
/// `$XDG_RUNTIME_DIR/codex-background`, else `/tmp/codex-background-UID`;
/// mode 0700 and ours, else `None` (then no connection is shared).
pub fn control_dir() -> Option<PathBuf> {
    let uid = nix::unistd::getuid();
    let dir = std::env::var_os("XDG_RUNTIME_DIR")
        .filter(|d| !d.is_empty())
        .map(|d| PathBuf::from(d).join("codex-background"))
        .unwrap_or_else(|| PathBuf::from(format!("/tmp/codex-background-{uid}")));
    let _ = std::fs::DirBuilder::new().mode(0o700).create(&dir);
    let meta = std::fs::symlink_metadata(&dir).ok()?;
    (meta.is_dir() && meta.uid() == uid.as_raw() && meta.permissions().mode() & 0o077 == 0)
        .then_some(dir)
}

/// Whether the remote side gets a terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tty {
    /// No terminal (`-T`): scripts, listings, streams.
    No,
    /// A terminal when ours is one (`-t`): codex-attach.
    IfLocal,
}

/// The remote command line: `exec env [CODEX_BACKGROUND_REMOTE=1]
/// PATH=… TOOL ARGS…`, every argument quoted for a POSIX shell.
pub fn remote_line(tool: &str, args: &[OsString], trailer: bool) -> Vec<u8> {
    let quote = |w: &[u8]| -> Vec<u8> {
        shlex::bytes::try_quote(w)
            .map(|q| q.into_owned())
            // Arguments come from argv, where NUL cannot be.
            .unwrap_or_else(|_| b"''".to_vec())
    };
    let mut path = Vec::new();
    if let Some(dirs) = std::env::var_os(REMOTE_PATH_VAR).filter(|d| !d.is_empty()) {
        path.extend(quote(dirs.as_bytes()));
        path.push(b':');
    }
    // Expanded by the remote shell: the remote PATH, then ~/.cargo/bin,
    // where `cargo install` and install.sh put the tools.
    path.extend_from_slice(br#""$PATH":"$HOME"/.cargo/bin"#);
    let mut line = b"exec env ".to_vec();
    if trailer {
        line.extend(format!("{REMOTE_VAR}={PROTOCOL} ").bytes());
    }
    line.extend_from_slice(b"PATH=");
    line.extend(path);
    line.push(b' ');
    line.extend(quote(tool.as_bytes()));
    for a in args {
        line.push(b' ');
        line.extend(quote(a.as_bytes()));
    }
    line
}

/// `ssh [options] -- DEST LINE`, for `tool` with `args` on `dest`; with
/// `trailer`, the remote tool is asked for the exit-status trailer.
pub fn command(dest: &str, tool: &str, args: &[OsString], tty: Tty, trailer: bool) -> Command {
    let mut cmd = Command::new("ssh");
    // LogLevel=ERROR: ssh's errors still say why a host cannot be
    // reached, but no "Shared connection to … closed." after an attach.
    cmd.args(["-o", "BatchMode=yes", "-o", "LogLevel=ERROR", "-e", "none"]);
    match control_dir() {
        Some(dir) => {
            let mut path = OsString::from("ControlPath=");
            path.push(dir.join("%C"));
            cmd.args(["-o", "ControlMaster=auto"])
                .args(["-o", &format!("ControlPersist={PERSIST}")])
                .arg("-o")
                .arg(path);
        }
        None => {
            cmd.args(["-o", "ControlMaster=no"]);
        }
    }
    cmd.arg(if tty == Tty::IfLocal { "-t" } else { "-T" });
    cmd.arg("--").arg(dest);
    cmd.arg(OsString::from_vec(remote_line(tool, args, trailer)));
    cmd
}

/// What a remote tool printed and how it ended.
#[derive(Debug)]
pub struct Captured {
    /// Its stdout.
    pub stdout: Vec<u8>,
    /// Its stderr, the trailer taken off.
    pub stderr: Vec<u8>,
    /// Its exit status, or why there is none (ssh failed, the tool is
    /// missing there...).
    pub outcome: anyhow::Result<i32>,
}

/// Runs `tool args` on `dest` with `input` on its stdin (else none), and
/// keeps what it prints.
pub fn capture(dest: &str, tool: &str, args: &[OsString], input: Option<Vec<u8>>) -> Captured {
    let mut cmd = command(dest, tool, args, Tty::No, true);
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    cmd.stdin(if input.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return spawn_failed(e),
    };
    let feeder = feed(&mut child, input);
    let mut err = child.stderr.take().expect("piped");
    let errors = thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err.read_to_end(&mut v);
        v
    });
    let mut stdout = Vec::new();
    let read = child.stdout.take().expect("piped").read_to_end(&mut stdout);
    let raw_err = errors.join().unwrap_or_default();
    let status = child.wait();
    if let Some(f) = feeder {
        let _ = f.join();
    }
    let mut filter = Trailer::default();
    let mut stderr = Vec::new();
    filter.push(&raw_err, &mut stderr);
    let trailer = filter.finish(&mut stderr);
    let outcome = match (read, status) {
        (Err(e), _) | (_, Err(e)) => Err(anyhow::Error::new(e).context("reading from ssh")),
        (Ok(_), Ok(status)) => outcome(dest, tool, status, trailer, &stderr),
    };
    Captured {
        stdout,
        stderr,
        outcome,
    }
}

/// Runs `tool args` on `dest` with its stdout going straight to ours and
/// its stderr to ours (the trailer taken off), `input` on its stdin (else
/// none): for output that streams (codex-tail -f). Returns the remote
/// tool's exit status.
pub fn stream(
    dest: &str,
    tool: &str,
    args: &[OsString],
    input: Option<Vec<u8>>,
) -> anyhow::Result<i32> {
    let mut cmd = command(dest, tool, args, Tty::No, true);
    cmd.stdout(Stdio::inherit()).stderr(Stdio::piped());
    cmd.stdin(if input.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    let mut child = cmd.spawn().map_err(|e| spawn_error(&e))?;
    let feeder = feed(&mut child, input);
    let mut err = child.stderr.take().expect("piped");
    let mut filter = Trailer::default();
    let mut seen = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match err.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                let mut out = io::stderr().lock();
                let mut forwarded = Vec::new();
                filter.push(&buf[..n], &mut forwarded);
                let _ = out.write_all(&forwarded);
                let _ = out.flush();
                keep_tail(&mut seen, &forwarded);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    let mut rest = Vec::new();
    let trailer = filter.finish(&mut rest);
    let _ = io::stderr().write_all(&rest);
    keep_tail(&mut seen, &rest);
    let status = child.wait()?;
    if let Some(f) = feeder {
        let _ = f.join();
    }
    outcome(dest, tool, status, trailer, &seen)
}

/// How long a piece of a line is held back, waiting for the rest of it,
/// before [`relay`] hands it on (a prompt shows before its newline).
const LINE_WAIT_MS: u16 = 100;
/// The longest piece [`relay`] holds back.
const PIECE_MAX: usize = 64 * 1024;

/// Runs `cmd` (from [`command`] with the trailer asked for, or this
/// host's tool with [`REMOTE_VAR`] set), handing its stdout to `out` and
/// its stderr (the trailer taken off) to `err` as they come, in pieces
/// that are whole lines where they can be: what there is of a line is
/// handed on once nothing more has come for a moment, or when it grows
/// long. Returns the tool's exit status as [`stream`] does (`dest` and
/// `tool` name them in errors).
pub fn relay(
    mut cmd: Command,
    dest: &str,
    tool: &str,
    out: &mut (dyn FnMut(&[u8]) + Send),
    err: &mut dyn FnMut(&[u8]),
) -> anyhow::Result<i32> {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    cmd.stdin(Stdio::null());
    let mut child = cmd
        .spawn()
        .map_err(|e| spawn_error(&e).context(format!("{tool} on {dest}")))?;
    let stdout = child.stdout.take().expect("piped");
    let stderr = child.stderr.take().expect("piped");
    let mut seen = Vec::new();
    let trailer = thread::scope(|scope| {
        scope.spawn(|| pieces(stdout, &mut |p: &[u8]| out(p)));
        let mut filter = Trailer::default();
        pieces(stderr, &mut |p: &[u8]| {
            let mut forwarded = Vec::new();
            filter.push(p, &mut forwarded);
            if !forwarded.is_empty() {
                err(&forwarded);
                keep_tail(&mut seen, &forwarded);
            }
        });
        let mut rest = Vec::new();
        let trailer = filter.finish(&mut rest);
        if !rest.is_empty() {
            err(&rest);
            keep_tail(&mut seen, &rest);
        }
        trailer
    });
    let status = child.wait()?;
    outcome(dest, tool, status, trailer, &seen)
}

/// Reads `r` to its end, handing `f` whole lines, or what there is of a
/// line after [`LINE_WAIT_MS`] without more, or [`PIECE_MAX`] bytes.
fn pieces<R: Read + std::os::fd::AsFd>(mut r: R, f: &mut dyn FnMut(&[u8])) {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    let mut held: Vec<u8> = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        if !held.is_empty() {
            let mut fds = [PollFd::new(r.as_fd(), PollFlags::POLLIN)];
            if let Ok(0) = poll(&mut fds, PollTimeout::from(LINE_WAIT_MS)) {
                f(&held);
                held.clear();
                continue;
            }
        }
        match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                held.extend_from_slice(&buf[..n]);
                if let Some(end) = held.iter().rposition(|&b| b == b'\n') {
                    f(&held[..=end]);
                    held.drain(..=end);
                }
                if held.len() >= PIECE_MAX {
                    f(&held);
                    held.clear();
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    if !held.is_empty() {
        f(&held);
    }
}

/// Runs `tool args` on `dest` with our terminal (`ssh -t` when stdin is a
/// terminal), as codex-attach does; returns ssh's exit status.
pub fn interactive(dest: &str, tool: &str, args: &[OsString]) -> anyhow::Result<ExitStatus> {
    use std::io::IsTerminal;
    let tty = if io::stdin().is_terminal() {
        Tty::IfLocal
    } else {
        Tty::No
    };
    // No trailer: with a terminal, stderr is the terminal's; the caller
    // asks again when ssh says 255.
    command(dest, tool, args, tty, false)
        .status()
        .map_err(|e| spawn_error(&e))
}

/// Shows what `tool` on `dest` said on stderr, one line each, escaped
/// (it comes from another machine): `TOOL: DEST: what went wrong`.
pub fn relay_stderr(tool: &str, dest: &str, stderr: &[u8]) {
    let text = String::from_utf8_lossy(stderr);
    let prefix = format!("{tool}: ");
    let mut err = io::stderr().lock();
    for line in text.lines().filter(|l| !l.is_empty()) {
        let line = line.strip_prefix(&prefix).unwrap_or(line);
        let _ = writeln!(err, "{tool}: {dest}: {}", crate::text::line(line));
    }
}

fn feed(child: &mut Child, input: Option<Vec<u8>>) -> Option<thread::JoinHandle<()>> {
    let input = input?;
    let mut stdin = child.stdin.take()?;
    Some(thread::spawn(move || {
        let _ = stdin.write_all(&input);
    }))
}

fn spawn_error(e: &io::Error) -> anyhow::Error {
    if e.kind() == io::ErrorKind::NotFound {
        anyhow::anyhow!("ssh not found on PATH: install OpenSSH's client to reach other hosts")
    } else {
        anyhow::anyhow!("running ssh: {e}")
    }
}

fn spawn_failed(e: io::Error) -> Captured {
    Captured {
        stdout: Vec::new(),
        stderr: Vec::new(),
        outcome: Err(spawn_error(&e)),
    }
}

/// Keeps the last few kilobytes of `more` in `seen` (for error messages).
fn keep_tail(seen: &mut Vec<u8>, more: &[u8]) {
    seen.extend_from_slice(more);
    if seen.len() > 4096 {
        seen.drain(..seen.len() - 4096);
    }
}

/// The exit status of `tool` on `dest`: the trailer's, or why there is
/// none. `stderr` is what came on stderr (the last line names ssh's
/// trouble).
fn outcome(
    dest: &str,
    tool: &str,
    status: ExitStatus,
    trailer: Option<(i32, u32)>,
    stderr: &[u8],
) -> anyhow::Result<i32> {
    match trailer {
        Some((code, PROTOCOL)) => return Ok(code),
        Some((_, other)) => bail!(
            "{tool} on {dest} speaks remote protocol {other}, this one {PROTOCOL}: install the same version of the codex-* tools on both hosts"
        ),
        None => {}
    }
    let said = String::from_utf8_lossy(stderr);
    let last = said
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    let last = crate::text::line(last.trim());
    match status.code() {
        Some(255) if last.is_empty() => bail!("cannot reach {dest} through ssh"),
        Some(255) => bail!("cannot reach {dest} through ssh: {last}"),
        Some(127) => bail!(
            "{tool} not found on {dest}: install the codex-* tools there, on the PATH of a non-interactive ssh session, in ~/.cargo/bin, or in a directory named by ${REMOTE_PATH_VAR} (see README: Many hosts)"
        ),
        Some(code) => bail!(
            "{tool} on {dest} ended with status {code} without reporting as this version does: install the same version of the codex-* tools on both hosts{}",
            if last.is_empty() { String::new() } else { format!(" ({last})") }
        ),
        None => bail!("ssh to {dest} was killed by a signal"),
    }
}

/// Takes the trailer off a stream of stderr bytes: what could be its start
/// is held back until it is known not to be.
#[derive(Debug, Default)]
struct Trailer {
    held: Vec<u8>,
}

impl Trailer {
    /// Takes `data`, forwarding to `out` what cannot be part of the
    /// trailer.
    fn push(&mut self, data: &[u8], out: &mut Vec<u8>) {
        self.held.extend_from_slice(data);
        let keep_from = memchr_last_nul(&self.held).filter(|&i| could_be_trailer(&self.held[i..]));
        let cut = keep_from.unwrap_or(self.held.len());
        out.extend_from_slice(&self.held[..cut]);
        self.held.drain(..cut);
    }

    /// At the end: the exit status and protocol the trailer carried, if
    /// the stream ended with one; anything else held is forwarded.
    fn finish(self, out: &mut Vec<u8>) -> Option<(i32, u32)> {
        let parsed = parse_trailer(&self.held);
        if parsed.is_none() {
            out.extend_from_slice(&self.held);
        }
        parsed
    }
}

fn memchr_last_nul(b: &[u8]) -> Option<usize> {
    b.iter().rposition(|&c| c == 0)
}

/// Whether `b` (starting with NUL) is the trailer or the start of one.
fn could_be_trailer(b: &[u8]) -> bool {
    if b.len() > TRAILER_MAX {
        return false;
    }
    let n = b.len().min(MARKER.len());
    if b[..n] != MARKER[..n] {
        return false;
    }
    let rest = &b[n..];
    match rest.iter().position(|&c| c == b'\n') {
        Some(i) => i == rest.len() - 1,
        None => rest
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || b" =-".contains(c)),
    }
}

fn parse_trailer(b: &[u8]) -> Option<(i32, u32)> {
    let text = std::str::from_utf8(b.strip_prefix(MARKER)?.strip_suffix(b"\n")?).ok()?;
    let (code, protocol) = text.split_once(" protocol=")?;
    Some((code.parse().ok()?, protocol.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn through(chunks: &[&[u8]]) -> (Vec<u8>, Option<(i32, u32)>) {
        let mut t = Trailer::default();
        let mut out = Vec::new();
        for c in chunks {
            t.push(c, &mut out);
        }
        let code = t.finish(&mut out);
        (out, code)
    }

    #[test]
    fn the_trailer_comes_off_in_any_cut() {
        let whole = b"line one\nno newline\0codex-background exit=255 protocol=1\n";
        for cut in 0..whole.len() {
            let (out, code) = through(&[&whole[..cut], &whole[cut..]]);
            assert_eq!(out, b"line one\nno newline", "cut at {cut}");
            assert_eq!(code, Some((255, 1)), "cut at {cut}");
        }
    }

    #[test]
    fn look_alikes_pass_through() {
        let forged = b"\0codex-background exit=0 protocol=1\nmore\0x";
        assert_eq!(through(&[forged]), (forged.to_vec(), None));
        assert_eq!(through(&[b"a\0b\0"]), (b"a\0b\0".to_vec(), None));
        // A forged trailer followed by the real one: the real one counts.
        let two = b"\0codex-background exit=0 protocol=1\n\0codex-background exit=3 protocol=1\n";
        let (out, code) = through(&[two]);
        assert_eq!(out, b"\0codex-background exit=0 protocol=1\n");
        assert_eq!(code, Some((3, 1)));
    }

    #[test]
    fn the_remote_line_quotes_every_word() {
        std::env::remove_var(REMOTE_PATH_VAR);
        let args = ["exec", "it's $HOME; rm -rf /", "-m", "x y"].map(OsString::from);
        let line = String::from_utf8(remote_line("codex-spawn", &args, true)).unwrap();
        assert_eq!(
            line,
            r#"exec env CODEX_BACKGROUND_REMOTE=1 PATH="$PATH":"$HOME"/.cargo/bin codex-spawn exec "it's "'$HOME; rm -rf /' -m 'x y'"#
        );
        let words = shlex::split(&line).unwrap();
        assert_eq!(
            words[4..],
            ["codex-spawn", "exec", "it's $HOME; rm -rf /", "-m", "x y"]
        );
    }
}
