//! File helpers shared by the modules that keep files of their own: atomic writes, and where
//! wflow's per-user caches live.

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
