//! The `intake` program, built inside the tests package so integration tests
//! can run it as a real process (`CARGO_BIN_EXE_intake-under-test`) and kill
//! it. It is exactly the `intake` binary: [`intake::cli::main`]
//! with the same allocator settings.

fn main() -> std::process::ExitCode {
    intake::allocator::limit_arenas();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("start the tokio runtime")
        .block_on(intake::cli::main())
}
