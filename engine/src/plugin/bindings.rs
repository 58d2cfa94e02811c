//! Host bindings generated from every released contract: `wit/v0.1.0` and
//! `wit/v0.2.0`. One `bindgen!` per version, of the world that exports both
//! roles; the host loads each export separately (through the generated
//! `GuestIndices`) so a component may export either role or both, and finds
//! which version it targets by its `lifecycle` export.
//!
//! The versions share one set of message types: 0.2.0's `types` interface is
//! identical to 0.1.0's, so its bindings are mapped onto 0.1.0's (`with`;
//! the component model checks record and variant types by shape, not by
//! name). The engine's message view is therefore converted in one place
//! (`view`) for both, and only what differs — the verdict records of the role
//! interfaces and the error type — is converted per version, at this edge.

/// `intake:plugin@0.1.0`: errors are strings (treated as permanent).
pub mod v0_1 {
    wasmtime::component::bindgen!({
        path: "../wit/v0.1.0",
        world: "full-plugin",
        imports: { default: async | trappable },
        exports: { default: async },
    });

    pub use self::intake::plugin::{directory, log, message_data, types};
    pub use exports::intake::plugin::{lifecycle, matcher, unknown_sender};
}

/// `intake:plugin@0.2.0`: errors are `plugin-error` (temporary or
/// permanent); everything else as in 0.1.0.
pub mod v0_2 {
    wasmtime::component::bindgen!({
        path: "../wit/v0.2.0",
        world: "full-plugin",
        imports: { default: async | trappable },
        exports: { default: async },
        with: {
            "intake:plugin/types@0.2.0": super::v0_1::types,
        },
    });

    pub use self::intake::plugin::{directory, errors, log, message_data};
    pub use exports::intake::plugin::{lifecycle, matcher, unknown_sender};

    use super::v0_1;

    impl From<matcher::Verdict> for v0_1::matcher::Verdict {
        fn from(v: matcher::Verdict) -> Self {
            use v0_1::matcher::{Outcome, Terminal};
            v0_1::matcher::Verdict {
                outcome: match v.outcome {
                    matcher::Outcome::NoOpinion => Outcome::NoOpinion,
                    matcher::Outcome::Attach(refs) => Outcome::Attach(refs),
                    matcher::Outcome::EndChain(matcher::Terminal::Discard(r)) => {
                        Outcome::EndChain(Terminal::Discard(r))
                    }
                    matcher::Outcome::EndChain(matcher::Terminal::Quarantine(r)) => {
                        Outcome::EndChain(Terminal::Quarantine(r))
                    }
                    matcher::Outcome::EndChain(matcher::Terminal::KeepUnlinked) => {
                        Outcome::EndChain(Terminal::KeepUnlinked)
                    }
                },
                server_action: v.server_action,
            }
        }
    }

    impl From<unknown_sender::PolicyVerdict> for v0_1::unknown_sender::PolicyVerdict {
        fn from(v: unknown_sender::PolicyVerdict) -> Self {
            use v0_1::unknown_sender::{Decision, NewLead};
            v0_1::unknown_sender::PolicyVerdict {
                decision: match v.decision {
                    unknown_sender::Decision::CreateLead(lead) => Decision::CreateLead(NewLead {
                        email: lead.email,
                        name: lead.name,
                        company: lead.company,
                    }),
                    unknown_sender::Decision::Quarantine(r) => Decision::Quarantine(r),
                    unknown_sender::Decision::Discard(r) => Decision::Discard(r),
                    unknown_sender::Decision::KeepUnlinked => Decision::KeepUnlinked,
                },
                server_action: v.server_action,
            }
        }
    }

    impl From<log::Level> for v0_1::log::Level {
        fn from(level: log::Level) -> Self {
            match level {
                log::Level::Trace => v0_1::log::Level::Trace,
                log::Level::Debug => v0_1::log::Level::Debug,
                log::Level::Info => v0_1::log::Level::Info,
                log::Level::Warn => v0_1::log::Level::Warn,
                log::Level::Error => v0_1::log::Level::Error,
            }
        }
    }
}

// The engine's own code names the 0.1.0 types, which every version shares
// or converts into.
pub use v0_1::{directory, lifecycle, log, matcher, message_data, types, unknown_sender};

/// A contract version the engine loads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub enum ContractVersion {
    /// `intake:plugin@0.1.0`.
    #[serde(rename = "0.1.0")]
    V0_1,
    /// `intake:plugin@0.2.0`.
    #[serde(rename = "0.2.0")]
    V0_2,
}

impl ContractVersion {
    /// Every version the engine loads, oldest first.
    pub const ALL: [ContractVersion; 2] = [ContractVersion::V0_1, ContractVersion::V0_2];

    /// `0.1.0` or `0.2.0`.
    pub fn as_str(self) -> &'static str {
        match self {
            ContractVersion::V0_1 => "0.1.0",
            ContractVersion::V0_2 => "0.2.0",
        }
    }
}

impl ContractVersion {
    /// The version a component's bytes target, read from its exports
    /// without compiling it (for listings): the newest `lifecycle` it
    /// exports; `None` for bytes that are not a plugin component.
    pub fn of_component(wasm: &[u8]) -> Option<Self> {
        use wasmparser::{Parser, Payload};
        let mut found = None;
        for payload in Parser::new(0).parse_all(wasm) {
            let Ok(Payload::ComponentExportSection(exports)) = payload else {
                continue;
            };
            for export in exports.into_iter().flatten() {
                let version = match export.name.name {
                    "intake:plugin/lifecycle@0.1.0" => ContractVersion::V0_1,
                    "intake:plugin/lifecycle@0.2.0" => ContractVersion::V0_2,
                    _ => continue,
                };
                found = found.max(Some(version));
            }
        }
        found
    }
}

impl std::fmt::Display for ContractVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use sha2::Digest;

    /// A released contract is frozen: plugins built against it must keep
    /// loading. A change to one of these files is a new package version in
    /// a new folder, never an edit; this test makes an edit fail loudly.
    #[test]
    fn the_released_contracts_are_unchanged() {
        for (path, wit, sha256) in [
            (
                "wit/v0.1.0/plugin.wit",
                include_bytes!("../../../wit/v0.1.0/plugin.wit").as_slice(),
                "26ff174f7d204db8a0483994dac726096c0afdc43b9619237ccc18f4eeef9c35",
            ),
            (
                "wit/v0.2.0/plugin.wit",
                include_bytes!("../../../wit/v0.2.0/plugin.wit").as_slice(),
                "bab618c4c85cd96e31ca4ed6506d8afde3021017916405bdf99c4af1b9b7fb1b",
            ),
        ] {
            assert_eq!(
                hex::encode(sha2::Sha256::digest(wit)),
                sha256,
                "{path} changed: released contracts are frozen (docs/wit-contract.md)"
            );
        }
    }
}
