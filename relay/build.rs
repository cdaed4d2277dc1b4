//! Prepares the page the relay embeds: fails early, with the fix, when a file
//! is missing, and compresses each file once here (gzip and brotli at their
//! best) so that the relay serves them small without compressing per request.
//!
//! It writes `$OUT_DIR/embedded.rs`: the table `assets.rs` includes.

use std::fmt::Write as _;
use std::hash::{Hash, Hasher};
use std::io::Write as _;
use std::path::{Path, PathBuf};

/// Every file of `www/` the relay embeds. A file added to `www/` must be
/// added here.
const FILES: [&str; 5] = [
    "/index.html",
    "/style.css",
    "/pkg/socket_flow_web.js",
    "/pkg/socket_flow_web_bg.wasm",
    "/demo/lesson.jsonl",
];

fn main() {
    let www = Path::new(env!("CARGO_MANIFEST_DIR")).join("../www");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    println!("cargo:rerun-if-changed={}", www.display());
    let mut table = String::from("&[\n");
    for (index, file) in FILES.iter().enumerate() {
        let path = www.join(file.trim_start_matches('/'));
        println!("cargo:rerun-if-changed={}", path.display());
        let Ok(bytes) = std::fs::read(&path) else {
            panic!(
                "www{file} is missing, and the relay embeds it. It is committed to the \
                 repository: restore it with `git checkout www/`, or rebuild it with \
                 `cargo xtask web`."
            );
        };
        let gzip = out.join(format!("{index}.gz"));
        let brotli = out.join(format!("{index}.br"));
        std::fs::write(&gzip, gzip_best(&bytes)).expect("OUT_DIR is writable");
        std::fs::write(&brotli, brotli_best(&bytes)).expect("OUT_DIR is writable");
        let _ = writeln!(
            table,
            "    Embedded {{ path: {file:?}, etag: \"{etag}\", identity: include_bytes!({path:?}), \
             gzip: include_bytes!({gzip:?}), brotli: include_bytes!({brotli:?}) }},",
            etag = etag(&bytes),
        );
    }
    table.push_str("]\n");
    std::fs::write(out.join("embedded.rs"), table).expect("OUT_DIR is writable");
}

/// A validator for the file's bytes: the same bytes give the same tag, in
/// this build and in `assets.rs`'s for `--www`.
fn etag(bytes: &[u8]) -> String {
    let mut hasher = std::hash::DefaultHasher::new();
    bytes.hash(&mut hasher);
    format!("{:016x}", hasher.finish())
}

fn gzip_best(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(bytes).expect("writing to memory");
    encoder.finish().expect("writing to memory")
}

fn brotli_best(bytes: &[u8]) -> Vec<u8> {
    let mut compressed = Vec::new();
    let params = brotli::enc::BrotliEncoderParams {
        quality: 11,
        lgwin: 22,
        ..Default::default()
    };
    brotli::BrotliCompress(&mut &bytes[..], &mut compressed, &params).expect("writing to memory");
    compressed
}
