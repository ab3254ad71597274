//! Arbitrary bytes as a Lambda event: reading the CloudFormation request and
//! the resource's properties never panics, and whatever the problem, the
//! answer it leads to fits in a CloudFormation response.

#![no_main]

use ecr_replication::{
    event::{self, RequestKind},
    properties::{ReplicationSpec, SourceRegistry},
    response::{self, Answer, MAX_BODY_BYTES, Status},
};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let Ok(payload) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let source = SourceRegistry {
        account_id: "111111111111".into(),
        region: "us-east-1".into(),
        partition: "aws".into(),
    };

    let (reply, reason) = match event::parse(payload) {
        Ok(request) => {
            if let RequestKind::Update { old_properties, .. } = &request.kind {
                let _ = ReplicationSpec::parse(old_properties, &source);
            }
            let reason = match ReplicationSpec::parse(&request.properties, &source) {
                Ok(spec) => format!("{} destinations", spec.destinations.len()),
                Err(invalid) => invalid.to_string(),
            };
            (request.reply, reason)
        }
        Err(malformed) => match malformed.reply.clone() {
            Some(reply) => (reply, malformed.to_string()),
            None => return,
        },
    };

    let answer = Answer {
        status: Status::Failed,
        reason,
        physical_id: "fuzz".into(),
        data: Default::default(),
    };
    assert!(response::body(&reply, &answer).len() <= MAX_BODY_BYTES);
});
