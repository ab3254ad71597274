//! The source registry's replication rules as plain data, and the pure
//! decisions about them: which rule this resource owns, and what the rule list
//! becomes when the rule is added, replaced or removed.
//!
//! Rules are owned by content. A rule carries no owner, so the rule this
//! resource owns is the one equal to the rule its properties describe;
//! destinations and filters compare as sets. Every other rule is kept as it
//! is and where it is.

use crate::properties::ReplicationSpec;
use serde_json::{Map, Value, json};
use std::{collections::BTreeSet, fmt};

/// ECR accepts at most 10 rules in a replication configuration.
pub const MAX_RULES: usize = 10;

/// ECR accepts at most 25 distinct destinations across all rules.
pub const MAX_DISTINCT_DESTINATIONS: usize = 25;

/// The only repository filter type ECR knows.
pub const PREFIX_MATCH: &str = "PREFIX_MATCH";

/// One replication rule, held as the JSON object ECR uses, so that fields
/// this module does not know about are kept as they are.
#[derive(Clone, Debug, PartialEq)]
pub struct Rule {
    json: Map<String, Value>,
}

/// A destination registry of a rule: (region, registry id).
pub type RuleDestination<'a> = (&'a str, &'a str);

/// What a change did to the rule list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RuleChange {
    /// The rule was appended.
    Added,
    /// An equal rule was already there and is now shared.
    AlreadyPresent,
    /// The old rule was replaced by the new one in its position.
    Replaced,
    /// The old rule was removed because the new one already existed.
    MergedIntoExisting,
    /// Old and new rule are equal: nothing changed.
    Unchanged,
    /// The rule was removed.
    Removed,
    /// There was no such rule to remove.
    NotPresent,
}

impl RuleChange {
    /// Whether the rule list must be written back.
    pub fn writes(self) -> bool {
        matches!(
            self,
            Self::Added | Self::Replaced | Self::MergedIntoExisting | Self::Removed
        )
    }
}

/// A rule list that ECR would refuse.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LimitError {
    /// More rules than ECR allows.
    TooManyRules {
        /// How many rules the configuration would hold.
        count: usize,
    },
    /// More distinct destinations than ECR allows.
    TooManyDestinations {
        /// How many distinct destinations the configuration would hold.
        count: usize,
    },
}

impl fmt::Display for LimitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooManyRules { count } => write!(
                f,
                "the source replication configuration would hold {count} rules, \
                 over ECR's limit of {MAX_RULES} (other owners' rules count too)"
            ),
            Self::TooManyDestinations { count } => write!(
                f,
                "the source replication configuration would replicate to {count} distinct \
                 destinations, over ECR's limit of {MAX_DISTINCT_DESTINATIONS} (other owners' \
                 rules count too)"
            ),
        }
    }
}

impl std::error::Error for LimitError {}

impl Rule {
    /// The rule that `spec` describes: its destinations, and one
    /// `PREFIX_MATCH` filter per prefix.
    pub fn from_spec(spec: &ReplicationSpec) -> Self {
        let destinations: Vec<Value> = spec
            .destinations
            .iter()
            .map(|d| json!({"region": d.region, "registryId": d.account_id}))
            .collect();
        let mut json = Map::new();
        json.insert("destinations".into(), Value::Array(destinations));
        if !spec.prefixes.is_empty() {
            let filters: Vec<Value> = spec
                .prefixes
                .iter()
                .map(|p| json!({"filter": p, "filterType": PREFIX_MATCH}))
                .collect();
            json.insert("repositoryFilters".into(), Value::Array(filters));
        }
        Self { json }
    }

