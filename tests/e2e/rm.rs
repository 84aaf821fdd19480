//! End-to-end tests of codex-rm.

#[allow(unused_imports)]
use crate::util::*;
