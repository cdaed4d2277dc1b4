//! `cargo xtask ci`: every check CI runs, in the order that fails fastest:
//! fmt, clippy, the relay's build, every test, a 30 s fuzz, and the bundle.
//!
//! This is the README's test command, and the only thing `.ci/run` calls after
//! installing the prerequisites.

use std::path::Path;
use std::time::Instant;

use anyhow::bail;

use crate::{cargo, run_command};

/// What the browser tests need. Checked up front so that a machine without
/// them fails with the install line instead of a timeout deep in a test.
const BROWSER_BINARIES: [&str; 2] = ["/usr/bin/chromium", "/usr/bin/chromedriver"];

pub fn run() -> anyhow::Result<()> {
    let started = Instant::now();
    let missing: Vec<&str> = BROWSER_BINARIES
        .iter()
        .copied()
        .filter(|path| !Path::new(path).exists())
        .collect();
    if !missing.is_empty() {
        bail!(
            "the browser tests need {}: install them with \
             `sudo apt-get install chromium chromium-driver` (.ci/run does this on CI)",
            missing.join(" and ")
        );
    }

    step("cargo fmt --check", || {
        let mut command = cargo();
        command.args(["fmt", "--all", "--", "--check"]);
        run_command(command)
    })?;
    step("cargo clippy -D warnings", || {
        let mut command = cargo();
        command.args([
            "clippy",
            "--workspace",
            "--all-targets",
            "--locked",
            "--",
            "-D",
            "warnings",
        ]);
        run_command(command)
    })?;
    // The end-to-end tests start the real binary, so build it first.
    step("cargo build -p relay", || {
        let mut command = cargo();
        command.args(["build", "--package", "relay", "--locked"]);
        run_command(command)
    })?;
    step("cargo test --workspace", || {
        let mut command = cargo();
        command.args(["test", "--workspace", "--locked"]);
        run_command(command)
    })?;
    // A short fuzz: every push meets a few hundred thousand odd frames.
    step("cargo xtask fuzz --seconds 30", || {
        crate::fuzz::run(30, 0x5eed)
    })?;
    step("cargo xtask web --check", || crate::web::run(true))?;

    eprintln!(
        "ci: all checks passed in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn step(name: &str, body: impl FnOnce() -> anyhow::Result<()>) -> anyhow::Result<()> {
    let started = Instant::now();
    eprintln!("ci: {name}");
    body()?;
    eprintln!("ci: {name}: ok in {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}
