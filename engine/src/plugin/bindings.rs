//! Host bindings generated from `wit/v0.1.0`. One `bindgen!` of the world that
//! exports both roles; the host loads each export separately (through the
//! generated `GuestIndices`) so a component may export either role or both.

wasmtime::component::bindgen!({
    path: "../wit/v0.1.0",
    world: "full-plugin",
    imports: { default: async | trappable },
    exports: { default: async },
});

pub use self::intake::plugin::{directory, log, message_data, types};
pub use exports::intake::plugin::{lifecycle, matcher, unknown_sender};
