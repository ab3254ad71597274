//! `DestinationRepositorySettings`: the settings that repositories created
//! by replication get in each destination, through ECR repository creation
//! templates applied for `REPLICATION`, and their validation.
//!
//! A template's prefix is a namespace: `team-a` applies to `team-a/...`.
//! Replication filters are plain name prefixes: `base` also matches
//! `baseline`. So with settings every `RepositoryPrefixes` entry must end
//! with `/`, and the template prefix is the entry without it; without
//! prefixes the template is ECR's `ROOT` template.

use crate::properties::{Destination, PropertyError, error};
use serde_json::{Map, Value};

/// Property names accepted in `DestinationRepositorySettings`.
pub const KNOWN_SETTINGS: [&str; 5] = [
    "ImageTagMutability",
    "EncryptionType",
    "KmsKey",
    "LifecyclePolicy",
    "ResourceTags",
];

/// ECR's limit on a lifecycle policy in a repository creation template.
const MAX_LIFECYCLE_POLICY_CHARS: usize = 30_720;

/// ECR's limit on tags of one resource.
const MAX_TAGS: usize = 50;

/// The template prefix that applies to every repository without a template
/// of its own.
pub const ROOT_PREFIX: &str = "ROOT";

/// Validated settings for repositories that replication creates.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RepositorySettings {
    /// `MUTABLE` or `IMMUTABLE`, when given.
    pub image_tag_mutability: Option<String>,
    /// `AES256` or `KMS`, when given.
    pub encryption_type: Option<String>,
    /// The KMS key: an ARN in the one destination region, or a key id that
    /// names a key in each destination account and region.
    pub kms_key: Option<KmsKey>,
    /// The lifecycle policy text.
    pub lifecycle_policy: Option<String>,
    /// Tags as (key, value).
    pub resource_tags: Vec<(String, String)>,
}

/// How the KMS key was given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KmsKey {
    /// A full key ARN, usable only in its own region.
    Arn(String),
    /// A key id (such as a multi-region key's `mrk-...` id), resolved to
    /// `arn:<partition>:kms:<region>:<account>:key/<id>` per destination.
    Id(String),
}

impl RepositorySettings {
    /// Whether ECR needs a role of the destination account to apply the
    /// template (`customRoleArn`): for a KMS key or tags.
    pub fn needs_template_role(&self) -> bool {
        self.kms_key.is_some() || !self.resource_tags.is_empty()
    }

    /// The key ARN to use in `destination`.
    pub fn kms_key_arn(&self, partition: &str, destination: &Destination) -> Option<String> {
        match self.kms_key.as_ref()? {
            KmsKey::Arn(arn) => Some(arn.clone()),
            KmsKey::Id(id) => Some(format!(
                "arn:{partition}:kms:{}:{}:key/{id}",
                destination.region, destination.account_id
            )),
        }
    }
}

/// The template prefixes for `prefixes`: each without its final `/`, or
/// `ROOT` when there are none.
pub fn template_prefixes(prefixes: &[String]) -> Vec<String> {
    if prefixes.is_empty() {
        return vec![ROOT_PREFIX.to_owned()];
    }
    prefixes
        .iter()
        .map(|p| p.trim_end_matches('/').to_owned())
        .collect()
}

/// Whether ECR accepts `prefix` as a repository creation template prefix:
/// `ROOT`, or 1 to 256 characters matching
/// `^[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*/?$`.
pub fn is_valid_template_prefix(prefix: &str) -> bool {
    if prefix == ROOT_PREFIX {
        return true;
    }
    if !(1..=256).contains(&prefix.len()) {
        return false;
    }
    let body = prefix.strip_suffix('/').unwrap_or(prefix);
    body.split('/').all(is_template_component)
}

/// One `/`-separated part: letters and digits in runs joined by `.`, `_`,
/// `__` or any number of `-`.
fn is_template_component(component: &str) -> bool {
    let alphanumeric = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    let mut runs = Vec::new();
    let mut separators = Vec::new();
    let mut current = String::new();
    let mut separator = String::new();
    for c in component.chars() {
        if alphanumeric(c) {
            if !separator.is_empty() {
                separators.push(std::mem::take(&mut separator));
            }
            current.push(c);
        } else if "._-".contains(c) {
            if !current.is_empty() {
                runs.push(std::mem::take(&mut current));
            } else if separator.is_empty() {
                return false;
            }
            separator.push(c);
        } else {
            return false;
        }
    }
    if !separator.is_empty() || current.is_empty() {
        return false;
    }
    runs.push(current);
    separators
        .iter()
        .all(|s| s == "." || s == "_" || s == "__" || s.chars().all(|c| c == '-'))
        && runs.len() == separators.len() + 1
}

