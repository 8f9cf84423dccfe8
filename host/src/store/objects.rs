//! Artifacts in an object store, for a cluster whose machines share no disk: a folder every
//! machine mounts (`file:///shared/wflow`) or an S3-compatible bucket (`s3://bucket/prefix`,
//! configured by the usual `AWS_*` variables: credentials, `AWS_REGION`, `AWS_ENDPOINT` for a
//! server other than AWS, `AWS_ALLOW_HTTP=true` for plain HTTP), through the `object_store`
//! crate.
//!
//! The layout is the local one (`sha256/<2 hex>/<62 hex>`), objects are written whole (an
//! object store never shows half an object, and the local folder writes a temporary file and
//! renames it), and every read is checked against its digest, so a damaged or tampered object
//! is refused with both digests, as on one machine.

use std::sync::Arc;

use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

use super::artifacts::{ArtifactError, DIGEST_PREFIX, digest_of, full_hex, normalise};
use super::postgres::Io;

/// A content-addressed bucket or shared folder.
pub struct ObjectArtifacts {
    store: Arc<dyn ObjectStore>,
    /// The prefix inside the store every key is under.
    root: ObjectPath,
    url: String,
    io: Arc<Io>,
}

impl std::fmt::Debug for ObjectArtifacts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectArtifacts")
            .field("url", &self.url)
            .finish()
    }
}

fn failure(url: &str, err: impl std::fmt::Display) -> ArtifactError {
    ArtifactError::Io {
        path: url.into(),
        source: std::io::Error::other(err.to_string()),
    }
}

impl ObjectArtifacts {
    /// Opens `url` (`file:///ABSOLUTE/PATH` or `s3://BUCKET[/PREFIX]`).
    pub fn open(url: &str, io: Arc<Io>) -> Result<ObjectArtifacts, ArtifactError> {
        let bad = |why: String| failure(url, format!("`{url}` is not an artifact store: {why}"));
        let parsed = url::Url::parse(url).map_err(|err| bad(err.to_string()))?;
        let (store, root): (Arc<dyn ObjectStore>, ObjectPath) = match parsed.scheme() {
            "file" => {
                let dir = parsed
                    .to_file_path()
                    .map_err(|_| bad("a file URL needs an absolute path".into()))?;
                std::fs::create_dir_all(&dir).map_err(|err| ArtifactError::Io {
                    path: dir.clone(),
                    source: err,
                })?;
                let local = object_store::local::LocalFileSystem::new_with_prefix(&dir)
                    .map_err(|err| bad(err.to_string()))?;
                (Arc::new(local), ObjectPath::default())
            }
            "s3" | "s3a" => {
                // object_store's S3 client speaks TLS through rustls with the ring provider
                // (the one the OCI client uses too); installing it twice is harmless.
                let _ = rustls::crypto::ring::default_provider().install_default();
                let options = std::env::vars()
                    .filter(|(key, _)| key.starts_with("AWS_"))
                    .map(|(key, value)| (key.to_ascii_lowercase(), value));
                let (store, root) = object_store::parse_url_opts(&parsed, options)
                    .map_err(|err| bad(err.to_string()))?;
                (Arc::from(store), root)
            }
            other => {
                return Err(bad(format!(
                    "the scheme `{other}` is not supported (use file:// or s3://)"
                )));
            }
        };
        Ok(ObjectArtifacts {
            store,
            root,
            url: url.to_string(),
            io,
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    fn key(&self, hex: &str) -> ObjectPath {
        self.root
            .clone()
            .join("sha256")
            .join(&hex[..2])
            .join(&hex[2..])
    }

    fn run<T: Send + 'static>(
        &self,
        future: impl std::future::Future<Output = Result<T, ArtifactError>> + Send + 'static,
    ) -> Result<T, ArtifactError> {
        self.io.run(future).map_err(|err| failure(&self.url, err))?
    }

    pub fn put(&self, bytes: &[u8]) -> Result<String, ArtifactError> {
        let digest = digest_of(bytes);
        let key = self.key(&full_hex(&digest)?);
        let (store, url) = (self.store.clone(), self.url.clone());
        let payload = PutPayload::from(bytes.to_vec());
        let size = bytes.len() as u64;
        self.run(async move {
            // Equal content has an equal name: an object already there is not rewritten.
            if store.head(&key).await.is_ok_and(|meta| meta.size == size) {
                return Ok(());
            }
            store
                .put(&key, payload)
                .await
                .map(|_| ())
                .map_err(|err| failure(&url, err))
        })?;
        Ok(digest)
    }

    pub fn get(&self, digest: &str) -> Result<Vec<u8>, ArtifactError> {
        let hex = full_hex(digest)?;
        let key = self.key(&hex);
        let (store, url) = (self.store.clone(), self.url.clone());
        let missing = normalise(digest);
        let bytes = self.run(async move {
            match store.get(&key).await {
                Ok(found) => found
                    .bytes()
                    .await
                    .map(|b| b.to_vec())
                    .map_err(|err| failure(&url, err)),
                Err(object_store::Error::NotFound { .. }) => Err(ArtifactError::Missing(missing)),
                Err(err) => Err(failure(&url, err)),
            }
        })?;
        let actual = digest_of(&bytes);
        if actual != normalise(digest) {
            return Err(ArtifactError::Corrupt {
                digest: normalise(digest),
                path: format!("{}/sha256/{}/{}", self.url, &hex[..2], &hex[2..]).into(),
                actual,
            });
        }
        Ok(bytes)
    }

    pub fn contains(&self, digest: &str) -> bool {
        let Ok(hex) = full_hex(digest) else {
            return false;
        };
        let (store, key) = (self.store.clone(), self.key(&hex));
        self.run(async move { Ok(store.head(&key).await.is_ok()) })
            .unwrap_or(false)
    }

    /// Full digests whose hex starts with `hex` (at least 2 digits, lowercase).
    pub fn starting_with(&self, hex: &str) -> Result<Vec<String>, ArtifactError> {
        let shard = self.root.clone().join("sha256").join(&hex[..2]);
        let (store, url) = (self.store.clone(), self.url.clone());
        let rest = hex[2..].to_string();
        let shard_name = hex[..2].to_string();
        self.run(async move {
            use futures_util::StreamExt;
            let mut listing = store.list(Some(&shard));
            let mut found = Vec::new();
            while let Some(meta) = listing.next().await {
                let meta = meta.map_err(|err| failure(&url, err))?;
                if let Some(name) = meta.location.filename()
                    && name.starts_with(&rest)
                {
                    found.push(format!("{DIGEST_PREFIX}{shard_name}{name}"));
                }
            }
            Ok(found)
        })
    }

    /// The total size of the stored objects.
    pub fn size(&self) -> u64 {
        let prefix = self.root.clone().join("sha256");
        let store = self.store.clone();
        self.run(async move {
            use futures_util::StreamExt;
            let mut listing = store.list(Some(&prefix));
            let mut total = 0;
            while let Some(meta) = listing.next().await {
                total += meta.map_or(0, |m| m.size);
            }
            Ok(total)
        })
        .unwrap_or(0)
    }
}
