//! `scrape_configs[].encoding`: how a job's files are cut into lines and
//! decoded to UTF-8.
//!
//! Names are resolved as promtail's `ianaindex` resolves them where the
//! two differ for the encodings whose newline is not the `\n` byte:
//! `UTF-16` is big-endian unless the file starts with a byte order mark,
//! which then says the order and is not shipped; `UTF-16LE` and `UTF-16BE`
//! have a fixed order and a mark is read as the character U+FEFF
//! (x/text's `IgnoreBOM`). ISO-8859-1 and its aliases (`latin1`, `l1`,
//! ...) map every byte to the code point of its value, as x/text's
//! `charmap.ISO8859_1` does; encoding_rs (WHATWG) reads those labels as
//! windows-1252, which differs for 0x80-0x9F, so that stays for the
//! `windows-1252` label. Other names are encoding_rs' labels.
//!
//! Lines are found in the file's own bytes, before decoding, so every
//! line keeps its exact byte offsets (the positions file stays exact):
//! the `\n` byte for ASCII-compatible encodings and ISO-2022-JP (whose
//! lines start in ASCII, as RFC 1468 requires and as promtail decodes
//! them, one line at a time); the code unit U+000A for UTF-16, which no
//! surrogate pair contains. Reads of UTF-16 files are cut to whole code
//! units: an odd byte at the end waits for the rest of its unit.

use encoding_rs::Encoding;

/// A job's `encoding`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileEncoding {
    /// Lines end at the `\n` byte; each is decoded on its own.
    Bytes(&'static Encoding),
    /// UTF-16 in this order; a byte order mark is the character U+FEFF.
    Utf16 { big_endian: bool },
    /// IANA's `UTF-16`: big-endian unless a byte order mark says otherwise.
    Utf16Bom,
    /// ISO-8859-1: byte n is U+00nn.
    Latin1,
}

impl FileEncoding {
    /// The encoding `label` names; `None` for UTF-8 (or empty). Errors say
    /// why a name is not accepted.
    pub fn named(label: &str) -> Result<Option<FileEncoding>, String> {
        let label = label.trim();
        if label.is_empty() {
            return Ok(None);
        }
        let lower = label.to_ascii_lowercase();
        if lower == "utf-16" || lower == "csutf16" {
            return Ok(Some(FileEncoding::Utf16Bom));
        }
        if LATIN1_LABELS.contains(&lower.as_str()) {
            return Ok(Some(FileEncoding::Latin1));
        }
        let Some(enc) = Encoding::for_label(label.as_bytes()).or_else(|| iana_alias(&lower)) else {
            return Err(format!("unknown encoding {label:?}"));
        };
        Ok(Some(if enc == encoding_rs::UTF_8 {
            return Ok(None);
        } else if enc == encoding_rs::UTF_16LE {
            FileEncoding::Utf16 { big_endian: false }
        } else if enc == encoding_rs::UTF_16BE {
            FileEncoding::Utf16 { big_endian: true }
        } else if enc == encoding_rs::REPLACEMENT {
            // encoding_rs' stand-in for ISO-2022-KR, HZ and the like: it
            // would turn every line into U+FFFD.
            return Err(format!(
                "encoding {label:?} is not supported by this shipper (no decoder for it)"
            ));
        } else {
            FileEncoding::Bytes(enc)
        }))
    }

    /// How a file whose first bytes are `head` is read (the byte order
    /// mark, if any, is at its start).
    pub fn codec(self, head: &[u8]) -> Codec {
        match self {
            FileEncoding::Bytes(enc) => Codec {
                unit: Unit::Byte,
                decoder: Decoder::Rs(enc),
                bom: 0,
            },
            FileEncoding::Latin1 => Codec {
                unit: Unit::Byte,
                decoder: Decoder::Latin1,
                bom: 0,
            },
            FileEncoding::Utf16 { big_endian } => Codec::utf16(big_endian, 0),
            FileEncoding::Utf16Bom => match head {
                [0xFF, 0xFE, ..] => Codec::utf16(false, 2),
                [0xFE, 0xFF, ..] => Codec::utf16(true, 2),
                _ => Codec::utf16(true, 0),
            },
        }
    }
}

