//! Regenerating, and checking, the Rust code generated from the workspace's
//! `.capnp` schemas.
//!
//! Building and testing the workspace never needs the `capnp` compiler: the
//! generated Rust is committed. Each schema has, next to its generated code,
//! the `CodeGeneratorRequest` the `capnp` compiler produced for it
//! (`*.request.bin`) and a stamp with a hash of the schema sources it came
//! from (`*.stamp`). `cargo run -p mp-codegen` rebuilds all three (this needs
//! `capnp` on `PATH`); the crate's tests fail when a schema changed since its
//! code was generated, or when the committed Rust no longer matches what
//! capnpc makes of the committed request.
//!
//! The generated code is capnpc's with one change: capnpc gives
//! `init_pointer` of every interface client a body that panics; here that
//! body is replaced with a real one (see `null_capability_on_init`), so no
//! committed file panics there (`tests/fresh.rs` checks).

use std::collections::HashMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The file id of `mp/proxy.capnp`, which the `multiprocess-thread-map` crate
/// provides to schemas that import it.
pub const PROXY_FILE_ID: u64 = 0xcc31_6e3f_71a0_40fb;

/// One schema whose Rust code is committed.
#[derive(Debug)]
pub struct Target {
    /// The schema, relative to the workspace root.
    pub schema: &'static str,
    /// Import directories (`-I`), relative to the workspace root.
    pub import_dirs: &'static [&'static str],
    /// The prefix stripped from the schema path to name its output.
    pub src_prefix: &'static str,
    /// Where the generated files go, relative to the workspace root.
    pub out_dir: &'static str,
    /// Schema files (besides `schema`) whose change makes the output stale.
    pub depends_on: &'static [&'static str],
    /// Whether imports of `mp/proxy.capnp` refer to the thread-map crate.
    pub proxy_from_crate: bool,
}

/// Every schema of the workspace with committed generated code.
pub const TARGETS: &[Target] = &[
    Target {
        schema: "thread-map/schema/mp/proxy.capnp",
        import_dirs: &["thread-map/schema"],
        src_prefix: "thread-map/schema/mp",
        out_dir: "thread-map/src/generated",
        depends_on: &[],
        proxy_from_crate: false,
    },
    Target {
        schema: "thread-map/schema/mp/bootstrap.capnp",
        import_dirs: &["thread-map/schema"],
        src_prefix: "thread-map/schema/mp",
        out_dir: "thread-map/src/generated",
        depends_on: &["thread-map/schema/mp/proxy.capnp"],
        proxy_from_crate: false,
    },
];

/// The signature capnpc gives `FromPointerBuilder::init_pointer` for an
/// interface's `Client`, whose body panics.
pub use multiprocess_proxy_build::CAPNPC_INIT_POINTER;

/// capnpc's code with a real `init_pointer` body for interface clients
/// (`multiprocess_proxy_build::null_capability_on_init`, which the
/// generated proxies use too), naming `capnp_rpc` directly: the thread-map
/// crate depends on it.
fn null_capability_on_init(generated: &str) -> String {
    multiprocess_proxy_build::null_capability_on_init(generated, "capnp_rpc")
}

/// The workspace root (the parent of this crate's directory).
pub fn workspace_root() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    here.parent().unwrap_or(here).to_path_buf()
}

