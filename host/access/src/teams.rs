//! The teams in the store (migration 5's `teams` table): create, get, list in pages, update
//! (PATCH semantics, as for keys) and delete (refused while a key that is not revoked names the
//! team). Every change bumps `key_changes.serial`, so every process's directory reloads the
//! teams with the keys.

use std::collections::HashMap;
use std::sync::Arc;

use aigw_memory::{Connection, Row, Store, StoreError};
use serde_json::{Map, Value};

use crate::keys::{self, KeyError, Page, bump, fields, merged};
use crate::team::{Team, TeamSpec};

/// One page of teams, oldest first.
#[derive(Debug, Clone)]
pub struct TeamPage {
    pub teams: Vec<Team>,
    pub has_more: bool,
}

const COLUMNS: &str = "id, spec, created_at, updated_at";

/// A spec from a JSON object, the field at fault named.
pub fn spec_from_json(body: &Map<String, Value>) -> Result<TeamSpec, KeyError> {
    let spec: TeamSpec = fields(body)?;
    spec.validate()
        .map_err(|(param, message)| KeyError::Invalid {
            param: param.to_owned(),
            message,
        })?;
    Ok(spec)
}

/// Makes a team with `spec`.
pub async fn create(store: &Store, spec: TeamSpec) -> Result<Team, KeyError> {
    spec.validate()
        .map_err(|(param, message)| KeyError::Invalid {
            param: param.to_owned(),
            message,
        })?;
    let now = store.now_ms();
    let team = Team {
        id: keys::prefixed_id("team_"),
        spec,
        created_at: now,
        updated_at: now,
    };
    let spec_json = spec_json(&team.spec)?;
    let written = team.clone();
    store
        .write(move |c| {
            Box::pin(async move {
                c.execute(
                    "INSERT INTO teams (id, spec, created_at, updated_at) VALUES (?1, ?2, ?3, ?4)",
                    (
                        written.id.as_str(),
                        spec_json,
                        written.created_at,
                        written.updated_at,
                    ),
                )
                .await?;
                bump(c).await
            })
        })
        .await?;
    Ok(team)
}

/// The team `id`.
pub async fn get(store: &Store, id: &str) -> Result<Team, KeyError> {
    let owned = id.to_owned();
    store
        .read(move |c| Box::pin(async move { find(c, &owned).await }))
        .await?
        .ok_or_else(|| KeyError::TeamNotFound(id.to_owned()))
}

/// One page of teams, in the order they were made.
pub async fn list(store: &Store, page: Page) -> Result<TeamPage, KeyError> {
    let (teams, has_more) = keys::listed(store, "teams", COLUMNS, team_of, page, "team").await?;
    Ok(TeamPage { teams, has_more })
}

/// Applies `patch` to the team `id`; returns it as it now is.
pub async fn update(store: &Store, id: &str, patch: Map<String, Value>) -> Result<Team, KeyError> {
    let owned = id.to_owned();
    let now = store.now_ms();
    store
        .write(move |c| {
            Box::pin(async move {
                let Some(mut team) = find(c, &owned).await? else {
                    return Ok(Err(KeyError::TeamNotFound(owned)));
                };
                team.spec = match spec_from_json(&merged(&team.spec, &patch)) {
                    Ok(spec) => spec,
                    Err(e) => return Ok(Err(e)),
                };
                team.updated_at = now;
                let spec = match spec_json(&team.spec) {
                    Ok(spec) => spec,
                    Err(e) => return Ok(Err(e)),
                };
                c.execute(
                    "UPDATE teams SET spec = ?1, updated_at = ?2 WHERE id = ?3",
                    (spec, now, team.id.as_str()),
                )
                .await?;
                bump(c).await?;
                Ok(Ok(team))
            })
        })
        .await?
}

/// Deletes the team `id`; refused while a key that is not revoked names it.
pub async fn delete(store: &Store, id: &str) -> Result<Team, KeyError> {
    let owned = id.to_owned();
    store
        .write(move |c| {
            Box::pin(async move {
                let Some(team) = find(c, &owned).await? else {
                    return Ok(Err(KeyError::TeamNotFound(owned)));
                };
                let mut rows = c
                    .query(
                        "SELECT 1 FROM keys WHERE revoked_at IS NULL
                         AND json_extract(spec, '$.team') = ?1 LIMIT 1",
                        [team.id.as_str()],
                    )
                    .await?;
                if rows.next().await?.is_some() {
                    return Ok(Err(KeyError::TeamInUse(owned)));
                }
                c.execute("DELETE FROM teams WHERE id = ?1", [team.id.as_str()])
                    .await?;
                bump(c).await?;
                Ok(Ok(team))
            })
        })
        .await?
}

