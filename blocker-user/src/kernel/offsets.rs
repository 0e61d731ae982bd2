//! A small, self-contained reader of BTF (BPF Type Format), used to take the
//! offsets of the socket fields the treason probes read from the running
//! kernel (`/sys/kernel/btf/vmlinux`) instead of hard-coding them for one
//! kernel build.
//!
//! aya-obj parses BTF too, but its API is crate-private, so this module reads
//! the format itself, following the kernel's description in
//! Documentation/bpf/btf.rst and include/uapi/linux/btf.h:
//!
//! * a header (`struct btf_header`: magic 0xeB9F, version 1, flags, `hdr_len`,
//!   then offset and length of the type and string sections, relative to the
//!   end of the header);
//! * a type section: a sequence of `struct btf_type` (12 bytes: `name_off`,
//!   `info`, `size`/`type`), each followed by kind-specific data whose length
//!   depends on the kind and on `vlen`. Type ids are implicit (1, 2, ... in
//!   order; 0 is `void`), so every kind's trailing data must be skipped
//!   exactly or every later id is wrong;
//! * a string section of NUL-terminated names, referenced by byte offset.
//!
//! The blob is untrusted input as far as this module is concerned: every
//! offset, length and type id is bounds-checked and every failure is a
//! [`BtfError`], never a panic, so arbitrary bytes can be fed to
//! [`Btf::parse`] (the tests do).

use std::{
    io,
    path::{Path, PathBuf},
};

use blocker_common::{SockOffsets, TracepointOffsets};
use tracing::debug;

/// Where the kernel exposes its own BTF (CONFIG_DEBUG_INFO_BTF, Linux 5.4+).
pub const VMLINUX_BTF: &str = "/sys/kernel/btf/vmlinux";

const BTF_MAGIC: u16 = 0xeb9f;
const BTF_VERSION: u8 = 1;
/// `sizeof(struct btf_header)` before the kind-layout extension.
const HEADER_LEN: usize = 24;
/// `hdr_len` from which the header also carries `layout_off`/`layout_len`.
const HEADER_LEN_WITH_LAYOUT: usize = 32;
/// `sizeof(struct btf_type)`.
const TYPE_LEN: usize = 12;
/// Longest chain of typedefs/modifiers or nesting of anonymous members we
/// follow. Real kernels need a handful; the limit turns a cyclic (malformed)
/// blob into an error instead of an endless loop.
const MAX_DEPTH: u32 = 64;

#[derive(Debug, thiserror::Error)]
pub enum BtfError {
    #[error("cannot read {path}: {source}{}", read_hint(source))]
    Read { path: PathBuf, source: io::Error },
    #[error("BTF blob is {len} bytes, shorter than its {need}-byte header")]
    TooShort { len: usize, need: usize },
    #[error("not BTF: bad magic {0:#06x} (expected 0xeb9f)")]
    BadMagic(u16),
    #[error("unsupported BTF version {0} (only version 1 exists)")]
    UnsupportedVersion(u8),
    #[error("invalid BTF header length {hdr_len} (blob is {blob_len} bytes)")]
    BadHeaderLen { hdr_len: u32, blob_len: usize },
    #[error(
        "BTF {section} section (offset {offset}, length {len}) lies outside the {blob_len}-byte blob"
    )]
    SectionOutOfBounds {
        section: &'static str,
        offset: u64,
        len: u64,
        blob_len: usize,
    },
    #[error("malformed BTF string section: {0}")]
    BadStrings(&'static str),
    #[error("BTF type {id} is truncated at byte {offset} of the type section")]
    TruncatedType { id: u32, offset: usize },
    #[error(
        "BTF type {id} has kind {kind}, which this reader does not know and the blob does not describe"
    )]
    UnknownKind { id: u32, kind: u8 },
    #[error("BTF type {id} names string offset {offset}, beyond the {len}-byte string section")]
    BadStringOffset { id: u32, offset: u32, len: usize },
    #[error("BTF type {referrer} refers to type {id}, but the blob has only {count} types")]
    BadTypeId { id: u32, referrer: u32, count: u32 },
    #[error("BTF type chain at type {id} is deeper than {MAX_DEPTH} levels (cyclic?)")]
    TooDeep { id: u32 },
    #[error(
        "the kernel's BTF has no struct {0}; this kernel's networking code is too different for blocker's socket probes"
    )]
    NoSuchStruct(String),
    #[error(
        "struct {struct_name} has no member {path} in the kernel's BTF; blocker's socket probes do not support this kernel"
    )]
    NoSuchMember { struct_name: String, path: String },
    #[error(
        "tracepoint tcp:tcp_probe has no skaddr field (it was added in Linux 6.9 by commit caabd859c41b, \"tcp: Add skb addr and sock addr to arguments of tracepoint tcp_probe.\"); this kernel is older, so the tracepoint fallback cannot identify the socket"
    )]
    ProbeWithoutSocket,
    #[error("{struct_name}.{path} is not a struct or union, so it has no member {member}")]
    NotComposite {
        struct_name: String,
        path: String,
        member: String,
    },
    #[error("{struct_name}.{path} is a bitfield; blocker only reads whole bytes")]
    Bitfield { struct_name: String, path: String },
    #[error("{struct_name}.{path} has no size (its type, BTF id {id}, is {kind:?})")]
    NoSize {
        struct_name: String,
        path: String,
        id: u32,
        kind: Option<Kind>,
    },
    #[error("{struct_name}.{path} is too large to describe")]
    TooLarge { struct_name: String, path: String },
    #[error(
        "{struct_name}.{path} ({size} bytes at offset {offset}) lies outside the {struct_size}-byte struct: malformed BTF"
    )]
    OutsideStruct {
        struct_name: String,
        path: String,
        offset: u32,
        size: u32,
        struct_size: u32,
    },
    #[error(
        "{struct_name}.{path} is {size} bytes in the kernel's BTF, expected {expected}; the kernel changed the field's type"
    )]
    UnexpectedSize {
        struct_name: String,
        path: String,
        size: u32,
        expected: u32,
    },
    #[error(
        "{struct_name}.{path} is at offset {offset}, not 0: a struct {inner} pointer is no longer a struct {struct_name} pointer"
    )]
    NotAtStart {
        struct_name: String,
        path: String,
        inner: &'static str,
        offset: u32,
    },
    #[error("{struct_name}.{path} is not a struct {inner}")]
    WrongType {
        struct_name: String,
        path: String,
        inner: &'static str,
    },
}

fn read_hint(e: &io::Error) -> &'static str {
    if e.kind() == io::ErrorKind::NotFound {
        " (the kernel was built without CONFIG_DEBUG_INFO_BTF; blocker's socket probes need it)"
    } else {
        ""
    }
}

/// BTF kinds (`BTF_KIND_*` in include/uapi/linux/btf.h).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Int,
    Ptr,
    Array,
    Struct,
    Union,
    Enum,
    Fwd,
    Typedef,
    Volatile,
    Const,
    Restrict,
    Func,
    FuncProto,
    Var,
    Datasec,
    Float,
    DeclTag,
    TypeTag,
    Enum64,
    /// A kind newer than this reader, skipped thanks to the blob's kind
    /// layout section.
    Unknown(u8),
}

impl Kind {
    fn from_raw(kind: u8) -> Self {
        match kind {
            1 => Self::Int,
            2 => Self::Ptr,
            3 => Self::Array,
            4 => Self::Struct,
            5 => Self::Union,
            6 => Self::Enum,
            7 => Self::Fwd,
            8 => Self::Typedef,
            9 => Self::Volatile,
            10 => Self::Const,
            11 => Self::Restrict,
            12 => Self::Func,
            13 => Self::FuncProto,
            14 => Self::Var,
            15 => Self::Datasec,
            16 => Self::Float,
            17 => Self::DeclTag,
            18 => Self::TypeTag,
            19 => Self::Enum64,
            k => Self::Unknown(k),
        }
    }

    /// Bytes of kind-specific data after `struct btf_type`: a fixed part and
    /// a part per `vlen` element (btf.rst section 2.2, one subsection per
    /// kind). `None` for kinds this reader does not know.
    fn trailing(self) -> Option<(usize, usize)> {
        Some(match self {
            // u32 encoding/offset/bits.
            Self::Int => (4, 0),
            // struct btf_array { type, index_type, nelems }.
            Self::Array => (12, 0),
            // struct btf_member { name_off, type, offset } per member.
            Self::Struct | Self::Union => (0, 12),
            // struct btf_enum { name_off, val } per value.
            Self::Enum => (0, 8),
            // struct btf_param { name_off, type } per parameter.
            Self::FuncProto => (0, 8),
            // struct btf_var { linkage }.
            Self::Var => (4, 0),
            // struct btf_var_secinfo { type, offset, size } per variable.
            Self::Datasec => (0, 12),
            // struct btf_decl_tag { component_idx }.
            Self::DeclTag => (4, 0),
            // struct btf_enum64 { name_off, val_lo32, val_hi32 } per value.
            Self::Enum64 => (0, 12),
            Self::Ptr
            | Self::Fwd
            | Self::Typedef
            | Self::Volatile
            | Self::Const
            | Self::Restrict
            | Self::Func
            | Self::Float
            | Self::TypeTag => (0, 0),
            Self::Unknown(_) => return None,
        })
    }

