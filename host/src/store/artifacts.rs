//! The content-addressed artifact directory: every table, model, report and workflow file a run
//! produces is stored once, under its sha256, and verified when read back.
//!
//! Layout: `<dir>/sha256/<first two hex digits>/<remaining 62>`. A write goes to a temporary
//! file in `<dir>/tmp`, is synced, renamed into place and the parent directory synced, so a
//! process killed at any moment leaves either no file or a complete one, never a torn one (a
//! leftover temporary file is harmless and removed on the next open). An existing file is not
//! rewritten: equal content has an equal name.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// The prefix every digest carries, as OCI and most tooling write it.
pub const DIGEST_PREFIX: &str = "sha256:";

/// Why an artifact could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    #[error("no artifact {0}")]
    Missing(String),
    #[error("artifact {digest} at {path} is corrupt: its content hashes to {actual}")]
    Corrupt {
        digest: String,
        path: PathBuf,
        actual: String,
    },
    #[error("`{0}` is not a digest (expected `sha256:` and 64 hex digits, or at least 8 of them)")]
    BadDigest(String),
    #[error("digest prefix `{prefix}` is ambiguous: it matches {matches}")]
    Ambiguous { prefix: String, matches: String },
    #[error("artifact store at {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> ArtifactError + '_ {
    move |source| ArtifactError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The `sha256:<hex>` digest of `bytes`.
pub fn digest_of(bytes: &[u8]) -> String {
    format!("{DIGEST_PREFIX}{}", hex::encode(Sha256::digest(bytes)))
}

/// A content-addressed directory of immutable files, or (for a store shared by several
/// machines) an object store of the same layout.
#[derive(Clone, Debug)]
pub struct Artifacts {
    dir: PathBuf,
    objects: Option<std::sync::Arc<super::objects::ObjectArtifacts>>,
}

impl Artifacts {
    /// Opens (creating) the directory and clears temporary files a killed writer left behind.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Artifacts, ArtifactError> {
        let dir = dir.into();
        let tmp = dir.join("tmp");
        fs::create_dir_all(dir.join("sha256")).map_err(io_error(&dir))?;
        fs::create_dir_all(&tmp).map_err(io_error(&tmp))?;
        if let Ok(entries) = fs::read_dir(&tmp) {
            for entry in entries.flatten() {
                let _ = fs::remove_file(entry.path());
            }
        }
        Ok(Artifacts { dir, objects: None })
    }

    /// Artifacts kept in an object store (see [`super::objects`]).
    pub fn in_object_store(objects: super::objects::ObjectArtifacts) -> Artifacts {
        Artifacts {
            dir: PathBuf::from(objects.url()),
            objects: Some(std::sync::Arc::new(objects)),
        }
    }

    /// Where they are, for messages: a folder, or the object store's URL.
    pub fn location(&self) -> String {
        match &self.objects {
            Some(objects) => objects.url().to_string(),
            None => self.dir.display().to_string(),
        }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where the artifact with this full digest lives (whether or not it exists).
    pub fn path(&self, digest: &str) -> Result<PathBuf, ArtifactError> {
        let hex = full_hex(digest)?;
        Ok(self.dir.join("sha256").join(&hex[..2]).join(&hex[2..]))
    }

    /// Whether the artifact is present (not verified).
    pub fn contains(&self, digest: &str) -> bool {
        if let Some(objects) = &self.objects {
            return objects.contains(digest);
        }
        self.path(digest).is_ok_and(|path| path.is_file())
    }

    /// Stores `bytes` durably and returns their digest.
    pub fn put(&self, bytes: &[u8]) -> Result<String, ArtifactError> {
        if let Some(objects) = &self.objects {
            return objects.put(bytes);
        }
        let digest = digest_of(bytes);
        let path = self.path(&digest)?;
        if path.metadata().is_ok_and(|m| m.len() == bytes.len() as u64) {
            return Ok(digest);
        }
        let parent = path.parent().expect("artifact paths have a parent");
        fs::create_dir_all(parent).map_err(io_error(parent))?;
        let tmp_dir = self.dir.join("tmp");
        let mut file = tempfile::Builder::new()
            .prefix("put-")
            .tempfile_in(&tmp_dir)
            .map_err(io_error(&tmp_dir))?;
        file.write_all(bytes).map_err(io_error(file.path()))?;
        file.as_file().sync_all().map_err(io_error(file.path()))?;
        file.persist(&path)
            .map_err(|err| io_error(&path)(err.error))?;
        sync_dir(parent).map_err(io_error(parent))?;
        Ok(digest)
    }

    /// Reads an artifact and checks that its content still has its digest.
    pub fn get(&self, digest: &str) -> Result<Vec<u8>, ArtifactError> {
        if let Some(objects) = &self.objects {
            return objects.get(digest);
        }
        let path = self.path(digest)?;
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(err) if err.kind() == io::ErrorKind::NotFound => {
                return Err(ArtifactError::Missing(digest.to_string()));
            }
            Err(err) => return Err(io_error(&path)(err)),
        };
        let actual = digest_of(&bytes);
        if actual != normalise(digest) {
            return Err(ArtifactError::Corrupt {
                digest: normalise(digest),
                path,
                actual,
            });
        }
        Ok(bytes)
    }

    /// The full digest of the one artifact whose digest starts with `prefix` (with or without
    /// `sha256:`, at least 8 hex digits).
    pub fn resolve(&self, prefix: &str) -> Result<String, ArtifactError> {
        let hex = prefix.strip_prefix(DIGEST_PREFIX).unwrap_or(prefix);
        if hex.len() < 8 || hex.len() > 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(ArtifactError::BadDigest(shown(prefix)));
        }
        let hex = hex.to_ascii_lowercase();
        let shard = self.dir.join("sha256").join(&hex[..2]);
        let mut matches = match &self.objects {
            Some(objects) => objects.starting_with(&hex)?,
            None => fs::read_dir(&shard)
                .into_iter()
                .flatten()
                .flatten()
                .map(|entry| entry.file_name().to_string_lossy().into_owned())
                .filter(|name| name.starts_with(&hex[2..]))
                .map(|name| format!("{DIGEST_PREFIX}{}{name}", &hex[..2]))
                .collect(),
        };
        matches.sort();
        match matches.len() {
            0 => Err(ArtifactError::Missing(format!("{DIGEST_PREFIX}{hex}"))),
            1 => Ok(matches.remove(0)),
            _ => Err(ArtifactError::Ambiguous {
                prefix: prefix.to_string(),
                matches: matches.join(", "),
            }),
        }
    }

    /// The total size in bytes of the stored artifacts.
    pub fn size(&self) -> u64 {
        if let Some(objects) = &self.objects {
            return objects.size();
        }
        fn walk(dir: &Path) -> u64 {
            let Ok(entries) = fs::read_dir(dir) else {
                return 0;
            };
            entries
                .flatten()
                .map(|entry| match entry.metadata() {
                    Ok(m) if m.is_dir() => walk(&entry.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        }
        walk(&self.dir.join("sha256"))
    }
}

/// `sha256:<hex>` for a digest given with or without its prefix.
pub(super) fn normalise(digest: &str) -> String {
    let hex = digest.strip_prefix(DIGEST_PREFIX).unwrap_or(digest);
    format!("{DIGEST_PREFIX}{}", hex.to_ascii_lowercase())
}

/// A caller's digest text as a message shows it: cut short, control characters escaped.
fn shown(text: &str) -> String {
    crate::excerpt::excerpt(text, 80)
}

pub(super) fn full_hex(digest: &str) -> Result<String, ArtifactError> {
    let hex = digest.strip_prefix(DIGEST_PREFIX).unwrap_or(digest);
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ArtifactError::BadDigest(shown(digest)));
    }
    Ok(hex.to_ascii_lowercase())
}

