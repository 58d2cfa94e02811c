//! Local mail files as a [`MailSource`], so backfill imports (`intake import`)
//! go through the same parse → plugin → pipeline → store path as retrieval:
//! a Maildir (`cur/` and `new/`, sub-folders as `.Name`), an mbox file, or an
//! `.eml` file or directory of them. Nothing is ever changed on disk.
//!
//! mbox files are split by offsets (`From ` lines after a blank line or at
//! the start) in one streaming pass, so fetching a batch reads just those
//! messages' own byte ranges; `>From ` lines are un-escaped one level
//! (mboxrd). File work runs on tokio's blocking pool, never on the async
//! runtime's workers.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use async_trait::async_trait;

use super::{
    Acknowledge, FetchError, Fetched, FolderCursor, Listed, Listing, MailSource, MessageKey,
    NetError,
};

/// What to import.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileSet {
    /// A Maildir (with optional `.Sub` folders).
    Maildir(PathBuf),
    /// An mbox file.
    Mbox(PathBuf),
    /// An `.eml` file, or a directory searched recursively for files.
    Eml(PathBuf),
}

/// Local files as a mail source.
#[derive(Debug)]
pub struct FileSource {
    /// What to read.
    set: FileSet,
    /// Larger messages are listed as too large, never read.
    max_message_bytes: u64,
    /// mbox only: each listed message's length by its offset, so a fetch
    /// reads exactly its range.
    mbox_lengths: HashMap<u64, u64>,
}

fn io_error(path: &Path, e: std::io::Error) -> FetchError {
    FetchError::Net(NetError::Io(std::io::Error::new(
        e.kind(),
        format!("{}: {e}", path.display()),
    )))
}

impl FileSource {
    /// A source over `set`; larger messages are listed as too large.
    pub fn new(set: FileSet, max_message_bytes: u64) -> Result<Self, FetchError> {
        let path = match &set {
            FileSet::Maildir(p) | FileSet::Mbox(p) | FileSet::Eml(p) => p,
        };
        std::fs::metadata(path).map_err(|e| io_error(path, e))?;
        if let FileSet::Maildir(p) = &set
            && !p.join("cur").is_dir()
            && !p.join("new").is_dir()
        {
            return Err(FetchError::NoSuchFolder {
                folder: p.display().to_string(),
                detail: "not a Maildir (no cur/ or new/)".into(),
            });
        }
        Ok(FileSource {
            set,
            max_message_bytes,
            mbox_lengths: HashMap::new(),
        })
    }
}

fn maildir_folder(root: &Path, folder: &str) -> PathBuf {
    if folder.eq_ignore_ascii_case("INBOX") {
        root.to_path_buf()
    } else {
        root.join(format!(".{folder}"))
    }
}

/// Runs blocking file work on tokio's blocking pool.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, FetchError> + Send + 'static,
) -> Result<T, FetchError> {
    tokio::task::spawn_blocking(work).await.map_err(|e| {
        FetchError::Net(NetError::Io(std::io::Error::other(format!(
            "file reader stopped: {e}"
        ))))
    })?
}

