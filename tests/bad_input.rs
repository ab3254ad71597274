//! Generated bad input through the whole handler, against moto: arbitrary
//! JSON as properties, properties broken in one known place, arbitrary old
//! properties on a rollback, and malformed events. The handler never panics,
//! answers exactly once whenever there is a ResponseURL, names what is wrong,
//! and writes nothing.

mod common;

use common::{
    DESTINATION_REGION, Harness, other_owners_rule, other_owners_statement, record_figures,
};
use ecr_replication::properties::{ReplicationSpec, SourceRegistry};
use lambda_runtime::LambdaEvent;
use proptest::{
    prelude::*,
    test_runner::{Config, TestRunner},
};
use serde_json::{Map, Value, json};
use std::sync::{
    LazyLock,
    atomic::{AtomicU64, Ordering},
};
use tokio::runtime::Runtime;

/// Cases per property; `PROPTEST_CASES` overrides it.
fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(128)
}

static RUNTIME: LazyLock<Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime")
});

/// A harness whose registries hold other owners' rule and statement.
fn seeded_harness() -> Harness {
    RUNTIME.block_on(async {
        let h = Harness::new().await;
        h.put_rules(vec![other_owners_rule(1)]).await;
        let policy =
            json!({"Version": "2012-10-17", "Statement": [other_owners_statement(&h.destination)]});
        h.put_policy(&h.destination, DESTINATION_REGION, policy)
            .await;
        h
    })
}

fn source_of(h: &Harness) -> SourceRegistry {
    SourceRegistry {
        account_id: h.source.clone(),
        region: "us-east-1".into(),
        partition: "aws".into(),
    }
}

/// Runs one event and returns every response it caused.
async fn run(h: &Harness, event: Value) -> (Vec<Value>, bool) {
    let before = h.recorder.received().len();
    let result = h.handler.handle(LambdaEvent::new(event, h.context())).await;
    let responses = h.recorder.received()[before..]
        .iter()
        .map(|r| serde_json::from_slice(&r.body).expect("a JSON response"))
        .collect();
    (responses, result.is_ok())
}

fn json_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        (-1e6f64..1e6).prop_map(Value::from),
        ".{0,12}".prop_map(Value::from),
        prop::sample::select(vec![
            "true",
            "FALSE",
            "eu-west-1",
            "us-east-1",
            "222222222222",
            "team-a/",
            "",
            "arn:aws:iam::222222222222:role/ecr-replication-destination",
        ])
        .prop_map(Value::from),
    ]
}

fn json_key() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "Destinations",
            "RepositoryPrefixes",
            "AllowCreateRepository",
            "ServiceToken",
            "Region",
            "AccountId",
            "RoleArn",
            "ExternalId",
            "Destination",
        ])
        .prop_map(str::to_owned),
        "[A-Za-z]{1,10}",
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    json_leaf().prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::btree_map(json_key(), inner, 0..5)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// One way to break valid properties, and the property path the Reason must name.
fn broken_properties() -> impl Strategy<Value = (Value, String)> {
    let valid = || {
        json!({
            "ServiceToken": "arn:aws:lambda:us-east-1:123456789012:function:f",
            "Destinations": [
                {"Region": "eu-west-1", "AccountId": "222222222222",
                 "RoleArn": "arn:aws:iam::222222222222:role/ecr-replication-destination"},
                {"Region": "us-west-2"}
            ],
            "RepositoryPrefixes": ["team-a/", "base-images"],
            "AllowCreateRepository": "true"
        })
    };
    let set = move |pointer: &'static str, path: &'static str, value: Value| {
        let mut properties = valid();
        *properties
            .pointer_mut(pointer)
            .expect("a pointer into the valid properties") = value;
        (properties, path.to_owned())
    };
    prop_oneof![
        json_leaf().prop_map(move |v| set("/Destinations/0/Region", "Destinations[0].Region", v)),
        json_leaf().prop_map(move |v| set(
            "/Destinations/0/AccountId",
            "Destinations[0].AccountId",
            v
        )),
        json_leaf().prop_map(move |v| set("/Destinations/0/RoleArn", "Destinations[0].RoleArn", v)),
        json_leaf().prop_map(move |v| set("/Destinations/1", "Destinations[1]", v)),
        json_leaf().prop_map(move |v| set("/RepositoryPrefixes/1", "RepositoryPrefixes[1]", v)),
        json_leaf().prop_map(move |v| set("/AllowCreateRepository", "AllowCreateRepository", v)),
        json_leaf().prop_map(move |v| set("/Destinations", "Destinations", v)),
        "[A-Za-z]{1,12}".prop_map(move |key| {
            let mut properties = valid();
            properties[format!("X{key}")] = json!("typo");
            (properties, format!("X{key}: unknown property"))
        }),
        (0usize..4).prop_map(move |field| {
            let mut properties = valid();
            let name = ["Region", "RoleArn", "AccountId", "Destinations"][field];
            if name == "Destinations" {
                properties.as_object_mut().unwrap().remove(name);
                return (properties, "Destinations: is required".to_owned());
            }
            properties["Destinations"][0]
                .as_object_mut()
                .unwrap()
                .remove(name);
            let path = match name {
                "Region" => "Destinations[0].Region",
                // Without AccountId the destination is the source account in
                // eu-west-1, which is fine: break the prefix list instead.
                "AccountId" => {
                    properties["RepositoryPrefixes"] = json!(["ok/", "ok/"]);
                    "RepositoryPrefixes[1]"
                }
                _ => "Destinations[0].RoleArn",
            };
            (properties, path.to_owned())
        }),
    ]
    .prop_filter(
        "the break must make the properties invalid",
        |(properties, _)| {
            let source = SourceRegistry {
                account_id: "123456789012".into(),
                region: "us-east-1".into(),
                partition: "aws".into(),
            };
            ReplicationSpec::parse(properties, &source).is_err()
        },
    )
}

