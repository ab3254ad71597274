//! `make bench`: measures the release bootstrap as it ships and checks the
//! figures against the budgets in `bench/budgets.json`.
//!
//! - cold start: from starting the process to its first request for an
//!   event on a local Lambda Runtime API;
//! - wall time of Create, Update and Delete with one and with eight
//!   cross-account destinations against moto;
//! - AWS calls per event, by action, from moto's request recorder;
//! - peak resident memory over whole lifecycles;
//! - bootstrap and zip sizes for arm64 and x86_64;
//! - one HTTP and TLS stack in the dependency tree.
//!
//! `--quick` takes fewer samples (what `make test` runs). The figures go to
//! `target/bench.json`; any budget exceeded fails the run.

mod common;

use common::{
    moto,
    recorder::Recorder,
    runtime_api::{Function, Outcome, RuntimeApi},
};
use ecr_replication::identity::ResourceIdentity;
use serde_json::{Map, Value, json};
use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::ExitCode,
    time::{Duration, Instant},
};

const FUNCTION_ARN: &str = "arn:aws:lambda:us-east-1:123456789012:function:ecr-replication";
const KINDS: [&str; 3] = ["Create", "Update", "Delete"];

struct Samples {
    cold_starts: usize,
    lifecycles: usize,
}

fn main() -> ExitCode {
    let quick = std::env::args().any(|a| a == "--quick");
    let samples = if quick {
        Samples {
            cold_starts: 7,
            lifecycles: 3,
        }
    } else {
        Samples {
            cold_starts: 30,
            lifecycles: 10,
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    match runtime.block_on(run(samples)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(problem) => {
            eprintln!("bench: {problem}");
            ExitCode::FAILURE
        }
    }
}

async fn run(samples: Samples) -> Result<(), String> {
    let root = moto::project_dir();
    let artefacts = Artefacts::find(&root)?;
    let budgets: Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("bench/budgets.json"))
            .map_err(|e| format!("read bench/budgets.json: {e}"))?,
    )
    .map_err(|e| format!("parse bench/budgets.json: {e}"))?;

    let cold = cold_starts(&artefacts.x86_64, samples.cold_starts).await?;
    let one = lifecycles(&artefacts.x86_64, 1, samples.lifecycles).await?;
    let eight = lifecycles(&artefacts.x86_64, 8, samples.lifecycles).await?;
    let duplicates = stack_duplicates(&budgets)?;

    let figures = json!({
        "cold_start_ms": {"median": median_ms(&cold), "max": max_ms(&cold), "runs": cold.len()},
        "events_ms": {
            "one_destination": one.medians_ms(),
            "eight_destinations": eight.medians_ms(),
            "runs": samples.lifecycles,
        },
        "aws_calls": {"one_destination": one.calls, "eight_destinations": eight.calls},
        "peak_rss_mb": mb(one.peak_rss_kb.max(eight.peak_rss_kb) * 1024),
        "sizes_mb": artefacts.sizes(),
        "duplicated_http_or_tls_crates": duplicates,
    });
    let path = root.join("target/bench.json");
    std::fs::write(&path, serde_json::to_string_pretty(&figures).unwrap())
        .map_err(|e| format!("write {}: {e}", path.display()))?;

    print_table(&figures, &one, &eight);
    let exceeded = check(&figures, &budgets, &one, &eight);
    if exceeded.is_empty() {
        println!("\nevery budget holds (bench/budgets.json); figures in target/bench.json");
        Ok(())
    } else {
        Err(format!("budgets exceeded:\n  {}", exceeded.join("\n  ")))
    }
}

/// The release builds that `cargo lambda build --release` made.
struct Artefacts {
    x86_64: PathBuf,
    arm64: PathBuf,
    x86_64_zip: PathBuf,
    arm64_zip: PathBuf,
}

impl Artefacts {
    fn find(root: &Path) -> Result<Self, String> {
        let artefacts = Self {
            x86_64: root.join("target/x86_64-unknown-linux-gnu/release/bootstrap"),
            arm64: root.join("target/aarch64-unknown-linux-gnu/release/bootstrap"),
            x86_64_zip: root.join("target/lambda/x86_64/bootstrap/bootstrap.zip"),
            arm64_zip: root.join("target/lambda/arm64/bootstrap/bootstrap.zip"),
        };
        for path in [
            &artefacts.x86_64,
            &artefacts.arm64,
            &artefacts.x86_64_zip,
            &artefacts.arm64_zip,
        ] {
            if !path.exists() {
                return Err(format!(
                    "{} is missing: run `make bench`, which builds the release artefacts first",
                    path.display()
                ));
            }
        }
        Ok(artefacts)
    }