/// Regular files below `dir` (recursively), sorted by path, hidden files
/// and folders skipped.
pub fn files_below(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        for entry in std::fs::read_dir(&d)? {
            let entry = entry?;
            if entry.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            let kind = entry.file_type()?;
            if kind.is_dir() {
                pending.push(entry.path());
            } else if kind.is_file() {
                out.push(entry.path());
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Byte ranges of the messages in an mbox: `(offset of the body after the
/// From line, length)`.
pub fn mbox_ranges(data: &[u8]) -> Vec<(u64, u64)> {
    mbox_ranges_in(data).expect("reading a slice cannot fail")
}

/// [`mbox_ranges`] over a reader, in one pass, holding one line at a time.
pub fn mbox_ranges_in(reader: impl BufRead) -> std::io::Result<Vec<(u64, u64)>> {
    let mut reader = reader;
    let mut ranges: Vec<(u64, u64)> = Vec::new();
    // Body start of the message being scanned.
    let mut open: Option<u64> = None;
    let mut pos: u64 = 0;
    let mut previous_blank = true;
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = reader.read_until(b'\n', &mut line)?;
        if n == 0 {
            break;
        }
        if previous_blank && line.starts_with(b"From ") {
            if let Some(body) = open {
                ranges.push((body, pos - body));
            }
            open = Some(pos + n as u64);
        }
        previous_blank = line == b"\n" || line == b"\r\n";
        pos += n as u64;
    }
    if let Some(body) = open {
        ranges.push((body, pos - body));
    }
    Ok(ranges)
}

/// One mbox message: `>From ` un-escaped one level, the separator's blank
/// line dropped.
pub fn mbox_message(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len());
    for line in raw.split_inclusive(|&b| b == b'\n') {
        let quoted = line.iter().take_while(|&&b| b == b'>').count();
        if quoted > 0 && line[quoted..].starts_with(b"From ") {
            out.extend_from_slice(&line[1..]);
        } else {
            out.extend_from_slice(line);
        }
    }
    // The blank line before the next "From " belongs to the mbox format.
    if out.ends_with(b"\r\n\r\n") || out.ends_with(b"\n\n") {
        let cut = if out.ends_with(b"\r\n") { 2 } else { 1 };
        out.truncate(out.len() - cut);
    }
    out
}

#[async_trait]
impl MailSource for FileSource {
    fn folders(&self) -> Vec<String> {
        match &self.set {
            FileSet::Maildir(root) => {
                let mut folders = vec!["INBOX".to_string()];
                if let Ok(entries) = std::fs::read_dir(root) {
                    let mut subs: Vec<String> = entries
                        .flatten()
                        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                        .filter_map(|e| {
                            e.file_name()
                                .to_str()?
                                .strip_prefix('.')
                                .map(str::to_string)
                        })
                        .filter(|n| !n.is_empty())
                        .collect();
                    subs.sort();
                    folders.extend(subs);
                }
                folders
            }
            _ => vec!["INBOX".to_string()],
        }
    }

    async fn list(&mut self, folder: &str, _cursor: &FolderCursor) -> Result<Listing, FetchError> {
        let set = self.set.clone();
        let folder_name = folder.to_string();
        let (items, lengths) = blocking(move || list_files(&set, &folder_name)).await?;
        self.mbox_lengths = lengths;
        let mut listing = Listing {
            folder: folder.to_string(),
            ..Listing::default()
        };
        for item in items {
            if item.size > self.max_message_bytes {
                listing.too_large.push(item);
            } else {
                listing.new.push(item);
            }
        }
        Ok(listing)
    }

    async fn fetch(&mut self, messages: &[MessageKey]) -> Result<Vec<Fetched>, FetchError> {
        let mut wanted = Vec::with_capacity(messages.len());
        for m in messages {
            let MessageKey::File { path, offset } = m else {
                return Err(FetchError::Protocol(format!("not a file message: {m:?}")));
            };
            let range = match &self.set {
                FileSet::Mbox(_) => Some((*offset, self.mbox_length(path, *offset)?)),
                _ => None,
            };
            wanted.push((m.clone(), PathBuf::from(path), range));
        }
        blocking(move || {
            wanted
                .into_iter()
                .map(|(message, path, range)| {
                    let raw = match range {
                        Some((offset, len)) => mbox_message(&read_range(&path, offset, len)?),
                        None => std::fs::read(&path).map_err(|e| io_error(&path, e))?,
                    };
                    Ok(Fetched {
                        message,
                        raw: raw.into(),
                    })
                })
                .collect()
        })
        .await
    }

    fn can_act_on(&self, _message: &MessageKey) -> bool {
        // Imports never change the files, nor anything on a server.
        false
    }

    async fn acknowledge(
        &mut self,
        _actions: &[(MessageKey, Acknowledge)],
    ) -> Result<(), FetchError> {
        // Imports never change the files.
        Ok(())
    }

    async fn close(self: Box<Self>) -> Result<(), FetchError> {
        Ok(())
    }
}

impl FileSource {
    /// The listed length of the mbox message at `offset`.
    fn mbox_length(&self, path: &str, offset: u64) -> Result<u64, FetchError> {
        self.mbox_lengths.get(&offset).copied().ok_or_else(|| {
            FetchError::Protocol(format!(
                "{path}: no message listed at offset {offset} (list before fetching)"
            ))
        })
    }
}

/// Exactly `len` bytes of `path` from `offset`.
fn read_range(path: &Path, offset: u64, len: u64) -> Result<Vec<u8>, FetchError> {
    let mut file = std::fs::File::open(path).map_err(|e| io_error(path, e))?;
    file.seek(SeekFrom::Start(offset))
        .map_err(|e| io_error(path, e))?;
    let mut data = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    file.take(len)
        .read_to_end(&mut data)
        .map_err(|e| io_error(path, e))?;
    if (data.len() as u64) < len {
        return Err(io_error(
            path,
            std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the file is shorter than when it was listed",
            ),
        ));
    }
    Ok(data)
}