/// Makes a rename in `dir` durable. Directories cannot be opened for syncing on every
/// platform; there the rename is as durable as the platform makes it.
fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stores_once_and_reads_back_verified() {
        let dir = tempfile::tempdir().unwrap();
        let artifacts = Artifacts::open(dir.path()).unwrap();
        let digest = artifacts.put(b"hello").unwrap();
        assert_eq!(
            digest,
            "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
        assert_eq!(artifacts.put(b"hello").unwrap(), digest);
        assert_eq!(artifacts.get(&digest).unwrap(), b"hello");
        assert_eq!(artifacts.resolve("2cf24dba").unwrap(), digest);
        assert_eq!(artifacts.resolve("sha256:2CF24DBA5F").unwrap(), digest);
        assert!(artifacts.contains(&digest));
    }

    #[test]
    fn a_changed_file_is_reported_corrupt_with_both_digests() {
        let dir = tempfile::tempdir().unwrap();
        let artifacts = Artifacts::open(dir.path()).unwrap();
        let digest = artifacts.put(b"hello").unwrap();
        fs::write(artifacts.path(&digest).unwrap(), b"hellO").unwrap();
        let err = artifacts.get(&digest).unwrap_err().to_string();
        assert!(err.contains("is corrupt"), "{err}");
        assert!(err.contains(&digest), "{err}");
        assert!(err.contains(&digest_of(b"hellO")), "{err}");
    }

    #[test]
    fn bad_missing_and_ambiguous_digests_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let artifacts = Artifacts::open(dir.path()).unwrap();
        assert!(matches!(
            artifacts.get("sha256:zz"),
            Err(ArtifactError::BadDigest(_))
        ));
        assert!(matches!(
            artifacts.resolve("abc"),
            Err(ArtifactError::BadDigest(_))
        ));
        let missing = digest_of(b"never stored");
        assert!(matches!(
            artifacts.get(&missing),
            Err(ArtifactError::Missing(_))
        ));
    }

    #[test]
    fn leftover_temporary_files_are_cleared_on_open() {
        let dir = tempfile::tempdir().unwrap();
        Artifacts::open(dir.path()).unwrap();
        fs::write(dir.path().join("tmp/put-123"), b"half").unwrap();
        Artifacts::open(dir.path()).unwrap();
        assert_eq!(fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
    }
}