    /// Reads a rule as ECR returns it. Fails on a rule whose destinations or
    /// filters are not shaped as ECR documents them.
    pub fn from_json(value: Value) -> Result<Self, String> {
        let Value::Object(json) = value else {
            return Err("rule that is not a JSON object".into());
        };
        let rule = Self { json };
        let shaped = |field: &str, keys: [&str; 2], required: bool| match rule.json.get(field) {
            None | Some(Value::Null) => !required,
            Some(Value::Array(items)) => items.iter().all(|item| {
                keys.iter()
                    .all(|k| item.get(*k).is_some_and(Value::is_string))
            }),
            Some(_) => false,
        };
        if !shaped("destinations", ["region", "registryId"], true) {
            return Err("rule whose destinations are not understood".into());
        }
        if !shaped("repositoryFilters", ["filter", "filterType"], false) {
            return Err("rule whose repository filters are not understood".into());
        }
        Ok(rule)
    }

    /// The rule as ECR takes it.
    pub fn to_json(&self) -> Value {
        Value::Object(self.json.clone())
    }

    /// The rule's destinations as (region, registry id).
    pub fn destinations(&self) -> BTreeSet<RuleDestination<'_>> {
        self.pairs("destinations", "region", "registryId")
    }

    /// The rule's filters as (filter, filter type).
    pub fn filters(&self) -> BTreeSet<(&str, &str)> {
        self.pairs("repositoryFilters", "filter", "filterType")
    }

    /// Whether two rules replicate the same repositories to the same places,
    /// whatever the order of their destinations and filters.
    pub fn same_as(&self, other: &Rule) -> bool {
        self.destinations() == other.destinations() && self.filters() == other.filters()
    }

    fn pairs(&self, field: &str, first: &str, second: &str) -> BTreeSet<(&str, &str)> {
        self.json
            .get(field)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|item| Some((item.get(first)?.as_str()?, item.get(second)?.as_str()?)))
            .collect()
    }
}

/// Adds `ours` to `rules`, sharing an equal rule if there is one.
pub fn add(rules: &[Rule], ours: &Rule) -> (Vec<Rule>, RuleChange) {
    let mut result = rules.to_vec();
    if rules.iter().any(|r| r.same_as(ours)) {
        return (result, RuleChange::AlreadyPresent);
    }
    result.push(ours.clone());
    (result, RuleChange::Added)
}

/// Replaces `old` by `new` in its position; adds `new` when `old` is gone or
/// unknown. When `new` already exists elsewhere, `old` is dropped and the
/// existing rule is shared.
pub fn replace(rules: &[Rule], old: Option<&Rule>, new: &Rule) -> (Vec<Rule>, RuleChange) {
    let Some(position) = old.and_then(|old| rules.iter().position(|r| r.same_as(old))) else {
        return add(rules, new);
    };
    if rules[position].same_as(new) {
        return (rules.to_vec(), RuleChange::Unchanged);
    }

    let mut result = rules.to_vec();
    if rules.iter().any(|r| r.same_as(new)) {
        result.remove(position);
        return (result, RuleChange::MergedIntoExisting);
    }
    result[position] = new.clone();
    (result, RuleChange::Replaced)
}

/// Removes the first rule equal to `ours`.
pub fn remove(rules: &[Rule], ours: &Rule) -> (Vec<Rule>, RuleChange) {
    let mut result = rules.to_vec();
    match rules.iter().position(|r| r.same_as(ours)) {
        Some(position) => {
            result.remove(position);
            (result, RuleChange::Removed)
        }
        None => (result, RuleChange::NotPresent),
    }
}

