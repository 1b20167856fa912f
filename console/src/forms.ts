/** Forms generated from contract metadata: one input per argument of a message or
 * constructor, and the values they hold parsed into what the codec takes. */
import { ArgumentError, Signer, toHex, type ContractApi } from "../../sdk/dist/src/index.js";
import { el } from "./dom.js";

/** A message or constructor of the metadata. */
export type Message = ReturnType<ContractApi["message"]>;
type Param = Message["args"][number];

/** The type's name as the contract's author wrote it (`Balance`), else its shape (`u128`). */
export function typeName(p: Param): string {
  const display = (p.type as { displayName?: string }).displayName;
  return display || p.type.type;
}

/** `name(arg: Type, …) → Return` for a summary line. */
export function signature(m: Message): string {
  // ink! 4/5 wrap every answer in `Result<T, LangError>`; people read `T`.
  const returns = (m.returnType?.displayName || m.returnType?.type)?.replace(/^Result<(.*), InkPrimitivesLangError>$/, "$1");
  const ret = returns ? ` → ${returns}` : "";
  return `${m.method}(${m.args.map((a) => `${a.name}: ${typeName(a)}`).join(", ")})${ret}`;
}

/** What the codec registry says a type is, for the input it gets and how its text is read. */
type Kind = "int" | "bool" | "account" | "text" | "bytes" | "other";
type Registry = ContractApi["abi"]["registry"];

function kindOf(registry: Registry, p: Param): Kind {
  const type = p.type.type;
  try {
    const v = registry.createTypeUnsafe(type, []) as unknown as Record<string, unknown>;
    if (typeof v.bitLength === "function" && typeof v.toBigInt === "function") return "int";
    if (typeof v.isTrue === "boolean") return "bool";
    const raw = (v.toRawType as () => string)();
    if (/AccountId/.test(raw) || /AccountId/.test(type)) return "account";
    if (raw === "Text" || raw === "String") return "text";
    if (raw === "Bytes" || raw === "Vec<u8>") return "bytes";
  } catch {
    // A type the registry cannot build empty: JSON it is.
  }
  return "other";
}

const PLACEHOLDERS: Record<Kind, string> = {
  int: "a whole number",
  bool: "",
  account: "//Bob, an SS58 address, or 0x…",
  text: "text",
  bytes: "0x… hex",
  other: "a value, or JSON for structs, lists and options",
};

/** The inputs of `m`'s arguments, in a grid, and a function reading their values. */
export function argsForm(m: Message, idPrefix: string, registry: Registry): { form: HTMLElement; values: () => unknown[] } {
  const form = el("div", { class: "args" });
  const kinds = m.args.map((p) => kindOf(registry, p));
  const inputs = m.args.map((p, i) => {
    const id = `${idPrefix}-${p.name}`;
    const input = el("input", {
      id,
      name: p.name,
      type: kinds[i] === "bool" ? "checkbox" : "text",
      placeholder: PLACEHOLDERS[kinds[i]],
      spellcheck: "false",
      autocomplete: "off",
    });
    form.append(el("label", { for: id, text: `${p.name}: ${typeName(p)}` }), input);
    return input;
  });
  return { form, values: () => m.args.map((p, i) => parseArg(p, kinds[i], inputs[i])) };
}

/** The value in `input` as the codec takes it for an argument of kind `kind`. */
function parseArg(p: Param, kind: Kind, input: HTMLInputElement): unknown {
  if (kind === "bool") return input.checked;
  const raw = input.value.trim();
  switch (kind) {
    case "int":
      if (!/^-?\d+$/.test(raw)) throw new ArgumentError(`${p.name}: \`${raw}\` is not a whole number`);
      return raw;
    case "account":
      return raw.startsWith("//") ? toHex(Signer.fromSuri(raw).publicKey) : raw;
    case "text":
      return input.value;
    default:
      if (/^[[{"]/.test(raw) || raw === "null" || raw === "true" || raw === "false") {
        try {
          return JSON.parse(raw);
        } catch (e) {
          throw new ArgumentError(`${p.name}: ${(e as Error).message}`);
        }
      }
      return raw;
  }
}
