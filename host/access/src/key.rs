//! A virtual key: what the admin API creates and every client request presents. [`KeySpec`] is
//! what an operator sets (the admin API's JSON body, stored as JSON beside the key's hash);
//! [`Key`] is a stored key as the gateway serves it, with the checks every surface makes: may it
//! use this model, this tool, this memory namespace.
//!
//! Grants default to what is safe *and* useful: a key with no `models` list may use every model
//! (the operator's routes are the allow-list already), with no `tools` list every tool, but with
//! no `namespaces` list only its own namespace (`key:<id>`): one key never sees another's memory
//! unless an operator shares a namespace between them on purpose.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::pattern::Pattern;
use crate::team::Team;

/// A budget's period: spend is counted per UTC calendar day, ISO week (from Monday) or month.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Period {
    Day,
    Week,
    Month,
}

/// A key's grants and limits as the operator sets them. Every field is optional; an absent
/// limit is no limit.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeySpec {
    /// A name for people (LiteLLM's `key_alias`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The team whose shared limits and budget this key also counts against.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team: Option<String>,
    /// Models (aliases or `provider/model`) the key may request; absent: all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub models: Option<Vec<Pattern>>,
    /// Tools the key may call; absent: all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<Pattern>>,
    /// Memory namespaces the key may act in; the first exact one is its default. Absent: only
    /// the key's own namespace, `key:<id>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespaces: Option<Vec<Pattern>>,
    /// Requests per minute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rpm_limit: Option<u64>,
    /// Tool calls per minute (every surface: REST, chat, MCP), counted apart from requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls_per_minute: Option<u64>,
    /// Tool calls per UTC day.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls_per_day: Option<u64>,
    /// Tokens (prompt + completion) per minute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tpm_limit: Option<u64>,
    /// Requests answered at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_parallel_requests: Option<u64>,
    /// The most the key may spend per `budget_duration`, in USD.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_budget: Option<f64>,
    /// The budget's period; absent with a `max_budget`: the budget is for the key's lifetime.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_duration: Option<Period>,
    /// When the key stops working, in Unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
    /// The operator's own data, returned as given.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub metadata: Map<String, Value>,
}

impl KeySpec {
    /// Checks what serde cannot: numbers in range, a budget period only with a budget. The
    /// error names the field (for a 400's `param`) and says what is wrong.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        let positive = |field: &'static str, value: Option<u64>| match value {
            Some(0) => Err((
                field,
                format!("`{field}` must be at least 1 (omit it for no limit)"),
            )),
            _ => Ok(()),
        };
        positive("rpm_limit", self.rpm_limit)?;
        positive("tpm_limit", self.tpm_limit)?;
        positive("max_parallel_requests", self.max_parallel_requests)?;
        positive("tool_calls_per_minute", self.tool_calls_per_minute)?;
        positive("tool_calls_per_day", self.tool_calls_per_day)?;
        if let Some(budget) = self.max_budget
            && !(budget.is_finite() && budget >= 0.0)
        {
            return Err((
                "max_budget",
                "`max_budget` must be a number of USD, 0 or more".into(),
            ));
        }
        if self.budget_duration.is_some() && self.max_budget.is_none() {
            return Err((
                "budget_duration",
                "`budget_duration` needs a `max_budget`".into(),
            ));
        }
        if let Some(name) = &self.name
            && name.len() > 256
        {
            return Err(("name", "`name` must be at most 256 bytes".into()));
        }
        Ok(())
    }
}

/// A stored key as the gateway serves it. The secret is not here: only its hash is kept, and
/// only by the directory that finds keys.
#[derive(Debug, Clone, PartialEq)]
pub struct Key {
    /// `key_` and 24 hex digits: how the admin API and usage name the key.
    pub id: String,
    /// What admin output shows of the secret (`sk-aigw-…` and its last four characters).
    pub hint: String,
    pub spec: KeySpec,
    /// Unix milliseconds.
    pub created_at: i64,
    pub updated_at: i64,
    pub revoked_at: Option<i64>,
    /// The team `spec.team` names, as the directory loaded it (`None` when the key has none,
    /// or when read outside the directory).
    pub team: Option<Arc<Team>>,
}

/// A namespace the key may not act in (or a key with none it could default to).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("this key may not use the memory namespace `{0}`")]
pub struct NamespaceNotGranted(pub String);

impl Key {
    /// The namespace a key with no `namespaces` list acts in, and may always act in.
    pub fn own_namespace(&self) -> String {
        format!("key:{}", self.id)
    }

    /// Whether the key may request `model` (the name the client sent: an alias or
    /// `provider/model`): its own grant and its team's both hold it.
    pub fn may_use_model(&self, model: &str) -> bool {
        granted(self.spec.models.as_deref(), model)
            && self
                .team
                .as_ref()
                .is_none_or(|team| team.may_use_model(model))
    }

    /// Whether some models are not granted (by the key's list or its team's).
    pub fn restricts_models(&self) -> bool {
        self.spec.models.is_some()
            || self
                .team
                .as_ref()
                .is_some_and(|team| team.spec.models.is_some())
    }

    /// Whether the key may call the tool `tool`.
    pub fn may_use_tool(&self, tool: &str) -> bool {
        granted(self.spec.tools.as_deref(), tool)
    }