/// ISO-8859-1's IANA name and aliases, and WHATWG's other labels for it.
const LATIN1_LABELS: &[&str] = &[
    "iso-8859-1",
    "iso_8859-1",
    "iso_8859-1:1987",
    "iso-ir-100",
    "latin1",
    "l1",
    "ibm819",
    "cp819",
    "csisolatin1",
    "iso8859-1",
    "iso88591",
];

/// IANA names encoding_rs does not know as labels.
fn iana_alias(lower: &str) -> Option<&'static Encoding> {
    match lower {
        "csutf16le" => Some(encoding_rs::UTF_16LE),
        "csutf16be" => Some(encoding_rs::UTF_16BE),
        "csiso2022jp" => Some(encoding_rs::ISO_2022_JP),
        _ => None,
    }
}

/// How one file's bytes are cut into lines and decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Codec {
    pub unit: Unit,
    pub decoder: Decoder,
    /// Bytes of a byte order mark at the file's start, not shipped.
    pub bom: usize,
}

impl Codec {
    fn utf16(big_endian: bool, bom: usize) -> Codec {
        let (unit, decoder) = if big_endian {
            (Unit::Utf16Be, encoding_rs::UTF_16BE)
        } else {
            (Unit::Utf16Le, encoding_rs::UTF_16LE)
        };
        Codec {
            unit,
            decoder: Decoder::Rs(decoder),
            bom,
        }
    }
}

/// How a line's bytes become text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decoder {
    /// Bytes the encoding cannot map become U+FFFD.
    Rs(&'static Encoding),
    Latin1,
}

impl Decoder {
    pub fn decode(self, bytes: &[u8]) -> String {
        match self {
            Decoder::Rs(enc) => enc.decode_without_bom_handling(bytes).0.into_owned(),
            Decoder::Latin1 => bytes.iter().map(|&b| char::from(b)).collect(),
        }
    }
}

/// What lines are made of: where a newline is, what a whole unit is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Unit {
    /// Lines end at the `\n` byte (UTF-8 and every ASCII-compatible encoding).
    #[default]
    Byte,
    Utf16Le,
    Utf16Be,
}

impl Unit {
    /// Bytes per code unit.
    pub fn width(self) -> usize {
        match self {
            Unit::Byte => 1,
            Unit::Utf16Le | Unit::Utf16Be => 2,
        }
    }

    /// The largest number of bytes up to `n` that are whole units.
    pub fn whole(self, n: usize) -> usize {
        n - n % self.width()
    }

    /// The code unit `u` (of `width` bytes) as a number.
    fn value(self, u: &[u8]) -> u16 {
        match self {
            Unit::Byte => u16::from(u[0]),
            Unit::Utf16Le => u16::from_le_bytes([u[0], u[1]]),
            Unit::Utf16Be => u16::from_be_bytes([u[0], u[1]]),
        }
    }

