//! End-to-end tests of codex-tail.

#[allow(unused_imports)]
use crate::util::*;
