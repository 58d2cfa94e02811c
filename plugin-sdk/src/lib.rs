//! Write [Intake](https://example.invalid/intake) plugins in safe Rust.
//!
//! An Intake plugin is a WebAssembly component that the engine runs, sandboxed,
//! on every retrieved e-mail. It plays one or both roles:
//!
//! - a [`Matcher`] attaches the message to CRM parties (contacts and leads), or
//!   ends the chain (an auto-reply guard discards, say);
//! - an [`UnknownSenderPolicy`] decides what happens when no matcher attached
//!   anything: create a lead, quarantine, discard, or keep unlinked.
//!
//! Implement [`Plugin`] (how to build the plugin from its JSON configuration)
//! and the role traits, then export them with [`export_plugin!`]. The engine
//! builds a fresh instance for every message, so a plugin keeps no state
//! between messages.
//!
//! # Example
//!
//! A matcher that attaches mail whose sender is a known contact or lead, and
//! can be told to ignore some senders:
//!
//! ```
//! use intake_plugin_sdk::{Directory, Error, Matcher, Message, Plugin, Verdict};
//!
//! #[derive(serde::Deserialize, Default)]
//! #[serde(default, deny_unknown_fields)]
//! struct Config {
//!     /// Senders never to match, lower-case.
//!     ignore: Vec<String>,
//! }
//!
//! struct SenderMatch {
//!     config: Config,
//! }
//!
//! impl Plugin for SenderMatch {
//!     type Config = Config;
//!
//!     fn new(config: Config) -> Result<Self, Error> {
//!         Ok(SenderMatch { config })
//!     }
//! }
//!
//! impl Matcher for SenderMatch {
//!     fn match_message(&self, message: &Message, directory: &dyn Directory) -> Result<Verdict, Error> {
//!         let Some(sender) = message.sender_address() else {
//!             return Ok(Verdict::no_opinion());
//!         };
//!         if self.config.ignore.iter().any(|i| i.eq_ignore_ascii_case(sender)) {
//!             return Ok(Verdict::no_opinion());
//!         }
//!         let found = directory.find_by_address(sender)?;
//!         Ok(Verdict::attach(found.parties.iter().map(|p| p.to_ref()).collect()))
//!     }
//! }
//!
//! intake_plugin_sdk::export_plugin!(SenderMatch: matcher);
//!
//! // Unit-test it natively, no engine needed:
//! use intake_plugin_sdk::testing::{run_matcher, MessageBuilder};
//! use intake_plugin_sdk::{MemoryDirectory, Outcome, PartyKind};
//!
//! let directory = MemoryDirectory::new().with_party(PartyKind::Contact, "ann@acme.example", None);
//! let message = MessageBuilder::new().from("Ann <Ann@Acme.example>").build();
//! let verdict = run_matcher::<SenderMatch>("{}", &message, &directory).unwrap();
//! assert!(matches!(verdict.outcome, Outcome::Attach(ref p) if p.len() == 1));
//! ```
//!
//! [`testing::run_matcher`] and [`testing::run_policy`] apply the engine's
//! own checks ([`rules`]: the configuration schema, look-up arguments, the
//! verdict's caps, attached parties) and collect the plugin's log lines
//! ([`testing::logs`]), so a unit test fails where the engine would refuse.
//! Declare required settings with [`config_schema!`] in
//! [`Plugin::CONFIG_SCHEMA`]; the engine checks them when the plugin is
//! added or tested.
//!
//! Build it with `cargo build --target wasm32-wasip2 --release` (the crate is a
//! `cdylib`), and try it on real mail with
//! `intake plugin test target/wasm32-wasip2/release/my_plugin.wasm --message mail/`.
//! `intake plugin new NAME` starts a project with all of this in place;
//! `docs/plugins.md` in the Intake repository walks through the whole cycle.

#![deny(missing_docs)]

#[doc(hidden)]
pub mod __private;
pub mod address;
mod directory;
pub mod log;
mod message;
pub mod rules;
pub mod testing;

use std::fmt;

use __private::bindings::imports::intake::plugin::types;
use __private::bindings::matcher::exports::intake::plugin::matcher;
use __private::bindings::unknown_sender::exports::intake::plugin::unknown_sender;

