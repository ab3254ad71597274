//! The CloudFormation request: reading the event Lambda delivers, and keeping
//! what is needed to answer it even when the rest of it is malformed.

use aws_lambda_events::cloudformation::CloudFormationCustomResourceRequest as CfnRequest;
use serde_json::Value;
use std::fmt;

/// The presigned URL the response goes to. It never appears in debug output
/// or logs: whoever holds it can forge the resource's result.
#[derive(Clone, PartialEq, Eq)]
pub struct ResponseUrl(String);

impl ResponseUrl {
    /// Wraps a URL taken from an event.
    pub fn new(url: impl Into<String>) -> Self {
        Self(url.into())
    }

    /// The URL itself, for the one place that sends the response.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ResponseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(crate::secrets::REDACTED)
    }
}

/// Where and to whom the response goes: the fields CloudFormation wants echoed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplyTo {
    /// The presigned URL to PUT the response to.
    pub response_url: ResponseUrl,
    /// The stack's id.
    pub stack_id: String,
    /// The request's id.
    pub request_id: String,
    /// The resource's logical id in its template.
    pub logical_id: String,
}

/// The kind of request and what comes with it.
#[derive(Clone, Debug, PartialEq)]
pub enum RequestKind {
    /// The resource is being created.
    Create,
    /// The resource's properties changed (or an update is being rolled back).
    Update {
        /// The id answered by the Create.
        physical_id: String,
        /// The properties before the change.
        old_properties: Value,
    },
    /// The resource is being deleted.
    Delete {
        /// The id answered by the Create (or by a failed Create).
        physical_id: String,
    },
}

/// One custom resource request.
#[derive(Clone, Debug, PartialEq)]
pub struct Request {
    /// Where the response goes.
    pub reply: ReplyTo,
    /// Create, Update or Delete.
    pub kind: RequestKind,
    /// The resource's properties (for Update, the new ones).
    pub properties: Value,
}

impl Request {
    /// `Create`, `Update` or `Delete`.
    pub fn kind_name(&self) -> &'static str {
        match self.kind {
            RequestKind::Create => "Create",
            RequestKind::Update { .. } => "Update",
            RequestKind::Delete { .. } => "Delete",
        }
    }

    /// The physical id the request carries (none for Create).
    pub fn physical_id(&self) -> Option<&str> {
        match &self.kind {
            RequestKind::Create => None,
            RequestKind::Update { physical_id, .. } | RequestKind::Delete { physical_id } => {
                Some(physical_id)
            }
        }
    }
}

/// An event that is not a well-formed custom resource request.
#[derive(Clone, Debug, PartialEq)]
pub struct MalformedEvent {
    /// What is wrong with it.
    pub problem: String,
    /// Where to answer, when the event names a `ResponseURL` at all.
    pub reply: Option<ReplyTo>,
    /// The physical id it carries, if any.
    pub physical_id: Option<String>,
}

impl fmt::Display for MalformedEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "malformed CloudFormation event: {}", self.problem)
    }
}

impl std::error::Error for MalformedEvent {}

/// Reads a custom resource request from the event Lambda delivered.
///
/// ```
/// use ecr_replication::event::{parse, RequestKind};
/// use serde_json::json;
///
/// let request = parse(json!({
///     "RequestType": "Delete",
///     "ResponseURL": "https://example.com/response",
///     "StackId": "arn:aws:cloudformation:us-east-1:111111111111:stack/s/1",
///     "RequestId": "r-1",
///     "ResourceType": "Custom::EcrReplication",
///     "LogicalResourceId": "Replication",
///     "PhysicalResourceId": "EcrReplSReplication00",
///     "ResourceProperties": {"ServiceToken": "arn"}
/// }))
/// .unwrap();
/// assert_eq!(request.kind, RequestKind::Delete { physical_id: "EcrReplSReplication00".into() });
///
/// let malformed = parse(json!({"ResponseURL": "https://example.com/r", "RequestType": "Upsert"}))
///     .unwrap_err();
/// assert!(malformed.reply.is_some());
/// ```
pub fn parse(event: Value) -> Result<Request, Box<MalformedEvent>> {
    let reply = reply_to(&event);
    let physical_id = event
        .get("PhysicalResourceId")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let malformed = |problem: String| {
        Box::new(MalformedEvent {
            problem,
            reply: reply.clone(),
            physical_id: physical_id.clone(),
        })
    };

    if !event.is_object() {
        return Err(malformed("the event is not a JSON object".into()));
    }
    let parsed: CfnRequest<Value, Value> =
        serde_json::from_value(event.clone()).map_err(|e| malformed(e.to_string()))?;
    let Some(reply) = reply_to(&event) else {
        return Err(malformed("ResponseURL is missing".into()));
    };

    let (kind, properties) = match parsed {
        CfnRequest::Create(create) => (RequestKind::Create, create.resource_properties),
        CfnRequest::Update(update) => (
            RequestKind::Update {
                physical_id: update.physical_resource_id,
                old_properties: update.old_resource_properties,
            },
            update.resource_properties,
        ),
        CfnRequest::Delete(delete) => (
            RequestKind::Delete {
                physical_id: delete.physical_resource_id,
            },
            delete.resource_properties,
        ),
        _ => return Err(malformed("unknown RequestType".into())),
    };
    if kind != RequestKind::Create && physical_id.as_deref().is_none_or(str::is_empty) {
        return Err(malformed("PhysicalResourceId is empty".into()));
    }
    Ok(Request {
        reply,
        kind,
        properties,
    })
}

