//! Repository creation templates in a destination registry: the ones this
//! resource wants, what to change to get them, and the calls that read and
//! write them.
//!
//! A template carries no owner field, so this resource marks its own in the
//! description (`Custom::EcrReplication <statement id>`). It creates, updates
//! and deletes only templates with its mark, and refuses, before writing
//! anything, to take over a prefix whose template belongs to someone else.

use crate::{
    aws::AwsError,
    properties::Destination,
    repository_settings::{self, RepositorySettings},
};
use aws_sdk_ecr::types::{
    EncryptionConfigurationForRepositoryCreationTemplate, EncryptionType, ImageTagMutability,
    RctAppliedFor, RepositoryCreationTemplate, Tag,
};
use std::{collections::BTreeSet, fmt};

/// The settings of one template, as this resource writes them and as it
/// reads them back.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Template {
    /// The namespace prefix, or `ROOT`.
    pub prefix: String,
    /// The description, which carries the owner's mark.
    pub description: String,
    /// `MUTABLE` or `IMMUTABLE`.
    pub image_tag_mutability: Option<String>,
    /// `AES256` or `KMS`.
    pub encryption_type: Option<String>,
    /// The KMS key ARN.
    pub kms_key: Option<String>,
    /// The lifecycle policy text.
    pub lifecycle_policy: Option<String>,
    /// Tags as (key, value).
    pub resource_tags: Vec<(String, String)>,
    /// The role ECR assumes to apply the template.
    pub custom_role_arn: Option<String>,
}

/// One change to a registry's templates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TemplateChange {
    /// Create this template.
    Create(Template),
    /// Replace the settings of this resource's template.
    Update(Template),
    /// Delete this resource's template with this prefix.
    Delete(String),
}

/// A template this resource cannot change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TemplateConflict {
    /// The prefix both want.
    pub prefix: String,
    /// The other template's description, to help find its owner.
    pub description: String,
}

impl fmt::Display for TemplateConflict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "a repository creation template for prefix {} already exists and is not this \
             resource's (description {:?}); remove it or leave DestinationRepositorySettings out",
            self.prefix, self.description
        )
    }
}

impl std::error::Error for TemplateConflict {}

/// The mark in the description of this resource's templates.
pub fn mark(statement_id: &str) -> String {
    format!("Custom::EcrReplication {statement_id}")
}

/// The templates `settings` ask for in `destination`: one per prefix.
pub fn wanted(
    settings: &RepositorySettings,
    prefixes: &[String],
    statement_id: &str,
    partition: &str,
    destination: &Destination,
    template_role: Option<&str>,
) -> Vec<Template> {
    repository_settings::template_prefixes(prefixes)
        .into_iter()
        .map(|prefix| Template {
            prefix,
            description: format!(
                "{}: settings of repositories that replication creates",
                mark(statement_id)
            ),
            image_tag_mutability: settings.image_tag_mutability.clone(),
            encryption_type: settings.encryption_type.clone(),
            kms_key: settings.kms_key_arn(partition, destination),
            lifecycle_policy: settings.lifecycle_policy.clone(),
            resource_tags: settings.resource_tags.clone(),
            custom_role_arn: template_role.map(str::to_owned),
        })
        .collect()
}

/// What to change in a registry holding `existing` so that this resource's
/// templates are exactly `wanted`. Templates of other owners are never
/// changed: one in the way is a conflict.
pub fn plan(
    existing: &[Template],
    wanted: &[Template],
    statement_id: &str,
) -> Result<Vec<TemplateChange>, TemplateConflict> {
    let ours = |t: &Template| t.description.starts_with(&mark(statement_id));
    let mut changes = Vec::new();
    for template in wanted {
        match existing.iter().find(|e| e.prefix == template.prefix) {
            None => changes.push(TemplateChange::Create(template.clone())),
            Some(current) if !ours(current) => {
                return Err(TemplateConflict {
                    prefix: current.prefix.clone(),
                    description: current.description.clone(),
                });
            }
            Some(current) if same_settings(current, template) => {}
            Some(_) => changes.push(TemplateChange::Update(template.clone())),
        }
    }
    for template in existing.iter().filter(|e| ours(e)) {
        if !wanted.iter().any(|w| w.prefix == template.prefix) {
            changes.push(TemplateChange::Delete(template.prefix.clone()));
        }
    }
    Ok(changes)
}

