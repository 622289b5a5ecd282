//! Generates Rust proxies from `.capnp` files written for libmultiprocess.
//!
//! Per interface: a trait (`Wallet`), a blocking client that implements it
//! (`WalletClient`) and a server adapter that serves any `Arc<dyn Wallet>`;
//! per struct, a plain Rust struct; closure interfaces
//! (`$Proxy.wrap("ProxyCallback<std::function<..>>")`) become
//! `Arc<dyn Fn(..) -> Result<R> + Send + Sync>`. Beside them, capnpc's own
//! code for the schema.
//!
//! In `build.rs`, with no `capnp` binary needed (the compiler runs in the
//! build, compiled to WebAssembly):
//!
//! ```no_run
//! multiprocess_proxy_build::compile("schema/wallet.capnp").expect("wallet.capnp");
//! ```
//!
//! and at the crate root, `multiprocess::include_proxies!();` brings in the
//! modules `wallet` (the proxies) and `wallet_capnp` (capnpc's code).
//! `import "/mp/proxy.capnp"` resolves to the schema this crate ships.
//!
//! For code that is committed rather than built, the `mpgen` command writes
//! the same files to a folder.

mod emit;
mod model;
mod types;

use std::collections::HashMap;
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};

/// libmultiprocess's `mp/proxy.capnp`, as this crate ships it (the same
/// file id, definitions, ordinals and annotations).
pub const PROXY_CAPNP: &str = include_str!("../../../thread-map/schema/mp/proxy.capnp");

/// The file id of `mp/proxy.capnp`.
pub const PROXY_FILE_ID: u64 = model::PROXY_FILE_ID;

/// What went wrong generating proxies.
#[derive(Debug)]
pub struct Error(String);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

impl From<capnp::Error> for Error {
    fn from(e: capnp::Error) -> Self {
        Error(e.to_string())
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error(e.to_string())
    }
}

/// Generates proxies for `schema` into `OUT_DIR`, for `build.rs`. The
/// schema's directory is its source prefix and an import path.
pub fn compile(schema: impl AsRef<Path>) -> Result<(), Error> {
    Builder::new().file(schema).compile()
}

/// Options for a generation (the prost-build / tonic-build shape).
#[derive(Debug, Clone)]
pub struct Builder {
    files: Vec<PathBuf>,
    import_paths: Vec<PathBuf>,
    src_prefixes: Vec<PathBuf>,
    out_dir: Option<PathBuf>,
    runtime: String,
    parent_module: Vec<String>,
    index: Index,
    carries: Vec<(String, String)>,
}

/// How the index file names the generated files.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Index {
    /// `multiprocess_proxies.rs`, with `include!`s from `OUT_DIR`.
    OutDir,
    /// `mod.rs`, declaring the files as modules beside it.
    Folder,
}

impl Default for Builder {
    fn default() -> Self {
        Self::new()
    }
}

impl Builder {
    /// No files yet; output to `OUT_DIR`; the runtime is the `multiprocess`
    /// crate; modules at the crate root.
    pub fn new() -> Self {
        Self {
            files: Vec::new(),
            import_paths: Vec::new(),
            src_prefixes: Vec::new(),
            out_dir: None,
            runtime: "multiprocess".into(),
            parent_module: Vec::new(),
            index: Index::OutDir,
            carries: Vec::new(),
        }
    }

