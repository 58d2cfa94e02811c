//! The rules the engine applies to what a plugin hands it, in one place.
//!
//! The engine checks every verdict, look-up argument and log line against
//! these functions before it trusts them, and the SDK's test harness
//! ([`crate::testing`]) calls the same functions, so a unit test refuses
//! what the engine would refuse. The configuration schema a plugin declares
//! (see [`crate::config_schema!`]) is checked here too, by the engine when
//! the plugin is added or tested and by the harness on every run.
//!
//! Nothing here needs the engine: plain functions over the SDK's types.

use std::fmt;

use crate::{
    Decision, Outcome, PartyKind, PartyRef, PolicyVerdict, ServerAction, Terminal, Verdict,
};

/// Longest reason, lead name, lead company or folder a verdict may carry
/// (bytes); a longer one makes the verdict invalid.
pub const MAX_TEXT_BYTES: usize = 1000;
/// Longest argument a directory look-up accepts (bytes, after trimming).
pub const MAX_LOOKUP_ARGUMENT_BYTES: usize = 998;
/// Longest log line kept (bytes); a longer one is cut.
pub const MAX_LOG_LINE_BYTES: usize = 2048;
/// Default cap on the size of a verdict (bytes), per binding.
pub const DEFAULT_MAX_OUTPUT_BYTES: usize = 64 << 10;
/// Default cap on the parties one look-up returns, per binding.
pub const DEFAULT_MAX_LOOKUP_RESULTS: usize = 100;
/// Default number of log lines kept per message, per binding.
pub const DEFAULT_MAX_LOG_LINES: usize = 50;
/// Name of the custom section that carries a plugin's configuration schema.
pub const CONFIG_SCHEMA_SECTION: &str = "intake:config-schema";

/// Why the engine refuses a plugin's verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Violation {
    /// A text field is over [`MAX_TEXT_BYTES`].
    TextTooLong {
        /// Which field (`reason`, `folder`, `lead name`, `lead company`).
        what: &'static str,
        /// Its length in bytes.
        len: usize,
    },
    /// `move-to` with an empty folder name.
    EmptyFolder,
    /// `create-lead` with an address the store would refuse.
    InvalidLeadAddress(String),
    /// An attached party that does not exist in the message's tenant.
    UnknownParty {
        /// Its kind.
        kind: PartyKind,
        /// The id the plugin returned.
        id: String,
        /// The tenant it was looked for in.
        tenant: String,
    },
    /// An attached party that no look-up of this call returned (the test
    /// harness's form of [`Violation::UnknownParty`]: it has no tenant to
    /// search, only what the directory handed the plugin).
    PartyNotReturned {
        /// Its kind.
        kind: PartyKind,
        /// The id the plugin returned.
        id: String,
    },
    /// The verdict is larger than the binding allows.
    OutputTooLarge {
        /// Approximate size of the verdict.
        size: usize,
        /// The cap.
        cap: usize,
    },
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Violation::TextTooLong { what, len } => {
                write!(
                    f,
                    "{what} is {len} bytes, over the {MAX_TEXT_BYTES}-byte limit"
                )
            }
            Violation::EmptyFolder => f.write_str("move-to with an empty folder name"),
            Violation::InvalidLeadAddress(email) => {
                write!(f, "create-lead with invalid address {:?}", cut(email, 300))
            }
            Violation::UnknownParty { kind, id, tenant } => write!(
                f,
                "{} {:?} does not exist in tenant {tenant:?}",
                kind_name(*kind),
                cut(id, 100)
            ),
            Violation::PartyNotReturned { kind, id } => write!(
                f,
                "{} {:?} was not returned by the directory (the engine accepts only parties that exist in the tenant)",
                kind_name(*kind),
                cut(id, 100)
            ),
            Violation::OutputTooLarge { size, cap } => {
                write!(f, "returned {size} bytes of results, over its cap of {cap}")
            }
        }
    }
}

impl std::error::Error for Violation {}

/// `contact` or `lead`.
pub fn kind_name(kind: PartyKind) -> &'static str {
    match kind {
        PartyKind::Contact => "contact",
        PartyKind::Lead => "lead",
    }
}