/// Reads `DestinationRepositorySettings`; problems go to `errors`, and the
/// settings that were valid are returned so that checks against the
/// destinations can still run. `None` when it is not an object.
pub fn parse(value: &Value, errors: &mut Vec<PropertyError>) -> Option<RepositorySettings> {
    let path = "DestinationRepositorySettings";
    let Some(fields) = value.as_object() else {
        errors.push(error(
            path,
            format!("must be an object of {}", KNOWN_SETTINGS.join(", ")),
        ));
        return None;
    };
    for name in fields
        .keys()
        .filter(|n| !KNOWN_SETTINGS.contains(&n.as_str()))
    {
        errors.push(error(
            &format!("{path}.{name}"),
            format!(
                "unknown property; known properties are {}",
                KNOWN_SETTINGS.join(", ")
            ),
        ));
    }
    if fields.is_empty() {
        errors.push(error(
            path,
            "is empty: give at least one setting or leave it out",
        ));
    }

    let settings = RepositorySettings {
        image_tag_mutability: one_of(
            fields,
            "ImageTagMutability",
            &["MUTABLE", "IMMUTABLE"],
            errors,
        ),
        encryption_type: one_of(fields, "EncryptionType", &["AES256", "KMS"], errors),
        kms_key: kms_key(fields, errors),
        lifecycle_policy: lifecycle_policy(fields, errors),
        resource_tags: resource_tags(fields, errors),
    };
    if settings.kms_key.is_some() && settings.encryption_type.as_deref() != Some("KMS") {
        errors.push(error(
            &format!("{path}.KmsKey"),
            "is only used with EncryptionType KMS",
        ));
    }
    Some(settings)
}

/// Checks the settings against the destinations and prefixes they apply to.
pub fn check_against(
    settings: &RepositorySettings,
    destinations: &[(usize, &Destination)],
    prefixes: &[String],
    template_roles: &[Option<String>],
    errors: &mut Vec<PropertyError>,
) {
    for (index, prefix) in prefixes.iter().enumerate() {
        let path = format!("RepositoryPrefixes[{index}]");
        let namespace = prefix.trim_end_matches('/');
        if !prefix.ends_with('/') {
            errors.push(error(
                &path,
                format!(
                    "{prefix:?} must end with '/' when DestinationRepositorySettings is given: \
                     repository creation templates apply to namespaces, so only a prefix such as \
                     \"{prefix}/\" covers the same repositories as its template"
                ),
            ));
        } else if !is_valid_template_prefix(namespace) {
            errors.push(error(
                &path,
                format!(
                    "{namespace:?} is not a repository creation template prefix ECR accepts \
                     (lowercase letters and digits joined by '.', '_', '__' or '-', '/' between parts)"
                ),
            ));
        }
    }

    if let Some(KmsKey::Arn(arn)) = &settings.kms_key {
        let key_region = arn.split(':').nth(3).unwrap_or_default();
        for (index, destination) in destinations {
            if destination.region != key_region {
                errors.push(error(
                    "DestinationRepositorySettings.KmsKey",
                    format!(
                        "{arn} is in {key_region}, but Destinations[{index}] is in {}: a key ARN \
                         serves one region; give a key id (a multi-region key replicated to each \
                         destination region) instead",
                        destination.region
                    ),
                ));
            }
        }
    }

    for ((index, destination), role) in destinations.iter().zip(template_roles) {
        if settings.needs_template_role() && role.is_none() {
            errors.push(error(
                &format!("Destinations[{index}].TemplateRoleArn"),
                format!(
                    "is required with a KmsKey or ResourceTags: the role in {} that ECR uses to \
                     apply the repository creation template",
                    destination.account_id
                ),
            ));
        }
    }
}

fn one_of(
    fields: &Map<String, Value>,
    name: &str,
    allowed: &[&str],
    errors: &mut Vec<PropertyError>,
) -> Option<String> {
    let value = fields.get(name)?;
    match value.as_str() {
        Some(v) if allowed.contains(&v) => Some(v.to_owned()),
        _ => {
            errors.push(error(
                &format!("DestinationRepositorySettings.{name}"),
                format!("must be one of {}, found {value}", allowed.join(", ")),
            ));
            None
        }
    }
}

