//! Publisher signatures of plugins: ed25519 keys, detached signature files, and a trust store
//! of publisher keys.
//!
//! A signature covers the component's sha256 (with a fixed domain prefix), not a file name or a
//! registry location, so the same signature holds for a file, its copy in the plugin cache and
//! the artifact pulled from any registry. Formats are one-line text for keys and JSON for
//! signatures, readable and diffable:
//!
//! ```text
//! acme.pub:  wflow-ed25519-public <base64 key> acme
//! acme.key:  wflow-ed25519-secret <base64 seed> acme        (mode 600)
//! x.wasm.sig {"format":"wflow-signature-v1","algorithm":"ed25519","publisher":"acme",
//!             "key_id":"<16 hex>","digest":"sha256:...","signature":"<base64>"}
//! ```
//!
//! The trust store is a directory of `.pub` files (`WFLOW_TRUST_DIR`, else
//! `~/.config/wflow/trust`). A signature verifies when its key is in the store, the digest it
//! names is the component's and the ed25519 signature checks (strictly).

use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

const FORMAT: &str = "wflow-signature-v1";
const PUBLIC_TAG: &str = "wflow-ed25519-public";
const SECRET_TAG: &str = "wflow-ed25519-secret";

/// A detached signature of one component.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signature {
    pub format: String,
    pub algorithm: String,
    /// The publisher's name, as in their key file.
    pub publisher: String,
    /// The first 16 hex digits of the sha256 of the public key.
    pub key_id: String,
    /// `sha256:<hex>` of the component bytes.
    pub digest: String,
    pub signature: String,
}

impl Signature {
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a signature serialises") + "\n"
    }

    pub fn from_json(text: &[u8]) -> Result<Signature, String> {
        let signature: Signature =
            serde_json::from_slice(text).map_err(|e| format!("not a wflow signature: {e}"))?;
        if signature.format != FORMAT || signature.algorithm != "ed25519" {
            return Err(format!(
                "unsupported signature format {:?} / algorithm {:?} (expected {FORMAT:?} / \"ed25519\")",
                signature.format, signature.algorithm
            ));
        }
        Ok(signature)
    }
}

/// `sha256:<hex>` of a component.
pub fn component_digest(wasm: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(wasm)))
}

fn message(digest: &str) -> Vec<u8> {
    format!("{FORMAT}\n{digest}\n").into_bytes()
}

fn key_id(key: &VerifyingKey) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))[..16].to_string()
}

/// A publisher's key pair.
pub struct KeyPair {
    pub name: String,
    key: SigningKey,
}

impl KeyPair {
    /// A new key pair from the operating system's randomness.
    pub fn generate(name: &str) -> Result<KeyPair, String> {
        check_name(name)?;
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| format!("no randomness for a key: {e}"))?;
        Ok(KeyPair {
            name: name.to_string(),
            key: SigningKey::from_bytes(&seed),
        })
    }

    /// Writes `DIR/NAME.key` (owner-only) and `DIR/NAME.pub`; refuses to overwrite a key.
    pub fn write(&self, dir: &Path) -> Result<(PathBuf, PathBuf), String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let secret = dir.join(format!("{}.key", self.name));
        let public = dir.join(format!("{}.pub", self.name));
        if secret.exists() {
            return Err(format!(
                "{} exists: not overwriting a key",
                secret.display()
            ));
        }
        let text = format!(
            "{SECRET_TAG} {} {}\n",
            BASE64.encode(self.key.to_bytes()),
            self.name
        );
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        use std::io::Write as _;
        options
            .open(&secret)
            .and_then(|mut f| f.write_all(text.as_bytes()))
            .map_err(|e| format!("{}: {e}", secret.display()))?;
        std::fs::write(&public, public_line(&self.name, &self.key.verifying_key()))
            .map_err(|e| format!("{}: {e}", public.display()))?;
        Ok((secret, public))
    }

    /// Reads a `.key` file.
    pub fn read(path: &Path) -> Result<KeyPair, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let (bytes, name) =
            parse_line(&text, SECRET_TAG).map_err(|why| format!("{}: {why}", path.display()))?;
        Ok(KeyPair {
            name,
            key: SigningKey::from_bytes(&bytes),
        })
    }

    /// Signs a component.
    pub fn sign(&self, wasm: &[u8]) -> Signature {
        let digest = component_digest(wasm);
        let signature = self.key.sign(&message(&digest));
        Signature {
            format: FORMAT.into(),
            algorithm: "ed25519".into(),
            publisher: self.name.clone(),
            key_id: key_id(&self.key.verifying_key()),
            digest,
            signature: BASE64.encode(signature.to_bytes()),
        }
    }
}

fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(format!(
            "invalid publisher name {name:?}: letters, digits, `-`, `_` and `.`"
        ));
    }
    Ok(())
}

fn public_line(name: &str, key: &VerifyingKey) -> String {
    format!("{PUBLIC_TAG} {} {name}\n", BASE64.encode(key.as_bytes()))
}

/// `TAG <base64 32 bytes> NAME` -> (bytes, name).
fn parse_line(text: &str, tag: &str) -> Result<([u8; 32], String), String> {
    let mut parts = text.split_whitespace();
    if parts.next() != Some(tag) {
        return Err(format!(
            "not a key file (expected a line starting with {tag})"
        ));
    }
    let bytes = parts
        .next()
        .and_then(|b| BASE64.decode(b).ok())
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .ok_or("the key is not 32 bytes of base64")?;
    let name = parts
        .next()
        .ok_or("the key has no publisher name")?
        .to_string();
    check_name(&name)?;
    Ok((bytes, name))
}