pub use directory::{Directory, HostDirectory, MemoryDirectory};
pub use matcher::{Outcome, Terminal, Verdict};
pub use message::AutoReply;
pub use types::{
    Attachment, Datetime, Header, ImapOrigin, LookupError, LookupResult, Mailbox, Message, Origin,
    Party, PartyKind, PartyRef, ServerAction,
};
pub use unknown_sender::{Decision, NewLead, PolicyVerdict};

/// A plugin's failure, shown to the operator: *permanent* (the engine
/// applies the binding's failure policy, quarantine by default) or
/// *temporary* (something outside the message is down for now: the engine
/// keeps the message and decides it again later).
///
/// The kind reaches the engine only from a plugin exported for contract
/// 0.2.0 (`export_plugin!(P: matcher; contract = "0.2.0")`); contract 0.1.0
/// has one kind of error, and every error is permanent there.
///
/// `?` on a directory look-up turns [`LookupError::Unavailable`] into a
/// temporary error and [`LookupError::InvalidArgument`] into a permanent one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    /// What the operator reads.
    message: String,
    /// Whether trying again later may succeed.
    temporary: bool,
}

/// The same type as [`Error`], by the name the contract gives it
/// (`plugin-error`).
pub type PluginError = Error;

impl Error {
    /// A permanent error with this message (the same as [`Error::permanent`]).
    pub fn new(message: impl fmt::Display) -> Self {
        Error::permanent(message)
    }

    /// A permanent error: trying again will not help (a bad configuration, a
    /// message the plugin cannot handle).
    pub fn permanent(message: impl fmt::Display) -> Self {
        Error {
            message: message.to_string(),
            temporary: false,
        }
    }

    /// A temporary error: something the plugin depends on is down for now
    /// (the directory, a CRM). Under contract 0.2.0 the engine defers the
    /// message and decides it again later, with backoff.
    pub fn temporary(message: impl fmt::Display) -> Self {
        Error {
            message: message.to_string(),
            temporary: true,
        }
    }

    /// Whether this error is temporary.
    pub fn is_temporary(&self) -> bool {
        self.temporary
    }

    /// The error as contract 0.2.0 returns it.
    #[doc(hidden)]
    pub fn into_v0_2(self) -> __private::PluginErrorV0_2 {
        if self.temporary {
            __private::PluginErrorV0_2::Temporary(self.message)
        } else {
            __private::PluginErrorV0_2::Permanent(self.message)
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

impl From<LookupError> for Error {
    fn from(e: LookupError) -> Self {
        match e {
            LookupError::Unavailable(m) => Error::temporary(format!("directory unavailable: {m}")),
            LookupError::InvalidArgument(m) => {
                Error::permanent(format!("directory look-up refused: {m}"))
            }
        }
    }
}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        Error::permanent(e)
    }
}

/// How a plugin is built from its binding's JSON configuration.
///
/// The engine calls this once per message, on a fresh instance, so keep it
/// cheap: parse and check the configuration, nothing more.
pub trait Plugin: Sized + 'static {
    /// The configuration, deserialised from the binding's JSON (`{}` when the
    /// operator gave none). Use [`NoConfig`] for a plugin without settings;
    /// `#[serde(deny_unknown_fields)]` turns typos into clear errors.
    type Config: serde::de::DeserializeOwned;

    /// The settings the configuration must or may give, as JSON made by
    /// [`config_schema!`]; empty (the default) declares nothing.
    ///
    /// [`export_plugin!`] embeds it in the component (a custom section,
    /// [`rules::CONFIG_SCHEMA_SECTION`]), where the engine reads it without
    /// running the plugin: `intake plugin add`, `plugin check`, `plugin
    /// test` and the API's upload refuse a configuration that lacks a
    /// required setting or gives one with the wrong type, naming the field.
    /// The test helpers in [`testing`] check it the same way.
    const CONFIG_SCHEMA: &'static str = "";

    /// Builds the plugin; an error is shown to the operator when the plugin is
    /// added or tested.
    fn new(config: Self::Config) -> Result<Self, Error>;
}