impl Target {
    /// The schema's file stem (`proxy` for `mp/proxy.capnp`).
    pub fn stem(&self) -> &'static str {
        let name = self.schema.rsplit('/').next().unwrap_or(self.schema);
        name.strip_suffix(".capnp").unwrap_or(name)
    }

    /// Path of the committed generated Rust.
    pub fn rust_path(&self, root: &Path) -> PathBuf {
        root.join(self.out_dir)
            .join(format!("{}_capnp.rs", self.stem()))
    }

    /// Path of the committed `CodeGeneratorRequest`.
    pub fn request_path(&self, root: &Path) -> PathBuf {
        root.join(self.out_dir)
            .join(format!("{}.request.bin", self.stem()))
    }

    /// Path of the committed stamp (hash of the schema sources).
    pub fn stamp_path(&self, root: &Path) -> PathBuf {
        root.join(self.out_dir)
            .join(format!("{}.stamp", self.stem()))
    }

    /// The stamp the current schema sources give: one line per source file,
    /// `<fnv1a-64 hex> <path>`.
    pub fn current_stamp(&self, root: &Path) -> io::Result<String> {
        let mut out = String::new();
        for file in std::iter::once(&self.schema).chain(self.depends_on) {
            let bytes = fs::read(root.join(file))?;
            out.push_str(&format!("{:016x} {file}\n", fnv1a64(&bytes)));
        }
        Ok(out)
    }

    /// Runs the `capnp` compiler for this schema and returns its
    /// `CodeGeneratorRequest`.
    pub fn compile_request(&self, root: &Path) -> io::Result<Vec<u8>> {
        let mut cmd = Command::new("capnp");
        cmd.current_dir(root).arg("compile").arg("-o-");
        cmd.arg(format!("--src-prefix={}", self.src_prefix));
        for dir in self.import_dirs {
            cmd.arg(format!("-I{dir}"));
        }
        cmd.arg(self.schema);
        let output = cmd.output()?;
        if !output.status.success() {
            return Err(io::Error::other(format!(
                "capnp compile {} failed: {}",
                self.schema,
                String::from_utf8_lossy(&output.stderr)
            )));
        }
        Ok(output.stdout)
    }

    /// Runs capnpc's Rust code generator on `request` and returns the Rust
    /// source it produces for this schema.
    pub fn generate_rust(&self, request: &[u8]) -> io::Result<String> {
        let scratch = scratch_dir(self.stem())?;
        let mut cmd = capnpc::codegen::CodeGenerationCommand::new();
        cmd.output_directory(&scratch);
        if self.proxy_from_crate {
            let mut provides = HashMap::new();
            provides.insert(PROXY_FILE_ID, "multiprocess_thread_map".to_string());
            cmd.crates_provide_map(provides);
        }
        cmd.run(request)
            .map_err(|e| io::Error::other(e.to_string()))?;
        let generated = scratch.join(format!("{}_capnp.rs", self.stem()));
        let text = fs::read_to_string(&generated);
        let _ = fs::remove_dir_all(&scratch);
        Ok(null_capability_on_init(&text?))
    }

    /// Regenerates the request, the Rust code and the stamp (needs `capnp`).
    pub fn regenerate(&self, root: &Path) -> io::Result<()> {
        let request = self.compile_request(root)?;
        let rust = self.generate_rust(&request)?;
        fs::create_dir_all(root.join(self.out_dir))?;
        fs::write(self.request_path(root), &request)?;
        fs::write(self.rust_path(root), rust)?;
        fs::write(self.stamp_path(root), self.current_stamp(root)?)?;
        Ok(())
    }
}

fn scratch_dir(stem: &str) -> io::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("mp-codegen-{}-{stem}", std::process::id()));
    fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// 64-bit FNV-1a: a stable, dependency-free fingerprint of a schema's text.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_init_pointer_body_is_replaced_and_nothing_else_changes() {
        let capnpc_body = "panic!(\"capnpc's body\")";
        let generated = format!(
            "    impl <'a,> ::capnp::traits::FromPointerBuilder<'a> for Client<>  {{\n        \
             {CAPNPC_INIT_POINTER}\n            \
             {capnpc_body}\n        }}\n    }}\n    fn other() {{ {capnpc_body} }}\n"
        );
        let fixed = null_capability_on_init(&generated);
        assert!(!fixed.contains(CAPNPC_INIT_POINTER));
        assert!(fixed.contains(
            "        fn init_pointer(mut builder: ::capnp::private::layout::PointerBuilder<'a>, _size: u32) -> Self {\n            builder.clear();\n"
        ));
        assert!(fixed.contains("::capnp_rpc::new_broken_cap("));
        // Only that body: the rest is untouched, line for line.
        assert!(fixed.starts_with(
            "    impl <'a,> ::capnp::traits::FromPointerBuilder<'a> for Client<>  {\n"
        ));
        assert!(fixed.ends_with(&format!(
            ".hook)\n        }}\n    }}\n    fn other() {{ {capnpc_body} }}\n"
        )));
        assert_eq!(fixed.matches(capnpc_body).count(), 1);
    }
}
