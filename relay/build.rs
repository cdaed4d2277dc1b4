//! Fails early, with the fix, when the page bundle the relay embeds is missing.

use std::path::Path;

fn main() {
    let www = Path::new(env!("CARGO_MANIFEST_DIR")).join("../www");
    println!("cargo:rerun-if-changed={}", www.display());
    for file in [
        "index.html",
        "pkg/socket_flow_web.js",
        "pkg/socket_flow_web_bg.wasm",
    ] {
        if !www.join(file).exists() {
            panic!(
                "www/{file} is missing, and the relay embeds it. It is committed to the \
                 repository: restore it with `git checkout www/`, or rebuild it with \
                 `cargo xtask web`."
            );
        }
    }
}
