// Build settings for the engine and the CLI (this script is also the build script of crates/cli).
//
// 1. Link-time settings so `target/*/lacuna` runs without LD_LIBRARY_PATH and sees the GPU.
//    torch-sys tells its direct dependents where libtorch lives. Its manifest says `links = "tch"`,
//    so the variable is DEP_TCH_LIBTORCH_LIB (not DEP_TORCH_SYS_LIBTORCH_LIB as one might guess).
//    An rpath to that directory goes on every binary and test; `--no-as-needed -ltorch_cuda` goes
//    on the `lacuna` binary only, because otherwise the linker drops libtorch_cuda (nothing
//    references it directly) and the binary never sees a GPU. These flags must not go in global
//    RUSTFLAGS: applied to proc-macro dylibs they crash rustc.
// 2. The engine's C++ pieces, compiled against the same torch headers and flags as torch-sys's
//    own wrapper (C++17, the wheel's CXX11 ABI): the shim over c10d (`src/dist/c10d_shim.cpp`),
//    the circular pad op (`src/model/circular_pad.cpp`) and the autocast switch
//    (`src/model/autocast.cpp`).
fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    println!("cargo:rerun-if-env-changed=LIBTORCH_CXX11_ABI");
    let Ok(dir) = std::env::var("DEP_TCH_LIBTORCH_LIB") else { return };
    let lib = std::path::Path::new(&dir).join("lib");
    let lib = if lib.is_dir() { lib } else { std::path::PathBuf::from(&dir) };
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
    let package = std::env::var("CARGO_PKG_NAME").unwrap_or_default();
    // Only the CLI package has the binary (this script serves the engine's tests too).
    if package == "lacuna-cli" && lib.join("libtorch_cuda.so").exists() {
        println!("cargo:rustc-link-arg-bins=-Wl,--no-as-needed");
        println!("cargo:rustc-link-arg-bins=-L{}", lib.display());
        println!("cargo:rustc-link-arg-bins=-ltorch_cuda");
        println!("cargo:rustc-link-arg-bins=-Wl,--as-needed");
    }
    if package == "lacuna" {
        compile_shim(&lib);
    }
}

fn compile_shim(lib: &std::path::Path) {
    let root = lib.parent().expect("libtorch lib directory has a parent");
    let include = root.join("include");
    let abi = std::env::var("LIBTORCH_CXX11_ABI").unwrap_or_else(|_| "1".into());
    let sources = ["src/dist/c10d_shim.cpp", "src/model/circular_pad.cpp", "src/model/autocast.cpp"];
    for f in sources.iter().chain(&["src/dist/gloo_decls", "src/ffi/guarded.h"]) {
        println!("cargo:rerun-if-changed={f}");
    }
    cc::Build::new()
        .cpp(true)
        .pic(true)
        .warnings(false)
        .include("src/dist/gloo_decls")
        .include("src/ffi")
        .include(&include)
        .include(include.join("torch/csrc/api/include"))
        .flag("-std=c++17")
        .flag(format!("-D_GLIBCXX_USE_CXX11_ABI={abi}"))
        .flag("-DGLOG_USE_GLOG_EXPORT")
        // ProcessGroupGloo.hpp declares its class only when c10d was built with Gloo, as the wheel's was.
        .define("USE_C10D_GLOO", None)
        .files(sources)
        .compile("lacuna_shim");
    println!("cargo:rustc-link-search=native={}", lib.display());
    println!("cargo:rustc-link-lib=dylib=torch_cpu");
    println!("cargo:rustc-link-lib=dylib=c10");
}
