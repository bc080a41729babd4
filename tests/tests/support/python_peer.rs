//! Python test peers (the FHIR R4 validator, the DICOMweb client), each installed into its own
//! venv by a setup script that tests/run.sh calls.

use std::path::{Path, PathBuf};
use std::process::Command;

/// One Python peer: its script, where its interpreter lives and how to install it.
pub struct PythonPeer {
    /// What it is, for messages.
    pub name: &'static str,
    /// Script under tests/, answering `--self-check`.
    pub script: &'static str,
    /// Variable naming the interpreter directly.
    pub python_var: &'static str,
    /// Variable naming the venv.
    pub venv_var: &'static str,
    /// Default venv under the workspace.
    pub venv: &'static str,
    /// The setup script and what it installs.
    pub setup: &'static str,
}

/// The FHIR R4 validator (`fhir.resources`).
pub const FHIR_VALIDATOR: PythonPeer = PythonPeer {
    name: "FHIR R4 validator",
    script: "fhir/validate_fhir.py",
    python_var: "YILIAN_FHIR_PYTHON",
    venv_var: "YILIAN_FHIR_VENV",
    venv: "target/fhir-venv",
    setup: "bash tests/fhir/setup.sh (creates target/fhir-venv with fhir.resources 6.4.0)",
};

/// The DICOMweb client (`dicomweb-client`).
pub const DICOMWEB_CLIENT: PythonPeer = PythonPeer {
    name: "DICOMweb client",
    script: "dicomweb/roundtrip.py",
    python_var: "YILIAN_DICOMWEB_PYTHON",
    venv_var: "YILIAN_DICOMWEB_VENV",
    venv: "target/dicomweb-venv",
    setup: "bash tests/dicomweb/setup.sh (creates target/dicomweb-venv with dicomweb-client 0.61.2)",
};

impl PythonPeer {
    /// The interpreter: `$<python_var>`, else `<venv>/bin/python`.
    pub fn python(&self) -> PathBuf {
        if let Some(p) = std::env::var_os(self.python_var) {
            return PathBuf::from(p);
        }
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
        let venv = std::env::var_os(self.venv_var).map_or_else(|| root.join(self.venv), PathBuf::from);
        venv.join("bin/python")
    }

    /// The peer's script.
    pub fn script(&self) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(self.script)
    }

    /// Fail (never skip) when the peer is not installed, saying how to install it.
    pub fn require(&self) -> PathBuf {
        let python = self.python();
        match Command::new(&python).arg(self.script()).arg("--self-check").output() {
            Ok(out) if out.status.success() => python,
            Ok(out) => panic!(
                "the {} at {} does not work: {}{}\ninstall it with: {}",
                self.name,
                python.display(),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
                self.setup
            ),
            Err(e) => panic!(
                "the {} is not installed ({}: {e}); install it with: {}, or point {} at a python that has it",
                self.name,
                python.display(),
                self.setup,
                self.python_var
            ),
        }
    }
}

/// Validate every file in `files` as FHIR R4; panics with the validator's message if one fails.
pub fn validate_fhir(python: &Path, files: &[PathBuf]) {
    let out =
        Command::new(python).arg(FHIR_VALIDATOR.script()).args(files).output().expect("run the validator");
    assert!(
        out.status.success(),
        "FHIR R4 validation failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
