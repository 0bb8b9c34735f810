//! The keys in the store (migration 5's `keys` table): create (the secret is returned once and
//! only its hash is kept), get, list in pages, update (PATCH: the fields given replace the
//! stored ones, `null` clears one), revoke (the record stays, for usage and audit) and rotate (a
//! new secret under the same id; the old one stops at once, or after a grace period). Every
//! change bumps `key_changes.serial` in the same write, which is how every process's
//! [`crate::Directory`] learns that it must reload.

use std::fmt::Write as _;

use aigw_memory::{Connection, Row, Store, StoreError};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::key::{Key, KeySpec};
use crate::secret::{self, SecretHash};

/// The most keys one page lists.
pub const MAX_PAGE: usize = 100;

/// Why a key operation was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum KeyError {
    /// No key has this id.
    #[error("no key with the id `{0}`")]
    NotFound(String),
    /// The request is wrong: `param` names the field at fault.
    #[error("{message}")]
    Invalid { param: String, message: String },
    /// The key was revoked: it cannot be rotated back to life.
    #[error("the key `{0}` is revoked; create a new key instead")]
    Revoked(String),
    /// No team has this id.
    #[error("no team with the id `{0}`")]
    TeamNotFound(String),
    /// The team still has keys that are not revoked.
    #[error("the team `{0}` still has keys; revoke them or move them to another team first")]
    TeamInUse(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A key just made or rotated, with its secret: the only time the secret exists outside the
/// client that holds it.
#[derive(Debug, Clone)]
pub struct NewKey {
    pub key: Key,
    pub secret: String,
}

/// Which page of keys to list: those created after the key `after`, at most `limit`.
#[derive(Debug, Clone, Default)]
pub struct Page {
    pub after: Option<String>,
    pub limit: usize,
}

/// One page of keys, oldest first.
#[derive(Debug, Clone)]
pub struct KeyPage {
    pub keys: Vec<Key>,
    pub has_more: bool,
}

/// A spec from a JSON object (the admin API's body), checked field by field so an error names
/// the field at fault (serde's own error for a whole struct names no field for a wrong type).
pub fn spec_from_json(body: &Map<String, Value>) -> Result<KeySpec, KeyError> {
    let spec: KeySpec = fields(body)?;
    spec.validate()
        .map_err(|(param, message)| KeyError::Invalid {
            param: param.to_owned(),
            message,
        })?;
    // A namespace named exactly must be one the memory accepts, or the key could never use it.
    for name in spec.namespaces.iter().flatten().filter_map(|p| p.exact()) {
        if let Err(e) = aigw_memory::Namespace::parse(name) {
            return Err(KeyError::Invalid {
                param: "namespaces".into(),
                message: format!("`namespaces`: `{name}`: {e}"),
            });
        }
    }
    Ok(spec)
}

/// A spec type from a JSON object, one field at a time first, so the error names its field.
pub(crate) fn fields<T: DeserializeOwned>(body: &Map<String, Value>) -> Result<T, KeyError> {
    for (field, value) in body {
        let mut one = Map::new();
        one.insert(field.clone(), value.clone());
        if let Err(e) = serde_json::from_value::<T>(Value::Object(one)) {
            return Err(KeyError::Invalid {
                param: field.clone(),
                message: format!("`{field}`: {e}"),
            });
        }
    }
    serde_json::from_value(Value::Object(body.clone())).map_err(|e| KeyError::Invalid {
        param: String::new(),
        message: e.to_string(),
    })
}

/// `spec` with the fields of `patch` applied: a field given replaces the stored one, `null`
/// clears it, a field not given stays.
pub fn patched(spec: &KeySpec, patch: &Map<String, Value>) -> Result<KeySpec, KeyError> {
    // Unknown fields in the patch are caught here, named.
    spec_from_json(&merged(spec, patch))
}

/// The fields of `current` (a spec) with `patch` applied.
pub(crate) fn merged(
    current: &impl serde::Serialize,
    patch: &Map<String, Value>,
) -> Map<String, Value> {
    let mut fields = match serde_json::to_value(current) {
        Ok(Value::Object(fields)) => fields,
        _ => Map::new(),
    };
    for (field, value) in patch {
        if value.is_null() {
            fields.remove(field);
        } else {
            fields.insert(field.clone(), value.clone());
        }
    }
    fields
}

/// Whether the team a spec names exists (checked in the write that stores the spec).
async fn team_exists(c: &Connection, spec: &KeySpec) -> Result<Result<(), KeyError>, StoreError> {
    let Some(team) = &spec.team else {
        return Ok(Ok(()));
    };
    let mut rows = c
        .query("SELECT 1 FROM teams WHERE id = ?1", [team.as_str()])
        .await?;
    Ok(match rows.next().await? {
        Some(_) => Ok(()),
        None => Err(KeyError::Invalid {
            param: "team".into(),
            message: format!(
                "`team`: no team with the id `{team}` (make it with POST /admin/teams)"
            ),
        }),
    })
}

/// Makes a key with `spec`; returns it with its secret.
pub async fn create(store: &Store, spec: KeySpec) -> Result<NewKey, KeyError> {
    spec.validate()
        .map_err(|(param, message)| KeyError::Invalid {
            param: param.to_owned(),
            message,
        })?;
    let secret = secret::new_secret();
    let now = store.now_ms();
    let key = Key {
        id: new_id(),
        hint: secret::hint(&secret),
        spec,
        created_at: now,
        updated_at: now,
        revoked_at: None,
        team: None,
    };
    let hash = SecretHash::of(&secret).as_bytes().to_vec();
    let spec_json = spec_json(&key.spec)?;
    let written = key.clone();
    store
        .write(move |c| {
            Box::pin(async move {
                if let Err(e) = team_exists(c, &written.spec).await? {
                    return Ok(Err(e));
                }
                c.execute(
                    "INSERT INTO keys (id, hash, hint, spec, created_at, updated_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    (
                        written.id.as_str(),
                        hash,
                        written.hint.as_str(),
                        spec_json,
                        written.created_at,
                        written.updated_at,
                    ),
                )
                .await?;
                bump(c).await?;
                Ok(Ok(()))
            })
        })
        .await??;
    Ok(NewKey { key, secret })
}