/// The matcher role: attaches a message to parties, or ends the chain.
pub trait Matcher: Plugin {
    /// Decides about one message. `Ok(Verdict::no_opinion())` lets the next
    /// matcher run; an `Err` is a plugin failure.
    fn match_message(&self, message: &Message, directory: &dyn Directory)
    -> Result<Verdict, Error>;
}

/// The unknown-sender policy role: runs when no matcher attached anything.
pub trait UnknownSenderPolicy: Plugin {
    /// Decides about one message nobody matched. The default keeps it
    /// unlinked, the least surprising choice.
    fn decide(&self, message: &Message, directory: &dyn Directory) -> Result<PolicyVerdict, Error> {
        let _ = (message, directory);
        Ok(PolicyVerdict::keep_unlinked())
    }
}

/// A configuration that accepts only `{}` (or nothing), for plugins without
/// settings.
#[derive(Debug, Clone, Copy, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoConfig {}

impl Party {
    /// The reference a matcher returns to attach a message to this party.
    pub fn to_ref(&self) -> PartyRef {
        PartyRef {
            kind: self.kind,
            id: self.id.clone(),
        }
    }
}

impl std::str::FromStr for ServerAction {
    type Err = Error;

    /// Parses `leave`, `mark-seen`, `delete` or `move:FOLDER`, the spelling
    /// plugin configurations use.
    fn from_str(s: &str) -> Result<Self, Error> {
        match s.trim() {
            "leave" => Ok(ServerAction::Leave),
            "mark-seen" => Ok(ServerAction::MarkSeen),
            "delete" => Ok(ServerAction::Delete),
            other => match other.strip_prefix("move:") {
                Some(folder) if !folder.trim().is_empty() => {
                    Ok(ServerAction::MoveTo(folder.trim().to_string()))
                }
                _ => Err(Error::new(format!(
                    "unknown server action {other:?} (expected leave, mark-seen, delete or move:FOLDER)"
                ))),
            },
        }
    }
}

impl Verdict {
    /// No opinion: the next matcher runs.
    pub fn no_opinion() -> Self {
        Verdict {
            outcome: Outcome::NoOpinion,
            server_action: None,
        }
    }

    /// Attach to these parties and end the chain (an empty list is no opinion).
    pub fn attach(parties: Vec<PartyRef>) -> Self {
        let outcome = if parties.is_empty() {
            Outcome::NoOpinion
        } else {
            Outcome::Attach(parties)
        };
        Verdict {
            outcome,
            server_action: None,
        }
    }

    /// End the chain and discard the message, logging `reason`.
    pub fn discard(reason: impl Into<String>) -> Self {
        Verdict {
            outcome: Outcome::EndChain(Terminal::Discard(reason.into())),
            server_action: None,
        }
    }

    /// End the chain and quarantine the message with `reason`.
    pub fn quarantine(reason: impl Into<String>) -> Self {
        Verdict {
            outcome: Outcome::EndChain(Terminal::Quarantine(reason.into())),
            server_action: None,
        }
    }

    /// End the chain and store the message without links.
    pub fn keep_unlinked() -> Self {
        Verdict {
            outcome: Outcome::EndChain(Terminal::KeepUnlinked),
            server_action: None,
        }
    }

    /// Suggests a server action (capped by the account's settings).
    pub fn with_server_action(mut self, action: ServerAction) -> Self {
        self.server_action = Some(action);
        self
    }
}

impl PolicyVerdict {
    /// Create a lead and attach the message to it.
    pub fn create_lead(lead: NewLead) -> Self {
        PolicyVerdict {
            decision: Decision::CreateLead(lead),
            server_action: None,
        }
    }

    /// Quarantine the message with `reason`.
    pub fn quarantine(reason: impl Into<String>) -> Self {
        PolicyVerdict {
            decision: Decision::Quarantine(reason.into()),
            server_action: None,
        }
    }

    /// Discard the message, logging `reason`.
    pub fn discard(reason: impl Into<String>) -> Self {
        PolicyVerdict {
            decision: Decision::Discard(reason.into()),
            server_action: None,
        }
    }

    /// Store the message without links.
    pub fn keep_unlinked() -> Self {
        PolicyVerdict {
            decision: Decision::KeepUnlinked,
            server_action: None,
        }
    }

