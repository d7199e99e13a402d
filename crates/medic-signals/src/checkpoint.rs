//! Where file sources keep their read positions across restarts. The agent implements
//! [`CheckpointStore`] with its store (the `kv` table); the state is the JSON of
//! [`crate::tail::TailerState`], one value per source.

use std::collections::HashMap;
use std::sync::Mutex;

/// Persistence for per-source checkpoint state (opaque JSON text).
pub trait CheckpointStore: Send + Sync {
    fn load(&self, source: &str) -> Option<String>;
    fn save(&self, source: &str, state: &str);
}

/// The key a store-backed implementation should use for `source` (one namespace for all
/// sources, so they never collide with other `kv` users).
pub fn kv_key(source: &str) -> String {
    format!("signals.checkpoint.{source}")
}

/// Adapts two closures (e.g. over `Store::kv_get`/`kv_set`) to a [`CheckpointStore`].
pub struct FnCheckpointStore<L, S> {
    load: L,
    save: S,
}

impl<L, S> FnCheckpointStore<L, S>
where
    L: Fn(&str) -> Option<String> + Send + Sync,
    S: Fn(&str, &str) + Send + Sync,
{
    pub fn new(load: L, save: S) -> Self {
        FnCheckpointStore { load, save }
    }
}

impl<L, S> CheckpointStore for FnCheckpointStore<L, S>
where
    L: Fn(&str) -> Option<String> + Send + Sync,
    S: Fn(&str, &str) + Send + Sync,
{
    fn load(&self, source: &str) -> Option<String> {
        (self.load)(source)
    }
    fn save(&self, source: &str, state: &str) {
        (self.save)(source, state)
    }
}

/// Checkpoints in memory: for one process's lifetime (tests, `medic run` without a store).
#[derive(Debug, Default)]
pub struct MemoryCheckpointStore {
    states: Mutex<HashMap<String, String>>,
}

impl CheckpointStore for MemoryCheckpointStore {
    fn load(&self, source: &str) -> Option<String> {
        self.states.lock().ok().and_then(|m| m.get(source).cloned())
    }
    fn save(&self, source: &str, state: &str) {
        if let Ok(mut m) = self.states.lock() {
            m.insert(source.to_string(), state.to_string());
        }
    }
}