fn same_settings(a: &Template, b: &Template) -> bool {
    let tags = |t: &Template| t.resource_tags.iter().cloned().collect::<BTreeSet<_>>();
    let or = |v: &Option<String>, default: &str| v.clone().unwrap_or_else(|| default.to_owned());
    a.description == b.description
        && or(&a.image_tag_mutability, "MUTABLE") == or(&b.image_tag_mutability, "MUTABLE")
        && or(&a.encryption_type, "AES256") == or(&b.encryption_type, "AES256")
        && a.kms_key == b.kms_key
        && a.lifecycle_policy.as_deref().unwrap_or_default()
            == b.lifecycle_policy.as_deref().unwrap_or_default()
        && tags(a) == tags(b)
        && a.custom_role_arn == b.custom_role_arn
}

/// Every repository creation template of the registry.
pub async fn read(ecr: &aws_sdk_ecr::Client) -> Result<Vec<Template>, AwsError> {
    let mut templates = Vec::new();
    let mut next_token = None;
    loop {
        let page = ecr
            .describe_repository_creation_templates()
            .set_next_token(next_token)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk(&e))?;
        templates.extend(page.repository_creation_templates().iter().map(from_sdk));
        next_token = page.next_token;
        if next_token.is_none() {
            return Ok(templates);
        }
    }
}

/// Makes the changes, in order.
pub async fn apply(ecr: &aws_sdk_ecr::Client, changes: &[TemplateChange]) -> Result<(), AwsError> {
    for change in changes {
        let result = match change {
            TemplateChange::Create(t) => ecr
                .create_repository_creation_template()
                .prefix(&t.prefix)
                .description(&t.description)
                .applied_for(RctAppliedFor::Replication)
                .set_image_tag_mutability(
                    t.image_tag_mutability
                        .as_deref()
                        .map(ImageTagMutability::from),
                )
                .set_encryption_configuration(encryption(t))
                .set_lifecycle_policy(t.lifecycle_policy.clone())
                .set_resource_tags(tags(t))
                .set_custom_role_arn(t.custom_role_arn.clone())
                .send()
                .await
                .map(drop)
                .map_err(|e| AwsError::from_sdk(&e)),
            // Every setting is sent, so one that was dropped from the
            // properties goes back to ECR's default.
            TemplateChange::Update(t) => ecr
                .update_repository_creation_template()
                .prefix(&t.prefix)
                .description(&t.description)
                .applied_for(RctAppliedFor::Replication)
                .image_tag_mutability(ImageTagMutability::from(
                    t.image_tag_mutability.as_deref().unwrap_or("MUTABLE"),
                ))
                .set_encryption_configuration(encryption(t).or_else(|| {
                    EncryptionConfigurationForRepositoryCreationTemplate::builder()
                        .encryption_type(EncryptionType::Aes256)
                        .build()
                        .ok()
                }))
                .lifecycle_policy(t.lifecycle_policy.clone().unwrap_or_default())
                .set_resource_tags(Some(tags(t).unwrap_or_default()))
                .set_custom_role_arn(t.custom_role_arn.clone())
                .send()
                .await
                .map(drop)
                .map_err(|e| AwsError::from_sdk(&e)),
            TemplateChange::Delete(prefix) => match ecr
                .delete_repository_creation_template()
                .prefix(prefix)
                .send()
                .await
            {
                Ok(_) => Ok(()),
                Err(e) => Err(AwsError::from_sdk(&e)).or_else(|error| {
                    // Already gone: the outcome is the same.
                    if error.is("TemplateNotFoundException") {
                        Ok(())
                    } else {
                        Err(error)
                    }
                }),
            },
        };
        result?;
    }
    Ok(())
}

fn encryption(t: &Template) -> Option<EncryptionConfigurationForRepositoryCreationTemplate> {
    let kind = t.encryption_type.as_deref()?;
    EncryptionConfigurationForRepositoryCreationTemplate::builder()
        .encryption_type(EncryptionType::from(kind))
        .set_kms_key(t.kms_key.clone())
        .build()
        .ok()
}