/// The messages of one folder of `set`, and for an mbox each message's
/// length by offset.
fn list_files(set: &FileSet, folder: &str) -> Result<(Vec<Listed>, HashMap<u64, u64>), FetchError> {
    let mut items: Vec<Listed> = Vec::new();
    let mut lengths = HashMap::new();
    let file_item = |file: PathBuf| -> Result<Listed, FetchError> {
        let size = std::fs::metadata(&file)
            .map_err(|e| io_error(&file, e))?
            .len();
        Ok(Listed {
            message: MessageKey::File {
                path: file.display().to_string(),
                offset: 0,
            },
            size,
        })
    };
    match set {
        FileSet::Maildir(root) => {
            let dir = maildir_folder(root, folder);
            for sub in ["cur", "new"] {
                let path = dir.join(sub);
                if !path.is_dir() {
                    continue;
                }
                for file in files_below(&path).map_err(|e| io_error(&path, e))? {
                    items.push(file_item(file)?);
                }
            }
        }
        FileSet::Mbox(path) => {
            let file = std::fs::File::open(path).map_err(|e| io_error(path, e))?;
            let ranges = mbox_ranges_in(BufReader::with_capacity(256 << 10, file))
                .map_err(|e| io_error(path, e))?;
            for (offset, size) in ranges {
                lengths.insert(offset, size);
                items.push(Listed {
                    message: MessageKey::File {
                        path: path.display().to_string(),
                        offset,
                    },
                    size,
                });
            }
        }
        FileSet::Eml(path) => {
            let files = if path.is_dir() {
                files_below(path).map_err(|e| io_error(path, e))?
            } else {
                vec![path.clone()]
            };
            for file in files {
                items.push(file_item(file)?);
            }
        }
    }
    Ok((items, lengths))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MBOX: &[u8] = b"From a@b Mon Nov  2 09:00:00 2026\n\
From: a@b.example\nSubject: one\n\nbody one\n>From the start\n\n\
From c@d Mon Nov  2 10:00:00 2026\n\
From: c@d.example\nSubject: two\n\nbody two\n";

    #[test]
    fn mbox_is_split_and_unescaped() {
        let ranges = mbox_ranges(MBOX);
        assert_eq!(ranges.len(), 2);
        let (o, l) = ranges[0];
        let first = mbox_message(&MBOX[o as usize..(o + l) as usize]);
        assert_eq!(
            first,
            b"From: a@b.example\nSubject: one\n\nbody one\nFrom the start\n"
        );
        let (o, l) = ranges[1];
        assert_eq!(
            mbox_message(&MBOX[o as usize..(o + l) as usize]),
            b"From: c@d.example\nSubject: two\n\nbody two\n"
        );
    }

    #[tokio::test]
    async fn lists_and_fetches_mbox_by_offset() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("box.mbox");
        std::fs::write(&path, MBOX).unwrap();
        let mut source = FileSource::new(FileSet::Mbox(path), 1 << 20).unwrap();
        let listing = source
            .list("INBOX", &FolderCursor::default())
            .await
            .unwrap();
        assert_eq!(listing.new.len(), 2);
        let second = source
            .fetch(&[listing.new[1].message.clone()])
            .await
            .unwrap();
        assert!(second[0].raw.starts_with(b"From: c@d.example"));
        // Each message is exactly its own range: the first does not run on
        // into the second.
        let first = source
            .fetch(&[listing.new[0].message.clone()])
            .await
            .unwrap();
        assert_eq!(
            &first[0].raw[..],
            b"From: a@b.example\nSubject: one\n\nbody one\nFrom the start\n"
        );
    }

    #[test]
    fn streaming_split_matches_on_every_line_ending() {
        let crlf: Vec<u8> = MBOX
            .split(|&b| b == b'\n')
            .collect::<Vec<_>>()
            .join(&b"\r\n"[..]);
        for data in [MBOX, &crlf[..], b"", b"no from line\n"] {
            // A reader that hands out 3 bytes at a time.
            let reader = BufReader::with_capacity(3, data);
            assert_eq!(mbox_ranges_in(reader).unwrap(), mbox_ranges(data));
        }
        assert_eq!(mbox_ranges(b"From x\nbody\n"), vec![(7, 5)]);
    }

    #[tokio::test]
    async fn maildir_folders_and_size_limit() {
        let dir = tempfile::tempdir().unwrap();
        for sub in ["cur", "new", "tmp", ".Sales/cur", ".Sales/new"] {
            std::fs::create_dir_all(dir.path().join(sub)).unwrap();
        }
        std::fs::write(dir.path().join("cur/1:2,S"), b"From: a@b\n\nx\n").unwrap();
        std::fs::write(dir.path().join("new/2"), vec![b'x'; 5000]).unwrap();
        std::fs::write(dir.path().join(".Sales/new/3"), b"From: s@b\n\ny\n").unwrap();
        let mut source = FileSource::new(FileSet::Maildir(dir.path().into()), 1000).unwrap();
        assert_eq!(source.folders(), ["INBOX", "Sales"]);
        let inbox = source
            .list("INBOX", &FolderCursor::default())
            .await
            .unwrap();
        assert_eq!((inbox.new.len(), inbox.too_large.len()), (1, 1));
        assert_eq!(
            source
                .list("Sales", &FolderCursor::default())
                .await
                .unwrap()
                .new
                .len(),
            1
        );
        assert!(FileSource::new(FileSet::Maildir(dir.path().join("cur")), 1).is_err());
    }
}
