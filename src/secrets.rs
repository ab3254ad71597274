//! Keeping secrets out of the logs.
//!
//! Two kinds of text must never reach a log line, at any level: the
//! presigned `ResponseURL` (whoever holds it can forge the resource's result)
//! and credentials (access keys, secret keys, session tokens), which the AWS
//! SDK's own trace logs may carry in signed requests. Every log line passes
//! through [`redact`], which hides the values registered with [`register`]
//! and the values of signing parameters wherever they appear.

use std::{
    borrow::Cow,
    sync::{Mutex, PoisonError},
};

/// What a hidden value is replaced with.
pub const REDACTED: &str = "** redacted **";

/// Registered values shorter than this are not secrets worth hiding (and
/// hiding them would garble unrelated text).
const MIN_SECRET_LEN: usize = 8;

/// Query parameters and header fields whose values are secrets, lower case.
const SECRET_KEYS: [&str; 3] = ["signature=", "credential=", "security-token="];

/// How many registered values are kept: a warm function sees a few per event.
const MAX_SECRETS: usize = 512;

static SECRETS: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Hides `secret` in every log line from now on.
pub fn register(secret: &str) {
    if secret.len() < MIN_SECRET_LEN {
        return;
    }
    let mut secrets = SECRETS.lock().unwrap_or_else(PoisonError::into_inner);
    if secrets.iter().any(|s| s == secret) {
        return;
    }
    if secrets.len() == MAX_SECRETS {
        secrets.remove(0);
    }
    secrets.push(secret.to_owned());
    // Longest first, so a secret that contains another is hidden whole.
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
}

/// Hides the credentials the function itself runs with.
pub fn register_environment() {
    for name in [
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
    ] {
        if let Ok(value) = std::env::var(name) {
            register(&value);
        }
    }
}

/// `text` with registered secrets and signing parameter values hidden.
///
/// ```
/// use ecr_replication::secrets::{redact, register};
///
/// register("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY");
/// let line = "key wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY url https://s3/x?X-Amz-Signature=abc123&a=b";
/// assert_eq!(
///     redact(line),
///     "key ** redacted ** url https://s3/x?X-Amz-Signature=** redacted **&a=b"
/// );
/// ```
pub fn redact(text: &str) -> Cow<'_, str> {
    let mut text = Cow::Borrowed(text);
    {
        let secrets = SECRETS.lock().unwrap_or_else(PoisonError::into_inner);
        for secret in secrets.iter() {
            if text.contains(secret.as_str()) {
                text = Cow::Owned(text.replace(secret.as_str(), REDACTED));
            }
        }
    }
    for key in SECRET_KEYS {
        if text.to_ascii_lowercase().contains(key) {
            text = Cow::Owned(hide_values_after(&text, key));
        }
    }
    text
}

/// Replaces the value that follows each occurrence of `key` (matched without
/// regard to case) up to the next delimiter.
fn hide_values_after(text: &str, key: &str) -> String {
    let lower = text.to_ascii_lowercase();
    let mut out = String::with_capacity(text.len());
    let mut rest = 0;
    let mut search = 0;
    while let Some(found) = lower[search..].find(key) {
        let value_start = search + found + key.len();
        let value_len = text[value_start..]
            .find(|c: char| c.is_whitespace() || "&\"',;\\)]}".contains(c))
            .unwrap_or(text.len() - value_start);
        out.push_str(&text[rest..value_start]);
        if value_len > 0 && !text[value_start..].starts_with(REDACTED) {
            out.push_str(REDACTED);
        } else {
            out.push_str(&text[value_start..value_start + value_len]);
        }
        rest = value_start + value_len;
        search = rest;
    }
    out.push_str(&text[rest..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signing_parameters_are_hidden_in_urls_and_headers() {
        let url = "https://cfn-responses.s3.amazonaws.com/x?X-Amz-Algorithm=AWS4-HMAC-SHA256\
                   &X-Amz-Credential=AKIAEXAMPLE%2F20261203&X-Amz-Security-Token=FwoGZXIvYXdzEXAMPLE\
                   &X-Amz-Signature=0123abcd";
        let hidden = redact(url);
        for secret in ["AKIAEXAMPLE", "FwoGZXIvYXdzEXAMPLE", "0123abcd"] {
            assert!(!hidden.contains(secret), "{hidden}");
        }
        assert!(hidden.contains("X-Amz-Algorithm=AWS4-HMAC-SHA256"));

        let header = r#"authorization: "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261203/us-east-1/ecr/aws4_request, SignedHeaders=host;x-amz-date, Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7""#;
        let hidden = redact(header);
        assert!(!hidden.contains("AKIDEXAMPLE"), "{hidden}");
        assert!(!hidden.contains("5d672d79"), "{hidden}");
        assert!(hidden.contains("SignedHeaders=host;x-amz-date"));
    }

    #[test]
    fn registered_secrets_are_hidden_inside_escaped_json() {
        register("IQoJb3JpZ2luX2VjEXAMPLETOKEN");
        let line = r#"{"fields":{"message":"headers {\"x-amz-security-token\": \"IQoJb3JpZ2luX2VjEXAMPLETOKEN\"}"}}"#;
        assert!(!redact(line).contains("IQoJb3JpZ2luX2VjEXAMPLETOKEN"));
    }

    #[test]
    fn text_without_secrets_is_untouched() {
        let line = "granted replication in 222222222222/eu-west-1";
        assert!(matches!(redact(line), Cow::Borrowed(_)));
    }

    #[test]
    fn short_values_are_not_treated_as_secrets() {
        register("abc");
        assert_eq!(redact("abc def"), "abc def");
    }
}
