//! codex-ps (not yet implemented).

fn main() {
    eprintln!("codex-ps: not yet implemented");
    std::process::exit(1);
}
