//! The `intake` binary: logging setup, then [`intake::cli`].

use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("INTAKE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,intake=info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = intake::cli::Cli::parse();
    let mut stdout = std::io::stdout();
    match intake::cli::run(args, &mut stdout).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
