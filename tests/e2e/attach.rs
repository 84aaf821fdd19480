//! End-to-end tests of tty sessions and codex-attach, through a real terminal (tmux).

#[allow(unused_imports)]
use crate::util::*;