    /// Kinds that only qualify or rename another type: sizes and members are
    /// those of the type they point to.
    fn is_alias(self) -> bool {
        matches!(
            self,
            Self::Typedef | Self::Volatile | Self::Const | Self::Restrict | Self::TypeTag
        )
    }

    fn is_composite(self) -> bool {
        matches!(self, Self::Struct | Self::Union)
    }
}

/// A member's place inside the outermost struct of a lookup.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Field {
    /// Bytes from the start of the outermost struct.
    pub offset: u32,
    /// Size of the member's type in bytes (typedefs and qualifiers followed).
    pub size: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Endian {
    Little,
    Big,
}

#[derive(Clone, Copy, Debug)]
struct Type {
    kind: Kind,
    /// `info` bit 31. For structs and unions it means member offsets carry
    /// the bitfield size in their top 8 bits.
    kflag: bool,
    vlen: u16,
    name_off: u32,
    /// `size` or `type`, depending on the kind.
    size_or_type: u32,
    /// Offset of the kind-specific data in the blob.
    data: usize,
}

/// One struct/union member as stored.
#[derive(Clone, Copy, Debug)]
struct Member {
    name_off: u32,
    type_id: u32,
    bit_offset: u32,
    /// Non-zero for bitfields encoded with the struct's kind_flag.
    bitfield_size: u32,
}

/// A parsed BTF blob.
#[derive(Debug)]
pub struct Btf {
    blob: Vec<u8>,
    endian: Endian,
    /// Index = type id; index 0 is a placeholder for `void`.
    types: Vec<Type>,
    str_start: usize,
    str_len: usize,
    pointer_size: u32,
}

fn read_u32(bytes: &[u8], at: usize, endian: Endian) -> Option<u32> {
    let b: [u8; 4] = bytes.get(at..at.checked_add(4)?)?.try_into().ok()?;
    Some(match endian {
        Endian::Little => u32::from_le_bytes(b),
        Endian::Big => u32::from_be_bytes(b),
    })
}

/// Checks that `[base + off, base + off + len)` lies in a blob of `blob_len`
/// bytes; returns the absolute range.
fn section(
    section: &'static str,
    base: usize,
    off: u32,
    len: u32,
    blob_len: usize,
) -> Result<(usize, usize), BtfError> {
    let start = base as u64 + u64::from(off);
    let end = start + u64::from(len);
    if end > blob_len as u64 {
        return Err(BtfError::SectionOutOfBounds {
            section,
            offset: u64::from(off),
            len: u64::from(len),
            blob_len,
        });
    }
    // Both fit in usize: they are at most `blob_len`.
    Ok((start as usize, end as usize))
}

impl Btf {
    /// Reads and parses the running kernel's BTF.
    pub fn from_sys_fs() -> Result<Self, BtfError> {
        Self::from_file(Path::new(VMLINUX_BTF))
    }

    /// Reads and parses a raw BTF file (such as `/sys/kernel/btf/*`).
    pub fn from_file(path: &Path) -> Result<Self, BtfError> {
        let blob = std::fs::read(path).map_err(|source| BtfError::Read {
            path: path.to_owned(),
            source,
        })?;
        let btf = Self::parse(blob)?;
        debug!(
            "{}: {} BTF types, {}-byte pointers",
            path.display(),
            btf.types.len() - 1,
            btf.pointer_size
        );
        Ok(btf)
    }

    /// Parses a raw BTF blob (header, type section, string section).
    pub fn parse(blob: impl Into<Vec<u8>>) -> Result<Self, BtfError> {
        let blob: Vec<u8> = blob.into();
        let len = blob.len();
        if len < HEADER_LEN {
            return Err(BtfError::TooShort {
                len,
                need: HEADER_LEN,
            });
        }
        // The magic is written in the producer's byte order; the kernel's own
        // BTF is native, but reading either order costs nothing.
        let magic = [blob[0], blob[1]];
        let endian = if u16::from_le_bytes(magic) == BTF_MAGIC {
            Endian::Little
        } else if u16::from_be_bytes(magic) == BTF_MAGIC {
            Endian::Big
        } else {
            return Err(BtfError::BadMagic(u16::from_le_bytes(magic)));
        };
        if blob[2] != BTF_VERSION {
            return Err(BtfError::UnsupportedVersion(blob[2]));
        }
        // `len >= HEADER_LEN` makes these reads infallible; `unwrap_or(0)`
        // only keeps the code free of panics.
        let word = |at: usize| read_u32(&blob, at, endian).unwrap_or(0);
        let hdr_len = word(4);
        let hdr = hdr_len as usize;
        // `hdr_len` lets the header grow (the kind layout fields below came
        // that way); fields we do not know are ignored.
        if hdr < HEADER_LEN || hdr > len {
            return Err(BtfError::BadHeaderLen {
                hdr_len,
                blob_len: len,
            });
        }
        let (type_start, type_end) = section("type", hdr, word(8), word(12), len)?;
        let (str_start, str_end) = section("string", hdr, word(16), word(20), len)?;
        // The kind layout section (commit 222edc843c15 "btf: Add BTF kind
        // layout encoding to UAPI", bpf-next, March 2026) describes the trailing data of
        // every kind the producer knew, so kinds newer than this reader can
        // still be skipped: one `struct btf_layout { u8 info_sz; u8 elem_sz;
        // u16 flags; }` per kind, indexed by kind number.
        let layout = if hdr >= HEADER_LEN_WITH_LAYOUT {
            let (start, end) = section("layout", hdr, word(24), word(28), len)?;
            &blob[start..end]
        } else {
            &[][..]
        };

        // The kernel (btf_parse_str_sec() in kernel/bpf/btf.c) requires the
        // string section to start with the empty name and end with a NUL;
        // the latter guarantees every in-range offset starts a terminated
        // string.
        let strings = &blob[str_start..str_end];
        match (strings.first(), strings.last()) {
            (None, _) => return Err(BtfError::BadStrings("it is empty")),
            (Some(0), Some(0)) => {}
            (Some(0), _) => return Err(BtfError::BadStrings("it does not end with a NUL")),
            (Some(_), _) => return Err(BtfError::BadStrings("it does not start with a NUL")),
        }
        let str_len = strings.len();

        let mut types = vec![Type {
            kind: Kind::Unknown(0),
            kflag: false,
            vlen: 0,
            name_off: 0,
            size_or_type: 0,
            data: 0,
        }];
        let mut at = type_start;
        while at < type_end {
            let id = u32::try_from(types.len()).map_err(|_| BtfError::TruncatedType {
                id: u32::MAX,
                offset: at - type_start,
            })?;
            let truncated = BtfError::TruncatedType {
                id,
                offset: at - type_start,
            };
            if type_end - at < TYPE_LEN {
                return Err(truncated);
            }
            let name_off = word(at);
            let info = word(at + 4);
            let size_or_type = word(at + 8);
            // info bits 24-28: kind; 0-15: vlen; 31: kind_flag.
            let raw_kind = ((info >> 24) & 0x1f) as u8;
            let vlen = (info & 0xffff) as u16;
            let kind = Kind::from_raw(raw_kind);
            let (fixed, per_elem) = match kind.trailing() {
                Some(t) => t,
                // Kind 0 is BTF_KIND_UNKN, never valid in a type section.
                None if raw_kind == 0 => {
                    return Err(BtfError::UnknownKind { id, kind: raw_kind });
                }
                None => {
                    let entry = layout
                        .get(usize::from(raw_kind) * 4..usize::from(raw_kind) * 4 + 2)
                        .ok_or(BtfError::UnknownKind { id, kind: raw_kind })?;
                    (usize::from(entry[0]), usize::from(entry[1]))
                }
            };
            let data = at + TYPE_LEN;
            let extra = fixed + per_elem * usize::from(vlen);
            if type_end - data < extra {
                return Err(truncated);
            }
            let ty = Type {
                kind,
                kflag: info >> 31 != 0,
                vlen,
                name_off,
                size_or_type,
                data,
            };
            check_names(&blob, endian, id, &ty, str_len)?;
            types.push(ty);
            at = data + extra;
        }

        let mut btf = Self {
            blob,
            endian,
            types,
            str_start,
            str_len,
            pointer_size: 0,
        };
        btf.pointer_size = btf.guess_pointer_size();
        Ok(btf)
    }

    /// The highest type id (the number of types, not counting `void`).
    pub fn last_type_id(&self) -> u32 {
        // `parse` refuses more types than fit in a u32.
        u32::try_from(self.types.len() - 1).unwrap_or(u32::MAX)
    }

    /// The kind of type `id`, `None` for `void` (0) and ids past the end.
    pub fn kind(&self, id: u32) -> Option<Kind> {
        match id {
            0 => None,
            _ => self.types.get(id as usize).map(|t| t.kind),
        }
    }

    /// The name of type `id` ("" for anonymous types), `None` for ids past the
    /// end.
    pub fn type_name(&self, id: u32) -> Option<String> {
        let t = self.types.get(id as usize)?;
        Some(String::from_utf8_lossy(self.name(t.name_off)).into_owned())
    }

    /// Size of a pointer in the described kernel, in bytes. BTF does not say
    /// directly; like libbpf (`btf__pointer_size`) we take the size of
    /// `long`, which matches the pointer size on every Linux ABI.
    pub fn pointer_size(&self) -> u32 {
        self.pointer_size
    }

