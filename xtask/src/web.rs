//! `cargo xtask web`: builds the wasm page into `www/pkg/`, reproducibly.
//!
//! The bundle is committed so that `cargo run -p relay` needs no wasm
//! toolchain. That only stays honest if anyone can rebuild the same bytes, so
//! this task remaps every absolute path out of the binary and `--check`
//! rebuilds into a temporary folder and compares.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};
use sha2::{Digest, Sha256};

use crate::{cargo, project_root, run_command};

const TARGET: &str = "wasm32-unknown-unknown";
const CRATE: &str = "socket-flow-web";
/// The name of the built files: `socket_flow_web.js` and `socket_flow_web_bg.wasm`.
const OUT_NAME: &str = "socket_flow_web";
/// Written beside the bundle: the toolchain and a digest of every source that
/// goes into the page, so that `--check` fails after any edit of them, even one
/// that happens to compile to the same bytes.
const BUILD_INFO: &str = "BUILD-INFO";
/// The folders whose files are the page's sources.
const SOURCE_DIRS: [&str; 2] = ["web", "protocol"];

/// The Debian packages that provide a wasm-capable toolchain when rustup has none.
const DEBIAN_RUSTC: &str = "/usr/bin/rustc";
const DEBIAN_CARGO: &str = "/usr/bin/cargo";
const DEBIAN_RUST_SRC: &str = "/usr/lib/rustlib/src/rust";

pub fn run(check: bool) -> anyhow::Result<()> {
    let root = project_root();
    let committed = root.join("www/pkg");
    if !check {
        build_into(&root, &committed)?;
        eprintln!("built the page into {}", committed.display());
        return Ok(());
    }
    let scratch = tempfile::tempdir().context("could not make a temporary folder")?;
    build_into(&root, scratch.path())?;
    let differences = compare(scratch.path(), &committed)?;
    if !differences.is_empty() {
        bail!(
            "the committed bundle in www/pkg/ is not what the sources build:\n  {}\n\
             Run `cargo xtask web` and commit www/pkg/.",
            differences.join("\n  ")
        );
    }
    eprintln!("www/pkg/ matches a fresh build of web/ and protocol/");
    Ok(())
}

/// A toolchain that can build for wasm32.
enum Toolchain {
    /// rustup's, with the wasm32 standard library installed.
    Rustup,
    /// Debian's rustc-web, building the standard library from rust-web-src.
    Debian,
}

impl Toolchain {
    fn detect() -> anyhow::Result<Toolchain> {
        if rustup_has_wasm_std() {
            return Ok(Toolchain::Rustup);
        }
        let debian_ready = [DEBIAN_RUSTC, DEBIAN_CARGO]
            .iter()
            .all(|path| Path::new(path).exists())
            && Path::new(DEBIAN_RUST_SRC).join("library/std").exists();
        if debian_ready {
            return Ok(Toolchain::Debian);
        }
        bail!(
            "no toolchain here can build for {TARGET}. Either:\n\
             - with rustup: `rustup target add {TARGET}`, or\n\
             - on Debian: `sudo apt-get install rustc-web cargo-web rust-web-src rust-web-llvm lld-22`\n\
             (Debian's rustc 1.96 builds the standard library for {TARGET} from rust-web-src)"
        )
    }

    fn rustc(&self) -> PathBuf {
        match self {
            Toolchain::Rustup => PathBuf::from(std::env::var_os("RUSTC").unwrap_or("rustc".into())),
            Toolchain::Debian => PathBuf::from(DEBIAN_RUSTC),
        }
    }

    fn version(&self) -> anyhow::Result<String> {
        let output = Command::new(self.rustc()).arg("-V").output()?;
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
    }

