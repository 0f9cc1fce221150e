//! Writing a whole file so that no reader sees half of it: the blocklist
//! files nftables and ipset load, the report, the roster, and the state
//! files a restart reads back. Temporary file beside it, then renamed over.

use std::{
    fs::File,
    io::{self, BufWriter, Write},
    path::{Path, PathBuf},
};

/// Writes a whole file for another program: to a temporary file beside
/// it, then renamed over, so a reader never sees half of it.
///
/// Only a regular file (or a missing one) is replaced. A path that is a
/// device, a FIFO or a socket (`/dev/null`, `/dev/stdout`, a pipe another
/// program reads) is written in place: renaming over it would put a plain
/// file where the device was, and as root `/dev/null` itself would become
/// a file every later `>/dev/null` appends to. A symbolic link is followed
/// and its target replaced, so the link stays.
pub fn write_atomically(path: &Path, write: impl FnOnce(&mut dyn Write) -> io::Result<()>) -> io::Result<()> {
    let (path, tmp) = match Destination::of(path)? {
        Destination::InPlace(path) => {
            let mut w = BufWriter::new(File::options().write(true).open(&path)?);
            write(&mut w)?;
            return w.flush();
        }
        Destination::Replace { path, tmp } => (path, tmp),
    };
    let result = (|| {
        let mut w = BufWriter::new(File::create(&tmp)?);
        write(&mut w)?;
        let f = w.into_inner().map_err(|e| e.into_error())?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    } else {
        remove_stale_temporaries(&tmp);
    }
    result
}

/// Removes what writers of the same file killed mid-write left beside it
/// (`.<name>.tmp<pid>` of a process that no longer exists): never renamed
/// over anything, they would otherwise pile up across restarts.
fn remove_stale_temporaries(tmp: &Path) {
    let (Some(dir), Some(own)) = (tmp.parent(), tmp.file_name().and_then(|n| n.to_str())) else { return };
    let Some(prefix) = own.strip_suffix(&std::process::id().to_string()) else { return };
    let Ok(entries) = std::fs::read_dir(if dir.as_os_str().is_empty() { Path::new(".") } else { dir }) else { return };
    for e in entries.filter_map(Result::ok) {
        let name = e.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.strip_prefix(prefix)).and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// Fails now, naming `flag`, if [`write_atomically`] could not write
/// `path` later: a run that reads a week of logs should not find out at
/// its end that the directory is missing or read-only. Leaves nothing
/// behind.
pub fn check_writable(flag: &str, path: &Path) -> anyhow::Result<()> {
    let fail = |e: io::Error| anyhow::anyhow!("{flag}: cannot write {}: {e}", path.display());
    match Destination::of(path).map_err(fail)? {
        // Opening it is the test.
        Destination::InPlace(path) => File::options().write(true).open(&path).map(drop).map_err(fail),
        Destination::Replace { tmp, .. } => {
            File::create(&tmp).map_err(fail)?;
            std::fs::remove_file(&tmp).map_err(fail)
        }
    }
}

/// Where [`write_atomically`] writes a path: decided once, for the write
/// and for [`check_writable`]'s probe of it.
enum Destination {
    /// A device, FIFO or socket: written as it is.
    InPlace(PathBuf),
    /// A regular or missing file (at the end of any links): `tmp`, beside
    /// it, is written and renamed over it.
    Replace { path: PathBuf, tmp: PathBuf },
}

impl Destination {
    fn of(path: &Path) -> io::Result<Self> {
        let path = resolve_links(path)?;
        if std::fs::metadata(&path).is_ok_and(|m| !m.is_file() && !m.is_dir()) {
            return Ok(Self::InPlace(path));
        }
        let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let tmp = dir.join(format!(".{name}.tmp{}", std::process::id()));
        Ok(Self::Replace { path, tmp })
    }
}

/// Where a chain of symbolic links ends, even when the file there does not
/// exist yet (a link made before the first write).
fn resolve_links(path: &Path) -> io::Result<PathBuf> {
    let mut path = path.to_path_buf();
    // The kernel's own limit on links followed in one lookup.
    for _ in 0..40 {
        match std::fs::symlink_metadata(&path) {
            Ok(m) if m.file_type().is_symlink() => {
                let to = std::fs::read_link(&path)?;
                path = match path.parent() {
                    Some(dir) if to.is_relative() => dir.join(to),
                    _ => to,
                };
            }
            _ => return Ok(path),
        }
    }
    Err(io::Error::other(format!("{}: too many levels of symbolic links", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("rw-atomic-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        dir
    }

    #[test]
    fn a_regular_file_is_replaced_and_no_temporary_file_stays() {
        let dir = scratch("file");
        let path = dir.join("block.txt");
        std::fs::write(&path, "old\n").unwrap();
        write_atomically(&path, |w| w.write_all(b"new\n")).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new\n");
        let left: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(left, vec![std::ffi::OsString::from("block.txt")], "temporary files left in {}", dir.display());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    // `--actors /dev/null` once replaced the machine's /dev/null with a
    // file; a FIFO stands in for the device here.
    #[test]
    fn a_fifo_is_written_in_place_not_replaced() {
        use std::os::unix::fs::FileTypeExt as _;
        let dir = scratch("fifo");
        let path = dir.join("feed");
        let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo {}", path.display());
        let reader = {
            let path = path.clone();
            std::thread::spawn(move || std::fs::read_to_string(path).unwrap())
        };
        write_atomically(&path, |w| w.write_all(b"10.0.0.1\n")).unwrap();
        assert_eq!(reader.join().unwrap(), "10.0.0.1\n");
        let kind = std::fs::symlink_metadata(&path).unwrap().file_type();
        assert!(kind.is_fifo(), "{} is no longer a FIFO: {kind:?}", path.display());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_symlink_keeps_pointing_at_its_replaced_target() {
        let dir = scratch("link");
        let (target, link) = (dir.join("real.nft"), dir.join("link.nft"));
        std::fs::write(&target, "old").unwrap();
        std::os::unix::fs::symlink(&target, &link).unwrap();
        write_atomically(&link, |w| w.write_all(b"new")).unwrap();
        assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink(), "the link was replaced");
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "new");

        // A relative link made before its target's first write.
        let (later, link2) = (dir.join("later.nft"), dir.join("link2.nft"));
        std::os::unix::fs::symlink("later.nft", &link2).unwrap();
        write_atomically(&link2, |w| w.write_all(b"first")).unwrap();
        assert!(std::fs::symlink_metadata(&link2).unwrap().file_type().is_symlink(), "the link was replaced");
        assert_eq!(std::fs::read_to_string(&later).unwrap(), "first");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