/// The reply fields of an event, read leniently so that even a malformed
/// event can be answered. `None` without a `ResponseURL`.
fn reply_to(event: &Value) -> Option<ReplyTo> {
    let text = |name: &str| {
        event
            .get(name)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let url = event.get("ResponseURL")?.as_str()?;
    if url.is_empty() {
        return None;
    }
    Some(ReplyTo {
        response_url: ResponseUrl::new(url),
        stack_id: text("StackId"),
        request_id: text("RequestId"),
        logical_id: text("LogicalResourceId"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(request_type: &str) -> Value {
        json!({
            "RequestType": request_type,
            "ServiceToken": "arn:aws:lambda:us-east-1:111111111111:function:f",
            "ResponseURL": "https://cloudformation-custom-resource-response-useast1.s3.amazonaws.com/x?X-Amz-Signature=abc",
            "StackId": "arn:aws:cloudformation:us-east-1:111111111111:stack/s/guid",
            "RequestId": "7bfe2d54-710d-4b2b-a0f6-2a6a7a1b4c3d",
            "ResourceType": "Custom::EcrReplication",
            "LogicalResourceId": "Replication",
            "PhysicalResourceId": "EcrReplSReplication0011223344556677",
            "ResourceProperties": {"Destinations": []},
            "OldResourceProperties": {"Destinations": [{"Region": "eu-west-1"}]}
        })
    }

    #[test]
    fn reads_each_request_type() {
        let create = parse(event("Create")).unwrap();
        assert_eq!(create.kind, RequestKind::Create);
        assert_eq!(create.reply.logical_id, "Replication");
        assert_eq!(create.properties, json!({"Destinations": []}));

        let update = parse(event("Update")).unwrap();
        assert_eq!(
            update.kind,
            RequestKind::Update {
                physical_id: "EcrReplSReplication0011223344556677".into(),
                old_properties: json!({"Destinations": [{"Region": "eu-west-1"}]}),
            }
        );
        assert_eq!(
            update.physical_id(),
            Some("EcrReplSReplication0011223344556677")
        );
        assert_eq!(parse(event("Delete")).unwrap().kind_name(), "Delete");
    }

    #[test]
    fn a_malformed_event_can_still_be_answered_when_it_names_a_response_url() {
        let mut bad = event("Update");
        bad.as_object_mut().unwrap().remove("OldResourceProperties");
        let error = parse(bad).unwrap_err();
        assert!(error.problem.contains("OldResourceProperties"), "{error}");
        let reply = error.reply.expect("the ResponseURL is there");
        assert_eq!(reply.request_id, "7bfe2d54-710d-4b2b-a0f6-2a6a7a1b4c3d");
        assert_eq!(
            error.physical_id.as_deref(),
            Some("EcrReplSReplication0011223344556677")
        );

        let error = parse(json!({"RequestType": "Create"})).unwrap_err();
        assert!(error.reply.is_none());
        assert!(parse(json!("Create")).unwrap_err().reply.is_none());
    }

    #[test]
    fn the_response_url_is_not_shown_in_debug_output() {
        let request = parse(event("Create")).unwrap();
        let shown = format!("{request:?}");
        assert!(!shown.contains("X-Amz-Signature"), "{shown}");
        assert!(!shown.contains("s3.amazonaws.com"), "{shown}");
    }

    mod generated {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(1000))]

            #[test]
            fn a_request_with_any_field_replaced_is_read_or_refused_without_panicking(
                kind in prop::sample::select(vec!["Create", "Update", "Delete"]),
                field in prop::sample::select(vec![
                    "RequestType", "ResponseURL", "StackId", "RequestId", "LogicalResourceId",
                    "ResourceType", "PhysicalResourceId", "ResourceProperties",
                    "OldResourceProperties", "ServiceToken",
                ]),
                replacement in prop_oneof![
                    Just(Value::Null),
                    any::<i64>().prop_map(Value::from),
                    ".{0,8}".prop_map(Value::from),
                    Just(json!({"nested": []})),
                ],
            ) {
                let mut value = event(kind);
                value[field] = replacement;
                match parse(value.clone()) {
                    Ok(request) => prop_assert_eq!(request.reply.response_url.expose(), value["ResponseURL"].as_str().unwrap()),
                    Err(malformed) => prop_assert_eq!(
                        malformed.reply.is_some(),
                        value["ResponseURL"].as_str().is_some_and(|u| !u.is_empty())
                    ),
                }
            }
        }
    }
}
