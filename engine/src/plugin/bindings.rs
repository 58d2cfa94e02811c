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

#[cfg(test)]
mod tests {
    use sha2::Digest;

    /// A released contract is frozen: plugins built against it must keep
    /// loading. A change to this file is a new package version in a new
    /// folder, never an edit; this test makes an edit fail loudly.
    #[test]
    fn the_released_contract_is_unchanged() {
        let wit = include_bytes!("../../../wit/v0.1.0/plugin.wit");
        assert_eq!(
            hex::encode(sha2::Sha256::digest(wit)),
            "26ff174f7d204db8a0483994dac726096c0afdc43b9619237ccc18f4eeef9c35",
            "wit/v0.1.0/plugin.wit changed: released contracts are frozen (docs/wit-contract.md)"
        );
    }
}
