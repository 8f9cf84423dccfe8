//! Plugins from OCI registries: push and pull of wasm components in the layout other wasm
//! tooling uses, pinning by digest in a lock file next to the workflow, a local cache that makes
//! pinned plugins available offline, and the signature policy.
//!
//! Resolving `oci://HOST/REPO:TAG` in a workflow:
//! 1. the pin is the reference's own `@sha256:` digest, else the lock file's entry;
//! 2. a pinned manifest and its component in the cache are used as they are (no network);
//! 3. otherwise the manifest is fetched (by the pinned digest, or by tag) and its digest checked
//!    against the pin: a mismatch is refused with both digests; the component blob is fetched
//!    and checked against the digest the manifest names; the signature artifact, when the
//!    registry has one, comes along;
//! 4. everything is cached, and an unpinned reference is pinned in the lock file.
//!
//! Blocking (network and files): async callers run it on a blocking thread.

pub mod artifact;
pub mod cache;
pub mod client;
pub mod lock;
pub mod reference;

use std::path::{Path, PathBuf};

use crate::plugin::signing::{self, Signature, TrustStore};
pub use cache::PluginCache;
pub use client::{Client, digest_of};
pub use lock::{LockFile, Pin};
pub use reference::Reference;

/// Where plugins come from and what is required of them.
#[derive(Clone, Debug)]
pub struct Sources {
    pub cache: PluginCache,
    pub trust_dir: PathBuf,
    /// Refuse plugins without a signature from a trusted key (built-in plugins excepted).
    pub require_signed: bool,
    /// Never use the network: pinned plugins come from the cache or fail.
    pub offline: bool,
}

impl Default for Sources {
    fn default() -> Self {
        Sources::from_env()
    }
}

impl Sources {
    /// The default places, and `WFLOW_REQUIRE_SIGNED=1` / `WFLOW_OFFLINE=1`.
    pub fn from_env() -> Sources {
        let flag = |name: &str| {
            std::env::var(name).is_ok_and(|v| !v.is_empty() && v != "0" && v != "false")
        };
        Sources {
            cache: PluginCache::new(PluginCache::default_dir()),
            trust_dir: TrustStore::default_dir(),
            require_signed: flag("WFLOW_REQUIRE_SIGNED"),
            offline: flag("WFLOW_OFFLINE"),
        }
    }
}

/// A component obtained from a registry or the cache.
#[derive(Clone, Debug)]
pub struct Resolved {
    pub reference: Reference,
    /// The manifest's digest.
    pub digest: String,
    pub wasm: Vec<u8>,
    /// The publisher's signature, when the registry (or the cache) has one.
    pub signature: Option<Signature>,
    /// Whether the network was used.
    pub fetched: bool,
}

/// Where the pin of a resolution came from, for error messages.
enum PinSource<'a> {
    Reference,
    Lock(&'a Path),
}

/// Resolves a workflow's OCI plugin (see the module header), updating `lock` in memory.
pub fn resolve(
    text: &str,
    reference: &Reference,
    lock: &mut LockFile,
    sources: &Sources,
    client: &Client,
) -> Result<Resolved, String> {
    let lock_path = lock.path.clone();
    let (pin, source) = match (&reference.digest, lock.get(text)) {
        (Some(digest), _) => (Some(digest.clone()), PinSource::Reference),
        (None, Some(pin)) => (Some(pin.digest.clone()), PinSource::Lock(&lock_path)),
        (None, None) => (None, PinSource::Reference),
    };
    let resolved = match &pin {
        Some(digest) => match from_cache(reference, digest, &sources.cache)? {
            Some(resolved) => resolved,
            None if sources.offline => {
                return Err(format!(
                    "{text}: {digest} is not in the plugin cache {} and the network is off (WFLOW_OFFLINE); pull it first with `wflow plugin pull`",
                    sources.cache.dir().display()
                ));
            }
            None => fetch(reference, Some((digest, &source)), &sources.cache, client)?,
        },
        None if sources.offline => {
            let cached = sources
                .cache
                .tag(reference)
                .map(|digest| from_cache(reference, &digest, &sources.cache))
                .transpose()?
                .flatten();
            cached.ok_or_else(|| {
                format!(
                    "{text}: not in the plugin cache {} and the network is off (WFLOW_OFFLINE); pull it first with `wflow plugin pull`",
                    sources.cache.dir().display()
                )
            })?
        }
        None => fetch(reference, None, &sources.cache, client)?,
    };
    lock.set(
        text,
        Pin {
            digest: resolved.digest.clone(),
            component: signing::component_digest(&resolved.wasm),
        },
    );
    Ok(resolved)
}

