//! Which machine a tool acts on: `-H/--host DEST`, `$CODEX_HOST`, the
//! hosts file that `--host all` reads, and `ID@DEST` selectors.
//!
//! `DEST` is anything `ssh` accepts as a destination (an alias from
//! `~/.ssh/config`, `user@host`, `ssh://user@host:port`), or `local` for
//! this machine without ssh. Ids never contain `@` (see
//! [`shared::SessionId`]), so `ID@DEST` splits at its first `@`:
//! `crisp-owlet-3f2a@me@box1` is session `crisp-owlet-3f2a` on `me@box1`.

use std::ffi::OsString;
use std::fmt;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::PathBuf;

use anyhow::{bail, Context};

/// The variable that names the default host.
pub const HOST_VAR: &str = "CODEX_HOST";
/// The word that means this machine, without ssh.
pub const LOCAL: &str = "local";
/// The word that means every host of the hosts file.
pub const ALL: &str = "all";

/// A machine to act on.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Dest {
    /// This machine, without ssh.
    Local,
    /// An ssh destination, as the user wrote it.
    Remote(String),
}

impl Dest {
    /// Parses one destination (not `all`): `local`, or a word ssh can take
    /// as a destination (not empty, not starting with `-`, which ssh would
    /// read as an option, and without spaces or control characters).
    pub fn parse(s: &str) -> Result<Dest, String> {
        if s == LOCAL {
            return Ok(Dest::Local);
        }
        if s.is_empty() {
            return Err("empty host: expected an ssh destination (alias, user@host, ssh://user@host:port) or local".into());
        }
        if s.starts_with('-') {
            return Err(format!(
                "host {s:?} starts with '-': expected an ssh destination, not an option"
            ));
        }
        if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!(
                "host {s:?} holds a space or a control character: expected an ssh destination"
            ));
        }
        Ok(Dest::Remote(s.to_string()))
    }

    /// Whether this is the local machine.
    pub fn is_local(&self) -> bool {
        *self == Dest::Local
    }

    /// The name as given (`local` for this machine).
    pub fn name(&self) -> &str {
        match self {
            Dest::Local => LOCAL,
            Dest::Remote(d) => d,
        }
    }
}

impl fmt::Display for Dest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// `-H/--host`, flattened into every tool's command line.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct HostArg {
    /// Act on host DEST over ssh: an ssh destination (alias, user@host, ssh://user@host:port), local, or all (every host of the hosts file) [default: $CODEX_HOST, else local].
    #[arg(short = 'H', long = "host", value_name = "DEST", value_parser = parse_word)]
    pub hosts: Vec<String>,
}

/// `-H`'s value: a destination or `all`, checked before anything is done.
fn parse_word(s: &str) -> Result<String, String> {
    if s != ALL {
        Dest::parse(s)?;
    }
    Ok(s.to_string())
}

impl HostArg {
    /// The hosts asked for: the `-H` values, else `$CODEX_HOST`, else this
    /// machine; `all` stands for the hosts file's lines. In the order given,
    /// each once.
    pub fn hosts(&self) -> anyhow::Result<Vec<Dest>> {
        let words = self.words()?;
        let mut out = Vec::new();
        for w in words {
            let dests = if w == ALL {
                read_hosts_file()?
            } else {
                vec![Dest::parse(&w).map_err(anyhow::Error::msg)?]
            };
            for d in dests {
                if !out.contains(&d) {
                    out.push(d);
                }
            }
        }
        if out.is_empty() {
            out.push(Dest::Local);
        }
        Ok(out)
    }

    /// The one host asked for, for the tools that act on one machine at a
    /// time (`all` or several `-H` are refused).
    pub fn one(&self) -> anyhow::Result<Dest> {
        match self.hosts()?.as_slice() {
            [one] => Ok(one.clone()),
            _ => bail!("this tool acts on one host at a time: give one -H DEST (or name the session as ID@DEST)"),
        }
    }

    /// Whether a host was asked for at all (by `-H` or `$CODEX_HOST`):
    /// listings then say which host each session is on.
    pub fn given(&self) -> bool {
        !self.hosts.is_empty() || default_word().is_some()
    }

    fn words(&self) -> anyhow::Result<Vec<String>> {
        if !self.hosts.is_empty() {
            return Ok(self.hosts.clone());
        }
        match default_word() {
            Some(w) => {
                parse_word(&w).map_err(|e| anyhow::anyhow!("${HOST_VAR}: {e}"))?;
                Ok(vec![w])
            }
            None => Ok(Vec::new()),
        }
    }
}

/// `$CODEX_HOST`, when set and not empty.
fn default_word() -> Option<String> {
    std::env::var(HOST_VAR).ok().filter(|s| !s.is_empty())
}

