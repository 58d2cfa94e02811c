//! The `intake` binary; everything is in [`intake::cli`].

fn main() -> std::process::ExitCode {
    intake::cli::run_process()
}
