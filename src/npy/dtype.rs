//! Element types of `.npy` files and their byte order.

use std::fmt;

/// The element types npyflow reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ElemType {
    /// `bool` (one byte, 0 or 1).
    Bool,
    /// `uint8`.
    U8,
    /// `int8`.
    I8,
    /// `uint16`.
    U16,
    /// `int16`.
    I16,
    /// `uint32`.
    U32,
    /// `int32`.
    I32,
    /// `uint64`.
    U64,
    /// `int64`.
    I64,
    /// `float16`.
    F16,
    /// `float32`.
    F32,
    /// `float64`.
    F64,
}

impl ElemType {
    /// Every supported type, in a stable order.
    pub const ALL: [ElemType; 12] = [
        ElemType::Bool,
        ElemType::U8,
        ElemType::I8,
        ElemType::U16,
        ElemType::I16,
        ElemType::U32,
        ElemType::I32,
        ElemType::U64,
        ElemType::I64,
        ElemType::F16,
        ElemType::F32,
        ElemType::F64,
    ];

    /// Bytes per element.
    pub fn size(self) -> usize {
        use ElemType::*;
        match self {
            Bool | U8 | I8 => 1,
            U16 | I16 | F16 => 2,
            U32 | I32 | F32 => 4,
            U64 | I64 | F64 => 8,
        }
    }

    /// numpy's name, e.g. `uint8`.
    pub fn name(self) -> &'static str {
        use ElemType::*;
        match self {
            Bool => "bool",
            U8 => "uint8",
            I8 => "int8",
            U16 => "uint16",
            I16 => "int16",
            U32 => "uint32",
            I32 => "int32",
            U64 => "uint64",
            I64 => "int64",
            F16 => "float16",
            F32 => "float32",
            F64 => "float64",
        }
    }

    /// The kind character and size of numpy's descriptor, e.g. `u1`.
    fn code(self) -> &'static str {
        use ElemType::*;
        match self {
            Bool => "b1",
            U8 => "u1",
            I8 => "i1",
            U16 => "u2",
            I16 => "i2",
            U32 => "u4",
            I32 => "i4",
            U64 => "u8",
            I64 => "i8",
            F16 => "f2",
            F32 => "f4",
            F64 => "f8",
        }
    }

    /// Parses numpy's name (`uint8`, `float32`, ...) or short form (`u8`, `f32`, `u1`, `f4`).
    pub fn from_name(s: &str) -> Option<ElemType> {
        use ElemType::*;
        Some(match s {
            "bool" | "b1" => Bool,
            "uint8" | "u8" | "u1" => U8,
            "int8" | "i8" | "i1" => I8,
            "uint16" | "u16" | "u2" => U16,
            "int16" | "i16" | "i2" => I16,
            "uint32" | "u32" | "u4" => U32,
            "int32" | "i32" | "i4" => I32,
            "uint64" | "u64" => U64,
            "int64" | "i64" => I64,
            "float16" | "f16" | "f2" => F16,
            "float32" | "f32" | "f4" => F32,
            "float64" | "f64" | "f8" => F64,
            _ => return None,
        })
    }
}

impl fmt::Display for ElemType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Byte order of multi-byte elements.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ByteOrder {
    /// Little-endian (`<`).
    Little,
    /// Big-endian (`>`).
    Big,
}

impl ByteOrder {
    /// This machine's byte order.
    pub const NATIVE: ByteOrder = if cfg!(target_endian = "little") {
        ByteOrder::Little
    } else {
        ByteOrder::Big
    };
}

/// An element type with its byte order: what a `descr` string says.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Dtype {
    /// The element type.
    pub elem: ElemType,
    /// The byte order (for one-byte types always [`ByteOrder::NATIVE`]).
    pub order: ByteOrder,
}

impl Dtype {
    /// A native-endian dtype.
    pub fn native(elem: ElemType) -> Dtype {
        Dtype {
            elem,
            order: ByteOrder::NATIVE,
        }
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        self.elem.size()
    }

    /// True when elements can be read without swapping bytes.
    pub fn is_native(self) -> bool {
        self.elem.size() == 1 || self.order == ByteOrder::NATIVE
    }

    /// Parses a numpy `descr` such as `<f4`, `|u1`, `>i2`, `=f8`. `None` when unsupported.
    pub fn parse_descr(descr: &str) -> Option<Dtype> {
        let (order, code) = match descr.as_bytes().first()? {
            b'<' => (Some(ByteOrder::Little), &descr[1..]),
            b'>' => (Some(ByteOrder::Big), &descr[1..]),
            b'|' | b'=' => (None, &descr[1..]),
            _ => (None, descr),
        };
        let elem = match code {
            "b1" | "?" => ElemType::Bool,
            "u1" => ElemType::U8,
            "i1" => ElemType::I8,
            "u2" => ElemType::U16,
            "i2" => ElemType::I16,
            "u4" => ElemType::U32,
            "i4" => ElemType::I32,
            "u8" => ElemType::U64,
            "i8" => ElemType::I64,
            "f2" => ElemType::F16,
            "f4" => ElemType::F32,
            "f8" => ElemType::F64,
            _ => return None,
        };
        let order = if elem.size() == 1 {
            ByteOrder::NATIVE
        } else {
            order.unwrap_or(ByteOrder::NATIVE)
        };
        Some(Dtype { elem, order })
    }

    /// numpy's `descr` for this dtype, e.g. `<f4` or `|u1`.
    pub fn descr(self) -> String {
        let prefix = if self.elem.size() == 1 {
            '|'
        } else if self.order == ByteOrder::Little {
            '<'
        } else {
            '>'
        };
        format!("{prefix}{}", self.elem.code())
    }
}

impl fmt::Display for Dtype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.elem, self.descr())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descr_round_trips_for_every_type_and_order() {
        for elem in ElemType::ALL {
            for order in [ByteOrder::Little, ByteOrder::Big] {
                let d = Dtype { elem, order };
                let parsed = Dtype::parse_descr(&d.descr()).unwrap();
                assert_eq!(parsed.elem, elem);
                if elem.size() > 1 {
                    assert_eq!(parsed.order, order);
                }
            }
        }
    }

    #[test]
    fn rejects_unsupported_descriptors() {
        for bad in ["<c8", "|O", "<U5", "|S3", "<m8[s]", "<f16", "", "<"] {
            assert!(Dtype::parse_descr(bad).is_none(), "{bad}");
        }
        assert_eq!(Dtype::parse_descr(">i2").unwrap().order, ByteOrder::Big);
        assert_eq!(Dtype::parse_descr("|u1").unwrap().elem, ElemType::U8);
    }
}