    fn guess_pointer_size(&self) -> u32 {
        const LONGS: [&[u8]; 4] = [b"long int", b"long unsigned int", b"long", b"unsigned long"];
        self.types
            .iter()
            .skip(1)
            .find(|t| {
                t.kind == Kind::Int
                    && matches!(t.size_or_type, 4 | 8)
                    && LONGS.contains(&self.name(t.name_off))
            })
            .map_or(size_of::<usize>() as u32, |t| t.size_or_type)
    }

    /// Resolves a member path inside struct (or union) `struct_name`: each
    /// element names a member of the previous one's type. Members of
    /// anonymous structs and unions are found as if they were direct
    /// members, as in C (`skc_daddr` sits in an anonymous union inside an
    /// anonymous struct of `struct sock_common`). Typedefs and qualifiers
    /// are followed. Bitfields are an error: the probes read whole bytes.
    pub fn member(&self, struct_name: &str, path: &[&str]) -> Result<Field, BtfError> {
        self.resolve(struct_name, path).map(|(field, _)| field)
    }

    /// [`member`](Self::member), also returning the member's type id.
    fn resolve(&self, struct_name: &str, path: &[&str]) -> Result<(Field, u32), BtfError> {
        let root = self.find_composite(struct_name)?;
        let mut cur = root;
        let mut bits: u64 = 0;
        for (i, &name) in path.iter().enumerate() {
            let here = || path[..i].join(".");
            let comp = self.skip_aliases(cur)?;
            if !self.types[comp as usize].kind.is_composite() {
                return Err(BtfError::NotComposite {
                    struct_name: struct_name.into(),
                    path: here(),
                    member: name.into(),
                });
            }
            let (m, within) = self.find_member(comp, name.as_bytes(), 0)?.ok_or_else(|| {
                BtfError::NoSuchMember {
                    struct_name: struct_name.into(),
                    path: path[..=i].join("."),
                }
            })?;
            if m.bitfield_size != 0 || self.is_legacy_bitfield(m.type_id)? {
                return Err(BtfError::Bitfield {
                    struct_name: struct_name.into(),
                    path: path[..=i].join("."),
                });
            }
            bits += within + u64::from(m.bit_offset);
            cur = m.type_id;
        }
        let full = || path.join(".");
        if !bits.is_multiple_of(8) {
            return Err(BtfError::Bitfield {
                struct_name: struct_name.into(),
                path: full(),
            });
        }
        let too_large = || BtfError::TooLarge {
            struct_name: struct_name.into(),
            path: full(),
        };
        let offset = u32::try_from(bits / 8).map_err(|_| too_large())?;
        let size = match self.size_of(cur)? {
            Ok(size) => size,
            Err(SizeError::Overflow) => return Err(too_large()),
            Err(SizeError::NoSize(id)) => {
                return Err(BtfError::NoSize {
                    struct_name: struct_name.into(),
                    path: full(),
                    id,
                    kind: self.kind(id),
                });
            }
        };
        // The probes read `size` bytes at `offset` from a pointer to the
        // outer struct; a member reaching past its end would have them read
        // whatever lies beyond. The kernel refuses such BTF for its own types
        // (btf_struct_check_member(): "Member exceeds struct_size"), and so
        // does this reader: found by the `btf` fuzz target (an array member
        // whose element count was changed to 2^31).
        let outer = self.types[root as usize].size_or_type;
        if u64::from(offset) + u64::from(size) > u64::from(outer) {
            return Err(BtfError::OutsideStruct {
                struct_name: struct_name.into(),
                path: full(),
                offset,
                size,
                struct_size: outer,
            });
        }
        Ok((Field { offset, size }, cur))
    }

    /// Checks that `struct_name.path` is a struct `inner` at offset 0, so a
    /// pointer to one is a pointer to the other.
    fn check_embedded_at_start(
        &self,
        struct_name: &str,
        path: &[&str],
        inner: &'static str,
    ) -> Result<(), BtfError> {
        let (field, id) = self.resolve(struct_name, path)?;
        let id = self.skip_aliases(id)?;
        let t = &self.types[id as usize];
        if t.kind != Kind::Struct || self.name(t.name_off) != inner.as_bytes() {
            return Err(BtfError::WrongType {
                struct_name: struct_name.into(),
                path: path.join("."),
                inner,
            });
        }
        if field.offset != 0 {
            return Err(BtfError::NotAtStart {
                struct_name: struct_name.into(),
                path: path.join("."),
                inner,
                offset: field.offset,
            });
        }
        Ok(())
    }

    /// The first struct or union called `name` (forward declarations are
    /// skipped: they have no members).
    fn find_composite(&self, name: &str) -> Result<u32, BtfError> {
        self.types
            .iter()
            .enumerate()
            .skip(1)
            .find(|(_, t)| t.kind.is_composite() && self.name(t.name_off) == name.as_bytes())
            .map(|(id, _)| id as u32)
            .ok_or_else(|| BtfError::NoSuchStruct(name.into()))
    }

    /// Looks `name` up among the members of composite `id`, descending into
    /// anonymous struct/union members. Returns the member and the bit offset
    /// of the anonymous container it was found in.
    fn find_member(
        &self,
        id: u32,
        name: &[u8],
        depth: u32,
    ) -> Result<Option<(Member, u64)>, BtfError> {
        if depth > MAX_DEPTH {
            return Err(BtfError::TooDeep { id });
        }
        let t = self.types[id as usize];
        for i in 0..usize::from(t.vlen) {
            let m = self.member_at(id, &t, i)?;
            let m_name = self.name(m.name_off);
            if m_name == name {
                return Ok(Some((m, 0)));
            }
            if m_name.is_empty() {
                let inner = self.skip_aliases(self.check_id(m.type_id, id)?)?;
                if self.types[inner as usize].kind.is_composite()
                    && let Some((found, within)) = self.find_member(inner, name, depth + 1)?
                {
                    return Ok(Some((found, within + u64::from(m.bit_offset))));
                }
            }
        }
        Ok(None)
    }

    fn member_at(&self, id: u32, t: &Type, i: usize) -> Result<Member, BtfError> {
        let at = t.data + i * 12;
        let word = |k: usize| {
            read_u32(&self.blob, at + 4 * k, self.endian)
                .ok_or(BtfError::TruncatedType { id, offset: at })
        };
        let (name_off, type_id, offset) = (word(0)?, word(1)?, word(2)?);
        let type_id = self.check_id(type_id, id)?;
        // With kind_flag set the offset word packs the bitfield size in bits
        // 24-31 and the bit offset in bits 0-23 (btf.rst 2.2.4; commit
        // 9d5f9f701b18 "bpf: btf: fix struct/union/fwd types with
        // kind_flag"). Without it the word is the bit offset alone.
        let (bit_offset, bitfield_size) = if t.kflag {
            (offset & 0x00ff_ffff, offset >> 24)
        } else {
            (offset, 0)
        };
        Ok(Member {
            name_off,
            type_id,
            bit_offset,
            bitfield_size,
        })
    }

    /// Without kind_flag, a bitfield is a member whose INT type has fewer
    /// bits than its size or a bit offset of its own (the encoding before
    /// kind_flag existed, still valid).
    fn is_legacy_bitfield(&self, id: u32) -> Result<bool, BtfError> {
        let id = self.skip_aliases(id)?;
        let t = self.types[id as usize];
        if t.kind != Kind::Int {
            return Ok(false);
        }
        let enc = read_u32(&self.blob, t.data, self.endian)
            .ok_or(BtfError::TruncatedType { id, offset: t.data })?;
        // INT data: bits 0-7 nr_bits, 16-23 offset, 24-27 encoding.
        let nr_bits = u64::from(enc & 0xff);
        let int_offset = (enc >> 16) & 0xff;
        Ok(int_offset != 0 || nr_bits != u64::from(t.size_or_type) * 8)
    }

    /// Follows typedefs and qualifiers to the type they stand for.
    fn skip_aliases(&self, mut id: u32) -> Result<u32, BtfError> {
        for _ in 0..MAX_DEPTH {
            let t = &self.types[id as usize];
            if !t.kind.is_alias() {
                return Ok(id);
            }
            id = self.check_id(t.size_or_type, id)?;
        }
        Err(BtfError::TooDeep { id })
    }

    /// The size in bytes of type `id`. The inner result distinguishes
    /// sizeless types and overflow, which the caller words.
    fn size_of(&self, mut id: u32) -> Result<Result<u32, SizeError>, BtfError> {
        // Arrays multiply their element size; nested arrays multiply again.
        let mut factor: u32 = 1;
        for _ in 0..MAX_DEPTH {
            let t = self.types[id as usize];
            let base = match t.kind {
                _ if id == 0 => return Ok(Err(SizeError::NoSize(0))),
                Kind::Int
                | Kind::Struct
                | Kind::Union
                | Kind::Enum
                | Kind::Enum64
                | Kind::Float
                | Kind::Datasec => t.size_or_type,
                Kind::Ptr => self.pointer_size,
                Kind::Array => {
                    // struct btf_array { type, index_type, nelems }.
                    let word = |k: usize| {
                        read_u32(&self.blob, t.data + 4 * k, self.endian)
                            .ok_or(BtfError::TruncatedType { id, offset: t.data })
                    };
                    let (elem, nelems) = (word(0)?, word(2)?);
                    match factor.checked_mul(nelems) {
                        Some(f) => factor = f,
                        None => return Ok(Err(SizeError::Overflow)),
                    }
                    id = self.check_id(elem, id)?;
                    continue;
                }
                k if k.is_alias() => {
                    id = self.check_id(t.size_or_type, id)?;
                    continue;
                }
                _ => return Ok(Err(SizeError::NoSize(id))),
            };
            return Ok(factor.checked_mul(base).ok_or(SizeError::Overflow));
        }
        Err(BtfError::TooDeep { id })
    }

