//! The host imports of `intake:plugin@0.2.0`. They are the 0.1.0 imports
//! under a new package version (same functions, same types), so each one
//! delegates to the 0.1.0 implementation in `host`: one implementation,
//! tenant-scoped and capped there, whichever version a plugin targets.

use super::bindings::{v0_1, v0_2};
use super::host::HostState;
use v0_1::types;

impl v0_2::errors::Host for HostState {}

impl v0_2::directory::Host for HostState {
    async fn find_by_address(
        &mut self,
        address: String,
    ) -> wasmtime::Result<Result<types::LookupResult, types::LookupError>> {
        v0_1::directory::Host::find_by_address(self, address).await
    }

    async fn find_by_domain(
        &mut self,
        domain: String,
    ) -> wasmtime::Result<Result<types::LookupResult, types::LookupError>> {
        v0_1::directory::Host::find_by_domain(self, domain).await
    }

    async fn parties_for_message_id(
        &mut self,
        message_id: String,
    ) -> wasmtime::Result<Result<types::LookupResult, types::LookupError>> {
        v0_1::directory::Host::parties_for_message_id(self, message_id).await
    }
}

impl v0_2::message_data::Host for HostState {
    async fn read_raw(&mut self, offset: u64, max_len: u32) -> wasmtime::Result<Vec<u8>> {
        v0_1::message_data::Host::read_raw(self, offset, max_len).await
    }
}

impl v0_2::log::Host for HostState {
    async fn write(&mut self, level: v0_2::log::Level, message: String) -> wasmtime::Result<()> {
        v0_1::log::Host::write(self, level.into(), message).await
    }
}

/// Adds the 0.2.0 host imports to `linker`, beside 0.1.0's. The shared
/// `types` interface has no functions; its 0.2.0 instance is defined empty
/// (its types are checked against the component's by shape).
pub(crate) fn add_to_linker(
    linker: &mut wasmtime::component::Linker<HostState>,
) -> wasmtime::Result<()> {
    use wasmtime::component::HasSelf;
    linker.instance("intake:plugin/types@0.2.0")?;
    v0_2::errors::add_to_linker::<HostState, HasSelf<HostState>>(linker, |s| s)?;
    v0_2::directory::add_to_linker::<HostState, HasSelf<HostState>>(linker, |s| s)?;
    v0_2::message_data::add_to_linker::<HostState, HasSelf<HostState>>(linker, |s| s)?;
    v0_2::log::add_to_linker::<HostState, HasSelf<HostState>>(linker, |s| s)?;
    Ok(())
}