/// `text` cut to at most `cap` bytes, on a character boundary.
fn cut(text: &str, cap: usize) -> &str {
    if text.len() <= cap {
        return text;
    }
    let mut end = cap;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// The rule every stored address must pass: a non-empty local part and
/// domain around the last `@`, at most 254 bytes, no white space or control
/// characters. The engine applies it to every `create-lead` and every
/// imported contact; [`crate::address::is_valid`] is this function.
pub fn is_valid_address(address: &str) -> bool {
    let address = address.trim();
    address.len() <= 254
        && address
            .rsplit_once('@')
            .is_some_and(|(l, d)| !l.is_empty() && !d.is_empty())
        && !address.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// A text field of a verdict: over [`MAX_TEXT_BYTES`] the verdict is invalid.
pub fn check_text(value: &str, what: &'static str) -> Result<(), Violation> {
    if value.len() > MAX_TEXT_BYTES {
        return Err(Violation::TextTooLong {
            what,
            len: value.len(),
        });
    }
    Ok(())
}

/// What every verdict must meet: its size under the cap, and a server
/// action the engine can carry out.
fn check_size_and_action(
    size: usize,
    cap: usize,
    action: Option<&ServerAction>,
) -> Result<(), Violation> {
    if size > cap {
        return Err(Violation::OutputTooLarge { size, cap });
    }
    action.map_or(Ok(()), check_server_action)
}

/// A suggested server action: `move-to` needs a folder name within the cap.
pub fn check_server_action(action: &ServerAction) -> Result<(), Violation> {
    match action {
        ServerAction::MoveTo(folder) if folder.trim().is_empty() => Err(Violation::EmptyFolder),
        ServerAction::MoveTo(folder) => check_text(folder, "folder"),
        ServerAction::Leave | ServerAction::MarkSeen | ServerAction::Delete => Ok(()),
    }
}

/// Approximate size of a matcher's verdict: its strings plus a little per
/// party.
pub fn verdict_size(verdict: &Verdict) -> usize {
    let outcome = match &verdict.outcome {
        Outcome::NoOpinion | Outcome::EndChain(Terminal::KeepUnlinked) => 0,
        Outcome::Attach(refs) => refs.iter().map(|r| r.id.len() + 8).sum(),
        Outcome::EndChain(Terminal::Discard(t) | Terminal::Quarantine(t)) => t.len(),
    };
    outcome + action_size(verdict.server_action.as_ref())
}

/// Approximate size of an unknown-sender policy's verdict.
pub fn policy_verdict_size(verdict: &PolicyVerdict) -> usize {
    let decision = match &verdict.decision {
        Decision::CreateLead(lead) => {
            lead.email.len()
                + lead.name.as_ref().map_or(0, String::len)
                + lead.company.as_ref().map_or(0, String::len)
        }
        Decision::Quarantine(t) | Decision::Discard(t) => t.len(),
        Decision::KeepUnlinked => 0,
    };
    decision + action_size(verdict.server_action.as_ref())
}

fn action_size(action: Option<&ServerAction>) -> usize {
    match action {
        Some(ServerAction::MoveTo(folder)) => folder.len(),
        _ => 0,
    }
}

/// Checks a matcher's verdict against everything but the directory: size,
/// text caps and the server action. Returns the parties it attaches, which
/// the caller must then find in the tenant's directory (the engine) or
/// among what the directory returned (the test harness); an empty list
/// attaches nothing.
pub fn check_verdict(verdict: &Verdict, max_output_bytes: usize) -> Result<&[PartyRef], Violation> {
    check_size_and_action(
        verdict_size(verdict),
        max_output_bytes,
        verdict.server_action.as_ref(),
    )?;
    match &verdict.outcome {
        Outcome::NoOpinion | Outcome::EndChain(Terminal::KeepUnlinked) => Ok(&[]),
        Outcome::Attach(refs) => Ok(refs),
        Outcome::EndChain(Terminal::Discard(reason) | Terminal::Quarantine(reason)) => {
            check_text(reason, "reason").map(|()| &[][..])
        }
    }
}

/// Checks an unknown-sender policy's verdict: size, text caps, the server
/// action and the new lead's address. Returns the lead's address as the
/// store keeps it (trimmed, lower-case) when it creates one.
pub fn check_policy_verdict(
    verdict: &PolicyVerdict,
    max_output_bytes: usize,
) -> Result<Option<String>, Violation> {
    check_size_and_action(
        policy_verdict_size(verdict),
        max_output_bytes,
        verdict.server_action.as_ref(),
    )?;
    match &verdict.decision {
        Decision::CreateLead(lead) => {
            let email = lead.email.trim().to_lowercase();
            if !is_valid_address(&email) {
                return Err(Violation::InvalidLeadAddress(lead.email.clone()));
            }
            if let Some(name) = &lead.name {
                check_text(name, "lead name")?;
            }
            if let Some(company) = &lead.company {
                check_text(company, "lead company")?;
            }
            Ok(Some(email))
        }
        Decision::Quarantine(reason) | Decision::Discard(reason) => {
            check_text(reason, "reason").map(|()| None)
        }
        Decision::KeepUnlinked => Ok(None),
    }
}

/// A directory look-up's argument as the engine takes it: trimmed, 1 to
/// [`MAX_LOOKUP_ARGUMENT_BYTES`] bytes; otherwise the look-up fails with
/// this message as `invalid-argument`. `what` names the argument
/// (`address`, `domain`, `message id`).
pub fn lookup_argument<'a>(argument: &'a str, what: &str) -> Result<&'a str, String> {
    let argument = argument.trim();
    if argument.is_empty() || argument.len() > MAX_LOOKUP_ARGUMENT_BYTES {
        return Err(format!(
            "{what} must be 1 to {MAX_LOOKUP_ARGUMENT_BYTES} bytes"
        ));
    }
    Ok(argument)
}

