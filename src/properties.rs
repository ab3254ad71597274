//! The resource's properties: reading them from the `ResourceProperties` that
//! CloudFormation sends, and validating every field before anything is written.
//!
//! CloudFormation turns every scalar into a string, so booleans arrive as
//! `"true"` or `"false"`. Every problem is reported with the path of the
//! property it concerns (`Destinations[1].RoleArn`), and all problems of one
//! event are reported together.

use crate::repository_settings::{self, RepositorySettings};
use serde_json::{Map, Value};
use std::fmt;

/// Property names accepted at the top level of `ResourceProperties`.
pub const KNOWN_PROPERTIES: [&str; 7] = [
    "Destinations",
    "RepositoryPrefixes",
    "AllowCreateRepository",
    "BackfillExistingImages",
    "DestinationRepositorySettings",
    "ServiceToken",
    "ServiceTimeout",
];

/// Property names accepted in each item of `Destinations`.
pub const KNOWN_DESTINATION_PROPERTIES: [&str; 5] = [
    "Region",
    "AccountId",
    "RoleArn",
    "ExternalId",
    "TemplateRoleArn",
];

/// ECR accepts at most 25 distinct destinations in a registry's configuration.
pub const MAX_DESTINATIONS: usize = 25;

/// ECR accepts at most 100 repository filters in one rule.
pub const MAX_PREFIXES: usize = 100;

/// The registry the function configures: its own account and region.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceRegistry {
    /// The 12-digit account id, as ECR reports it for the function's credentials.
    pub account_id: String,
    /// The region the function runs in.
    pub region: String,
    /// The partition (`aws`, `aws-cn`, ...), used to build ARNs.
    pub partition: String,
}

/// The validated properties of one replication resource.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplicationSpec {
    /// Where images are replicated to, in the order they were declared.
    pub destinations: Vec<Destination>,
    /// Repository name prefixes; empty means every repository.
    pub prefixes: Vec<String>,
    /// Whether destinations may create repositories on the first replicated push.
    pub allow_create_repository: bool,
    /// Whether images that already exist are copied to new destinations.
    pub backfill_existing_images: bool,
    /// Settings for the repositories that replication creates, applied
    /// through repository creation templates in each destination.
    pub repository_settings: Option<RepositorySettings>,
}

/// One destination registry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Destination {
    /// Region of the destination registry.
    pub region: String,
    /// Account of the destination registry.
    pub account_id: String,
    /// The role to assume for the registry policy; `None` for a destination in
    /// the source account, which needs no registry policy.
    pub role: Option<RoleToAssume>,
    /// The role in the destination account that ECR uses to apply a
    /// repository creation template with a KMS key or tags.
    pub template_role_arn: Option<String>,
}

/// A role in a destination account and how to assume it.
#[derive(Clone, PartialEq, Eq)]
pub struct RoleToAssume {
    /// The role's ARN.
    pub arn: String,
    /// The external id the role's trust policy asks for, if any.
    pub external_id: Option<String>,
}

impl fmt::Debug for RoleToAssume {
    // The external id is a shared secret of sorts: keep it out of debug output.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RoleToAssume")
            .field("arn", &self.arn)
            .field(
                "external_id",
                &self.external_id.as_ref().map(|_| "** redacted **"),
            )
            .finish()
    }
}

impl Destination {
    /// Whether the destination lies in another account and so needs a registry policy.
    pub fn is_cross_account(&self) -> bool {
        self.role.is_some()
    }

    /// A short label for messages: `222222222222/eu-west-1`.
    pub fn label(&self) -> String {
        format!("{}/{}", self.account_id, self.region)
    }
}

/// One problem with one property.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PropertyError {
    /// Where the problem is, such as `Destinations[1].RoleArn`.
    pub path: String,
    /// What is wrong with it.
    pub problem: String,
}

impl fmt::Display for PropertyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.problem)
    }
}

