//! The registry: every profile of a directory, loaded and validated once at startup, shared
//! as `Arc<Profile>`, replaced as a whole on reload.

use keyway_diagnostics::{Diagnostic, Severity};
use keyway_manifest::model::Profile;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

/// Validated profiles by id. Immutable: a reload builds a new registry, so a registry in use
/// never changes under its readers.
#[derive(Debug)]
pub struct Registry {
    root: PathBuf,
    profiles: HashMap<String, Arc<Profile>>,
    warnings: Vec<Diagnostic>,
}

/// Loading found errors. Every diagnostic of the load is here, errors and warnings together,
/// located in their files.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{} error(s) in the profiles under {}", self.error_count(), .root.display())]
pub struct LoadError {
    /// The directory or file loaded.
    pub root: PathBuf,
    /// All diagnostics, in source order.
    pub diagnostics: Vec<Diagnostic>,
}

impl LoadError {
    /// How many diagnostics are errors.
    pub fn error_count(&self) -> usize {
        self.diagnostics.iter().filter(|d| d.severity == Severity::Error).count()
    }
}

impl Registry {
    /// Loads and validates every profile under `root` (a directory or a file). Fails when
    /// any diagnostic is an error; warnings are kept in [`Registry::warnings`].
    pub fn load(root: impl AsRef<Path>) -> Result<Registry, LoadError> {
        let root = root.as_ref().to_path_buf();
        let loaded = keyway_validate::validate_paths(&[&root]);
        if loaded.has_errors() {
            return Err(LoadError { root, diagnostics: loaded.diagnostics });
        }
        let profiles = loaded.profiles.into_iter().map(|p| (p.profile.id.clone(), Arc::new(p.profile))).collect();
        Ok(Registry { root, profiles, warnings: loaded.diagnostics })
    }

    /// Loads the same root again into a new registry; this one is untouched.
    pub fn reload(&self) -> Result<Registry, LoadError> {
        Registry::load(&self.root)
    }

    /// The profile with this id.
    pub fn get(&self, id: &str) -> Option<Arc<Profile>> {
        self.profiles.get(id).cloned()
    }

    /// Profile ids, sorted.
    pub fn ids(&self) -> Vec<&str> {
        let mut ids: Vec<&str> = self.profiles.keys().map(String::as_str).collect();
        ids.sort_unstable();
        ids
    }

    /// How many profiles there are.
    pub fn len(&self) -> usize {
        self.profiles.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.profiles.is_empty()
    }

    /// The warnings of the load.
    pub fn warnings(&self) -> &[Diagnostic] {
        &self.warnings
    }

    /// The directory or file it was loaded from.
    pub fn root(&self) -> &Path {
        &self.root
    }
}

/// A registry that can be swapped for a reloaded one while readers keep the one they hold.
#[derive(Debug)]
pub struct SharedRegistry {
    current: RwLock<Arc<Registry>>,
}

impl SharedRegistry {
    /// Wraps a loaded registry.
    pub fn new(registry: Registry) -> SharedRegistry {
        SharedRegistry { current: RwLock::new(Arc::new(registry)) }
    }

    /// The registry in use now.
    pub fn current(&self) -> Arc<Registry> {
        self.current.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// Loads from disk again; on success the new registry replaces the current one for new
    /// readers, on failure nothing changes.
    pub fn reload(&self) -> Result<Arc<Registry>, LoadError> {
        let fresh = Arc::new(self.current().reload()?);
        *self.current.write().unwrap_or_else(std::sync::PoisonError::into_inner) = fresh.clone();
        Ok(fresh)
    }
}
