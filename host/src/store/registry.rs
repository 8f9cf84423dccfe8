//! The model registry: numbered versions of named models, aliases (`champion`, `challenger`,
//! any name) pointing at versions, and the audit trail of every alias move, kept forever.
//!
//! Keys are `name 0x00 ...` so each model's versions, aliases and events are one ordered
//! prefix scan. An alias move and its audit event are written in one transaction: there is
//! never a move without its event or an event without its move.

use std::collections::BTreeMap;

use super::backend::{Tree, Write};
use super::records::{Actor, AliasEvent, ModelVersion, now};
use super::{Store, StoreError};

/// The file in the data directory rewritten at every alias move.
const ALIAS_STAMP: &str = "aliases.stamp";

fn now_nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

fn prefix(name: &str) -> Vec<u8> {
    let mut key = name.as_bytes().to_vec();
    key.push(0);
    key
}

fn version_key(name: &str, version: u32) -> Vec<u8> {
    let mut key = prefix(name);
    key.extend_from_slice(&version.to_be_bytes());
    key
}

fn alias_key(name: &str, alias: &str) -> Vec<u8> {
    let mut key = prefix(name);
    key.extend_from_slice(alias.as_bytes());
    key
}

fn event_key(name: &str, seq: u64) -> Vec<u8> {
    let mut key = prefix(name);
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

/// A model name or alias: letters, digits, `-`, `_`, `.`; not empty.
pub fn check_name(what: &str, name: &str) -> Result<(), StoreError> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(StoreError::Invalid(format!(
            "{what} `{name}` is not valid: use letters, digits, `-`, `_` and `.`"
        )))
    }
}

/// `NAME`, `NAME@VERSION` or `NAME@ALIAS`, as the `models` commands take them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ModelRef {
    Latest(String),
    Version(String, u32),
    Alias(String, String),
}

impl ModelRef {
    pub fn parse(text: &str) -> Result<ModelRef, StoreError> {
        let (name, at) = match text.split_once('@') {
            Some((name, at)) => (name, Some(at)),
            None => (text, None),
        };
        check_name("model name", name)?;
        Ok(match at {
            None => ModelRef::Latest(name.to_string()),
            Some(at) => {
                let number = at.strip_prefix('v').unwrap_or(at);
                match number.parse::<u32>() {
                    Ok(version) => ModelRef::Version(name.to_string(), version),
                    Err(_) => {
                        check_name("alias", at)?;
                        ModelRef::Alias(name.to_string(), at.to_string())
                    }
                }
            }
        })
    }

    pub fn name(&self) -> &str {
        match self {
            ModelRef::Latest(name) | ModelRef::Version(name, _) | ModelRef::Alias(name, _) => name,
        }
    }
}

/// Everything `models why` shows about a version: the version, the alias move that gave it
/// the alias and the version it replaced, the alias's history and the steps of the run that
/// registered it.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Why {
    pub version: ModelVersion,
    pub alias: Option<String>,
    pub arrival: Option<AliasEvent>,
    pub replaced: Option<ModelVersion>,
    pub history: Vec<AliasEvent>,
    pub run_steps: Vec<super::records::StepRecord>,
}

/// A model as `models list` shows it.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ModelSummary {
    pub name: String,
    pub versions: u32,
    pub latest: u32,
    pub updated: u64,
    pub aliases: BTreeMap<String, u32>,
}

impl Store {
    /// Every version of a model, oldest first.
    pub fn versions(&self, name: &str) -> Result<Vec<ModelVersion>, StoreError> {
        self.backend
            .scan_prefix(Tree::Versions, &prefix(name))
            .map_err(self.db_error())?
            .into_iter()
            .map(|(key, bytes)| self.decode("versions", &key, &bytes))
            .collect()
    }