/// Every problem found in one set of properties.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidProperties(pub Vec<PropertyError>);

impl fmt::Display for InvalidProperties {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("invalid properties: ")?;
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for InvalidProperties {}

impl ReplicationSpec {
    /// Reads and validates `ResourceProperties` for a function running in `source`.
    ///
    /// ```
    /// use ecr_replication::properties::{ReplicationSpec, SourceRegistry};
    /// use serde_json::json;
    ///
    /// let source = SourceRegistry {
    ///     account_id: "111111111111".into(),
    ///     region: "us-east-1".into(),
    ///     partition: "aws".into(),
    /// };
    /// let spec = ReplicationSpec::parse(
    ///     &json!({
    ///         "ServiceToken": "arn:aws:lambda:us-east-1:111111111111:function:f",
    ///         "Destinations": [{"Region": "eu-west-1"}],
    ///         "AllowCreateRepository": "TRUE"
    ///     }),
    ///     &source,
    /// )
    /// .unwrap();
    /// assert_eq!(spec.destinations[0].account_id, "111111111111");
    /// assert!(spec.allow_create_repository);
    ///
    /// let error = ReplicationSpec::parse(&json!({"Destination": []}), &source).unwrap_err();
    /// assert!(error.to_string().contains("Destination: unknown property"));
    /// ```
    pub fn parse(properties: &Value, source: &SourceRegistry) -> Result<Self, InvalidProperties> {
        let mut errors = Vec::new();
        let Some(properties) = properties.as_object() else {
            errors.push(error(
                "ResourceProperties",
                format!("must be an object, found {}", kind(properties)),
            ));
            return Err(InvalidProperties(errors));
        };
        reject_unknown(properties, "", &KNOWN_PROPERTIES, &mut errors);

        let errors_before_destinations = errors.len();
        let destinations = parse_destinations(properties.get("Destinations"), source, &mut errors);
        let destinations_valid = errors.len() == errors_before_destinations;
        let prefixes = parse_prefixes(properties.get("RepositoryPrefixes"), &mut errors);
        let allow_create_repository = parse_bool(
            properties.get("AllowCreateRepository"),
            "AllowCreateRepository",
            &mut errors,
        );
        let backfill_existing_images = parse_bool(
            properties.get("BackfillExistingImages"),
            "BackfillExistingImages",
            &mut errors,
        );
        let repository_settings = properties
            .get("DestinationRepositorySettings")
            .and_then(|value| repository_settings::parse(value, &mut errors));
        if destinations_valid {
            check_template_roles(
                &destinations,
                repository_settings.as_ref(),
                &prefixes,
                &mut errors,
            );
        }

        if errors.is_empty() {
            Ok(Self {
                destinations,
                prefixes,
                allow_create_repository,
                backfill_existing_images,
                repository_settings,
            })
        } else {
            Err(InvalidProperties(errors))
        }
    }

    /// The destinations that lie in other accounts and need a registry policy.
    pub fn cross_account_destinations(&self) -> impl Iterator<Item = &Destination> {
        self.destinations.iter().filter(|d| d.is_cross_account())
    }
}

/// Whether `prefix` is a repository filter ECR accepts: 2 to 256 characters
/// matching `^(?:[a-z0-9]+(?:[._-][a-z0-9]*)*/)*[a-z0-9]*(?:[._-][a-z0-9]*)*$`.
///
/// The pattern means: segments separated by `/`; every segment but the last
/// starts with a lowercase letter or digit; all characters are lowercase
/// letters, digits, `.`, `_` or `-`; the last segment may be empty.
pub fn is_valid_prefix(prefix: &str) -> bool {
    if !(2..=256).contains(&prefix.len()) {
        return false;
    }
    let allowed = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c);
    let mut segments = prefix.split('/').peekable();
    while let Some(segment) = segments.next() {
        let is_last = segments.peek().is_none();
        if !segment.chars().all(allowed) {
            return false;
        }
        let starts_alphanumeric = segment
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
        if !is_last && !starts_alphanumeric {
            return false;
        }
    }
    true
}

