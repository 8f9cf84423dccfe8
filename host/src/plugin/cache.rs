//! The on-disk compiled-code cache: a plugin is compiled by Cranelift once per machine and
//! wasmtime version, then memory-mapped on later loads (well under a millisecond for a Rust
//! plugin, against ~100 ms to compile).
//!
//! Entries are keyed by the wasm's sha256 and the engine's compatibility hash, so a wasmtime
//! upgrade or a different configuration never reads a stale entry. An entry that fails to load
//! (corrupt, truncated, from another build) is a miss: the plugin is recompiled and the entry
//! rewritten. Writes are atomic (temporary file, then rename), so a crash mid-write leaves no
//! torn entry. The cache never makes a load fail: if the directory is unusable, plugins are
//! simply compiled every time.
//!
//! A compiled entry is native code that runs in the process, so the file's name is not taken
//! on trust: an entry is used only when this user owns it and nobody else may write it (the
//! directory is made private to the user), and when its header names the component it was
//! compiled from, so an entry renamed or copied under another component's name is a miss.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};

use wasmtime::Engine;
use wasmtime::component::Component;

/// What every entry starts with, before the digest of its component.
const MAGIC: &str = "wflow compiled component v1 ";

/// Creates the directory (and its parents) so that only this user may use it.
fn private_dir(dir: &Path) -> std::io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)
}

/// An entry's bytes, if it may be run: a plain file of this user that nobody else may write.
/// The checks are made on the opened file itself, so the file read is the file checked.
fn read_trusted(entry: &Path) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        // A symbolic link is not followed (it could point anywhere), and opening a FIFO does
        // not wait for a writer (it is then refused as not a plain file).
        options.custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK);
    }
    let mut file = options.open(entry).map_err(|e| e.to_string())?;
    let metadata = file.metadata().map_err(|e| e.to_string())?;
    if !metadata.is_file() {
        return Err("not a plain file".into());
    }
    crate::files::check_owner_and_mode(&metadata, 0o022)?;
    let mut bytes = Vec::with_capacity(usize::try_from(metadata.len()).unwrap_or(0));
    file.read_to_end(&mut bytes).map_err(|e| e.to_string())?;
    Ok(bytes)
}

/// How a component was obtained.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CacheOutcome {
    /// Loaded from the cache.
    Hit,
    /// Compiled now (and written to the cache when possible).
    Compiled,
}

#[derive(Clone, Debug)]
pub struct CompiledCache {
    dir: PathBuf,
}

impl CompiledCache {
    pub fn new(dir: impl Into<PathBuf>) -> CompiledCache {
        CompiledCache { dir: dir.into() }
    }

    /// `$WFLOW_CACHE_DIR`, else `$XDG_CACHE_HOME/wflow/compiled`, else `~/.cache/wflow/compiled`.
    pub fn default_dir() -> Option<PathBuf> {
        std::env::var_os("WFLOW_CACHE_DIR")
            .map(PathBuf::from)
            .or_else(|| crate::files::user_cache_dir("compiled"))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The header an entry of `digest` starts with.
    fn header(digest: &str) -> Vec<u8> {
        format!("{MAGIC}{digest}\n").into_bytes()
    }

    fn entry(&self, engine: &Engine, digest: &str) -> PathBuf {
        let mut hasher = DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        self.dir
            .join(format!("{digest}-{:016x}.cwasm", hasher.finish()))
    }

    /// The component for `wasm` (whose sha256 is `digest`), from the cache or compiled.
    pub fn load_or_compile(
        &self,
        engine: &Engine,
        wasm: &[u8],
        digest: &str,
    ) -> wasmtime::Result<(Component, CacheOutcome)> {
        let entry = self.entry(engine, digest);
        // The entry is read into memory rather than mapped: a mapped file that someone
        // truncates or rewrites in place would crash the process with SIGBUS.
        let header = CompiledCache::header(digest);
        let read = read_trusted(&entry);
        match &read {
            Err(why) if std::fs::metadata(&entry).is_ok() => {
                tracing::warn!(entry = %entry.display(), why, "compiled-cache entry not used")
            }
            _ => {}
        }
        if let Ok(bytes) = read
            && let Some(compiled) = bytes.strip_prefix(header.as_slice())
        {
            // SAFETY: the bytes come from a file of this user that nobody else may write, in
            // the cache directory, written by `store` below from `Component::serialize` for this
            // very component (its header says so); wasmtime checks their version and engine
            // configuration before using them, and any error is treated as a miss.
            match unsafe { Component::deserialize(engine, compiled) } {
                Ok(component) => return Ok((component, CacheOutcome::Hit)),
                Err(err) => {
                    tracing::debug!(entry = %entry.display(), error = %err, "unusable compiled-cache entry, recompiling")
                }
            }
        }
        let component = Component::new(engine, wasm)?;
        if let Err(err) = self.store(&entry, digest, &component) {
            tracing::debug!(dir = %self.dir.display(), error = %err, "cannot write the compiled-code cache");
        }
        Ok((component, CacheOutcome::Compiled))
    }

    fn store(&self, entry: &Path, digest: &str, component: &Component) -> anyhow::Result<()> {
        let bytes = component
            .serialize()
            .map_err(|err| anyhow::anyhow!("{err:#}"))?;
        private_dir(&self.dir)?;
        let mut file = tempfile::NamedTempFile::new_in(&self.dir)?;
        file.write_all(&CompiledCache::header(digest))?;
        file.write_all(&bytes)?;
        file.as_file().sync_all()?;
        file.persist(entry)?;
        Ok(())
    }
}
