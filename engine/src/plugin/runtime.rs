//! The plugin runtime: one wasmtime `Engine` (pooling allocator, epoch
//! interruption), one `Linker` with the host imports, the epoch ticker and the
//! component cache. Built once per process; plugins are loaded into it.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use super::binding::{Binding, LoadedPlugin, WasmSource};
use super::bindings::v0_1::FullPlugin;
use super::cache::ComponentCache;
use super::error::LoadError;
use super::host::HostState;
use super::limits::MAX_MEMORY_BYTES;

/// Released pooling slots kept warm (image mapped, pages resident) for the
/// plugin that last used them.
const WARM_SLOTS: u32 = 16;

/// How often the epoch advances; deadlines are rounded up to this.
pub(crate) const EPOCH_TICK: Duration = Duration::from_millis(2);

/// Settings of the plugin runtime.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Where compiled components are cached; `None` compiles every time.
    pub cache_dir: Option<PathBuf>,
    /// Plugin instances that may be alive at once (pooling allocator slots).
    pub max_instances: u32,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            cache_dir: ComponentCache::default_dir(),
            max_instances: 64,
        }
    }
}

/// The shared wasmtime engine, linker and cache. Cheap to share behind `Arc`.
pub struct PluginRuntime {
    /// Compiles and runs components; configured once.
    engine: Engine,
    /// Host imports, linked once and reused by every plugin.
    linker: Linker<HostState>,
    /// Compiled-component cache, if a directory is available.
    cache: Option<ComponentCache>,
    /// Advances the epoch so deadlines fire; stopped on drop.
    _ticker: EpochTicker,
}

impl std::fmt::Debug for PluginRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginRuntime")
            .field("cache", &self.cache)
            .finish_non_exhaustive()
    }
}

impl PluginRuntime {
    /// Builds the engine (pooling allocator, falling back to on-demand
    /// allocation if the machine refuses the reservation) and the linker.
    pub fn new(config: RuntimeConfig) -> Result<Self, LoadError> {
        let engine = match Engine::new(&engine_config(Some(config.max_instances))) {
            Ok(engine) => engine,
            Err(e) => {
                tracing::warn!(error = %e, "pooling allocator unavailable; using on-demand allocation");
                Engine::new(&engine_config(None)).map_err(|e| LoadError::Engine(e.to_string()))?
            }
        };
        let mut linker = Linker::new(&engine);
        // WASI gives clocks, random and (captured) stdio. Nothing is granted
        // through it: no preopens, no sockets allowed; the environment holds
        // only the binding's own secrets.
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)
            .map_err(|e| LoadError::Engine(e.to_string()))?;
        // `wasi:http/outgoing-handler` for every plugin, so a component that
        // imports it loads; each request is judged by the binding's grant,
        // and a binding without one has every request refused.
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)
            .map_err(|e| LoadError::Engine(e.to_string()))?;
        // Every released contract version, side by side.
        FullPlugin::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |state| state)
            .map_err(|e| LoadError::Engine(e.to_string()))?;
        super::host_v0_2::add_to_linker(&mut linker)
            .map_err(|e| LoadError::Engine(e.to_string()))?;
        let cache = match config.cache_dir {
            Some(dir) => match ComponentCache::new(dir.clone(), &engine) {
                Ok(cache) => Some(cache),
                Err(e) => {
                    tracing::warn!(dir = %dir.display(), error = %e, "component cache unavailable; compiling in memory");
                    None
                }
            },
            None => None,
        };
        let ticker = EpochTicker::start(engine.clone());
        Ok(PluginRuntime {
            engine,
            linker,
            cache,
            _ticker: ticker,
        })
    }

    /// Compiles (or loads from cache) and links a plugin, and finds which
    /// roles it exports. Does not run it; see [`LoadedPlugin::check_init`].
    pub fn load(&self, binding: Binding) -> Result<LoadedPlugin, LoadError> {
        let name = binding.name.clone();
        let owned;
        let wasm: &[u8] = match &binding.wasm {
            WasmSource::File(path) => {
                owned = std::fs::read(path).map_err(|source| LoadError::Read {
                    path: path.display().to_string(),
                    source,
                })?;
                &owned
            }
            WasmSource::Bytes(bytes) => bytes,
        };
        let component = match &self.cache {
            Some(cache) => cache.load(&self.engine, wasm).map(|(c, hit)| {
                tracing::debug!(plugin = %name, cache_hit = hit, "component ready");
                c
            }),
            None => Component::new(&self.engine, wasm),
        }
        .map_err(|e| LoadError::Compile {
            name: name.clone(),
            reason: format!("{e:#}"),
        })?;
        let pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(|e| LoadError::Link {
                name: name.clone(),
                reason: format!("{e:#}"),
            })?;
        let schema = super::schema::read(wasm).map_err(|reason| LoadError::Schema {
            name: name.clone(),
            reason,
        })?;
        let component_sha256 = {
            use sha2::Digest;
            hex::encode(sha2::Sha256::digest(wasm))
        };
        LoadedPlugin::new(binding, pre, schema, component_sha256)
    }

    /// [`Self::load`] on tokio's blocking pool: reading and compiling a
    /// component takes tens of milliseconds to seconds, which must not stall
    /// the async workers that carry mail sessions.
    pub async fn load_async(self: &Arc<Self>, binding: Binding) -> Result<LoadedPlugin, LoadError> {
        let runtime = self.clone();
        tokio::task::spawn_blocking(move || runtime.load(binding))
            .await
            .map_err(|e| LoadError::Engine(format!("plugin loader stopped: {e}")))?
    }

    /// The wasmtime engine (for benchmarks and diagnostics).
    pub fn engine(&self) -> &Engine {
        &self.engine
    }
}

