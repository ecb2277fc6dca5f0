//! Helpers every module of these tests uses: the binary under test and the
//! repository's fixtures.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The `sigil` binary under test, with no `SIGIL_*` variables inherited
/// (they would override a config or an option).
pub fn sigil() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sigil"));
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("SIGIL_") {
            cmd.env_remove(k);
        }
    }
    cmd
}

/// A path under the repository's `testdata/`.
pub fn testdata(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata")
        .join(rel)
}
