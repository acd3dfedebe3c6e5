//! Signed notes and verifier keys (golang.org/x/mod/sumdb/note).
//!
//! A note is text ending in a newline, a blank line, then signature lines
//! `— <name> <base64(key hash[4] || ed25519 signature)>`. Only the text is
//! signed. A verifier key is `<name>+<hash hex8>+<base64(alg 1 || pubkey)>`.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{Signature, VerifyingKey};
use sha2::{Digest, Sha256};

use crate::CoreError;

const ALG_ED25519: u8 = 1;
/// Notes beyond this many signatures are refused, as the note package does.
const MAX_SIGNATURES: usize = 100;
const SIG_PREFIX: &str = "\u{2014} ";

/// A parsed verifier key: the name and hash identify it in signature lines.
#[derive(Clone, Debug)]
pub struct Verifier {
    name: String,
    hash: u32,
    key: VerifyingKey,
}

impl Verifier {
    /// Parses `<name>+<hash>+<key>` and checks the hash matches the key.
    pub fn parse(vkey: &str) -> Result<Self, CoreError> {
        let bad =
            |why: &str| CoreError::InvalidSumdb(format!("invalid verifier key {vkey:?}: {why}"));
        let mut parts = vkey.splitn(3, '+');
        let (Some(name), Some(hash16), Some(key64)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(bad("want name+hash+key"));
        };
        if !valid_name(name) {
            return Err(bad("bad name"));
        }
        if hash16.len() != 8 || !hash16.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad("hash is not 8 hex digits"));
        }
        let hash = u32::from_str_radix(hash16, 16).map_err(|_| bad("bad hash"))?;
        let raw = B64.decode(key64).map_err(|_| bad("key is not base64"))?;
        if key_hash(name, &raw) != hash {
            return Err(bad("hash does not match the key"));
        }
        let Some((&alg, key)) = raw.split_first() else {
            return Err(bad("empty key"));
        };
        if alg != ALG_ED25519 {
            return Err(bad("unknown key algorithm"));
        }
        let key: [u8; 32] = key
            .try_into()
            .map_err(|_| bad("ed25519 key is not 32 bytes"))?;
        let key = VerifyingKey::from_bytes(&key).map_err(|_| bad("not an ed25519 public key"))?;
        Ok(Verifier {
            name: name.to_owned(),
            hash,
            key,
        })
    }

    /// The server name the key belongs to.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Verifies a signed note and returns its text. At least one signature
    /// must be by this key; signatures by other keys are ignored, a bad
    /// signature by this key is an error.
    pub fn open<'a>(&self, msg: &'a [u8]) -> Result<&'a str, CoreError> {
        let malformed =
            || CoreError::InvalidSumdb(format!("malformed signed note from {}", self.name));
        let msg = std::str::from_utf8(msg).map_err(|_| malformed())?;
        if msg.chars().any(|c| c < ' ' && c != '\n') {
            return Err(malformed());
        }
        let split = msg.rfind("\n\n").ok_or_else(malformed)?;
        let (text, sigs) = (&msg[..split + 1], &msg[split + 2..]);
        if !sigs.ends_with('\n') {
            return Err(malformed());
        }
        let mut verified = false;
        for (count, line) in sigs[..sigs.len() - 1].split('\n').enumerate() {
            if count >= MAX_SIGNATURES {
                return Err(malformed());
            }
            let line = line.strip_prefix(SIG_PREFIX).ok_or_else(malformed)?;
            let (name, b64) = line.split_once(' ').unwrap_or((line, ""));
            let sig = B64.decode(b64).map_err(|_| malformed())?;
            if !valid_name(name) || sig.len() < 5 {
                return Err(malformed());
            }
            let hash = u32::from_be_bytes([sig[0], sig[1], sig[2], sig[3]]);
            if name != self.name || hash != self.hash {
                continue;
            }
            let sig = Signature::from_slice(&sig[4..]).map_err(|_| self.bad_signature())?;
            self.key
                .verify_strict(text.as_bytes(), &sig)
                .map_err(|_| self.bad_signature())?;
            verified = true;
        }
        if !verified {
            return Err(CoreError::InvalidSumdb(format!(
                "signed note has no signature by {}+{:08x}",
                self.name, self.hash
            )));
        }
        Ok(text)
    }

    fn bad_signature(&self) -> CoreError {
        CoreError::InvalidSumdb(format!(
            "invalid signature for key {}+{:08x}",
            self.name, self.hash
        ))
    }
}

/// Non-empty, no Unicode white space, no `+`.
pub(crate) fn valid_name(name: &str) -> bool {
    !name.is_empty() && !name.chars().any(|c| c.is_whitespace() || c == '+')
}

/// First four bytes (big-endian) of SHA-256(name "\n" alg||key).
fn key_hash(name: &str, key: &[u8]) -> u32 {
    let sum = Sha256::new()
        .chain_update(name.as_bytes())
        .chain_update(b"\n")
        .chain_update(key)
        .finalize();
    u32::from_be_bytes([sum[0], sum[1], sum[2], sum[3]])
}