fn engine_config(pool: Option<u32>) -> Config {
    let mut config = Config::new();
    config.wasm_component_model(true);
    config.epoch_interruption(true);
    // Deep recursion ends in a clean stack-overflow trap, well inside the
    // fiber stack wasmtime runs async calls on.
    config.max_wasm_stack(1 << 20);
    config.async_stack_size(2 << 20);
    if let Some(instances) = pool {
        let mut pooling = PoolingAllocationConfig::new();
        pooling
            .total_component_instances(instances)
            .total_core_instances(instances * 8)
            .total_memories(instances * 2)
            .total_tables(instances * 4)
            .total_stacks(instances)
            .max_memory_size(MAX_MEMORY_BYTES)
            .max_memories_per_module(1)
            .max_tables_per_module(2)
            // Every message gets a fresh instance, so slot reuse is the hot
            // path. Keep released slots' pages resident and reset only the
            // pages a call dirtied (PAGEMAP_SCAN, Linux 6.7+), instead of
            // unmapping them and faulting them back in on the next message.
            .linear_memory_keep_resident(16 << 20)
            .table_keep_resident(1 << 20)
            .pagemap_scan(Enabled::Auto)
            // A released slot stays warm for the plugin that used it: the
            // next instance of that plugin finds its image still mapped and
            // only dirtied pages to reset. A slot that goes cold is unmapped
            // and must be mapped again (mmap + mprotect + page faults) for
            // whichever plugin takes it next. 16 covers a 5-plugin chain on
            // up to three decide workers; with 4, such a chain on 2 workers
            // cost 0.4-1.1 s more kernel time per 10k messages, for a peak
            // RSS within 1-2 MiB of this.
            .max_unused_warm_slots(WARM_SLOTS.min(instances));
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pooling));
    }
    config
}

/// A thread that advances the engine's epoch every [`EPOCH_TICK`].
struct EpochTicker {
    alive: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl EpochTicker {
    fn start(engine: Engine) -> Self {
        let alive = Arc::new(AtomicBool::new(true));
        let flag = alive.clone();
        let thread = std::thread::Builder::new()
            .name("intake-epoch".into())
            .spawn(move || {
                while flag.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    engine.increment_epoch();
                }
            })
            .expect("spawn epoch thread");
        EpochTicker {
            alive,
            thread: Some(thread),
        }
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.alive.store(false, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
