//! Splits bytes read from a file into lines without a syscall or a copy
//! per line: the newline search is memchr over a whole chunk, and only a
//! line cut by the chunk's end is kept (in `partial`) for the next chunk.
//! Lines are found in the file's own bytes (see [`Unit`]): chunks of a
//! UTF-16 file are whole code units, from a unit boundary.

use std::borrow::Cow;

use super::encoding::Unit;

/// What the splitter hands out, with the file offset just after it (the
/// position to save once it is delivered).
#[derive(Debug, PartialEq, Eq)]
pub enum Piece<'a> {
    /// A line without its `\n` / `\r\n`; `truncated` when it was longer
    /// than the limit and cut to it.
    Line {
        bytes: Cow<'a, [u8]>,
        end: u64,
        truncated: bool,
    },
    /// A line longer than the limit, dropped as configured.
    Dropped { end: u64, len: u64 },
}

/// A safety net when no `max_line_size` is set: a "line" of binary junk
/// without newlines must not grow memory without bound.
pub const HARD_MAX_LINE: usize = 64 * 1024 * 1024;

#[derive(Debug)]
pub struct LineSplitter {
    partial: Vec<u8>,
    /// Bytes of the current line seen so far (kept or not).
    partial_len: u64,
    max: usize,
    truncate: bool,
    unit: Unit,
}

impl LineSplitter {
    /// `max` 0 means no limit (but [`HARD_MAX_LINE`]); over the limit a
    /// line is cut (`truncate`) or dropped.
    pub fn new(max: usize, truncate: bool) -> Self {
        let (max, truncate) = if max == 0 {
            (HARD_MAX_LINE, true)
        } else {
            (max, truncate)
        };
        LineSplitter {
            partial: Vec::new(),
            partial_len: 0,
            max,
            truncate,
            unit: Unit::Byte,
        }
    }

    /// Lines made of `unit`s (set before the first push; a line cut to the
    /// limit is cut at a unit boundary).
    pub fn set_unit(&mut self, unit: Unit) {
        self.unit = unit;
        self.max = unit.whole(self.max).max(unit.width());
    }

    /// Whether part of a line is waiting for its newline.
    pub fn has_partial(&self) -> bool {
        self.partial_len > 0
    }

    /// Bytes of the line waiting for its newline.
    pub fn partial_len(&self) -> u64 {
        self.partial_len
    }

    /// Forgets a partial line (the file was truncated or replaced).
    pub fn reset(&mut self) {
        self.partial.clear();
        self.partial_len = 0;
    }

