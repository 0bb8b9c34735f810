//! A team: a group of keys sharing a model grant, limits and a budget. A key names its team in
//! its spec (`team`); what the key may use is what both grant (the intersection of the two
//! `models` lists), and the limiter counts the team's limits over all its keys together (subject
//! `team:<id>`). Kept simple on purpose: one team per key, no nesting, no tool or namespace
//! grants of its own (namespaces stay per key; a team shares them by listing one in each key).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::key::{KeySpec, Period};
use crate::pattern::Pattern;

/// A team's grant and limits as the operator sets them; every field optional.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TeamSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Models the team's keys may use (each key's own list narrows it further); absent: all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub models: Option<Vec<Pattern>>,
    /// Requests per minute, all the team's keys together.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rpm_limit: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tpm_limit: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_parallel_requests: Option<u64>,
    /// USD per `budget_duration` (or for the team's lifetime), all its keys together.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_budget: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_duration: Option<Period>,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub metadata: Map<String, Value>,
}

impl TeamSpec {
    /// The same rules as a key's limits (numbers in range, a period only with a budget); the
    /// error names the field.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        KeySpec {
            name: self.name.clone(),
            rpm_limit: self.rpm_limit,
            tpm_limit: self.tpm_limit,
            max_parallel_requests: self.max_parallel_requests,
            max_budget: self.max_budget,
            budget_duration: self.budget_duration,
            ..KeySpec::default()
        }
        .validate()
    }
}

/// A stored team.
#[derive(Debug, Clone, PartialEq)]
pub struct Team {
    /// `team_` and 24 hex digits.
    pub id: String,
    pub spec: TeamSpec,
    /// Unix milliseconds.
    pub created_at: i64,
    pub updated_at: i64,
}

impl Team {
    /// Whether the team's grant holds `model`.
    pub fn may_use_model(&self, model: &str) -> bool {
        self.spec
            .models
            .as_deref()
            .is_none_or(|patterns| patterns.iter().any(|p| p.matches(model)))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn team_specs_are_strict_and_checked_like_keys() {
        let typo: Result<TeamSpec, _> = serde_json::from_value(serde_json::json!({"tools": []}));
        assert!(typo.is_err(), "a team has no tool grant");
        let zero: TeamSpec = serde_json::from_value(serde_json::json!({"tpm_limit": 0})).unwrap();
        assert_eq!(zero.validate().unwrap_err().0, "tpm_limit");
        let team = Team {
            id: "team_x".into(),
            spec: serde_json::from_value(serde_json::json!({"models": ["groq/*"]})).unwrap(),
            created_at: 0,
            updated_at: 0,
        };
        assert!(team.may_use_model("groq/llama"));
        assert!(!team.may_use_model("fast"));
    }
}