/// Checks a rule list against ECR's limits on rules and distinct destinations.
pub fn check_limits(rules: &[Rule]) -> Result<(), LimitError> {
    if rules.len() > MAX_RULES {
        return Err(LimitError::TooManyRules { count: rules.len() });
    }
    let distinct: BTreeSet<RuleDestination<'_>> =
        rules.iter().flat_map(Rule::destinations).collect();
    if distinct.len() > MAX_DISTINCT_DESTINATIONS {
        return Err(LimitError::TooManyDestinations {
            count: distinct.len(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(destinations: &[(&str, &str)], filters: &[&str]) -> Rule {
        let destinations: Vec<Value> = destinations
            .iter()
            .map(|(region, account)| json!({"region": region, "registryId": account}))
            .collect();
        let filters: Vec<Value> = filters
            .iter()
            .map(|f| json!({"filter": f, "filterType": PREFIX_MATCH}))
            .collect();
        Rule::from_json(json!({"destinations": destinations, "repositoryFilters": filters}))
            .unwrap()
    }

    fn others() -> Vec<Rule> {
        vec![
            rule(&[("eu-west-1", "333333333333")], &["legacy/"]),
            rule(&[("ap-south-1", "444444444444")], &[]),
        ]
    }

    #[test]
    fn add_appends_after_other_owners_rules() {
        let ours = rule(&[("eu-west-1", "222222222222")], &["team-a/"]);
        let (rules, change) = add(&others(), &ours);
        assert_eq!(change, RuleChange::Added);
        assert_eq!(rules[..2], others()[..]);
        assert_eq!(rules[2], ours);
    }

    #[test]
    fn add_shares_an_equal_rule_whatever_its_order() {
        let existing = rule(
            &[("eu-west-1", "222222222222"), ("us-west-2", "111111111111")],
            &["b/", "a/"],
        );
        let ours = rule(
            &[("us-west-2", "111111111111"), ("eu-west-1", "222222222222")],
            &["a/", "b/"],
        );
        let mut current = others();
        current.insert(1, existing);
        let (rules, change) = add(&current, &ours);
        assert_eq!(change, RuleChange::AlreadyPresent);
        assert!(!change.writes());
        assert_eq!(rules, current);
    }

    #[test]
    fn replace_keeps_the_position_of_the_old_rule() {
        let old = rule(&[("eu-west-1", "222222222222")], &["team-a/"]);
        let new = rule(&[("eu-west-1", "555555555555")], &["team-a/"]);
        let current = vec![others()[0].clone(), old.clone(), others()[1].clone()];

        let (rules, change) = replace(&current, Some(&old), &new);
        assert_eq!(change, RuleChange::Replaced);
        assert_eq!(rules, vec![others()[0].clone(), new, others()[1].clone()]);
    }

    #[test]
    fn replace_appends_when_the_old_rule_is_gone_or_unknown() {
        let old = rule(&[("eu-west-1", "222222222222")], &[]);
        let new = rule(&[("eu-west-2", "222222222222")], &[]);
        for old in [Some(&old), None] {
            let (rules, change) = replace(&others(), old, &new);
            assert_eq!(change, RuleChange::Added);
            assert_eq!(rules.last(), Some(&new));
            assert_eq!(rules.len(), 3);
        }
    }

    #[test]
    fn replace_with_an_equal_rule_changes_nothing() {
        let ours = rule(&[("eu-west-1", "222222222222")], &[]);
        let current = [others(), vec![ours.clone()]].concat();
        let (rules, change) = replace(&current, Some(&ours), &ours);
        assert_eq!(change, RuleChange::Unchanged);
        assert_eq!(rules, current);
    }

    #[test]
    fn replace_by_a_rule_that_exists_elsewhere_drops_the_old_one() {
        let old = rule(&[("eu-west-1", "222222222222")], &[]);
        let new = others()[1].clone();
        let current = [vec![old.clone()], others()].concat();
        let (rules, change) = replace(&current, Some(&old), &new);
        assert_eq!(change, RuleChange::MergedIntoExisting);
        assert_eq!(rules, others());
    }

    #[test]
    fn remove_takes_only_the_first_equal_rule() {
        let ours = rule(&[("eu-west-1", "222222222222")], &["x/"]);
        let current = vec![ours.clone(), others()[0].clone(), ours.clone()];
        let (rules, change) = remove(&current, &ours);
        assert_eq!(change, RuleChange::Removed);
        assert_eq!(rules, vec![others()[0].clone(), ours.clone()]);

        let (rules, change) = remove(&others(), &ours);
        assert_eq!(change, RuleChange::NotPresent);
        assert_eq!(rules, others());
    }

    #[test]
    fn limits_count_rules_and_distinct_destinations_of_every_owner() {
        let eleven: Vec<Rule> = (0..11)
            .map(|i| rule(&[("eu-west-1", &format!("{i:012}"))], &[]))
            .collect();
        assert_eq!(
            check_limits(&eleven),
            Err(LimitError::TooManyRules { count: 11 })
        );
        assert_eq!(check_limits(&eleven[..10]), Ok(()));

        let wide = |from: usize, to: usize| {
            let destinations: Vec<(String, String)> = (from..to)
                .map(|i| ("eu-west-1".to_string(), format!("{i:012}")))
                .collect();
            let pairs: Vec<(&str, &str)> = destinations
                .iter()
                .map(|(r, a)| (r.as_str(), a.as_str()))
                .collect();
            rule(&pairs, &[])
        };
        // 20 + 10 destinations with 4 in common: 26 distinct.
        let rules = vec![wide(0, 20), wide(16, 26)];
        assert_eq!(
            check_limits(&rules),
            Err(LimitError::TooManyDestinations { count: 26 })
        );
        assert_eq!(check_limits(&[wide(0, 20), wide(15, 25)]), Ok(()));
    }

    #[test]
    fn fields_unknown_here_survive_on_other_owners_rules() {
        let theirs = Rule::from_json(json!({
            "destinations": [{"region": "eu-west-1", "registryId": "333333333333"}],
            "deleteReplication": {"enabled": true}
        }))
        .unwrap();
        let ours = rule(&[("eu-west-1", "222222222222")], &[]);
        let (rules, _) = add(std::slice::from_ref(&theirs), &ours);
        let (rules, _) = remove(&rules, &ours);
        assert_eq!(
            rules[0].to_json()["deleteReplication"],
            json!({"enabled": true})
        );
        assert_eq!(rules, vec![theirs]);
    }

    #[test]
    fn the_rule_of_a_spec_has_one_prefix_match_filter_per_prefix() {
        use crate::properties::{Destination, ReplicationSpec};
        let spec = ReplicationSpec {
            destinations: vec![Destination {
                region: "eu-west-1".into(),
                account_id: "222222222222".into(),
                role: None,
                template_role_arn: None,
            }],
            prefixes: vec!["team-a/".into(), "base".into()],
            allow_create_repository: false,
            backfill_existing_images: false,
            repository_settings: None,
        };
        assert_eq!(
            Rule::from_spec(&spec).to_json(),
            json!({
                "destinations": [{"region": "eu-west-1", "registryId": "222222222222"}],
                "repositoryFilters": [
                    {"filter": "team-a/", "filterType": "PREFIX_MATCH"},
                    {"filter": "base", "filterType": "PREFIX_MATCH"}
                ]
            })
        );
        let everything = ReplicationSpec {
            prefixes: vec![],
            ..spec
        };
        assert!(
            Rule::from_spec(&everything)
                .to_json()
                .get("repositoryFilters")
                .is_none()
        );
        assert!(Rule::from_spec(&everything).same_as(&rule(&[("eu-west-1", "222222222222")], &[])));
    }

    #[test]
    fn rules_not_shaped_as_ecr_documents_them_are_refused() {
        for bad in [
            json!([]),
            json!({}),
            json!({"destinations": [{"region": "eu-west-1"}]}),
            json!({"destinations": [], "repositoryFilters": [{"filter": 3, "filterType": "PREFIX_MATCH"}]}),
            json!({"destinations": [], "repositoryFilters": "x"}),
        ] {
            assert!(Rule::from_json(bad.clone()).is_err(), "{bad}");
        }
    }
}
