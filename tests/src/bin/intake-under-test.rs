//! The `intake` program, built inside the tests package so integration tests
//! can run it as a real process (`CARGO_BIN_EXE_intake-under-test`) and kill
//! it. It is exactly the `intake` binary: [`intake::cli::run_process`].

fn main() -> std::process::ExitCode {
    intake::cli::run_process()
}
