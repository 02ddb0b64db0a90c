// Link-time settings so `target/*/lacuna` runs without LD_LIBRARY_PATH and sees the GPU.
//
// torch-sys tells its direct dependents where libtorch lives. Its manifest says `links = "tch"`,
// so the variable is DEP_TCH_LIBTORCH_LIB (not DEP_TORCH_SYS_LIBTORCH_LIB as one might guess).
// An rpath to that directory goes on every binary and test; `--no-as-needed -ltorch_cuda` goes
// on the `lacuna` binary only (this script is also the build script of crates/cli), because otherwise the linker drops libtorch_cuda (nothing
// references it directly) and the binary never sees a GPU. These flags must not go in global
// RUSTFLAGS: applied to proc-macro dylibs they crash rustc.
fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    if let Ok(dir) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        let lib = std::path::Path::new(&dir).join("lib");
        let lib = if lib.is_dir() { lib } else { std::path::PathBuf::from(&dir) };
        println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
        // Only the CLI package has the binary (this script serves the engine's tests too).
        let has_bin = std::env::var("CARGO_PKG_NAME").as_deref() == Ok("lacuna-cli");
        if has_bin && lib.join("libtorch_cuda.so").exists() {
            println!("cargo:rustc-link-arg-bins=-Wl,--no-as-needed");
            println!("cargo:rustc-link-arg-bins=-L{}", lib.display());
            println!("cargo:rustc-link-arg-bins=-ltorch_cuda");
            println!("cargo:rustc-link-arg-bins=-Wl,--as-needed");
        }
    }
}