    fn sizes(&self) -> Value {
        let size = |p: &Path| mb(std::fs::metadata(p).map_or(0, |m| m.len()));
        json!({
            "arm64": {"bootstrap": size(&self.arm64), "zip": size(&self.arm64_zip)},
            "x86_64": {"bootstrap": size(&self.x86_64), "zip": size(&self.x86_64_zip)},
        })
    }
}

/// Time from starting the process to its first request for an event.
async fn cold_starts(binary: &Path, runs: usize) -> Result<Vec<Duration>, String> {
    // Started before the clock: the first call launches moto.
    let endpoint = moto::endpoint();
    let mut times = Vec::new();
    for _ in 0..runs {
        let api = RuntimeApi::start(FUNCTION_ARN).await;
        let started = Instant::now();
        let function = api.spawn_function(&[binary], endpoint, &[]);
        let first_poll = loop {
            if let Some(at) = api.first_poll() {
                break at;
            }
            if started.elapsed() > Duration::from_secs(10) {
                let output = function.stop().await;
                return Err(format!("the function never asked for an event:\n{output}"));
            }
            tokio::time::sleep(Duration::from_micros(200)).await;
        };
        times.push(first_poll.duration_since(started));
        function.stop().await;
    }
    Ok(times)
}

/// What whole lifecycles with `destinations` cross-account destinations cost.
struct Lifecycles {
    times: BTreeMap<&'static str, Vec<Duration>>,
    calls: BTreeMap<&'static str, BTreeMap<String, usize>>,
    peak_rss_kb: u64,
}

impl Lifecycles {
    fn medians_ms(&self) -> BTreeMap<&'static str, f64> {
        self.times.iter().map(|(k, t)| (*k, median_ms(t))).collect()
    }
}

async fn lifecycles(binary: &Path, destinations: usize, runs: usize) -> Result<Lifecycles, String> {
    let source = moto::fresh_account();
    let credentials = moto::credentials_for(&source).await;
    let environment = vec![
        (
            "AWS_ACCESS_KEY_ID".to_owned(),
            credentials.access_key_id().to_owned(),
        ),
        (
            "AWS_SECRET_ACCESS_KEY".to_owned(),
            credentials.secret_access_key().to_owned(),
        ),
        (
            "AWS_SESSION_TOKEN".to_owned(),
            credentials.session_token().unwrap_or_default().to_owned(),
        ),
    ];
    let api = RuntimeApi::start(FUNCTION_ARN).await;
    let recorder = Recorder::start().await;
    let function = api.spawn_function(&[binary], moto::endpoint(), &environment);

    let mut lifecycles = Lifecycles {
        times: BTreeMap::new(),
        calls: BTreeMap::new(),
        peak_rss_kb: 0,
    };
    for run in 0..runs {
        let accounts: Vec<String> = (0..destinations).map(|_| moto::fresh_account()).collect();
        let stack_id = format!(
            "arn:aws:cloudformation:us-east-1:{source}:stack/bench-{destinations}-{run}/00000000-0000-4000-8000-000000000000"
        );
        let created = properties(&accounts, &["team-a/"]);
        let updated = properties(&accounts, &["team-a/", "team-b/"]);
        for kind in KINDS {
            let event = event(
                kind,
                &stack_id,
                &recorder.url(kind, "0"),
                &created,
                &updated,
            );
            if run == 0 {
                moto::start_recording().await;
            }
            let started = Instant::now();
            let id = api.invoke(event, Duration::from_secs(120));
            let outcome = api.outcome(&id, Duration::from_secs(120)).await;
            let elapsed = started.elapsed();
            if run == 0 {
                let mut counts = BTreeMap::new();
                for action in moto::stop_recording().await {
                    *counts.entry(action).or_insert(0) += 1;
                }
                lifecycles.calls.insert(kind, counts);
            }

            let answered = recorder.received().last().map(|r| {
                serde_json::from_slice::<Value>(&r.body).unwrap_or_default()["Status"] == "SUCCESS"
            });
            if !matches!(outcome, Some(Outcome::Response(_))) || answered != Some(true) {
                let output = function.stop().await;
                return Err(format!(
                    "{kind} with {destinations} destination(s) failed:\n{output}"
                ));
            }
            lifecycles.times.entry(kind).or_default().push(elapsed);
        }
    }
    lifecycles.peak_rss_kb = peak_rss_kb(&function);
    function.stop().await;
    Ok(lifecycles)
}

