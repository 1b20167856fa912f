//! Post-processing of a freshly linked contract, as cargo-contract does it: keep only the
//! `call` and `deploy` exports, check the memory is imported as `env.memory`, and cap its
//! maximum size.

use wasm_encoder::reencode::{Reencode, RoundtripReencoder};
use wasm_encoder::{EntityType, ExportSection, ImportSection, MemoryType, Module, RawSection};
use wasmparser::{ExternalKind, Parser, Payload, TypeRef};

use crate::BuildError;

/// Largest memory (in 64 KiB pages) a contract may declare; the runtime's default cap.
pub const MAX_MEMORY_PAGES: u64 = 16;

/// What post-processing found and did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Processed {
    /// The rewritten module.
    pub wasm: Vec<u8>,
    /// Exports that were removed.
    pub removed_exports: Vec<String>,
    /// The imported memory's limits after capping: (initial, maximum) pages.
    pub memory_pages: (u64, u64),
}

fn invalid(msg: impl Into<String>) -> BuildError {
    BuildError::InvalidWasm(msg.into())
}

/// Rewrites `wasm` so it exports only `call` and `deploy` and its memory maximum is capped.
pub fn postprocess(wasm: &[u8], max_pages: u64) -> Result<Processed, BuildError> {
    let mut module = Module::new();
    let mut removed_exports = Vec::new();
    let mut memory_pages = None;
    let mut exports_seen = (false, false);
    let mut reencoder = RoundtripReencoder;

    for payload in Parser::new(0).parse_all(wasm) {
        let payload = payload.map_err(|e| invalid(e.to_string()))?;
        match payload {
            Payload::Version { .. } | Payload::End(_) => {}
            Payload::ImportSection(reader) => {
                let mut imports = ImportSection::new();
                for import in reader.into_imports() {
                    let import = import.map_err(|e| invalid(e.to_string()))?;
                    let ty = match import.ty {
                        TypeRef::Memory(mem) => {
                            if (import.module, import.name) != ("env", "memory") {
                                return Err(invalid(format!(
                                    "memory must be imported as env.memory, found {}.{}",
                                    import.module, import.name
                                )));
                            }
                            if mem.initial > max_pages {
                                return Err(invalid(format!(
                                    "the contract needs {} memory pages at start, more than the {} allowed",
                                    mem.initial, max_pages
                                )));
                            }
                            let maximum = mem.maximum.unwrap_or(max_pages).min(max_pages);
                            memory_pages = Some((mem.initial, maximum));
                            EntityType::Memory(MemoryType {
                                minimum: mem.initial,
                                maximum: Some(maximum),
                                memory64: false,
                                shared: false,
                                page_size_log2: None,
                            })
                        }
                        other => reencoder
                            .entity_type(other)
                            .map_err(|e| invalid(e.to_string()))?,
                    };
                    imports.import(import.module, import.name, ty);
                }
                module.section(&imports);
            }
            Payload::ExportSection(reader) => {
                let mut exports = ExportSection::new();
                for export in reader {
                    let export = export.map_err(|e| invalid(e.to_string()))?;
                    let keep = matches!(export.name, "call" | "deploy")
                        && export.kind == ExternalKind::Func;
                    if keep {
                        if export.name == "call" {
                            exports_seen.0 = true;
                        } else {
                            exports_seen.1 = true;
                        }
                        exports.export(
                            export.name,
                            reencoder
                                .export_kind(export.kind)
                                .map_err(|e| invalid(e.to_string()))?,
                            export.index,
                        );
                    } else {
                        removed_exports.push(export.name.to_owned());
                    }
                }
                module.section(&exports);
            }
            other => {
                if let Some((id, range)) = other.as_section() {
                    module.section(&RawSection {
                        id,
                        data: &wasm[range],
                    });
                }
            }
        }
    }
    if exports_seen != (true, true) {
        return Err(invalid(
            "a contract must export the functions `call` and `deploy` (is it an ink! contract?)",
        ));
    }
    let memory_pages =
        memory_pages.ok_or_else(|| invalid("the contract does not import env.memory"))?;
    Ok(Processed {
        wasm: module.finish(),
        removed_exports,
        memory_pages,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tiny module: imports env.memory (1..100 pages), exports call, deploy and one more.
    fn sample_module() -> Vec<u8> {
        let mut m = Module::new();
        let mut types = wasm_encoder::TypeSection::new();
        types.ty().function([], []);
        m.section(&types);
        let mut imports = ImportSection::new();
        imports.import(
            "env",
            "memory",
            MemoryType {
                minimum: 1,
                maximum: Some(100),
                memory64: false,
                shared: false,
                page_size_log2: None,
            },
        );
        m.section(&imports);
        let mut funcs = wasm_encoder::FunctionSection::new();
        funcs.function(0);
        m.section(&funcs);
        let mut exports = ExportSection::new();
        exports.export("call", wasm_encoder::ExportKind::Func, 0);
        exports.export("deploy", wasm_encoder::ExportKind::Func, 0);
        exports.export("__heap_base", wasm_encoder::ExportKind::Func, 0);
        m.section(&exports);
        let mut code = wasm_encoder::CodeSection::new();
        let mut f = wasm_encoder::Function::new([]);
        f.instructions().end();
        code.function(&f);
        m.section(&code);
        m.finish()
    }

    #[test]
    fn strips_exports_and_caps_memory() {
        let out = postprocess(&sample_module(), 16).unwrap();
        assert_eq!(out.removed_exports, vec!["__heap_base".to_string()]);
        assert_eq!(out.memory_pages, (1, 16));
        wasmparser::Validator::new()
            .validate_all(&out.wasm)
            .unwrap();
        // Running it again changes nothing more.
        let again = postprocess(&out.wasm, 16).unwrap();
        assert!(again.removed_exports.is_empty());
        assert_eq!(again.wasm, out.wasm);
    }

    #[test]
    fn rejects_non_contracts() {
        assert!(matches!(
            postprocess(b"\0asm\x01\0\0\0", 16),
            Err(BuildError::InvalidWasm(_))
        ));
        assert!(postprocess(b"garbage", 16).is_err());
    }
}
