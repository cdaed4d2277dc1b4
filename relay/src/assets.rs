//! The page's files: a table from URL path to content type and bytes, embedded
//! at compile time (as rerun's web viewer server does) with their gzip and
//! brotli forms, or read from `--www`; and which form a request gets.

use std::fmt;
use std::path::{Component, Path, PathBuf};

/// One file of the page, in the encoding chosen for the request.
pub struct Asset {
    pub content_type: &'static str,
    /// The `Content-Encoding`, when the bytes are compressed.
    pub encoding: Option<&'static str>,
    /// A strong validator of exactly these bytes (quoted, as HTTP writes it).
    pub etag: String,
    pub bytes: std::borrow::Cow<'static, [u8]>,
}

impl fmt::Debug for Asset {
    // Sizes, not bytes: a wasm file in a log line helps nobody.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Asset({}, {:?}, {} bytes)",
            self.content_type,
            self.encoding,
            self.bytes.len()
        )
    }
}

/// One embedded file, compressed at build time (see `build.rs`).
struct Embedded {
    path: &'static str,
    etag: &'static str,
    identity: &'static [u8],
    gzip: &'static [u8],
    brotli: &'static [u8],
}

/// Every file of `www/`, embedded, as `build.rs` lists them.
const EMBEDDED: &[Embedded] = include!(concat!(env!("OUT_DIR"), "/embedded.rs"));

/// The encodings a request accepts, from its `Accept-Encoding`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Accepts {
    pub brotli: bool,
    pub gzip: bool,
}

impl Accepts {
    /// Reads `Accept-Encoding` (RFC 9110 §12.5.3): names with optional
    /// weights, where `q=0` means "not this one" and `*` stands for any
    /// name not listed.
    pub fn parse(header: &str) -> Accepts {
        let mut named = Vec::new();
        let mut any = None;
        for item in header.split(',') {
            let mut parts = item.split(';');
            let name = parts.next().unwrap_or("").trim().to_ascii_lowercase();
            let weight = parts
                .filter_map(|param| param.trim().strip_prefix("q="))
                .filter_map(|q| q.trim().parse::<f32>().ok())
                .next_back()
                .unwrap_or(1.0);
            let wanted = weight > 0.0;
            if name == "*" {
                any = Some(wanted);
            } else if !name.is_empty() {
                named.push((name, wanted));
            }
        }
        let accepts = |encoding: &str| {
            named
                .iter()
                .find(|(name, _)| name == encoding)
                .map(|(_, wanted)| *wanted)
                .or(any)
                .unwrap_or(false)
        };
        Accepts {
            brotli: accepts("br"),
            gzip: accepts("gzip") || accepts("x-gzip"),
        }
    }
}

/// Where the page comes from.
#[derive(Debug, Clone)]
pub enum Assets {
    /// Compiled in, with gzip and brotli made at build time.
    Embedded,
    /// A folder on disk, for front-end work without rebuilding the relay:
    /// served as it is, uncompressed, with a validator.
    Dir(PathBuf),
}

impl Assets {
    /// The file for a URL path, in the smallest encoding the request
    /// accepts, or None for 404. `/` is `/index.html`.
    pub async fn get(&self, url_path: &str, accepts: Accepts) -> Option<Asset> {
        let url_path = if url_path == "/" {
            "/index.html"
        } else {
            url_path
        };
        let content_type = content_type(url_path)?;
        match self {
            Assets::Embedded => {
                let file = EMBEDDED.iter().find(|file| file.path == url_path)?;
                let (encoding, bytes, suffix) = if accepts.brotli {
                    (Some("br"), file.brotli, "-br")
                } else if accepts.gzip {
                    (Some("gzip"), file.gzip, "-gz")
                } else {
                    (None, file.identity, "")
                };
                Some(Asset {
                    content_type,
                    encoding,
                    // Each encoding is its own representation, with its own tag.
                    etag: format!("\"{}{suffix}\"", file.etag),
                    bytes: std::borrow::Cow::Borrowed(bytes),
                })
            }
            Assets::Dir(root) => {
                let relative = safe_relative_path(url_path)?;
                let bytes = tokio_read(root.join(relative)).await?;
                let mut hasher = std::hash::DefaultHasher::new();
                std::hash::Hash::hash(&bytes[..], &mut hasher);
                Some(Asset {
                    content_type,
                    encoding: None,
                    etag: format!("\"{:016x}\"", std::hash::Hasher::finish(&hasher)),
                    bytes: std::borrow::Cow::Owned(bytes),
                })
            }
        }
    }
}

