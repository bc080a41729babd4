//! The `yilian` binary, built inside the test package so tests can spawn node processes.

fn main() -> std::process::ExitCode {
    yilian_node::main_entry()
}