    /// One version of a model.
    pub fn version(&self, name: &str, version: u32) -> Result<ModelVersion, StoreError> {
        let key = version_key(name, version);
        match self.get(Tree::Versions, &key)? {
            Some(bytes) => self.decode("versions", &key, &bytes),
            None if self.versions(name)?.is_empty() => {
                Err(StoreError::NotFound(format!("no model `{name}`")))
            }
            None => Err(StoreError::NotFound(format!(
                "model `{name}` has no version {version}"
            ))),
        }
    }

    /// The version an alias points at.
    pub fn alias(&self, name: &str, alias: &str) -> Result<Option<u32>, StoreError> {
        Ok(self
            .get(Tree::Aliases, &alias_key(name, alias))?
            .and_then(|bytes| <[u8; 4]>::try_from(bytes.as_slice()).ok())
            .map(u32::from_be_bytes))
    }

    /// Every alias of a model and its version.
    pub fn aliases(&self, name: &str) -> Result<BTreeMap<String, u32>, StoreError> {
        let start = prefix(name).len();
        let mut out = BTreeMap::new();
        for (key, bytes) in self
            .backend
            .scan_prefix(Tree::Aliases, &prefix(name))
            .map_err(self.db_error())?
        {
            if let Ok(version) = <[u8; 4]>::try_from(bytes.as_slice()) {
                out.insert(
                    String::from_utf8_lossy(&key[start..]).into_owned(),
                    u32::from_be_bytes(version),
                );
            }
        }
        Ok(out)
    }

    /// The version a reference names.
    pub fn resolve_model(&self, reference: &ModelRef) -> Result<ModelVersion, StoreError> {
        match reference {
            ModelRef::Version(name, version) => self.version(name, *version),
            ModelRef::Latest(name) => self
                .versions(name)?
                .pop()
                .ok_or_else(|| StoreError::NotFound(format!("no model `{name}`"))),
            ModelRef::Alias(name, alias) => match self.alias(name, alias)? {
                Some(version) => self.version(name, version),
                None if self.versions(name)?.is_empty() => {
                    Err(StoreError::NotFound(format!("no model `{name}`")))
                }
                None => {
                    let aliases = self.aliases(name)?;
                    Err(StoreError::NotFound(if aliases.is_empty() {
                        format!("model `{name}` has no alias `{alias}` (it has no aliases)")
                    } else {
                        format!(
                            "model `{name}` has no alias `{alias}` (its aliases: {})",
                            aliases.keys().cloned().collect::<Vec<_>>().join(", ")
                        )
                    }))
                }
            },
        }
    }

    /// What `models why` shows about the version `reference` names.
    pub fn why(&self, reference: &ModelRef) -> Result<Why, StoreError> {
        let version = self.resolve_model(reference)?;
        let alias = match reference {
            ModelRef::Alias(_, alias) => Some(alias.clone()),
            _ => None,
        };
        let history = self.alias_history(&version.name, alias.as_deref())?;
        // The move that gave the alias its current version, and the version it replaced.
        let arrival = history
            .iter()
            .rev()
            .find(|e| e.to == Some(version.version))
            .cloned();
        let replaced = arrival
            .as_ref()
            .and_then(|e| e.from)
            .and_then(|v| self.version(&version.name, v).ok());
        let run_steps = self.steps(version.run).unwrap_or_default();
        Ok(Why {
            version,
            alias,
            arrival,
            replaced,
            history,
            run_steps,
        })
    }

    /// Every model, by name.
    pub fn models(&self) -> Result<Vec<ModelSummary>, StoreError> {
        let mut out: BTreeMap<String, ModelSummary> = BTreeMap::new();
        for (key, bytes) in self
            .backend
            .scan_prefix(Tree::Versions, &[])
            .map_err(self.db_error())?
        {
            let version: ModelVersion = self.decode("versions", &key, &bytes)?;
            let summary = out
                .entry(version.name.clone())
                .or_insert_with(|| ModelSummary {
                    name: version.name.clone(),
                    versions: 0,
                    latest: 0,
                    updated: 0,
                    aliases: BTreeMap::new(),
                });
            summary.versions += 1;
            summary.latest = summary.latest.max(version.version);
            summary.updated = summary.updated.max(version.created);
        }
        for summary in out.values_mut() {
            summary.aliases = self.aliases(&summary.name)?;
        }
        Ok(out.into_values().collect())
    }

