//! Code preparation: checking an uploaded blob, rewriting it for fast instantiation,
//! compiling it, and caching the result by code hash (in memory, and on disk when configured).
//!
//! ink! contracts import their memory (`env.memory`), which would force a fresh `Linker`
//! resolution per call. Instead the blob is rewritten once: the import becomes a memory the
//! module defines itself (with the declared limits, capped by [`crate::Limits`]) and exports
//! as [`MEMORY_EXPORT`]. All other imports are host functions, so one `InstancePre` serves
//! every call and instances come straight from the pooling allocator.

use std::collections::HashMap;
use std::fs;
use std::hash::{Hash as _, Hasher};
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use blake2::digest::{consts::U32, Mac};
use phat_primitives::CodeHash;
use wasm_encoder::reencode::{Reencode, RoundtripReencoder};
use wasm_encoder::{
    ExportKind, ExportSection, ImportSection, MemorySection, MemoryType, Module as Encoder,
    RawSection,
};
use wasmparser::{Parser, Payload, TypeRef};
use wasmtime::{Engine, InstancePre, Linker, Module, ModuleExport};

use crate::error::CodeError;
use crate::exec::Frame;

/// Name under which the rewritten module exports its memory to the host.
pub const MEMORY_EXPORT: &str = "__phat_memory";

/// Host-function modules a contract may import from.
const HOST_MODULES: [&str; 3] = ["seal0", "seal1", "seal2"];

/// A compiled contract, ready to instantiate.
pub struct CompiledCode {
    pub(crate) pre: InstancePre<Frame>,
    pub(crate) call: ModuleExport,
    pub(crate) deploy: ModuleExport,
    pub(crate) memory: ModuleExport,
}

/// Rewrites `wasm` so its imported memory becomes a defined, exported one. Checks the
/// structural rules on the way: imports only from the host modules, one memory imported as
/// `env.memory` within `max_pages`, no start function.
pub fn rewrite_memory(wasm: &[u8], max_pages: u64) -> Result<Vec<u8>, CodeError> {
    let invalid = |e: wasmparser::BinaryReaderError| CodeError::Invalid(e.to_string());
    let mut out = Encoder::new();
    let mut memory: Option<MemoryType> = None;
    let mut memory_emitted = false;
    let mut saw_exports = false;
    let mut reencoder = RoundtripReencoder;

    let emit_memory = |out: &mut Encoder, memory: &Option<MemoryType>| -> Result<(), CodeError> {
        let ty = memory.ok_or_else(|| {
            CodeError::Memory("the contract must import its memory as env.memory".into())
        })?;
        let mut section = MemorySection::new();
        section.memory(ty);
        out.section(&section);
        Ok(())
    };

    for payload in Parser::new(0).parse_all(wasm) {
        let payload = payload.map_err(invalid)?;
        if let Some((id, _)) = payload.as_section() {
            // Known sections after the memory section (tag, global, export, start, element,
            // data count, code, data) come with ids outside 1..=5; custom sections are 0.
            if !memory_emitted && id != 0 && !(1..=5).contains(&id) {
                emit_memory(&mut out, &memory)?;
                memory_emitted = true;
            }
        }
        match payload {
            Payload::Version { .. } => {}
            Payload::End(_) => {}
            Payload::ImportSection(reader) => {
                let mut imports = ImportSection::new();
                for import in reader.into_imports() {
                    let import = import.map_err(invalid)?;
                    match import.ty {
                        TypeRef::Memory(mem) => {
                            if (import.module, import.name) != ("env", "memory") {
                                return Err(CodeError::Memory(format!(
                                    "memory must be imported as env.memory, not {}.{}",
                                    import.module, import.name
                                )));
                            }
                            if mem.memory64 || mem.shared || memory.is_some() {
                                return Err(CodeError::Memory(
                                    "only one 32-bit, unshared memory is allowed".into(),
                                ));
                            }
                            if mem.initial > max_pages {
                                return Err(CodeError::Memory(format!(
                                    "{} initial pages requested, at most {max_pages} allowed",
                                    mem.initial
                                )));
                            }
                            let maximum = mem.maximum.unwrap_or(max_pages).min(max_pages);
                            memory = Some(MemoryType {
                                minimum: mem.initial,
                                maximum: Some(maximum),
                                memory64: false,
                                shared: false,
                                page_size_log2: None,
                            });
                        }
                        TypeRef::Func(_) if HOST_MODULES.contains(&import.module) => {
                            let ty = reencoder
                                .entity_type(import.ty)
                                .map_err(|e| CodeError::Invalid(e.to_string()))?;
                            imports.import(import.module, import.name, ty);
                        }
                        _ => {
                            return Err(CodeError::UnsupportedImport(format!(
                                "{}.{}",
                                import.module, import.name
                            )))
                        }
                    }
                }
                out.section(&imports);
            }
            Payload::MemorySection(_) => {
                return Err(CodeError::Memory(
                    "the contract must import its memory, not define it".into(),
                ))
            }
            Payload::StartSection { .. } => {
                return Err(CodeError::Invalid("a start function is not allowed".into()))
            }
            Payload::ExportSection(reader) => {
                saw_exports = true;
                let mut exports = ExportSection::new();
                for export in reader {
                    let export = export.map_err(invalid)?;
                    if export.name == MEMORY_EXPORT {
                        return Err(CodeError::Exports(format!("`{MEMORY_EXPORT}` is reserved")));
                    }
                    let kind = reencoder
                        .export_kind(export.kind)
                        .map_err(|e| CodeError::Invalid(e.to_string()))?;
                    exports.export(export.name, kind, export.index);
                }
                exports.export(MEMORY_EXPORT, ExportKind::Memory, 0);
                out.section(&exports);
            }
            other => {
                if let Some((id, range)) = other.as_section() {
                    out.section(&RawSection {
                        id,
                        data: &wasm[range],
                    });
                }
            }
        }
    }
    if !memory_emitted {
        emit_memory(&mut out, &memory)?;
    }
    if !saw_exports {
        return Err(CodeError::Exports(
            "the contract exports nothing; `call` and `deploy` are required".into(),
        ));
    }
    Ok(out.finish())
}

