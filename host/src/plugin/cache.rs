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

use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};

use wasmtime::Engine;
use wasmtime::component::Component;

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
        if let Ok(bytes) = std::fs::read(&entry) {
            // SAFETY: the bytes come from our own cache directory, written by `store` below from
            // `Component::serialize`; wasmtime checks their header, version and engine
            // configuration before using them, and any error is treated as a miss.
            match unsafe { Component::deserialize(engine, &bytes) } {
                Ok(component) => return Ok((component, CacheOutcome::Hit)),
                Err(err) => {
                    tracing::debug!(entry = %entry.display(), error = %err, "unusable compiled-cache entry, recompiling")
                }
            }
        }
        let component = Component::new(engine, wasm)?;
        if let Err(err) = self.store(&entry, &component) {
            tracing::debug!(dir = %self.dir.display(), error = %err, "cannot write the compiled-code cache");
        }
        Ok((component, CacheOutcome::Compiled))
    }

    fn store(&self, entry: &Path, component: &Component) -> anyhow::Result<()> {
        let bytes = component
            .serialize()
            .map_err(|err| anyhow::anyhow!("{err:#}"))?;
        std::fs::create_dir_all(&self.dir)?;
        let mut file = tempfile::NamedTempFile::new_in(&self.dir)?;
        file.write_all(&bytes)?;
        file.as_file().sync_all()?;
        file.persist(entry)?;
        Ok(())
    }
}
