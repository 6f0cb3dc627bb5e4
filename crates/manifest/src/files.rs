//! Finding and reading profile files. Startup reads a thousand small files, and on a virtual
//! machine each system call costs about a microsecond: each file takes one open (by name in its
//! already open directory, not by walking its whole path again), one stat and one read, into
//! memory that is not zeroed first.

use crate::yaml::MAX_SOURCE_BYTES;
use keyway_diagnostics::{Code, Diagnostic};
use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::fs::File;
use std::path::{Path, PathBuf};

/// File extensions read from directories.
pub(crate) const EXTENSIONS: [&str; 2] = ["yaml", "yml"];

/// How deep under the directory given a walk goes; profile trees are shallow.
pub const MAX_WALK_DEPTH: usize = 16;

/// A file's identity: its device and inode (on Unix), so a file or directory reached by two
/// paths (symlinks, `..`) is visited once.
pub(crate) type Identity = (u64, u64);

#[cfg(unix)]
pub(crate) fn identity(meta: &std::fs::Metadata) -> Option<Identity> {
    use std::os::unix::fs::MetadataExt;
    Some((meta.dev(), meta.ino()))
}

#[cfg(not(unix))]
pub(crate) fn identity(_: &std::fs::Metadata) -> Option<Identity> {
    None
}

/// A walk of directories for profile files: each directory is walked once and each file
/// collected once, by identity, so symlinks that point back up cannot make it visit paths
/// without end; deeper than [`MAX_WALK_DEPTH`] it stops and says where.
#[derive(Debug, Default)]
pub(crate) struct Walk {
    /// The `.yaml`/`.yml` files found, in path order.
    pub(crate) files: Vec<PathBuf>,
    /// Directories and files already visited.
    pub(crate) seen: HashSet<Identity>,
    /// Directories not walked, and why.
    pub(crate) problems: Vec<Diagnostic>,
}

impl Walk {
    /// Collects the profile files under `dir`, in path order. Symlinks are followed after the
    /// tree itself is walked, so a file reached both directly and through a link is read under
    /// its own path.
    pub(crate) fn walk(&mut self, dir: &Path) {
        match std::fs::metadata(dir) {
            Ok(meta) => {
                if identity(&meta).is_some_and(|id| !self.seen.insert(id)) {
                    return;
                }
            }
            Err(e) => return self.problems.push(io_error(dir, &e)),
        }
        let first = self.files.len();
        let mut links = Vec::new();
        self.walk_in(dir, 0, &mut links);
        // Links found while following links join the queue; each directory is walked once.
        let mut next = 0;
        while let Some((link, depth)) = links.get(next).cloned() {
            next += 1;
            let Ok(meta) = std::fs::metadata(&link) else {
                if is_profile(&link) {
                    self.files.push(link); // reading it reports why it cannot be read
                }
                continue;
            };
            if identity(&meta).is_some_and(|id| !self.seen.insert(id)) {
                continue;
            }
            if meta.is_dir() {
                self.walk_in(&link, depth + 1, &mut links);
            } else if is_profile(&link) {
                self.files.push(link);
            }
        }
        self.files[first..].sort_unstable();
    }

    fn walk_in(&mut self, dir: &Path, depth: usize, links: &mut Vec<(PathBuf, usize)>) {
        if depth >= MAX_WALK_DEPTH {
            self.problems.push(
                Diagnostic::new(
                    Code::TooDeep,
                    format!("`{}` is {depth} directories deep; profiles are looked for at most {MAX_WALK_DEPTH} deep, so it was not read", dir.display()),
                )
                .in_file(dir.display().to_string())
                .with_help("move the profiles nearer the top, or name the deeper directory on the command line"),
            );
            return;
        }
        let entries = match read_sorted(dir) {
            Ok(entries) => entries,
            Err(e) => return self.problems.push(io_error(dir, &e)),
        };
        #[cfg(unix)]
        let dir_device = std::fs::metadata(dir).ok().and_then(|m| identity(&m)).map(|(device, _)| device);
        for entry in entries {
            let path = entry.path();
            let Ok(file_type) = entry.file_type() else { continue };
            if file_type.is_symlink() {
                links.push((path, depth));
            } else if file_type.is_dir() {
                let fresh =
                    std::fs::metadata(&path).ok().and_then(|m| identity(&m)).is_none_or(|id| self.seen.insert(id));
                if fresh {
                    self.walk_in(&path, depth + 1, links);
                }
            } else if is_profile(&path) {
                // A plain file's identity comes from its entry and directory, without a stat.
                #[cfg(unix)]
                {
                    use std::os::unix::fs::DirEntryExt;
                    if dir_device.is_some_and(|device| !self.seen.insert((device, entry.ino()))) {
                        continue;
                    }
                }
                self.files.push(path);
            }
        }
    }
}

