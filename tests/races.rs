//! Many source accounts, one destination registry: every stack writes its
//! statement into the same registry policy, and ECR has no conditional
//! write. The read-back after each write must keep every statement.

mod common;

use common::{DESTINATION_REGION, Harness, moto, policy_of, record_figures, statements_with_sid};
use ecr_replication::destination::Settle;
use futures_util::future::join_all;

const SOURCES: usize = 8;
const RUNS: usize = 20;

/// How many times each harness's proxy saw `action`.
fn counts(harnesses: &[Harness], action: &str) -> Vec<usize> {
    harnesses
        .iter()
        .map(|h| h.proxy.actions().iter().filter(|a| *a == action).count())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn eight_concurrent_sources_keep_all_their_statements_in_one_destination_policy() {
    let mut max_rounds = 0;
    let mut rewrites = 0;
    let mut lost = 0;
    for run in 0..RUNS {
        let destination = moto::fresh_account();
        let mut harnesses = Vec::new();
        for _ in 0..SOURCES {
            // The pacing the function uses in production.
            let mut h = Harness::with_settle(Settle::default()).await;
            h.destination = destination.clone();
            harnesses.push(h);
        }

        let puts_before = counts(&harnesses, "PutRegistryPolicy");
        let creates = join_all(harnesses.iter().map(|h| h.invoke(h.event("create")))).await;
        for response in &creates {
            assert_eq!(response["Status"], "SUCCESS", "run {run}: {response:#}");
        }
        let policy = policy_of(&destination, DESTINATION_REGION).await;
        for h in &harnesses {
            if statements_with_sid(&policy, &h.physical_id("Replication")).len() != 1 {
                eprintln!("run {run}: the statement of {} was lost", h.source);
                lost += 1;
            }
        }
        let puts = counts(&harnesses, "PutRegistryPolicy");
        for rounds in puts
            .iter()
            .zip(&puts_before)
            .map(|(after, before)| after - before)
        {
            max_rounds = max_rounds.max(rounds);
            rewrites += rounds.saturating_sub(1);
        }

        let deletes = join_all(harnesses.iter().map(|h| {
            let mut delete = h.event("delete");
            delete["ResourceProperties"] = h.event("create")["ResourceProperties"].clone();
            h.invoke(delete)
        }))
        .await;
        for response in &deletes {
            assert_eq!(response["Status"], "SUCCESS", "run {run}: {response:#}");
        }
        assert_eq!(
            policy_of(&destination, DESTINATION_REGION).await,
            None,
            "run {run}: no statement of theirs and no empty policy may remain"
        );
    }

    let figures = serde_json::json!({
        "runs": RUNS,
        "sources_per_run": SOURCES,
        "creates": RUNS * SOURCES,
        "deletes": RUNS * SOURCES,
        "statements_lost": lost,
        "statements_rewritten_after_an_overwrite": rewrites,
        "max_policy_writes_per_create": max_rounds,
    });
    record_figures("races", figures);
    assert_eq!(lost, 0, "statements lost to concurrent writers");
}
