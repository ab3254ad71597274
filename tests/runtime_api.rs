//! The built function binary, run the way Lambda runs it: a process that
//! polls a Runtime API for the events in `events/`, against moto, answering
//! CloudFormation through the response recorder.

mod common;

use common::runtime_api::answer_event_files;
use std::path::Path;

#[tokio::test]
async fn the_built_binary_answers_create_update_and_delete_from_the_event_files() {
    let binary = Path::new(env!("CARGO_BIN_EXE_bootstrap"));
    let logs = answer_event_files(&[binary]).await;
    assert!(
        logs.contains("request received"),
        "the function logs at trace level:\n{logs}"
    );
}
