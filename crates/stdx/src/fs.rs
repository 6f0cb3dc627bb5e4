//! Bounded, non-blocking file reading, and private file replacement.

use std::fs::File;
use std::io::Read;
use std::path::Path;

/// Opens `path` for reading without blocking (on Unix, `O_NONBLOCK`): opening a FIFO for
/// reading would otherwise wait for a writer forever. Reads of regular files are unaffected;
/// callers check what they opened is one.
pub fn open_without_blocking(path: &Path) -> std::io::Result<File> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::custom_flags(&mut options, rustix::fs::OFlags::NONBLOCK.bits() as i32);
    options.open(path)
}

/// Reads a whole input of at most `limit` bytes: a regular file (checked on the opened file,
/// which is opened without blocking, so a FIFO named in its place cannot hang the reader),
/// or stdin for `-`. Anything larger is refused with an error that names the limit, before
/// more than `limit + 1` bytes are read. Every keyway reader of files other than profiles
/// (token sets, key files, import inputs) reads through this.
pub fn read_limited(path: &Path, limit: u64) -> std::io::Result<Vec<u8>> {
    let too_large =
        || std::io::Error::new(std::io::ErrorKind::InvalidData, format!("larger than the limit of {limit} bytes"));
    let mut bytes = Vec::new();
    if path == Path::new("-") {
        std::io::stdin().lock().take(limit + 1).read_to_end(&mut bytes)?;
    } else {
        let file = open_without_blocking(path)?;
        let meta = file.metadata()?;
        if !meta.is_file() {
            return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a regular file"));
        }
        if meta.len() > limit {
            return Err(too_large());
        }
        file.take(limit + 1).read_to_end(&mut bytes)?;
    }
    if bytes.len() as u64 > limit {
        return Err(too_large());
    }
    Ok(bytes)
}

/// [`read_limited`], as UTF-8 text.
pub fn read_limited_text(path: &Path, limit: u64) -> std::io::Result<String> {
    String::from_utf8(read_limited(path, limit)?).map_err(|e| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("not valid UTF-8 (first bad byte at offset {})", e.utf8_error().valid_up_to()),
        )
    })
}

/// Replaces `path`'s content with `bytes` so that a reader sees the old file or the new one,
/// never a part: written to a private (mode 0600) file beside it, synced, then renamed over
/// it. For files that hold secrets (key files, token sets).
pub fn replace_file_privately(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let name = path.file_name().ok_or_else(|| std::io::Error::other("the path names no file"))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(".tmp");
    let tmp = path.with_file_name(tmp_name);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let written = options.open(&tmp).and_then(|mut file| file.write_all(bytes).and_then(|()| file.sync_all()));
    if let Err(e) = written.and_then(|()| std::fs::rename(&tmp, path)) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    Ok(())
}
