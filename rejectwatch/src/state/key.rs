//! The install's identity key (`<state dir>/identity.key`): the secret the
//! identity hashes are keyed with, made once, readable by the daemon alone.

use std::{
    fs,
    io::Write as _,
    os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _},
    path::Path,
};

use anyhow::{Context as _, bail};

const KEY_FILE: &str = "identity.key";

/// Reads the install's secret, creating it (0600, written to a temporary
/// file and renamed into place) the first time.
pub fn load_or_create_key(dir: &Path) -> anyhow::Result<[u8; 32]> {
    let path = dir.join(KEY_FILE);
    match fs::read(&path) {
        Ok(bytes) if bytes.len() == 32 => {
            let mode = fs::metadata(&path)?.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                bail!("{}: readable by others (mode {mode:o}); chmod 600 it", path.display());
            }
            return Ok(bytes.try_into().expect("32 bytes"));
        }
        Ok(_) => bail!("{}: not a 32-byte key; remove it to make a new one", path.display()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
    fs::create_dir_all(dir).with_context(|| format!("state directory {}: cannot create", dir.display()))?;
    let mut key = [0u8; 32];
    getrandom::fill(&mut key).map_err(|e| anyhow::anyhow!("no randomness for the identity key: {e}"))?;
    let tmp = dir.join(format!(".{KEY_FILE}.{}", std::process::id()));
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("cannot create {}", tmp.display()))?;
    f.write_all(&key)?;
    f.sync_all()?;
    // Another process may have won the race: keep whichever key landed.
    match fs::hard_link(&tmp, &path) {
        Ok(()) => {
            fs::remove_file(&tmp).ok();
            Ok(key)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            fs::remove_file(&tmp).ok();
            load_or_create_key(dir)
        }
        Err(e) => Err(e).with_context(|| format!("cannot create {}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_file_is_private_and_reused() {
        let dir = std::env::temp_dir().join(format!("rw-key-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let k1 = load_or_create_key(&dir).unwrap();
        let mode = fs::metadata(dir.join(KEY_FILE)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(load_or_create_key(&dir).unwrap(), k1);
        fs::set_permissions(dir.join(KEY_FILE), fs::Permissions::from_mode(0o644)).unwrap();
        assert!(load_or_create_key(&dir).unwrap_err().to_string().contains("chmod 600"));
        fs::remove_dir_all(&dir).ok();
    }
}
