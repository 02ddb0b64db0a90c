//! Where tensors live, as the user names it (`cpu`, `cuda`, `cuda:N`, `auto`); the engine maps
//! it to a libtorch device and checks that a requested GPU exists.

use anyhow::bail;
use std::fmt;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Device {
    #[default]
    Cpu,
    /// CUDA device N (`cuda` is `cuda:0`).
    Cuda(usize),
    /// The first CUDA device when one is visible, else the CPU.
    Auto,
}

impl std::str::FromStr for Device {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> anyhow::Result<Device> {
        Ok(match s {
            "cpu" => Device::Cpu,
            "auto" => Device::Auto,
            "cuda" => Device::Cuda(0),
            _ => match s.strip_prefix("cuda:").and_then(|n| n.parse::<usize>().ok()) {
                Some(n) => Device::Cuda(n),
                None => bail!("unknown device {s:?}; use cpu, cuda, cuda:N or auto"),
            },
        })
    }
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Device::Cpu => f.write_str("cpu"),
            Device::Cuda(n) => write!(f, "cuda:{n}"),
            Device::Auto => f.write_str("auto"),
        }
    }
}

// Saved as the string the user typed (`device = "cuda:1"`), so configs read as before.
impl serde::Serialize for Device {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Device {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Device, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_ones_are_refused() {
        for s in ["cpu", "auto", "cuda:0", "cuda:3"] {
            assert_eq!(s.parse::<Device>().unwrap().to_string(), s);
        }
        assert_eq!("cuda".parse::<Device>().unwrap(), Device::Cuda(0));
        let e = "gpu".parse::<Device>().unwrap_err().to_string();
        assert!(e.contains("cpu, cuda, cuda:N or auto"), "{e}");
    }
}