fn parse_destinations(
    value: Option<&Value>,
    source: &SourceRegistry,
    errors: &mut Vec<PropertyError>,
) -> Vec<Destination> {
    let Some(value) = value else {
        errors.push(error(
            "Destinations",
            "is required: list 1 to 25 destinations",
        ));
        return Vec::new();
    };
    let Some(items) = value.as_array() else {
        errors.push(error(
            "Destinations",
            format!("must be a list of destinations, found {}", kind(value)),
        ));
        return Vec::new();
    };
    if items.is_empty() || items.len() > MAX_DESTINATIONS {
        errors.push(error(
            "Destinations",
            format!(
                "must list 1 to {MAX_DESTINATIONS} destinations, found {}",
                items.len()
            ),
        ));
        return Vec::new();
    }

    let mut destinations: Vec<Destination> = Vec::new();
    let mut indices = Vec::new();
    for (index, item) in items.iter().enumerate() {
        let path = format!("Destinations[{index}]");
        let Some(destination) = parse_destination(item, &path, source, errors) else {
            continue;
        };

        if destination.account_id == source.account_id && destination.region == source.region {
            errors.push(error(
                &path,
                format!(
                    "is the source registry itself ({}); replicate to another region or account",
                    destination.label()
                ),
            ));
            continue;
        }
        if let Some(first) = destinations
            .iter()
            .position(|d| d.account_id == destination.account_id && d.region == destination.region)
        {
            errors.push(error(
                &path,
                format!(
                    "duplicates Destinations[{}] ({})",
                    indices[first],
                    destination.label()
                ),
            ));
            continue;
        }
        destinations.push(destination);
        indices.push(index);
    }
    destinations
}

fn parse_destination(
    item: &Value,
    path: &str,
    source: &SourceRegistry,
    errors: &mut Vec<PropertyError>,
) -> Option<Destination> {
    let Some(fields) = item.as_object() else {
        errors.push(error(
            path,
            format!(
                "must be an object with Region and, for another account, AccountId and RoleArn; found {}",
                kind(item)
            ),
        ));
        return None;
    };
    let errors_before = errors.len();
    reject_unknown(fields, path, &KNOWN_DESTINATION_PROPERTIES, errors);

    let region = match string_field(fields, "Region", path, errors) {
        Some(region) if is_valid_region(&region) => Some(region),
        Some(region) => {
            errors.push(error(
                &format!("{path}.Region"),
                format!(
                    "{region:?} is not a region name (2 to 25 lowercase letters, digits and hyphens, such as eu-west-1)"
                ),
            ));
            None
        }
        None => {
            if !fields.contains_key("Region") {
                errors.push(error(&format!("{path}.Region"), "is required"));
            }
            None
        }
    };

    let account_id = match string_field(fields, "AccountId", path, errors) {
        Some(account) if is_account_id(&account) => Some(account),
        Some(account) => {
            errors.push(error(
                &format!("{path}.AccountId"),
                format!("{account:?} is not an account id (12 digits)"),
            ));
            None
        }
        None if fields.contains_key("AccountId") => None,
        None => Some(source.account_id.clone()),
    };

    let role_arn = string_field(fields, "RoleArn", path, errors);
    let external_id = string_field(fields, "ExternalId", path, errors);
    let template_role_arn = string_field(fields, "TemplateRoleArn", path, errors);
    if let Some(external_id) = &external_id
        && !is_valid_external_id(external_id)
    {
        errors.push(error(
            &format!("{path}.ExternalId"),
            "must be 2 to 1224 characters of letters, digits and +=,.@:/-_",
        ));
    }

    let account_id = account_id?;
    let role = if account_id == source.account_id {
        // A destination in the source account needs no registry policy, so no role.
        None
    } else {
        match role_arn {
            None => {
                if !fields.contains_key("RoleArn") {
                    errors.push(error(
                        &format!("{path}.RoleArn"),
                        format!(
                            "is required for a destination in another account ({account_id}): \
                             the role in that account that may change its registry policy"
                        ),
                    ));
                }
                None
            }
            Some(arn) => match check_role_arn(&arn, &account_id, &source.partition) {
                Ok(()) => Some(RoleToAssume { arn, external_id }),
                Err(problem) => {
                    errors.push(error(&format!("{path}.RoleArn"), problem));
                    None
                }
            },
        }
    };

    if let Some(arn) = &template_role_arn
        && let Err(problem) = check_role_arn(arn, &account_id, &source.partition)
    {
        errors.push(error(&format!("{path}.TemplateRoleArn"), problem));
    }

    if errors.len() > errors_before {
        return None;
    }
    Some(Destination {
        region: region?,
        account_id,
        role,
        template_role_arn,
    })
}

