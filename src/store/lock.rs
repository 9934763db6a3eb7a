//! "One run at a time per database": an OS file lock on `<db>.lock`. The kernel releases it
//! when the holder dies, so a lock left by a crash (`kill -9`) is simply taken over; the file
//! says who held it, for messages. The database itself is never written to take the lock, so
//! a refused or failed command leaves it byte-identical.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::StoreError;

/// Holds the run lock; dropping it releases the lock and removes the lock file.
#[derive(Debug)]
pub struct RunLock {
    path: PathBuf,
    file: File,
    /// Set when the lock file named a holder that is gone (a crashed run).
    pub warning: Option<String>,
}

/// The lock file of the database at `db`.
pub fn lock_path(db: &Path) -> PathBuf {
    let mut path = db.as_os_str().to_owned();
    path.push(".lock");
    PathBuf::from(path)
}

impl RunLock {
    /// Takes the lock for `command`, or says who holds it.
    pub fn acquire(db: &Path, command: &str) -> Result<RunLock, StoreError> {
        let path = lock_path(db);
        let io = |e: std::io::Error| {
            StoreError::Locked(format!("cannot use the lock file {}: {e}", path.display()))
        };
        loop {
            let mut file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .mode(super::PRIVATE_MODE)
                .open(&path)
                .map_err(io)?;
            match file.try_lock() {
                Ok(()) => {}
                Err(TryLockError::WouldBlock) => {
                    let holder = read_holder(&mut file);
                    return Err(StoreError::Locked(format!(
                        "another intercom-push is using {} ({}): one run at a time per database — wait for it to finish",
                        db.display(),
                        if holder.is_empty() { "starting up".to_string() } else { holder }
                    )));
                }
                Err(TryLockError::Error(e)) => return Err(io(e)),
            }
            // The previous holder may have removed the file between our open and our lock:
            // then we locked an orphan, so start again on the file now at the path.
            let same_file = std::fs::metadata(&path).ok().map(|m| m.ino())
                == file.metadata().ok().map(|m| m.ino());
            if !same_file {
                continue;
            }
            let previous = read_holder(&mut file);
            let warning = (!previous.is_empty())
                .then(|| format!("took over the lock left by a run that is gone ({previous})"));
            let started = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            let holder = format!(
                "pid {}, `{command}`, started at unix time {started}",
                std::process::id()
            );
            // Private whatever the umask, like the database.
            file.set_permissions(std::fs::Permissions::from_mode(super::PRIVATE_MODE))
                .and_then(|_| file.set_len(0))
                .and_then(|_| file.seek(SeekFrom::Start(0)))
                .and_then(|_| file.write_all(holder.as_bytes()))
                .map_err(io)?;
            return Ok(RunLock {
                path,
                file,
                warning,
            });
        }
    }
}

fn read_holder(file: &mut File) -> String {
    let mut text = String::new();
    let _ = file
        .seek(SeekFrom::Start(0))
        .and_then(|_| file.read_to_string(&mut text));
    text.trim().to_string()
}

impl Drop for RunLock {
    fn drop(&mut self) {
        // Remove while still holding the lock; a waiter that opened the old file notices.
        let _ = std::fs::remove_file(&self.path);
        let _ = self.file.unlock();
    }
}
