//! A plugin's configuration schema, read from its component's bytes
//! without compiling or running it.
//!
//! The SDK's `export_plugin!` puts the JSON schema in a custom section
//! (`intake:config-schema`) of the plugin's core module; the component
//! wrapping keeps the core module whole, so the section sits one level
//! down. A component without the section declares nothing, and its
//! configuration is left to its own `init`, as before.

use intake_plugin_sdk::rules::{CONFIG_SCHEMA_SECTION, ConfigSchema};
use wasmparser::{Parser, Payload};

/// The schema the component declares, if any; `Err` for bytes that are not
/// WebAssembly or a section that is not a schema.
pub fn read(wasm: &[u8]) -> Result<Option<ConfigSchema>, String> {
    let mut found: Option<ConfigSchema> = None;
    // parse_all walks nested modules and components too.
    for payload in Parser::new(0).parse_all(wasm) {
        let payload = payload.map_err(|e| format!("cannot read the component: {e}"))?;
        if let Payload::CustomSection(section) = payload
            && section.name() == CONFIG_SCHEMA_SECTION
            && let Some(schema) = ConfigSchema::parse(section.data())?
        {
            // Two sections (two crates exporting a plugin) would be a build
            // mistake; their fields together are what the binary declares.
            match &mut found {
                Some(existing) => existing.fields.extend(schema.fields),
                None => found = Some(schema),
            }
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A core module with one custom section, as wasm-ld writes it.
    fn module_with(name: &str, data: &[u8]) -> Vec<u8> {
        let mut section = Vec::new();
        section.push(name.len() as u8);
        section.extend_from_slice(name.as_bytes());
        section.extend_from_slice(data);
        let mut wasm = b"\0asm\x01\0\0\0".to_vec();
        wasm.push(0); // custom section id
        wasm.push(section.len() as u8);
        wasm.extend_from_slice(&section);
        wasm
    }

    #[test]
    fn finds_the_section_and_ignores_others() {
        let json = br#"{"fields":[{"name":"domains","type":"array","required":true}]}"#;
        let schema = read(&module_with(CONFIG_SCHEMA_SECTION, json))
            .unwrap()
            .unwrap();
        assert_eq!(schema.fields[0].name, "domains");
        assert_eq!(read(&module_with("producers", b"x")).unwrap(), None);
        assert_eq!(
            read(&module_with(CONFIG_SCHEMA_SECTION, b"")).unwrap(),
            None
        );
        assert!(read(&module_with(CONFIG_SCHEMA_SECTION, b"{")).is_err());
        assert!(read(b"From: ann@example.com\r\n").is_err());
    }
}