/// The key `id`, revoked or not.
pub async fn get(store: &Store, id: &str) -> Result<Key, KeyError> {
    let owned = id.to_owned();
    store
        .read(move |c| Box::pin(async move { find(c, &owned).await }))
        .await?
        .ok_or_else(|| KeyError::NotFound(id.to_owned()))
}

/// One page of keys (revoked ones included), in the order they were made.
pub async fn list(store: &Store, page: Page) -> Result<KeyPage, KeyError> {
    let (keys, has_more) = listed(store, "keys", COLUMNS, key_of, page, "key").await?;
    Ok(KeyPage { keys, has_more })
}

/// One page of the rows of `table` (keys or teams) in the order they were made, read by `of`
/// from `columns`, and whether more follow; `noun` names what `after` must name.
pub(crate) async fn listed<T: Send + 'static>(
    store: &Store,
    table: &'static str,
    columns: &'static str,
    of: fn(&Row) -> Result<T, StoreError>,
    page: Page,
    noun: &'static str,
) -> Result<(Vec<T>, bool), KeyError> {
    let limit = page.limit.clamp(1, MAX_PAGE);
    let listed = store
        .read(move |c| {
            Box::pin(async move {
                let after = match &page.after {
                    None => 0,
                    Some(after) => {
                        let mut rows = c
                            .query(
                                &format!("SELECT rowid FROM {table} WHERE id = ?1"),
                                [after.as_str()],
                            )
                            .await?;
                        match rows.next().await? {
                            Some(row) => row.get::<i64>(0)?,
                            None => return Ok(None),
                        }
                    }
                };
                let mut rows = c
                    .query(
                        &format!(
                            "SELECT {columns} FROM {table} WHERE rowid > ?1 ORDER BY rowid LIMIT ?2"
                        ),
                        (after, limit as i64 + 1),
                    )
                    .await?;
                let mut found = Vec::with_capacity(limit + 1);
                while let Some(row) = rows.next().await? {
                    found.push(of(&row)?);
                }
                Ok(Some(found))
            })
        })
        .await?;
    let Some(mut found) = listed else {
        return Err(KeyError::Invalid {
            param: "after".into(),
            message: format!("`after` names no {noun}"),
        });
    };
    let has_more = found.len() > limit;
    found.truncate(limit);
    Ok((found, has_more))
}