/// Checks the settings and `TemplateRoleArn` against the destinations and
/// prefixes they apply to. Call it only when every destination is valid, so
/// that positions are those the user wrote.
fn check_template_roles(
    destinations: &[Destination],
    settings: Option<&RepositorySettings>,
    prefixes: &[String],
    errors: &mut Vec<PropertyError>,
) {
    let indexed: Vec<(usize, &Destination)> = destinations.iter().enumerate().collect();
    match settings {
        Some(settings) => {
            let roles: Vec<Option<String>> = destinations
                .iter()
                .map(|d| d.template_role_arn.clone())
                .collect();
            repository_settings::check_against(settings, &indexed, prefixes, &roles, errors);
        }
        None => {
            for (index, _) in indexed
                .iter()
                .filter(|(_, d)| d.template_role_arn.is_some())
            {
                errors.push(error(
                    &format!("Destinations[{index}].TemplateRoleArn"),
                    "is only used with DestinationRepositorySettings",
                ));
            }
        }
    }
}

fn parse_prefixes(value: Option<&Value>, errors: &mut Vec<PropertyError>) -> Vec<String> {
    let Some(value) = value else {
        return Vec::new();
    };
    // An empty string is how CloudFormation renders an empty list from some
    // intrinsic functions; it means no prefixes.
    if value.as_str() == Some("") {
        return Vec::new();
    }
    let Some(items) = value.as_array() else {
        errors.push(error(
            "RepositoryPrefixes",
            format!("must be a list of strings, found {}", kind(value)),
        ));
        return Vec::new();
    };
    if items.len() > MAX_PREFIXES {
        errors.push(error(
            "RepositoryPrefixes",
            format!(
                "may list at most {MAX_PREFIXES} prefixes, found {}",
                items.len()
            ),
        ));
        return Vec::new();
    }

    let mut prefixes: Vec<String> = Vec::new();
    for (index, item) in items.iter().enumerate() {
        let path = format!("RepositoryPrefixes[{index}]");
        let Some(prefix) = item.as_str() else {
            errors.push(error(
                &path,
                format!("must be a string, found {}", kind(item)),
            ));
            continue;
        };
        if !is_valid_prefix(prefix) {
            errors.push(error(
                &path,
                format!(
                    "{prefix:?} is not a repository prefix ECR accepts: 2 to 256 characters, \
                     lowercase letters, digits, '.', '_', '-' and '/', each '/'-separated part \
                     but the last starting with a letter or digit"
                ),
            ));
            continue;
        }
        if let Some(first) = items[..index]
            .iter()
            .position(|p| p.as_str() == Some(prefix))
        {
            errors.push(error(
                &path,
                format!("duplicates RepositoryPrefixes[{first}]"),
            ));
            continue;
        }
        prefixes.push(prefix.to_owned());
    }
    prefixes
}

