// The CRI v1 API, compiled with the tonic and prost the workspace already uses (containerd's
// client): servers for berth, clients for its tests. Unimplemented calls answer
// `Unimplemented` by default.
fn main() {
    println!("cargo:rerun-if-changed=proto/api.proto");
    tonic_build::configure()
        .generate_default_stubs(true)
        .compile_protos(&["proto/api.proto"], &["proto"])
        .expect("compiling proto/api.proto (needs protoc: scripts/setup.sh installs it)");
}
