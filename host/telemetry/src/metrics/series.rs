//! Label values and the bounded maps that hold a metric's series: how cardinality stays
//! bounded (a capped number of distinct open-set label values per family, the rest folded into
//! `other` with one warning) and how the hot path stays cheap (one map lookup by `&str` finds
//! every series a request adds to; no allocation once a series exists).

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use prometheus_client::encoding::{EncodeLabelValue, LabelValueEncoder};

use crate::names::OTHER;

/// A label value: a static one (closed sets: outcomes, classes, token types) or a shared one
/// (open sets: routes, targets, keys, tools), cloned by reference count, never copied.
#[derive(Debug, Clone)]
pub(crate) enum Value {
    Static(&'static str),
    Shared(Arc<str>),
}

impl Value {
    pub(crate) fn as_str(&self) -> &str {
        match self {
            Value::Static(s) => s,
            Value::Shared(s) => s,
        }
    }
}

impl PartialEq for Value {
    fn eq(&self, other: &Value) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Value {}

impl Hash for Value {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl EncodeLabelValue for Value {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        EncodeLabelValue::encode(&self.as_str(), encoder)
    }
}

/// A label set: label keys (Prometheus form) with their values.
pub(crate) type Labels<const N: usize> = [(&'static str, Value); N];

/// Entries by their first value, then their second.
type Pairs<T> = HashMap<Arc<str>, HashMap<Arc<str>, Arc<T>>>;

/// The series of one pair of open-set label values (route × target, key × route, tool × ""),
/// at most `cap` pairs; past it every new pair shares one entry made for (`other`, `other`),
/// and one warning says which family reached its cap.
pub(crate) struct Bounded<T> {
    /// What it holds, for the warning (`"route × target"`).
    what: &'static str,
    cap: usize,
    pairs: RwLock<Pairs<T>>,
    len: AtomicUsize,
    other: RwLock<Option<Arc<T>>>,
    warned: AtomicBool,
}

impl<T> Bounded<T> {
    pub(crate) fn new(what: &'static str, cap: usize) -> Bounded<T> {
        Bounded {
            what,
            cap,
            pairs: RwLock::new(HashMap::new()),
            len: AtomicUsize::new(0),
            other: RwLock::new(None),
            warned: AtomicBool::new(false),
        }
    }

    /// The entry of (`a`, `b`), made by `make` on first use (with the values it will label
    /// its series with), or the shared `other` entry once the cap is reached.
    pub(crate) fn get(&self, a: &str, b: &str, make: impl FnOnce(Value, Value) -> T) -> Arc<T> {
        if let Some(found) = read(&self.pairs).get(a).and_then(|inner| inner.get(b)) {
            return Arc::clone(found);
        }
        let mut pairs = write(&self.pairs);
        if let Some(found) = pairs.get(a).and_then(|inner| inner.get(b)) {
            return Arc::clone(found);
        }
        if self.len.load(Ordering::Relaxed) >= self.cap {
            drop(pairs);
            return self.other(make);
        }
        // A value already held (a key seen on another route) is shared, not copied again.
        let a: Arc<str> = match pairs.get_key_value(a) {
            Some((held, _)) => Arc::clone(held),
            None => Arc::from(a),
        };
        let b: Arc<str> = Arc::from(b);
        let entry = Arc::new(make(
            Value::Shared(Arc::clone(&a)),
            Value::Shared(Arc::clone(&b)),
        ));
        pairs.entry(a).or_default().insert(b, Arc::clone(&entry));
        self.len.fetch_add(1, Ordering::Relaxed);
        entry
    }

    fn other(&self, make: impl FnOnce(Value, Value) -> T) -> Arc<T> {
        if !self.warned.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                family = self.what,
                cap = self.cap,
                "metrics: a label family reached [metrics] max_series_per_metric; new values \
                 are counted under \"other\""
            );
        }
        if let Some(other) = &*read(&self.other) {
            return Arc::clone(other);
        }
        let mut other = write(&self.other);
        Arc::clone(
            other.get_or_insert_with(|| Arc::new(make(Value::Static(OTHER), Value::Static(OTHER)))),
        )
    }

    /// Distinct pairs held (the `other` entry not counted).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }
}

/// A writer that panicked cannot have left the map half-changed (one insert), so a poisoned
/// lock is still good to read.
fn read<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn past_the_cap_new_pairs_share_the_other_entry() {
        let bounded: Bounded<(String, String)> = Bounded::new("test", 2);
        let make = |a: Value, b: Value| (a.as_str().to_owned(), b.as_str().to_owned());
        let first = bounded.get("r1", "t1", make);
        assert_eq!(*first, ("r1".to_owned(), "t1".to_owned()));
        assert!(Arc::ptr_eq(&first, &bounded.get("r1", "t1", make)));
        bounded.get("r1", "t2", make);
        let folded = bounded.get("r2", "t1", make);
        assert_eq!(*folded, (OTHER.to_owned(), OTHER.to_owned()));
        assert!(Arc::ptr_eq(&folded, &bounded.get("r3", "t9", make)));
        // Known pairs keep their own entries.
        assert_eq!(bounded.get("r1", "t2", make).1, "t2");
        assert_eq!(bounded.len(), 2);
    }

    #[test]
    fn static_and_shared_values_of_one_text_are_one_label_value() {
        let a = Value::Static("x");
        let b = Value::Shared(Arc::from("x"));
        assert_eq!(a, b);
        let hash = |v: &Value| {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            v.hash(&mut h);
            h.finish()
        };
        assert_eq!(hash(&a), hash(&b));
    }
}