    /// Feeds `chunk`, which starts at file offset `offset`, calling `emit`
    /// for every complete line.
    pub fn push(&mut self, chunk: &[u8], offset: u64, mut emit: impl FnMut(Piece<'_>)) {
        let mut start = 0;
        let unit = self.unit;
        for (nl, past) in unit.newlines(chunk) {
            let end = offset + past as u64;
            let piece = &chunk[start..nl];
            if self.partial_len == 0 {
                if piece.len() <= self.max {
                    emit(Piece::Line {
                        bytes: Cow::Borrowed(unit.strip_cr(piece)),
                        end,
                        truncated: false,
                    });
                } else {
                    emit(self.over_limit(&piece[..self.max], piece.len() as u64, end));
                }
            } else {
                self.append(piece);
                emit(self.take_partial(end, true));
            }
            start = past;
        }
        if start < chunk.len() {
            self.append(&chunk[start..]);
        }
    }

    /// Emits the partial line as if its newline had come, ending at
    /// `end`. Unless `last` (nothing more comes: the file's end), a
    /// character whose rest is not there yet stays for the next chunk.
    pub fn flush(&mut self, end: u64, last: bool, mut emit: impl FnMut(Piece<'_>)) {
        if self.partial_len == 0 {
            return;
        }
        let keep = if last || self.partial_len != self.partial.len() as u64 {
            0
        } else {
            self.unit.incomplete_tail(&self.partial)
        };
        if keep == 0 {
            emit(self.take_partial(end, false));
            return;
        }
        let tail = self.partial.split_off(self.partial.len() - keep);
        self.partial_len -= keep as u64;
        if self.partial_len > 0 {
            emit(self.take_partial(end - keep as u64, false));
        }
        self.partial = tail;
        self.partial_len = keep as u64;
    }

    /// The kept line as a piece ending at `end` (without a trailing `\r`
    /// when it ended at a newline).
    fn take_partial(&mut self, end: u64, at_newline: bool) -> Piece<'static> {
        let len = self.partial_len;
        let mut kept = std::mem::take(&mut self.partial);
        self.partial_len = 0;
        if len as usize > self.max {
            return match self.over_limit(&kept, len, end) {
                Piece::Line { bytes, end, .. } => Piece::Line {
                    bytes: Cow::Owned(bytes.into_owned()),
                    end,
                    truncated: true,
                },
                Piece::Dropped { end, len } => Piece::Dropped { end, len },
            };
        }
        if at_newline {
            let len = self.unit.strip_cr(&kept).len();
            kept.truncate(len);
        }
        Piece::Line {
            bytes: Cow::Owned(kept),
            end,
            truncated: false,
        }
    }

    fn append(&mut self, bytes: &[u8]) {
        let new_len = self.partial_len + bytes.len() as u64;
        if self.truncate || new_len <= self.max as u64 {
            // Keep at most `max` bytes: the rest of a long line is cut.
            let room = self.max.saturating_sub(self.partial.len());
            self.partial
                .extend_from_slice(&bytes[..bytes.len().min(room)]);
        } else {
            // Dropping: nothing of this line is kept.
            self.partial = Vec::new();
        }
        self.partial_len = new_len;
    }

    fn over_limit<'a>(&self, head: &'a [u8], len: u64, end: u64) -> Piece<'a> {
        if self.truncate {
            Piece::Line {
                bytes: Cow::Borrowed(&head[..head.len().min(self.max)]),
                end,
                truncated: true,
            }
        } else {
            Piece::Dropped { end, len }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(s: &mut LineSplitter, chunks: &[&[u8]]) -> Vec<(String, u64, &'static str)> {
        let mut out = Vec::new();
        let mut off = 0;
        for c in chunks {
            s.push(c, off, |p| {
                out.push(match p {
                    Piece::Line {
                        bytes,
                        end,
                        truncated,
                    } => (
                        String::from_utf8_lossy(&bytes).into_owned(),
                        end,
                        if truncated { "cut" } else { "" },
                    ),
                    Piece::Dropped { end, .. } => (String::new(), end, "dropped"),
                })
            });
            off += c.len() as u64;
        }
        out
    }

    #[test]
    fn splits_across_chunks_with_crlf_and_offsets() {
        let mut s = LineSplitter::new(0, false);
        let got = collect(&mut s, &[b"a\r\nbb", b"b\nc", b"c\r", b"\n\npart"]);
        assert_eq!(
            got,
            vec![
                ("a".into(), 3, ""),
                ("bbb".into(), 7, ""),
                ("cc".into(), 11, ""),
                ("".into(), 12, "")
            ]
        );
        assert!(s.has_partial());
        let mut flushed = Vec::new();
        s.flush(16, false, |p| flushed.push(format!("{p:?}")));
        assert_eq!(flushed.len(), 1);
        assert!(flushed[0].contains("end: 16"));
        assert!(!s.has_partial());
    }

    #[test]
    fn truncates_or_drops_long_lines_even_across_chunks() {
        let mut s = LineSplitter::new(4, true);
        let got = collect(&mut s, &[b"123456789\nab", b"cdefgh", b"ij\nok\n"]);
        assert_eq!(
            got,
            vec![
                ("1234".into(), 10, "cut"),
                ("abcd".into(), 21, "cut"),
                ("ok".into(), 24, "")
            ]
        );
        let mut s = LineSplitter::new(4, false);
        let got = collect(&mut s, &[b"123456789\nab", b"cdefgh", b"ij\nok\n"]);
        assert_eq!(
            got,
            vec![
                ("".into(), 10, "dropped"),
                ("".into(), 21, "dropped"),
                ("ok".into(), 24, "")
            ]
        );
        assert!(s.partial.capacity() < 64, "a dropped line is not buffered");
    }

    #[test]
    fn utf16_lines_end_at_the_newline_unit_and_keep_a_half_character() {
        let utf16le =
            |t: &str| -> Vec<u8> { t.encode_utf16().flat_map(u16::to_le_bytes).collect() };
        let mut s = LineSplitter::new(0, false);
        s.set_unit(Unit::Utf16Le);
        // U+0A0D holds the bytes of "\n" and "\r" but is neither.
        let text = utf16le("a\r\n\u{0A0D}b\n😀");
        let mut out = Vec::new();
        let mut off = 0;
        for c in [&text[..4], &text[4..10], &text[10..]] {
            s.push(c, off, |p| {
                if let Piece::Line { bytes, end, .. } = p {
                    out.push((bytes.into_owned(), end));
                }
            });
            off += c.len() as u64;
        }
        assert_eq!(out, [(utf16le("a"), 6), (utf16le("\u{0A0D}b"), 12)]);
        // Flushed before the low half of the emoji came: it waits.
        let mut half = LineSplitter::new(0, false);
        half.set_unit(Unit::Utf16Le);
        half.push(&text[12..14], 12, |_| panic!("no newline"));
        let mut flushed = Vec::new();
        half.flush(14, false, |p| flushed.push(format!("{p:?}")));
        assert!(flushed.is_empty(), "{flushed:?}");
        half.push(&text[14..], 14, |_| panic!("no newline"));
        half.flush(16, false, |p| {
            if let Piece::Line { bytes, end, .. } = p {
                flushed.push(format!(
                    "{}@{end}",
                    String::from_utf16_lossy(&[
                        u16::from_le_bytes([bytes[0], bytes[1]]),
                        u16::from_le_bytes([bytes[2], bytes[3]]),
                    ])
                ));
            }
        });
        assert_eq!(flushed, ["😀@16"]);
        // A line cut to the limit is cut at a unit boundary.
        let mut cut = LineSplitter::new(5, true);
        cut.set_unit(Unit::Utf16Le);
        let mut got = Vec::new();
        cut.push(&utf16le("abcdef\n"), 0, |p| {
            if let Piece::Line { bytes, .. } = p {
                got.push(bytes.len());
            }
        });
        assert_eq!(got, [4]);
    }
}