/// A pinned manifest and its component from the cache, each checked against its digest.
fn from_cache(
    reference: &Reference,
    digest: &str,
    cache: &PluginCache,
) -> Result<Option<Resolved>, String> {
    let Some(manifest_bytes) = cache.blob(digest)? else {
        return Ok(None);
    };
    let manifest =
        artifact::parse_manifest(&manifest_bytes).map_err(|why| format!("{reference}: {why}"))?;
    let layer = artifact::wasm_layer(&manifest).map_err(|why| format!("{reference}: {why}"))?;
    let Some(wasm) = cache.blob(&layer.digest)? else {
        return Ok(None);
    };
    Ok(Some(Resolved {
        reference: reference.pinned(digest),
        digest: digest.to_string(),
        signature: cached_signature(cache, &layer.digest),
        wasm,
        fetched: false,
    }))
}

fn signature_path(cache: &PluginCache, component_digest: &str) -> PathBuf {
    cache
        .dir()
        .join("signatures")
        .join(format!("{}.sig", component_digest.replace(':', "-")))
}

fn cached_signature(cache: &PluginCache, component_digest: &str) -> Option<Signature> {
    let bytes = std::fs::read(signature_path(cache, component_digest)).ok()?;
    Signature::from_json(&bytes).ok()
}

