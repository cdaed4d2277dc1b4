//! The page's files: a table from URL path to content type and bytes, embedded
//! at compile time (as rerun's web viewer server does), or read from `--www`.

use std::fmt;
use std::path::{Component, Path, PathBuf};

/// One file of the page.
pub struct Asset {
    pub content_type: &'static str,
    pub bytes: std::borrow::Cow<'static, [u8]>,
}

impl fmt::Debug for Asset {
    // Sizes, not bytes: a wasm file in a log line helps nobody.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Asset({}, {} bytes)",
            self.content_type,
            self.bytes.len()
        )
    }
}

macro_rules! embedded {
    ($($path:literal),* $(,)?) => {
        &[$(($path, include_bytes!(concat!("../../www", $path)) as &[u8])),*]
    };
}

/// Every file of `www/`, embedded. A file added to `www/` must be added here.
const EMBEDDED: &[(&str, &[u8])] = embedded!(
    "/index.html",
    "/style.css",
    "/pkg/socket_flow_web.js",
    "/pkg/socket_flow_web_bg.wasm",
);

/// Where the page comes from.
#[derive(Debug, Clone)]
pub enum Assets {
    Embedded,
    /// A folder on disk, for front-end work without rebuilding the relay.
    Dir(PathBuf),
}

impl Assets {
    /// The file for a URL path, or None for 404. `/` is `/index.html`.
    pub async fn get(&self, url_path: &str) -> Option<Asset> {
        let url_path = if url_path == "/" {
            "/index.html"
        } else {
            url_path
        };
        let content_type = content_type(url_path)?;
        let bytes = match self {
            Assets::Embedded => EMBEDDED
                .iter()
                .find(|(path, _)| *path == url_path)
                .map(|(_, bytes)| std::borrow::Cow::Borrowed(*bytes))?,
            Assets::Dir(root) => {
                let relative = safe_relative_path(url_path)?;
                std::borrow::Cow::Owned(tokio_read(root.join(relative)).await?)
            }
        };
        Some(Asset {
            content_type,
            bytes,
        })
    }
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
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn embedded_files_have_their_types() {
        let assets = Assets::Embedded;
        let index = assets.get("/").await.expect("index");
        assert_eq!(index.content_type, "text/html; charset=utf-8");
        let wasm = assets
            .get("/pkg/socket_flow_web_bg.wasm")
            .await
            .expect("wasm");
        assert_eq!(wasm.content_type, "application/wasm");
        assert_eq!(&wasm.bytes[..4], b"\0asm");
        assert!(assets.get("/nope.html").await.is_none());
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