    /// Adds a schema to generate (its imports are compiled, not generated).
    pub fn file(mut self, path: impl AsRef<Path>) -> Self {
        let path = path.as_ref().to_path_buf();
        if let Some(dir) = path.parent() {
            let dir = if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir
            };
            if !self.src_prefixes.iter().any(|p| p == dir) {
                self.src_prefixes.push(dir.to_path_buf());
                self.import_paths.push(dir.to_path_buf());
            }
        }
        self.files.push(path);
        self
    }

    /// Adds a directory searched for absolute imports (`/common.capnp`).
    pub fn import_path(mut self, dir: impl AsRef<Path>) -> Self {
        self.import_paths.push(dir.as_ref().to_path_buf());
        self
    }

    /// Writes into `dir` (with a `mod.rs`) instead of `OUT_DIR`: for
    /// generated code that is committed.
    pub fn out_dir(mut self, dir: impl AsRef<Path>) -> Self {
        self.out_dir = Some(dir.as_ref().to_path_buf());
        self.index = Index::Folder;
        self
    }

    /// The crate the generated code names for the runtime (default
    /// `multiprocess`, the facade).
    pub fn runtime_crate(mut self, name: &str) -> Self {
        self.runtime = name.to_string();
        self
    }

    /// Where the generated modules sit below the crate root (default: at
    /// the root). `out_dir("src/generated")` wants `["generated"]`.
    pub fn parent_module(mut self, path: &[&str]) -> Self {
        self.parent_module = path.iter().map(|s| s.to_string()).collect();
        self
    }

    /// Carries `field` as the Rust type `rust_type`, which implements
    /// `multiprocess::Carry` with the field's wire type (`[u8; 32]` for a
    /// hash in `Data` is built in). `field` is `Struct.field`, or
    /// `Interface.method.param` / `Interface.method.result` for a method's
    /// parameter or result, optionally after `file.capnp:`.
    ///
    /// ```no_run
    /// multiprocess_proxy_build::Builder::new()
    ///     .file("schema/mining.capnp")
    ///     .carry("BlockRef.hash", "[u8; 32]")
    ///     .carry("Mining.waitTipChanged.currentTip", "[u8; 32]")
    ///     .compile()
    ///     .expect("mining.capnp");
    /// ```
    pub fn carry(mut self, field: &str, rust_type: &str) -> Self {
        self.carries
            .push((field.to_string(), rust_type.to_string()));
        self
    }

    /// Maps `field`, a `List` of two-field structs (`Pair(K, V)`,
    /// `StringIntPair`), to a `BTreeMap<K, V>`, as libmultiprocess maps such
    /// a list to a `std::map` where the C++ type says so. `field` is named
    /// as for [`carry`](Self::carry). A key sent twice keeps its last value.
    pub fn map(mut self, field: &str) -> Self {
        self.carries
            .push((field.to_string(), types::MAP.to_string()));
        self
    }

    /// Compiles the schemas (with the embedded compiler) and generates.
    pub fn compile(self) -> Result<(), Error> {
        let request = self.compile_request()?;
        self.generate(&request)
    }

    /// Runs the embedded capnp compiler: the `CodeGeneratorRequest`.
    pub fn compile_request(&self) -> Result<Vec<u8>, Error> {
        let include = std::env::temp_dir().join(format!("mp-proxy-include-{}", std::process::id()));
        fs::create_dir_all(include.join("mp"))?;
        fs::write(include.join("mp").join("proxy.capnp"), PROXY_CAPNP)?;
        let mut cmd = capnpc_embedded::CompileCommand::new();
        for file in &self.files {
            cmd.file(file);
        }
        for prefix in &self.src_prefixes {
            cmd.src_prefix(prefix);
        }
        cmd.import_path(&include);
        for dir in &self.import_paths {
            cmd.import_path(dir);
        }
        let request = cmd
            .compile()
            .map_err(|e| Error(format!("capnp compile: {e}")));
        let _ = fs::remove_dir_all(&include);
        // In a build script, rebuild when a schema changes.
        if std::env::var_os("OUT_DIR").is_some() && self.out_dir.is_none() {
            for file in &self.files {
                println!("cargo:rerun-if-changed={}", file.display());
            }
        }
        request
    }

    /// Generates from a `CodeGeneratorRequest` (made by `capnp compile -o-`
    /// or [`compile_request`](Self::compile_request)).
    pub fn generate(&self, request: &[u8]) -> Result<(), Error> {
        let out_dir = match &self.out_dir {
            Some(dir) => dir.clone(),
            None => PathBuf::from(std::env::var_os("OUT_DIR").ok_or_else(|| {
                Error("OUT_DIR is not set: call from build.rs, or set out_dir".into())
            })?),
        };
        fs::create_dir_all(&out_dir)?;
        for (name, text) in self.render(request)? {
            fs::write(out_dir.join(name), text)?;
        }
        Ok(())
    }

    /// The files a generation makes, as (file name, text), without writing
    /// them.
    pub fn render(&self, request: &[u8]) -> Result<Vec<(String, String)>, Error> {
        let scratch = std::env::temp_dir().join(format!(
            "mp-proxy-build-{}-{}",
            std::process::id(),
            request.len()
        ));
        fs::create_dir_all(&scratch)?;
        let mut capnpc = capnpc::codegen::CodeGenerationCommand::new();
        capnpc.output_directory(&scratch);
        capnpc.default_parent_module(self.parent_module.clone());
        let mut provides = HashMap::new();
        provides.insert(PROXY_FILE_ID, self.runtime.clone());
        capnpc.crates_provide_map(provides);
        let generated = capnpc
            .run(request)
            .map_err(|e| Error(format!("capnpc: {e}")));
        let mut reader = request;
        let message = capnp::serialize::read_message_from_flat_slice(
            &mut reader,
            capnp::message::ReaderOptions::new(),
        )?;
        let request: capnp::schema_capnp::code_generator_request::Reader<'_> =
            message.get_root()?;
        let schema = model::Schema::new(request, &self.parent_module)?;
        let rt = format!("::{}::proxy", self.runtime);
        let mut files: Vec<(String, String)> = Vec::new();
        let mut stems = Vec::new();
        let instances = std::cell::RefCell::new(Vec::new());
        let result = (|| -> Result<(), Error> {
            generated?;
            for requested in request.get_requested_files()? {
                let id = requested.get_id();
                let stem = schema
                    .file_stems
                    .get(&id)
                    .cloned()
                    .ok_or_else(|| Error(format!("file {id:#x} is not in the request")))?;
                let capnpc_text = fs::read_to_string(scratch.join(format!("{stem}_capnp.rs")))?;
                files.push((
                    format!("{stem}_capnp.rs"),
                    null_capability_on_init(&capnpc_text, &self.runtime),
                ));
                let proxy =
                    emit::FileGen::new(&schema, &rt, &instances, &self.carries)?.file(id)?;
                files.push((format!("{stem}.rs"), proxy));
                stems.push(stem);
            }
            // Each instance of a generic struct gets its `Wire` impl in the
            // file that declares the struct (or, if that file is only
            // imported, the first file generated); an impl may meet more.
            let mut done = 0;
            while done < instances.borrow().len() {
                let instance = instances.borrow()[done].clone();
                done += 1;
                let text = emit::FileGen::new(&schema, &rt, &instances, &self.carries)?
                    .instance_impl(&instance)?;
                let declared_in = match &instance {
                    types::Ty::Generic(name, _) => schema.file_stems.get(&name.file_id).cloned(),
                    _ => None,
                };
                let target = declared_in
                    .and_then(|stem| files.iter().position(|(f, _)| *f == format!("{stem}.rs")))
                    .or_else(|| files.iter().position(|(f, _)| !f.ends_with("_capnp.rs")));
                if let Some(index) = target {
                    files[index].1.push_str(&text);
                }
            }
            for (name, text) in files.iter_mut() {
                if !name.ends_with("_capnp.rs") {
                    *text = rustfmt(text);
                }
            }
            Ok(())
        })();
        let _ = fs::remove_dir_all(&scratch);
        result?;
        files.push(self.index_file(&stems));
        Ok(files)
    }

    fn index_file(&self, stems: &[String]) -> (String, String) {
        let allow = "#[allow(missing_docs, unreachable_pub, unused, clippy::all, clippy::unwrap_used, rust_2018_idioms)]";
        let mut text = String::from("// Generated by multiprocess-proxy-build. Do not edit.\n\n");
        for stem in stems {
            let module = model::ident(stem);
            match self.index {
                Index::OutDir => {
                    text.push_str(&format!(
                        "/// capnpc's code for `{stem}.capnp`.\n{allow}\npub mod {stem}_capnp {{\n    include!(concat!(env!(\"OUT_DIR\"), \"/{stem}_capnp.rs\"));\n}}\n\
                         /// The proxies of `{stem}.capnp`: traits, clients, servers and structs.\npub mod {module} {{\n    include!(concat!(env!(\"OUT_DIR\"), \"/{stem}.rs\"));\n}}\n"
                    ));
                }
                Index::Folder => {
                    text.push_str(&format!(
                        "/// capnpc's code for `{stem}.capnp`.\n{allow}\npub mod {stem}_capnp;\n\
                         /// The proxies of `{stem}.capnp`: traits, clients, servers and structs.\npub mod {module};\n"
                    ));
                }
            }
        }
        let name = match self.index {
            Index::OutDir => "multiprocess_proxies.rs",
            Index::Folder => "mod.rs",
        };
        (name.to_string(), text)
    }
}

