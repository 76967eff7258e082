//! The read buffer of a tunnel's data messages, placed so that the
//! WebSocket layer's copy of them is cheap.
//!
//! tungstenite copies each message it sends into its output buffer, right
//! after the frame header: 10 bytes for a payload over 65,535 bytes (two,
//! then the 64-bit length), 4 more for a client's mask. Its output buffer
//! comes from the allocator, 16-byte aligned, so a bulk payload lands at
//! an address ≡ 10 (or 14) mod 16. glibc copies blocks from 2 KiB up with
//! `rep movsb`, which on AMD Zen CPUs runs an order of magnitude slower
//! when the source and the destination are not equally aligned: measured
//! on the forward bench's machine (AMD EPYC, glibc 2.36), 256 KiB copies at
//! ~3 GiB/s mismatched against ~48 GiB/s matched, which was a third of the
//! server's CPU time carrying a download. Reading the bytes in at the same
//! offset mod 16 keeps that copy at full speed everywhere; the bytes sent
//! are the same either way.

use bytes::{Buf, BufMut, BytesMut};

use super::MAX_DATA_MESSAGE;

/// The allocator's alignment, which the output buffer's start has.
const ALIGN: usize = 16;
/// A frame header for a payload over 65,535 bytes, unmasked.
const BULK_HEADER: usize = 10;
/// The masking key a client adds to each frame header.
const MASK_KEY: usize = 4;

/// Makes room in `buffer` (emptied by the last `split`) for the next
/// message of at most [`MAX_DATA_MESSAGE`] bytes, starting where a bulk
/// frame's payload will sit in the WebSocket's output buffer (mod 16).
/// `masked` is true on the client's side, whose frames carry a mask.
///
/// The room of the last message is taken back once that message was sent
/// (no allocation), as with a plain `reserve`.
pub fn prepare_message_buffer(buffer: &mut BytesMut, masked: bool) {
    let header = BULK_HEADER + if masked { MASK_KEY } else { 0 };
    buffer.reserve(MAX_DATA_MESSAGE + ALIGN);
    let offset = buffer.as_ptr() as usize % ALIGN;
    let pad = (header + ALIGN - offset) % ALIGN;
    // Skip `pad` bytes: written, then advanced over (no unsafe needed).
    buffer.put_bytes(0, pad);
    buffer.advance(pad);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn start(buffer: &BytesMut) -> usize {
        buffer.as_ptr() as usize % ALIGN
    }

    #[test]
    fn the_next_message_starts_where_a_frame_payload_will() {
        for masked in [false, true] {
            let wanted = if masked { 14 } else { 10 };
            let mut buffer = BytesMut::new();
            for round in 0..4 {
                prepare_message_buffer(&mut buffer, masked);
                assert!(buffer.is_empty(), "round {round}");
                assert!(buffer.capacity() >= MAX_DATA_MESSAGE, "round {round}");
                assert_eq!(start(&buffer), wanted, "round {round}, masked {masked}");
                // A read of an odd size, taken as a message and sent (dropped).
                buffer.put_bytes(7, 1000 + round * 333);
                let message = buffer.split().freeze();
                assert!(message.iter().all(|&byte| byte == 7));
                drop(message);
            }
        }
    }

    #[test]
    fn room_is_taken_back_once_the_message_is_gone() {
        let mut buffer = BytesMut::new();
        prepare_message_buffer(&mut buffer, false);
        let first = buffer.as_ptr() as usize;
        buffer.put_bytes(1, MAX_DATA_MESSAGE);
        drop(buffer.split().freeze());
        prepare_message_buffer(&mut buffer, false);
        // The same allocation again (within its first 16 bytes).
        assert!((buffer.as_ptr() as usize).abs_diff(first) < ALIGN);
    }
}
