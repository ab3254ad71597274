//! The source registry: reading its replication configuration and writing
//! it back.
//!
//! Rules travel as the JSON that ECR sends and receives, not through the
//! SDK's types. ECR has added fields to rules (`deleteReplication`) that the
//! SDK's model does not know; a round trip through those types would silently
//! drop them from other owners' rules. The SDK still signs, retries and
//! reports errors: only the body is read and written as JSON.

use crate::{aws::AwsError, replication::Rule};
use aws_sdk_ecr::types::ReplicationConfiguration;
use aws_smithy_runtime_api::{
    box_error::BoxError,
    client::{
        interceptors::{Intercept, context::AfterDeserializationInterceptorContextRef},
        runtime_components::RuntimeComponents,
    },
};
use aws_smithy_types::{body::SdkBody, config_bag::ConfigBag};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex, PoisonError};

/// What the source registry holds.
#[derive(Clone, Debug, PartialEq)]
pub struct SourceState {
    /// The registry id, which is the account the function's credentials act in.
    pub registry_id: String,
    /// The replication rules, in order.
    pub rules: Vec<Rule>,
}

/// Reads the registry id and replication rules of the source registry.
pub async fn read(ecr: &aws_sdk_ecr::Client) -> Result<SourceState, AwsError> {
    let capture = CaptureBody::default();
    let output = ecr
        .describe_registry()
        .customize()
        .interceptor(capture.clone())
        .send()
        .await
        .map_err(|e| AwsError::from_sdk(&e))?;
    let registry_id = output
        .registry_id()
        .ok_or_else(|| AwsError::new(None, "DescribeRegistry answered without a registry id"))?
        .to_owned();

    let body = capture.take().unwrap_or_default();
    let document: Value = serde_json::from_slice(&body).map_err(|e| {
        AwsError::new(
            None,
            format!("DescribeRegistry answered with invalid JSON: {e}"),
        )
    })?;
    let rules = match &document["replicationConfiguration"]["rules"] {
        Value::Null => Vec::new(),
        Value::Array(rules) => rules
            .iter()
            .map(|r| Rule::from_json(r.clone()))
            .collect::<Result<_, _>>()
            .map_err(|problem| {
                AwsError::new(None, format!("DescribeRegistry answered with a {problem}"))
            })?,
        _ => {
            return Err(AwsError::new(
                None,
                "DescribeRegistry answered with rules that are not a list",
            ));
        }
    };
    Ok(SourceState { registry_id, rules })
}

/// Replaces the source registry's replication configuration with `rules`.
pub async fn write(ecr: &aws_sdk_ecr::Client, rules: &[Rule]) -> Result<(), AwsError> {
    let rules: Vec<Value> = rules.iter().map(Rule::to_json).collect();
    let body = json!({"replicationConfiguration": {"rules": rules}}).to_string();
    let placeholder = ReplicationConfiguration::builder()
        .set_rules(Some(Vec::new()))
        .build()
        .expect("rules, the only required field, are set");

    ecr.put_replication_configuration()
        .replication_configuration(placeholder)
        .customize()
        .mutate_request(move |request| {
            // Before signing: the signature covers the JSON written here.
            request
                .headers_mut()
                .insert("content-length", body.len().to_string());
            *request.body_mut() = SdkBody::from(body.clone());
        })
        .send()
        .await
        .map_err(|e| AwsError::from_sdk(&e))?;
    Ok(())
}

/// Keeps the raw body of the response the SDK has just read.
#[derive(Clone, Debug, Default)]
struct CaptureBody(Arc<Mutex<Option<Vec<u8>>>>);

impl CaptureBody {
    fn take(&self) -> Option<Vec<u8>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).take()
    }
}

impl Intercept for CaptureBody {
    fn name(&self) -> &'static str {
        "CaptureBody"
    }

    fn read_after_deserialization(
        &self,
        context: &AfterDeserializationInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let bytes = context.response().body().bytes().map(<[u8]>::to_vec);
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = bytes;
        Ok(())
    }
}
