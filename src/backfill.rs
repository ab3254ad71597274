//! Backfill: copying the images that already exist in the source registry
//! to destinations, which replication alone never does.
//!
//! ECR runs one backfill per destination region at a time and may refuse
//! one. The replication is in place by then, so a backfill that does not
//! start is reported (in the log and in the response Data), never a reason
//! to fail the stack.

use crate::{aws::AwsError, properties::Destination};
use aws_sdk_ecr::types::ReplicationDestination;
use std::collections::BTreeMap;
use tracing::{info, warn};

/// What happened to each backfill asked for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BackfillReport {
    /// Destinations whose backfill started, with its id.
    pub started: Vec<(String, String)>,
    /// Destinations whose backfill did not start, with why.
    pub not_started: Vec<(String, String)>,
}

impl BackfillReport {
    /// The response Data entries: `BackfillIds` (comma-separated) and, when
    /// some did not start, `BackfillErrors`.
    pub fn data(&self) -> BTreeMap<String, String> {
        let mut data = BTreeMap::new();
        let ids: Vec<&str> = self.started.iter().map(|(_, id)| id.as_str()).collect();
        data.insert("BackfillIds".to_owned(), ids.join(","));
        if !self.not_started.is_empty() {
            let errors: Vec<String> = self
                .not_started
                .iter()
                .map(|(label, why)| format!("{label}: {why}"))
                .collect();
            data.insert("BackfillErrors".to_owned(), errors.join("; "));
        }
        data
    }

    /// A sentence for the response Reason.
    pub fn summary(&self) -> String {
        match self.not_started.len() {
            0 => format!("{} backfill(s) started", self.started.len()),
            n => format!(
                "{} backfill(s) started, {n} not started (see BackfillErrors)",
                self.started.len()
            ),
        }
    }
}

/// Starts a backfill from the source registry to each destination, one
/// after the other.
pub async fn start(
    source_ecr: &aws_sdk_ecr::Client,
    source_registry: &str,
    destinations: &[&Destination],
) -> BackfillReport {
    let mut report = BackfillReport::default();
    for destination in destinations {
        let label = destination.label();
        match start_one(source_ecr, source_registry, destination).await {
            Ok(id) => {
                info!(destination = %label, backfill_id = %id, "backfill started");
                report.started.push((label, id));
            }
            Err(error) => {
                warn!(destination = %label, %error, "backfill not started; replication itself is in place");
                report.not_started.push((label, error.to_string()));
            }
        }
    }
    report
}

async fn start_one(
    ecr: &aws_sdk_ecr::Client,
    source_registry: &str,
    destination: &Destination,
) -> Result<String, AwsError> {
    let target = ReplicationDestination::builder()
        .region(&destination.region)
        .registry_id(&destination.account_id)
        .build()
        .map_err(|e| AwsError::new(None, e.to_string()))?;
    let output = ecr
        .start_replication_backfill()
        .registry_id(source_registry)
        .destination(target)
        .send()
        .await
        .map_err(|e| AwsError::from_sdk(&e))?;
    output
        .replication_backfill_id
        .ok_or_else(|| AwsError::new(None, "ECR answered without a backfill id"))
}
