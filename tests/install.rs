//! What an installed binary gives (issue 27, part 3): shell completions and a manual page from
//! the clap definitions, at a size fit to install.

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_intercom-push");

fn stdout_of(args: &[&str]) -> String {
    let out = Command::new(BIN).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn completions_are_printed_for_bash_zsh_and_fish() {
    for shell in ["bash", "zsh", "fish"] {
        let script = stdout_of(&["completions", shell]);
        for word in ["intercom-push", "check", "reconcile", "long-strings"] {
            assert!(script.contains(word), "{shell}: no {word}");
        }
    }
}

#[test]
fn the_manual_page_is_roff_naming_every_command() {
    let page = stdout_of(&["man"]);
    assert!(
        page.contains(".TH intercom-push 1"),
        "{}",
        &page[..200.min(page.len())]
    );
    for command in [
        "load",
        "transform",
        "push",
        "run",
        "check",
        "attributes",
        "demo",
    ] {
        assert!(
            page.contains(&format!("intercom\\-push\\-{command}(1)")),
            "{command}"
        );
    }
}

#[test]
fn the_release_binary_was_too_big_to_install() {
    if cfg!(debug_assertions) {
        eprintln!("a debug build: the size is that of the release build only");
        return;
    }
    let size = std::fs::metadata(BIN).unwrap().len();
    assert!(
        size <= 30 << 20,
        "{size} bytes (debug info belongs in the profiling profile)"
    );
}
