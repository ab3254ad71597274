//! The resource's life against moto with several accounts: what AWS holds
//! after Create, Update and Delete, and what CloudFormation is told.

mod common;

use common::{
    DESTINATION_REGION, Harness, other_owners_rule, other_owners_statement, policy_of,
    proxy::Fault, statements_with_sid,
};
use serde_json::{Value, json};

/// The rule the Create fixture describes, in the harness's accounts.
fn created_rule(h: &Harness) -> Value {
    json!({
        "destinations": [
            {"region": "eu-west-1", "registryId": h.destination},
            {"region": "us-west-2", "registryId": h.source}
        ],
        "repositoryFilters": [
            {"filter": "team-a/", "filterType": "PREFIX_MATCH"},
            {"filter": "base-images", "filterType": "PREFIX_MATCH"}
        ]
    })
}

/// The rule the Update fixture describes.
fn updated_rule(h: &Harness) -> Value {
    json!({
        "destinations": [
            {"region": "eu-west-1", "registryId": h.other_destination},
            {"region": "us-west-2", "registryId": h.source}
        ],
        "repositoryFilters": [
            {"filter": "team-a/", "filterType": "PREFIX_MATCH"},
            {"filter": "team-b/", "filterType": "PREFIX_MATCH"}
        ]
    })
}

fn assert_success(response: &Value) {
    assert_eq!(response["Status"], "SUCCESS", "{response:#}");
}

fn assert_failed_with(response: &Value, fragment: &str) {
    assert_eq!(response["Status"], "FAILED", "{response:#}");
    let reason = response["Reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains(fragment),
        "Reason {reason:?} should contain {fragment:?}"
    );
}

#[tokio::test]
async fn create_writes_the_rule_and_the_statement_and_answers_success() {
    let h = Harness::new().await;

    let response = h.invoke(h.event("create")).await;

    assert_success(&response);
    let sid = h.physical_id("Replication");
    assert_eq!(response["PhysicalResourceId"], sid);
    assert_eq!(response["Data"]["SourceRegistryId"], h.source);
    assert_eq!(response["Data"]["StatementId"], sid);
    assert_eq!(response["LogicalResourceId"], "Replication");
    assert_eq!(response["StackId"], h.stack_id);
    assert_eq!(
        response["RequestId"],
        "6f1c2a4e-3b5d-4c8e-9a0f-1b2c3d4e5f60"
    );

    assert_eq!(h.rules().await, vec![created_rule(&h)]);
    let policy = h.policy(&h.destination, DESTINATION_REGION).await;
    assert_eq!(
        statements_with_sid(&policy, &sid),
        [&json!({
            "Sid": sid,
            "Effect": "Allow",
            "Principal": {"AWS": format!("arn:aws:iam::{}:root", h.source)},
            "Action": ["ecr:CreateRepository", "ecr:ReplicateImage"],
            "Resource": [
                format!("arn:aws:ecr:eu-west-1:{}:repository/team-a/*", h.destination),
                format!("arn:aws:ecr:eu-west-1:{}:repository/base-images*", h.destination)
            ]
        })]
    );
    // The same-account destination needs no registry policy.
    assert_eq!(h.policy(&h.source, "us-west-2").await, None);
}

#[tokio::test]
async fn create_keeps_other_owners_rules_and_statements() {
    let h = Harness::new().await;
    h.put_rules(vec![other_owners_rule(1), other_owners_rule(2)])
        .await;
    let theirs = json!({"Version": "2012-10-17", "Id": "shared", "Statement": [other_owners_statement(&h.destination)]});
    h.put_policy(&h.destination, DESTINATION_REGION, theirs.clone())
        .await;

    assert_success(&h.invoke(h.event("create")).await);

    assert_eq!(
        h.rules().await,
        vec![other_owners_rule(1), other_owners_rule(2), created_rule(&h)]
    );
    let policy = h.policy(&h.destination, DESTINATION_REGION).await.unwrap();
    assert_eq!(policy["Id"], "shared");
    assert_eq!(policy["Statement"][0], theirs["Statement"][0]);
    assert_eq!(policy["Statement"][1]["Sid"], h.physical_id("Replication"));
}