/// Fetches the manifest, its component and its signature, checking every digest.
fn fetch(
    reference: &Reference,
    pin: Option<(&String, &PinSource<'_>)>,
    cache: &PluginCache,
    client: &Client,
) -> Result<Resolved, String> {
    let asked = match pin {
        Some((digest, _)) => reference.pinned(digest),
        None => reference.clone(),
    };
    let (manifest_bytes, _) = client.manifest(&asked).map_err(|e| e.to_string())?;
    let digest = digest_of(&manifest_bytes);
    if let Some((pinned, source)) = pin
        && *pinned != digest
    {
        let from = match source {
            PinSource::Reference => "the workflow's reference".to_string(),
            PinSource::Lock(path) => format!("the lock file {}", path.display()),
        };
        return Err(format!(
            "digest mismatch for {reference}: {from} pins {pinned}, the registry served a manifest with digest {digest}; refused"
        ));
    }
    let manifest =
        artifact::parse_manifest(&manifest_bytes).map_err(|why| format!("{reference}: {why}"))?;
    let layer = artifact::wasm_layer(&manifest).map_err(|why| format!("{reference}: {why}"))?;
    let wasm = client
        .blob(reference, &layer.digest)
        .map_err(|e| e.to_string())?;
    let served = digest_of(&wasm);
    if served != layer.digest {
        return Err(format!(
            "digest mismatch for {reference}: its manifest names the component {}, the registry served bytes with digest {served}; refused",
            layer.digest
        ));
    }
    if wasm.len() as u64 != layer.size {
        return Err(format!(
            "{reference}: the manifest says the component is {} bytes, the registry served {}",
            layer.size,
            wasm.len()
        ));
    }
    let signature = fetch_signature(reference, &layer.digest, client)?;
    cache.put(&wasm)?;
    cache.put(&manifest_bytes)?;
    if let Some(signature) = &signature {
        cache::write_atomic(
            &signature_path(cache, &layer.digest),
            signature.to_json().as_bytes(),
        )?;
    }
    if reference.digest.is_none() {
        cache.set_tag(reference, &digest)?;
    }
    Ok(Resolved {
        reference: reference.pinned(&digest),
        digest,
        wasm,
        signature,
        fetched: true,
    })
}

/// The signature artifact of a component, when the repository has one.
fn fetch_signature(
    reference: &Reference,
    component_digest: &str,
    client: &Client,
) -> Result<Option<Signature>, String> {
    let tagged = reference.with_tag(&artifact::signature_tag(component_digest));
    let manifest_bytes = match client.manifest(&tagged) {
        Ok((bytes, _)) => bytes,
        Err(client::RegistryError::Invalid(why)) if why.ends_with("not found in the registry") => {
            return Ok(None);
        }
        Err(err) => return Err(err.to_string()),
    };
    let manifest = artifact::parse_manifest(&manifest_bytes)
        .map_err(|why| format!("signature of {reference}: {why}"))?;
    let layer = manifest
        .layers
        .iter()
        .find(|l| l.media_type == artifact::SIGNATURE_LAYER_MEDIA_TYPE)
        .ok_or_else(|| format!("signature of {reference}: no signature layer"))?;
    let bytes = client
        .blob(reference, &layer.digest)
        .map_err(|e| e.to_string())?;
    if digest_of(&bytes) != layer.digest {
        return Err(format!(
            "signature of {reference}: the registry served a blob whose digest is not {}; refused",
            layer.digest
        ));
    }
    Signature::from_json(&bytes)
        .map(Some)
        .map_err(|why| format!("signature of {reference}: {why}"))
}

/// Pulls a reference into the cache (no lock file): what `wflow plugin pull` does.
pub fn pull(reference: &Reference, sources: &Sources, client: &Client) -> Result<Resolved, String> {
    if let Some(digest) = &reference.digest
        && let Some(resolved) = from_cache(reference, digest, &sources.cache)?
    {
        return Ok(resolved);
    }
    let pin = reference
        .digest
        .as_ref()
        .map(|d| (d, &PinSource::Reference));
    fetch(reference, pin, &sources.cache, client)
}

/// Pushes a component (and its signature, when given) under the reference's tag; returns
/// the manifest digest.
pub fn push(
    reference: &Reference,
    wasm: &[u8],
    title: &str,
    component: artifact::ComponentInfo,
    annotations: std::collections::BTreeMap<String, String>,
    signature: Option<&Signature>,
    client: &Client,
) -> Result<String, String> {
    let tag = reference
        .tag
        .as_deref()
        .ok_or_else(|| format!("{reference}: push needs a tag (oci://HOST/REPO:TAG)"))?;
    let (config, manifest) = artifact::component_manifest(wasm, title, component, annotations);
    let text = |e: client::RegistryError| e.to_string();
    client.push_blob(reference, wasm).map_err(text)?;
    client.push_blob(reference, &config).map_err(text)?;
    let digest = client
        .push_manifest(reference, tag, &manifest, artifact::MANIFEST_MEDIA_TYPE)
        .map_err(text)?;
    if let Some(signature) = signature {
        let bytes = signature.to_json().into_bytes();
        client.push_blob(reference, &bytes).map_err(text)?;
        client.push_blob(reference, b"{}").map_err(text)?;
        let manifest = artifact::signature_manifest(&bytes);
        client
            .push_manifest(
                reference,
                &artifact::signature_tag(&signature.digest),
                &manifest,
                artifact::MANIFEST_MEDIA_TYPE,
            )
            .map_err(text)?;
    }
    Ok(digest)
}

/// The signature policy applied to one plugin: `Ok(Some(publisher))` when signed by a trusted
/// key, `Ok(None)` when unsigned and signatures are not required; an invalid signature is
/// always refused.
pub fn check_signature(
    what: &str,
    wasm: &[u8],
    signature: Option<&Signature>,
    require: bool,
    trust_dir: &Path,
) -> Result<Option<String>, String> {
    match signature {
        None if require => Err(format!(
            "{what} is not signed, and signed plugins are required (sign it with `wflow plugin sign`)"
        )),
        None => Ok(None),
        Some(signature) => {
            let store = TrustStore::load(trust_dir)?;
            store
                .verify(wasm, signature)
                .map(Some)
                .map_err(|err| format!("{what}: {err}"))
        }
    }
}