fn kms_key(fields: &Map<String, Value>, errors: &mut Vec<PropertyError>) -> Option<KmsKey> {
    let value = fields.get("KmsKey")?;
    let path = "DestinationRepositorySettings.KmsKey";
    let Some(key) = value.as_str() else {
        errors.push(error(path, "must be a string: a key ARN or key id"));
        return None;
    };
    if key.starts_with("alias/") || key.contains(":alias/") {
        errors.push(error(
            path,
            format!(
                "{key:?} is an alias, which repository creation templates do not accept; give \
                 the key id (a multi-region key replicated to each destination region) or a key ARN"
            ),
        ));
        return None;
    }
    if let Some(rest) = key.strip_prefix("arn:") {
        let parts: Vec<&str> = rest.splitn(5, ':').collect();
        let valid = parts.len() == 5
            && parts[1] == "kms"
            && !parts[2].is_empty()
            && crate::properties::is_account_id(parts[3])
            && parts[4].strip_prefix("key/").is_some_and(is_key_id);
        if !valid {
            errors.push(error(
                path,
                format!("{key:?} is not a KMS key ARN (arn:aws:kms:<region>:<account>:key/<id>)"),
            ));
            return None;
        }
        return Some(KmsKey::Arn(key.to_owned()));
    }
    if !is_key_id(key) {
        errors.push(error(
            path,
            format!("{key:?} is neither a key id (such as mrk-0123...) nor a key ARN"),
        ));
        return None;
    }
    Some(KmsKey::Id(key.to_owned()))
}