    /// The version a run's step registered, if it did (a resumed run must not register twice).
    pub fn registered_by(
        &self,
        name: &str,
        run: u64,
        step: &str,
    ) -> Result<Option<ModelVersion>, StoreError> {
        Ok(self
            .versions(name)?
            .into_iter()
            .find(|v| v.run == run && v.step == step))
    }

    /// Adds the next version of `version.name` (its `version` field is assigned here).
    pub fn add_version(&self, mut version: ModelVersion) -> Result<ModelVersion, StoreError> {
        check_name("model name", &version.name)?;
        let db_error = self.db_error();
        self.backend
            .serialized(&format!("versions/{}", version.name), &db_error, |reader| {
                version.version = match reader
                    .last(Tree::Versions, &prefix(&version.name))
                    .map_err(&db_error)?
                {
                    Some((key, _)) => {
                        let number = <[u8; 4]>::try_from(&key[key.len() - 4..])
                            .map(u32::from_be_bytes)
                            .unwrap_or(0);
                        number + 1
                    }
                    None => 1,
                };
                let write = Write::Put(
                    Tree::Versions,
                    version_key(&version.name, version.version),
                    Self::encode(&version),
                );
                Ok::<_, StoreError>(((), vec![write]))
            })?;
        Ok(version)
    }

    /// The audit trail of a model's aliases (of one alias when given), oldest first.
    pub fn alias_history(
        &self,
        name: &str,
        alias: Option<&str>,
    ) -> Result<Vec<AliasEvent>, StoreError> {
        let mut out = Vec::new();
        for (key, bytes) in self
            .backend
            .scan_prefix(Tree::Events, &prefix(name))
            .map_err(self.db_error())?
        {
            let event: AliasEvent = self.decode("events", &key, &bytes)?;
            if alias.is_none_or(|a| a == event.alias) {
                out.push(event);
            }
        }
        Ok(out)
    }

    /// Points `alias` at `to`, recording who did it and why.
    pub fn move_alias(
        &self,
        name: &str,
        alias: &str,
        to: u32,
        reason: &str,
        actor: Actor,
        rollback: bool,
    ) -> Result<AliasEvent, StoreError> {
        self.version(name, to)?;
        self.set_alias(name, alias, Some(to), reason, actor, rollback)
    }

    /// Removes `alias` (a challenger whose deployment ended), recording who did it and why.
    pub fn remove_alias(
        &self,
        name: &str,
        alias: &str,
        reason: &str,
        actor: Actor,
        rollback: bool,
    ) -> Result<AliasEvent, StoreError> {
        if self.alias(name, alias)?.is_none() {
            return Err(StoreError::NotFound(format!(
                "model `{name}` has no alias `{alias}`"
            )));
        }
        self.set_alias(name, alias, None, reason, actor, rollback)
    }