    fn check_id(&self, id: u32, referrer: u32) -> Result<u32, BtfError> {
        if (id as usize) < self.types.len() {
            Ok(id)
        } else {
            Err(BtfError::BadTypeId {
                id,
                referrer,
                count: self.last_type_id(),
            })
        }
    }

    /// The bytes of the string at `off`, without its NUL. Offsets were
    /// checked by `parse`; an unchecked one yields "" rather than a panic.
    fn name(&self, off: u32) -> &[u8] {
        let Some(rest) = self
            .blob
            .get(self.str_start..self.str_start + self.str_len)
            .and_then(|s| s.get(off as usize..))
        else {
            return &[];
        };
        let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
        &rest[..end]
    }
}

enum SizeError {
    NoSize(u32),
    Overflow,
}

/// Checks every string offset type `id` carries (its name and those of its
/// members, enumerators and parameters) against the string section.
fn check_names(
    blob: &[u8],
    endian: Endian,
    id: u32,
    t: &Type,
    str_len: usize,
) -> Result<(), BtfError> {
    let check = |offset: u32| {
        if (offset as usize) < str_len {
            Ok(())
        } else {
            Err(BtfError::BadStringOffset {
                id,
                offset,
                len: str_len,
            })
        }
    };
    check(t.name_off)?;
    // Element layouts whose first word is a name offset.
    let stride = match t.kind {
        Kind::Struct | Kind::Union | Kind::Enum64 => 12,
        Kind::Enum | Kind::FuncProto => 8,
        _ => return Ok(()),
    };
    for i in 0..usize::from(t.vlen) {
        let at = t.data + i * stride;
        let off = read_u32(blob, at, endian).ok_or(BtfError::TruncatedType { id, offset: at })?;
        check(off)?;
    }
    Ok(())
}

/// Offsets of every field [`SockOffsets`] describes, read from `btf`,
/// relative to a `struct sock *`, with `valid` set.
///
/// Each field's size is checked as well: a field whose type changed would
/// otherwise be misread silently.
pub fn sock_offsets(btf: &Btf) -> Result<SockOffsets, BtfError> {
    // The probes get a `struct sock *` and read `tcp_sock` fields through
    // it. That is what the kernel's tcp_sk() does (include/linux/tcp.h: a
    // container_of that relies on `struct tcp_sock` starting with
    // `inet_connection_sock`, which starts with `inet_sock`, which starts
    // with `sock`). Check the chain rather than assume it.
    btf.check_embedded_at_start("tcp_sock", &["inet_conn", "icsk_inet", "sk"], "sock")?;

    let field = |struct_name: &str, path: &[&str], expected: u32| -> Result<u32, BtfError> {
        let f = btf.member(struct_name, path)?;
        if f.size != expected {
            return Err(BtfError::UnexpectedSize {
                struct_name: struct_name.into(),
                path: path.join("."),
                size: f.size,
                expected,
            });
        }
        Ok(f.offset)
    };
    // `struct sock` starts with `struct sock_common __sk_common`; going
    // through it keeps the offsets relative to the sock pointer whatever
    // its offset.
    let common = |name: &str, expected: u32| field("sock", &["__sk_common", name], expected);
    let offsets = SockOffsets {
        family: common("skc_family", 2)?,
        state: common("skc_state", 1)?,
        dport: common("skc_dport", 2)?,
        num: common("skc_num", 2)?,
        daddr: common("skc_daddr", 4)?,
        rcv_saddr: common("skc_rcv_saddr", 4)?,
        // Only present with CONFIG_IPV6; every distribution kernel has it.
        v6_daddr: common("skc_v6_daddr", 16)?,
        v6_rcv_saddr: common("skc_v6_rcv_saddr", 16)?,
        // `sk_flags` is a macro for `__sk_common.skc_flags` (unsigned long,
        // pointer-sized) since commit 8e5eb54d303b ("net: align sk_refcnt on
        // 128 bytes boundary", Linux 4.4), long before BTF reached sysfs
        // (5.4). It sits in an anonymous union with skc_listener/skc_tw_dr.
        flags: common("skc_flags", btf.pointer_size())?,
        wmem_queued: field("sock", &["sk_wmem_queued"], 4)?,
        snd_wnd: field("tcp_sock", &["snd_wnd"], 4)?,
        snd_una: field("tcp_sock", &["snd_una"], 4)?,
        snd_nxt: field("tcp_sock", &["snd_nxt"], 4)?,
        packets_out: field("tcp_sock", &["packets_out"], 4)?,
        valid: 1,
        flags_reserved: 0,
    };
    debug!("socket field offsets from BTF: {offsets:?}");
    Ok(offsets)
}

/// The struct BTF names for the record of `tcp:tcp_retransmit_skb`: its own
/// since the event became a TRACE_EVENT of its own, the shared
/// `tcp_event_sk_skb` class's before (include/trace/events/tcp.h).
const RETRANSMIT_RECORDS: [&str; 2] = [
    "trace_event_raw_tcp_retransmit_skb",
    "trace_event_raw_tcp_event_sk_skb",
];
/// The record of `tcp:tcp_probe`.
const PROBE_RECORD: &str = "trace_event_raw_tcp_probe";

/// Offsets of every field [`TracepointOffsets`] describes, from the kernel's
/// BTF, with `valid` set.
///
/// A tracepoint program's context is the raw record the kernel writes for
/// the event, `struct trace_event_raw_<class>` (include/trace/trace_events.h
/// declares it, and BTF describes it like any struct): the same offsets
/// tracefs prints in `events/tcp/<event>/format`, as a root-only test checks.
/// Sizes are checked so that a field whose type changed is an error rather
/// than a misread: the sequence numbers and window are `__u32`, the socket
/// pointers `const void *`, and the retransmit state an `int`.
pub fn tracepoint_offsets(btf: &Btf) -> Result<TracepointOffsets, BtfError> {
    let field = |record: &str, name: &str, expected: u32| -> Result<u32, BtfError> {
        let f = btf.member(record, &[name])?;
        if f.size != expected {
            return Err(BtfError::UnexpectedSize {
                struct_name: record.into(),
                path: name.into(),
                size: f.size,
                expected,
            });
        }
        Ok(f.offset)
    };
    let retransmit = RETRANSMIT_RECORDS
        .into_iter()
        .find(|r| btf.member(r, &["skaddr"]).is_ok())
        .ok_or_else(|| BtfError::NoSuchStruct(RETRANSMIT_RECORDS.join(" or ")))?;
    let ptr = btf.pointer_size();
    // Commit caabd859c41b ("tcp: Add skb addr and sock addr to arguments of
    // tracepoint tcp_probe."), merged for Linux 6.9, added `skaddr`; without
    // it the fallback cannot tell which socket an event is about.
    let probe_skaddr = match field(PROBE_RECORD, "skaddr", ptr) {
        Err(BtfError::NoSuchMember { .. }) => return Err(BtfError::ProbeWithoutSocket),
        other => other?,
    };
    let offsets = TracepointOffsets {
        probe_snd_wnd: field(PROBE_RECORD, "snd_wnd", 4)?,
        probe_snd_nxt: field(PROBE_RECORD, "snd_nxt", 4)?,
        probe_snd_una: field(PROBE_RECORD, "snd_una", 4)?,
        probe_skaddr,
        retransmit_skaddr: field(retransmit, "skaddr", ptr)?,
        retransmit_state: field(retransmit, "state", 4)?,
        valid: 1,
        flags: 0,
    };
    debug!("tracepoint field offsets from BTF ({PROBE_RECORD}, {retransmit}): {offsets:?}");
    Ok(offsets)
}

#[cfg(test)]
mod tests {
    use std::{collections::HashMap, process::Command, sync::OnceLock};

    use super::*;

    // BTF_KIND_* numbers, for building blobs by hand.
    const INT: u32 = 1;
    const PTR: u32 = 2;
    const ARRAY: u32 = 3;
    const STRUCT: u32 = 4;
    const UNION: u32 = 5;
    const ENUM: u32 = 6;
    const FWD: u32 = 7;
    const TYPEDEF: u32 = 8;
    const VOLATILE: u32 = 9;
    const CONST: u32 = 10;
    const RESTRICT: u32 = 11;
    const FUNC: u32 = 12;
    const FUNC_PROTO: u32 = 13;
    const VAR: u32 = 14;
    const DATASEC: u32 = 15;
    const FLOAT: u32 = 16;
    const DECL_TAG: u32 = 17;
    const TYPE_TAG: u32 = 18;
    const ENUM64: u32 = 19;

