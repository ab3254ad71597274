//! What must never leak or be spoofed: the ResponseURL and credentials in
//! logs, the statement's principal, and plain-HTTP response URLs.

mod common;

use common::{
    DESTINATION_REGION, Harness, policy_of,
    runtime_api::{Outcome, RuntimeApi},
};
use ecr_replication::{handler::Handler, lifecycle::Services, response::Responder};
use lambda_runtime::LambdaEvent;
use serde_json::json;
use std::{path::Path, time::Duration};

/// The text between `<tag>` and `</tag>` everywhere in `xml`.
fn xml_values(xml: &str, tag: &str) -> Vec<String> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    xml.split(&open)
        .skip(1)
        .filter_map(|rest| rest.split(&close).next())
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn trace_logs_of_a_whole_lifecycle_hold_no_response_url_and_no_credential() {
    let h = Harness::new().await;
    let api =
        RuntimeApi::start("arn:aws:lambda:us-east-1:123456789012:function:ecr-replication").await;
    let mut environment = h.function_environment();
    environment.push(("RUST_LOG".into(), "trace".into()));
    environment.push(("AWS_LAMBDA_LOG_FORMAT".into(), "JSON".into()));
    let function = api.spawn_function(
        &[Path::new(env!("CARGO_BIN_EXE_bootstrap"))],
        &h.proxy.url(),
        &environment,
    );

    let mut response_urls = Vec::new();
    for name in ["create", "update", "delete"] {
        let event = h.event(name);
        response_urls.push(event["ResponseURL"].as_str().unwrap().to_owned());
        let id = api.invoke(event, Duration::from_secs(60));
        let outcome = api.outcome(&id, Duration::from_secs(60)).await;
        assert!(
            matches!(outcome, Some(Outcome::Response(_))),
            "{name}: {outcome:?}"
        );
    }
    let logs = function.stop().await;
    assert_eq!(h.recorder.received().len(), 3);

    // Every line is JSON, and there is plenty of it.
    assert!(logs.lines().count() > 200, "trace logging is on");
    for line in logs.lines().filter(|l| l.starts_with('{')) {
        serde_json::from_str::<serde_json::Value>(line).expect("a JSON log line");
    }

    let mut secrets: Vec<String> = response_urls.clone();
    for url in &response_urls {
        let (_, query) = url.split_once('?').unwrap();
        secrets.push(query.to_owned());
    }
    secrets.push("c0ffee0123456789abcdef".into()); // the URLs' signature
    secrets.push("AKIAEXAMPLERESPONSE".into()); // the URLs' credential
    secrets.push(h.credentials.access_key_id().into());
    secrets.push(h.credentials.secret_access_key().into());
    secrets.push(h.credentials.session_token().unwrap().into());
    let assumed = h.proxy.answers("AssumeRole");
    assert!(assumed.len() >= 3, "the function assumed destination roles");
    for answer in &assumed {
        for tag in ["AccessKeyId", "SecretAccessKey", "SessionToken"] {
            secrets.extend(xml_values(answer, tag));
        }
    }
    for secret in &secrets {
        assert!(
            !logs.contains(secret.as_str()),
            "a secret reached the logs: {secret}"
        );
    }
}

#[tokio::test]
async fn a_plain_http_response_url_is_refused_unless_allowed() {
    let h = Harness::new().await;
    let strict = Handler::new(
        Services {
            aws: h.aws.clone(),
            settle: common::quick_settle(),
        },
        Responder::new(false),
    );

    let result = strict
        .handle(LambdaEvent::new(h.event("delete"), h.context()))
        .await;

    let error = result.expect_err("an http ResponseURL is refused");
    assert!(
        error.to_string().contains("ResponseURL is not https"),
        "{error}"
    );
    assert_eq!(h.recorder.attempts(), 0, "nothing was sent");
}

#[tokio::test]
async fn the_principal_is_the_caller_account_whatever_the_event_claims() {
    let h = Harness::new().await;
    let mut create = h.event("create");
    let claimed = "999999999999";
    create["StackId"] = json!(format!(
        "arn:aws:cloudformation:us-east-1:{claimed}:stack/spoof/00000000-0000-4000-8000-000000000001"
    ));
    create["ServiceToken"] = json!(format!("arn:aws:lambda:us-east-1:{claimed}:function:x"));
    create["ResourceProperties"]["ServiceToken"] = create["ServiceToken"].clone();

    let response = h.invoke(create.clone()).await;

    assert_eq!(response["Status"], "SUCCESS", "{response:#}");
    assert_eq!(response["Data"]["SourceRegistryId"], h.source);
    let policy = policy_of(&h.destination, DESTINATION_REGION).await.unwrap();
    let statement = &policy["Statement"][0];
    assert_eq!(
        statement["Principal"],
        json!({"AWS": format!("arn:aws:iam::{}:root", h.source)})
    );
    assert!(!policy.to_string().contains(claimed));

    // A property naming a source account is not a way in either.
    let mut spoofed = create;
    spoofed["LogicalResourceId"] = json!("Spoofed");
    spoofed["ResourceProperties"]["SourceAccountId"] = json!(claimed);
    let refused = h.invoke(spoofed).await;
    assert_eq!(refused["Status"], "FAILED");
    assert!(
        refused["Reason"]
            .as_str()
            .unwrap()
            .contains("SourceAccountId: unknown property")
    );
}
