//! hostile: a deliberately misbehaving plugin for the engine's sandbox tests.
//! Never deploy it. Its configuration picks the misbehaviour:
//!
//! `{ "mode": "...", "phase": "call" | "init", "id": "..." }`
//!
//! Modes: `ok` (no opinion), `spin` (infinite loop), `memory-bomb`,
//! `recursion` (unbounded), `panic`, `huge-output`, `log-spam` (logs and
//! prints far past the caps, then no opinion), `guest-error`, `reject`
//! (init refuses its config), `forged-party` (attaches contact `id`, which
//! the tenant may not have), `bad-lead` (create-lead with a non-address),
//! `raw-echo` (quarantines with the raw message's length and first line),
//! `huge-error` (returns an error of `size` bytes, 60 MB by default),
//! `long-error` (an error of 200 KB), `escape-reason` (quarantines with a
//! reason full of terminal escapes), `escape-panic` (panics with them),
//! `escape-log` (logs them, then no opinion).

use std::hint::black_box;

use intake_plugin_sdk::{
    Directory, Error, Matcher, Message, NewLead, PartyKind, PartyRef, Plugin, PolicyVerdict,
    UnknownSenderPolicy, Verdict, log,
};
use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Config {
    mode: String,
    phase: String,
    id: String,
    size: usize,
}

/// Clears the screen, homes the cursor and fakes a log line.
const ESCAPES: &str = "\x1b[2J\x1b[Hreason\r\nINFO intake: all good\u{202e}";

struct Hostile {
    config: Config,
}

fn misbehave(mode: &str, size: usize) -> Result<(), Error> {
    match mode {
        "huge-error" => Err(Error::new("E".repeat(if size == 0 {
            60 << 20
        } else {
            size
        }))),
        "long-error" => Err(Error::new(format!("{ESCAPES}{}", "L".repeat(200 << 10)))),
        "escape-panic" => panic!("{ESCAPES}"),
        "escape-log" => {
            log::warn(ESCAPES);
            Ok(())
        }
        "spin" => {
            let mut n: u64 = 0;
            loop {
                n = black_box(n.wrapping_add(1));
            }
        }
        "memory-bomb" => {
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            loop {
                hoard.push(black_box(vec![7u8; 1 << 20]));
            }
        }
        "recursion" => {
            black_box(recurse(black_box(0)));
            Ok(())
        }
        "panic" => panic!("hostile plugin panicked on purpose"),
        "guest-error" => Err(Error::new("hostile plugin returned an error on purpose")),
        "reject" => Err(Error::new("hostile plugin rejects every configuration")),
        "log-spam" => {
            for i in 0..10_000 {
                log::info(&format!("spam line {i} {}", "x".repeat(4096)));
            }
            for _ in 0..1_000 {
                println!("{}", "y".repeat(1024));
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

#[allow(unconditional_recursion)]
fn recurse(depth: u64) -> u64 {
    let frame = black_box([depth; 64]);
    recurse(depth + 1) + frame[black_box(3)]
}

impl Plugin for Hostile {
    type Config = Config;

    fn new(config: Config) -> Result<Self, Error> {
        if config.phase == "init" {
            misbehave(&config.mode, config.size)?;
        }
        Ok(Hostile { config })
    }
}

impl Matcher for Hostile {
    fn match_message(
        &self,
        message: &Message,
        _directory: &dyn Directory,
    ) -> Result<Verdict, Error> {
        if self.config.phase != "init" {
            misbehave(&self.config.mode, self.config.size)?;
        }
        Ok(match self.config.mode.as_str() {
            "huge-output" => Verdict::attach(
                (0..200_000)
                    .map(|i| PartyRef {
                        kind: PartyKind::Contact,
                        id: format!("{i:0>100}"),
                    })
                    .collect(),
            ),
            "escape-reason" => Verdict::quarantine(ESCAPES),
            "forged-party" => Verdict::attach(vec![PartyRef {
                kind: PartyKind::Contact,
                id: self.config.id.clone(),
            }]),
            "raw-echo" => {
                let raw = intake_plugin_sdk::raw_message(message.size);
                let first = raw.split(|b| *b == b'\n').next().unwrap_or_default();
                let first = String::from_utf8_lossy(first).trim_end().to_string();
                Verdict::quarantine(format!("raw {} bytes; first line: {first}", raw.len()))
            }
            _ => Verdict::no_opinion(),
        })
    }
}

impl UnknownSenderPolicy for Hostile {
    fn decide(
        &self,
        _message: &Message,
        _directory: &dyn Directory,
    ) -> Result<PolicyVerdict, Error> {
        if self.config.phase != "init" {
            misbehave(&self.config.mode, self.config.size)?;
        }
        Ok(match self.config.mode.as_str() {
            "bad-lead" => PolicyVerdict::create_lead(NewLead {
                email: "not an address".into(),
                name: None,
                company: None,
            }),
            _ => PolicyVerdict::keep_unlinked(),
        })
    }
}

intake_plugin_sdk::export_plugin!(Hostile: matcher, unknown_sender);
