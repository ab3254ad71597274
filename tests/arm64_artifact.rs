//! The artefact users deploy: the arm64 `bootstrap` that `sam build` wrote
//! to `.aws-sam/build`, run under qemu against a Runtime API and moto with
//! the events of `events/`.
//!
//! Not part of a plain `cargo test` (it needs `sam build` first): `make test`
//! builds the artefact and then runs `cargo test --test arm64_artifact`.

mod common;

use common::runtime_api::answer_event_files;
use std::path::Path;

/// Where Debian's libc6-arm64-cross puts the arm64 loader and libraries.
const ARM64_SYSROOT: &str = "/usr/aarch64-linux-gnu";

#[tokio::test]
async fn the_arm64_artifact_answers_create_update_and_delete_under_qemu() {
    let bootstrap = common::moto::project_dir().join(".aws-sam/build/Function/bootstrap");
    assert!(
        bootstrap.exists(),
        "{} is missing: run `make test`, which runs `sam build` before this test",
        bootstrap.display()
    );
    let qemu = Path::new("/usr/bin/qemu-aarch64-static");
    assert!(
        qemu.exists()
            && Path::new(ARM64_SYSROOT)
                .join("lib/ld-linux-aarch64.so.1")
                .exists(),
        "qemu-user-static and libc6-arm64-cross are missing: run `make test`, which installs them"
    );

    let logs =
        answer_event_files(&[qemu, Path::new("-L"), Path::new(ARM64_SYSROOT), &bootstrap]).await;
    assert!(logs.contains("request received"), "{logs}");
}