    /// Suggests a server action (capped by the account's settings).
    pub fn with_server_action(mut self, action: ServerAction) -> Self {
        self.server_action = Some(action);
        self
    }
}

/// Reads up to `max_len` bytes of the exact raw message from `offset`
/// (the engine caps one read at 1 MiB). Only available inside the engine.
pub fn read_raw(offset: u64, max_len: u32) -> Vec<u8> {
    __private::bindings::imports::intake::plugin::message_data::read_raw(offset, max_len)
}

/// Reads the whole raw message, in 1 MiB steps. The plugin's memory cap
/// applies: prefer [`read_raw`] for large messages.
pub fn raw_message(size: u64) -> Vec<u8> {
    let mut raw = Vec::with_capacity(size.min(64 << 20) as usize);
    loop {
        let chunk = read_raw(raw.len() as u64, 1 << 20);
        if chunk.is_empty() {
            return raw;
        }
        raw.extend_from_slice(&chunk);
    }
}

/// Declares a plugin's settings for [`Plugin::CONFIG_SCHEMA`]: one line per
/// field, `name: type required|optional "what it is for"`, where type is
/// `string`, `integer`, `number`, `boolean`, `array` or `object`.
///
/// ```
/// use intake_plugin_sdk::{config_schema, rules::ConfigSchema};
///
/// const SCHEMA: &str = config_schema! {
///     review_domains: array required "Domains whose mail is reviewed by hand",
///     max_parties: integer optional "Attach to at most this many parties",
/// };
/// let schema = ConfigSchema::parse(SCHEMA.as_bytes()).unwrap().unwrap();
/// assert_eq!(schema.fields[0].name, "review_domains");
/// assert!(schema.fields[0].required);
/// ```
///
/// The description is a string literal; keep to plain text (it is pasted
/// into JSON as written).
#[macro_export]
macro_rules! config_schema {
    ($first:ident : $ty:ident $req:ident $desc:literal $(, $name:ident : $t:ident $r:ident $d:literal)* $(,)?) => {
        ::core::concat!(
            "{\"fields\":[",
            $crate::config_schema!(@field $first $ty $req $desc),
            $( ",", $crate::config_schema!(@field $name $t $r $d), )*
            "]}"
        )
    };
    (@field $name:ident $ty:ident $req:ident $desc:literal) => {
        ::core::concat!(
            "{\"name\":\"", ::core::stringify!($name),
            "\",\"type\":\"", $crate::config_schema!(@type $ty),
            "\",\"required\":", $crate::config_schema!(@required $req),
            ",\"description\":", ::core::stringify!($desc), "}"
        )
    };
    (@type string) => { "string" };
    (@type integer) => { "integer" };
    (@type number) => { "number" };
    (@type boolean) => { "boolean" };
    (@type array) => { "array" };
    (@type object) => { "object" };
    (@required required) => { "true" };
    (@required optional) => { "false" };
}

