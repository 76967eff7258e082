//! A session's replay buffer: the last bytes of its output, with absolute
//! offsets, so a client that lost its socket gets what it missed.
//!
//! Offsets count output bytes from the session's start (channel bytes of
//! the wire framing are not counted). The buffer holds at most `capacity`
//! bytes; pushing more drops the oldest (a process never waits for it).

use std::collections::VecDeque;

use axum::body::Bytes;

/// One piece of output as the process wrote it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Chunk {
    /// 1 stdout, 2 stderr.
    pub(crate) channel: u8,
    /// The bytes.
    pub(crate) bytes: Bytes,
}

/// What a client asking for output from some offset gets.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Replay {
    /// The offset of the first byte of `chunks` (the offset the client goes on from).
    pub(crate) from: u64,
    /// Bytes the client asked for that are no longer held.
    pub(crate) missed: u64,
    /// The held output from `from` on.
    pub(crate) chunks: Vec<Chunk>,
}

/// The last `capacity` bytes of a session's output.
#[derive(Debug)]
pub(crate) struct ReplayBuffer {
    capacity: usize,
    chunks: VecDeque<Chunk>,
    /// Bytes held in `chunks`.
    held: usize,
    /// Offset just past the last byte written (all output so far).
    end: u64,
}

impl ReplayBuffer {
    /// An empty buffer holding at most `capacity` bytes.
    pub(crate) fn new(capacity: usize) -> Self {
        ReplayBuffer {
            capacity,
            chunks: VecDeque::new(),
            held: 0,
            end: 0,
        }
    }

    /// Offset just past the last byte written: the total output so far.
    #[cfg(test)]
    pub(crate) fn end(&self) -> u64 {
        self.end
    }

    /// Offset of the first byte held.
    fn start(&self) -> u64 {
        self.end - self.held as u64
    }

    /// Appends output, dropping the oldest bytes beyond the capacity.
    pub(crate) fn push(&mut self, channel: u8, bytes: Bytes) {
        let length = bytes.len() as u64;
        if length == 0 {
            return;
        }
        self.end += length;
        // A chunk larger than the whole buffer: only its tail can be held.
        let bytes = if bytes.len() > self.capacity {
            bytes.slice(bytes.len() - self.capacity..)
        } else {
            bytes
        };
        if !bytes.is_empty() {
            self.held += bytes.len();
            self.chunks.push_back(Chunk { channel, bytes });
        }
        self.trim();
    }

    /// Drops the oldest bytes until at most `capacity` are held.
    fn trim(&mut self) {
        while self.held > self.capacity {
            let excess = self.held - self.capacity;
            let Some(front) = self.chunks.front_mut() else {
                break;
            };
            if front.bytes.len() <= excess {
                self.held -= front.bytes.len();
                self.chunks.pop_front();
            } else {
                front.bytes = front.bytes.slice(excess..);
                self.held -= excess;
            }
        }
    }

    /// The output from `offset` on, as far as it is still held. An offset
    /// past the end (a client claiming bytes never written) is taken as the
    /// end: it gets what comes next.
    pub(crate) fn since(&self, offset: u64) -> Replay {
        let start = self.start();
        let offset = offset.min(self.end);
        let missed = start.saturating_sub(offset);
        let from = offset.max(start);
        let mut chunks = Vec::new();
        let mut position = start;
        for chunk in &self.chunks {
            let length = chunk.bytes.len() as u64;
            let chunk_end = position + length;
            if chunk_end > from {
                let skip = usize::try_from(from.saturating_sub(position)).unwrap_or(0);
                chunks.push(Chunk {
                    channel: chunk.channel,
                    bytes: chunk.bytes.slice(skip..),
                });
            }
            position = chunk_end;
        }
        Replay {
            from,
            missed,
            chunks,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(replay: &Replay) -> String {
        replay
            .chunks
            .iter()
            .map(|c| String::from_utf8_lossy(&c.bytes).into_owned())
            .collect()
    }

    fn push(buffer: &mut ReplayBuffer, channel: u8, text: &str) {
        buffer.push(channel, Bytes::copy_from_slice(text.as_bytes()));
    }

    #[test]
    fn replays_from_any_offset_while_everything_is_held() {
        let mut buffer = ReplayBuffer::new(16);
        push(&mut buffer, 1, "hello ");
        push(&mut buffer, 2, "world");
        assert_eq!(buffer.end(), 11);
        let all = buffer.since(0);
        assert_eq!((all.from, all.missed), (0, 0));
        assert_eq!(text(&all), "hello world");
        assert_eq!(all.chunks[1].channel, 2, "channels are kept");
        let tail = buffer.since(8);
        assert_eq!((tail.from, tail.missed, text(&tail)), (8, 0, "rld".into()));
        assert_eq!(tail.chunks.len(), 1);
        let none = buffer.since(11);
        assert!(none.chunks.is_empty());
        assert_eq!(none.from, 11);
    }

    #[test]
    fn wraps_dropping_the_oldest_bytes_and_counts_what_was_missed() {
        let mut buffer = ReplayBuffer::new(8);
        push(&mut buffer, 1, "abcdef");
        push(&mut buffer, 1, "ghijkl");
        assert_eq!(buffer.end(), 12);
        // Held: "efghijkl" from offset 4.
        let replay = buffer.since(0);
        assert_eq!((replay.from, replay.missed), (4, 4));
        assert_eq!(text(&replay), "efghijkl");
        let replay = buffer.since(6);
        assert_eq!(
            (replay.from, replay.missed, text(&replay)),
            (6, 0, "ghijkl".into())
        );
        let replay = buffer.since(5);
        assert_eq!(text(&replay), "fghijkl");
    }

    #[test]
    fn a_chunk_larger_than_the_buffer_keeps_its_tail() {
        let mut buffer = ReplayBuffer::new(4);
        push(&mut buffer, 1, "xy");
        push(&mut buffer, 2, "0123456789");
        assert_eq!(buffer.end(), 12);
        let replay = buffer.since(0);
        assert_eq!((replay.from, replay.missed), (8, 8));
        assert_eq!(text(&replay), "6789");
        assert_eq!(replay.chunks.len(), 1);
        assert_eq!(replay.chunks[0].channel, 2);
    }

    #[test]
    fn an_offset_past_the_end_gets_what_comes_next() {
        let mut buffer = ReplayBuffer::new(8);
        push(&mut buffer, 1, "abc");
        let replay = buffer.since(1_000);
        assert_eq!((replay.from, replay.missed), (3, 0));
        assert!(replay.chunks.is_empty());
    }

    #[test]
    fn many_small_pushes_keep_offsets_exact() {
        let mut buffer = ReplayBuffer::new(100);
        let mut all = Vec::new();
        for i in 0..1_000u32 {
            let piece = format!("{i},");
            all.extend_from_slice(piece.as_bytes());
            push(&mut buffer, 1, &piece);
        }
        assert_eq!(buffer.end(), all.len() as u64);
        let replay = buffer.since(0);
        assert_eq!(replay.missed, all.len() as u64 - 100);
        assert_eq!(text(&replay).as_bytes(), &all[all.len() - 100..]);
        assert_eq!(buffer.held, 100);
        let from = all.len() as u64 - 10;
        assert_eq!(text(&buffer.since(from)).as_bytes(), &all[all.len() - 10..]);
        // Empty pushes change nothing.
        buffer.push(1, Bytes::new());
        assert_eq!(buffer.end(), all.len() as u64);
    }
}