    /// Writes BTF blobs type by type, the way pahole would.
    struct Builder {
        endian: Endian,
        strings: Vec<u8>,
        types: Vec<u8>,
        next_id: u32,
        /// `struct btf_layout` entries; `Some` makes a 32-byte header.
        layout: Option<Vec<[u8; 4]>>,
    }

    impl Builder {
        fn new() -> Self {
            Self {
                endian: Endian::Little,
                strings: vec![0],
                types: Vec::new(),
                next_id: 1,
                layout: None,
            }
        }

        fn str(&mut self, s: &str) -> u32 {
            if s.is_empty() {
                return 0;
            }
            let off = self.strings.len() as u32;
            self.strings.extend_from_slice(s.as_bytes());
            self.strings.push(0);
            off
        }

        fn word(&mut self, w: u32) {
            let b = match self.endian {
                Endian::Little => w.to_le_bytes(),
                Endian::Big => w.to_be_bytes(),
            };
            self.types.extend_from_slice(&b);
        }

        /// Adds a type; `extra` is its kind-specific data as words.
        fn ty(
            &mut self,
            name: &str,
            kind: u32,
            kflag: bool,
            vlen: u32,
            sz: u32,
            extra: &[u32],
        ) -> u32 {
            let name = self.str(name);
            self.word(name);
            self.word(u32::from(kflag) << 31 | kind << 24 | vlen);
            self.word(sz);
            for &w in extra {
                self.word(w);
            }
            self.next_id += 1;
            self.next_id - 1
        }

        fn int(&mut self, name: &str, size: u32) -> u32 {
            self.ty(name, INT, false, 0, size, &[size * 8])
        }

        /// A struct or union; members are (name, type, offset word).
        fn composite(
            &mut self,
            kind: u32,
            name: &str,
            kflag: bool,
            size: u32,
            members: &[(&str, u32, u32)],
        ) -> u32 {
            let mut extra = Vec::new();
            for &(m, t, off) in members {
                extra.extend([self.str(m), t, off]);
            }
            self.ty(name, kind, kflag, members.len() as u32, size, &extra)
        }

        fn strukt(&mut self, name: &str, size: u32, members: &[(&str, u32, u32)]) -> u32 {
            self.composite(STRUCT, name, false, size, members)
        }

        fn blob(&self) -> Vec<u8> {
            let hdr_len: u32 = if self.layout.is_some() { 32 } else { 24 };
            let type_len = self.types.len() as u32;
            let str_len = self.strings.len() as u32;
            let layout: Vec<u8> = self.layout.iter().flatten().flatten().copied().collect();
            let mut header = Vec::new();
            let mut put = |w: u32| {
                header.extend_from_slice(&match self.endian {
                    Endian::Little => w.to_le_bytes(),
                    Endian::Big => w.to_be_bytes(),
                })
            };
            put(0); // magic, version, flags: patched below
            put(hdr_len);
            put(0);
            put(type_len);
            put(type_len);
            put(str_len);
            if self.layout.is_some() {
                put(type_len + str_len);
                put(layout.len() as u32);
            }
            let magic = match self.endian {
                Endian::Little => BTF_MAGIC.to_le_bytes(),
                Endian::Big => BTF_MAGIC.to_be_bytes(),
            };
            header[..4].copy_from_slice(&[magic[0], magic[1], BTF_VERSION, 0]);
            [header, self.types.clone(), self.strings.clone(), layout].concat()
        }
    }

    /// Overwrites the little-endian header word at byte `at`.
    fn patch(mut blob: Vec<u8>, at: usize, value: u32) -> Vec<u8> {
        blob[at..at + 4].copy_from_slice(&value.to_le_bytes());
        blob
    }

    /// A tiny blob with one type of every kind, an anonymous union holding an
    /// anonymous struct, typedef/qualifier chains, a kind_flag bitfield and a
    /// legacy (INT-encoded) bitfield. Returns the blob and the expected kind
    /// of every id.
    fn tiny(endian: Endian) -> (Vec<u8>, Vec<Kind>) {
        let mut b = Builder::new();
        b.endian = endian;
        let u32_ = b.int("unsigned int", 4); // 1
        let u8_ = b.int("unsigned char", 1); // 2
        let anon_s = b.strukt("", 8, &[("a", u32_, 0), ("b", u32_, 32)]); // 3
        let u64_ = b.int("long unsigned int", 8); // 4
        let anon_u = b.composite(UNION, "", false, 8, &[("whole", u64_, 0), ("", anon_s, 0)]); // 5
        let volatile = b.ty("", VOLATILE, false, 0, u32_, &[]); // 6
        let konst = b.ty("", CONST, false, 0, volatile, &[]); // 7
        let typedef = b.ty("u32_t", TYPEDEF, false, 0, konst, &[]); // 8
        let arr = b.ty("", ARRAY, false, 0, 0, &[u8_, u32_, 4]); // 9
        let outer = b.composite(
            STRUCT,
            "outer",
            true,
            24,
            &[
                ("first", u8_, 0),
                // kind_flag: bitfield size 3 in bits 24-31, bit offset 8.
                ("bits", u32_, 3 << 24 | 8),
                ("", anon_u, 64),
                ("last", typedef, 128),
                ("arr", arr, 160),
            ],
        ); // 10
        let nibble = b.ty("", INT, false, 0, 4, &[4]); // 11: 4-bit int
        b.strukt("legacy", 8, &[("flag", nibble, 0), ("whole", u32_, 32)]); // 12
        let ptr = b.ty("", PTR, false, 0, outer, &[]); // 13
        let e_a = b.str("E_A");
        let e_b = b.str("E_B");
        b.ty("e", ENUM, false, 2, 4, &[e_a, 0, e_b, 1]); // 14
        b.ty("fwd_only", FWD, false, 0, 0, &[]); // 15
        b.ty("", RESTRICT, false, 0, ptr, &[]); // 16
        let x = b.str("x");
        let proto = b.ty("", FUNC_PROTO, false, 2, u32_, &[x, u32_, 0, ptr]); // 17
        b.ty("f", FUNC, false, 0, proto, &[]); // 18
        let var = b.ty("v", VAR, false, 0, u32_, &[1]); // 19
        b.ty(".data", DATASEC, false, 1, 4, &[var, 0, 4]); // 20
        b.ty("float", FLOAT, false, 0, 4, &[]); // 21
        b.ty("tag", DECL_TAG, false, 0, outer, &[u32::MAX]); // 22
        let user = b.ty("user", TYPE_TAG, false, 0, u32_, &[]); // 23
        let big = b.str("BIG");
        b.ty("e64", ENUM64, true, 1, 8, &[big, 0, 1]); // 24
        // Found only if every kind above was skipped by its exact length.
        b.strukt("after_all_kinds", 4, &[("x", user, 0)]); // 25
        b.strukt("wrapper", 32, &[("pad", u64_, 0), ("inner", outer, 64)]); // 26
        let lp = b.next_id + 1;
        b.strukt("cyclic", 4, &[("", lp, 0)]); // 27
        b.ty("loop", TYPEDEF, false, 0, lp, &[]); // 28: typedef of itself
        let me = b.next_id;
        b.strukt("self_anon", 4, &[("", me, 0)]); // 29: contains itself
        b.strukt("dangling", 4, &[("bad", 999, 0)]); // 30
        use Kind::*;
        let kinds = vec![
            Int, Int, Struct, Int, Union, Volatile, Const, Typedef, Array, Struct, Int, Struct,
            Ptr, Enum, Fwd, Restrict, FuncProto, Func, Var, Datasec, Float, DeclTag, TypeTag,
            Enum64, Struct, Struct, Struct, Typedef, Struct, Struct,
        ];
        (b.blob(), kinds)
    }

    #[test]
    fn every_kind_keeps_ids_aligned() {
        for endian in [Endian::Little, Endian::Big] {
            let (blob, kinds) = tiny(endian);
            let btf = Btf::parse(blob).unwrap();
            assert_eq!(btf.last_type_id() as usize, kinds.len());
            for (i, kind) in kinds.iter().enumerate() {
                assert_eq!(btf.kind(i as u32 + 1), Some(*kind), "type {}", i + 1);
            }
            assert_eq!(btf.kind(0), None);
            assert_eq!(btf.kind(kinds.len() as u32 + 1), None);
            assert_eq!(btf.type_name(10).as_deref(), Some("outer"));
            assert_eq!(btf.type_name(3).as_deref(), Some(""));
            assert_eq!(
                btf.member("after_all_kinds", &["x"]).unwrap(),
                Field { offset: 0, size: 4 }
            );
            assert_eq!(btf.pointer_size(), 8, "size of `long unsigned int`");
        }
    }

    #[test]
    fn members_resolve_through_anonymous_unions_and_aliases() {
        let btf = Btf::parse(tiny(Endian::Little).0).unwrap();
        let at = |s: &str, path: &[&str]| btf.member(s, path).unwrap();
        assert_eq!(at("outer", &["first"]), Field { offset: 0, size: 1 });
        // outer → anonymous union at byte 8 → anonymous struct → a, b.
        assert_eq!(at("outer", &["a"]), Field { offset: 8, size: 4 });
        assert_eq!(
            at("outer", &["b"]),
            Field {
                offset: 12,
                size: 4
            }
        );
        assert_eq!(at("outer", &["whole"]), Field { offset: 8, size: 8 });
        // typedef → const → volatile → unsigned int.
        assert_eq!(
            at("outer", &["last"]),
            Field {
                offset: 16,
                size: 4
            }
        );
        assert_eq!(
            at("outer", &["arr"]),
            Field {
                offset: 20,
                size: 4
            }
        );
        assert_eq!(
            at("outer", &[]),
            Field {
                offset: 0,
                size: 24
            }
        );
        assert_eq!(
            at("wrapper", &["inner", "b"]),
            Field {
                offset: 20,
                size: 4
            }
        );
        assert_eq!(at("legacy", &["whole"]), Field { offset: 4, size: 4 });
    }