    /// The `cargo build` for the page, with this toolchain's own flags.
    fn cargo_build(&self, root: &Path) -> Command {
        let mut command = match self {
            Toolchain::Rustup => cargo(),
            Toolchain::Debian => {
                let mut command = Command::new(DEBIAN_CARGO);
                command.current_dir(root);
                // rustup's proxies come first on PATH; name Debian's rustc outright.
                command.env("RUSTC", DEBIAN_RUSTC);
                // build-std is unstable; Debian's stable compiler allows it this way.
                command.env("RUSTC_BOOTSTRAP", "1");
                command
            }
        };
        command.args([
            "build",
            "--package",
            CRATE,
            "--profile",
            "web",
            "--target",
            TARGET,
        ]);
        command
            .arg("--locked")
            .arg("--target-dir")
            .arg(root.join("target/web"));
        if let Toolchain::Debian = self {
            command.arg("-Zbuild-std=std,panic_abort");
        }
        // Absolute paths end up in panic messages; remapping them is what
        // makes two machines build the same bytes.
        let mut remaps = vec![
            (root.to_path_buf(), "/socket-flow".to_string()),
            (cargo_home(), "/cargo".to_string()),
        ];
        if let Toolchain::Debian = self {
            remaps.push((PathBuf::from(DEBIAN_RUST_SRC), "/rust".to_string()));
        }
        let mut flags: Vec<String> = remaps
            .iter()
            .map(|(from, to)| format!("--remap-path-prefix={}={to}", from.display()))
            .collect();
        // Debian's wasm-opt (binaryen 108) predates externref as wasm-bindgen
        // uses it, and its output fails in the browser (Table.set() rejects
        // every object). Without reference types, wasm-bindgen keeps its
        // objects in a JS array instead, and wasm-opt leaves the table alone.
        flags.push(format!("-Ctarget-feature={WASM_FEATURES_OFF}"));
        // A panic's file and line help nobody in a projected page, and their
        // strings cost the wire (unstable: RUSTC_BOOTSTRAP, below).
        flags.push("-Zlocation-detail=none".to_string());
        if let Toolchain::Debian = self {
            // The standard library is built here, so it can be built to
            // abort at once on a panic, without the code that formats panic
            // messages: nothing in the page panics, and a message in a
            // projected page's console helps nobody.
            flags.push("-Zunstable-options".to_string());
            flags.push("-Cpanic=immediate-abort".to_string());
        }
        command.env("CARGO_ENCODED_RUSTFLAGS", flags.join("\u{1f}"));
        command.env("RUSTC_BOOTSTRAP", "1");
        command.env_remove("RUSTFLAGS");
        command.env("SOURCE_DATE_EPOCH", "0");
        command
    }
}

fn rustup_has_wasm_std() -> bool {
    let Ok(output) = Command::new("rustc").args(["--print", "sysroot"]).output() else {
        return false;
    };
    let sysroot = String::from_utf8_lossy(&output.stdout).trim().to_string();
    Path::new(&sysroot)
        .join("lib/rustlib")
        .join(TARGET)
        .join("lib")
        .is_dir()
}

fn cargo_home() -> PathBuf {
    std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cargo")))
        .unwrap_or_else(|| PathBuf::from("/root/.cargo"))
}

fn build_into(root: &Path, out_dir: &Path) -> anyhow::Result<()> {
    let toolchain = Toolchain::detect()?;
    run_command(toolchain.cargo_build(root))?;
    let wasm = root
        .join("target/web")
        .join(TARGET)
        .join("web")
        .join(format!("{OUT_NAME}.wasm"));

    fs::create_dir_all(out_dir)?;
    for stale in [format!("{OUT_NAME}.js"), format!("{OUT_NAME}_bg.wasm")] {
        let _ = fs::remove_file(out_dir.join(stale));
    }
    wasm_bindgen_cli_support::Bindgen::new()
        .input_path(&wasm)
        .web(true)?
        .typescript(false)
        .out_name(OUT_NAME)
        .generate(out_dir)
        .with_context(|| {
            format!(
                "wasm-bindgen failed on {}. The `wasm-bindgen` crate of web/ and \
                 `wasm-bindgen-cli-support` of xtask/ must be the same exact version: \
                 check both in the root Cargo.toml.",
                wasm.display()
            )
        })?;

    let optimiser = shrink(&out_dir.join(format!("{OUT_NAME}_bg.wasm")))?;

    let info = format!(
        "# Written by `cargo xtask web`; `cargo xtask web --check` compares it.\n\
         toolchain: {}\noptimiser: {optimiser}\n{}",
        toolchain.version()?,
        source_digests(root)?
    );
    fs::write(out_dir.join(BUILD_INFO), info)?;
    Ok(())
}

/// The wasm features rustc's wasm32-unknown-unknown target turns on, less
/// [`WASM_FEATURES_OFF`]; the optimiser must accept them, and every browser
/// the page supports has them.
const WASM_FEATURES: [&str; 4] = [
    "--enable-bulk-memory",
    "--enable-nontrapping-float-to-int",
    "--enable-sign-ext",
    "--enable-mutable-globals",
];
/// The features the page is built without; see `cargo_build`.
const WASM_FEATURES_OFF: &str = "-reference-types,-multivalue";

