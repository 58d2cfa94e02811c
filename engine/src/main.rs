//! The `intake` binary; everything is in [`intake::cli`].

fn main() -> std::process::ExitCode {
    intake::allocator::limit_arenas();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("start the tokio runtime")
        .block_on(intake::cli::main())
}