/// Checks one case: exactly one FAILED answer naming `path`, and no write.
fn assert_refused(
    h: &Harness,
    event: Value,
    path: &dyn Fn(&str) -> bool,
    panics: &AtomicU64,
) -> Result<(), TestCaseError> {
    RUNTIME.block_on(async {
        let before = h.snapshot().await;
        let (responses, answered) = run(h, event).await;
        prop_assert!(answered, "the handler could not answer");
        prop_assert_eq!(responses.len(), 1, "exactly one answer");
        let response = &responses[0];
        prop_assert_eq!(&response["Status"], "FAILED", "{:#}", response);
        let reason = response["Reason"].as_str().unwrap_or_default();
        if reason.contains("failed unexpectedly") {
            panics.fetch_add(1, Ordering::Relaxed);
        }
        prop_assert!(
            path(reason),
            "the Reason does not name the property: {}",
            reason
        );
        prop_assert_eq!(h.snapshot().await, before, "nothing may be written");
        Ok(())
    })
}

#[test]
fn arbitrary_json_properties_fail_by_name_and_write_nothing() {
    let h = seeded_harness();
    let source = source_of(&h);
    let (generated, panics) = (AtomicU64::new(0), AtomicU64::new(0));
    let mut runner = TestRunner::new(Config::with_cases(cases()));

    runner
        .run(&json_value(), |properties| {
            generated.fetch_add(1, Ordering::Relaxed);
            let Err(invalid) = ReplicationSpec::parse(&properties, &source) else {
                return Err(TestCaseError::reject("valid by chance"));
            };
            let mut event = h.event("create");
            event["ResourceProperties"] = properties;
            // Every problem the parser found is reported, each with its path.
            let expected = invalid.to_string();
            let names = move |reason: &str| reason.starts_with(&expected);
            assert_refused(&h, event, &names, &panics)
        })
        .unwrap();

    record_figures(
        "inputs-arbitrary-properties",
        json!({"input": "arbitrary JSON as ResourceProperties (Create)", "generated": generated.into_inner(), "panics": panics.into_inner()}),
    );
}

#[test]
fn properties_broken_in_one_place_fail_naming_that_place_and_write_nothing() {
    let h = seeded_harness();
    let (generated, panics) = (AtomicU64::new(0), AtomicU64::new(0));
    let mut runner = TestRunner::new(Config::with_cases(cases()));

    runner
        .run(
            &(broken_properties(), any::<bool>()),
            |((properties, path), as_update)| {
                generated.fetch_add(1, Ordering::Relaxed);
                let mut event = h.event(if as_update { "update" } else { "create" });
                event["ResourceProperties"] = properties;
                let names = move |reason: &str| reason.contains(&path);
                assert_refused(&h, event, &names, &panics)
            },
        )
        .unwrap();

    record_figures(
        "inputs-broken-properties",
        json!({"input": "valid properties broken in one place (Create and Update)", "generated": generated.into_inner(), "panics": panics.into_inner()}),
    );
}