/// The hosts file: `$XDG_CONFIG_HOME/codex-background/hosts`, else
/// `~/.config/codex-background/hosts`.
pub fn hosts_file() -> Option<PathBuf> {
    let config = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(config.join("codex-background").join("hosts"))
}

/// The hosts of the hosts file: one destination per line; blank lines and
/// lines starting with `#` are skipped; `local` is this machine.
pub fn read_hosts_file() -> anyhow::Result<Vec<Dest>> {
    let path = hosts_file()
        .context("--host all: no hosts file (neither XDG_CONFIG_HOME nor HOME is set)")?;
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "--host all: reading the hosts file {} (one ssh destination per line)",
            path.display()
        )
    })?;
    parse_hosts(&text).with_context(|| format!("in the hosts file {}", path.display()))
}

fn parse_hosts(text: &str) -> anyhow::Result<Vec<Dest>> {
    let mut out: Vec<Dest> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let d = Dest::parse(line).map_err(|e| anyhow::anyhow!("line {}: {e}", n + 1))?;
        if !out.contains(&d) {
            out.push(d);
        }
    }
    if out.is_empty() {
        bail!("no host listed");
    }
    Ok(out)
}

/// Splits a selector `ID@DEST` into its session part and its host; a
/// selector without `@` has no host of its own.
pub fn split_selector(s: &str) -> Result<(&str, Option<Dest>), String> {
    match s.split_once('@') {
        None => Ok((s, None)),
        Some((sel, dest)) => Ok((sel, Some(Dest::parse(dest)?))),
    }
}

/// `id@DEST`, as the tools print a session of another host (and of this
/// one in a listing of several hosts).
pub fn qualified(id: &str, dest: &Dest) -> String {
    format!("{id}@{dest}")
}

/// Splits a tool's command line (without the program name) into its
/// options with every `-H/--host` taken out, and the rest: from the first
/// word that is not an option (a subcommand, a positional argument) or
/// `--` on. Options are told apart by `cmd`'s definition (which take a
/// value, which may be clustered), as clap reads them: `-H DEST`, `-HDEST`,
/// `-tH DEST`, `--host DEST`, `--host=DEST`.
pub fn strip_host_args(cmd: &clap::Command, args: &[OsString]) -> (Vec<OsString>, Vec<OsString>) {
    let takes_value = |a: &clap::Arg| {
        a.get_action().takes_values() && a.get_num_args().is_none_or(|n| n.min_values() > 0)
    };
    let mut kept = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let word = args[i].as_bytes();
        if word == b"--" || !word.starts_with(b"-") || word == b"-" {
            break;
        }
        if let Some(long) = word.strip_prefix(b"--") {
            let (name, inline) = match long.iter().position(|&b| b == b'=') {
                Some(eq) => (&long[..eq], true),
                None => (long, false),
            };
            let arg = cmd
                .get_arguments()
                .find(|a| a.get_long().is_some_and(|l| l.as_bytes() == name));
            let value_next = !inline && arg.is_some_and(takes_value);
            if name == b"host" {
                i += 1 + usize::from(value_next);
                continue;
            }
            kept.push(args[i].clone());
            if value_next {
                kept.extend(args.get(i + 1).cloned());
            }
            i += 1 + usize::from(value_next);
            continue;
        }
        // A cluster of short options: `-tH DEST`, `-nNAME`.
        let mut cluster = b"-".to_vec();
        let mut value_next = false;
        let mut drop_next = false;
        let mut j = 1;
        while j < word.len() {
            let c = word[j] as char;
            let arg = cmd.get_arguments().find(|a| a.get_short() == Some(c));
            if c == 'H' {
                drop_next = j + 1 == word.len();
                j = word.len();
                continue;
            }
            cluster.push(word[j]);
            if arg.is_some_and(takes_value) {
                cluster.extend_from_slice(&word[j + 1..]);
                value_next = j + 1 == word.len();
                break;
            }
            j += 1;
        }
        if cluster.len() > 1 {
            kept.push(OsString::from_vec(cluster));
        }
        i += 1;
        if value_next {
            kept.extend(args.get(i).cloned());
            i += 1;
        } else if drop_next {
            i += 1;
        }
    }
    (kept, args[i..].to_vec())
}

/// A tool's command line (without the program name) as the same tool on
/// another host gets it: `-H/--host` and `--root` (this host's) taken out,
/// and every positional `X@DEST` as `X`. Options are told apart by `cmd`'s
/// definition, as in [`strip_host_args`].
pub fn for_remote(cmd: &clap::Command, args: &[OsString]) -> Vec<OsString> {
    let mut out = Vec::new();
    let mut rest = args.to_vec();
    loop {
        let (kept, after) = strip_host_args(cmd, &rest);
        out.extend(drop_root(cmd, kept));
        let Some(first) = after.first() else { break };
        if first == "--" {
            out.push(first.clone());
            out.extend(after[1..].iter().map(local_part));
            break;
        }
        out.push(local_part(first));
        rest = after[1..].to_vec();
    }
    out
}

