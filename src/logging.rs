//! Log setup: plain text or JSON as Lambda's logging configuration asks,
//! the level from `AWS_LAMBDA_LOG_LEVEL` or `RUST_LOG`, and every line passed
//! through [`secrets::redact`] before it is written.

use crate::secrets;
use std::io::{self, Write};
use tracing_subscriber::{EnvFilter, filter::LevelFilter, fmt::MakeWriter};

/// Targets that log raw event payloads (which hold the ResponseURL) at
/// trace level; they are held at debug whatever level is asked for.
const PAYLOAD_TARGETS: [&str; 1] = ["lambda_runtime::layers::api_response"];

/// Installs the global subscriber. Call once, at startup.
pub fn init() {
    let json = std::env::var("AWS_LAMBDA_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter())
        .with_writer(RedactingStdout)
        .with_ansi(false);
    if json {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .init();
    } else {
        builder.without_time().init();
    }
}

/// The level filter: Lambda's `AWS_LAMBDA_LOG_LEVEL` wins over `RUST_LOG`;
/// `INFO` when neither is set.
fn filter() -> EnvFilter {
    let directives = std::env::var("AWS_LAMBDA_LOG_LEVEL")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_default()
        .to_ascii_lowercase();
    let mut filter = EnvFilter::builder()
        .with_default_directive(LevelFilter::INFO.into())
        .parse_lossy(directives);
    for target in PAYLOAD_TARGETS {
        let cap = format!("{target}=debug")
            .parse()
            .expect("a valid static directive");
        filter = filter.add_directive(cap);
    }
    filter
}

/// Writes each log line to standard output once its secrets are hidden.
struct RedactingStdout;

/// Collects one formatted log line; redacts and writes it when dropped.
struct Line(Vec<u8>);

impl<'a> MakeWriter<'a> for RedactingStdout {
    type Writer = Line;

    fn make_writer(&'a self) -> Self::Writer {
        Line(Vec::with_capacity(256))
    }
}

impl Write for Line {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for Line {
    fn drop(&mut self) {
        let text = String::from_utf8_lossy(&self.0);
        let redacted = secrets::redact(&text);
        // A log line that cannot be written has nowhere else to go.
        let _ = io::stdout().lock().write_all(redacted.as_bytes());
    }
}
