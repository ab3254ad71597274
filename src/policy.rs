//! The destination registry policy: the statement this resource owns, and the
//! pure decisions about a policy document when that statement is added or
//! removed.
//!
//! A registry policy is shared by every source account that replicates into
//! the registry (and by pull-through cache rules). This module only ever
//! touches the statement whose `Sid` is this resource's; every other statement
//! and every other field of the document is kept as it is.

use serde_json::{Map, Value, json};
use std::fmt;

/// ECR refuses registry policies longer than this many characters.
pub const MAX_POLICY_CHARS: usize = 10_240;

/// The policy language version written into a new document.
const POLICY_VERSION: &str = "2012-10-17";

/// What this resource grants in one destination registry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grant<'a> {
    /// The resource's statement id.
    pub statement_id: &'a str,
    /// The partition of every ARN in the statement.
    pub partition: &'a str,
    /// The account allowed to replicate.
    pub source_account: &'a str,
    /// The destination registry's account.
    pub destination_account: &'a str,
    /// The destination registry's region.
    pub region: &'a str,
    /// Repository prefixes; empty means every repository.
    pub prefixes: &'a [String],
    /// Whether the source may create missing repositories.
    pub allow_create_repository: bool,
}

/// What to do with a registry policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PolicyUpdate {
    /// It already says what it should: write nothing.
    Unchanged,
    /// Write this document.
    Put(String),
    /// No statement is left: delete the policy.
    Delete,
}

/// A registry policy that cannot be changed safely.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PolicyError {
    /// The current document is not a policy this module can merge into.
    Unreadable {
        /// What is wrong with it.
        problem: String,
    },
    /// The merged document would be longer than ECR allows.
    TooLong {
        /// Its length in characters.
        chars: usize,
    },
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unreadable { problem } => write!(
                f,
                "the registry policy is not a policy document this resource can merge into \
                 ({problem}); fix or delete it"
            ),
            Self::TooLong { chars } => write!(
                f,
                "the registry policy would be {chars} characters, over ECR's limit of \
                 {MAX_POLICY_CHARS}; use fewer RepositoryPrefixes or remove unused statements"
            ),
        }
    }
}

impl std::error::Error for PolicyError {}

/// The statement that lets the source account replicate into the registry.
///
/// ```
/// use ecr_replication::policy::{Grant, statement};
///
/// let prefixes = vec!["team-a/".to_string()];
/// let s = statement(&Grant {
///     statement_id: "EcrReplAppReplication0011223344556677",
///     partition: "aws",
///     source_account: "111111111111",
///     destination_account: "222222222222",
///     region: "eu-west-1",
///     prefixes: &prefixes,
///     allow_create_repository: false,
/// });
/// assert_eq!(s["Principal"]["AWS"], "arn:aws:iam::111111111111:root");
/// assert_eq!(s["Action"][0], "ecr:ReplicateImage");
/// assert_eq!(s["Resource"][0], "arn:aws:ecr:eu-west-1:222222222222:repository/team-a/*");
/// ```
pub fn statement(grant: &Grant<'_>) -> Value {
    let repository = |pattern: &str| {
        format!(
            "arn:{}:ecr:{}:{}:repository/{pattern}",
            grant.partition, grant.region, grant.destination_account
        )
    };
    let resources: Vec<String> = if grant.prefixes.is_empty() {
        vec![repository("*")]
    } else {
        grant
            .prefixes
            .iter()
            .map(|p| repository(&format!("{p}*")))
            .collect()
    };
    let actions: &[&str] = if grant.allow_create_repository {
        &["ecr:CreateRepository", "ecr:ReplicateImage"]
    } else {
        &["ecr:ReplicateImage"]
    };
    json!({
        "Sid": grant.statement_id,
        "Effect": "Allow",
        "Principal": {"AWS": format!("arn:{}:iam::{}:root", grant.partition, grant.source_account)},
        "Action": actions,
        "Resource": resources,
    })
}

/// The document `current` with `statement` in place of any statement with the
/// same `Sid`, or appended; a new document when there is none.
pub fn with_statement(
    current: Option<&str>,
    statement: &Value,
) -> Result<PolicyUpdate, PolicyError> {
    let sid = statement["Sid"].as_str().unwrap_or_default();
    let (mut document, mut statements) = match current {
        Some(text) => parse(text)?,
        None => (Map::new(), Vec::new()),
    };

    let mine: Vec<usize> = positions(&statements, sid);
    if mine.len() == 1 && equivalent(&statements[mine[0]], statement) {
        return Ok(PolicyUpdate::Unchanged);
    }
    match mine.first() {
        Some(&first) => {
            statements[first] = statement.clone();
            // Keep one statement with this Sid: the first, now up to date.
            for &extra in mine[1..].iter().rev() {
                statements.remove(extra);
            }
        }
        None => statements.push(statement.clone()),
    }

    if !document.contains_key("Version") {
        document.insert("Version".into(), Value::from(POLICY_VERSION));
    }
    document.insert("Statement".into(), Value::Array(statements));
    render(document).map(PolicyUpdate::Put)
}