fn is_profile(path: &Path) -> bool {
    path.extension().and_then(|e| e.to_str()).is_some_and(|e| EXTENSIONS.contains(&e))
}

/// A directory's entries, sorted by name: the files come out in path order without comparing
/// whole paths (which compares them component by component).
fn read_sorted(dir: &Path) -> std::io::Result<Vec<std::fs::DirEntry>> {
    let mut entries = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        entries.push(entry?);
    }
    entries.sort_unstable_by_key(std::fs::DirEntry::file_name);
    Ok(entries)
}

/// The directories a set of files is in, each opened once, to open the files by name in them.
pub(crate) struct Directories {
    /// By the directory's part of the paths, as written.
    open: HashMap<Vec<u8>, File, foldhash::fast::FixedState>,
}

/// `path` split at its last `/` into a directory and a file name, as written; `None` for a
/// bare name or one that is not a plain file name (`.`, `..`, empty). Cheaper than
/// [`Path::parent`] and [`Path::file_name`], which parse every component.
#[cfg(unix)]
fn split(path: &Path) -> Option<(&Path, &OsStr)> {
    use std::os::unix::ffi::OsStrExt;
    let bytes = path.as_os_str().as_bytes();
    let slash = memchr::memrchr(b'/', bytes)?;
    let (dir, name) = (&bytes[..slash.max(1)], &bytes[slash + 1..]);
    (!matches!(name, b"" | b"." | b"..")).then(|| (Path::new(OsStr::from_bytes(dir)), OsStr::from_bytes(name)))
}

/// Elsewhere, files are opened by path.
#[cfg(not(unix))]
fn split(_: &Path) -> Option<(&Path, &OsStr)> {
    None
}

impl Directories {
    /// Opens the directories `files` are in. One that cannot be opened is left out: its files
    /// are then opened by path, which reports the problem as it is.
    pub(crate) fn of<'p>(files: impl IntoIterator<Item = &'p Path>) -> Self {
        let mut open = HashMap::default();
        let mut last: Option<&[u8]> = None;
        for (dir, _) in files.into_iter().filter_map(split) {
            let key = dir.as_os_str().as_encoded_bytes();
            // Files come in path order: most are in the directory the one before was in.
            if last == Some(key) || open.contains_key(key) {
                continue;
            }
            last = Some(key);
            if let Ok(handle) = File::open(dir) {
                open.insert(key.to_owned(), handle);
            }
        }
        Directories { open }
    }

    fn open(&self, path: &Path) -> std::io::Result<File> {
        #[cfg(unix)]
        if let Some((dir, name)) =
            split(path).and_then(|(dir, name)| Some((self.open.get(dir.as_os_str().as_encoded_bytes())?, name)))
        {
            use rustix::fs::{Mode, OFlags};
            // Non-blocking: opening a FIFO for reading would otherwise wait for a writer
            // forever. Reads of regular files are unaffected; anything else is refused below.
            let flags = OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NONBLOCK;
            return Ok(File::from(rustix::fs::openat(dir, name, flags, Mode::empty())?));
        }
        keyway_stdx::open_without_blocking(path)
    }

    /// The text of the file at `path`, or why it cannot be had: unreadable, too large or not
    /// UTF-8.
    pub(crate) fn read_text(&self, path: &Path) -> Result<String, Box<Diagnostic>> {
        use std::io::Read;
        let io = |e: std::io::Error| Box::new(io_error(path, &e));
        let too_large = |size: &str| -> Box<Diagnostic> {
            Diagnostic::new(
                Code::TooLarge,
                format!("the file is {size} bytes; profiles are limited to {MAX_SOURCE_BYTES} bytes"),
            )
            .with_help("a profile describes one provider; split generated content out")
            .into()
        };
        let mut file = self.open(path).map_err(io)?;
        let meta = file.metadata().map_err(io)?;
        if !meta.is_file() {
            // A FIFO, socket or device could block or never end: only regular files are read.
            let kind = std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a regular file");
            return Err(io(kind));
        }
        let size = meta.len();
        if size > MAX_SOURCE_BYTES as u64 {
            return Err(too_large(&size.to_string()));
        }
        let size = size as usize;
        // Asks for one byte more than the stat said. Getting exactly the stated size back means
        // the end was reached, so no second read is needed to find it (`read_to_end` would make
        // one). A shorter read goes on reading; a file that grew is read to its end, bounded.
        let mut bytes = Vec::with_capacity(size + 1);
        loop {
            match read_into_spare_capacity(&file, &mut bytes) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(io(e)),
            }
            if bytes.len() == size || bytes.len() == bytes.capacity() {
                break;
            }
        }
        if bytes.len() > size {
            let limit = (MAX_SOURCE_BYTES + 1).saturating_sub(bytes.len());
            (&mut file).take(limit as u64).read_to_end(&mut bytes).map_err(io)?;
        }
        if bytes.len() > MAX_SOURCE_BYTES {
            return Err(too_large(&format!("over {MAX_SOURCE_BYTES}")));
        }
        String::from_utf8(bytes).map_err(|e| {
            let offset = e.utf8_error().valid_up_to();
            let text = String::from_utf8_lossy(e.as_bytes());
            Diagnostic::new(Code::NotUtf8, format!("the file is not valid UTF-8 (first bad byte at offset {offset})"))
                .with_span(keyway_diagnostics::span_of(&text, offset, offset + 1))
                .with_help("save the file as UTF-8")
                .into()
        })
    }
}