/// Applies `patch` (PATCH semantics, see [`patched`]) to the key `id`; returns it as it now is.
pub async fn update(store: &Store, id: &str, patch: Map<String, Value>) -> Result<Key, KeyError> {
    let owned = id.to_owned();
    let now = store.now_ms();
    store
        .write(move |c| {
            Box::pin(async move {
                let Some(mut key) = find(c, &owned).await? else {
                    return Ok(Err(KeyError::NotFound(owned)));
                };
                key.spec = match patched(&key.spec, &patch) {
                    Ok(spec) => spec,
                    Err(e) => return Ok(Err(e)),
                };
                if let Err(e) = team_exists(c, &key.spec).await? {
                    return Ok(Err(e));
                }
                key.updated_at = now;
                let spec = match spec_json(&key.spec) {
                    Ok(spec) => spec,
                    Err(e) => return Ok(Err(e)),
                };
                c.execute(
                    "UPDATE keys SET spec = ?1, updated_at = ?2 WHERE id = ?3",
                    (spec, now, key.id.as_str()),
                )
                .await?;
                bump(c).await?;
                Ok(Ok(key))
            })
        })
        .await?
}

/// Revokes the key `id` (at once, for good); the record stays. Revoking a revoked key changes
/// nothing and answers the record.
pub async fn revoke(store: &Store, id: &str) -> Result<Key, KeyError> {
    let owned = id.to_owned();
    let now = store.now_ms();
    store
        .write(move |c| {
            Box::pin(async move {
                let Some(mut key) = find(c, &owned).await? else {
                    return Ok(None);
                };
                if key.revoked_at.is_none() {
                    c.execute(
                        "UPDATE keys SET revoked_at = ?1, updated_at = ?1,
                             previous_hash = NULL, previous_until = NULL
                         WHERE id = ?2",
                        (now, key.id.as_str()),
                    )
                    .await?;
                    bump(c).await?;
                    key.revoked_at = Some(now);
                    key.updated_at = now;
                }
                Ok(Some(key))
            })
        })
        .await?
        .ok_or_else(|| KeyError::NotFound(id.to_owned()))
}

/// Gives the key `id` a new secret. The old one stops working at once, or, with
/// `grace_seconds`, that many seconds from now (so clients can move over without a gap).
pub async fn rotate(
    store: &Store,
    id: &str,
    grace_seconds: Option<u64>,
) -> Result<NewKey, KeyError> {
    let secret = secret::new_secret();
    let hint = secret::hint(&secret);
    let hash = SecretHash::of(&secret).as_bytes().to_vec();
    let owned = id.to_owned();
    let now = store.now_ms();
    let until = grace_seconds
        .filter(|s| *s > 0)
        .map(|s| now.saturating_add(i64::try_from(s.saturating_mul(1000)).unwrap_or(i64::MAX)));
    let key = store
        .write(move |c| {
            Box::pin(async move {
                let Some(mut key) = find(c, &owned).await? else {
                    return Ok(Err(KeyError::NotFound(owned)));
                };
                if key.revoked_at.is_some() {
                    return Ok(Err(KeyError::Revoked(owned)));
                }
                // The old hash is kept only for a grace period; without one it is gone here.
                c.execute(
                    "UPDATE keys SET previous_hash = CASE WHEN ?1 IS NULL THEN NULL ELSE hash END,
                         previous_until = ?1, hash = ?2, hint = ?3, updated_at = ?4
                     WHERE id = ?5",
                    (until, hash, hint.as_str(), now, key.id.as_str()),
                )
                .await?;
                bump(c).await?;
                key.hint = hint;
                key.updated_at = now;
                Ok(Ok(key))
            })
        })
        .await??;
    Ok(NewKey { key, secret })
}

/// The columns [`key_of`] reads, in its order.
pub(crate) const COLUMNS: &str = "id, hint, spec, created_at, updated_at, revoked_at";

