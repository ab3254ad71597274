//! Faults injected between the function and AWS, and in front of the
//! response URL: every event still gets exactly one answer, in time.

mod common;

use common::{
    DESTINATION_REGION, Harness, policy_of,
    proxy::Fault,
    record_figures,
    recorder::{Recorder, Reply},
    runtime_api::{Outcome, RuntimeApi},
    statements_with_sid,
};
use lambda_runtime::LambdaEvent;
use serde_json::{Value, json};
use std::{
    path::Path,
    time::{Duration, Instant},
};

fn bootstrap() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_bootstrap"))
}

fn reason(response: &Value) -> &str {
    response["Reason"].as_str().unwrap_or_default()
}

/// Checks that a Create met every planned fault and still wrote its rule and
/// its one statement.
async fn assert_created_despite_faults(h: &Harness, response: &Value) {
    assert_eq!(response["Status"], "SUCCESS", "{response:#}");
    assert_eq!(h.proxy.pending_faults(), 0, "every planned fault was met");
    assert_eq!(h.rules().await.len(), 1);
    let policy = policy_of(&h.destination, DESTINATION_REGION).await;
    assert_eq!(
        statements_with_sid(&policy, &h.physical_id("Replication")).len(),
        1
    );
}

#[tokio::test]
async fn throttling_server_errors_and_dropped_connections_are_retried_and_the_create_succeeds() {
    let h = Harness::new().await;
    let planned = [
        ("DescribeRegistry", Fault::server_error(), 2),
        (
            "AssumeRole",
            Fault::Error {
                status: 400,
                code: "Throttling",
            },
            2,
        ),
        ("GetRegistryPolicy", Fault::throttling(), 2),
        ("PutRegistryPolicy", Fault::server_error(), 1),
        ("PutRegistryPolicy", Fault::Drop, 1),
        ("PutReplicationConfiguration", Fault::throttling(), 2),
    ];
    let injected: u32 = planned.iter().map(|(_, _, times)| times).sum();
    for (action, fault, times) in planned {
        h.proxy.fail(action, None, fault, times);
    }

    let response = h.invoke(h.event("create")).await;

    assert_created_despite_faults(&h, &response).await;
    record_figures(
        "faults-aws-retried",
        json!({"fault": "AWS throttling, 5xx and dropped connections", "injected": injected, "events": 1, "survived": 1}),
    );
}

#[tokio::test]
async fn slow_answers_from_sts_and_ecr_are_waited_for_and_the_create_succeeds() {
    let h = Harness::new().await;
    let slow = Duration::from_millis(1500);
    let planned = [
        "AssumeRole",
        "GetRegistryPolicy",
        "PutRegistryPolicy",
        "PutReplicationConfiguration",
    ];
    for action in planned {
        h.proxy.fail(action, None, Fault::Delay(slow), 1);
    }

    let started = Instant::now();
    let response = h.invoke(h.event("create")).await;

    assert_created_despite_faults(&h, &response).await;
    // Waited for, not cut short and retried: four slow calls, one after another.
    let elapsed = started.elapsed();
    assert!(elapsed >= slow * 4, "took {elapsed:?}");
    record_figures(
        "faults-aws-slow",
        json!({"fault": "AWS answers 1.5 s late (AssumeRole, policy read and write, replication write)", "injected": planned.len(), "events": 1, "survived": 1}),
    );
}

#[tokio::test]
async fn a_response_url_that_fails_a_few_times_gets_exactly_one_response() {
    let h = Harness::new().await;
    h.recorder
        .plan(&[Reply::Status(500), Reply::Drop, Reply::Status(503)]);

    // `invoke` checks that exactly one response arrived and is well formed.
    let response = h.invoke(h.event("create")).await;

    assert_eq!(response["Status"], "SUCCESS", "{response:#}");
    assert_eq!(h.recorder.attempts(), 4);
    record_figures(
        "faults-response-url-errors",
        json!({"fault": "response URL answering 500, 503 or closing the connection", "injected": 3, "events": 1, "survived": 1}),
    );
}

#[tokio::test]
async fn a_response_url_that_refuses_connections_at_first_gets_exactly_one_response() {
    let h = Harness::new().await;
    // A port nobody listens on yet: the first attempts are refused.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut event = h.event("create");
    event["ResponseURL"] = json!(format!(
        "http://127.0.0.1:{port}/cloudformation-response/create?X-Amz-Signature=0badc0de"
    ));
    let late = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(1200)).await;
        Recorder::start_on(port).await
    });

    let result = h.handler.handle(LambdaEvent::new(event, h.context())).await;

    assert!(result.is_ok(), "{:?}", result.err());
    let recorder = late.await.unwrap();
    let received = recorder.received();
    assert_eq!(received.len(), 1, "exactly one response");
    let body: Value = serde_json::from_slice(&received[0].body).unwrap();
    assert_eq!(body["Status"], "SUCCESS");
    assert_eq!(body["LogicalResourceId"], "Replication");
    record_figures(
        "faults-response-url-refused",
        json!({"fault": "response URL refusing connections for 1.2 s", "injected": 1, "events": 1, "survived": 1}),
    );
}

