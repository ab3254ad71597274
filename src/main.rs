//! The Lambda entry point: logging, the AWS clients, then the runtime loop.

use ecr_replication::{handler::Handler, logging, secrets};
use lambda_runtime::{Error, service_fn};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    logging::init();
    secrets::register_environment();

    let handler = Handler::from_env().await;
    lambda_runtime::run(service_fn(|event| handler.handle(event))).await
}