fn properties(accounts: &[String], prefixes: &[&str]) -> Value {
    let destinations: Vec<Value> = accounts
        .iter()
        .map(|a| {
            json!({
                "Region": "eu-west-1",
                "AccountId": a,
                "RoleArn": format!("arn:aws:iam::{a}:role/ecr-replication-destination")
            })
        })
        .collect();
    json!({"ServiceToken": FUNCTION_ARN, "Destinations": destinations, "RepositoryPrefixes": prefixes})
}

fn event(kind: &str, stack_id: &str, url: &str, created: &Value, updated: &Value) -> Value {
    let mut event = Map::new();
    event.insert("RequestType".into(), json!(kind));
    event.insert("ServiceToken".into(), json!(FUNCTION_ARN));
    event.insert("ResponseURL".into(), json!(url));
    event.insert("StackId".into(), json!(stack_id));
    event.insert("RequestId".into(), json!(format!("bench-{kind}")));
    event.insert("ResourceType".into(), json!("Custom::EcrReplication"));
    event.insert("LogicalResourceId".into(), json!("Replication"));
    let physical_id = ResourceIdentity::new(stack_id, "Replication").physical_id;
    match kind {
        "Create" => {
            event.insert("ResourceProperties".into(), created.clone());
        }
        "Update" => {
            event.insert("PhysicalResourceId".into(), json!(physical_id));
            event.insert("ResourceProperties".into(), updated.clone());
            event.insert("OldResourceProperties".into(), created.clone());
        }
        _ => {
            event.insert("PhysicalResourceId".into(), json!(physical_id));
            event.insert("ResourceProperties".into(), updated.clone());
        }
    }
    Value::Object(event)
}

