//! The FHIR R4 validator (tests/fhir/validate_fhir.py with `fhir.resources`), installed by
//! tests/fhir/setup.sh.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Where the validator's Python lives: `$YILIAN_FHIR_PYTHON`, else target/fhir-venv.
pub fn validator_python() -> PathBuf {
    if let Some(p) = std::env::var_os("YILIAN_FHIR_PYTHON") {
        return PathBuf::from(p);
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let venv =
        std::env::var_os("YILIAN_FHIR_VENV").map_or_else(|| root.join("target/fhir-venv"), PathBuf::from);
    venv.join("bin/python")
}

pub fn validator_script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fhir/validate_fhir.py")
}

/// Fail (never skip) when the validator is not installed, saying how to install it.
pub fn require_validator() -> PathBuf {
    let python = validator_python();
    let check = Command::new(&python).arg(validator_script()).arg("--self-check").output();
    match check {
        Ok(out) if out.status.success() => python,
        Ok(out) => panic!(
            "the FHIR R4 validator at {} does not work: {}{}\ninstall it with: bash tests/fhir/setup.sh",
            python.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => panic!(
            "the FHIR R4 validator is not installed ({}: {e}); install it with: bash tests/fhir/setup.sh \
             (creates target/fhir-venv with fhir.resources 6.4.0), or point YILIAN_FHIR_PYTHON at a \
             python that has it",
            python.display()
        ),
    }
}

/// Validate every file in `files` as FHIR R4; panics with the validator's message if one fails.
pub fn validate(python: &Path, files: &[PathBuf]) {
    let out = Command::new(python).arg(validator_script()).args(files).output().expect("run the validator");
    assert!(
        out.status.success(),
        "FHIR R4 validation failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