/// Compiled contracts by code hash, in memory (least recently used evicted past a byte budget)
/// and optionally on disk.
pub struct CodeCache {
    modules: RwLock<Modules>,
    /// Ticks on every hit, to order entries by last use.
    clock: std::sync::atomic::AtomicU64,
    /// Bytes of compiled code kept in memory at most.
    budget: usize,
    dir: Option<PathBuf>,
    key: [u8; 32],
    fingerprint: String,
}

#[derive(Default)]
struct Modules {
    map: HashMap<CodeHash, Cached>,
    /// Sum of the entries' `bytes`.
    bytes: usize,
}

struct Cached {
    code: Arc<CompiledCode>,
    /// Size of the compiled image.
    bytes: usize,
    /// `clock` at the last use.
    used: std::sync::atomic::AtomicU64,
}

type CacheMac = blake2::Blake2bMac<U32>;

impl CodeCache {
    /// A cache for modules compiled by `engine` with memories capped at `max_pages`.
    /// At most `budget` bytes of compiled code stay in memory.
    pub fn new(
        engine: &Engine,
        dir: Option<PathBuf>,
        key: [u8; 32],
        max_pages: u64,
        budget: usize,
    ) -> Self {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        max_pages.hash(&mut hasher);
        Self {
            modules: RwLock::new(Modules::default()),
            clock: Default::default(),
            budget,
            dir,
            key,
            fingerprint: format!("{:016x}", hasher.finish()),
        }
    }

