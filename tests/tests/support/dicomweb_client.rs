//! The DICOMweb client peer (tests/dicomweb/roundtrip.py with `dicomweb-client`), installed by
//! tests/dicomweb/setup.sh.

use std::path::PathBuf;
use std::process::Command;

/// Where the client's Python lives: `$YILIAN_DICOMWEB_PYTHON`, else target/dicomweb-venv.
pub fn client_python() -> PathBuf {
    if let Some(p) = std::env::var_os("YILIAN_DICOMWEB_PYTHON") {
        return PathBuf::from(p);
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let venv = std::env::var_os("YILIAN_DICOMWEB_VENV")
        .map_or_else(|| root.join("target/dicomweb-venv"), PathBuf::from);
    venv.join("bin/python")
}

/// The round-trip script.
pub fn client_script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("dicomweb/roundtrip.py")
}

/// Fail (never skip) when the client is not installed, saying how to install it.
pub fn require_client() -> PathBuf {
    let python = client_python();
    match Command::new(&python).arg(client_script()).arg("--self-check").output() {
        Ok(out) if out.status.success() => python,
        Ok(out) => panic!(
            "the DICOMweb client at {} does not work: {}{}\ninstall it with: bash tests/dicomweb/setup.sh",
            python.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => panic!(
            "the DICOMweb client is not installed ({}: {e}); install it with: bash tests/dicomweb/setup.sh \
             (creates target/dicomweb-venv with dicomweb-client 0.61.2), or point YILIAN_DICOMWEB_PYTHON at \
             a python that has it",
            python.display()
        ),
    }
}