/// The options of a tool's command line (without the program name), for
/// the same tool run once per host with selectors of its own: `-H/--host`
/// taken out, `--root` too unless `keep_root` (this host's), and every
/// positional word (and everything after `--`) left out.
pub fn options(cmd: &clap::Command, args: &[OsString], keep_root: bool) -> Vec<OsString> {
    let mut out = Vec::new();
    let mut rest = args.to_vec();
    loop {
        let (kept, after) = strip_host_args(cmd, &rest);
        out.extend(if keep_root {
            kept
        } else {
            drop_root(cmd, kept)
        });
        match after.first() {
            Some(first) if first != "--" => rest = after[1..].to_vec(),
            _ => break,
        }
    }
    out
}

/// `X` of a word `X@DEST`; other words as they are.
fn local_part(w: &OsString) -> OsString {
    let b = w.as_bytes();
    match b.iter().position(|&c| c == b'@') {
        Some(at) => OsString::from_vec(b[..at].to_vec()),
        None => w.clone(),
    }
}

/// `options` without `--root DIR` / `--root=DIR` (clap's reading: its
/// value, when separate, is the next word).
fn drop_root(cmd: &clap::Command, options: Vec<OsString>) -> Vec<OsString> {
    let has_root = cmd.get_arguments().any(|a| a.get_long() == Some("root"));
    let mut out = Vec::new();
    let mut words = options.into_iter();
    while let Some(w) = words.next() {
        if has_root && w == "--root" {
            words.next();
        } else if !(has_root && w.as_bytes().starts_with(b"--root=")) {
            out.push(w);
        }
    }
    out
}

/// The one host that `selectors` (`ID@DEST` or plain) and `-H` name, for
/// the tools that act on one host at a time; each selector is left
/// without its `@DEST`. Plain selectors are on the `-H` host (else
/// `$CODEX_HOST`, else this one).
pub fn target(host: &HostArg, selectors: &mut [String]) -> anyhow::Result<Dest> {
    let mut found: Option<Dest> = None;
    let mut plain = selectors.is_empty();
    for s in selectors.iter_mut() {
        let (sel, dest) = split_selector(s).map_err(anyhow::Error::msg)?;
        let sel = sel.to_string();
        match dest {
            Some(d) => {
                if found.as_ref().is_some_and(|f| *f != d) {
                    bail!("sessions of several hosts ({} and {d}): name sessions of one host at a time", found.unwrap());
                }
                found = Some(d);
            }
            None => plain = true,
        }
        *s = sel;
    }
    if plain || host.given() {
        let d = host.one()?;
        if found.as_ref().is_some_and(|f| *f != d) {
            bail!(
                "sessions of several hosts ({} and {d}): name sessions of one host at a time",
                found.unwrap()
            );
        }
        found = Some(d);
    }
    Ok(found.unwrap_or(Dest::Local))
}

