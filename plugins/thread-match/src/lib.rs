//! thread-match: attaches a reply to the parties the earlier messages of its
//! thread were linked to, found through In-Reply-To and References (nearest
//! first).
//!
//! Configuration (optional): `{ "max_depth": 20 }`, how many thread ids to
//! look up before giving up.

use intake_plugin_sdk::{Directory, Error, Matcher, Message, Plugin, Verdict};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Config {
    max_depth: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config { max_depth: 20 }
    }
}

struct ThreadMatch {
    max_depth: usize,
}

impl Plugin for ThreadMatch {
    type Config = Config;

    fn new(config: Config) -> Result<Self, Error> {
        if config.max_depth == 0 {
            return Err(Error::new("`max_depth` must be at least 1"));
        }
        Ok(ThreadMatch {
            max_depth: config.max_depth,
        })
    }
}

impl Matcher for ThreadMatch {
    fn match_message(
        &self,
        message: &Message,
        directory: &dyn Directory,
    ) -> Result<Verdict, Error> {
        for id in message.thread_ids().into_iter().take(self.max_depth) {
            let found = directory.parties_for_message_id(id)?;
            if !found.parties.is_empty() {
                return Ok(Verdict::attach(
                    found.parties.iter().map(|p| p.to_ref()).collect(),
                ));
            }
        }
        Ok(Verdict::no_opinion())
    }
}

intake_plugin_sdk::export_plugin!(ThreadMatch: matcher);

#[cfg(test)]
mod tests {
    use intake_plugin_sdk::testing::{MessageBuilder, run_matcher};
    use intake_plugin_sdk::{MemoryDirectory, Outcome, PartyKind};

    use super::*;

    fn directory() -> MemoryDirectory {
        MemoryDirectory::new()
            .with_party(PartyKind::Contact, "ann@acme.example", None)
            .with_party(PartyKind::Lead, "lee@prospect.example", None)
            .with_thread("root@acme.example", &["ann@acme.example"])
            .with_thread("second@us.example", &["lee@prospect.example"])
    }

    fn ids(v: &Verdict) -> Vec<String> {
        match &v.outcome {
            Outcome::Attach(p) => p.iter().map(|r| r.id.clone()).collect(),
            _ => Vec::new(),
        }
    }

    #[test]
    fn follows_in_reply_to_first() {
        let m = MessageBuilder::new()
            .in_reply_to("second@us.example")
            .references(&["root@acme.example", "second@us.example"])
            .build();
        assert_eq!(
            ids(&run_matcher::<ThreadMatch>("{}", &m, &directory()).unwrap()),
            ["2"]
        );
    }

    #[test]
    fn falls_back_to_older_references() {
        let m = MessageBuilder::new()
            .references(&["root@acme.example", "unknown@x"])
            .build();
        assert_eq!(
            ids(&run_matcher::<ThreadMatch>("{}", &m, &directory()).unwrap()),
            ["1"]
        );
        let shallow = run_matcher::<ThreadMatch>(r#"{"max_depth": 1}"#, &m, &directory()).unwrap();
        assert_eq!(shallow.outcome, Outcome::NoOpinion);
    }

    #[test]
    fn no_opinion_without_thread() {
        let m = MessageBuilder::new().build();
        assert_eq!(
            run_matcher::<ThreadMatch>("{}", &m, &directory())
                .unwrap()
                .outcome,
            Outcome::NoOpinion
        );
    }
}