#[test]
fn arbitrary_old_properties_never_fail_a_rollback() {
    let h = seeded_harness();
    let (generated, panics) = (AtomicU64::new(0), AtomicU64::new(0));
    let expected_rules = RUNTIME.block_on(async {
        let create = h.invoke(h.event("create")).await;
        assert_eq!(create["Status"], "SUCCESS");
        h.rules().await
    });
    let mut runner = TestRunner::new(Config::with_cases(cases()));

    runner
        .run(&json_value(), |old_properties| {
            generated.fetch_add(1, Ordering::Relaxed);
            RUNTIME.block_on(async {
                let mut rollback = h.event("update");
                rollback["ResourceProperties"] = h.event("create")["ResourceProperties"].clone();
                rollback["OldResourceProperties"] = old_properties;
                let (responses, answered) = run(&h, rollback).await;
                prop_assert!(answered);
                prop_assert_eq!(responses.len(), 1);
                let reason = responses[0]["Reason"].as_str().unwrap_or_default();
                if reason.contains("failed unexpectedly") {
                    panics.fetch_add(1, Ordering::Relaxed);
                }
                prop_assert_eq!(&responses[0]["Status"], "SUCCESS", "{:#}", responses[0]);
                prop_assert_eq!(h.rules().await, expected_rules.clone());
                Ok(())
            })
        })
        .unwrap();

    record_figures(
        "inputs-old-properties",
        json!({"input": "arbitrary JSON as OldResourceProperties (rollback Update)", "generated": generated.into_inner(), "panics": panics.into_inner()}),
    );
}

/// A valid event broken in one way that no handler could act on.
fn malformed_event(h: &Harness) -> impl Strategy<Value = Value> {
    let kinds = prop::sample::select(vec!["create", "update", "delete"]);
    let templates: Vec<Value> = ["create", "update", "delete"]
        .iter()
        .map(|k| h.event(k))
        .collect();
    let required = prop::sample::select(vec![
        "RequestType",
        "ResponseURL",
        "StackId",
        "RequestId",
        "LogicalResourceId",
        "ResourceType",
        "ResourceProperties",
        "PhysicalResourceId",
        "OldResourceProperties",
    ]);
    (kinds, required, json_value(), 0usize..3).prop_filter_map(
        "a break that leaves a request valid",
        move |(kind, field, value, how)| {
            let index = ["create", "update", "delete"]
                .iter()
                .position(|k| *k == kind)?;
            let mut event: Map<String, Value> = templates[index].as_object()?.clone();
            match how {
                // Drop a field the kind requires.
                0 => {
                    let needed = match field {
                        "PhysicalResourceId" => kind != "create",
                        "OldResourceProperties" => kind == "update",
                        _ => true,
                    };
                    if !needed || event.remove(field).is_none() {
                        return None;
                    }
                }
                // Give a string field something that is not a string.
                1 => {
                    if matches!(field, "ResourceProperties" | "OldResourceProperties")
                        || value.is_string()
                        || !event.contains_key(field)
                    {
                        return None;
                    }
                    event.insert(field.to_owned(), value);
                }
                // An unknown request type.
                _ => {
                    let text = value
                        .as_str()
                        .filter(|t| !["Create", "Update", "Delete"].contains(t))?;
                    event.insert("RequestType".into(), Value::from(text));
                }
            }
            Some(Value::Object(event))
        },
    )
}

#[test]
fn malformed_events_are_answered_once_when_possible_and_write_nothing() {
    let h = seeded_harness();
    let (generated, panics, unanswerable) =
        (AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0));
    let mut runner = TestRunner::new(Config::with_cases(cases()));

    runner
        .run(&malformed_event(&h), |event| {
            generated.fetch_add(1, Ordering::Relaxed);
            let has_url = event["ResponseURL"].as_str().is_some_and(|u| !u.is_empty());
            RUNTIME.block_on(async {
                let before = h.snapshot().await;
                let (responses, answered) = run(&h, event).await;
                if has_url {
                    prop_assert!(answered);
                    prop_assert_eq!(responses.len(), 1, "exactly one answer");
                    prop_assert_eq!(&responses[0]["Status"], "FAILED");
                    let reason = responses[0]["Reason"].as_str().unwrap_or_default();
                    if reason.contains("failed unexpectedly") {
                        panics.fetch_add(1, Ordering::Relaxed);
                    }
                    prop_assert!(
                        reason.starts_with("malformed CloudFormation event")
                            || reason.starts_with("invalid properties"),
                        "{}",
                        reason
                    );
                } else {
                    unanswerable.fetch_add(1, Ordering::Relaxed);
                    prop_assert!(!answered, "nobody to answer");
                    prop_assert!(responses.is_empty());
                }
                prop_assert_eq!(h.snapshot().await, before, "nothing may be written");
                Ok(())
            })
        })
        .unwrap();

    record_figures(
        "inputs-malformed-events",
        json!({"input": "malformed events (fields dropped, mistyped, unknown RequestType)", "generated": generated.into_inner(), "panics": panics.into_inner(), "without_response_url": unanswerable.into_inner()}),
    );
}
