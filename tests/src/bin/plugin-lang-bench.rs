//! What a plugin costs in each language: `exact-match` in Rust, Python
//! (componentize-py) and JavaScript (componentize-js), run the way the
//! engine runs it (pooling allocator, a fresh instance per message:
//! instantiate + `init` + `match-message`, with a directory look-up that
//! attaches). Prints, per port: component size, compile time (and the
//! compiled artifact's size), load time from the engine's cache, the
//! per-message time (median and 90th percentile; and the median of
//! instantiate + init alone), the smallest memory cap
//! it runs under, and the process's resident memory after its runs (the
//! ports run one after the other, so each figure includes the ones before).
//!
//! `./dev bench-langs` (release build; builds the components first).
//! `INTAKE_BENCH_MESSAGES` sets the messages timed per port (default 2000);
//! arguments `NAME=PATH.wasm` add other builds of the same plugin (say,
//! componentize-py's `--stub-wasi`) to the table.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use intake::directory::{MemoryDirectory, Party, PartyKind};
use intake::parse::{self, Envelope, Origin};
use intake::plugin::{Binding, CallContext, CallError, PluginRuntime, RuntimeConfig};
use intake_tests::langs::{self, Lang};
use intake_tests::{plugin, root};

fn main() {
    let messages: usize = std::env::var("INTAKE_BENCH_MESSAGES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(2000);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio");
    let mut ports = vec![
        ("rust".to_string(), plugin("exact_match")),
        (
            "python".to_string(),
            langs::build(
                Lang::Python,
                &root().join("plugins/exact-match-py"),
                "exact_match",
            ),
        ),
        (
            "js".to_string(),
            langs::build(
                Lang::Js,
                &root().join("plugins/exact-match-js"),
                "exact_match",
            ),
        ),
    ];
    for extra in std::env::args().skip(1) {
        let (name, path) = extra
            .split_once('=')
            .unwrap_or_else(|| panic!("{extra}: give NAME=PATH.wasm"));
        ports.push((name.to_string(), path.into()));
    }

    let directory = Arc::new(MemoryDirectory::new());
    for i in 0..1000 {
        directory.insert(
            "t",
            Party {
                kind: if i % 3 == 0 {
                    PartyKind::Lead
                } else {
                    PartyKind::Contact
                },
                id: String::new(),
                email: format!("person{i}@company{}.example", i % 50),
                name: Some(format!("Person {i}")),
                company: None,
                external_id: None,
            },
        );
    }
    let envelope = Envelope {
        tenant_id: "t".into(),
        account_id: "a".into(),
        origin: Origin::File("bench".into()),
    };
    let raw = bytes::Bytes::from(
        "From: Person Seven <Person7@Company7.example>\r\nTo: Sales <sales@ourco.example>\r\n\
Cc: person8@company8.example, someone@else.example\r\nSubject: Re: the annual plan\r\n\
Message-ID: <bench.1@company7.example>\r\nDate: Mon, 02 Nov 2026 09:14:03 +0100\r\n\r\n\
Thanks for the call yesterday; a revised quote, please.\r\n"
            .to_string(),
    );
    let parsed = parse::parse(raw, &envelope, parse::DEFAULT_MAX_BODY_BYTES).expect("parse");
    let call = Arc::new(CallContext {
        tenant_id: "t".into(),
        account_id: "a".into(),
        directory: directory.clone(),
        raw: parsed.raw.clone(),
    });

    println!(
        "{:<12} {:>9} {:>11} {:>10} {:>10} {:>11} {:>11} {:>9} {:>10} {:>9}",
        "port",
        "wasm KB",
        "compile ms",
        "cwasm KB",
        "cached ms",
        "median µs",
        "p90 µs",
        "init µs",
        "min cap",
        "RSS"
    );
    for (name, path) in &ports {
        let wasm_kb = std::fs::metadata(path).expect("component").len() / 1024;
        // Compile without a cache (what the first load on a machine costs),
        // then through a fresh cache twice: the second load is what every
        // later start costs.
        let cache = tempfile::tempdir().expect("temp dir");
        let uncached = PluginRuntime::new(RuntimeConfig {
            cache_dir: None,
            ..RuntimeConfig::default()
        })
        .expect("runtime");
        let started = Instant::now();
        uncached
            .load(Binding::from_file(path))
            .expect("load uncached");
        let compile = started.elapsed();
        drop(uncached);
        let runtime = PluginRuntime::new(RuntimeConfig {
            cache_dir: Some(cache.path().to_path_buf()),
            ..RuntimeConfig::default()
        })
        .expect("runtime");
        runtime.load(Binding::from_file(path)).expect("fill cache");
        let started = Instant::now();
        let loaded = runtime.load(Binding::from_file(path)).expect("load cached");
        let cached = started.elapsed();
        let cwasm_kb = dir_size(cache.path()) / 1024;

        // Per message: instantiate + init + match-message, fresh instance.
        let verdict = rt
            .block_on(loaded.run_matcher(&parsed.view, &call))
            .expect("first call");
        let said = format!("{verdict:?}");
        assert!(said.contains("Attach"), "{name}: {said}");
        for _ in 0..messages / 10 {
            rt.block_on(loaded.run_matcher(&parsed.view, &call))
                .expect("warm-up");
        }
        let mut times: Vec<Duration> = (0..messages)
            .map(|_| {
                let started = Instant::now();
                rt.block_on(loaded.run_matcher(&parsed.view, &call))
                    .expect("call");
                started.elapsed()
            })
            .collect();
        times.sort();
        let median = times[times.len() / 2];
        let p90 = times[times.len() * 9 / 10];
        // Instantiate + init alone (what every message pays before the
        // role function runs).
        let mut inits: Vec<Duration> = (0..messages / 4)
            .map(|_| {
                let started = Instant::now();
                rt.block_on(loaded.check_init("t", directory.clone()))
                    .expect("init");
                started.elapsed()
            })
            .collect();
        inits.sort();
        let init = inits[inits.len() / 2];

        let min_cap = smallest_cap(&rt, &runtime, path, &parsed.view, &call);
        println!(
            "{name:<12} {wasm_kb:>9} {:>11.0} {cwasm_kb:>10} {:>10.1} {:>11.0} {:>11.0} {:>9.0} {:>6} MiB {:>5} MiB",
            compile.as_secs_f64() * 1e3,
            cached.as_secs_f64() * 1e3,
            median.as_secs_f64() * 1e6,
            p90.as_secs_f64() * 1e6,
            init.as_secs_f64() * 1e6,
            min_cap >> 20,
            rss_kb() / 1024,
        );
    }
}

/// The smallest memory cap (whole MiB) the plugin decides under.
fn smallest_cap(
    rt: &tokio::runtime::Runtime,
    runtime: &PluginRuntime,
    path: &Path,
    view: &intake::parse::MessageView,
    call: &Arc<CallContext>,
) -> usize {
    let fits = |mib: usize| {
        let mut binding = Binding::from_file(path);
        binding.limits.memory_bytes = mib << 20;
        let loaded = runtime.load(binding).expect("load");
        match rt.block_on(loaded.run_matcher(view, call)) {
            Ok(_) => true,
            Err(CallError::MemoryLimit(_)) => false,
            Err(e) => panic!("{}: {e}", path.display()),
        }
    };
    let (mut low, mut high) = (0usize, 256usize);
    assert!(fits(high), "{} needs over {high} MiB", path.display());
    while high - low > 1 {
        let mid = (low + high) / 2;
        if fits(mid) {
            high = mid;
        } else {
            low = mid;
        }
    }
    high << 20
}

fn dir_size(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

/// Resident memory of this process now, in KiB (Linux).
fn rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}