/// Why a signature does not verify.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VerifyError {
    #[error("the signature is for component {signed}, but this component is {actual}")]
    OtherComponent { signed: String, actual: String },
    #[error(
        "signed by `{publisher}` with key {key_id}, which is not in the trust store {store} (add the publisher's .pub file with `wflow plugin trust`)"
    )]
    UnknownKey {
        publisher: String,
        key_id: String,
        store: String,
    },
    #[error(
        "the signature by `{publisher}` (key {key_id}) does not verify: the component or the signature was altered"
    )]
    Invalid { publisher: String, key_id: String },
}

/// Publisher keys trusted to sign plugins.
#[derive(Clone, Debug, Default)]
pub struct TrustStore {
    pub dir: PathBuf,
    /// (key id, publisher, key).
    keys: Vec<(String, String, VerifyingKey)>,
}

impl TrustStore {
    /// `WFLOW_TRUST_DIR`, else `$XDG_CONFIG_HOME/wflow/trust`, else `~/.config/wflow/trust`.
    pub fn default_dir() -> PathBuf {
        if let Some(dir) = std::env::var_os("WFLOW_TRUST_DIR") {
            return PathBuf::from(dir);
        }
        std::env::var_os("XDG_CONFIG_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
            .unwrap_or_else(|| PathBuf::from("."))
            .join("wflow")
            .join("trust")
    }

    /// Every `.pub` file of `dir` (a missing directory is an empty store); a file that is not
    /// a key is an error naming it.
    pub fn load(dir: &Path) -> Result<TrustStore, String> {
        let mut keys = Vec::new();
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                return Ok(TrustStore {
                    dir: dir.to_path_buf(),
                    keys,
                });
            }
            Err(err) => return Err(format!("trust store {}: {err}", dir.display())),
        };
        let mut paths: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "pub"))
            .collect();
        paths.sort();
        for path in paths {
            let text =
                std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            let (bytes, name) = parse_line(&text, PUBLIC_TAG)
                .map_err(|why| format!("trust store {}: {why}", path.display()))?;
            let key = VerifyingKey::from_bytes(&bytes)
                .map_err(|e| format!("trust store {}: {e}", path.display()))?;
            keys.push((key_id(&key), name, key));
        }
        Ok(TrustStore {
            dir: dir.to_path_buf(),
            keys,
        })
    }

    /// Copies a publisher's `.pub` file into the store (checked first); returns its key id.
    pub fn add(dir: &Path, public_key_file: &Path) -> Result<(String, String), String> {
        let text = std::fs::read_to_string(public_key_file)
            .map_err(|e| format!("{}: {e}", public_key_file.display()))?;
        let (bytes, name) = parse_line(&text, PUBLIC_TAG)
            .map_err(|why| format!("{}: {why}", public_key_file.display()))?;
        let key = VerifyingKey::from_bytes(&bytes)
            .map_err(|e| format!("{}: {e}", public_key_file.display()))?;
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let target = dir.join(format!("{name}.pub"));
        std::fs::write(&target, public_line(&name, &key))
            .map_err(|e| format!("{}: {e}", target.display()))?;
        Ok((name, key_id(&key)))
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Checks `signature` over `wasm`; returns the publisher.
    pub fn verify(&self, wasm: &[u8], signature: &Signature) -> Result<String, VerifyError> {
        let actual = component_digest(wasm);
        if signature.digest != actual {
            return Err(VerifyError::OtherComponent {
                signed: signature.digest.clone(),
                actual,
            });
        }
        let Some((_, publisher, key)) = self.keys.iter().find(|(id, _, _)| *id == signature.key_id)
        else {
            return Err(VerifyError::UnknownKey {
                publisher: signature.publisher.clone(),
                key_id: signature.key_id.clone(),
                store: self.dir.display().to_string(),
            });
        };
        let invalid = || VerifyError::Invalid {
            publisher: signature.publisher.clone(),
            key_id: signature.key_id.clone(),
        };
        let bytes = BASE64
            .decode(&signature.signature)
            .ok()
            .and_then(|b| <[u8; 64]>::try_from(b).ok())
            .ok_or_else(invalid)?;
        key.verify_strict(
            &message(&actual),
            &ed25519_dalek::Signature::from_bytes(&bytes),
        )
        .map_err(|_| invalid())?;
        Ok(publisher.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_only_for_its_component_and_a_trusted_key() {
        let dir = tempfile::tempdir().unwrap();
        let pair = KeyPair::generate("acme").unwrap();
        let (secret, public) = pair.write(&dir.path().join("keys")).unwrap();
        let pair = KeyPair::read(&secret).unwrap();
        let wasm = b"\0asm component bytes";
        let signature = Signature::from_json(pair.sign(wasm).to_json().as_bytes()).unwrap();

        let empty = TrustStore::load(&dir.path().join("trust")).unwrap();
        assert!(matches!(
            empty.verify(wasm, &signature),
            Err(VerifyError::UnknownKey { .. })
        ));
        TrustStore::add(&dir.path().join("trust"), &public).unwrap();
        let store = TrustStore::load(&dir.path().join("trust")).unwrap();
        assert_eq!(store.verify(wasm, &signature).unwrap(), "acme");

        let other = store.verify(b"another component", &signature).unwrap_err();
        assert!(other.to_string().contains(&signature.digest), "{other}");

        let mut forged = signature.clone();
        let mut bytes = BASE64.decode(&forged.signature).unwrap();
        bytes[0] ^= 1;
        forged.signature = BASE64.encode(bytes);
        assert!(matches!(
            store.verify(wasm, &forged),
            Err(VerifyError::Invalid { .. })
        ));

        assert!(
            pair.write(&dir.path().join("keys"))
                .unwrap_err()
                .contains("not overwriting")
        );
    }
}