    /// The compiled code for `hash`, if already in memory.
    #[allow(
        clippy::expect_used,
        reason = "the code cache lock is poisoned only if a holder panicked, and no code panics while holding it"
    )]
    pub fn get(&self, hash: &CodeHash) -> Option<Arc<CompiledCode>> {
        use std::sync::atomic::Ordering::Relaxed;
        let modules = self.modules.read().expect("code cache lock poisoned");
        let cached = modules.map.get(hash)?;
        cached.used.store(self.clock.fetch_add(1, Relaxed), Relaxed);
        Some(cached.code.clone())
    }

    /// Number of modules held in memory.
    #[allow(
        clippy::expect_used,
        reason = "the code cache lock is poisoned only if a holder panicked, and no code panics while holding it"
    )]
    pub fn len(&self) -> usize {
        self.modules
            .read()
            .expect("code cache lock poisoned")
            .map
            .len()
    }

    /// Bytes of compiled code held in memory.
    #[allow(
        clippy::expect_used,
        reason = "the code cache lock is poisoned only if a holder panicked, and no code panics while holding it"
    )]
    pub fn bytes(&self) -> usize {
        self.modules.read().expect("code cache lock poisoned").bytes
    }

    /// Keeps `code` (of `bytes`), evicting the least recently used modules past the budget.
    /// Evicted modules stay usable by the calls holding them, and come back from the disk
    /// cache (or a recompile) when called again.
    #[allow(
        clippy::expect_used,
        reason = "the code cache lock is poisoned only if a holder panicked, and no code panics while holding it"
    )]
    fn insert(&self, hash: CodeHash, code: Arc<CompiledCode>, bytes: usize) {
        use std::sync::atomic::Ordering::Relaxed;
        let mut m = self.modules.write().expect("code cache lock poisoned");
        let now = self.clock.fetch_add(1, Relaxed);
        if let Some(old) = m.map.insert(
            hash,
            Cached {
                code,
                bytes,
                used: now.into(),
            },
        ) {
            m.bytes -= old.bytes;
        }
        m.bytes += bytes;
        if m.bytes <= self.budget {
            return;
        }
        let mut by_use: Vec<(u64, CodeHash)> = m
            .map
            .iter()
            .filter(|(h, _)| **h != hash)
            .map(|(h, c)| (c.used.load(Relaxed), *h))
            .collect();
        by_use.sort_unstable();
        for (_, h) in by_use {
            if m.bytes <= self.budget {
                break;
            }
            if let Some(c) = m.map.remove(&h) {
                m.bytes -= c.bytes;
            }
        }
    }

    #[allow(
        clippy::expect_used,
        reason = "an HMAC accepts a key of any length; this one is 32 bytes"
    )]
    fn mac(&self, bytes: &[u8]) -> [u8; 32] {
        let mut mac = <CacheMac as Mac>::new_from_slice(&self.key).expect("32-byte key is valid");
        mac.update(bytes);
        mac.finalize().into_bytes().into()
    }

    fn path(&self, hash: &CodeHash) -> Option<PathBuf> {
        self.dir.as_ref().map(|d| {
            d.join(format!(
                "{}-{}.cwasm",
                hex::encode(hash.as_bytes()),
                self.fingerprint
            ))
        })
    }

    fn load_from_disk(&self, engine: &Engine, hash: &CodeHash) -> Option<Module> {
        let bytes = fs::read(self.path(hash)?).ok()?;
        if bytes.len() < 32 || self.mac(&bytes[32..]) != bytes[..32] {
            return None;
        }
        // SAFETY: the bytes carry a MAC under `cache_key` that only `store_to_disk` computes,
        // over the output of `Module::serialize` from an engine with the same compatibility
        // fingerprint (it is in the file name); wasmtime re-checks version and configuration
        // in the artifact header and fails cleanly on a mismatch.
        unsafe { Module::deserialize(engine, &bytes[32..]) }.ok()
    }

    fn store_to_disk(&self, hash: &CodeHash, module: &Module) {
        let (Some(path), Ok(serialized)) = (self.path(hash), module.serialize()) else {
            return;
        };
        let mut file = self.mac(&serialized).to_vec();
        file.extend_from_slice(&serialized);
        // Write-then-rename so a crash never leaves a torn file under the final name. Failures
        // only cost a recompile later, so they are ignored.
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        if fs::create_dir_all(path.parent().unwrap_or(&path)).is_ok()
            && fs::write(&tmp, &file).is_ok()
        {
            let _ = fs::rename(&tmp, &path);
        }
    }

    /// Compiles (or loads) `wasm`, known to hash to `hash`, and caches it.
    pub(crate) fn prepare(
        &self,
        engine: &Engine,
        linker: &Linker<Frame>,
        hash: CodeHash,
        wasm: &[u8],
        max_pages: u64,
    ) -> Result<Arc<CompiledCode>, CodeError> {
        if let Some(code) = self.get(&hash) {
            return Ok(code);
        }
        let module = match self.load_from_disk(engine, &hash) {
            Some(m) => m,
            None => {
                let rewritten = rewrite_memory(wasm, max_pages)?;
                let module = Module::new(engine, &rewritten)
                    .map_err(|e| CodeError::Compile(format!("{e:#}").replace('\n', " ")))?;
                self.store_to_disk(&hash, &module);
                module
            }
        };
        let image = module.image_range();
        let bytes = (image.end as usize).saturating_sub(image.start as usize) + wasm.len();
        let compiled = Arc::new(link(linker, &module)?);
        self.insert(hash, compiled.clone(), bytes);
        Ok(compiled)
    }
}

fn link(linker: &Linker<Frame>, module: &Module) -> Result<CompiledCode, CodeError> {
    for name in ["call", "deploy"] {
        match module.get_export(name) {
            Some(wasmtime::ExternType::Func(f))
                if f.params().len() == 0 && f.results().len() == 0 => {}
            Some(_) => {
                return Err(CodeError::Exports(format!(
                    "`{name}` must be a function taking and returning nothing"
                )))
            }
            None => return Err(CodeError::Exports(format!("`{name}` is not exported"))),
        }
    }
    let pre = linker.instantiate_pre(module).map_err(|e| {
        let msg = format!("{e:#}");
        if msg.contains("unknown import") || msg.contains("incompatible import") {
            CodeError::UnsupportedImport(msg.replace('\n', " "))
        } else {
            CodeError::Compile(msg.replace('\n', " "))
        }
    })?;
    let export = |name: &str| {
        module
            .get_export_index(name)
            .ok_or_else(|| CodeError::Exports(format!("`{name}` is not exported")))
    };
    Ok(CompiledCode {
        call: export("call")?,
        deploy: export("deploy")?,
        memory: export(MEMORY_EXPORT)?,
        pre,
    })
}
