//! What rejectwatch keeps on disk: the state directory, and in it the
//! identity key ([`key`]), the disclosure markers ([`marks`]) and the
//! blocklist's entries ([`blocklist`]) and the detection snapshot
//! ([`snapshot`]), each read back at start; and how
//! every file for a restart or for another program is written
//! ([`atomic`]). The detection core reads none of it: callers hand it
//! what was loaded.

pub mod atomic;
pub mod blocklist;
pub mod key;
pub mod marks;
pub mod snapshot;

use std::path::PathBuf;

pub use atomic::write_atomically;

/// The state directory: the configured one, else /var/lib/rejectwatch for
/// root and ~/.local/state/rejectwatch for anyone else.
pub fn default_state_dir() -> PathBuf {
    if unsafe { libc::geteuid() } == 0 {
        return PathBuf::from("/var/lib/rejectwatch");
    }
    let home = std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))
        .unwrap_or_else(std::env::temp_dir);
    home.join("rejectwatch")
}