/// The process's peak resident set size, from /proc.
fn peak_rss_kb(function: &Function) -> u64 {
    let Some(pid) = function.child.id() else {
        return 0;
    };
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Crates of the HTTP and TLS stack that appear in more than one version in
/// the function's dependency tree.
fn stack_duplicates(budgets: &Value) -> Result<Vec<String>, String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = std::process::Command::new(cargo)
        .args([
            "tree",
            "--locked",
            "-e",
            "normal",
            "--target",
            "aarch64-unknown-linux-gnu",
        ])
        .args(["--prefix", "none", "--format", "{p}"])
        .current_dir(moto::project_dir())
        .output()
        .map_err(|e| format!("run cargo tree: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "cargo tree failed: {}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let mut versions: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let mut parts = line.split_whitespace();
        if let (Some(name), Some(version)) = (parts.next(), parts.next()) {
            let seen = versions.entry(name.to_owned()).or_default();
            if !seen.iter().any(|v| v == version) {
                seen.push(version.to_owned());
            }
        }
    }
    let watched: Vec<&str> = budgets["single_stack_crates"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    Ok(versions
        .into_iter()
        .filter(|(name, v)| watched.contains(&name.as_str()) && v.len() > 1)
        .map(|(name, v)| format!("{name} {}", v.join(", ")))
        .collect())
}

fn check(figures: &Value, budgets: &Value, one: &Lifecycles, eight: &Lifecycles) -> Vec<String> {
    let mut exceeded = Vec::new();
    let mut at_most = |what: &str, value: f64, budget: f64| {
        if value > budget {
            exceeded.push(format!("{what}: {value:.2}, budget {budget}"));
        }
    };
    at_most(
        "cold start median (ms)",
        figures["cold_start_ms"]["median"]
            .as_f64()
            .unwrap_or(f64::MAX),
        budgets["cold_start_median_ms"].as_f64().unwrap_or(0.0),
    );
    at_most(
        "peak resident memory (MB)",
        figures["peak_rss_mb"].as_f64().unwrap_or(f64::MAX),
        budgets["peak_rss_mb"].as_f64().unwrap_or(0.0),
    );
    at_most(
        "zipped arm64 bootstrap (MB)",
        figures["sizes_mb"]["arm64"]["zip"]
            .as_f64()
            .unwrap_or(f64::MAX),
        budgets["arm64_zip_mb"].as_f64().unwrap_or(0.0),
    );
    // Over every event: each one waits a random pause before reading back,
    // and one with eight destinations waits for the longest of eight.
    at_most(
        "time of events with 8 destinations / with 1",
        total_ms(eight) / total_ms(one),
        budgets["eight_to_one_destination_time_ratio"]
            .as_f64()
            .unwrap_or(0.0),
    );

    let allowed: BTreeMap<String, usize> =
        serde_json::from_value(budgets["create_one_destination_calls"].clone()).unwrap_or_default();
    if one.calls["Create"] != allowed {
        exceeded.push(format!(
            "AWS calls of a Create with one destination: {:?}, budget exactly {allowed:?}",
            one.calls["Create"]
        ));
    }
    if let Some(duplicates) = figures["duplicated_http_or_tls_crates"].as_array()
        && !duplicates.is_empty()
    {
        exceeded.push(format!("more than one HTTP or TLS stack: {duplicates:?}"));
    }
    exceeded
}

fn print_table(figures: &Value, one: &Lifecycles, eight: &Lifecycles) {
    let cold = &figures["cold_start_ms"];
    println!("| Measure | Value |");
    println!("| --- | --- |");
    println!(
        "| cold start, process start to first event request (x86_64 release, {} runs) | median {:.1} ms, max {:.1} ms |",
        cold["runs"],
        cold["median"].as_f64().unwrap_or(0.0),
        cold["max"].as_f64().unwrap_or(0.0)
    );
    for kind in KINDS {
        println!(
            "| {kind}, median of {} (1 / 8 cross-account destinations) | {:.0} ms / {:.0} ms |",
            figures["events_ms"]["runs"],
            median_ms(&one.times[kind]),
            median_ms(&eight.times[kind])
        );
    }
    for kind in KINDS {
        println!(
            "| AWS calls, {kind} (1 / 8 destinations) | {} / {} |",
            calls(&one.calls[kind]),
            calls(&eight.calls[kind])
        );
    }
    println!(
        "| peak resident memory, whole lifecycles | {:.1} MB |",
        figures["peak_rss_mb"].as_f64().unwrap_or(0.0)
    );
    for arch in ["arm64", "x86_64"] {
        let sizes = &figures["sizes_mb"][arch];
        println!(
            "| {arch} bootstrap / zipped | {:.2} MB / {:.2} MB |",
            sizes["bootstrap"].as_f64().unwrap_or(0.0),
            sizes["zip"].as_f64().unwrap_or(0.0)
        );
    }
    println!(
        "| all events, 8 destinations / 1 destination | {:.2} times as long |",
        total_ms(eight) / total_ms(one)
    );
    let duplicates = figures["duplicated_http_or_tls_crates"]
        .as_array()
        .map_or(0, Vec::len);
    println!("| HTTP/TLS crates in more than one version | {duplicates} |");
}

fn calls(counts: &BTreeMap<String, usize>) -> String {
    let total: usize = counts.values().sum();
    let parts: Vec<String> = counts.iter().map(|(a, n)| format!("{a} {n}")).collect();
    format!("{total}: {}", parts.join(", "))
}

fn median_ms(times: &[Duration]) -> f64 {
    let mut ms: Vec<f64> = times.iter().map(|t| t.as_secs_f64() * 1000.0).collect();
    ms.sort_by(f64::total_cmp);
    match ms.len() {
        0 => 0.0,
        n if n % 2 == 1 => ms[n / 2],
        n => (ms[n / 2 - 1] + ms[n / 2]) / 2.0,
    }
}

fn total_ms(lifecycles: &Lifecycles) -> f64 {
    lifecycles
        .times
        .values()
        .flatten()
        .map(|t| t.as_secs_f64() * 1000.0)
        .sum()
}

fn max_ms(times: &[Duration]) -> f64 {
    times
        .iter()
        .map(|t| t.as_secs_f64() * 1000.0)
        .fold(0.0, f64::max)
}

fn mb(bytes: u64) -> f64 {
    (bytes as f64 / 1_048_576.0 * 100.0).round() / 100.0
}