fn parse_bool(value: Option<&Value>, path: &str, errors: &mut Vec<PropertyError>) -> bool {
    match value {
        None => false,
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => true,
        Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => false,
        Some(other) => {
            errors.push(error(
                path,
                format!("must be \"true\" or \"false\", found {}", describe(other)),
            ));
            false
        }
    }
}

/// Reads an optional string field; reports a field of another type.
fn string_field(
    fields: &Map<String, Value>,
    name: &str,
    parent: &str,
    errors: &mut Vec<PropertyError>,
) -> Option<String> {
    match fields.get(name)? {
        Value::String(s) => Some(s.clone()),
        other => {
            errors.push(error(
                &format!("{parent}.{name}"),
                format!("must be a string, found {}", kind(other)),
            ));
            None
        }
    }
}

fn reject_unknown(
    fields: &Map<String, Value>,
    parent: &str,
    known: &[&str],
    errors: &mut Vec<PropertyError>,
) {
    for name in fields.keys().filter(|name| !known.contains(&name.as_str())) {
        let path = if parent.is_empty() {
            name.clone()
        } else {
            format!("{parent}.{name}")
        };
        errors.push(error(
            &path,
            format!(
                "unknown property; known properties are {}",
                known.join(", ")
            ),
        ));
    }
}

/// Checks that `arn` names an IAM role in `account_id` and in `partition`.
fn check_role_arn(arn: &str, account_id: &str, partition: &str) -> Result<(), String> {
    let shape = "must be an IAM role ARN such as arn:aws:iam::222222222222:role/ecr-replication-destination";
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let [
        prefix,
        arn_partition,
        service,
        region,
        arn_account,
        resource,
    ] = parts[..]
    else {
        return Err(format!("{arn:?} {shape}"));
    };
    let role_path = resource.strip_prefix("role/").unwrap_or_default();
    let name_ok = !role_path.is_empty()
        && !role_path.ends_with('/')
        && role_path
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+=,.@_-/".contains(c));
    if prefix != "arn" || service != "iam" || !region.is_empty() || !name_ok {
        return Err(format!("{arn:?} {shape}"));
    }
    if !is_account_id(arn_account) {
        return Err(format!("{arn:?} {shape}"));
    }
    if arn_account != account_id {
        return Err(format!(
            "{arn} belongs to account {arn_account}, not to the destination account {account_id}"
        ));
    }
    if arn_partition != partition {
        return Err(format!(
            "{arn} is in partition {arn_partition}, but replication stays within the function's partition {partition}"
        ));
    }
    Ok(())
}

/// Whether `s` is a 12-digit account id.
pub fn is_account_id(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())
}

/// Whether `s` looks like a region name, as ECR's API model describes one.
pub fn is_valid_region(s: &str) -> bool {
    (2..=25).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

fn is_valid_external_id(s: &str) -> bool {
    (2..=1224).contains(&s.len())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "+=,.@:/-_".contains(c))
}

