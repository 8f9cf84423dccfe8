//! Where the store's records live: sled on one machine (the default), or PostgreSQL shared by
//! many processes on many machines. Both are ordered maps of named trees of byte keys to byte
//! values, so [`super::Store`] keeps one implementation of its records over either.
//!
//! Two kinds of writes keep the guarantees the same on both:
//! - [`Backend::write`] applies a batch of puts and deletes atomically and durably (a sled
//!   transaction then a flush; one PostgreSQL transaction, committed);
//! - [`Backend::serialized`] runs a read-modify-write (allocating an id, numbering a version,
//!   checking a trigger's state before taking it) exclusively for its scope across every
//!   process sharing the store, then applies its batch. On sled the store's file lock already
//!   excludes other processes, so a mutex does; on PostgreSQL a transaction-level advisory lock.

use std::sync::Mutex;

use super::postgres::Postgres;

/// The trees (sled) or `tree` values (PostgreSQL) records are kept in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Tree {
    Runs,
    Steps,
    Logs,
    Cache,
    /// Runs in flight, valued by the process running them.
    Active,
    Versions,
    Aliases,
    Events,
    Triggers,
    /// Store-wide markers (the format version).
    Meta,
    /// A shared store's event log (runs started and ended, deployments moved...), by sequence.
    EventLog,
}

impl Tree {
    pub const ALL: [Tree; 11] = [
        Tree::Runs,
        Tree::Steps,
        Tree::Logs,
        Tree::Cache,
        Tree::Active,
        Tree::Versions,
        Tree::Aliases,
        Tree::Events,
        Tree::Triggers,
        Tree::Meta,
        Tree::EventLog,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Tree::Runs => "runs",
            Tree::Steps => "steps",
            Tree::Logs => "logs",
            Tree::Cache => "cache",
            Tree::Active => "active",
            Tree::Versions => "versions",
            Tree::Aliases => "aliases",
            Tree::Events => "events",
            Tree::Triggers => "triggers",
            Tree::Meta => "meta",
            Tree::EventLog => "eventlog",
        }
    }
}

/// One change of a batch.
#[derive(Clone, Debug)]
pub enum Write {
    Put(Tree, Vec<u8>, Vec<u8>),
    Delete(Tree, Vec<u8>),
}

/// A key and its value.
pub type Entry = (Vec<u8>, Vec<u8>);

/// Why the backend failed, as text for the store's error (which names the store).
pub type BackendResult<T> = Result<T, String>;

/// The records of one sled database.
pub struct Sled {
    pub db: sled::Db,
    trees: Vec<sled::Tree>,
    /// Serialises read-modify-writes within the process (the file lock excludes others).
    serial: Mutex<()>,
}

impl Sled {
    pub fn new(db: sled::Db) -> Result<Sled, (Tree, sled::Error)> {
        let mut trees = Vec::new();
        for tree in Tree::ALL {
            // The markers always lived in the default tree.
            let opened = match tree {
                Tree::Meta => Ok((*db).clone()),
                _ => db.open_tree(tree.name()),
            };
            trees.push(opened.map_err(|err| (tree, err))?);
        }
        Ok(Sled {
            db,
            trees,
            serial: Mutex::new(()),
        })
    }

    fn tree(&self, tree: Tree) -> &sled::Tree {
        &self.trees[Tree::ALL
            .iter()
            .position(|t| *t == tree)
            .expect("every tree is opened")]
    }

    fn apply(&self, writes: &[Write], flush: bool) -> BackendResult<()> {
        use sled::Transactional;
        let mut involved: Vec<Tree> = Vec::new();
        for write in writes {
            let (Write::Put(tree, ..) | Write::Delete(tree, _)) = write;
            if !involved.contains(tree) {
                involved.push(*tree);
            }
        }
        let trees: Vec<&sled::Tree> = involved.iter().map(|t| self.tree(*t)).collect();
        trees
            .as_slice()
            .transaction(|views| {
                for write in writes {
                    let (Write::Put(tree, ..) | Write::Delete(tree, _)) = write;
                    let view = &views[involved.iter().position(|t| t == tree).expect("involved")];
                    match write {
                        Write::Put(_, key, value) => {
                            view.insert(key.as_slice(), value.as_slice())?;
                        }
                        Write::Delete(_, key) => {
                            view.remove(key.as_slice())?;
                        }
                    }
                }
                Ok::<_, sled::transaction::ConflictableTransactionError<()>>(())
            })
            .map_err(|err| format!("{err:?}"))?;
        if flush {
            self.db.flush().map_err(|err| err.to_string())?;
        }
        Ok(())
    }
}

/// Reads inside [`Backend::serialized`].
pub enum Reader<'a> {
    Sled(&'a Sled),
    Postgres(super::postgres::Transaction<'a>),
}

impl Reader<'_> {
    pub fn get(&self, tree: Tree, key: &[u8]) -> BackendResult<Option<Vec<u8>>> {
        match self {
            Reader::Sled(sled) => sled
                .tree(tree)
                .get(key)
                .map(|v| v.map(|v| v.to_vec()))
                .map_err(|err| err.to_string()),
            Reader::Postgres(tx) => tx.get(tree, key),
        }
    }

    pub fn scan_prefix(&self, tree: Tree, prefix: &[u8]) -> BackendResult<Vec<Entry>> {
        match self {
            Reader::Sled(sled) => sled_scan(sled.tree(tree), prefix),
            Reader::Postgres(tx) => tx.scan_prefix(tree, prefix),
        }
    }

    /// The last entry whose key starts with `prefix`.
    pub fn last(&self, tree: Tree, prefix: &[u8]) -> BackendResult<Option<Entry>> {
        match self {
            Reader::Sled(sled) => sled_last(sled.tree(tree), prefix),
            Reader::Postgres(tx) => tx.last(tree, prefix),
        }
    }
}

