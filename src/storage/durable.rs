//! The few file operations that durability rests on: fsync a file, fsync a directory, and
//! replace a file atomically (temp file, fsync, rename, fsync the directory).
//!
//! Every success in SpendQL is acknowledged only after one of these has returned.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The suffix of files being written; leftovers are removed on start.
pub const TMP_SUFFIX: &str = ".tmp";

/// The temporary path used while `path` is being written.
pub fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(TMP_SUFFIX);
    PathBuf::from(name)
}

/// fsync a directory so that entries created, renamed or removed in it are durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    let handle = File::open(dir).map_err(|e| Error::io(dir, e))?;
    handle.sync_all().map_err(|e| Error::io(dir, e))
}

/// Create `dir` (and parents) and make the new entries durable.
pub fn create_dir_durable(dir: &Path) -> Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    sync_dir(dir)?;
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        sync_dir(parent)?;
    }
    Ok(())
}

/// Make a file written at its temporary path durable under its final name:
/// fsync it, rename it over `path`, fsync the directory.
pub fn publish(tmp: &Path, path: &Path) -> Result<()> {
    let file = File::open(tmp).map_err(|e| Error::io(tmp, e))?;
    file.sync_all().map_err(|e| Error::io(tmp, e))?;
    drop(file);
    fs::rename(tmp, path).map_err(|e| Error::io(path, e))?;
    sync_dir(parent_of(path))
}

/// Replace `path` with `bytes` atomically and durably.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = tmp_path(path);
    let mut file = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .open(&tmp)
        .map_err(|e| Error::io(&tmp, e))?;
    file.write_all(bytes).map_err(|e| Error::io(&tmp, e))?;
    drop(file);
    publish(&tmp, path)
}

/// Remove `path` durably; a missing file is not an error.
pub fn remove_durable(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Ok(()) => sync_dir(parent_of(path)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(path, e)),
    }
}

fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Remove `*.tmp` leftovers of interrupted writes under `dir`, recursively.
pub fn remove_tmp_files(dir: &Path) -> Result<usize> {
    let mut removed = 0;
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(Error::io(dir, e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let path = entry.path();
        if path.is_dir() {
            removed += remove_tmp_files(&path)?;
        } else if path.to_string_lossy().ends_with(TMP_SUFFIX) {
            fs::remove_file(&path).map_err(|e| Error::io(&path, e))?;
            removed += 1;
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_atomic_replaces_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("a.json");
        write_atomic(&path, b"one").expect("first write");
        write_atomic(&path, b"two").expect("second write");
        assert_eq!(fs::read(&path).expect("read"), b"two");
        assert!(!tmp_path(&path).exists());
    }

    #[test]
    fn remove_tmp_files_finds_nested_leftovers() {
        let dir = tempfile::tempdir().expect("tempdir");
        let nested = dir.path().join("usage/day=2026-01-01");
        create_dir_durable(&nested).expect("mkdir");
        fs::write(nested.join("part-1.parquet.tmp"), b"x").expect("write");
        fs::write(nested.join("part-2.parquet"), b"x").expect("write");
        assert_eq!(remove_tmp_files(dir.path()).expect("clean"), 1);
        assert!(nested.join("part-2.parquet").exists());
    }
}
