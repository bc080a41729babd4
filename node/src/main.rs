//! `yilian`: run a node, manage the CA and cluster, submit cases, start the demo.

fn main() -> std::process::ExitCode {
    yilian_node::main_entry()
}
