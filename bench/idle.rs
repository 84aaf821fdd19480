// The do-nothing Rust program of the memory benchmark (bench/run): the
// private memory any idle Rust process costs, to set the supervisor's
// figure against. Built by bench/run with `rustc -O`.
fn main() {
    std::thread::sleep(std::time::Duration::from_secs(1000));
}
