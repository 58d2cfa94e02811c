//! The `intake` binary; everything is in [`intake::cli`].

#[tokio::main]
async fn main() -> std::process::ExitCode {
    intake::cli::main().await
}
