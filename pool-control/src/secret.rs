//! The board's secret, which only the pool's owner (the host that boots it) knows:
//! the process server's get-port and the random check of the board's host
//! capability. It travels in front of the program bundle in the board's initrd, a
//! file only the owner can read — never on the wire, never on the QEMU command line.
//!
//! Layout: magic `AMSECRET` (8), get-port (6), check (6), zero padding to
//! [`SECRET_LEN`]; the bundle follows.

/// Bytes the secret record takes at the start of the initrd.
pub const SECRET_LEN: usize = 32;
/// The record's magic.
pub const SECRET_MAGIC: &[u8; 8] = b"AMSECRET";

/// A board's secret.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct BoardSecret {
    /// The process server's private get-port.
    pub get_port: [u8; 6],
    /// The random check of the host capability (object 0).
    pub check: [u8; 6],
}

impl core::fmt::Debug for BoardSecret {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("BoardSecret(..)")
    }
}

impl BoardSecret {
    /// The record.
    pub fn encode(&self) -> [u8; SECRET_LEN] {
        let mut out = [0u8; SECRET_LEN];
        out[..8].copy_from_slice(SECRET_MAGIC);
        out[8..14].copy_from_slice(&self.get_port);
        out[14..20].copy_from_slice(&self.check);
        out
    }

    /// Splits an initrd into its secret (if it starts with one) and the rest.
    pub fn split(initrd: &[u8]) -> (Option<BoardSecret>, &[u8]) {
        match initrd.get(..SECRET_LEN) {
            Some(record) if record.starts_with(SECRET_MAGIC) => {
                let mut secret = BoardSecret { get_port: [0; 6], check: [0; 6] };
                secret.get_port.copy_from_slice(&record[8..14]);
                secret.check.copy_from_slice(&record[14..20]);
                (Some(secret), &initrd[SECRET_LEN..])
            }
            _ => (None, initrd),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_split_back_and_others_pass_through() {
        let secret = BoardSecret { get_port: [1, 2, 3, 4, 5, 6], check: [9; 6] };
        let mut initrd = secret.encode().to_vec();
        initrd.extend_from_slice(b"AMBUNDLE...");
        assert_eq!(BoardSecret::split(&initrd), (Some(secret), &b"AMBUNDLE..."[..]));
        assert_eq!(BoardSecret::split(b"AMBUNDLE..."), (None, &b"AMBUNDLE..."[..]));
        assert_eq!(BoardSecret::split(b"AMSEC"), (None, &b"AMSEC"[..]));
        assert!(!alloc::format!("{secret:?}").contains('9'), "the secret must not leak into logs");
    }
}