/// The document `current` without the statements whose `Sid` is `sid`;
/// `Delete` when no statement is left.
pub fn without_statement(current: Option<&str>, sid: &str) -> Result<PolicyUpdate, PolicyError> {
    let Some(text) = current else {
        return Ok(PolicyUpdate::Unchanged);
    };
    let (mut document, mut statements) = parse(text)?;
    let before = statements.len();
    statements.retain(|s| s["Sid"].as_str() != Some(sid));
    if statements.len() == before {
        return Ok(PolicyUpdate::Unchanged);
    }
    if statements.is_empty() {
        return Ok(PolicyUpdate::Delete);
    }
    document.insert("Statement".into(), Value::Array(statements));
    render(document).map(PolicyUpdate::Put)
}

/// Whether `current` holds `statement` (under its `Sid`, with the same meaning).
pub fn holds(current: Option<&str>, statement: &Value) -> bool {
    let sid = statement["Sid"].as_str().unwrap_or_default();
    current
        .and_then(|text| parse(text).ok())
        .is_some_and(|(_, statements)| {
            statements
                .iter()
                .any(|s| s["Sid"].as_str() == Some(sid) && equivalent(s, statement))
        })
}

/// Whether `current` holds any statement with the `Sid` `sid`.
pub fn mentions(current: Option<&str>, sid: &str) -> bool {
    current
        .and_then(|text| parse(text).ok())
        .is_some_and(|(_, statements)| !positions(&statements, sid).is_empty())
}

/// Splits a policy document into its other fields and its statements.
fn parse(text: &str) -> Result<(Map<String, Value>, Vec<Value>), PolicyError> {
    let unreadable = |problem: String| PolicyError::Unreadable { problem };
    let value: Value =
        serde_json::from_str(text).map_err(|e| unreadable(format!("invalid JSON: {e}")))?;
    let Value::Object(mut document) = value else {
        return Err(unreadable("not a JSON object".into()));
    };
    let statements = match document.remove("Statement") {
        None => Vec::new(),
        Some(Value::Array(statements)) => statements,
        // IAM allows a single statement written as an object.
        Some(single @ Value::Object(_)) => vec![single],
        Some(_) => {
            return Err(unreadable(
                "Statement is neither a list nor an object".into(),
            ));
        }
    };
    Ok((document, statements))
}

fn render(document: Map<String, Value>) -> Result<String, PolicyError> {
    let text = Value::Object(document).to_string();
    let chars = text.chars().count();
    if chars > MAX_POLICY_CHARS {
        return Err(PolicyError::TooLong { chars });
    }
    Ok(text)
}

fn positions(statements: &[Value], sid: &str) -> Vec<usize> {
    statements
        .iter()
        .enumerate()
        .filter(|(_, s)| s["Sid"].as_str() == Some(sid))
        .map(|(i, _)| i)
        .collect()
}

/// Whether two statements mean the same: a single string equals a list of
/// that one string, and the order of list items does not matter.
fn equivalent(a: &Value, b: &Value) -> bool {
    normalized(a) == normalized(b)
}

fn normalized(value: &Value) -> Value {
    match value {
        Value::Object(fields) => Value::Object(
            fields
                .iter()
                .map(|(key, value)| {
                    let value = match value {
                        Value::String(_) if is_list_field(key) => Value::Array(vec![value.clone()]),
                        other => other.clone(),
                    };
                    (key.clone(), normalized(&value))
                })
                .collect(),
        ),
        Value::Array(items) => {
            let mut items: Vec<Value> = items.iter().map(normalized).collect();
            items.sort_by_key(Value::to_string);
            Value::Array(items)
        }
        other => other.clone(),
    }
}