fn sled_scan(tree: &sled::Tree, prefix: &[u8]) -> BackendResult<Vec<Entry>> {
    tree.scan_prefix(prefix)
        .map(|entry| {
            entry
                .map(|(k, v)| (k.to_vec(), v.to_vec()))
                .map_err(|err| err.to_string())
        })
        .collect()
}

fn sled_last(tree: &sled::Tree, prefix: &[u8]) -> BackendResult<Option<Entry>> {
    tree.scan_prefix(prefix)
        .next_back()
        .transpose()
        .map(|e| e.map(|(k, v)| (k.to_vec(), v.to_vec())))
        .map_err(|err| err.to_string())
}

/// The database under a store.
pub enum Backend {
    Sled(Sled),
    Postgres(Postgres),
}

impl Backend {
    pub fn get(&self, tree: Tree, key: &[u8]) -> BackendResult<Option<Vec<u8>>> {
        match self {
            Backend::Sled(sled) => Reader::Sled(sled).get(tree, key),
            Backend::Postgres(pg) => pg.get(tree, key),
        }
    }

    pub fn scan_prefix(&self, tree: Tree, prefix: &[u8]) -> BackendResult<Vec<Entry>> {
        match self {
            Backend::Sled(sled) => sled_scan(sled.tree(tree), prefix),
            Backend::Postgres(pg) => pg.scan_prefix(tree, prefix),
        }
    }

    pub fn last(&self, tree: Tree, prefix: &[u8]) -> BackendResult<Option<Entry>> {
        match self {
            Backend::Sled(sled) => sled_last(sled.tree(tree), prefix),
            Backend::Postgres(pg) => pg.last(tree, prefix),
        }
    }

    /// Visits a tree's entries from the last key down, until `visit` returns `false`; entries
    /// are read a page at a time, so a listing that stops early reads little.
    pub fn scan_back(
        &self,
        tree: Tree,
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> BackendResult<()> {
        match self {
            Backend::Sled(sled) => {
                for entry in sled.tree(tree).iter().rev() {
                    let (key, value) = entry.map_err(|err| err.to_string())?;
                    if !visit(&key, &value) {
                        break;
                    }
                }
                Ok(())
            }
            Backend::Postgres(pg) => pg.scan_back(tree, visit),
        }
    }

    pub fn len(&self, tree: Tree) -> BackendResult<usize> {
        match self {
            Backend::Sled(sled) => Ok(sled.tree(tree).len()),
            Backend::Postgres(pg) => pg.len(tree),
        }
    }

    /// Applies `writes` atomically and durably.
    pub fn write(&self, writes: Vec<Write>) -> BackendResult<()> {
        self.write_with(writes, true)
    }

    /// Applies `writes` atomically; durably now, or (sled only) with the next durable write,
    /// for records a crash may lose because a later write supersedes them anyway (a step's
    /// "started" record before its end). PostgreSQL commits every write.
    pub fn write_lazily(&self, writes: Vec<Write>) -> BackendResult<()> {
        self.write_with(writes, false)
    }

    fn write_with(&self, writes: Vec<Write>, flush: bool) -> BackendResult<()> {
        if writes.is_empty() {
            return Ok(());
        }
        match self {
            Backend::Sled(sled) => sled.apply(&writes, flush),
            Backend::Postgres(pg) => pg.write(writes),
        }
    }

    /// Runs `work` alone among every process's work of the same `scope`, then applies the
    /// writes it returns with its reads' guarantees intact.
    pub fn serialized<T, E>(
        &self,
        scope: &str,
        db_error: impl Fn(String) -> E,
        work: impl FnOnce(&Reader) -> Result<(T, Vec<Write>), E>,
    ) -> Result<T, E> {
        match self {
            Backend::Sled(sled) => {
                let _guard = sled.serial.lock().unwrap_or_else(|e| e.into_inner());
                let (value, writes) = work(&Reader::Sled(sled))?;
                if !writes.is_empty() {
                    sled.apply(&writes, true).map_err(db_error)?;
                }
                Ok(value)
            }
            Backend::Postgres(pg) => {
                pg.serialized(scope, db_error, |tx| work(&Reader::Postgres(tx)))
            }
        }
    }

    /// Bytes of keys and values in `trees`.
    pub fn record_bytes(&self, trees: &[Tree]) -> u64 {
        match self {
            Backend::Sled(sled) => trees
                .iter()
                .flat_map(|t| sled.tree(*t).iter().flatten())
                .map(|(k, v)| (k.len() + v.len()) as u64)
                .sum(),
            Backend::Postgres(pg) => pg.record_bytes(trees).unwrap_or(0),
        }
    }

    /// The database's size on disk.
    pub fn size_on_disk(&self) -> u64 {
        match self {
            Backend::Sled(sled) => sled.db.size_on_disk().unwrap_or(0),
            Backend::Postgres(pg) => pg.size_on_disk().unwrap_or(0),
        }
    }
}
