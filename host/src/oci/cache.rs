//! The local plugin cache: what was pulled from registries, by digest, so that a pinned plugin
//! is read from disk without the network (the daemon runs offline once its plugins are pulled).
//!
//! ```text
//! <dir>/blobs/sha256/<hex>                 manifests, configs, components, signatures
//! <dir>/tags/<registry>/<repository>/<tag> the manifest digest a tag had when last pulled
//! ```
//!
//! Every read is checked against its digest, so a corrupted or tampered entry is a miss that
//! says so (and is fetched again), never a plugin run with the wrong bytes. Writes are atomic.

use std::path::{Path, PathBuf};

use super::client::digest_of;
use super::reference::Reference;
pub use crate::files::write_atomic;

#[derive(Clone, Debug)]
pub struct PluginCache {
    dir: PathBuf,
}

impl PluginCache {
    pub fn new(dir: impl Into<PathBuf>) -> PluginCache {
        PluginCache { dir: dir.into() }
    }

    /// `WFLOW_PLUGIN_CACHE`, else `$XDG_CACHE_HOME/wflow/plugins`, else `~/.cache/wflow/plugins`.
    pub fn default_dir() -> PathBuf {
        std::env::var_os("WFLOW_PLUGIN_CACHE")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                crate::files::user_cache_dir("plugins")
                    .unwrap_or_else(|| Path::new("wflow").join("plugins"))
            })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where the blob `digest` is (or would be) kept.
    pub fn blob_path(&self, digest: &str) -> PathBuf {
        let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
        self.dir.join("blobs").join("sha256").join(hex)
    }

    /// The blob, when present and intact. `Err` says a present entry is corrupt.
    pub fn blob(&self, digest: &str) -> Result<Option<Vec<u8>>, String> {
        let path = self.blob_path(digest);
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(err) => return Err(format!("{}: {err}", path.display())),
        };
        let actual = digest_of(&bytes);
        if actual != digest {
            return Err(format!(
                "the plugin cache's copy of {digest} ({}) has digest {actual}: corrupted or altered",
                path.display()
            ));
        }
        Ok(Some(bytes))
    }

    /// Stores bytes under their digest; returns it.
    pub fn put(&self, bytes: &[u8]) -> Result<String, String> {
        let digest = digest_of(bytes);
        let path = self.blob_path(&digest);
        write_atomic(&path, bytes)?;
        Ok(digest)
    }

    fn tag_path(&self, reference: &Reference, tag: &str) -> PathBuf {
        let mut path = self
            .dir
            .join("tags")
            .join(reference.registry.replace(':', "_"));
        for segment in reference.repository.split('/') {
            path.push(segment);
        }
        path.join(tag)
    }

    /// The manifest digest the reference's tag had when it was last pulled.
    pub fn tag(&self, reference: &Reference) -> Option<String> {
        let tag = reference.tag.as_deref()?;
        let text = std::fs::read_to_string(self.tag_path(reference, tag)).ok()?;
        let digest = text.trim().to_string();
        super::reference::check_digest(&digest).ok()?;
        Some(digest)
    }

    pub fn set_tag(&self, reference: &Reference, digest: &str) -> Result<(), String> {
        match reference.tag.as_deref() {
            Some(tag) => write_atomic(&self.tag_path(reference, tag), digest.as_bytes()),
            None => Ok(()),
        }
    }
}
