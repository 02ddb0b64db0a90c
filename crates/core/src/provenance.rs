//! Provenance records: what made a run directory or an output file, from what and when. Run
//! directories keep one in `run.json`, weights files in their safetensors metadata, and
//! imputations in a `provenance` array (JSON bytes).

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Provenance {
    pub lacuna_version: String,
    /// The command line of the process, as given.
    pub command: Vec<String>,
    /// RFC 3339, UTC, to the second.
    pub created_utc: String,
    /// SHA-256 (hex) of each input file, by the path it was given as.
    pub inputs: BTreeMap<String, String>,
    /// What the command was asked for (run directory, K, steps, seed, ...).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub settings: BTreeMap<String, serde_json::Value>,
}

impl Provenance {
    /// A record made now by this process, hashing each of `inputs`.
    pub fn now(version: &str, inputs: &[&Path]) -> Result<Provenance> {
        let inputs = inputs
            .iter()
            .map(|p| Ok((p.display().to_string(), sha256_file(p)?)))
            .collect::<Result<BTreeMap<_, _>>>()?;
        Ok(Provenance {
            lacuna_version: version.to_string(),
            command: std::env::args().collect(),
            created_utc: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
            inputs,
            settings: BTreeMap::new(),
        })
    }

    /// With a named setting added.
    pub fn with(mut self, key: &str, value: impl serde::Serialize) -> Provenance {
        self.settings.insert(key.to_string(), serde_json::to_value(value).unwrap_or(serde_json::Value::Null));
        self
    }
}

/// SHA-256 of a file's bytes, as lower-case hex.
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut f = std::fs::File::open(path).with_context(|| format!("{}: cannot read", path.display()))?;
    let mut hash = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf).with_context(|| format!("{}: cannot read", path.display()))?;
        if n == 0 {
            break;
        }
        hash.update(&buf[..n]);
    }
    Ok(hash.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_hash_their_inputs_and_say_when() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("a.bin");
        std::fs::write(&f, b"abc").unwrap();
        let p = Provenance::now("9.9.9", &[&f]).unwrap().with("ensemble", 10);
        // SHA-256("abc"), the FIPS 180-2 test vector.
        assert_eq!(
            p.inputs[&f.display().to_string()],
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(p.created_utc.ends_with('Z') && p.created_utc.len() == 20, "{}", p.created_utc);
        assert_eq!(p.settings["ensemble"], 10);
        assert!(!p.command.is_empty());
        assert!(Provenance::now("1", &[&dir.path().join("missing")]).is_err());
    }
}
