//! Local mail files as a [`MailSource`], so backfill imports (`intake import`)
//! go through the same parse → plugin → pipeline → store path as retrieval:
//! a Maildir (`cur/` and `new/`, sub-folders as `.Name`), an mbox file, or an
//! `.eml` file or directory of them. Nothing is ever changed on disk.
//!
//! mbox files are split by offsets (`From ` lines after a blank line or at
//! the start), so fetching a batch reads just those messages; `>From ` lines
//! are un-escaped one level (mboxrd).

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use async_trait::async_trait;

use super::{
    Acknowledge, FetchError, Fetched, FolderCursor, Listed, Listing, MailSource, MessageRef,
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
    set: FileSet,
    max_message_bytes: u64,
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
        })
    }

    fn maildir_folder(&self, folder: &str) -> PathBuf {
        let FileSet::Maildir(root) = &self.set else {
            unreachable!("maildir only")
        };
        if folder.eq_ignore_ascii_case("INBOX") {
            root.clone()
        } else {
            root.join(format!(".{folder}"))
        }
    }
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
    let mut starts: Vec<(usize, usize)> = Vec::new(); // (From line start, body start)
    let mut pos = 0;
    let mut previous_blank = true;
    while pos < data.len() {
        let end = data[pos..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(data.len(), |i| pos + i + 1);
        let line = &data[pos..end];
        if previous_blank && line.starts_with(b"From ") {
            starts.push((pos, end));
        }
        previous_blank = line == b"\n" || line == b"\r\n";
        pos = end;
    }
    let mut ranges = Vec::with_capacity(starts.len());
    for (i, &(_, body)) in starts.iter().enumerate() {
        let next = starts.get(i + 1).map_or(data.len(), |&(from, _)| from);
        ranges.push((body as u64, (next - body) as u64));
    }
    ranges
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
        let mut listing = Listing {
            folder: folder.to_string(),
            ..Listing::default()
        };
        let mut items: Vec<Listed> = Vec::new();
        match &self.set {
            FileSet::Maildir(_) => {
                let dir = self.maildir_folder(folder);
                for sub in ["cur", "new"] {
                    let path = dir.join(sub);
                    if !path.is_dir() {
                        continue;
                    }
                    for file in files_below(&path).map_err(|e| io_error(&path, e))? {
                        let size = std::fs::metadata(&file)
                            .map_err(|e| io_error(&file, e))?
                            .len();
                        items.push(Listed {
                            message: MessageRef::File {
                                path: file.display().to_string(),
                                offset: 0,
                            },
                            size,
                        });
                    }
                }
            }
            FileSet::Mbox(path) => {
                let data = std::fs::read(path).map_err(|e| io_error(path, e))?;
                for (offset, size) in mbox_ranges(&data) {
                    items.push(Listed {
                        message: MessageRef::File {
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
                    let size = std::fs::metadata(&file)
                        .map_err(|e| io_error(&file, e))?
                        .len();
                    items.push(Listed {
                        message: MessageRef::File {
                            path: file.display().to_string(),
                            offset: 0,
                        },
                        size,
                    });
                }
            }
        }
        for item in items {
            if item.size > self.max_message_bytes {
                listing.too_large.push(item);
            } else {
                listing.new.push(item);
            }
        }
        Ok(listing)
    }

    async fn fetch(&mut self, messages: &[MessageRef]) -> Result<Vec<Fetched>, FetchError> {
        let mut out = Vec::with_capacity(messages.len());
        for m in messages {
            let MessageRef::File { path, offset } = m else {
                return Err(FetchError::Protocol(format!("not a file message: {m:?}")));
            };
            let p = Path::new(path);
            let raw = match &self.set {
                FileSet::Mbox(_) => {
                    // Re-split around the offset to find this message's end.
                    let mut file = std::fs::File::open(p).map_err(|e| io_error(p, e))?;
                    let mut data = Vec::new();
                    file.seek(SeekFrom::Start(*offset))
                        .map_err(|e| io_error(p, e))?;
                    file.read_to_end(&mut data).map_err(|e| io_error(p, e))?;
                    let mut wrapped = b"From x\n".to_vec();
                    wrapped.extend_from_slice(&data);
                    let (start, len) = mbox_ranges(&wrapped)
                        .first()
                        .copied()
                        .unwrap_or((7, data.len() as u64));
                    mbox_message(&wrapped[start as usize..(start + len) as usize])
                }
                _ => std::fs::read(p).map_err(|e| io_error(p, e))?,
            };
            out.push(Fetched {
                message: m.clone(),
                raw: raw.into(),
            });
        }
        Ok(out)
    }

    async fn acknowledge(
        &mut self,
        _actions: &[(MessageRef, Acknowledge)],
    ) -> Result<(), FetchError> {
        // Imports never change the files.
        Ok(())
    }

    async fn close(self: Box<Self>) -> Result<(), FetchError> {
        Ok(())
    }
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