fn is_list_field(key: &str) -> bool {
    matches!(
        key,
        "Action" | "NotAction" | "Resource" | "NotResource" | "AWS" | "Service"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const SID: &str = "EcrReplStackReplication0011223344556677";

    fn grant<'a>(prefixes: &'a [String], allow_create_repository: bool) -> Grant<'a> {
        Grant {
            statement_id: SID,
            partition: "aws",
            source_account: "111111111111",
            destination_account: "222222222222",
            region: "eu-west-1",
            prefixes,
            allow_create_repository,
        }
    }

    fn others_policy() -> String {
        json!({
            "Version": "2012-10-17",
            "Id": "kept-as-is",
            "Statement": [{
                "Sid": "OtherSource",
                "Effect": "Allow",
                "Principal": {"AWS": "arn:aws:iam::333333333333:root"},
                "Action": "ecr:ReplicateImage",
                "Resource": "arn:aws:ecr:eu-west-1:222222222222:repository/*"
            }]
        })
        .to_string()
    }

    fn put(update: PolicyUpdate) -> Value {
        match update {
            PolicyUpdate::Put(text) => serde_json::from_str(&text).unwrap(),
            other => panic!("expected a document to write, got {other:?}"),
        }
    }

    #[test]
    fn the_statement_covers_every_repository_without_prefixes() {
        let s = statement(&grant(&[], false));
        assert_eq!(
            s,
            json!({
                "Sid": SID,
                "Effect": "Allow",
                "Principal": {"AWS": "arn:aws:iam::111111111111:root"},
                "Action": ["ecr:ReplicateImage"],
                "Resource": ["arn:aws:ecr:eu-west-1:222222222222:repository/*"]
            })
        );
    }

    #[test]
    fn the_statement_lists_one_resource_per_prefix_and_may_create_repositories() {
        let prefixes = vec!["team-a/".to_string(), "base".to_string()];
        let s = statement(&grant(&prefixes, true));
        assert_eq!(
            s["Action"],
            json!(["ecr:CreateRepository", "ecr:ReplicateImage"])
        );
        assert_eq!(
            s["Resource"],
            json!([
                "arn:aws:ecr:eu-west-1:222222222222:repository/team-a/*",
                "arn:aws:ecr:eu-west-1:222222222222:repository/base*"
            ])
        );
    }

    #[test]
    fn a_new_document_is_created_when_there_is_no_policy() {
        let s = statement(&grant(&[], false));
        let doc = put(with_statement(None, &s).unwrap());
        assert_eq!(doc, json!({"Version": "2012-10-17", "Statement": [s]}));
    }

    #[test]
    fn other_statements_and_fields_are_kept_in_order() {
        let s = statement(&grant(&[], false));
        let doc = put(with_statement(Some(&others_policy()), &s).unwrap());
        let original: Value = serde_json::from_str(&others_policy()).unwrap();
        assert_eq!(doc["Id"], "kept-as-is");
        assert_eq!(doc["Statement"][0], original["Statement"][0]);
        assert_eq!(doc["Statement"][1], s);
        let keys: Vec<&String> = doc.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["Version", "Id", "Statement"]);
    }

    #[test]
    fn our_statement_is_replaced_in_place_and_duplicates_dropped() {
        let old = statement(&grant(&[], false));
        let current = json!({"Version": "2012-10-17", "Statement": [
            old.clone(),
            {"Sid": "OtherSource", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::333333333333:root"},
             "Action": "ecr:ReplicateImage", "Resource": "*"},
            old
        ]})
        .to_string();
        let new = statement(&grant(&[], true));
        let doc = put(with_statement(Some(&current), &new).unwrap());
        let statements = doc["Statement"].as_array().unwrap();
        assert_eq!(statements.len(), 2);
        assert_eq!(statements[0], new);
        assert_eq!(statements[1]["Sid"], "OtherSource");
    }

    #[test]
    fn an_equivalent_statement_needs_no_write() {
        let s = statement(&grant(&[], true));
        let mut reordered = s.clone();
        reordered["Action"] = json!(["ecr:ReplicateImage", "ecr:CreateRepository"]);
        reordered["Resource"] = json!("arn:aws:ecr:eu-west-1:222222222222:repository/*");
        let current = json!({"Version": "2012-10-17", "Statement": [reordered]}).to_string();
        assert_eq!(
            with_statement(Some(&current), &s).unwrap(),
            PolicyUpdate::Unchanged
        );
        assert!(holds(Some(&current), &s));
        assert!(!holds(Some(&others_policy()), &s));
        assert!(!holds(None, &s));
    }

    #[test]
    fn a_single_statement_object_is_read_as_a_list() {
        let single = json!({"Version": "2012-10-17", "Statement": {
            "Sid": "Solo", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::333333333333:root"},
            "Action": "ecr:ReplicateImage", "Resource": "*"
        }})
        .to_string();
        let s = statement(&grant(&[], false));
        let doc = put(with_statement(Some(&single), &s).unwrap());
        assert_eq!(doc["Statement"][0]["Sid"], "Solo");
        assert_eq!(doc["Statement"][1]["Sid"], SID);
    }

    #[test]
    fn removing_keeps_others_and_deletes_an_empty_policy() {
        let s = statement(&grant(&[], false));
        let both = put(with_statement(Some(&others_policy()), &s).unwrap()).to_string();

        let doc = put(without_statement(Some(&both), SID).unwrap());
        assert_eq!(
            doc,
            serde_json::from_str::<Value>(&others_policy()).unwrap()
        );
        assert!(mentions(Some(&both), SID));
        assert!(!mentions(Some(&doc.to_string()), SID));

        let only_ours = put(with_statement(None, &s).unwrap()).to_string();
        assert_eq!(
            without_statement(Some(&only_ours), SID).unwrap(),
            PolicyUpdate::Delete
        );
        assert_eq!(
            without_statement(Some(&others_policy()), SID).unwrap(),
            PolicyUpdate::Unchanged
        );
        assert_eq!(
            without_statement(None, SID).unwrap(),
            PolicyUpdate::Unchanged
        );
    }

    #[test]
    fn a_document_over_the_limit_is_refused() {
        let prefixes: Vec<String> = (0..100)
            .map(|i| format!("{}-{i:03}/", "a-long-team-name".repeat(4)))
            .collect();
        let s = statement(&grant(&prefixes, true));
        match with_statement(Some(&others_policy()), &s) {
            Err(PolicyError::TooLong { chars }) => assert!(chars > MAX_POLICY_CHARS),
            other => panic!("expected TooLong, got {other:?}"),
        }
    }

    #[test]
    fn an_unreadable_policy_is_not_overwritten() {
        let s = statement(&grant(&[], false));
        for text in ["not json", "[]", r#"{"Statement": 3}"#] {
            assert!(matches!(
                with_statement(Some(text), &s),
                Err(PolicyError::Unreadable { .. })
            ));
        }
    }

    mod generated {
        use super::*;
        use proptest::prelude::*;

        fn other_statement() -> impl Strategy<Value = Value> {
            ("[A-Za-z0-9]{1,12}", "[0-9]{12}", any::<bool>()).prop_map(|(sid, account, single)| {
                let action = if single {
                    json!("ecr:ReplicateImage")
                } else {
                    json!(["ecr:ReplicateImage", "ecr:CreateRepository"])
                };
                json!({
                    "Sid": format!("Other{sid}"),
                    "Effect": "Allow",
                    "Principal": {"AWS": format!("arn:aws:iam::{account}:root")},
                    "Action": action,
                    "Resource": "*"
                })
            })
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(1000))]

            #[test]
            fn the_statement_grants_only_replication_to_the_source_account_root(
                source in "[0-9]{12}",
                destination in "[0-9]{12}",
                region in "[a-z0-9-]{2,25}",
                prefixes in prop::collection::vec("[a-z0-9][a-z0-9._/-]{1,20}", 0..6),
                allow_create_repository in any::<bool>(),
            ) {
                let s = statement(&Grant {
                    statement_id: SID,
                    partition: "aws",
                    source_account: &source,
                    destination_account: &destination,
                    region: &region,
                    prefixes: &prefixes,
                    allow_create_repository,
                });
                prop_assert_eq!(&s["Effect"], "Allow");
                prop_assert_eq!(&s["Principal"], &json!({"AWS": format!("arn:aws:iam::{source}:root")}));
                let actions: Vec<&str> =
                    s["Action"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
                prop_assert!(actions.contains(&"ecr:ReplicateImage"));
                prop_assert!(actions
                    .iter()
                    .all(|a| ["ecr:ReplicateImage", "ecr:CreateRepository"].contains(a)));
                prop_assert_eq!(actions.contains(&"ecr:CreateRepository"), allow_create_repository);
                let repositories = format!("arn:aws:ecr:{region}:{destination}:repository/");
                for resource in s["Resource"].as_array().unwrap() {
                    prop_assert!(resource.as_str().unwrap().starts_with(&repositories));
                }
                prop_assert_eq!(s["Resource"].as_array().unwrap().len(), prefixes.len().max(1));
            }

            #[test]
            fn adding_then_removing_keeps_every_other_statement_in_order(
                others in prop::collection::vec(other_statement(), 0..8),
                allow_create_repository in any::<bool>(),
            ) {
                let document = json!({"Version": "2012-10-17", "Statement": others.clone()}).to_string();
                let ours = statement(&grant(&[], allow_create_repository));

                let added = put(with_statement(Some(&document), &ours).unwrap());
                let statements = added["Statement"].as_array().unwrap();
                prop_assert_eq!(&statements[..others.len()], &others[..]);
                prop_assert_eq!(&statements[others.len()], &ours);
                prop_assert!(holds(Some(&added.to_string()), &ours));

                match without_statement(Some(&added.to_string()), SID).unwrap() {
                    PolicyUpdate::Delete => prop_assert!(others.is_empty()),
                    PolicyUpdate::Put(text) => {
                        let removed: Value = serde_json::from_str(&text).unwrap();
                        prop_assert_eq!(&removed["Statement"], &json!(others));
                    }
                    PolicyUpdate::Unchanged => prop_assert!(false, "our statement was there"),
                }
            }
        }
    }
}