/// A log line as the engine keeps it: at most [`MAX_LOG_LINE_BYTES`] (cut
/// on a character boundary, with a note of how much was cut).
pub fn log_line(line: &str) -> String {
    let kept = cut(line, MAX_LOG_LINE_BYTES);
    if kept.len() == line.len() {
        return line.to_string();
    }
    format!("{kept}… ({} more bytes cut)", line.len() - kept.len())
}

/// The type a configuration field must have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FieldType {
    /// A JSON string.
    String,
    /// A JSON number without a fraction.
    Integer,
    /// Any JSON number.
    Number,
    /// `true` or `false`.
    Boolean,
    /// A JSON array.
    Array,
    /// A JSON object.
    Object,
}

impl FieldType {
    fn name(self) -> &'static str {
        match self {
            FieldType::String => "a string",
            FieldType::Integer => "an integer",
            FieldType::Number => "a number",
            FieldType::Boolean => "true or false",
            FieldType::Array => "an array",
            FieldType::Object => "an object",
        }
    }

    fn accepts(self, value: &serde_json::Value) -> bool {
        use serde_json::Value;
        match self {
            FieldType::String => value.is_string(),
            FieldType::Integer => value.is_i64() || value.is_u64(),
            FieldType::Number => value.is_number(),
            FieldType::Boolean => value.is_boolean(),
            FieldType::Array => value.is_array(),
            FieldType::Object => matches!(value, Value::Object(_)),
        }
    }
}

/// One setting of a plugin's configuration.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigField {
    /// The JSON key.
    pub name: String,
    /// The type its value must have (`null` counts as absent).
    #[serde(rename = "type")]
    pub kind: FieldType,
    /// Whether the configuration must give it.
    #[serde(default)]
    pub required: bool,
    /// What it is for, shown when it is missing or wrong.
    #[serde(default)]
    pub description: String,
}

/// What a plugin declares about its configuration (see
/// [`crate::config_schema!`]). Fields it does not list are left to the
/// plugin's own parsing.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigSchema {
    /// The settings, in the order declared.
    pub fields: Vec<ConfigField>,
}

impl ConfigSchema {
    /// Parses a schema as the SDK embeds it (JSON); an empty text is no
    /// schema.
    pub fn parse(text: &[u8]) -> Result<Option<ConfigSchema>, String> {
        if text.iter().all(u8::is_ascii_whitespace) {
            return Ok(None);
        }
        serde_json::from_slice(text)
            .map(Some)
            .map_err(|e| format!("invalid configuration schema: {e}"))
    }
}

/// A configuration setting that is missing or has the wrong type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// The JSON key (empty when the configuration as a whole is wrong).
    pub field: String,
    /// What is wrong, and what the setting is for.
    pub problem: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            f.write_str(&self.problem)
        } else {
            write!(f, "`{}` {}", self.field, self.problem)
        }
    }
}