/// Reads into the room `bytes` has left (it must have some), without zeroing it first.
#[cfg(unix)]
fn read_into_spare_capacity(file: &File, bytes: &mut Vec<u8>) -> std::io::Result<usize> {
    Ok(rustix::io::read(file, rustix::buffer::spare_capacity(bytes))?)
}

/// Reads into the room `bytes` has left (it must have some).
#[cfg(not(unix))]
fn read_into_spare_capacity(mut file: &File, bytes: &mut Vec<u8>) -> std::io::Result<usize> {
    use std::io::Read;
    let filled = bytes.len();
    bytes.resize(bytes.capacity(), 0);
    let read = file.read(&mut bytes[filled..]);
    bytes.truncate(filled + *read.as_ref().unwrap_or(&0));
    read
}

pub(crate) fn io_error(path: &Path, e: &std::io::Error) -> Diagnostic {
    Diagnostic::new(Code::Io, format!("cannot read `{}`: {e}", path.display())).in_file(path.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh directory under the system's temporary one, removed when dropped.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(name: &str) -> Self {
            let dir = std::env::temp_dir().join(format!("keyway-files-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(dir.join("a")).expect("create a");
            std::fs::create_dir_all(dir.join("b")).expect("create b");
            Scratch(dir)
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[cfg(unix)]
    #[test]
    fn paths_split_into_directory_and_file_name_as_written() {
        let parts =
            |p: &'static str| split(Path::new(p)).map(|(d, n)| (d.to_str().unwrap_or("?"), n.to_str().unwrap_or("?")));
        assert_eq!(parts("profiles/google.yaml"), Some(("profiles", "google.yaml")));
        assert_eq!(parts("/work/p/./x.yml"), Some(("/work/p/.", "x.yml")));
        assert_eq!(parts("/x.yaml"), Some(("/", "x.yaml")));
        assert_eq!(parts("a//x.yaml"), Some(("a/", "x.yaml")));
        for unsplit in ["x.yaml", "a/", "a/.", "a/..", ""] {
            assert_eq!(parts(unsplit), None, "{unsplit:?}");
        }
    }

    #[test]
    fn each_file_is_read_from_its_own_directory() {
        let scratch = Scratch::new("dirs");
        let files: Vec<PathBuf> = ["a/p.yaml", "b/p.yaml", "a/empty.yaml"].iter().map(|f| scratch.0.join(f)).collect();
        std::fs::write(&files[0], "id: from-a\n").expect("write");
        std::fs::write(&files[1], "id: from-b\n".repeat(1000)).expect("write");
        std::fs::write(&files[2], "").expect("write");
        let directories = Directories::of(files.iter().map(PathBuf::as_path));
        assert_eq!(directories.open.len(), if cfg!(unix) { 2 } else { 0 });
        assert_eq!(directories.read_text(&files[0]).expect("a"), "id: from-a\n");
        assert_eq!(directories.read_text(&files[1]).expect("b"), "id: from-b\n".repeat(1000));
        assert_eq!(directories.read_text(&files[2]).expect("empty"), "");
    }

    #[test]
    fn a_file_that_cannot_be_opened_is_reported_as_opening_it_by_path_would() {
        let scratch = Scratch::new("missing");
        let not_a_dir = scratch.0.join("a/file.yaml");
        std::fs::write(&not_a_dir, "id: x\n").expect("write");
        let paths = [scratch.0.join("a/missing.yaml"), not_a_dir.join("inner.yaml"), scratch.0.join("c/x.yaml")];
        let directories = Directories::of(paths.iter().map(PathBuf::as_path));
        for path in &paths {
            let by_path = File::open(path).expect_err("cannot be opened");
            let d = directories.read_text(path).expect_err("cannot be read");
            assert_eq!(d.code, Code::Io);
            assert_eq!(d.message, format!("cannot read `{}`: {by_path}", path.display()));
        }
    }
}
