//! The lock file next to a workflow (`NAME.lock` beside `NAME.toml`): each OCI plugin the
//! workflow uses, pinned to the manifest digest its first resolution found. Later runs ask the
//! registry (or the plugin cache) for that digest, so a tag moved by its publisher changes
//! nothing until the lock entry is removed. Commit it with the workflow.
//!
//! ```toml
//! # Written by wflow: the OCI plugins this workflow uses, pinned by digest.
//! version = 1
//!
//! [plugins."oci://127.0.0.1:5000/team/rules:1.0"]
//! digest = "sha256:..."      # the manifest
//! component = "sha256:..."   # the wasm layer
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pin {
    pub digest: String,
    pub component: String,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct LockText {
    version: u32,
    #[serde(default)]
    plugins: BTreeMap<String, Pin>,
}

#[derive(Clone, Debug)]
pub struct LockFile {
    pub path: PathBuf,
    pins: BTreeMap<String, Pin>,
    changed: bool,
}

impl LockFile {
    /// The lock file of a workflow file: the same name with `.lock`.
    pub fn path_for(workflow_file: &Path) -> PathBuf {
        workflow_file.with_extension("lock")
    }

    /// Reads it (absent: empty); a file that does not parse is an error naming it.
    pub fn read(path: &Path) -> Result<LockFile, String> {
        let pins = match std::fs::read_to_string(path) {
            Ok(text) => {
                let parsed: LockText = toml::from_str(&text)
                    .map_err(|e| format!("lock file {}: {e}", path.display()))?;
                if parsed.version != 1 {
                    return Err(format!(
                        "lock file {}: version {} (this wflow writes version 1)",
                        path.display(),
                        parsed.version
                    ));
                }
                for (reference, pin) in &parsed.plugins {
                    for digest in [&pin.digest, &pin.component] {
                        super::reference::check_digest(digest).map_err(|why| {
                            format!("lock file {}: {reference}: {why}", path.display())
                        })?;
                    }
                }
                parsed.plugins
            }
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(err) => return Err(format!("lock file {}: {err}", path.display())),
        };
        Ok(LockFile {
            path: path.to_path_buf(),
            pins,
            changed: false,
        })
    }

    pub fn get(&self, reference: &str) -> Option<&Pin> {
        self.pins.get(reference)
    }

    pub fn set(&mut self, reference: &str, pin: Pin) {
        if self.pins.get(reference) != Some(&pin) {
            self.pins.insert(reference.to_string(), pin);
            self.changed = true;
        }
    }

    /// Writes the file when an entry was added or changed.
    pub fn save(&mut self) -> Result<(), String> {
        if !self.changed {
            return Ok(());
        }
        let text = LockText {
            version: 1,
            plugins: self.pins.clone(),
        };
        let body = toml::to_string(&text).map_err(|e| e.to_string())?;
        let contents = format!(
            "# Written by wflow: the OCI plugins this workflow uses, pinned by digest.\n\
             # Commit it; remove an entry to take the tag's current version.\n{body}"
        );
        super::cache::write_atomic(&self.path, contents.as_bytes())?;
        self.changed = false;
        Ok(())
    }
}
