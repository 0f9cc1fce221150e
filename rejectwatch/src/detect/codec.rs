//! How the detection snapshot's parts become bytes and back: bincode with
//! variable-length integers, a bound on what a part may allocate, and the
//! serde helpers the saved types need. Below the snapshot and the
//! detectors alike, so each detector saves its own tables with it.

use serde::{Deserialize, Serialize, de::DeserializeOwned};

/// What a snapshot cannot be read as.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("not a rejectwatch detection snapshot")]
    Magic,
    #[error("snapshot format version {0}, this build reads version {VERSION}")]
    Version(u32),
    #[error("snapshot truncated: {0} bytes of {1}")]
    Truncated(usize, u64),
    #[error("snapshot checksum does not match: the file is corrupt")]
    Checksum,
    #[error("snapshot undecodable: {0}")]
    Decode(String),
    #[error("snapshot taken under another {0} ({1}): what a client or a reject is has changed")]
    Incompatible(&'static str, String),
}

impl From<bincode::Error> for Error {
    fn from(e: bincode::Error) -> Self {
        Self::Decode(e.to_string())
    }
}

/// Bumped whenever any saved type changes shape: the encoding does not
/// describe itself, so an old snapshot read as a new shape would be
/// refused at best. (A test pins the encoded size of a client's state, the
/// type most often extended.)
pub const VERSION: u32 = 1;
pub(crate) fn options() -> impl bincode::Options {
    bincode::DefaultOptions::new()
}

/// A part of the snapshot as bytes (a detector's own state).
pub fn encode<T: Serialize + ?Sized>(v: &T) -> Result<Vec<u8>, Error> {
    use bincode::Options as _;
    Ok(options().serialize(v)?)
}

/// Reads a part back; allocates no more than the bytes could describe.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Error> {
    use bincode::Options as _;
    Ok(options().with_limit(bytes.len() as u64 * 64 + 4096).deserialize(bytes)?)
}

/// serde for arrays of any length (serde's own stop at 32 and are not
/// generic over the length): a tuple of `N`.
pub mod array {
    use std::marker::PhantomData;

    use serde::{
        Deserialize, Deserializer, Serialize, Serializer,
        de::{Error, SeqAccess, Visitor},
        ser::SerializeTuple,
    };

    pub fn serialize<S: Serializer, T: Serialize, const N: usize>(a: &[T; N], s: S) -> Result<S::Ok, S::Error> {
        let mut t = s.serialize_tuple(N)?;
        for x in a {
            t.serialize_element(x)?;
        }
        t.end()
    }

    pub fn deserialize<'de, D, T, const N: usize>(d: D) -> Result<[T; N], D::Error>
    where
        D: Deserializer<'de>,
        T: Deserialize<'de> + Copy + Default,
    {
        struct V<T, const N: usize>(PhantomData<T>);
        impl<'de, T: Deserialize<'de> + Copy + Default, const N: usize> Visitor<'de> for V<T, N> {
            type Value = [T; N];
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                write!(f, "an array of {N}")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<[T; N], A::Error> {
                let mut out = [T::default(); N];
                for (i, x) in out.iter_mut().enumerate() {
                    *x = seq.next_element()?.ok_or_else(|| A::Error::invalid_length(i, &self))?;
                }
                Ok(out)
            }
        }
        d.deserialize_tuple(N, V::<T, N>(PhantomData))
    }
}

/// A length or position kept in a `u8` beside an array of `N`: more is a
/// corrupt snapshot (it would index past the array).
pub fn len_within<'de, D: serde::Deserializer<'de>, const N: usize>(d: D) -> Result<u8, D::Error> {
    let n = u8::deserialize(d)?;
    if n as usize > N {
        return Err(serde::de::Error::custom(format!("{n} past an array of {N}")));
    }
    Ok(n)
}

/// A GeoIP name as the enricher gives it. An alias, so that serde's
/// derive does not see a borrowed `&'static str` and ask the input to
/// outlive the process: it is read with [`interned`].
pub type GeoName = Option<&'static str>;

/// A GeoIP name read back (a country code): kept once for the process,
/// as the GeoIP tables keep theirs, so it is the same plain reference.
pub fn interned<'de, D: serde::Deserializer<'de>>(d: D) -> Result<GeoName, D::Error> {
    Ok(Option::<String>::deserialize(d)?.map(|s| crate::enrich::geo::intern(&s)))
}
