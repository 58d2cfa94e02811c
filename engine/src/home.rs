//! The data directory: one place per user for the SQLite store and the
//! master key, so every command finds the same data whatever the current
//! directory is.
//!
//! `INTAKE_HOME` (or `--home`) when set; else the platform's data directory,
//! `$XDG_DATA_HOME/intake`, falling back to `~/.local/share/intake`. The
//! directory is created owner-only (0700) by the first command that stores
//! something.

use std::path::{Path, PathBuf};

/// The store's file name inside the data directory.
pub const STORE_FILE: &str = "intake.db";
/// The master key's file name inside the data directory.
pub const KEY_FILE: &str = "intake.key";

/// Why no data directory could be chosen.
#[derive(Debug, thiserror::Error)]
pub enum HomeError {
    /// Neither `INTAKE_HOME`, `XDG_DATA_HOME` nor `HOME` gives a directory.
    #[error(
        "cannot tell where to keep Intake's data: set INTAKE_HOME (or HOME), \
         or give --database-url and --key-file"
    )]
    Unknown,
    /// The current directory is needed for a relative path and is gone.
    #[error("cannot resolve {path}: the current directory cannot be read: {source}")]
    CurrentDir {
        /// The relative path.
        path: String,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
}

/// The environment the data directory is chosen from (read once, at start).
#[derive(Debug, Clone, Default)]
pub struct HomeEnv {
    /// `--home` / `INTAKE_HOME`.
    pub intake_home: Option<PathBuf>,
    /// `XDG_DATA_HOME`.
    pub xdg_data_home: Option<PathBuf>,
    /// `HOME`.
    pub home: Option<PathBuf>,
}

impl HomeEnv {
    /// The process's environment.
    pub fn from_process() -> HomeEnv {
        let var = |name| {
            std::env::var_os(name)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        HomeEnv {
            intake_home: var("INTAKE_HOME"),
            xdg_data_home: var("XDG_DATA_HOME"),
            home: var("HOME"),
        }
    }

    /// The data directory (absolute).
    pub fn data_dir(&self) -> Result<PathBuf, HomeError> {
        if let Some(dir) = &self.intake_home {
            return absolute(dir);
        }
        // The XDG spec says relative values are to be ignored.
        if let Some(xdg) = self.xdg_data_home.as_ref().filter(|p| p.is_absolute()) {
            return Ok(xdg.join("intake"));
        }
        match &self.home {
            Some(home) => Ok(absolute(home)?.join(".local/share/intake")),
            None => Err(HomeError::Unknown),
        }
    }
}

/// `path` made absolute against the current directory, so that what the
/// operator is told names one place.
pub fn absolute(path: &Path) -> Result<PathBuf, HomeError> {
    if path.is_absolute() {
        return Ok(path.to_path_buf());
    }
    let cwd = std::env::current_dir().map_err(|source| HomeError::CurrentDir {
        path: path.display().to_string(),
        source,
    })?;
    Ok(cwd.join(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intake_home_then_xdg_then_home() {
        let env = HomeEnv {
            intake_home: Some("/srv/intake".into()),
            xdg_data_home: Some("/x".into()),
            home: Some("/home/ann".into()),
        };
        assert_eq!(env.data_dir().unwrap(), Path::new("/srv/intake"));
        let env = HomeEnv {
            intake_home: None,
            ..env
        };
        assert_eq!(env.data_dir().unwrap(), Path::new("/x/intake"));
        let env = HomeEnv {
            xdg_data_home: Some("relative".into()),
            ..env
        };
        assert_eq!(
            env.data_dir().unwrap(),
            Path::new("/home/ann/.local/share/intake")
        );
        assert!(HomeEnv::default().data_dir().is_err());
    }
}