/// A key from a row of [`COLUMNS`].
pub(crate) fn key_of(row: &Row) -> Result<Key, StoreError> {
    let spec: String = row.get(2)?;
    let spec = serde_json::from_str(&spec)
        .map_err(|e| StoreError::Sql(format!("a stored key's spec is not readable: {e}")))?;
    Ok(Key {
        id: row.get(0)?,
        hint: row.get(1)?,
        spec,
        created_at: row.get(3)?,
        updated_at: row.get(4)?,
        revoked_at: row.get(5)?,
        team: None,
    })
}

/// The current change serial.
pub(crate) async fn serial(c: &Connection) -> Result<i64, StoreError> {
    let mut rows = c
        .query("SELECT serial FROM key_changes WHERE id = 1", ())
        .await?;
    match rows.next().await? {
        Some(row) => Ok(row.get(0)?),
        None => Ok(0),
    }
}

/// Marks a change to the keys, in the write that makes it.
pub(crate) async fn bump(c: &Connection) -> Result<(), StoreError> {
    c.execute(
        "UPDATE key_changes SET serial = serial + 1 WHERE id = 1",
        (),
    )
    .await?;
    Ok(())
}

async fn find(c: &Connection, id: &str) -> Result<Option<Key>, StoreError> {
    let mut rows = c
        .query(&format!("SELECT {COLUMNS} FROM keys WHERE id = ?1"), [id])
        .await?;
    match rows.next().await? {
        Some(row) => Ok(Some(key_of(&row)?)),
        None => Ok(None),
    }
}

fn spec_json(spec: &KeySpec) -> Result<String, KeyError> {
    serde_json::to_string(spec).map_err(|e| KeyError::Invalid {
        param: String::new(),
        message: format!("the key's spec cannot be stored: {e}"),
    })
}

/// `key_` and 24 random hex digits (96 bits: ids are not secrets, but must never collide).
fn new_id() -> String {
    prefixed_id("key_")
}

