//! `BackfillExistingImages` and `DestinationRepositorySettings`.
//!
//! moto implements neither replication backfills nor repository creation
//! templates, so those calls are answered by the SDK's own aws-smithy-mocks
//! (asserting the requests and how many there were), while the rest of each
//! event (replication configuration, registry policies, roles) runs against
//! moto as everywhere else.

mod common;

use aws_sdk_ecr::{
    Client,
    operation::{
        create_repository_creation_template::CreateRepositoryCreationTemplateOutput,
        delete_repository_creation_template::{
            DeleteRepositoryCreationTemplateError, DeleteRepositoryCreationTemplateOutput,
        },
        describe_repository_creation_templates::DescribeRepositoryCreationTemplatesOutput,
        start_replication_backfill::{
            StartReplicationBackfillError, StartReplicationBackfillOutput,
        },
        update_repository_creation_template::UpdateRepositoryCreationTemplateOutput,
    },
    types::{
        EncryptionType, RctAppliedFor, RepositoryCreationTemplate,
        error::{ReplicationBackfillInProgressException, TemplateNotFoundException},
    },
};
use aws_smithy_mocks::{MockResponseInterceptor, Rule, RuleMode, mock, mock_client};
use aws_smithy_types::error::ErrorMetadata;
use common::{DESTINATION_REGION, Harness, statements_with_sid};
use ecr_replication::{
    backfill,
    properties::Destination,
    templates::{self, Template, TemplateChange},
};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};

/// What a CreateRepositoryCreationTemplate request carried: prefix,
/// description, KMS key and custom role.
type CreatedTemplate = (String, String, Option<String>, Option<String>);

const LIFECYCLE: &str = r#"{"rules":[{"rulePriority":1,"selection":{"tagStatus":"untagged","countType":"sinceImagePushed","countUnit":"days","countNumber":14},"action":{"type":"expire"}}]}"#;

/// The error metadata ECR's answer carries, which modeled errors built in a
/// test lack unless given.
fn metadata(code: &str, message: &str) -> ErrorMetadata {
    ErrorMetadata::builder().code(code).message(message).build()
}

fn interceptor(rules: &[&Rule]) -> MockResponseInterceptor {
    rules.iter().fold(
        MockResponseInterceptor::new().rule_mode(RuleMode::MatchAny),
        |i, r| i.with_rule(r),
    )
}

/// The Create fixture with backfill and settings, in namespace prefixes.
fn create_with_settings(h: &Harness) -> Value {
    let mut event = h.event("create");
    let properties = &mut event["ResourceProperties"];
    properties["RepositoryPrefixes"] = json!(["team-a/", "base-images/"]);
    properties["BackfillExistingImages"] = json!("true");
    properties["DestinationRepositorySettings"] = json!({
        "ImageTagMutability": "IMMUTABLE",
        "EncryptionType": "KMS",
        "KmsKey": "mrk-0123456789abcdef0123456789abcdef",
        "LifecyclePolicy": LIFECYCLE,
        "ResourceTags": [{"Key": "team", "Value": "a"}]
    });
    properties["Destinations"][0]["TemplateRoleArn"] = json!(format!(
        "arn:aws:iam::{}:role/ecr-replication-template",
        h.destination
    ));
    properties["Destinations"][1]["TemplateRoleArn"] = json!(format!(
        "arn:aws:iam::{}:role/ecr-replication-template",
        h.source
    ));
    event
}