/// The sessions that `selectors` (`ID@DEST` or plain) and `-H` name,
/// grouped by host, for the tools that act on several hosts at once
/// (codex-tail): each `ID@DEST` goes to DEST without its `@DEST`, plain
/// selectors go to every `-H` host (else `$CODEX_HOST`, else this one), as
/// in codex-ps. Without selectors every such host gets none (its newest
/// session). Hosts in the order first named, each once; a host without
/// selectors of its own is left out when selectors are given.
pub fn groups(host: &HostArg, selectors: &[String]) -> anyhow::Result<Vec<(Dest, Vec<String>)>> {
    let mut out: Vec<(Dest, Vec<String>)> = Vec::new();
    let mut add = |d: Dest, sel: Option<&str>| {
        let i = match out.iter().position(|(h, _)| *h == d) {
            Some(i) => i,
            None => {
                out.push((d, Vec::new()));
                out.len() - 1
            }
        };
        if let Some(sel) = sel {
            if !out[i].1.iter().any(|s| s == sel) {
                out[i].1.push(sel.to_string());
            }
        }
    };
    if selectors.is_empty() {
        for d in host.hosts()? {
            add(d, None);
        }
        return Ok(out);
    }
    let mut hosts: Option<Vec<Dest>> = None;
    for s in selectors {
        let (sel, dest) = split_selector(s).map_err(anyhow::Error::msg)?;
        match dest {
            Some(d) => add(d, Some(sel)),
            None => {
                if hosts.is_none() {
                    hosts = Some(host.hosts()?);
                }
                for d in hosts.iter().flatten() {
                    add(d.clone(), Some(sel));
                }
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations() {
        assert_eq!(Dest::parse("local"), Ok(Dest::Local));
        assert_eq!(Dest::parse("me@box1"), Ok(Dest::Remote("me@box1".into())));
        assert_eq!(
            Dest::parse("ssh://me@box1:2222"),
            Ok(Dest::Remote("ssh://me@box1:2222".into()))
        );
        for bad in ["", "-oProxyCommand=x", "a b", "a\nb"] {
            assert!(Dest::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn selectors_split_at_the_first_at() {
        assert_eq!(split_selector("crisp"), Ok(("crisp", None)));
        assert_eq!(
            split_selector("crisp@me@box1"),
            Ok(("crisp", Some(Dest::Remote("me@box1".into()))))
        );
        assert_eq!(split_selector("3@local"), Ok(("3", Some(Dest::Local))));
        assert!(split_selector("crisp@").is_err());
    }

    #[test]
    fn host_options_come_out_wherever_they_are() {
        use clap::{Arg, ArgAction, Command};
        let cmd = Command::new("t")
            .arg(
                Arg::new("host")
                    .short('H')
                    .long("host")
                    .action(ArgAction::Append),
            )
            .arg(Arg::new("name").short('n').long("name"))
            .arg(
                Arg::new("tty")
                    .short('t')
                    .long("tty")
                    .action(ArgAction::SetTrue),
            )
            .arg(Arg::new("rest").num_args(0..));
        let split = |w: &str| {
            let args: Vec<OsString> = w.split(' ').map(OsString::from).collect();
            let (a, b) = strip_host_args(&cmd, &args);
            let show = |v: Vec<OsString>| {
                v.iter()
                    .map(|w| w.to_string_lossy().into_owned())
                    .collect::<Vec<_>>()
                    .join(" ")
            };
            (show(a), show(b))
        };
        let want = |a: &str, b: &str| (a.to_string(), b.to_string());
        assert_eq!(split("-H box -t -- sh -H"), want("-t", "-- sh -H"));
        assert_eq!(split("--host=box -n -H exec"), want("-n -H", "exec"));
        assert_eq!(
            split("-tHbox --name x exec -H y"),
            want("-t --name x", "exec -H y")
        );
        assert_eq!(split("-tH box -nfoo repl"), want("-t -nfoo", "repl"));
        assert_eq!(split("--host box -Hb2 --tty exec"), want("--tty", "exec"));
    }

    #[test]
    fn the_remote_command_line_loses_host_root_and_at_dest() {
        use clap::{Arg, ArgAction, Command};
        let cmd = Command::new("t")
            .arg(
                Arg::new("host")
                    .short('H')
                    .long("host")
                    .action(ArgAction::Append),
            )
            .arg(Arg::new("root").long("root"))
            .arg(Arg::new("lines").short('n'))
            .arg(Arg::new("follow").short('f').action(ArgAction::SetTrue))
            .arg(Arg::new("sel").num_args(0..));
        let args: Vec<OsString> = "a@box1 -fn 5 --root /r b@box1 -H box1 --root=/s -- c@box1"
            .split(' ')
            .map(OsString::from)
            .collect();
        assert_eq!(
            for_remote(&cmd, &args),
            ["a", "-fn", "5", "b", "--", "c"].map(OsString::from)
        );
    }

    #[test]
    fn selectors_group_by_host_plain_ones_to_every_h_host() {
        let host = HostArg {
            hosts: vec!["box1".into(), "box2".into()],
        };
        let sels = ["a@box3", "b", "c@box1", "b@box1"].map(String::from);
        let b = |h: &str| Dest::Remote(h.into());
        assert_eq!(
            groups(&host, &sels).unwrap(),
            [
                (b("box3"), vec!["a".to_string()]),
                (b("box1"), vec!["b".to_string(), "c".to_string()]),
                (b("box2"), vec!["b".to_string()]),
            ]
        );
        let none = groups(&host, &[]).unwrap();
        assert_eq!(none, [(b("box1"), vec![]), (b("box2"), vec![])]);
    }

    #[test]
    fn hosts_file_lines() {
        let hosts = parse_hosts("# lab\nbox1\n\n  me@box2  \nlocal\nbox1\n").unwrap();
        assert_eq!(
            hosts,
            [
                Dest::Remote("box1".into()),
                Dest::Remote("me@box2".into()),
                Dest::Local
            ]
        );
        assert!(parse_hosts("# nothing\n").is_err());
        assert!(parse_hosts("box1\n-bad\n").is_err());
    }
}
