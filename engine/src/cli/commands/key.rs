//! `intake key`: make and rotate the master key that seals stored credentials.

use super::*;

#[derive(Debug, Subcommand)]
pub(crate) enum KeyCommand {
    /// Write a new random master key (owner-only, 0600) to FILE, default the
    /// configured key file (--key-file, else intake.key in the data
    /// directory). Never overwrites a file.
    Generate {
        /// Where to write it.
        file: Option<PathBuf>,
    },
    /// Re-encrypt every stored credential (all tenants) with the key in
    /// NEW_KEY_FILE (make it with `intake key generate NEW_KEY_FILE`), in
    /// one transaction; then use that file as the key.
    Rotate {
        /// The new key file.
        new_key_file: PathBuf,
    },
}

pub(crate) async fn key(
    c: &Config,
    cmd: KeyCommand,
    out: &mut (dyn Write + Send),
) -> anyhow::Result<ExitCode> {
    match cmd {
        KeyCommand::Generate { file } => {
            let path = match (file, c.key.path()) {
                (Some(file), _) => crate::home::absolute(&file)?,
                (None, Some(path)) => path.to_path_buf(),
                (None, None) => bail!(
                    "the master key comes from ${}: name the file to write, \
                     `intake key generate FILE`",
                    crate::store::MASTER_KEY_ENV
                ),
            };
            if path.exists() {
                bail!(
                    "{} exists: a key is never overwritten (credentials sealed with it would be lost); \
                     to replace it, generate a new file and run `intake key rotate NEW_FILE`",
                    path.display()
                );
            }
            let key = MasterKey::generate()?;
            write_private(&path, key.to_base64().as_bytes())?;
            writeln!(
                out,
                "wrote a new master key to {} (mode 0600): back it up apart from the store",
                path.display()
            )?;
        }
        KeyCommand::Rotate { new_key_file } => {
            let new_path = crate::home::absolute(&new_key_file)?;
            let new = MasterKey::from_env_or_file(Some(&new_path)).with_context(|| {
                format!(
                    "make the new key first: `intake key generate {}`",
                    new_path.display()
                )
            })?;
            let old = c.master_key()?;
            let (store, _) = open(c, OpenMode::Existing).await?;
            eprintln!("store: {}", c.store.display());
            let count = store
                .rotate_master_key(&old, &new)
                .await
                .map_err(|e| key_hint(c, e))?;
            writeln!(
                out,
                "re-encrypted {count} credential(s) with {}",
                new_path.display()
            )?;
            match c.key.path() {
                Some(old_path) => writeln!(
                    out,
                    "now make it the key: mv {} {}  (keep a backup of both until you have checked `intake fetch`)",
                    new_path.display(),
                    old_path.display()
                )?,
                None => writeln!(
                    out,
                    "now set {} to the contents of {}",
                    crate::store::MASTER_KEY_ENV,
                    new_path.display()
                )?,
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
