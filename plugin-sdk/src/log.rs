//! Logging into the engine's log, tagged with plugin, tenant and account.
//!
//! The engine caps line length and lines per message. Outside the engine
//! (native unit tests) lines go to standard error.

#[cfg(target_arch = "wasm32")]
use crate::__private::bindings::imports::intake::plugin::log::{Level, write};

macro_rules! level_fn {
    ($(#[$doc:meta] $name:ident => $level:ident),* $(,)?) => {$(
        #[$doc]
        pub fn $name(message: &str) {
            #[cfg(target_arch = "wasm32")]
            write(Level::$level, message);
            #[cfg(not(target_arch = "wasm32"))]
            eprintln!("[{}] {message}", stringify!($name));
        }
    )*};
}

level_fn! {
    /// Very detailed tracing.
    trace => Trace,
    /// Diagnostic detail.
    debug => Debug,
    /// Normal operation.
    info => Info,
    /// Something unexpected that the plugin handled.
    warn => Warn,
    /// Something failed.
    error => Error,
}