#[tokio::test]
async fn an_endpoint_that_never_answers_gets_a_failed_answer_before_the_runtime_deadline() {
    let h = Harness::new().await;
    h.proxy.fail(
        "GetRegistryPolicy",
        None,
        Fault::Delay(Duration::from_secs(3600)),
        100,
    );
    let api =
        RuntimeApi::start("arn:aws:lambda:us-east-1:123456789012:function:ecr-replication").await;
    let function = api.spawn_function(&[bootstrap()], &h.proxy.url(), &h.function_environment());

    let timeout = Duration::from_secs(12);
    let started = Instant::now();
    let id = api.invoke(h.event("create"), timeout);
    let outcome = api.outcome(&id, timeout * 2).await;
    let elapsed = started.elapsed();

    let logs = function.stop().await;
    assert!(outcome.is_some(), "no answer at all; logs:\n{logs}");
    assert!(matches!(outcome, Some(Outcome::Response(_))), "{outcome:?}");
    let received = h.recorder.received();
    assert_eq!(received.len(), 1, "exactly one response; logs:\n{logs}");
    let response: Value = serde_json::from_slice(&received[0].body).unwrap();
    assert_eq!(response["Status"], "FAILED");
    assert!(
        reason(&response).starts_with("timed out while reading destination registries"),
        "{response:#}"
    );
    // Answered before the deadline the Runtime API gave, with room to spare.
    assert!(
        elapsed < timeout - Duration::from_secs(1),
        "answered after {elapsed:?}"
    );
    assert!(
        elapsed > timeout / 2,
        "gave up too early, after {elapsed:?}"
    );
    assert_ne!(response["PhysicalResourceId"], h.physical_id("Replication"));
    record_figures(
        "faults-endpoint-hangs",
        json!({"fault": "AWS endpoint that never answers (12 s deadline)", "injected": 1, "events": 1, "survived": 1, "answered_after_ms": elapsed.as_millis()}),
    );
}

#[tokio::test]
async fn access_denied_on_assume_role_fails_the_create_by_name_and_the_delete_succeeds() {
    let h = Harness::new().await;
    h.proxy.fail(
        "AssumeRole",
        Some(&h.destination),
        Fault::access_denied(),
        100,
    );

    let create = h.invoke(h.event("create")).await;

    assert_eq!(create["Status"], "FAILED");
    let expected = format!(
        "Destinations[0] ({destination}/eu-west-1): could not assume role \
         arn:aws:iam::{destination}:role/ecr-replication-destination: AccessDenied: injected",
        destination = h.destination
    );
    assert!(reason(&create).starts_with(&expected), "{create:#}");
    // It failed before writing, so the following Delete has nothing to do.
    assert_ne!(create["PhysicalResourceId"], h.physical_id("Replication"));
    assert_eq!(h.rules().await, Vec::<Value>::new());

    let mut delete = h.event("delete");
    delete["PhysicalResourceId"] = create["PhysicalResourceId"].clone();
    delete["ResourceProperties"] = h.event("create")["ResourceProperties"].clone();
    let deleted = h.invoke(delete).await;

    assert_eq!(deleted["Status"], "SUCCESS", "{deleted:#}");
    assert_eq!(h.rules().await, Vec::<Value>::new());
    record_figures(
        "faults-assume-role-denied",
        json!({"fault": "AccessDenied on AssumeRole (Create, then Delete)", "injected": 2, "events": 2, "survived": 2}),
    );
}

/// Runs Create in the function binary with a panic injected at `step`, and
/// returns the response CloudFormation got.
async fn create_with_a_panic_at(h: &Harness, step: &str) -> Value {
    let api =
        RuntimeApi::start("arn:aws:lambda:us-east-1:123456789012:function:ecr-replication").await;
    let mut environment = h.function_environment();
    environment.push(("ECR_REPLICATION_PANIC_AT".into(), step.into()));
    let function = api.spawn_function(&[bootstrap()], &h.proxy.url(), &environment);

    let id = api.invoke(h.event("create"), Duration::from_secs(60));
    let outcome = api.outcome(&id, Duration::from_secs(60)).await;
    let logs = function.stop().await;
    assert!(outcome.is_some(), "no answer at all; logs:\n{logs}");
    let received = h.recorder.received();
    assert_eq!(received.len(), 1, "exactly one response; logs:\n{logs}");
    serde_json::from_slice(&received[0].body).unwrap()
}

#[tokio::test]
async fn a_panic_inside_the_lifecycle_answers_failed_and_the_delete_cleans_up() {
    let h = Harness::new().await;

    let response = create_with_a_panic_at(&h, "writing destination registry policies").await;

    assert_eq!(response["Status"], "FAILED");
    assert!(
        reason(&response).starts_with(
            "the handler failed unexpectedly while writing destination registry policies: \
             injected panic"
        ),
        "{response:#}"
    );
    // It may have written, so it answers the real id: the Delete cleans up.
    assert_eq!(response["PhysicalResourceId"], h.physical_id("Replication"));
    let mut delete = h.event("delete");
    delete["ResourceProperties"] = h.event("create")["ResourceProperties"].clone();
    assert_eq!(h.invoke(delete).await["Status"], "SUCCESS");
    assert_eq!(h.policy(&h.destination, DESTINATION_REGION).await, None);
    record_figures(
        "faults-panic-in-lifecycle",
        json!({"fault": "panic while writing policies", "injected": 1, "events": 1, "survived": 1}),
    );
}

#[tokio::test]
async fn a_panic_while_building_the_answer_still_answers_failed() {
    let h = Harness::new().await;

    let response = create_with_a_panic_at(&h, "answering").await;

    assert_eq!(response["Status"], "FAILED");
    assert!(
        reason(&response).starts_with("the handler failed unexpectedly: injected panic"),
        "{response:#}"
    );
    record_figures(
        "faults-panic-answering",
        json!({"fault": "panic while building the answer", "injected": 1, "events": 1, "survived": 1}),
    );
}
