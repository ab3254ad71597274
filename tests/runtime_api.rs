//! The built function binary, run the way Lambda runs it: a process that
//! polls a Runtime API for the events in `events/`, against moto, answering
//! CloudFormation through the response recorder.

mod common;

use common::{
    DESTINATION_REGION, fixture, moto, policy_of,
    recorder::Recorder,
    runtime_api::{Outcome, RuntimeApi},
};
use serde_json::{Value, json};
use std::{path::Path, time::Duration};

const SIGNATURE: &str = "5e1f0c2d3b4a59687766554433221100ffeeddccbbaa99887766554433221100";

#[tokio::test]
async fn the_built_binary_answers_create_update_and_delete_from_the_event_files() {
    let recorder = Recorder::start().await;
    let api =
        RuntimeApi::start("arn:aws:lambda:us-east-1:123456789012:function:ecr-replication").await;
    let binary = Path::new(env!("CARGO_BIN_EXE_bootstrap"));
    let function = api.spawn_function(&[binary], moto::endpoint(), &[("RUST_LOG", "trace")]);

    let mut responses = Vec::new();
    for name in ["create", "update", "delete"] {
        let mut event = fixture(name);
        event["ResponseURL"] = json!(recorder.url(name, SIGNATURE));
        let id = api.invoke(event, Duration::from_secs(60));
        let Some(outcome) = api.outcome(&id, Duration::from_secs(60)).await else {
            panic!(
                "no answer to {name}; init error: {:?}; output:\n{}",
                api.init_error(),
                function.stop().await
            );
        };

        let received = recorder.received();
        assert_eq!(
            received.len(),
            responses.len() + 1,
            "one response per event"
        );
        let response: Value = serde_json::from_slice(&received.last().unwrap().body).unwrap();
        assert_eq!(response["Status"], "SUCCESS", "{name}: {response:#}");
        assert_eq!(
            outcome,
            Outcome::Response(json!({
                "Status": "SUCCESS",
                "PhysicalResourceId": "EcrReplAppimagesReplication0a512be1eaf638d2"
            }))
        );
        responses.push(response);

        if name == "create" {
            let policy = policy_of("222222222222", DESTINATION_REGION).await.unwrap();
            assert_eq!(
                policy["Statement"][0]["Sid"],
                "EcrReplAppimagesReplication0a512be1eaf638d2"
            );
        }
        if name == "update" {
            assert_eq!(policy_of("222222222222", DESTINATION_REGION).await, None);
            assert!(
                policy_of("333333333333", DESTINATION_REGION)
                    .await
                    .is_some()
            );
        }
    }

    assert_eq!(responses[0]["Data"]["SourceRegistryId"], "123456789012");
    assert_eq!(policy_of("333333333333", DESTINATION_REGION).await, None);

    let logs = function.stop().await;
    assert!(
        logs.contains("request received"),
        "the function logs at trace level:\n{logs}"
    );
    assert!(
        !logs.contains(SIGNATURE),
        "the ResponseURL's signature reached the logs"
    );
    assert!(
        !logs.contains("testing-secret-key-not-for-logs"),
        "a secret key reached the logs"
    );
}
