//! File helpers shared by the modules that keep files of their own: atomic writes, where
//! wflow's per-user caches live, and whether a file is this user's alone.

use std::path::{Path, PathBuf};

/// `$XDG_CACHE_HOME/wflow/NAME`, else `~/.cache/wflow/NAME`; `None` without either variable.
pub fn user_cache_dir(name: &str) -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))?;
    Some(base.join("wflow").join(name))
}

/// Writes through a synced temporary file renamed into place, so readers never see half a
/// file and a crash leaves the old one; the folder is created when missing.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), String> {
    let parent = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
    let mut file = tempfile::NamedTempFile::new_in(parent)
        .map_err(|e| format!("{}: {e}", parent.display()))?;
    use std::io::Write as _;
    file.write_all(bytes)
        .and_then(|_| file.as_file().sync_all())
        .map_err(|e| format!("{}: {e}", path.display()))?;
    file.persist(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(())
}

/// Whether a file's metadata says it is this user's and that nobody else has any of the
/// permission bits in `others` (`0o022`: nobody else may write it; `0o077`: nobody else may
/// read or write it). Always true where there are no Unix owners and modes.
pub fn check_owner_and_mode(metadata: &std::fs::Metadata, others: u32) -> Result<(), String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        // SAFETY: geteuid has no preconditions and cannot fail.
        let me = unsafe { libc::geteuid() };
        if metadata.uid() != me {
            return Err(format!("owned by user {}, not this one", metadata.uid()));
        }
        if metadata.mode() & others != 0 {
            return Err(format!(
                "open to other users (mode {:o})",
                metadata.mode() & 0o777
            ));
        }
    }
    #[cfg(not(unix))]
    let _ = (metadata, others);
    Ok(())
}