/// Whether an `If-None-Match` header names `etag` (or is `*`): the browser
/// already has these bytes.
pub fn already_has(if_none_match: &str, etag: &str) -> bool {
    if_none_match.split(',').any(|tag| {
        let tag = tag.trim();
        // A weak comparison, as If-None-Match asks for (RFC 9110 §13.1.2).
        tag == "*" || tag.trim_start_matches("W/") == etag
    })
}

async fn tokio_read(path: PathBuf) -> Option<Vec<u8>> {
    tokio::task::spawn_blocking(move || std::fs::read(path).ok())
        .await
        .ok()
        .flatten()
}

/// Only plain names: no `..`, no root, so a URL cannot leave the folder.
fn safe_relative_path(url_path: &str) -> Option<PathBuf> {
    let relative = Path::new(url_path.trim_start_matches('/'));
    relative
        .components()
        .all(|component| matches!(component, Component::Normal(_)))
        .then(|| relative.to_path_buf())
}

/// The content type by extension; files of other kinds are not served.
fn content_type(url_path: &str) -> Option<&'static str> {
    let extension = url_path.rsplit_once('.')?.1;
    Some(match extension {
        "html" => "text/html; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "js" => "text/javascript; charset=utf-8",
        "wasm" => "application/wasm",
        "png" => "image/png",
        "svg" => "image/svg+xml",
        "json" => "application/json",
        "jsonl" => "application/x-ndjson; charset=utf-8",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn embedded_files_have_their_types() {
        let assets = Assets::Embedded;
        let index = assets.get("/", Accepts::default()).await.expect("index");
        assert_eq!(index.content_type, "text/html; charset=utf-8");
        let wasm = assets
            .get("/pkg/socket_flow_web_bg.wasm", Accepts::default())
            .await
            .expect("wasm");
        assert_eq!(wasm.content_type, "application/wasm");
        assert_eq!(wasm.encoding, None);
        assert_eq!(&wasm.bytes[..4], b"\0asm");
        assert!(assets.get("/nope.html", Accepts::default()).await.is_none());
    }

    #[tokio::test]
    async fn the_smallest_accepted_encoding_is_served() {
        let assets = Assets::Embedded;
        let wasm = "/pkg/socket_flow_web_bg.wasm";
        let plain = assets.get(wasm, Accepts::default()).await.expect("wasm");
        let gzip = assets
            .get(wasm, Accepts::parse("gzip, deflate"))
            .await
            .expect("wasm");
        let brotli = assets
            .get(wasm, Accepts::parse("gzip, deflate, br, zstd"))
            .await
            .expect("wasm");
        assert_eq!(gzip.encoding, Some("gzip"));
        assert_eq!(&gzip.bytes[..2], [0x1f, 0x8b], "the gzip magic number");
        assert_eq!(brotli.encoding, Some("br"));
        assert!(brotli.bytes.len() < gzip.bytes.len());
        assert!(gzip.bytes.len() < plain.bytes.len());
        let tags = [&plain.etag, &gzip.etag, &brotli.etag];
        assert!(tags[0] != tags[1] && tags[1] != tags[2] && tags[0] != tags[2]);
    }

    #[test]
    fn accept_encoding_weights_and_wildcards() {
        let both = Accepts {
            brotli: true,
            gzip: true,
        };
        assert_eq!(Accepts::parse("gzip, br"), both);
        assert_eq!(Accepts::parse("*"), both);
        assert_eq!(
            Accepts::parse("br;q=0, gzip;q=0.5"),
            Accepts {
                brotli: false,
                gzip: true
            }
        );
        assert_eq!(
            Accepts::parse("*;q=0, identity"),
            Accepts::default(),
            "identity only"
        );
        assert_eq!(
            Accepts::parse("BR , *;q=0"),
            Accepts {
                brotli: true,
                gzip: false
            }
        );
        assert_eq!(Accepts::parse(""), Accepts::default());
    }

    #[test]
    fn if_none_match_compares_weakly_and_takes_lists() {
        assert!(already_has("\"a\"", "\"a\""));
        assert!(already_has("\"x\", W/\"a\"", "\"a\""));
        assert!(already_has("*", "\"a\""));
        assert!(!already_has("\"b\"", "\"a\""));
    }

    #[test]
    fn paths_cannot_escape_the_folder() {
        assert!(safe_relative_path("/../etc/passwd").is_none());
        assert!(safe_relative_path("/pkg/../../x").is_none());
        assert_eq!(
            safe_relative_path("/pkg/a.js"),
            Some(PathBuf::from("pkg/a.js"))
        );
    }
}