fn tags(t: &Template) -> Option<Vec<Tag>> {
    if t.resource_tags.is_empty() {
        return None;
    }
    Some(
        t.resource_tags
            .iter()
            .filter_map(|(k, v)| Tag::builder().key(k).value(v).build().ok())
            .collect(),
    )
}

fn from_sdk(t: &RepositoryCreationTemplate) -> Template {
    let encryption = t.encryption_configuration();
    Template {
        prefix: t.prefix().unwrap_or_default().to_owned(),
        description: t.description().unwrap_or_default().to_owned(),
        image_tag_mutability: t.image_tag_mutability().map(|m| m.as_str().to_owned()),
        encryption_type: encryption.map(|e| e.encryption_type().as_str().to_owned()),
        kms_key: encryption.and_then(|e| e.kms_key()).map(str::to_owned),
        lifecycle_policy: t.lifecycle_policy().map(str::to_owned),
        resource_tags: t
            .resource_tags()
            .iter()
            .map(|tag| (tag.key().to_owned(), tag.value().to_owned()))
            .collect(),
        custom_role_arn: t.custom_role_arn().map(str::to_owned),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SID: &str = "EcrReplStackReplication0011223344556677";

    fn settings() -> RepositorySettings {
        RepositorySettings {
            image_tag_mutability: Some("IMMUTABLE".into()),
            encryption_type: Some("KMS".into()),
            kms_key: Some(repository_settings::KmsKey::Id("mrk-1".into())),
            lifecycle_policy: None,
            resource_tags: vec![("team".into(), "a".into())],
        }
    }

    fn destination() -> Destination {
        Destination {
            region: "eu-west-1".into(),
            account_id: "222222222222".into(),
            role: None,
            template_role_arn: None,
        }
    }

    fn ours(prefixes: &[&str]) -> Vec<Template> {
        let prefixes: Vec<String> = prefixes.iter().map(|p| format!("{p}/")).collect();
        wanted(
            &settings(),
            &prefixes,
            SID,
            "aws",
            &destination(),
            Some("arn:aws:iam::222222222222:role/t"),
        )
    }

    fn theirs(prefix: &str) -> Template {
        Template {
            prefix: prefix.into(),
            description: "pull through cache".into(),
            ..Template::default()
        }
    }

    #[test]
    fn one_template_per_prefix_with_the_key_of_the_destination() {
        let templates = ours(&["team-a", "team-b"]);
        assert_eq!(templates.len(), 2);
        assert_eq!(templates[0].prefix, "team-a");
        assert!(templates[0].description.starts_with(&mark(SID)));
        assert_eq!(
            templates[1].kms_key.as_deref(),
            Some("arn:aws:kms:eu-west-1:222222222222:key/mrk-1")
        );
        let root = wanted(&settings(), &[], SID, "aws", &destination(), None);
        assert_eq!(root[0].prefix, "ROOT");
    }

    #[test]
    fn missing_templates_are_created_and_other_owners_are_left_alone() {
        let existing = vec![theirs("legacy")];
        let changes = plan(&existing, &ours(&["team-a"]), SID).unwrap();
        assert_eq!(
            changes,
            vec![TemplateChange::Create(ours(&["team-a"])[0].clone())]
        );
    }

    #[test]
    fn a_prefix_held_by_another_owner_is_a_conflict() {
        let conflict = plan(&[theirs("team-a")], &ours(&["team-a"]), SID).unwrap_err();
        assert_eq!(conflict.prefix, "team-a");
        assert!(conflict.to_string().contains("is not this resource's"));
    }

    #[test]
    fn our_templates_are_updated_when_changed_and_deleted_when_unwanted() {
        let mut changed = ours(&["team-a", "team-b"]);
        changed[0].image_tag_mutability = Some("MUTABLE".into());
        let existing = [changed, vec![theirs("legacy")]].concat();
        let wanted = ours(&["team-a"]);

        let changes = plan(&existing, &wanted, SID).unwrap();

        assert_eq!(
            changes,
            vec![
                TemplateChange::Update(wanted[0].clone()),
                TemplateChange::Delete("team-b".into())
            ]
        );
        assert_eq!(plan(&wanted, &wanted, SID).unwrap(), vec![]);
        assert_eq!(
            plan(&existing, &[], SID).unwrap(),
            vec![
                TemplateChange::Delete("team-a".into()),
                TemplateChange::Delete("team-b".into())
            ]
        );
    }
}