/// Every team, by id (for the directory, in its read).
pub(crate) async fn all(c: &Connection) -> Result<HashMap<String, Arc<Team>>, StoreError> {
    let mut rows = c.query(&format!("SELECT {COLUMNS} FROM teams"), ()).await?;
    let mut teams = HashMap::new();
    while let Some(row) = rows.next().await? {
        let team = team_of(&row)?;
        teams.insert(team.id.clone(), Arc::new(team));
    }
    Ok(teams)
}

fn team_of(row: &Row) -> Result<Team, StoreError> {
    let spec: String = row.get(1)?;
    let spec = serde_json::from_str(&spec)
        .map_err(|e| StoreError::Sql(format!("a stored team's spec is not readable: {e}")))?;
    Ok(Team {
        id: row.get(0)?,
        spec,
        created_at: row.get(2)?,
        updated_at: row.get(3)?,
    })
}

async fn find(c: &Connection, id: &str) -> Result<Option<Team>, StoreError> {
    let mut rows = c
        .query(&format!("SELECT {COLUMNS} FROM teams WHERE id = ?1"), [id])
        .await?;
    match rows.next().await? {
        Some(row) => Ok(Some(team_of(&row)?)),
        None => Ok(None),
    }
}

fn spec_json(spec: &TeamSpec) -> Result<String, KeyError> {
    serde_json::to_string(spec).map_err(|e| KeyError::Invalid {
        param: String::new(),
        message: format!("the team's spec cannot be stored: {e}"),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::Directory;
    use crate::key::KeySpec;
    use aigw_memory::StoreOptions;
    use serde_json::json;

    fn object(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            _ => panic!("not an object"),
        }
    }

    #[tokio::test]
    async fn teams_are_made_named_by_keys_and_narrow_their_grant() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(
            Store::open(StoreOptions::new(dir.path().join("t.db")))
                .await
                .unwrap(),
        );
        let spec = spec_from_json(&object(
            json!({"name": "a", "models": ["groq/*"], "rpm_limit": 5}),
        ))
        .unwrap();
        let team = create(&store, spec).await.unwrap();
        assert!(team.id.starts_with("team_") && team.id.len() == 29);
        assert_eq!(get(&store, &team.id).await.unwrap(), team);

        // A key must name a team that exists.
        let unknown = keys::create(
            &store,
            KeySpec {
                team: Some("team_nope".into()),
                ..KeySpec::default()
            },
        )
        .await
        .unwrap_err();
        assert!(matches!(unknown, KeyError::Invalid { ref param, .. } if param == "team"));
        let made = keys::create(
            &store,
            KeySpec {
                team: Some(team.id.clone()),
                ..KeySpec::default()
            },
        )
        .await
        .unwrap();

        // The directory attaches the team: the key's grant is narrowed by it.
        let directory = Directory::load(Arc::clone(&store)).await.unwrap();
        let key = directory.lookup(&made.secret).unwrap();
        assert_eq!(key.team.as_ref().unwrap().id, team.id);
        assert!(key.may_use_model("groq/llama"));
        assert!(!key.may_use_model("fast"));

        // A team's change reaches its keys at the next refresh.
        update(&store, &team.id, object(json!({"models": null})))
            .await
            .unwrap();
        assert!(directory.refresh().await.unwrap());
        assert!(
            directory
                .lookup(&made.secret)
                .unwrap()
                .may_use_model("fast")
        );

        // Not deleted while a key uses it; deleted once none does.
        assert_eq!(
            delete(&store, &team.id).await.unwrap_err(),
            KeyError::TeamInUse(team.id.clone())
        );
        keys::revoke(&store, &made.key.id).await.unwrap();
        delete(&store, &team.id).await.unwrap();
        assert_eq!(
            get(&store, &team.id).await.unwrap_err(),
            KeyError::TeamNotFound(team.id.clone())
        );
        let listed = list(
            &store,
            Page {
                after: None,
                limit: 10,
            },
        )
        .await
        .unwrap();
        assert!(listed.teams.is_empty());
    }
}
