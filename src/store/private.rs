//! The state database holds customer emails and revenue: it is private to the user that runs
//! the tool. A new database file is created 0600 whatever the umask (SQLite then creates its
//! `-wal`, `-shm` and `-journal` files with the database file's mode), and a database that
//! other users can write is refused with the `chmod` that fixes it.

use std::fs::{OpenOptions, Permissions};
use std::io::ErrorKind;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::StoreError;

/// Mode of every file of the state (database, the files beside it, lock file).
pub const PRIVATE_MODE: u32 = 0o600;

/// The database file and the files SQLite keeps beside it.
pub fn database_files(db: &Path) -> [PathBuf; 4] {
    ["", "-wal", "-shm", "-journal"].map(|suffix| {
        let mut path = db.as_os_str().to_owned();
        path.push(suffix);
        PathBuf::from(path)
    })
}

/// Creates `db` empty with mode 0600 unless it exists (an empty file is an empty SQLite
/// database), then refuses it if group or others can write it or the files beside it.
/// Returns whether it created the file.
pub fn prepare_database_file(db: &Path) -> Result<bool, StoreError> {
    let created = match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(PRIVATE_MODE)
        .open(db)
    {
        // The umask may have removed bits from the mode: set it exactly.
        Ok(file) => file
            .set_permissions(Permissions::from_mode(PRIVATE_MODE))
            .map(|()| true)
            .map_err(|e| cannot_create(db, e))?,
        Err(e) if e.kind() == ErrorKind::AlreadyExists => false,
        Err(e) => return Err(cannot_create(db, e)),
    };
    refuse_writable_by_others(db)?;
    Ok(created)
}

fn cannot_create(db: &Path, error: std::io::Error) -> StoreError {
    let hint = match error.kind() {
        ErrorKind::NotFound => "create its directory first, or pass another --db",
        ErrorKind::PermissionDenied => {
            "run as a user that may write its directory, or pass another --db"
        }
        _ => "check the path given by --db",
    };
    StoreError::Private(format!(
        "cannot create the database {}: {error}; {hint}",
        db.display()
    ))
}

/// Fails when group or others may write the database or the files beside it (they could
/// change what is pushed to Intercom), naming the `chmod` that fixes it.
pub fn refuse_writable_by_others(db: &Path) -> Result<(), StoreError> {
    let exposed: Vec<PathBuf> = database_files(db)
        .into_iter()
        .filter(|path| {
            std::fs::metadata(path)
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o022 != 0)
        })
        .collect();
    if exposed.is_empty() {
        return Ok(());
    }
    let files: Vec<String> = exposed
        .iter()
        .map(|p| shell_quote(&p.display().to_string()))
        .collect();
    Err(StoreError::Private(format!(
        "the database {} can be written by other users: they could change what is pushed to Intercom, and it holds customer data; run `chmod 600 {}` (or pass another --db)",
        db.display(),
        files.join(" ")
    )))
}

/// `text` quoted for a POSIX shell when it holds anything but safe characters.
fn shell_quote(text: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "/._-+=:,@%".contains(c);
    if !text.is_empty() && text.chars().all(safe) {
        text.to_string()
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_paths_for_the_shell_only_when_needed() {
        assert_eq!(shell_quote("/var/lib/ip/state.db"), "/var/lib/ip/state.db");
        assert_eq!(shell_quote("/tmp/my state.db"), "'/tmp/my state.db'");
        assert_eq!(shell_quote("/tmp/it's.db"), r"'/tmp/it'\''s.db'");
    }
}