/// `prefix` and 24 random hex digits.
pub(crate) fn prefixed_id(prefix: &str) -> String {
    let bytes: [u8; 12] = rand::random();
    let mut id = String::with_capacity(prefix.len() + 24);
    id.push_str(prefix);
    for b in bytes {
        let _ = write!(id, "{b:02x}");
    }
    id
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use aigw_memory::StoreOptions;
    use serde_json::json;

    async fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(StoreOptions::new(dir.path().join("keys.db")))
            .await
            .unwrap();
        (dir, store)
    }

    fn object(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            _ => panic!("not an object"),
        }
    }

    async fn stored_serial(store: &Store) -> i64 {
        store
            .read(|c| Box::pin(async move { serial(c).await }))
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn create_get_list_update_revoke_and_every_change_bumps_the_serial() {
        let (_dir, store) = store().await;
        assert_eq!(stored_serial(&store).await, 0);
        let spec = spec_from_json(&object(json!({"name": "ci", "models": ["fast"]}))).unwrap();
        let made = create(&store, spec).await.unwrap();
        assert!(made.key.id.starts_with("key_") && made.key.id.len() == 28);
        assert!(made.key.id[4..].bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(made.key.hint, secret::hint(&made.secret));
        assert_eq!(stored_serial(&store).await, 1);

        let got = get(&store, &made.key.id).await.unwrap();
        assert_eq!(got, made.key);
        assert_eq!(
            get(&store, "key_000000000000000000000000")
                .await
                .unwrap_err(),
            KeyError::NotFound("key_000000000000000000000000".into())
        );

        // The secret is nowhere in the row, only its hash.
        let secret = made.secret.clone();
        let rows: Vec<String> = store
            .read(|c| {
                Box::pin(async move {
                    let mut rows = c.query("SELECT id, hint, spec FROM keys", ()).await?;
                    let mut all = Vec::new();
                    while let Some(row) = rows.next().await? {
                        for i in 0..3 {
                            all.push(row.get::<String>(i)?);
                        }
                    }
                    Ok(all)
                })
            })
            .await
            .unwrap();
        assert!(rows.iter().all(|v| !v.contains(&secret[8..])));

        let updated = update(
            &store,
            &made.key.id,
            object(json!({"name": null, "rpm_limit": 10})),
        )
        .await
        .unwrap();
        assert_eq!(updated.spec.name, None);
        assert_eq!(updated.spec.rpm_limit, Some(10));
        // Untouched fields stay.
        assert_eq!(updated.spec.models, made.key.spec.models);
        assert_eq!(stored_serial(&store).await, 2);
        let refused = update(&store, &made.key.id, object(json!({"rpm": 10})))
            .await
            .unwrap_err();
        assert!(matches!(refused, KeyError::Invalid { ref param, .. } if param == "rpm"));
        let refused = update(&store, &made.key.id, object(json!({"rpm_limit": "ten"})))
            .await
            .unwrap_err();
        assert!(matches!(refused, KeyError::Invalid { ref param, .. } if param == "rpm_limit"));
        let refused = update(&store, &made.key.id, object(json!({"rpm_limit": 0})))
            .await
            .unwrap_err();
        assert!(matches!(refused, KeyError::Invalid { ref param, .. } if param == "rpm_limit"));
        assert_eq!(
            stored_serial(&store).await,
            2,
            "refused updates change nothing"
        );

        let revoked = revoke(&store, &made.key.id).await.unwrap();
        assert!(revoked.revoked_at.is_some());
        assert_eq!(stored_serial(&store).await, 3);
        let again = revoke(&store, &made.key.id).await.unwrap();
        assert_eq!(again.revoked_at, revoked.revoked_at);
        assert_eq!(stored_serial(&store).await, 3);
        assert_eq!(
            rotate(&store, &made.key.id, None).await.unwrap_err(),
            KeyError::Revoked(made.key.id.clone())
        );
    }

    #[tokio::test]
    async fn lists_page_by_the_after_cursor() {
        let (_dir, store) = store().await;
        let mut ids = Vec::new();
        for _ in 0..5 {
            ids.push(create(&store, KeySpec::default()).await.unwrap().key.id);
        }
        let first = list(
            &store,
            Page {
                after: None,
                limit: 2,
            },
        )
        .await
        .unwrap();
        assert!(first.has_more);
        assert_eq!(
            first.keys.iter().map(|k| &k.id).collect::<Vec<_>>(),
            [&ids[0], &ids[1]]
        );
        let rest = list(
            &store,
            Page {
                after: Some(ids[1].clone()),
                limit: 10,
            },
        )
        .await
        .unwrap();
        assert!(!rest.has_more);
        assert_eq!(rest.keys.len(), 3);
        assert_eq!(rest.keys[2].id, ids[4]);
        let unknown = list(
            &store,
            Page {
                after: Some("key_x".into()),
                limit: 10,
            },
        )
        .await
        .unwrap_err();
        assert!(matches!(unknown, KeyError::Invalid { ref param, .. } if param == "after"));
    }

    #[tokio::test]
    async fn rotation_changes_the_secret_not_the_id() {
        let (_dir, store) = store().await;
        let made = create(&store, KeySpec::default()).await.unwrap();
        let rotated = rotate(&store, &made.key.id, None).await.unwrap();
        assert_eq!(rotated.key.id, made.key.id);
        assert_ne!(rotated.secret, made.secret);
        assert_eq!(rotated.key.hint, secret::hint(&rotated.secret));
        assert_eq!(
            get(&store, &made.key.id).await.unwrap().hint,
            rotated.key.hint
        );
        assert!(matches!(
            rotate(&store, "key_nope", None).await.unwrap_err(),
            KeyError::NotFound(_)
        ));
    }

    #[test]
    fn specs_from_json_name_the_field_at_fault() {
        let e = spec_from_json(&object(json!({"models": "fast"}))).unwrap_err();
        assert!(matches!(e, KeyError::Invalid { ref param, .. } if param == "models"));
        let e = spec_from_json(&object(json!({"budget_duration": "day"}))).unwrap_err();
        assert!(matches!(e, KeyError::Invalid { ref param, .. } if param == "budget_duration"));
        let e = spec_from_json(&object(json!({"namespaces": ["team-a", "a/b"]}))).unwrap_err();
        assert!(matches!(e, KeyError::Invalid { ref param, .. } if param == "namespaces"));
        let spec = spec_from_json(&object(json!({"metadata": {"team": "x"}}))).unwrap();
        assert_eq!(spec.metadata["team"], "x");
    }
}