pub(crate) fn error(path: &str, problem: impl Into<String>) -> PropertyError {
    PropertyError {
        path: path.to_owned(),
        problem: problem.into(),
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// A short rendering of a value for a message, cut to keep Reasons readable.
fn describe(value: &Value) -> String {
    let text = value.to_string();
    if text.chars().count() <= 40 {
        text
    } else {
        let cut: String = text.chars().take(40).collect();
        format!("{cut}...")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn source() -> SourceRegistry {
        SourceRegistry {
            account_id: "111111111111".into(),
            region: "us-east-1".into(),
            partition: "aws".into(),
        }
    }

    fn parse(value: Value) -> Result<ReplicationSpec, InvalidProperties> {
        ReplicationSpec::parse(&value, &source())
    }

    fn problems(value: Value) -> Vec<String> {
        parse(value)
            .expect_err("the properties should be refused")
            .0
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    const ROLE: &str = "arn:aws:iam::222222222222:role/ecr-replication-destination";

    #[test]
    fn reads_a_full_cross_account_declaration() {
        let spec = parse(json!({
            "ServiceToken": "arn:aws:lambda:us-east-1:111111111111:function:f",
            "ServiceTimeout": "300",
            "Destinations": [
                {"Region": "eu-west-1", "AccountId": "222222222222", "RoleArn": ROLE, "ExternalId": "shared-42"},
                {"Region": "us-west-2"}
            ],
            "RepositoryPrefixes": ["team-a/", "base-images"],
            "AllowCreateRepository": "true"
        }))
        .unwrap();

        assert_eq!(spec.destinations.len(), 2);
        let cross = &spec.destinations[0];
        assert_eq!(cross.account_id, "222222222222");
        assert_eq!(
            cross.role,
            Some(RoleToAssume {
                arn: ROLE.into(),
                external_id: Some("shared-42".into())
            })
        );
        let same = &spec.destinations[1];
        assert_eq!(same.account_id, "111111111111");
        assert!(!same.is_cross_account());
        assert_eq!(spec.prefixes, ["team-a/", "base-images"]);
        assert!(spec.allow_create_repository);
    }

    #[test]
    fn booleans_accept_strings_in_any_case_and_json_booleans() {
        for (value, expected) in [
            (json!("true"), true),
            (json!("True"), true),
            (json!("FALSE"), false),
            (json!(true), true),
            (json!(false), false),
        ] {
            let spec = parse(json!({
                "Destinations": [{"Region": "eu-west-1"}],
                "AllowCreateRepository": value
            }))
            .unwrap();
            assert_eq!(spec.allow_create_repository, expected, "{value}");
        }
        assert!(
            !parse(json!({"Destinations": [{"Region": "eu-west-1"}]}))
                .unwrap()
                .allow_create_repository
        );
    }

    #[test]
    fn a_boolean_that_is_neither_true_nor_false_is_refused() {
        assert_eq!(
            problems(
                json!({"Destinations": [{"Region": "eu-west-1"}], "AllowCreateRepository": "yes"})
            ),
            ["AllowCreateRepository: must be \"true\" or \"false\", found \"yes\""]
        );
    }

    #[test]
    fn unknown_properties_are_refused_with_the_known_ones() {
        let found = problems(json!({"Destination": [{"Region": "eu-west-1"}]}));
        assert_eq!(
            found,
            [
                "Destination: unknown property; known properties are Destinations, \
                 RepositoryPrefixes, AllowCreateRepository, BackfillExistingImages, \
                 DestinationRepositorySettings, ServiceToken, ServiceTimeout",
                "Destinations: is required: list 1 to 25 destinations"
            ]
        );

        let found = problems(json!({"Destinations": [{"Region": "eu-west-1", "Acount": "1"}]}));
        assert_eq!(
            found,
            [
                "Destinations[0].Acount: unknown property; known properties are Region, AccountId, RoleArn, ExternalId, TemplateRoleArn"
            ]
        );
    }

    #[test]
    fn a_cross_account_destination_needs_a_role_of_that_account() {
        assert_eq!(
            problems(
                json!({"Destinations": [{"Region": "eu-west-1", "AccountId": "222222222222"}]})
            ),
            [
                "Destinations[0].RoleArn: is required for a destination in another account \
              (222222222222): the role in that account that may change its registry policy"
            ]
        );
        assert_eq!(
            problems(json!({"Destinations": [
                {"Region": "eu-west-1", "AccountId": "333333333333", "RoleArn": ROLE}
            ]})),
            [
                "Destinations[0].RoleArn: arn:aws:iam::222222222222:role/ecr-replication-destination \
              belongs to account 222222222222, not to the destination account 333333333333"
            ]
        );
        assert_eq!(
            problems(json!({"Destinations": [
                {"Region": "eu-west-1", "AccountId": "222222222222", "RoleArn": "ecr-replication-destination"}
            ]})),
            [
                "Destinations[0].RoleArn: \"ecr-replication-destination\" must be an IAM role ARN \
              such as arn:aws:iam::222222222222:role/ecr-replication-destination"
            ]
        );
        assert_eq!(
            problems(json!({"Destinations": [
                {"Region": "cn-north-1", "AccountId": "222222222222",
                 "RoleArn": "arn:aws-cn:iam::222222222222:role/r"}
            ]})),
            [
                "Destinations[0].RoleArn: arn:aws-cn:iam::222222222222:role/r is in partition aws-cn, \
              but replication stays within the function's partition aws"
            ]
        );
    }

    #[test]
    fn a_same_account_destination_ignores_its_role() {
        let spec = parse(json!({"Destinations": [
            {"Region": "eu-west-1", "AccountId": "111111111111",
             "RoleArn": "arn:aws:iam::111111111111:role/unused"}
        ]}))
        .unwrap();
        assert_eq!(spec.destinations[0].role, None);
    }

    #[test]
    fn account_ids_must_be_twelve_digit_strings() {
        assert_eq!(
            problems(
                json!({"Destinations": [{"Region": "eu-west-1", "AccountId": "22222222222"}]})
            ),
            ["Destinations[0].AccountId: \"22222222222\" is not an account id (12 digits)"]
        );
        assert_eq!(
            problems(
                json!({"Destinations": [{"Region": "eu-west-1", "AccountId": 222222222222u64}]})
            ),
            ["Destinations[0].AccountId: must be a string, found a number"]
        );
    }

    #[test]
    fn the_source_registry_and_duplicates_are_refused() {
        assert_eq!(
            problems(json!({"Destinations": [{"Region": "us-east-1"}]})),
            [
                "Destinations[0]: is the source registry itself (111111111111/us-east-1); \
              replicate to another region or account"
            ]
        );
        assert_eq!(
            problems(json!({"Destinations": [
                {"Region": "eu-west-1", "AccountId": "222222222222", "RoleArn": ROLE},
                {"Region": "us-west-2"},
                {"Region": "eu-west-1", "AccountId": "222222222222", "RoleArn": ROLE}
            ]})),
            ["Destinations[2]: duplicates Destinations[0] (222222222222/eu-west-1)"]
        );
    }

    #[test]
    fn regions_and_destination_counts_are_checked() {
        assert_eq!(
            problems(json!({"Destinations": [{"Region": "EU-WEST-1"}]})),
            [
                "Destinations[0].Region: \"EU-WEST-1\" is not a region name (2 to 25 lowercase \
              letters, digits and hyphens, such as eu-west-1)"
            ]
        );
        assert_eq!(
            problems(json!({"Destinations": [{"AccountId": "111111111111"}]})),
            ["Destinations[0].Region: is required"]
        );
        assert_eq!(
            problems(json!({"Destinations": []})),
            ["Destinations: must list 1 to 25 destinations, found 0"]
        );
        let many: Vec<Value> = (0..26)
            .map(|i| json!({"Region": format!("xx-test-{i}")}))
            .collect();
        assert_eq!(
            problems(json!({ "Destinations": many })),
            ["Destinations: must list 1 to 25 destinations, found 26"]
        );
        assert_eq!(
            problems(json!({"Destinations": "eu-west-1"})),
            ["Destinations: must be a list of destinations, found a string"]
        );
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let found = problems(json!({
            "Destinations": [{"Region": "eu-west-1", "AccountId": "2"}, 7],
            "RepositoryPrefixes": ["Team/", "ok-prefix", "ok-prefix"],
            "AllowCreateRepository": "maybe"
        }));
        assert_eq!(found.len(), 5, "{found:#?}");
        assert!(found[0].starts_with("Destinations[0].AccountId:"));
        assert!(found[1].starts_with("Destinations[1]: must be an object"));
        assert!(
            found[2].starts_with("RepositoryPrefixes[0]: \"Team/\" is not a repository prefix")
        );
        assert_eq!(
            found[3],
            "RepositoryPrefixes[2]: duplicates RepositoryPrefixes[1]"
        );
        assert!(found[4].starts_with("AllowCreateRepository:"));
    }

    #[test]
    fn prefixes_follow_ecr_filter_rules() {
        for good in [
            "ab",
            "team-a/",
            "base-images",
            "a/b/c",
            "a./",
            "a/.x",
            "x-",
            "a__b",
        ] {
            assert!(is_valid_prefix(good), "{good} should be accepted");
        }
        for bad in ["a", "", "Team", "/a", "a//b", ".a/", "a b", "a*", "é1"] {
            assert!(!is_valid_prefix(bad), "{bad} should be refused");
        }
        assert!(is_valid_prefix(&"a".repeat(256)));
        assert!(!is_valid_prefix(&"a".repeat(257)));
    }

    #[test]
    fn prefixes_are_limited_to_one_hundred() {
        let many: Vec<String> = (0..101).map(|i| format!("p{i:03}")).collect();
        assert_eq!(
            problems(
                json!({"Destinations": [{"Region": "eu-west-1"}], "RepositoryPrefixes": many})
            ),
            ["RepositoryPrefixes: may list at most 100 prefixes, found 101"]
        );
    }

    #[test]
    fn properties_that_are_not_an_object_are_refused() {
        assert_eq!(
            problems(json!(["Destinations"])),
            ["ResourceProperties: must be an object, found a list"]
        );
    }

    #[test]
    fn the_external_id_is_not_shown_in_debug_output() {
        let role = RoleToAssume {
            arn: ROLE.into(),
            external_id: Some("very-secret".into()),
        };
        assert!(!format!("{role:?}").contains("very-secret"));
    }

    mod generated {
        use super::*;
        use proptest::prelude::*;

        fn any_json() -> impl Strategy<Value = Value> {
            let leaf = prop_oneof![
                Just(Value::Null),
                any::<bool>().prop_map(Value::from),
                any::<i64>().prop_map(Value::from),
                "[a-z0-9:/_-]{0,16}".prop_map(Value::from),
                Just(Value::from("222222222222")),
                Just(Value::from(ROLE)),
            ];
            let key = prop_oneof![
                prop::sample::select(vec![
                    "Destinations",
                    "RepositoryPrefixes",
                    "AllowCreateRepository",
                    "Region",
                    "AccountId",
                    "RoleArn",
                    "ExternalId",
                ])
                .prop_map(str::to_owned),
                "[A-Za-z]{1,8}",
            ];
            leaf.prop_recursive(4, 40, 6, move |inner| {
                prop_oneof![
                    prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                    prop::collection::btree_map(key.clone(), inner, 0..6)
                        .prop_map(|m| Value::Object(m.into_iter().collect())),
                ]
            })
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2000))]

            #[test]
            fn parsing_any_json_never_panics_and_every_problem_has_a_path(value in any_json()) {
                if let Err(invalid) = ReplicationSpec::parse(&value, &source()) {
                    prop_assert!(!invalid.0.is_empty());
                    for problem in &invalid.0 {
                        prop_assert!(!problem.path.is_empty() && !problem.problem.is_empty());
                    }
                }
            }

            #[test]
            fn the_prefix_check_is_ecr_s_filter_pattern(prefix in "[a-z0-9._/A-]{0,10}") {
                let pattern = regex::Regex::new(
                    r"^(?:[a-z0-9]+(?:[._-][a-z0-9]*)*/)*[a-z0-9]*(?:[._-][a-z0-9]*)*$",
                )
                .unwrap();
                let expected = (2..=256).contains(&prefix.len()) && pattern.is_match(&prefix);
                prop_assert_eq!(is_valid_prefix(&prefix), expected);
            }
        }
    }
}