    fn set_alias(
        &self,
        name: &str,
        alias: &str,
        to: Option<u32>,
        reason: &str,
        actor: Actor,
        rollback: bool,
    ) -> Result<AliasEvent, StoreError> {
        check_name("alias", alias)?;
        let db_error = self.db_error();
        let event = self
            .backend
            .serialized(&format!("aliases/{name}"), &db_error, |reader| {
                let seq = reader
                    .last(Tree::Events, &prefix(name))
                    .map_err(&db_error)?
                    .and_then(|(key, _)| {
                        <[u8; 8]>::try_from(&key[key.len() - 8..])
                            .ok()
                            .map(u64::from_be_bytes)
                    })
                    .unwrap_or(0)
                    + 1;
                let from = reader
                    .get(Tree::Aliases, &alias_key(name, alias))
                    .map_err(&db_error)?
                    .and_then(|bytes| <[u8; 4]>::try_from(bytes.as_slice()).ok())
                    .map(u32::from_be_bytes);
                let event = AliasEvent {
                    model: name.to_string(),
                    alias: alias.to_string(),
                    seq,
                    at: now(),
                    from,
                    to,
                    reason: reason.to_string(),
                    actor,
                    rollback,
                };
                let writes = vec![
                    match to {
                        Some(to) => Write::Put(
                            Tree::Aliases,
                            alias_key(name, alias),
                            to.to_be_bytes().to_vec(),
                        ),
                        None => Write::Delete(Tree::Aliases, alias_key(name, alias)),
                    },
                    Write::Put(Tree::Events, event_key(name, seq), Self::encode(&event)),
                    // What a server sharing the store compares to notice the move.
                    Write::Put(
                        Tree::Meta,
                        ALIAS_STAMP.as_bytes().to_vec(),
                        format!("{seq}@{name}@{}", now_nanos()).into_bytes(),
                    ),
                ];
                Ok::<_, StoreError>((event, writes))
            })?;
        match self.postgres() {
            // Serving replicas follow moves through the notification; the stamp file is for
            // servers on the same machine as a sled store.
            Some(pg) => {
                if let Err(err) = pg.notify(
                    super::postgres::channel::ALIASES,
                    &format!("{name}@{alias}"),
                ) {
                    tracing::warn!(error = %err, "cannot announce an alias move");
                }
            }
            None => self.stamp_aliases(),
        }
        Ok(event)
    }

    /// The content of the alias stamp file: it changes whenever an alias moves, so a process
    /// serving models (which does not keep the store open) notices a promotion by reading one
    /// small file instead of opening the database.
    pub fn alias_stamp(dir: &std::path::Path) -> Option<String> {
        std::fs::read_to_string(dir.join(ALIAS_STAMP)).ok()
    }

    /// What changes whenever an alias moves: the stamp file beside a sled store, a record of
    /// a shared one.
    pub fn alias_version(&self) -> Option<String> {
        match self.postgres() {
            Some(_) => self
                .get(Tree::Meta, ALIAS_STAMP.as_bytes())
                .ok()
                .flatten()
                .map(|bytes| String::from_utf8_lossy(&bytes).into_owned()),
            None => Store::alias_stamp(self.dir()),
        }
    }

    /// Rewrites the alias stamp (best effort: a server that misses it still has its reload
    /// endpoint, and the alias move itself is already durable).
    fn stamp_aliases(&self) {
        let stamp = format!("{} {}\n", std::process::id(), now_nanos());
        let temporary = self
            .dir()
            .join(format!("{ALIAS_STAMP}.{}", std::process::id()));
        if std::fs::write(&temporary, stamp).is_ok()
            && std::fs::rename(&temporary, self.dir().join(ALIAS_STAMP)).is_err()
        {
            let _ = std::fs::remove_file(&temporary);
        }
    }

    /// Returns `alias` to the version it had before its current one was given to it (skipping
    /// earlier rollbacks, so rolling back twice walks back two promotions).
    pub fn rollback(
        &self,
        name: &str,
        alias: &str,
        reason: &str,
        actor: Actor,
    ) -> Result<AliasEvent, StoreError> {
        let current = self.alias(name, alias)?.ok_or_else(|| {
            StoreError::NotFound(format!("model `{name}` has no alias `{alias}`"))
        })?;
        let history = self.alias_history(name, Some(alias))?;
        let previous = history
            .iter()
            .rev()
            .find(|event| !event.rollback && event.to == Some(current))
            .and_then(|event| event.from)
            .ok_or_else(|| {
                StoreError::Invalid(format!(
                    "`{name}@{alias}` has no earlier version to roll back to (it points at v{current}, its first)"
                ))
            })?;
        self.move_alias(name, alias, previous, reason, actor, true)
    }
}
