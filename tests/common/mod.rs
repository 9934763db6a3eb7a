//! Helpers for the integration tests: run the real `intercom-push` binary in a temporary
//! directory, write export files, read back the plan and the database.
#![allow(dead_code)] // each test binary uses a different subset

pub mod db;
pub mod layouts;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_intercom-push");

/// What one run of the binary did.
#[derive(Debug, Clone)]
pub struct Run {
    /// Exit code (-1 when killed by a signal).
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Panics with the whole output unless the exit code is `code`.
    #[track_caller]
    pub fn expect_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code, code,
            "expected exit code {code}, got {}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        );
        assert!(
            !self.stderr.contains("panicked"),
            "the binary panicked:\n{}",
            self.stderr
        );
        self
    }

    #[track_caller]
    pub fn ok(&self) -> &Self {
        self.expect_code(0)
    }

    /// The `warning: …` lines of stderr, without the prefix.
    pub fn warnings(&self) -> Vec<String> {
        self.stderr
            .lines()
            .filter_map(|l| l.strip_prefix("warning: "))
            .map(str::to_string)
            .collect()
    }

    /// stdout parsed as NDJSON.
    pub fn ndjson(&self) -> Vec<Value> {
        self.stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
            .collect()
    }
}

/// A scratch directory holding an export directory (`export/`) and a database (`state.db`).
pub struct Workspace {
    pub dir: tempfile::TempDir,
}

impl Default for Workspace {
    fn default() -> Self {
        Self::new()
    }
}

impl Workspace {
    pub fn new() -> Workspace {
        let dir = tempfile::Builder::new()
            .prefix("intercom-push-test")
            .tempdir()
            .expect("temp dir");
        std::fs::create_dir(dir.path().join("export")).unwrap();
        Workspace { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The default export directory.
    pub fn export(&self) -> PathBuf {
        self.path().join("export")
    }

    /// The default database.
    pub fn db(&self) -> PathBuf {
        self.path().join("state.db")
    }

    /// Writes `contents` to `export/<name>` (a `.gz` name is gzipped).
    pub fn write(&self, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        self.write_in(&self.export(), name, contents)
    }

    /// Writes `contents` to `<dir>/<name>` (a `.gz` name is gzipped), creating `dir`.
    pub fn write_in(&self, dir: &Path, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        std::fs::create_dir_all(dir).unwrap();
        let path = dir.join(name);
        let bytes = if name.ends_with(".gz") {
            gzip(contents.as_ref())
        } else {
            contents.as_ref().to_vec()
        };
        std::fs::write(&path, bytes).unwrap();
        path
    }

    /// Removes every file of the export directory.
    pub fn clear_export(&self) {
        let _ = std::fs::remove_dir_all(self.export());
        std::fs::create_dir(self.export()).unwrap();
    }

    /// Runs the binary with `--db state.db` (unless `args` names a `--db`) in the workspace.
    pub fn run(&self, args: &[&str]) -> Run {
        self.run_env(args, &[])
    }

    pub fn run_env(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let mut cmd = Command::new(BIN);
        cmd.current_dir(self.path())
            .env_remove("INTERCOM_PUSH_DB")
            .env_remove("INTERCOM_PUSH_CONFIG")
            .env_remove("INTERCOM_PUSH_LOG")
            .env_remove("RAYON_NUM_THREADS");
        for (k, v) in env {
            cmd.env(k, v);
        }
        if !args.contains(&"--db") {
            cmd.arg("--db").arg(self.db());
        }
        cmd.args(args);
        let out = cmd.output().expect("run intercom-push");
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// `load --input export/`.
    pub fn load(&self) -> Run {
        let input = self.export();
        self.run(&["load", "--input", input.to_str().unwrap()])
    }

    pub fn transform(&self, args: &[&str]) -> Run {
        let mut all = vec!["transform"];
        all.extend_from_slice(args);
        self.run(&all)
    }

    /// `plan --json --all`, parsed.
    pub fn plan_all(&self) -> Vec<Value> {
        self.run(&["plan", "--json", "--all"]).ok().ndjson()
    }

    /// load (must succeed) + transform `args` (must succeed) + `plan --json --all`.
    /// Returns the plan and every warning printed on the way.
    pub fn pipeline(&self, transform_args: &[&str]) -> Pipeline {
        let load = self.load();
        load.ok();
        let transform = self.transform(transform_args);
        transform.ok();
        let mut warnings = load.warnings();
        warnings.extend(transform.warnings());
        Pipeline {
            plan: self.plan_all(),
            warnings,
        }
    }

    /// `kind/record_key → hex(hash)` of every payload in the workspace database.
    pub fn hashes(&self) -> BTreeMap<String, String> {
        db::hashes(&self.db())
    }
}

/// A plan with the warnings printed while computing it.
pub struct Pipeline {
    pub plan: Vec<Value>,
    pub warnings: Vec<String>,
}

impl Pipeline {
    /// The company line for `company_id`.
    #[track_caller]
    pub fn company(&self, company_id: &str) -> &Value {
        self.plan
            .iter()
            .find(|l| l["type"] == "company" && l["company_id"] == company_id)
            .unwrap_or_else(|| panic!("no company {company_id} in the plan: {:#?}", self.plan))
    }

    /// The custom attributes of company `company_id`.
    #[track_caller]
    pub fn attrs(&self, company_id: &str) -> &serde_json::Map<String, Value> {
        self.company(company_id)["custom_attributes"]
            .as_object()
            .expect("custom_attributes is an object")
    }

    /// One attribute of a company (`None` when absent).
    #[track_caller]
    pub fn attr(&self, company_id: &str, name: &str) -> Option<&Value> {
        self.attrs(company_id).get(name)
    }

    pub fn companies(&self) -> Vec<&Value> {
        self.plan
            .iter()
            .filter(|l| l["type"] == "company")
            .collect()
    }

    pub fn users(&self) -> Vec<&Value> {
        self.plan.iter().filter(|l| l["type"] == "user").collect()
    }

    /// The user line with this external_id (or, when `None`, this email).
    #[track_caller]
    pub fn user(&self, external_id: Option<&str>, email: Option<&str>) -> &Value {
        self.plan
            .iter()
            .find(|l| {
                l["type"] == "user"
                    && match external_id {
                        Some(id) => l["external_id"] == id,
                        None => l["external_id"].is_null() && l["email"] == email.unwrap(),
                    }
            })
            .unwrap_or_else(|| panic!("no user {external_id:?}/{email:?} in {:#?}", self.plan))
    }

    /// Whether some warning contains every one of `parts`.
    pub fn warned(&self, parts: &[&str]) -> bool {
        self.warnings
            .iter()
            .any(|w| parts.iter().all(|p| w.contains(p)))
    }
}

pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

/// The crate's directory (for the fixtures).
pub fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Joins lines with `\n` and ends the text with one.
pub fn lines(lines: &[&str]) -> String {
    let mut text = lines.join("\n");
    text.push('\n');
    text
}