#[tokio::test]
async fn a_replayed_create_converges_and_answers_again() {
    let h = Harness::new().await;
    let event = h.event("create");

    let first = h.invoke(event.clone()).await;
    let second = h.invoke(event).await;

    assert_success(&first);
    assert_success(&second);
    assert_eq!(first["PhysicalResourceId"], second["PhysicalResourceId"]);
    assert_eq!(h.rules().await, vec![created_rule(&h)]);
    let policy = h.policy(&h.destination, DESTINATION_REGION).await;
    assert_eq!(policy.unwrap()["Statement"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn update_moves_a_destination_to_another_account_and_keeps_the_rule_in_place() {
    let h = Harness::new().await;
    h.put_policy(
        &h.destination,
        DESTINATION_REGION,
        json!({"Version": "2012-10-17", "Statement": [other_owners_statement(&h.destination)]}),
    )
    .await;
    assert_success(&h.invoke(h.event("create")).await);
    // Other owners' rules on both sides of ours.
    h.put_rules(vec![
        other_owners_rule(1),
        created_rule(&h),
        other_owners_rule(2),
    ])
    .await;

    let response = h.invoke(h.event("update")).await;

    assert_success(&response);
    let sid = h.physical_id("Replication");
    assert_eq!(response["PhysicalResourceId"], sid);
    assert_eq!(
        h.rules().await,
        vec![other_owners_rule(1), updated_rule(&h), other_owners_rule(2)]
    );
    // Granted in the new account, without CreateRepository any more.
    let new_policy = h.policy(&h.other_destination, DESTINATION_REGION).await;
    let granted = statements_with_sid(&new_policy, &sid);
    assert_eq!(granted.len(), 1);
    assert_eq!(granted[0]["Action"], json!(["ecr:ReplicateImage"]));
    assert_eq!(
        granted[0]["Resource"][1],
        format!(
            "arn:aws:ecr:eu-west-1:{}:repository/team-b/*",
            h.other_destination
        )
    );
    // Revoked in the old one, where the other owner's statement stays.
    let old_policy = h.policy(&h.destination, DESTINATION_REGION).await;
    assert!(statements_with_sid(&old_policy, &sid).is_empty());
    assert_eq!(
        old_policy.unwrap()["Statement"],
        json!([other_owners_statement(&h.destination)])
    );
}

#[tokio::test]
async fn an_update_whose_new_properties_are_invalid_fails_and_writes_nothing() {
    let h = Harness::new().await;
    assert_success(&h.invoke(h.event("create")).await);
    let before = h.snapshot().await;

    let mut event = h.event("update");
    event["ResourceProperties"]["Destinations"][0]["RoleArn"] =
        json!(format!("arn:aws:iam::{}:role/wrong-account", h.destination));
    let response = h.invoke(event).await;

    assert_failed_with(
        &response,
        &format!(
            "Destinations[0].RoleArn: arn:aws:iam::{}:role/wrong-account belongs to account {}, \
             not to the destination account {}",
            h.destination, h.destination, h.other_destination
        ),
    );
    assert_eq!(response["PhysicalResourceId"], h.physical_id("Replication"));
    assert_eq!(h.snapshot().await, before);
    assert_eq!(
        h.policy(&h.other_destination, DESTINATION_REGION).await,
        None
    );
}

#[tokio::test]
async fn the_rollback_of_an_invalid_update_succeeds_and_restores_the_state() {
    let h = Harness::new().await;
    h.put_rules(vec![other_owners_rule(1)]).await;
    assert_success(&h.invoke(h.event("create")).await);
    let before = h.snapshot().await;

    // CloudFormation rolls back the refused update with old and new swapped:
    // the "old" properties are now the invalid ones.
    let mut rollback = h.event("update");
    rollback["ResourceProperties"] = h.event("create")["ResourceProperties"].clone();
    rollback["OldResourceProperties"] = json!({
        "Destination": [{"Region": "eu-west-1"}],
        "AllowCreateRepository": "perhaps"
    });
    let response = h.invoke(rollback).await;

    assert_success(&response);
    assert_eq!(h.snapshot().await, before);
}

#[tokio::test]
async fn delete_removes_the_rule_and_statement_and_keeps_other_owners() {
    let h = Harness::new().await;
    h.put_rules(vec![other_owners_rule(1)]).await;
    h.put_policy(
        &h.other_destination,
        DESTINATION_REGION,
        json!({"Version": "2012-10-17", "Statement": [other_owners_statement(&h.other_destination)]}),
    )
    .await;
    let mut create = h.event("create");
    create["ResourceProperties"] = h.event("delete")["ResourceProperties"].clone();
    assert_success(&h.invoke(create).await);
    assert_eq!(h.rules().await.len(), 2);

    let response = h.invoke(h.event("delete")).await;

    assert_success(&response);
    assert_eq!(response["PhysicalResourceId"], h.physical_id("Replication"));
    assert_eq!(h.rules().await, vec![other_owners_rule(1)]);
    assert_eq!(
        h.policy(&h.other_destination, DESTINATION_REGION)
            .await
            .unwrap()["Statement"],
        json!([other_owners_statement(&h.other_destination)])
    );
}

#[tokio::test]
async fn delete_deletes_a_registry_policy_left_without_statements() {
    let h = Harness::new().await;
    let mut create = h.event("create");
    create["ResourceProperties"] = h.event("delete")["ResourceProperties"].clone();
    assert_success(&h.invoke(create).await);
    assert!(
        h.policy(&h.other_destination, DESTINATION_REGION)
            .await
            .is_some()
    );

    assert_success(&h.invoke(h.event("delete")).await);

    assert_eq!(
        h.policy(&h.other_destination, DESTINATION_REGION).await,
        None
    );
    assert_eq!(h.rules().await, Vec::<Value>::new());
}

#[tokio::test]
async fn delete_succeeds_when_everything_is_already_gone() {
    let h = Harness::new().await;

    let first = h.invoke(h.event("delete")).await;
    let second = h.invoke(h.event("delete")).await;

    assert_success(&first);
    assert_success(&second);
    assert_eq!(h.rules().await, Vec::<Value>::new());
}

#[tokio::test]
async fn delete_after_a_create_refused_for_its_properties_succeeds_without_touching_aws() {
    let h = Harness::new().await;
    h.put_rules(vec![other_owners_rule(1)]).await;
    let mut create = h.event("create");
    create["ResourceProperties"]["Destinations"][0]
        .as_object_mut()
        .unwrap()
        .remove("RoleArn");

    let failed = h.invoke(create.clone()).await;
    assert_failed_with(
        &failed,
        "Destinations[0].RoleArn: is required for a destination in another account",
    );
    let failed_id = failed["PhysicalResourceId"].as_str().unwrap().to_owned();
    assert_ne!(failed_id, h.physical_id("Replication"));

    let mut delete = h.event("delete");
    delete["PhysicalResourceId"] = json!(failed_id);
    delete["ResourceProperties"] = create["ResourceProperties"].clone();
    let actions_before = h.proxy.actions().len();
    let response = h.invoke(delete).await;

    assert_success(&response);
    assert_eq!(response["PhysicalResourceId"], failed_id);
    assert_eq!(
        h.proxy.actions().len(),
        actions_before,
        "no AWS call at all"
    );
    assert_eq!(h.rules().await, vec![other_owners_rule(1)]);
}

#[tokio::test]
async fn delete_succeeds_and_leaves_the_statement_when_the_role_cannot_be_assumed() {
    let h = Harness::new().await;
    assert_success(&h.invoke(h.event("create")).await);
    let mut delete = h.event("delete");
    delete["ResourceProperties"] = h.event("create")["ResourceProperties"].clone();
    h.proxy.fail(
        "AssumeRole",
        Some(&h.destination),
        Fault::access_denied(),
        10,
    );

    let response = h.invoke(delete).await;

    assert_success(&response);
    let reason = response["Reason"].as_str().unwrap();
    assert!(reason.contains("left in place in 1"), "{reason}");
    assert_eq!(h.rules().await, Vec::<Value>::new());
    let policy = policy_of(&h.destination, DESTINATION_REGION).await;
    assert_eq!(
        statements_with_sid(&policy, &h.physical_id("Replication")).len(),
        1
    );
}

#[tokio::test]
async fn create_refuses_an_eleventh_rule_before_writing_anything() {
    let h = Harness::new().await;
    let ten: Vec<Value> = (0..10).map(other_owners_rule).collect();
    h.put_rules(ten.clone()).await;

    let response = h.invoke(h.event("create")).await;

    assert_failed_with(
        &response,
        "the source replication configuration would hold 11 rules, over ECR's limit of 10",
    );
    assert_eq!(h.rules().await, ten);
    assert_eq!(h.policy(&h.destination, DESTINATION_REGION).await, None);
}

#[tokio::test]
async fn create_refuses_a_twenty_sixth_distinct_destination() {
    let h = Harness::new().await;
    let destinations: Vec<Value> = (0..24)
        .map(|i| json!({"region": "ap-south-1", "registryId": format!("{:012}", 800_000_000_000u64 + i)}))
        .collect();
    h.put_rules(vec![json!({"destinations": destinations})])
        .await;

    let response = h.invoke(h.event("create")).await;

    assert_failed_with(&response, "would replicate to 26 distinct destinations");
    assert_eq!(h.rules().await.len(), 1);
}

#[tokio::test]
async fn create_refuses_a_registry_policy_over_the_size_limit() {
    let h = Harness::new().await;
    let filler: Vec<Value> = (0..40)
        .map(|i| {
            let mut s = other_owners_statement(&h.destination);
            s["Sid"] = json!(format!("Filler{i}"));
            s["Resource"] = json!([format!(
                "arn:aws:ecr:eu-west-1:{}:repository/{}-{i}/*",
                h.destination,
                "x".repeat(150)
            )]);
            s
        })
        .collect();
    let big = json!({"Version": "2012-10-17", "Statement": filler});
    h.put_policy(&h.destination, DESTINATION_REGION, big.clone())
        .await;

    let response = h.invoke(h.event("create")).await;

    assert_failed_with(&response, "over ECR's limit of 10240");
    assert_failed_with(
        &response,
        &format!("Destinations[0] ({}/eu-west-1)", h.destination),
    );
    assert_eq!(
        h.policy(&h.destination, DESTINATION_REGION).await,
        Some(big)
    );
    assert_eq!(h.rules().await, Vec::<Value>::new());
}

#[tokio::test]
async fn a_destination_in_the_source_account_needs_no_role_and_no_policy() {
    let h = Harness::new().await;
    let mut create = h.event("create");
    create["ResourceProperties"] = json!({
        "ServiceToken": "arn:aws:lambda:us-east-1:123456789012:function:ecr-replication",
        "Destinations": [{"Region": "eu-central-1"}]
    });

    let response = h.invoke(create).await;

    assert_success(&response);
    assert_eq!(
        h.rules().await,
        vec![json!({"destinations": [{"region": "eu-central-1", "registryId": h.source}]})]
    );
    assert!(!h.proxy.actions().contains(&"AssumeRole".to_owned()));
    assert_eq!(h.policy(&h.source, "eu-central-1").await, None);
}

#[tokio::test]
async fn two_resources_with_the_same_rule_share_it_and_keep_their_own_statements() {
    let h = Harness::new().await;
    let mut first = h.event("create");
    first["LogicalResourceId"] = json!("First");
    let mut second = h.event("create");
    second["LogicalResourceId"] = json!("Second");

    assert_success(&h.invoke(first.clone()).await);
    assert_success(&h.invoke(second).await);

    assert_eq!(h.rules().await, vec![created_rule(&h)]);
    let policy = h.policy(&h.destination, DESTINATION_REGION).await;
    assert_eq!(
        statements_with_sid(&policy, &h.physical_id("First")).len(),
        1
    );
    assert_eq!(
        statements_with_sid(&policy, &h.physical_id("Second")).len(),
        1
    );

    // Deleting either removes the shared rule (documented); the other
    // resource's statement stays.
    let mut delete_first = h.event("delete");
    delete_first["LogicalResourceId"] = json!("First");
    delete_first["PhysicalResourceId"] = json!(h.physical_id("First"));
    delete_first["ResourceProperties"] = first["ResourceProperties"].clone();
    assert_success(&h.invoke(delete_first).await);
    assert_eq!(h.rules().await, Vec::<Value>::new());
    let policy = h.policy(&h.destination, DESTINATION_REGION).await;
    assert!(statements_with_sid(&policy, &h.physical_id("First")).is_empty());
    assert_eq!(
        statements_with_sid(&policy, &h.physical_id("Second")).len(),
        1
    );
}

#[tokio::test]
async fn an_unknown_property_fails_and_lists_the_known_ones() {
    let h = Harness::new().await;
    let mut create = h.event("create");
    let destinations = create["ResourceProperties"]["Destinations"].take();
    create["ResourceProperties"]["Destination"] = destinations;
    create["ResourceProperties"]
        .as_object_mut()
        .unwrap()
        .remove("Destinations");

    let response = h.invoke(create).await;

    assert_failed_with(
        &response,
        "Destination: unknown property; known properties are Destinations, RepositoryPrefixes, \
         AllowCreateRepository, BackfillExistingImages, DestinationRepositorySettings, \
         ServiceToken, ServiceTimeout",
    );
    assert_eq!(h.rules().await, Vec::<Value>::new());
}

#[tokio::test]
async fn a_malformed_event_with_a_response_url_is_answered_failed() {
    let h = Harness::new().await;
    let mut event = h.event("update");
    event
        .as_object_mut()
        .unwrap()
        .remove("OldResourceProperties");

    let response = h.invoke(event).await;

    assert_failed_with(&response, "malformed CloudFormation event");
    assert_failed_with(&response, "OldResourceProperties");
    assert_eq!(response["PhysicalResourceId"], h.physical_id("Replication"));
}
