//! Every target's shared [`Health`], by label (`provider/model`).
//!
//! Health is a fact about a target, not about a route or a config: a provider's 429 or outage
//! holds whichever alias reached it, and it must outlive the served state it was learnt under
//! (a config reload or plugin swap builds new routes over the same registry, so a breaker that
//! opened a second ago stays open). The registry is therefore owned by whoever outlives the
//! swaps (the server's service) and handed to each state it builds.
//!
//! It is bounded: targets named by the config are always remembered, but `provider/model`
//! names a client invents are remembered only up to [`HealthRegistry::capacity`]; past it a new
//! name gets a fresh, unshared health, so a client cannot grow the map without bound.
//!
//! It is bounded in bytes too, because each entry is: a label (the server caps the model names
//! a client may send at 256 bytes, so an invented label is at most that), a [`Health`] of fixed
//! size (~224 bytes) and its last error, cut at
//! [`MAX_LAST_ERROR_BYTES`](crate::health::MAX_LAST_ERROR_BYTES). With the gateway's
//! capacity of 8,192 invented targets that is at most ~1.6 KiB × 8,192 ≈ 13 MiB, whatever
//! clients name or upstreams answer.

use std::collections::HashMap;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::health::{Health, HealthSettings};

/// The shared health of every target, by label.
#[derive(Debug)]
pub struct HealthRegistry {
    settings: Arc<HealthSettings>,
    targets: RwLock<HashMap<Arc<str>, Arc<Health>>>,
    capacity: usize,
}

impl HealthRegistry {
    /// A registry remembering at most `capacity` targets; each new target's health uses
    /// `settings`.
    pub fn new(settings: HealthSettings, capacity: usize) -> HealthRegistry {
        HealthRegistry {
            settings: Arc::new(settings),
            targets: RwLock::new(HashMap::new()),
            capacity,
        }
    }

    pub fn settings(&self) -> &HealthSettings {
        &self.settings
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// The health of `label`, made on first use. Past the capacity an unknown label gets a
    /// health of its own that nobody else shares (and that is forgotten with its route).
    pub fn health_of(&self, label: &str) -> Arc<Health> {
        if let Some(health) = read(&self.targets).get(label) {
            return Arc::clone(health);
        }
        let mut targets = write(&self.targets);
        if let Some(health) = targets.get(label) {
            return Arc::clone(health);
        }
        let health = Arc::new(Health::new(Arc::clone(&self.settings)));
        if targets.len() < self.capacity {
            targets.insert(Arc::from(label), Arc::clone(&health));
        }
        health
    }

    /// The health of a target the config names: always remembered, whatever the capacity
    /// (the config's targets are bounded by the config itself).
    pub fn configured(&self, label: &str) -> Arc<Health> {
        let mut targets = write(&self.targets);
        Arc::clone(
            targets
                .entry(Arc::from(label))
                .or_insert_with(|| Arc::new(Health::new(Arc::clone(&self.settings)))),
        )
    }

    /// Every remembered target, sorted by label.
    pub fn all(&self) -> Vec<(Arc<str>, Arc<Health>)> {
        let mut all: Vec<(Arc<str>, Arc<Health>)> = read(&self.targets)
            .iter()
            .map(|(label, health)| (Arc::clone(label), Arc::clone(health)))
            .collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }

    pub fn len(&self) -> usize {
        read(&self.targets).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A writer that panicked cannot have left the map half-changed (one insert), so a poisoned
/// lock is still good to read.
fn read<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    match lock.read() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}

fn write<T>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    match lock.write() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Failure, FailureClass};

    #[tokio::test(start_paused = true)]
    async fn one_label_has_one_health_shared_by_every_caller() {
        let registry = HealthRegistry::new(HealthSettings::default(), 8);
        let a = registry.health_of("groq/llama");
        let b = registry.configured("groq/llama");
        assert!(Arc::ptr_eq(&a, &b));
        a.record_failure(&Failure::new(FailureClass::Unavailable, "down"), 0.0);
        assert_eq!(b.snapshot().consecutive_failures, 1);
        assert_eq!(registry.all().len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn past_its_capacity_a_new_label_is_not_remembered_but_configured_ones_are() {
        let registry = HealthRegistry::new(HealthSettings::default(), 2);
        registry.health_of("p/a");
        registry.health_of("p/b");
        let c1 = registry.health_of("p/c");
        let c2 = registry.health_of("p/c");
        assert!(
            !Arc::ptr_eq(&c1, &c2),
            "an unremembered label shares nothing"
        );
        assert_eq!(registry.len(), 2);
        registry.configured("p/configured");
        assert_eq!(registry.len(), 3);
        let labels: Vec<String> = registry.all().iter().map(|(l, _)| l.to_string()).collect();
        assert_eq!(labels, ["p/a", "p/b", "p/configured"]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_remembered_target_costs_a_bounded_number_of_bytes() {
        use crate::health::MAX_LAST_ERROR_BYTES;
        // The figure the module documents: a fixed-size health plus a capped last error.
        assert!(std::mem::size_of::<Health>() <= 256);
        let registry = HealthRegistry::new(HealthSettings::default(), 4);
        let label = format!("p/{}", "m".repeat(254));
        let health = registry.health_of(&label);
        let huge = "x".repeat(8 << 20);
        health.record_failure(&Failure::new(FailureClass::Unavailable, huge), 0.0);
        let kept = health.snapshot().last_error.map(|(_, text)| text.len());
        assert!(
            kept.is_some_and(|len| len <= MAX_LAST_ERROR_BYTES),
            "{kept:?}"
        );
    }
}