    #[test]
    fn lookups_fail_with_names() {
        let btf = Btf::parse(tiny(Endian::Little).0).unwrap();
        let err = |s: &str, path: &[&str]| btf.member(s, path).unwrap_err();

        let e = err("outer", &["bits"]);
        assert!(matches!(e, BtfError::Bitfield { .. }), "{e:?}");
        assert!(e.to_string().contains("outer.bits"), "{e}");
        let e = err("legacy", &["flag"]);
        assert!(matches!(e, BtfError::Bitfield { .. }), "{e:?}");

        let e = err("outer", &["nope"]);
        assert!(matches!(e, BtfError::NoSuchMember { .. }), "{e:?}");
        assert!(
            e.to_string().contains("struct outer has no member nope"),
            "{e}"
        );
        let e = err("wrapper", &["inner", "nope"]);
        assert!(e.to_string().contains("inner.nope"), "{e}");

        let e = err("no_such_struct", &["x"]);
        assert!(e.to_string().contains("no struct no_such_struct"), "{e}");
        // A forward declaration has no members: not a match.
        assert!(matches!(err("fwd_only", &[]), BtfError::NoSuchStruct(_)));

        let e = err("outer", &["first", "x"]);
        assert!(matches!(e, BtfError::NotComposite { .. }), "{e:?}");
        assert!(matches!(err("cyclic", &["x"]), BtfError::TooDeep { .. }));
        assert!(matches!(err("self_anon", &["x"]), BtfError::TooDeep { .. }));
        let e = err("dangling", &["bad"]);
        assert!(matches!(e, BtfError::BadTypeId { id: 999, .. }), "{e:?}");
    }

    /// Members that reach past the end of their struct are refused, as the
    /// kernel refuses them: the `btf` fuzz target's finding, an array whose
    /// element count grew to 2^31, then the plain case of a bad offset.
    #[test]
    fn members_outside_their_struct_are_errors() {
        let mut b = Builder::new();
        let u32_ = b.int("unsigned int", 4);
        let u8_ = b.int("unsigned char", 1);
        let huge = b.ty("", ARRAY, false, 0, 0, &[u8_, u32_, 1 << 31]);
        let small = b.ty("", ARRAY, false, 0, 0, &[u8_, u32_, 16]);
        b.strukt(
            "sock",
            24,
            &[
                ("ok", small, 0),
                ("huge", huge, 0),
                ("last", u32_, 160),
                ("past", u32_, 192),
            ],
        );
        let btf = Btf::parse(b.blob()).unwrap();
        assert_eq!(
            btf.member("sock", &["ok"]).unwrap(),
            Field {
                offset: 0,
                size: 16
            }
        );
        assert_eq!(
            btf.member("sock", &["last"]).unwrap(),
            Field {
                offset: 20,
                size: 4
            }
        );
        for name in ["huge", "past"] {
            let e = btf.member("sock", &[name]).unwrap_err();
            assert!(
                matches!(
                    e,
                    BtfError::OutsideStruct {
                        struct_size: 24,
                        ..
                    }
                ),
                "{name}: {e:?}"
            );
            assert!(e.to_string().contains(&format!("sock.{name}")), "{e}");
        }
    }

    #[test]
    fn malformed_blobs_are_errors() {
        let (blob, _) = tiny(Endian::Little);
        let parse = |b: Vec<u8>| Btf::parse(b).unwrap_err();

        assert!(matches!(
            parse(blob[..10].to_vec()),
            BtfError::TooShort { len: 10, .. }
        ));
        assert!(matches!(parse(Vec::new()), BtfError::TooShort { .. }));
        assert!(matches!(
            parse(patch(blob.clone(), 0, 0x0001_beef)),
            BtfError::BadMagic(0xbeef)
        ));
        let mut v2 = blob.clone();
        v2[2] = 2;
        assert!(matches!(parse(v2), BtfError::UnsupportedVersion(2)));
        assert!(matches!(
            parse(patch(blob.clone(), 4, 8)),
            BtfError::BadHeaderLen { .. }
        ));
        assert!(matches!(
            parse(patch(blob.clone(), 4, u32::MAX)),
            BtfError::BadHeaderLen { .. }
        ));
        // Type section longer than the blob; offset past the end; offset +
        // length overflowing u32.
        for (at, value) in [(12, u32::MAX), (8, 1 << 30), (8, u32::MAX)] {
            let e = parse(patch(blob.clone(), at, value));
            assert!(
                matches!(
                    e,
                    BtfError::SectionOutOfBounds {
                        section: "type",
                        ..
                    }
                ),
                "{e:?}"
            );
        }
        let e = parse(patch(blob.clone(), 20, u32::MAX));
        assert!(
            matches!(
                e,
                BtfError::SectionOutOfBounds {
                    section: "string",
                    ..
                }
            ),
            "{e:?}"
        );
        // The blob cut short inside the string section.
        let e = parse(blob[..blob.len() - 3].to_vec());
        assert!(
            matches!(
                e,
                BtfError::SectionOutOfBounds {
                    section: "string",
                    ..
                }
            ),
            "{e:?}"
        );
        // A type section that ends inside a type.
        let type_len = u32::from_le_bytes(blob[12..16].try_into().unwrap());
        let e = parse(patch(blob.clone(), 12, type_len - 4));
        assert!(matches!(e, BtfError::TruncatedType { id: 30, .. }), "{e:?}");
        let e = parse(patch(blob.clone(), 12, 5));
        assert!(
            matches!(e, BtfError::TruncatedType { id: 1, offset: 0 }),
            "{e:?}"
        );
        // Empty string section; one not starting or not ending with NUL.
        assert!(matches!(
            parse(patch(blob.clone(), 20, 0)),
            BtfError::BadStrings(_)
        ));
        let str_start = 24 + type_len as usize;
        let mut s = blob.clone();
        s[str_start] = b'x';
        assert!(matches!(parse(s), BtfError::BadStrings(_)));
        let mut s = blob.clone();
        *s.last_mut().unwrap() = b'x';
        assert!(matches!(parse(s), BtfError::BadStrings(_)));
    }

    #[test]
    fn string_offsets_out_of_range_are_errors() {
        let mut b = Builder::new();
        b.int("int", 4);
        let mut blob = b.blob();
        // Type 1's name_off is the first word of the type section.
        blob[24..28].copy_from_slice(&1000u32.to_le_bytes());
        let e = Btf::parse(blob).unwrap_err();
        assert!(
            matches!(
                e,
                BtfError::BadStringOffset {
                    id: 1,
                    offset: 1000,
                    ..
                }
            ),
            "{e:?}"
        );

        // A member name past the end.
        let mut b = Builder::new();
        let int = b.int("int", 4);
        b.ty("s", STRUCT, false, 1, 4, &[5000, int, 0]);
        let e = Btf::parse(b.blob()).unwrap_err();
        assert!(
            matches!(
                e,
                BtfError::BadStringOffset {
                    id: 2,
                    offset: 5000,
                    ..
                }
            ),
            "{e:?}"
        );

        // Enumerator and parameter names too.
        for (kind, extra) in [(ENUM, [7000, 0]), (FUNC_PROTO, [7000, 0])] {
            let mut b = Builder::new();
            b.ty("", kind, false, 1, 4, &extra);
            let e = Btf::parse(b.blob()).unwrap_err();
            assert!(
                matches!(e, BtfError::BadStringOffset { offset: 7000, .. }),
                "{e:?}"
            );
        }
    }

    #[test]
    fn unknown_kinds_need_a_layout_section() {
        let build = |layout: Option<Vec<[u8; 4]>>| {
            let mut b = Builder::new();
            b.layout = layout;
            let int = b.int("int", 4);
            // Kind 20 with vlen 2: 4 bytes of data plus 8 per element.
            b.ty("future", 20, false, 2, 0, &[0xaaaa_aaaa; 5]);
            b.strukt("after", 4, &[("x", int, 0)]);
            b.blob()
        };
        let e = Btf::parse(build(None)).unwrap_err();
        assert!(
            matches!(e, BtfError::UnknownKind { id: 2, kind: 20 }),
            "{e:?}"
        );
        // A layout section that stops before kind 20.
        let e = Btf::parse(build(Some(vec![[0; 4]; 20]))).unwrap_err();
        assert!(
            matches!(e, BtfError::UnknownKind { id: 2, kind: 20 }),
            "{e:?}"
        );

        let mut layout = vec![[0; 4]; 21];
        layout[20] = [4, 8, 0, 0];
        let btf = Btf::parse(build(Some(layout))).unwrap();
        assert_eq!(btf.kind(2), Some(Kind::Unknown(20)));
        assert_eq!(
            btf.member("after", &["x"]).unwrap(),
            Field { offset: 0, size: 4 }
        );

        // Kind 0 (BTF_KIND_UNKN) is never valid.
        let mut b = Builder::new();
        b.ty("", 0, false, 0, 0, &[]);
        assert!(matches!(
            Btf::parse(b.blob()),
            Err(BtfError::UnknownKind { kind: 0, .. })
        ));
        // A layout section out of bounds.
        let mut b = Builder::new();
        b.layout = Some(vec![[0; 4]; 21]);
        b.int("int", 4);
        let e = Btf::parse(patch(b.blob(), 28, 1 << 20)).unwrap_err();
        assert!(
            matches!(
                e,
                BtfError::SectionOutOfBounds {
                    section: "layout",
                    ..
                }
            ),
            "{e:?}"
        );
    }