/// Checks a configuration (JSON text; empty means `{}`) against a schema:
/// every required field present and not `null`, every field given with
/// its type. All problems are returned, one per field.
pub fn check_config(schema: &ConfigSchema, config: &str) -> Result<(), Vec<FieldError>> {
    let config = if config.trim().is_empty() {
        "{}"
    } else {
        config
    };
    let value: serde_json::Value = serde_json::from_str(config).map_err(|e| {
        vec![FieldError {
            field: String::new(),
            problem: format!("the configuration is not JSON: {e}"),
        }]
    })?;
    let Some(object) = value.as_object() else {
        return Err(vec![FieldError {
            field: String::new(),
            problem: "the configuration must be a JSON object".into(),
        }]);
    };
    let mut errors = Vec::new();
    for field in &schema.fields {
        let about = if field.description.is_empty() {
            String::new()
        } else {
            format!(" ({})", field.description)
        };
        match object.get(&field.name) {
            None | Some(serde_json::Value::Null) if field.required => errors.push(FieldError {
                field: field.name.clone(),
                problem: format!("is required: {}{about}", field.kind.name()),
            }),
            None | Some(serde_json::Value::Null) => {}
            Some(value) if !field.kind.accepts(value) => errors.push(FieldError {
                field: field.name.clone(),
                problem: format!("must be {}{about}", field.kind.name()),
            }),
            Some(_) => {}
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// Field errors as one line: `` `a` is required: …; `b` must be … ``.
pub fn describe(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema() -> ConfigSchema {
        ConfigSchema::parse(
            br#"{"fields": [
                {"name": "domains", "type": "array", "required": true, "description": "our domains"},
                {"name": "limit", "type": "integer"}
            ]}"#,
        )
        .unwrap()
        .unwrap()
    }

    #[test]
    fn a_missing_required_field_is_named() {
        let errors = check_config(&schema(), "{}").unwrap_err();
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].field, "domains");
        assert_eq!(
            errors[0].to_string(),
            "`domains` is required: an array (our domains)"
        );
        assert!(check_config(&schema(), r#"{"domains": null}"#).is_err());
        assert!(check_config(&schema(), "").is_err());
    }

    #[test]
    fn wrong_types_are_named_per_field() {
        let errors = check_config(&schema(), r#"{"domains": "a", "limit": 1.5}"#).unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["domains", "limit"]);
        assert!(check_config(&schema(), r#"{"domains": [], "limit": 3}"#).is_ok());
        assert!(check_config(&schema(), "[1]").is_err());
    }

    #[test]
    fn no_schema_is_none() {
        assert_eq!(ConfigSchema::parse(b"").unwrap(), None);
        assert!(ConfigSchema::parse(b"{\"fields\": 3}").is_err());
    }

    #[test]
    fn verdict_rules() {
        let long = "x".repeat(MAX_TEXT_BYTES + 1);
        assert!(
            check_verdict(&Verdict::quarantine(long.clone()), DEFAULT_MAX_OUTPUT_BYTES).is_err()
        );
        assert!(check_verdict(&Verdict::quarantine("ok"), DEFAULT_MAX_OUTPUT_BYTES).is_ok());
        assert_eq!(
            check_verdict(&Verdict::quarantine("ok"), 1),
            Err(Violation::OutputTooLarge { size: 2, cap: 1 })
        );
        let folder = Verdict::no_opinion().with_server_action(ServerAction::MoveTo(" ".into()));
        assert_eq!(
            check_verdict(&folder, DEFAULT_MAX_OUTPUT_BYTES),
            Err(Violation::EmptyFolder)
        );
        let lead = PolicyVerdict::create_lead(crate::NewLead {
            email: " Ann@Acme.example ".into(),
            name: None,
            company: Some(long),
        });
        assert!(check_policy_verdict(&lead, DEFAULT_MAX_OUTPUT_BYTES).is_err());
        let lead = PolicyVerdict::create_lead(crate::NewLead {
            email: " Ann@Acme.example ".into(),
            name: None,
            company: None,
        });
        assert_eq!(
            check_policy_verdict(&lead, DEFAULT_MAX_OUTPUT_BYTES),
            Ok(Some("ann@acme.example".into()))
        );
    }

    #[test]
    fn lookup_arguments_and_log_lines() {
        assert!(lookup_argument("  ", "address").is_err());
        assert_eq!(lookup_argument(" a@b ", "address"), Ok("a@b"));
        assert!(lookup_argument(&"a".repeat(999), "domain").is_err());
        let line = log_line(&"é".repeat(2000));
        assert!(line.ends_with("… (1952 more bytes cut)"), "{line}");
    }
}