    /// The namespace a request acts in: the one it names (`x-aigw-namespace`) if the key may use
    /// it, else the key's default (its first exact namespace, or its own).
    pub fn namespace(&self, requested: Option<&str>) -> Result<String, NamespaceNotGranted> {
        let own = self.own_namespace();
        let Some(granted) = self.spec.namespaces.as_deref() else {
            return match requested {
                None => Ok(own),
                Some(name) if name == own => Ok(own),
                Some(name) => Err(NamespaceNotGranted(name.to_owned())),
            };
        };
        match requested {
            Some(name) if name == own || granted.iter().any(|p| p.matches(name)) => {
                Ok(name.to_owned())
            }
            Some(name) => Err(NamespaceNotGranted(name.to_owned())),
            None => Ok(granted
                .iter()
                .find_map(|p| p.exact())
                .map_or(own, str::to_owned)),
        }
    }

    /// Whether the key no longer works at `now_ms`: revoked, or past its expiry.
    pub fn is_void(&self, now_ms: i64) -> bool {
        self.revoked_at.is_some()
            || self
                .spec
                .expires_at
                .is_some_and(|at| at.saturating_mul(1000) <= now_ms)
    }
}

/// `None` grants everything; a list grants what one of its patterns matches.
fn granted(list: Option<&[Pattern]>, name: &str) -> bool {
    list.is_none_or(|patterns| patterns.iter().any(|p| p.matches(name)))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn key(spec: serde_json::Value) -> Key {
        Key {
            id: "key_0123456789abcdef01234567".into(),
            hint: "sk-aigw-…abcd".into(),
            spec: serde_json::from_value(spec).unwrap(),
            created_at: 0,
            updated_at: 0,
            revoked_at: None,
            team: None,
        }
    }

    #[test]
    fn models_and_tools_default_to_all_and_lists_restrict() {
        let open = key(serde_json::json!({}));
        assert!(open.may_use_model("anything"));
        assert!(open.may_use_tool("weather"));
        let narrow = key(serde_json::json!({"models": ["fast", "groq/*"], "tools": []}));
        assert!(narrow.may_use_model("fast"));
        assert!(narrow.may_use_model("groq/llama-3.1-8b-instant"));
        assert!(!narrow.may_use_model("gemini/gemini-2.0-flash"));
        assert!(!narrow.may_use_tool("weather"));
    }

    #[test]
    fn a_teams_model_grant_narrows_the_keys() {
        let mut k = key(serde_json::json!({"models": ["fast", "groq/*"], "team": "team_a"}));
        assert!(k.restricts_models());
        k.team = Some(Arc::new(Team {
            id: "team_a".into(),
            spec: serde_json::from_value(serde_json::json!({"models": ["groq/*", "slow"]}))
                .unwrap(),
            created_at: 0,
            updated_at: 0,
        }));
        assert!(k.may_use_model("groq/llama-3.1-8b-instant"));
        assert!(!k.may_use_model("fast"), "the team does not grant it");
        assert!(!k.may_use_model("slow"), "the key does not grant it");
        let mut open = key(serde_json::json!({"team": "team_a"}));
        assert!(!open.restricts_models());
        open.team = k.team.clone();
        assert!(open.restricts_models());
        assert!(open.may_use_model("slow"));
    }

    #[test]
    fn namespaces_default_to_the_keys_own_and_lists_share() {
        let alone = key(serde_json::json!({}));
        let own = "key:key_0123456789abcdef01234567";
        assert_eq!(alone.namespace(None).unwrap(), own);
        assert_eq!(alone.namespace(Some(own)).unwrap(), own);
        assert_eq!(
            alone.namespace(Some("default")).unwrap_err(),
            NamespaceNotGranted("default".into())
        );
        let shared = key(serde_json::json!({"namespaces": ["team-a:*", "team-a"]}));
        assert_eq!(shared.namespace(None).unwrap(), "team-a");
        assert_eq!(
            shared.namespace(Some("team-a:bots")).unwrap(),
            "team-a:bots"
        );
        assert!(shared.namespace(Some("team-b")).is_err());
        // Only patterns: the default is the key's own.
        let pattern_only = key(serde_json::json!({"namespaces": ["team-a:*"]}));
        assert_eq!(pattern_only.namespace(None).unwrap(), own);
    }

    #[test]
    fn revoked_or_expired_keys_are_void() {
        let mut k = key(serde_json::json!({"expires_at": 100}));
        assert!(!k.is_void(99_999));
        assert!(k.is_void(100_000));
        k.spec.expires_at = None;
        assert!(!k.is_void(i64::MAX));
        k.revoked_at = Some(5);
        assert!(k.is_void(0));
    }

    #[test]
    fn specs_are_strict_and_checked() {
        let typo: Result<KeySpec, _> = serde_json::from_value(serde_json::json!({"rpm": 5}));
        assert!(typo.unwrap_err().to_string().contains("unknown field"));
        let zero: KeySpec = serde_json::from_value(serde_json::json!({"rpm_limit": 0})).unwrap();
        assert_eq!(zero.validate().unwrap_err().0, "rpm_limit");
        for field in ["tool_calls_per_minute", "tool_calls_per_day"] {
            let zero: KeySpec = serde_json::from_value(serde_json::json!({field: 0})).unwrap();
            assert_eq!(zero.validate().unwrap_err().0, field);
        }
        let period: KeySpec =
            serde_json::from_value(serde_json::json!({"budget_duration": "day"})).unwrap();
        assert_eq!(period.validate().unwrap_err().0, "budget_duration");
        let ok: KeySpec = serde_json::from_value(
            serde_json::json!({"max_budget": 5.0, "budget_duration": "month", "rpm_limit": 60}),
        )
        .unwrap();
        assert!(ok.validate().is_ok());
    }
}
