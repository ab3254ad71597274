//! The names that tie what this resource writes in AWS to the resource itself.
//!
//! Both derive from the stack id and the logical id, which CloudFormation
//! sends with every event of the resource's life. So every event can compute
//! them again, and a Delete can tell whether its `PhysicalResourceId` is one
//! this handler issued.

use sha2::{Digest, Sha256};

/// The longest part of a stack or logical name kept in a statement id.
const NAME_PART_LEN: usize = 24;

/// The statement id and physical id of one custom resource.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResourceIdentity {
    /// The `Sid` of the resource's statement in destination registry policies:
    /// letters and digits only, stable for the resource's life.
    pub statement_id: String,
    /// The `PhysicalResourceId` answered for every successful event. It equals
    /// the statement id, so `!Ref` gives the id to look for in a registry policy.
    pub physical_id: String,
}

impl ResourceIdentity {
    /// Derives the identity of the resource `logical_id` in the stack `stack_id`.
    ///
    /// ```
    /// use ecr_replication::identity::ResourceIdentity;
    ///
    /// let stack = "arn:aws:cloudformation:us-east-1:111111111111:stack/app-prod/4b1c2f00-8a4e-11ef-9a1e-0afffa3b1d0f";
    /// let id = ResourceIdentity::new(stack, "Replication");
    /// assert!(id.statement_id.starts_with("EcrReplAppprodReplication"));
    /// assert!(id.statement_id.chars().all(|c| c.is_ascii_alphanumeric()));
    /// assert_eq!(id, ResourceIdentity::new(stack, "Replication"));
    /// assert_ne!(id, ResourceIdentity::new(stack, "Replication2"));
    /// ```
    pub fn new(stack_id: &str, logical_id: &str) -> Self {
        let digest = Sha256::digest(format!("{stack_id}\n{logical_id}").as_bytes());
        let hash: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
        let statement_id = format!(
            "EcrRepl{}{}{hash}",
            capitalized_alphanumerics(stack_name(stack_id)),
            capitalized_alphanumerics(logical_id),
        );
        Self {
            physical_id: statement_id.clone(),
            statement_id,
        }
    }

    /// The `PhysicalResourceId` answered for a Create that failed before it
    /// wrote anything: a Delete carrying it has nothing to remove.
    pub fn unwritten_physical_id(&self) -> String {
        format!("{}-not-created", self.physical_id)
    }

    /// Whether `physical_id` was issued by this handler for this resource.
    pub fn issued(&self, physical_id: &str) -> bool {
        physical_id == self.physical_id
    }
}

/// The stack name inside a stack ARN, or the whole id when it is not an ARN.
fn stack_name(stack_id: &str) -> &str {
    stack_id
        .split_once(":stack/")
        .and_then(|(_, rest)| rest.split('/').next())
        .unwrap_or(stack_id)
}

/// The letters and digits of `name`, first one upper case, cut to a readable length.
fn capitalized_alphanumerics(name: &str) -> String {
    let mut kept: String = name
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(NAME_PART_LEN)
        .collect();
    if let Some(first) = kept.get_mut(..1) {
        first.make_ascii_uppercase();
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    const STACK: &str = "arn:aws:cloudformation:us-east-1:111111111111:stack/team-a-ecr/1f6b8a40-0f2e-11ef-b1d2-0a1b2c3d4e5f";

    #[test]
    fn the_statement_id_is_readable_unique_and_alphanumeric() {
        let id = ResourceIdentity::new(STACK, "Replication");
        assert_eq!(
            id.statement_id.len(),
            "EcrReplTeamaecrReplication".len() + 16
        );
        assert!(id.statement_id.starts_with("EcrReplTeamaecrReplication"));
        assert!(id.statement_id.chars().all(|c| c.is_ascii_alphanumeric()));

        let other_stack = STACK.replace("1f6b8a40", "2f6b8a40");
        assert_ne!(id, ResourceIdentity::new(&other_stack, "Replication"));
    }

    #[test]
    fn long_names_are_cut_but_stay_distinct() {
        let long = "a".repeat(200);
        let one = ResourceIdentity::new(STACK, &format!("{long}1"));
        let two = ResourceIdentity::new(STACK, &format!("{long}2"));
        assert_ne!(one.statement_id, two.statement_id);
        assert!(one.statement_id.len() <= 7 + 2 * NAME_PART_LEN + 16);
    }

    #[test]
    fn only_the_issued_physical_id_is_recognised() {
        let id = ResourceIdentity::new(STACK, "Replication");
        assert!(id.issued(&id.physical_id));
        assert!(!id.issued(&id.unwritten_physical_id()));
        assert!(!id.issued("2026/12/03/[$LATEST]0123456789abcdef"));
    }
}
