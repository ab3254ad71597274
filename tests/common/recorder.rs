//! The stand-in for CloudFormation's presigned response URL: an HTTP server
//! that records every request, and can be told to fail the next few.

use super::http::{self, Request, Response};
use std::{
    collections::VecDeque,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

/// How the recorder treats one incoming request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reply {
    /// Record it and answer 200, as S3 does.
    Accept,
    /// Answer this status without recording.
    Status(u16),
    /// Close the connection without answering.
    Drop,
    /// Never answer.
    Hang,
}

#[derive(Clone)]
pub struct Recorder {
    address: SocketAddr,
    received: Arc<Mutex<Vec<Request>>>,
    attempts: Arc<Mutex<u32>>,
    plan: Arc<Mutex<VecDeque<Reply>>>,
}

impl Recorder {
    pub async fn start() -> Self {
        Self::start_on(0).await
    }

    /// A recorder on a given port of 127.0.0.1 (0 picks a free one).
    pub async fn start_on(port: u16) -> Self {
        let received = Arc::new(Mutex::new(Vec::new()));
        let attempts = Arc::new(Mutex::new(0));
        let plan: Arc<Mutex<VecDeque<Reply>>> = Arc::new(Mutex::new(VecDeque::new()));
        let address = {
            let (received, attempts, plan) = (received.clone(), attempts.clone(), plan.clone());
            http::serve_on(port, move |request: Request| {
                *attempts.lock().unwrap() += 1;
                let reply = plan.lock().unwrap().pop_front().unwrap_or(Reply::Accept);
                let received = received.clone();
                async move {
                    match reply {
                        Reply::Accept => {
                            received.lock().unwrap().push(request);
                            Some(Response::new(200, Vec::new()))
                        }
                        Reply::Status(status) => Some(Response::new(status, "<Error/>")),
                        Reply::Drop => None,
                        Reply::Hang => {
                            tokio::time::sleep(Duration::from_secs(3600)).await;
                            None
                        }
                    }
                }
            })
            .await
        };
        Self {
            address,
            received,
            attempts,
            plan,
        }
    }

    /// A URL shaped like CloudFormation's presigned S3 URLs, with a signature
    /// that must never appear in a log.
    pub fn url(&self, name: &str, signature: &str) -> String {
        format!(
            "http://{}/cloudformation-response/{name}?X-Amz-Algorithm=AWS4-HMAC-SHA256\
             &X-Amz-Date=20261203T190000Z&X-Amz-SignedHeaders=host&X-Amz-Expires=7199\
             &X-Amz-Credential=AKIAEXAMPLERESPONSE%2F20261203%2Fus-east-1%2Fs3%2Faws4_request\
             &X-Amz-Signature={signature}",
            self.address
        )
    }

    /// Answers the next requests as `replies` say, then accepts again.
    pub fn plan(&self, replies: &[Reply]) {
        self.plan.lock().unwrap().extend(replies.iter().copied());
    }

    /// Every request accepted so far.
    pub fn received(&self) -> Vec<Request> {
        self.received.lock().unwrap().clone()
    }

    /// How many requests arrived, accepted or not.
    pub fn attempts(&self) -> u32 {
        *self.attempts.lock().unwrap()
    }
}
