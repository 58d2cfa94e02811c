//! Where the store lives and how it is opened: a SQLite file given as a plain
//! path or a `sqlite:` URL, or a PostgreSQL URL.
//!
//! A SQLite store holds mail, contacts and sealed credentials, so it is
//! created owner-only (0600) before the driver opens it; SQLite then gives
//! its `-wal` and `-shm` files the same mode. Commands that only read never
//! create a store: a missing file is an error naming the path, not an empty
//! database that hides the real one.

use std::path::{Path, PathBuf};

use super::{Error, Result, Store, redact};

/// A store as the operator names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreLocation {
    /// A SQLite file.
    File(PathBuf),
    /// Any other database URL (`postgres://…`, `sqlite::memory:`).
    Url(String),
}

/// Whether opening may create a SQLite file that does not exist yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenMode {
    /// Create the file (owner-only) if it is missing: commands that change
    /// data.
    Create,
    /// Refuse a missing file: commands that only read.
    Existing,
}

impl StoreLocation {
    /// Reads `--database-url`: a plain path, `sqlite://path[?…]`, or another
    /// URL. `sqlite:` URLs naming a file become [`StoreLocation::File`], so
    /// the same creation rules apply however the file is named.
    pub fn parse(text: &str) -> StoreLocation {
        let text = text.trim();
        if let Some(rest) = text
            .strip_prefix("sqlite://")
            .or_else(|| text.strip_prefix("sqlite:"))
        {
            let path = rest.split_once('?').map_or(rest, |(p, _)| p);
            if path.is_empty() || path.contains(":memory:") || text.contains("mode=memory") {
                return StoreLocation::Url(text.to_owned());
            }
            return StoreLocation::File(PathBuf::from(path));
        }
        if text.contains("://") {
            return StoreLocation::Url(text.to_owned());
        }
        StoreLocation::File(PathBuf::from(text))
    }

    /// How the operator should see it: the file's path, or the URL without
    /// its password.
    pub fn display(&self) -> String {
        match self {
            StoreLocation::File(path) => path.display().to_string(),
            StoreLocation::Url(url) => redact(url),
        }
    }
}

impl Store {
    /// Opens the store at `location`, creating a SQLite file (owner-only)
    /// only when `mode` allows it, and brings the schema up to date.
    pub async fn open(location: &StoreLocation, mode: OpenMode) -> Result<Store> {
        let path = match location {
            StoreLocation::Url(url) => return Store::connect(url).await,
            StoreLocation::File(path) => path,
        };
        let exists = path.exists();
        match mode {
            OpenMode::Existing if !exists => {
                return Err(Error::NoStore { path: path.clone() });
            }
            OpenMode::Create if !exists => create_private(path)?,
            _ => warn_if_shared(path),
        }
        let store = Store::connect(&format!("sqlite://{}?mode=rw", encode_path(path))).await?;
        // SQLite copies the database's mode to these; this covers a file
        // created by an older version, or by hand, with a looser umask.
        for suffix in ["-wal", "-shm"] {
            let mut side = path.as_os_str().to_owned();
            side.push(suffix);
            restrict(Path::new(&side));
        }
        Ok(store)
    }
}

/// Creates an empty file readable and writable by its owner only, and its
/// directory (owner-only too) if missing.
fn create_private(path: &Path) -> Result<()> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let fail = |source| Error::CreateFile {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        && !dir.exists()
    {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(fail)?;
    }
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => Ok(()),
        // Another process created it in between: open that one.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(fail(e)),
    }
}

/// Narrows a side file (WAL, shared memory) to owner-only, if it exists.
fn restrict(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
    }
}

/// An existing store others can read is the operator's to fix (it may be
/// shared on purpose), but they should know.
fn warn_if_shared(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path) {
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            tracing::warn!(
                "the store {} is readable by other users (mode {mode:o}); `chmod 600` it",
                path.display()
            );
        }
    }
}

/// sqlx percent-decodes the path of a `sqlite://` URL: encode what would
/// otherwise be read as a query, a fragment or an escape.
fn encode_path(path: &Path) -> String {
    let mut out = String::new();
    for c in path.to_string_lossy().chars() {
        match c {
            '%' => out.push_str("%25"),
            '?' => out.push_str("%3F"),
            '#' => out.push_str("%23"),
            ' ' => out.push_str("%20"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_paths_and_sqlite_urls_name_files() {
        assert_eq!(
            StoreLocation::parse("/var/lib/intake/intake.db"),
            StoreLocation::File("/var/lib/intake/intake.db".into())
        );
        assert_eq!(
            StoreLocation::parse("intake.db"),
            StoreLocation::File("intake.db".into())
        );
        assert_eq!(
            StoreLocation::parse("sqlite://data/x.db?mode=rwc"),
            StoreLocation::File("data/x.db".into())
        );
        assert_eq!(
            StoreLocation::parse("sqlite:x.db"),
            StoreLocation::File("x.db".into())
        );
        assert!(matches!(
            StoreLocation::parse("sqlite::memory:"),
            StoreLocation::Url(_)
        ));
        assert_eq!(
            StoreLocation::parse("postgres://u:pw@db/intake").display(),
            "postgres://u:***@db/intake"
        );
        assert_eq!(encode_path(Path::new("/a b/c?d%")), "/a%20b/c%3Fd%25");
    }
}