/// Exports a plugin type for the roles it implements.
///
/// ```ignore
/// intake_plugin_sdk::export_plugin!(MyMatcher: matcher);
/// intake_plugin_sdk::export_plugin!(MyPolicy: unknown_sender);
/// intake_plugin_sdk::export_plugin!(MyBoth: matcher, unknown_sender);
/// // Contract 0.2.0, whose errors are temporary or permanent:
/// intake_plugin_sdk::export_plugin!(MyMatcher: matcher; contract = "0.2.0");
/// ```
///
/// Use it once per crate. The type must implement [`Plugin`] and, per role
/// named, [`Matcher`] or [`UnknownSenderPolicy`]. Without `contract` the
/// component targets `intake:plugin@0.1.0`, where every [`Error`] is
/// permanent; with `contract = "0.2.0"` an [`Error::temporary`] defers the
/// message instead. The plugin's code is the same for both.
#[macro_export]
macro_rules! export_plugin {
    ($plugin:ty : $($role:ident),+ ; contract = "0.1.0") => {
        $crate::export_plugin!($plugin : $($role),+);
    };
    ($plugin:ty : $($role:ident),+ ; contract = "0.2.0") => {
        const _: () = {
            struct IntakeExports;

            #[cfg(target_arch = "wasm32")]
            #[used]
            #[unsafe(link_section = "intake:config-schema")]
            static INTAKE_CONFIG_SCHEMA: [u8; <$plugin as $crate::Plugin>::CONFIG_SCHEMA.len()] =
                $crate::__private::schema_bytes(<$plugin as $crate::Plugin>::CONFIG_SCHEMA);

            impl $crate::__private::LifecycleGuestV0_2 for IntakeExports {
                fn init(config: ::std::string::String) -> ::std::result::Result<(), $crate::__private::PluginErrorV0_2> {
                    $crate::__private::init_v0_2::<$plugin>(config)
                }
            }
            $crate::__private::bindings::lifecycle_v0_2::__export_lifecycle_v0_2!(
                IntakeExports with_types_in $crate::__private::bindings::lifecycle_v0_2
            );
            $( $crate::export_plugin!(@role_v0_2 $role, $plugin, IntakeExports); )+
        };
    };
    ($plugin:ty : $($role:ident),+ $(,)?) => {
        const _: () = {
            struct IntakeExports;

            // The configuration schema, where the engine finds it without
            // running the plugin: a custom section of the core module, kept
            // by the linker (`#[used]`) and by the component wrapping.
            #[cfg(target_arch = "wasm32")]
            #[used]
            #[unsafe(link_section = "intake:config-schema")]
            static INTAKE_CONFIG_SCHEMA: [u8; <$plugin as $crate::Plugin>::CONFIG_SCHEMA.len()] =
                $crate::__private::schema_bytes(<$plugin as $crate::Plugin>::CONFIG_SCHEMA);

            impl $crate::__private::LifecycleGuest for IntakeExports {
                fn init(config: ::std::string::String) -> ::std::result::Result<(), ::std::string::String> {
                    $crate::__private::init::<$plugin>(config)
                }
            }
            $crate::__private::bindings::lifecycle::__export_lifecycle!(
                IntakeExports with_types_in $crate::__private::bindings::lifecycle
            );
            $( $crate::export_plugin!(@role $role, $plugin, IntakeExports); )+
        };
    };
    (@role matcher, $plugin:ty, $exports:ident) => {
        impl $crate::__private::MatcherGuest for $exports {
            fn match_message(message: $crate::Message) -> ::std::result::Result<$crate::Verdict, ::std::string::String> {
                $crate::__private::match_message::<$plugin>(message)
            }
        }
        $crate::__private::bindings::matcher::__export_matcher!(
            $exports with_types_in $crate::__private::bindings::matcher
        );
    };
    (@role unknown_sender, $plugin:ty, $exports:ident) => {
        impl $crate::__private::UnknownSenderGuest for $exports {
            fn decide(message: $crate::Message) -> ::std::result::Result<$crate::PolicyVerdict, ::std::string::String> {
                $crate::__private::decide::<$plugin>(message)
            }
        }
        $crate::__private::bindings::unknown_sender::__export_unknown_sender!(
            $exports with_types_in $crate::__private::bindings::unknown_sender
        );
    };
    (@role_v0_2 matcher, $plugin:ty, $exports:ident) => {
        impl $crate::__private::MatcherGuestV0_2 for $exports {
            fn match_message(message: $crate::Message) -> ::std::result::Result<$crate::__private::VerdictV0_2, $crate::__private::PluginErrorV0_2> {
                $crate::__private::match_message_v0_2::<$plugin>(message)
            }
        }
        $crate::__private::bindings::matcher_v0_2::__export_matcher_v0_2!(
            $exports with_types_in $crate::__private::bindings::matcher_v0_2
        );
    };
    (@role_v0_2 unknown_sender, $plugin:ty, $exports:ident) => {
        impl $crate::__private::UnknownSenderGuestV0_2 for $exports {
            fn decide(message: $crate::Message) -> ::std::result::Result<$crate::__private::PolicyVerdictV0_2, $crate::__private::PluginErrorV0_2> {
                $crate::__private::decide_v0_2::<$plugin>(message)
            }
        }
        $crate::__private::bindings::unknown_sender_v0_2::__export_unknown_sender_v0_2!(
            $exports with_types_in $crate::__private::bindings::unknown_sender_v0_2
        );
    };
}