    /// xorshift64*: deterministic pseudo-random bytes without a dependency.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    /// Exercises every lookup a parsed blob supports; must never panic.
    fn poke(btf: &Btf) {
        for (s, path) in [
            ("outer", &["a"][..]),
            ("outer", &["bits"]),
            ("outer", &["last"]),
            ("outer", &["arr"]),
            ("wrapper", &["inner", "b"]),
            ("legacy", &["flag"]),
            ("cyclic", &["x"]),
            ("self_anon", &["x"]),
            ("dangling", &["bad"]),
            ("after_all_kinds", &["x"]),
        ] {
            let _ = btf.member(s, path);
        }
        let _ = sock_offsets(btf);
        for id in 0..=btf.last_type_id() + 1 {
            let _ = (btf.kind(id), btf.type_name(id));
        }
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let (good, _) = tiny(Endian::Little);
        for i in 0..20_000 {
            let blob: Vec<u8> = if i % 2 == 0 {
                // Pure noise.
                (0..rng.below(200)).map(|_| rng.next() as u8).collect()
            } else {
                // A valid header over noise, so parsing gets past it.
                let mut b = good[..24].to_vec();
                b.extend((0..rng.below(400)).map(|_| rng.next() as u8));
                b
            };
            if let Ok(btf) = Btf::parse(blob) {
                poke(&btf);
            }
        }
    }

    #[test]
    fn mutated_blobs_never_panic() {
        let mut rng = Rng(0x0123_4567_89ab_cdef);
        let (good, _) = tiny(Endian::Little);
        let mut parsed = 0;
        for _ in 0..20_000 {
            let mut blob = good.clone();
            for _ in 0..=rng.below(4) {
                let at = rng.below(blob.len());
                blob[at] = match rng.below(3) {
                    0 => blob[at] ^ (1 << rng.below(8)),
                    1 => 0xff,
                    _ => rng.next() as u8,
                };
            }
            if rng.below(8) == 0 {
                blob.truncate(rng.below(blob.len()));
            }
            if let Ok(btf) = Btf::parse(blob) {
                parsed += 1;
                poke(&btf);
            }
        }
        // Most single-byte changes leave a parseable blob: the lookups above
        // did run on corrupted types.
        assert!(parsed > 5_000, "only {parsed} mutated blobs parsed");
    }

