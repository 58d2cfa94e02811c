//! Glue used by the `export_plugin!` macro. Not public API: names here may
//! change in any release.

pub mod bindings;

use std::any::Any;
use std::cell::RefCell;

pub use bindings::lifecycle::exports::intake::plugin::lifecycle::Guest as LifecycleGuest;
pub use bindings::matcher::exports::intake::plugin::matcher::Guest as MatcherGuest;
pub use bindings::unknown_sender::exports::intake::plugin::unknown_sender::Guest as UnknownSenderGuest;

use crate::{
    Directory, HostDirectory, Matcher, Message, Plugin, PolicyVerdict, UnknownSenderPolicy, Verdict,
};

thread_local! {
    /// The plugin value built by `init`. The engine makes a fresh instance per
    /// message and calls `init` first, so this lives for one message.
    static INSTANCE: RefCell<Option<Box<dyn Any>>> = const { RefCell::new(None) };
}

/// The schema's bytes as a fixed-size array, for the custom section
/// [`crate::export_plugin!`] emits.
pub const fn schema_bytes<const N: usize>(schema: &str) -> [u8; N] {
    let bytes = schema.as_bytes();
    let mut out = [0u8; N];
    let mut i = 0;
    while i < N {
        out[i] = bytes[i];
        i += 1;
    }
    out
}

/// Parses the binding's JSON configuration and builds the plugin.
pub fn init<P: Plugin>(config: String) -> Result<(), String> {
    let plugin = build::<P>(&config)?;
    INSTANCE.with(|slot| *slot.borrow_mut() = Some(Box::new(plugin)));
    Ok(())
}

/// Builds a plugin from a JSON configuration string (empty means `{}`); shared
/// by `init` and the SDK's native test helpers.
pub fn build<P: Plugin>(config: &str) -> Result<P, String> {
    let config = if config.trim().is_empty() {
        "{}"
    } else {
        config
    };
    let parsed: P::Config =
        serde_json::from_str(config).map_err(|e| format!("invalid configuration: {e}"))?;
    P::new(parsed).map_err(|e| e.to_string())
}

fn with_instance<P: Plugin, R>(f: impl FnOnce(&P) -> Result<R, String>) -> Result<R, String> {
    INSTANCE.with(|slot| {
        let slot = slot.borrow();
        let plugin = slot
            .as_ref()
            .and_then(|p| p.downcast_ref::<P>())
            .ok_or_else(|| "plugin used before init".to_string())?;
        f(plugin)
    })
}

/// Runs the matcher role on one message.
pub fn match_message<P: Matcher>(message: Message) -> Result<Verdict, String> {
    with_instance::<P, _>(|plugin| {
        plugin
            .match_message(&message, &HostDirectory as &dyn Directory)
            .map_err(|e| e.to_string())
    })
}

/// Runs the unknown-sender policy role on one message.
pub fn decide<P: UnknownSenderPolicy>(message: Message) -> Result<PolicyVerdict, String> {
    with_instance::<P, _>(|plugin| {
        plugin
            .decide(&message, &HostDirectory as &dyn Directory)
            .map_err(|e| e.to_string())
    })
}
