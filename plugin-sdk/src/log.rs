//! Logging into the engine's log, tagged with plugin, tenant and account.
//!
//! Inside the engine a line goes to the engine's log (standard error of
//! `intake`, or its JSON log) and, under `intake plugin test`, into the
//! report's `steps[].logs`. The engine keeps at most 50 lines per message
//! and 2048 bytes per line ([`crate::rules`]). Outside the engine (native
//! unit tests) lines go to standard error and are collected for
//! [`crate::testing::logs`].

#[cfg(target_arch = "wasm32")]
use crate::__private::bindings::imports::intake::plugin::log::{Level as WitLevel, write};

/// How important a log line is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Very detailed tracing.
    Trace,
    /// Diagnostic detail.
    Debug,
    /// Normal operation.
    Info,
    /// Something unexpected that the plugin handled.
    Warn,
    /// Something failed.
    Error,
}

/// One line a plugin logged, as the test harness collected it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// Its level.
    pub level: Level,
    /// The text, cut as the engine cuts it.
    pub message: String,
}

thread_local! {
    /// Lines logged on this thread since the harness last cleared them.
    static COLLECTED: std::cell::RefCell<Vec<LogLine>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Empties this thread's collected lines (the harness, before a run).
pub(crate) fn clear_collected() {
    COLLECTED.with(|c| c.borrow_mut().clear());
}

/// This thread's collected lines (none inside the engine, which keeps
/// them itself).
pub(crate) fn collected() -> Vec<LogLine> {
    COLLECTED.with(|c| c.borrow().clone())
}

fn emit(level: Level, message: &str) {
    #[cfg(target_arch = "wasm32")]
    write(
        match level {
            Level::Trace => WitLevel::Trace,
            Level::Debug => WitLevel::Debug,
            Level::Info => WitLevel::Info,
            Level::Warn => WitLevel::Warn,
            Level::Error => WitLevel::Error,
        },
        message,
    );
    #[cfg(not(target_arch = "wasm32"))]
    {
        eprintln!("[{level:?}] {message}");
        // The engine keeps the first lines of a message and drops the rest.
        COLLECTED.with(|c| {
            let mut lines = c.borrow_mut();
            if lines.len() < crate::rules::DEFAULT_MAX_LOG_LINES {
                lines.push(LogLine {
                    level,
                    message: crate::rules::log_line(message),
                });
            }
        });
    }
}

macro_rules! level_fn {
    ($(#[$doc:meta] $name:ident => $level:ident),* $(,)?) => {$(
        #[$doc]
        pub fn $name(message: &str) {
            emit(Level::$level, message);
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