    /// Options for [`fake_kernel`].
    #[derive(Clone, Copy, Default)]
    struct Fake<'a> {
        /// Member left out of its struct.
        omit: Option<&'a str>,
        /// Where `tcp_sock.inet_conn` starts, in bytes.
        inet_conn_at: u32,
        /// Make `tcp_sock.snd_wnd` a u16.
        narrow_snd_wnd: bool,
    }

    /// The socket structs of a kernel, reduced to what `sock_offsets` reads,
    /// in the kernel's shape (anonymous unions of anonymous structs).
    fn fake_kernel(opt: Fake<'_>) -> Vec<u8> {
        let keep = |m: &(&str, u32, u32)| opt.omit != Some(m.0);
        let mut b = Builder::new();
        let u8_ = b.int("unsigned char", 1);
        let u16_ = b.int("short unsigned int", 2);
        let u32_ = b.int("unsigned int", 4);
        let int = b.int("int", 4);
        let ulong = b.int("long unsigned int", 8);
        let u64_ = b.int("long long unsigned int", 8);
        let arr16 = b.ty("", ARRAY, false, 0, 0, &[u8_, u32_, 16]);
        let in6 = b.strukt("in6_addr", 16, &[("u6_addr8", arr16, 0)]);
        let addrs: Vec<_> = [("skc_daddr", u32_, 0), ("skc_rcv_saddr", u32_, 32)]
            .into_iter()
            .filter(keep)
            .collect();
        let addrs = b.strukt("", 8, &addrs);
        let addrpair = b.composite(
            UNION,
            "",
            false,
            8,
            &[("skc_addrpair", u64_, 0), ("", addrs, 0)],
        );
        let ports: Vec<_> = [("skc_dport", u16_, 0), ("skc_num", u16_, 16)]
            .into_iter()
            .filter(keep)
            .collect();
        let ports = b.strukt("", 4, &ports);
        let portpair = b.composite(
            UNION,
            "",
            false,
            4,
            &[("skc_portpair", u32_, 0), ("", ports, 0)],
        );
        let vu8 = b.ty("", VOLATILE, false, 0, u8_, &[]);
        let flags: Vec<_> = [("skc_flags", ulong, 0), ("skc_listener", ulong, 0)]
            .into_iter()
            .filter(keep)
            .collect();
        let flags = b.composite(UNION, "", false, 8, &flags);
        let common: Vec<_> = [
            ("", addrpair, 0),
            ("", portpair, 96),
            ("skc_family", u16_, 128),
            ("skc_state", vu8, 144),
            ("skc_v6_daddr", in6, 448),
            ("skc_v6_rcv_saddr", in6, 576),
            ("", flags, 768),
        ]
        .into_iter()
        .filter(keep)
        .collect();
        let common = b.strukt("sock_common", 136, &common);
        let sock: Vec<_> = [("__sk_common", common, 0), ("sk_wmem_queued", int, 1600)]
            .into_iter()
            .filter(keep)
            .collect();
        let sock = b.strukt("sock", 784, &sock);
        let inet = b.strukt("inet_sock", 1016, &[("sk", sock, 0)]);
        let icsk = b.strukt("inet_connection_sock", 1400, &[("icsk_inet", inet, 0)]);
        let wnd = if opt.narrow_snd_wnd { u16_ } else { u32_ };
        let tcp: Vec<_> = [
            ("inet_conn", icsk, opt.inet_conn_at * 8),
            ("snd_wnd", wnd, 11488),
            ("snd_nxt", u32_, 13344),
            ("snd_una", u32_, 13376),
            ("packets_out", u32_, 13472),
        ]
        .into_iter()
        .filter(keep)
        .collect();
        b.strukt("tcp_sock", 2304, &tcp);
        b.blob()
    }

    #[test]
    fn sock_offsets_of_a_kernel_shaped_blob() {
        let btf = Btf::parse(fake_kernel(Fake::default())).unwrap();
        assert_eq!(
            sock_offsets(&btf).unwrap(),
            SockOffsets {
                family: 16,
                state: 18,
                dport: 12,
                num: 14,
                daddr: 0,
                rcv_saddr: 4,
                v6_daddr: 56,
                v6_rcv_saddr: 72,
                flags: 96,
                wmem_queued: 200,
                snd_wnd: 1436,
                snd_una: 1672,
                snd_nxt: 1668,
                packets_out: 1684,
                valid: 1,
                flags_reserved: 0,
            }
        );
    }

    #[test]
    fn sock_offsets_name_what_is_missing() {
        for (omit, names) in [
            (
                "skc_daddr",
                "struct sock has no member __sk_common.skc_daddr",
            ),
            ("skc_num", "struct sock has no member __sk_common.skc_num"),
            ("skc_v6_daddr", "__sk_common.skc_v6_daddr"),
            (
                "skc_flags",
                "struct sock has no member __sk_common.skc_flags",
            ),
            ("sk_wmem_queued", "struct sock has no member sk_wmem_queued"),
            ("snd_wnd", "struct tcp_sock has no member snd_wnd"),
            ("packets_out", "struct tcp_sock has no member packets_out"),
            ("inet_conn", "struct tcp_sock has no member inet_conn"),
        ] {
            let btf = Btf::parse(fake_kernel(Fake {
                omit: Some(omit),
                ..Fake::default()
            }))
            .unwrap();
            let e = sock_offsets(&btf).unwrap_err().to_string();
            assert!(e.contains(names), "omitting {omit}: {e}");
        }

        let btf = Btf::parse(fake_kernel(Fake {
            inet_conn_at: 8,
            ..Fake::default()
        }))
        .unwrap();
        let e = sock_offsets(&btf).unwrap_err();
        assert!(matches!(e, BtfError::NotAtStart { offset: 8, .. }), "{e:?}");

        let btf = Btf::parse(fake_kernel(Fake {
            narrow_snd_wnd: true,
            ..Fake::default()
        }))
        .unwrap();
        let e = sock_offsets(&btf).unwrap_err();
        assert!(
            matches!(
                e,
                BtfError::UnexpectedSize {
                    size: 2,
                    expected: 4,
                    ..
                }
            ),
            "{e:?}"
        );
        assert!(e.to_string().contains("tcp_sock.snd_wnd"), "{e}");

        let btf = Btf::parse(tiny(Endian::Little).0).unwrap();
        let e = sock_offsets(&btf).unwrap_err();
        assert!(e.to_string().contains("no struct tcp_sock"), "{e}");
    }

    // --- The running kernel, checked against bpftool's view of the same BTF.

    fn vmlinux() -> &'static Btf {
        static BTF: OnceLock<Btf> = OnceLock::new();
        BTF.get_or_init(|| Btf::from_sys_fs().expect("parse /sys/kernel/btf/vmlinux"))
    }

    /// One type as `bpftool btf dump ... format raw` prints it.
    #[derive(Debug, Default)]
    struct RawType {
        kind: String,
        name: String,
        attrs: HashMap<String, u64>,
        /// Struct/union members: name, type id, bit offset, bitfield size.
        members: Vec<(String, u32, u64, u64)>,
    }

    /// Parses bpftool's text, e.g.
    /// `[3777] STRUCT 'sock_common' size=136 vlen=25` followed by member
    /// lines `\t'skc_family' type_id=19 bits_offset=128`.
    fn bpftool_types() -> &'static HashMap<u32, RawType> {
        static TYPES: OnceLock<HashMap<u32, RawType>> = OnceLock::new();
        TYPES.get_or_init(|| {
            let out = Command::new("bpftool")
                .args(["btf", "dump", "file", VMLINUX_BTF, "format", "raw"])
                .output()
                .expect("bpftool is needed for this test (`apt-get install bpftool`)");
            assert!(out.status.success(), "bpftool failed: {out:?}");
            let text = String::from_utf8(out.stdout).unwrap();
            let attrs = |s: &str| -> HashMap<String, u64> {
                s.split_whitespace()
                    .filter_map(|kv| kv.split_once('='))
                    .filter_map(|(k, v)| Some((k.to_owned(), v.parse().ok()?)))
                    .collect()
            };
            let mut types = HashMap::new();
            let mut cur: Option<u32> = None;
            for line in text.lines() {
                if let Some(rest) = line.strip_prefix('[') {
                    let (id, rest) = rest.split_once("] ").unwrap();
                    let (kind, rest) = rest.split_once(" '").unwrap();
                    let (name, rest) = rest.split_once('\'').unwrap();
                    let id: u32 = id.parse().unwrap();
                    types.insert(
                        id,
                        RawType {
                            kind: kind.to_owned(),
                            name: name.to_owned(),
                            attrs: attrs(rest),
                            members: Vec::new(),
                        },
                    );
                    cur = Some(id);
                } else if let Some(rest) = line.strip_prefix("\t'") {
                    let t = types.get_mut(&cur.unwrap()).unwrap();
                    if t.kind == "STRUCT" || t.kind == "UNION" {
                        let (name, rest) = rest.split_once('\'').unwrap();
                        let a = attrs(rest);
                        t.members.push((
                            name.to_owned(),
                            a["type_id"] as u32,
                            a["bits_offset"],
                            a.get("bitfield_size").copied().unwrap_or(0),
                        ));
                    }
                }
            }
            types
        })
    }

    /// Offset and size of `path` in struct `name`, from bpftool's text alone.
    fn bpftool_member(name: &str, path: &[&str]) -> Option<(u64, u64)> {
        let types = bpftool_types();
        let skip = |mut id: u32| {
            while matches!(
                types[&id].kind.as_str(),
                "TYPEDEF" | "CONST" | "VOLATILE" | "RESTRICT" | "TYPE_TAG"
            ) {
                id = types[&id].attrs["type_id"] as u32;
            }
            id
        };
        fn find(
            types: &HashMap<u32, RawType>,
            id: u32,
            name: &str,
            skip: &dyn Fn(u32) -> u32,
        ) -> Option<(u64, u32)> {
            for (m, t, bits, bitfield) in &types[&id].members {
                if m == name {
                    assert_eq!(*bitfield, 0, "{name} is a bitfield");
                    return Some((*bits, *t));
                }
                if m == "(anon)" {
                    let inner = skip(*t);
                    if let Some((b, t)) = find(types, inner, name, skip) {
                        return Some((bits + b, t));
                    }
                }
            }
            None
        }
        let mut ids: Vec<_> = types.keys().copied().collect();
        ids.sort_unstable();
        let mut cur = ids.into_iter().find(|id| {
            types[id].name == name && matches!(types[id].kind.as_str(), "STRUCT" | "UNION")
        })?;
        let mut bits = 0;
        for m in path {
            let (b, t) = find(types, skip(cur), m, &skip)?;
            bits += b;
            cur = t;
        }
        let t = &types[&skip(cur)];
        let size = match t.kind.as_str() {
            "PTR" => 8,
            "ARRAY" => unreachable!("no arrays among the checked fields"),
            _ => t.attrs["size"],
        };
        Some((bits / 8, size))
    }

    #[test]
    fn live_type_ids_match_bpftool() {
        let btf = vmlinux();
        let types = bpftool_types();
        let last = *types.keys().max().unwrap();
        assert_eq!(btf.last_type_id(), last);
        // Every id has the same kind and name: one mis-skipped trailing
        // record would shift all later ids.
        for id in 1..=last {
            let raw = &types[&id];
            let kind = match btf.kind(id).unwrap() {
                Kind::FuncProto => "FUNC_PROTO".to_owned(),
                Kind::DeclTag => "DECL_TAG".to_owned(),
                Kind::TypeTag => "TYPE_TAG".to_owned(),
                k => format!("{k:?}").to_uppercase(),
            };
            assert_eq!(kind, raw.kind, "kind of type {id}");
            let name = btf.type_name(id).unwrap();
            let name = if name.is_empty() {
                "(anon)".into()
            } else {
                name
            };
            assert_eq!(name, raw.name, "name of type {id}");
        }
    }

    #[test]
    fn live_sock_offsets_match_bpftool() {
        let btf = vmlinux();
        let offsets = sock_offsets(btf).unwrap();
        assert_eq!(offsets.valid, 1);
        let sc = |m| ("sock", vec!["__sk_common", m]);
        let checks = [
            (offsets.family, sc("skc_family"), 2),
            (offsets.state, sc("skc_state"), 1),
            (offsets.dport, sc("skc_dport"), 2),
            (offsets.num, sc("skc_num"), 2),
            (offsets.daddr, sc("skc_daddr"), 4),
            (offsets.rcv_saddr, sc("skc_rcv_saddr"), 4),
            (offsets.v6_daddr, sc("skc_v6_daddr"), 16),
            (offsets.v6_rcv_saddr, sc("skc_v6_rcv_saddr"), 16),
            (offsets.flags, sc("skc_flags"), 8),
            (offsets.wmem_queued, ("sock", vec!["sk_wmem_queued"]), 4),
            (offsets.snd_wnd, ("tcp_sock", vec!["snd_wnd"]), 4),
            (offsets.snd_una, ("tcp_sock", vec!["snd_una"]), 4),
            (offsets.snd_nxt, ("tcp_sock", vec!["snd_nxt"]), 4),
            (offsets.packets_out, ("tcp_sock", vec!["packets_out"]), 4),
        ];
        for (ours, (s, path), size) in checks {
            let theirs =
                bpftool_member(s, &path).unwrap_or_else(|| panic!("bpftool: no {s}.{path:?}"));
            assert_eq!((u64::from(ours), size), theirs, "{s}.{}", path.join("."));
            assert_eq!(btf.member(s, &path).unwrap().size as u64, size);
        }
        // tcp_sock → inet_connection_sock → inet_sock → sock, all at 0.
        assert_eq!(
            bpftool_member("tcp_sock", &["inet_conn", "icsk_inet", "sk"]).map(|f| f.0),
            Some(0)
        );
        // Facts about the layout that any kernel keeps (include/net/sock.h).
        assert_eq!(offsets.rcv_saddr, offsets.daddr + 4, "skc_addrpair");
        assert_eq!(offsets.num, offsets.dport + 2, "skc_portpair");
        let sock_size = btf.member("sock", &[]).unwrap().size;
        assert!(offsets.wmem_queued < sock_size && offsets.flags < sock_size);
        assert!(
            offsets.snd_wnd >= sock_size,
            "tcp_sock fields come after the sock"
        );
    }

    #[test]
    fn live_nested_members_match_bpftool() {
        let btf = vmlinux();
        for (s, path) in [
            ("sock", &["sk_rcvbuf"][..]),
            ("sock_common", &["skc_refcnt"]),
            ("tcp_sock", &["inet_conn", "icsk_rto"]),
            ("tcp_sock", &["inet_conn", "icsk_inet", "inet_saddr"]),
            ("sk_buff", &["len"]),
            ("sk_buff", &["protocol"]),
            ("task_struct", &["pid"]),
        ] {
            let ours = btf.member(s, path).unwrap();
            let theirs = bpftool_member(s, path).unwrap();
            assert_eq!(
                (u64::from(ours.offset), u64::from(ours.size)),
                theirs,
                "{s}.{path:?}"
            );
        }
        // skc_reuse is a kind_flag bitfield in every kernel since 4.20.
        let e = btf.member("sock_common", &["skc_reuse"]).unwrap_err();
        assert!(matches!(e, BtfError::Bitfield { .. }), "{e:?}");
    }
}
