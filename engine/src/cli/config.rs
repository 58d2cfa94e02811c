//! The command line's configuration: flags and `INTAKE_*` variables, read
//! once at start into [`Config`] and passed down; nothing below reads the
//! environment.

use std::path::{Path, PathBuf};

use anyhow::Context;

use super::Global;
use crate::home::{self, HomeEnv};
use crate::store::{MASTER_KEY_ENV, MasterKey, StoreLocation};

/// Where the master key comes from.
#[derive(Debug, Clone)]
pub(crate) enum KeySource {
    /// `$INTAKE_MASTER_KEY` (base64).
    Env(String),
    /// A key file: `--key-file` / `INTAKE_KEY_FILE` (`explicit`), else
    /// `intake.key` in the data directory.
    File {
        /// The file (absolute).
        path: PathBuf,
        /// Named by the operator: never created implicitly.
        explicit: bool,
    },
}

impl KeySource {
    /// Where it comes from, for messages.
    pub(crate) fn describe(&self) -> String {
        match self {
            KeySource::Env(_) => format!("${MASTER_KEY_ENV}"),
            KeySource::File { path, .. } => path.display().to_string(),
        }
    }

    /// The key file, if the key comes from one.
    pub(crate) fn path(&self) -> Option<&Path> {
        match self {
            KeySource::Env(_) => None,
            KeySource::File { path, .. } => Some(path),
        }
    }
}

/// Everything the store commands need to know about where things are.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    /// The tenant the command works on.
    pub(crate) tenant: String,
    /// The data directory (holds the default store and key).
    pub(crate) home: PathBuf,
    /// The store.
    pub(crate) store: StoreLocation,
    /// The master key.
    pub(crate) key: KeySource,
    /// A directory replacing the bundled plugins, if given.
    pub(crate) plugin_dir: Option<PathBuf>,
}

impl Config {
    /// Resolves the global flags (clap has already merged their `INTAKE_*`
    /// variables) and the rest of the environment.
    pub(crate) fn from_global(g: &Global) -> anyhow::Result<Config> {
        let master_key = std::env::var(MASTER_KEY_ENV)
            .ok()
            .filter(|k| !k.trim().is_empty());
        Config::resolve(g, HomeEnv::from_process(), master_key)
    }

    /// [`from_global`](Self::from_global) with the environment given;
    /// `--home` wins over it.
    pub(crate) fn resolve(
        g: &Global,
        mut env: HomeEnv,
        master_key: Option<String>,
    ) -> anyhow::Result<Config> {
        if g.home.is_some() {
            env.intake_home.clone_from(&g.home);
        }
        let explicit_store = g.database_url.as_deref().filter(|u| !u.trim().is_empty());
        // The data directory matters only for what is not given explicitly.
        let home = match env.data_dir() {
            Ok(dir) => dir,
            Err(e)
                if explicit_store.is_some() && (g.key_file.is_some() || master_key.is_some()) =>
            {
                tracing::debug!("no data directory: {e}");
                PathBuf::new()
            }
            Err(e) => return Err(e.into()),
        };
        let store = match explicit_store.map(StoreLocation::parse) {
            Some(StoreLocation::File(path)) => StoreLocation::File(home::absolute(&path)?),
            Some(url) => url,
            None => StoreLocation::File(home.join(home::STORE_FILE)),
        };
        let key = match (&g.key_file, master_key) {
            (Some(path), _) => KeySource::File {
                path: home::absolute(path)?,
                explicit: true,
            },
            (None, Some(text)) => KeySource::Env(text),
            (None, None) => KeySource::File {
                path: home.join(home::KEY_FILE),
                explicit: false,
            },
        };
        Ok(Config {
            tenant: g.tenant.clone(),
            home,
            store,
            key,
            plugin_dir: g.plugin_dir.clone(),
        })
    }

    /// The master key, or an error saying where it was looked for and how to
    /// make one.
    pub(crate) fn master_key(&self) -> anyhow::Result<MasterKey> {
        match &self.key {
            KeySource::Env(text) => MasterKey::from_base64(text)
                .with_context(|| format!("the master key in ${MASTER_KEY_ENV} is not usable")),
            KeySource::File { path, explicit } => {
                if !path.exists() {
                    let how = if *explicit {
                        format!(
                            "make one with `intake key generate --key-file {}`",
                            path.display()
                        )
                    } else {
                        "it is made when the first credential is stored (or by `intake key generate`); \
                         if your credentials were stored with another key, point --key-file, \
                         INTAKE_KEY_FILE or INTAKE_HOME at it"
                            .to_owned()
                    };
                    anyhow::bail!(
                        "no master key: looked for ${MASTER_KEY_ENV} (not set) and the key file {} \
                         (not found); {how}",
                        path.display()
                    );
                }
                Ok(MasterKey::from_env_or_file(Some(path))?)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::Cli;

    fn config(args: &[&str], home: &str, master: Option<&str>) -> Config {
        let cli =
            Cli::try_parse_from(["intake"].iter().chain(args).chain(&["inbox", "x"])).unwrap();
        let env = HomeEnv {
            intake_home: None,
            xdg_data_home: None,
            home: Some(home.into()),
        };
        Config::resolve(&cli.global, env, master.map(String::from)).unwrap()
    }

    #[test]
    fn store_and_key_live_in_the_data_directory() {
        let c = config(&[], "/home/ann", None);
        let dir = Path::new("/home/ann/.local/share/intake");
        assert_eq!(c.store, StoreLocation::File(dir.join("intake.db")));
        assert_eq!(c.key.path(), Some(dir.join("intake.key").as_path()));
        let c = config(&["--home", "/srv/i"], "/home/ann", None);
        assert_eq!(c.store, StoreLocation::File("/srv/i/intake.db".into()));
        let c = config(&[], "/home/ann", Some("AAAA"));
        assert_eq!(c.key.describe(), "$INTAKE_MASTER_KEY");
    }

    #[test]
    fn a_plain_path_is_a_sqlite_store_and_a_missing_key_says_where() {
        let c = config(&["--database-url", "/tmp/x/intake.db"], "/home/ann", None);
        assert_eq!(c.store, StoreLocation::File("/tmp/x/intake.db".into()));
        let c = config(&["--key-file", "/nonexistent/new.key"], "/home/ann", None);
        let err = c.master_key().unwrap_err().to_string();
        assert!(err.contains("/nonexistent/new.key"), "{err}");
        assert!(err.contains("intake key generate"), "{err}");
    }
}
