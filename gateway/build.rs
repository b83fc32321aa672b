//! Rebuild when the embedded page or wasm package changes (rust-embed alone notices edits to
//! files it already embeds, not files added or removed).
fn main() {
    println!("cargo:rerun-if-changed=../web");
    println!("cargo:rerun-if-changed=../wasm-client/pkg");
}