#[tokio::test]
async fn create_writes_templates_starts_backfills_and_reports_their_ids() {
    let created: Arc<Mutex<Vec<CreatedTemplate>>> = Arc::default();
    let seen = created.clone();
    let describe = mock!(Client::describe_repository_creation_templates)
        .then_output(|| DescribeRepositoryCreationTemplatesOutput::builder().build());
    let create = mock!(Client::create_repository_creation_template)
        .match_requests(move |r| {
            let encryption = r.encryption_configuration().expect("encryption is set");
            assert_eq!(r.applied_for(), [RctAppliedFor::Replication]);
            assert_eq!(
                r.image_tag_mutability().map(|m| m.as_str()),
                Some("IMMUTABLE")
            );
            assert_eq!(encryption.encryption_type(), &EncryptionType::Kms);
            assert_eq!(r.lifecycle_policy(), Some(LIFECYCLE));
            assert_eq!(r.resource_tags().len(), 1);
            seen.lock().unwrap().push((
                r.prefix().unwrap_or_default().to_owned(),
                r.description().unwrap_or_default().to_owned(),
                encryption.kms_key().map(str::to_owned),
                r.custom_role_arn().map(str::to_owned),
            ));
            true
        })
        .then_output(|| CreateRepositoryCreationTemplateOutput::builder().build());
    let backfills = mock!(Client::start_replication_backfill).then_output(|| {
        StartReplicationBackfillOutput::builder()
            .replication_backfill_id("0d3c1a2b-4e5f-4a6b-8c7d-9e0f1a2b3c4d")
            .build()
    });
    let h = Harness::with_ecr_mocks(interceptor(&[&describe, &create, &backfills])).await;

    let response = h.invoke(create_with_settings(&h)).await;

    assert_eq!(response["Status"], "SUCCESS", "{response:#}");
    // Two destinations: one template per prefix in each, one backfill each.
    assert_eq!(describe.num_calls(), 2);
    assert_eq!(create.num_calls(), 4);
    assert_eq!(backfills.num_calls(), 2);
    assert_eq!(
        response["Data"]["BackfillIds"],
        "0d3c1a2b-4e5f-4a6b-8c7d-9e0f1a2b3c4d,0d3c1a2b-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
    );
    assert!(response["Data"].get("BackfillErrors").is_none());

    let created = created.lock().unwrap().clone();
    let sid = h.physical_id("Replication");
    let mut prefixes: Vec<&str> = created.iter().map(|c| c.0.as_str()).collect();
    prefixes.sort();
    assert_eq!(prefixes, ["base-images", "base-images", "team-a", "team-a"]);
    for (_, description, key, role) in &created {
        assert!(description.starts_with(&format!("Custom::EcrReplication {sid}")));
        let key = key.as_deref().unwrap();
        let account = if key.contains(":eu-west-1:") {
            &h.destination
        } else {
            &h.source
        };
        assert!(
            key.ends_with(&format!(
                "{account}:key/mrk-0123456789abcdef0123456789abcdef"
            )),
            "{key}"
        );
        assert_eq!(
            role.as_deref(),
            Some(format!("arn:aws:iam::{account}:role/ecr-replication-template").as_str())
        );
    }
    // The rest of the lifecycle ran against moto as usual.
    assert_eq!(h.rules().await.len(), 1);
    let policy = h.policy(&h.destination, DESTINATION_REGION).await;
    assert_eq!(statements_with_sid(&policy, &sid).len(), 1);
}

#[tokio::test]
async fn a_backfill_that_ecr_refuses_is_reported_and_the_create_still_succeeds() {
    let describe = mock!(Client::describe_repository_creation_templates)
        .then_output(|| DescribeRepositoryCreationTemplatesOutput::builder().build());
    let backfills = mock!(Client::start_replication_backfill)
        .match_requests(|r| r.destination().is_some_and(|d| d.region() == "eu-west-1"))
        .then_error(|| {
            let message = "a backfill to eu-west-1 is in progress";
            StartReplicationBackfillError::ReplicationBackfillInProgressException(
                ReplicationBackfillInProgressException::builder()
                    .message(message)
                    .meta(metadata("ReplicationBackfillInProgressException", message))
                    .build(),
            )
        });
    let started = mock!(Client::start_replication_backfill).then_output(|| {
        StartReplicationBackfillOutput::builder()
            .replication_backfill_id("11111111-2222-4333-8444-555555555555")
            .build()
    });
    let h = Harness::with_ecr_mocks(interceptor(&[&describe, &backfills, &started])).await;
    let mut event = h.event("create");
    event["ResourceProperties"]["BackfillExistingImages"] = json!(true);

    let response = h.invoke(event).await;

    assert_eq!(response["Status"], "SUCCESS", "{response:#}");
    assert_eq!(backfills.num_calls() + started.num_calls(), 2);
    assert_eq!(describe.num_calls(), 0, "no templates without settings");
    assert_eq!(
        response["Data"]["BackfillIds"],
        "11111111-2222-4333-8444-555555555555"
    );
    assert_eq!(
        response["Data"]["BackfillErrors"],
        format!(
            "{}/eu-west-1: ReplicationBackfillInProgressException: a backfill to eu-west-1 is in progress",
            h.destination
        )
    );
    assert!(
        response["Reason"]
            .as_str()
            .unwrap()
            .contains("1 not started")
    );
    assert_eq!(h.rules().await.len(), 1);
}

