//! codex-tail (not yet implemented).

fn main() {
    eprintln!("codex-tail: not yet implemented");
    std::process::exit(1);
}