fn is_key_id(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

fn lifecycle_policy(
    fields: &Map<String, Value>,
    errors: &mut Vec<PropertyError>,
) -> Option<String> {
    let value = fields.get("LifecyclePolicy")?;
    let path = "DestinationRepositorySettings.LifecyclePolicy";
    // CloudFormation passes a JSON string; a YAML mapping arrives as an object.
    let text = match value {
        Value::String(text) => text.clone(),
        Value::Object(_) => value.to_string(),
        _ => {
            errors.push(error(
                path,
                "must be a lifecycle policy document as JSON text",
            ));
            return None;
        }
    };
    if text.chars().count() > MAX_LIFECYCLE_POLICY_CHARS {
        errors.push(error(
            path,
            format!("is longer than ECR's limit of {MAX_LIFECYCLE_POLICY_CHARS} characters"),
        ));
        return None;
    }
    let document: Value = match serde_json::from_str(&text) {
        Ok(document) => document,
        Err(e) => {
            errors.push(error(path, format!("is not valid JSON: {e}")));
            return None;
        }
    };
    if let Err(problem) = check_lifecycle_policy(&document) {
        errors.push(error(path, problem));
        return None;
    }
    Some(text)
}

/// The shape ECR documents for lifecycle policies: a non-empty `rules`
/// list, each rule with a unique positive `rulePriority`, a `selection`
/// with a `tagStatus` and an `action` of type `expire`.
fn check_lifecycle_policy(document: &Value) -> Result<(), String> {
    let rules = document["rules"]
        .as_array()
        .filter(|r| !r.is_empty())
        .ok_or("must have a non-empty \"rules\" list")?;
    let mut priorities = Vec::new();
    for (i, rule) in rules.iter().enumerate() {
        let priority = rule["rulePriority"]
            .as_u64()
            .filter(|p| *p >= 1)
            .ok_or(format!(
                "rules[{i}].rulePriority must be a positive integer"
            ))?;
        if priorities.contains(&priority) {
            return Err(format!("rules[{i}].rulePriority {priority} is used twice"));
        }
        priorities.push(priority);
        if !rule["selection"]["tagStatus"].is_string() {
            return Err(format!("rules[{i}].selection.tagStatus is required"));
        }
        if rule["action"]["type"] != "expire" {
            return Err(format!("rules[{i}].action.type must be \"expire\""));
        }
    }
    Ok(())
}

fn resource_tags(
    fields: &Map<String, Value>,
    errors: &mut Vec<PropertyError>,
) -> Vec<(String, String)> {
    let Some(value) = fields.get("ResourceTags") else {
        return Vec::new();
    };
    let path = "DestinationRepositorySettings.ResourceTags";
    let Some(items) = value.as_array() else {
        errors.push(error(path, "must be a list of {Key, Value}"));
        return Vec::new();
    };
    if items.len() > MAX_TAGS {
        errors.push(error(path, format!("may hold at most {MAX_TAGS} tags")));
        return Vec::new();
    }
    let mut tags: Vec<(String, String)> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let tag_path = format!("{path}[{i}]");
        let (Some(key), Some(value)) = (item["Key"].as_str(), item["Value"].as_str()) else {
            errors.push(error(&tag_path, "must be {Key: string, Value: string}"));
            continue;
        };
        let extra = item.as_object().is_some_and(|o| o.len() > 2);
        if extra || !(1..=128).contains(&key.chars().count()) || value.chars().count() > 256 {
            errors.push(error(
                &tag_path,
                "must be {Key, Value} with a key of 1 to 128 and a value of at most 256 characters",
            ));
            continue;
        }
        if key.to_ascii_lowercase().starts_with("aws:") {
            errors.push(error(
                &tag_path,
                format!("key {key:?} uses the reserved prefix aws:"),
            ));
            continue;
        }
        if tags.iter().any(|(k, _)| k == key) {
            errors.push(error(&tag_path, format!("key {key:?} is given twice")));
            continue;
        }
        tags.push((key.to_owned(), value.to_owned()));
    }
    tags
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parsed(value: Value) -> Result<RepositorySettings, Vec<String>> {
        let mut errors = Vec::new();
        match parse(&value, &mut errors) {
            Some(settings) if errors.is_empty() => Ok(settings),
            _ => Err(errors.iter().map(ToString::to_string).collect()),
        }
    }

    fn destination(region: &str, account: &str) -> Destination {
        Destination {
            region: region.into(),
            account_id: account.into(),
            role: None,
            template_role_arn: None,
        }
    }

    const POLICY: &str = r#"{"rules":[{"rulePriority":1,"selection":{"tagStatus":"untagged","countType":"sinceImagePushed","countUnit":"days","countNumber":14},"action":{"type":"expire"}}]}"#;

    #[test]
    fn reads_every_setting() {
        let settings = parsed(json!({
            "ImageTagMutability": "IMMUTABLE",
            "EncryptionType": "KMS",
            "KmsKey": "mrk-1234abcd12ab34cd56ef1234567890ab",
            "LifecyclePolicy": POLICY,
            "ResourceTags": [{"Key": "team", "Value": "a"}]
        }))
        .unwrap();
        assert_eq!(settings.image_tag_mutability.as_deref(), Some("IMMUTABLE"));
        assert_eq!(
            settings.resource_tags,
            [("team".to_string(), "a".to_string())]
        );
        assert!(settings.needs_template_role());
        assert_eq!(
            settings.kms_key_arn("aws", &destination("eu-west-1", "222222222222")),
            Some(
                "arn:aws:kms:eu-west-1:222222222222:key/mrk-1234abcd12ab34cd56ef1234567890ab"
                    .into()
            )
        );
    }

    #[test]
    fn a_lifecycle_policy_may_be_an_object() {
        let policy: Value = serde_json::from_str(POLICY).unwrap();
        let settings = parsed(json!({"LifecyclePolicy": policy})).unwrap();
        assert_eq!(
            serde_json::from_str::<Value>(settings.lifecycle_policy.as_deref().unwrap()).unwrap(),
            policy
        );
    }

    #[test]
    fn invalid_settings_are_named() {
        let errors = parsed(json!({
            "ImageTagMutability": "immutable",
            "EncryptionType": "AES256",
            "KmsKey": "alias/ecr",
            "LifecyclePolicy": "{\"rules\": [",
            "ResourceTags": [{"Key": "aws:x", "Value": "1"}, {"Key": "k"}],
            "Colour": "blue"
        }))
        .unwrap_err();
        let joined = errors.join("\n");
        for expected in [
            "DestinationRepositorySettings.Colour: unknown property",
            "DestinationRepositorySettings.ImageTagMutability: must be one of MUTABLE, IMMUTABLE",
            "DestinationRepositorySettings.KmsKey: \"alias/ecr\" is an alias",
            "DestinationRepositorySettings.LifecyclePolicy: is not valid JSON",
            "DestinationRepositorySettings.ResourceTags[0]: key \"aws:x\" uses the reserved prefix",
            "DestinationRepositorySettings.ResourceTags[1]: must be {Key: string, Value: string}",
        ] {
            assert!(
                joined.contains(expected),
                "missing {expected:?} in:\n{joined}"
            );
        }
    }

    #[test]
    fn lifecycle_policies_must_have_ecr_s_shape() {
        for (policy, problem) in [
            (json!({"rules": []}), "non-empty \"rules\" list"),
            (
                json!({"rules": [{"rulePriority": 0}]}),
                "rules[0].rulePriority must be a positive",
            ),
            (
                json!({"rules": [{"rulePriority": 1, "selection": {"tagStatus": "any"}, "action": {"type": "delete"}}]}),
                "rules[0].action.type must be \"expire\"",
            ),
        ] {
            let errors = parsed(json!({"LifecyclePolicy": policy.to_string()})).unwrap_err();
            assert!(errors[0].contains(problem), "{errors:?}");
        }
    }

    #[test]
    fn a_kms_key_needs_the_kms_encryption_type() {
        let errors = parsed(json!({"KmsKey": "mrk-1"})).unwrap_err();
        assert_eq!(
            errors,
            ["DestinationRepositorySettings.KmsKey: is only used with EncryptionType KMS"]
        );
    }

    #[test]
    fn a_key_arn_serves_only_its_own_region() {
        let settings = parsed(json!({
            "EncryptionType": "KMS",
            "KmsKey": "arn:aws:kms:eu-west-1:222222222222:key/0123abcd-0123-4567-89ab-0123456789ab"
        }))
        .unwrap();
        let here = destination("eu-west-1", "222222222222");
        let there = destination("us-west-2", "222222222222");
        let mut errors = Vec::new();
        let roles = [Some("r".to_string()), Some("r".to_string())];
        check_against(
            &settings,
            &[(0, &here), (1, &there)],
            &["a/".into()],
            &roles,
            &mut errors,
        );
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            errors[0]
                .to_string()
                .contains("but Destinations[1] is in us-west-2")
        );
    }

    #[test]
    fn prefixes_must_be_namespaces_ecr_templates_accept() {
        let settings = parsed(json!({"ImageTagMutability": "IMMUTABLE"})).unwrap();
        let here = destination("eu-west-1", "222222222222");
        let mut errors = Vec::new();
        let prefixes = ["team-a/".to_string(), "base".to_string(), "a_/".to_string()];
        check_against(&settings, &[(0, &here)], &prefixes, &[None], &mut errors);
        let shown: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(shown.len(), 2, "{shown:?}");
        assert!(shown[0].starts_with("RepositoryPrefixes[1]: \"base\" must end with '/'"));
        assert!(shown[1].starts_with(
            "RepositoryPrefixes[2]: \"a_\" is not a repository creation template prefix"
        ));
    }

    #[test]
    fn tags_or_a_key_need_a_template_role_on_every_destination() {
        let settings = parsed(json!({"ResourceTags": [{"Key": "team", "Value": "a"}]})).unwrap();
        let here = destination("eu-west-1", "222222222222");
        let mut errors = Vec::new();
        check_against(&settings, &[(0, &here)], &[], &[None], &mut errors);
        assert!(
            errors[0]
                .to_string()
                .starts_with("Destinations[0].TemplateRoleArn: is required")
        );
    }

    #[test]
    fn template_prefixes_follow_ecr_s_pattern() {
        for good in ["ROOT", "team-a", "a/b", "a.b_c__d---e", "prod/team", "x/"] {
            assert!(is_valid_template_prefix(good), "{good}");
        }
        for bad in [
            "", "Team", "a_", "-a", "a//b", "a___b", "a._b", "/a", "Root",
        ] {
            assert!(!is_valid_template_prefix(bad), "{bad}");
        }
        assert_eq!(template_prefixes(&[]), ["ROOT"]);
        assert_eq!(template_prefixes(&["team-a/".into()]), ["team-a"]);
    }

    mod generated {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(3000))]

            #[test]
            fn the_template_prefix_check_is_ecr_s_pattern(prefix in "[a-z0-9._/A-]{0,10}|ROOT") {
                let pattern = regex::Regex::new(
                    r"^([a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*/?|ROOT)$",
                )
                .unwrap();
                let expected = (1..=256).contains(&prefix.len()) && pattern.is_match(&prefix);
                prop_assert_eq!(is_valid_template_prefix(&prefix), expected);
            }
        }
    }
}
