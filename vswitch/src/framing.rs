//! QEMU's `-netdev stream` framing: a 4-byte big-endian length, then the raw
//! Ethernet frame (no FCS, no virtio header, no padding).

use std::io::{self, Read, Write};

/// Longest frame accepted from a port; anything longer is a broken peer.
pub const MAX_FRAME: usize = 65_536;

/// Reads one frame; `Ok(None)` at a clean end of stream.
pub fn read_frame(reader: &mut impl Read) -> io::Result<Option<Vec<u8>>> {
    let mut len = [0u8; 4];
    match reader.read_exact(&mut len) {
        Ok(()) => {}
        Err(error) if error.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(error) => return Err(error),
    }
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_FRAME {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("frame of {len} bytes is longer than {MAX_FRAME}"),
        ));
    }
    let mut frame = vec![0u8; len];
    reader.read_exact(&mut frame)?;
    Ok(Some(frame))
}

/// Writes one frame with its length prefix, in one write so that frames from
/// several writers never interleave.
pub fn write_frame(writer: &mut impl Write, frame: &[u8]) -> io::Result<()> {
    let mut buf = Vec::with_capacity(frame.len() + 4);
    buf.extend_from_slice(&(frame.len() as u32).to_be_bytes());
    buf.extend_from_slice(frame);
    writer.write_all(&buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_end_cleanly() {
        let mut wire = Vec::new();
        write_frame(&mut wire, b"first").unwrap();
        write_frame(&mut wire, b"").unwrap();
        let mut reader = &wire[..];
        assert_eq!(read_frame(&mut reader).unwrap().unwrap(), b"first");
        assert_eq!(read_frame(&mut reader).unwrap().unwrap(), b"");
        assert!(read_frame(&mut reader).unwrap().is_none());
    }

    #[test]
    fn oversized_and_truncated_frames_are_errors() {
        let mut reader = &((MAX_FRAME as u32 + 1).to_be_bytes())[..];
        assert_eq!(read_frame(&mut reader).unwrap_err().kind(), io::ErrorKind::InvalidData);
        let truncated = [0, 0, 0, 10, 1, 2];
        assert!(read_frame(&mut &truncated[..]).is_err());
    }
}