    /// The newlines of `chunk`, a whole number of units starting at a unit
    /// boundary: (where it starts, just past it).
    pub fn newlines(self, chunk: &[u8]) -> impl Iterator<Item = (usize, usize)> + '_ {
        let w = self.width();
        memchr::memchr_iter(b'\n', chunk).filter_map(move |i| {
            let start = i - i % w;
            // The 0x0A byte must be the low byte of its unit.
            let low = if self == Unit::Utf16Be {
                start + 1
            } else {
                start
            };
            let unit = chunk.get(start..start + w)?;
            (i == low && self.value(unit) == u16::from(b'\n')).then_some((start, start + w))
        })
    }

    /// `line` without a carriage return unit at its end.
    pub fn strip_cr(self, line: &[u8]) -> &[u8] {
        let w = self.width();
        match line.len().checked_sub(w) {
            Some(at) if self.value(&line[at..]) == u16::from(b'\r') => &line[..at],
            _ => line,
        }
    }

    /// Bytes at the end of `line` that start a character whose rest is not
    /// there yet (a UTF-16 high surrogate): kept back when a partial line
    /// is sent, so a character is never cut in two.
    pub fn incomplete_tail(self, line: &[u8]) -> usize {
        let w = self.width();
        match line.len().checked_sub(w) {
            Some(at) if w == 2 && (0xD800..0xDC00).contains(&self.value(&line[at..])) => w,
            _ => 0,
        }
    }

    /// Where the last complete line of `bytes` (a whole number of units
    /// from a unit boundary) ends, if it holds a newline.
    pub fn last_newline_end(self, bytes: &[u8]) -> Option<usize> {
        self.newlines(bytes).last().map(|(_, end)| end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utf16(s: &str, be: bool) -> Vec<u8> {
        s.encode_utf16()
            .flat_map(|u| if be { u.to_be_bytes() } else { u.to_le_bytes() })
            .collect()
    }

    #[test]
    fn names_resolve_as_promtails_iana_index_for_utf16() {
        assert_eq!(FileEncoding::named("").unwrap(), None);
        assert_eq!(FileEncoding::named("UTF-8").unwrap(), None);
        assert_eq!(
            FileEncoding::named("UTF-16").unwrap(),
            Some(FileEncoding::Utf16Bom)
        );
        assert_eq!(
            FileEncoding::named("utf-16le").unwrap(),
            Some(FileEncoding::Utf16 { big_endian: false })
        );
        assert_eq!(
            FileEncoding::named("csUTF16BE").unwrap(),
            Some(FileEncoding::Utf16 { big_endian: true })
        );
        assert_eq!(
            FileEncoding::named("ISO-2022-JP").unwrap(),
            Some(FileEncoding::Bytes(encoding_rs::ISO_2022_JP))
        );
        assert!(FileEncoding::named("klingon")
            .unwrap_err()
            .contains("unknown encoding \"klingon\""));
        assert!(FileEncoding::named("ISO-2022-KR")
            .unwrap_err()
            .contains("not supported"));
        // The byte order mark decides for `UTF-16` only.
        let bom = FileEncoding::Utf16Bom;
        assert_eq!(bom.codec(&[0xFF, 0xFE, b'a', 0]).unit, Unit::Utf16Le);
        assert_eq!(bom.codec(&[0xFF, 0xFE]).bom, 2);
        assert_eq!(bom.codec(&[0, b'a']).unit, Unit::Utf16Be);
        assert_eq!(bom.codec(&[0, b'a']).bom, 0);
        let le = FileEncoding::Utf16 { big_endian: false };
        assert_eq!(le.codec(&[0xFE, 0xFF]).bom, 0);
    }

    #[test]
    fn iso_8859_1_maps_every_byte_to_its_code_point_as_go() {
        let bytes: Vec<u8> = (0x80..=0x9F).chain([b'a', 0xE9, 0xFF]).collect();
        let want: String = (0x80..=0x9Fu32)
            .chain([0x61, 0xE9, 0xFF])
            .map(|c| char::from_u32(c).unwrap())
            .collect();
        for label in [
            "ISO-8859-1",
            "latin1",
            "iso-8859-1",
            "ISO_8859-1:1987",
            "l1",
        ] {
            let enc = FileEncoding::named(label).unwrap().unwrap();
            assert_eq!(enc.codec(&[]).decoder.decode(&bytes), want, "{label}");
        }
        // windows-1252 keeps its own mapping: 0x80 is the euro sign.
        let w = FileEncoding::named("windows-1252").unwrap().unwrap();
        assert_eq!(w.codec(&[]).decoder.decode(&[0x80, 0xE9]), "\u{20AC}é");
    }

    #[test]
    fn utf16_newlines_are_whole_units_only() {
        // U+0A0A and U+0A00 hold 0x0A bytes that are not newlines; U+1F600
        // is a surrogate pair.
        for be in [false, true] {
            let unit = if be { Unit::Utf16Be } else { Unit::Utf16Le };
            let text = "\u{0A0A}a\r\n\u{0A00}😀\nz";
            let b = utf16(text, be);
            let lines: Vec<(usize, usize)> = unit.newlines(&b).collect();
            assert_eq!(lines, [(6, 8), (14, 16)], "big endian: {be}");
            assert_eq!(unit.strip_cr(&b[..8 - 2]).len(), 4);
            assert_eq!(unit.last_newline_end(&b), Some(16));
            // A high surrogate at the end waits for its low half.
            assert_eq!(unit.incomplete_tail(&b[..12]), 2);
            assert_eq!(unit.incomplete_tail(&b[..14]), 0);
        }
        assert_eq!(Unit::Utf16Le.whole(7), 6);
        assert_eq!(Unit::Byte.whole(7), 7);
        let bytes: Vec<_> = Unit::Byte.newlines(b"a\r\nb\n").collect();
        assert_eq!(bytes, [(2, 3), (4, 5)]);
    }
}
