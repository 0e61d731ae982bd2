//! BTF blobs (`offsets::Btf::parse`): the loader reads the running kernel's
//! `/sys/kernel/btf/vmlinux`, which a broken or hostile kernel build could
//! shape. The module promises errors, never panics or endless loops, for
//! arbitrary bytes; this holds it to that, through every lookup the probes
//! make.

#![no_main]

use blocker::kernel::offsets::{Btf, sock_offsets};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|blob: &[u8]| {
    let Ok(btf) = Btf::parse(blob) else {
        return;
    };
    // What the loader asks for, then a few paths through typedefs,
    // anonymous members and nesting.
    if let Ok(o) = sock_offsets(&btf) {
        assert_eq!(o.valid, 1);
    }
    for (s, path) in [
        ("sock", &["__sk_common", "skc_daddr"][..]),
        ("sock", &["__sk_common", "skc_v6_daddr"]),
        ("sock", &["sk_wmem_queued"]),
        ("sock_common", &["skc_family"]),
        ("tcp_sock", &["inet_conn", "icsk_inet", "sk"]),
        ("tcp_sock", &["snd_wnd"]),
        ("tcp_sock", &["packets_out"]),
    ] {
        if let Ok(f) = btf.member(s, path) {
            // The probes read `size` bytes at `offset` from a pointer to the
            // outer struct: the field must lie inside it, as the kernel's
            // own BTF check demands (btf_struct_check_member()).
            let outer = btf.member(s, &[]).expect("the struct was found");
            assert!(
                u64::from(f.offset) + u64::from(f.size) <= u64::from(outer.size),
                "{s}.{} at {}+{} outside {} bytes",
                path.join("."),
                f.offset,
                f.size,
                outer.size
            );
        }
    }
    let _ = btf.pointer_size();
    // Every id answers, and one past the end is None.
    let last = btf.last_type_id();
    for id in 0..=last {
        let _ = (btf.kind(id), btf.type_name(id));
    }
    assert!(btf.kind(last.saturating_add(1)).is_none() || last == u32::MAX);
});