#[tokio::test]
async fn a_template_of_another_owner_fails_the_create_before_anything_is_written() {
    let describe = mock!(Client::describe_repository_creation_templates).then_output(|| {
        DescribeRepositoryCreationTemplatesOutput::builder()
            .repository_creation_templates(
                RepositoryCreationTemplate::builder()
                    .prefix("team-a")
                    .description("pull through cache for team a")
                    .build(),
            )
            .build()
    });
    let create = mock!(Client::create_repository_creation_template)
        .then_output(|| CreateRepositoryCreationTemplateOutput::builder().build());
    let h = Harness::with_ecr_mocks(interceptor(&[&describe, &create])).await;

    let response = h.invoke(create_with_settings(&h)).await;

    assert_eq!(response["Status"], "FAILED");
    let reason = response["Reason"].as_str().unwrap();
    assert!(
        reason.contains("a repository creation template for prefix team-a already exists and is not this resource's"),
        "{reason}"
    );
    assert_eq!(create.num_calls(), 0);
    assert_eq!(h.rules().await, Vec::<Value>::new());
    assert_eq!(h.policy(&h.destination, DESTINATION_REGION).await, None);
}

#[tokio::test]
async fn delete_removes_only_this_resource_s_templates_and_starts_no_backfill() {
    let h_sid: Arc<Mutex<String>> = Arc::default();
    let sid_for_describe = h_sid.clone();
    let describe = mock!(Client::describe_repository_creation_templates).then_output(move || {
        let sid = sid_for_describe.lock().unwrap().clone();
        let ours = |prefix: &str| {
            RepositoryCreationTemplate::builder()
                .prefix(prefix)
                .description(format!("Custom::EcrReplication {sid}: settings"))
                .build()
        };
        DescribeRepositoryCreationTemplatesOutput::builder()
            .repository_creation_templates(ours("team-a"))
            .repository_creation_templates(ours("base-images"))
            .repository_creation_templates(
                RepositoryCreationTemplate::builder()
                    .prefix("legacy")
                    .description("other")
                    .build(),
            )
            .build()
    });
    let deleted: Arc<Mutex<Vec<String>>> = Arc::default();
    let seen = deleted.clone();
    let delete = mock!(Client::delete_repository_creation_template)
        .match_requests(move |r| {
            seen.lock()
                .unwrap()
                .push(r.prefix().unwrap_or_default().to_owned());
            true
        })
        .then_output(|| DeleteRepositoryCreationTemplateOutput::builder().build());
    let backfills = mock!(Client::start_replication_backfill)
        .then_output(|| StartReplicationBackfillOutput::builder().build());
    let h = Harness::with_ecr_mocks(interceptor(&[&describe, &delete, &backfills])).await;
    *h_sid.lock().unwrap() = h.physical_id("Replication");
    let mut event = h.event("delete");
    event["ResourceProperties"] = create_with_settings(&h)["ResourceProperties"].clone();

    let response = h.invoke(event).await;

    assert_eq!(response["Status"], "SUCCESS", "{response:#}");
    assert_eq!(describe.num_calls(), 2, "read in both destinations");
    let mut deleted = deleted.lock().unwrap().clone();
    deleted.sort();
    assert_eq!(deleted, ["base-images", "base-images", "team-a", "team-a"]);
    assert_eq!(backfills.num_calls(), 0, "Delete leaves backfills alone");
}

#[tokio::test]
async fn invalid_settings_fail_by_name_before_any_write() {
    let h = Harness::new().await;
    let mut event = create_with_settings(&h);
    event["ResourceProperties"]["RepositoryPrefixes"] = json!(["team-a/", "base-images"]);
    event["ResourceProperties"]["DestinationRepositorySettings"]["LifecyclePolicy"] =
        json!("{rules");
    event["ResourceProperties"]["DestinationRepositorySettings"]["KmsKey"] =
        json!("arn:aws:kms:us-east-1:222222222222:key/0123abcd-0123-4567-89ab-0123456789ab");
    event["ResourceProperties"]["Destinations"][1]
        .as_object_mut()
        .unwrap()
        .remove("TemplateRoleArn");

    let response = h.invoke(event).await;

    assert_eq!(response["Status"], "FAILED");
    let reason = response["Reason"].as_str().unwrap();
    for expected in [
        "DestinationRepositorySettings.LifecyclePolicy: is not valid JSON",
        "RepositoryPrefixes[1]: \"base-images\" must end with '/'",
        "DestinationRepositorySettings.KmsKey: arn:aws:kms:us-east-1:222222222222:key/0123abcd-0123-4567-89ab-0123456789ab is in us-east-1, but Destinations[0] is in eu-west-1",
        "Destinations[1].TemplateRoleArn: is required with a KmsKey or ResourceTags",
    ] {
        assert!(
            reason.contains(expected),
            "missing {expected:?} in {reason}"
        );
    }
    assert_eq!(h.rules().await, Vec::<Value>::new());
    assert_eq!(h.policy(&h.destination, DESTINATION_REGION).await, None);
}