/// Runs binaryen's wasm-opt on the bundle in place: optimised for size, and
/// without the `name` section (function names, 40% of the file, which only
/// a debugger reads) or the producers section. Returns wasm-opt's version,
/// which the bytes depend on.
fn shrink(wasm: &Path) -> anyhow::Result<String> {
    let version = Command::new("wasm-opt").arg("--version").output().context(
        "wasm-opt is missing. It shrinks the page's wasm: install binaryen \
             (`sudo apt-get install binaryen`).",
    )?;
    let mut optimise = Command::new("wasm-opt");
    optimise
        .args(["-Oz", "--strip-debug", "--strip-producers"])
        .args(WASM_FEATURES)
        .arg(wasm)
        .arg("-o")
        .arg(wasm);
    run_command(optimise)?;
    Ok(String::from_utf8_lossy(&version.stdout).trim().to_string())
}

/// One line per source file of the page: its SHA-256 and its path.
fn source_digests(root: &Path) -> anyhow::Result<String> {
    let mut files = BTreeMap::new();
    for dir in SOURCE_DIRS {
        collect_files(root, &root.join(dir), &mut files)?;
    }
    let mut lines = String::new();
    for (relative, path) in files {
        let digest = Sha256::digest(fs::read(&path)?);
        let hex: String = digest.iter().map(|byte| format!("{byte:02x}")).collect();
        lines.push_str(&format!("{hex}  {relative}\n"));
    }
    Ok(lines)
}

fn collect_files(
    root: &Path,
    dir: &Path,
    files: &mut BTreeMap<String, PathBuf>,
) -> anyhow::Result<()> {
    for entry in fs::read_dir(dir).with_context(|| format!("could not read {}", dir.display()))? {
        let path = entry?.path();
        if path.is_dir() {
            collect_files(root, &path, files)?;
        } else {
            let relative = path
                .strip_prefix(root)?
                .to_string_lossy()
                .replace('\\', "/");
            files.insert(relative, path);
        }
    }
    Ok(())
}

/// Names every file that differs between a fresh build and the committed one.
fn compare(fresh: &Path, committed: &Path) -> anyhow::Result<Vec<String>> {
    let mut differences = Vec::new();
    let mut names: Vec<String> = Vec::new();
    for dir in [fresh, committed] {
        if let Ok(entries) = fs::read_dir(dir) {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().to_string();
                if !names.contains(&name) {
                    names.push(name);
                }
            }
        }
    }
    names.sort();
    for name in names {
        match (fs::read(fresh.join(&name)), fs::read(committed.join(&name))) {
            (Ok(built), Ok(kept)) if built == kept => {}
            (Ok(built), Ok(kept)) => differences.push(format!(
                "{name}: differs ({} bytes built, {} bytes committed)",
                built.len(),
                kept.len()
            )),
            (Ok(_), Err(_)) => differences.push(format!("{name}: missing from www/pkg/")),
            (Err(_), Ok(_)) => differences.push(format!("{name}: not produced by the build")),
            (Err(_), Err(_)) => {}
        }
    }
    Ok(differences)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_edit_of_a_source_changes_the_digests() {
        let root = tempfile::tempdir().expect("a temporary folder");
        for dir in ["web/src", "protocol/src"] {
            fs::create_dir_all(root.path().join(dir)).expect("folders");
        }
        fs::write(root.path().join("web/src/lib.rs"), "fn main() {}\n").expect("written");
        fs::write(root.path().join("protocol/src/lib.rs"), "//! x\n").expect("written");
        let before = source_digests(root.path()).expect("digests");
        assert!(before.contains("  web/src/lib.rs\n"));
        // A comment compiles to the same bytes; the check must still fail.
        fs::write(
            root.path().join("web/src/lib.rs"),
            "fn main() {} // edited\n",
        )
        .expect("edited");
        assert_ne!(source_digests(root.path()).expect("digests"), before);
    }

    #[test]
    fn compare_names_every_difference() {
        let fresh = tempfile::tempdir().expect("folder");
        let committed = tempfile::tempdir().expect("folder");
        fs::write(fresh.path().join("a.js"), "1").expect("written");
        fs::write(committed.path().join("a.js"), "2").expect("written");
        fs::write(fresh.path().join("b.wasm"), "x").expect("written");
        fs::write(committed.path().join("old.js"), "x").expect("written");
        let differences = compare(fresh.path(), committed.path()).expect("compared");
        assert_eq!(differences.len(), 3, "{differences:?}");
    }
}
