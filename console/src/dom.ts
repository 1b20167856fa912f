/** Small DOM helpers: element lookup and construction without a framework. */

/** The element with id `id` (the page is static: a missing id is a bug in index.html). */
export function byId<T extends HTMLElement = HTMLElement>(id: string): T {
  const e = document.getElementById(id);
  if (!e) throw new Error(`the page has no #${id}`);
  return e as T;
}

type Child = Node | string | null | undefined | false;

/** A new `tag` element with `props` (attributes; `class`, `text`, and `on*` handlers) and children. */
export function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  props: Record<string, string | boolean | ((e: Event) => void) | undefined> = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (v === undefined || v === false) continue;
    if (typeof v === "function") e.addEventListener(k.slice(2), v);
    else if (k === "text") e.textContent = String(v);
    else if (v === true) e.setAttribute(k, "");
    else e.setAttribute(k, v);
  }
  for (const c of children) if (c !== null && c !== undefined && c !== false) e.append(c);
  return e;
}

/** `facts` as the rows of a `<dl>` (replacing what it held). */
export function fillFacts(dl: HTMLElement, facts: [string, string][]): void {
  dl.replaceChildren(...facts.flatMap(([k, v]) => [el("dt", { text: k }), el("dd", { text: v })]));
}

/** `0x1234…abcd`: a long hex string shortened for a table cell. */
export function short(hex: string): string {
  return hex.length > 20 ? `${hex.slice(0, 10)}…${hex.slice(-6)}` : hex;
}