#[tokio::test]
async fn templates_are_read_across_pages() {
    let first = mock!(Client::describe_repository_creation_templates)
        .match_requests(|r| r.next_token().is_none())
        .then_output(|| {
            DescribeRepositoryCreationTemplatesOutput::builder()
                .repository_creation_templates(
                    RepositoryCreationTemplate::builder().prefix("a").build(),
                )
                .next_token("page-2")
                .build()
        });
    let second = mock!(Client::describe_repository_creation_templates)
        .match_requests(|r| r.next_token() == Some("page-2"))
        .then_output(|| {
            DescribeRepositoryCreationTemplatesOutput::builder()
                .repository_creation_templates(
                    RepositoryCreationTemplate::builder().prefix("b").build(),
                )
                .build()
        });
    let ecr = mock_client!(aws_sdk_ecr, RuleMode::MatchAny, [&first, &second]);

    let read = templates::read(&ecr).await.unwrap();

    let prefixes: Vec<&str> = read.iter().map(|t| t.prefix.as_str()).collect();
    assert_eq!(prefixes, ["a", "b"]);
    assert_eq!((first.num_calls(), second.num_calls()), (1, 1));
}

#[tokio::test]
async fn an_update_sends_every_setting_and_a_template_already_gone_counts_as_deleted() {
    let update = mock!(Client::update_repository_creation_template)
        .match_requests(|r| {
            r.image_tag_mutability().map(|m| m.as_str()) == Some("MUTABLE")
                && r.encryption_configuration()
                    .map(|e| e.encryption_type().clone())
                    == Some(EncryptionType::Aes256)
                && r.lifecycle_policy() == Some("")
                && r.resource_tags().is_empty()
        })
        .then_output(|| UpdateRepositoryCreationTemplateOutput::builder().build());
    let delete = mock!(Client::delete_repository_creation_template).then_error(|| {
        DeleteRepositoryCreationTemplateError::TemplateNotFoundException(
            TemplateNotFoundException::builder()
                .message("gone")
                .meta(metadata("TemplateNotFoundException", "gone"))
                .build(),
        )
    });
    let ecr = mock_client!(aws_sdk_ecr, RuleMode::MatchAny, [&update, &delete]);
    let bare = Template {
        prefix: "team-a".into(),
        description: "Custom::EcrReplication X".into(),
        ..Template::default()
    };

    templates::apply(
        &ecr,
        &[
            TemplateChange::Update(bare),
            TemplateChange::Delete("old".into()),
        ],
    )
    .await
    .unwrap();

    assert_eq!((update.num_calls(), delete.num_calls()), (1, 1));
}

#[tokio::test]
async fn a_failing_backfill_is_named_per_destination() {
    let refused = mock!(Client::start_replication_backfill)
        .match_requests(|r| r.registry_id() == Some("111111111111"))
        .then_http_response(|| {
            aws_smithy_runtime_api::http::Response::new(
                aws_smithy_runtime_api::http::StatusCode::try_from(400).unwrap(),
                aws_smithy_types::body::SdkBody::from(
                    r#"{"__type":"AccessDeniedException","message":"not allowed"}"#,
                ),
            )
        });
    let ecr = mock_client!(aws_sdk_ecr, RuleMode::MatchAny, [&refused]);
    let destination = Destination {
        region: "eu-west-1".into(),
        account_id: "222222222222".into(),
        role: None,
        template_role_arn: None,
    };

    let report = backfill::start(&ecr, "111111111111", &[&destination]).await;

    assert!(report.started.is_empty());
    assert_eq!(report.data()["BackfillIds"], "");
    assert_eq!(
        report.data()["BackfillErrors"],
        "222222222222/eu-west-1: AccessDeniedException: not allowed"
    );
    assert_eq!(refused.num_calls(), 1);
}
