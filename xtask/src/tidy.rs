//! Tidy checks that run as tests: every Rust file opens with a `//!` line
//! saying what it is for, as rust-analyzer's tidy does.

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    fn rust_files(dir: &Path, files: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name();
            if name == "target" || name.to_string_lossy().starts_with('.') {
                continue;
            }
            if path.is_dir() {
                rust_files(&path, files);
            } else if path.extension().is_some_and(|extension| extension == "rs") {
                files.push(path);
            }
        }
    }

    #[test]
    fn every_rust_file_says_what_it_is_for() {
        let mut files = Vec::new();
        rust_files(&crate::project_root(), &mut files);
        assert!(files.len() > 20, "the tidy check found the sources");
        let missing: Vec<String> = files
            .iter()
            .filter(|path| {
                std::fs::read_to_string(path)
                    .map(|text| !text.starts_with("//!"))
                    .unwrap_or(true)
            })
            .map(|path| path.display().to_string())
            .collect();
        assert!(
            missing.is_empty(),
            "files without a `//!` first line: {missing:#?}"
        );
    }
}