/// `text` formatted by `rustfmt` when there is one (generated code should
/// read as if a careful person wrote it), else as it is.
fn rustfmt(text: &str) -> String {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let rustfmt = std::env::var_os("RUSTFMT").unwrap_or_else(|| "rustfmt".into());
    let child = Command::new(rustfmt)
        .args(["--edition", "2024", "--emit", "stdout", "--quiet"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn();
    let Ok(mut child) = child else {
        return text.to_string();
    };
    let written = child
        .stdin
        .take()
        .map(|mut stdin| stdin.write_all(text.as_bytes()));
    match (written, child.wait_with_output()) {
        (Some(Ok(())), Ok(output)) if output.status.success() && !output.stdout.is_empty() => {
            String::from_utf8(output.stdout).unwrap_or_else(|_| text.to_string())
        }
        _ => text.to_string(),
    }
}

/// The signature capnpc gives `FromPointerBuilder::init_pointer` for an
/// interface's `Client`, whose body panics.
pub const CAPNPC_INIT_POINTER: &str =
    "fn init_pointer(_builder: ::capnp::private::layout::PointerBuilder<'a>, _size: u32) -> Self {";

/// Replaces the body capnpc gives `init_pointer` for interface clients (one
/// that panics) with a real one: a capability pointer that is initialised
/// rather than set holds no capability, so the pointer is cleared (null, as
/// Cap'n Proto writes a missing capability) and the client returned is
/// broken, failing every call with an error that says why. Only code
/// building a message through `AnyPointer::init_as` reaches it, never a
/// peer. `runtime` is the crate that re-exports `capnp_rpc`
/// (`multiprocess`, or `capnp_rpc` itself for a crate that depends on it).
pub fn null_capability_on_init(generated: &str, runtime: &str) -> String {
    let broken = if runtime == "capnp_rpc" {
        "::capnp_rpc::new_broken_cap".to_string()
    } else {
        format!("::{runtime}::capnp_rpc::new_broken_cap")
    };
    let mut out = String::with_capacity(generated.len() + 1024);
    let mut lines = generated.lines();
    while let Some(line) = lines.next() {
        if line.trim() != CAPNPC_INIT_POINTER {
            out.push_str(line);
            out.push('\n');
            continue;
        }
        let indent = &line[..line.len() - line.trim_start().len()];
        let close = format!("{indent}}}");
        for body in lines.by_ref() {
            if body == close {
                break;
            }
        }
        out.push_str(&format!(
            "{indent}fn init_pointer(mut builder: ::capnp::private::layout::PointerBuilder<'a>, _size: u32) -> Self {{\n\
             {indent}    builder.clear();\n\
             {indent}    ::capnp::capability::FromClientHook::new({broken}(::capnp::Error::failed(\"null capability: the pointer was initialised, not set to a capability\".to_string())).hook)\n\
             {indent}}}\n"
        ));
    }
    out
}
